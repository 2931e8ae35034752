"""W&B through the ``lightning`` command, offline: metrics, sample pictures and hyperparameters reach
the run, and ``fit --ckpt_path`` continues the same W&B run (callbacks.WandbRunId, gans.cli.GANCLI).

Offline runs keep what they log in ``<save_dir>/wandb/offline-run-*/run-<id>.wandb``, a
LevelDB-style log of protobuf records that ``wandb sync`` uploads; ``wandb_records`` reads it.
"""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import wandb
import yaml
from jsonargparse import Namespace
from PIL import Image
from wandb.proto import wandb_internal_pb2

from callbacks.run_id import WandbRunId, wandb_run_id
from gans.cli import GANCLI, cli

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers.*",
    "ignore:.*LeafSpec.*",
)

BLOCK = 32 * 1024  # the log's block size; a record header is never split across blocks
HEADER = struct.Struct("<IHB")  # checksum, length, type (1 full, 2 first, 3 middle, 4 last)


def wandb_records(run_folder: Path, timeout: float = 30.0) -> list[Any]:
    """The protobuf records of a finished offline run's ``.wandb`` transaction log, in order.

    W&B's service may still be writing the log when ``wandb.finish()`` returns: read it again
    until it ends with the run's exit record.
    """
    (log,) = run_folder.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(log)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def read_records(log: Path) -> list[Any]:
    data = log.read_bytes()
    assert data[:4] == b":W&B", f"{log} is not a W&B transaction log"
    records, pos, pending = [], 7, b""  # a 7-byte file header, then records
    while pos + HEADER.size <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER.size:  # block padding
            pos += left_in_block
            continue
        _, length, kind = HEADER.unpack_from(data, pos)
        if length == 0 and kind == 0:  # block padding
            pos += left_in_block
            continue
        if pos + HEADER.size + length > len(data):  # still being written
            break
        chunk = data[pos + HEADER.size : pos + HEADER.size + length]
        pos += HEADER.size + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def logged(run_folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """(history rows, config, run id) of an offline run folder."""
    history, config, run_id = [], {}, None
    for record in wandb_records(run_folder):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "run":
            run_id = record.run.run_id
    return history, config, run_id


def steps_of(history: list[dict[str, Any]], key: str) -> list[int]:
    return [int(row["trainer/global_step"]) for row in history if key in row]


@pytest.fixture
def wandb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Offline W&B writing only under tmp_path, with no run left open by an earlier test nor by this one.

    WandbLogger never finishes its run and reuses one in progress; the command's process ends it at exit.
    """
    wandb.finish()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path / "wb"
    wandb.finish()


def write_config(tmp_path: Path, mnist_root: Path) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 1,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path / "run"),
            "logger": {
                "class_path": "lightning.pytorch.loggers.WandbLogger",
                "init_args": {"project": "gans-tests", "name": "dcgan16", "save_dir": str(tmp_path / "wb")},
            },
            "callbacks": [
                {"class_path": "callbacks.SampleGrid", "init_args": {"every_n_steps": 1, "num_samples": 4, "nrow": 2}},
                {"class_path": "callbacks.FID", "init_args": {
                    "every_kimg": 0.032, "num_samples": 8, "num_real": 8, "cache_dir": str(tmp_path / "fid"),
                    "feature_extractor": {"class_path": "helpers.TinyFeatures"}}},
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True, "save_top_k": 0}},
            ],
        },
        "model": {
            "class_path": "gans.DCGAN",
            "init_args": {"img_resolution": 16, "img_channels": 1, "z_dim": 8, "ngf": 4, "ndf": 4, "lr_d": 3.0e-4},
        },
        "data": {  # 64 images in batches of 32: one epoch is 2 batches, 4 optimizer steps
            "class_path": "datamodules.MNISTDataModule",
            "init_args": {"root": str(mnist_root), "img_resolution": 16, "batch_size": 32, "num_workers": 0, "download": False},
        },
    }
    path = tmp_path / "wandb_dcgan.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit(config: Path, *overrides: str):
    run = cli(["fit", "--config", str(config), *overrides])
    version = run.trainer.logger.version
    wandb.finish()  # what the end of the process does for the command
    return run, version


def test_fit_logs_metrics_samples_and_hyperparameters(wandb_home: Path, mnist_root: Path, tmp_path: Path) -> None:
    run, run_id = fit(write_config(tmp_path, mnist_root))
    assert any(isinstance(cb, WandbRunId) for cb in run.trainer.callbacks), "GANCLI adds WandbRunId for a WandbLogger"
    (folder,) = (wandb_home / "wandb").glob("offline-run-*")
    assert (folder / f"run-{run_id}.wandb").exists()
    history, config, logged_id = logged(folder)
    assert logged_id == run_id

    scalars = [row for row in history if "train/d_loss" in row]
    assert len(scalars) == 2  # log_every_n_steps=1, 2 batches
    for row in scalars:
        for key in ("train/d_loss", "train/g_loss", "train/kimg"):
            assert math.isfinite(row[key]), (key, row)
    assert [row["train/kimg"] for row in scalars] == pytest.approx([0.032, 0.064])

    fid = [row for row in history if "metrics/fid" in row]  # FID against kimg, on the losses' step axis
    assert [row["train/kimg"] for row in fid] == pytest.approx([0.032, 0.064])
    assert all(math.isfinite(row["metrics/fid"]) and "metrics/kid" in row for row in fid)
    assert [row["trainer/global_step"] for row in fid] == [row["trainer/global_step"] for row in scalars]

    pictures = [row for row in history if "samples" in row or "samples/_type" in row]
    assert pictures, "SampleGrid logged no picture to W&B"
    assert {row["trainer/global_step"] for row in pictures} <= {row["trainer/global_step"] for row in scalars}
    pngs = sorted((folder / "files" / "media" / "images").glob("samples_*.png"))
    assert pngs
    with Image.open(pngs[-1]) as picture:
        assert picture.format == "PNG" and picture.width > 0

    assert config["lr_d"] == pytest.approx(3e-4) and config["img_resolution"] == 16  # model init args
    assert config["batch_size"] == 32  # datamodule init args


def test_resume_continues_the_same_wandb_run(wandb_home: Path, mnist_root: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, mnist_root)
    _, first_id = fit(config)
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert wandb_run_id(ckpt) == first_id
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["loggers"] == {"wandb_run_id": first_id}

    resumed, second_id = fit(config, "--trainer.max_epochs=2", f"--ckpt_path={ckpt}")
    assert second_id == first_id
    assert resumed.trainer.global_step == 8
    # offline-run-<start time>-<id>, with "-1" added when both started in the same second
    folders = sorted((wandb_home / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and all((f / f"run-{first_id}.wandb").exists() for f in folders), folders

    (first, _, _), (second, _, id_logged) = (logged(f) for f in folders)
    assert id_logged == first_id
    first_steps, second_steps = steps_of(first, "train/d_loss"), steps_of(second, "train/d_loss")
    assert first_steps and second_steps and min(second_steps) > max(first_steps), (first_steps, second_steps)
    first_kimg = [row["train/kimg"] for row in first if "train/d_loss" in row]
    second_kimg = [row["train/kimg"] for row in second if "train/d_loss" in row]
    assert min(second_kimg) > max(first_kimg)
    # the resumed run's config names the W&B run it continues
    saved = yaml.safe_load((wandb_home / "config.yaml").read_text())
    assert saved["trainer"]["logger"]["init_args"]["id"] == first_id


def test_ckpt_path_last_continues_the_same_wandb_run(wandb_home: Path, mnist_root: Path, tmp_path: Path) -> None:
    """``--ckpt_path last`` is resolved before the logger is built, so it reads the saved run id as an explicit path does."""
    config = write_config(tmp_path, mnist_root)
    _, first_id = fit(config)
    resumed, second_id = fit(config, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert second_id == first_id
    assert resumed.trainer.global_step == 8


def resume_config(ckpt: Path, loggers: list[Namespace]) -> SimpleNamespace:
    """Just what GANCLI.before_instantiate_classes reads of a parsed ``fit`` config."""
    return SimpleNamespace(subcommand="fit", config=Namespace(fit=Namespace(ckpt_path=str(ckpt), trainer=Namespace(logger=loggers))))


def logger_config(class_path: str, **init_args: Any) -> Namespace:
    return Namespace(class_path=class_path, init_args=Namespace(**init_args))


def test_resumed_id_goes_to_the_first_wandb_logger_unless_one_is_set(tmp_path: Path) -> None:
    ckpt = tmp_path / "with_id.ckpt"
    torch.save({"state_dict": {}, "loggers": {"wandb_run_id": "abc123"}}, ckpt)

    loggers = [logger_config("lightning.pytorch.loggers.CSVLogger", save_dir="logs"),
               logger_config("lightning.pytorch.loggers.WandbLogger", id=None, version=None),
               logger_config("lightning.pytorch.loggers.WandbLogger", id=None, version=None)]
    fake_cli = resume_config(ckpt, loggers)
    GANCLI.before_instantiate_classes(fake_cli)
    assert "id" not in loggers[0].init_args
    assert loggers[1].init_args.id == "abc123"
    assert loggers[2].init_args.id is None

    single = logger_config("lightning.pytorch.loggers.WandbLogger", id="mine", version=None)
    GANCLI.before_instantiate_classes(resume_config(ckpt, single))
    assert single.init_args.id == "mine"

    no_id = tmp_path / "without_id.ckpt"
    torch.save({"state_dict": {}}, no_id)
    fresh = logger_config("lightning.pytorch.loggers.WandbLogger", id=None, version=None)
    GANCLI.before_instantiate_classes(resume_config(no_id, fresh))
    assert fresh.init_args.id is None


def test_run_id_is_none_without_a_readable_checkpoint(tmp_path: Path) -> None:
    assert wandb_run_id(None) is None
    assert wandb_run_id("last") is None
    assert wandb_run_id(tmp_path / "missing.ckpt") is None
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="new W&B run"):
        assert wandb_run_id(broken) is None
