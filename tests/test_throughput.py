"""callbacks.ImagesPerSecond: Lightning's ThroughputMonitor counting GAN images, from Python and YAML."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.loggers import CSVLogger

from callbacks import ImagesPerSecond
from callbacks.throughput import count_images
from datamodules import ToyDataModule
from gans import GAN
from gans.cli import cli


def test_count_images_of_labelled_and_bare_batches() -> None:
    assert count_images((torch.zeros(5, 1, 8, 8), torch.zeros(5))) == 5
    assert count_images([torch.zeros(3, 2), torch.zeros(3)]) == 3
    assert count_images(torch.zeros(7, 3, 4, 4)) == 7


def test_fit_logs_images_per_second_without_a_flops_warning(tmp_path: Path) -> None:
    L.seed_everything(0)
    model = GAN(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, g_tanh=False, optimizer="adam", lr_g=1e-3, lr_d=1e-3)
    trainer = quiet_trainer(
        tmp_path, max_steps=16, logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=2,
        callbacks=[ImagesPerSecond(window_size=3)],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=ToyDataModule(num_samples=256, batch_size=32))
    assert not [w for w in caught if "flops" in str(w.message).lower()], [str(w.message) for w in caught]

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    rates = [float(r["train/samples_per_sec"]) for r in rows if r.get("train/samples_per_sec")]
    assert rates and all(math.isfinite(r) and r > 0 for r in rates)
    per_device = [float(r["train/device/samples_per_sec"]) for r in rows if r.get("train/device/samples_per_sec")]
    assert per_device == pytest.approx(rates)  # one device: the total is the device's
    # 16 optimizer steps = 8 batches of 32 images; the image counts logged are whole batches.
    samples = [int(float(r["train/samples"])) for r in rows if r.get("train/samples")]
    assert samples and all(s % 32 == 0 for s in samples) and max(samples) <= 8 * 32


def test_usable_from_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(
        "trainer:\n  logger: false\n  callbacks:\n    - class_path: callbacks.ImagesPerSecond\n      init_args:\n        window_size: 7\n"
        "model:\n  class_path: gans.GAN\n  init_args:\n    data_shape: [2]\n"
        "data:\n  class_path: datamodules.ToyDataModule\n"
    )
    run = cli(["--config", str(config)], run=False)
    (monitor,) = [cb for cb in run.trainer.callbacks if isinstance(cb, ImagesPerSecond)]
    assert monitor.kwargs["window_size"] == 7 and monitor.batch_size_fn is count_images
