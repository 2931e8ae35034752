"""Progressive growing: the schedule of resolutions of ProGAN (Karras et al. 2018, arXiv:1710.10196,
section 2 and Appendix A.1) and StyleGAN (Karras et al. 2019, arXiv:1812.04948, its official schedule).

Training starts at ``start_resolution`` and doubles until the model's final resolution. Every new
resolution first fades in (``fade_kimg`` thousand images; alpha rises linearly from 0 to 1 in G and D
alike, and the real images are faded the same way) and then trains stable (``stable_kimg``); the first
resolution has only a stable phase and the last one stays stable until the run ends. The paper shows
800k images per phase; StyleGAN's official configs 600k.

The callback drives two contracts (:mod:`gans.training.contracts`), so that any growing model and any
datamodule can use it:

- the model, a :class:`gans.training.contracts.GrowingModel` (:class:`gans.ProGAN`, StyleGAN): ``resolutions``
  (the stages it can run at, ascending), ``set_growth(resolution, alpha)``, ``current_resolution`` and
  ``alpha``; it brings real images to the stage itself and keeps the stage in its checkpoints; required;
- the datamodule, a :class:`gans.training.contracts.GrowingData` (:class:`datamodules.ImageFolderDataModule` and
  its subclasses): ``set_stage(resolution, batch_size)`` makes the next ``train_dataloader()`` serve images
  average-pooled to ``resolution`` in batches of ``batch_size``, so small stages do not load full-size
  images. Optional; per-resolution batch sizes need it.

When the images or batch size served change, the dataloaders are rebuilt: at the end of the epoch if the
change falls there, else the epoch ends before the next batch (drawn from the old dataloader) trains
(:meth:`gans.training.core.AdversarialModule.request_new_epoch`). At every phase
boundary the optimizers' moments are reset, as the official code does (``reset_opt_for_new_lod``).
The phase is computed from ``images_seen``, which checkpoints carry, so a run resumed mid fade-in
continues at the same resolution, alpha, batch size and learning rate, with the same optimizer states;
the checkpoint also names its phase (resolution, fading or stable), so a checkpoint written just before a
boundary still resets the optimizers at it, and a schedule changed between runs is followed from the
images seen. Epochs cut short for a new data stage do not step epoch-interval lr schedulers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from gans.errors import ConfigError
from gans.training import contracts
from gans.training.phases import lr_ratio


@dataclass(frozen=True)
class Phase:
    """One phase of the schedule: images ``[start, end)`` at ``resolution``, fading in or stable."""

    index: int
    resolution: int
    fade: bool
    start: int  # images
    end: float  # images; inf for the last phase

    def alpha(self, images_seen: int) -> float:
        """The fade-in weight of the newest block after ``images_seen`` images: linear 0 -> 1, or 1 when stable."""
        if not self.fade:
            return 1.0
        return min(1.0, max(0.0, (images_seen - self.start) / (self.end - self.start)))


class GrowthSchedule:
    """The phases from ``resolutions[0]`` to ``resolutions[-1]``, counted in whole images."""

    def __init__(self, resolutions: list[int], stable_kimg: float, fade_kimg: float) -> None:
        stable, fade = round(stable_kimg * 1000), round(fade_kimg * 1000)
        self.phases: list[Phase] = []
        start = 0
        for i, r in enumerate(resolutions):
            kinds = [False] if i == 0 else ([True, False] if fade > 0 else [False])
            for is_fade in kinds:
                length = fade if is_fade else stable
                last = i == len(resolutions) - 1 and not is_fade
                self.phases.append(Phase(len(self.phases), r, is_fade, start, math.inf if last else start + length))
                start += length

    def phase_at(self, images_seen: int) -> Phase:
        for phase in self.phases:
            if images_seen < phase.end:
                return phase
        return self.phases[-1]

    def final_resolution_start(self) -> int:
        """Images after which the final resolution is fully faded in."""
        return self.phases[-1].start


class ProgressiveGrowing(Callback):
    """Grow the model (and the data) through the resolutions on a schedule in kimg; see the module docstring."""

    def __init__(
        self,
        start_resolution: int = 4,
        stable_kimg: float = 800.0,
        fade_kimg: float = 800.0,
        batch_size: dict[int, int] | None = None,
        lr: dict[int, float] | None = None,
        reset_optimizers: bool = True,
    ) -> None:
        """
        Args:
            start_resolution: the first stage (paper: 4).
            stable_kimg: thousands of real images per stable phase (ProGAN paper: 800; StyleGAN: 600).
            fade_kimg: thousands of real images per fade-in (ProGAN paper: 800; StyleGAN: 600); 0 = no fade-in.
            batch_size: batch size per device at the named resolutions (paper: 16, and 14, 6, 3 at 256, 512, 1024);
                other resolutions keep the datamodule's. Needs a datamodule with ``set_stage``.
            lr: learning rate of every optimizer at the named resolutions (official: {1024: 0.0015} on one GPU), times
                the optimizer's lazy-regularisation correction (:func:`gans.training.phases.lr_ratio`); other
                resolutions keep the model's. Not with lr schedulers (refused).
            reset_optimizers: clear the optimizers' state (Adam moments) at every phase boundary (official: yes).
        """
        super().__init__()
        if stable_kimg < 0 or fade_kimg < 0:
            raise ConfigError(f"stable_kimg and fade_kimg must be >= 0, got {stable_kimg} and {fade_kimg}.")
        self.start_resolution = start_resolution
        self.stable_kimg = stable_kimg
        self.fade_kimg = fade_kimg
        self.batch_size = {int(k): int(v) for k, v in (batch_size or {}).items()}
        self.lr = {int(k): float(v) for k, v in (lr or {}).items()}
        self.reset_optimizers = reset_optimizers
        if any(b < 1 for b in self.batch_size.values()) or any(v <= 0 for v in self.lr.values()):
            raise ConfigError(f"Per-resolution batch sizes and learning rates must be positive, got {self.batch_size} and {self.lr}.")
        self.schedule: GrowthSchedule | None = None
        self.phase_index: int | None = None  # the phase whose settings are applied
        self.base_lr: list[float] | None = None  # the optimizers' own learning rates; saved in checkpoints
        self.base_batch_size: int | None = None
        self._restored_phase: tuple[int, bool] | None = None  # (resolution, fade) of the phase a checkpoint was in
        self._served: tuple[int, int] | None = None  # (resolution, batch size) the current dataloader serves
        self._reload_setting: int | None = None  # the trainer's reload_dataloaders_every_n_epochs while we override it
        self._announced: set[int] = set()

    # Set-up: check both contracts, build the schedule, put model and data at the phase of images_seen.

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.phase_index, self.base_lr, self.base_batch_size, self._served = None, None, None, None  # a new fit
        self._announced = set()
        contracts.require(pl_module, contracts.GrowingModel, "callbacks.ProgressiveGrowing", "use gans.ProGAN (or StyleGAN), or remove the callback")
        stages = list(pl_module.resolutions)
        if self.start_resolution not in stages:
            raise ConfigError(f"ProgressiveGrowing start_resolution {self.start_resolution} is not a stage of {type(pl_module).__name__}: choose one of {stages}.")
        unknown = sorted((set(self.batch_size) | set(self.lr)) - set(stages))
        if unknown:
            raise ConfigError(f"ProgressiveGrowing batch_size/lr name resolutions {unknown} that {type(pl_module).__name__} does not have: use {stages}.")
        datamodule = trainer.datamodule
        if self.batch_size:
            contracts.require(
                datamodule, contracts.GrowingData, "ProgressiveGrowing batch_size",
                "use datamodules.ImageFolderDataModule (or a subclass), or drop batch_size",
            )
        if self.lr and trainer.lr_scheduler_configs:
            raise ConfigError("ProgressiveGrowing lr sets the learning rate per resolution and would fight the lr schedulers: use one of them.")
        if self.lr and pl_module.lr_decay_share() > 0:
            raise ConfigError("ProgressiveGrowing lr sets the learning rate per resolution and the model's lr_decay_fraction rewrites it every "
                              "batch: set model.init_args.lr_decay_fraction: 0, or drop the callback's lr.")
        self.base_batch_size = datamodule.batch_size if isinstance(datamodule, contracts.GrowingData) else None
        self.schedule = GrowthSchedule([r for r in stages if r >= self.start_resolution], self.stable_kimg, self.fade_kimg)
        max_kimg = pl_module.max_kimg
        if max_kimg and max_kimg * 1000 < self.schedule.final_resolution_start():
            phase = self.schedule.phase_at(round(max_kimg * 1000))
            rank_zero_warn(
                f"max_kimg {max_kimg:g} ends the run {'in the fade-in of' if phase.fade else 'at'} {phase.resolution}x{phase.resolution}, before the schedule reaches "
                f"{stages[-1]}x{stages[-1]} at {self.schedule.final_resolution_start() / 1000:g} kimg."
            )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        phase = self.schedule.phase_at(pl_module.images_seen)
        self.phase_index = phase.index
        restored = self._restored_phase
        if restored is not None and restored != (phase.resolution, phase.fade):
            # The checkpoint was written in the previous phase (at a boundary): the transition, with its
            # optimizer reset, is still to come at the first batch.
            previous = [p.index for p in self.schedule.phases if (p.resolution, p.fade) == restored]
            self.phase_index = previous[0] if previous else phase.index
        self._restored_phase = None
        pl_module.set_growth(phase.resolution, phase.alpha(pl_module.images_seen))
        self._serve(trainer, phase.resolution)
        self._announce(pl_module, phase)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.base_lr is None:
            self.base_lr = [group["lr"] for opt in trainer.optimizers for group in opt.param_groups]
        self._set_lr(trainer, self.schedule.phases[self.phase_index].resolution)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_reload_setting(trainer)  # the run may end before the new dataloaders were built

    # Every batch: the phase of images_seen, a transition when it changed, then alpha.

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        phase = self.schedule.phase_at(pl_module.images_seen)
        if phase.index != self.phase_index:
            self.phase_index = phase.index
            if self.reset_optimizers:
                for opt in trainer.optimizers:
                    opt.state.clear()
            self._set_lr(trainer, phase.resolution)
            self._announce(pl_module, phase)
        pl_module.set_growth(phase.resolution, phase.alpha(pl_module.images_seen))
        if self._reload_setting is not None:  # this batch still comes from the old dataloader
            pl_module.request_new_epoch()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        pl_module.log_train({"train/resolution": float(pl_module.current_resolution), "train/alpha": float(pl_module.alpha)})
        # Decided here rather than when the next batch starts: when this batch ends the epoch anyway, the next
        # epoch simply builds the new dataloaders, and no batch is drawn and dropped.
        if self._serve(trainer, self.schedule.phase_at(pl_module.images_seen).resolution):
            self._reload_setting = trainer.reload_dataloaders_every_n_epochs
            trainer.reload_dataloaders_every_n_epochs = 1

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_reload_setting(trainer)  # the new dataloaders are built

    def _restore_reload_setting(self, trainer: L.Trainer) -> None:
        if self._reload_setting is not None:
            trainer.reload_dataloaders_every_n_epochs, self._reload_setting = self._reload_setting, None

    # Helpers.

    def _serve(self, trainer: L.Trainer, resolution: int) -> bool:
        """Point the datamodule at ``resolution``; whether that changes what its dataloader serves."""
        datamodule = trainer.datamodule
        if not isinstance(datamodule, contracts.GrowingData):
            return False
        want = (resolution, self.batch_size.get(resolution, self.base_batch_size))
        if want == self._served:
            return False
        datamodule.set_stage(*want)
        changed = self._served is not None
        self._served = want
        return changed

    def _set_lr(self, trainer: L.Trainer, resolution: int) -> None:
        if not self.lr:
            return  # the optimizers keep their own learning rates
        groups = [group for opt in trainer.optimizers for group in opt.param_groups]
        for group, base in zip(groups, self.base_lr):  # a set lr carries the optimizer's lazy-regularisation correction
            group["lr"] = self.lr[resolution] * lr_ratio(group) if resolution in self.lr else base

    def _announce(self, pl_module: L.LightningModule, phase: Phase) -> None:
        kind = "fading in" if phase.fade else "stable"
        end = "the end" if math.isinf(phase.end) else f"{phase.end / 1000:g} kimg"
        rank_zero_info(f"ProgressiveGrowing: {phase.resolution}x{phase.resolution} {kind} from {phase.start / 1000:g} kimg to {end}.")
        final = pl_module.resolutions[-1]
        if phase.resolution < final and phase.resolution not in self._announced:
            rank_zero_info(
                f"ProgressiveGrowing: samples, sample grids and FID at {phase.resolution}x{phase.resolution} are "
                f"nearest-upsampled to {final}x{final}."
            )
        self._announced.add(phase.resolution)

    # Checkpoints.

    def state_dict(self) -> dict:
        phase = None if self.phase_index is None else self.schedule.phases[self.phase_index]
        return {"phase": None if phase is None else [phase.resolution, phase.fade], "base_lr": self.base_lr, "base_batch_size": self.base_batch_size}

    def load_state_dict(self, state_dict: dict) -> None:
        phase = state_dict.get("phase")
        self._restored_phase = None if phase is None else (int(phase[0]), bool(phase[1]))
        self.base_lr = state_dict.get("base_lr")
        self.base_batch_size = state_dict.get("base_batch_size", self.base_batch_size)
