"""The residual blocks of the spectrally normalised family: SNGAN, the projection cGAN, SAGAN and BigGAN.

Miyato et al. 2018 (arXiv:1802.05957, appendix B.4 / Figure 8) introduced these blocks for GANs (after
Gulrajani et al. 2017's WGAN-GP ResNets); the projection cGAN (Miyato & Koyama 2018, arXiv:1802.05637,
appendix), SAGAN (Zhang et al. 2018) and BigGAN (Brock et al. 2018, Figure 15) keep them and change only
the normalisation's conditioning and the widths:

- :class:`GeneratorBlock`: ``BN -> ReLU -> up x2 -> conv3x3 -> BN -> ReLU -> conv3x3``, plus a shortcut
  ``up x2 -> conv1x1`` (learned when the width changes or the block upsamples). With ``cond_dim > 0`` both
  batch norms are :class:`gans.nn.conditional.ConditionalBatchNorm2d` reading the condition vector ``y``
  (one-hot class for the projection cGAN and SAGAN; [shared embedding, z chunk] for BigGAN).
- :class:`DiscriminatorBlock`: ``ReLU -> conv3x3 -> ReLU -> conv3x3 -> avgpool x2``, plus a shortcut
  ``conv1x1 -> avgpool``. The first block of D (``preactivation=False``, SNGAN's "optimized" block) skips
  the first ReLU, since its input is the image, and pools before its shortcut convolution.

Nearest-neighbour upsampling and 2x2 average pooling, as the official Chainer and PyTorch code.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gans.nn.conditional import ConditionalBatchNorm2d
from gans.nn.spectral import sn_conv2d


class GeneratorBlock(nn.Module):
    """A residual G block; ``forward(x, y=None)``, ``y [N, cond_dim]`` when conditional."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int = 0, upsample: bool = True, sn: bool = False,
                 hidden_channels: int | None = None, norm_sn: bool | None = None) -> None:
        """``sn`` spectrally normalises the convolutions; ``norm_sn`` the conditional BN's gain and bias maps
        (None = as ``sn``: BigGAN's linear maps of [embedding, z chunk]; False: SAGAN's and the projection
        cGAN's plain per-class gain / bias tables, starting at 1 and 0, as their official code)."""
        super().__init__()
        hidden_channels = hidden_channels or out_channels
        norm_sn = sn if norm_sn is None else norm_sn
        self.cond_dim, self.upsample = cond_dim, upsample
        self.norm1 = self._norm(in_channels, cond_dim, norm_sn)
        self.conv1 = sn_conv2d(in_channels, hidden_channels, 3, padding=1, sn=sn)
        self.norm2 = self._norm(hidden_channels, cond_dim, norm_sn)
        self.conv2 = sn_conv2d(hidden_channels, out_channels, 3, padding=1, sn=sn)
        self.shortcut = sn_conv2d(in_channels, out_channels, 1, sn=sn) if in_channels != out_channels or upsample else None

    @staticmethod
    def _norm(channels: int, cond_dim: int, sn: bool) -> nn.Module:
        return ConditionalBatchNorm2d(channels, cond_dim, sn=sn) if cond_dim > 0 else nn.BatchNorm2d(channels)

    def _normalise(self, norm: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
        return norm(x, y) if self.cond_dim > 0 else norm(x)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = F.relu(self._normalise(self.norm1, x, y))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self._normalise(self.norm2, self.conv1(h), y)))
        return h + (x if self.shortcut is None else self.shortcut(x))


class DiscriminatorBlock(nn.Module):
    """A residual D block; ``preactivation=False`` for the first block, whose input is the image."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True, preactivation: bool = True, sn: bool = True,
                 hidden_channels: int | None = None) -> None:
        super().__init__()
        hidden_channels = hidden_channels or out_channels
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = sn_conv2d(in_channels, hidden_channels, 3, padding=1, sn=sn)
        self.conv2 = sn_conv2d(hidden_channels, out_channels, 3, padding=1, sn=sn)
        self.shortcut = sn_conv2d(in_channels, out_channels, 1, sn=sn) if in_channels != out_channels or downsample else None

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.shortcut is None:
            return x
        if self.preactivation:  # as the official code: convolve then pool; the first block pools first
            x = self.shortcut(x)
            return F.avg_pool2d(x, 2) if self.downsample else x
        return self.shortcut(F.avg_pool2d(x, 2) if self.downsample else x)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)
