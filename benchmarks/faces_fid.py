"""FID/KID against kimg on the shared face photos, for any experiment config that saves kimg checkpoints.

For each ``--config``:

1. trains it with ``lightning fit`` in ``benchmarks/out/<config name>/`` (skipped with ``--skip-fit`` when the
   folder already holds a finished run), timing it and the CPU share other processes used meanwhile;
2. for every kimg checkpoint (``KimgCheckpoint``), draws ``--num`` samples numbered 0 ... num-1 through the
   model's ``sample_indexed`` (EMA generator when the run kept one) and computes FID and KID against the first
   ``--num`` images of the zip at the config's resolution (TF FID Inception, about 5 images/s on 2 cores; the
   real features are cached in ``benchmarks/out/real_features_<res>px_<num>.pt``);
3. writes an 8x8 grid of the last checkpoint to ``benchmarks/results/<config name>.png`` and the curve to
   ``benchmarks/results/<config name>.json``, and prints one markdown table over all configs.

Configs are run one after the other, never at once (two trainings oversubscribe 2 cores).

    python benchmarks/faces_fid.py --config experiments/stylegan2_faces_cpu.yaml benchmarks/dcgan64_faces.yaml
    python benchmarks/faces_fid.py --config experiments/stylegan2_faces_cpu.yaml --skip-fit --num 500
    python benchmarks/faces_fid.py --config experiments/stylegan2_faces_cpu.yaml --num 500 --continue-to 40

``--continue-to K`` resumes a finished run from its ``last.ckpt`` (the exact resume of ``lightning fit --ckpt_path``)
with ``max_kimg`` raised to K; checkpoints already in ``benchmarks/results/<config name>.json`` at the same ``--num``
keep their numbers and are not evaluated again.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path

import torch
import yaml
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchvision.utils import make_grid, save_image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from callbacks.fid import _Precomputed  # noqa: E402
from datamodules import ImageFolderDataModule  # noqa: E402
from gans.inception import InceptionFeatures, to_uint8  # noqa: E402
from mnist_dcgan import run_measured  # noqa: E402

FACES = REPO.parent / "shared" / "data" / "faces" / "celeba-10k.zip"
RESULTS = HERE / "results"
OUT = HERE / "out"


def features(extractor: InceptionFeatures, images_uint8: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([extractor(chunk) for chunk in images_uint8.split(batch)])


def real_features(extractor: InceptionFeatures, num: int, resolution: int, cache_dir: Path = OUT) -> torch.Tensor:
    """Inception features of the first ``num`` face photos at ``resolution`` (unshuffled, unflipped), cached."""
    cache = cache_dir / f"real_features_{resolution}px_{num}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=True)
    data = ImageFolderDataModule(root=str(FACES), img_resolution=resolution, cache="memory", num_workers=0)
    data.setup("fit")
    dataset = data.real_dataset()
    images = torch.stack([dataset[i][0] for i in range(num)])
    feats = features(extractor, to_uint8(images))
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(feats, cache)
    return feats


def fid_kid(real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float, float]:
    """FID, KID and KID's std over 100 subsets of half the samples, from precomputed features."""
    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    kid = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=100, subset_size=min(len(real), len(fake)) // 2)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    torch.manual_seed(0)
    kid_mean, kid_std = kid.compute()
    return float(fid.compute()), float(kid_mean), float(kid_std)


def kimg_of(checkpoint: Path) -> float:
    return float(re.search(r"kimg([\d.]+)", checkpoint.stem).group(1).rstrip("."))


def model_class(config: dict) -> type:
    module, _, name = config["model"]["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)


def evaluate(config_path: Path, num: int, skip_fit: bool, extractor: InceptionFeatures, every: int = 1, continue_to: float = 0.0) -> dict:
    config = yaml.safe_load(config_path.read_text())
    name = config_path.stem
    run = OUT / name
    summary: dict = {"config": str(config_path.resolve().relative_to(REPO)), "num_samples": num, "torch": torch.__version__}
    previous = json.loads((RESULTS / f"{name}.json").read_text()) if (RESULTS / f"{name}.json").exists() else {}
    known = {row["kimg"]: row for row in previous.get("curve", [])} if previous.get("num_samples") == num else {}
    if continue_to:
        last = next(run.rglob("checkpoints/last.ckpt"), None)
        if last is None:
            raise SystemExit(f"--continue-to: no finished run under {run} (checkpoints/last.ckpt): run without it first.")
        cmd = [sys.executable, "-m", "gans", "fit", "--config", str(config_path.resolve()), f"--data.init_args.root={FACES}",
               "--trainer.enable_progress_bar=false", f"--model.init_args.max_kimg={continue_to:g}", f"--ckpt_path={last.resolve()}"]
        wall, foreign = run_measured(cmd, dict(os.environ), cwd=run)
        summary.update({key: previous[key] for key in ("wall_s", "foreign_cpu_share") if key in previous})
        summary["continued"] = previous.get("continued", []) + [{"to_kimg": continue_to, "wall_s": round(wall), "foreign_cpu_share": round(foreign, 2)}]
    elif not skip_fit:
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "gans", "fit", "--config", str(config_path.resolve()), f"--data.init_args.root={FACES}",
               "--trainer.enable_progress_bar=false"]
        wall, foreign = run_measured(cmd, dict(os.environ), cwd=run)
        summary.update(wall_s=round(wall), foreign_cpu_share=round(foreign, 2))
    elif previous:
        summary.update({key: previous[key] for key in ("wall_s", "foreign_cpu_share", "continued") if key in previous})
    checkpoints = sorted(run.rglob("kimg*.ckpt"), key=kimg_of)
    if not checkpoints:
        raise SystemExit(f"No kimg checkpoints under {run}: run without --skip-fit first.")
    chosen = checkpoints[every - 1 :: every]
    if chosen[-1:] != checkpoints[-1:]:
        chosen.append(checkpoints[-1])
    resolution = config["data"]["init_args"]["img_resolution"]
    real = real_features(extractor, num, resolution)
    cls = model_class(config)
    rows = []
    for ckpt in chosen:
        if kimg_of(ckpt) in known and ckpt != chosen[-1]:
            rows.append(known[kimg_of(ckpt)])
            continue
        model = cls.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
        start = time.perf_counter()
        fake = torch.cat([to_uint8(model.sample_indexed(idx)) for idx in torch.arange(num).split(100)])
        fid, kid, kid_std = fid_kid(real, features(extractor, fake))
        row = {"kimg": kimg_of(ckpt), "fid": round(fid, 1), "kid_x1e3": round(kid * 1e3, 1), "kid_std_x1e3": round(kid_std * 1e3, 1),
               "eval_s": round(time.perf_counter() - start)}
        print(name, row, flush=True)
        rows.append(row)
    summary["curve"] = rows
    RESULTS.mkdir(exist_ok=True)
    save_image(make_grid(model.sample_indexed(torch.arange(64)).clamp(-1, 1).add(1).div(2), nrow=8, padding=1, pad_value=1.0), RESULTS / f"{name}.png")
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, nargs="+", required=True, help="experiment configs, trained one after the other")
    parser.add_argument("--skip-fit", action="store_true", help="evaluate the checkpoints of existing runs")
    parser.add_argument("--num", type=int, default=1000, help="samples (and real images) for FID/KID")
    parser.add_argument("--every", type=int, default=1, help="evaluate every n-th kimg checkpoint (and the last)")
    parser.add_argument("--continue-to", type=float, default=0.0, help="resume each finished run up to this kimg")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    extractor = InceptionFeatures()
    results = {}
    for config in args.config:
        results[config.stem] = evaluate(config, args.num, args.skip_fit, extractor, args.every, args.continue_to)
    print("| config | kimg | FID | KID x 1e3 |\n| --- | --- | --- | --- |")
    for name, summary in results.items():
        for row in summary["curve"]:
            print(f"| {name} | {row['kimg']:g} | {row['fid']} | {row['kid_x1e3']} ± {row['kid_std_x1e3']} |")


if __name__ == "__main__":
    main()
