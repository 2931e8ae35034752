"""The equalized-learning-rate layers, pixel norm and minibatch standard deviation of ProGAN (Karras et al. 2018,
arXiv:1710.10196, section 4), reused by StyleGAN and StyleGAN2."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError


class EqualizedLinear(nn.Module):
    """A linear layer with an equalized learning rate (ProGAN section 4.1).

    The weight is stored as N(0, 1 / lr_multiplier^2) and scaled at run time by
    ``gain * lr_multiplier / sqrt(in_features)`` (He's constant), so every layer's parameters move at the
    same relative speed under Adam whatever their fan-in. ``lr_multiplier`` slows a layer down as in
    StyleGAN's mapping network (0.01); the bias is scaled by it too (stored as ``bias_init / lr_multiplier``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        gain: float = 1.0,
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        """
        Args:
            in_features: input width (the fan-in).
            out_features: output width.
            bias: learn a bias.
            gain: He's gain: sqrt(2) before a (leaky) ReLU in ProGAN, 1 for a linear output.
            lr_multiplier: learning-rate multiplier of this layer (StyleGAN's mapping network: 0.01).
            bias_init: the bias's initial value (as seen at run time).
        """
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = gain * lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.bias_gain
        return F.linear(x, self.weight * self.weight_gain, bias)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"{in_features}, {out_features}, weight_gain={self.weight_gain:.4g}, bias_gain={self.bias_gain:g}"


class EqualizedConv2d(nn.Module):
    """A 2-D convolution with an equalized learning rate (ProGAN section 4.1): weight N(0, 1) scaled at run
    time by ``gain / sqrt(in_channels * kernel_size^2)``; bias initialised to 0; "same" padding by default."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        gain: float = 1.0,
        padding: int | None = None,
        stride: int = 1,
    ) -> None:
        """
        Args:
            in_channels: input channels.
            out_channels: output channels.
            kernel_size: square kernel size (ProGAN: 3, toRGB/fromRGB 1, the 4x4 block of D 4).
            bias: learn a bias.
            gain: He's gain: sqrt(2) before a leaky ReLU, 1 for toRGB. StyleGAN2 applies its gain after
                the activation instead (:func:`lrelu_agc`) and passes 1 here.
            padding: zero padding; None = kernel_size // 2 (same size for odd kernels).
            stride: convolution stride (StyleGAN2's downsampling convolutions: 2, after a FIR filter).
        """
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        out_channels, in_channels, k, _ = self.weight.shape
        stride = f", stride={self.stride}" if self.stride != 1 else ""
        return f"{in_channels}, {out_channels}, kernel_size={k}, padding={self.padding}{stride}, weight_gain={self.weight_gain:.4g}"


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalisation (ProGAN section 4.2, eq. 3): each pixel's feature vector
    divided by its root mean square over channels, ``x / sqrt(mean_c(x^2) + eps)``. On a ``[N, C]`` latent
    it normalises z (StyleGAN's mapping input)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (ProGAN section 3; StyleGAN2's ``num_features`` generalisation).

    The batch is split into groups of ``group_size`` samples (sample i joins group ``i mod (N / G)``, as
    the official reshape does); within each group the standard deviation of every feature at every
    position is taken, averaged over channels (per block of ``C / num_features`` channels) and pixels,
    and appended to every sample of the group as ``num_features`` constant feature maps.
    """

    def __init__(self, group_size: int = 4, num_features: int = 1, eps: float = 1e-8) -> None:
        """
        Args:
            group_size: samples per group (ProGAN and StyleGAN2: 4); capped at the batch size.
            num_features: appended feature maps (ProGAN: 1; StyleGAN2: 1).
            eps: added to the variance before the square root.
        """
        super().__init__()
        if group_size < 1 or num_features < 1:
            raise ConfigError(f"MinibatchStdDev needs group_size >= 1 and num_features >= 1, got {group_size}, {num_features}.")
        self.group_size = group_size
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g, f = min(self.group_size, n), self.num_features
        if n % g or c % f:
            raise ConfigError(
                f"MinibatchStdDev: the batch ({n}) must be a multiple of the group size ({g}) and the channels ({c}) of "
                f"num_features ({f}): use a batch size divisible by {g}."
            )
        y = x.reshape(g, n // g, f, c // f, h, w)  # [G, M, F, C/F, H, W]: sample i = (i // M, i % M)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(self.eps).sqrt()  # [M, F, C/F, H, W]
        y = y.mean(dim=(2, 3, 4)).reshape(n // g, f, 1, 1)  # [M, F, 1, 1]
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_features={self.num_features}"
