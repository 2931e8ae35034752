"""The ``lightning`` command: W&B offline without a key, one-line errors, python -m gans."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gans.cli import default_wandb_offline

ROOT = Path(__file__).parents[1]


@pytest.fixture
def no_wandb_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc


def test_wandb_goes_offline_without_a_key(no_wandb_env) -> None:
    default_wandb_offline()
    assert os.environ["WANDB_MODE"] == "offline"


def test_wandb_stays_online_with_a_key(no_wandb_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    default_wandb_offline()
    assert "WANDB_MODE" not in os.environ


def test_wandb_key_in_netrc_counts(no_wandb_env, tmp_path: Path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    netrc.chmod(0o600)
    default_wandb_offline()
    assert "WANDB_MODE" not in os.environ


@pytest.mark.parametrize(
    "override, message",
    [
        ("--model.init_args.loss=foo", "error: Unknown loss 'foo': choose one of minimax, non_saturating"),
        ("--model.init_args.img_resolution=28", "error: DCGAN needs img_resolution to be a power of two"),
        ("--data.init_args.root=missing", "t10k-labels-idx1-ubyte.gz in"),
    ],
)
def test_bad_input_is_one_line_with_the_fix(tmp_path: Path, override: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gans", "fit", "--config", str(ROOT / "experiments" / "dcgan_mnist.yaml"), override,
         "--trainer.logger=false", "--data.init_args.download=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_fit_resume_uses_the_given_max_kimg_not_the_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Continuing a finished run with a raised max_kimg trains on to the new limit (Lightning's CLI alone would
    restore the checkpoint's max_kimg and stop after one batch), and says which arguments changed."""
    from gans.cli import cli

    monkeypatch.chdir(tmp_path)
    base = ["fit", "--config", str(ROOT / "experiments" / "quickstart.yaml"), "--trainer.callbacks=[]", "--trainer.logger=false",
            "--trainer.enable_checkpointing=true", "--trainer.enable_progress_bar=false", "--data.init_args.num_samples=512",
            "--data.init_args.batch_size=64", f"--trainer.default_root_dir={tmp_path}"]
    first = cli([*base, "--model.init_args.max_kimg=0.256"])
    assert first.model.images_seen == 256
    ckpt = next(tmp_path.rglob("*.ckpt"))
    second = cli([*base, "--model.init_args.max_kimg=0.64", f"--ckpt_path={ckpt}"])
    assert second.model.images_seen == 640
    assert "max_kimg: 0.256 -> 0.64" in capsys.readouterr().err
