"""2-D mixtures of Gaussians for watching GAN dynamics and mode collapse.

- ``ring``: 8 Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2017, "Unrolled GANs",
  arXiv:1611.02163, section 3.1).
- ``grid``: 25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05 (Srivastava et al. 2017, "VEEGAN",
  arXiv:1705.07761, section 5.1).

:func:`mode_coverage` gives the papers' numbers: modes covered and the fraction of
high-quality samples (within 3 std of a mode).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from datamodules.base import GANDataModule
from datamodules.sampling import shuffle_arguments
from gans.errors import ConfigError

Mixture = Literal["ring", "grid"]
MIXTURES: dict[str, tuple[int, float]] = {"ring": (8, 0.02), "grid": (25, 0.05)}  # modes, std


def mixture_centers(mixture: Mixture) -> Tensor:
    """The mode centres, [K, 2]."""
    if mixture == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)).float()
    if mixture == "grid":
        axis = torch.arange(-4.0, 5.0, 2.0)
        return torch.cartesian_prod(axis, axis)
    raise ConfigError(f"Unknown mixture {mixture!r}: choose one of {', '.join(MIXTURES)}.")


def sample_mixture(mixture: Mixture, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` points [n, 2] and the index of the mode each came from [n]."""
    centers = mixture_centers(mixture)
    std = MIXTURES[mixture][1]
    modes = torch.randint(len(centers), (n,), generator=generator)
    return centers[modes] + std * torch.randn(n, 2, generator=generator), modes


def mode_coverage(samples: Tensor, mixture: Mixture, min_fraction: float = 0.0) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples).

    A sample is high quality if it lies within 3 std of its nearest mode; a mode is covered if
    it holds at least one high-quality sample and at least ``min_fraction`` of all samples
    (VEEGAN counts modes with >= 1/K of the expected share; pass e.g. 0.2 / K for that spirit).
    """
    centers = mixture_centers(mixture).to(samples)
    std = MIXTURES[mixture][1]
    dist, nearest = torch.cdist(samples.float(), centers).min(dim=1)
    good = dist < 3 * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    covered = int((counts > max(0, min_fraction * len(samples))).sum())
    return covered, float(good.float().mean())


class ToyDataModule(GANDataModule):
    """A fixed draw of points from a 2-D Gaussian mixture; batches are (points [N, 2], mode [N])."""

    def __init__(
        self,
        mixture: Mixture = "ring",
        num_samples: int = 100_000,
        batch_size: int = 256,
        seed: int = 0,
        num_workers: int = 0,
        **kwargs,
    ) -> None:
        """
        Args:
            mixture: ring (8 modes) or grid (25 modes).
            num_samples: points in the training set (one epoch).
            batch_size: points per batch on each device.
            seed: seed of the draw, so every run sees the same data.
            num_workers: DataLoader worker processes; 0 is fastest for in-memory points.
            **kwargs: ``num_predict`` and ``predict_batch_size`` of :class:`datamodules.base.GANDataModule`.
        """
        super().__init__(**kwargs)
        if mixture not in MIXTURES:
            raise ConfigError(f"Unknown mixture {mixture!r}: choose one of {', '.join(MIXTURES)}.")
        self.save_hyperparameters()
        self.data_shape = (2,)
        self.num_classes = MIXTURES[mixture][0]
        self.dataset: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            hp = self.hparams
            points, modes = sample_mixture(hp.mixture, hp.num_samples, torch.Generator().manual_seed(hp.seed))
            self.dataset = TensorDataset(points, modes)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.hparams.batch_size, drop_last=True, num_workers=self.hparams.num_workers,
                          **shuffle_arguments(self, len(self.dataset)))
