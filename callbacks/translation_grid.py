"""Progress pictures of image-to-image models: fixed held-out examples, one row each, the model's columns.

pix2pix: input | output | target; CycleGAN: A | G_AB(A) | G_BA(G_AB(A)) and B | G_BA(B) | G_AB(G_BA(B));
StarGAN: the input and one column per target domain; CoGAN: the two domains' images from the same latents.
The model says what the columns are (:meth:`gans.training.image_to_image.TranslationGAN.pictures`); the examples come from
:meth:`~gans.training.image_to_image.TranslationGAN.held_out` once at the start of fit, so pictures across steps compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torchvision.utils import make_grid

from gans.nn.basic import eval_mode
from gans.tools.pictures import save_picture, write_labels


def columns_picture(columns: list[tuple[str, Tensor]]) -> np.ndarray:
    """``[H, W, 3]`` uint8: row i holds example i of every column, the column titles written above."""
    images = torch.stack([column[i].float().cpu() for i in range(len(columns[0][1])) for _, column in columns])
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    grid = make_grid(images.clamp(-1, 1).add(1).div(2), nrow=len(columns), padding=2, pad_value=1.0)
    picture = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    return write_labels(picture, [""] * len(columns[0][1]), images.shape[-1], [title for title, _ in columns])


class TranslationGrid(L.Callback):
    """Every ``every_n_steps`` training batches (and at the end), the model's picture of ``num_examples`` fixed
    held-out examples, saved as ``<run folder>/samples/step_XXXXXXX.png`` / ``latest.png`` and logged as
    ``samples`` to W&B or TensorBoard."""

    def __init__(self, every_n_steps: int = 500, num_examples: int = 8) -> None:
        """
        Args:
            every_n_steps: training batches between pictures; 0 = only at the end.
            num_examples: held-out examples (rows).
        """
        super().__init__()
        self.every_n_steps = every_n_steps
        self.num_examples = num_examples
        self._held: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._held = pl_module.held_out(trainer.datamodule, self.num_examples)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_steps > 0 and pl_module.batches % self.every_n_steps == 0:
            self.draw(trainer, pl_module, pl_module.batches)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = pl_module.batches
        if self._held is not None and not (self.every_n_steps > 0 and step % self.every_n_steps == 0):
            self.draw(trainer, pl_module, step)

    @torch.no_grad()
    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> Path | None:
        if not trainer.is_global_zero:
            return None
        with eval_mode(pl_module):
            columns = pl_module.pictures(self._held)
        return save_picture(trainer, columns_picture(columns), step)
