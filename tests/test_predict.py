"""``lightning predict`` says what it did: where it wrote how many samples, replacing the previous predict's, a warning
without a checkpoint, and a one-line refusal of a checkpoint of another model class."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gans.cli import cli

ROOT = Path(__file__).parents[1]


def tiny_config(tmp_path: Path, mnist_root: Path) -> Path:
    """A DCGAN on the tiny MNIST at 16 px (ngf = ndf = 4) that saves ``last.ckpt`` and writes predictions."""
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path / "run"),
                    "callbacks": [{"class_path": "callbacks.SampleWriter"},
                                  {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(tmp_path / "run" / "checkpoints"), "save_last": True}}]},
        "model": {"class_path": "gans.DCGAN", "init_args": {"img_resolution": 16, "img_channels": 1, "z_dim": 8, "ngf": 4, "ndf": 4}},
        "data": {"class_path": "datamodules.MNISTDataModule",
                 "init_args": {"root": str(mnist_root), "download": False, "img_resolution": 16, "batch_size": 8, "num_workers": 0,
                               "predict_batch_size": 4}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def trained(tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(config, last.ckpt) of a DCGAN trained for 2 steps."""
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, mnist_root)
    cli(["fit", "--config", str(config), "--trainer.max_steps=2"])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return config, ckpt


def predict_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Predict:")]


def test_predict_says_where_it_wrote_how_many_and_leaves_no_stale_files(trained: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, ckpt = trained
    out = tmp_path / "run" / "predictions"
    (out).mkdir(parents=True, exist_ok=True)
    (out / "notes.txt").write_text("mine")  # not a sample: left alone
    with caplog.at_level(logging.INFO):
        cli(["predict", "--config", str(config), f"--ckpt_path={ckpt}", "--data.init_args.num_predict=10"])
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(10)]
    [message] = predict_messages(caplog)
    assert "wrote 10 images" in message and str(out) in message
    caplog.clear()
    with caplog.at_level(logging.INFO):
        cli(["predict", "--config", str(config), f"--ckpt_path={ckpt}", "--data.init_args.num_predict=3"])
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(3)]  # not 3 new + 7 stale
    assert (out / "notes.txt").read_text() == "mine"
    [message] = predict_messages(caplog)
    assert "wrote 3 images" in message and "replacing the previous predict's 10 files" in message


def test_predict_of_points_counts_rows_and_replaces_the_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The 2-D toy GAN writes one CSV; a second predict replaces it instead of appending to it."""
    monkeypatch.chdir(tmp_path)
    args = ["predict", "--config", str(ROOT / "experiments" / "quickstart.yaml"), "--trainer.logger=false", "--trainer.callbacks=[callbacks.SampleWriter]",
            f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false", "--data.init_args.num_samples=64"]
    for n in (12, 5):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            cli([*args, f"--data.init_args.num_predict={n}"])
        rows = (tmp_path / "predictions" / "samples.csv").read_text().splitlines()
        assert [row.split(",")[0] for row in rows] == [str(i) for i in range(n)]
        [message] = predict_messages(caplog)
        assert f"wrote {n} points to {tmp_path / 'predictions' / 'samples.csv'}" in message


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gans", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_predict_without_a_checkpoint_warns_in_one_line(tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, mnist_root)
    cli(["predict", "--config", str(config), "--data.init_args.num_predict=2"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "--ckpt_path" in line]
    assert len(warnings) == 1 and "untrained" in warnings[0], warnings
    assert len(list((tmp_path / "run" / "predictions").glob("*.png"))) == 2  # still writes them: a smoke test of the setup is legitimate


def test_predict_refuses_a_checkpoint_of_another_model_class(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """Lightning's CLI rebuilds the model from the checkpoint's class, so ``--model=gans.SNGAN`` silently ran DCGAN."""
    config, ckpt = trained
    result = run_cli(["predict", "--config", str(config), f"--ckpt_path={ckpt}", "--model=gans.SNGAN"], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DCGAN" in errors[0] and "SNGAN" in errors[0] and "model.class_path" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "run" / "predictions").glob("*.png"))
