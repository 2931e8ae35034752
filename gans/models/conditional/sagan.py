"""SAGAN: Self-Attention Generative Adversarial Networks (Zhang, Goodfellow, Metaxas & Odena 2018, arXiv:1805.08318).

The SNGAN / projection-cGAN residual networks (:mod:`gans.nn.resnet`) with a self-attention block
(:class:`gans.nn.spectral.SelfAttention`, section 3, eq. 1-3: ``y = x + gamma o``, gamma learned from 0) in both G and D,
and the paper's two stabilising techniques (section 4): spectral normalisation in G as well as D (4.1) and the
two-timescale update rule (4.2: Adam lr 1e-4 for G, 4e-4 for D, one D step per G step). Section 5: Adam
(beta1 0, beta2 0.9), the hinge loss of section 3, class-conditional batch norm in G and a projection
discriminator (Miyato & Koyama 2018) for conditional models.

Networks, as the official code (brain-research/self-attention-gan, ``generator_test`` / ``discriminator_test``,
the ``test`` architecture of ``model.py``) at 128 px with ``gf_dim = df_dim = 64``:

- G: z (128) -> SN linear -> 4x4x16ch -> residual up-blocks to 8 (16ch), 16 (8ch), 32 (4ch), self-attention,
  64 (2ch), 128 (ch) -> BN -> ReLU -> SN conv3x3 -> tanh. Each block's two batch norms are class-conditional:
  a gain and a bias per class (:class:`gans.nn.conditional.ConditionalBatchNorm2d` on the label's one-hot vector, or the
  concatenated one-hot vectors of several heads; tables starting at gain 1, bias 0 and not spectrally
  normalised, as the official ``ops.ConditionalBatchNorm``).
- D: residual down-blocks to 64 (ch, the "optimized" first block), 32 (2ch), self-attention, 16 (4ch), 8 (8ch),
  4 (16ch), a 4x4 block without pooling (16ch) -> ReLU -> sum over positions = phi(x) -> SN linear psi plus the
  projection ``<embed(y), phi(x)>`` with a spectrally normalised class embedding
  (:class:`gans.nn.conditional.ProjectionHead`; several heads add their rows, :class:`gans.nn.conditional.ClassEmbedding`).
- Every convolution, linear layer and the D embedding is spectrally normalised (one power iteration per
  training forward); biases start at 0 (official ``zeros_initializer``).

Other resolutions (16 to 128 px; the official code is 128 px only). Each block keeps the width it has at the same
feature-map size in the 128 px network: G's block ending at r x r has ``ch * min(16, 128 / r)`` channels, D's
``ch * min(16, 64 / r)``, so a smaller image only drops the largest feature maps (64 px: G 4x4x16ch -> 8 (16ch),
16 (8ch), 32 (4ch), 64 (2ch); D 32 (2ch), 16 (4ch), 8 (8ch), 4 (16ch), 4 (16ch)). The attention block sits after
the G and D blocks whose output is ``attn_resolution`` x ``attn_resolution``: default 32, the paper's feature
map (its Table 1 finds feat32 / feat64 better than feat8 / feat16), capped at half the image size (the largest
map inside both networks: after D's first block and before G's last), i.e. 32 at 128 and 64 px, 16 at 32 px,
8 at 16 px. ``attn_resolution = 0`` leaves it out (the paper's SN-on-G/D baseline).

Parameter counts at 128 px, 1,000 classes, z 128, ch 64, with ``attention="official"`` (the official block: value
C/2, keys and values max-pooled 2x2): G 42,078,852 and D 39,463,618, those of the official code's trainable
variables (weights and biases of every snconv2d/snlinear, per-class gamma/beta of each conditional BN, the final
BN's gamma/beta, the attention's four bias-free 1x1 convolutions and sigma, D's 1000 x 1024 embedding; the
spectral-norm ``u`` vectors and BN statistics are buffers in both). With the paper's block (the default: value
C/8, no pooling) G has 42,029,700 and D 39,451,330: the attention's value and output convolutions are C x C/8
instead of C x C/2 (G at 256 channels: 49,152 fewer; D at 128: 12,288 fewer).

Deviations from the paper / official code:
- The self-attention's value path is C/8 wide and unpooled by default, as the paper's text (section 3: C-bar =
  C/k with k = 8 in all its experiments); ``attention="official"`` gives the official code's C/2 value and
  2x2 max-pooled keys/values (the official counts above; BigGAN keeps this block).
- Weights start from PyTorch's uniform initialisation, the official code from Xavier (Glorot) uniform: i.i.d.
  uniform matrices differing only in scale, which spectral normalisation divides out, so the normalised weights
  have the same distribution. D's embedding starts N(0, 1) (official: Xavier uniform), then normalised.
- The official code decays G's learning rate after 100k steps (``g_ratio``) and uses Adam beta2 0.999 (TF's
  default; it sets only beta1 = 0); the paper's text (and this module) keeps both learning rates constant with
  beta2 = 0.9.
- Several label heads (the anime faces' hair and eye colours) are conditioned on jointly: the conditional BN reads
  the concatenated one-hot vectors and the projection sums one embedding row per head.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.checks import check_resolution
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.nn.conditional import ProjectionHead
from gans.nn.resnet import DiscriminatorBlock, GeneratorBlock
from gans.nn.spectral import SelfAttention, sn_conv2d, sn_linear
from gans.training.gan_module import GANModule

MIN_RESOLUTION = 16
MAX_RESOLUTION = 128  # the official network's size; each block keeps its width at its feature-map size
PAPER_ATTENTION_RESOLUTION = 32
AttentionForm = Literal["paper", "official"]


def generator_widths(img_resolution: int, ch: int) -> dict[int, int]:
    """G's widths by feature-map side: the 4x4 input and the output of the block ending at each r: ``ch * min(16, 128 / r)``."""
    log2 = check_resolution(img_resolution, MIN_RESOLUTION, "SAGAN")
    if img_resolution > MAX_RESOLUTION:
        raise ConfigError(
            f"SAGAN is defined up to {MAX_RESOLUTION} px (the official network's size, whose widths each block keeps at its "
            f"feature-map size), got img_resolution {img_resolution}: use 16, 32, 64 or 128."
        )
    return {2**k: ch * min(16, 128 // 2**k) for k in range(2, log2 + 1)}


def discriminator_widths(img_resolution: int, ch: int) -> list[tuple[int, int]]:
    """D's blocks as ``(output side, width)``: down-blocks ending at R/2 ... 4 with ``ch * min(16, 64 / r)``, then one
    4x4 block without pooling (16ch)."""
    log2 = check_resolution(img_resolution, MIN_RESOLUTION, "SAGAN")
    blocks = [(2**k, ch * min(16, 64 // 2**k)) for k in range(log2 - 1, 1, -1)]
    return blocks + [(4, ch * 16)]


def default_attention_resolution(img_resolution: int) -> int:
    """The paper's 32x32 feature map, capped at half the image (the largest map inside both G and D)."""
    return min(PAPER_ATTENTION_RESOLUTION, img_resolution // 2)


def attention_resolution(img_resolution: int, attn_resolution: int | None) -> int:
    """``attn_resolution`` checked against the feature maps G and D both have (8 ... R/2); None = the default."""
    check_resolution(img_resolution, MIN_RESOLUTION, "SAGAN")
    if attn_resolution is None:
        return default_attention_resolution(img_resolution)
    if attn_resolution and not (8 <= attn_resolution <= img_resolution // 2 and attn_resolution & (attn_resolution - 1) == 0):
        raise ConfigError(
            f"SAGAN's attn_resolution must be 0 (no attention) or a power of two from 8 to img_resolution / 2 "
            f"({img_resolution // 2}), the feature maps G and D both have; got {attn_resolution}: e.g. set "
            f"model.init_args.attn_resolution: {default_attention_resolution(img_resolution)} (or leave it out)."
        )
    return attn_resolution


def attention_block(channels: int, form: AttentionForm) -> SelfAttention:
    """The paper's block (query, key and value C/8, section 3) or the official code's (value C/2, 2x2 max-pooled keys
    and values; ``non_local.sn_non_local_block_sim``); spectrally normalised, gamma 0."""
    if form == "paper":
        return SelfAttention(channels, max(channels // 8, 1), max(channels // 8, 1), pool=False, sn=True)
    if form == "official":
        return SelfAttention(channels, max(channels // 8, 1), max(channels // 2, 1), pool=True, sn=True)
    raise ConfigError(f"Unknown attention form {form!r}: choose 'paper' (C/8 value, the paper's text) or 'official' (C/2 value, pooled, the official code).")


def zero_biases_(module: nn.Module) -> None:
    """Convolution and linear biases to 0, as the official ``zeros_initializer``. Use as ``net.apply(zero_biases_)``."""
    if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
        nn.init.zeros_(module.bias)


class SAGANGenerator(nn.Module):
    """``(z [N, z_dim], labels)`` -> image ``[N, C, R, R]`` in [-1, 1]."""

    def __init__(self, z_dim: int, img_resolution: int, img_channels: int, ch: int, num_classes: int | Sequence[int] = 0,
                 attn_resolution: int | None = None, attention: AttentionForm = "paper") -> None:
        super().__init__()
        attn_resolution = attention_resolution(img_resolution, attn_resolution)
        self.label_space = LabelSpace.from_num_classes(num_classes)
        cond_dim = sum(self.label_space.heads)
        self.widths = generator_widths(img_resolution, ch)
        sides = list(self.widths)
        self.linear = sn_linear(z_dim, 4 * 4 * self.widths[4])
        self.blocks = nn.ModuleList(
            GeneratorBlock(self.widths[r // 2], self.widths[r], cond_dim=cond_dim, upsample=True, sn=True, norm_sn=False) for r in sides[1:]
        )
        self.attn_resolution = attn_resolution
        self.attention = attention_block(self.widths[attn_resolution], attention) if attn_resolution else None
        self.out_norm = nn.BatchNorm2d(self.widths[img_resolution])
        self.to_rgb = sn_conv2d(self.widths[img_resolution], img_channels, 3, padding=1)
        self.apply(zero_biases_)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        y = None
        if self.label_space.conditional:
            self.label_space.check(labels, "SAGAN generator")
            y = self.label_space.multi_hot(labels, dtype=z.dtype)
        x = self.linear(z).reshape(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            x = block(x, y)
            if self.attention is not None and x.shape[-1] == self.attn_resolution:
                x = self.attention(x)
        return torch.tanh(self.to_rgb(F.relu(self.out_norm(x))))


class SAGANDiscriminator(nn.Module):
    """``(image, labels)`` -> logit ``[N]``: ``psi(phi(x)) + <embed(y), phi(x)>`` (no projection when unconditional)."""

    def __init__(self, img_resolution: int, img_channels: int, ch: int, num_classes: int | Sequence[int] = 0,
                 attn_resolution: int | None = None, attention: AttentionForm = "paper") -> None:
        super().__init__()
        attn_resolution = attention_resolution(img_resolution, attn_resolution)
        self.label_space = LabelSpace.from_num_classes(num_classes)
        plan = discriminator_widths(img_resolution, ch)
        blocks, in_channels = [], img_channels
        for i, (side, width) in enumerate(plan):
            last = i == len(plan) - 1
            blocks.append(DiscriminatorBlock(in_channels, width, downsample=not last, preactivation=i > 0, sn=True))
            in_channels = width
        self.blocks = nn.ModuleList(blocks)
        self.sides = [side for side, _ in plan]
        self.attn_resolution = attn_resolution
        self.attention = attention_block(dict(plan)[attn_resolution], attention) if attn_resolution else None
        self.attention_after = self.sides.index(attn_resolution) if attn_resolution else -1
        self.head = ProjectionHead(in_channels, self.label_space.heads)
        self.apply(zero_biases_)

    def features(self, x: Tensor) -> Tensor:
        """phi(x): the last block's ReLU summed over positions, ``[N, 16ch]`` (official ``reduce_sum``)."""
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.attention_after:
                x = self.attention(x)
        return F.relu(x).sum(dim=(2, 3))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.label_space.conditional:
            self.label_space.check(labels, "SAGAN discriminator")
        return self.head(self.features(x), labels)


class SAGAN(GANModule):
    """SAGAN: self-attention in G and D, spectral norm in both, conditional BN + projection D, hinge loss, TTUR."""

    def __init__(
        self,
        img_resolution: int = 128,
        img_channels: int = 3,
        z_dim: int = 128,
        num_classes: int | list[int] = 0,
        g_ch: int = 64,
        d_ch: int = 64,
        attn_resolution: int | None = None,
        attention: AttentionForm = "paper",
        loss: str = "hinge",
        n_critic: int = 1,
        lr_g: float = 1e-4,
        lr_d: float = 4e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        **kwargs,
    ) -> None:
        """
        Args:
            img_resolution: image side, a power of two from 16 to 128 (paper: 128, ImageNet).
            img_channels: 3 for RGB.
            z_dim: latent size (official: 128).
            num_classes: 0 = unconditional (plain BN in G, no projection in D), an int = one class index (ImageNet:
                1000), a list = one class index per head (the anime faces' [12 hair, 10 eye] colours); see
                :mod:`gans.labels`.
            g_ch: G's width unit (official gf_dim 64): ``g_ch * min(16, 128 / r)`` channels at r x r.
            d_ch: D's width unit (official df_dim 64): ``d_ch * min(16, 64 / r)`` channels at r x r.
            attn_resolution: feature-map side of the self-attention block in G and D, a power of two from 8 to
                img_resolution / 2; None = 32 (the paper's), at most img_resolution / 2; 0 = no attention.
            attention: ``paper`` (query, key and value 1x1 convolutions to C/8, section 3) or ``official``
                (value C/2, keys and values max-pooled 2x2, as the official code and BigGAN).
            loss: adversarial loss (paper: hinge).
            n_critic: D steps per G step (paper: 1, with TTUR instead of several D steps).
            lr_g: G's Adam learning rate (paper: 1e-4).
            lr_d: D's Adam learning rate (paper: 4e-4).
            betas: Adam's (beta1, beta2) (paper: 0, 0.9).
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (max_kimg, tricks, ...).
        """
        attn_resolution = attention_resolution(img_resolution, attn_resolution)
        if min(g_ch, d_ch) < 1:
            raise ConfigError(f"SAGAN needs g_ch and d_ch >= 1, got {g_ch} and {d_ch}.")
        super().__init__(
            generator=SAGANGenerator(z_dim, img_resolution, img_channels, g_ch, num_classes, attn_resolution, attention),
            discriminator=SAGANDiscriminator(img_resolution, img_channels, d_ch, num_classes, attn_resolution, attention),
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
