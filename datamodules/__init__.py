"""LightningDataModules for the gans models: every batch is ``(samples, labels)``."""

from datamodules.anime import AnimeFacesDataModule
from datamodules.base import GANDataModule
from datamodules.cifar import CIFAR10DataModule
from datamodules.ffhq import FFHQDataModule
from datamodules.images import ImageFolderDataModule
from datamodules.mnist import MNISTDataModule
from datamodules.toy import ToyDataModule

__all__ = [
    "AnimeFacesDataModule",
    "CIFAR10DataModule",
    "FFHQDataModule",
    "GANDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "ToyDataModule",
]
