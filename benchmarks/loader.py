"""DataLoader throughput alone (no model): images/s of the cached uint8 datamodules against decoding every time.

- MNIST (test split from a folder of the two t10k .gz files) at 28 and 32 px: the old path (torchvision's
  MNIST with the per-image PIL transforms of ``MNISTDataModule.transform()``, default collate) against the
  cached uint8 tensor with whole-batch fetches, and the cached tensor fetched one image at a time.
- A zip of face JPEGs at 32 and 64 px: the time to build the disk cache once, then img/s from the cache
  against ``cache="none"`` (read and decode every JPEG from the zip every time).

    python benchmarks/loader.py --mnist ../shared/data/mnist --faces ../shared/data/faces/celeba-10k.zip
    python benchmarks/loader.py --train 600     # training img/s of the MLP GAN (gan_mnist.yaml) on both loaders
    python benchmarks/loader.py --stages 64 --batches 150   # progressive-growing stages of the faces zip at 64 px

``--stages R`` times the low stages of progressive growing from a disk cache of the faces at R px, 0 workers:
float-pooling full-resolution batches (the loader before the uint8 pyramid) against serving the stage's
pyramid level, and the one-off time to build each level.

``--train N`` also trains ``gans.GAN`` (the networks of experiments/gan_mnist.yaml, batch 100, with Adam) for N batches
on the MNIST test split through the same ``Trainer``, once with the old loader and once with the datamodule's
cached one, and reports training images/s after the first 50 batches.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from datamodules import ImageFolderDataModule, MNISTDataModule
from datamodules.images import ImageDataset, batch_loader
from datamodules.mnist import MNISTSplit


def images_per_second(loader: DataLoader, batches: int) -> float:
    """Images/s over ``batches`` batches, after one warm-up batch (worker start-up excluded)."""
    iterator = iter(loader)
    next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
        count += len(images)
    return count / (time.perf_counter() - start)


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def mnist_rows(gz_folder: Path, work: Path, args) -> list[tuple]:
    root = work / "mnist"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(gz_folder / name, raw / name)
    rows = []
    for resolution in (28, 32):
        for workers in args.workers:
            dm = MNISTDataModule(str(root), split="test", img_resolution=resolution, batch_size=args.batch_size,
                                 num_workers=workers, download=False)
            start = time.perf_counter()
            dm.prepare_data()
            dm.setup("fit")
            setup_s = time.perf_counter() - start
            old = DataLoader(MNISTSplit(root, "test", download=False, transform=dm.transform()), batch_size=args.batch_size,
                             shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0)
            per_item = DataLoader(dm.dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=workers)
            before = images_per_second(old, args.batches)
            itemwise = images_per_second(per_item, args.batches)
            after = images_per_second(dm.train_dataloader(), args.batches)
            rows.append((f"MNIST test {resolution} px", workers, f"{before:,.0f}", f"{after:,.0f}",
                         f"{after / before:.1f}x", f"setup {setup_s:.2f} s; per-image fetch from the cache {itemwise:,.0f}"))
    return rows


def faces_rows(archive: Path, work: Path, args) -> list[tuple]:
    rows = []
    for resolution in (32, 64):
        cache_dir = work / f"cache{resolution}"
        build = ImageFolderDataModule(str(archive), img_resolution=resolution, num_workers=2, cache="disk",
                                      cache_dir=str(cache_dir))
        start = time.perf_counter()
        build.prepare_data()
        build_s = time.perf_counter() - start
        for workers in args.workers:
            def loader(cache: str) -> DataLoader:
                dm = ImageFolderDataModule(str(archive), img_resolution=resolution, batch_size=args.batch_size,
                                           num_workers=workers, cache=cache, cache_dir=str(cache_dir))
                dm.prepare_data()
                dm.setup("fit")
                return dm.train_dataloader()

            before = images_per_second(loader("none"), args.batches)
            after = images_per_second(loader("disk"), args.batches)
            rows.append((f"faces zip {resolution} px", workers, f"{before:,.0f}", f"{after:,.0f}",
                         f"{after / before:.0f}x", f"cache built once in {build_s:.1f} s (2 threads)"))
    return rows


def stage_rows(archive: Path, work: Path, resolution: int, args) -> list[tuple]:
    """Img/s at each stage below ``resolution``: pooling full-resolution batches against the pyramid level."""
    dm = ImageFolderDataModule(str(archive), img_resolution=resolution, batch_size=args.batch_size, num_workers=0,
                               cache="disk", cache_dir=str(work / "stages"))
    dm.prepare_data()
    dm.setup("fit")
    rows = []
    stage = 4
    while stage < resolution:
        dm.set_stage(stage)
        pooled = batch_loader(ImageDataset(dm.dataset.pixels, None, stage), args.batch_size, 0, False)
        start = time.perf_counter()
        level = dm.train_dataloader()  # builds the level
        build_s = time.perf_counter() - start
        before = images_per_second(pooled, args.batches)
        after = images_per_second(level, args.batches)
        rows.append((f"faces zip {resolution} px, {stage}x{stage} stage", f"{before:,.0f}", f"{after:,.0f}",
                     f"{after / before:.1f}x", f"level built once in {build_s:.2f} s"))
        stage *= 2
    return rows


class TrainingSpeed(L.Callback):
    """Images/s of the training loop from batch ``skip`` to the end."""

    def __init__(self, skip: int = 50) -> None:
        self.skip, self.images, self.start = skip, 0, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.completed == self.skip:
            self.start, self.images = time.perf_counter(), 0
        elif self.start is not None:
            self.images += len(batch[0])

    def img_s(self) -> float:
        return self.images / (time.perf_counter() - self.start)


def training_rows(gz_folder: Path, work: Path, batches: int) -> list[tuple]:
    """MLP GAN (gan_mnist.yaml's networks, Adam) on MNIST: training img/s with the old loader and the cached one."""
    from gans import GAN

    root = work / "mnist_train"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(gz_folder / name, raw / name)
    dm = MNISTDataModule(str(root), split="test", img_resolution=28, batch_size=100, num_workers=0, download=False)
    dm.prepare_data()
    dm.setup("fit")
    loaders = {
        "before: PIL transforms per image": DataLoader(MNISTSplit(root, "test", download=False, transform=dm.transform()),
                                                      batch_size=100, shuffle=True, drop_last=True),
        "after: uint8 cache": dm.train_dataloader(),
    }
    rows = []
    for name, loader in loaders.items():
        L.seed_everything(0)
        speed = TrainingSpeed()
        trainer = L.Trainer(accelerator="cpu", max_steps=2 * batches, max_epochs=-1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[speed])
        # The MLP GAN's networks with Adam: its default SGD recipe diverges on this split within ~100 batches.
        trainer.fit(GAN(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)), loader)
        rows.append((name, f"{speed.img_s():,.0f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, default=Path("../shared/data/mnist"), help="folder with the t10k .gz files")
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/faces/celeba-10k.zip"), help="zip of JPEGs")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--train", type=int, default=0, help="also train the MLP GAN this many batches per loader")
    parser.add_argument("--stages", type=int, default=0, help="only time the low stages of the faces at this resolution")
    args = parser.parse_args()
    if args.stages:
        print(f"load average (1/5/15 min) before: {load_average()}; torch threads {torch.get_num_threads()}")
        with tempfile.TemporaryDirectory() as tmp:
            rows = stage_rows(args.faces, Path(tmp), args.stages, args)
        print(f"load average after: {load_average()}\n")
        print("| data, stage | before: pool full-size batches (img/s) | after: pyramid level (img/s) | speed-up | notes |")
        print("| --- | --- | --- | --- | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    if args.train:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"load average before: {load_average()}")
            rows = training_rows(args.mnist, Path(tmp), args.train)
            print(f"load average after: {load_average()}\n")
        print("| MLP GAN on MNIST, batch 100, 1 process | training img/s |\n| --- | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return

    print(f"load average (1/5/15 min) before: {load_average()}; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = mnist_rows(args.mnist, Path(tmp), args) + faces_rows(args.faces, Path(tmp), args)
    print(f"load average after: {load_average()}\n")
    print("| data | workers | before: decode every time (img/s) | after: uint8 cache (img/s) | speed-up | notes |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
