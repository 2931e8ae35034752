"""The networks of image-to-image translation: pix2pix's U-Net generator and PatchGAN discriminators
(Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks", arXiv:1611.07004) and
CycleGAN's ResNet generator (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", arXiv:1703.10593, after Johnson et al. 2016). Pure ``nn.Module``\\ s; the training modules
are ``gans.models.translation.pix2pix`` and ``gans.models.translation.cyclegan``.

- :class:`UNetGenerator`: encoder C64-C128-C256-C512-C512-C512-C512-C512, decoder
  CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128 (pix2pix appendix 6.1.1; the decoder's widths count the
  concatenated skip), 4x4 stride-2 convolutions, a 1x1 bottleneck at 256 px.
- :class:`PatchGANDiscriminator`: C64-C128-C256-C512 then a 1-channel convolution (appendix 6.1.2), the
  70x70 PatchGAN at ``n_layers=3`` (16x16 at 1, 286x286 at 5); :class:`PixelDiscriminator`, the 1x1 PixelGAN.
- :class:`ResnetGenerator`: c7s1-64, d128, d256, R256 x ``n_blocks``, u128, u64, c7s1-3 (CycleGAN appendix 7.2).
- :func:`receptive_field`: the input window one output of a convolution stack sees, from its layers.

Widths, biases and initialisation follow the official PyTorch code (junyanz/pytorch-CycleGAN-and-pix2pix,
``models/networks.py``): convolutions followed by batch norm have no bias (instance norm, affine-free, keeps
them), weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0 (``init_type normal``). Parameter counts
at the papers' settings: U-Net 256 with batch norm 54,413,955; the 70x70 PatchGAN on 6 channels with batch
norm 2,768,705, on 3 channels with instance norm (CycleGAN) 2,764,737; the 9-block ResNet with instance norm
11,378,179, counted from the official module definitions (its training log prints pix2pix's G and D rounded:
54.414 M and 2.769 M).

Deviations from the official PyTorch code:

- The U-Net's test-time dropout sits on the first three decoder layers counted from the bottleneck (CD512,
  CD1024, CD1024), as the paper's table and its original Torch code (``defineG_unet``: d1, d2, d3); the PyTorch
  port puts it one level further out (its ``use_dropout`` blocks wrap the innermost one). Same parameters.
- Generators normalise with the statistics of the batch they are given in eval mode too (pix2pix section 3.3:
  "we apply batch normalization using the statistics of the test batch"; the official ``test.py`` gets the same
  by never calling ``eval()``), and the U-Net's dropout stays on at test time (sections 3.1 and 3.3).
- ``norm="none"`` keeps the biases that the official code also drops then (its bias test only looks for
  instance norm); nothing cancels them without a normalisation.
- :class:`PixelDiscriminator`'s output convolution has a bias, as the original Torch ``defineD_pixelGAN``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from gans.checks import check_resolution
from gans.errors import ConfigError
from gans.nn.basic import AlwaysDropout, dcgan_init_

TranslationNorm = Literal["batch", "instance", "none"]
Padding = Literal["reflect", "replicate", "zero"]

MIN_UNET_RESOLUTION = 8  # three levels: the outer, one normalised and the innermost block
MIN_RESNET_SIZE = 8  # the 1-pixel reflection pads of the residual blocks need a bottleneck of at least 2x2
KERNEL = 4  # pix2pix's 4x4 convolutions (appendix 6.1)
LEAK = 0.2  # LeakyReLU slope of the encoders and discriminators
MAX_WIDTH_MULT = 8  # widths stop growing at 8 x the first layer's (the official code's min(2**i, 8))


def translation_norm(kind: TranslationNorm, channels: int, batch_statistics: bool = False) -> nn.Module:
    """Batch norm, affine-free instance norm (the official default) or nothing.

    ``batch_statistics``: batch norm without running statistics, so that eval mode also normalises with the
    batch's own statistics (the generators: pix2pix section 3.3; at batch size 1 that is instance norm).
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels, track_running_stats=not batch_statistics)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"Unknown normalisation {kind!r}: choose 'batch', 'instance' or 'none'.")


def capped_widths(first: int, count: int) -> list[int]:
    """``count`` layer widths ``first * min(2^i, 8)``: doubling from ``first`` up to 8 x ``first``, the rule of the
    official UnetGenerator (``ngf * min(2**i, 8)``) and NLayerDiscriminator (``ndf * min(2**n, 8)``); 64 ... 512 at 64."""
    return [first * min(2**i, MAX_WIDTH_MULT) for i in range(count)]


def uses_bias(norm: TranslationNorm) -> bool:
    """Whether a convolution followed by ``norm`` gets a bias: not before batch norm, whose shift replaces it."""
    return norm != "batch"


def check_images(x: Tensor, channels: int, model: str, size: int | None = None) -> None:
    """A ConfigError unless ``x`` is ``[N, channels, H, W]`` (with ``H = W = size`` when given)."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ConfigError(
            f"{model} expects images [N, {channels}, H, W], got {list(x.shape)}: set its in_channels to the "
            f"images' channels (pix2pix's discriminator sees input and output concatenated: 2 x 3 = 6)."
        )
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise ConfigError(
            f"{model} was built for {size}x{size} images, got {x.shape[-2]}x{x.shape[-1]}: set its "
            f"img_resolution to the data's crop size (or crop/resize the data to {size})."
        )


class UNetDown(nn.Module):
    """One encoder layer: LeakyReLU(0.2), 4x4 stride-2 convolution, normalisation (pix2pix's Ck).

    The outermost layer reads the image, so it has no activation before it; it and the innermost layer,
    whose output is the 1x1 bottleneck, have no normalisation (batch statistics of one value per channel).
    Biases as the official code: only with instance norm, also on these two.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: TranslationNorm, outermost: bool, innermost: bool) -> None:
        super().__init__()
        normalised = not (outermost or innermost)
        layers: list[nn.Module] = [] if outermost else [nn.LeakyReLU(LEAK)]
        layers.append(nn.Conv2d(in_channels, out_channels, KERNEL, 2, 1, bias=uses_bias(norm)))
        if normalised:
            layers.append(translation_norm(norm, out_channels, batch_statistics=True))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UNetUp(nn.Module):
    """One decoder layer: ReLU, 4x4 stride-2 transposed convolution, normalisation, dropout (pix2pix's Ck / CDk).

    The outermost one maps to the output image: no normalisation, a bias and tanh.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: TranslationNorm, outermost: bool, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReLU()]
        layers.append(nn.ConvTranspose2d(in_channels, out_channels, KERNEL, 2, 1, bias=outermost or uses_bias(norm)))
        if outermost:
            layers.append(nn.Tanh())
        else:
            layers.append(translation_norm(norm, out_channels, batch_statistics=True))
            if dropout > 0:
                layers.append(AlwaysDropout(dropout))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net (Isola et al. 2017, section 3.2.1, appendix 6.1.1): image [N, C_in, R, R] -> [N, C_out, R, R].

    ``log2(R)`` encoder layers halve the image down to 1x1 (8 at 256 px); each decoder layer doubles it back and
    its output is concatenated with the encoder layer's of the same size (skip connections), so the decoder's
    inputs are twice as wide. Widths ``ngf * min(2^i, 8)`` (:func:`capped_widths`, 64 ... 512 at the default ngf 64; 8 ngf
    at any ngf, as the official code). The only noise is dropout, on at
    train and test time (section 3.1), in the first ``dropout_blocks`` decoder layers from the bottleneck.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        img_resolution: int = 256,
        ngf: int = 64,
        norm: TranslationNorm = "batch",
        dropout: float = 0.5,
        dropout_blocks: int = 3,
    ) -> None:
        """
        Args:
            in_channels: channels of the input image.
            out_channels: channels of the output image.
            img_resolution: image side, a power of two >= 8 (256 in the paper); the bottleneck is 1x1.
            ngf: width of the first encoder layer; the others double up to 8 ngf (paper: 64, so 512).
            norm: batch (paper; with the test batch's statistics in eval mode too), instance or none.
            dropout: dropout probability of the noisy decoder layers, at train and test time; 0 = none.
            dropout_blocks: decoder layers with dropout, counted from the bottleneck (paper: 3).
        """
        super().__init__()
        levels = check_resolution(img_resolution, MIN_UNET_RESOLUTION, "UNetGenerator")
        if not 0 <= dropout_blocks <= levels - 1:
            raise ConfigError(
                f"UNetGenerator at {img_resolution} px has {levels - 1} decoder layers below the output layer, so "
                f"dropout_blocks must be in [0, {levels - 1}], got {dropout_blocks}: lower it or raise img_resolution."
            )
        translation_norm(norm, 1)  # validates the name
        self.in_channels, self.out_channels, self.img_resolution = in_channels, out_channels, img_resolution
        widths = capped_widths(ngf, levels)  # encoder outputs, 128 px ... 1 px at 256
        self.down = nn.ModuleList(
            UNetDown(in_channels if i == 0 else widths[i - 1], widths[i], norm, outermost=i == 0, innermost=i == levels - 1)
            for i in range(levels)
        )
        self.up = nn.ModuleList()  # up[j]: the j-th decoder layer from the bottleneck, back to encoder level levels-1-j
        for j, i in enumerate(reversed(range(levels))):
            width_in = widths[i] if j == 0 else 2 * widths[i]  # the bottleneck alone, then [skip, decoder]
            outermost = i == 0
            width_out = out_channels if outermost else widths[i - 1]
            self.up.append(UNetUp(width_in, width_out, norm, outermost, dropout if j < dropout_blocks else 0.0))
        self.apply(dcgan_init_)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.in_channels, "UNetGenerator", self.img_resolution)
        # Encoder.
        skips = []
        h = x
        for down in self.down:
            h = down(h)
            skips.append(h)  # [N, widths[i], R / 2^(i+1), R / 2^(i+1)]
        # Decoder: each layer's output joined with the encoder's of the same size.
        h = self.up[0](skips.pop())
        for up in self.up[1:]:
            h = up(torch.cat([skips.pop(), h], dim=1))
        return h


class PatchGANDiscriminator(nn.Module):
    """The PatchGAN (Isola et al. 2017, section 3.2.2, appendix 6.1.2): image [N, C, H, W] -> logits [N, 1, h, w],
    one per overlapping patch, no sigmoid.

    ``n_layers`` 4x4 stride-2 convolutions (C64-C128-C256 at n_layers 3, no normalisation on the first), one
    stride-1 convolution to ``ndf * min(2^n_layers, 8)`` (C512; :func:`capped_widths`) and a stride-1 convolution to one channel, padding 1,
    LeakyReLU(0.2). Each logit sees :func:`receptive_field` pixels square: 70 at n_layers 3 (30x30 logits at
    256 px), 16 at 1, 286 at 5. pix2pix feeds it the input and output images concatenated (6 channels).
    Its batch norm is the ordinary one: D only runs in training.
    """

    def __init__(
        self,
        in_channels: int = 6,
        ndf: int = 64,
        n_layers: int = 3,
        norm: TranslationNorm = "batch",
    ) -> None:
        """
        Args:
            in_channels: channels of the input (pix2pix: input and output images, 6; CycleGAN: 3).
            ndf: width of the first layer; the others double up to 8 ndf (official code: 64, so 512).
            n_layers: stride-2 convolutions (3: the 70x70 PatchGAN; 1: 16x16; 5: 286x286); see :class:`PixelDiscriminator` for 1x1.
            norm: batch (pix2pix), instance (CycleGAN) or none.
        """
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"PatchGANDiscriminator needs n_layers >= 1, got {n_layers}: use PixelDiscriminator for 1x1 patches.")
        self.in_channels, self.n_layers = in_channels, n_layers
        widths = capped_widths(ndf, n_layers + 1)
        bias = uses_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], KERNEL, 2, 1), nn.LeakyReLU(LEAK)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(widths[i - 1], widths[i], KERNEL, stride, 1, bias=bias), translation_norm(norm, widths[i]), nn.LeakyReLU(LEAK)]
        layers.append(nn.Conv2d(widths[-1], 1, KERNEL, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init_)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.in_channels, "PatchGANDiscriminator")
        if min(x.shape[-2:]) < self.min_size:
            raise ConfigError(
                f"PatchGANDiscriminator with {self.n_layers} stride-2 layers needs images of at least "
                f"{self.min_size}x{self.min_size}, got {x.shape[-2]}x{x.shape[-1]}: lower n_layers or use larger images."
            )
        return self.net(x)

    @property
    def min_size(self) -> int:
        """The smallest image side giving one logit: 3 * 2^n_layers (each 4x4 stride-1 convolution trims one pixel)."""
        return 3 * 2**self.n_layers


class PixelDiscriminator(nn.Module):
    """The 1x1 PixelGAN (Isola et al. 2017, section 4.4, Figure 6): 1x1 convolutions C64-C128 and a 1-channel one,
    one logit per pixel ``[N, 1, H, W]``; it judges colour only."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, norm: TranslationNorm = "batch") -> None:
        super().__init__()
        self.in_channels = in_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(LEAK),
            nn.Conv2d(ndf, 2 * ndf, 1, bias=uses_bias(norm)),
            translation_norm(norm, 2 * ndf),
            nn.LeakyReLU(LEAK),
            nn.Conv2d(2 * ndf, 1, 1),
        )
        self.apply(dcgan_init_)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.in_channels, "PixelDiscriminator")
        return self.net(x)


def receptive_field(network: nn.Module) -> int:
    """Side of the square input window that one output value of ``network`` depends on, from its convolutions.

    With kernel ``k_l``, stride ``s_l`` and dilation ``d_l`` of the l-th ``nn.Conv2d`` in registration order
    (the data-flow order of the sequential discriminators), ``r = 1 + sum_l (k_l - 1) d_l prod_{m<l} s_m``:
    70 for the PatchGAN's 4x4 convolutions with strides 2, 2, 2, 1, 1 (the original Torch code's table:
    16, 34, 70, 142, 286 for n_layers 1 to 5). Activations, normalisation, padding and residual additions do
    not widen it (padding shifts the window; a residual branch's window is the longest path's, counted here).
    Transposed convolutions have no such window: a ConfigError for the U-Net.
    """
    size, jump = 1, 1
    for module in network.modules():
        if isinstance(module, nn.ConvTranspose2d):
            raise ConfigError("receptive_field covers stacks of nn.Conv2d (the discriminators), not transposed convolutions.")
        if isinstance(module, nn.Conv2d):
            (k, k_w), (s, s_w), (d, d_w) = module.kernel_size, module.stride, module.dilation
            if (k, s, d) != (k_w, s_w, d_w):
                raise ConfigError(f"receptive_field needs square kernels, strides and dilations, got {module}.")
            size += (k - 1) * d * jump
            jump *= s
    return size


class ResidualBlock(nn.Module):
    """CycleGAN's R256 (appendix 7.2; Johnson et al. 2016's block without the final ReLU, as the official code):
    ``x + [pad, conv3x3, norm, ReLU, (dropout), pad, conv3x3, norm](x)``."""

    def __init__(self, channels: int, norm: TranslationNorm, padding: Padding, dropout: float) -> None:
        super().__init__()
        bias = uses_bias(norm)
        conv_padding = 1 if padding == "zero" else 0

        def conv_norm() -> list[nn.Module]:
            conv = nn.Conv2d(channels, channels, 3, padding=conv_padding, bias=bias)
            return [*padding_layer(padding, 1), conv, translation_norm(norm, channels, batch_statistics=True)]

        dropout_layer = [nn.Dropout(dropout)] if dropout > 0 else []
        self.block = nn.Sequential(*conv_norm(), nn.ReLU(), *dropout_layer, *conv_norm())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def padding_layer(padding: Padding, size: int) -> list[nn.Module]:
    """The explicit padding layer of ``padding`` (none for zero padding, which the convolution does)."""
    if padding == "reflect":
        return [nn.ReflectionPad2d(size)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(size)]
    if padding == "zero":
        return []
    raise ConfigError(f"Unknown padding {padding!r}: choose 'reflect' (CycleGAN), 'replicate' or 'zero'.")


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016): image [N, C_in, H, W] -> [N, C_out, H, W].

    c7s1-64, d128, d256 (3x3 stride-2 convolutions), ``n_blocks`` :class:`ResidualBlock` s of 256, u128, u64
    (3x3 stride-1/2 transposed convolutions, output padding 1), c7s1-3 and tanh; 9 blocks at 256 px, 6 at 128.
    The 7x7 layers always pad by reflection, as the official code; ``padding`` chooses the residual blocks'.
    H and W must be multiples of 4 (two halvings); any size, not only the training one, works.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: TranslationNorm = "instance",
        dropout: float = 0.0,
        padding: Padding = "reflect",
    ) -> None:
        """
        Args:
            in_channels: channels of the input image.
            out_channels: channels of the output image.
            ngf: width of the first layer (64); the bottleneck has 4 ngf.
            n_blocks: residual blocks (paper: 9 at 256 px, 6 at 128 px).
            norm: instance (paper), batch (with the batch's statistics in eval mode too) or none.
            dropout: dropout inside the residual blocks during training (official ``use_dropout``: 0.5); 0 = none.
            padding: the residual blocks' padding: reflect (paper), replicate or zero.
        """
        super().__init__()
        if n_blocks < 0:
            raise ConfigError(f"ResnetGenerator needs n_blocks >= 0, got {n_blocks} (paper: 9 at 256 px, 6 at 128 px).")
        padding_layer(padding, 1)  # validates the name
        self.in_channels = in_channels
        bias = uses_bias(norm)

        def normalised(conv: nn.Module, channels: int) -> list[nn.Module]:
            return [conv, translation_norm(norm, channels, batch_statistics=True), nn.ReLU()]

        layers = [nn.ReflectionPad2d(3), *normalised(nn.Conv2d(in_channels, ngf, 7, bias=bias), ngf)]  # c7s1-64
        for width in (ngf, 2 * ngf):  # d128, d256
            layers += normalised(nn.Conv2d(width, 2 * width, 3, 2, 1, bias=bias), 2 * width)
        layers += [ResidualBlock(4 * ngf, norm, padding, dropout) for _ in range(n_blocks)]
        for width in (4 * ngf, 2 * ngf):  # u128, u64
            layers += normalised(nn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1, bias=bias), width // 2)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]  # c7s1-3
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init_)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.in_channels, "ResnetGenerator")
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or min(h, w) < MIN_RESNET_SIZE:
            raise ConfigError(
                f"ResnetGenerator needs image sides that are multiples of 4 and >= {MIN_RESNET_SIZE}, got {h}x{w}: "
                f"crop or resize the images (e.g. to 128 or 256)."
            )
        return self.net(x)
