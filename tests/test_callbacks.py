"""callbacks.SampleGrid inside short real fits: files on disk and pictures sent to the loggers."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import lightning as L
import numpy as np
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image

from callbacks import SampleGrid
from datamodules import MNISTDataModule, ToyDataModule
from gans import DCGAN, GAN
from gans.tools.pictures import save_picture

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers.*",
    "ignore:.*smaller than the logging interval.*",
    "ignore:.*LeafSpec.*",
)

TAB_RED = np.array([214, 39, 40])  # matplotlib "tab:red", the colour of the generated points


def trainer(tmp_path: Path, logger, callback: SampleGrid, max_steps: int) -> L.Trainer:
    return quiet_trainer(tmp_path, max_steps, logger=logger, callbacks=[callback], log_every_n_steps=1)


def toy_gan() -> GAN:
    return GAN(data_shape=(2,), z_dim=2, g_hidden=(16,), d_hidden=(8,), d_pieces=2, g_tanh=False, optimizer="adam", lr_g=1e-3, lr_d=1e-3)


def small_dcgan() -> DCGAN:
    return DCGAN(img_resolution=32, img_channels=1, z_dim=8, ngf=4, ndf=4)


def fit_toy(tmp_path: Path, logger) -> tuple[L.Trainer, Path]:
    L.seed_everything(0, workers=True)
    t = trainer(tmp_path, logger, SampleGrid(every_n_steps=2, num_samples=64), max_steps=8)  # 4 batches (2 optimizer steps each)
    t.fit(toy_gan(), datamodule=ToyDataModule(mixture="ring", num_samples=512, batch_size=64))
    return t, Path(t.log_dir) / "samples"


def is_red(pixels: np.ndarray) -> np.ndarray:
    return (np.abs(pixels.astype(int) - TAB_RED) < 40).all(axis=-1)


def test_toy_fit_writes_scatter_plots(tmp_path):
    t, samples = fit_toy(tmp_path, CSVLogger(tmp_path, name="csv"))
    assert samples.is_relative_to(tmp_path)
    assert (samples / "latest.png").is_file()
    steps = sorted(p.name for p in samples.glob("step_*.png"))
    assert len(steps) >= 2, steps  # periodic pictures plus the final one
    picture = np.asarray(Image.open(samples / "latest.png"))
    assert picture.shape == (500, 500, 3) and picture.dtype == np.uint8  # a 5x5 in figure at 100 dpi
    # A scatter plot, not a blank canvas: red generated points over light blue data.
    assert is_red(picture).sum() > 50
    rgb = picture.astype(int)
    blue = (rgb[..., 2] - rgb[..., 0] > 40) & (rgb[..., 2] > 150)
    assert blue.sum() > 50
    # latest.png is the last picture written.
    assert np.array_equal(picture, np.asarray(Image.open(samples / steps[-1])))


def test_toy_pictures_log_modes_covered_and_high_quality_fraction(tmp_path):
    """The two numbers in the scatter plot's title reach metrics.csv (and so W&B), equal to mode_coverage of the grid."""
    import csv

    from datamodules.toy import mode_coverage

    t, _ = fit_toy(tmp_path, CSVLogger(tmp_path, name="csv"))
    with open(Path(t.log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("metrics/modes_covered")]
    assert len(rows) >= 2  # every picture
    model, grid = t.lightning_module, next(c for c in t.callbacks if isinstance(c, SampleGrid))
    covered, quality = mode_coverage(model.eval().sample(len(grid._z), z=grid._z), "ring")
    assert float(rows[-1]["metrics/modes_covered"]) == covered
    assert abs(float(rows[-1]["metrics/high_quality"]) - quality) < 1e-6
    assert 0 <= quality <= 1


def test_toy_samples_come_from_fixed_latents(tmp_path):
    callback = SampleGrid(every_n_steps=0, num_samples=32, seed=3)
    model = toy_gan()
    callback.on_fit_start(mock.Mock(), model)
    z1 = callback._z.clone()
    callback.on_fit_start(mock.Mock(), model)
    assert z1.shape == (32, 2)
    assert torch.equal(z1, callback._z)  # the same latents every time, from the seed


def test_mnist_fit_writes_a_real_fake_grid(tmp_path, mnist_root):
    L.seed_everything(0, workers=True)
    t = trainer(tmp_path, CSVLogger(tmp_path, name="csv"), SampleGrid(every_n_steps=0, num_samples=16, nrow=4), max_steps=4)
    dm = MNISTDataModule(root=str(mnist_root), img_resolution=32, batch_size=16, num_workers=0, download=False)
    t.fit(small_dcgan(), datamodule=dm)

    samples = Path(t.log_dir) / "samples"
    picture = np.asarray(Image.open(samples / "latest.png"))
    # 16 images of 32 px in 4 rows with 2 px padding: 4 * 34 + 2 = 138 px a side; real | 8 px gap | fake.
    assert picture.shape == (138, 138 + 8 + 138, 3)
    assert np.array_equal(picture[..., 0], picture[..., 1]) and np.array_equal(picture[..., 0], picture[..., 2])  # grey
    assert (picture[:, 138:146] == 255).all()  # the gap

    # Every tile on the left is a real training digit (padded to 32 px), in the [-1, 1] -> [0, 255] mapping.
    dm.setup("fit")
    data = torch.stack([dm.dataset[i][0][0] for i in range(len(dm.dataset))])  # [64, 32, 32]
    data = ((data + 1) / 2 * 255).round()
    for row in range(4):
        for col in range(4):
            y, x = 2 + row * 34, 2 + col * 34
            tile = torch.from_numpy(picture[y : y + 32, x : x + 32, 0].astype(np.float32))
            assert (data - tile).abs().amax(dim=(1, 2)).min() <= 1.0, f"left tile {row},{col} is not a real image"
    # The right half holds generated images, which are none of the real ones.
    fake_tile = torch.from_numpy(picture[2:34, 146 + 2 : 146 + 34, 0].astype(np.float32))
    assert (data - fake_tile).abs().amax(dim=(1, 2)).min() > 1.0


def test_tensorboard_event_file_holds_the_picture(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import (
        IMAGES,
        EventAccumulator,
    )

    t, samples = fit_toy(tmp_path, TensorBoardLogger(tmp_path, name="tb"))
    assert (samples / "latest.png").is_file()
    events = list(Path(t.log_dir).glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(Path(t.log_dir)), size_guidance={IMAGES: 0}).Reload()
    assert "samples" in acc.Tags()["images"]
    images = acc.Images("samples")
    assert len(images) >= 2
    assert (images[-1].width, images[-1].height) == (500, 500)
    assert "train/d_loss" in acc.Tags()["scalars"]


def test_add_image_is_called_with_an_hwc_picture(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb")
    with mock.patch.object(type(logger.experiment), "add_image") as add_image:
        fit_toy(tmp_path, logger)
    assert add_image.called
    tag, picture = add_image.call_args.args[:2]
    assert tag == "samples"
    assert add_image.call_args.kwargs["dataformats"] == "HWC"
    assert picture.shape == (500, 500, 3) and picture.dtype == np.uint8


def test_log_image_is_used_when_the_logger_has_it(tmp_path):
    """W&B-style loggers get ``log_image(key="samples", images=[HWC array])`` at the step of the batch's
    scalars (batches trained), not at trainer.global_step (D + G optimizer steps)."""
    wandb_like = mock.Mock(spec=["log_image", "save_dir"], save_dir=str(tmp_path))  # the run folder: a W&B logger's save_dir
    t = mock.Mock(loggers=[wandb_like], global_step=14)
    t.fit_loop.epoch_loop._batches_that_stepped = 7
    picture = np.zeros((4, 4, 3), dtype=np.uint8)
    assert save_picture(t, picture, step=3) == tmp_path / "samples" / "step_0000003.png"
    wandb_like.log_image.assert_called_once()
    kwargs = wandb_like.log_image.call_args.kwargs
    assert kwargs["key"] == "samples" and kwargs["images"][0] is picture and kwargs["step"] == 7


class RecordingGrid(SampleGrid):
    """SampleGrid that records (step label, batches the model has trained on) at every picture."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[int, int]] = []

    def draw(self, trainer, pl_module, step):
        self.calls.append((step, pl_module.g_steps))  # GAN with n_critic 1: one G step per batch
        return super().draw(trainer, pl_module, step)


def test_final_picture_is_labelled_with_the_batches_trained(tmp_path):
    L.seed_everything(0, workers=True)
    callback = RecordingGrid(every_n_steps=0, num_samples=16)
    t = trainer(tmp_path, CSVLogger(tmp_path, name="csv"), callback, max_steps=6)
    t.fit(toy_gan(), datamodule=ToyDataModule(num_samples=512, batch_size=64))
    assert callback.calls == [(3, 3)]
    assert (Path(t.log_dir) / "samples" / "step_0000003.png").is_file()


def test_periodic_pictures_are_labelled_with_the_batches_trained(tmp_path):
    L.seed_everything(0, workers=True)
    callback = RecordingGrid(every_n_steps=2, num_samples=16)
    t = trainer(tmp_path, CSVLogger(tmp_path, name="csv"), callback, max_steps=8)  # 4 batches
    t.fit(toy_gan(), datamodule=ToyDataModule(num_samples=512, batch_size=64))
    for step, trained in callback.calls:
        assert step == trained
    assert {step for step, _ in callback.calls} == {2, 4}  # after batches 2 and 4 (the end)


def test_sample_grid_names_the_labels_of_its_cells() -> None:
    """Conditional grids: each cell's label in words from the datamodule's class_names (anime hair/eye colours),
    or as class numbers without them."""
    from types import SimpleNamespace

    from callbacks import SampleGrid
    from gans.labels import LabelSpace

    grid = SampleGrid(num_samples=4, nrow=2)
    grid._labels = LabelSpace.from_num_classes([2, 3]).for_indices(torch.arange(4))
    named = SimpleNamespace(datamodule=SimpleNamespace(class_names=[["blonde", "red"], ["blue", "green", "red"]]))
    expected = [f"{['blonde', 'red'][int(h)]}, {['blue', 'green', 'red'][int(e)]}" for h, e in grid._labels]
    assert grid.label_names(named) == expected and len(set(expected)) == 4
    assert grid.label_names(SimpleNamespace(datamodule=None)) == [f"{int(h)}, {int(e)}" for h, e in grid._labels]
