"""Sample pictures from fixed latents, saved under the run folder and sent to the active loggers.

Images: a PNG with a grid of real images on the left and generated ones on the right.
Conditional models: one row per class of the first label head (one row per digit, CIFAR-10 class, hair
colour), the class names written beside the rows; columns vary the latent (one latent per column) and the
other heads' classes (the eye colour), named above the columns of samples.
2-D toy data: a scatter plot of generated points over the data and its mode centres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from datamodules.toy import ToyDataModule, mode_coverage
from gans.labels import LabelSpace, class_names_per_head
from gans.nn.basic import eval_mode
from gans.tools.pictures import (
    batch_images,
    class_grid_labels,
    logger_step,
    real_vs_fake_grid,
    run_dir,
    save_picture,
    scatter_picture,
    write_labels,
)
from gans.training import contracts


class SampleGrid(L.Callback):
    """Every ``every_n_steps`` training steps (and at the end), draw samples from fixed latents.

    Writes ``<run folder>/samples/step_XXXXXXX.png`` and ``samples/latest.png`` (and, for conditional models,
    ``samples/labels.txt``: each cell's label, in words when the datamodule has ``class_names``), and logs the
    picture as ``samples`` to W&B (``log_image``) or TensorBoard (``add_image``); CSV logs only the file.

    Conditional models get one row per class of the first label head, ``nrow`` columns (``num_samples`` is
    then unused): the samples of row r are conditioned on class r, column c keeps one latent and one
    combination of the other heads' classes (the anime faces: set ``nrow`` to the number of eye colours to see
    every hair and eye pair). The class names (from the datamodule's ``class_names``, else class numbers) are
    written left of the rows and, with several heads, above the sample columns. The real half shows images
    of the row's class from the training batches, as far as they hold some (blank cells otherwise).
    """

    def __init__(self, every_n_steps: int = 500, num_samples: int = 64, nrow: int = 8, seed: int = 0) -> None:
        """
        Args:
            every_n_steps: training steps (batches) between pictures; 0 = only at the end.
            num_samples: images in the grid, or points in the scatter plot.
            nrow: images per grid row (conditional models: columns per class row).
            seed: seed of the fixed latents, so pictures across steps and runs compare.
        """
        super().__init__()
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.nrow = nrow
        self.seed = seed
        self._z: Tensor | None = None
        self._labels: Tensor | None = None
        self._real: Tensor | None = None
        self._label_space: LabelSpace | None = None  # set for a conditional model on images: one row per class
        self._real_full: Tensor | None = None  # which real cells of the class rows hold an image yet

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        g = torch.Generator().manual_seed(self.seed)
        contracts.require(pl_module, contracts.Sampler, "callbacks.SampleGrid", "use callbacks.TranslationGrid for image-to-image models")
        label_space = pl_module.label_space
        conditional = label_space.conditional
        if conditional:
            shape = contracts.data_shape(trainer.datamodule, pl_module)
            conditional_images = shape is None or len(shape) == 3
        self._label_space = label_space if conditional and conditional_images else None
        if self._label_space is not None:  # one row per class of the first head, one latent per column
            self._labels = class_grid_labels(self._label_space, self.nrow)
            self._z = torch.randn(self.nrow, pl_module.z_dim, generator=g).repeat(self._label_space.heads[0], 1)
        else:
            self._z = torch.randn(self.num_samples, pl_module.z_dim, generator=g)
            if conditional:  # 2-D points: every class in turn
                self._labels = label_space.for_indices(torch.arange(self.num_samples))
        if conditional:
            self._write_label_names(trainer)
        self._real = None
        self._real_full = None

    def label_names(self, trainer: L.Trainer) -> list[str]:
        """The fixed labels of the grid's samples in words, one per sample (``red hair, blue eyes``), from the
        datamodule's ``class_names`` (one list per label head), or class numbers when it has none."""
        heads = self._labels.reshape(len(self._labels), -1)
        names = class_names_per_head(trainer.datamodule, heads.shape[1])
        if names is None:
            return [", ".join(str(int(c)) for c in row) for row in heads]
        return [", ".join(names[h][int(c)] for h, c in enumerate(row)) for row in heads]

    def _write_label_names(self, trainer: L.Trainer) -> None:
        """``samples/labels.txt``: the label of each grid cell, row by row."""
        if not trainer.is_global_zero:
            return
        out_dir = run_dir(trainer) / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{i} (row {i // self.nrow}, column {i % self.nrow}): {name}" for i, name in enumerate(self.label_names(trainer))]
        (out_dir / "labels.txt").write_text("\n".join(lines) + "\n")

    def row_names(self, trainer: L.Trainer) -> tuple[list[str], list[str] | None]:
        """A conditional grid's row labels (the first head's classes) and, with several heads, its column labels
        (the other heads' classes of each column), in words from ``class_names`` or as class numbers."""
        heads = self._labels.reshape(len(self._labels), -1)
        names = class_names_per_head(trainer.datamodule, heads.shape[1])
        word = lambda h, c: names[h][c] if names else str(c)
        rows = [word(0, r) for r in range(self._label_space.heads[0])]
        if heads.shape[1] == 1:
            return rows, None
        return rows, [", ".join(word(h, int(c)) for h, c in enumerate(cell) if h > 0) for cell in heads[: self.nrow]]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._real is None or self._real.shape[-1] != batch_images(batch).shape[-1]:  # new data size: a growth stage
            self._real = self._collect_real(trainer, batch)
        elif self._real_full is not None and not self._real_full.all():
            self._fill_class_rows(batch)
        step = pl_module.batches  # batches trained, this one included (not Lightning's count: it includes dropped batches)
        if self.every_n_steps > 0 and step % self.every_n_steps == 0:
            self.draw(trainer, pl_module, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = pl_module.batches
        already_drawn = self.every_n_steps > 0 and step % self.every_n_steps == 0
        if self._real is not None and not already_drawn:
            self.draw(trainer, pl_module, step)

    def _collect_real(self, trainer: L.Trainer, batch: Any) -> Tensor:
        real = batch_images(batch)
        if self._label_space is not None and real.dim() == 4 and isinstance(batch, (tuple, list)):
            self._real = torch.ones(len(self._labels), *real.shape[1:])  # white (1 in [-1, 1]) until an image of the row's class comes
            self._real_full = torch.zeros(len(self._labels), dtype=torch.bool)
            self._fill_class_rows(batch)
            return self._real
        if real.dim() == 2:  # points: use more of the data set for the background
            if isinstance(trainer.datamodule, contracts.RealImages):
                return trainer.datamodule.real_dataset()[: max(2000, self.num_samples)][0].cpu()
        return real[: self.num_samples].detach().cpu()

    def _fill_class_rows(self, batch: Any) -> None:
        """Put the batch's images into the empty real cells of the rows of their first-head class."""
        images, labels = batch[0], batch[1]
        first = labels.reshape(len(labels), -1)[:, 0].cpu()
        for r in first.unique().tolist():
            if not 0 <= r < self._label_space.heads[0]:
                continue
            empty = (~self._real_full[r * self.nrow : (r + 1) * self.nrow]).nonzero()[:, 0] + r * self.nrow
            found = (first == r).nonzero()[:, 0][: len(empty)]
            if len(found):
                empty = empty[: len(found)]
                self._real[empty] = images[found.to(images.device)].detach().float().cpu()
                self._real_full[empty] = True

    @staticmethod
    def log_toy_metrics(trainer: L.Trainer, covered: int, quality: float) -> None:
        """Modes covered and the high-quality fraction of the grid's samples (Metz et al. 2017's measures of the toy
        mixtures), as ``metrics/modes_covered`` and ``metrics/high_quality`` to every logger (metrics.csv, W&B) at the
        losses' step; drawn on rank 0 only, so they go to the loggers directly (rank-zero loggers: no collective), not
        into ``trainer.callback_metrics``, which must be the same on every rank."""
        values = {"metrics/modes_covered": float(covered), "metrics/high_quality": quality}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=logger_step(trainer))

    @torch.no_grad()
    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> Path | None:
        if not trainer.is_global_zero:
            return None
        labels = None if self._labels is None else self._labels.to(pl_module.device)
        with eval_mode(pl_module):
            fake = pl_module.sample(len(self._z), labels=labels, z=self._z).float().cpu()
        if fake.dim() == 2:
            mixture = trainer.datamodule.hparams.mixture if isinstance(trainer.datamodule, ToyDataModule) else None
            title = f"step {step}"
            if mixture is not None:
                covered, quality = mode_coverage(fake, mixture)
                title += f": {covered} modes covered, {quality:.0%} high-quality samples"
                self.log_toy_metrics(trainer, covered, quality)
            picture = scatter_picture(self._real, fake, mixture, title)
        else:
            real = self._real
            if real.shape[-1] < fake.shape[-1]:  # a lower growth stage: shown at the samples' (upsampled) size
                real = F.interpolate(real.float(), size=fake.shape[-2:], mode="nearest")
            picture = real_vs_fake_grid(real, fake, self.nrow).permute(1, 2, 0).numpy()
            if self._label_space is not None:
                rows, columns = self.row_names(trainer)
                left_width = self.nrow * (real.shape[-1] + 2) + 2 + 8  # the real grid and the gap
                picture = write_labels(picture, rows, fake.shape[-1], columns, first_column_x=left_width)

        return save_picture(trainer, picture, step)

