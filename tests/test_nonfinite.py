"""The non-finite guard: a NaN loss skips its update; K in a row stop training with the last checkpoint named."""

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import ToyDataModule
from gans import GAN
from gans.errors import NonFiniteLossError


class NaNAfter(GAN):
    """A toy GAN whose D loss turns NaN on the batches in ``nan_batches``."""

    def __init__(self, nan_batches: set[int], **kwargs) -> None:
        super().__init__(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, d_input_dropout=0.0,
                         d_dropout=0.0, g_tanh=False, optimizer="adam", lr_g=1e-3, lr_d=1e-3, **kwargs)
        self.nan_batches = nan_batches
        self.d_snapshots: list[dict[str, torch.Tensor]] = []

    def discriminator_loss(self, real, fake, labels=None):
        loss = super().discriminator_loss(real, fake, labels)
        return loss * float("nan") if self.trainer.fit_loop.total_batch_idx in self.nan_batches else loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.d_snapshots.append({k: v.clone() for k, v in self.discriminator.state_dict().items()})


def test_a_nan_loss_skips_the_update_and_training_goes_on(tmp_path: Path) -> None:
    L.seed_everything(0)
    model = NaNAfter(nan_batches={3, 4})
    with pytest.warns(UserWarning, match="Non-finite loss"):
        quiet_trainer(tmp_path, max_steps=16).fit(model, datamodule=ToyDataModule(num_samples=512, batch_size=64))
    snaps = model.d_snapshots
    for skipped in (3, 4):  # D unchanged by the NaN batches, and never NaN
        assert all(torch.equal(snaps[skipped][k], snaps[skipped - 1][k]) for k in snaps[0])
    assert not all(torch.equal(snaps[5][k], snaps[4][k]) for k in snaps[0]), "training did not resume after the NaNs"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.nonfinite_steps == 2 and model.nonfinite_streak == 0


def test_too_many_nans_in_a_row_stop_with_the_last_checkpoint(tmp_path: Path) -> None:
    L.seed_everything(0)
    model = NaNAfter(nan_batches=set(range(6, 100)), max_nonfinite_steps=3)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_last=True)
    fit = quiet_trainer(tmp_path, max_steps=100, enable_checkpointing=True, callbacks=[checkpoints])
    with pytest.raises(NonFiniteLossError, match=r"3 non-finite losses in a row.*Last good checkpoint: .*last\.ckpt"):
        with pytest.warns(UserWarning):
            fit.fit(model, datamodule=ToyDataModule(num_samples=512, batch_size=64))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.images_seen == 8 * 64  # batches 0-5 trained, then 6, 7 and 8 were NaN


def test_max_nonfinite_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_nonfinite_steps"):
        NaNAfter(nan_batches=set(), max_nonfinite_steps=0)


def test_fused_optimizers_skip_on_the_device_without_reading_the_flag(tmp_path: Path) -> None:
    """torch's fused Adam takes the guard's flag as ``found_inf`` (the CUDA default; fused kernels exist on the CPU
    too): the NaN batches leave D and Adam's step count untouched, and no update reads the flag on the host."""
    L.seed_everything(0)
    model = NaNAfter(nan_batches={3, 4}, fused_optimizers=True)
    host_reads = []
    step = type(model)._step

    def counting_step(self, opt, found):
        step(self, opt, found)
        host_reads.append(self._verdict_on_host)

    model._step = counting_step.__get__(model)
    with pytest.warns(UserWarning, match="Non-finite loss"):
        quiet_trainer(tmp_path, max_steps=16).fit(model, datamodule=ToyDataModule(num_samples=512, batch_size=64))
    opt_d, _ = model.optimizers()
    assert all(group["fused"] for group in opt_d.param_groups)
    assert not any(host_reads)
    snaps = model.d_snapshots
    for skipped in (3, 4):
        assert all(torch.equal(snaps[skipped][k], snaps[skipped - 1][k]) for k in snaps[0])
    assert not all(torch.equal(snaps[5][k], snaps[4][k]) for k in snaps[0])
    assert all(int(state["step"]) == 6 for state in opt_d.state.values())  # 8 batches, 2 skipped
    assert model.nonfinite_steps == 2 and model.nonfinite_streak == 0


def test_a_streak_read_only_at_the_epoch_end_still_stops_training(tmp_path: Path) -> None:
    """With the flag taken on the device (fused optimizers) and no logging step in the epoch, the counters are
    read at the epoch end: a streak that reached the limit and ended meanwhile still stops training."""
    L.seed_everything(0)
    model = NaNAfter(nan_batches={2, 3, 4}, max_nonfinite_steps=3, fused_optimizers=True)
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=2, log_every_n_steps=1000)
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
        trainer.fit(model, datamodule=ToyDataModule(num_samples=512, batch_size=64))
    assert model.images_seen == 8 * 64  # the first epoch ran to its end; the second never started
    assert all(torch.isfinite(p).all() for p in model.parameters())
