"""Writes what ``lightning predict`` generates: one PNG per image, or a CSV of 2-D points."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor
from torchvision.utils import save_image


class SampleWriter(BasePredictionWriter):
    """Saves each predicted sample as ``<output_dir>/<index>.png`` (images in [-1, 1]) or a row of
    ``<output_dir>/samples.csv`` (points). ``output_dir`` defaults to ``<default_root_dir>/predictions``."""

    def __init__(self, output_dir: str | None = None) -> None:
        """
        Args:
            output_dir: folder for the samples; None = ``<trainer.default_root_dir>/predictions``.
        """
        super().__init__(write_interval="batch")
        self.output_dir = output_dir

    def folder(self, trainer: L.Trainer) -> Path:
        folder = Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def write_on_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: dict[str, Tensor],
        batch_indices: Sequence[int] | None, batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:
        folder = self.folder(trainer)
        samples, indices = prediction["samples"].float().cpu(), prediction["index"].tolist()
        if samples.dim() == 2:
            with open(folder / "samples.csv", "a") as f:
                f.writelines(f"{i}," + ",".join(f"{v:.6f}" for v in row.tolist()) + "\n" for i, row in zip(indices, samples))
            return
        for i, image in zip(indices, samples):
            save_image(image.clamp(-1, 1).add(1).div(2), folder / f"{i:06d}.png")
