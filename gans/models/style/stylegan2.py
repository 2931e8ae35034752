"""StyleGAN2: Analyzing and Improving the Image Quality of StyleGAN (Karras et al. 2020, arXiv:1912.04958).

The networks of the paper's config F and its siblings, computing exactly what NVIDIA's official
PyTorch networks compute (stylegan2-ada-pytorch ``training/networks.py``; the test against
``../shared/fixtures/stylegan2-reference`` checks it to float32 round-off), with the official parameter
names, so an official state dict loads with :meth:`StyleGAN2.from_official_state_dict`:

- **Mapping** (:class:`gans.nn.style.MappingNetwork`): z (and an embedded class vector) normalised,
  ``mapping_layers`` dense layers with lr multiplier 0.01, the tracked average w for truncation.
- **Synthesis** (section 2, Figure 2d): a learned 4x4 constant; every layer a modulated and demodulated
  3x3 convolution (:func:`gans.nn.style.modulated_conv2d`, eq. 1-3: one grouped convolution for the
  batch in eval mode, scaled activations around one shared-weight convolution in training, as the
  official ``fused_modconv = not training``) whose style is an affine map of its w (bias initialised to 1); per-pixel noise times a learned
  scalar strength and the bias are added *outside* the style block, then leaky ReLU times sqrt(2).
  Upsampling is a transposed convolution followed by the FIR filter [1, 3, 3, 1]. Architectures
  (section 4.1, Figure 7): ``skip`` (config E/F: each resolution's toRGB added to the upsampled image),
  ``resnet`` (1x1 skip connections scaled by sqrt(1/2)) and ``orig`` (toRGB at the end only).
- **Discriminator**: fromRGB, blocks of a 3x3 convolution and a 3x3 convolution after a FIR
  downsampling filter, in the ``resnet`` architecture (config E/F: a FIR-downsampled 1x1 skip, the sum
  scaled by sqrt(1/2)), ``skip`` (fromRGB of the downsampled image at every resolution) or ``orig``;
  then minibatch standard deviation (group 4), a 3x3 convolution, a dense layer and the output. A
  conditional D maps the class vector through its own mapping network and projects its output
  features onto it, ``<out(x), cmap> / sqrt(cmap_dim)`` (StyleGAN2-ADA).
- Equalized learning rate everywhere (weights stored N(0, 1), scaled by 1/sqrt(fan_in) at run time;
  the modulated convolutions need no scale because demodulation normalises them).

Channels per resolution are ``min(channel_base / resolution, channel_max)``: config F has
``channel_base`` 32768 and ``channel_max`` 512 (512 up to 64 px, then 256, 128, 64, 32). Official
presets (stylegan2-ada-pytorch ``train.py``), as (channel_base, mapping_layers, batch, minibatch-std group, lr, R1 gamma, EMA kimg):

============  ============  =======  =====  =====  ======  ======================  ========
preset        channel_base  mapping  batch  mbstd  lr      r1_gamma                ema_kimg
============  ============  =======  =====  =====  ======  ======================  ========
config F      32768         8        32     4      0.002   10 (FFHQ 1024)          10
paper256      16384         8        64     8      0.0025  1                       20
paper512      32768         8        64     8      0.0025  0.5                     20
auto          16384 (<512)  2        <=64   <=4    0.0025  0.0002 res^2 / batch    batch/32*10
cifar         32768         2        64     32     0.0025  0.01                    500
============  ============  =======  =====  =====  ======  ======================  ========

Parameter counts of config F (tests pin them): 1024 px G 30,370,060 (mapping 2,101,248), D 29,012,513;
256 px G 30,034,338, D 28,864,129.

Training (section 3 and Appendix B; :class:`StyleGAN2`): non-saturating logistic loss, lazy R1 (gamma 10)
every 16 batches and path length regularisation (eq. 4; weight 2, decay 0.01, half batch) every 4 G steps,
each its own training phase from the first batch on (:mod:`gans.training.phases`), with the optimizers' lr
and Adam betas corrected for the intervals; style mixing 0.9, Adam lr 0.002 betas (0, 0.99), G EMA with a
10 kimg half-life (:class:`callbacks.EMA`). No progressive growing.

Augmentation: adaptive discriminator augmentation by default (``augment: ada``; Karras et al. 2020, "Training
Generative Adversarial Networks with Limited Data", arXiv:2006.06676), as the official stylegan2-ada-pytorch
``train.py`` (``--aug=ada``: the ``bgc`` pipeline, target 0.6, p adjusted every 4 batches, 0 to 1 in 500 kimg;
:class:`gans.nn.augment.AugmentPipe`). p starts at 0 and rises only while D overfits (r_t > 0.6), so on a large set
it stays near 0. ``augment: none`` is the StyleGAN2 paper's recipe (the official command that reproduces config F
passes ``--aug=noaug``; ``experiments/stylegan2_ffhq.yaml`` does the same).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from gans.checks import check_resolution
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.models.style.base import StyleBasedGAN, StyleGenerator, check_noise_mode
from gans.nn.equalized import EqualizedConv2d, EqualizedLinear, MinibatchStdDev
from gans.nn.resample import BINOMIAL_4, FIRFilter, upfirdn2d
from gans.nn.style import MappingNetwork, lrelu_agc, modulated_conv2d
from gans.training.gan_module import AugmentName

Architecture = Literal["orig", "skip", "resnet"]
ARCHITECTURES = ("orig", "skip", "resnet")
SQRT_HALF = math.sqrt(0.5)


def stylegan2_widths(img_resolution: int, channel_base: int = 32768, channel_max: int = 512) -> dict[int, int]:
    """Channels per resolution 4 ... ``img_resolution``: ``min(channel_base // resolution, channel_max)``."""
    top = check_resolution(img_resolution, 4, "StyleGAN2")
    return {2**k: min(channel_base // 2**k, channel_max) for k in range(2, top + 1)}


def _check_architecture(architecture: str, network: str) -> str:
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"Unknown {network} architecture {architecture!r}: choose one of {', '.join(ARCHITECTURES)} (StyleGAN2 section 4.1).")
    return architecture


# Generator.


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling x2), then noise, bias and leaky ReLU (Figure 2d)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False, fir: FIRFilter | None = None) -> None:
        super().__init__()
        self.resolution, self.up = resolution, up
        self.fir = fir if up else None
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.use_noise = True  # the style tools switch noise off per layer through this

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random", gain: float = 1.0) -> Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(
            x, self.weight, styles, demodulate=True, up=self.up, fir_kernel=None if self.fir is None else self.fir.kernel, fused=not self.training
        )
        if self.use_noise and noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return lrelu_agc(x + self.bias.reshape(1, -1, 1, 1), gain)

    def extra_repr(self) -> str:
        out_channels, in_channels = self.weight.shape[:2]
        return f"{in_channels}, {out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to RGB, without demodulation, plus bias (linear)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        return modulated_conv2d(x, self.weight, styles, demodulate=False, fused=not self.training) + self.bias.reshape(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (constant or upsampling conv0), conv1, toRGB; ``num_ws`` ws."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int, is_last: bool,
                 architecture: Architecture, fir_taps: Sequence[float] = BINOMIAL_4) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.architecture, self.is_last = in_channels, resolution, architecture, is_last
        self.fir = FIRFilter(fir_taps)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True, fir=self.fir)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = int(is_last or architecture == "skip")
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        if in_channels != 0 and architecture == "resnet":
            self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str = "random") -> tuple[Tensor, Tensor | None]:
        """``ws [N, num_conv + num_torgb, w_dim]``: one w per convolution, then the toRGB's."""
        if self.in_channels == 0:
            x = self.conv1(self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1), ws[:, 0], noise_mode)
        elif self.architecture == "resnet":
            y = self.fir.up(self.skip(x)) * SQRT_HALF
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = y + self.conv1(x, ws[:, 1], noise_mode, gain=SQRT_HALF)
        else:
            x = self.conv1(self.conv0(x, ws[:, 0], noise_mode), ws[:, 1], noise_mode)
        if img is not None:
            img = self.fir.up(img)
        if self.num_torgb:
            y = self.torgb(x, ws[:, self.num_conv])
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image; blocks ``b4`` ... ``b{img_resolution}`` as the official names."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int = 3, channel_base: int = 32768, channel_max: int = 512,
                 architecture: Architecture = "skip") -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.architecture = _check_architecture(architecture, "generator")
        self.widths = stylegan2_widths(img_resolution, channel_base, channel_max)
        self.num_ws = 0
        self.ws_resolutions: list[int] = []
        for res, channels in self.widths.items():
            block = SynthesisBlock(self.widths.get(res // 2, 0) if res > 4 else 0, channels, w_dim, res, img_channels,
                                   is_last=res == img_resolution, architecture=architecture)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
            self.ws_resolutions += [res] * block.num_conv
        self.num_ws += 1  # the last toRGB's
        self.ws_resolutions.append(img_resolution)

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise ConfigError(f"SynthesisNetwork takes ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}.")
        check_noise_mode(noise_mode)
        x = img = None
        first = 0
        for res in self.widths:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, first : first + block.num_conv + block.num_torgb], noise_mode)
            first += block.num_conv  # a block's toRGB shares its w with the next block's first convolution
        return img


class StyleGAN2Generator(StyleGenerator):
    """z (and labels) -> image: :class:`gans.nn.style.MappingNetwork` then :class:`SynthesisNetwork` (protocol: :mod:`gans.models.style.base`)."""

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        num_classes: int | Sequence[int] = 0,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
        channel_base: int = 32768,
        channel_max: int = 512,
        architecture: Architecture = "skip",
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        self.label_space = LabelSpace.from_num_classes(num_classes)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max, architecture)
        self.num_ws = self.synthesis.num_ws
        c_dim = sum(self.label_space.heads)
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta)


# Discriminator.


class DiscriminatorBlock(nn.Module):
    """One resolution of D: (fromRGB), a 3x3 convolution, a downsampling 3x3 convolution, (a 1x1 skip)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int, architecture: Architecture,
                 fir_taps: Sequence[float] = BINOMIAL_4) -> None:
        super().__init__()
        self.in_channels, self.architecture = in_channels, architecture
        self.fir = FIRFilter(fir_taps)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = EqualizedConv2d(img_channels, tmp_channels, 1)
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3)
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, padding=0, stride=2)  # after the FIR filter
        if architecture == "resnet":
            self.skip = EqualizedConv2d(tmp_channels, out_channels, 1, bias=False)

    def _down_conv(self, x: Tensor) -> Tensor:
        """FIR filter (padded so that the stride-2 3x3 convolution halves the size), then the convolution."""
        fk, k = self.fir.kernel.shape[-1], self.conv1.weight.shape[-1]
        pad = [k // 2 + (fk - 1) // 2, k // 2 + (fk - 2) // 2]
        return self.conv1(upfirdn2d(x, self.fir.kernel, padding=pad + pad))

    def forward(self, x: Tensor | None, img: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.in_channels == 0 or self.architecture == "skip":
            y = lrelu_agc(self.fromrgb(img))
            x = y if x is None else x + y
            img = self.fir.down(img) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(self.fir.down(x)) * SQRT_HALF
            x = lrelu_agc(self.conv0(x))
            x = y + lrelu_agc(self._down_conv(x), SQRT_HALF)
        else:
            x = lrelu_agc(self._down_conv(lrelu_agc(self.conv0(x))))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end of D: (fromRGB), minibatch stddev, 3x3 convolution, dense, output (or projection on ``cmap``)."""

    def __init__(self, channels: int, cmap_dim: int, img_channels: int, architecture: Architecture, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1) -> None:
        super().__init__()
        self.architecture, self.cmap_dim = architecture, cmap_dim
        if architecture == "skip":
            self.fromrgb = EqualizedConv2d(img_channels, channels, 1)
        self.mbstd = MinibatchStdDev(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = EqualizedConv2d(channels + mbstd_num_channels, channels, 3)
        self.fc = EqualizedLinear(channels * 16, channels)
        self.out = EqualizedLinear(channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: Tensor, img: Tensor | None, cmap: Tensor | None) -> Tensor:
        if self.architecture == "skip":
            x = x + lrelu_agc(self.fromrgb(img))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = lrelu_agc(self.conv(x))
        x = self.out(lrelu_agc(self.fc(x.flatten(1))))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class StyleGAN2Discriminator(nn.Module):
    """image (and labels) -> logits ``[N]``; blocks ``b{img_resolution}`` ... ``b8`` and the epilogue ``b4``."""

    def __init__(
        self,
        img_resolution: int = 1024,
        img_channels: int = 3,
        num_classes: int | Sequence[int] = 0,
        channel_base: int = 32768,
        channel_max: int = 512,
        architecture: Architecture = "resnet",
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        cmap_dim: int | None = None,
        mapping_layers: int = 8,
    ) -> None:
        super().__init__()
        self.img_resolution = img_resolution
        self.architecture = _check_architecture(architecture, "discriminator")
        self.label_space = LabelSpace.from_num_classes(num_classes)
        self.widths = stylegan2_widths(img_resolution, channel_base, channel_max)
        for res in reversed([r for r in self.widths if r > 4]):
            in_channels = self.widths[res] if res < img_resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_channels, self.widths[res], self.widths[res // 2], img_channels, architecture))
        c_dim = sum(self.label_space.heads)
        cmap_dim = (self.widths[4] if cmap_dim is None else cmap_dim) if c_dim else 0
        if c_dim:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=None, num_layers=mapping_layers, w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(self.widths[4], cmap_dim, img_channels, architecture, mbstd_group_size, mbstd_num_channels)

    def forward(self, img: Tensor, labels: Tensor | None = None) -> Tensor:
        if img.shape[-1] != self.img_resolution or img.shape[-2] != self.img_resolution:
            raise ConfigError(f"StyleGAN2Discriminator takes {self.img_resolution}x{self.img_resolution} images, got {tuple(img.shape[-2:])}.")
        x = None
        for res in reversed([r for r in self.widths if r > 4]):
            x, img = getattr(self, f"b{res}")(x, img)
        cmap = None
        if self.label_space.conditional:
            self.label_space.check(labels, type(self).__name__)
            cmap = self.mapping(None, self.label_space.multi_hot(labels))
        return self.b4(x, img, cmap).squeeze(1)


# Official weights.

RESAMPLE_FILTER_KEY = "resample_filter"


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor],
    network: nn.Module,
    name: str = "network",
    model: str = "StyleGAN2",
    settings: str = "img_resolution, channel_base, channel_max, mapping_layers, num_classes and architectures",
) -> dict[str, Tensor]:
    """An official stylegan2-ada-pytorch ``state_dict()`` of G or D, checked against ``network`` and ready for its
    ``load_state_dict``.

    Our modules carry the official parameter and buffer names, so the map is the identity on names; what
    this checks is that every tensor exists on both sides with the same shape, and that the official FIR
    ``resample_filter`` buffers (which our :class:`gans.nn.resample.FIRFilter` rebuilds from its taps and does
    not save) hold the filter we use. A missing or extra key, or a shape that differs (another resolution,
    channel count, mapping depth or class count), is a :class:`ConfigError` naming it and the ``settings`` of
    ``model`` to build it with (StyleGAN3's converter shares this one).
    """
    ours = network.state_dict()
    converted, problems = {}, []
    our_filter = None
    for key, value in state_dict.items():
        if key.endswith(RESAMPLE_FILTER_KEY):
            if our_filter is None:
                our_filter = next(m for m in network.modules() if isinstance(m, FIRFilter)).kernel
            if value.shape != our_filter.shape or not torch.allclose(value.float(), our_filter, atol=1e-6):
                problems.append(f"{key} is not the [1, 3, 3, 1] filter this network uses")
            continue
        if key not in ours:
            problems.append(f"unexpected {key} {tuple(value.shape)}")
        elif ours[key].shape != value.shape:
            problems.append(f"{key} has shape {tuple(value.shape)}, ours {tuple(ours[key].shape)}")
        else:
            converted[key] = value.detach().to(ours[key].dtype)
    problems += [f"missing {key}" for key in ours if key not in converted]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ConfigError(
            f"The official {name} state dict does not fit this {model} ({shown}): build the model with the official "
            f"network's {settings}."
        )
    return converted


# The LightningModule.


class StyleGAN2(StyleBasedGAN):
    """StyleGAN2's networks and training recipe (config F by default), lazy R1 and path length included, with ADA
    (``augment: ada``) as the official code's default; ``augment: none`` for the paper's config F.

    Add :class:`callbacks.EMA` (``half_life_kimg: 10``) as ``experiments/stylegan2_ffhq.yaml`` does; set
    ``r1_gamma`` for the data (the presets' table above).
    """

    def __init__(
        self,
        img_resolution: int = 1024,
        img_channels: int = 3,
        z_dim: int = 512,
        w_dim: int = 512,
        num_classes: int | Sequence[int] = 0,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
        channel_base: int = 32768,
        channel_max: int = 512,
        g_architecture: Architecture = "skip",
        d_architecture: Architecture = "resnet",
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        style_mixing_prob: float = 0.9,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        loss: str = "non_saturating",
        lr_g: float = 0.002,
        lr_d: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float = 10.0,
        r1_interval: int = 16,
        pl_weight: float = 2.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        augment: AugmentName = "ada",
        **kwargs: Any,
    ) -> None:
        """
        Args:
            img_resolution: image side, a power of two >= 4 (config F: 1024).
            img_channels: 3 for RGB.
            z_dim: latent size (512).
            w_dim: intermediate latent size (512).
            num_classes: 0 = unconditional; classes (or a list per head) for the StyleGAN2-ADA conditioning.
            mapping_layers: depth of the mapping network (config F: 8; the ``auto`` preset: 2). D's label
                mapping has the same depth, as in the official code.
            mapping_lr_multiplier: learning-rate multiplier of the mapping network (0.01).
            w_avg_beta: decay of the tracked average w (0.995).
            channel_base: channels are ``min(channel_base / resolution, channel_max)`` (config F: 32768).
            channel_max: the most channels at any resolution (512).
            g_architecture: ``skip`` (config F), ``resnet`` or ``orig``.
            d_architecture: ``resnet`` (config F), ``skip`` or ``orig``.
            mbstd_group_size: minibatch standard deviation group (4); the batch must be a multiple of it.
            mbstd_num_channels: minibatch standard deviation features (1).
            style_mixing_prob: style mixing regularisation probability (0.9).
            truncation_psi: truncation when sampling (grids, FID, predict); 1 = off.
            truncation_cutoff: truncate the first this many ws only; None = all.
            loss: non_saturating (the paper's logistic loss).
            lr_g: generator learning rate (config F: 0.002).
            lr_d: discriminator learning rate (config F: 0.002).
            betas: Adam betas (0, 0.99), before the lazy-regularisation correction.
            r1_gamma: R1 gamma (config F at 1024 px: 10; dataset dependent, see the presets); 0 = off.
            r1_interval: lazy R1 every this many batches (16, section 3.1); 1 = R1 in every D step.
            pl_weight: path length weight (2, eq. 4); 0 = off.
            pl_interval: path length every this many G steps (4); 1 = in every G step.
            pl_batch_shrink: the path length batch is the training batch divided by this (2).
            pl_decay: decay of the running mean path length (0.01).
            augment: what D sees (:class:`gans.training.gan_module.GANModule`): ``ada`` by default, as the official
                code (StyleGAN2-ADA; ``ada_target`` 0.6, ``ada_kimg`` 500, ``ada_interval`` 4); ``none`` for the
                StyleGAN2 paper's recipe; ``fixed`` or ``diffaugment``.
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (max_kimg, ...).
        """
        generator = StyleGAN2Generator(z_dim, w_dim, img_resolution, img_channels, num_classes, mapping_layers, mapping_lr_multiplier,
                                       w_avg_beta, channel_base, channel_max, g_architecture)
        discriminator = StyleGAN2Discriminator(img_resolution, img_channels, num_classes, channel_base, channel_max, d_architecture,
                                               mbstd_group_size, mbstd_num_channels, mapping_layers=mapping_layers)
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            z_dim=z_dim,
            num_classes=num_classes,
            style_mixing_prob=style_mixing_prob,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            loss=loss,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            r1_gamma=r1_gamma,
            r1_interval=r1_interval,
            pl_weight=pl_weight,
            pl_interval=pl_interval,
            pl_batch_shrink=pl_batch_shrink,
            pl_decay=pl_decay,
            augment=augment,
            **kwargs,
        )
        self.data_shape = (img_channels, img_resolution, img_resolution)

    def load_official_state_dicts(self, generator: Mapping[str, Tensor], discriminator: Mapping[str, Tensor] | None = None) -> None:
        """Load official stylegan2-ada-pytorch state dicts (``G.state_dict()``, ``D.state_dict()``; ``G_ema``'s
        also works as ``generator``) into G (and the EMA generator, when there is one) and D."""
        g = convert_official_state_dict(generator, self.generator, "generator")
        self.generator.load_state_dict(g)
        if getattr(self, "generator_ema", None) is not None:
            self.generator_ema.load_state_dict(g)
        if discriminator is not None:
            self.discriminator.load_state_dict(convert_official_state_dict(discriminator, self.discriminator, "discriminator"))

    @classmethod
    def from_official_state_dict(cls, generator: Mapping[str, Tensor], discriminator: Mapping[str, Tensor] | None = None, **kwargs: Any) -> "StyleGAN2":
        """A :class:`StyleGAN2` built with ``kwargs`` (the official network's resolution, channels, mapping depth,
        classes) holding the official weights. For the published pickles: unpickle them once in the official
        repository (they contain code) and ``torch.save({"G": G_ema.state_dict(), "D": D.state_dict()}, path)``;
        then ``torch.load(path, weights_only=True)`` here, with no code from the pickle run."""
        model = cls(**kwargs)
        model.load_official_state_dicts(generator, discriminator)
        return model
