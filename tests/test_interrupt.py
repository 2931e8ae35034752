"""Nothing lost on interrupt: the final checkpoint is saved before the end-of-fit evaluations, an interrupted run says
which checkpoint to resume from and how, a resumed run keeps its CSV metrics, and checkpoint names never collide."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from helpers import InterruptAtEnd, quiet_trainer

from callbacks import KimgCheckpoint
from callbacks.schedule import KimgMetric
from datamodules import ToyDataModule
from gans import GAN
from gans.cli import cli


def toy() -> GAN:
    return GAN(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, d_input_dropout=0.0, d_dropout=0.0,
               g_tanh=False, optimizer="adam", lr_g=1e-3, lr_d=1e-3)


@pytest.fixture
def sigint_restored():
    """Lightning ignores SIGINT after handling a KeyboardInterrupt (against a second Ctrl-C); put it back."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


class Constant(KimgMetric):
    """A metric that measures 1.0 at the end of fit."""

    def __init__(self) -> None:
        super().__init__(every_kimg=0, at_start=False, at_end=True)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        return self.record(trainer, pl_module, {"metrics/constant": 1.0}, "constant", "test")


@pytest.mark.parametrize("metric_first", [True, False])
def test_interrupted_end_of_fit_evaluation_leaves_the_final_checkpoint(tmp_path: Path, sigint_restored, metric_first: bool) -> None:
    every = KimgCheckpoint(dirpath=tmp_path / "ckpt", every_kimg=0, save_last=True)
    metric = InterruptAtEnd()
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, enable_checkpointing=True,
                            callbacks=[metric, every] if metric_first else [every, metric])
    with pytest.raises(SystemExit):  # Lightning turns the KeyboardInterrupt into exit status 1
        trainer.fit(toy(), datamodule=ToyDataModule(num_samples=192, batch_size=64))
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert last["state_dict"]["progress.images_seen"] == 192


def test_final_checkpoint_holds_the_end_of_fit_evaluation(tmp_path: Path) -> None:
    every = KimgCheckpoint(dirpath=tmp_path / "ckpt", every_kimg=0, save_last=True, save_top_k=-1)
    metric = Constant()
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, enable_checkpointing=True, callbacks=[metric, every]).fit(
        toy(), datamodule=ToyDataModule(num_samples=192, batch_size=64))
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["kimg00000.192.ckpt", "last.ckpt"]  # saved twice, one name
    for name in ("last.ckpt", "kimg00000.192.ckpt"):
        saved = torch.load(tmp_path / "ckpt" / name, weights_only=True)["callbacks"][metric.state_key]
        assert saved["history"] == [{"train/kimg": pytest.approx(0.192), "metrics/constant": 1.0}]


def test_checkpoint_names_are_unique_at_any_cadence(tmp_path: Path) -> None:
    """every_kimg=0.05 with batches of 64: a save after every batch, 0.064, 0.128, ... kimg (one decimal: 0.1 twice)."""
    every = KimgCheckpoint(dirpath=tmp_path / "ckpt", every_kimg=0.05, save_top_k=-1)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, enable_checkpointing=True, callbacks=[every]).fit(
        toy(), datamodule=ToyDataModule(num_samples=640, batch_size=64))
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert saved == [f"kimg{64 * k / 1000:09.3f}.ckpt" for k in range(1, 11)]


def toy_config(tmp_path: Path, callbacks: list[dict], logger: dict | bool = False) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": -1, "default_root_dir": str(tmp_path / "run"),
                    "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
                    "logger": logger, "callbacks": callbacks},
        "model": {"class_path": "gans.GAN", "init_args": {"data_shape": [2], "z_dim": 4, "g_hidden": [16], "d_hidden": [16],
                                                          "d_pieces": 2, "g_tanh": False, "max_kimg": 0.256}},
        "data": {"class_path": "datamodules.ToyDataModule", "init_args": {"num_samples": 512, "batch_size": 64}},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_interrupt_names_the_newest_checkpoint_and_the_resume_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, sigint_restored) -> None:
    monkeypatch.chdir(tmp_path)
    config = toy_config(tmp_path, [{"class_path": "helpers.InterruptAtEnd"},
                                   {"class_path": "callbacks.KimgCheckpoint", "init_args": {"dirpath": "ckpt", "every_kimg": 0.064, "save_last": True}}])
    with pytest.raises(SystemExit) as exit_info:
        cli(["fit", "--config", str(config), "--model.init_args.max_kimg=0.192"])
    assert exit_info.value.code == 1
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]["progress.images_seen"] == 192
    err = capsys.readouterr().err
    assert "newest checkpoint: ckpt/last.ckpt" in err, err[-2000:]
    assert f"lightning fit --config {config} --model.init_args.max_kimg=0.192 --ckpt_path ckpt/last.ckpt" in err, err[-2000:]

    # The printed command resumes: the interrupted evaluation runs again at the same kimg.
    monkeypatch.setattr(InterruptAtEnd, "evaluate", lambda self, trainer, pl_module: self.record(trainer, pl_module, {"m": 1.0}, "m", "x"))
    resumed = cli(["fit", "--config", str(config), "--model.init_args.max_kimg=0.192", "--ckpt_path", "ckpt/last.ckpt"])
    (metric,) = [cb for cb in resumed.trainer.callbacks if isinstance(cb, InterruptAtEnd)]
    assert resumed.model.images_seen >= 192 and metric.history[-1]["train/kimg"] == resumed.model.images_seen / 1000


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_resumed_csv_logger_keeps_the_earlier_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "logs", "name": "", "version": ""}}
    config = toy_config(tmp_path, [{"class_path": "callbacks.KimgCheckpoint", "init_args": {"dirpath": "ckpt", "every_kimg": 0, "save_last": True}}],
                        logger=logger)
    cli(["fit", "--config", str(config), "--model.init_args.max_kimg=0.128"])
    first = read_csv(tmp_path / "logs" / "metrics.csv")
    assert [float(row["train/kimg"]) for row in first if row.get("train/kimg")] == pytest.approx([0.064, 0.128])

    cli(["fit", "--config", str(config), "--model.init_args.max_kimg=0.256", "--ckpt_path=ckpt/last.ckpt"])
    both = read_csv(tmp_path / "logs" / "metrics.csv")
    assert [float(row["train/kimg"]) for row in both if row.get("train/kimg")] == pytest.approx([0.064, 0.128, 0.192, 0.256])
    assert [int(row["step"]) for row in both] == sorted(int(row["step"]) for row in both)


def test_resuming_a_run_that_reached_max_kimg_trains_nothing_more(tmp_path) -> None:
    import lightning as L
    from helpers import quiet_trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    from datamodules import ToyDataModule
    from gans import GAN

    def fit(ckpt_path=None):
        L.seed_everything(0)
        model = GAN(data_shape=(2,), z_dim=2, g_hidden=(8,), d_hidden=(8,), d_pieces=2, d_input_dropout=0.0, d_dropout=0.0, g_tanh=False, max_kimg=0.128)
        trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=-1, enable_checkpointing=True,
                                callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)])
        trainer.fit(model, datamodule=ToyDataModule(num_samples=256, batch_size=32), ckpt_path=ckpt_path, weights_only=True)
        return model, trainer

    done, first = fit()
    assert done.images_seen == 128
    resumed, again = fit(str(tmp_path / "ckpt" / "last.ckpt"))
    assert resumed.images_seen == 128 and again.global_step == first.global_step
    for name, value in done.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)
