"""The noise-to-image GAN module every classic variant inherits: z (and labels) -> G -> D, alternating.

Goodfellow et al. 2014, arXiv:1406.2661, Algorithm 1 (k = ``n_critic`` discriminator steps per
generator step), with the losses, regularisers and tricks of :mod:`gans.training.losses` and
:mod:`gans.training.tricks` chosen by name in config. It stands on :class:`gans.training.core.AdversarialModule`, which
owns the updates (DDP, AMP, the non-finite guard), the progress counters, the per-rank random
streams and the checkpoint state; this layer adds latents, labels (:mod:`gans.labels`), sampling
and the D/G alternation.

One ``training_step`` consumes one real batch and runs the module's declared phases
(:mod:`gans.training.phases`, as StyleGAN2-ADA's training loop): ``Dmain`` (one D step) on every batch,
``Gmain`` (one G step) on every ``critic_steps()``-th, so each critic iteration sees fresh real data,
exactly as in WGAN's Algorithm 1, and ``n_critic`` can change over training (WGAN's schedule). With
lazy regularisation (StyleGAN2, Karras et al. 2020, arXiv:1912.04958, section 3.1 and Appendix B)
``Dreg`` (R1 every ``r1_interval`` batches) and ``Greg`` (path length, eq. 4, every ``pl_interval``
G steps) are phases of their own, from the first batch on, with the optimizers built for them
(lr and Adam betas corrected by ``k / (k + 1)``); see :meth:`GANModule.training_phases`. Progress is
counted in real images shown to D (``images_seen``, logged as ``train/kimg``) and in batches;
Lightning's ``trainer.global_step`` counts optimizer steps of every phase and is not a unit to use.

Public hooks, stable for subclassing (``class MyGAN(DCGAN): def generator_loss(...)``):

- ``discriminator_loss(real, fake, labels) -> Tensor``
- ``generator_loss(fake, labels, real=None) -> Tensor`` (``real``: the real batch, given for a relativistic loss)
- ``critic_steps() -> int``
- ``sample(n, labels=None, z=None) -> Tensor`` (models with truncation apply it here; FID and
  ``predict`` draw through it) and ``forward(z, labels=None)`` (= the generator)
- ``after_discriminator_step()`` (WGAN clips weights here)
- ``augment_for_d(images)``: what D sees of real or generated images (``augment``: ADA, DiffAugment); a subclass that
  hands D images itself passes them through it once per D call
- ``discriminator_inputs``, ``adversarial_d_loss``, ``add_d_regularisers``: the pieces of
  ``discriminator_loss``, for a D with more outputs than the real/fake logit (ACGAN's class heads)
- ``training_phases() -> list[Phase]``: the updates of a batch; a subclass extends the list. Each phase's
  loss is a method: ``discriminator_main_loss``, ``r1_loss``, ``generator_main_loss``,
  ``path_length_loss`` (J with respect to ``path_length_latents``: z here, W for style-based models)
- ``backward_and_step(opt, loss) -> Tensor``: the one place a loss becomes an update
  (:class:`gans.training.core.AdversarialModule`), called by :meth:`GANModule.run_phase` only; no callback
  steps an optimizer.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal, Sequence

import torch
from torch import Tensor, nn

from gans.checks import (
    check_at_least,
    check_count,
    check_in_range,
    check_optimizer_settings,
    check_positive,
)
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.nn.augment import AugmentPipe, DiffAugment
from gans.training import contracts, distributed
from gans.training.core import AdversarialModule
from gans.training.latents import seeded_latents
from gans.training.losses import (
    clip_weights,
    drift_penalty,
    get_loss,
    gradient_penalty,
    path_length_penalty,
    path_lengths,
    r1_penalty,
    r2_penalty,
)
from gans.training.phases import RATIO_KEY, Phase, correct_optimizer_, lazy_ratio, lr_ratio
from gans.training.tricks import instance_noise, label_targets

OptimizerName = Literal["adam", "rmsprop", "sgd"]
AugmentName = Literal["none", "ada", "fixed", "diffaugment"]


def _plain(value: Any) -> Any:
    """A setting as compared across hparams and arguments (jsonargparse may give a list where code passes a tuple)."""
    return list(value) if isinstance(value, (list, tuple)) else value


class GANModule(AdversarialModule):
    """A generator and a discriminator trained in alternation with manual optimization.

    Subclasses build the two networks and pass them in; every other argument is the training
    recipe and is exposed to LightningCLI through the subclass's ``**kwargs``.

    **Configuration lives in ``self.hparams``** for this whole family (GANModule and every model of
    :mod:`gans.models`): ``save_hyperparameters`` records every ``__init__`` argument, of this class and
    of the subclass, and the code reads settings there (``self.hparams.n_critic``,
    ``self.hparams.truncation_psi``), never from a copy kept as an attribute. Attributes hold only what is
    built from the settings (networks, ``label_space``, ``adversarial_loss``, ``data_shape``); ``z_dim`` and
    ``num_classes`` are read-only views of the hparams. Lightning records a subclass's own value for an
    argument it shares with this class, so a subclass that changes such an argument before passing it on
    is refused at construction (give its argument another name). The core's own three settings
    (``max_nonfinite_steps``, ``gradient_clip_val``, ``max_kimg``) are attributes of
    :class:`gans.training.core.AdversarialModule`, which serves both module families and records nothing.

    Contracts (:mod:`gans.training.contracts`): a GANModule is a ``Sampler`` and an ``EMAHost`` whose one
    averaged network is ``generator``.
    """

    ema_networks: ClassVar[tuple[str, ...]] = ("generator",)  # what callbacks.EMA averages, into generator_ema

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
        r1_interval: int = 1,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
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
        lr_decay_fraction: float = 0.0,
        fused_optimizers: bool | None = None,
        augment: AugmentName = "none",
        augment_p: float = 0.0,
        ada_target: float = 0.6,
        ada_kimg: float = 500.0,
        ada_interval: int = 4,
    ) -> None:
        """
        Args:
            generator: maps ``(z [N, z_dim], labels [N] or None)`` to samples.
            discriminator: maps ``(x, labels [N] or None)`` to logits ``[N]``.
            z_dim: latent size.
            num_classes: classes for conditional models: 0 = unconditional, an int = one class index per
                sample, a list = one class index per head (e.g. hair and eye colour); see :mod:`gans.labels`.
            loss: adversarial loss: minimax, non_saturating, least_squares, wasserstein, hinge, relativistic_average
                (RaSGAN) or relativistic_average_hinge (RaHinge; Jolicoeur-Martineau 2018, arXiv:1807.00734).
            n_critic: discriminator steps per generator step.
            optimizer: adam (uses ``betas``), rmsprop or sgd (uses ``momentum``); one per network.
            lr_g: generator learning rate (TTUR: differs from ``lr_d``).
            lr_d: discriminator learning rate.
            betas: Adam's (beta1, beta2).
            momentum: SGD / RMSProp momentum.
            gp_weight: WGAN-GP lambda on interpolates; 0 = off (the paper uses 10).
            r1_gamma: R1 gamma on real data, added as gamma / 2 * penalty; 0 = off.
            r1_interval: batches per R1 update. 1 = R1 in every D step's loss (the official ``Dboth``); k > 1 = lazy
                R1 (StyleGAN2: 16), its own phase ``Dreg`` on every k-th batch from the first, penalty times k, D's
                optimizer corrected by k / (k + 1).
            pl_weight: path length weight (StyleGAN2 eq. 4: 2); 0 = off.
            pl_interval: G steps per path length update (StyleGAN2: 4): k > 1 = its own phase ``Greg`` on every
                k-th G step from the first, penalty times k, G's optimizer corrected by k / (k + 1); 1 = added to
                every G step's loss (the official ``Gboth``), no correction.
            pl_batch_shrink: the path length batch is the training batch divided by this (StyleGAN2: 2).
            pl_decay: decay of the running mean path length per update (StyleGAN2: 0.01).
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
            lr_decay_fraction: decay both learning rates linearly to 0 over this last fraction of ``max_kimg``
                (:meth:`decay_learning_rates`); 1 = over the whole run (SNGAN's official ``LinearShift``); 0 = constant.
            fused_optimizers: use torch's fused Adam/SGD kernels, which also skip a non-finite update without a
                host sync; None = on CUDA without a grad scaler (on a CPU a host read is free; under ``16-mixed`` the
                scaler skips, and Lightning cannot clip fused optimizers' gradients there).
            augment: what D sees of every image, real and fake, in every phase (R1 included; see
                :meth:`augment_for_d`): none; ada = ADA's pipeline (Karras et al. 2020, arXiv:2006.06676,
                :class:`gans.nn.augment.AugmentPipe`) with p adapted toward ``ada_target`` (the official default of
                StyleGAN2-ADA); fixed = the same pipeline at p = ``augment_p``; diffaugment = DiffAugment's
                ``color,translation,cutout`` (Zhao et al. 2020, arXiv:2006.10738) on every image (p = 1).
            augment_p: ADA's p at the start (ada) or throughout (fixed), in [0, 1].
            ada_target: ADA's target for r_t = E[sign(D(real))] (the paper: 0.6): p rises while r_t is above it.
            ada_kimg: thousand images for p to go from 0 to 1 at the fastest (the paper: 500).
            ada_interval: batches between adjustments of p (the official 4).
        """
        super().__init__(max_nonfinite_steps=max_nonfinite_steps, gradient_clip_val=gradient_clip_val, max_kimg=max_kimg)
        self.generator = generator
        self.discriminator = discriminator
        self.label_space = LabelSpace.from_num_classes(num_classes)
        self.adversarial_loss = get_loss(loss)
        label_tricks = label_smoothing > 0 or soft_labels or label_flip_prob > 0
        if label_tricks and not self.adversarial_loss.uses_labels:
            raise ConfigError(
                f"Label smoothing, soft or noisy labels need a loss with labels (minimax, non_saturating, "
                f"least_squares); {loss!r} has none: turn the label tricks off or change the loss."
            )
        check_at_least("n_critic", n_critic, 1)
        check_at_least("z_dim", z_dim, 1)
        check_optimizer_settings(lr_g, lr_d, betas, momentum)
        for name, value in (("gp_weight", gp_weight), ("r1_gamma", r1_gamma), ("r2_gamma", r2_gamma), ("drift_weight", drift_weight),
                            ("clip_value", clip_value), ("instance_noise_std", instance_noise_std),
                            ("instance_noise_anneal_kimg", instance_noise_anneal_kimg)):
            check_at_least(name, value, 0)
        check_in_range("label_smoothing", label_smoothing, 0, 1, "to e.g. 0.1 (real targets 0.9), or 0 for off")
        check_in_range("label_flip_prob", label_flip_prob, 0, 1, "to e.g. 0.05, or 0 for off")
        if optimizer not in OptimizerName.__args__:
            raise ConfigError(f"Unknown optimizer {optimizer!r}: choose one of {', '.join(OptimizerName.__args__)}.")
        for name, value in (("r1_interval", r1_interval), ("pl_interval", pl_interval), ("pl_batch_shrink", pl_batch_shrink), ("ada_interval", ada_interval)):
            check_count(name, value)
        check_at_least("pl_weight", pl_weight, 0)
        check_in_range("pl_decay", pl_decay, 0, 1, "to 0.01 (StyleGAN2's)", closed=True)
        if augment not in AugmentName.__args__:
            raise ConfigError(f"Unknown augment {augment!r}: choose one of {', '.join(AugmentName.__args__)}.")
        check_in_range("augment_p", augment_p, 0, 1, "to e.g. 0.2 with augment: fixed, or 0", closed=True)
        if augment_p > 0 and augment in ("none", "diffaugment"):
            raise ConfigError(f"augment_p={augment_p} has no effect with augment: {augment}: set model.init_args.augment: fixed "
                              f"(or ada, starting from it), or augment_p: 0.")
        check_in_range("ada_target", ada_target, 0, 1, "to 0.6 (the paper's)")
        check_positive("ada_kimg", ada_kimg, "to 500 (the paper's)")
        check_in_range("lr_decay_fraction", lr_decay_fraction, 0, 1, "to e.g. 0.5 (the last half of max_kimg), or 0 for off", closed=True)
        if lr_decay_fraction > 0 and max_kimg <= 0:
            raise ConfigError(f"lr_decay_fraction={lr_decay_fraction} decays the learning rates to 0 at max_kimg, and max_kimg is "
                              f"0 (no limit): set model.init_args.max_kimg, or lr_decay_fraction: 0.")
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self._check_recorded_settings({name: value for name, value in locals().items() if name in RECORDED_SETTINGS})
        # The running mean path length ``a`` of eq. 4 (saved in the state dict; the same on every rank).
        self.register_buffer("pl_mean", torch.zeros([]) if pl_weight > 0 else None)
        # What D sees (augment_for_d); ADA's p is the pipeline's buffer. ada_stats: this rank's sum of sign(D(real)) and
        # count since the last adjustment, and the last r_t (all saved, so a resume continues exactly).
        self.augment_pipe: nn.Module | None = (
            AugmentPipe(augment_p) if augment in ("ada", "fixed") else DiffAugment() if augment == "diffaugment" else None
        )
        self.register_buffer("ada_stats", torch.zeros(3) if augment == "ada" else None)
        self._phases: list[Phase] | None = None  # training_phases(), declared once per fit (on_train_start)

    def _check_recorded_settings(self, given: dict[str, Any]) -> None:
        """Refuse, in one line, a subclass whose hparams record another value than this class was given."""
        for name, value in given.items():
            recorded = self.hparams.get(name)
            if _plain(recorded) != _plain(value):
                raise ConfigError(
                    f"{type(self).__name__} passes {name}={value!r} to GANModule but records its own {name}={recorded!r} in "
                    f"hparams, where GANModule reads its settings: give {type(self).__name__}'s argument another name."
                )

    @property
    def z_dim(self) -> int:
        """Latent size (``hparams.z_dim``)."""
        return self.hparams.z_dim

    @property
    def num_classes(self) -> int | list[int]:
        """Classes per label head as configured (``hparams.num_classes``): 0, an int, or a list (one per head)."""
        classes = self.hparams.num_classes
        return classes if isinstance(classes, int) else list(classes)

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
        ema = contracts.ema_copy(self, "generator")
        return self.generator if ema is None else ema

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """``n`` samples from :attr:`sampling_generator` in its current train/eval mode. Models with a
        truncation trick override this (and only this), so FID, sample grids and ``predict`` apply it."""
        return self.sampling_generator(*self.sampling_inputs(n, labels, z))

    def sampling_inputs(self, n: int, labels: Tensor | None = None, z: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The latents and labels of ``n`` samples on this device: the given ones, else draws from the prior
        (:meth:`sample_z`) and uniform labels (:meth:`sample_labels`); every ``sample`` starts here."""
        z = self.sample_z(n) if z is None else z.to(self.device)
        labels = self.sample_labels(n) if labels is None else labels.to(self.device)
        return z, labels

    def indexed_z(self, indices: Tensor) -> Tensor:
        """The latent of sample number i for each i in ``indices``: N(0, I) seeded by i, on the CPU."""
        return seeded_latents(indices.long().cpu(), self.z_dim)

    @torch.no_grad()
    def sample_indexed(self, indices: Tensor, labels: Tensor | None = None) -> Tensor:
        """Samples numbered by ``indices`` through :meth:`sample`: index i always gets the latent seeded by i
        and, unless ``labels`` (one per index) are given, the i-th label of :meth:`gans.labels.LabelSpace.for_indices`.
        ``lightning predict`` and :class:`callbacks.FID` draw through this (FID with the reference's labels,
        :func:`gans.metrics.protocol.fake_labels`), so a checkpoint's images are reproducible and do not depend on the
        batch size or the number of ranks; the global RNG is left untouched."""
        indices = indices.long().cpu()
        if labels is None:
            labels = self.label_space.for_indices(indices)
        elif len(labels) != len(indices):
            raise ValueError(f"sample_indexed: {len(labels)} labels for {len(indices)} indices; give one label per index.")
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
        """``real`` and ``fake`` as D sees them: with instance noise, made leaves that need a gradient for R1 / R2, then
        augmented (:meth:`augment_for_d`; R1 / R2 differentiate with respect to the leaves before augmentation)."""
        hp = self.hparams
        std = self.instance_noise_std()
        real, fake = instance_noise(real, std), instance_noise(fake, std)
        if self.r1_every_step():
            real = real.detach().requires_grad_(True)
        if hp.r2_gamma > 0:
            fake = fake.detach().requires_grad_(True)
        return self.augment_for_d(real), self.augment_for_d(fake)

    def fakes_for_g_step(self, fake: Tensor) -> Tensor:
        """What D sees of G's samples in a G step: with instance noise, then through :meth:`augment_for_d`; every
        ``generator_loss`` (this one, ACGAN's) feeds D through here, and so does the real batch of a relativistic loss."""
        return self.augment_for_d(instance_noise(fake, self.instance_noise_std()))

    def augment_for_d(self, images: Tensor) -> Tensor:
        """``images`` through the augmentation pipeline (``augment``; themselves when it is none): every image D sees
        passes here once per D call (:meth:`discriminator_inputs`, :meth:`generator_loss`, :meth:`r1_loss`), reals and
        fakes, so G's gradient flows through it. The result keeps the images it came from as ``.unaugmented``: R1 and
        R2 take the gradient with respect to those, as the official code (``real_img_tmp`` before ``augment_pipe``)."""
        if self.augment_pipe is None:
            return images
        if images.dim() != 4:
            raise ConfigError(f"augment: {self.hparams.augment} needs images [N, C, H, W], got samples of shape {tuple(images.shape[1:])}: "
                              f"set model.init_args.augment: none.")
        view = self.augment_pipe(images)
        view.unaugmented = images
        return view

    def accumulate_ada_signs(self, real_logits: Tensor) -> None:
        """ADA's overfitting measure: add sign(D(real)) of a D call on the augmented reals to ``ada_stats`` (``Dmain``
        and the lazy ``Dreg``, as the official loss reports ``Loss/signs/real`` in both; a NaN counts 0)."""
        if self.ada_stats is not None:
            signs = real_logits.detach().float().sign().nan_to_num(0.0)
            self.ada_stats[:2] += torch.stack([signs.sum(), torch.tensor(float(signs.numel()), device=signs.device)])

    def adapt_augment_p(self, batch_size: int) -> None:
        """ADA's heuristic (arXiv:2006.06676 section 3.1; the official training loop): after every ``ada_interval``-th
        batch, r_t = E[sign(D(real))] over those batches (averaged over ranks, through the strategy), and
        ``p += sign(r_t - ada_target) * images / (ada_kimg * 1000)`` for the ``batch * ranks * ada_interval`` images
        shown meanwhile, clamped to [0, 1] (the official clamps at 0 only). The same p on every rank. Logs
        ``train/ada_p`` and ``train/ada_rt`` (the last r_t)."""
        if self.ada_stats is None:
            return
        hp = self.hparams
        if (self.batches + 1) % hp.ada_interval == 0:
            strategy = self.trainer.strategy if self._trainer is not None else None
            world = self.trainer.world_size if self._trainer is not None else 1
            total, count = distributed.mean_over_ranks(strategy, self.ada_stats[:2].clone()).to(self.ada_stats.device).unbind()  # XLA: on the CPU
            rt = torch.where(count > 0, total / count.clamp_min(1.0), self.ada_stats[2])
            step = batch_size * world * hp.ada_interval / (hp.ada_kimg * 1000)
            p = self.augment_pipe.p
            p.copy_(torch.where(count > 0, (p + torch.sign(rt - hp.ada_target) * step).clamp(0.0, 1.0), p))
            self.ada_stats.copy_(torch.stack([torch.zeros_like(rt), torch.zeros_like(rt), rt]))
        self.log_train({"train/ada_p": self.augment_pipe.p.clone(), "train/ada_rt": self.ada_stats[2].clone()})

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
        self.accumulate_ada_signs(real_logits)
        return loss

    def add_d_regularisers(self, loss: Tensor, real: Tensor, fake: Tensor, real_logits: Tensor, fake_logits: Tensor, labels: Tensor | None) -> Tensor:
        """``loss`` plus every D regulariser switched on (on D's real/fake logits); logs each as ``train/<name>``."""
        hp = self.hparams
        terms: dict[str, Tensor] = {}
        if hp.gp_weight > 0:
            terms["gp"] = gradient_penalty(lambda x: self.discriminator(x, labels), real, fake, self.grad_scale())
            loss = loss + hp.gp_weight * terms["gp"]
        if self.r1_every_step():
            terms["r1"] = r1_penalty(real_logits, getattr(real, "unaugmented", real), self.grad_scale())
            loss = loss + hp.r1_gamma / 2 * terms["r1"]
        if hp.r2_gamma > 0:
            terms["r2"] = r2_penalty(fake_logits, getattr(fake, "unaugmented", fake), self.grad_scale())
            loss = loss + hp.r2_gamma / 2 * terms["r2"]
        if hp.drift_weight > 0:
            terms["drift"] = drift_penalty(real_logits)
            loss = loss + hp.drift_weight * terms["drift"]
        self.log_train({f"train/{name}": value.detach() for name, value in terms.items()})
        return loss

    def generator_loss(self, fake: Tensor, labels: Tensor | None = None, real: Tensor | None = None) -> Tensor:
        """The adversarial G loss on D's logits for ``fake`` (:meth:`adversarial_g_loss`); logs ``train/g_loss``.

        ``real``: the real batch, given only for a relativistic loss (``adversarial_loss.relativistic``), whose G loss
        compares D(fake) with D(real); a subclass that overrides this hook passes it on to :meth:`adversarial_g_loss`."""
        logits = self.discriminator(self.fakes_for_g_step(fake), labels)
        loss = self.adversarial_g_loss(logits, real, labels)
        self.log_train({"train/g_loss": loss.detach()}, prog_bar=True)
        return loss

    def adversarial_g_loss(self, fake_logits: Tensor, real: Tensor | None, labels: Tensor | None) -> Tensor:
        """The adversarial G loss on D's logits for the fakes. A relativistic loss (Jolicoeur-Martineau 2018,
        arXiv:1807.00734) also needs D's logits for the real batch ``real``: D sees it as it sees the fakes here
        (:meth:`fakes_for_g_step`), without a graph (D is frozen in the G step and the real logits do not depend on G)."""
        real_logits = None
        if self.adversarial_loss.relativistic and real is not None:
            with torch.no_grad():
                real_logits = self.discriminator(self.fakes_for_g_step(real), labels)
        return self.adversarial_loss.generator_loss(fake_logits, real_logits)

    def after_discriminator_step(self) -> None:
        """Runs after each D optimizer step: WGAN weight clipping."""
        if self.hparams.clip_value > 0:
            clip_weights(self.discriminator, self.hparams.clip_value)

    # The phases of a batch (gans.training.phases).

    D, G = 0, 1  # the optimizers' indices: configure_optimizers returns D's first

    def r1_every_step(self) -> bool:
        """Whether R1 is part of every D step's loss (``r1_interval`` 1) rather than the lazy phase ``Dreg``."""
        return self.hparams.r1_gamma > 0 and self.hparams.r1_interval == 1

    def training_phases(self) -> list[Phase]:
        """The updates of a training batch, in order (StyleGAN2-ADA's ``phases``; ours run D's first, as Algorithm 1):

        - ``Dmain``: D on the batch and as many fresh fakes, every batch (:meth:`discriminator_main_loss`);
        - ``Dreg``: lazy R1, every ``r1_interval``-th batch when it is > 1 (:meth:`r1_loss`);
        - ``Gmain``: G through the frozen D, on every generator turn (:meth:`generator_main_loss`);
        - ``Greg``: lazy path length, every ``pl_interval``-th generator turn when it is > 1 (:meth:`path_length_loss`).

        A subclass extends the list (``[*super().training_phases(), Phase(...)]``); :meth:`configure_optimizers`
        corrects each optimizer for the lazy phases it steps (:func:`gans.training.phases.lazy_ratio`). Declared once
        per fit, when training starts.
        """
        hp = self.hparams
        phases = [Phase("Dmain", "discriminator", self.D, self.discriminator_main_loss)]
        if hp.r1_gamma > 0 and hp.r1_interval > 1:
            phases.append(Phase("Dreg", "discriminator", self.D, self.r1_loss, interval=hp.r1_interval))
        phases.append(Phase("Gmain", "generator", self.G, self.generator_main_loss, clock="g_steps"))
        if hp.pl_weight > 0 and hp.pl_interval > 1:
            phases.append(Phase("Greg", "generator", self.G, self.path_length_loss, interval=hp.pl_interval, clock="g_steps"))
        return phases

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """Every phase due at this batch: ``batches`` counts this batch from 0, ``g_steps`` ticks on the batch that ends
        ``critic_steps()`` D steps (its count: the G steps before it)."""
        real, labels = self.unpack_batch(batch)
        if self.lr_decay_share() > 0:
            self.decay_learning_rates()
        optimizers = self.optimizers()
        g_turn = self.d_steps_since_g + 1 >= self.critic_steps()
        counts = {"batches": self.batches, "g_steps": self.g_steps if g_turn else None}
        for phase in self._phases if self._phases is not None else self.training_phases():
            if phase.due(counts):
                self.run_phase(phase, optimizers[phase.optimizer], real, labels)
        if g_turn:
            self.d_steps_since_g, self.g_steps = 0, self.g_steps + 1
        else:
            self.d_steps_since_g += 1
        self.adapt_augment_p(real.shape[0])
        self.end_of_batch(real.shape[0])

    def run_phase(self, phase: Phase, opt: Any, real: Tensor, labels: Tensor | None) -> None:
        """One update: ``phase.loss`` with only ``opt``'s parameters trainable, then its step (a skipped, non-finite
        update counts against this batch); WGAN's clipping after each D update."""
        network = getattr(self, phase.network)
        with self.toggled_optimizer(opt):
            loss = phase.loss(real, labels)
            self.backward_and_step(opt, loss, network)
        if network is self.discriminator:
            self.after_discriminator_step()

    def discriminator_main_loss(self, real: Tensor, labels: Tensor | None) -> Tensor:
        """``Dmain``: :meth:`discriminator_loss` on the real batch and as many fresh fakes (drawn without a graph)."""
        with torch.no_grad():
            fake = self(self.sample_z(real.shape[0]), labels)
        return self.discriminator_loss(real, fake, labels)

    def generator_main_loss(self, real: Tensor, labels: Tensor | None) -> Tensor:
        """``Gmain``: :meth:`generator_loss` on as many fresh fakes as real images (conditional models reuse the real
        batch's labels; a relativistic loss gets the real batch too), plus the path length penalty when ``pl_interval``
        is 1 (the official ``Gboth``)."""
        fake = self(self.sample_z(real.shape[0]), labels)
        relative = {"real": real} if self.adversarial_loss.relativistic else {}  # hooks written before it keep (fake, labels)
        loss = self.generator_loss(fake, labels, **relative)
        if self.hparams.pl_weight > 0 and self.hparams.pl_interval == 1:
            loss = loss + self.path_length_loss(real, labels)
        return loss

    def r1_loss(self, real: Tensor, labels: Tensor | None) -> Tensor:
        """``Dreg``: lazy R1 (StyleGAN2, arXiv:1912.04958, section 3.1), ``r1_gamma / 2 * r1_interval * R1`` on the real
        batch (:func:`gans.training.losses.r1_penalty`); logs the unweighted penalty as ``train/r1``."""
        hp = self.hparams
        real = real.detach().requires_grad_(True)
        logits = self.discriminator(self.augment_for_d(real), labels)
        self.accumulate_ada_signs(logits)  # the official Dreg reports Loss/signs/real too
        penalty = r1_penalty(logits, real, self.grad_scale())
        self.log_train({"train/r1": penalty.detach()})
        return penalty * (hp.r1_gamma / 2 * hp.r1_interval)

    def path_length_latents(self, z: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(latents, images)`` for the path length: J is the Jacobian of ``images`` with respect to ``latents``. Here
        ``z`` itself and ``self(z, labels)``, a smoothness regulariser on z in the spirit of eq. 4; a style-based model
        (:class:`gans.models.style.base.StyleBasedGAN`) takes its training ws, as StyleGAN2."""
        z = z.requires_grad_(True)
        return z, self(z, labels)

    def path_length_loss(self, real: Tensor, labels: Tensor | None) -> Tensor:
        """``Greg``: StyleGAN2's path length penalty (arXiv:1912.04958, section 3.2, eq. 4, and Appendix B), as the
        official ``accumulate_gradients`` (stylegan2-ada-pytorch ``training/loss.py``).

        On ``len(real) // pl_batch_shrink`` fresh latents and random labels, the lengths ``||J^T y||`` of
        :func:`gans.training.losses.path_lengths`; then :func:`gans.training.losses.path_length_penalty`: the running
        mean moves first, ``a = pl_mean.lerp(mean length, pl_decay)``, and the penalty ``E[(||J^T y|| - a)^2]`` takes its gradient through ``a`` as well (the batch's
        mean length is not detached); the buffer keeps the detached ``a``. Times ``pl_weight * pl_interval`` (the
        interval 1 when merged into ``Gmain``). Under several processes the mean length is averaged over the ranks
        (through the strategy), so ``pl_mean`` stays the same on every rank, while each rank's gradient flows
        through its own batch's mean, as each GPU's in the official code. A non-finite mean leaves ``pl_mean`` as it
        was (the update itself is skipped by the non-finite guard). Logs ``train/pl`` and ``train/pl_mean``.
        """
        hp = self.hparams
        n = max(1, real.shape[0] // hp.pl_batch_shrink)
        z, pl_labels = self.sample_z(n), self.sample_labels(n)
        latents, images = self.path_length_latents(z, pl_labels)
        lengths = path_lengths(images, latents, self.grad_scale())
        own = lengths.mean()
        shared = distributed.mean_over_ranks(self.trainer.strategy if self._trainer is not None else None, own.detach())
        batch_mean = own + (shared - own.detach())  # the value of all ranks, the gradient of this one's
        penalty, mean = path_length_penalty(lengths, self.pl_mean, hp.pl_decay, batch_mean)
        self.pl_mean.copy_(mean.detach())
        self.log_train({"train/pl": penalty.detach(), "train/pl_mean": self.pl_mean.clone()})
        return penalty * (hp.pl_weight * hp.pl_interval)

    def setup(self, stage: str) -> None:
        """Fail early, with the fix, when the strategy or the data do not fit the model."""
        super().setup(stage)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        data_classes = datamodule.num_classes if isinstance(datamodule, contracts.LabelledData) else None
        if self.label_space.conditional and data_classes is not None and LabelSpace.from_num_classes(data_classes) != self.label_space:
            unlabelled = data_classes == 0
            raise ConfigError(
                f"{type(self).__name__} is conditioned on {self.num_classes} classes but "
                f"{type(datamodule).__name__} has {'no labels' if unlabelled else data_classes}: "
                + ("give the data its labels, or set model.init_args.num_classes: 0 for unconditional training."
                   if unlabelled else f"set model.init_args.num_classes: {data_classes}.")
            )

    def unpack_batch(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """``(images, labels)`` from a datamodule batch; labels are dropped for unconditional models."""
        real, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        return real, (labels if self.label_space.conditional else None)

    # Schedules and helpers.

    def lr_decay_share(self) -> float:
        """The last share of ``max_kimg`` over which :meth:`decay_learning_rates` brings both rates to 0 (0 = off):
        ``lr_decay_fraction``; a subclass with its own switch (SNGAN's ``lr_decay``) overrides this."""
        return float(self.hparams.get("lr_decay_fraction", 0.0))

    def decay_learning_rates(self) -> None:
        """The linear decay to 0 over the last ``lr_decay_fraction`` of ``max_kimg``: both networks at
        ``lr * min(1, (max_kimg - kimg) / (lr_decay_fraction * max_kimg))`` from the images seen before this batch
        (over the whole run, fraction 1, this is SNGAN's official ``LinearShift``). Computed from the restored counters, so a resumed run continues it;
        times the lazy-regularisation correction each optimizer was built with (:func:`gans.training.phases.lr_ratio`)."""
        hp = self.hparams
        factor = min(1.0, max(0.0, (hp.max_kimg * 1000 - self.images_seen) / (self.lr_decay_share() * hp.max_kimg * 1000)))
        opt_d, opt_g = self.optimizers()
        for opt, lr in ((opt_d, hp.lr_d), (opt_g, hp.lr_g)):
            for group in opt.param_groups:
                group["lr"] = lr * factor * lr_ratio(group)

    def instance_noise_std(self) -> float:
        hp = self.hparams
        if hp.instance_noise_std <= 0 or hp.instance_noise_anneal_kimg <= 0:
            return hp.instance_noise_std
        return hp.instance_noise_std * max(0.0, 1.0 - self.images_seen / 1000.0 / hp.instance_noise_anneal_kimg)

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """One optimizer per network, D first: ``self.optimizers()`` returns ``(opt_d, opt_g)``; each built with the
        correction for the lazy phases it steps (StyleGAN2 Appendix B, :func:`gans.training.phases.lazy_ratio`), so an
        lr scheduler a subclass adds here starts from the corrected lr."""
        phases = self.training_phases()
        return (
            self._make_optimizer(self.discriminator, self.hparams.lr_d, lazy_ratio(phases, self.D)),
            self._make_optimizer(self.generator, self.hparams.lr_g, lazy_ratio(phases, self.G)),
        )

    def _make_optimizer(self, network: nn.Module, lr: float, ratio: float = 1.0) -> torch.optim.Optimizer:
        """The configured optimizer for ``network`` at ``lr``, corrected by ``ratio`` (:func:`gans.training.phases.correct_optimizer_`)."""
        hp = self.hparams
        fused = hp.get("fused_optimizers")
        if fused is None:  # Lightning refuses to clip fused optimizers' gradients under a grad scaler, which skips by itself
            fused = self.device.type == "cuda" and self.amp_scaler() is None
        if hp.optimizer == "adam":
            optimizer = torch.optim.Adam(network.parameters(), lr=lr, betas=tuple(float(b) for b in hp.betas), fused=fused or None)
        elif hp.optimizer == "rmsprop":
            optimizer = torch.optim.RMSprop(network.parameters(), lr=lr, momentum=hp.momentum)  # no fused kernel
        else:
            optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=hp.momentum, fused=fused or None)
        return correct_optimizer_(optimizer, ratio)

    def on_train_start(self) -> None:
        """Declare this fit's phases; refuse, in one line, optimizers whose lr and betas do not carry the correction the
        phases need: a checkpoint written with other lazy intervals (Lightning restores its optimizer settings), or an
        optimizer a subclass built without :meth:`_make_optimizer`."""
        super().on_train_start()
        self._phases = phases = self.training_phases()
        names = {self.D: "D", self.G: "G"}
        for index, opt in enumerate(self.trainer.optimizers):
            expected = lazy_ratio(phases, index)
            found = {group.get(RATIO_KEY, 1.0) for group in opt.param_groups}
            if found != {expected}:
                raise ConfigError(
                    f"{names.get(index, f'Optimizer {index}')}'s optimizer carries the lazy-regularisation correction {sorted(found)} but "
                    f"r1_interval / pl_interval need {expected:.6g}: resume with the checkpoint's r1_interval, pl_interval, r1_gamma and "
                    f"pl_weight (or start a new run), and build optimizers with _make_optimizer(network, lr, ratio)."
                )

    def on_train_end(self) -> None:
        super().on_train_end()
        self._phases = None  # they hold bound methods: the next fit declares its own

    # Checkpoints: the core saves class, counters and per-rank RNG states, and restores the EMA copy; this layer, pl_mean.

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict")
        if state is not None:  # augmentation switched on or off at a resume: the checkpoint's p and stats go, or this run's start
            own = {f"augment_pipe.{name}": b for name, b in (self.augment_pipe.named_buffers() if self.augment_pipe is not None else ())}
            own.update({"ada_stats": self.ada_stats} if self.ada_stats is not None else {})
            for key in [key for key in state if (key.startswith("augment_pipe.") or key == "ada_stats") and key not in own]:
                state.pop(key)
            for key, value in own.items():
                state.setdefault(key, value.detach().clone())
            if self.hparams.get("augment") == "fixed":  # a fixed p is a setting: this run's, not the checkpoint's
                state["augment_pipe.p"] = self.augment_pipe.p.detach().clone()
        if state is not None and self.pl_mean is None:
            state.pop("pl_mean", None)  # trained with path length, continued without
        elif state is not None and "pl_mean" not in state:
            # Written before path length was a phase: the running mean lived in callbacks.LazyRegularization's state.
            old = checkpoint.get("callbacks", {}).get("LazyRegularization", {})
            state["pl_mean"] = torch.as_tensor(old.get("pl_mean", 0.0), dtype=self.pl_mean.dtype).clone()
        super().on_load_checkpoint(checkpoint)


# GANModule's own arguments, read from hparams (see the class docstring); checked against what hparams record.
RECORDED_SETTINGS = frozenset(inspect.signature(GANModule.__init__).parameters) - {"self", "generator", "discriminator"}
