"""Every use of a Lightning internal, in one place (Lightning 2.5/2.6), for what its public API does not offer.

Manual optimization in phases needs a few things Lightning keeps to itself: when its loggers will write this
batch's metrics and at which step, un-counting a batch that a cut-short epoch dropped, saving a
:class:`~lightning.pytorch.callbacks.ModelCheckpoint` at a moment of our choosing (kimg, not steps or epochs), and
telling a DDP wrapper that a backward is coming. ``tests/test_lightning_compat.py`` checks each against the
installed Lightning, so an upgrade that moves one fails there, by name, instead of somewhere in a training run.
Where a public API exists it is used instead (``strategy.reduce_boolean_decision``, ``strategy.broadcast``,
``trainer.log_every_n_steps``, ``ModelCheckpoint.last_model_path`` ...).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.overrides.distributed import (
    prepare_for_backward as _prepare_for_backward,
)
from torch import Tensor


def logging_this_batch(trainer: L.Trainer) -> bool:
    """Whether Lightning's loggers write the metrics logged during the current training batch (every
    ``log_every_n_steps`` batches, and when the run stops): the trainer's logger connector decides."""
    return bool(trainer._logger_connector.should_update_logs)


def logged_batches(trainer: L.Trainer) -> int:
    """The step at which Lightning's loggers put the current batch's scalars: the batches trained so far (not
    ``trainer.global_step``, which counts the optimizer steps of every phase)."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def uncount_dropped_batch(trainer: L.Trainer) -> None:
    """Lightning counts the batch dropped by ``on_train_batch_start`` returning -1 as ready and processed though it
    never ran; left so, its restart logic would take every later checkpoint for one saved mid-batch."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    for counter in (progress.total, progress.current):
        counter.ready -= 1
        counter.processed -= 1


def every_n_train_steps(callback: ModelCheckpoint) -> int:
    """A ModelCheckpoint's ``every_n_train_steps`` setting (stored privately)."""
    return int(getattr(callback, "_every_n_train_steps", 0) or 0)


def save_checkpoint_now(callback: ModelCheckpoint, trainer: L.Trainer, extra_candidates: dict[str, Tensor], top_k: bool = True) -> None:
    """Save as ``callback`` would at one of its own moments: its top-k (by ``monitor``, or the newest; not with
    ``top_k=False``) and ``last``, with ``extra_candidates`` available to its ``filename`` format (e.g. ``{kimg}``)."""
    candidates = {**ModelCheckpoint._monitor_candidates(callback, trainer), **extra_candidates}
    if top_k:
        callback._save_topk_checkpoint(trainer, candidates)
    callback._save_last_checkpoint(trainer, candidates)


def checkpoint_state_key(callback: ModelCheckpoint, **settings: Any) -> str:
    """The key under which Lightning stores a checkpoint callback's state: its class and ``settings``."""
    return callback._generate_state_key(**settings)


def prepare_for_backward(wrapper: Any, loss: Tensor) -> None:
    """Tell a DistributedDataParallel wrapper whose forward ran outside its own ``forward`` call (our networks are
    wrapped per phase) that the next backward computes its gradients, so its reducer expects them."""
    _prepare_for_backward(wrapper, loss)
