"""The training loop of the image-to-image GANs: several generators and discriminators, generators fed a batch.

pix2pix, CycleGAN, StarGAN and CoGAN stand on :class:`TranslationGAN`, a sibling of :class:`gans.training.gan_module.GANModule`
on the same :class:`gans.training.core.AdversarialModule`: updates (DDP gradient averaging per network, AMP, gradient
clipping, the non-finite guard), progress counters, per-rank random streams, lr schedulers and checkpoint state
are the core's, written once. This layer adds:

- **Two phases over named networks.** ``generator_names`` are trained by one optimizer and
  ``discriminator_names`` by another, as the official CycleGAN code does (one Adam over both generators, one
  over both discriminators). A single network per phase is the same thing with one name.
- **A generator input that is the batch.** :meth:`generate` runs every generator on the training batch (an
  image; an image and a target domain; latents for CoGAN) and returns the images the losses need, by name.
  It runs once per batch: the D phase sees them detached, the G phase with their graph (pix2pix's and
  CycleGAN's official ``forward`` then ``backward_D`` / ``backward_G``). ``generator_phase_first`` picks the
  order: CycleGAN updates G first, pix2pix and StarGAN update D first.
- **Model losses as named terms.** :meth:`discriminator_loss` and :meth:`generator_loss` return the total and
  log their terms under the shared names (``train/d_loss``, ``train/g_loss``, ``train/d_real``,
  ``train/d_fake``, ``train/<term>``: ``train/l1``, ``train/cycle``, ``train/identity``, ...).
- ``n_critic`` D steps per G step (StarGAN's 5); on batches without a G step the generators run without a graph.
- The papers' linear lr decay (:func:`linear_decay`) as a Lightning ``LambdaLR``, stepped by the core.
- History pools (:class:`HistoryPool`, Shrivastava et al. 2017) whose contents are saved in checkpoints per rank,
  so a resume continues exactly.
- EMA of any generator through :class:`callbacks.EMA` (``ema_networks``), and each model's ``translate`` and :meth:`pictures`
  for :class:`callbacks.TranslationGrid`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal, Sequence

import torch
from torch import Tensor, nn

from gans.checks import check_at_least, check_optimizer_settings
from gans.errors import ConfigError
from gans.training import contracts, distributed
from gans.training.core import AdversarialModule, parameters_of
from gans.training.losses import get_loss

Images = dict[str, Tensor]

# The official pix2pix / CycleGAN code weights its criterion l (binary cross-entropy, or the squared error of
# LSGAN) as D: 1/2 (l(D(real), 1) + l(D(fake), 0)) and G: l(D(fake), 1); pix2pix, section 3.3: "we divide the
# objective by 2 while optimizing D". In :mod:`gans.training.losses` terms that is half the logistic D loss, and twice
# Mao et al.'s G loss (CycleGAN eq. 1 with the least-squares loss: E[(D(G(x)) - 1)^2], without Mao's 1/2), which
# matters next to the L1 and cycle weights. The Wasserstein and hinge losses (StarGAN) are used as they are.
D_SCALE = {"minimax": 0.5, "non_saturating": 0.5}
G_SCALE = {"least_squares": 2.0}


def linear_decay(constant: int, decay: int) -> Any:
    """The lr factor of CycleGAN / pix2pix (official ``lambda_rule``) and StarGAN: 1 for ``constant`` epochs (or
    steps), then linearly down to 0 over ``decay`` more: ``1 - max(0, t + 1 - constant) / (decay + 1)``, where
    ``t`` counts completed epochs (steps)."""

    def factor(t: int) -> float:
        return max(0.0, 1.0 - max(0, t + 1 - constant) / float(decay + 1))

    return factor


class HistoryPool:
    """The image buffer of Shrivastava et al. 2017 (arXiv:1612.07828, section 2.3) that CycleGAN's D trains on
    (Zhu et al. 2017, section 4: a history of the 50 latest generated images).

    :meth:`query` takes a batch of new fakes and returns as many: while the pool has room each new image is
    stored and returned; once full, each new image is, with probability 1/2, returned as is, or swapped with a
    random stored image, which is returned in its place (the official ``ImagePool``). Random draws come from the
    global stream (the core gives every rank its own), and :meth:`state` / :meth:`load_state` carry the contents
    through checkpoints. Size 0 = no pool.
    """

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ConfigError(f"The history pool size must be >= 0 (0 = off), got {size}.")
        self.size = size
        self.images: Tensor | None = None  # [stored, C, H, W], detached
        self.stored = 0

    @torch.no_grad()
    def query(self, fakes: Tensor) -> Tensor:
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        if self.images is None or self.images.shape[1:] != fakes.shape[1:]:
            self.images, self.stored = fakes.new_empty(self.size, *fakes.shape[1:]), 0
        self.images = self.images.to(fakes.device, fakes.dtype)  # restored on the CPU before the model moved
        out = []
        for image in fakes:
            if self.stored < self.size:
                self.images[self.stored] = image
                self.stored += 1
                out.append(image)
            elif torch.rand(()) < 0.5:
                slot = int(torch.randint(0, self.size, ()))
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> Tensor:
        """The stored images, ``[stored, C, H, W]`` (empty before the first query)."""
        return torch.empty(0) if self.images is None else self.images[: self.stored].detach().cpu().clone()

    def load_state(self, images: Tensor, device: torch.device) -> None:
        if len(images) > self.size:
            raise ConfigError(f"The checkpoint's history pool holds {len(images)} images, more than this model's pool_size {self.size}.")
        if len(images) == 0:
            self.images, self.stored = None, 0
            return
        self.images = images.new_empty(self.size, *images.shape[1:]).to(device)
        self.images[: len(images)] = images.to(device)
        self.stored = len(images)


def detached(images: Images) -> Images:
    return {name: image.detach() for name, image in images.items()}


class TranslationGAN(AdversarialModule, abc.ABC):
    """Generators and discriminators in two phases, each phase one optimizer over its named networks.

    A subclass builds its networks as attributes, names them in ``generator_names`` / ``discriminator_names``,
    and implements the four abstract methods: :meth:`generate`, :meth:`discriminator_loss`,
    :meth:`generator_loss` and :meth:`pictures` (a subclass missing one cannot be constructed: Python names the
    missing methods). Each model also offers its own ``translate(...)`` (pix2pix: an image; CycleGAN: an image and
    a direction; StarGAN: images and target domains) for pictures and ``predict``.

    **Configuration lives in typed attributes** for this whole family (TranslationGAN, pix2pix, CycleGAN,
    StarGAN, CoGAN): each ``__init__`` argument is validated and kept as an attribute (``self.n_critic``,
    ``self.lr_g``, ``self.cycle_weight``), and the code reads it there, never from ``self.hparams``. Subclasses
    call ``save_hyperparameters()`` only so that checkpoints and loggers record the arguments
    (``load_from_checkpoint`` rebuilds the model from them); the record is not read back.

    Contracts (:mod:`gans.training.contracts`): an ``EMAHost`` whose averaged networks are the generators.
    """

    generator_names: ClassVar[tuple[str, ...]] = ("generator",)
    discriminator_names: ClassVar[tuple[str, ...]] = ("discriminator",)
    generator_phase_first: ClassVar[bool] = False

    def __init__(
        self,
        loss: str = "least_squares",
        n_critic: int = 1,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        lr_constant: int = 0,
        lr_decay: int = 0,
        lr_unit: Literal["epoch", "step"] = "epoch",
        gradient_clip_val: float = 0.0,
        max_nonfinite_steps: int = 10,
        max_kimg: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        """
        Args:
            loss: adversarial loss by name (:func:`gans.training.losses.get_loss`): least_squares (CycleGAN), non_saturating
                (pix2pix's "vanilla"), wasserstein (StarGAN), hinge, minimax.
            n_critic: D steps per G step (StarGAN: 5).
            lr_g: Adam learning rate of the generators' optimizer.
            lr_d: Adam learning rate of the discriminators' optimizer.
            betas: Adam's (beta1, beta2).
            lr_constant: with ``lr_decay`` > 0: epochs (or steps) at the initial lr before the decay starts.
            lr_decay: epochs (or steps, ``lr_unit``) of linear decay to 0 after ``lr_constant``; 0 = constant lr.
            lr_unit: ``epoch`` (CycleGAN, pix2pix: epochs of the data) or ``step`` (StarGAN: training batches).
            gradient_clip_val: clip each optimizer's gradient norm to this; 0 = off.
            max_nonfinite_steps: stop after this many batches in a row with a skipped (NaN/Inf) update.
            max_kimg: stop after this many thousand training examples; 0 = the trainer's limits.
            weight_decay: Adam's L2 weight decay in both optimizers (CoGAN's official solver: 0.0005); 0 = off.
        """
        super().__init__(max_nonfinite_steps=max_nonfinite_steps, gradient_clip_val=gradient_clip_val, max_kimg=max_kimg)
        self.adversarial_loss = get_loss(loss)
        if self.adversarial_loss.relativistic:  # its G loss needs D(real), which the translation G steps do not compute
            raise ConfigError(f"{type(self).__name__} does not support the relativistic loss {loss!r}: choose least_squares, "
                              f"non_saturating, wasserstein, hinge or minimax (model.init_args.loss).")
        check_at_least("n_critic", n_critic, 1)
        check_at_least("lr_constant", lr_constant, 0)
        check_at_least("lr_decay", lr_decay, 0)
        if lr_unit not in ("epoch", "step"):
            raise ConfigError(f"lr_unit must be 'epoch' or 'step', got {lr_unit!r}: set model.init_args.lr_unit to one of them.")
        check_optimizer_settings(lr_g, lr_d, betas, weight_decay=weight_decay)
        self.n_critic = n_critic
        self.lr_g, self.lr_d = lr_g, lr_d
        self.weight_decay = weight_decay
        self.betas = tuple(float(b) for b in betas)
        self.lr_constant, self.lr_decay, self.lr_unit = lr_constant, lr_decay, lr_unit
        self.history_pools: dict[str, HistoryPool] = {}

    # What a subclass writes.

    @abc.abstractmethod
    def generate(self, batch: Any) -> Images:
        """The generators' outputs on a training batch, by name (fakes, reconstructions, identity mappings)."""

    @abc.abstractmethod
    def discriminator_loss(self, batch: Any, images: Images) -> Tensor:
        """The D phase's loss on the batch and the (detached) generated images; logs its terms."""

    @abc.abstractmethod
    def generator_loss(self, batch: Any, images: Images) -> Tensor:
        """The G phase's loss (adversarial plus the model's own terms); logs its terms."""

    @abc.abstractmethod
    def pictures(self, held_out: Any) -> list[tuple[str, Tensor]]:
        """Columns of the progress picture (:class:`callbacks.TranslationGrid`) for fixed held-out examples:
        ``[(title, images [N, C, H, W]), ...]``, drawn with the EMA generators where kept (:meth:`sampling_network`)."""

    def batch_size_of(self, batch: Any) -> int:
        """Training examples in a batch (``train/kimg`` counts these)."""
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return first.shape[0]

    def critic_steps(self) -> int:
        return self.n_critic

    def held_out(self, datamodule: Any, n: int) -> Any:
        """Fixed examples for :class:`callbacks.TranslationGrid`: the datamodule's first ``n`` held-out pairs."""
        return datamodule.held_out_pairs(n)

    # The adversarial terms every model shares.

    def adversarial_d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """One discriminator's adversarial loss on its logits (any shape: PatchGAN maps too), in the papers' scale."""
        return D_SCALE.get(self.adversarial_loss.name, 1.0) * self.adversarial_loss.discriminator(real_logits, fake_logits)

    def adversarial_g_loss(self, fake_logits: Tensor) -> Tensor:
        """The generator's adversarial term against one discriminator, in the papers' scale."""
        return G_SCALE.get(self.adversarial_loss.name, 1.0) * self.adversarial_loss.generator(fake_logits)

    # The loop.

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt_d, opt_g = self.optimizers()
        g_due = self.d_steps_since_g + 1 >= self.critic_steps()
        with torch.set_grad_enabled(g_due):  # the graph is kept only when G steps on this batch
            images = self.generate(batch)
        if g_due and self.generator_phase_first:
            self._generator_phase(opt_g, batch, images)
            self._discriminator_phase(opt_d, batch, detached(images))
        else:
            self._discriminator_phase(opt_d, batch, detached(images))
            if g_due:
                self._generator_phase(opt_g, batch, images)
        if g_due:
            self.d_steps_since_g = 0
            self.g_steps += 1
        else:
            self.d_steps_since_g += 1
        self.end_of_batch(self.batch_size_of(batch))

    def _discriminator_phase(self, opt: Any, batch: Any, images: Images) -> None:
        with self.toggled_optimizer(opt):
            loss = self.discriminator_loss(batch, images)
            self.log_train({"train/d_loss": loss.detach()}, prog_bar=True)
            self.backward_and_step(opt, loss)

    def _generator_phase(self, opt: Any, batch: Any, images: Images) -> None:
        with self.toggled_optimizer(opt):
            loss = self.generator_loss(batch, images)
            self.log_train({"train/g_loss": loss.detach()}, prog_bar=True)
            self.backward_and_step(opt, loss)

    # Optimizers and schedules.

    def networks(self, names: Sequence[str]) -> list[nn.Module]:
        """The networks ``names`` (one-line ConfigError naming one this module does not have)."""
        return [contracts.network(self, name, "configure_optimizers") for name in names]

    def configure_optimizers(self) -> Any:
        """Adam over the discriminators, Adam over the generators (``self.optimizers()`` = ``(opt_d, opt_g)``), with
        the linear decay as Lightning ``LambdaLR`` schedulers when ``lr_decay`` > 0."""
        opt_d = torch.optim.Adam(parameters_of(self.networks(self.discriminator_names)), lr=self.lr_d, betas=self.betas, weight_decay=self.weight_decay)
        opt_g = torch.optim.Adam(parameters_of(self.networks(self.generator_names)), lr=self.lr_g, betas=self.betas, weight_decay=self.weight_decay)
        if self.lr_decay == 0:
            return opt_d, opt_g
        rule = linear_decay(self.lr_constant, self.lr_decay)
        schedulers = [
            {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, rule), "interval": self.lr_unit, "frequency": 1}
            for opt in (opt_d, opt_g)
        ]
        return [opt_d, opt_g], schedulers

    # EMA, sampling.

    @property
    def ema_networks(self) -> tuple[str, ...]:
        """The networks :class:`callbacks.EMA` averages (each into ``<name>_ema``): the generators."""
        return self.generator_names

    def sampling_network(self, name: str) -> nn.Module:
        """The network ``name`` to draw pictures from: its EMA copy when :class:`callbacks.EMA` keeps one."""
        ema = contracts.ema_copy(self, name)
        return contracts.network(self, name, "sampling_network") if ema is None else ema

    # Checkpoints: the pools per rank (the core restores the EMA copies).

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if not self.history_pools:
            return
        strategy = self.trainer.strategy if self._trainer is not None else None
        checkpoint["history_pools"] = {  # every rank's pool: ranks fill them with their own fakes
            name: [s.cpu().clone() for s in distributed.gather_per_rank(strategy, pool.state().to(self.root_device()))]
            for name, pool in self.history_pools.items()
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        rank = self.trainer.global_rank if self._trainer is not None else 0
        for name, states in checkpoint.get("history_pools", {}).items():
            if name in self.history_pools and states:
                self.history_pools[name].load_state(states[min(rank, len(states) - 1)], self.device)
