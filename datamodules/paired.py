"""Paired images for pix2pix (Isola et al. 2017, arXiv:1611.07004): each file holds A and B side by side.

The official pix2pix datasets (facades, cityscapes, maps, edges2shoes, edges2handbags, night2day; fetched
with ``datasets/download_pix2pix_dataset.sh <name>`` of junyanz/pytorch-CycleGAN-and-pix2pix) are folders
``train/``, ``val/`` and sometimes ``test/`` of images twice as wide as high: A on the left half, B on the
right (the official ``AlignedDataset``). Training batches are ``(a, b)``, ``a`` the generator's input and
``b`` its target: ``(A, B)`` for ``direction="AtoB"``, ``(B, A)`` for ``"BtoA"`` (facades ship photo |
labels, so labels -> photos is BtoA, as the official facades command; ../shared/data/edges-pairs holds
photo | edges, so edges -> photos is BtoA there too).

Training pairs get the paper's random jitter (section 6.2; :mod:`datamodules.jitter`): both halves resized
to ``load_size``, then the *same* random ``crop_size`` crop and the same random left-right flip on both.
Held-out pairs (:meth:`PairedImageDataModule.held_out_pairs`) are resized to ``crop_size`` without jitter,
as the official test script does. Files are decoded when a batch is fetched (no cache): a 512x256 JPEG
decodes in about a millisecond, far less than a pix2pix step.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal, Sequence

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from datamodules.anime import examples
from datamodules.base import GANDataModule
from datamodules.images import (
    IMAGE_EXTENSIONS,
    UNDECODABLE,
    ImageSource,
    batch_loader,
    report_skipped,
)
from datamodules.jitter import (
    Transform,
    as_float,
    check_jitter,
    fixed_resize,
    random_jitter,
    read_uint8,
)
from datamodules.sampling import shuffle_arguments
from gans.errors import ConfigError, DataNotFoundError

Direction = Literal["AtoB", "BtoA"]
PIX2PIX_DATASETS = "facades, cityscapes, maps, edges2shoes, edges2handbags, night2day"
LAYOUT = (
    "expected <root>/train/ and <root>/val/ (test/ optional) of images with A and B side by side (A|B, twice as "
    f"wide as high), the layout of the official pix2pix datasets ({PIX2PIX_DATASETS}: "
    "datasets/download_pix2pix_dataset.sh <name> in junyanz/pytorch-CycleGAN-and-pix2pix)"
)


def split_source(root: Path, split: str, layout: str) -> ImageSource:
    """The images of ``root/split``; clear errors for a missing root or split folder, or an empty one."""
    if not root.is_dir():
        raise DataNotFoundError(f"No dataset at {root}: {layout}. Set data.init_args.root.")
    folder = root / split
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise DataNotFoundError(f"No {split}/ folder in {root} (found: {', '.join(found) or 'no folders'}): {layout}.")
    source = ImageSource(folder)
    if not source.entries:
        raise DataNotFoundError(f"The folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}): {layout}.")
    return source


def side_by_side_names(source: ImageSource) -> list[str]:
    """The images of ``source`` that decode (one warning for those that do not), after checking from each file's
    header that it is twice as wide as high."""
    kept, skipped, not_pairs = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for name, _, _ in source.entries:
            try:
                with Image.open(io.BytesIO(source.read(name))) as image:
                    width, height = image.size
            except UNDECODABLE:
                skipped.append(name)
                continue
            if width != 2 * height:
                not_pairs.append(f"{name} ({width}x{height})")
            kept.append(name)
    if not_pairs:
        raise ConfigError(
            f"{len(not_pairs)} images in {source.root} are not twice as wide as high (e.g. {examples(not_pairs)}): "
            f"expected A|B side by side, A on the left half and B on the right, as the pix2pix datasets ship."
        )
    report_skipped(source, [name for name, _, _ in source.entries], kept, skipped)
    return kept


class PairFiles(Dataset):
    """The A|B files of one split: item ``i`` is ``(a, b)``, float ``[C, S, S]`` in [-1, 1], the two halves
    (swapped when ``swap``) passed through ``transform`` together (one crop, one flip for both)."""

    def __init__(self, source: ImageSource, names: list[str], channels: int, transform: Transform, swap: bool) -> None:
        self.source, self.names, self.channels, self.transform, self.swap = source, names, channels, transform, swap

    def __len__(self) -> int:
        return len(self.names)

    def pair(self, index: int) -> tuple[Tensor, Tensor]:
        ab = read_uint8(self.source, self.names[index], self.channels)
        half = ab.shape[-1] // 2
        a, b = ab[..., :half], ab[..., half:]
        if self.swap:
            a, b = b, a
        a, b = self.transform(tv_tensors.Image(a), tv_tensors.Image(b))
        return as_float(a), as_float(b)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.pair(int(index))

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """A whole batch ``(a [N, C, S, S], b [N, C, S, S])`` (what the training loader fetches)."""
        pairs = [self.pair(int(i)) for i in indices]
        return torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs])


class Targets(Dataset):
    """The ``b`` images of a :class:`PairFiles` as ``(image, 0)``: the map-style dataset of :meth:`GANDataModule.real_dataset`."""

    def __init__(self, pairs: PairFiles) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.pairs[index][1], torch.tensor(0)


def first_pairs(dataset: Dataset, n: int | None) -> tuple[Tensor, Tensor]:
    """The first ``n`` (all when None; fewer when the dataset holds fewer) items of a dataset of ``(a, b)``, stacked."""
    count = len(dataset) if n is None else min(n, len(dataset))
    if count < 1:
        raise ConfigError(f"held_out_pairs: n must be >= 1, got {n}.")
    return dataset.__getitems__(list(range(count)))


class PairedImageDataModule(GANDataModule):
    """pix2pix's paired datasets (see the module docstring): batches ``(a, b)``, each ``[N, C, S, S]`` in [-1, 1],
    ``S = crop_size``; ``a`` is the input and ``b`` the target after ``direction``."""

    num_classes = 0
    # The jitter and where the held-out pairs come from change the training stream, not the training targets.
    LOADING_ARGS = GANDataModule.LOADING_ARGS | {"flip", "load_size", "held_out_split"}

    def __init__(
        self,
        root: str = "data/facades",
        direction: Direction = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        channels: int = 3,
        batch_size: int = 1,
        num_workers: int = 2,
        pin_memory: bool = False,
        split: str = "train",
        held_out_split: str = "val",
        **kwargs,
    ) -> None:
        """
        Args:
            root: the dataset folder, holding ``train/``, ``val/`` (and ``test/``) of A|B images.
            direction: ``AtoB`` (input = left half) or ``BtoA`` (input = right half).
            load_size: both halves are resized to ``load_size`` squared before the random crop (the paper: 286).
            crop_size: side of the random crop, the training image size (the paper: 256).
            flip: flip each training pair left-right with probability 1/2 (both halves together).
            channels: 3 (RGB) or 1 (grayscale), for both halves.
            batch_size: pairs per batch on each device (the paper: 1).
            num_workers: DataLoader worker processes; 0 loads in the main process.
            pin_memory: pin batches for faster host-to-GPU copies.
            split: the folder of training pairs.
            held_out_split: the folder :meth:`held_out_pairs` reads; when it does not exist, the training split
                (with a warning).
            **kwargs: ``num_predict`` and ``predict_batch_size`` of :class:`datamodules.base.GANDataModule`.
        """
        super().__init__(**kwargs)
        if direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"Unknown direction {direction!r}: choose 'AtoB' (input = left half) or 'BtoA' (input = right half).")
        check_jitter(load_size, crop_size)
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 3 (RGB) or 1 (grayscale), got {channels}.")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        self.save_hyperparameters()
        self.data_shape = (channels, crop_size, crop_size)
        self.dataset: PairFiles | None = None
        self._held_out: PairFiles | None = None

    @property
    def root(self) -> Path:
        return Path(self.hparams.root).expanduser().resolve()

    def pairs(self, split: str, transform: Transform) -> PairFiles:
        """The pairs of ``root/split`` served through ``transform``."""
        hp = self.hparams
        source = split_source(self.root, split, LAYOUT)
        return PairFiles(source, side_by_side_names(source), hp.channels, transform, swap=hp.direction == "BtoA")

    def prepare_data(self) -> None:
        split_source(self.root, self.hparams.split, LAYOUT)  # fail before the trainer starts

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            hp = self.hparams
            self.dataset = self.pairs(hp.split, random_jitter(hp.load_size, hp.crop_size, hp.flip))

    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise ConfigError(f"{type(self).__name__}: call setup('fit') before train_dataloader().")
        hp = self.hparams
        if len(self.dataset) < hp.batch_size:
            raise ConfigError(
                f"{self.root / hp.split} has {len(self.dataset)} usable pairs, fewer than batch_size={hp.batch_size}: "
                f"lower data.init_args.batch_size or add pairs."
            )
        return batch_loader(self.dataset, hp.batch_size, hp.num_workers, hp.pin_memory, shuffle_arguments(self, len(self.dataset)))

    def held_out_pairs(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """``(a, b)``: the first ``n`` pairs (in file-name order; all when None, fewer when the split holds fewer)
        of ``held_out_split``, resized to ``crop_size`` without crop or flip, after ``direction``; each
        ``[n, C, S, S]`` in [-1, 1]. The same pairs at every call: for pictures (input | output | target) and
        FID against held-back targets. Needs no ``setup``."""
        if self._held_out is None:
            hp = self.hparams
            split = hp.held_out_split
            if not (self.root / split).is_dir():
                warnings.warn(f"No {split}/ folder in {self.root}: held-out pairs come from the training split {hp.split}/.", stacklevel=2)
                split = hp.split
            self._held_out = self.pairs(split, fixed_resize(hp.crop_size))
        return first_pairs(self._held_out, n)

    def real_dataset(self) -> Dataset:
        """The training targets ``b`` as ``(image, 0)``, resized to ``crop_size`` without jitter (after ``setup``)."""
        if self.dataset is None:
            raise ConfigError(f"{type(self).__name__} has no dataset yet: call setup('fit') first.")
        return Targets(PairFiles(self.dataset.source, self.dataset.names, self.hparams.channels, fixed_resize(self.hparams.crop_size), self.dataset.swap))
