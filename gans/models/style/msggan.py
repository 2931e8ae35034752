"""MSG-GAN: Multi-Scale Gradients for Generative Adversarial Networks (Karnewar & Wang, CVPR 2020, arXiv:1903.06048),
on ProGAN's networks (MSG-ProGAN, section 3 and Figure 2).

No progressive growing: both networks run at every resolution at once, and D's gradient reaches every block of G
directly.

- G: ProGAN's generator (:mod:`gans.models.style.progan`: equalized learning rate, pixel norm, the 4x4 dense input
  block, nearest upsampling and two 3x3 convolutions per block, ``min(fmap_base / 2^stage, fmap_max)`` channels) with a
  1x1 toRGB after every block: it emits an image at 4x4, 8x8, ..., ``img_resolution`` (:meth:`MSGGenerator.multi_scale`).
- D: ProGAN's discriminator without growing. The full-size image enters through a 1x1 fromRGB at the top; below it,
  the image of each scale joins D's main path at its block through a combine function phi (section 3), one of the
  three of the paper:

  - ``simple``:  phi_simple(x, a) = [x; a], the raw image concatenated to the activations (3 more channels);
  - ``lin_cat``: phi_lin_cat(x, a) = [r'(x); a], r' a 1x1 convolution of the image (a linear fromRGB), then
    concatenation. The official PyTorch MSG-ProGAN (akanimax/BMSG-GAN ``GAN.py``): r' gives half of the block's
    channels and the main path the other half;
  - ``cat_lin``: phi_cat_lin(x, a) = r'([a; x]), concatenation then a 1x1 convolution without bias back to the block's
    width (the official MSG-StyleGAN discriminator, akanimax/msg-stylegan-tf ``D_basic``).

  then minibatch standard deviation, a 3x3 convolution and the dense output at 4x4 (ProGAN's). D takes the list of
  images G emits, or one image ``[N, C, H, W]`` (the real batch), which it sees at every scale as its average-pooled
  versions (:meth:`MSGDiscriminator.pyramid`; BMSG-GAN's ``avg_pool2d(images, 2^i)``).

Parameter counts of BMSG-GAN's construction at depth 9, latent 512 (1024 px; ``fmap_base`` 8192, ``fmap_max`` 512,
``combine: lin_cat``): G 23,079,115 and D 18,756,321, as instantiating the official ``Generator(9, 512)`` and
``Discriminator(9, 512)`` gives (tests/test_msggan.py).

:class:`MSGGAN` is the LightningModule with the paper's recipe (section 4): the relativistic average hinge loss
(:func:`gans.training.losses.relativistic_average_hinge_d_loss`), Adam lr 0.003 for both networks with betas (0, 0.99)
(eps 1e-8, torch's default), one D step per G step. The official code averages G with decay 0.999 per step: add
:class:`callbacks.EMA` (the configs give its half-life in kimg).

Deviations from the official code:

- layers as ProGAN's (the paper's base model): z is pixel-normed, pixel norm and the leaky ReLU follow every
  convolution of G, toRGB has gain 1 and the top fromRGB a leaky ReLU; BMSG-GAN normalises the 4x4 block once, after
  its second convolution, uses gain sqrt(2) for every 1x1 layer and no activation after the top fromRGB. Parameter
  counts are the same.
- minibatch standard deviation over groups of ``mbstd_group_size`` (ProGAN's 4); BMSG-GAN takes it over the whole batch.
- the default combine function is BMSG-GAN's ``lin_cat``; the paper's text that says which of the three its
  MSG-ProGAN runs used was not at hand, so all three are selectable (``combine``).
- what D sees cannot be augmented or noised (ADA, DiffAugment, instance noise would need the same transform at every
  scale), and the penalties on interpolates or fakes (WGAN-GP, R2) and path length are refused; R1 works, its gradient
  taken with respect to the full-size real image through the pooled pyramid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.checks import check_resolution
from gans.errors import ConfigError
from gans.models.style.progan import (
    HE_GAIN,
    DiscriminatorBlock,
    DiscriminatorOutput,
    GeneratorBlock,
    GeneratorInput,
    lrelu,
    progan_widths,
)
from gans.nn.equalized import EqualizedConv2d
from gans.training.gan_module import GANModule

CombineName = Literal["simple", "lin_cat", "cat_lin"]
MIN_RESOLUTION = 8  # two scales at least: at 4x4 alone MSG-GAN is ProGAN's 4x4 stage


def check_combine(combine: str) -> None:
    if combine not in CombineName.__args__:
        raise ConfigError(f"Unknown combine {combine!r}: choose one of {', '.join(CombineName.__args__)} (model.init_args.combine).")


def main_path_widths(widths: dict[int, int], combine: str) -> dict[int, int]:
    """Channels of D's main path arriving at each resolution below the top (the output of the block above): half the
    block's width with ``lin_cat`` (the image's r'(x) fills the other half, as BMSG-GAN), else the full width."""
    return {r: w // 2 if combine == "lin_cat" else w for r, w in widths.items()}


# Generator.


class MSGGenerator(nn.Module):
    """z -> an image at every block: ``multi_scale(z)`` = ``[4x4, 8x8, ..., img_resolution]``; ``forward(z)`` = the
    full-size one only (what sampling, FID and ``predict`` draw)."""

    def __init__(self, z_dim: int = 512, img_resolution: int = 1024, img_channels: int = 3, fmap_base: int = 8192, fmap_max: int = 512) -> None:
        """
        Args:
            z_dim: latent size (paper: 512).
            img_resolution: output side, a power of two >= 8.
            img_channels: 3 for RGB.
            fmap_base: feature maps are min(fmap_base / 2^stage, fmap_max) (8192 = BMSG-GAN's 16 x latent 512).
            fmap_max: the most feature maps of a block (512).
        """
        super().__init__()
        check_resolution(img_resolution, MIN_RESOLUTION, "MSG-GAN")
        self.img_resolution = img_resolution
        self.widths = progan_widths(img_resolution, fmap_base, fmap_max)
        resolutions = list(self.widths)
        self.input = GeneratorInput(z_dim, self.widths[4])
        self.blocks = nn.ModuleDict({str(r): GeneratorBlock(self.widths[r // 2], self.widths[r]) for r in resolutions[1:]})
        self.to_rgb = nn.ModuleDict({str(r): EqualizedConv2d(self.widths[r], img_channels, 1) for r in resolutions})

    def features(self, z: Tensor) -> list[Tensor]:
        """Each block's output, 4x4 first: ``[N, widths[r], r, r]``."""
        x = self.input(z)
        outputs = [x]
        for r in list(self.widths)[1:]:
            x = self.blocks[str(r)](x)
            outputs.append(x)
        return outputs

    def multi_scale(self, z: Tensor, labels: Tensor | None = None) -> list[Tensor]:
        """The image of every block, ``[N, C, r, r]`` for r = 4 ... img_resolution (what D sees of a fake)."""
        return [self.to_rgb[str(r)](x) for r, x in zip(self.widths, self.features(z))]

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The full-size image ``[N, C, img_resolution, img_resolution]`` (no lower toRGB is computed)."""
        return self.to_rgb[str(self.img_resolution)](self.features(z)[-1])


# Discriminator: the combine functions phi of section 3, then the network.


class SimpleCombine(nn.Module):
    """phi_simple(x, a) = [x; a]: the image's channels concatenated to the activations."""

    def __init__(self, main_channels: int, img_channels: int) -> None:
        super().__init__()
        self.out_channels = img_channels + main_channels

    def forward(self, activations: Tensor, image: Tensor) -> Tensor:
        return torch.cat([image, activations], dim=1)  # [N, C_img + C_a, r, r]


class LinCatCombine(nn.Module):
    """phi_lin_cat(x, a) = [r'(x); a]: a linear 1x1 convolution of the image (no activation), then concatenation."""

    def __init__(self, main_channels: int, img_channels: int, rgb_channels: int) -> None:
        super().__init__()
        self.from_rgb = EqualizedConv2d(img_channels, rgb_channels, 1, gain=HE_GAIN)
        self.out_channels = rgb_channels + main_channels

    def forward(self, activations: Tensor, image: Tensor) -> Tensor:
        return torch.cat([self.from_rgb(image), activations], dim=1)  # [N, C_rgb + C_a, r, r]


class CatLinCombine(nn.Module):
    """phi_cat_lin(x, a) = r'([a; x]): concatenation, then a linear 1x1 convolution without bias to ``out_channels``."""

    def __init__(self, main_channels: int, img_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = EqualizedConv2d(main_channels + img_channels, out_channels, 1, bias=False, gain=HE_GAIN)
        self.out_channels = out_channels

    def forward(self, activations: Tensor, image: Tensor) -> Tensor:
        return self.conv(torch.cat([activations, image], dim=1))  # [N, C_out, r, r]


def make_combine(combine: str, width: int, main_channels: int, img_channels: int) -> nn.Module:
    """The combine function ``combine`` at a resolution of ``width`` feature maps whose main path carries ``main_channels``."""
    check_combine(combine)
    if combine == "simple":
        return SimpleCombine(main_channels, img_channels)
    if combine == "lin_cat":
        return LinCatCombine(main_channels, img_channels, width - main_channels)
    return CatLinCombine(main_channels, img_channels, width)


class MSGDiscriminator(nn.Module):
    """Images at every scale -> logit ``[N]``; ``forward(images, labels=None)``, ``images`` a list (4x4 first) or one
    full-size batch seen through :meth:`pyramid`."""

    def __init__(self, img_resolution: int = 1024, img_channels: int = 3, fmap_base: int = 8192, fmap_max: int = 512,
                 combine: CombineName = "lin_cat", mbstd_group_size: int = 4) -> None:
        """
        Args:
            img_resolution: the largest scale, a power of two >= 8.
            img_channels: 3 for RGB.
            fmap_base: feature maps are min(fmap_base / 2^stage, fmap_max).
            fmap_max: the most feature maps of a block.
            combine: how each lower scale joins the main path: simple, lin_cat (BMSG-GAN) or cat_lin (msg-stylegan-tf).
            mbstd_group_size: minibatch standard deviation group; the batch must be a multiple of it.
        """
        super().__init__()
        check_resolution(img_resolution, MIN_RESOLUTION, "MSG-GAN")
        check_combine(combine)
        self.img_resolution = img_resolution
        self.widths = widths = progan_widths(img_resolution, fmap_base, fmap_max)
        main = main_path_widths(widths, combine)
        lower = [r for r in widths if r < img_resolution]
        self.from_rgb = EqualizedConv2d(img_channels, widths[img_resolution], 1, gain=HE_GAIN)
        self.combine = nn.ModuleDict({str(r): make_combine(combine, widths[r], main[r], img_channels) for r in lower})
        block_in = {img_resolution: widths[img_resolution], **{r: self.combine[str(r)].out_channels for r in lower}}
        self.blocks = nn.ModuleDict({str(r): DiscriminatorBlock(block_in[r], main[r // 2]) for r in widths if r > 4})
        self.output = DiscriminatorOutput(block_in[4], mbstd_group_size)

    @property
    def resolutions(self) -> list[int]:
        return list(self.widths)

    def pyramid(self, image: Tensor) -> list[Tensor]:
        """``image`` at every scale, 4x4 first: average-pooled by img_resolution / r (the full size as it is)."""
        if image.shape[-1] != self.img_resolution or image.shape[-2] != self.img_resolution:
            raise ConfigError(f"MSG-GAN's discriminator takes {self.img_resolution}x{self.img_resolution} images, got {tuple(image.shape[-2:])}: "
                              f"set data.init_args.img_resolution to model.init_args.img_resolution.")
        return [F.avg_pool2d(image, self.img_resolution // r) if r < self.img_resolution else image for r in self.widths]

    def forward(self, images: Tensor | Sequence[Tensor], labels: Tensor | None = None) -> Tensor:
        scales = self.pyramid(images) if isinstance(images, Tensor) else list(images)
        if [s.shape[-1] for s in scales] != self.resolutions:
            raise ConfigError(f"MSG-GAN's discriminator takes one image per scale {self.resolutions}, got sides {[s.shape[-1] for s in scales]}.")
        # The full-size image.
        x = lrelu(self.from_rgb(scales[-1]))
        x = self.blocks[str(self.img_resolution)](x)
        # Every lower scale joins the main path at its block.
        for r, image in zip(reversed(self.resolutions[:-1]), reversed(scales[:-1])):
            x = self.combine[str(r)](x, image)
            if r > 4:
                x = self.blocks[str(r)](x)
        # Minibatch stddev, 3x3 convolution, dense layers.
        return self.output(x)[:, 0]


# The LightningModule.

# Settings that would have to act on every scale of what D sees, or that differentiate with respect to one image.
UNSUPPORTED = {
    "augment": ("none", "ADA / DiffAugment would have to apply one transform to every scale D sees: set model.init_args.augment: none"),
    "instance_noise_std": (0.0, "instance noise on a pyramid of images is not defined here: set model.init_args.instance_noise_std: 0"),
    "gp_weight": (0.0, "WGAN-GP interpolates single images: set model.init_args.gp_weight: 0 (R1, r1_gamma, works)"),
    "r2_gamma": (0.0, "R2 differentiates with respect to one fake image: set model.init_args.r2_gamma: 0 (R1, r1_gamma, works)"),
    "pl_weight": (0.0, "the path length penalty is StyleGAN2's: set model.init_args.pl_weight: 0"),
    "num_classes": (0, "MSG-GAN is unconditional: set model.init_args.num_classes: 0"),
}


class MSGGAN(GANModule):
    """MSG-ProGAN with the paper's recipe. ``forward(z)`` gives every scale (what D sees); ``sample`` the full-size images."""

    def __init__(
        self,
        img_resolution: int = 1024,
        img_channels: int = 3,
        z_dim: int = 512,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        combine: CombineName = "lin_cat",
        mbstd_group_size: int = 4,
        loss: str = "relativistic_average_hinge",
        n_critic: int = 1,
        lr_g: float = 0.003,
        lr_d: float = 0.003,
        betas: tuple[float, float] = (0.0, 0.99),
        **kwargs,
    ) -> None:
        """
        Args:
            img_resolution: the largest scale, a power of two >= 8 (paper: up to 1024).
            img_channels: 3 for RGB.
            z_dim: latent size (paper: 512).
            fmap_base: feature maps are min(fmap_base / 2^stage, fmap_max) (8192: BMSG-GAN's widths at latent 512).
            fmap_max: the most feature maps of a block (512).
            combine: phi of section 3: simple ([x; a]), lin_cat ([r'(x); a], BMSG-GAN) or cat_lin (r'([a; x])).
            mbstd_group_size: minibatch standard deviation group (ProGAN: 4); the batch must be a multiple of it.
            loss: relativistic_average_hinge (the paper's RaHinge); any loss of :mod:`gans.training.losses`.
            n_critic: D steps per G step (1).
            lr_g: generator learning rate (paper: 0.003).
            lr_d: discriminator learning rate (paper: 0.003).
            betas: Adam betas (paper: 0, 0.99).
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (r1_gamma, drift_weight, max_kimg, ...).
        """
        check_combine(combine)
        super().__init__(
            generator=MSGGenerator(z_dim, img_resolution, img_channels, fmap_base, fmap_max),
            discriminator=MSGDiscriminator(img_resolution, img_channels, fmap_base, fmap_max, combine, mbstd_group_size),
            z_dim=z_dim,
            loss=loss,
            n_critic=n_critic,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            **kwargs,
        )
        for name, (off, fix) in UNSUPPORTED.items():
            if self.hparams[name] != off:
                raise ConfigError(f"MSGGAN does not support {name}={self.hparams[name]!r}: {fix}.")
        self.data_shape = (img_channels, img_resolution, img_resolution)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> list[Tensor]:
        """Every scale of G's output, 4x4 first (the training steps feed them to D); :meth:`sample` gives the full-size images."""
        return self.generator.multi_scale(z, labels)
