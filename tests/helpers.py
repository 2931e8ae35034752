"""Small helpers shared by the tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
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
