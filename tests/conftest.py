"""Shared fixtures: tiny data in the real formats, so no test downloads or needs ../shared."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# pytest-xdist runs the suite on one worker per core (pyproject's addopts): each worker, and every process a test
# starts, gets its share of the cores, so the workers' math libraries do not oversubscribe them.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _SHARE = max(1, (os.cpu_count() or 1) // _WORKERS)
    torch.set_num_threads(_SHARE)
    os.environ["OMP_NUM_THREADS"] = str(_SHARE)


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test its own ``GANS_CACHE`` (datamodule caches, real FID statistics), so tests running at once on
    different workers never write the same cache file, and no test reads another's."""
    monkeypatch.setenv("GANS_CACHE", str(tmp_path_factory.mktemp("gans_cache")))

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_mnist_idx(root: Path, split: str = "train", n: int = 64, seed: int = 0, gz: bool = True, images: np.ndarray | None = None) -> Path:
    """Write ``n`` random 28x28 digits (or the given uint8 ``images`` [n, 28, 28]) and labels as MNIST IDX files under
    ``root/MNIST/raw``.

    The format is the one of yann.lecun.com: big-endian magic 2051 (images, dims n, 28, 28)
    and 2049 (labels, dim n), uint8 payload; gzipped like the published files when ``gz``.
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if images is None:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    n = len(images)
    labels = (np.arange(n) % 10).astype(np.uint8)
    image_name, label_name = MNIST_FILES[split]
    payloads = {
        image_name: struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes(),
        label_name: struct.pack(">II", 2049, n) + labels.tobytes(),
    }
    for name, payload in payloads.items():
        if gz:
            with gzip.open(raw / f"{name}.gz", "wb") as f:
                f.write(payload)
        else:
            (raw / name).write_bytes(payload)
    return raw


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """A folder with tiny train and test splits of MNIST in the real (gzipped IDX) format."""
    root = tmp_path / "data"
    write_mnist_idx(root, "train", n=64, seed=0)
    write_mnist_idx(root, "test", n=32, seed=1)
    return root


@pytest.fixture
def one_thread():
    """Tiny convolutions run many times faster on one thread than on two contended ones (2-core CI). Modules of tiny
    networks opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
