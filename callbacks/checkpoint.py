"""Checkpoints every N thousand training images, and at the end of training.

Lightning's ``ModelCheckpoint(every_n_train_steps=N)`` tests ``trainer.global_step % N == 0`` after a
batch, and a GAN's ``global_step`` counts the optimizer steps taken inside ``training_step``: it moves by
2 per batch with one D and one G step (an odd N never fires) and irregularly with ``n_critic`` > 1,
while the steps of callbacks (lazy regularisation) are not counted at all, so saves are skipped or
come at a rate that depends on the recipe. This callback
counts what a GAN run is measured in, real images shown (``pl_module.images_seen``, the unit of
``train/kimg``), saves whenever a multiple of ``every_kimg`` has been passed, and saves once more when
training ends, so ``last.ckpt`` always holds the final weights.

The end-of-fit save comes before the end-of-fit evaluations of :class:`callbacks.schedule.KimgMetric` (FID, PPL,
conditional accuracy: minutes, an hour on a CPU), whatever the order of the callbacks, so that interrupting one leaves
the final weights; once they are done the same files are written again, holding their results. The default file
name, ``kimg{kimg:09.3f}``, counts single images, so two saves never share a name whatever ``every_kimg`` is.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.schedule import KimgSchedule
from gans.errors import ConfigError
from gans.training import lightning_compat


class KimgCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that saves every ``every_kimg`` thousand images and at the end of training.

    Every other argument is ``ModelCheckpoint``'s (``dirpath``, ``save_last``, ``save_top_k``, ``monitor``, ...).
    File names may use ``{kimg}`` (thousands of images at the save), as in the default ``kimg{kimg:09.3f}``, and
    ``{images}`` (images seen).
    """

    def __init__(self, every_kimg: float = 100.0, filename: str | None = "kimg{kimg:09.3f}", auto_insert_metric_name: bool = False, **kwargs: Any) -> None:
        """
        Args:
            every_kimg: thousands of real images between checkpoints (all ranks together); 0 = only at the end.
            filename: checkpoint file name pattern; ``{kimg}`` is the thousands of images seen, ``{images}`` the images.
                The default's three decimals tell any two saves apart (a pattern that rounds more, e.g.
                ``{kimg:.1f}``, gives two saves within 0.1 kimg one name, and the second replaces the first).
            auto_insert_metric_name: ModelCheckpoint's ``{kimg}`` -> ``kimg=...`` rewriting; off, so that the
                default name is ``kimg00010.000.ckpt`` (explicit here: the CLI passes every ModelCheckpoint default).
            **kwargs: the other arguments of :class:`lightning.pytorch.callbacks.ModelCheckpoint`
                (not ``every_n_train_steps``, ``every_n_epochs`` or ``train_time_interval``: this callback decides when).
        """
        for trigger in ("every_n_train_steps", "every_n_epochs", "train_time_interval"):
            if kwargs.get(trigger):
                raise ConfigError(f"KimgCheckpoint saves every every_kimg thousand images; remove {trigger} (it counts something else).")
        if every_kimg < 0:
            raise ConfigError(f"KimgCheckpoint every_kimg must be >= 0 (0 = only at the end), got {every_kimg}.")
        super().__init__(filename=filename, auto_insert_metric_name=auto_insert_metric_name, every_n_train_steps=0, every_n_epochs=0, **kwargs)
        self.every_kimg = every_kimg
        self.schedule = KimgSchedule(every_kimg)
        self._saved_at_images: int | None = None
        self._saved_before_evaluation = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.schedule.start(pl_module.images_seen)

    @property
    def state_key(self) -> str:
        return lightning_compat.checkpoint_state_key(self, monitor=self.monitor, mode=self.mode, every_kimg=self.every_kimg)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.schedule.due(pl_module.images_seen) and self._may_save(trainer):
            self._save(trainer, pl_module)

    def save_before_evaluation(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The end-of-fit checkpoint, saved before an end-of-fit evaluation (:class:`callbacks.schedule.KimgMetric` calls
        this) so that interrupting it leaves the final weights; :meth:`on_train_end` writes the same files again once
        the evaluations are done. Ranked by ``monitor``, only ``last`` is written now (the metric is not measured yet)."""
        if self._saved_at_images != pl_module.images_seen and self._may_save(trainer) and (self.monitor is None or self.save_last):
            self._save(trainer, pl_module, top_k=self.monitor is None)
            self._saved_before_evaluation = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (self._saved_at_images != pl_module.images_seen or self._saved_before_evaluation) and self._may_save(trainer):
            self._save(trainer, pl_module)
        self._saved_before_evaluation = False

    @staticmethod
    def _may_save(trainer: L.Trainer) -> bool:
        """ModelCheckpoint's conditions, without its "not at the same global_step twice" one (a batch whose
        updates were all skipped leaves global_step where it was, and images still moved on)."""
        from lightning.pytorch.trainer.states import TrainerFn

        return not trainer.fast_dev_run and not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: epochs are not this callback's unit."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: a GAN run has no validation loop to follow."""

    def _save(self, trainer: L.Trainer, pl_module: L.LightningModule, top_k: bool = True) -> None:
        candidates = {"kimg": torch.tensor(pl_module.images_seen / 1000.0, dtype=torch.float64), "images": torch.tensor(pl_module.images_seen)}
        lightning_compat.save_checkpoint_now(self, trainer, candidates, top_k=top_k)
        self._saved_at_images = pl_module.images_seen

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "next_images": self.schedule.next_images}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.schedule.next_images = state_dict.get("next_images")
