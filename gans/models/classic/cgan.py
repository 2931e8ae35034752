"""CGAN: Conditional Generative Adversarial Nets (Mirza & Osindero 2014, arXiv:1411.1784).

G and D of the MLP GAN with the one-hot class label concatenated to their inputs (figure 1).
The paper's MNIST G maps z (100) and y (10) through one hidden layer to 784 sigmoid units;
D uses maxout on x and y. Trained with SGD, lr 0.1, momentum 0.5, batch 100.

Deviations from the paper:
- z and y are concatenated at the input (one joint tower), instead of the paper's separate
  first layers for z (200 units) and y (1000 units) that are then joined (1200 units).
- G ends in tanh on data in [-1, 1]; z ~ N(0, I).
"""

from __future__ import annotations

from gans.errors import ConfigError
from gans.models.classic.gan import GAN


class CGAN(GAN):
    """The MLP GAN conditioned on ``num_classes`` labels (10 for MNIST)."""

    def __init__(
        self,
        num_classes: int = 10,
        g_hidden: tuple[int, ...] = (1200,),
        d_hidden: tuple[int, ...] = (240, 240),
        **kwargs,
    ) -> None:
        """
        Args:
            num_classes: number of classes; labels come from the datamodule's batches.
            g_hidden: widths of G's ReLU layers (paper: 1200 after the joint layer).
            d_hidden: widths of D's maxout layers.
            **kwargs: the arguments of :class:`gans.models.classic.gan.GAN` and :class:`gans.training.gan_module.GANModule`.
        """
        if num_classes < 1:
            raise ConfigError(f"CGAN needs num_classes >= 1, got {num_classes}; use GAN for unconditional training.")
        super().__init__(num_classes=num_classes, g_hidden=g_hidden, d_hidden=d_hidden, **kwargs)
