"""The noise-to-image GAN module every classic variant inherits: z (and labels) -> G -> D, alternating.

Goodfellow et al. 2014, arXiv:1406.2661, Algorithm 1 (k = ``n_critic`` discriminator steps per
generator step), with the losses, regularisers and tricks of :mod:`gans.training.losses` and
:mod:`gans.training.tricks` chosen by name in config. It stands on :class:`gans.training.core.AdversarialModule`, which
owns the updates (DDP, AMP, the non-finite guard), the progress counters, the per-rank random
streams and the checkpoint state; this layer adds latents, labels (:mod:`gans.labels`), sampling
and the D/G alternation.

One ``training_step`` consumes one real batch and makes one D step; every ``critic_steps()``-th
D step is followed by one G step. So each critic iteration sees fresh real data, exactly as in
WGAN's Algorithm 1, and ``n_critic`` can change over training (WGAN's schedule). Progress is counted
in real images shown to D (``images_seen``, logged as ``train/kimg``) and in batches; Lightning's
``trainer.global_step`` counts optimizer steps of every phase and is not a unit to use.

Public hooks, stable for subclassing (``class MyGAN(DCGAN): def generator_loss(...)``):

- ``discriminator_loss(real, fake, labels) -> Tensor``
- ``generator_loss(fake, labels) -> Tensor``
- ``critic_steps() -> int``
- ``sample(n, labels=None, z=None) -> Tensor`` (models with truncation apply it here; FID and
  ``predict`` draw through it) and ``forward(z, labels=None)`` (= the generator)
- ``after_discriminator_step()`` (WGAN clips weights here)
- ``discriminator_inputs``, ``adversarial_d_loss``, ``add_d_regularisers``: the pieces of
  ``discriminator_loss``, for a D with more outputs than the real/fake logit (ACGAN's class heads)
- ``backward_and_step(opt, loss) -> Tensor``: the one place a loss becomes an update
  (:class:`gans.training.core.AdversarialModule`); callbacks that add their own phases
  (:class:`callbacks.LazyRegularization`) step through it too.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from gans.training.core import AdversarialModule
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.training.latents import seeded_latents
from gans.training.losses import (
    clip_weights,
    drift_penalty,
    get_loss,
    gradient_penalty,
    r1_penalty,
    r2_penalty,
)
from gans.training.tricks import instance_noise, label_targets

OptimizerName = Literal["adam", "rmsprop", "sgd"]


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that no optimizer trains (the EMA generator)."""
    return copy.deepcopy(module).requires_grad_(False)


class GANModule(AdversarialModule):
    """A generator and a discriminator trained in alternation with manual optimization.

    Subclasses build the two networks and pass them in; every other argument is the training
    recipe and is exposed to LightningCLI through the subclass's ``**kwargs``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        z_dim: int,
        num_classes: int | Sequence[int] = 0,
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
        max_kimg: float = 0.0,
        fused_optimizers: bool | None = None,
    ) -> None:
        """
        Args:
            generator: maps ``(z [N, z_dim], labels [N] or None)`` to samples.
            discriminator: maps ``(x, labels [N] or None)`` to logits ``[N]``.
            z_dim: latent size.
            num_classes: classes for conditional models: 0 = unconditional, an int = one class index per
                sample, a list = one class index per head (e.g. hair and eye colour); see :mod:`gans.labels`.
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
            max_nonfinite_steps: stop after this many batches in a row with a NaN/Inf loss (each skips its update).
            max_kimg: stop training after this many thousand real images; 0 = no limit (StyleGAN's ``--kimg``).
            fused_optimizers: use torch's fused Adam/SGD kernels, which also skip a non-finite update without a
                host sync; None = on CUDA without a grad scaler (on a CPU a host read is free; under ``16-mixed`` the
                scaler skips, and Lightning cannot clip fused optimizers' gradients there).
        """
        super().__init__(max_nonfinite_steps=max_nonfinite_steps, gradient_clip_val=gradient_clip_val, max_kimg=max_kimg)
        self.generator = generator
        self.discriminator = discriminator
        self.z_dim = z_dim
        self.label_space = LabelSpace.from_num_classes(num_classes)
        self.num_classes = num_classes if isinstance(num_classes, int) else list(num_classes)
        self.adversarial_loss = get_loss(loss)
        label_tricks = label_smoothing > 0 or soft_labels or label_flip_prob > 0
        if label_tricks and not self.adversarial_loss.uses_labels:
            raise ConfigError(
                f"Label smoothing, soft or noisy labels need a loss with labels (minimax, non_saturating, "
                f"least_squares); {loss!r} has none: turn the label tricks off or change the loss."
            )
        if n_critic < 1:
            raise ConfigError(f"n_critic must be >= 1, got {n_critic}.")
        if optimizer not in OptimizerName.__args__:
            raise ConfigError(f"Unknown optimizer {optimizer!r}: choose one of {', '.join(OptimizerName.__args__)}.")
        self.save_hyperparameters(ignore=["generator", "discriminator"])

    # Public hooks.

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The generator: latents (and labels for conditional models) to samples."""
        return self.generator(z, labels)

    def sample_z(self, n: int) -> Tensor:
        """``n`` latents from the prior, N(0, I), from this rank's random stream."""
        return torch.randn(n, self.z_dim, device=self.device)

    def sample_labels(self, n: int) -> Tensor | None:
        """``n`` labels drawn uniformly (per head), or None for unconditional models."""
        return self.label_space.sample(n, device=self.device)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator to draw samples from: the EMA copy when :class:`callbacks.EMA` keeps one."""
        ema = getattr(self, "generator_ema", None)
        return self.generator if ema is None else ema

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """``n`` samples from :attr:`sampling_generator` in its current train/eval mode. Models with a
        truncation trick override this (and only this), so FID, sample grids and ``predict`` apply it."""
        z = self.sample_z(n) if z is None else z.to(self.device)
        if labels is None:
            labels = self.sample_labels(n)
        return self.sampling_generator(z, None if labels is None else labels.to(self.device))

    def indexed_z(self, indices: Tensor) -> Tensor:
        """The latent of sample number i for each i in ``indices``: N(0, I) seeded by i, on the CPU."""
        return seeded_latents(indices.long().cpu(), self.z_dim)

    @torch.no_grad()
    def sample_indexed(self, indices: Tensor) -> Tensor:
        """Samples numbered by ``indices`` through :meth:`sample`: index i always gets the latent seeded by i
        and the i-th label of :meth:`gans.labels.LabelSpace.for_indices`. ``lightning predict`` and
        :class:`callbacks.FID` draw through this, so a checkpoint's images are reproducible and do not
        depend on the batch size or the number of ranks; the global RNG is left untouched."""
        indices = indices.long().cpu()
        labels = self.label_space.for_indices(indices)
        return self.sample(len(indices), labels=labels, z=self.indexed_z(indices))

    def predict_step(self, batch: Tensor, batch_idx: int) -> dict[str, Tensor]:
        """Samples for ``lightning predict``: ``batch`` holds sample indices (see :meth:`sample_indexed`)."""
        return {"index": batch.long().cpu(), "samples": self.sample_indexed(batch)}

    def critic_steps(self) -> int:
        """Discriminator steps before the next generator step; WGAN overrides this with its schedule."""
        return self.hparams.n_critic

    def discriminator_loss(self, real: Tensor, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        """The adversarial D loss plus every regulariser switched on; logs ``train/d_*`` terms."""
        real, fake = self.discriminator_inputs(real, fake)
        real_logits = self.discriminator(real, labels)
        fake_logits = self.discriminator(fake, labels)
        loss = self.adversarial_d_loss(real_logits, fake_logits)
        loss = self.add_d_regularisers(loss, real, fake, real_logits, fake_logits, labels)
        self.log_train({"train/d_loss": loss.detach()}, prog_bar=True)
        return loss

    # The pieces of discriminator_loss, for models whose D has more outputs (ACGAN's class heads).

    def discriminator_inputs(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """``real`` and ``fake`` with instance noise, made leaves that need a gradient for R1 / R2."""
        hp = self.hparams
        std = self.instance_noise_std()
        real, fake = instance_noise(real, std), instance_noise(fake, std)
        if hp.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        if hp.r2_gamma > 0:
            fake = fake.detach().requires_grad_(True)
        return real, fake

    def adversarial_d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The adversarial D loss on D's real/fake logits, with the label tricks; logs ``train/d_real``, ``train/d_fake``."""
        hp = self.hparams
        if self.adversarial_loss.uses_labels:
            loss = self.adversarial_loss.discriminator(
                real_logits,
                fake_logits,
                label_targets(real_logits, True, hp.label_smoothing, hp.soft_labels, hp.label_flip_prob),
                label_targets(fake_logits, False, hp.label_smoothing, hp.soft_labels, hp.label_flip_prob),
            )
        else:
            loss = self.adversarial_loss.discriminator(real_logits, fake_logits)
        self.log_train({"train/d_real": real_logits.detach().mean(), "train/d_fake": fake_logits.detach().mean()})
        return loss

    def add_d_regularisers(self, loss: Tensor, real: Tensor, fake: Tensor, real_logits: Tensor, fake_logits: Tensor, labels: Tensor | None) -> Tensor:
        """``loss`` plus every D regulariser switched on (on D's real/fake logits); logs each as ``train/<name>``."""
        hp = self.hparams
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
        self.log_train({f"train/{name}": value.detach() for name, value in terms.items()})
        return loss

    def generator_loss(self, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        """The adversarial G loss on D's logits for ``fake``; logs ``train/g_loss``."""
        logits = self.discriminator(instance_noise(fake, self.instance_noise_std()), labels)
        loss = self.adversarial_loss.generator(logits)
        self.log_train({"train/g_loss": loss.detach()}, prog_bar=True)
        return loss

    def after_discriminator_step(self) -> None:
        """Runs after each D optimizer step: WGAN weight clipping."""
        if self.hparams.clip_value > 0:
            clip_weights(self.discriminator, self.hparams.clip_value)

    # The alternation.

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real, labels = self.unpack_batch(batch)
        opt_d, opt_g = self.optimizers()
        self.discriminator_step(opt_d, real, labels)
        self.d_steps_since_g += 1
        if self.d_steps_since_g >= self.critic_steps():
            self.generator_step(opt_g, real.shape[0], labels)
            self.d_steps_since_g = 0
            self.g_steps += 1
        self.end_of_batch(real.shape[0])

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

    def setup(self, stage: str) -> None:
        """Fail early, with the fix, when the strategy or the data do not fit the model."""
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_classes = getattr(datamodule, "num_classes", None)
        if self.label_space.conditional and data_classes is not None and LabelSpace.from_num_classes(data_classes) != self.label_space:
            raise ConfigError(
                f"{type(self).__name__} is conditioned on {self.num_classes} classes but "
                f"{type(datamodule).__name__} has {data_classes}: set model.init_args.num_classes: {data_classes}."
            )

    def unpack_batch(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """``(images, labels)`` from a datamodule batch; labels are dropped for unconditional models."""
        real, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        return real, (labels if self.label_space.conditional else None)

    # Schedules and helpers.

    def instance_noise_std(self) -> float:
        hp = self.hparams
        if hp.instance_noise_std <= 0 or hp.instance_noise_anneal_kimg <= 0:
            return hp.instance_noise_std
        return hp.instance_noise_std * max(0.0, 1.0 - self.images_seen / 1000.0 / hp.instance_noise_anneal_kimg)

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """One optimizer per network, D first: ``self.optimizers()`` returns ``(opt_d, opt_g)``."""
        return self._make_optimizer(self.discriminator, self.hparams.lr_d), self._make_optimizer(self.generator, self.hparams.lr_g)

    def _make_optimizer(self, network: nn.Module, lr: float) -> torch.optim.Optimizer:
        hp = self.hparams
        fused = hp.get("fused_optimizers")
        if fused is None:  # Lightning refuses to clip fused optimizers' gradients under a grad scaler, which skips by itself
            fused = self.device.type == "cuda" and self.amp_scaler() is None
        if hp.optimizer == "adam":
            return torch.optim.Adam(network.parameters(), lr=lr, betas=tuple(float(b) for b in hp.betas), fused=fused or None)
        if hp.optimizer == "rmsprop":
            return torch.optim.RMSprop(network.parameters(), lr=lr, momentum=hp.momentum)  # no fused kernel
        return torch.optim.SGD(network.parameters(), lr=lr, momentum=hp.momentum, fused=fused or None)

    # Checkpoints: the core saves class, counters and per-rank RNG states; this layer restores the EMA copy.

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if getattr(self, "generator_ema", None) is None and any(k.startswith("generator_ema.") for k in checkpoint.get("state_dict", {})):
            self.generator_ema = frozen_copy(self.generator)  # the checkpoint was written with callbacks.EMA
        super().on_load_checkpoint(checkpoint)
