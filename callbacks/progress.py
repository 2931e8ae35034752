"""The training progress bar: images toward ``max_kimg`` (total and ETA), with the latest losses every few seconds.

Lightning's :class:`~lightning.pytorch.callbacks.TQDMProgressBar` counts the batches of an epoch. A run here ends at the
model's ``max_kimg`` (the configs set ``max_epochs: -1``), so its epochs say neither how far the run is nor when it
ends; and the module logs only on the trainer's logging steps (:meth:`gans.training.core.AdversarialModule.log_train`),
so Lightning's bar shows the losses of the last logging step. :class:`KimgProgressBar` is Lightning's bar with:

- when the module has a ``max_kimg`` (> 0) and ``trainer.max_steps`` is not set, one bar for the whole run counting
  real images (all ranks) toward ``max_kimg``: ``Epoch 3:  45%|####   | 4.61k/10.2k [00:12<00:15, 384img/s, ...]``.
  A resumed run's bar starts at the resumed position, so its rate and ETA count this run's images only. Otherwise
  (no ``max_kimg``, a module without one, or ``max_steps`` set) the batches of each epoch, as Lightning's;
- the values the module logged with ``prog_bar=True`` in their latest version, not the last logging step's: the
  module keeps them every batch as they are (detached tensors,
  :attr:`gans.training.core.AdversarialModule.progress_bar_values`) and the bar turns them into numbers once every
  ``metrics_interval`` seconds (one device read on a GPU), not every batch;
- the bar drawn at most every 0.1 s (tqdm's ``mininterval``), whatever the batch rate.

The ``lightning`` command (:mod:`gans.cli`) uses it unless the config names a progress bar of its own
(``--trainer.enable_progress_bar=false`` turns every bar off); with a plain ``Trainer`` pass it in ``callbacks``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from torch import Tensor

from gans.errors import ConfigError
from gans.training import contracts


def as_numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """``values`` (numbers and 0-dim tensors) as floats, in their order; the tensors are read from the device at once."""
    tensors = {name: value for name, value in values.items() if isinstance(value, Tensor)}
    numbers = {name: float(value) for name, value in values.items() if name not in tensors}
    if tensors:
        device = next(iter(tensors.values())).device
        read = torch.stack([t.detach().float().reshape(()).to(device) for t in tensors.values()]).tolist()
        numbers.update(zip(tensors, read))
    return {name: numbers[name] for name in values}


class KimgProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counting images toward the model's ``max_kimg``, showing the latest losses (module docstring)."""

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False, metrics_interval: float = 2.0) -> None:
        """
        Args:
            refresh_rate: draw at most every this many batches (and at most every 0.1 s); 0 = no bar.
            process_position: as Lightning's ``TQDMProgressBar``.
            leave: as Lightning's: keep each epoch's bar (when counting batches; a bar counting images is one for the run).
            metrics_interval: seconds between two reads of the values shown next to the bar (losses, kimg).
        """
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        if not metrics_interval >= 0:
            raise ConfigError(f"KimgProgressBar metrics_interval is in seconds, >= 0; got {metrics_interval}.")
        self.metrics_interval = metrics_interval
        self.target_images: int | None = None  # images at max_kimg while the bar counts images, else None
        self._metrics: dict[str, Any] | None = None
        self._metrics_read_at = -math.inf
        self._shown: dict[str, Any] | None = None
        self._drawn_at = -math.inf

    @staticmethod
    def images_to_count(trainer: L.Trainer, pl_module: L.LightningModule) -> int | None:
        """The images at ``max_kimg`` when the run ends by kimg, else None (the bar counts batches)."""
        if not isinstance(pl_module, contracts.ProgressReporter) or not pl_module.max_kimg > 0:
            return None
        if trainer.max_steps is not None and trainer.max_steps >= 0:
            return None  # max_steps may end the run first: Lightning's count
        return round(pl_module.max_kimg * 1000)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._metrics = self._shown = None
        self.target_images = self.images_to_count(trainer, pl_module)
        if self.target_images is not None:
            bar = self.train_progress_bar
            bar.unit, bar.unit_scale = "img", True
            bar.reset(total=self.target_images)  # the clock starts here
            bar.initial = bar.n = bar.last_print_n = min(pl_module.images_seen, self.target_images)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self.target_images is None:
            return super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch}", refresh=False)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self._train_progress_bar
        if bar is None or bar.disable or self.is_disabled:
            return
        if self.target_images is not None:
            bar.n = min(pl_module.images_seen, self.target_images)
        else:
            bar.n = batch_idx + 1
        metrics = self.get_metrics(trainer, pl_module)
        if metrics is not self._shown:  # read again
            bar.set_postfix(metrics, refresh=False)
            self._shown = metrics
        now = time.monotonic()
        if bar.n == bar.total or ((batch_idx + 1) % self.refresh_rate == 0 and now - self._drawn_at >= bar.mininterval):
            bar.refresh()
            self._drawn_at = now

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.target_images is None:
            return super().on_train_epoch_end(trainer, pl_module)
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """Lightning's items (``v_num``, values logged with ``prog_bar``) with the module's latest values on top, read
        at most every ``metrics_interval`` seconds (the same dict is returned in between)."""
        now = time.monotonic()
        if self._metrics is None or now - self._metrics_read_at >= self.metrics_interval:
            latest = as_numbers(pl_module.progress_bar_values) if isinstance(pl_module, contracts.ProgressReporter) else {}
            self._metrics = {**super().get_metrics(trainer, pl_module), **latest}
            self._metrics_read_at = now
        return self._metrics


def replace_default_bar(trainer: L.Trainer, configured: Iterable[Callback]) -> None:
    """Put a :class:`KimgProgressBar` in place of the bar Lightning added by default, unless the bar is one of the
    ``configured`` callbacks (the user's choice) or there is none (``enable_progress_bar=False``)."""
    bar = trainer.progress_bar_callback
    if bar is None or any(callback is bar for callback in configured):
        return
    trainer.callbacks[trainer.callbacks.index(bar)] = KimgProgressBar()
