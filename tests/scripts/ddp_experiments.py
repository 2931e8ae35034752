"""Fit experiments/ configs through the real CLI on 2 CPU processes (gloo DDP), every callback to the end of fit.

Run by tests/test_ddp.py as ``python ddp_experiments.py OUT_DIR MNIST_ROOT CONFIG...`` (config names, without
``.yaml``); Lightning's launcher starts rank 1 by re-running this command at the first fit, and both ranks then go
through the configs in turn. Each config runs as tests/test_experiments.py runs it on one process (tiny data, narrow
networks, 4 optimizer steps), with the FID feature extractor and the PPL distance swapped for tiny ones: what is
tested is that every callback reaches the end of fit on both ranks (no rank-0-only branch enters a collective),
not the metrics' values. Each rank writes ``OUT_DIR/rank{r}.json``: per config, its counters, the metrics it ended
with, and (rank 0) the pictures and checkpoints the run left.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # helpers and test_experiments' tiny-data overrides

from test_experiments import overrides, with_tiny_fid  # noqa: E402

from gans.cli import cli  # noqa: E402

CHEAP = {  # class_path -> init_args: tiny networks for the metrics, small pictures
    "callbacks.FID": {"feature_extractor": {"class_path": "helpers.GreyTinyFeatures"}},
    "callbacks.PPL": {"distance": "gans.metrics.perceptual.pixel_distance"},
    "callbacks.SampleGrid": {"num_samples": 8, "nrow": 4},  # conditional: 4 columns per class row
    "callbacks.TranslationGrid": {"num_examples": 2},
}


def tiny_config(name: str, work: Path) -> Path:
    """The tiny-FID copy of experiments/<name>.yaml (test_experiments.with_tiny_fid), with tiny metric networks and pictures."""
    config = with_tiny_fid(TESTS.parent / "experiments" / f"{name}.yaml", work / f"{name}.yaml")
    settings = yaml.safe_load(config.read_text())
    for callback in settings["trainer"].get("callbacks", []):
        callback.setdefault("init_args", {}).update(CHEAP.get(callback["class_path"], {}))
    config.write_text(yaml.safe_dump(settings))
    return config


if __name__ == "__main__":
    out_dir, mnist_root, names = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), sys.argv[3:]
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by Lightning's launcher (rank 0: from its first fit on)
    records = {}
    monkeypatch = pytest.MonkeyPatch()
    for name in names:
        work = out_dir / name
        own = work / f"rank{rank}"  # each rank its own tiny data and caches: no two processes write one file
        own.mkdir(parents=True, exist_ok=True)
        os.chdir(work)  # the configs write to runs/<name> relative to the working directory
        os.environ["GANS_CACHE"] = str(own / "gans_cache")
        print(f"rank {rank}: {name}", file=sys.stderr, flush=True)  # in the test's report if a rank fails or hangs
        config = tiny_config(name, own)
        args = ["fit", "--config", str(config), "--trainer.max_steps=4", "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
                *overrides(config, mnist_root, own, monkeypatch),
                "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]  # last: over SHRINK's devices=1
        run = cli(args)
        trainer, model = run.trainer, run.model
        records[name] = {
            "global_step": trainer.global_step, "images_seen": model.images_seen, "world_size": trainer.world_size,
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("metrics/")},
            "pictures": sorted(str(p.relative_to(work)) for p in work.glob("runs/**/samples/latest.png")),
            "checkpoints": sorted(p.name for p in work.glob("runs/**/*.ckpt")),
        }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(records))
