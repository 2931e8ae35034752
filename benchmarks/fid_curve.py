"""FID and KID against kimg for DCGAN-32 on real MNIST digits, with EMA, lazy R1 and the offline Inception, on CPU.

Runs ``python -m gans fit --config benchmarks/mnist_fid.yaml`` (the same program as
``lightning fit``) on the MNIST test split, then reads ``metrics/fid``, ``metrics/kid`` and
``train/kimg`` from the CSV log and writes

- ``benchmarks/results/fid_curve_mnist.json``: the curve, the real-vs-real floor at N = 1,000 (the evaluation
  protocol of ``callbacks.FID``), wall time and versions;
- ``benchmarks/results/fid_curve_mnist.png``: FID (with the floor) and KID against kimg;
- ``benchmarks/results/fid_curve_mnist_samples.png``: the last sample grid (EMA generator).

    python benchmarks/fid_curve.py                # 8 epochs = 1,248 batches of 64 = 80 kimg
    python benchmarks/fid_curve.py --epochs 2     # a quick check

The real statistics are cached in ``benchmarks/out/real_stats`` (1,000 real images through the
Inception take minutes on 2 cores; later runs reuse them).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from mnist_dcgan import fresh_workdir, run_measured, save_small_png

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def read_floor(metrics_csv: Path) -> dict[str, float] | None:
    """The real-vs-real floor ``callbacks.FID`` logs once, with its first evaluation (FID, KID x 1e3, N), or None."""
    with metrics_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("metrics/fid_floor")]
    if not rows:
        return None
    r = rows[0]
    return {"fid": float(r["metrics/fid_floor"]), "kid_x1e3": 1e3 * float(r["metrics/kid_floor"]), "n": int(float(r["metrics/floor_n"]))}


def read_curve(metrics_csv: Path) -> list[dict[str, float]]:
    """Rows of the CSV log that hold an FID evaluation: kimg, FID, KID (x 1e3)."""
    with metrics_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("metrics/fid")]
    return [
        {"kimg": float(r["train/kimg"]), "fid": float(r["metrics/fid"]), "kid_x1e3": 1e3 * float(r["metrics/kid"]),
         "kid_std_x1e3": 1e3 * float(r["metrics/kid_std"])}
        for r in rows
    ]  # fmt: skip


def plot(curve: list[dict[str, float]], path: Path, floor: dict[str, float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kimg = [p["kimg"] for p in curve]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    a.plot(kimg, [p["fid"] for p in curve], "o-")
    if floor:
        a.axhline(floor["fid"], color="gray", linestyle="--", label=f"real-vs-real floor (N = {floor['n']})")
        a.legend()
    a.set(xlabel="kimg", ylabel="FID (N = 1,000)", title="FID, EMA generator")
    b.errorbar(kimg, [p["kid_x1e3"] for p in curve], yerr=[p["kid_std_x1e3"] for p in curve], fmt="o-", capsize=3)
    b.set(xlabel="kimg", ylabel="KID x 1e3", title="KID (unbiased)")
    fig.suptitle("DCGAN-32, MNIST test split, CPU: EMA + lazy R1 + FID (TF Inception)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs over the 10,000 digits (156 batches each); default 8")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mnist", help="folder with the t10k *.gz files")
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "mnist_fid", help="run folder (gitignored)")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the curve is written")
    args = parser.parse_args(argv)

    data_root, run = fresh_workdir(args.workdir, args.data)
    cmd = [
        sys.executable, "-m", "gans", "fit",
        "--config", str(HERE / "mnist_fid.yaml"),
        f"--trainer.max_epochs={args.epochs}",
        f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}",
        f"--data.init_args.root={data_root}",
    ]  # fmt: skip
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    wall, foreign_load = run_measured(cmd, env)

    import lightning as L
    import torch

    curve = read_curve(run / "metrics.csv")
    floor = read_floor(run / "metrics.csv")
    record = {
        "command": "python benchmarks/fid_curve.py " + " ".join(argv or []),
        "epochs": args.epochs,
        "reference": "1,000 digits drawn at random with seed 0, stratified by class (gans.metrics.protocol)",
        "floor": floor,
        "curve": curve,
        "wall_s": wall,
        "foreign_cpu_load": foreign_load,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(record, indent=2))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "fid_curve_mnist.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(curve, args.results / "fid_curve_mnist.png", floor)
    save_small_png(run / "samples" / "latest.png", args.results / "fid_curve_mnist_samples.png")


if __name__ == "__main__":
    main(sys.argv[1:])
