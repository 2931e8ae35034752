"""DDP with 2 CPU processes (gloo): parameters and buffers stay identical across ranks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fit.py"


@pytest.mark.parametrize("model", ["dcgan", "wgan_gp"])
def test_ddp_two_processes_keep_ranks_identical(tmp_path: Path, model: str) -> None:
    # One thread per process: two ranks on a 2-core machine, no OpenMP oversubscription.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), model], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # Both networks trained: every floating-point parameter moved on both ranks.
    moved = [k for k, v in rank0["after"].items() if v.is_floating_point() and not torch.equal(v, rank0["before"][k])]
    assert any(k.startswith("generator.") for k in moved) and any(k.startswith("discriminator.") for k in moved)
    for name, value in rank0["after"].items():
        assert torch.equal(value, rank1["after"][name]), f"{name} differs across ranks"
    # 12 optimizer steps with n_critic 2 = 8 batches (8 D + 4 G steps); images counted over both ranks.
    assert rank0["g_steps"] == rank1["g_steps"] == 4
    assert rank0["images_seen"] == rank1["images_seen"] == 8 * 8 * 2
