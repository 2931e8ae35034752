"""Training speed in images per second: Lightning's ThroughputMonitor set up for GAN batches.

One training batch is one real batch shown to D (one D step; G steps in between are part of its
time), so ``train/samples_per_sec`` is in the unit of ``train/kimg``: 1000 x kimg per second.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.fabric.utilities.throughput import Throughput
from lightning.pytorch.callbacks import ThroughputMonitor

from gans.tools.pictures import batch_images


def count_images(batch: Any) -> int:
    """Images in a ``(images, labels)`` batch or a bare tensor of images (or 2-D points)."""
    return int(batch_images(batch).shape[0])


class _TotalThroughput(Throughput):
    """Lightning's Throughput, which on one device also reports the all-device rates (equal to the device ones).

    Lightning leaves ``samples_per_sec`` out when the world size is 1; reporting it always keeps one
    name for the total speed whether a run used 1 or 8 GPUs.
    """

    def compute(self) -> dict[str, Any]:
        metrics = super().compute()
        if self.world_size == 1:
            for name in ("batches_per_sec", "samples_per_sec"):
                per_device = metrics.get(f"device{self.separator}{name}")
                if per_device is not None:
                    metrics.setdefault(name, per_device)
        return metrics


class ImagesPerSecond(ThroughputMonitor):
    """Logs training throughput in images per second (``class_path: callbacks.ImagesPerSecond`` in YAML).

    Metrics, at every ``log_every_n_steps`` once ``window_size`` batches have been seen (the rates
    are rolling averages over the last ``window_size`` batches):

    - ``train/samples_per_sec``: real images shown to D per second, all devices together (the
      unit of ``train/kimg``: kimg per second x 1000);
    - ``train/device/samples_per_sec``: the same per device;
    - ``train/batches_per_sec`` and ``train/device/batches_per_sec``: training batches (D steps) per second;
    - from the first logged step: ``train/time`` (seconds since this fit started), ``train/batches``
      and ``train/samples`` (batches and images on this device since this fit started; they restart
      at 0 on resume, unlike ``train/kimg``).

    FLOPs and MFU are not reported: :class:`gans.training.gan_module.GANModule` sets ``flops_per_batch = None``,
    which also keeps ThroughputMonitor from warning about it. On CUDA every batch synchronises the
    device to time it (ThroughputMonitor's behaviour), a small cost.
    """

    def __init__(self, window_size: int = 100, **kwargs: Any) -> None:
        """
        Args:
            window_size: batches in the rolling average (at least 2).
            **kwargs: passed on to :class:`lightning.pytorch.callbacks.ThroughputMonitor` (e.g. ``separator``).
        """
        super().__init__(batch_size_fn=count_images, window_size=window_size, **kwargs)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Same settings as Lightning's, only with the total rates on one device too.
        for running_stage in list(self._throughputs):
            self._throughputs[running_stage] = _TotalThroughput(
                available_flops=self.available_flops, world_size=trainer.world_size, **self.kwargs
            )
