"""Writes what ``lightning predict`` generates: one PNG per image, or a CSV of 2-D points."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torchvision.utils import save_image

POINTS_FILE = "samples.csv"
_IMAGE_NAME = re.compile(r"\d{6}\.png")  # the names write_on_batch_end gives images


class SampleWriter(BasePredictionWriter):
    """Saves each predicted sample as ``<output_dir>/<index>.png`` (images in [-1, 1]) or a row of
    ``<output_dir>/samples.csv`` (points). ``output_dir`` defaults to ``<default_root_dir>/predictions``.

    Each predict replaces the previous one's samples in that folder (the files this writer names: ``NNNNNN.png`` and
    ``samples.csv``; nothing else there is touched), so the folder holds exactly this run's samples, and says at the end
    where it wrote how many."""

    def __init__(self, output_dir: str | None = None) -> None:
        """
        Args:
            output_dir: folder for the samples; None = ``<trainer.default_root_dir>/predictions``.
        """
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self._replaced = 0  # files of the previous predict removed at this one's start

    def folder(self, trainer: L.Trainer) -> Path:
        folder = Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def written_files(folder: Path) -> list[Path]:
        """The files of ``folder`` that a SampleWriter writes (its images and its CSV of points)."""
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and (p.name == POINTS_FILE or _IMAGE_NAME.fullmatch(p.name)))

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Removes the previous predict's samples from the folder (rank 0, before any rank writes)."""
        folder = Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir) / "predictions"
        self._replaced = 0
        if trainer.is_global_zero:
            stale = self.written_files(folder)
            for path in stale:
                path.unlink()
            self._replaced = len(stale)
        trainer.strategy.barrier("SampleWriter.on_predict_start")

    def write_on_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: dict[str, Tensor],
        batch_indices: Sequence[int] | None, batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:
        folder = self.folder(trainer)
        samples, indices = prediction["samples"].float().cpu(), prediction["index"].tolist()
        if samples.dim() == 2:
            with open(folder / POINTS_FILE, "a") as f:
                f.writelines(f"{i}," + ",".join(f"{v:.6f}" for v in row.tolist()) + "\n" for i, row in zip(indices, samples))
            return
        for i, image in zip(indices, samples):
            save_image(image.clamp(-1, 1).add(1).div(2), folder / f"{i:06d}.png")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Says where the samples are and how many (counted on disk once every rank has written)."""
        trainer.strategy.barrier("SampleWriter.on_predict_end")
        if not trainer.is_global_zero:
            return
        folder = self.folder(trainer)
        files = self.written_files(folder)
        points = folder / POINTS_FILE
        if points in files:
            count, what = len(points.read_text().splitlines()), f"points to {points}"
        else:
            count, what = len(files), f"images to {folder}"
        replaced = f" (replacing the previous predict's {self._replaced} files there)" if self._replaced else ""
        rank_zero_info(f"Predict: wrote {count} {what}{replaced}.")
