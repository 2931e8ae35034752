"""When a callback acts: every N thousand training images, counted in whole images.

Counting in images (integers) rather than kimg (floats) matters: ``9 * 0.128`` is
``1.1520000000000001``, so a float schedule would wait one extra batch past 1.152 kimg.

Also what the metrics measured on that schedule share: :class:`KimgMetric`, and :class:`EvaluationBar`, the progress
bar of their passes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from tqdm import tqdm

from gans.errors import ConfigError
from gans.nn.basic import eval_mode
from gans.tools.pictures import logger_step
from gans.training import distributed


class KimgSchedule:
    """Fires each time ``images_seen`` passes a multiple of ``every_kimg`` thousand images; 0 = never."""

    def __init__(self, every_kimg: float) -> None:
        self.every_images = round(every_kimg * 1000)
        self.next_images: float | None = None  # saved in the owner's checkpoint state

    def start(self, images_seen: int) -> None:
        """Set the first point after ``images_seen`` unless a checkpoint restored one."""
        if self.next_images is None:
            self.next_images = self._after(images_seen)

    def due(self, images_seen: int) -> bool:
        """Whether a point was passed since the last time it fired (then the next point is set)."""
        if self.every_images <= 0 or images_seen < self.next_images:
            return False
        self.next_images = self._after(images_seen)
        return True

    def _after(self, images_seen: int) -> float:
        return (images_seen // self.every_images + 1) * self.every_images if self.every_images > 0 else math.inf


@runtime_checkable
class SavesBeforeEvaluation(Protocol):
    """A checkpoint callback that writes its end-of-fit checkpoint when asked, before the end-of-fit evaluations
    (:class:`callbacks.KimgCheckpoint`), and again at its own ``on_train_end``."""

    def save_before_evaluation(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None: ...


class KimgMetric(L.Callback):
    """A metric measured every ``every_kimg`` thousand images, at the start (``at_start``, only a fresh run) and
    at the end of fit (``at_end``, unless it was just measured); :class:`callbacks.FID`, :class:`callbacks.PPL` and
    :class:`callbacks.ConditionalAccuracy`. A negative ``every_kimg`` is refused here, naming the subclass.

    Subclasses write :meth:`evaluate`, which ends with :meth:`record`: the values join ``history`` (saved in
    checkpoints with the schedule, so a resumed run keeps its curve and measures at the same points), the loggers and
    ``trainer.callback_metrics``.

    The end-of-fit evaluation comes after the end-of-fit checkpoint (:class:`SavesBeforeEvaluation`), whatever the order
    of the callbacks: interrupting it (it can take long on a CPU) leaves the final weights, and the resume command.
    """

    def __init__(self, every_kimg: float, at_start: bool, at_end: bool) -> None:
        super().__init__()
        if every_kimg < 0:
            raise ConfigError(f"{type(self).__name__} every_kimg must be >= 0 (0 = only at start/end), got {every_kimg}.")
        self.every_kimg = every_kimg
        self.at_start = at_start
        self.at_end = at_end
        self.history: list[dict[str, float]] = []  # one entry per evaluation, saved in checkpoints
        self.schedule = KimgSchedule(every_kimg)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        raise NotImplementedError

    @staticmethod
    @contextmanager
    def measuring(trainer: L.Trainer, pl_module: L.LightningModule) -> Iterator[None]:
        """Where :meth:`evaluate` samples: the module in eval mode, its buffers averaged over ranks so that every rank
        samples one network (each rank's own put back afterwards), and the global RNG forked: training goes on as it
        would without the metric."""
        device = pl_module.device
        with (torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), eval_mode(pl_module),
              distributed.buffers_averaged(trainer.strategy, pl_module)):
            yield

    def record(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        values: dict[str, float],
        summary: str,
        details: str,
        also_logged: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Keep ``values`` (by metric name, e.g. ``{"metrics/fid": 12.3}``) at the current kimg and report them; returns them.

        They join ``history`` as ``{"train/kimg": kimg, **values}``, are logged with ``train/kimg`` through every logger at
        the logger step (a dashboard plots them against kimg), and are put in ``trainer.callback_metrics`` for
        ``ModelCheckpoint(monitor=...)``; rank 0 prints ``"<summary> at <kimg> kimg (<details>)"``. ``also_logged``:
        values logged and offered the same way but not kept in the history (ConditionalAccuracy's real-image ceiling).
        """
        kimg = pl_module.images_seen / 1000.0
        self.history.append({"train/kimg": kimg, **values})
        logged = {**values, **(also_logged or {})}
        for logger in trainer.loggers:
            logger.log_metrics({**logged, "train/kimg": kimg}, step=logger_step(trainer))
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in logged.items()})
        rank_zero_info(f"{summary} at {kimg:g} kimg ({details})")
        return values

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.schedule.start(pl_module.images_seen)
        if self.at_start and pl_module.images_seen == 0 and not self.history:
            self.evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.schedule.due(pl_module.images_seen):
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        kimg = pl_module.images_seen / 1000.0
        if self.at_end and (not self.history or self.history[-1]["train/kimg"] != kimg):
            for checkpoint in trainer.checkpoint_callbacks:
                if isinstance(checkpoint, SavesBeforeEvaluation):
                    checkpoint.save_before_evaluation(trainer, pl_module)
            self.evaluate(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "next_images": self.schedule.next_images}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
        self.schedule.next_images = state_dict.get("next_images")


class EvaluationBar(tqdm):
    """The progress of one pass of an evaluation (FID's feature extraction, PPL's paths, ConditionalAccuracy's classifier
    and scoring): count/total, rate and ETA on stderr, drawn on global rank 0 only and only while the trainer shows a
    progress bar (``enable_progress_bar``); removed when done (the metric's summary line follows).

    ``update(n)`` takes what this rank did: under several ranks, each doing its block of the work, the bar counts
    ``n * world_size`` (``per_rank=False``: work done by rank 0 alone, e.g. training a classifier), so its total is
    the whole evaluation's.
    """

    def __init__(self, trainer: L.Trainer, total: int, description: str, unit: str = "img", per_rank: bool = True) -> None:
        bar = trainer.progress_bar_callback
        shown = trainer.is_global_zero and bar is not None and getattr(bar, "is_enabled", True)  # Lightning's bars have is_enabled
        self.ranks = trainer.world_size if per_rank else 1
        super().__init__(total=total, desc=description, unit=unit, disable=not shown, leave=False, dynamic_ncols=True, file=sys.stderr)

    def update(self, n: float = 1) -> bool | None:
        return super().update(min(n * self.ranks, self.total - self.n))  # rank 0's block may be the larger by one
