"""Unpaired images of two domains, for CycleGAN (Zhu et al. 2017, arXiv:1703.10593) and the like.

Two forms:

- ``root``: the CycleGAN dataset layout (horse2zebra, apple2orange, summer2winter_yosemite, monet2photo, ...,
  fetched with ``datasets/download_cyclegan_dataset.sh <name>`` of junyanz/pytorch-CycleGAN-and-pix2pix):
  folders ``trainA/`` and ``trainB/`` of images, ``testA/`` and ``testB/`` held out. Each image gets the
  random jitter of :mod:`datamodules.jitter` on its own (resize to ``load_size``, random ``crop_size`` crop,
  random flip), as the official ``UnalignedDataset``.
- ``domain_a`` and ``domain_b``: any two datamodules (:class:`datamodules.base.GANDataModule`) as the two
  domains, e.g. :class:`datamodules.ImageFolderDataModule` on face photos and
  :class:`datamodules.AnimeFacesDataModule` for face <-> anime. Their images are their ``real_dataset()``
  (the images at their ``data_shape``, unaugmented); their labels are dropped, and their own batch size,
  workers and augmentation settings are not used: this module's ``flip`` (and ``load_size``/``crop_size``
  when given) jitter them.

Training batches are ``(a, b)``, each ``[N, C, S, S]`` in [-1, 1]. An epoch has ``max(len A, len B)``
pairs: domain A in a random order, each A image with a B image drawn at random, independently
(:class:`datamodules.sampling.UnpairedShuffle`, as the official ``UnalignedDataset``).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from datamodules.base import GANDataModule
from datamodules.images import ImageDataset, ImageSource, batch_loader, check_headers
from datamodules.jitter import (
    Transform,
    as_float,
    check_jitter,
    fixed_resize,
    random_jitter,
    read_uint8,
)
from datamodules.paired import split_source
from datamodules.sampling import unpaired_shuffle_arguments
from gans.errors import ConfigError, DataNotFoundError

CYCLEGAN_DATASETS = "horse2zebra, apple2orange, summer2winter_yosemite, monet2photo, vangogh2photo, maps, facades"
LAYOUT = (
    "expected <root>/trainA/ and <root>/trainB/ of images of the two domains (testA/ and testB/ optional, held out), "
    f"the layout of the official CycleGAN datasets ({CYCLEGAN_DATASETS}: datasets/download_cyclegan_dataset.sh "
    "<name> in junyanz/pytorch-CycleGAN-and-pix2pix)"
)


class ImageFiles(Dataset):
    """The image files of a folder, each read and passed through ``transform`` on its own: item ``i`` is
    ``(image [C, S, S] in [-1, 1], 0)``."""

    def __init__(self, source: ImageSource, names: list[str], channels: int, transform: Transform) -> None:
        self.source, self.names, self.channels, self.transform = source, names, channels, transform

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return as_float(self.transform(read_uint8(self.source, self.names[int(index)], self.channels))), torch.tensor(0)


class Transformed(Dataset):
    """A dataset of ``(image, label)`` with ``transform`` applied to every image."""

    def __init__(self, dataset: Dataset, transform: Transform) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, label = self.dataset[index]
        return as_float(self.transform(image)), label


def fetch_images(dataset: Dataset, indices: Sequence[int], transform: Transform | None = None) -> Tensor:
    """Images ``indices`` of a map-style dataset of ``(image, label)`` (labels dropped; an :class:`ImageDataset`
    fetches them as one batch), each passed through ``transform`` when given; stacked ``[N, C, S, S]``."""
    if isinstance(dataset, ImageDataset):
        images = list(dataset.batch(list(indices))[0])
    else:
        images = [dataset[i][0] for i in indices]
    if transform is not None:
        images = [as_float(transform(image)) for image in images]
    return torch.stack(images)


class UnpairedBatches(Dataset):
    """Batches ``(a, b)`` of two domains, fetched by :class:`datamodules.sampling.UnpairedShuffle`'s ``(index_a,
    index_b)`` pairs; ``transform`` (the jitter) is applied to every image on its own."""

    def __init__(self, domain_a: Dataset, domain_b: Dataset, transform: Transform | None = None) -> None:
        self.domain_a, self.domain_b, self.transform = domain_a, domain_b, transform

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def __getitems__(self, pairs: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        index_a, index_b = zip(*pairs)
        return fetch_images(self.domain_a, index_a, self.transform), fetch_images(self.domain_b, index_b, self.transform)

    def __getitem__(self, pair: tuple[int, int]) -> tuple[Tensor, Tensor]:
        a, b = self.__getitems__([pair])
        return a[0], b[0]


def unpaired_loader(datamodule: GANDataModule, batches: UnpairedBatches, batch_size: int, num_workers: int, pin_memory: bool) -> DataLoader:
    """The training loader of two domains: :class:`datamodules.sampling.UnpairedShuffle` pairs, whole batches fetched."""
    sizes = {"A": len(batches.domain_a), "B": len(batches.domain_b)}
    for name, size in sizes.items():
        if size < 1:
            raise DataNotFoundError(f"{type(datamodule).__name__}: domain {name} holds no images.")
    if max(sizes.values()) < batch_size:
        raise ConfigError(
            f"{type(datamodule).__name__}: the domains hold {sizes['A']} and {sizes['B']} images, fewer than "
            f"batch_size={batch_size}: lower data.init_args.batch_size or add images."
        )
    shuffle = unpaired_shuffle_arguments(datamodule, sizes["A"], sizes["B"])
    return batch_loader(batches, batch_size, num_workers, pin_memory, shuffle)


def first_images(dataset: Dataset, n: int | None, transform: Transform | None = None) -> Tensor:
    """The first ``n`` images of a dataset of ``(image, label)`` (all when None, fewer when it holds fewer)."""
    count = len(dataset) if n is None else min(n, len(dataset))
    if count < 1:
        raise ConfigError(f"held_out_pairs: n must be >= 1, got {n}.")
    return fetch_images(dataset, range(count), transform)


def restore_own_hparams(domain: GANDataModule, key: str) -> None:
    """Give a domain built from a config its own ``hparams`` back.

    LightningCLI saves the hyperparameters of every ``LightningDataModule`` it instantiates while building ``data``
    as the ``data`` config (its instantiator matches the class, not the config key), so a nested domain's
    ``hparams`` are this module's: its own arguments are under ``hparams[key]["init_args"]``.
    """
    nested = domain.hparams.get(key)
    if "_instantiator" in domain.hparams and isinstance(nested, dict) and isinstance(nested.get("init_args"), dict):
        own = dict(nested["init_args"])
        domain.hparams.clear()
        domain.hparams.update(own)


class UnpairedImageDataModule(GANDataModule):
    """Two unpaired image domains (see the module docstring): batches ``(a, b)``, independent images of
    domain A and domain B, each ``[N, C, S, S]`` in [-1, 1]."""

    num_classes = 0
    LOADING_ARGS = GANDataModule.LOADING_ARGS | {"flip", "load_size"}

    def __init__(
        self,
        root: str | None = None,
        domain_a: GANDataModule | None = None,
        domain_b: GANDataModule | None = None,
        load_size: int | None = None,
        crop_size: int | None = None,
        flip: bool = True,
        channels: int = 3,
        batch_size: int = 1,
        num_workers: int = 2,
        pin_memory: bool = False,
        **kwargs,
    ) -> None:
        """
        Args:
            root: a CycleGAN dataset folder (``trainA/``, ``trainB/``, optionally ``testA/``, ``testB/``); or None
                with ``domain_a`` and ``domain_b``.
            domain_a: a datamodule whose images are domain A (in a config: ``class_path`` and ``init_args``).
            domain_b: the same for domain B; its images must have the shape of domain A's.
            load_size: images are resized to ``load_size`` squared before the random crop. Default: 286 with
                ``root`` (the paper at 256 px); with domains, None = no resize and crop (flip only).
            crop_size: side of the random crop, the training image size. Default: 256 with ``root``; with
                domains, None = the domains' size.
            flip: flip each training image left-right with probability 1/2 (A and B independently).
            channels: 3 (RGB) or 1 (grayscale), for ``root``'s images (domains bring their own).
            batch_size: pairs per batch on each device (the paper: 1).
            num_workers: DataLoader worker processes; 0 loads in the main process.
            pin_memory: pin batches for faster host-to-GPU copies.
            **kwargs: ``num_predict`` and ``predict_batch_size`` of :class:`datamodules.base.GANDataModule`.
        """
        super().__init__(**kwargs)
        domains = (domain_a, domain_b)
        if root is not None and any(d is not None for d in domains):
            raise ConfigError("Give either data.init_args.root (a trainA/trainB folder) or domain_a and domain_b (two datamodules), not both.")
        if root is None and any(d is None for d in domains):
            raise ConfigError(
                "No data: set data.init_args.root to a CycleGAN dataset folder (trainA/, trainB/), or both "
                "data.init_args.domain_a and domain_b to datamodules (class_path and init_args)."
            )
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 3 (RGB) or 1 (grayscale), got {channels}.")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        if root is not None:
            load_size = 286 if load_size is None else load_size
            crop_size = 256 if crop_size is None else crop_size
        if (load_size is None) != (crop_size is None):
            raise ConfigError(f"Set both load_size and crop_size, or neither (got {load_size} and {crop_size}).")
        if load_size is not None:
            check_jitter(load_size, crop_size)
        for key, domain in (("domain_a", domain_a), ("domain_b", domain_b)):
            if domain is not None:
                restore_own_hparams(domain, key)
        self.save_hyperparameters(ignore=["domain_a", "domain_b"])
        self.hparams.update(load_size=load_size, crop_size=crop_size)
        self.domain_a, self.domain_b = domain_a, domain_b
        if root is None:
            shape_a, shape_b = tuple(domain_a.data_shape), tuple(domain_b.data_shape)
            if shape_a != shape_b:
                raise ConfigError(
                    f"The domains' images differ in shape: {type(domain_a).__name__} gives {shape_a}, "
                    f"{type(domain_b).__name__} {shape_b}. Give both the same resolution and channels "
                    f"(e.g. img_resolution and img_channels in their init_args)."
                )
            self.data_shape = shape_a if crop_size is None else (shape_a[0], crop_size, crop_size)
        else:
            self.data_shape = (channels, crop_size, crop_size)
        self.dataset: UnpairedBatches | None = None
        self._held_out: tuple[Dataset, Dataset, Transform | None] | None = None

    # Loading.

    @property
    def root(self) -> Path:
        return Path(self.hparams.root).expanduser().resolve()

    def folder_images(self, split: str, transform: Transform) -> ImageFiles:
        source = split_source(self.root, split, LAYOUT)
        return ImageFiles(source, check_headers(source, [name for name, _, _ in source.entries], 1), self.hparams.channels, transform)

    def train_transform(self) -> Transform | None:
        """The jitter of training images: resize, crop and flip (``root``, or domains with ``crop_size``), flip only, or none."""
        hp = self.hparams
        if hp.crop_size is not None:
            return random_jitter(hp.load_size, hp.crop_size, hp.flip)
        return v2.RandomHorizontalFlip() if hp.flip else None

    def test_transform(self) -> Transform | None:
        return None if self.hparams.crop_size is None else fixed_resize(self.hparams.crop_size)

    def prepare_data(self) -> None:
        if self.domain_a is None:
            for split in ("trainA", "trainB"):
                split_source(self.root, split, LAYOUT)
        else:
            self.domain_a.prepare_data()
            self.domain_b.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        if self.domain_a is None:
            jitter = self.train_transform()
            self.dataset = UnpairedBatches(self.folder_images("trainA", jitter), self.folder_images("trainB", jitter))
        else:
            for domain in (self.domain_a, self.domain_b):
                domain.setup(stage)
            self.dataset = UnpairedBatches(self.domain_a.real_dataset(), self.domain_b.real_dataset(), self.train_transform())

    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise ConfigError(f"{type(self).__name__}: call setup('fit') before train_dataloader().")
        hp = self.hparams
        return unpaired_loader(self, self.dataset, hp.batch_size, hp.num_workers, hp.pin_memory)

    # Fixed examples and metrics.

    def held_out_pairs(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """``(a, b)``: the first ``n`` images (all when None, fewer when a domain holds fewer) of each domain, without
        jitter (resized to ``crop_size`` when there is one), each ``[n, C, S, S]`` in [-1, 1]; ``a`` and ``b`` are
        not pairs. With ``root``: from ``testA/`` and ``testB/`` (from ``trainA/``/``trainB/``, with a warning,
        when they are missing); with domains, which have no held-out split: their first training images."""
        if self._held_out is None:
            if self.domain_a is None:
                splits = ("testA", "testB")
                if not all((self.root / split).is_dir() for split in splits):
                    warnings.warn(f"No testA/ and testB/ folders in {self.root}: held-out images come from trainA/ and trainB/.", stacklevel=2)
                    splits = ("trainA", "trainB")
                resize = self.test_transform()
                self._held_out = (self.folder_images(splits[0], resize), self.folder_images(splits[1], resize), None)
            else:
                self.setup()
                self._held_out = (self.dataset.domain_a, self.dataset.domain_b, self.test_transform())
        domain_a, domain_b, transform = self._held_out
        return first_images(domain_a, n, transform), first_images(domain_b, n, transform)

    def real_dataset(self) -> Dataset:
        """Domain B's training images as ``(image, label)``, unjittered (after ``setup``): what A -> B translations
        are compared against."""
        if self.dataset is None:
            raise ConfigError(f"{type(self).__name__} has no dataset yet: call setup('fit') first.")
        if self.domain_a is None:
            return self.folder_images("trainB", self.test_transform())
        images = self.domain_b.real_dataset()
        return images if self.test_transform() is None else Transformed(images, self.test_transform())

    def cache_key(self) -> str:
        """With domains: the class, shape and a hash of both domains' cache keys and this module's settings."""
        if self.domain_a is None:
            return super().cache_key()
        args = {k: v for k, v in self.hparams.items() if k not in self.LOADING_ARGS and k != "root"}
        identity = json.dumps([self.domain_a.cache_key(), self.domain_b.cache_key(), args], sort_keys=True, default=str)
        return f"{type(self).__name__}-{'x'.join(map(str, self.data_shape))}-{hashlib.sha1(identity.encode()).hexdigest()[:10]}"
