"""Building blocks shared by the variants: initialisers, normalisation choice, maxout, test-time dropout,
the equalized-learning-rate layers, pixel norm and minibatch standard deviation of ProGAN / StyleGAN, the
mapping network and modulated convolution of StyleGAN / StyleGAN2, and the conditional family's spectral
norm, class embedding, conditional batch norm, projection and self-attention (SNGAN, projection cGAN, SAGAN,
BigGAN)."""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from gans.errors import ConfigError
from gans.resample import upfirdn2d

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


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def check_resolution(img_resolution: int, minimum: int, model: str) -> int:
    """log2 of ``img_resolution``, or a ValueError that says what to change."""
    if not is_power_of_two(img_resolution) or img_resolution < minimum:
        raise ConfigError(
            f"{model} needs img_resolution to be a power of two >= {minimum}, got {img_resolution}: "
            f"set data.init_args.img_resolution (and model.init_args.img_resolution) to e.g. 32 or 64 "
            f"(MNIST's 28 px digits are padded/resized to 32)."
        )
    return int(math.log2(img_resolution))


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


# Karras et al. 2018 (ProGAN, arXiv:1710.10196), section 4, reused by StyleGAN and StyleGAN2.


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


# StyleGAN (Karras et al. 2019, arXiv:1812.04948) and StyleGAN2 (Karras et al. 2020, arXiv:1912.04958).

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
    """
    n, in_channels, h, w = x.shape
    out_channels, _, k, _ = weight.shape
    if up and fir_kernel is None:
        raise ValueError("modulated_conv2d(up=True) needs the FIR kernel that follows the transposed convolution.")
    if not fused:
        out = _conv_or_up(x * styles.reshape(n, in_channels, 1, 1), weight, up, fir_kernel, groups=1)
        if demodulate:  # sum_ik (s_i w_oik)^2 = sum_i s_i^2 sum_k w_oik^2
            dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + eps).rsqrt()
            out = out * dcoefs.reshape(n, out_channels, 1, 1)
        return out
    weights = weight.unsqueeze(0) * styles.reshape(n, 1, in_channels, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        weights = weights * (weights.square().sum(dim=(2, 3, 4), keepdim=True) + eps).rsqrt()
    out = _conv_or_up(x.reshape(1, n * in_channels, h, w), weights.reshape(n * out_channels, in_channels, k, k), up, fir_kernel, groups=n)
    return out.reshape(n, out_channels, *out.shape[2:])


def _conv_or_up(x: Tensor, weight: Tensor, up: bool, fir_kernel: Tensor | None, groups: int) -> Tensor:
    """A same-size convolution, or (``up``) a stride-2 transposed convolution followed by the FIR filter."""
    k = weight.shape[-1]
    if not up:
        return F.conv2d(x, weight, padding=k // 2, groups=groups)
    # The transposed convolution takes [in, out / groups, k, k] per group.
    out_per_group, in_per_group = weight.shape[0] // groups, weight.shape[1]
    weight = weight.reshape(groups, out_per_group, in_per_group, k, k).transpose(1, 2).reshape(groups * in_per_group, out_per_group, k, k)
    out = F.conv_transpose2d(x, weight, stride=2, groups=groups)  # [., O, 2H + k - 2, ...]
    fk = fir_kernel.shape[-1]
    pad0 = k // 2 + (fk + 1) // 2 - (k - 1)
    pad1 = k // 2 + (fk - 2) // 2 - (k - 2)
    return upfirdn2d(out, fir_kernel, padding=[pad0, pad1, pad0, pad1], gain=4)


# The conditional family's layers (issue 11): spectral normalisation, class embedding, conditional batch
# norm, projection and self-attention, each written once.


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


def sn_conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True, sn: bool = True) -> nn.Module:
    """A 2d convolution, spectrally normalised when ``sn``."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias), sn)


def sn_linear(in_features: int, out_features: int, bias: bool = True, sn: bool = True) -> nn.Module:
    """A linear layer, spectrally normalised when ``sn``."""
    return spectral_norm(nn.Linear(in_features, out_features, bias=bias), sn)


class ClassEmbedding(nn.Module):
    """Labels of a :class:`gans.labels.LabelSpace` to vectors ``[N, dim]``: one learned row per class.

    One head: ``embed(y)``. Several heads (hair and eye colour): the sum of each head's row, which is a linear
    map of the concatenated one-hot vector (the tag vector). This is the projection discriminator's ``V`` and
    BigGAN's shared embedding. ``sn`` spectrally normalises the table (the projection D of Miyato & Koyama).
    """

    def __init__(self, heads: tuple[int, ...] | list[int] | int, dim: int, sn: bool = False) -> None:
        super().__init__()
        self.heads = (int(heads),) if isinstance(heads, int) else tuple(int(h) for h in heads)
        if not self.heads or min(self.heads) < 1:
            raise ConfigError(f"ClassEmbedding needs at least one head with >= 1 class, got {heads}.")
        self.embedding = spectral_norm(nn.Embedding(sum(self.heads), dim), sn)
        self.register_buffer("offsets", torch.tensor([0, *self.heads[:-1]]).cumsum(0), persistent=False)

    def forward(self, labels: Tensor) -> Tensor:
        labels = labels.long().reshape(labels.shape[0], len(self.heads))
        return self.embedding(labels + self.offsets).sum(dim=1)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are functions of a per-sample condition vector ``y [N, cond_dim]``:
    ``BN(x) * (1 + W_gain y) + W_bias y`` (de Vries et al. 2017; Dumoulin et al. 2017).

    With ``y`` the one-hot class vector every class has its own gain and bias, initialised to 1 and 0: the
    class-conditional BN of the projection cGAN (Miyato & Koyama 2018, section 4) and SAGAN. BigGAN feeds
    ``y`` = [shared class embedding, z chunk] (Brock et al. 2018, section 3 and appendix B) through
    spectrally normalised linear maps (``sn``). The normalisation is an ``nn.BatchNorm2d`` without affine
    parameters, so ``nn.SyncBatchNorm.convert_sync_batchnorm`` turns it into a synchronised one.
    """

    def __init__(self, num_features: int, cond_dim: int, sn: bool = False, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.gain = sn_linear(cond_dim, num_features, bias=False, sn=sn)
        self.bias = sn_linear(cond_dim, num_features, bias=False, sn=sn)
        if not sn:  # per-class gain 1 and bias 0 at the start; spectrally normalised maps cannot be zero
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        gain = 1 + self.gain(y)
        bias = self.bias(y)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


def projection(features: Tensor, embedded_labels: Tensor) -> Tensor:
    """The projection discriminator's class term ``<embed(y), phi(x)>`` per sample (Miyato & Koyama 2018,
    arXiv:1802.05637, eq. 3): ``D(x, y) = psi(phi(x)) + projection(phi(x), embed(y))``."""
    return (features * embedded_labels).sum(dim=1)


class ProjectionHead(nn.Module):
    """The projection discriminator's output layer (Miyato & Koyama 2018, arXiv:1802.05637, eq. 3):
    ``psi(phi) + <embed(y), phi>``, ``psi`` a spectrally normalised linear map of the pooled features ``phi [N, F]``
    and ``embed`` a spectrally normalised :class:`ClassEmbedding`. Unconditional (``heads`` empty): ``psi(phi)``
    only, SNGAN's output layer. Shared by SNGAN / the projection cGAN, SAGAN and BigGAN."""

    def __init__(self, features: int, heads: tuple[int, ...] | list[int] = (), sn: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.linear = sn_linear(features, 1, bias=bias, sn=sn)
        self.embed = ClassEmbedding(tuple(heads), features, sn=sn) if heads else None

    def forward(self, phi: Tensor, labels: Tensor | None = None) -> Tensor:
        out = self.linear(phi).squeeze(1)
        if self.embed is None:
            return out
        if labels is None:
            raise ConfigError("The projection discriminator is conditional: pass the labels (class indices, see gans.labels).")
        return out + projection(phi, self.embed(labels))


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


class CrossReplicaBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics are those of the global batch over every rank: BigGAN's "cross-replica"
    batch norm (Brock et al. 2018, arXiv:1809.11096, appendix C; the official code's ``cross_replica`` /
    ``SyncBN2d``), what ``nn.SyncBatchNorm`` does, on any device (``nn.SyncBatchNorm`` refuses CPU tensors).

    The sum over ranks is ``sum_over_ranks``, which the model sets from its Lightning strategy once the trainer is up
    (:func:`set_sum_over_ranks`: ``LightningModule.all_gather(..., sync_grads=True)`` summed, differentiable, so the
    backward sums the gradients over the ranks too). One collective of ``[sum x, sum x^2, count]`` per channel per
    forward: every rank normalises with the same mean and variance and updates the same running statistics.
    Without ``sum_over_ranks`` (one process), outside training or with ``sync = False`` it is exactly
    ``nn.BatchNorm2d``. Under DDP every rank must run the same train-mode forwards in the same order (the GAN steps
    do; sampling is in eval mode; :class:`local_batchnorm` turns the collective off).
    """

    sync: bool = True
    sum_over_ranks: Callable[[Tensor], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and self.sync and self.sum_over_ranks is not None):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        local = torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3)), xf.new_full([1], x.numel() // c)])
        total = self.sum_over_ranks(local)
        count = total[-1]
        mean = total[:c] / count
        var = (total[c : 2 * c] / count - mean.square()).clamp_min(0)  # biased, as batch norm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_((var * count / (count - 1).clamp_min(1)).to(self.running_var.dtype), factor)
        out = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)


def cross_replica_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` (also the one inside :class:`ConditionalBatchNorm2d`) replaced, in
    place, by a :class:`CrossReplicaBatchNorm2d` with the same settings, parameters and statistics."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                synced = CrossReplicaBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                synced.load_state_dict(child.state_dict())
                setattr(parent, name, synced.to(next(child.buffers(), torch.zeros(())).device))
    return module


def set_sum_over_ranks(module: nn.Module, sum_over_ranks: Callable[[Tensor], Tensor] | None) -> None:
    """Give every :class:`CrossReplicaBatchNorm2d` in ``module`` the differentiable sum over ranks (None: one process)."""
    for layer in module.modules():
        if isinstance(layer, CrossReplicaBatchNorm2d):
            layer.sum_over_ranks = sum_over_ranks


class local_batchnorm:
    """A context in which the :class:`CrossReplicaBatchNorm2d` layers of ``module`` use this rank's batch only
    (no collective), e.g. to accumulate standing statistics on one rank."""

    def __init__(self, module: nn.Module) -> None:
        self.layers = [m for m in module.modules() if isinstance(m, CrossReplicaBatchNorm2d)]

    def __enter__(self) -> None:
        for layer in self.layers:
            layer.sync = False

    def __exit__(self, *exc: object) -> None:
        for layer in self.layers:
            layer.sync = True
