"""callbacks.ProgressiveGrowing: the schedule, what it does to model, data and optimizers, and resume mid fade-in."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from callbacks import ProgressiveGrowing
from callbacks.progressive import GrowthSchedule
from datamodules.sampling import shuffle_arguments
from gans import GAN, ProGAN
from gans.errors import ConfigError


class StagedImages(L.LightningDataModule):
    """8 random 16x16 images served average-pooled to the stage the callback sets (the datamodule protocol)."""

    data_shape = (3, 16, 16)
    num_classes = 0

    def __init__(self, batch_size: int = 4, num_images: int = 8) -> None:
        super().__init__()
        self.images = torch.rand(num_images, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.batch_size, self.resolution = batch_size, 16
        self.shuffle_seed = 0
        self.loaders_built = 0

    def set_stage(self, resolution: int, batch_size: int | None = None) -> None:
        self.resolution = resolution
        self.batch_size = batch_size or self.batch_size

    def train_dataloader(self) -> DataLoader:
        self.loaders_built += 1
        images = F.avg_pool2d(self.images, 16 // self.resolution)
        return DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=self.batch_size, drop_last=True, **shuffle_arguments(self, len(images)))


class RecordingProGAN(ProGAN):
    """Records, for every trained batch: images seen before it, the stage, and the real batch as D sees it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**{"img_resolution": 16, "z_dim": 8, "fmap_base": 64, "fmap_max": 16, "mbstd_group_size": 2, **kwargs})
        self.record: list[tuple[int, int, float, tuple[int, ...]]] = []

    def unpack_batch(self, batch):
        real, labels = super().unpack_batch(batch)
        self.record.append((self.images_seen, self.current_resolution, self.alpha, tuple(real.shape)))
        return real, labels


def test_schedule_phases_and_alpha() -> None:
    schedule = GrowthSchedule([4, 8, 16], stable_kimg=1, fade_kimg=2)
    got = [(p.resolution, p.fade, p.start, p.end) for p in schedule.phases]
    assert got == [(4, False, 0, 1000), (8, True, 1000, 3000), (8, False, 3000, 4000), (16, True, 4000, 6000), (16, False, 6000, math.inf)]
    assert schedule.phase_at(999).resolution == 4 and schedule.phase_at(1000).fade
    assert schedule.phase_at(2000).alpha(2000) == 0.5 and schedule.phase_at(1000).alpha(1000) == 0.0
    assert schedule.phase_at(10**9).resolution == 16 and schedule.phase_at(10**9).alpha(10**9) == 1.0
    assert [p.fade for p in GrowthSchedule([4, 8], 1, 0).phases] == [False, False]  # no fade-in: abrupt growth


def fit(root: Path, max_kimg: float, ckpt_path: str | None = None, num_images: int = 8, **growing):
    L.seed_everything(7)
    model = RecordingProGAN(max_kimg=max_kimg)
    data = StagedImages(num_images=num_images)
    callback = ProgressiveGrowing(**{"stable_kimg": 0.016, "fade_kimg": 0.016, "batch_size": {8: 8}, "lr": {16: 5e-4}, **growing})
    trainer = quiet_trainer(
        root, max_steps=-1, max_epochs=-1, enable_checkpointing=True,
        callbacks=[callback, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)],
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return model, trainer, data


def test_growth_follows_the_schedule(tmp_path: Path) -> None:
    """Phases of 16 images: 4 stable; 8 fading (batch 8); 8 stable; 16 fading; 16 stable. Every batch trains at the
    phase of the images seen before it, with alpha linear over the fade-in, the real images at the stage's size,
    the stage's batch size and learning rate; the optimizers restart at every phase boundary."""
    model, trainer, data = fit(tmp_path, max_kimg=0.096)
    seen = [(n, r, a, shape[0], shape[-1]) for n, r, a, shape in model.record]
    assert seen == [
        (0, 4, 1.0, 4, 4), (4, 4, 1.0, 4, 4), (8, 4, 1.0, 4, 4), (12, 4, 1.0, 4, 4),
        (16, 8, 0.0, 8, 8), (24, 8, 0.5, 8, 8),
        (32, 8, 1.0, 8, 8), (40, 8, 1.0, 8, 8),
        (48, 16, 0.0, 4, 16), (52, 16, 0.25, 4, 16), (56, 16, 0.5, 4, 16), (60, 16, 0.75, 4, 16),
        (64, 16, 1.0, 4, 16), (68, 16, 1.0, 4, 16), (72, 16, 1.0, 4, 16), (76, 16, 1.0, 4, 16), (80, 16, 1.0, 4, 16),
        (84, 16, 1.0, 4, 16), (88, 16, 1.0, 4, 16), (92, 16, 1.0, 4, 16),
    ]
    assert model.images_seen == 96
    assert data.loaders_built == 3  # 4 px in 4s, 8 px in 8s, 16 px in 4s: a reload per change, not per epoch
    assert trainer.reload_dataloaders_every_n_epochs == 0  # the user's setting is back
    for opt in trainer.optimizers:
        assert all(group["lr"] == 5e-4 for group in opt.param_groups)
        steps = {int(state["step"]) for state in opt.state.values()}
        assert steps == {8}, "Adam restarted at 64 images: 8 updates in the final stable phase"
    assert trainer.callback_metrics["train/resolution"] == 16 and trainer.callback_metrics["train/alpha"] == 1.0


def test_phases_ending_mid_epoch_cut_the_epoch_short(tmp_path: Path) -> None:
    """With 12 images (3 batches of 4 per epoch) the 16-image phases end mid-epoch: the batch drawn from the old
    dataloader is dropped uncounted, the stages follow the same images as before, and Lightning's batch
    progress stays consistent (ready = started = completed), so later checkpoints resume as whole batches."""
    model, trainer, data = fit(tmp_path, max_kimg=0.096, num_images=12)
    eight, _, _ = fit(tmp_path / "eight", max_kimg=0.096, num_images=8)
    assert [r[:3] + (r[3][0],) for r in model.record] == [r[:3] + (r[3][0],) for r in eight.record]
    total = trainer.fit_loop.epoch_loop.batch_progress.total
    assert total.ready == total.started == total.completed == total.processed == len(model.record) == model.batches


@pytest.mark.parametrize("stop_images, first_batch", [(56, (56, 16, 0.5)), (48, (48, 16, 0.0))], ids=["mid-fade-in", "at-a-boundary"])
def test_resume_continues_as_the_uninterrupted_run(tmp_path: Path, stop_images: int, first_batch: tuple) -> None:
    """Stopped at 56 images (half-way through the 16 px fade-in) or at 48 (the last 8 px batch, just before the
    16 px fade-in and its optimizer reset), both epoch boundaries, and resumed to 96 images, the run ends with the
    same weights, optimizer states, stage and batch size as one that ran straight to 96."""
    straight, straight_trainer, straight_data = fit(tmp_path / "straight", max_kimg=0.096)
    fit(tmp_path / "resumed", max_kimg=stop_images / 1000)
    resumed, resumed_trainer, resumed_data = fit(tmp_path / "resumed", max_kimg=0.096, ckpt_path=str(tmp_path / "resumed" / "ckpt" / "last.ckpt"))
    assert resumed.record[0][:3] == first_batch
    assert resumed.record == straight.record[-len(resumed.record):]
    assert resumed_data.batch_size == straight_data.batch_size == 4 and resumed_data.resolution == 16
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), f"{name} differs after resume"
    for opt_a, opt_b in zip(straight_trainer.optimizers, resumed_trainer.optimizers):
        a, b = opt_a.state_dict(), opt_b.state_dict()
        assert a["param_groups"] == b["param_groups"]
        for key in a["state"]:
            for field in a["state"][key]:
                assert torch.equal(a["state"][key][field], b["state"][key][field])


def test_checkpoint_keeps_the_stage_for_predict(tmp_path: Path) -> None:
    fit(tmp_path, max_kimg=0.032)  # the last batch trained at 8x8, alpha 0.5
    model = RecordingProGAN.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert (model.current_resolution, model.alpha) == (8, 0.5)
    assert model.sample(2).shape == (2, 3, 16, 16), "samples of a lower stage come upsampled to img_resolution"
    # Written before the stage travelled in the networks' state dicts (it came beside them, as "growth"), with an EMA G.
    old = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    state = {k: v for k, v in old["state_dict"].items() if not k.endswith("._extra_state")}
    state.update({"generator_ema." + k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")})
    torch.save({**old, "state_dict": state, "growth": {"resolution": 8, "alpha": 0.5}}, tmp_path / "old.ckpt")
    model = RecordingProGAN.load_from_checkpoint(tmp_path / "old.ckpt", weights_only=True)
    assert all((net.current_resolution, net.alpha) == (8, 0.5) for net in (model.generator, model.discriminator, model.generator_ema))


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[ProgressiveGrowing()])
    with pytest.raises(ConfigError, match="needs a growing model"):
        trainer.fit(GAN(data_shape=(2,), z_dim=2), train_dataloaders=DataLoader(TensorDataset(torch.zeros(8, 2)), batch_size=4))
    for kwargs, message in [
        (dict(start_resolution=3), "start_resolution 3 is not a stage"),
        (dict(batch_size={64: 2}), r"resolutions \[64\]"),
    ]:
        trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[ProgressiveGrowing(**kwargs)])
        with pytest.raises(ConfigError, match=message):
            trainer.fit(RecordingProGAN(), datamodule=StagedImages())
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[ProgressiveGrowing(batch_size={8: 2})])
    loader = DataLoader(TensorDataset(torch.zeros(8, 3, 16, 16)), batch_size=4)
    with pytest.raises(ConfigError, match="set_stage"):
        trainer.fit(RecordingProGAN(), train_dataloaders=loader)
    with pytest.raises(ConfigError, match="must be >= 0"):
        ProgressiveGrowing(fade_kimg=-1)
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[ProgressiveGrowing(lr={8: 1e-3})])
    with pytest.raises(ConfigError, match="lr_decay_fraction: 0"):  # two owners of the learning rate
        trainer.fit(RecordingProGAN(max_kimg=2, lr_decay_fraction=0.5), datamodule=StagedImages())


def test_a_run_too_short_for_the_schedule_is_warned_about(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[ProgressiveGrowing(stable_kimg=1, fade_kimg=1)])
    with pytest.warns(UserWarning, match="before the schedule reaches 16x16"):
        trainer.fit(RecordingProGAN(max_kimg=2), datamodule=StagedImages())


def test_sample_grids_at_a_lower_stage_show_real_and_fake_at_full_size(tmp_path: Path) -> None:
    from PIL import Image

    from callbacks import SampleGrid

    L.seed_everything(0)
    trainer = quiet_trainer(tmp_path, max_steps=-1, callbacks=[ProgressiveGrowing(stable_kimg=1, fade_kimg=1), SampleGrid(every_n_steps=1, num_samples=4, nrow=2)])
    trainer.fit(RecordingProGAN(max_kimg=0.004), datamodule=StagedImages())
    picture = Image.open(tmp_path / "samples" / "latest.png")
    assert picture.size == (2 * (2 * 18 + 2) + 8, 2 * 18 + 2), "two 2x2 grids of 16 px tiles (4 px nearest-upsampled)"
    tile = torch.from_numpy(np.asarray(picture))[2:18, 2:18].float()
    assert torch.equal(tile, tile[::4, ::4].repeat_interleave(4, 0).repeat_interleave(4, 1)), "a 4 px image, upsampled"
