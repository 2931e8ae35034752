"""callbacks.EMA: the half-life in images, ramp-up, sampling from the average, checkpoints."""

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from callbacks import EMA
from callbacks.ema import ema_beta, ema_update_
from datamodules import ToyDataModule
from gans import GAN


def test_beta_halves_the_weight_of_the_past_every_half_life() -> None:
    # 10 kimg half-life at batch 32: after 10,000 / 32 steps the old weights count half.
    beta = ema_beta(32, 10_000)
    assert beta ** (10_000 / 32) == pytest.approx(0.5)
    assert ema_beta(64, 10_000) == pytest.approx(beta**2)  # twice the batch, twice the decay per step


def test_update_is_a_lerp_of_parameters_and_a_copy_of_buffers() -> None:
    source, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        source.weight.fill_(2.0)
        ema.weight.fill_(0.0)
        source.running_mean.fill_(5.0)
    ema_update_(ema, source, beta=0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 0.5))  # 0.75 * 0 + 0.25 * 2
    assert torch.equal(ema.running_mean, source.running_mean)


def toy_gan() -> GAN:
    return GAN(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, g_tanh=False, optimizer="adam", lr_g=1e-2, lr_d=1e-2)


def fit(root: Path, max_epochs: int, ema: EMA, ckpt_path: str | None = None) -> tuple[GAN, L.Trainer]:
    L.seed_everything(7)
    model = toy_gan()
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True,
                            callbacks=[ema, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)])
    trainer.fit(model, datamodule=ToyDataModule(num_samples=512, batch_size=64), ckpt_path=ckpt_path, weights_only=True)
    return model, trainer


def test_ema_tracks_the_generator_and_is_used_for_sampling(tmp_path: Path) -> None:
    model, trainer = fit(tmp_path, max_epochs=2, ema=EMA(half_life_kimg=0.2))
    ema, g = model.generator_ema, model.generator
    assert not any(p.requires_grad for p in ema.parameters())
    distance = sum((a - b).norm() for a, b in zip(ema.parameters(), g.parameters()))
    assert 0 < distance < sum(b.norm() for b in g.parameters())  # averaged, yet close to G
    z = torch.randn(16, 4)
    assert torch.equal(model.sample(16, z=z), ema(z))
    assert not torch.equal(model.sample(16, z=z), g(z))
    assert trainer.callback_metrics["train/ema_beta"] == pytest.approx(ema_beta(64, 200))


def test_rampup_caps_the_half_life_early(tmp_path: Path) -> None:
    _, trainer = fit(tmp_path, max_epochs=1, ema=EMA(half_life_kimg=10, rampup=0.05))
    # 8 batches of 64: at the last G step 512 images were seen, so the half-life is 0.05 * 512 images.
    assert trainer.callback_metrics["train/ema_beta"] == pytest.approx(ema_beta(64, 0.05 * 512))


def test_ema_is_saved_and_a_resumed_run_matches(tmp_path: Path) -> None:
    straight, _ = fit(tmp_path / "a", max_epochs=2, ema=EMA(half_life_kimg=0.5))
    fit(tmp_path / "b", max_epochs=1, ema=EMA(half_life_kimg=0.5))
    resumed, _ = fit(tmp_path / "b", max_epochs=2, ema=EMA(half_life_kimg=0.5), ckpt_path=str(tmp_path / "b" / "ckpt" / "last.ckpt"))
    for a, b in zip(straight.generator_ema.state_dict().values(), resumed.generator_ema.state_dict().values()):
        assert torch.equal(a, b)
    # Loading for sampling needs no callback: the checkpoint brings the average along.
    loaded = GAN.load_from_checkpoint(tmp_path / "a" / "ckpt" / "last.ckpt", weights_only=True)
    z = torch.randn(8, 4)
    assert torch.equal(loaded.sample(8, z=z), straight.generator_ema(z))


def test_bad_half_life_is_rejected() -> None:
    with pytest.raises(ValueError, match="half_life_kimg"):
        EMA(half_life_kimg=0)
