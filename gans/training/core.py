"""The adversarial core: networks trained in phases, each by its own optimizer, on any device count.

Every model in the package stands on :class:`AdversarialModule`; it knows nothing about latents,
labels or losses. It gives a subclass (:class:`gans.training.gan_module.GANModule` for noise-to-image models, an
image-to-image module for pix2pix or CycleGAN):

- :meth:`~AdversarialModule.backward_and_step`, the one place a loss becomes an update: DDP
  gradient averaging (one DDP wrapper per network, :mod:`gans.training.distributed`), AMP, gradient
  clipping, and the non-finite guard. An optimizer may train several networks (CycleGAN's two
  generators): every network it trains is reduced.
- Progress counters in the unit of training data: ``images_seen`` (real images shown, all ranks;
  ``train/kimg``) and ``batches``, plus ``g_steps`` and ``d_steps_since_g`` for the alternation. They
  travel in the state dict, so checkpoints and ``ddp_spawn`` (which returns rank 0's state dict to
  the launching process) keep them. Lightning's ``trainer.global_step`` counts optimizer steps of
  every phase and is not used for anything.
- One random stream per rank: under several processes each rank's global RNG is re-seeded from the
  shared seed and its rank at ``setup``, so latents, dropout masks, penalty interpolation weights and
  instance noise differ across ranks; checkpoints save every rank's RNG state and a resume restores
  each rank its own.
- Cheap logging: :meth:`log_train` logs only on the trainer's logging steps (and the first batch); the values
  meant for the progress bar are kept every batch in ``progress_bar_values``.
- Lightning lr schedulers, stepped under manual optimization (``interval: step`` = per batch);
  ``ReduceLROnPlateau`` on the metric it names, averaged over ranks so every rank takes the same decision.
- ``max_kimg``: stop after this many thousand real images (StyleGAN's ``--kimg``).
- A refusal, in one line, of strategies that cannot train alternating phases correctly.

**Non-finite guard.** A NaN/Inf loss on any rank skips that update on every rank. On one process
the verdict is the loss's own finiteness. On several, it is read off the averaged gradients, which
all ranks share: the loss poisons its gradients (:func:`gans.training.distributed.poison_nonfinite`), the
gradient average carries the NaN to every rank, and one fused norm over the optimizer's gradients
(:func:`gans.training.distributed.nonfinite_gradients`) gives the same flag everywhere, with no extra
collective. Optimizers that take the flag on the device (torch's fused Adam and SGD, the default on
CUDA unless a grad scaler is on) skip without a host sync; under ``16-mixed`` the grad scaler skips
(and also skips fp16 overflows, which are not counted as non-finite losses); other optimizers read the
flag once per update (free on a CPU). Skips are counted on the device (``train/nonfinite_steps``),
with a latch that trips when a streak reaches the limit; both are read on logging steps, at epoch
ends, and every batch where the flag was read anyway. Then training stops with
:class:`gans.errors.NonFiniteLossError`, naming the last checkpoint, once ``max_nonfinite_steps``
batches in a row had a skipped update.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Iterable, Mapping

import lightning as L
import torch
from lightning.pytorch.cli import (
    ReduceLROnPlateau as PlateauScheduler,  # torch's, with the metric it watches (monitor)
)
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from gans import legacy
from gans.checks import check_run_settings
from gans.errors import ConfigError, NonFiniteLossError, find_user_error
from gans.training import contracts, distributed, lightning_compat

# Strategies whose class (or a base class) has one of these names are refused, with the reason.
REFUSED_STRATEGIES = {
    "DeepSpeedStrategy": "DeepSpeed drives one optimizer per engine and its own backward, which cannot alternate D and G phases",
    "FSDPStrategy": "FSDP shards the parameters, and the per-phase gradient reduction and EMA need whole networks",
    "ModelParallelStrategy": "model parallelism shards the networks, which the alternating phases and EMA do not support",
}
SUPPORTED_STRATEGIES = "auto, single-device, ddp (multi-node too), ddp_spawn, ddp_fork / ddp_notebook, xla"


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Progress(nn.Module):
    """Training counters. The loop reads Python ints (no device reads); the state dict carries them as
    int64 buffers, and loading a state dict sets the ints. ``nonfinite_steps`` and ``nonfinite_streak``
    live on the device only, where the guard updates them without a host sync."""

    COUNTS = ("images_seen", "batches", "g_steps", "d_steps_since_g")

    def __init__(self) -> None:
        super().__init__()
        self.counts = dict.fromkeys(self.COUNTS, 0)
        for name in self.COUNTS:
            self.register_buffer(name, torch.zeros((), dtype=torch.long))
        self.register_buffer("nonfinite_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("nonfinite_streak", torch.zeros((), dtype=torch.long))
        self.register_buffer("nonfinite_tripped", torch.zeros((), dtype=torch.long))  # a streak reached the limit

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        for name in self.COUNTS:
            getattr(self, name).fill_(self.counts[name])
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        for name in self.COUNTS:
            if prefix + name in state_dict:
                self.counts[name] = int(state_dict[prefix + name])


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that no optimizer trains (an EMA copy)."""
    return copy.deepcopy(module).requires_grad_(False)


def optimizer_params(opt: Any) -> list[nn.Parameter]:
    """The parameters ``opt`` steps (a torch optimizer or Lightning's wrapper of one)."""
    return [p for group in opt.param_groups for p in group["params"]]


def _counter(name: str) -> property:
    def get(self: "AdversarialModule") -> int:
        return self.progress.counts[name]

    def set(self: "AdversarialModule", value: int) -> None:
        self.progress.counts[name] = int(value)

    return property(get, set, doc=f"Training counter ``{name}`` (saved in checkpoints).")


class AdversarialModule(L.LightningModule):
    """Manual optimization in phases, correct on one device and on every rank of a supported strategy.

    A subclass builds its networks as attributes, returns its optimizers from ``configure_optimizers``
    (optionally with Lightning lr schedulers), and writes ``training_step``, which runs its phases through
    :meth:`backward_and_step` and ends with :meth:`end_of_batch`.
    """

    def __init__(self, max_nonfinite_steps: int = 10, gradient_clip_val: float = 0.0, max_kimg: float = 0.0) -> None:
        """
        Args:
            max_nonfinite_steps: stop after this many batches in a row with a skipped (NaN/Inf) update.
            gradient_clip_val: clip the gradient norm of each optimizer's parameters to this before its step; 0 = off.
                (Trainer's gradient_clip_val does not apply to manual optimization.)
            max_kimg: stop after this many thousand real images; 0 = no limit (the trainer's limits apply).
        """
        super().__init__()
        self.automatic_optimization = False
        check_run_settings(max_nonfinite_steps, gradient_clip_val, max_kimg)
        self.max_nonfinite_steps = max_nonfinite_steps
        self.gradient_clip_val = gradient_clip_val
        self.max_kimg = max_kimg
        self.progress = Progress()
        self._ddp: dict[str, nn.Module] | None = None  # per-network DDP wrappers, built at the first update
        self._ddp_of_optimizer: dict[int, list[nn.Module]] = {}
        self._batch_skipped: Tensor | None = None  # 1 if an update of this batch was skipped
        self._verdict_on_host = False  # whether this batch already read a non-finite flag
        self._nonfinite_reported = 0
        self._log_now = True
        self.progress_bar_values: dict[str, Any] = {}  # the latest values logged with prog_bar=True, every batch
        self._end_epoch_requested = False
        self._epoch_cut_short = False
        self._own_buffers: dict[str, Tensor] | None = None  # a resumed rank's own buffers, set at train start

    images_seen = _counter("images_seen")
    batches = _counter("batches")
    g_steps = _counter("g_steps")
    d_steps_since_g = _counter("d_steps_since_g")

    @property
    def nonfinite_steps(self) -> int:
        """Updates skipped for a NaN/Inf loss or gradient since training began (reads the device)."""
        return int(self.progress.nonfinite_steps)

    @property
    def nonfinite_streak(self) -> int:
        """Batches in a row, up to the last one, with a skipped update (reads the device)."""
        return int(self.progress.nonfinite_streak)

    # Lightning's ThroughputMonitor (callbacks.ImagesPerSecond) reads this; GAN FLOPs are not counted.
    flops_per_batch: int | None = None

    # Set-up: strategy check, per-rank random streams.

    # What the data-shape error tells the user to change; a model with fixed networks (CoGAN) names its own fix.
    data_shape_fix = "make model.init_args.img_resolution / img_channels (or data_shape) match the data's"

    def check_data_shape(self) -> None:
        """Fail early, with the fix, when the datamodule's ``data_shape`` is not the model's (both optional)."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        given, expected = contracts.data_shape(datamodule), contracts.data_shape(self)
        if given is not None and expected is not None and given != expected:
            raise ConfigError(
                f"{type(self).__name__} makes images of shape {expected} but {type(datamodule).__name__} "
                f"gives {given}: {self.data_shape_fix}."
            )

    def setup(self, stage: str) -> None:
        self.check_data_shape()
        if self._trainer is None or stage != "fit":
            return
        self._ddp, self._ddp_of_optimizer = None, {}  # a fit builds wrappers for its own process group
        strategy = self.trainer.strategy
        for cls in type(strategy).__mro__:
            if cls.__name__ in REFUSED_STRATEGIES:
                raise ConfigError(
                    f"{type(self).__name__} cannot train with {type(strategy).__name__}: {REFUSED_STRATEGIES[cls.__name__]}. "
                    f"Use one of: {SUPPORTED_STRATEGIES}."
                )
        if self.trainer.world_size > 1:
            self.seed_rank_stream()
        for callback in self.trainer.checkpoint_callbacks:
            if lightning_compat.every_n_train_steps(callback) and not hasattr(callback, "every_kimg"):
                rank_zero_warn(
                    f"{type(callback).__name__}(every_n_train_steps={lightning_compat.every_n_train_steps(callback)}) counts trainer.global_step, "
                    f"the optimizer steps of every phase (2 per batch, irregular with n_critic > 1), so saves are skipped: "
                    f"use callbacks.KimgCheckpoint(every_kimg=...) instead."
                )
        if not self.max_kimg:
            rank_zero_info(
                f"max_kimg is 0: no limit on training images; the run ends at trainer.max_epochs={self.trainer.max_epochs} "
                f"or max_steps={self.trainer.max_steps} (set model.init_args.max_kimg to stop after that many thousand images)."
            )
        if self.trainer.max_steps and self.trainer.max_steps > 0:
            rank_zero_info(
                f"trainer.max_steps={self.trainer.max_steps} counts optimizer steps of every phase (D and G steps, "
                f"2 per batch with n_critic 1); to stop after a number of training images set model max_kimg instead."
            )

    def seed_rank_stream(self) -> None:
        """Give this rank its own global random stream, derived from the shared seed and the rank.

        Every rank draws the same number from the shared stream (seed_everything gives all ranks one
        seed), then seeds with it and its rank, so runs stay reproducible and ranks differ.
        """
        shared = int(torch.randint(0, 2**31 - 1, ()))
        seed = shared + 1_000_003 * self.trainer.global_rank
        torch.manual_seed(seed)
        device = self.root_device()
        if device.type == "xla":  # the XLA device has its own generator, which torch.manual_seed does not reach
            import torch_xla.core.xla_model as xm

            xm.set_rng_state(seed, device=device)

    def root_device(self) -> torch.device:
        """The device this rank trains on (the module may not be moved there yet, e.g. during ``setup``)."""
        return self.trainer.strategy.root_device if self._trainer is not None else self.device

    # Updates.

    def backward_and_step(self, opt: Any, loss: Tensor, network: nn.Module | None = None) -> Tensor:
        """Back-propagate ``loss`` and step ``opt``; returns a 0-dim bool tensor, True if the update was applied.

        The gradients of every network ``opt`` trains are averaged over ranks during the backward (by
        their DDP wrappers, or by the XLA optimizer step). ``network`` names the network for subclasses
        that record updates; what is reduced and stepped is decided by the optimizer's parameters.
        Reading the returned tensor syncs with the device.
        """
        opt.zero_grad(set_to_none=True)
        strategy, scaler = self.trainer.strategy, self.amp_scaler()
        bad_loss = distributed.nonfinite_loss(loss)
        if strategy.world_size > 1:
            loss = distributed.poison_nonfinite(loss, bad_loss)
        distributed.expect_gradients(self._ddp_wrappers_of(opt), loss)
        with distributed.whole_module_idle(strategy.model):
            self.manual_backward(loss)
        found = bad_loss
        if strategy.world_size > 1:  # under DDP the averaged gradients, the same on every rank
            found = distributed.nonfinite_gradients(optimizer_params(opt)).to(loss.device)
            if not distributed.is_ddp(strategy.model):  # XLA averages inside opt.step(): reduce the verdict first
                found = distributed.any_rank(strategy, found)
        self._step(opt, found)
        # Under the grad scaler a skip may be an fp16 overflow, which is the scaler's business: count losses.
        counted = bad_loss if scaler is not None else found
        self._batch_skipped = counted if self._batch_skipped is None else torch.maximum(self._batch_skipped, counted)
        self.progress.nonfinite_steps.add_(counted.long())
        return found == 0

    def _step(self, opt: Any, found: Tensor) -> None:
        inner = getattr(opt, "optimizer", opt)  # LightningOptimizer wraps the torch optimizer
        if self.amp_scaler() is not None:
            opt.step()  # the AMP grad scaler finds the same non-finite gradients and skips
        elif getattr(inner, "_step_supports_amp_scaling", False) and any(g.get("fused") for g in inner.param_groups):
            inner.found_inf, inner.grad_scale = found.to(torch.float32).reshape(()), None  # fused kernels skip on the device
            try:
                opt.step()
            finally:
                del inner.found_inf, inner.grad_scale
        else:
            self._verdict_on_host = True
            if not bool(found):
                opt.step()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this after the AMP scaler has unscaled the gradients, so the norm is the true one.
        if self.gradient_clip_val > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")

    def amp_scaler(self) -> Any:
        """The enabled AMP grad scaler under ``precision="16-mixed"``, else None."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None) if self._trainer is not None else None
        return scaler if scaler is not None and scaler.is_enabled() else None

    def grad_scale(self) -> float:
        """The AMP loss scale under ``precision="16-mixed"``, else 1 (see :func:`gans.training.losses.gradient_penalty`)."""
        scaler = self.amp_scaler()
        return float(scaler.get_scale()) if scaler is not None else 1.0

    def trained_networks(self) -> dict[str, nn.Module]:
        """The top-level networks some optimizer trains, by attribute name (each gets a DDP wrapper)."""
        trained = {id(p) for opt in self.trainer.optimizers for p in optimizer_params(opt)}
        return {
            name: child for name, child in self.named_children()
            if any(id(p) in trained for p in child.parameters())
        }

    def _ddp_wrappers_of(self, opt: Any) -> list[nn.Module]:
        """The DDP wrappers of the networks ``opt`` trains (none unless Lightning wrapped the module in DDP)."""
        if self._ddp is None:
            if distributed.is_ddp(self.trainer.strategy.model):
                raise RuntimeError(
                    f"{type(self).__name__}.on_train_batch_start must call super().on_train_batch_start(batch, batch_idx): "
                    f"it sets up the per-network DDP gradient reduction."
                )
            return []
        key = id(getattr(opt, "optimizer", opt))
        if key not in self._ddp_of_optimizer:
            owned = {id(p) for p in optimizer_params(opt)}
            self._ddp_of_optimizer[key] = [
                wrapper for wrapper in self._ddp.values() if any(id(p) in owned for p in wrapper.module.parameters())
            ]
        return self._ddp_of_optimizer[key]

    def _wrap_networks_for_ddp(self) -> None:
        """Under Lightning's DDP: one DDP wrapper per trained network, built before the first forward (building
        one broadcasts rank 0's parameters in place); Lightning's whole-module wrapper keeps the buffers local."""
        outer = self.trainer.strategy.model
        if self._ddp is None and distributed.is_ddp(outer):
            distributed.keep_buffers_local(outer)
            trained = [p for o in self.trainer.optimizers for p in optimizer_params(o)]
            frozen = [p for p in trained if not p.requires_grad]  # the idle network, under toggled_optimizer
            for p in frozen:
                p.requires_grad_(True)  # DDP registers only the parameters that require a gradient when it is built
            try:
                self._ddp = distributed.wrap_networks(self.trained_networks(), like=outer)
            finally:
                for p in frozen:
                    p.requires_grad_(False)
            covered = {id(p) for wrapper in self._ddp.values() for p in wrapper.module.parameters()}
            trained_ids = {id(p) for p in trained}
            loose = [name for name, p in self.named_parameters() if id(p) in trained_ids and id(p) not in covered]
            if loose:
                raise ConfigError(
                    f"{type(self).__name__} trains parameters that belong to no network ({', '.join(loose)}), so DDP would not "
                    f"average their gradients: move them into an nn.Module attribute (a network)."
                )

    # The end of every batch: counters, the guard's verdict, schedules.

    def end_of_batch(self, images_on_this_rank: int) -> None:
        """Book-keeping after a training batch's phases; ``training_step`` calls it last."""
        self._check_nonfinite()
        self.images_seen += images_on_this_rank * self.trainer.world_size
        self.batches += 1
        self.log_train({"train/kimg": self.images_seen / 1000.0}, prog_bar=True)
        self._step_schedulers("step")
        if self.max_kimg and self.images_seen >= self.max_kimg * 1000:
            self.trainer.should_stop = True

    def _check_nonfinite(self) -> None:
        """Close the batch's skip bookkeeping on the device; report where a read costs nothing extra."""
        progress = self.progress
        skipped = self._batch_skipped if self._batch_skipped is not None else torch.zeros((), device=progress.nonfinite_streak.device)
        progress.nonfinite_streak.mul_(skipped.long()).add_(skipped.long())  # +1 if skipped, else back to 0
        progress.nonfinite_tripped.copy_(torch.maximum(progress.nonfinite_tripped, (progress.nonfinite_streak >= self.max_nonfinite_steps).long()))
        self._batch_skipped = None
        if self._verdict_on_host or self._log_now:
            self._verdict_on_host = False
            self._report_nonfinite()

    def _report_nonfinite(self) -> None:
        """Read the counters (every rank at the same batch), warn about new skips, stop when a streak tripped."""
        total, streak, tripped = self._read_nonfinite_counters()
        if total != self._nonfinite_reported:
            self.log_train({"train/nonfinite_steps": float(total)}, always=True)
        if total == self._nonfinite_reported:
            return
        new = total - self._nonfinite_reported
        self._nonfinite_reported = total
        limit = self.max_nonfinite_steps
        if not tripped:
            rank_zero_warn(
                f"Non-finite loss or gradient at {self.images_seen / 1000:.1f} kimg: {new} update(s) skipped "
                f"({streak} batch(es) in a row; training stops at {limit})."
            )
            return
        checkpoint = self._last_checkpoint_path()
        raise NonFiniteLossError(
            f"{max(streak, limit)} non-finite losses in a row at {self.images_seen / 1000:.1f} kimg: training stopped before the weights "
            f"became NaN. Last good checkpoint: {checkpoint or 'none saved yet'}. Resume from it with a lower learning rate, "
            f"gradient_clip_val, or precision bf16-mixed / 32 instead of 16-mixed."
        )

    def _read_nonfinite_counters(self) -> tuple[int, int, bool]:
        """(skips in total, current streak, whether a streak reached the limit), the same on every rank.

        The counts are rank-local only under the grad scaler (a non-finite loss on one rank); then the
        ranks' values are gathered through the strategy and the largest taken (a collective, at most on
        logging steps and epoch ends, which every rank reaches together)."""
        progress = self.progress
        values = torch.stack([progress.nonfinite_steps, progress.nonfinite_streak, progress.nonfinite_tripped])
        strategy = self.trainer.strategy
        if strategy.world_size > 1 and self.amp_scaler() is not None:
            values = strategy.all_gather(values).reshape(strategy.world_size, 3).amax(dim=0)
        total, streak, tripped = values.tolist()
        return int(total), int(streak), bool(tripped)

    def _last_checkpoint_path(self) -> str | None:
        for callback in self.trainer.checkpoint_callbacks:
            path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
            if path:
                return path
        return None

    def _step_schedulers(self, interval: str) -> None:
        """Lightning's lr schedulers under manual optimization: ``interval: step`` steps every ``frequency``
        training batches, ``interval: epoch`` every ``frequency`` epochs; ReduceLROnPlateau on its metric
        (:meth:`_plateau_metric`)."""
        count = self.batches if interval == "step" else self.current_epoch + 1
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval or count % config.frequency:
                continue
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                config.scheduler.step(self._plateau_metric(config.scheduler))
            else:
                with warnings.catch_warnings():  # schedules count batches or epochs, not this optimizer's steps: with
                    # n_critic > 1 the G optimizer has not stepped yet when the first batches step its schedule
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`")
                    config.scheduler.step()

    def on_train_epoch_end(self) -> None:
        if self._epoch_cut_short:
            self._forget_dropped_batch()
        else:  # an epoch cut short for a new data stage is not an epoch of the data
            self._step_schedulers("epoch")
        self._report_nonfinite()  # also when log_every_n_steps is 0

    def _forget_dropped_batch(self) -> None:
        """Lightning counts the batch dropped by :meth:`request_new_epoch` as ready and processed but never
        started; left so, its restart logic would take every later checkpoint for one saved mid-batch."""
        self._epoch_cut_short = False
        lightning_compat.uncount_dropped_batch(self.trainer)

    def _plateau_metric(self, scheduler: PlateauScheduler) -> Tensor:
        """The current value of the metric a ReduceLROnPlateau watches, averaged over ranks (a metric logged without
        ``sync_dist`` is each rank's own; the ranks must reduce their learning rates together)."""
        value = self.trainer.callback_metrics.get(scheduler.monitor)
        if value is None:
            raise ConfigError(
                f"ReduceLROnPlateau monitors {scheduler.monitor!r}, which is not logged (yet) when it steps: log it, name a logged "
                f"metric, or step it less often (interval epoch, a larger frequency)."
            )
        value = torch.as_tensor(value, dtype=torch.float32, device=self.root_device())
        return distributed.mean_over_ranks(self.trainer.strategy, value)

    def on_train_start(self) -> None:
        self._nonfinite_reported = self.nonfinite_steps  # a resumed run warns only about its own skips
        if self._own_buffers is not None:  # a resume: this rank's own buffers, now that DDP's wrapper is built
            buffers = dict(self.named_buffers())
            with torch.no_grad():
                for name, value in self._own_buffers.items():
                    buffers[name].copy_(value)
            self._own_buffers = None
        for config in self.trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not isinstance(config.scheduler, PlateauScheduler):
                raise ConfigError(
                    "ReduceLROnPlateau needs the metric it watches, which Lightning drops from the lr_scheduler dict under manual "
                    "optimization: build it as lightning.pytorch.cli.ReduceLROnPlateau(optimizer, monitor=\"metrics/fid\", ...)."
                )

    # Logging.

    def request_new_epoch(self) -> None:
        """End the epoch before the current batch trains (it is dropped uncounted), so that the next epoch
        starts from freshly built dataloaders. A callback that changes what the data serve mid-epoch
        (:class:`callbacks.ProgressiveGrowing`: the image size and batch size of a new stage) calls this
        from its ``on_train_batch_start`` and sets the trainer to reload the dataloaders. Such a cut-short
        epoch does not step epoch-interval lr schedulers."""
        self._end_epoch_requested = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        """Subclasses that override this return ``super().on_train_batch_start(batch, batch_idx)``."""
        if self._end_epoch_requested:
            self._end_epoch_requested, self._epoch_cut_short = False, True
            return -1  # Lightning: skip the rest of this epoch
        if self.max_kimg and self.images_seen >= self.max_kimg * 1000:  # resumed from a run that had reached max_kimg
            self.trainer.should_stop, self._epoch_cut_short = True, True
            return -1  # train nothing more: the dropped batch is uncounted at the epoch's end
        self._wrap_networks_for_ddp()
        self._log_now = self.batches == 0 or lightning_compat.logging_this_batch(self.trainer)
        return None

    def log_train(self, metrics: dict[str, Any], prog_bar: bool = False, always: bool = False) -> None:
        """``self.log_dict`` on the trainer's logging steps only (every ``log_every_n_steps`` batches, and
        the first): what Lightning would write anyway, without its per-call cost on the other batches.

        Values with ``prog_bar`` are also kept, every batch and as given (detached tensors: no device read), in
        ``progress_bar_values``, which :class:`callbacks.KimgProgressBar` turns into numbers at its own pace."""
        if prog_bar:
            self.progress_bar_values.update(metrics)
        if (self._log_now or always) and self._trainer is not None:  # a loss computed outside fit (a test, a notebook) logs nothing
            self.log_dict(metrics, prog_bar=prog_bar)

    # Buffers: each rank's own during fit, averaged over ranks in checkpoints and at the end of fit.

    def on_train_end(self) -> None:
        """The trained model is one model on every rank, the one its last checkpoint holds: the buffers take their
        average over ranks (the only time the live buffers are averaged; see :mod:`gans.training.distributed`)."""
        distributed.average_buffers_(self.trainer.strategy, self)
        self._ddp, self._ddp_of_optimizer = None, {}  # a later fit builds wrappers for its own process group

    # Checkpoints: class, per-rank RNG states, averaged buffers.

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Runs on every rank (Lightning dumps the checkpoint everywhere and writes it from rank 0). The state dict
        gets the buffers' averages over ranks (one model: predict, ``load_from_checkpoint``), ``gan_progress`` every
        rank's own (a resume gives each rank its own back); the live buffers are left alone, so saving changes no run."""
        strategy = self.trainer.strategy if self._trainer is not None else None
        state = checkpoint.get("state_dict")
        progress = {"model_class": qualified_name(type(self)), **self._rng_states(strategy)}
        if strategy is not None and strategy.world_size > 1:
            averaged, everyone = distributed.averaged_buffers(strategy, self), distributed.buffers_of_every_rank(strategy, self)
            if state is not None:
                state.update({name: value for name, value in averaged.items() if name in state})
                progress["rank_buffers"] = [{name: value.cpu() for name, value in rank.items() if name in state} for rank in everyone]
        checkpoint["gan_progress"] = progress

    def _rng_states(self, strategy: Any) -> dict[str, list[Tensor]]:
        states = {"rng_cpu": torch.get_rng_state()}
        device = self.root_device()
        if device.type == "cuda":
            states["rng_cuda"] = torch.cuda.get_rng_state(device)
        if device.type == "xla":  # the XLA generator's seed, an int
            import torch_xla.core.xla_model as xm

            states["rng_xla"] = torch.tensor([xm.get_rng_state(device=device)], dtype=torch.long)
        return {name: [s.cpu().clone() for s in distributed.gather_per_rank(strategy, value.to(device))]  # own storage
                for name, value in states.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``, after giving an EMA host (:class:`gans.training.contracts.EMAHost`) the EMA
        copies that ``state_dict`` holds (``<name>_ema.*``, written with :class:`callbacks.EMA`) and it lacks.

        Every load comes through here: a checkpoint (resume, ``load_from_checkpoint``, ``predict``) and, under
        ``ddp_spawn`` / ``ddp_fork`` / ``ddp_notebook``, the weights Lightning hands from rank 0 back to the launching
        process, whose module never ran the callback's ``setup``: without the copy, sampling and ``predict`` there
        would use the raw generator."""
        if isinstance(self, contracts.EMAHost):
            for name in self.ema_networks:
                if contracts.ema_copy(self, name) is None and any(key.startswith(f"{contracts.ema_name(name)}.") for key in state_dict):
                    setattr(self, contracts.ema_name(name), frozen_copy(contracts.network(self, name, "load_state_dict")))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        progress = checkpoint.get("gan_progress")
        if progress is None:
            raise ConfigError(
                f"This checkpoint was not written by a gans model (it has no 'gan_progress' entry), so "
                f"{type(self).__name__} cannot resume from it: pass a checkpoint saved by a gans run."
            )
        written_by = legacy.current_name(progress.get("model_class", ""))  # a class path from before the restructure
        if written_by not in {qualified_name(c) for c in type(self).__mro__}:
            raise ConfigError(
                f"The checkpoint was written by {written_by}, not {qualified_name(type(self))}: load it with "
                f"{written_by.rsplit('.', 1)[-1]}.load_from_checkpoint, or set model.class_path: {written_by}."
            )
        state = checkpoint.get("state_dict")
        if state is not None and "progress.images_seen" not in state and "images_seen" in progress:
            # Written before the counters moved into the state dict: take them from gan_progress.
            for name in (*Progress.COUNTS, "nonfinite_steps"):
                state[f"progress.{name}"] = torch.tensor(int(progress.get(name, 0)))
            state["progress.nonfinite_streak"] = state["progress.nonfinite_tripped"] = torch.tensor(0)
        rank_buffers = progress.get("rank_buffers") or []
        if self._resuming() and len(rank_buffers) == self.trainer.world_size:  # on as many ranks: each its own buffers,
            self._own_buffers = rank_buffers[self.trainer.global_rank]  # set at train start (building DDP's wrapper copies rank 0's)
        own = self.state_dict()
        self._check_checkpoint_keys(checkpoint, own, written_by)
        for name, value in checkpoint.get("state_dict", {}).items():
            if name in own and own[name].shape != value.shape:
                raise ConfigError(
                    f"The checkpoint's {name} has shape {tuple(value.shape)} but this model's has {tuple(own[name].shape)}: "
                    f"build the model with the checkpoint's settings ({checkpoint.get('hyper_parameters', {})})."
                )
        self._restore_rng(progress)

    def _check_checkpoint_keys(self, checkpoint: dict[str, Any], own: Mapping[str, Any], written_by: str) -> None:
        """Refuse, in one line, a checkpoint whose weights are not this model's layers (torch's strict load would fail
        with a list of keys): a base class's checkpoint in a subclass with other layers, or other settings. EMA copies
        are left to :meth:`load_state_dict`, which builds them."""
        state = checkpoint.get("state_dict")
        if state is None or not self.strict_loading:
            return
        ema = tuple(f"{contracts.ema_name(name)}." for name in self.ema_networks) if isinstance(self, contracts.EMAHost) else ()
        def layer(key: str) -> bool:  # EMA copies and modules' extra state (a growing network's stage) are not layers
            return not key.startswith(ema) and not key.endswith("_extra_state")

        unexpected = [key for key in state if key not in own and layer(key)]
        missing = [key for key in own if key not in state and layer(key)]
        if not unexpected and not missing:
            return
        differ = "; ".join(f"{len(keys)} {what} (e.g. {keys[0]})" for keys, what in ((unexpected, "weights this model lacks"),
                                                                              (missing, "weights missing")) if keys)
        name, written_name = type(self).__name__, written_by.rsplit(".", 1)[-1]
        settings = {key: value for key, value in checkpoint.get("hyper_parameters", {}).items() if not key.startswith("_")}
        fix = (f"build the model with the checkpoint's settings ({settings})"
               if written_by == qualified_name(type(self)) else
               f"load it with {written_name}.load_from_checkpoint, or set model.class_path: {written_by} "
               f"(to train a {name}, start without --ckpt_path)")
        raise ConfigError(f"The checkpoint was written by {written_by}, whose layers are not {name}'s ({differ}): {fix}.")

    def _resuming(self) -> bool:
        """Whether a checkpoint is being restored to continue training (``fit(ckpt_path=...)``), not to use the model."""
        return self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING

    def _restore_rng(self, progress: dict[str, Any]) -> None:
        rank = self.trainer.global_rank if self._trainer is not None else 0
        cpu_states = progress.get("rng_cpu") or []
        if isinstance(cpu_states, Tensor):
            cpu_states = [cpu_states]
        if rank < len(cpu_states):
            torch.set_rng_state(cpu_states[rank].cpu().clone())
        else:  # resumed on more ranks than were saved: a new stream for this rank, derived from rank 0's
            torch.set_rng_state(cpu_states[0].cpu().clone())
            self.seed_rank_stream()
        cuda_states = progress.get("rng_cuda") or []
        device = self.root_device()
        if device.type == "cuda" and rank < len(cuda_states):
            torch.cuda.set_rng_state(cuda_states[rank].cpu().clone(), device)
        xla_states = progress.get("rng_xla") or []
        if device.type == "xla" and rank < len(xla_states):
            import torch_xla.core.xla_model as xm

            xm.set_rng_state(int(xla_states[rank].reshape(-1)[0]), device=device)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> "AdversarialModule":
        """Lightning's loader, refusing in one line a checkpoint written by a model that is not ``cls`` or one of its
        base classes (whose layers ``cls`` would not have), before Lightning reads its arguments."""
        written_by = cls.checkpoint_writer(checkpoint_path)
        fix = f"load it with {written_by.rsplit('.', 1)[-1]}.load_from_checkpoint (or set model.class_path: {written_by})"
        if written_by not in {qualified_name(c) for c in cls.__mro__}:
            raise ConfigError(f"The checkpoint {checkpoint_path} was written by {written_by}, not {qualified_name(cls)}: {fix}.")
        if written_by == qualified_name(cls):
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        # A base class's checkpoint: build cls from its settings (a CLI checkpoint names the base class, which Lightning
        # would refuse to build as cls), then on_load_checkpoint compares the layers.
        hparams = torch.load(checkpoint_path, map_location="cpu", weights_only=True).get("hyper_parameters") or {}
        if "_class_path" in hparams:
            kwargs.setdefault("_class_path", qualified_name(cls))
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except Exception as err:
            refused = find_user_error(err)
            if refused is None or written_by in str(refused):
                raise
            raise ConfigError(f"The checkpoint {checkpoint_path} was written by {written_by}, whose settings do not build a "
                              f"{cls.__name__} ({refused}): {fix}.") from None

    @staticmethod
    def checkpoint_writer(checkpoint_path: Any) -> str:
        """The class path of the model that wrote a checkpoint (old module paths translated)."""
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        return legacy.current_name(checkpoint.get("gan_progress", {}).get("model_class", "a model that is not a gans model"))


def parameters_of(networks: Iterable[nn.Module]) -> list[nn.Parameter]:
    """The parameters of several networks, each once (for one optimizer over several networks)."""
    seen: dict[int, nn.Parameter] = {}
    for network in networks:
        for p in network.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())
