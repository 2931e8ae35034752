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


# Issue 25, item 2: every everyday misconfiguration ends in one `error:` line naming the setting and the fix.


def lightning_error(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> str:
    """Run the ``lightning`` entry point in-process with ``args``; it must exit 2 with one ``error:`` line on stderr
    and no traceback. Returns that line."""
    from gans.cli import main

    monkeypatch.setattr(sys, "argv", ["lightning", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exited.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0]


def tiny_mnist_args(root: Path, run_dir: Path, model: str = "gans.DCGAN") -> list[str]:
    return ["fit", f"--model={model}", "--model.init_args.img_resolution=32", "--model.init_args.img_channels=1",
            "--model.init_args.ngf=4", "--model.init_args.ndf=4", "--model.init_args.z_dim=8",
            "--data=datamodules.MNISTDataModule", f"--data.init_args.root={root}", "--data.init_args.img_resolution=32",
            "--data.init_args.batch_size=16", "--data.init_args.num_workers=0", "--data.init_args.download=false",
            "--trainer.max_steps=2", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu", f"--trainer.default_root_dir={run_dir}"]


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(MNIST root, the checkpoint of a 2-step DCGAN run written by the CLI)."""
    from conftest import write_mnist_idx

    from gans.cli import cli

    tmp = tmp_path_factory.mktemp("dcgan_run")
    write_mnist_idx(tmp / "data", "train", n=64, seed=0)
    cli(tiny_mnist_args(tmp / "data", tmp / "run"))
    return tmp / "data", next((tmp / "run").rglob("*.ckpt"))


def test_parent_class_checkpoint_in_a_subclass_is_one_line(dcgan_run, tmp_path: Path, monkeypatch, capsys) -> None:
    root, ckpt = dcgan_run
    line = lightning_error([*tiny_mnist_args(root, tmp_path, "gans.WGANGP"), f"--ckpt_path={ckpt}"], monkeypatch, capsys)
    assert "DCGAN" in line and "model.class_path" in line, line


def test_parent_class_checkpoint_through_load_from_checkpoint_is_one_line(dcgan_run) -> None:
    from gans import WGANGP
    from gans.errors import ConfigError

    with pytest.raises(ConfigError, match="DCGAN") as refused:
        WGANGP.load_from_checkpoint(dcgan_run[1])
    assert "\n" not in str(refused.value) and "load_from_checkpoint" in str(refused.value)


def test_missing_ckpt_path_is_one_line(dcgan_run, tmp_path: Path, monkeypatch, capsys) -> None:
    line = lightning_error([*tiny_mnist_args(dcgan_run[0], tmp_path), f"--ckpt_path={tmp_path / 'nope.ckpt'}"], monkeypatch, capsys)
    assert "ckpt_path" in line and "nope.ckpt" in line, line


def test_mnist_batch_larger_than_the_split_is_one_line(dcgan_run, tmp_path: Path, monkeypatch, capsys) -> None:
    line = lightning_error([*tiny_mnist_args(dcgan_run[0], tmp_path), "--data.init_args.batch_size=100"], monkeypatch, capsys)
    assert "batch_size=100" in line and "data.init_args.batch_size" in line, line


@pytest.mark.parametrize(
    "override, message",
    [
        ("--model.init_args.lr_g=-1", "lr_g"),
        ("--model.init_args.lr_d=-0.001", "lr_d"),
        ("--model.init_args.betas=[-0.5,0.999]", "betas"),
        ("--model.init_args.betas=[0.5,1.0]", "betas"),
        ("--model.init_args.gp_weight=-1", "gp_weight"),
    ],
)
def test_bad_numeric_setting_is_one_line(dcgan_run, tmp_path: Path, monkeypatch, capsys, override: str, message: str) -> None:
    line = lightning_error([*tiny_mnist_args(dcgan_run[0], tmp_path), override], monkeypatch, capsys)
    assert f"model.init_args.{message}" in line, line


@pytest.mark.parametrize(
    "override, key, closest",
    [
        ("--model.init_args.ngff=4", "model.init_args.ngff", "model.init_args.ngf"),
        ("--data.init_args.batchsize=4", "data.init_args.batchsize", "data.init_args.batch_size"),
        ("--modle.init_args.ngf=4", "modle.init_args.ngf", "model.init_args"),
    ],
)
def test_unknown_config_key_is_one_line_with_the_closest(dcgan_run, tmp_path: Path, monkeypatch, capsys, override: str, key: str, closest: str) -> None:
    from gans.cli import main

    monkeypatch.setattr(sys, "argv", ["lightning", *tiny_mnist_args(dcgan_run[0], tmp_path), override])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert key in err and closest in err and "--help" in err, err


def test_unknown_key_in_a_config_file_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  class_path: gans.DCGAN\n  init_args:\n    ngff: 4\ndata:\n  class_path: datamodules.MNISTDataModule\n")
    line = lightning_error(["fit", "--config", str(config)], monkeypatch, capsys)
    assert "model.init_args.ngff" in line and "model.init_args.ngf" in line, line


def test_tags_file_not_utf8_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    tags = tmp_path / "tags.csv"
    tags.write_bytes("1,blonde hair blue eyes\n2,r\xf6d hair blue eyes\n".encode("latin-1"))
    line = lightning_error(["fit", "--model=gans.DCGAN", "--data=datamodules.AnimeFacesDataModule", f"--data.init_args.root={tmp_path}",
                            f"--data.init_args.tags_file={tags}", "--trainer.logger=false"], monkeypatch, capsys)
    assert str(tags) in line and "UTF-8" in line, line


def test_max_kimg_zero_says_no_limit(tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    from gans.cli import cli

    monkeypatch.chdir(tmp_path)
    cli(["fit", "--config", str(ROOT / "experiments" / "quickstart.yaml"), "--trainer.callbacks=[]", "--trainer.logger=false",
         "--trainer.enable_progress_bar=false", "--data.init_args.num_samples=256", "--data.init_args.batch_size=64",
         "--model.init_args.max_kimg=0", "--model.init_args.lr_decay_fraction=0", "--trainer.max_steps=2", f"--trainer.default_root_dir={tmp_path}"])
    lines = [record.getMessage() for record in caplog.records if "max_kimg" in record.getMessage() and "no limit" in record.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
