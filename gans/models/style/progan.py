"""ProGAN networks: Progressive Growing of GANs for Improved Quality, Stability, and Variation
(Karras et al. 2018, arXiv:1710.10196), Table 2 and section 4.

The generator and discriminator of the paper's 1024x1024 CelebA-HQ network, built for any
power-of-two ``img_resolution`` and able to run at every lower resolution with a fade-in:

- equalized learning rate everywhere (:class:`gans.nn.equalized.EqualizedConv2d` / ``EqualizedLinear``,
  He's gain sqrt(2) before a leaky ReLU (0.2), 1 for toRGB and D's output);
- G: pixel norm on z and after every convolution; the 4x4 block is a dense layer from z to 4x4x512
  (the paper's "Conv 4x4" on a 1x1 input, with gain sqrt(2)/4 as in the official code) and a 3x3
  convolution; every other block is nearest-neighbour upsampling and two 3x3 convolutions;
- D: 1x1 fromRGB, blocks of two 3x3 convolutions and 2x2 average pooling, then minibatch standard
  deviation (group 4), a 3x3 convolution, a dense layer to 512 and a dense output;
- channels 512 up to 32x32, halving to 16 at 1024 (``min(fmap_base / 2^stage, fmap_max)``);
- growing: both networks work at ``current_resolution`` (a power of two up to ``img_resolution``) and,
  while ``alpha < 1``, blend the new highest-resolution block with the upsampled (G) or downsampled
  (D) path of the previous resolution, as in section 2 and Figure 2.

Parameter counts at 1024: G 23,071,507 and D 23,077,137 (the paper's 23.1M each), counting the
networks the final resolution uses; the toRGB / fromRGB layers of the lower resolutions, kept for
growing, add 7,608 and 10,112.

:class:`ProGAN` is the LightningModule with the paper's recipe (section 4 and Appendix A.1): WGAN-GP
(lambda 10) plus the drift term 0.001 E[D(x)^2], one critic step per generator step, Adam lr 1e-3,
betas (0, 0.99), latent 512. Add :class:`callbacks.EMA` for the paper's averaged generator.

Growth protocol, for the progressive-growing callback (and anyone driving the stages by hand), in the
:class:`ProgressiveGrowth` mixin that StyleGAN (:mod:`gans.models.style.stylegan`) shares:
``set_growth(resolution, alpha)`` moves G, D and the EMA generator to a stage; ``current_resolution``
and ``alpha`` read it back; ``resolutions`` lists the stages. Training batches may come at any higher
resolution: :meth:`ProgressiveGrowth.real_at_stage` (applied to every training batch in ``unpack_batch``) average-pools
them to the stage and, during a fade-in, blends them with their own upsampled half-resolution version by the same
``alpha`` as the networks (the official ``process_reals``). The networks' side of it is :class:`GrowingNetwork`.

The schedule of stages (kimg per fade-in and stable phase, batch size and learning rate per
resolution) is :class:`callbacks.ProgressiveGrowing`.

Deviations from the paper: G's output is the linear toRGB (as the official code), not clamped.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.checks import check_resolution
from gans.errors import ConfigError
from gans.nn.equalized import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
)
from gans.nn.resample import BINOMIAL_3, FIRFilter
from gans.training import contracts
from gans.training.gan_module import GANModule

LRELU_SLOPE = 0.2
HE_GAIN = math.sqrt(2)


def progan_widths(img_resolution: int, fmap_base: int = 8192, fmap_max: int = 512) -> dict[int, int]:
    """Feature maps per resolution: ``min(fmap_base / 2^stage, fmap_max)`` with stage 1 at 4x4
    (official code's ``nf``), so 512 up to 32x32, then 256, 128, 64, 32 and 16 at 1024."""
    top = check_resolution(img_resolution, 4, "ProGAN")
    return {2**k: min(fmap_base // 2 ** (k - 1), fmap_max) for k in range(2, top + 1)}


def lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


class GeneratorBlock(nn.Module):
    """Upsample x2 (nearest), then two 3x3 convolutions, each followed by leaky ReLU and pixel norm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, out_channels, 3, gain=HE_GAIN)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3, gain=HE_GAIN)
        self.norm = PixelNorm()

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(lrelu(self.conv0(x)))
        return self.norm(lrelu(self.conv1(x)))


class GeneratorInput(nn.Module):
    """z (pixel-normed) -> dense to 4x4 feature maps -> 3x3 convolution; leaky ReLU and pixel norm after each."""

    def __init__(self, z_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.dense = EqualizedLinear(z_dim, channels * 16, bias=False, gain=HE_GAIN / 4)
        self.bias = nn.Parameter(torch.zeros(channels))  # one per feature map, as the official apply_bias
        self.conv = EqualizedConv2d(channels, channels, 3, gain=HE_GAIN)
        self.norm = PixelNorm()

    def forward(self, z: Tensor) -> Tensor:
        x = self.dense(self.norm(z)).reshape(-1, self.channels, 4, 4) + self.bias.reshape(1, -1, 1, 1)  # [N, C, 4, 4]
        x = self.norm(lrelu(x))
        return self.norm(lrelu(self.conv(x)))


class GrowingNetwork(nn.Module):
    """A network that runs at any of its resolutions (``widths``' keys), with the newest block faded in by ``alpha``
    (section 2, Figure 2). ProGAN's and StyleGAN's generators and discriminators are built on it."""

    img_resolution: int
    widths: dict[int, int]

    @property
    def resolutions(self) -> list[int]:
        """The stages, 4 ... img_resolution."""
        return list(self.widths)

    def set_growth(self, resolution: int, alpha: float = 1.0) -> None:
        """Run at ``resolution`` (a power of two, 4 ... img_resolution), with the newest block weighted ``alpha``."""
        if resolution not in self.widths:
            raise ConfigError(f"{type(self).__name__} has no {resolution}x{resolution} stage: choose one of {list(self.widths)}.")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"The fade-in alpha must be in [0, 1], got {alpha}.")
        self.current_resolution, self.alpha = int(resolution), float(alpha)

    # The stage travels in the state dict (as ``<network>._extra_state``), so that whatever carries the weights carries
    # it: checkpoints (resume, predict) and the weights ``ddp_spawn`` / ``ddp_fork`` hand back to the launching process.

    def get_extra_state(self) -> Tensor:
        """``[resolution, alpha]`` (float64: both exact)."""
        return torch.tensor([self.current_resolution, self.alpha], dtype=torch.float64)

    def set_extra_state(self, state: Tensor) -> None:
        self.set_growth(int(state[0]), float(state[1]))

    def extra_repr(self) -> str:
        return f"img_resolution={self.img_resolution}, current_resolution={self.current_resolution}, alpha={self.alpha:g}"


class ProGANGenerator(GrowingNetwork):
    """z -> image at ``current_resolution``; ``forward(z, labels=None)`` as every generator in the package."""

    def __init__(self, z_dim: int = 512, img_resolution: int = 1024, img_channels: int = 3, fmap_base: int = 8192, fmap_max: int = 512) -> None:
        super().__init__()
        self.img_resolution = img_resolution
        self.widths = progan_widths(img_resolution, fmap_base, fmap_max)
        resolutions = list(self.widths)
        self.input = GeneratorInput(z_dim, self.widths[4])
        self.blocks = nn.ModuleDict({str(r): GeneratorBlock(self.widths[r // 2], self.widths[r]) for r in resolutions[1:]})
        self.to_rgb = nn.ModuleDict({str(r): EqualizedConv2d(self.widths[r], img_channels, 1) for r in resolutions})
        self.set_growth(img_resolution)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        x, previous = self.input(z), None
        for r in (r for r in self.widths if 4 < r <= self.current_resolution):
            previous = x
            x = self.blocks[str(r)](x)
        image = self.to_rgb[str(self.current_resolution)](x)
        if self.alpha < 1.0 and previous is not None:  # fade-in: blend with the upsampled lower-resolution image
            low = F.interpolate(self.to_rgb[str(self.current_resolution // 2)](previous), scale_factor=2, mode="nearest")
            image = torch.lerp(low, image, self.alpha)
        return image


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions with leaky ReLU, then 2x2 average pooling.

    With ``blur`` (StyleGAN's discriminator, official ``D_basic``) the second convolution reads the input
    low-pass filtered with the binomial filter [1, 2, 1] and is pooled before its leaky ReLU:
    ``lrelu(pool(conv1(blur(lrelu(conv0(x))))))``.
    """

    def __init__(self, in_channels: int, out_channels: int, blur: bool = False) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, gain=HE_GAIN)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, gain=HE_GAIN)
        self.blur = FIRFilter(BINOMIAL_3) if blur else None

    def forward(self, x: Tensor) -> Tensor:
        x = lrelu(self.conv0(x))
        if self.blur is not None:
            return lrelu(F.avg_pool2d(self.conv1(self.blur(x)), 2))
        return F.avg_pool2d(lrelu(self.conv1(x)), 2)


class DiscriminatorOutput(nn.Module):
    """Minibatch stddev -> 3x3 convolution -> dense to ``channels`` -> dense to ``out_features`` scores ``[N, out_features]`` (4x4 input)."""

    def __init__(self, channels: int, mbstd_group_size: int = 4, out_features: int = 1) -> None:
        super().__init__()
        self.mbstd = MinibatchStdDev(mbstd_group_size, 1)
        self.conv = EqualizedConv2d(channels + 1, channels, 3, gain=HE_GAIN)
        self.dense = EqualizedLinear(channels * 16, channels, gain=HE_GAIN)
        self.out = EqualizedLinear(channels, out_features, gain=1.0)

    def forward(self, x: Tensor) -> Tensor:
        x = lrelu(self.conv(self.mbstd(x)))
        return self.out(lrelu(self.dense(x.flatten(1))))


class ProGANDiscriminator(GrowingNetwork):
    """Image at ``current_resolution`` -> logit ``[N]``; ``forward(x, labels=None)`` as every discriminator here."""

    def __init__(self, img_resolution: int = 1024, img_channels: int = 3, fmap_base: int = 8192, fmap_max: int = 512,
                 mbstd_group_size: int = 4, blur: bool = False, out_features: int = 1) -> None:
        """
        Args:
            img_resolution: final image side, a power of two >= 4.
            img_channels: 3 for RGB.
            fmap_base: feature maps are min(fmap_base / 2^stage, fmap_max).
            fmap_max: the most feature maps of a stage.
            mbstd_group_size: minibatch standard deviation group; the batch must be a multiple of it.
            blur: StyleGAN's [1, 2, 1] filter before every downsampling convolution (:class:`DiscriminatorBlock`); False = ProGAN.
            out_features: scores per image from :meth:`scores` (StyleGAN's conditional D: one per class); ``forward``
                returns the first (subclasses with several pick one per label).
        """
        super().__init__()
        self.img_resolution = img_resolution
        self.widths = progan_widths(img_resolution, fmap_base, fmap_max)
        resolutions = list(self.widths)
        self.from_rgb = nn.ModuleDict({str(r): EqualizedConv2d(img_channels, self.widths[r], 1, gain=HE_GAIN) for r in resolutions})
        self.blocks = nn.ModuleDict({str(r): DiscriminatorBlock(self.widths[r], self.widths[r // 2], blur) for r in resolutions[1:]})
        self.output = DiscriminatorOutput(self.widths[4], mbstd_group_size, out_features)
        self.set_growth(img_resolution)

    def scores(self, image: Tensor) -> Tensor:
        """``[N, out_features]`` for images at ``current_resolution``."""
        r = self.current_resolution
        if image.shape[-1] != r:
            raise ConfigError(f"{type(self).__name__} runs at {r}x{r} but got {tuple(image.shape[-2:])} images: resize them to the current resolution.")
        x = lrelu(self.from_rgb[str(r)](image))
        if r > 4:
            x = self.blocks[str(r)](x)
            if self.alpha < 1.0:  # fade-in: blend with the downsampled image's lower-resolution path
                low = lrelu(self.from_rgb[str(r // 2)](F.avg_pool2d(image, 2)))
                x = torch.lerp(low, x, self.alpha)
        for lower in (q for q in reversed(self.widths) if 4 < q < r):
            x = self.blocks[str(lower)](x)
        return self.output(x)

    def forward(self, image: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.scores(image)[:, 0]


class ProgressiveGrowth:
    """The growth contract of :class:`callbacks.ProgressiveGrowing` (:class:`gans.training.contracts.GrowingModel`) for
    a GAN module whose generator and discriminator are :class:`GrowingNetwork` s (mixed in before the module's base:
    ``class ProGAN(ProgressiveGrowth, GANModule)``; StyleGAN uses it too).

    ``set_growth`` moves G, D and the EMA generator together; real batches are brought to the stage in
    ``unpack_batch`` (:meth:`real_at_stage`); samples are upsampled to ``img_resolution``; the stage is kept in the
    networks' state dicts (checkpoints, the weights ``ddp_spawn`` returns). The module's hparams must hold ``img_resolution``.
    """

    generator: nn.Module
    discriminator: nn.Module

    @property
    def resolutions(self) -> list[int]:
        """The growth stages, 4 ... img_resolution."""
        return list(self.generator.resolutions)

    @property
    def current_resolution(self) -> int:
        return self.generator.current_resolution

    @property
    def alpha(self) -> float:
        return self.generator.alpha

    def set_growth(self, resolution: int, alpha: float = 1.0) -> None:
        """Move G, D and the EMA generator (if any) to the stage ``resolution`` with fade-in weight ``alpha``."""
        for network in (self.generator, self.discriminator, contracts.ema_copy(self, "generator")):
            if network is not None:
                network.set_growth(resolution, alpha)

    def real_at_stage(self, images: Tensor) -> Tensor:
        """Real images as the current stage sees them: average-pooled to ``current_resolution``, and during a
        fade-in blended with their nearest-upsampled half-resolution version, ``lerp(low, x, alpha)``."""
        r = self.current_resolution
        if images.shape[-1] % r or images.shape[-2] != images.shape[-1]:
            raise ConfigError(
                f"{type(self).__name__} at {r}x{r} needs square real images whose side is a multiple of {r}, got {tuple(images.shape[-2:])}."
            )
        if images.shape[-1] != r:
            images = F.avg_pool2d(images, images.shape[-1] // r)
        if self.alpha < 1.0 and r > 4:
            low = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="nearest")
            images = torch.lerp(low, images, self.alpha)
        return images

    def unpack_batch(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """The training batch's images at the current stage (:meth:`real_at_stage`). Done here, inside
        ``training_step``, so that the stage a callback sets in ``on_train_batch_start`` applies to this batch."""
        real, labels = super().unpack_batch(batch)
        return self.real_at_stage(real), labels

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None, **options: Any) -> Tensor:
        """Samples at the current stage (``options``: those of the base module's ``sample``, e.g. truncation),
        nearest-upsampled to ``img_resolution`` so that sample grids, FID and ``predict`` always see full-size
        images (:class:`callbacks.ProgressiveGrowing` logs when this happens)."""
        images = super().sample(n, labels=labels, z=z, **options)
        if images.shape[-1] != self.hparams.img_resolution:
            images = F.interpolate(images, size=self.hparams.img_resolution, mode="nearest")
        return images

    # The stage travels in the state dict of every GrowingNetwork (G, D, the EMA copy of G).

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint written while the stage travelled beside the state dict (``checkpoint["growth"]``): its stage
        is given to every growing network the state dict holds, the EMA copy's included."""
        super().on_load_checkpoint(checkpoint)
        growth, state = checkpoint.get("growth"), checkpoint.get("state_dict")
        if growth is None or state is None:
            return
        names = {name for name, module in self.named_modules() if isinstance(module, GrowingNetwork)}
        ema = contracts.ema_name("generator")  # created when the state dict loads (AdversarialModule.load_state_dict)
        names |= {ema + name[len("generator"):] for name in names if name.split(".")[0] == "generator"}
        stage = torch.tensor([growth["resolution"], growth["alpha"]], dtype=torch.float64)
        for name in names:
            if any(key.startswith(f"{name}.") for key in state):
                state.setdefault(f"{name}._extra_state", stage)


class ProGAN(ProgressiveGrowth, GANModule):
    """ProGAN's networks with the paper's training recipe; stages set through :meth:`set_growth`."""

    def __init__(
        self,
        img_resolution: int = 1024,
        img_channels: int = 3,
        z_dim: int = 512,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        mbstd_group_size: int = 4,
        loss: str = "wasserstein",
        gp_weight: float = 10.0,
        drift_weight: float = 0.001,
        n_critic: int = 1,
        lr_g: float = 1e-3,
        lr_d: float = 1e-3,
        betas: tuple[float, float] = (0.0, 0.99),
        **kwargs,
    ) -> None:
        """
        Args:
            img_resolution: final image side, a power of two >= 4 (paper: 1024).
            img_channels: 3 for RGB.
            z_dim: latent size (paper: 512).
            fmap_base: feature maps are min(fmap_base / 2^stage, fmap_max) (paper: 8192).
            fmap_max: the most feature maps of a stage (paper: 512).
            mbstd_group_size: minibatch standard deviation group (paper: 4); the batch must be a multiple of it.
            loss: wasserstein (paper).
            gp_weight: WGAN-GP lambda (paper: 10).
            drift_weight: epsilon_drift on E[D(x)^2] (paper: 0.001).
            n_critic: critic steps per generator step (paper: 1).
            lr_g: generator learning rate (paper: 0.001).
            lr_d: discriminator learning rate (paper: 0.001).
            betas: Adam betas (paper: 0, 0.99).
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (tricks, max_kimg, ...).
        """
        super().__init__(
            generator=ProGANGenerator(z_dim, img_resolution, img_channels, fmap_base, fmap_max),
            discriminator=ProGANDiscriminator(img_resolution, img_channels, fmap_base, fmap_max, mbstd_group_size),
            z_dim=z_dim,
            loss=loss,
            gp_weight=gp_weight,
            drift_weight=drift_weight,
            n_critic=n_critic,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            **kwargs,
        )
        self.data_shape = (img_channels, img_resolution, img_resolution)
