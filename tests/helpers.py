"""Small helpers shared by the tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zipfile

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import nn


def quiet_trainer(root: Path, max_steps: int, **overrides: Any) -> L.Trainer:
    """A CPU Trainer with no logger, checkpoints, progress bar or summary unless ``overrides`` asks."""
    settings: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        default_root_dir=root,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,  # tests read the last batch's metrics; models log only on logging steps
    )
    settings.update(overrides)
    return L.Trainer(**settings)


class TinyFeatures(nn.Module):
    """A fixed random conv net: uint8 images to 8 features (the mean and spread of 4 filter responses);
    counts the images it sees. A stand-in for Inception in tests of callbacks.FID."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=torch.Generator().manual_seed(123)))
            self.conv.bias.zero_()
        self.conv.requires_grad_(False)
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8
        self.images_seen += images.shape[0]
        h = self.conv(images.float() / 127.5 - 1)
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], dim=1)


def random_images(n: int, size: tuple[int, int] = (16, 16), seed: int = 0) -> np.ndarray:
    """``n`` random RGB images [n, height, width, 3]."""
    width, height = size
    return np.random.default_rng(seed).integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)


def write_folder(root: Path, n: int = 8, size: tuple[int, int] = (16, 16), seed: int = 0, sub: str = "") -> Path:
    """``n`` random PNGs named ``0.png`` ... under ``root/sub``."""
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    for i, pixels in enumerate(random_images(n, size, seed)):
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def zip_folder(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, file.relative_to(folder).as_posix())
    return path
