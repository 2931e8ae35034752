"""When a callback acts: every N thousand training images, counted in whole images.

Counting in images (integers) rather than kimg (floats) matters: ``9 * 0.128`` is
``1.1520000000000001``, so a float schedule would wait one extra batch past 1.152 kimg.
"""

from __future__ import annotations

import math


class KimgSchedule:
    """Fires each time ``images_seen`` passes a multiple of ``every_kimg`` thousand images; 0 = never."""

    def __init__(self, every_kimg: float) -> None:
        self.every_images = round(every_kimg * 1000)
        self.next_images: float | None = None  # saved in the owner's checkpoint state

    def start(self, images_seen: int) -> None:
        """Set the first point after ``images_seen`` unless a checkpoint restored one."""
        if self.next_images is None:
            self.next_images = self._after(images_seen)

    def due(self, images_seen: int) -> bool:
        """Whether a point was passed since the last time it fired (then the next point is set)."""
        if self.every_images <= 0 or images_seen < self.next_images:
            return False
        self.next_images = self._after(images_seen)
        return True

    def _after(self, images_seen: int) -> float:
        return (images_seen // self.every_images + 1) * self.every_images if self.every_images > 0 else math.inf
