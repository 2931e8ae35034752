"""A run interrupted at a checkpoint and resumed ends exactly where an uninterrupted run ends."""

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import ToyDataModule
from gans import DCGAN, GAN, WGAN
from gans.errors import ConfigError


def make_model(cls):
    # Dropout in D and the WGAN schedule make the outcome depend on RNG and progress counters.
    common = dict(data_shape=(2,), z_dim=4, g_tanh=False) if cls is GAN else dict(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4)
    if cls is GAN:
        return GAN(**common, g_hidden=(16,), d_hidden=(16,), d_pieces=2, d_input_dropout=0.1, d_dropout=0.1, optimizer="adam", lr_g=1e-3, lr_d=1e-3)
    return WGAN(**common, n_critic_boost=3, boost_first_g_steps=2, n_critic=2)


def make_data(cls):
    if cls is GAN:
        return ToyDataModule(num_samples=512, batch_size=64)
    images = torch.rand(96, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.zeros(96)), batch_size=16, shuffle=True)
    return loader


def fit(cls, root: Path, max_epochs: int, ckpt_path: str | None = None):
    L.seed_everything(123)
    model = make_model(cls)
    trainer = quiet_trainer(
        root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)],
    )
    data = make_data(cls)
    if isinstance(data, L.LightningDataModule):
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    else:
        trainer.fit(model, train_dataloaders=data, ckpt_path=ckpt_path, weights_only=True)
    model.next_draw = torch.randn(4)  # where the global RNG stands when training ends
    return model, trainer


@pytest.mark.parametrize("cls", [GAN, WGAN])
def test_resume_continues_identically(tmp_path: Path, cls) -> None:
    straight, straight_trainer = fit(cls, tmp_path / "straight", max_epochs=3)
    _, first = fit(cls, tmp_path / "resumed", max_epochs=1)
    resumed, resumed_trainer = fit(cls, tmp_path / "resumed", max_epochs=3, ckpt_path=str(tmp_path / "resumed" / "ckpt" / "last.ckpt"))

    assert first.global_step > 0
    assert resumed_trainer.global_step == straight_trainer.global_step
    assert (resumed.images_seen, resumed.g_steps, resumed.d_steps_since_g) == (straight.images_seen, straight.g_steps, straight.d_steps_since_g)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), f"{name} differs after resume"
    for opt_a, opt_b in zip(straight_trainer.optimizers, resumed_trainer.optimizers):
        for state_a, state_b in zip(opt_a.state_dict()["state"].values(), opt_b.state_dict()["state"].values()):
            for key in state_a:
                assert torch.equal(torch.as_tensor(state_a[key]), torch.as_tensor(state_b[key])), key
    # The RNG stream continues where the uninterrupted run's does.
    assert torch.equal(straight.next_draw, resumed.next_draw)


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    fit(WGAN, tmp_path, max_epochs=1)
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"written by gans\.models\.classic\.wgan\.WGAN, not gans\.models\.classic\.dcgan\.DCGAN"):
        DCGAN.load_from_checkpoint(ckpt, img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, weights_only=True)
    with pytest.raises(ConfigError, match="has shape"):
        WGAN.load_from_checkpoint(ckpt, img_resolution=16, img_channels=1, z_dim=4, ngf=8, ndf=4, weights_only=True)
    loaded = WGAN.load_from_checkpoint(ckpt, weights_only=True)
    assert loaded.g_steps > 0


def fit_with_machinery(root: Path, mnist_root: Path, max_epochs: int, ckpt_path: str | None = None):
    """DCGAN under fp16 with a GradScaler, lazy R1 + path length, EMA with ramp-up and FID: every piece of
    state a resume must restore."""
    from helpers import TinyFeatures
    from lightning.pytorch.plugins import MixedPrecision

    from callbacks import EMA, FID
    from datamodules import MNISTDataModule

    L.seed_everything(7)
    model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8, r1_gamma=1.0, r1_interval=2, pl_weight=2.0, pl_interval=2)
    callbacks = [
        EMA(half_life_kimg=0.05, rampup=0.5),
        FID(every_kimg=0.048, num_samples=8, num_real=16, feature_extractor=TinyFeatures(), at_end=False, cache_dir=str(root / "fid")),
        ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0),
    ]
    scaler = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3))
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True, callbacks=callbacks, plugins=[scaler])
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    model.next_draw = torch.randn(4)
    return model, trainer, callbacks


def test_resume_restores_callbacks_scaler_and_ema(tmp_path: Path, mnist_root: Path) -> None:
    straight, straight_trainer, (ema_a, fid_a, _) = fit_with_machinery(tmp_path / "straight", mnist_root, max_epochs=3)
    fit_with_machinery(tmp_path / "resumed", mnist_root, max_epochs=1)
    ckpt = tmp_path / "resumed" / "ckpt" / "last.ckpt"
    resumed, resumed_trainer, (ema_b, fid_b, _) = fit_with_machinery(tmp_path / "resumed", mnist_root, max_epochs=3, ckpt_path=str(ckpt))

    assert any(k.startswith("generator_ema.") for k in straight.state_dict())
    for name, value in straight.state_dict().items():  # G, D and the EMA generator, batch-norm statistics too
        assert torch.equal(value, resumed.state_dict()[name]), f"{name} differs after resume"
    assert resumed.images_seen == straight.images_seen == 3 * 4 * 16
    scaler_a, scaler_b = (t.precision_plugin.scaler for t in (straight_trainer, resumed_trainer))
    assert scaler_a.get_scale() == scaler_b.get_scale() and scaler_a.state_dict() == scaler_b.state_dict()
    saved = torch.load(ckpt, weights_only=True)["MixedPrecision"]
    assert (saved["scale"], saved["_growth_tracker"]) != (2.0**10, 0)  # the scaler had moved: restoring it mattered
    assert straight.pl_mean > 0  # compared with the whole state dict above
    assert fid_a.history == fid_b.history and len(fid_b.history) == 4  # at 0.048, 0.096, 0.144, 0.192 kimg
    for opt_a, opt_b in zip(straight_trainer.optimizers, resumed_trainer.optimizers):
        assert [g["lr"] for g in opt_a.param_groups] == [g["lr"] for g in opt_b.param_groups]
        for state_a, state_b in zip(opt_a.state_dict()["state"].values(), opt_b.state_dict()["state"].values()):
            for key in state_a:
                assert torch.equal(torch.as_tensor(state_a[key]), torch.as_tensor(state_b[key])), key
    assert torch.equal(straight.next_draw, resumed.next_draw)
