"""LightningDataModules for the gans models: every batch is ``(samples, labels)``."""

from datamodules.base import GANDataModule
from datamodules.mnist import MNISTDataModule
from datamodules.toy import ToyDataModule

__all__ = ["GANDataModule", "MNISTDataModule", "ToyDataModule"]
