"""Progress a person can read (issue 25, item 3): the training bar counts images toward ``max_kimg`` (total and ETA,
from the resumed kimg), shows the latest losses between logging steps, is the CLI's default bar, and every
evaluation (FID, PPL, conditional accuracy) shows its own bar."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
from helpers import TinyFeatures, quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from style_stub import StubStyleGAN
from test_cond_acc import Patterns, Stub

from callbacks import FID, PPL, ConditionalAccuracy, KimgProgressBar
from datamodules import MNISTDataModule, ToyDataModule
from gans import GAN
from gans.metrics.perceptual import pixel_distance

ROOT = Path(__file__).resolve().parents[1]


def toy_gan(max_kimg: float, lr: float = 1e-3) -> GAN:
    return GAN(data_shape=(2,), z_dim=2, g_hidden=(16,), d_hidden=(8,), d_pieces=2, g_tanh=False, optimizer="adam",
               lr_g=lr, lr_d=lr, max_kimg=max_kimg)


class BarProbe(L.Callback):
    """After the bar (listed after it): what the training bar holds at the end of every batch."""

    def __init__(self, bar: TQDMProgressBar) -> None:
        self.bar = bar
        self.seen: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tqdm_bar = self.bar.train_progress_bar
        self.seen.append({"n": tqdm_bar.n, "total": tqdm_bar.total, "initial": tqdm_bar.initial,
                          "postfix": tqdm_bar.postfix or "", "text": str(tqdm_bar),
                          "d_loss": float(pl_module.progress_bar_values.get("train/d_loss", float("nan")))})


def fit_toy(root: Path, max_kimg: float, bar: KimgProgressBar, ckpt_path: Path | None = None, lr: float = 1e-3, **trainer_args) -> BarProbe:
    L.seed_everything(0)
    probe = BarProbe(bar)
    settings = {"max_steps": -1, "max_epochs": -1, "enable_progress_bar": True, "enable_checkpointing": True,
                "callbacks": [bar, probe, ModelCheckpoint(dirpath=root / "ckpt", save_last=True)]}
    trainer = quiet_trainer(root, **{**settings, **trainer_args})
    trainer.fit(toy_gan(max_kimg, lr), datamodule=ToyDataModule(num_samples=128, batch_size=64), ckpt_path=ckpt_path)
    return probe


def postfix_values(probe: BarProbe, name: str) -> list[float]:
    return [float(re.search(rf"{re.escape(name)}=([-+\d.e]+)", s["postfix"]).group(1)) for s in probe.seen]


def test_the_bar_counts_images_to_max_kimg_and_starts_a_resume_at_its_kimg(tmp_path: Path) -> None:
    first = fit_toy(tmp_path, 0.256, KimgProgressBar())  # 4 batches of 64 over 2 epochs of 128 points
    assert [s["n"] for s in first.seen] == [64, 128, 192, 256]
    assert {s["total"] for s in first.seen} == {256}
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", first.seen[0]["text"]), first.seen[0]["text"]  # elapsed<ETA

    resumed = fit_toy(tmp_path, 0.512, KimgProgressBar(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert {s["initial"] for s in resumed.seen} == {256}  # the bar starts at the resumed position: the rate and ETA
    assert [s["n"] for s in resumed.seen] == [320, 384, 448, 512]  # count this run's images only
    assert {s["total"] for s in resumed.seen} == {512}
    assert "/512" in resumed.seen[-1]["text"]


def test_the_bar_shows_the_latest_losses_and_kimg_between_logging_steps(tmp_path: Path) -> None:
    probe = fit_toy(tmp_path, 0.384, KimgProgressBar(metrics_interval=0), lr=0.05, log_every_n_steps=1000)
    shown = postfix_values(probe, "train/d_loss")  # logged on the first batch only, shown on every one
    assert shown == pytest.approx([s["d_loss"] for s in probe.seen], abs=0.006)  # the bar rounds to 3 digits
    assert len(set(shown)) >= 4, shown
    assert postfix_values(probe, "train/kimg") == pytest.approx([0.064, 0.128, 0.192, 0.256, 0.32, 0.384])


def test_the_bar_reads_the_losses_at_its_interval_only(tmp_path: Path) -> None:
    """No per-batch read of the losses (a device sync on a GPU): within the interval the bar shows what it read."""
    probe = fit_toy(tmp_path, 0.384, KimgProgressBar(metrics_interval=3600), log_every_n_steps=1000)
    assert len(set(postfix_values(probe, "train/d_loss"))) == 1
    assert [s["n"] for s in probe.seen] == [64, 128, 192, 256, 320, 384]  # the count itself moves every batch


def test_without_max_kimg_the_bar_counts_the_batches_of_an_epoch(tmp_path: Path) -> None:
    probe = fit_toy(tmp_path, 0.0, KimgProgressBar(), max_epochs=2)
    assert [s["n"] for s in probe.seen] == [1, 2, 1, 2]
    assert {s["total"] for s in probe.seen} == {2}


CLI_BASE = ["fit", "--config", str(ROOT / "experiments" / "quickstart.yaml"), "--trainer.callbacks=[]", "--trainer.logger=false",
            "--data.init_args.num_samples=128", "--data.init_args.batch_size=64", "--model.init_args.max_kimg=0.128"]


def test_the_cli_uses_the_kimg_bar_unless_another_bar_is_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gans.cli import cli

    monkeypatch.chdir(tmp_path)
    base = [*CLI_BASE, f"--trainer.default_root_dir={tmp_path}"]
    default = cli(base).trainer.progress_bar_callback
    assert type(default) is KimgProgressBar and default.target_images == 128
    off = cli([*base, "--trainer.enable_progress_bar=false"])
    assert off.trainer.progress_bar_callback is None and off.model.images_seen == 128
    own = cli([*base, "--trainer.callbacks=lightning.pytorch.callbacks.TQDMProgressBar", "--trainer.callbacks.refresh_rate=5"])
    assert type(own.trainer.progress_bar_callback) is TQDMProgressBar and own.trainer.progress_bar_callback.refresh_rate == 5


# Evaluations.


def mnist_fit(root: Path, mnist_root: Path, model: L.LightningModule, callback: L.Callback, progress_bar: bool) -> None:
    L.seed_everything(0)
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    quiet_trainer(root, max_steps=2, callbacks=[callback], enable_progress_bar=progress_bar).fit(model, datamodule=data)


def test_fid_shows_the_progress_of_both_feature_passes(tmp_path: Path, mnist_root: Path, capfd: pytest.CaptureFixture) -> None:
    from gans import DCGAN

    def fid() -> FID:
        return FID(every_kimg=0, num_samples=40, num_real=48, batch_size=16, feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "cache"))

    mnist_fit(tmp_path / "a", mnist_root, DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8), fid(), progress_bar=True)
    err = capfd.readouterr().err
    assert re.search(r"FID: real images.*\d+/48 \[.*<", err) and re.search(r"FID: generated images.*\d+/40 \[.*<", err), err[-2000:]
    (tmp_path / "cache").rename(tmp_path / "old")  # extract again, now without the trainer's bar
    mnist_fit(tmp_path / "b", mnist_root, DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8), fid(), progress_bar=False)
    assert "FID: " not in capfd.readouterr().err.replace("FID: extracting", "")


def test_ppl_shows_its_progress(tmp_path: Path, mnist_root: Path, capfd: pytest.CaptureFixture) -> None:
    ppl = PPL(every_kimg=0, num_samples=12, batch_size=8, distance=pixel_distance)
    mnist_fit(tmp_path, mnist_root, StubStyleGAN(), ppl, progress_bar=True)
    err = capfd.readouterr().err
    assert re.search(r"PPL: paths.*\d+/12 \[.*<", err), err[-2000:]


def test_conditional_accuracy_shows_the_classifier_training_and_the_scoring(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    callback = ConditionalAccuracy(every_kimg=0, num_samples=200, batch_size=100, classifier_steps=10, classifier_batch_size=32,
                                   classifier_width=8, holdout=0.25, cache_dir=str(tmp_path / "cache"))
    quiet_trainer(tmp_path, max_steps=1, callbacks=[callback], enable_progress_bar=True).fit(Stub([10], follow=[True]), datamodule=Patterns([10]))
    err = capfd.readouterr().err
    assert re.search(r"ConditionalAccuracy: training the classifier.*\d+/10 \[.*<", err), err[-2000:]
    assert re.search(r"ConditionalAccuracy: generated images.*\d+/200 \[.*<", err), err[-2000:]
