"""The base of every datamodule: training batches are ``(samples, labels)``; predict batches are sample indices."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from gans.errors import ConfigError


class GANDataModule(L.LightningDataModule):
    """Subclasses set ``data_shape`` (one sample's shape) and ``num_classes`` (0 = no labels).

    ``lightning predict`` draws one sample per index in ``range(num_predict)``; the model seeds
    each sample's latent by its index (:meth:`gans.training.gan_module.GANModule.predict_step`), so the same
    checkpoint always writes the same images.
    """

    data_shape: tuple[int, ...]
    num_classes: int = 0
    # Init arguments that change how data are loaded, not which images they are (left out of cache_key).
    LOADING_ARGS = frozenset({"batch_size", "num_workers", "pin_memory", "download", "num_predict", "predict_batch_size"})

    def __init__(self, num_predict: int = 64, predict_batch_size: int = 64) -> None:
        """
        Args:
            num_predict: samples written by ``lightning predict``.
            predict_batch_size: samples generated per predict batch.
        """
        super().__init__()
        if num_predict < 1 or predict_batch_size < 1:
            raise ConfigError(f"num_predict and predict_batch_size must be >= 1, got {num_predict} and {predict_batch_size}.")
        self.num_predict = num_predict
        self.predict_batch_size = predict_batch_size

    @property
    def shuffle_seed(self) -> int:
        """Seed of the training shuffle (:mod:`datamodules.sampling`): drawn once from the global random
        stream (so ``seed_everything`` fixes it) and kept in checkpoints."""
        if getattr(self, "_shuffle_seed", None) is None:
            self._shuffle_seed = int(torch.randint(2**31 - 1, ()))
        return self._shuffle_seed

    def state_dict(self) -> dict:
        return {"shuffle_seed": self.shuffle_seed}

    def load_state_dict(self, state_dict: dict) -> None:
        self._shuffle_seed = state_dict.get("shuffle_seed", getattr(self, "_shuffle_seed", None))

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(torch.arange(self.num_predict), batch_size=self.predict_batch_size)

    def real_dataset(self) -> Dataset:
        """The training images as a map-style dataset of ``(image, label)`` in [-1, 1], unshuffled and
        unaugmented (after ``setup``): what metrics like :class:`callbacks.FID` compare against."""
        dataset = getattr(self, "dataset", None)
        if dataset is None:
            raise ConfigError(f"{type(self).__name__} has no dataset yet: call setup('fit') first, or override real_dataset().")
        return dataset

    def cache_key(self) -> str:
        """A file-name-safe identity of the data (class, shape, every init argument that selects or transforms
        the images, the data folder resolved), for caches of statistics such as FID's real features."""
        args = {k: v for k, v in self.hparams.items() if k not in self.LOADING_ARGS}
        if "root" in args:
            args["root"] = str(Path(args["root"]).expanduser().resolve())
        digest = hashlib.sha1(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return f"{type(self).__name__}-{'x'.join(map(str, self.data_shape))}-{digest}"


class DownloadedDataModule(GANDataModule):
    """A datamodule over a torchvision dataset that may be downloaded on first use (MNIST, CIFAR-10): ``prepare_data``
    loads it once with ``hparams.download`` (rank 0 only, as Lightning calls it), ``setup`` with download off.
    Subclasses write ``_load(download)``, which turns torchvision's failure into a :class:`gans.errors.DataNotFoundError`
    naming the folder, the files and :func:`download_failure`'s cause."""

    def _load(self, download: bool) -> Dataset:
        raise NotImplementedError

    def prepare_data(self) -> None:
        self._load(self.hparams.download)


def download_failure(err: Exception, download: bool) -> str:
    """Why torchvision could not provide a dataset, in a few words: its first line (``Dataset not found``, the URLError
    of an offline machine), or that downloading was switched off."""
    return str(err).splitlines()[0] if download else "download is off: data.init_args.download: false"
