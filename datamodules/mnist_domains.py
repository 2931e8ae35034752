"""CoGAN's two MNIST domains (Liu & Tuzel 2016, arXiv:1606.07536, section 5, "Digits"): digits and edge
digits, or digits and negative digits, with no corresponding pairs.

As the paper and its official code (mingyuliutw/CoGAN, ``dataset_mnistedge.py`` and
``prepare_mnist.edge.cogan.py``): the split's digits are shuffled and cut into two disjoint halves; the
first half stays as it is (domain A), the second is transformed (domain B), so no digit appears in both.

- ``edges``: the official edge digit is ``dilate(x, 3x3 ones) - x``, the outer morphological gradient (a
  3x3 max filter minus the image), computed on the 28x28 digits before any resize.
- ``negative``: ``1 - x`` for ``x`` in [0, 1] (``255 - x`` on the uint8 digits), after the resize, so that
  the 32 px padding is white as the rest of the background.

Training batches are ``(a, b)``, each ``[N, 1, R, R]`` in [-1, 1]: an epoch has as many pairs as the larger
half, A in a random order and each A digit with a B digit drawn at random
(:class:`datamodules.sampling.UnpairedShuffle`, as the official PyTorch ``MNISTEDGE`` dataset). The digit
labels are dropped.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.images import ImageDataset, TensorPixels
from datamodules.mnist import MNISTDataModule, Split, resize_digits
from datamodules.unpaired import UnpairedBatches, first_images, unpaired_loader
from gans.errors import ConfigError

Variant = Literal["edges", "negative"]


def edge_digits(digits: Tensor) -> Tensor:
    """uint8 ``[N, H, W]`` -> the outer morphological gradient ``dilate(x, 3x3) - x``, uint8 ``[N, H, W]``.

    The 3x3 dilation is a 3x3 max filter; beyond the border it sees nothing (``max_pool2d`` pads with -inf,
    as OpenCV's ``dilate`` with its default border).
    """
    x = digits.float()[:, None]
    return (F.max_pool2d(x, 3, stride=1, padding=1) - x)[:, 0].to(torch.uint8)


class MNISTDomainsDataModule(MNISTDataModule):
    """CoGAN's unpaired digit domains: A = digits, B = edge or negative digits of the other half (module docstring)."""

    num_classes = 0

    def __init__(
        self,
        variant: Variant = "edges",
        root: str = "data",
        split: Split = "train",
        img_resolution: int = 28,
        batch_size: int = 64,
        num_workers: int = 2,
        pin_memory: bool = False,
        download: bool = True,
        halves_seed: int = 0,
        **kwargs,
    ) -> None:
        """
        Args:
            variant: domain B's digits, ``edges`` or ``negative``.
            root: folder holding ``MNIST/raw/`` (created on download).
            split: the MNIST split cut into the two halves (``test`` reads only the t10k files).
            img_resolution: 28 (native, the paper's), 32 (padded by 2 px) or any other size (resized).
            batch_size: pairs per batch on each device (the paper: 128).
            num_workers: DataLoader worker processes; 0 loads in the main process.
            pin_memory: pin batches for faster host-to-GPU copies.
            download: download the split if its files are missing.
            halves_seed: seed of the shuffle that cuts the split into the two halves (fixed, so that every run
                and every process has the same halves).
            **kwargs: ``num_predict`` and ``predict_batch_size`` of :class:`datamodules.base.GANDataModule`.
        """
        if variant not in ("edges", "negative"):
            raise ConfigError(f"Unknown variant {variant!r}: choose 'edges' (edge digits) or 'negative' (negative digits).")
        super().__init__(root, split, img_resolution, batch_size, num_workers, pin_memory, download, **kwargs)
        self.domains: UnpairedBatches | None = None
        self.indices_a: Tensor | None = None  # the split's digits in domain A, and (below) in domain B
        self.indices_b: Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.domains is not None:
            return
        hp = self.hparams
        digits = self._load(download=False).data  # uint8 [N, 28, 28]
        order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(hp.halves_seed))
        self.indices_a, self.indices_b = order[: len(digits) // 2], order[len(digits) // 2 :]
        a = resize_digits(digits[self.indices_a], hp.img_resolution)
        if hp.variant == "edges":
            b = resize_digits(edge_digits(digits[self.indices_b]), hp.img_resolution)
        else:
            b = 255 - resize_digits(digits[self.indices_b], hp.img_resolution)
        self.domains = UnpairedBatches(ImageDataset(TensorPixels(a)), ImageDataset(TensorPixels(b)))

    def train_dataloader(self) -> DataLoader:
        if self.domains is None:
            raise ConfigError(f"{type(self).__name__}: call setup('fit') before train_dataloader().")
        hp = self.hparams
        return unpaired_loader(self, self.domains, hp.batch_size, hp.num_workers, hp.pin_memory)

    def held_out_pairs(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """``(a, b)``: the first ``n`` digits of each half (all when None), each ``[n, 1, R, R]`` in [-1, 1]; not
        pairs (the halves share no digit). The split has no held-out part: these are training digits."""
        self.setup()
        return first_images(self.domains.domain_a, n), first_images(self.domains.domain_b, n)

    def real_dataset(self) -> Dataset:
        """Domain B's digits as ``(image, 0)`` (after ``setup``)."""
        if self.domains is None:
            raise ConfigError(f"{type(self).__name__} has no dataset yet: call setup('fit') first.")
        return self.domains.domain_b
