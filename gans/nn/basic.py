"""DCGAN-era building blocks: N(0, 0.02) initialisation, the normalisation switch, maxout and dropout that
stays on at test time; and a context that puts a module in eval mode."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError

Norm = Literal["batch", "layer", "none"]


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2015, section 4): conv and linear weights ~ N(0, 0.02),
    normalisation scales ~ N(1, 0.02), biases 0. Use as ``net.apply(dcgan_init_)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def norm2d(kind: Norm, channels: int) -> nn.Module:
    """Batch norm, layer norm over (C, H, W) with a per-channel affine (GroupNorm with one group), or nothing.

    WGAN-GP drops batch norm from the critic because it makes each sample's gradient depend
    on the batch; layer norm is the paper's suggested replacement (Gulrajani et al. 2017, section 4).
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"Unknown normalisation {kind!r}: choose 'batch', 'layer' or 'none'.")


class Maxout(nn.Module):
    """Maxout unit (Goodfellow et al. 2013, arXiv:1302.4389): max over ``pieces`` affine maps."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).unflatten(-1, (self.out_features, self.pieces)).amax(-1)


class AlwaysDropout(nn.Module):
    """Dropout that stays on at test time: the noise source of G in ganhacks trick 17 and pix2pix
    (Isola et al. 2017, section 2.1). p = 0 is the identity."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"Dropout probability must be in [0, 1), got {p}.")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=True) if self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode for the block, then back to the mode it was in."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
