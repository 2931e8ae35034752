"""StyleGAN2 training speed at 64 px, batch 8, fp32, against the official code's reference-op speed.

The network is the official stylegan2-ada-pytorch ``auto`` configuration at 64 px (channel_base 16384,
channel_max 512, a 2-layer mapping: G 22,243,608 and D 23,407,361 parameters, pinned in
tests/test_stylegan2.py). One batch = a D step on 8 real and 8 fresh fake images and a G step on 8 fakes,
with style mixing 0.9, plus StyleGAN2's lazy regularisation phases (:mod:`gans.training.phases`): R1 on every
16th batch and path length (batch 4) on every 4th G step, from the first; timed over ``--batches`` batches after
``--warmup`` (``--batches`` a multiple of 16, so the timed window holds its share of both regularisers), through
``Trainer.fit`` on random in-memory images. The official code, run on the same kind of 2-core machine with
its reference (non-CUDA) ops, takes about 22 s per such batch (the issue's measurement).

    python benchmarks/stylegan2_speed.py                   # 32 timed batches after 2 warm-up batches
    python benchmarks/stylegan2_speed.py --batches 16 --accelerator gpu
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from throughput import device_label, make_loader, time_fit

from gans import StyleGAN2

OFFICIAL_SECONDS_PER_BATCH = 22.0
BATCH = 8


def build() -> StyleGAN2:
    """The official ``auto`` configuration at 64 px on one GPU (lr 0.0025; gamma 0.0002 * 64^2 / batch, lazy every 16
    batches; path length weight 2 every 4 G steps: StyleGAN2's defaults)."""
    return StyleGAN2(img_resolution=64, channel_base=16384, channel_max=512, mapping_layers=2, mbstd_group_size=4, lr_g=0.0025, lr_d=0.0025,
                     r1_gamma=0.0002 * 64**2 / BATCH, r1_interval=16, pl_weight=2.0, pl_interval=4,
                     augment="none")  # the networks' speed, as recorded before ADA became StyleGAN2's default


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=32, help="timed batches")
    parser.add_argument("--warmup", type=int, default=2, help="batches before the timer starts")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="wait up to this many seconds for other processes to go quiet")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    model = build()
    n_g = sum(p.numel() for p in model.generator.parameters())
    n_d = sum(p.numel() for p in model.discriminator.parameters())
    loader = make_loader((3, 64, 64), args.warmup + args.batches, seed=0, batch=BATCH)
    meter = time_fit(model, loader, args.warmup, args.batches, args.accelerator, args.quiet_wait)
    seconds = meter.seconds / args.batches
    device = device_label(args.accelerator)
    print(f"StyleGAN2 auto-64: G {n_g:,} / D {n_d:,} parameters, batch {BATCH}, fp32, {device}")
    print(f"{seconds:.2f} s per batch ({BATCH / seconds:.2f} img/s) over {args.batches} batches; "
          f"official reference ops: {OFFICIAL_SECONDS_PER_BATCH:.0f} s per batch -> {OFFICIAL_SECONDS_PER_BATCH / seconds:.1f}x faster; "
          f"other processes used {meter.foreign_load:.0%} of the CPUs meanwhile")


if __name__ == "__main__":
    main()
