"""callbacks.ConditionalAccuracy inside short real fits: a "generator" that returns real images of the requested
class scores at the classifier's own accuracy on real images, one that ignores the label scores at chance, per
label head; the trained classifier is cached and reused. And callbacks.SampleGrid's conditional layout: one
row per class of the first head, class names drawn beside the rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from helpers import quiet_trainer
from PIL import Image
from torch import nn

from callbacks import ConditionalAccuracy, SampleGrid
from callbacks.cond_acc import LabelClassifier
from datamodules.base import GANDataModule
from datamodules.images import ImageDataset, TensorPixels
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.tools.pictures import real_vs_fake_grid

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # tiny networks: one thread (tests/conftest.py)
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*", "ignore:.*LeafSpec.*"),
]

SIDE = 16


def pattern_images(labels: np.ndarray, heads: tuple[int, ...], seed: int) -> np.ndarray:
    """uint8 [N, 1, 16, 16]: head h's class sets the brightness of the h-th horizontal band of the image
    (one band for one head, top and bottom halves for two), with noise: learnable, but only from the right band."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, size=(len(labels), 1, SIDE, SIDE)).astype(np.int64)
    band = SIDE // len(heads)
    for h, k in enumerate(heads):
        level = 40 + labels[:, h] * (200 // max(k - 1, 1))
        images[:, 0, h * band : (h + 1) * band] += level[:, None, None]
    return images.clip(0, 255).astype(np.uint8)


class Patterns(GANDataModule):
    """Labelled images whose class can be read from them (:func:`pattern_images`); ``label_heads`` names the heads."""

    data_shape = (1, SIDE, SIDE)

    def __init__(self, heads: list[int], n: int = 400, seed: int = 0, batch_size: int = 16, label_heads: list[str] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.num_classes = heads[0] if len(heads) == 1 else list(heads)
        if label_heads:
            self.label_heads = label_heads
        rng = np.random.default_rng(seed)
        labels = np.stack([rng.integers(0, k, n) for k in heads], axis=1)
        images = pattern_images(labels, tuple(heads), seed)
        label_tensor = torch.from_numpy(labels).long()
        self.dataset = ImageDataset(TensorPixels(torch.from_numpy(images)), label_tensor if len(heads) > 1 else label_tensor[:, 0])
        self.labels = labels

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.hparams.batch_size)


class Stub(L.LightningModule):
    """A stand-in generator: ``sample_indexed`` returns real-looking images with, per head, the requested class
    (``follow[h]``) or a class drawn independently of it; one dummy parameter is trained so the fit runs."""

    def __init__(self, heads: list[int], follow: list[bool]) -> None:
        super().__init__()
        self.label_space = LabelSpace.from_num_classes(heads if len(heads) > 1 else heads[0])
        self.heads, self.follow = tuple(heads), follow
        self.data_shape = (1, SIDE, SIDE)
        self.weight = nn.Parameter(torch.zeros(()))
        self.images_seen = 0

    z_dim = 4

    @property
    def batches(self) -> int:
        return self.trainer.fit_loop.epoch_loop._batches_that_stepped

    def training_step(self, batch, batch_idx):
        self.images_seen += len(batch[0])
        return (self.weight - 1) ** 2

    def sample(self, n: int, labels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """For SampleGrid: the images of the requested labels (noise seeded by the latent)."""
        labels = labels.reshape(n, -1).cpu().numpy()
        return torch.from_numpy(pattern_images(labels, self.heads, seed=int(z.abs().sum() * 1000))).float() / 127.5 - 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def sample_indexed(self, indices: torch.Tensor) -> torch.Tensor:
        asked = self.label_space.for_indices(indices).reshape(len(indices), -1).numpy()
        images = []
        for i, request in zip(indices.tolist(), asked):  # sample i depends on i only, as GANModule.sample_indexed
            drawn = np.random.default_rng(i + 1000).integers(0, self.heads)  # labels drawn without looking at the request
            label = np.where(self.follow, request, drawn)
            images.append(pattern_images(label[None], self.heads, seed=i + 7))
        return torch.from_numpy(np.concatenate(images)).float() / 127.5 - 1


def fit(tmp_path: Path, datamodule: Patterns, model: Stub, **settings) -> tuple[L.Trainer, ConditionalAccuracy]:
    callback = ConditionalAccuracy(
        **{"every_kimg": 0, "num_samples": 600, "batch_size": 100, "classifier_steps": 60, "classifier_batch_size": 32,
           "classifier_width": 8, "holdout": 0.25, "cache_dir": str(tmp_path / "cache"), **settings}
    )
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[callback])
    trainer.fit(model, datamodule=datamodule)
    return trainer, callback


def test_one_head_oracle_scores_the_real_accuracy_and_a_label_blind_generator_chance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = Patterns([10])
    trainer, callback = fit(tmp_path, data, Stub([10], follow=[True]))
    metrics = trainer.callback_metrics
    real, oracle = float(metrics["metrics/cond_acc_real"]), float(metrics["metrics/cond_acc"])
    assert callback.trained and real > 0.8  # the classifier learnt the classes
    assert abs(oracle - real) < 0.1
    assert list(tmp_path.joinpath("cache").glob("*-classifier-*.pt"))

    # A second run with the same data loads the classifier instead of training it, and scores with the same weights.
    monkeypatch.setattr(ConditionalAccuracy, "train_classifier", lambda *a: pytest.fail("the cached classifier was not reused"))
    trainer, callback = fit(tmp_path, Patterns([10]), Stub([10], follow=[False]))
    blind = float(trainer.callback_metrics["metrics/cond_acc"])
    assert not callback.trained and callback.real_accuracy[0] == pytest.approx(real)
    assert abs(blind - 0.1) < 0.06  # chance: 1 / 10 classes (600 samples: std 0.012)
    assert [entry["metrics/cond_acc"] for entry in callback.history] == [pytest.approx(blind)]


def test_two_heads_are_scored_separately_under_the_datamodules_head_names(tmp_path: Path) -> None:
    data = Patterns([3, 4], label_heads=["hair", "eye"])
    trainer, callback = fit(tmp_path, data, Stub([3, 4], follow=[True, False]), classifier_steps=80)
    metrics = trainer.callback_metrics
    real_hair, real_eye = float(metrics["metrics/cond_acc_real_hair"]), float(metrics["metrics/cond_acc_real_eye"])
    assert real_hair > 0.8 and real_eye > 0.8
    assert abs(float(metrics["metrics/cond_acc_hair"]) - real_hair) < 0.1  # hair follows the request
    assert abs(float(metrics["metrics/cond_acc_eye"]) - 0.25) < 0.08  # eye colour ignores it: chance, 1 / 4
    assert "metrics/cond_acc" not in metrics

    # Another evaluation scores the same (fixed indices and latents) and leaves the global random stream alone.
    state = torch.get_rng_state()
    again = callback.evaluate(trainer, trainer.lightning_module)
    assert torch.equal(state, torch.get_rng_state())
    assert again["metrics/cond_acc_hair"] == pytest.approx(float(metrics["metrics/cond_acc_hair"]))


def test_the_classifier_has_one_head_per_label_head() -> None:
    classifier = LabelClassifier(3, (12, 10), width=32)
    logits = classifier(torch.zeros(2, 3, 64, 64))
    assert [tuple(x.shape) for x in logits] == [(2, 12), (2, 10)]
    assert [tuple(x.shape) for x in classifier(torch.zeros(2, 3, 28, 28))] == [(2, 12), (2, 10)]  # any size: pooled to 4x4
    assert sum(p.numel() for p in classifier.features.parameters()) == 287_456  # 3 + 3 convs of 32, 64, 128 channels and their BN


def test_an_unconditional_model_is_a_config_error(tmp_path: Path) -> None:
    model = Stub([10], follow=[True])
    model.label_space = LabelSpace.from_num_classes(0)
    with pytest.raises(ConfigError, match="unconditional"):
        fit(tmp_path, Patterns([10]), model)


# callbacks.SampleGrid for conditional models: one row per class of the first head, labelled.


def draw_grid(tmp_path: Path, heads: list[int], class_names, nrow: int = 4) -> tuple[SampleGrid, np.ndarray, Path]:
    data = Patterns(heads, batch_size=100, label_heads=["hair", "eye"] if len(heads) == 2 else None)
    data.class_names = class_names
    grid = SampleGrid(every_n_steps=0, nrow=nrow)
    trainer = quiet_trainer(tmp_path, max_steps=3, callbacks=[grid])
    trainer.fit(Stub(heads, follow=[True] * len(heads)), datamodule=data)
    samples = tmp_path / "samples"
    return grid, np.array(Image.open(samples / "latest.png").convert("RGB")), samples / "labels.txt"


def test_conditional_grid_has_one_labelled_row_per_class(tmp_path: Path) -> None:
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]  # a flat list: one head
    grid, picture, labels_file = draw_grid(tmp_path, [10], names)
    assert grid._labels.tolist() == [r for r in range(10) for _ in range(4)]  # row r: class r, 4 columns
    assert torch.equal(grid._z[:4], grid._z[4:8])  # one latent per column, the same in every row
    plain = real_vs_fake_grid(grid._real, Stub([10], [True]).sample(40, grid._labels, grid._z), 4).permute(1, 2, 0).numpy()
    margin = picture.shape[1] - plain.shape[1]
    assert margin > 20 and np.array_equal(picture[:, margin:], plain)  # the grid itself, with a margin for the names
    cell, half = SIDE + 2, plain.shape[1] // 2
    rows = [picture[2 + r * cell : r * cell + cell] for r in range(10)]
    assert all((row[:, :margin] < 100).any() for row in rows)  # a name written beside every row
    fake_levels = [row[:, margin + half + 4 :].mean() for row in rows]
    real_levels = [row[:, margin : margin + half - 4].mean() for row in rows]
    assert np.all(np.diff(fake_levels) > 0) and np.all(np.diff(real_levels) > 0)  # samples and real images of the row's class
    lines = labels_file.read_text().splitlines()
    assert lines[0] == "0 (row 0, column 0): airplane" and lines[39] == "39 (row 9, column 3): truck" and len(lines) == 40


def test_two_head_grid_rows_are_the_first_heads_classes_and_columns_the_seconds(tmp_path: Path) -> None:
    names = [["blonde", "blue", "green"], ["red", "aqua", "purple", "brown"]]
    grid, picture, labels_file = draw_grid(tmp_path, [3, 4], names)
    assert grid._labels.tolist() == [[h, e] for h in range(3) for e in range(4)]
    assert grid.row_names(SimpleNamespace(datamodule=SimpleNamespace(class_names=names))) == (names[0], names[1])
    lines = labels_file.read_text().splitlines()
    assert lines[5] == "5 (row 1, column 1): blue, aqua" and len(lines) == 12
    plain_height = 2 + 3 * (SIDE + 2)
    header = picture.shape[0] - plain_height
    assert header > 10 and (picture[:header] < 100).any()  # eye colours written above the columns



def ddp_setup(cache_dir: Path) -> tuple[ConditionalAccuracy, Patterns, Stub]:
    """The run of tests/scripts/ddp_cond_acc.py: 301 samples (the ranks get blocks of different lengths); hair
    follows the request, eye does not."""
    callback = ConditionalAccuracy(every_kimg=0, num_samples=301, batch_size=50, classifier_steps=40, classifier_batch_size=32,
                                   classifier_width=4, holdout=0.25, cache_dir=str(cache_dir))
    return callback, Patterns([3, 4], label_heads=["hair", "eye"]), Stub([3, 4], follow=[True, False])


def test_two_processes_score_the_same_as_one(tmp_path: Path) -> None:
    """Under DDP (2 gloo processes) each rank scores its block of the samples with rank 0's classifier, and the counts
    are summed: every rank logs the numbers one process gets."""
    L.seed_everything(0)
    callback, data, model = ddp_setup(tmp_path / "cache1")
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[callback])
    trainer.fit(model, datamodule=data)
    single = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("metrics/")}
    assert single["metrics/cond_acc_hair"] > 0.6 and single["metrics/cond_acc_eye"] < 0.45

    script = Path(__file__).parent / "scripts" / "ddp_cond_acc.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "ddp"), "2", str(tmp_path / "cache2")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"ddp.rank{r}.json").read_text()) for r in range(2)]
    for rank in ranks:
        assert {k: v for k, v in rank.items() if k != "trained"} == pytest.approx(single, abs=1e-6)
    assert [rank["trained"] for rank in ranks] == [True, False]  # trained on rank 0, broadcast to rank 1
