"""BigGAN: Large Scale GAN Training for High Fidelity Natural Image Synthesis (Brock et al. 2018, arXiv:1809.11096).

SAGAN (spectral norm in G and D, self-attention, hinge loss, TTUR) scaled up, with the paper's additions, as in
the authors' PyTorch code (ajbrock/BigGAN-PyTorch, ``BigGAN.py`` and ``layers.py``):

- **G** (Figure 15a, appendix B, Table 4): ``z`` chunk -> linear -> ``[16 ch, 4, 4]`` -> residual up blocks
  (:class:`gans.nn.resnet.GeneratorBlock`) -> BN -> ReLU -> conv3x3 -> tanh, self-attention
  (:class:`gans.nn.spectral.SelfAttention`, the official C/8 query/key, C/2 values, 2x2 max-pooled keys and values)
  after the block at 64x64. Every conv and linear layer is spectrally normalised.
- **Shared embedding and hierarchical z** (section 3, appendix B): one class embedding (128-d, not spectrally
  normalised, as the official code) shared by every block; ``z`` (120-d at 128 px) is split into one chunk for
  the first linear layer and one per block, and each block's conditional BNs
  (:class:`gans.nn.conditional.ConditionalBatchNorm2d`) read ``[embedding, chunk]`` through spectrally normalised
  linear maps: gain ``1 + W_g y``, bias ``W_b y``.
- **D** (Figure 15c): residual down blocks (:class:`gans.nn.resnet.DiscriminatorBlock`, the "wide" channel pattern),
  self-attention after the block at 64x64, ReLU, global sum pooling, and the projection head
  ``linear(h) + <embed(y), h>`` (Miyato & Koyama 2018; :class:`gans.nn.conditional.ProjectionHead`).
- **Training** (section 3, appendix C): hinge loss, 2 D steps per G step, Adam lr 1e-4 (G) / 4e-4 (D),
  betas (0, 0.999), eps 1e-6 (the official ``--adam_eps``), orthogonal initialisation, orthogonal regularisation
  with beta 1e-4 on G (section 3.1, eq. 3; :func:`gans.training.losses.orthogonal_penalty`, on every G weight matrix but
  the shared embedding, as the official ``utils.ortho``), G's weights averaged with decay 0.9999 from 20k
  iterations on (:class:`callbacks.EMA` with ``start_kimg``; the configs convert both to images).
- **Cross-replica batch norm** (appendix C: G's BN statistics over all devices): G's batch norms are
  :class:`gans.nn.cross_replica.CrossReplicaBatchNorm2d`, so under DDP each rank normalises with the statistics of the
  global batch (the official ``cross_replica`` switch), summed through Lightning's strategy (``all_gather`` with
  gradients; torch's ``nn.SyncBatchNorm`` refuses CPU tensors, this works on every device). Trainer's ``sync_batchnorm=True`` is not needed (on GPUs it would swap in
  ``nn.SyncBatchNorm``, which also works).
- **Truncation trick** (section 3.1): ``sample(n, truncation=t)`` draws ``z`` from N(0, I) truncated to
  ``[-t, t]`` (:func:`gans.training.latents.truncated_normal`); latents given to it (``predict`` and FID's numbered
  samples, sample grids) are mapped onto the same truncated normal coordinate-wise through the normal CDF, so
  numbered samples stay reproducible. ``model.init_args.truncation`` sets the default (0 = off).
- **Standing statistics** (the official ``utils.accumulate_standing_stats``, ``sample.py --accumulate_stats``):
  :meth:`BigGAN.accumulate_standing_stats` resets G's batch-norm statistics, averages them over many train-mode
  forward passes (seeded, so every rank gets the same, with no collective), and sampling in eval mode then uses
  them; ``standing_stats: k`` makes :meth:`BigGAN.sample` do it (k passes) whenever the sampled generator changed
  since the last time.

Labels follow :mod:`gans.labels`: one head (ImageNet's 1000 or CIFAR's 10 classes), or several (the anime faces'
[hair, eye]), whose embeddings are summed (:class:`gans.nn.conditional.ClassEmbedding`) in G's shared embedding and
in D's projection.

Parameter counts, equal to the official code's ``Generator`` / ``Discriminator`` (``sum(p.numel() for p in
net.parameters())``; counted from its layer definitions in ``BigGAN.py`` / ``layers.py``, tests/test_biggan.py
recomputes them from those definitions independently of this file):

- 128 px, ch 96, 1000 classes, hierarchical 120-d z, 128-d shared embedding, attention at 64 (the paper's
  ImageNet model, ``launch_BigGAN_bs256x8.sh``): G 70,433,988 and D 87,982,370. The official script's printed
  "Param count for G's initialized parameters" leaves out the final BN's gain and bias and the attention gamma
  (70,433,795 and 87,982,369).
- 32 px CIFAR-10 settings of ``launch_cifar_ema.sh`` (ch 64, 128-d z, no shared embedding, no hierarchy, no
  attention, one-hot class-conditional BN; the "about 4.3M" reported in BigGAN-PyTorch issue #78): G 4,304,387 and
  D 4,207,361.

Deviations from the paper and the official code:
- The official D at 32 px lists every block's resolution as 16 for its attention switch; here attention goes
  after the block whose output has the requested resolution (the CIFAR settings use none).
- A 16 px architecture (the 32 px pattern with one block fewer) exists for tests and toy runs only.
- Spectral norm uses torch's parametrization with its default eps (1e-12; the official 128 px script sets 1e-6)
  and starts from power iterations on the initialised weights.
- The official launch scripts deviate from the paper in places (``--num_D_steps 1``, ``--G_ortho 0.0`` at
  128 px): the defaults here are the paper's (2 D steps, beta 1e-4); the configs say what they use.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.nn.conditional import ClassEmbedding, ProjectionHead
from gans.nn.cross_replica import (
    cross_replica_batchnorm,
    local_batchnorm,
    set_sum_over_ranks,
)
from gans.nn.resnet import DiscriminatorBlock, GeneratorBlock
from gans.nn.spectral import SelfAttention, sn_conv2d, sn_linear, weight_of
from gans.training.gan_module import GANModule
from gans.training.latents import truncated_normal
from gans.training.losses import orthogonal_penalty

Init = Literal["ortho", "N02", "xavier"]

# The official G_arch / D_arch (BigGAN.py): channel multipliers of ch per block. G: (in, out), from 4x4, every
# block upsamples. D: out (in = [image, *out[:-1]]) and whether each block downsamples.
G_ARCH: dict[int, tuple[list[int], list[int]]] = {
    16: ([4, 4], [4, 4]),  # not official: tests and toy runs
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]),
}
D_ARCH: dict[int, tuple[list[int], list[bool]]] = {
    16: ([4, 4, 4], [True, False, False]),  # not official: tests and toy runs
    32: ([4, 4, 4, 4], [True, True, False, False]),
    64: ([1, 2, 4, 8, 16], [True] * 4 + [False]),
    128: ([1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
    256: ([1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False]),
    512: ([1, 1, 2, 4, 8, 8, 16, 16], [True] * 7 + [False]),
}
BOTTOM_WIDTH = 4


def check_resolution(img_resolution: int) -> None:
    if img_resolution not in G_ARCH:
        raise ConfigError(
            f"BigGAN has architectures for img_resolution {sorted(G_ARCH)} (the official ones and 16 for tests), "
            f"got {img_resolution}: set model.init_args.img_resolution (and the data's) to one of them."
        )


def check_attention(resolutions: Sequence[int], available: Sequence[int], network: str) -> set[int]:
    """The requested attention resolutions (0 = none, as the official ``--G_attn 0``), each one a block's output."""
    wanted = {int(r) for r in resolutions if int(r) > 0}
    missing = wanted - set(available)
    if missing:
        raise ConfigError(
            f"BigGAN's {network} has no block with output resolution {sorted(missing)} for self-attention; its blocks "
            f"output {sorted(set(available))}: set model.init_args.{network[0].lower()}_attention to some of these ([] = none)."
        )
    return wanted


@torch.no_grad()
def biggan_init_(network: nn.Module, style: Init) -> None:
    """The official ``init_weights``: every conv, linear and embedding weight orthogonal (``ortho``), N(0, 0.02)
    (``N02``) or Xavier-uniform; biases keep torch's default. Spectral norms' u and v are then re-estimated for
    the new weights (15 power iterations, as torch does when it registers the norm)."""
    for module in network.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
            continue
        weight = weight_of(module)
        if weight.is_meta:
            continue
        if style == "ortho":
            nn.init.orthogonal_(weight)
        elif style == "N02":
            nn.init.normal_(weight, 0.0, 0.02)
        elif style == "xavier":
            nn.init.xavier_uniform_(weight)
        else:
            raise ConfigError(f"Unknown init {style!r}: choose ortho (BigGAN), N02 or xavier.")
        if parametrize.is_parametrized(module, "weight"):
            for norm in module.parametrizations.weight:
                if hasattr(norm, "_power_method"):
                    norm._power_method(norm._reshape_weight_to_matrix(weight), 15)


class BigGANGenerator(nn.Module):
    """``(z [N, z_dim], labels)`` -> images ``[N, C, R, R]`` in [-1, 1]; see the module docstring."""

    def __init__(
        self,
        img_resolution: int,
        img_channels: int,
        z_dim: int,
        ch: int,
        label_space: LabelSpace,
        shared_embedding: bool = True,
        shared_dim: int = 128,
        hierarchical: bool = True,
        attention: Sequence[int] = (64,),
        sn: bool = True,
    ) -> None:
        super().__init__()
        check_resolution(img_resolution)
        if not label_space.conditional:
            raise ConfigError("BigGAN is class-conditional: set model.init_args.num_classes (e.g. 1000, 10 or [12, 10]).")
        if hierarchical and not shared_embedding:
            raise ConfigError("BigGAN's hierarchical z is concatenated with the shared embedding: set shared_embedding: true or hierarchical: false.")
        ins, outs = G_ARCH[img_resolution]
        self.in_channels, self.out_channels = [ch * m for m in ins], [ch * m for m in outs]
        self.resolutions = [BOTTOM_WIDTH * 2 ** (i + 1) for i in range(len(outs))]
        self.label_space, self.z_dim, self.hierarchical = label_space, z_dim, hierarchical
        self.num_slots = len(outs) + 1 if hierarchical else 1
        if z_dim % self.num_slots:
            raise ConfigError(
                f"BigGAN's hierarchical z is split into {self.num_slots} equal chunks at {img_resolution} px (one for the first "
                f"layer, one per block), but z_dim={z_dim} is not a multiple of {self.num_slots}: set z_dim to "
                f"{z_dim // self.num_slots * self.num_slots} (the official code rounds down the same way)."
            )
        self.chunk = z_dim // self.num_slots
        if shared_embedding:  # no spectral norm on G's embedding, as the official code
            self.shared = ClassEmbedding(label_space.heads, shared_dim)
            cond_dim = shared_dim + (self.chunk if hierarchical else 0)
        else:  # the class vector itself, one gain and bias per class (the official G_shared=False)
            self.shared = None
            cond_dim = sum(label_space.heads)
        self.linear = sn_linear(self.chunk, self.in_channels[0] * BOTTOM_WIDTH**2, sn=sn)
        self.blocks = nn.ModuleList(
            GeneratorBlock(c_in, c_out, cond_dim, upsample=True, sn=sn, norm_sn=sn and shared_embedding)
            for c_in, c_out in zip(self.in_channels, self.out_channels)
        )
        wanted = check_attention(attention, self.resolutions, "Generator")
        self.attention = nn.ModuleDict(
            {str(i): SelfAttention(c, c // 8, c // 2, pool=True, sn=sn) for i, (c, r) in enumerate(zip(self.out_channels, self.resolutions)) if r in wanted}
        )
        self.out_norm = nn.BatchNorm2d(self.out_channels[-1])
        self.out_conv = sn_conv2d(self.out_channels[-1], img_channels, 3, padding=1, sn=sn)

    def conditions(self, z: Tensor, labels: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The first linear layer's input and each block's condition vector ``y``."""
        if labels is None:
            raise ConfigError("BigGAN's generator needs labels (class indices, see gans.labels).")
        embedded = self.shared(labels) if self.shared is not None else self.label_space.multi_hot(labels, z.dtype)
        if not self.hierarchical:
            return z, [embedded] * len(self.blocks)
        chunks = z.split(self.chunk, dim=1)
        return chunks[0], [torch.cat([embedded, chunk], dim=1) for chunk in chunks[1:]]

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        first, ys = self.conditions(z, labels)
        h = self.linear(first).reshape(z.shape[0], -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for i, (block, y) in enumerate(zip(self.blocks, ys)):
            h = block(h, y)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))


class BigGANDiscriminator(nn.Module):
    """``(images, labels)`` -> logits ``[N]``: residual down blocks, ReLU, sum pooling, projection head."""

    def __init__(self, img_resolution: int, img_channels: int, ch: int, label_space: LabelSpace, attention: Sequence[int] = (64,)) -> None:
        super().__init__()
        check_resolution(img_resolution)
        outs, down = D_ARCH[img_resolution]
        outs = [ch * m for m in outs]
        ins = [img_channels, *outs[:-1]]
        self.resolutions, r = [], img_resolution
        for d in down:
            r = r // 2 if d else r
            self.resolutions.append(r)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(c_in, c_out, downsample=d, preactivation=i > 0, sn=True) for i, (c_in, c_out, d) in enumerate(zip(ins, outs, down))
        )
        wanted = check_attention(attention, self.resolutions, "Discriminator")
        self.attention = nn.ModuleDict(
            {str(i): SelfAttention(c, c // 8, c // 2, pool=True, sn=True) for i, (c, r) in enumerate(zip(outs, self.resolutions)) if r in wanted}
        )
        self.head = ProjectionHead(outs[-1], label_space.heads)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is None:
            raise ConfigError("BigGAN's projection discriminator needs labels (class indices, see gans.labels).")
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling, as SNGAN
        return self.head(h, labels)


def truncate_given(z: Tensor, threshold: float) -> Tensor:
    """N(0, I) latents mapped coordinate-wise onto N(0, I) truncated to ``[-threshold, threshold]`` (the normal CDF,
    rescaled to the kept interval, then its inverse): the same distribution as :func:`gans.training.latents.truncated_normal`,
    but a function of the given latents. ``threshold <= 0`` or ``inf`` = unchanged."""
    if threshold <= 0 or math.isinf(threshold):
        return z
    zd = z.detach().cpu().double()  # float64 on the CPU: the tails need it, and not every device has it
    t = torch.tensor(float(threshold), dtype=torch.float64)
    low, high = torch.special.ndtr(-t), torch.special.ndtr(t)
    u = low + torch.special.ndtr(zd) * (high - low)
    return torch.special.ndtri(u).clamp(-threshold, threshold).to(device=z.device, dtype=z.dtype)


class BigGAN(GANModule):
    """BigGAN with the paper's 128 px ImageNet model and recipe as defaults (see the module docstring)."""

    def __init__(
        self,
        img_resolution: int = 128,
        img_channels: int = 3,
        num_classes: int | Sequence[int] = 1000,
        z_dim: int = 120,
        g_ch: int = 96,
        d_ch: int = 96,
        shared_embedding: bool = True,
        shared_dim: int = 128,
        hierarchical: bool = True,
        g_attention: Sequence[int] = (64,),
        d_attention: Sequence[int] = (64,),
        g_sn: bool = True,
        init: Init = "ortho",
        ortho_beta: float = 1e-4,
        adam_eps: float = 1e-6,
        sync_batchnorm: bool = True,
        truncation: float = 0.0,
        standing_stats: int = 0,
        standing_stats_batch_size: int = 64,
        loss: str = "hinge",
        n_critic: int = 2,
        lr_g: float = 1e-4,
        lr_d: float = 4e-4,
        betas: tuple[float, float] = (0.0, 0.999),
        **kwargs,
    ) -> None:
        """
        Args:
            img_resolution: image side: 32, 64, 128 (the paper's ImageNet model), 256 or 512 (16 for tests).
            img_channels: 3 for RGB.
            num_classes: an int (1000 for ImageNet, 10 for CIFAR-10) or one count per label head ([12, 10] for the
                anime faces' hair and eye colours); see :mod:`gans.labels`.
            z_dim: latent size (120 at 128 px: 6 chunks of 20; official CIFAR: 128 without hierarchy).
            g_ch: G's channel multiplier (the paper's ch: 96 at 128 px, 64 for CIFAR).
            d_ch: D's channel multiplier.
            shared_embedding: one class embedding shared by G's blocks (the paper); false = one-hot class vectors
                into each conditional BN (the official CIFAR settings, ``G_shared`` off).
            shared_dim: size of the shared embedding (128).
            hierarchical: split z over the first layer and the blocks (needs the shared embedding).
            g_attention: output resolutions of G's blocks followed by self-attention ([64]; [] = none).
            d_attention: likewise for D ([64]: after D's first block at 128 px; D's blocks output half their input).
            g_sn: spectral norm in G (D always has it).
            init: ortho (the paper), N02 (N(0, 0.02), the official CIFAR settings) or xavier.
            ortho_beta: orthogonal regularisation beta on G (1e-4; 0 = off, as the official launch scripts).
            adam_eps: Adam's epsilon for both networks (the official scripts: 1e-6; torch's default 1e-8).
            sync_batchnorm: normalise G's batches with the statistics of the global batch under DDP (cross-replica BN).
            truncation: default truncation threshold of :meth:`sample` (grids, FID, predict); 0 = off.
            standing_stats: accumulate standing BN statistics over this many forward passes before sampling in eval
                mode (the official sample.py: 16); 0 = use the running statistics.
            standing_stats_batch_size: batch size of those passes.
            loss: adversarial loss (hinge).
            n_critic: D steps per G step (the paper: 2; the official 128 px script: 1).
            lr_g: G's learning rate (1e-4).
            lr_d: D's learning rate (4e-4).
            betas: Adam's (beta1, beta2): (0, 0.999).
            **kwargs: the rest of the recipe of :class:`gans.training.gan_module.GANModule`.
        """
        label_space = LabelSpace.from_num_classes(num_classes)
        if ortho_beta < 0:
            raise ConfigError(f"ortho_beta must be >= 0 (0 = off), got {ortho_beta}.")
        if standing_stats < 0 or standing_stats_batch_size < 1:
            raise ConfigError(f"standing_stats must be >= 0 and standing_stats_batch_size >= 1, got {standing_stats}, {standing_stats_batch_size}.")
        if truncation < 0:
            raise ConfigError(f"truncation must be >= 0 (0 = off), got {truncation}.")
        generator = BigGANGenerator(img_resolution, img_channels, z_dim, g_ch, label_space, shared_embedding, shared_dim, hierarchical, g_attention, g_sn)
        discriminator = BigGANDiscriminator(img_resolution, img_channels, d_ch, label_space, d_attention)
        biggan_init_(generator, init)
        biggan_init_(discriminator, init)
        if sync_batchnorm:
            cross_replica_batchnorm(generator)
        super().__init__(
            generator=generator, discriminator=discriminator, z_dim=z_dim, num_classes=num_classes,
            loss=loss, n_critic=n_critic, lr_g=lr_g, lr_d=lr_d, betas=betas, **kwargs,
        )
        self.data_shape = (img_channels, img_resolution, img_resolution)
        self._standing_key: tuple | None = None

    # Training: Adam's eps and the orthogonal regularisation.

    def setup(self, stage: str) -> None:
        """Under DDP, G's cross-replica batch norms sum their statistics over the ranks through Lightning's strategy
        (``all_gather`` with gradients, summed); on one process they are plain batch norms."""
        super().setup(stage)
        if self.trainer.world_size > 1:  # a closure, not a bound method: the EMA copy of G must not deep-copy the module
            set_sum_over_ranks(self.generator, lambda tensor: self.all_gather(tensor, sync_grads=True).sum(dim=0))

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        optimizers = super().configure_optimizers()
        for opt in optimizers:
            if isinstance(opt, torch.optim.Adam):
                for group in opt.param_groups:
                    group["eps"] = self.hparams.adam_eps
        return optimizers

    def orthogonal_weights(self) -> list[Tensor]:
        """G's weights that the orthogonal regularisation reaches: every parameter with 2 or more dimensions but
        the shared embedding's (the official ``blacklist=G.shared.parameters()``)."""
        return [p for name, p in self.generator.named_parameters() if p.dim() >= 2 and not name.startswith("shared.")]

    def generator_loss(self, fake: Tensor, labels: Tensor | None = None, real: Tensor | None = None) -> Tensor:
        """The hinge G loss plus ``ortho_beta / 2 * orthogonal_penalty`` (the official gradient; logged as ``train/ortho``)."""
        loss = super().generator_loss(fake, labels, real)
        beta = self.hparams.ortho_beta
        if beta > 0:
            penalty = orthogonal_penalty(self.orthogonal_weights())
            self.log_train({"train/ortho": penalty.detach()})
            loss = loss + beta / 2 * penalty.to(loss.dtype)
        return loss

    # Sampling: truncation and standing statistics.

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: Tensor | None = None,
        z: Tensor | None = None,
        truncation: float | None = None,
        standing_stats: int | None = None,
    ) -> Tensor:
        """``n`` samples from :attr:`sampling_generator` in its current mode, with z truncated at ``truncation``
        (default: the model's ``truncation``; 0 = off). In eval mode with ``standing_stats`` passes (default: the
        model's), G's batch-norm statistics are first the standing statistics of the generator as it is now."""
        threshold = self.hparams.truncation if truncation is None else truncation
        z = truncated_normal(n, self.z_dim, threshold, device=self.device) if z is None else truncate_given(z.to(self.device), threshold)
        z, labels = self.sampling_inputs(n, labels, z)
        generator = self.sampling_generator
        passes = self.hparams.standing_stats if standing_stats is None else standing_stats
        if passes > 0 and not generator.training:
            key = (id(generator), self.g_steps, self.images_seen, passes, threshold)
            if key != self._standing_key:
                self.accumulate_standing_stats(generator, passes, truncation=threshold)
                self._standing_key = key
        return generator(z, labels)

    @torch.no_grad()
    def accumulate_standing_stats(
        self,
        generator: nn.Module | None = None,
        passes: int = 16,
        batch_size: int | None = None,
        truncation: float | None = None,
        seed: int = 0,
    ) -> None:
        """Standing statistics (the official ``utils.accumulate_standing_stats``):
        reset every batch norm of ``generator`` (default :attr:`sampling_generator`) and make its running statistics
        the plain average over ``passes`` train-mode forward passes of ``batch_size`` latents (truncated at
        ``truncation``, default the model's) and uniform labels, drawn from a generator seeded by ``seed``, so every
        rank computes the same statistics without communicating. The generator's train/eval mode is restored."""
        generator = self.sampling_generator if generator is None else generator
        batch_size = batch_size or self.hparams.standing_stats_batch_size
        threshold = self.hparams.truncation if truncation is None else truncation
        norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        was_training = generator.training
        rng = torch.Generator().manual_seed(seed)
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average
            generator.train()
            with local_batchnorm(generator):
                for _ in range(passes):
                    z = truncated_normal(batch_size, self.z_dim, threshold, generator=rng).to(self.device)
                    labels = self.label_space.sample(batch_size, generator=rng).to(self.device)
                    generator(z, labels)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            generator.train(was_training)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._standing_key = None
