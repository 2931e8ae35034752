"""StyleGAN3 (Karras et al. 2021, arXiv:2106.12423) training speed, configs T and R, batch 8, fp32.

One batch = the module's D step on 8 real and 8 fresh fake images (the fakes move the magnitude EMAs), its G step
on 8 fakes, and lazy R1 on every 16th batch from the first (StyleGAN3 has no path length and no style mixing);
timed with ``Trainer.fit`` on random in-memory images over ``--batches`` batches after ``--warmup`` (``--batches``
a multiple of 16, so the timed window holds its share of R1). ADA is off (``augment: none``: the networks' speed);
R keeps its D-input blur (sigma 10 at the start, as ``train.py``). The cases:

- ``t32`` / ``r32``: the generators of ../shared/fixtures/stylegan3-reference (32 px, z/w 128, a 2-layer mapping;
  T channel_base 1024 / channel_max 64; R 2048 / 128, 1x1 convolutions, radial filters) with the StyleGAN2
  discriminator at ../shared/fixtures/stylegan2-reference's widths (resnet, channel_base 1024 / channel_max 64);
- ``t64`` / ``r64``: 64 px with experiments/stylegan3_faces_cpu.yaml's widths (z/w 128; G T 512 / 32, R doubled as
  ``train.py``: 1024 / 64; D 1024 / 128);
- ``sg2_32``: StyleGAN2 for comparison at the stylegan2-reference fixture's widths (32 px, z/w 128, G skip and D
  resnet at 1024 / 64) with StyleGAN3's work per batch: a 2-layer mapping, no path length, no style mixing.

R1 gamma is ``2 * (res / 256)^2`` (docs/configs.md's 2 at 256 px), the magnitude EMA beta ``0.5^(8 / 20000)`` and
the blur fade ``8 * 200 / 32`` kimg (``train.py`` for batch 8). The machine may be shared: each case waits up to
``--quiet-wait`` s for other processes to go quiet and prints the share of the CPUs they used while it was timed.

    python benchmarks/stylegan3_speed.py                                  # every case, 32 timed batches after 2
    OMP_NUM_THREADS=1 python benchmarks/stylegan3_speed.py --batches 16 --cases t32 r32
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from throughput import device_label, make_loader, time_fit

from gans import StyleGAN2, StyleGAN3

BATCH = 8


def stylegan3(res: int, config: str, g_base: int, g_max: int, d_base: int, d_max: int) -> StyleGAN3:
    """StyleGAN3 at ``res`` px with the official recipe for batch 8 and the given widths."""
    return StyleGAN3(img_resolution=res, config=config, z_dim=128, w_dim=128, channel_base=g_base, channel_max=g_max,
                     mapping_layers=2, magnitude_ema_beta=0.5 ** (BATCH / 20000), d_channel_base=d_base, d_channel_max=d_max,
                     mbstd_group_size=4, r1_gamma=2 * (res / 256) ** 2, r1_interval=16, blur_fade_kimg=BATCH * 200 / 32,
                     augment="none")


def stylegan2_32() -> StyleGAN2:
    """StyleGAN2 at the stylegan2-reference fixture's widths with StyleGAN3's work per batch."""
    return StyleGAN2(img_resolution=32, z_dim=128, w_dim=128, channel_base=1024, channel_max=64, mapping_layers=2,
                     mbstd_group_size=4, style_mixing_prob=0.0, r1_gamma=2 * (32 / 256) ** 2, r1_interval=16, pl_weight=0.0,
                     augment="none")


CASES: dict[str, tuple[str, int, Callable[[], L.LightningModule]]] = {
    "t32": ("StyleGAN3-T, fixture widths", 32, lambda: stylegan3(32, "t", 1024, 64, 1024, 64)),
    "r32": ("StyleGAN3-R, fixture widths", 32, lambda: stylegan3(32, "r", 2048, 128, 1024, 64)),
    "t64": ("StyleGAN3-T, faces_cpu widths", 64, lambda: stylegan3(64, "t", 512, 32, 1024, 128)),
    "r64": ("StyleGAN3-R, faces_cpu widths", 64, lambda: stylegan3(64, "r", 1024, 64, 1024, 128)),
    "sg2_32": ("StyleGAN2, fixture widths", 32, stylegan2_32),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--batches", type=int, default=32, help="timed batches per case")
    parser.add_argument("--warmup", type=int, default=2, help="batches before the timer starts")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="before each case, wait up to this many seconds for other processes to go quiet")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    for logger in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    print(f"# torch {torch.__version__}, {device_label(args.accelerator)}, {os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; batch {BATCH}, fp32, {args.batches} timed batches after {args.warmup}", flush=True)
    print("| case | model | px | G / D parameters | s per batch | img/s | foreign CPU load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.cases:
        label, res, build = CASES[name]
        torch.manual_seed(0)
        model = build()
        n_g = sum(p.numel() for p in model.generator.parameters())
        n_d = sum(p.numel() for p in model.discriminator.parameters())
        loader = make_loader((3, res, res), args.warmup + args.batches, seed=0, batch=BATCH)
        meter = time_fit(model, loader, args.warmup, args.batches, args.accelerator, args.quiet_wait)
        seconds = meter.seconds / args.batches
        print(f"| {name} | {label} | {res} | {n_g:,} / {n_d:,} | {seconds:.3f} | {BATCH / seconds:.1f} | {meter.foreign_load:.0%} |", flush=True)
    print("\nForeign CPU load: the share of the machine's CPUs other processes used while the case was timed (0 % = the machine "
          "was ours); a high load slows the case.")


if __name__ == "__main__":
    main()
