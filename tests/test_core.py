"""The adversarial core on one process: units of progress, EMA by images, kimg checkpoints, schedulers,
strategy refusals, the labels protocol, sampling through ``sample``."""

from pathlib import Path

import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

import callbacks.ema as ema_module
from callbacks import EMA, KimgCheckpoint
from datamodules import ToyDataModule
from gans import GAN, WGANGP
from gans.errors import ConfigError
from gans.labels import LabelSpace


def toy(**kwargs) -> GAN:
    settings = dict(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, d_input_dropout=0.0, d_dropout=0.0,
                    g_tanh=False, optimizer="adam", lr_g=1e-3, lr_d=1e-3)
    return GAN(**{**settings, **kwargs})


def images(n: int = 64, size: int = 16) -> DataLoader:
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return DataLoader(TensorDataset(x, torch.zeros(n)), batch_size=8)


def test_ema_half_life_counts_images_with_n_critic_5(tmp_path: Path, monkeypatch) -> None:
    betas: list[float] = []
    update = ema_module.ema_update_
    monkeypatch.setattr(ema_module, "ema_update_", lambda ema, source, beta: (betas.append(beta), update(ema, source, beta)))
    model = WGANGP(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4)  # n_critic 5
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=2, callbacks=[EMA(half_life_kimg=0.1)]).fit(model, images(80))
    assert model.g_steps == 4 and len(betas) == 4  # 20 batches, a G step every 5th
    assert betas == pytest.approx([0.5 ** (5 * 8 / 100)] * 4)  # 5 batches of 8 images per update, half-life 100 images


def test_kimg_checkpoints_all_fire_under_lazy_regularization(tmp_path: Path) -> None:
    model = toy(r1_gamma=1.0, r1_interval=2, pl_weight=1.0, pl_interval=3)  # irregular optimizer steps per batch
    every = KimgCheckpoint(dirpath=tmp_path / "ckpt", every_kimg=0.128, filename="img{kimg:.3f}", save_top_k=-1, save_last=True)
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, enable_checkpointing=True, callbacks=[every])
    trainer.fit(model, datamodule=ToyDataModule(num_samples=1280, batch_size=64))  # 20 batches, 1.28 kimg
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("img*.ckpt"))
    assert saved == [f"img{0.128 * k:.3f}.ckpt" for k in range(1, 11)]
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert last["state_dict"]["progress.images_seen"] == 1280  # the final weights, not an older save


def test_kimg_checkpoint_saves_at_the_end_and_resumes_its_schedule(tmp_path: Path) -> None:
    every = KimgCheckpoint(dirpath=tmp_path / "ckpt", every_kimg=1.0, save_last=True, save_top_k=0)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, enable_checkpointing=True, callbacks=[every]).fit(
        toy(), datamodule=ToyDataModule(num_samples=320, batch_size=64))
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert last["state_dict"]["progress.images_seen"] == 320  # no multiple of 1 kimg was reached: saved at the end
    assert last["callbacks"][every.state_key]["next_images"] == 1000
    with pytest.raises(ConfigError, match="every_n_train_steps"):
        KimgCheckpoint(every_n_train_steps=10)


def test_step_based_model_checkpoint_gets_a_warning(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_steps=4, enable_checkpointing=True,
                            callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3)])
    with pytest.warns(UserWarning, match="KimgCheckpoint"):
        trainer.fit(toy(), datamodule=ToyDataModule(num_samples=256, batch_size=64))


def test_max_kimg_stops_after_that_many_images(tmp_path: Path) -> None:
    model = toy(max_kimg=0.32)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=10).fit(model, datamodule=ToyDataModule(num_samples=1024, batch_size=64))
    assert model.images_seen == 320 and model.batches == 5


class Scheduled(GAN):
    """A toy GAN whose G learning rate halves every 2 batches (a Lightning lr scheduler, interval step)."""

    def configure_optimizers(self):
        opt_d, opt_g = super().configure_optimizers()
        decay = torch.optim.lr_scheduler.StepLR(opt_g, step_size=1, gamma=0.5)
        return [opt_d, opt_g], [{"scheduler": decay, "interval": "step", "frequency": 2}]


def test_lr_schedulers_are_stepped_under_manual_optimization(tmp_path: Path) -> None:
    base = dict(data_shape=(2,), z_dim=4, g_hidden=(8,), d_hidden=(8,), d_pieces=2, g_tanh=False, optimizer="adam", lr_g=1e-3)
    model = Scheduled(**base)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1).fit(model, datamodule=ToyDataModule(num_samples=384, batch_size=64))
    _, opt_g = model.optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)  # 6 batches: 3 scheduler steps


class Plateau(GAN):
    """A toy GAN logging a constant ``test/flat`` every batch, its G lr under ReduceLROnPlateau watching it (interval step)."""

    def __init__(self, plain: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plain = plain  # torch's ReduceLROnPlateau, which names no metric, instead of Lightning's

    def training_step(self, batch, batch_idx):
        self.log("test/flat", 1.0)
        return super().training_step(batch, batch_idx)

    def configure_optimizers(self):
        from lightning.pytorch.cli import ReduceLROnPlateau

        opt_d, opt_g = super().configure_optimizers()
        plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt_g, factor=0.5, patience=0) if self.plain
                   else ReduceLROnPlateau(opt_g, monitor="test/flat", factor=0.5, patience=0))
        return [opt_d, opt_g], [{"scheduler": plateau, "interval": "step", "monitor": "test/flat"}]


def test_reduce_lr_on_plateau_steps_on_the_metric_it_watches(tmp_path: Path) -> None:
    """Lightning drops the lr_scheduler dict's ``monitor`` under manual optimization: the scheduler names its metric
    (Lightning's ``ReduceLROnPlateau(optimizer, monitor)``) and steps on it; torch's, naming none, is refused in one line."""
    base = dict(data_shape=(2,), z_dim=4, g_hidden=(8,), d_hidden=(8,), d_pieces=2, g_tanh=False, optimizer="adam", lr_g=1e-3)
    model = Plateau(**base)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1).fit(model, datamodule=ToyDataModule(num_samples=256, batch_size=64))
    _, opt_g = model.optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)  # 4 batches: a best value, then 3 without progress
    with pytest.raises(ConfigError, match=r"^ReduceLROnPlateau needs the metric .* lightning\.pytorch\.cli\.ReduceLROnPlateau"):
        quiet_trainer(tmp_path, max_steps=2).fit(Plateau(plain=True, **base), datamodule=ToyDataModule(num_samples=256, batch_size=64))


@pytest.mark.parametrize("name", ["FSDPStrategy", "DeepSpeedStrategy"])
def test_unsupported_strategies_are_refused_in_one_line(tmp_path: Path, name: str) -> None:
    """FSDP needs a GPU and DeepSpeed is not installed here: a CPU strategy under the refused class name stands in."""
    from lightning.pytorch.strategies import SingleDeviceStrategy

    strategy = type(name, (SingleDeviceStrategy,), {})(device="cpu")
    trainer = quiet_trainer(tmp_path, max_steps=2, strategy=strategy)
    with pytest.raises(ConfigError, match=f"cannot train with {name}: .*Use one of"):
        trainer.fit(toy(), datamodule=ToyDataModule(num_samples=128, batch_size=64))


def test_label_space_heads_indices_and_multi_hot() -> None:
    one = LabelSpace.from_num_classes(10)
    assert one.for_indices(torch.arange(12)).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    two = LabelSpace.from_num_classes([3, 2])
    assert two.for_indices(torch.arange(7)).tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1], [0, 0]]
    assert two.multi_hot(torch.tensor([[2, 1]])).tolist() == [[0, 0, 1, 0, 1]]
    drawn = two.sample(1000, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (1000, 2) and set(drawn[:, 0].tolist()) == {0, 1, 2} and set(drawn[:, 1].tolist()) == {0, 1}
    assert LabelSpace.from_num_classes(0).sample(4) is None
    with pytest.raises(ConfigError):
        LabelSpace.from_num_classes([3, 0])


def test_sample_indexed_goes_through_sample() -> None:
    """A model's truncation (here: latents scaled by psi in ``sample``) reaches FID and predict."""

    class Truncated(GAN):
        psi = 0.0

        @torch.no_grad()
        def sample(self, n, labels=None, z=None):
            return super().sample(n, labels=labels, z=None if z is None else z * self.psi)

    model = Truncated(data_shape=(2,), z_dim=4, g_hidden=(8,), d_hidden=(8,), d_pieces=2, g_tanh=False).eval()
    out = model.sample_indexed(torch.arange(5))
    assert torch.allclose(out, model.generator(torch.zeros(5, 4)))  # psi 0: every sample is G(0)


def test_checkpoints_from_before_the_counters_moved_still_load(tmp_path: Path) -> None:
    """Counters used to be saved only in ``gan_progress``; such a checkpoint resumes with them."""
    every = KimgCheckpoint(dirpath=tmp_path / "ckpt", every_kimg=0, save_last=True, save_top_k=0)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, enable_checkpointing=True, callbacks=[every]).fit(
        toy(), datamodule=ToyDataModule(num_samples=256, batch_size=64))
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    old_style = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("progress.")}
    ckpt["state_dict"] = old_style
    ckpt["gan_progress"].update(images_seen=256, g_steps=4, d_steps_since_g=0, nonfinite_steps=0)
    torch.save(ckpt, tmp_path / "old.ckpt")
    loaded = GAN.load_from_checkpoint(tmp_path / "old.ckpt", weights_only=True)
    assert (loaded.images_seen, loaded.g_steps) == (256, 4)


def test_two_kimg_checkpoints_with_other_intervals_coexist(tmp_path: Path) -> None:
    often = KimgCheckpoint(dirpath=tmp_path / "often", every_kimg=0.128, save_top_k=-1)
    rarely = KimgCheckpoint(dirpath=tmp_path / "rarely", every_kimg=0.256, save_top_k=-1)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, enable_checkpointing=True, callbacks=[often, rarely]).fit(
        toy(), datamodule=ToyDataModule(num_samples=512, batch_size=64))
    assert len(list((tmp_path / "often").glob("*.ckpt"))) == 4 and len(list((tmp_path / "rarely").glob("*.ckpt"))) == 2
