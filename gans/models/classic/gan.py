"""GAN: Generative Adversarial Networks (Goodfellow et al. 2014, arXiv:1406.2661).

Multilayer perceptrons for G and D trained with Algorithm 1 (k = 1) and the non-saturating
generator loss of section 3. The MNIST networks follow the paper's released configuration:
G has two 1200-unit ReLU layers, D two maxout layers of 240 units with 5 pieces and dropout
(input keep 0.8, hidden keep 0.5), both trained with SGD, lr 0.1, momentum 0.5.

Deviations from the paper:
- G ends in tanh and data are scaled to [-1, 1] (the paper: sigmoid and [0, 1]).
- z ~ N(0, I) instead of U[-sqrt(3), sqrt(3)]; the momentum ramp to 0.7 and the released code's lr decay are omitted
  (GANModule's linear decay over the run's last part, ``lr_decay_fraction``, is there instead: the quickstart uses it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.nn.basic import AlwaysDropout, Maxout
from gans.training.gan_module import GANModule, OptimizerName


def _with_labels(x: Tensor, labels: Tensor | None, num_classes: int) -> Tensor:
    """Concatenate one-hot ``labels`` to flat ``x`` for conditional nets (Mirza & Osindero 2014, fig. 1)."""
    if num_classes == 0:
        return x
    if labels is None:
        raise ValueError("This network is conditional (num_classes > 0) and needs labels.")
    return torch.cat([x, F.one_hot(labels.long(), num_classes).to(x.dtype)], dim=1)


class MLPGenerator(nn.Module):
    """z (and a one-hot label) -> ReLU hidden layers -> tanh output reshaped to ``data_shape``."""

    def __init__(
        self,
        z_dim: int,
        data_shape: tuple[int, ...],
        hidden: tuple[int, ...],
        num_classes: int = 0,
        dropout: float = 0.0,
        output_activation: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.data_shape = tuple(data_shape)
        layers: list[nn.Module] = []
        width = z_dim + num_classes
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), AlwaysDropout(dropout)]
            width = h
        layers.append(nn.Linear(width, math.prod(self.data_shape)))
        if output_activation:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(_with_labels(z, labels, self.num_classes)).view(-1, *self.data_shape)


class MLPDiscriminator(nn.Module):
    """Flattened x (and a one-hot label) -> dropout + maxout layers -> one logit."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        hidden: tuple[int, ...],
        pieces: int = 5,
        num_classes: int = 0,
        input_dropout: float = 0.2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        width = math.prod(data_shape) + num_classes
        for i, h in enumerate(hidden):
            layers += [nn.Dropout(input_dropout if i == 0 else dropout), Maxout(width, h, pieces)]
            width = h
        layers += [nn.Dropout(dropout if hidden else input_dropout), nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(_with_labels(x.flatten(1), labels, self.num_classes)).squeeze(1)


class GAN(GANModule):
    """The 2014 MLP GAN. ``data_shape`` is (C, H, W) for images or (2,) for the toy mixtures."""

    def __init__(
        self,
        data_shape: tuple[int, ...] = (1, 28, 28),
        z_dim: int = 100,
        g_hidden: tuple[int, ...] = (1200, 1200),
        d_hidden: tuple[int, ...] = (240, 240),
        d_pieces: int = 5,
        d_input_dropout: float = 0.2,
        d_dropout: float = 0.5,
        g_dropout: float = 0.0,
        g_tanh: bool = True,
        num_classes: int = 0,
        optimizer: OptimizerName = "sgd",
        lr_g: float = 0.1,
        lr_d: float = 0.1,
        momentum: float = 0.5,
        **kwargs,
    ) -> None:
        """
        Args:
            data_shape: shape of one sample, (C, H, W) or (D,).
            z_dim: latent size.
            g_hidden: widths of G's ReLU layers.
            d_hidden: widths (units) of D's maxout layers.
            d_pieces: maxout pieces per unit.
            d_input_dropout: dropout on D's input (paper: keep 0.8).
            d_dropout: dropout before D's other layers (paper: keep 0.5).
            g_dropout: dropout after G's hidden layers, on at train and test time; 0 = off.
            g_tanh: squash G's output with tanh (images in [-1, 1]); off for unbounded toy data.
            num_classes: condition G and D on one-hot labels (CGAN); 0 = unconditional.
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (loss, tricks, n_critic, ...).
        """
        super().__init__(
            generator=MLPGenerator(z_dim, data_shape, g_hidden, num_classes, g_dropout, g_tanh),
            discriminator=MLPDiscriminator(data_shape, d_hidden, d_pieces, num_classes, d_input_dropout, d_dropout),
            z_dim=z_dim,
            num_classes=num_classes,
            optimizer=optimizer,
            lr_g=lr_g,
            lr_d=lr_d,
            momentum=momentum,
            **kwargs,
        )
        self.data_shape = tuple(data_shape)
