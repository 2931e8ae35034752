"""A resumed run goes on logging to the same W&B run: the run id travels in the checkpoint.

:class:`WandbRunId` writes the id of the trainer's first ``WandbLogger`` as
``checkpoint["loggers"]["wandb_run_id"]``; :func:`wandb_run_id` reads it back. The ``lightning``
command does both by itself (:class:`gans.cli.GANCLI` adds the callback whenever the trainer
logs to W&B, and on ``fit --ckpt_path`` passes the saved id as the logger's ``id``), so configs
need not list it. The W&B run must be known before training starts (Lightning starts it before
it reads the checkpoint), which is why the id is read by whoever builds the logger. From Python::

    logger = WandbLogger(project="gans", id=wandb_run_id(ckpt))  # None: a new run
    trainer = L.Trainer(logger=logger, callbacks=[WandbRunId(), ModelCheckpoint(save_last=True)])
    trainer.fit(model, datamodule=data, ckpt_path=ckpt)

``WandbLogger`` passes ``resume="allow"`` by default: an id W&B does not know starts a run with
that id. Offline, the resumed part is a second ``offline-run-*-<id>`` folder with the same run id;
sync both. Metrics are plotted against ``trainer/global_step``, which continues from the checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

CHECKPOINT_KEY = "loggers"


class WandbRunId(L.Callback):
    """Saves the W&B run id of the trainer's first ``WandbLogger`` in every checkpoint (nothing without one)."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
        run_id = None if logger is None else logger.version
        if run_id:
            checkpoint.setdefault(CHECKPOINT_KEY, {})["wandb_run_id"] = str(run_id)


def wandb_run_id(ckpt_path: str | os.PathLike | None) -> str | None:
    """The W&B run id saved in the checkpoint at ``ckpt_path`` by :class:`WandbRunId`, else None.

    A path that is not a local file (``"last"``, a URL) or a checkpoint without the id gives None,
    and so does one that cannot be read safely (with a warning; Lightning reports real problems
    when it loads the checkpoint).
    """
    if ckpt_path is None or not os.path.isfile(ckpt_path):
        return None
    try:
        # mmap: tensors are not read from disk, only the small entries are.
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - an unreadable checkpoint only means a new W&B run
        rank_zero_warn(f"Could not read the W&B run id from {ckpt_path} ({err}); logging to a new W&B run.")
        return None
    run_id = checkpoint.get(CHECKPOINT_KEY, {}).get("wandb_run_id") if isinstance(checkpoint, dict) else None
    return str(run_id) if run_id else None
