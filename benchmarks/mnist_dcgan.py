"""DCGAN-32 on real MNIST digits through the `lightning fit` CLI, on CPU: wall time and a sample grid.

Trains ``gans.DCGAN(img_resolution=32, img_channels=1)`` on the MNIST test split (the two
t10k files, 10,000 digits) with ``benchmarks/mnist_dcgan.yaml``: batch 64, Adam 2e-4
(0.5, 0.999), non-saturating loss, ``callbacks.SampleGrid`` every 500 steps. The run goes
through the real command line (``python -m gans fit``, the same program as ``lightning fit``)
in a subprocess, with a small timing callback from this file added on the command line.

It records
- the wall time of the whole command (start-up, data preparation, training, the last grid),
- the time of the training loop alone and its steady-state speed (after the first 20 steps),
- the final D/G losses from the CSV log,
and copies the last sample grid (real digits left, generated right) to
``benchmarks/results/dcgan_mnist32.png`` and the numbers to ``benchmarks/results/dcgan_mnist32.json``.

    python benchmarks/mnist_dcgan.py                 # default step count
    python benchmarks/mnist_dcgan.py --steps 200     # a quick check

A training step = one real batch = one D step + one G step; Lightning's ``trainer.global_step``
counts both optimizer steps, so ``trainer.max_steps`` is set to 2 x ``--steps``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import lightning as L

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TIMER_WARMUP = 20


class FitTimer(L.Callback):
    """Writes ``<default_root_dir>/fit_timer.json``: training-loop seconds, and the speed after ``warmup`` steps."""

    def __init__(self, warmup: int = TIMER_WARMUP) -> None:
        self.warmup = warmup
        self.t_start = self.t_warm = None
        self.steps = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.t_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps += 1
        if self.steps == self.warmup:
            self.t_warm = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        t_end = time.perf_counter()
        record = {
            "train_loop_s": t_end - self.t_start,
            "train_steps": self.steps,
            "global_step": trainer.global_step,
        }
        if self.t_warm is not None and self.steps > self.warmup:
            record["steady_steps_per_s"] = (self.steps - self.warmup) / (t_end - self.t_warm)
            record["steady_img_per_s"] = record["steady_steps_per_s"] * trainer.datamodule.hparams.batch_size
        path = Path(trainer.default_root_dir) / "fit_timer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))


def machine_busy_s() -> float:
    """Non-idle CPU seconds of the whole machine since boot (Linux /proc/stat); 0 elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_and_children_cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def prepare_data(src: Path, root: Path) -> None:
    """Symlink the two t10k files into ``root/MNIST/raw`` (the datamodule extracts them there)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        if not (src / name).is_file():
            sys.exit(f"{src / name} not found: pass --data, the folder with {' and '.join(MNIST_FILES)}.")
        link = raw / name
        if not link.exists():
            link.symlink_to((src / name).resolve())


def fresh_workdir(workdir: Path, data: Path) -> tuple[Path, Path]:
    """Empty ``workdir`` and link the MNIST files into it; returns (data root, run folder)."""
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    prepare_data(data, workdir / "data")
    return workdir / "data", workdir / "run"


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, float]:
    """Run ``cmd`` in ``cwd`` (the repository root by default); returns (wall seconds, share of the machine's
    CPUs that other processes used meanwhile: the machine is shared)."""
    print("$ " + " ".join(cmd[1:] if cmd[0] == sys.executable else cmd), flush=True)
    busy0, own0 = machine_busy_s(), own_and_children_cpu_s()
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True)
    wall = time.perf_counter() - t0
    others = (machine_busy_s() - busy0) - (own_and_children_cpu_s() - own0)
    return wall, max(0.0, others) / (wall * (os.cpu_count() or 1))


def save_small_png(src: Path, dst: Path) -> None:
    """Copy the grid; a grey picture (MNIST) is stored as 8-bit greyscale, same pixels, a third of the bytes."""
    from PIL import Image

    picture = Image.open(src).convert("RGB")
    r, g, b = picture.split()
    if r.tobytes() == g.tobytes() == b.tobytes():
        picture = r
    picture.save(dst, optimize=True)


def last_losses(metrics_csv: Path) -> dict[str, float]:
    """The last logged value of each train/* metric in the CSV logger's file."""
    last: dict[str, float] = {}
    if not metrics_csv.exists():
        return last
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key.startswith("train/") and value not in ("", None):
                    last[key] = float(value)
    return last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2500, help="training steps (batches of 64); default 2500")
    parser.add_argument("--every", type=int, default=500, help="SampleGrid interval in steps (default 500)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mnist", help="folder with the t10k *.gz files")
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "mnist_dcgan", help="run folder (gitignored by default)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default 0: 2 cores are busy training)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads in the run (sets OMP_NUM_THREADS); 0 = torch's default"
    )
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the PNG and JSON are copied")
    parser.add_argument("--no-copy", action="store_true", help="leave benchmarks/results/ alone (for trial runs)")
    args = parser.parse_args(argv)

    data_root, run = fresh_workdir(args.workdir, args.data)
    cmd = [
        sys.executable, "-m", "gans", "fit",
        "--config", str(HERE / "mnist_dcgan.yaml"),
        f"--trainer.max_steps={2 * args.steps}",
        f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}",
        f"--trainer.callbacks.init_args.every_n_steps={args.every}",
        "--trainer.callbacks+=mnist_dcgan.FitTimer",
        f"--data.init_args.root={data_root}",
        f"--data.init_args.num_workers={args.num_workers}",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.setdefault("WANDB_MODE", "offline")
    if args.threads > 0:
        env["OMP_NUM_THREADS"] = str(args.threads)
    wall, foreign_load = run_measured(cmd, env)

    timer = json.loads((run / "fit_timer.json").read_text())
    grid = run / "samples" / "latest.png"
    record = {
        "steps": args.steps,
        "images_seen": args.steps * 64,
        "epochs": args.steps * 64 / 10_000,
        "wall_s": wall,
        **timer,
        "final_metrics": last_losses(run / "metrics.csv"),
        "num_workers": args.num_workers,
        # Share of the machine's CPUs used by other processes during the run: the machine is shared.
        "foreign_cpu_load": foreign_load,
    }
    import torch

    record.update(
        torch=torch.__version__,
        lightning=L.__version__,
        cpus=os.cpu_count(),
        torch_threads=args.threads or torch.get_num_threads(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    )
    print(json.dumps(record, indent=2))
    if not args.no_copy:
        args.results.mkdir(parents=True, exist_ok=True)
        save_small_png(grid, args.results / "dcgan_mnist32.png")
        (args.results / "dcgan_mnist32.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"grid: {args.results / 'dcgan_mnist32.png'} ({(args.results / 'dcgan_mnist32.png').stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
