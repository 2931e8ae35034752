"""MNIST (LeCun et al. 1998) through torchvision, for the MLP, conditional and DCGAN-family models.

Images are scaled to [-1, 1]; 28 px is native, 32 px pads 2 pixels of background on every
side (the usual DCGAN input), other sizes resize. Labels come with every batch.

The digits are brought to ``img_resolution`` once, at setup, into a uint8 tensor in memory
(47 MB for the 60,000 training digits at 28 px); batches are cut from it and scaled to [-1, 1]
(:class:`datamodules.images.ImageDataset`), with the same values :meth:`MNISTDataModule.transform`
gives one PIL image at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST
from torchvision.datasets.mnist import read_image_file
from torchvision.datasets.utils import extract_archive

from datamodules.base import DownloadedDataModule, download_failure
from datamodules.images import (
    ImageDataset,
    TensorPixels,
    batch_loader,
    check_batch_fits,
)
from datamodules.sampling import shuffle_arguments
from gans.errors import ConfigError, DataNotFoundError

Split = Literal["train", "test"]
RAW_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class MNISTSplit(MNIST):
    """torchvision's MNIST that needs only the two files of the split it reads.

    torchvision insists on all four files even for ``train=False``; a folder holding only the
    test split (like ``../shared/data/mnist``) is enough here. Gzipped files placed by hand
    are extracted first, so no download is attempted when they are present.
    """

    def __init__(self, root: str | Path, split: Split, download: bool, transform=None) -> None:
        raw = Path(root) / "MNIST" / "raw"
        for name in RAW_FILES[split]:
            if (raw / name).exists() and not (raw / name.removesuffix(".gz")).exists():
                extract_archive(str(raw / name), str(raw))
        images, labels = (raw / name.removesuffix(".gz") for name in RAW_FILES[split])
        # Images without their labels file: unlabelled digits (unconditional models need no labels file).
        self.labelled = labels.exists() or not images.exists()
        needed = RAW_FILES[split] if self.labelled else RAW_FILES[split][:1]
        self.resources = [r for r in MNIST.resources if r[0] in needed]
        super().__init__(str(root), train=split == "train", download=download, transform=transform)

    def _load_data(self) -> tuple[Tensor, Tensor | None]:
        if self.labelled:
            return super()._load_data()
        return read_image_file(os.path.join(self.raw_folder, RAW_FILES["train" if self.train else "test"][0].removesuffix(".gz"))), None

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, "MNIST", "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, "MNIST", "processed")


def missing_mnist_message(root: str | Path, split: Split, cause: str = "") -> str:
    raw = Path(root).resolve() / "MNIST" / "raw"
    files = ", ".join(RAW_FILES["train"] + RAW_FILES["test"])
    other = "test" if split == "train" else "train"
    return (
        f"MNIST {split} split not found in {raw} and could not be downloaded{f' ({cause})' if cause else ''}. "
        f"Put the four files {files} in {raw} (gzipped is fine), or set data.init_args.split: {other} "
        f"if your folder holds only the {other} files."
    )


def resize_digits(digits: Tensor, img_resolution: int) -> Tensor:
    """uint8 ``[N, 28, 28]`` -> uint8 ``[N, 1, R, R]``: as is at 28, padded with background (0) at 32,
    else resized as :meth:`MNISTDataModule.transform` does (PIL bilinear with antialiasing)."""
    if img_resolution == 28:
        return digits[:, None].clone()
    if img_resolution == 32:
        return F.pad(digits, (2, 2, 2, 2))[:, None]
    resize = transforms.Resize(img_resolution, antialias=True)
    resized = [torch.from_numpy(np.array(resize(Image.fromarray(d.numpy())))) for d in digits]
    return torch.stack(resized)[:, None]


class MNISTDataModule(DownloadedDataModule):
    """MNIST digits in [-1, 1] with labels 0-9."""

    num_classes = 10

    def __init__(
        self,
        root: str = "data",
        split: Split = "train",
        img_resolution: int = 28,
        batch_size: int = 64,
        num_workers: int = 2,
        pin_memory: bool = False,
        download: bool = True,
        **kwargs,
    ) -> None:
        """
        Args:
            root: folder holding ``MNIST/raw/`` (created on download).
            split: which split to train on; ``test`` reads only the t10k files (10,000 digits).
            img_resolution: 28 (native), 32 (padded by 2 px) or any other size (resized).
            batch_size: images per batch on each device.
            num_workers: DataLoader worker processes; 0 loads in the main process.
            pin_memory: pin batches for faster host-to-GPU copies.
            download: download the split if its files are missing.
            **kwargs: ``num_predict`` and ``predict_batch_size`` of :class:`datamodules.base.GANDataModule`.
        """
        super().__init__(**kwargs)
        if split not in RAW_FILES:
            raise ConfigError(f"Unknown MNIST split {split!r}: choose 'train' or 'test'.")
        if img_resolution < 8:
            raise ConfigError(f"img_resolution must be >= 8, got {img_resolution}.")
        self.save_hyperparameters()
        self.data_shape = (1, img_resolution, img_resolution)
        self.dataset: ImageDataset | None = None

    def transform(self) -> transforms.Compose:
        """The per-image PIL transform that the cached tensor reproduces (kept as the reference)."""
        res = self.hparams.img_resolution
        if res == 28:
            resize = []
        elif res == 32:
            resize = [transforms.Pad(2)]
        else:
            resize = [transforms.Resize(res, antialias=True)]
        return transforms.Compose([*resize, transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    def _load(self, download: bool) -> MNISTSplit:
        hp = self.hparams
        try:
            return MNISTSplit(hp.root, hp.split, download=download)
        except RuntimeError as err:  # torchvision: "Dataset not found" or "Error downloading ..."
            cause = download_failure(err, download)
            raise DataNotFoundError(missing_mnist_message(hp.root, hp.split, cause)) from None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            split = self._load(download=False)
            pixels = TensorPixels(resize_digits(split.data, self.hparams.img_resolution))
            if split.targets is None:
                self.num_classes = 0  # conditional models refuse unlabelled data (GANModule.setup)
                rank_zero_info(
                    f"MNIST: {RAW_FILES[self.hparams.split][1]} not found in {Path(split.raw_folder).resolve()}: the digits "
                    f"come without labels (fine for unconditional models; conditional ones need that file)."
                )
            self.dataset = ImageDataset(pixels, None if split.targets is None else split.targets.long())

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        check_batch_fits(len(self.dataset), hp.batch_size, f"The MNIST {hp.split} split in {Path(hp.root).resolve()}")
        return batch_loader(self.dataset, hp.batch_size, hp.num_workers, hp.pin_memory, shuffle_arguments(self, len(self.dataset)))
