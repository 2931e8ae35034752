"""SNGAN: Spectral Normalization for Generative Adversarial Networks (Miyato et al. 2018, arXiv:1802.05957),
and the projection cGAN: cGANs with Projection Discriminator (Miyato & Koyama 2018, arXiv:1802.05637).

SNGAN divides every weight of D by its largest singular value, estimated by one power iteration per training
forward (section 2.1, eq. 8, Algorithm 1), through :func:`gans.nn.spectral.spectral_norm`: the vectors ``u`` / ``v``
are buffers, saved in checkpoints. Conv weights are reshaped to ``[out, in * k * k]`` (section 4). Trained with
the hinge loss (eq. 16-17) and Adam lr 2e-4, (beta1, beta2) = (0, 0.9), 5 D steps per G step (appendix B.2),
z ~ N(0, I) with 128 dimensions.

Networks (``architecture``):

- ``resnet`` (appendix B.4, Figure 8, Table 4; the official Chainer code ``pfnet-research/sngan_projection``),
  built from :class:`gans.nn.resnet.GeneratorBlock` / :class:`gans.nn.resnet.DiscriminatorBlock`:

  - 32 px (CIFAR-10, Table 4): G ``dense -> 4x4x256, 3 x ResBlock up 256, BN, ReLU, conv3x3 -> 3, tanh``;
    D ``ResBlock down 128 (the "optimized" first block), ResBlock down 128, 2 x ResBlock 128, ReLU,
    global sum pooling, dense -> 1`` (no bias, as ``snresnet_32.py``). ``g_ch`` 256, ``d_ch`` 128.
  - 64 px (the official ``resnet_64.py`` / ``snresnet_64.py``, ``ch`` 64): G ``dense -> 4x4x16ch``, ResBlocks
    up to 8ch, 4ch, 2ch, ch; D ResBlocks down to ch, 2ch, 4ch, 8ch, 16ch (64 -> 2x2), ReLU, sum, dense -> 1.
    D's hidden widths are the block's input width, as the official ``Block``.

  Init as the official code: Xavier (Glorot) uniform, gain sqrt(2) for the residual 3x3 convolutions, 1 for
  the shortcuts, the dense layers, G's output convolution and the class embedding; biases 0.
- ``cnn``: the "standard CNN" of Table 3 (leaky ReLU 0.1 in D), at any multiple of 8 px (32 for CIFAR-10,
  48 for STL-10): G ``dense -> M/8 x M/8 x 512, 3 x (4x4 stride-2 deconv, BN, ReLU) to 256, 128, 64,
  conv3x3 -> 3, tanh``; D ``conv3x3 64, conv4x4/2 64, conv3x3 128, conv4x4/2 128, conv3x3 256, conv4x4/2 256,
  conv3x3 512, dense -> 1``. ``g_ch`` is G's first width (512; halved per layer), ``d_ch`` D's first (64;
  doubled every two layers). Init N(0, 0.02) as ``pfnet-research/chainer-gan-lib`` (``common/net.py``), whose
  G also batch-normalises the dense output (per unit) before its ReLU, as here.

Conditional (``num_classes`` > 0, :class:`ProjectionGAN`): the projection discriminator
``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>`` (Miyato & Koyama, eq. 3), ``phi`` the pooled
features, ``psi`` the SN dense output and ``embed`` a spectrally normalised :class:`gans.nn.conditional.ClassEmbedding` (both in :class:`gans.nn.conditional.ProjectionHead`);
and G with class-conditional batch norm (:class:`gans.nn.conditional.ConditionalBatchNorm2d`: per-class gain and bias
from 1 and 0, as the official ``CategoricalConditionalBatchNormalization``) in every ResBlock, fed the one-hot
label, or the multi-hot tag vector (:meth:`gans.labels.LabelSpace.multi_hot`) for several heads such as the anime
faces' [hair, eye]; the embedding then sums one row per head. The official CIFAR-10 config (``configs/sn_cifar10.yml``) has the same
G / D widths and recipe: batch 64, 50k G updates, lr decayed linearly to 0 (``lr_decay``).

Parameter counts (RGB, z 128), equal to the official code's networks: ResNet 32 px G 4,276,739 and D 1,053,824
(projection: G 4,304,387 with 10-class CBN, D 1,055,104 with the 10 x 128 embedding); ResNet 64 px G 12,220,675
and D 10,141,441 (ch 64); standard CNN 32 px G 3,828,739 and D 2,935,873 (Table 3's widths).

Deviations from the papers:
- G steps use the real batch's size and labels (the official updater draws 128 fakes with uniform labels).
- The power iteration starts from the ``u`` torch computes when SN is applied (15 iterations on the weight
  before the paper's init rewrites it), not a fresh random vector; one iteration per forward follows.
- ``cnn`` with ``num_classes`` (not in either paper) uses the flattened last features as ``phi`` and
  conditional BN in G's deconvolution layers.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.nn.conditional import ConditionalBatchNorm2d, ProjectionHead
from gans.nn.resnet import DiscriminatorBlock, GeneratorBlock
from gans.nn.spectral import sn_conv2d, weight_of
from gans.training.gan_module import GANModule

Architecture = Literal["resnet", "cnn"]
RESNET_RESOLUTIONS = (32, 64)
DEFAULT_WIDTHS = {("resnet", 32): (256, 128), ("resnet", 64): (64, 64), "cnn": (512, 64)}  # (g_ch, d_ch)


def default_widths(architecture: str, img_resolution: int) -> tuple[int, int]:
    """The paper's ``(g_ch, d_ch)`` for an architecture and resolution."""
    return DEFAULT_WIDTHS["cnn"] if architecture == "cnn" else DEFAULT_WIDTHS[("resnet", img_resolution)]


def check_geometry(architecture: str, img_resolution: int) -> None:
    """A :class:`ConfigError` naming the fix when the architecture has no layout for the resolution."""
    if architecture == "resnet" and img_resolution not in RESNET_RESOLUTIONS:
        raise ConfigError(
            f"SNGAN's ResNet has the paper's layouts for {' and '.join(map(str, RESNET_RESOLUTIONS))} px, got img_resolution "
            f"{img_resolution}: set model.init_args.img_resolution (and the data's) to 32 or 64, or use architecture: cnn."
        )
    if architecture == "cnn" and (img_resolution < 8 or img_resolution % 8):
        raise ConfigError(
            f"SNGAN's standard CNN downsamples three times (Table 3: M/8 x M/8 x 512), so img_resolution must be a "
            f"multiple of 8 (32 for CIFAR-10, 48 for STL-10), got {img_resolution}."
        )
    if architecture not in ("resnet", "cnn"):
        raise ConfigError(f"Unknown SNGAN architecture {architecture!r}: choose 'resnet' or 'cnn'.")


def xavier_(module: nn.Module | None, gain: float = 1.0) -> None:
    """Glorot-uniform weight with ``gain``, zero bias (the official code's ``GlorotUniform`` initialisers)."""
    if module is None:
        return
    nn.init.xavier_uniform_(weight_of(module), gain=gain)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)


def init_residual_(block: GeneratorBlock | DiscriminatorBlock) -> None:
    """Official init of a residual block: 3x3 convolutions gain sqrt(2), the 1x1 shortcut gain 1."""
    xavier_(block.conv1, math.sqrt(2))
    xavier_(block.conv2, math.sqrt(2))
    xavier_(block.shortcut, 1.0)


def normal_init_(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases for the standard CNN's layers (chainer-gan-lib's ``wscale``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(weight_of(module), 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class SNGANGenerator(nn.Module):
    """z [N, z_dim] (and labels) -> image [N, C, R, R] in [-1, 1], ResNet or standard CNN.

    ``heads`` are the label heads' class counts (``()`` = unconditional); conditional G feeds the one-hot /
    multi-hot label to every conditional batch norm."""

    def __init__(self, z_dim: int, img_resolution: int, img_channels: int, architecture: Architecture, ch: int,
                 heads: Sequence[int] = ()) -> None:
        super().__init__()
        check_geometry(architecture, img_resolution)
        self.label_space = LabelSpace(tuple(heads))
        cond_dim = sum(heads)
        self.architecture = architecture
        if architecture == "resnet":
            if img_resolution == 32:  # Table 4: constant width
                widths = [ch] * 4
            else:  # resnet_64.py: 16ch at 4x4, halving to ch at 64x64
                widths = [ch * 16, ch * 8, ch * 4, ch * 2, ch]
            self.bottom, self.width0 = 4, widths[0]
            self.dense = nn.Linear(z_dim, 4 * 4 * widths[0])
            self.blocks = nn.ModuleList(GeneratorBlock(a, b, cond_dim=cond_dim) for a, b in zip(widths[:-1], widths[1:]))
            self.out_norm = nn.BatchNorm2d(widths[-1])
            self.out_conv = nn.Conv2d(widths[-1], img_channels, 3, padding=1)
            xavier_(self.dense)
            for block in self.blocks:
                init_residual_(block)
            xavier_(self.out_conv)
        else:  # Table 3
            widths = [ch, ch // 2, ch // 4, ch // 8]
            if widths[-1] < 1:
                raise ConfigError(f"The standard CNN's G halves its width three times: g_ch must be >= 8, got {ch}.")
            self.bottom, self.width0 = img_resolution // 8, ch
            self.dense = nn.Linear(z_dim, self.bottom**2 * ch)
            self.dense_norm = nn.BatchNorm1d(self.bottom**2 * ch)
            self.deconvs = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(widths[:-1], widths[1:]))
            self.norms = nn.ModuleList(ConditionalBatchNorm2d(b, cond_dim) if cond_dim else nn.BatchNorm2d(b) for b in widths[1:])
            self.out_conv = nn.Conv2d(widths[-1], img_channels, 3, padding=1)
            for layer in (self.dense, *self.deconvs, self.out_conv):  # not the conditional BN's maps (gain 1, bias 0)
                normal_init_(layer)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        y = None
        if self.label_space.conditional:
            self.label_space.check(labels, "SNGAN generator")
            y = self.label_space.multi_hot(labels, dtype=z.dtype)
        if self.architecture == "resnet":
            h = self.dense(z).view(z.shape[0], self.width0, self.bottom, self.bottom)
            for block in self.blocks:
                h = block(h, y)
            h = F.relu(self.out_norm(h))
        else:
            h = F.relu(self.dense_norm(self.dense(z))).view(z.shape[0], self.width0, self.bottom, self.bottom)
            for deconv, norm in zip(self.deconvs, self.norms):
                h = deconv(h)
                h = F.relu(norm(h, y) if y is not None else norm(h))
        return torch.tanh(self.out_conv(h))


class SNGANDiscriminator(nn.Module):
    """image (and labels) -> logit [N]; every weight spectrally normalised.

    :meth:`features` is ``phi(x)``; :meth:`forward` adds ``psi(phi)`` and, when conditional, the projection
    ``<embed(y), phi>``."""

    def __init__(self, img_resolution: int, img_channels: int, architecture: Architecture, ch: int,
                 heads: Sequence[int] = ()) -> None:
        super().__init__()
        check_geometry(architecture, img_resolution)
        self.label_space = LabelSpace(tuple(heads))
        self.architecture = architecture
        if architecture == "resnet":
            if img_resolution == 32:  # Table 4 / snresnet_32.py
                blocks = [DiscriminatorBlock(img_channels, ch, preactivation=False), DiscriminatorBlock(ch, ch),
                          DiscriminatorBlock(ch, ch, downsample=False), DiscriminatorBlock(ch, ch, downsample=False)]
                features, bias = ch, False
            else:  # snresnet_64.py: ch, 2ch, 4ch, 8ch, 16ch, all downsampling
                widths = [ch, ch * 2, ch * 4, ch * 8, ch * 16]
                blocks = [DiscriminatorBlock(img_channels, ch, preactivation=False)]
                blocks += [DiscriminatorBlock(a, b, hidden_channels=a) for a, b in zip(widths[:-1], widths[1:])]
                features, bias = widths[-1], True
            self.blocks = nn.ModuleList(blocks)
        else:  # Table 3
            widths = [ch, ch, ch * 2, ch * 2, ch * 4, ch * 4, ch * 8]
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(zip([img_channels, *widths[:-1]], widths)):
                stride_two = i % 2 == 1
                layers += [sn_conv2d(a, b, 4 if stride_two else 3, stride=2 if stride_two else 1, padding=1), nn.LeakyReLU(0.1)]
            self.convs = nn.Sequential(*layers)
            features, bias = (img_resolution // 8) ** 2 * widths[-1], True
        self.head = ProjectionHead(features, self.label_space.heads, bias=bias)  # psi, and the projection when conditional
        if architecture == "resnet":
            for block in self.blocks:
                init_residual_(block)
            xavier_(self.head.linear)
        else:
            self.apply(normal_init_)
        if self.head.embed is not None:
            xavier_(self.head.embed.embedding)

    def features(self, x: Tensor) -> Tensor:
        """phi(x) [N, F]: ResNet: ReLU then global sum pooling; CNN: the flattened last activations."""
        if self.architecture == "resnet":
            h = x
            for block in self.blocks:
                h = block(h)
            return F.relu(h).sum(dim=(2, 3))
        return self.convs(x).flatten(1)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.label_space.conditional:
            self.label_space.check(labels, "SNGAN projection discriminator")
        return self.head(self.features(x), labels)


class SNGAN(GANModule):
    """SNGAN (unconditional) or, with ``num_classes``, the projection cGAN; hinge loss, Adam (0, 0.9), n_critic 5."""

    def __init__(
        self,
        img_resolution: int = 32,
        img_channels: int = 3,
        z_dim: int = 128,
        architecture: Architecture = "resnet",
        g_ch: int | None = None,
        d_ch: int | None = None,
        num_classes: int | Sequence[int] = 0,
        loss: str = "hinge",
        n_critic: int = 5,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        lr_decay: bool = False,
        **kwargs,
    ) -> None:
        """
        Args:
            img_resolution: image side: 32 or 64 for ``resnet``, a multiple of 8 for ``cnn`` (32 CIFAR-10, 48 STL-10).
            img_channels: 3 for RGB, 1 for grey images.
            z_dim: latent size (paper: 128).
            architecture: ``resnet`` (Table 4 / the official 64 px nets) or ``cnn`` (the standard CNN of Table 3).
            g_ch: G width; None = the paper's: resnet 256 at 32 px, 64 at 64 px (the "ch" of 16ch ... ch); cnn 512.
            d_ch: D width; None = the paper's: resnet 128 at 32 px, 64 at 64 px; cnn 64.
            num_classes: 0 = SNGAN; an int or a list of heads (e.g. [12, 10] for hair and eye colour) = the projection
                cGAN (projection D, class-conditional BN in G).
            loss: adversarial loss (paper: hinge, eq. 16-17).
            n_critic: D steps per G step (paper: 5).
            lr_g: G learning rate (paper: 2e-4).
            lr_d: D learning rate (paper: 2e-4).
            betas: Adam's (beta1, beta2) (paper: (0, 0.9)).
            lr_decay: decay both learning rates linearly to 0 at ``max_kimg`` (the official CIFAR-10 configs'
                ``iteration_decay_start: 0``); needs ``max_kimg``.
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (max_kimg, tricks, ...).
        """
        check_geometry(architecture, img_resolution)
        default_g, default_d = default_widths(architecture, img_resolution)
        g_ch, d_ch = g_ch or default_g, d_ch or default_d
        heads = LabelSpace.from_num_classes(num_classes).heads
        if lr_decay and not kwargs.get("max_kimg"):
            raise ConfigError("lr_decay decays the learning rates to 0 at max_kimg: set model.init_args.max_kimg, or lr_decay: false.")
        if lr_decay and kwargs.get("lr_decay_fraction", 0) not in (0, 1):
            raise ConfigError("lr_decay decays over the whole run, lr_decay_fraction over its last part: set one of them.")
        super().__init__(
            generator=SNGANGenerator(z_dim, img_resolution, img_channels, architecture, g_ch, heads),
            discriminator=SNGANDiscriminator(img_resolution, img_channels, architecture, d_ch, heads),
            z_dim=z_dim,
            num_classes=num_classes,
            loss=loss,
            n_critic=n_critic,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            **kwargs,
        )
        self.data_shape = (img_channels, img_resolution, img_resolution)

    def lr_decay_share(self) -> float:
        """``lr_decay``: GANModule's linear decay over the whole run (the official code's ``LinearShift``)."""
        return 1.0 if self.hparams.lr_decay else super().lr_decay_share()


class ProjectionGAN(SNGAN):
    """The projection cGAN (Miyato & Koyama 2018, arXiv:1802.05637): :class:`SNGAN` with ``num_classes`` required."""

    def __init__(self, num_classes: int | Sequence[int] = 10, **kwargs) -> None:
        """
        Args:
            num_classes: classes (10 for CIFAR-10) or one count per label head ([12, 10] for hair and eye colour).
            **kwargs: the arguments of :class:`SNGAN` and :class:`gans.training.gan_module.GANModule`.
        """
        if not LabelSpace.from_num_classes(num_classes).conditional:
            raise ConfigError(
                f"ProjectionGAN needs num_classes >= 1 (or a list of heads), got {num_classes}; use SNGAN for unconditional training."
            )
        super().__init__(num_classes=num_classes, **kwargs)
