"""StyleGAN's mapping network (Karras et al. 2019, arXiv:1812.04948) and StyleGAN2's modulated convolution and
activation (Karras et al. 2020, arXiv:1912.04958)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.nn.equalized import EqualizedLinear, PixelNorm
from gans.nn.resample import upfirdn2d

LRELU_GAIN = math.sqrt(2)


def lrelu_agc(x: Tensor, gain: float = 1.0) -> Tensor:
    """Leaky ReLU (0.2) times ``sqrt(2) * gain``: StyleGAN2's activation, whose gain comes after the
    nonlinearity (and after the bias), where ProGAN scales the weight instead."""
    return F.leaky_relu(x, 0.2) * (LRELU_GAIN * gain)


class MappingNetwork(nn.Module):
    """The mapping network f: z -> w (StyleGAN section 2, Figure 1b; StyleGAN2-ADA's conditional form).

    z is normalised to unit second moment (:class:`PixelNorm`); for a conditional model the class vector
    ``c`` (one-hot or multi-hot) is embedded by a linear layer, normalised the same way and concatenated
    to it. Then ``num_layers`` equalized-lr dense layers with leaky ReLU, slowed down by
    ``lr_multiplier`` (0.01). With ``num_ws`` the output is broadcast to ``[N, num_ws, w_dim]``, one copy
    of w per synthesis layer; the network then tracks the average w (``w_avg``, moved toward each
    training batch's mean with ``w_avg_beta``) for the truncation trick (StyleGAN Appendix B):
    ``w' = w_avg + psi (w - w_avg)`` on the first ``truncation_cutoff`` layers (all when None).

    StyleGAN2's discriminator uses it without z and without broadcasting, to map ``c`` for its projection.
    Parameter names follow the official code (``embed``, ``fc0`` ..., ``w_avg``).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
        embed_features: int | None = None,
        layer_features: int | None = None,
    ) -> None:
        """
        Args:
            z_dim: latent size (0 = no latent: D's label mapping).
            c_dim: length of the class vector (0 = unconditional).
            w_dim: size of w.
            num_ws: copies of w to output (``[N, num_ws, w_dim]``); None = ``[N, w_dim]``.
            num_layers: dense layers (StyleGAN: 8).
            lr_multiplier: learning-rate multiplier of the dense layers (StyleGAN: 0.01).
            w_avg_beta: decay of the tracked average w per training forward (0.995); None = not tracked.
            embed_features: size of the embedded class vector (default ``w_dim``).
            layer_features: width of the hidden layers (default ``w_dim``).
        """
        super().__init__()
        if z_dim + c_dim == 0:
            raise ConfigError("MappingNetwork needs a latent (z_dim > 0) or a class vector (c_dim > 0).")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = w_dim if layer_features is None else layer_features
        self.norm = PixelNorm()
        if c_dim:
            self.embed = EqualizedLinear(c_dim, embed_features)
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        for i in range(num_layers):
            setattr(self, f"fc{i}", EqualizedLinear(features[i], features[i + 1], lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor | None,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> Tensor:
        """w for ``z [N, z_dim]`` and class vectors ``c [N, c_dim]``; in training mode (and with
        ``update_w_avg``) the batch's mean w moves ``w_avg``."""
        parts = []
        if self.z_dim:
            parts.append(self.norm(z.float()))
        if self.c_dim:
            if c is None:
                raise ConfigError(f"This mapping network is conditional (c_dim={self.c_dim}) and needs class vectors.")
            parts.append(self.norm(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = lrelu_agc(getattr(self, f"fc{i}")(x))
        if hasattr(self, "w_avg") and self.training and update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :cutoff], truncation_psi), x[:, cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    demodulate: bool = True,
    up: bool = False,
    fir_kernel: Tensor | None = None,
    fused: bool = True,
    eps: float = 1e-8,
    padding: int | None = None,
    input_gain: Tensor | float | None = None,
) -> Tensor:
    """StyleGAN2's weight modulation and demodulation (section 2.2, eq. 1-3).

    Each sample's weight is ``w'_ijk = s_i w_ijk`` (``styles [N, in]`` scale the input channels) and,
    with ``demodulate``, ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)``, so each output channel has
    unit standard deviation for unit-variance input. With ``up`` the convolution is transposed with
    stride 2 and followed by the FIR filter ``fir_kernel`` (gain 4), as the official ``conv2d_resample``:
    the output is exactly twice the size. ``weight [out, in, k, k]`` is the raw (N(0, 1)) weight;
    demodulation makes a fan-in scale unnecessary, and without it the caller scales ``styles``.

    Two equal computations, as the official ``fused_modconv`` switch:

    - ``fused=True``: the batch is folded into the channels and convolved once with ``groups = N`` and
      per-sample weights (the paper's formulation; fastest for inference);
    - ``fused=False``: the input is scaled by ``s``, convolved with the one shared weight and the output
      scaled by the demodulation coefficients (the paper's "implemented by scaling the activations" form;
      faster to train on CPU, where grouped convolutions backpropagate slowly).

    ``padding`` (without ``up``): the zero padding of the convolution; None = ``k // 2`` (same size); StyleGAN3
    pads ``k - 1`` (a full convolution, its filtered activation crops). ``input_gain`` (a scalar, ``[in]`` or
    ``[N, in]``) scales the input channels *after* demodulation, which it does not enter: StyleGAN3's
    ``magnitude_ema^-1/2`` (the official ``input_gain``).
    """
    n, in_channels, h, w = x.shape
    out_channels, _, k, _ = weight.shape
    if up and fir_kernel is None:
        raise ValueError("modulated_conv2d(up=True) needs the FIR kernel that follows the transposed convolution.")
    if up and padding is not None:
        raise ValueError("modulated_conv2d(up=True) sets its own padding (exactly twice the size): leave padding None.")
    if not fused:
        scales = styles if input_gain is None else styles * input_gain
        out = _conv_or_up(x * scales.reshape(n, in_channels, 1, 1), weight, up, fir_kernel, groups=1, padding=padding)
        if demodulate:  # sum_ik (s_i w_oik)^2 = sum_i s_i^2 sum_k w_oik^2
            dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + eps).rsqrt()
            out = out * dcoefs.reshape(n, out_channels, 1, 1)
        return out
    weights = weight.unsqueeze(0) * styles.reshape(n, 1, in_channels, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        weights = weights * (weights.square().sum(dim=(2, 3, 4), keepdim=True) + eps).rsqrt()
    if input_gain is not None:
        gains = torch.as_tensor(input_gain, dtype=weights.dtype, device=weights.device).expand(n, in_channels)
        weights = weights * gains.reshape(n, 1, in_channels, 1, 1)
    out = _conv_or_up(x.reshape(1, n * in_channels, h, w), weights.reshape(n * out_channels, in_channels, k, k), up, fir_kernel, groups=n,
                      padding=padding)
    return out.reshape(n, out_channels, *out.shape[2:])


def _conv_or_up(x: Tensor, weight: Tensor, up: bool, fir_kernel: Tensor | None, groups: int, padding: int | None = None) -> Tensor:
    """A convolution (``padding`` None: same size), or (``up``) a stride-2 transposed convolution followed by the FIR filter."""
    k = weight.shape[-1]
    if not up:
        return F.conv2d(x, weight, padding=k // 2 if padding is None else padding, groups=groups)
    # The transposed convolution takes [in, out / groups, k, k] per group.
    out_per_group, in_per_group = weight.shape[0] // groups, weight.shape[1]
    weight = weight.reshape(groups, out_per_group, in_per_group, k, k).transpose(1, 2).reshape(groups * in_per_group, out_per_group, k, k)
    out = F.conv_transpose2d(x, weight, stride=2, groups=groups)  # [., O, 2H + k - 2, ...]
    fk = fir_kernel.shape[-1]
    pad0 = k // 2 + (fk + 1) // 2 - (k - 1)
    pad1 = k // 2 + (fk - 2) // 2 - (k - 2)
    return upfirdn2d(out, fir_kernel, padding=[pad0, pad1, pad0, pad1], gain=4)
