"""Every experiments/*.yaml parses and fits for a few steps on tiny data, through the real CLI."""

from pathlib import Path

import pytest
import yaml

from gans.cli import cli

EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))


def overrides(config: Path, mnist_root: Path) -> list[str]:
    data_class = yaml.safe_load(config.read_text())["data"]["class_path"]
    if data_class == "datamodules.MNISTDataModule":
        return [f"--data.init_args.root={mnist_root}", "--data.init_args.download=false", "--data.init_args.batch_size=8", "--data.init_args.num_workers=0"]
    if data_class == "datamodules.ToyDataModule":
        return ["--data.init_args.num_samples=256", "--data.init_args.batch_size=32"]
    raise AssertionError(f"{config.name}: add tiny-data overrides for {data_class}")


def test_every_experiment_is_tested() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"quickstart", "gan_mnist", "cgan_mnist", "dcgan_mnist", "lsgan_mnist", "wgan_mnist", "wgan_gp_mnist"} <= names


@pytest.mark.parametrize("config", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_fits_a_few_steps(config: Path, mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the configs write to runs/<name> relative to the working directory
    args = ["fit", "--config", str(config), "--trainer.max_steps=4", "--trainer.max_epochs=1", "--trainer.accelerator=cpu", *overrides(config, mnist_root)]
    run = cli(args)
    model, trainer = run.model, run.trainer
    assert trainer.global_step == 4
    assert model.images_seen > 0
    assert trainer.callback_metrics["train/d_loss"].isfinite()
    pictures = list(tmp_path.rglob("samples/latest.png"))
    assert pictures, "SampleGrid wrote no picture"
