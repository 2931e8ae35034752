"""Pictures of samples: grids of real next to generated images, class-labelled rows, scatter plots of 2-D
samples, and where a run puts them (the run folder, the loggers' step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid

from datamodules.toy import mixture_centers
from gans.labels import LabelSpace
from gans.training import lightning_compat


def run_dir(trainer: L.Trainer) -> Path:
    """The folder this run writes to: the first logger's version folder (TensorBoard, CSV) or save folder (other
    loggers), else ``default_root_dir``; the folder ``trainer.log_dir`` names, resolved on this process alone.

    ``trainer.log_dir`` broadcasts rank 0's answer: a collective, which every rank must enter at the same point.
    Pictures are drawn on rank 0 only, and there its broadcast would pair with the other ranks' next collective
    (the run dies or hangs). Here no rank waits for another; on rank 0 the folder is the one ``trainer.log_dir``
    gives (the logger's version is fixed once per process), and the other ranks never write to it.
    """
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    folder = logger.log_dir if isinstance(logger, (TensorBoardLogger, CSVLogger)) else logger.save_dir
    return Path(folder or trainer.default_root_dir)


def logger_step(trainer: L.Trainer) -> int:
    """The step at which Lightning's loggers put the current batch's scalars: batches trained so far.

    Not ``trainer.global_step``, which counts the D and G optimizer steps (about twice as many);
    pictures and metrics logged from callbacks use this so they line up with the losses.
    """
    return lightning_compat.logged_batches(trainer)


def save_picture(trainer: L.Trainer, picture: np.ndarray, step: int, key: str = "samples") -> Path:
    """Write ``picture`` (``[H, W, 3]`` uint8) as ``<run folder>/samples/step_XXXXXXX.png`` and ``latest.png``, and
    log it as ``key`` to W&B (``log_image``) or TensorBoard (``add_image``); CSV logs only the file."""
    from PIL import Image

    out_dir = run_dir(trainer) / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"step_{step:07d}.png"
    Image.fromarray(picture).save(path)
    Image.fromarray(picture).save(out_dir / "latest.png")
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):  # W&B, Neptune
            logger.log_image(key=key, images=[picture], step=logger_step(trainer))
        elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
            logger.experiment.add_image(key, picture, global_step=logger_step(trainer), dataformats="HWC")
    return path


def batch_images(batch: Any) -> Tensor:
    """The samples of a training batch: ``(images, labels)`` or a bare tensor (images or 2-D points)."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def real_vs_fake_grid(real: Tensor, fake: Tensor, nrow: int) -> Tensor:
    """[3, H, W] uint8 picture: real grid | gap | fake grid, from images in [-1, 1]."""
    to_grid = lambda x: make_grid(x.float().clamp(-1, 1).add(1).div(2), nrow=nrow, padding=2, pad_value=1.0)
    left, right = to_grid(real), to_grid(fake)
    height = max(left.shape[1], right.shape[1])
    left, right = (F.pad(g, (0, 0, 0, height - g.shape[1]), value=1.0) for g in (left, right))
    gap = torch.ones(left.shape[0], height, 8)
    picture = torch.cat([left, gap, right], dim=2)
    if picture.shape[0] == 1:
        picture = picture.expand(3, -1, -1)
    return picture.mul(255).round().to(torch.uint8)


def class_grid_labels(label_space: LabelSpace, columns: int) -> Tensor:
    """The labels of a conditional grid's cells, row by row: row r holds class r of the first head; column c the
    c-th combination of the other heads' classes (:meth:`LabelSpace.for_indices` over them), so down a column only
    the first head's class changes."""
    rows = label_space.heads[0]
    first = torch.arange(rows).repeat_interleave(columns)
    if not label_space.multi_head:
        return first
    rest = LabelSpace(label_space.heads[1:]).for_indices(torch.arange(columns)).reshape(columns, -1)
    return torch.cat([first[:, None], rest.repeat(rows, 1)], dim=1)


def write_labels(picture: np.ndarray, row_names: list[str], cell: int, column_names: list[str] | None = None, first_column_x: int = 0) -> np.ndarray:
    """``picture`` (``[H, W, 3]`` uint8, grids of ``cell``-pixel images with 2-pixel padding, as
    :func:`real_vs_fake_grid` makes) with ``row_names`` written in a white margin left of the rows and, when
    given, ``column_names`` above the columns starting at ``first_column_x`` (on two staggered lines, so long
    names of neighbouring columns do not overlap); PIL's default font, nothing downloaded."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text: str) -> tuple[int, int]:
        left, top, right, bottom = measure.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    line = max(size(name)[1] for name in [*row_names, *(column_names or [])]) + 4
    margin = max(size(name)[0] for name in row_names) + 8
    header = 2 * line + 2 if column_names else 0
    height, width = picture.shape[:2]
    step = cell + 2
    columns = [(max(0, margin + first_column_x + 2 + c * step + (cell - size(name)[0]) // 2), name) for c, name in enumerate(column_names or [])]
    right = max([margin + width, *(x + size(name)[0] + 2 for x, name in columns)])  # room for a long last column name
    canvas = Image.new("RGB", (right, header + height), "white")
    canvas.paste(Image.fromarray(picture), (margin, header))
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(row_names):
        w, h = size(name)
        draw.text((margin - 4 - w, header + 2 + r * step + (cell - h) // 2), name, fill="black", font=font)
    for c, (x, name) in enumerate(columns):
        draw.text((x, 2 + (c % 2) * line), name, fill="black", font=font)
    return np.asarray(canvas).copy()


def scatter_picture(real: Tensor, fake: Tensor, mixture: str | None, title: str) -> np.ndarray:
    """[H, W, 3] uint8 scatter plot of fake points (red) over real ones (blue) and the mode centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(real[:, 0], real[:, 1], s=30, c="tab:blue", alpha=0.3, linewidths=0, label="data")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="tab:red", alpha=0.7, label="samples")
    if mixture is not None:
        c = mixture_centers(mixture)
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=60, c="k", label="modes")
    lim = float(real.abs().max()) * 1.4
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return picture


def columns_picture(columns: list[tuple[str, Tensor]]) -> np.ndarray:
    """``[H, W, 3]`` uint8: row i holds example i of every column, the column titles written above."""
    images = torch.stack([column[i].float().cpu() for i in range(len(columns[0][1])) for _, column in columns])
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    grid = make_grid(images.clamp(-1, 1).add(1).div(2), nrow=len(columns), padding=2, pad_value=1.0)
    picture = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    return write_labels(picture, [""] * len(columns[0][1]), images.shape[-1], [title for title, _ in columns])
