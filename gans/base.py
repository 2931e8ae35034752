"""The alternating-step LightningModule every variant inherits.

Goodfellow et al. 2014, arXiv:1406.2661, Algorithm 1 (k = ``n_critic`` discriminator steps per
generator step), with the losses, regularisers and tricks of :mod:`gans.losses` and
:mod:`gans.tricks` chosen by name in config.

One ``training_step`` consumes one real batch and makes one D step; every ``critic_steps()``-th
D step is followed by one G step. So each critic iteration sees fresh real data, exactly as in
WGAN's Algorithm 1, and ``n_critic`` can change over training (WGAN's schedule). Note that
Lightning's ``trainer.global_step`` counts optimizer steps of both networks; ``train/kimg``
(thousands of real images shown to D) is the unit to compare runs by.

Public hooks, stable for subclassing (``class MyGAN(DCGAN): def generator_loss(...)``):

- ``discriminator_loss(real, fake, labels) -> Tensor``
- ``generator_loss(fake, labels) -> Tensor``
- ``critic_steps() -> int``
- ``sample(n, labels=None, z=None) -> Tensor`` and ``forward(z, labels=None)`` (= the generator)
- ``after_discriminator_step()`` (WGAN clips weights here)
- ``backward_and_step(opt, loss, network) -> bool``: the one place a loss becomes an update
  (DDP gradient averaging, AMP, the non-finite guard); callbacks that add their own phases
  (:class:`callbacks.LazyRegularization`) step through it too.

Non-finite losses: a NaN/Inf loss skips that update (on every rank) and is counted in
``train/nonfinite_steps``; after ``max_nonfinite_steps`` in a row training stops with
:class:`gans.errors.NonFiniteLossError`, which names the last checkpoint saved.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from gans import distributed
from gans.errors import ConfigError, NonFiniteLossError
from gans.losses import (
    clip_weights,
    drift_penalty,
    get_loss,
    gradient_penalty,
    r1_penalty,
    r2_penalty,
)
from gans.tricks import instance_noise, label_targets

OptimizerName = Literal["adam", "rmsprop", "sgd"]


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that no optimizer trains (the EMA generator)."""
    return copy.deepcopy(module).requires_grad_(False)


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class GANModule(L.LightningModule):
    """A generator and a discriminator trained in alternation with manual optimization.

    Subclasses build the two networks and pass them in; every other argument is the training
    recipe and is exposed to LightningCLI through the subclass's ``**kwargs``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        z_dim: int,
        num_classes: int = 0,
        loss: str = "non_saturating",
        n_critic: int = 1,
        optimizer: OptimizerName = "adam",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        momentum: float = 0.0,
        gp_weight: float = 0.0,
        r1_gamma: float = 0.0,
        r2_gamma: float = 0.0,
        drift_weight: float = 0.0,
        clip_value: float = 0.0,
        label_smoothing: float = 0.0,
        soft_labels: bool = False,
        label_flip_prob: float = 0.0,
        instance_noise_std: float = 0.0,
        instance_noise_anneal_kimg: float = 0.0,
        gradient_clip_val: float = 0.0,
        max_nonfinite_steps: int = 10,
    ) -> None:
        """
        Args:
            generator: maps ``(z [N, z_dim], labels [N] or None)`` to samples.
            discriminator: maps ``(x, labels [N] or None)`` to logits ``[N]``.
            z_dim: latent size.
            num_classes: number of classes for conditional models; 0 = unconditional.
            loss: adversarial loss: minimax, non_saturating, least_squares, wasserstein or hinge.
            n_critic: discriminator steps per generator step.
            optimizer: adam (uses ``betas``), rmsprop or sgd (uses ``momentum``); one per network.
            lr_g: generator learning rate (TTUR: differs from ``lr_d``).
            lr_d: discriminator learning rate.
            betas: Adam's (beta1, beta2).
            momentum: SGD / RMSProp momentum.
            gp_weight: WGAN-GP lambda on interpolates; 0 = off (the paper uses 10).
            r1_gamma: R1 gamma on real data, added as gamma / 2 * penalty; 0 = off.
            r2_gamma: R2 gamma on generated data; 0 = off.
            drift_weight: ProGAN drift epsilon; 0 = off (the paper uses 0.001).
            clip_value: WGAN weight clipping c; 0 = off (the paper uses 0.01).
            label_smoothing: one-sided: real targets become 1 - label_smoothing; 0 = off.
            soft_labels: real targets ~ U[0.8, 1.2], fake ~ U[0, 0.2].
            label_flip_prob: probability of flipping each D target (noisy labels); 0 = off.
            instance_noise_std: std of Gaussian noise added to D's inputs; 0 = off.
            instance_noise_anneal_kimg: decay the noise linearly to 0 over this many kimg; 0 = constant.
            gradient_clip_val: clip each network's gradient norm to this before its step; 0 = off.
                (Trainer's gradient_clip_val does not apply to manual optimization.)
            max_nonfinite_steps: stop after this many NaN/Inf losses in a row (each one skips its update).
        """
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.adversarial_loss = get_loss(loss)
        label_tricks = label_smoothing > 0 or soft_labels or label_flip_prob > 0
        if label_tricks and not self.adversarial_loss.uses_labels:
            raise ConfigError(
                f"Label smoothing, soft or noisy labels need a loss with labels (minimax, non_saturating, "
                f"least_squares); {loss!r} has none: turn the label tricks off or change the loss."
            )
        if n_critic < 1:
            raise ConfigError(f"n_critic must be >= 1, got {n_critic}.")
        if max_nonfinite_steps < 1:
            raise ConfigError(f"max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}.")
        if optimizer not in OptimizerName.__args__:
            raise ConfigError(f"Unknown optimizer {optimizer!r}: choose one of {', '.join(OptimizerName.__args__)}.")
        self.save_hyperparameters(ignore=["generator", "discriminator"])

        # Training progress, saved in checkpoints (on_save_checkpoint).
        self.images_seen = 0
        self.g_steps = 0
        self.d_steps_since_g = 0
        self.nonfinite_steps = 0  # skipped updates in total
        self.nonfinite_streak = 0  # ... and in a row, up to now

    # Lightning's ThroughputMonitor (callbacks.ImagesPerSecond) reads this; GAN FLOPs are not counted.
    flops_per_batch: int | None = None

    # Public hooks.

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The generator: latents (and labels for conditional models) to samples."""
        return self.generator(z, labels)

    def sample_z(self, n: int) -> Tensor:
        """``n`` latents from the prior, N(0, I)."""
        return torch.randn(n, self.z_dim, device=self.device)

    def sample_labels(self, n: int) -> Tensor | None:
        """``n`` uniformly drawn class labels, or None for unconditional models."""
        if not self.num_classes:
            return None
        return torch.randint(0, self.num_classes, (n,), device=self.device)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator to draw samples from: the EMA copy when :class:`callbacks.EMA` keeps one."""
        ema = getattr(self, "generator_ema", None)
        return self.generator if ema is None else ema

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """``n`` samples from :attr:`sampling_generator` in its current train/eval mode."""
        z = self.sample_z(n) if z is None else z.to(self.device)
        if labels is None:
            labels = self.sample_labels(n)
        return self.sampling_generator(z, labels)

    @torch.no_grad()
    def sample_indexed(self, indices: Tensor) -> Tensor:
        """Samples numbered by ``indices``: index i always gets the latent seeded by i (and label
        i mod num_classes). ``lightning predict`` and :class:`callbacks.FID` draw through this, so a
        checkpoint's images are reproducible and do not depend on the batch size or the number of ranks;
        the global RNG is left untouched."""
        indices = indices.long().cpu()
        z = torch.stack([torch.randn(self.z_dim, generator=torch.Generator().manual_seed(int(i))) for i in indices])
        labels = (indices % self.num_classes).to(self.device) if self.num_classes else None
        return self.sampling_generator(z.to(self.device), labels)

    def predict_step(self, batch: Tensor, batch_idx: int) -> dict[str, Tensor]:
        """Samples for ``lightning predict``: ``batch`` holds sample indices (see :meth:`sample_indexed`)."""
        return {"index": batch.long().cpu(), "samples": self.sample_indexed(batch)}

    def critic_steps(self) -> int:
        """Discriminator steps before the next generator step; WGAN overrides this with its schedule."""
        return self.hparams.n_critic

    def discriminator_loss(self, real: Tensor, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        """The adversarial D loss plus every regulariser switched on; logs ``train/d_*`` terms."""
        hp = self.hparams
        std = self.instance_noise_std()
        real, fake = instance_noise(real, std), instance_noise(fake, std)
        if hp.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        if hp.r2_gamma > 0:
            fake = fake.detach().requires_grad_(True)
        real_logits = self.discriminator(real, labels)
        fake_logits = self.discriminator(fake, labels)

        if self.adversarial_loss.uses_labels:
            loss = self.adversarial_loss.discriminator(
                real_logits,
                fake_logits,
                label_targets(real_logits, True, hp.label_smoothing, hp.soft_labels, hp.label_flip_prob),
                label_targets(fake_logits, False, hp.label_smoothing, hp.soft_labels, hp.label_flip_prob),
            )
        else:
            loss = self.adversarial_loss.discriminator(real_logits, fake_logits)
        self.log_dict({"train/d_real": real_logits.mean(), "train/d_fake": fake_logits.mean()})

        # Regularisers.
        terms: dict[str, Tensor] = {}
        if hp.gp_weight > 0:
            terms["gp"] = gradient_penalty(lambda x: self.discriminator(x, labels), real, fake, self.grad_scale())
            loss = loss + hp.gp_weight * terms["gp"]
        if hp.r1_gamma > 0:
            terms["r1"] = r1_penalty(real_logits, real, self.grad_scale())
            loss = loss + hp.r1_gamma / 2 * terms["r1"]
        if hp.r2_gamma > 0:
            terms["r2"] = r2_penalty(fake_logits, fake, self.grad_scale())
            loss = loss + hp.r2_gamma / 2 * terms["r2"]
        if hp.drift_weight > 0:
            terms["drift"] = drift_penalty(real_logits)
            loss = loss + hp.drift_weight * terms["drift"]
        self.log_dict({f"train/{name}": value for name, value in terms.items()})
        self.log("train/d_loss", loss, prog_bar=True)
        return loss

    def generator_loss(self, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        """The adversarial G loss on D's logits for ``fake``; logs ``train/g_loss``."""
        logits = self.discriminator(instance_noise(fake, self.instance_noise_std()), labels)
        loss = self.adversarial_loss.generator(logits)
        self.log("train/g_loss", loss, prog_bar=True)
        return loss

    def after_discriminator_step(self) -> None:
        """Runs after each D optimizer step: WGAN weight clipping."""
        if self.hparams.clip_value > 0:
            clip_weights(self.discriminator, self.hparams.clip_value)

    # The alternation.

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real, labels = self.unpack_batch(batch)
        skipped_before = self.nonfinite_steps
        opt_d, opt_g = self.optimizers()
        self.discriminator_step(opt_d, real, labels)
        self.d_steps_since_g += 1
        if self.d_steps_since_g >= self.critic_steps():
            self.generator_step(opt_g, real.shape[0], labels)
            self.d_steps_since_g = 0
            self.g_steps += 1
        self.images_seen += real.shape[0] * self.trainer.world_size
        self.log("train/kimg", self.images_seen / 1000.0, prog_bar=True)
        if self.nonfinite_steps == skipped_before:
            self.nonfinite_streak = 0
        distributed.broadcast_buffers(self)

    def discriminator_step(self, opt: Any, real: Tensor, labels: Tensor | None) -> None:
        """One D update on a real batch and as many fresh fakes (G frozen)."""
        with self.toggled_optimizer(opt):
            with torch.no_grad():
                fake = self(self.sample_z(real.shape[0]), labels)
            loss = self.discriminator_loss(real, fake, labels)
            self.backward_and_step(opt, loss, self.discriminator)
        self.after_discriminator_step()

    def generator_step(self, opt: Any, n: int, labels: Tensor | None) -> None:
        """One G update through the frozen D. Conditional models reuse the real batch's labels."""
        with self.toggled_optimizer(opt):
            fake = self(self.sample_z(n), labels)
            loss = self.generator_loss(fake, labels)
            self.backward_and_step(opt, loss, self.generator)

    def backward_and_step(self, opt: Any, loss: Tensor, network: nn.Module) -> bool:
        """Back-propagate ``loss`` and step ``opt``, which trains ``network``; False if the loss was NaN/Inf.

        Under DDP the backward runs without DDP's reducer and ``network``'s gradients are averaged
        with one all-reduce (:mod:`gans.distributed`). A non-finite loss on any rank skips the
        update on all ranks, so parameters never take a NaN and ranks never diverge; the streak of
        skips resets after a training batch without one.
        """
        opt.zero_grad(set_to_none=True)
        if not distributed.all_ranks(bool(torch.isfinite(loss.detach()).all()), self.device):
            self._skip_nonfinite_update()
            return False
        with distributed.reducer_off(self.trainer.strategy.model):
            self.manual_backward(loss)
        distributed.all_reduce_gradients(network)
        opt.step()
        return True

    def _skip_nonfinite_update(self) -> None:
        self.nonfinite_steps += 1
        self.nonfinite_streak += 1
        self.log("train/nonfinite_steps", float(self.nonfinite_steps))
        limit = self.hparams.max_nonfinite_steps
        if self.nonfinite_streak < limit:
            rank_zero_warn(
                f"Non-finite loss at {self.images_seen / 1000:.1f} kimg: update skipped "
                f"({self.nonfinite_streak} in a row; training stops at {limit})."
            )
            return
        checkpoint = self._last_checkpoint_path()
        raise NonFiniteLossError(
            f"{limit} non-finite losses in a row at {self.images_seen / 1000:.1f} kimg: training stopped before the weights "
            f"became NaN. Last good checkpoint: {checkpoint or 'none saved yet'}. Resume from it with a lower learning rate, "
            f"gradient_clip_val, or precision bf16-mixed / 32 instead of 16-mixed."
        )

    def _last_checkpoint_path(self) -> str | None:
        for callback in self.trainer.checkpoint_callbacks:
            path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
            if path:
                return path
        return None

    def setup(self, stage: str) -> None:
        """Fail early, with the fix, when the data do not fit the model."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        given, expected = getattr(datamodule, "data_shape", None), getattr(self, "data_shape", None)
        if given is not None and expected is not None and tuple(given) != tuple(expected):
            raise ConfigError(
                f"{type(self).__name__} makes samples of shape {tuple(expected)} but {type(datamodule).__name__} "
                f"gives {tuple(given)}: make the model's img_resolution/img_channels (or data_shape) match the data's."
            )
        data_classes = getattr(datamodule, "num_classes", None)
        if self.num_classes and data_classes is not None and data_classes != self.num_classes:
            raise ConfigError(
                f"{type(self).__name__} is conditioned on {self.num_classes} classes but "
                f"{type(datamodule).__name__} has {data_classes}: set model.init_args.num_classes: {data_classes}."
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this after the AMP scaler has unscaled the gradients, so the norm is the true one.
        if self.hparams.gradient_clip_val > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_val, gradient_clip_algorithm="norm")

    def unpack_batch(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """``(images, labels)`` from a datamodule batch; labels are dropped for unconditional models."""
        real, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        return real, (labels if self.num_classes else None)

    # Schedules and helpers.

    def instance_noise_std(self) -> float:
        hp = self.hparams
        if hp.instance_noise_std <= 0 or hp.instance_noise_anneal_kimg <= 0:
            return hp.instance_noise_std
        return hp.instance_noise_std * max(0.0, 1.0 - self.images_seen / 1000.0 / hp.instance_noise_anneal_kimg)

    def grad_scale(self) -> float:
        """The AMP loss scale under ``precision="16-mixed"``, else 1 (see :func:`gans.losses.gradient_penalty`)."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None) if self._trainer is not None else None
        return float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """One optimizer per network, D first: ``self.optimizers()`` returns ``(opt_d, opt_g)``."""
        return self._make_optimizer(self.discriminator, self.hparams.lr_d), self._make_optimizer(self.generator, self.hparams.lr_g)

    def _make_optimizer(self, network: nn.Module, lr: float) -> torch.optim.Optimizer:
        hp = self.hparams
        if hp.optimizer == "adam":
            return torch.optim.Adam(network.parameters(), lr=lr, betas=tuple(hp.betas))
        if hp.optimizer == "rmsprop":
            return torch.optim.RMSprop(network.parameters(), lr=lr, momentum=hp.momentum)
        return torch.optim.SGD(network.parameters(), lr=lr, momentum=hp.momentum)

    # Checkpoints: progress counters and RNG states, so a resumed run continues identically.

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_progress"] = {
            "model_class": _qualified_name(type(self)),
            "images_seen": self.images_seen,
            "g_steps": self.g_steps,
            "d_steps_since_g": self.d_steps_since_g,
            "nonfinite_steps": self.nonfinite_steps,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> "GANModule":
        """Lightning's loader, with a clear error when the checkpoint holds another model's arguments."""
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except TypeError as err:
            checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            written_by = checkpoint.get("gan_progress", {}).get("model_class", "a model that is not a gans model")
            raise ConfigError(
                f"The checkpoint {checkpoint_path} was written by {written_by}, not {_qualified_name(cls)} ({err}): "
                f"load it with the class that wrote it."
            ) from err

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        progress = checkpoint.get("gan_progress")
        if progress is None:
            raise ConfigError(
                f"This checkpoint was not written by a gans model (it has no 'gan_progress' entry), so "
                f"{type(self).__name__} cannot resume from it: pass a checkpoint saved by a gans run."
            )
        written_by = progress.get("model_class")
        if written_by not in {_qualified_name(c) for c in type(self).__mro__}:
            raise ConfigError(
                f"The checkpoint was written by {written_by}, not {_qualified_name(type(self))}: load it with "
                f"{written_by.rsplit('.', 1)[-1]}.load_from_checkpoint, or set model.class_path: {written_by}."
            )
        if getattr(self, "generator_ema", None) is None and any(k.startswith("generator_ema.") for k in checkpoint.get("state_dict", {})):
            self.generator_ema = frozen_copy(self.generator)  # the checkpoint was written with callbacks.EMA
        own = self.state_dict()
        for name, value in checkpoint.get("state_dict", {}).items():
            if name in own and own[name].shape != value.shape:
                raise ConfigError(
                    f"The checkpoint's {name} has shape {tuple(value.shape)} but this model's has {tuple(own[name].shape)}: "
                    f"build the model with the checkpoint's settings ({checkpoint.get('hyper_parameters', {})})."
                )
        self.images_seen = progress["images_seen"]
        self.g_steps = progress["g_steps"]
        self.d_steps_since_g = progress["d_steps_since_g"]
        self.nonfinite_steps = progress.get("nonfinite_steps", 0)
        torch.set_rng_state(progress["rng_cpu"])
        if progress["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(progress["rng_cuda"])
