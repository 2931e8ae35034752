"""Exponential moving average of the generator's weights (Karras et al. 2018, arXiv:1710.10196,
section A.1; StyleGAN2-ADA, arXiv:2006.06676, training loop).

After every generator step the averaged copy moves toward the trained one:
``ema = beta * ema + (1 - beta) * g`` with ``beta = 0.5 ** (images / half_life)``, where ``images``
counts the real images shown (on all ranks) since the previous update, so the weight of an old step
halves every ``half_life_kimg`` thousand images whatever the batch size, the number of ranks or the
number of D steps per G step (with ``n_critic`` 5 an update comes every 5 batches and
``images`` is 5 batches' worth; StyleGAN2-ADA's ``ema_nimg`` per update). With
``rampup`` the half-life is capped at ``rampup * images seen`` early in training (StyleGAN2-ADA
uses 0.05), so the average does not drag the random initialisation along. With ``start_kimg`` the copy
simply follows the generator (beta 0) until that many thousand images, then starts averaging (BigGAN's
official ``--ema_start``: 20k iterations at 128 px). Buffers (batch-norm
statistics) are copied, not averaged. The state (images at the last update) is saved in checkpoints.

The averaged generator lives on the module as ``generator_ema``: it travels in the state dict, so checkpoints
keep it and, under ``ddp_spawn`` / ``ddp_fork`` / ``ddp_notebook``, the launching process gets rank 0's copy (a module
that lacks the copy creates it when a state dict holding one loads:
:meth:`gans.training.core.AdversarialModule.load_state_dict`), and :meth:`gans.training.gan_module.GANModule.sample`,
sample grids and ``lightning predict`` use it. A model with several generators names them in
``ema_networks`` (:class:`gans.training.contracts.EMAHost`; GANModule: ``generator``; CycleGAN:
``generator_ab``, ``generator_ba``); each is averaged into ``<name>_ema``. Every DDP rank computes the same average from
the same parameters, so it needs no communication.

Why not Lightning's ``WeightAveraging`` (``torch.optim.swa_utils.AveragedModel``): its ``avg_fn`` sees the number of
updates, not the images since the last one, so a half-life in images cannot be kept when the batch size changes
(progressive growing) or G steps come every ``n_critic`` batches; it averages the whole LightningModule (D too, twice
the memory) into a copy of its own instead of a ``generator_ema`` that sampling, ``predict`` and the state dict see;
and it swaps the averaged weights into the trained module for validation and at the end of fit, where a GAN keeps
training G and samples from the average.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from gans.errors import ConfigError
from gans.training import contracts
from gans.training.core import frozen_copy


def ema_beta(batch: int, half_life_images: float) -> float:
    """The decay per step of ``batch`` images for a half-life of ``half_life_images`` images."""
    return 0.5 ** (batch / max(half_life_images, 1e-8))


@torch.no_grad()
def ema_update_(ema: nn.Module, source: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * source for parameters (one fused lerp); buffers copied."""
    ema_params, params = list(ema.parameters()), [p.detach() for p in source.parameters()]
    if len(ema_params) != len(params):
        raise ValueError(f"EMA copy has {len(ema_params)} parameters, the generator {len(params)}: rebuild the copy.")
    if params:
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), source.buffers(), strict=True):
        b_ema.copy_(b)


class EMA(L.Callback):
    """Keeps ``pl_module.generator_ema``, the exponential moving average of ``pl_module.generator`` (and of every
    network in ``pl_module.ema_networks``, as ``<name>_ema``)."""

    def __init__(self, half_life_kimg: float = 10.0, rampup: float | None = None, start_kimg: float = 0.0) -> None:
        """
        Args:
            half_life_kimg: half-life of the average in thousands of images (StyleGAN2: 10).
            rampup: cap the half-life at ``rampup`` x images seen; None = no ramp-up (StyleGAN2-ADA: 0.05).
            start_kimg: before this many thousand images the average is a copy of the generator; 0 = average from the start.
        """
        super().__init__()
        if half_life_kimg <= 0:
            raise ConfigError(f"EMA half_life_kimg must be > 0, got {half_life_kimg}.")
        if rampup is not None and rampup <= 0:
            raise ConfigError(f"EMA rampup must be > 0 or null, got {rampup}.")
        self.half_life_kimg = half_life_kimg
        self.rampup = rampup
        if start_kimg < 0:
            raise ConfigError(f"EMA start_kimg must be >= 0, got {start_kimg}.")
        self.start_kimg = start_kimg
        self._g_steps_seen = 0
        self.images_at_update: int | None = None  # images_seen at the last update; saved in checkpoints

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Before the strategy wraps the model and before a checkpoint is restored into it.
        contracts.require(pl_module, contracts.EMAHost, "callbacks.EMA", "use a gans model (GANModule or TranslationGAN), or remove callbacks.EMA")
        for name in pl_module.ema_networks:
            network = contracts.network(pl_module, name, "callbacks.EMA")
            if contracts.ema_copy(pl_module, name) is None:
                setattr(pl_module, contracts.ema_name(name), frozen_copy(network))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._g_steps_seen = pl_module.g_steps
        if self.images_at_update is None:
            self.images_at_update = pl_module.images_seen

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if pl_module.g_steps == self._g_steps_seen:
            return  # this batch made only a discriminator step: G did not change
        self._g_steps_seen = pl_module.g_steps
        images = pl_module.images_seen - self.images_at_update
        self.images_at_update = pl_module.images_seen
        half_life = self.half_life_kimg * 1000.0
        if self.rampup is not None:
            half_life = min(half_life, pl_module.images_seen * self.rampup)
        beta = ema_beta(images, half_life) if pl_module.images_seen >= self.start_kimg * 1000 else 0.0
        for name in pl_module.ema_networks:
            ema_update_(contracts.ema_copy(pl_module, name), contracts.network(pl_module, name, "callbacks.EMA"), beta)
        pl_module.log_train({"train/ema_beta": beta})

    def state_dict(self) -> dict[str, Any]:
        return {"images_at_update": self.images_at_update}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.images_at_update = state_dict.get("images_at_update")
