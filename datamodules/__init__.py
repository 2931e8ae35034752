"""LightningDataModules for the gans models: every batch is ``(samples, labels)``, except the image-to-image
datamodules (paired, unpaired, MNIST domains), whose batches are ``(a, b)``, two images."""

from datamodules.anime import AnimeFacesDataModule
from datamodules.base import GANDataModule
from datamodules.cifar import CIFAR10DataModule
from datamodules.ffhq import FFHQDataModule
from datamodules.images import ImageFolderDataModule
from datamodules.mnist import MNISTDataModule
from datamodules.mnist_domains import MNISTDomainsDataModule
from datamodules.paired import PairedImageDataModule
from datamodules.toy import ToyDataModule
from datamodules.unpaired import UnpairedImageDataModule

__all__ = [
    "AnimeFacesDataModule",
    "CIFAR10DataModule",
    "FFHQDataModule",
    "GANDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "MNISTDomainsDataModule",
    "PairedImageDataModule",
    "ToyDataModule",
    "UnpairedImageDataModule",
]
