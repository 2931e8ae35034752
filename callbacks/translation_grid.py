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
import torch

from gans.nn.basic import eval_mode
from gans.tools.pictures import columns_picture, save_picture


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
