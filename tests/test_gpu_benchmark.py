"""benchmarks/gpu/run.py --smoke: the GPU table's whole path (lightning fit from each config with the benchmark's
overrides, then the protocol's evaluation and the table) on the CPU, on tiny data in the shared data's formats."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from helpers import write_folder, zip_folder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread beats two contended ones

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "run.py"


def tiny_shared_data(root: Path) -> Path:
    """``faces/celeba-10k.zip``, ``anime-faces/{images,tags.csv}`` and ``edges-pairs/{train,val}`` with a few images each."""
    zip_folder(write_folder(root / "faces_folder", n=40, size=(64, 64)), (root / "faces").mkdir(parents=True) or root / "faces" / "celeba-10k.zip")
    write_folder(root / "anime-faces", n=40, size=(32, 32), sub="images", seed=1)
    hair, eyes = ["aqua", "black", "blonde"], ["blue", "red"]
    (root / "anime-faces" / "tags.csv").write_text("".join(f"{i},{hair[i % 3]} hair {eyes[(i // 3) % 2]} eyes\n" for i in range(40)))
    for seed, split in enumerate(("train", "val")):
        write_folder(root / "edges-pairs", n=6, size=(128, 64), sub=split, seed=seed + 2)
    return root


def test_the_smoke_run_trains_evaluates_and_prints_the_table(tmp_path: Path, capsys, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("gpu_run", SCRIPT)
    run = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_run", run)  # dataclasses look their module up
    spec.loader.exec_module(run)
    data = tiny_shared_data(tmp_path / "data")
    out = tmp_path / "out"
    rows = run.main(["--smoke", "--data-root", str(data), "--out", str(out), "--feature-extractor", "helpers.GreyTinyFeatures"])
    assert [row["model"] for row in rows] == [r.name for r in run.RUNS]
    for row in rows:
        assert row["kimg"] > 0 and row["img_per_s"] > 0, row
        assert row["fid"] >= 0 and "kid_std" in row and row["n_fake"] == row["n_real"], row
        assert row["floor_fid"] >= 0 and row["floor_n"] >= 2, row
        assert (out / f"{run.slug(row['model'])}.png").is_file()
    gans_rows = rows[:3]
    assert all(row["n_real"] == run.SMOKE_NUM and row["floor_n"] == run.SMOKE_NUM and "precision" in row for row in gans_rows)
    pix2pix = rows[3]
    assert pix2pix["n_real"] == 6 and pix2pix["floor_n"] == 3  # the 6 held-back pairs: a floor at 3 against 3, said so
    table = (out / "results.md").read_text()
    assert table.startswith("| model | img/s | kimg | FID | KID x 1e3 |") and table.count("\n| ") == 1 + len(rows)
    assert "fewer than 2 x 6" in table and "CPU (smoke)" in table
    assert json.loads((out / "results.json").read_text())["smoke"] is True
    assert table.splitlines()[0] in capsys.readouterr().out
    # Each run's exact config is kept beside it: the committed config with the benchmark's overrides.
    config = (out / "stylegan2_64_auto_faces" / "config.yaml").read_text()
    assert "max_time" in config and str(data / "faces" / "celeba-10k.zip") in config
