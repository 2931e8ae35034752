"""FID/KID under DDP: 2 gloo processes give the same numbers as 1, with fresh or cached real statistics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_mnist_idx

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fid.py"


def run(tmp_path: Path, name: str, devices: int, cache: str) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / f"{name}.json"
    args = [sys.executable, str(SCRIPT), str(out), str(devices), str(tmp_path / "data"), str(tmp_path / cache)]
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_give_the_same_fid_and_kid_as_one(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path / "data", "train", n=64, seed=0)
    ddp_fresh = run(tmp_path, "ddp_fresh", 2, "cache_ddp")  # real statistics extracted in two shares, reduced, cached
    single = run(tmp_path, "single", 1, "cache_single")
    ddp_cached = run(tmp_path, "ddp_cached", 2, "cache_ddp")  # rank 0 loads the cache, rank 1 holds nothing
    single_cached = run(tmp_path, "single_cached", 1, "cache_ddp")
    for other in (ddp_fresh, ddp_cached, single_cached):
        assert other["metrics/fid"] == pytest.approx(single["metrics/fid"], rel=1e-6)
        assert other["metrics/kid"] == pytest.approx(single["metrics/kid"], rel=1e-5)  # float32 kernel sums
    assert single["metrics/fid"] > 0.1 and single["metrics/kid"] > 0.01  # untrained G vs data: far apart
    # The cache written by two ranks holds the same statistics as the one written by one.
    (ddp_file,), (single_file,) = (list((tmp_path / c).glob("*.pt")) for c in ("cache_ddp", "cache_single"))
    ddp_stats, single_stats = (torch.load(f, weights_only=True) for f in (ddp_file, single_file))
    assert int(ddp_stats["num"]) == int(single_stats["num"]) == 51
    assert torch.allclose(ddp_stats["sum"], single_stats["sum"]) and torch.allclose(ddp_stats["cov_sum"], single_stats["cov_sum"])
    assert torch.equal(ddp_stats["features"], single_stats["features"])  # same images in the same order
