"""CIFAR-10 (Krizhevsky 2009) through torchvision, so results compare with the published CIFAR-10 numbers
(SNGAN, BigGAN: FID / Inception score on the 50,000 training images).

Images are the 32x32 RGB originals scaled to [-1, 1]; labels are the 10 classes (``class_names``) when
``conditional``, else unlabelled (``num_classes = 0``, dummy zeros as for any unlabelled data). The training
split is read once, at setup, into a uint8 tensor in memory (150 MB) and served in batches, flipped
left-right per image with ``xflip`` (:class:`datamodules.images.ImageDataset`).

**Integrity.** torchvision stores CIFAR-10 as Python pickles (``cifar-10-batches-py/data_batch_1`` ...)
and unpickles them, and unpickling runs code; torchvision therefore checks every file's MD5 against
the genuine files' before reading any. That check is kept: the expected sums come from
:attr:`CIFAR10DataModule.checksums`, by default torchvision's own table. Tests that write tiny files in
the real format put their files' sums in that table (``monkeypatch.setattr(CIFAR10DataModule,
"checksums", ...)``); a user's config cannot change it, so only the genuine files are ever unpickled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity, extract_archive

from datamodules.base import DownloadedDataModule, download_failure
from datamodules.images import ImageDataset, TensorPixels, batch_loader
from datamodules.sampling import shuffle_arguments
from gans.errors import ConfigError, DataNotFoundError

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TRAIN_FILES = [name for name, _ in CIFAR10.train_list]
TEST_FILES = [name for name, _ in CIFAR10.test_list]
META_FILE = CIFAR10.meta["filename"]
DATA_FILES = [*TRAIN_FILES, *TEST_FILES, META_FILE]
# file name -> MD5 of the genuine file (torchvision's table): what torchvision checks before unpickling a
# batch, and before extracting the downloaded (or hand-placed) archive.
GENUINE_CHECKSUMS: dict[str, str] = {
    **dict(CIFAR10.train_list + CIFAR10.test_list), META_FILE: CIFAR10.meta["md5"], CIFAR10.filename: CIFAR10.tgz_md5,
}


class CIFAR10Files(CIFAR10):
    """torchvision's CIFAR10 checked against a given MD5 table instead of its class attributes."""

    def __init__(self, root: str | Path, train: bool, download: bool, checksums: dict[str, str]) -> None:
        self.train_list = [[name, checksums[name]] for name in TRAIN_FILES]
        self.test_list = [[name, checksums[name]] for name in TEST_FILES]
        self.meta = {**CIFAR10.meta, "md5": checksums[META_FILE]}
        self.tgz_md5 = checksums[CIFAR10.filename]
        super().__init__(str(root), train=train, download=download)


class CIFAR10DataModule(DownloadedDataModule):
    """CIFAR-10's 50,000 training images in [-1, 1], with the class labels when ``conditional``."""

    data_shape = (3, 32, 32)
    # Flipping changes the training stream and labels are not pixels: neither changes the images metrics compare against.
    LOADING_ARGS = DownloadedDataModule.LOADING_ARGS | {"xflip", "conditional"}
    checksums: dict[str, str] = GENUINE_CHECKSUMS
    class_names: list[str] = CLASS_NAMES

    def __init__(
        self,
        root: str = "data/cifar10",
        download: bool = True,
        conditional: bool = False,
        xflip: bool = False,
        batch_size: int = 64,
        num_workers: int = 4,
        pin_memory: bool = False,
        **kwargs,
    ) -> None:
        """
        Args:
            root: folder holding ``cifar-10-batches-py/`` (created on download, 163 MB archive).
            download: download the data if missing (needs network once; later runs read the folder).
            conditional: yield the class labels (``num_classes = 10``) for conditional models (BigGAN,
                projection cGAN on CIFAR-10); false = unlabelled (``num_classes = 0``, SNGAN).
            xflip: flip each training image left-right with probability 1/2.
            batch_size: images per batch on each device.
            num_workers: DataLoader worker processes; 0 loads in the main process.
            pin_memory: pin batches for faster host-to-GPU copies.
            **kwargs: ``num_predict`` and ``predict_batch_size`` of :class:`datamodules.base.GANDataModule`.
        """
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        self.save_hyperparameters()
        self.num_classes = 10 if conditional else 0
        self.dataset: ImageDataset | None = None

    @property
    def folder(self) -> Path:
        return Path(self.hparams.root).expanduser().resolve() / CIFAR10.base_folder

    def missing_message(self, cause: str) -> str:
        root = Path(self.hparams.root).expanduser().resolve()
        files = ", ".join(DATA_FILES)
        return (
            f"CIFAR-10 not found in {self.folder} and could not be downloaded ({cause}). On a machine with network, "
            f"download {CIFAR10.url} and put the archive in {root} (it is checked and extracted on the next run), "
            f"or extract it there so that {self.folder} holds {files}; or point data.init_args.root at a folder "
            f"that holds cifar-10-batches-py/."
        )

    def _load(self, download: bool) -> CIFAR10Files:
        root = Path(self.hparams.root).expanduser()
        archive = root / CIFAR10.filename
        if archive.is_file() and not all((self.folder / name).is_file() for name in DATA_FILES):
            # An archive put there by hand: verified, then extracted, without network.
            if not check_integrity(str(archive), self.checksums[CIFAR10.filename]):
                raise DataNotFoundError(
                    f"{archive.resolve()} does not have the MD5 sum of the genuine CIFAR-10 archive (incomplete or another "
                    f"file): delete it and download {CIFAR10.url} again."
                )
            extract_archive(str(archive), str(root))
        try:
            return CIFAR10Files(root, train=True, download=download, checksums=self.checksums)
        except (RuntimeError, OSError) as err:  # "Dataset not found or corrupted", URLError when offline, a bad download
            if all((self.folder / name).is_file() for name in DATA_FILES):
                raise DataNotFoundError(
                    f"The CIFAR-10 files in {self.folder} do not have the MD5 sums of the genuine files (corrupted or "
                    f"replaced; they are pickles, so only verified files are read): delete the folder to download them "
                    f"again, or extract {CIFAR10.url} there."
                ) from None
            cause = download_failure(err, download)
            raise DataNotFoundError(self.missing_message(cause)) from None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            split = self._load(download=False)
            pixels = TensorPixels(torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous())  # HWC -> CHW uint8
            labels = torch.tensor(split.targets, dtype=torch.long) if self.hparams.conditional else None
            self.dataset = ImageDataset(pixels, labels)

    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise ConfigError("CIFAR10DataModule: call setup('fit') before train_dataloader().")
        hp = self.hparams
        dataset = self.dataset.view(xflip=hp.xflip)
        return batch_loader(dataset, hp.batch_size, hp.num_workers, hp.pin_memory, shuffle_arguments(self, len(dataset)))
