"""benchmarks/faces_fid.py's choices that decide which numbers a table holds: which checkpoints ``--at`` picks."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "faces_fid.py"


def load_script():
    spec = importlib.util.spec_from_file_location("faces_fid", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_at_picks_the_first_checkpoint_at_or_past_each_kimg() -> None:
    faces_fid = load_script()
    # Batch 64: a checkpoint every 5 kimg lands at the first batch end past each multiple.
    names = ["kimg00005.056", "kimg00010.048", "kimg00015.040", "kimg00020.032", "kimg00025.024", "kimg00030.016"]
    checkpoints = [Path(f"run/checkpoints/{name}.ckpt") for name in names]
    chosen = faces_fid.checkpoints_at(checkpoints, [10, 20, 30])
    assert [faces_fid.kimg_of(c) for c in chosen] == [10.048, 20.032, 30.016]
    # Exact kimg as before, repeats counted once, and a kimg past the last checkpoint picks nothing.
    exact = [Path(f"kimg{k:08.3f}.ckpt") for k in (5, 10, 15)]
    assert faces_fid.checkpoints_at(exact, [10, 10.0, 12, 40]) == [exact[1], exact[2]]
