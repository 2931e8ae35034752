"""Lazy regularisation (Karras et al. 2020, StyleGAN2, arXiv:1912.04958, section 3.1 and Appendix B;
path length regularisation: section 3.2, eq. 4).

The regularisers are computed less often than the main losses, each in its own update, with the
penalty multiplied by its interval so that its strength per image stays the same:

- ``Dreg``: after every ``r1_interval``-th training batch (16 in StyleGAN2), one extra D step on
  ``r1_gamma / 2 * r1_interval * R1`` (:func:`gans.training.losses.r1_penalty`) on the batch's real images.
  The module's own per-step R1 must then be off (``model.init_args.r1_gamma: 0``).
- ``Greg``: after every ``pl_interval``-th generator step (4), one extra G step on
  ``pl_weight * pl_interval * (||J^T y|| - a)^2`` (:func:`gans.training.losses.path_lengths`) over
  ``batch // pl_batch_shrink`` fresh latents, where ``a`` is the running mean of the lengths
  (moved toward each batch's mean with decay ``pl_decay`` before the penalty is taken, as in the
  official code). For a style-based model (:mod:`gans.models.style.base`) J is taken with respect to its training
  ws (``pl_module.mapped_latents``, with style mixing as the official code), shape ``[N, num_ws, w_dim]``;
  for another generator with ``mapping`` and ``synthesis``, with respect to w = mapping(z); for any other generator it is the
  Jacobian of G(z) with respect to z itself, a smoothness regulariser on z in the same spirit.

Optimizer correction (Appendix B): a network that gets ``k`` main steps and one regulariser step
per period takes ``k + 1`` steps where the paper's schedule counts ``k``, so its optimizer uses
``lr * c`` and Adam betas ``beta ** c`` with ``c = k / (k + 1)`` (D with ``k = r1_interval`` when
R1 is on, G with ``k = pl_interval`` when path length is on). Other optimizers get only the lr
scaled. Each corrected param group records its factor as ``param_group["lazy_ratio"]``, which
``optimizer.state_dict()`` saves; the correction is applied relative to that record in
``on_fit_start`` and again in ``on_train_start`` (Lightning restores a checkpoint's optimizer
state between the two), so it is applied exactly once whatever the order, and a resume with other
intervals moves lr and betas to the new factor. Schedulers that captured the lr before (their
``base_lrs``) do not see it.

Place this callback before :class:`callbacks.EMA` in ``trainer.callbacks`` so the average sees G
after its regulariser step, as in StyleGAN2's training loop. Under DDP every rank runs the same
phases; gradients are averaged by :meth:`gans.training.core.AdversarialModule.backward_and_step` and the
batch's mean path length is averaged over ranks (through the strategy) before it updates ``a``, so
``a`` stays the same on all.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from gans.training import distributed
from gans.errors import ConfigError
from gans.training.losses import path_lengths, r1_penalty


def lazy_ratio(interval: int) -> float:
    """StyleGAN2's minibatch ratio ``interval / (interval + 1)`` for lr and Adam betas."""
    return interval / (interval + 1)


def correct_optimizer_(optimizer: Any, ratio: float) -> None:
    """Scale each param group's lr by ``ratio`` and raise its Adam betas to ``ratio``, relative to the
    factor it already carries in ``param_group["lazy_ratio"]`` (1 if none): idempotent."""
    optimizer = getattr(optimizer, "optimizer", optimizer)  # LightningOptimizer wraps the torch one
    for group in optimizer.param_groups:
        applied = group.get("lazy_ratio", 1.0)
        if applied == ratio:
            continue
        factor = ratio / applied
        group["lr"] = group["lr"] * factor
        if "betas" in group:
            group["betas"] = tuple(beta**factor for beta in group["betas"])
        group["lazy_ratio"] = ratio


class LazyRegularization(L.Callback):
    """StyleGAN2's lazy R1 (extra D step every ``r1_interval`` batches) and path length regulariser
    (extra G step every ``pl_interval`` G steps), with the optimizer correction for the intervals."""

    def __init__(
        self,
        r1_gamma: float = 10.0,
        r1_interval: int = 16,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
    ) -> None:
        """
        Args:
            r1_gamma: R1 gamma (StyleGAN2: 10 at 1024^2, dataset dependent); 0 = no lazy R1.
            r1_interval: D steps per R1 step (StyleGAN2: 16).
            pl_weight: path length weight (StyleGAN2: 2); 0 = off.
            pl_interval: G steps per path length step (StyleGAN2: 4).
            pl_batch_shrink: the path length batch is the training batch divided by this (StyleGAN2: 2).
            pl_decay: decay of the running mean path length per regulariser step (StyleGAN2: 0.01).
        """
        super().__init__()
        for name, value in (("r1_interval", r1_interval), ("pl_interval", pl_interval), ("pl_batch_shrink", pl_batch_shrink)):
            if int(value) != value or value < 1:
                raise ConfigError(f"LazyRegularization {name} must be an integer >= 1, got {value}: set {name}: 1 or more.")
        for name, value in (("r1_gamma", r1_gamma), ("pl_weight", pl_weight)):
            if not value >= 0:
                raise ConfigError(f"LazyRegularization {name} must be >= 0, got {value}: set {name}: 0 to turn it off.")
        if not 0 <= pl_decay <= 1:
            raise ConfigError(f"LazyRegularization pl_decay must be in [0, 1], got {pl_decay}: StyleGAN2 uses 0.01.")
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = int(r1_interval)
        self.pl_weight = float(pl_weight)
        self.pl_interval = int(pl_interval)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.pl_decay = float(pl_decay)
        # State, saved in checkpoints.
        self.d_steps = 0  # training batches (= D steps) seen by this callback
        self.pl_mean = torch.zeros([])  # running mean path length ``a``
        self._g_steps_seen = 0

    # Setup and the optimizer correction.

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        module_r1 = getattr(pl_module, "hparams", {}).get("r1_gamma", 0) or 0
        if self.r1_gamma > 0 and module_r1 > 0:
            raise ConfigError(
                f"R1 is on twice: the model adds r1_gamma={module_r1} every step and LazyRegularization adds "
                f"r1_gamma={self.r1_gamma} every {self.r1_interval} steps: set model.init_args.r1_gamma: 0 "
                f"or LazyRegularization r1_gamma: 0."
            )
        names = [type(cb).__name__ for cb in trainer.callbacks]
        if "EMA" in names and "LazyRegularization" in names and names.index("EMA") < names.index("LazyRegularization"):
            rank_zero_warn("EMA comes before LazyRegularization in trainer.callbacks: put LazyRegularization first so "
                           "the average includes the path length step, as in StyleGAN2.")

    def _correct_optimizers(self, trainer: L.Trainer) -> None:
        if len(trainer.optimizers) < 2:
            return
        opt_d, opt_g = trainer.optimizers[:2]  # GANModule.configure_optimizers: D first
        correct_optimizer_(opt_d, lazy_ratio(self.r1_interval) if self.r1_gamma > 0 else 1.0)
        correct_optimizer_(opt_g, lazy_ratio(self.pl_interval) if self.pl_weight > 0 else 1.0)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._correct_optimizers(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning restored a checkpoint's optimizer state (which carries its own lazy_ratio).
        self._correct_optimizers(trainer)
        self._g_steps_seen = pl_module.g_steps

    # The regulariser phases.

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.d_steps += 1
        real, labels = pl_module.unpack_batch(batch)
        new_g_step = pl_module.g_steps != self._g_steps_seen
        self._g_steps_seen = pl_module.g_steps
        if self.r1_gamma > 0 and self.d_steps % self.r1_interval == 0:
            self._r1_step(trainer, pl_module, real, labels)
        if self.pl_weight > 0 and new_g_step and pl_module.g_steps % self.pl_interval == 0:
            self._path_length_step(trainer, pl_module, real.shape[0])

    def _r1_step(self, trainer: L.Trainer, pl_module: L.LightningModule, real: Tensor, labels: Tensor | None) -> None:
        opt_d, _ = pl_module.optimizers()
        with pl_module.toggled_optimizer(opt_d), trainer.precision_plugin.train_step_context():
            real = real.detach().requires_grad_(True)
            logits = pl_module.discriminator(real, labels)
            penalty = r1_penalty(logits, real, pl_module.grad_scale())
            loss = penalty * (self.r1_gamma / 2 * self.r1_interval)
            pl_module.backward_and_step(opt_d, loss, pl_module.discriminator)
        pl_module.after_discriminator_step()
        pl_module.log_train({"train/r1": penalty.detach()})

    def _path_length_step(self, trainer: L.Trainer, pl_module: L.LightningModule, batch_size: int) -> None:
        _, opt_g = pl_module.optimizers()
        generator = pl_module.generator
        n = max(1, batch_size // self.pl_batch_shrink)
        with pl_module.toggled_optimizer(opt_g), trainer.precision_plugin.train_step_context():
            z, labels = pl_module.sample_z(n), pl_module.sample_labels(n)
            if hasattr(pl_module, "mapped_latents"):  # style-based (gans.models.style.base): ws with style mixing, as the official Gpl phase
                latents = pl_module.mapped_latents(z, labels)  # [N, num_ws, w_dim]
                images = generator.synthesis(latents)
            elif hasattr(generator, "mapping") and hasattr(generator, "synthesis"):
                latents = generator.mapping(z, labels)  # w, [N, num_ws, w_dim]
                images = generator.synthesis(latents)
            else:
                latents = z.requires_grad_(True)
                images = generator(latents, labels)
            lengths = path_lengths(images, latents, pl_module.grad_scale())
            batch_mean = distributed.mean_over_ranks(trainer.strategy, lengths.mean().detach())
            mean = self.pl_mean.to(lengths)
            if torch.isfinite(batch_mean):  # the same on every rank after the all-reduce
                mean = mean.lerp(batch_mean, self.pl_decay)
            penalty = (lengths - mean).pow(2).mean()
            loss = penalty * (self.pl_weight * self.pl_interval)
            pl_module.backward_and_step(opt_g, loss, generator)
        self.pl_mean = mean.detach()
        pl_module.log_train({"train/pl": penalty.detach(), "train/pl_mean": self.pl_mean})

    # Checkpoints.

    def state_dict(self) -> dict[str, Any]:
        return {"d_steps": self.d_steps, "pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.d_steps = int(state_dict.get("d_steps", 0))
        self.pl_mean = torch.as_tensor(state_dict.get("pl_mean", 0.0)).clone()
