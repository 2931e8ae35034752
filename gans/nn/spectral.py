"""Spectral normalisation (Miyato et al. 2018) and SAGAN's self-attention (Zhang et al. 2018), the spectrally
normalised layers of SNGAN, SAGAN and BigGAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def spectral_norm(module: nn.Module, enabled: bool = True, n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """``module`` with its weight divided by its largest singular value (Miyato et al. 2018, arXiv:1802.05957,
    eq. 8), estimated by ``n_power_iterations`` power iterations per training forward (section 2.1, Algorithm 1).

    torch's :func:`torch.nn.utils.parametrizations.spectral_norm`: the vectors ``u`` and ``v`` are buffers
    (``parametrizations.weight.0._u`` / ``_v``), so they are saved in checkpoints and, computed from the same
    weights from the same seeded start, equal on every rank. Conv weights are reshaped to ``[out, in * k * k]``.
    ``enabled=False`` returns the module unchanged (one switch for models with and without SN).
    """
    if not enabled:
        return module
    return nn.utils.parametrizations.spectral_norm(module, n_power_iterations=n_power_iterations, eps=eps)


def weight_of(module: nn.Module) -> Tensor:
    """The trained weight of a plain or spectrally normalised layer: under torch's parametrization the unnormalised
    ``original`` (what an initialiser must write), else ``module.weight``."""
    if nn.utils.parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def sn_conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True, sn: bool = True) -> nn.Module:
    """A 2d convolution, spectrally normalised when ``sn``."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias), sn)


def sn_linear(in_features: int, out_features: int, bias: bool = True, sn: bool = True) -> nn.Module:
    """A linear layer, spectrally normalised when ``sn``."""
    return spectral_norm(nn.Linear(in_features, out_features, bias=bias), sn)


class SelfAttention(nn.Module):
    """SAGAN's self-attention block (Zhang et al. 2018, arXiv:1805.08318, section 3, eq. 1-3):
    ``y = x + gamma * o`` with ``gamma`` learned from 0, so the block starts as the identity.

    1x1 convolutions give the query ``f(x)`` and key ``g(x)`` with ``key_channels`` (C/8) channels and the
    value ``h(x)`` with ``value_channels``; ``beta = softmax(f^T g)`` over the N = H W positions; ``o`` maps
    the attended values back to C channels with one more 1x1 convolution. The paper writes C/8 for the
    value too (the default); the official SAGAN and BigGAN code use C/2 and max-pool the keys and values
    2x2 (``value_channels=C // 2, pool=True``), which BigGAN's parameter counts need. No biases, as both.
    """

    def __init__(self, channels: int, key_channels: int | None = None, value_channels: int | None = None, pool: bool = False, sn: bool = True) -> None:
        super().__init__()
        key_channels = key_channels or max(channels // 8, 1)
        value_channels = value_channels or max(channels // 8, 1)
        self.query = sn_conv2d(channels, key_channels, 1, bias=False, sn=sn)
        self.key = sn_conv2d(channels, key_channels, 1, bias=False, sn=sn)
        self.value = sn_conv2d(channels, value_channels, 1, bias=False, sn=sn)
        self.out = sn_conv2d(value_channels, channels, 1, bias=False, sn=sn)
        self.pool = pool
        self.gamma = nn.Parameter(torch.zeros([]))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        query = self.query(x).flatten(2)  # [N, C_k, HW]
        key, value = self.key(x), self.value(x)
        if self.pool:
            key, value = F.max_pool2d(key, 2), F.max_pool2d(value, 2)
        attention = torch.softmax(query.transpose(1, 2) @ key.flatten(2), dim=-1)  # [N, HW, HW']: row i sums to 1
        attended = (value.flatten(2) @ attention.transpose(1, 2)).reshape(n, -1, h, w)  # [N, C_v, H, W]
        return x + self.gamma * self.out(attended)
