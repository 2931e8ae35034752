"""Small helpers shared by the tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import nn

from callbacks.schedule import KimgMetric


def quiet_trainer(root: Path, max_steps: int, **overrides: Any) -> L.Trainer:
    """A CPU Trainer with no logger, checkpoints, progress bar or summary unless ``overrides`` asks."""
    settings: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        default_root_dir=root,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,  # tests read the last batch's metrics; models log only on logging steps
    )
    settings.update(overrides)
    return L.Trainer(**settings)


def run_ranks(script: Path, *args: Any, cwd: Path, timeout: float = 300) -> str:
    """Run a DDP test script, ``python script *args``, whose Lightning launcher starts the other ranks, and return its
    stderr; fails the test, with the end of stderr, when the script fails or outlasts ``timeout`` seconds.

    One thread per process (two ranks on a 2-core machine, no OpenMP oversubscription), and a session of its own: a
    rank left waiting in a collective that no other rank enters is killed with the rest on timeout, not left behind."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with subprocess.Popen([sys.executable, str(script), *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as process:
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate()
            raise AssertionError(f"{script.name} {' '.join(map(str, args))} still running after {timeout} s (a rank waiting in a collective?):\n"
                                 f"{stderr[-3000:]}") from None
    assert process.returncode == 0, stderr[-3000:]
    return stderr


class TinyFeatures(nn.Module):
    """A fixed random conv net: uint8 images to 8 features (the mean and spread of 4 filter responses);
    counts the images it sees. A stand-in for Inception in tests of callbacks.FID."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=torch.Generator().manual_seed(123)))
            self.conv.bias.zero_()
        self.conv.requires_grad_(False)
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8
        self.images_seen += images.shape[0]
        h = self.conv(images.float() / 127.5 - 1)
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], dim=1)


class GreyTinyFeatures(TinyFeatures):
    """:class:`TinyFeatures` for images of any channel count (their channel mean): a stand-in for Inception that a
    config's ``callbacks.FID`` can name by class path (``helpers.GreyTinyFeatures``)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(images.float().mean(dim=1, keepdim=True).round().to(torch.uint8))


def random_images(n: int, size: tuple[int, int] = (16, 16), seed: int = 0) -> np.ndarray:
    """``n`` random RGB images [n, height, width, 3]."""
    width, height = size
    return np.random.default_rng(seed).integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)


def write_folder(root: Path, n: int = 8, size: tuple[int, int] = (16, 16), seed: int = 0, sub: str = "") -> Path:
    """``n`` random PNGs named ``0.png`` ... under ``root/sub``."""
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    for i, pixels in enumerate(random_images(n, size, seed)):
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def zip_folder(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, file.relative_to(folder).as_posix())
    return path


def write_cifar10(root: Path, per_batch: int = 4, seed: int = 0, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> dict[str, str]:
    """Tiny CIFAR-10 in the real format under ``root/cifar-10-batches-py``: the five ``data_batch_*`` and the ``test_batch``
    pickles (dicts with ``data`` uint8 [n, 3072] in channel-planar order and ``labels``) and ``batches.meta`` (``label_names``).
    The training batches hold ``images`` [5 * per_batch, 32, 32, 3] (random by default) with ``labels`` (i mod 10 by default).
    Returns the checksum table with these files' MD5 sums in place of the genuine ones, for
    ``monkeypatch.setattr(CIFAR10DataModule, "checksums", ...)``."""
    import hashlib
    import pickle

    from datamodules.cifar import (
        CLASS_NAMES,
        GENUINE_CHECKSUMS,
        META_FILE,
        TEST_FILES,
        TRAIN_FILES,
    )

    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    n = 5 * per_batch
    if images is None:
        images = np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    if labels is None:
        labels = np.arange(n) % 10
    planar = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # R plane, G plane, B plane, as the real files
    parts = {name: slice(i * per_batch, (i + 1) * per_batch) for i, name in enumerate(TRAIN_FILES)}
    for name in [*TRAIN_FILES, *TEST_FILES]:
        part = parts.get(name, slice(0, per_batch))
        entry = {"batch_label": name, "labels": [int(c) for c in labels[part]], "data": planar[part],
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": CLASS_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / META_FILE).write_bytes(pickle.dumps(meta, protocol=2))
    return {**GENUINE_CHECKSUMS, **{file.name: hashlib.md5(file.read_bytes()).hexdigest() for file in folder.iterdir()}}


def count_parameters(module: nn.Module) -> int:
    """Trainable and frozen parameters of ``module`` (what the papers' parameter counts count; buffers are not)."""
    return sum(p.numel() for p in module.parameters())


class InterruptAtEnd(KimgMetric):
    """An end-of-fit evaluation that the user interrupts with Ctrl-C: its evaluation raises KeyboardInterrupt (a config
    names it by class path, ``helpers.InterruptAtEnd``)."""

    def __init__(self) -> None:
        super().__init__(every_kimg=0, at_start=False, at_end=True)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        raise KeyboardInterrupt
