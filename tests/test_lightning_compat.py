"""The Lightning internals gans relies on (gans/training/lightning_compat.py) still exist and mean what we use them
for: an upgrade of Lightning that changes one fails here, by name."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import ToyDataModule
from gans import GAN
from gans.training import lightning_compat as compat


class Recorder(L.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, bool]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append((compat.logged_batches(trainer), compat.logging_this_batch(trainer)))


def tiny_fit(root: Path, callbacks: list, **trainer_args) -> tuple[GAN, L.Trainer]:
    L.seed_everything(0)
    model = GAN(data_shape=(2,), z_dim=2, g_hidden=(8,), d_hidden=(8,), d_pieces=2, d_input_dropout=0.0, d_dropout=0.0, g_tanh=False)
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=1, callbacks=callbacks, **trainer_args)
    trainer.fit(model, datamodule=ToyDataModule(num_samples=96, batch_size=16))
    return model, trainer


def test_logged_batches_count_batches_and_logging_follows_log_every_n_steps(tmp_path: Path) -> None:
    recorder = Recorder()
    _, trainer = tiny_fit(tmp_path, [recorder], log_every_n_steps=2)
    steps, logging = zip(*recorder.seen)
    assert list(steps) == list(range(6))  # the batches trained before this one, not the 2 optimizer steps per batch
    assert list(logging) == [(i + 1) % 2 == 0 for i in range(6)]
    assert trainer.global_step == 12


def test_a_dropped_batch_can_be_uncounted(tmp_path: Path) -> None:
    _, trainer = tiny_fit(tmp_path, [])
    progress = trainer.fit_loop.epoch_loop.batch_progress
    before = (progress.total.ready, progress.total.processed, progress.current.ready, progress.current.processed)
    compat.uncount_dropped_batch(trainer)
    after = (progress.total.ready, progress.total.processed, progress.current.ready, progress.current.processed)
    assert after == tuple(v - 1 for v in before)


def test_model_checkpoint_internals_save_at_a_moment_of_our_choosing(tmp_path: Path) -> None:
    callback = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="at{kimg:.3f}", auto_insert_metric_name=False, save_last=True, save_top_k=-1, every_n_train_steps=7)
    assert compat.every_n_train_steps(callback) == 7
    assert compat.checkpoint_state_key(callback, monitor=None, mode="min", every_n_train_steps=7) == "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 7}"
    _, trainer = tiny_fit(tmp_path, [callback], enable_checkpointing=True)
    compat.save_checkpoint_now(callback, trainer, {"kimg": torch.tensor(1.25)})
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert "at1.250.ckpt" in names and "last.ckpt" in names
    assert callback.last_model_path.endswith("last.ckpt")


def test_ddp_wrappers_can_be_told_a_backward_is_coming() -> None:
    assert list(inspect.signature(compat._prepare_for_backward).parameters)[:2] == ["model", "output"]
