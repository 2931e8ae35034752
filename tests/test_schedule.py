"""callbacks.schedule.KimgMetric.record: one history, logged under the metric's name, kept through a resume."""

import csv
import logging
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from callbacks.schedule import KimgMetric
from datamodules import ToyDataModule
from gans import GAN


class GeneratorNorm(KimgMetric):
    """A stand-in metric whose value moves with training: the norm of the generator's parameters."""

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        norm = float(torch.cat([p.detach().flatten() for p in pl_module.generator.parameters()]).norm())
        return self.record(trainer, pl_module, {"metrics/g_norm": norm}, f"G norm {norm:.4f}", "tiny",
                           also_logged={"metrics/g_norm_once": 1.0} if not self.history else None)


def fit(root: Path, max_epochs: int, metric: GeneratorNorm, ckpt_path: Path | None = None) -> L.Trainer:
    L.seed_everything(0)
    model = GAN(data_shape=(2,), z_dim=2, g_hidden=(16,), d_hidden=(8,), d_pieces=2, g_tanh=False, optimizer="adam", lr_g=1e-3, lr_d=1e-3)
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True, logger=CSVLogger(root, name="csv"),
                            callbacks=[metric, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)])
    trainer.fit(model, datamodule=ToyDataModule(num_samples=256, batch_size=64), ckpt_path=ckpt_path, weights_only=True)
    return trainer


def logged_rows(trainer: L.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
        return [row for row in csv.DictReader(f) if row.get("metrics/g_norm")]


def test_record_keeps_logs_and_offers_the_value_and_a_resume_keeps_the_history(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 4 batches of 64 a epoch: a measurement at 0.128 and 0.256 kimg, none more at the end (just measured).
    metric = GeneratorNorm(every_kimg=0.128, at_start=False, at_end=True)
    with caplog.at_level(logging.INFO):
        trainer = fit(tmp_path / "straight", 2, metric)
    assert [h["train/kimg"] for h in metric.history] == [0.128, 0.256, 0.384, 0.512]
    values = [h["metrics/g_norm"] for h in metric.history]
    assert len(set(values)) == 4  # measured on the generator as it trained
    rows = logged_rows(trainer)
    assert [float(r["train/kimg"]) for r in rows] == [0.128, 0.256, 0.384, 0.512]
    assert [float(r["metrics/g_norm"]) for r in rows] == pytest.approx(values)
    assert [r["metrics/g_norm_once"] != "" for r in rows] == [True, False, False, False]  # logged, not kept
    assert all(set(h) == {"train/kimg", "metrics/g_norm"} for h in metric.history)
    assert float(trainer.callback_metrics["metrics/g_norm"]) == pytest.approx(values[-1])  # for ModelCheckpoint(monitor=...)
    assert f"G norm {values[0]:.4f} at 0.128 kimg (tiny)" in caplog.text

    # The history is in the callback's checkpoint state: a run resumed from the first epoch's end has the whole curve.
    first = GeneratorNorm(every_kimg=0.128, at_start=False, at_end=True)
    fit(tmp_path / "resumed", 1, first)
    saved = torch.load(tmp_path / "resumed" / "ckpt" / "last.ckpt", weights_only=True)["callbacks"]
    assert [state["history"] for state in saved.values() if "history" in state] == [first.history]
    resumed = GeneratorNorm(every_kimg=0.128, at_start=False, at_end=True)
    fit(tmp_path / "resumed", 2, resumed, ckpt_path=tmp_path / "resumed" / "ckpt" / "last.ckpt")
    assert [h["train/kimg"] for h in resumed.history] == [0.128, 0.256, 0.384, 0.512]
    assert [h["metrics/g_norm"] for h in resumed.history] == pytest.approx(values)
