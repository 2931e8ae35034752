"""Training throughput of the GAN modules under Lightning and as a plain PyTorch loop.

Measures real images consumed per second (one real batch = one D step + one G step) at
batch 64 for two models:

- ``dcgan64``: ``gans.DCGAN(img_resolution=64, img_channels=3)`` on random 3x64x64 tensors;
- ``mlp``:     ``gans.GAN()`` (the 2014 MLP GAN) on random 1x28x28 tensors, trained here with
               Adam 2e-4 (0.5, 0.999) like DCGAN so both loops use the same optimizer.

Each model is timed two ways:

- ``lightning``: ``Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
  enable_progress_bar=False, enable_model_summary=False).fit(module, DataLoader(TensorDataset))``,
  i.e. the module's own ``training_step`` with manual optimization, logging and hooks;
- ``plain``: a hand-written loop doing the same work per step on the module's own networks
  (``module.generator`` / ``module.discriminator``): G frozen, D step on real + fresh fakes
  with the non-saturating loss of :mod:`gans.training.losses`, D frozen, G step; Adam 2e-4 (0.5, 0.999);
  the same DataLoader over the same in-memory tensors.

Both timers start after ``--warmup`` steps and stop after ``--dcgan-steps`` / ``--mlp-steps``
more; the DataLoader iteration is inside the timed region in both; start-up (Trainer set-up,
model construction) is not. Every measurement is repeated ``--repeats`` times (Lightning and
plain alternating, so slow drift of the machine hits both alike) and the median is reported.
Lightning overhead = (plain - lightning) / plain.

The machine may be shared: before each run the script waits (``--quiet-wait``) for other
processes to go quiet, and it prints the share of the CPUs other processes used during each
timed region. With torch's default of one OpenMP thread per core, a second busy process makes
the spinning OpenMP threads collapse throughput (see benchmarks/README.md); ``--threads 1``
measures the single-thread case.

    python benchmarks/throughput.py                       # both models, defaults
    python benchmarks/throughput.py --models mlp --mlp-steps 400 --repeats 5
    python benchmarks/throughput.py --threads 0 1         # torch's default threads, then 1 thread
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gans
from gans.training.losses import get_loss
from gans.training.tricks import label_targets

BATCH = 64
ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    shape: tuple[int, ...]
    build: Callable[[], gans.GANModule]


CASES = {
    "dcgan64": Case(
        "dcgan64",
        "DCGAN-64 (3x64x64)",
        (3, 64, 64),
        lambda: gans.DCGAN(img_resolution=64, img_channels=3, loss="non_saturating", optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
    ),
    "mlp": Case(
        "mlp",
        "MLP GAN (1x28x28)",
        (1, 28, 28),
        lambda: gans.GAN(data_shape=(1, 28, 28), loss="non_saturating", optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
    ),
    # Next to no arithmetic: the time per batch is the framework's own (loop, hooks, optimizer calls),
    # so the difference of the two ways is the absolute overhead per batch, with little noise.
    "tiny": Case(
        "tiny",
        "tiny MLP GAN (1x4x4, 8 units)",
        (1, 4, 4),
        lambda: gans.GAN(data_shape=(1, 4, 4), z_dim=4, g_hidden=(8,), d_hidden=(8,), d_pieces=2, loss="non_saturating",
                         optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
    ),
}


def make_loader(shape: tuple[int, ...], n_batches: int, seed: int, batch: int = BATCH) -> DataLoader:
    """Random images in [-1, 1], kept in memory, with labels (as the real datamodules give)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n_batches * batch, *shape, generator=g).mul_(2).sub_(1)
    labels = torch.randint(0, 10, (n_batches * batch,), generator=g)
    return DataLoader(TensorDataset(images, labels), batch_size=batch, shuffle=True, drop_last=True, num_workers=0)


# Noise: the machine is shared, so measure how much CPU other processes took meanwhile.

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_jiffies() -> tuple[int, int]:
    """(non-idle jiffies of the whole machine, jiffies of this process), from /proc; (0, 0) elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        # /proc/stat: user nice system idle iowait irq softirq steal ...; /proc/self/stat utime stime = fields 14, 15.
        return sum(fields) - fields[3] - fields[4], int(own[11]) + int(own[12])
    except OSError:
        return 0, 0


class Meter:
    """Wall time of a region and the share of the machine's CPUs other processes used during it."""

    def start(self) -> None:
        self._busy, self._own = _busy_jiffies()
        self._t = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._t
        busy, own = _busy_jiffies()
        others = max(0, (busy - self._busy) - (own - self._own)) / CLK_TCK
        self.foreign_load = others / (self.seconds * (os.cpu_count() or 1))


def wait_until_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` of the CPUs over 1 s; returns the last load."""
    deadline = time.monotonic() + max_wait
    while True:
        m = Meter()
        m.start()
        time.sleep(1.0)
        m.stop()
        if m.foreign_load < threshold or time.monotonic() >= deadline:
            return m.foreign_load


# Lightning.


class StepTimer(L.Callback):
    """Times from the end of batch ``warmup - 1`` to the end of batch ``warmup + steps - 1``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.meter = Meter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.warmup - 1:
            self.meter.start()
        elif batch_idx == self.warmup + self.steps - 1:
            self.meter.stop()


def time_fit(module: L.LightningModule, loader: DataLoader, warmup: int, steps: int, accelerator: str = "cpu",
             quiet_wait: float = 0.0) -> Meter:
    """``Trainer.fit(module, loader)`` for one epoch (``warmup + steps`` batches), timing the last ``steps``; waits up to
    ``quiet_wait`` s for other processes to go quiet just before the fit (0 = don't wait)."""
    timer = StepTimer(warmup, steps)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    if quiet_wait > 0:
        wait_until_quiet(quiet_wait)
    trainer.fit(module, loader)
    assert module.g_steps == warmup + steps, (module.g_steps, warmup + steps)
    return timer.meter


def device_label(accelerator: str) -> str:
    """The GPU's name, or the CPU and torch's thread count."""
    if accelerator == "gpu":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def run_lightning(case: Case, warmup: int, steps: int, seed: int) -> tuple[float, float]:
    """Images per second of ``Trainer.fit`` over exactly ``warmup + steps`` batches."""
    torch.manual_seed(seed)
    meter = time_fit(case.build(), make_loader(case.shape, warmup + steps, seed), warmup, steps)
    return steps * BATCH / meter.seconds, meter.foreign_load


# Plain PyTorch.


class frozen:
    """requires_grad False on ``net`` inside the block, restored after: what ``toggled_optimizer`` does."""

    def __init__(self, net: nn.Module) -> None:
        self.params = list(net.parameters())

    def __enter__(self) -> None:
        self.saved = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad = False

    def __exit__(self, *exc) -> None:
        for p, r in zip(self.params, self.saved):
            p.requires_grad = r


def run_plain(case: Case, warmup: int, steps: int, seed: int) -> tuple[float, float]:
    """Images per second of a hand-written loop doing the module's D step then G step."""
    torch.manual_seed(seed)
    module = case.build()
    G, D, z_dim = module.generator, module.discriminator, module.z_dim
    G.train()
    D.train()
    loss = get_loss("non_saturating")
    opt_d = torch.optim.Adam(D.parameters(), **ADAM)
    opt_g = torch.optim.Adam(G.parameters(), **ADAM)
    loader = make_loader(case.shape, warmup + steps, seed)

    meter = Meter()
    for i, (real, _labels) in enumerate(loader):
        n = real.shape[0]
        # D step, G frozen.
        with frozen(G):
            with torch.no_grad():
                fake = G(torch.randn(n, z_dim))
            real_logits, fake_logits = D(real), D(fake)
            d_loss = loss.discriminator(real_logits, fake_logits, label_targets(real_logits, True), label_targets(fake_logits, False))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        # G step, D frozen.
        with frozen(D):
            fake = G(torch.randn(n, z_dim))
            g_loss = loss.generator(D(fake))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        if i == warmup - 1:
            meter.start()
    meter.stop()
    assert i == warmup + steps - 1
    return steps * BATCH / meter.seconds, meter.foreign_load


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--dcgan-steps", type=int, default=20, help="timed steps for dcgan64 (default 20)")
    parser.add_argument("--mlp-steps", type=int, default=200, help="timed steps for mlp (default 200)")
    parser.add_argument("--tiny-steps", type=int, default=2000, help="timed steps for tiny (default 2000)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is reported (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="torch.set_num_threads values to measure, in turn; 0 = the default (one per core). E.g. --threads 0 1",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other processes to go quiet (0 = don't wait)",
    )
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)

    default_threads = torch.get_num_threads()
    print(
        f"# torch {torch.__version__}, lightning {L.__version__}, python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), default torch threads {default_threads}, "
        f"batch {BATCH}, warmup {args.warmup}, repeats {args.repeats}",
        flush=True,
    )
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads if threads > 0 else default_threads)
        for name in args.models:
            case = CASES[name]
            steps = {"dcgan64": args.dcgan_steps, "tiny": args.tiny_steps}.get(name, args.mlp_steps)
            results: dict[str, list[float]] = {"lightning": [], "plain": []}
            loads: dict[str, list[float]] = {"lightning": [], "plain": []}
            for r in range(args.repeats):
                # Alternate which goes first, so drift of a noisy machine does not favour one.
                order = ("lightning", "plain") if r % 2 == 0 else ("plain", "lightning")
                for way in order:
                    fn = run_lightning if way == "lightning" else run_plain
                    if args.quiet_wait > 0:
                        wait_until_quiet(args.quiet_wait)
                    ips, load = fn(case, args.warmup, steps, args.seed + r)
                    results[way].append(ips)
                    loads[way].append(load)
                    print(
                        f"  {name:8s} threads {torch.get_num_threads()} {way:9s} run {r + 1}: {ips:8.1f} img/s  "
                        f"(other processes used {load:4.0%} of the CPUs meanwhile)",
                        flush=True,
                    )
            rows.append((case, torch.get_num_threads(), steps, results, loads))

    print()
    print(
        "| model | torch threads | timed steps x runs | Lightning img/s, median (min-max) "
        "| plain PyTorch img/s, median (min-max) | Lightning overhead, medians | overhead, best runs "
        "| overhead, median of run pairs | extra ms per batch (medians) | foreign CPU load, min-max |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, threads, steps, results, loads in rows:
        rng = lambda xs: f"{min(xs):.1f}-{max(xs):.1f}"
        lit, plain = statistics.median(results["lightning"]), statistics.median(results["plain"])
        best_lit, best_plain = max(results["lightning"]), max(results["plain"])
        all_loads = loads["lightning"] + loads["plain"]
        # Run r of each way ran back to back, so their ratio is not moved by the machine's slow drift.
        paired = statistics.median(1 - l / p for l, p in zip(results["lightning"], results["plain"]))
        extra_ms = 1000 * BATCH * (1 / lit - 1 / plain)
        print(
            f"| {case.label} | {threads} | {steps} x {args.repeats} | {lit:.1f} ({rng(results['lightning'])}) | "
            f"{plain:.1f} ({rng(results['plain'])}) | {100 * (plain - lit) / plain:+.1f} % | "
            f"{100 * (best_plain - best_lit) / best_plain:+.1f} % | {100 * paired:+.1f} % | {extra_ms:+.2f} | "
            f"{min(all_loads):.0%}-{max(all_loads):.0%} |"
        )
    print(
        "\nOverhead = (plain - lightning) / plain; extra ms per batch = 1000 x batch x (1/lightning - 1/plain) from the "
        "medians. Foreign CPU load: the share of the machine's CPUs that other processes used during a timed region "
        "(0 % = the machine was ours); runs with a high load are unreliable."
    )


if __name__ == "__main__":
    main(sys.argv[1:])
