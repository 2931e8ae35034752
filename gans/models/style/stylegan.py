"""StyleGAN: A Style-Based Generator Architecture for Generative Adversarial Networks
(Karras et al. 2019, arXiv:1812.04948), section 2, Figure 1b and Appendix C.

The networks of the paper's FFHQ 1024x1024 model (official ``networks_stylegan.py``: ``G_style``, ``G_mapping``,
``G_synthesis``, ``D_basic``), able to run at every lower resolution while they grow, as ProGAN's:

- **Mapping** f: z -> w (section 2, Figure 1b): :class:`gans.nn.style.MappingNetwork`, shared with StyleGAN2: z
  normalised, 8 dense layers of 512 with leaky ReLU and a learning-rate multiplier of 0.01, w broadcast to
  ``num_ws = 2 log2(img_resolution) - 2`` copies (18 at 1024), the average w tracked (decay 0.995) for the
  truncation trick (Appendix B; psi 0.7 on the first 8 ws in the official pictures).
- **Synthesis** g (Figure 1b): a learned 4x4x512 constant (initialised to ones); every layer ends with the
  *epilogue*: per-pixel N(0, 1) noise scaled by a learned per-channel weight (initialised to 0; "B"), a bias,
  leaky ReLU (0.2), instance normalisation and the style modulation (eq. 1, AdaIN: ``x * (y_s + 1) + y_b``
  with ``(y_s, y_b)`` one equalized-lr dense layer of w, "A"). The 4x4 block is the constant and a 3x3
  convolution; every higher block is a nearest x2 upsampling + 3x3 convolution followed by the binomial blur
  [1, 2, 1] (Appendix C), and a second 3x3 convolution; each layer reads its own w (:func:`gans.models.style.base.mix_styles`
  relies on it). Feature maps per resolution are ProGAN's ``min(8192 / 2^stage, 512)`` (512 up to 32x32, then 256,
  128, 64, 32 and 16 at 1024), each resolution has a linear 1x1 toRGB, and growing fades the new resolution's
  image in over the upsampled image of the previous one as ProGAN does.
- **Discriminator**: ProGAN's (:class:`gans.models.style.progan.ProGANDiscriminator`) with the [1, 2, 1] blur before every
  downsampling convolution, minibatch standard deviation (group 4, 1 feature). Conditional models score each
  class and keep the label's score (the official ``LabelSwitch``).
- Equalized learning rate everywhere (ProGAN section 4.1): gain sqrt(2) before leaky ReLUs, 1 for the style
  dense layers, the toRGB and D's output.

Parameter counts at 1024 (tests pin them): G 26,219,627, the paper's "26.2M trainable parameters, compared to
23.1M in the traditional generator" (section 2) and exactly the total the official ``pretrained_example.py`` prints
for the FFHQ generator. Like the official network, it counts the mapping (2,101,248) and the synthesis network with
the toRGB layers of every resolution, kept for growing; those of the lower resolutions add 7,608 (the final
network alone has 26,212,019, 26.2M too). D 23,077,137 (+ 10,112 for the lower fromRGB), ProGAN's 23.1M: the blur
has no parameters. The per-layer noise images are buffers, not parameters.

Training (Appendix C and the official FFHQ config; :class:`StyleGAN`): non-saturating logistic loss
with R1 (gamma 10) on the reals every D step, Adam lr 0.001 betas (0, 0.99) eps 1e-8, style mixing with
probability 0.9 (section 3.1), progressive growing from 8x8 (not 4x4) with 600k images per fade-in and per stable phase
and the official per-resolution batch sizes and learning rates (:class:`callbacks.ProgressiveGrowing`,
``experiments/stylegan_ffhq.yaml``), a generator EMA with a 10 kimg half-life (:class:`callbacks.EMA`).

Deviations from the official code (the first and third are reparameterisations that compute the same functions):

- The mapping network adds its bias before the sqrt(2) gain (StyleGAN2's form, shared with it) where v1 scales
  the weight by sqrt(2) and adds the bias after: ``lrelu(sqrt2 W x + b) = sqrt2 lrelu(W x + b / sqrt2)``, a
  reparameterisation of the bias (which starts at 0 either way).
- Class labels are embedded and normalised apart from z (StyleGAN2-ADA), not concatenated as raw embeddings
  before the normalisation of z (v1's ``LabelConcat``).
- The upsampling convolution is always nearest x2 then 3x3 (the official choice below 128x128). From 128x128 on the
  official code fuses them into one stride-2 transposed convolution, which equals this with the 3x3 kernel rotated
  by 180 degrees, a relabelling of the weights (a test checks it); D's 3x3 convolution then 2x2 average pooling
  equals the official fused stride-2 convolution exactly.
- Truncation is off by default when sampling (``truncation_psi`` 1), as the paper's FIDs are computed.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.checks import check_resolution
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.models.style.base import StyleBasedGAN, StyleGenerator, check_noise_mode
from gans.models.style.progan import (
    HE_GAIN,
    GrowingNetwork,
    ProGANDiscriminator,
    ProgressiveGrowth,
    lrelu,
    progan_widths,
)
from gans.nn.equalized import EqualizedConv2d, EqualizedLinear
from gans.nn.resample import BINOMIAL_3, FIRFilter
from gans.nn.style import MappingNetwork

WS_PER_RESOLUTION = 2  # two layers, each with its own w, per resolution


# The maths of the epilogue.


def instance_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Every feature map of every sample shifted and scaled to zero mean and unit variance over its pixels
    (computed in float32, as the official ``instance_norm``)."""
    y = x.float()  # [N, C, H, W]
    y = y - y.mean(dim=(2, 3), keepdim=True)
    y = y * torch.rsqrt(y.square().mean(dim=(2, 3), keepdim=True) + eps)
    return y.to(x.dtype)


def adain(x: Tensor, styles: Tensor, eps: float = 1e-8) -> Tensor:
    """Adaptive instance normalisation (section 2, eq. 1): ``instance_norm(x) * (y_s + 1) + y_b``, each feature
    map of ``x [N, C, H, W]`` given the mean ``y_b`` and standard deviation ``y_s + 1`` of ``styles [N, 2, C]``
    (the official parameterisation: a zero bias for y_s here is the paper's y_s bias initialised to one, Appendix C)."""
    n, c = x.shape[:2]
    if styles.shape != (n, 2, c):
        raise ValueError(f"adain: styles must be [N, 2, C] = [{n}, 2, {c}] for x of shape {tuple(x.shape)}, got {tuple(styles.shape)}.")
    scale, bias = styles[:, 0].reshape(n, c, 1, 1), styles[:, 1].reshape(n, c, 1, 1)
    return instance_norm(x, eps) * (scale + 1) + bias


# Generator.


class AdaIN(nn.Module):
    """The learned affine transform "A" of Figure 1b (an equalized-lr dense layer from w to ``(y_s, y_b)``, gain 1)
    and the AdaIN operation it feeds."""

    def __init__(self, w_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.affine = EqualizedLinear(w_dim, 2 * channels)

    def styles(self, w: Tensor) -> Tensor:
        """``[N, 2, C]``: ``(y_s, y_b)`` per channel."""
        return self.affine(w).reshape(-1, 2, self.channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return adain(x, self.styles(w))


class SynthesisLayer(nn.Module):
    """One layer of Figure 1b: a 3x3 convolution (after nearest x2 upsampling and followed by the [1, 2, 1] blur
    when ``up``; none for the learned constant, ``in_channels`` 0), then the epilogue: noise "B", bias, leaky ReLU,
    AdaIN with the style "A" of this layer's w."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False) -> None:
        super().__init__()
        self.resolution, self.up = resolution, up
        self.conv = EqualizedConv2d(in_channels, out_channels, 3, bias=False, gain=HE_GAIN) if in_channels else None
        self.blur = FIRFilter(BINOMIAL_3) if up else None
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))  # the official per-channel noise "weight"
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.adain = AdaIN(w_dim, out_channels)
        self.use_noise = True  # the style tools switch noise off per layer through this

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        # Convolution.
        if self.conv is not None:
            if self.up:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.conv(x)
            if self.blur is not None:
                x = self.blur(x)
        # Epilogue.
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            else:
                noise = self.noise_const.to(x.dtype)
            x = x + noise * self.noise_strength.reshape(1, -1, 1, 1)
        x = lrelu(x + self.bias.reshape(1, -1, 1, 1))
        return self.adain(x, w)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, up={self.up}"


class SynthesisBlock(nn.Module):
    """One resolution: ``layer0`` (the upsampling convolution, or at 4x4 the learned constant, initialised to
    ones), ``layer1`` (a 3x3 convolution), each reading one w, and this resolution's linear 1x1 ``torgb``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int) -> None:
        super().__init__()
        self.resolution = resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.ones(out_channels, resolution, resolution))
        self.layer0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=in_channels > 0)
        self.layer1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = EqualizedConv2d(out_channels, img_channels, 1)

    def forward(self, x: Tensor | None, ws: Tensor, noise_mode: str = "random") -> Tensor:
        """Features at this resolution; ``ws [N, 2, w_dim]``; ``x`` is None at 4x4."""
        if x is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = self.layer0(x, ws[:, 0], noise_mode)
        return self.layer1(x, ws[:, 1], noise_mode)


class SynthesisNetwork(GrowingNetwork):
    """ws ``[N, num_ws, w_dim]`` -> image at ``current_resolution``; blocks ``b4`` ... ``b{img_resolution}``.

    Block ``b{2^k}`` reads ws ``2k - 4`` and ``2k - 3`` (``ws_resolutions``); ws of the blocks above the stage are
    not read. While ``alpha < 1`` the image is ``lerp(upsample(torgb_low(x_low)), torgb(x), alpha)``.
    """

    def __init__(self, w_dim: int = 512, img_resolution: int = 1024, img_channels: int = 3, fmap_base: int = 8192, fmap_max: int = 512) -> None:
        super().__init__()
        check_resolution(img_resolution, 4, "StyleGAN")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.widths = progan_widths(img_resolution, fmap_base, fmap_max)
        for res, channels in self.widths.items():
            setattr(self, f"b{res}", SynthesisBlock(self.widths.get(res // 2, 0), channels, w_dim, res, img_channels))
        self.num_ws = WS_PER_RESOLUTION * len(self.widths)
        self.ws_resolutions = [res for res in self.widths for _ in range(WS_PER_RESOLUTION)]
        self.set_growth(img_resolution)

    @property
    def num_active_ws(self) -> int:
        """How many ws (from the first) the current stage reads, the fading-in block's included."""
        return WS_PER_RESOLUTION * (int(math.log2(self.current_resolution)) - 1)

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        check_noise_mode(noise_mode)
        if ws.dim() != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ConfigError(f"{type(self).__name__} takes ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}.")
        # Main layers.
        x = previous = None
        for i, res in enumerate(r for r in self.widths if r <= self.current_resolution):
            previous = x
            x = getattr(self, f"b{res}")(x, ws[:, WS_PER_RESOLUTION * i : WS_PER_RESOLUTION * (i + 1)], noise_mode)
        # ToRGB, with the fade-in of the newest resolution.
        r = self.current_resolution
        image = getattr(self, f"b{r}").torgb(x)
        if self.alpha < 1.0 and previous is not None:
            low = F.interpolate(getattr(self, f"b{r // 2}").torgb(previous), scale_factor=2, mode="nearest")
            image = torch.lerp(low, image, self.alpha)
        return image


class StyleGANGenerator(StyleGenerator):
    """z (and labels) -> image: :class:`gans.nn.style.MappingNetwork` then :class:`SynthesisNetwork` (protocol:
    :mod:`gans.models.style.base`); grows with its synthesis network (``set_growth``, ``current_resolution``, ``alpha``)."""

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
        fmap_base: int = 8192,
        fmap_max: int = 512,
    ) -> None:
        """
        Args:
            z_dim: latent size (512).
            w_dim: intermediate latent size (512).
            img_resolution: final image side, a power of two >= 4 (1024).
            img_channels: 3 for RGB.
            num_classes: 0 = unconditional; classes (or a list per head), embedded in the mapping network.
            mapping_layers: dense layers of the mapping network (8).
            mapping_lr_multiplier: learning-rate multiplier of the mapping network (0.01).
            w_avg_beta: decay of the tracked average w per training batch (0.995).
            fmap_base: feature maps are min(fmap_base / 2^stage, fmap_max) (8192).
            fmap_max: the most feature maps of a resolution (512).
        """
        super().__init__()
        if mapping_layers < 1:
            raise ConfigError(f"StyleGAN needs mapping_layers >= 1 (paper: 8), got {mapping_layers}.")
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        self.label_space = LabelSpace.from_num_classes(num_classes)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, fmap_base, fmap_max)
        self.num_ws = self.synthesis.num_ws
        c_dim = sum(self.label_space.heads)
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta)

    # Growth: the synthesis network holds the stage.

    @property
    def resolutions(self) -> list[int]:
        return self.synthesis.resolutions

    @property
    def current_resolution(self) -> int:
        return self.synthesis.current_resolution

    @property
    def alpha(self) -> float:
        return self.synthesis.alpha

    def set_growth(self, resolution: int, alpha: float = 1.0) -> None:
        self.synthesis.set_growth(resolution, alpha)


# Discriminator.


class StyleGANDiscriminator(ProGANDiscriminator):
    """ProGAN's discriminator with the [1, 2, 1] blur before every downsampling convolution (official ``D_basic``).

    Conditional (``num_classes``): the output layer scores every class and the label's score is the logit (the
    official ``LabelSwitch``, after Mescheder et al. 2018, arXiv:1801.04406); with several heads, the sum of each
    head's class score.
    """

    def __init__(self, img_resolution: int = 1024, img_channels: int = 3, num_classes: int | Sequence[int] = 0, fmap_base: int = 8192,
                 fmap_max: int = 512, mbstd_group_size: int = 4) -> None:
        label_space = LabelSpace.from_num_classes(num_classes)
        super().__init__(img_resolution, img_channels, fmap_base, fmap_max, mbstd_group_size, blur=True, out_features=max(sum(label_space.heads), 1))
        self.label_space = label_space

    def forward(self, image: Tensor, labels: Tensor | None = None) -> Tensor:
        scores = self.scores(image)  # [N, classes] (one column when unconditional)
        if not self.label_space.conditional:
            return scores[:, 0]
        self.label_space.check(labels, type(self).__name__)
        return (scores * self.label_space.multi_hot(labels, scores.dtype)).sum(dim=1)


# The LightningModule.


class StyleGAN(ProgressiveGrowth, StyleBasedGAN):
    """StyleGAN's networks and the paper's FFHQ recipe; stages set through ``set_growth`` (:class:`callbacks.ProgressiveGrowing`).

    Add :class:`callbacks.ProgressiveGrowing` (start 8, 600/600 kimg, the official batch sizes and learning rates per
    resolution) and :class:`callbacks.EMA` (``half_life_kimg: 10``) as ``experiments/stylegan_ffhq.yaml`` does.
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
        fmap_base: int = 8192,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
        style_mixing_prob: float = 0.9,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = 8,
        loss: str = "non_saturating",
        r1_gamma: float = 10.0,
        lr_g: float = 0.001,
        lr_d: float = 0.001,
        betas: tuple[float, float] = (0.0, 0.99),
        **kwargs: Any,
    ) -> None:
        """
        Args:
            img_resolution: final image side, a power of two >= 4 (FFHQ: 1024).
            img_channels: 3 for RGB.
            z_dim: latent size (512).
            w_dim: intermediate latent size (512).
            num_classes: 0 = unconditional; classes (or a list per head): embedded in G's mapping network, and D
                scores each class.
            mapping_layers: depth of the mapping network (8).
            mapping_lr_multiplier: learning-rate multiplier of the mapping network (0.01).
            w_avg_beta: decay of the tracked average w (0.995).
            fmap_base: feature maps are min(fmap_base / 2^stage, fmap_max) (8192).
            fmap_max: the most feature maps of a resolution (512).
            mbstd_group_size: minibatch standard deviation group (4); the batch per device must be a multiple of it.
            style_mixing_prob: style mixing regularisation probability (0.9; 0 = off).
            truncation_psi: truncation when sampling (grids, FID, predict); 1 = off (the paper's FIDs), 0.7 = the
                official pictures.
            truncation_cutoff: truncate the first this many ws only (official: 8, the 4x4 to 32x32 layers); None = all.
            loss: non_saturating (the paper's logistic loss).
            r1_gamma: R1 gamma on the reals, every D step (10).
            lr_g: generator learning rate (0.001; :class:`callbacks.ProgressiveGrowing` raises it at 128 px and up).
            lr_d: discriminator learning rate (0.001).
            betas: Adam betas (0, 0.99).
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (max_kimg, ...).
        """
        generator = StyleGANGenerator(z_dim, w_dim, img_resolution, img_channels, num_classes, mapping_layers, mapping_lr_multiplier,
                                      w_avg_beta, fmap_base, fmap_max)
        discriminator = StyleGANDiscriminator(img_resolution, img_channels, num_classes, fmap_base, fmap_max, mbstd_group_size)
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            z_dim=z_dim,
            num_classes=num_classes,
            style_mixing_prob=style_mixing_prob,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            loss=loss,
            r1_gamma=r1_gamma,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            **kwargs,
        )
        self.data_shape = (img_channels, img_resolution, img_resolution)

    def mixing_layers(self) -> int:
        """Style mixing's crossover is drawn among the layers the current stage reads, as the official ``G_style``
        does (``cur_layers``): at 8x8 the mixing happens in one of the first 4 layers, not in layers the stage never reads."""
        return self.generator.synthesis.num_active_ws
