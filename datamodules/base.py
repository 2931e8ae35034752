"""The base of every datamodule: training batches are ``(samples, labels)``; predict batches are sample indices."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from gans.errors import ConfigError


class GANDataModule(L.LightningDataModule):
    """Subclasses set ``data_shape`` (one sample's shape) and ``num_classes`` (0 = no labels).

    ``lightning predict`` draws one sample per index in ``range(num_predict)``; the model seeds
    each sample's latent by its index (:meth:`gans.base.GANModule.predict_step`), so the same
    checkpoint always writes the same images.
    """

    data_shape: tuple[int, ...]
    num_classes: int = 0

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

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(torch.arange(self.num_predict), batch_size=self.predict_batch_size)
