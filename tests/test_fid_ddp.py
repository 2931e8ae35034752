"""FID/KID, precision/recall, density/coverage and IS under DDP: 2 gloo processes give the same numbers as 1, with fresh
or cached real statistics."""

import json
from pathlib import Path

import pytest
import torch
from conftest import write_mnist_idx
from helpers import run_ranks

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fid.py"


def run(tmp_path: Path, name: str, devices: int, cache: str, other_ranks_cache: str | None = None) -> dict[str, float]:
    out = tmp_path / f"{name}.json"
    others = [tmp_path / other_ranks_cache] if other_ranks_cache else []
    run_ranks(SCRIPT, out, devices, tmp_path / "data", tmp_path / cache, *others, cwd=tmp_path, timeout=120)
    return json.loads(out.read_text())


def test_two_processes_give_the_same_metrics_as_one(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path / "data", "train", n=64, seed=0)
    ddp_fresh = run(tmp_path, "ddp_fresh", 2, "cache_ddp")  # real statistics extracted in two shares, reduced, cached
    single = run(tmp_path, "single", 1, "cache_single")
    # Rank 0 loads the cache and rank 1 holds nothing, though rank 1 cannot see the cache: rank 0 decides for both (a rank
    # deciding alone would extract features and wait in the statistics' reduction for a partner that never comes).
    ddp_cached = run(tmp_path, "ddp_cached", 2, "cache_ddp", other_ranks_cache="cache_hidden")
    single_cached = run(tmp_path, "single_cached", 1, "cache_ddp")
    for other in (ddp_fresh, ddp_cached, single_cached):
        assert other["metrics/fid"] == pytest.approx(single["metrics/fid"], rel=1e-6)
        assert other["metrics/kid"] == pytest.approx(single["metrics/kid"], rel=1e-5)  # float32 kernel sums
        for name in ("precision", "recall", "density", "coverage", "is", "is_std"):  # gathered whole, in index order
            assert other[f"metrics/{name}"] == pytest.approx(single[f"metrics/{name}"], rel=1e-6), name
    assert single["metrics/precision"] > 0.5 and 0 < single["metrics/coverage"] < 1 and single["metrics/is_std"] > 0
    assert single["metrics/fid"] > 0.1 and single["metrics/kid"] > 0.003  # untrained G vs data: apart
    # The cache written by two ranks holds the same statistics as the one written by one.
    assert not list((tmp_path / "cache_hidden").glob("*"))  # rank 1 read and wrote nothing there
    (ddp_file,), (single_file,) = (list((tmp_path / c).glob("*.pt")) for c in ("cache_ddp", "cache_single"))
    ddp_stats, single_stats = (torch.load(f, weights_only=True) for f in (ddp_file, single_file))
    assert int(ddp_stats["num"]) == int(single_stats["num"]) == 51
    assert torch.allclose(ddp_stats["sum"], single_stats["sum"]) and torch.allclose(ddp_stats["cov_sum"], single_stats["cov_sum"])
    assert torch.equal(ddp_stats["features"], single_stats["features"])  # same images in the same order
