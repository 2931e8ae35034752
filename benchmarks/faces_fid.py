"""FID/KID (and conditional accuracy) against kimg on the config's own data, for any experiment config that saves
kimg checkpoints: the shared face photos, the anime faces, ...

For each ``--config``:

1. trains it with ``lightning fit`` in ``benchmarks/out/<config name>/`` (skipped with ``--skip-fit`` when the
   folder already holds a finished run), timing it and the CPU share other processes used meanwhile; the folder is
   stamped with the config and overrides (``fit_key.json``), and ``--skip-fit`` / ``--continue-to`` refuse a folder
   stamped with another;
2. for every kimg checkpoint (``KimgCheckpoint``), draws ``--num`` samples numbered 0 ... num-1 through the
   model's ``sample_indexed`` (EMA generator when the run kept one; a conditional model's sample i asked for the
   label of the i-th real reference image, :func:`gans.metrics.protocol.fake_labels`) and evaluates them with the protocol of
   :mod:`gans.metrics.protocol`: FID, KID (mean ± std), precision and recall against ``--num`` real images of the
   config's datamodule at its resolution drawn at random with ``--seed`` (stratified by class for a conditional config;
   unflipped; TF FID Inception, about 5 images/s on 2 cores), with N and the real-vs-real floor at that N beside every
   number (the real features and the floor are cached in ``benchmarks/out/real_features_[<data>_]<res>px_<num>_ref<seed>[s].pt``);
   for a conditional model also the conditional accuracy per label head (:class:`callbacks.ConditionalAccuracy`'s
   classifier, trained once on the real labels with ``--classifier-steps`` and cached in ``benchmarks/out/classifiers``,
   on ``--num`` samples whose labels walk over every class, so each class counts equally, as in the callback)
   and the within-class diversity (:func:`within_class_spread` of the samples asked for each class of the first head,
   divided by that of the real images of each class: below 1 = less varied than the data, mode collapse); for a model
   with ADA also its p and last r_t at the checkpoint (``augment_p``, ``ada_rt``). A limited-data config (``subset``)
   is compared with all the images of its data, as the ADA paper does;
3. writes the curve to ``benchmarks/results/<config name>-<hash>.json``, the hash that of the whole config (the config
   file's contents, the overrides, N, seed; :func:`gans.metrics.protocol.result_path`: a changed config starts a new
   file, never appends to an old curve), an 8x8 grid of the last checkpoint beside it (``.png``), and prints one
   markdown table over all configs.

Configs are run one after the other, never at once (two trainings oversubscribe 2 cores).

    python benchmarks/faces_fid.py --config experiments/stylegan2_faces_cpu.yaml benchmarks/dcgan64_faces.yaml
    python benchmarks/faces_fid.py --config experiments/stylegan2_faces_cpu.yaml --skip-fit --num 500
    python benchmarks/faces_fid.py --config experiments/stylegan2_faces_cpu.yaml --num 500 --continue-to 40

``--max-kimg K`` trains every config for the same K kimg (the conditional family's table); ``--set KEY=VALUE``
passes ``lightning fit`` overrides (``--set model.init_args.soft_labels=false``) and ``--tag T`` names that variant's
run ``<config name>_T``, as the ACGAN tips ablation does:

    python benchmarks/faces_fid.py --num 500 --max-kimg 15 --config experiments/acgan_anime_cpu.yaml \
        --tag notips --set model.init_args.soft_labels=false model.init_args.label_flip_prob=0 model.init_args.g_dropout=0

``--continue-to K`` resumes a finished run from its ``last.ckpt`` (the exact resume of ``lightning fit --ckpt_path``)
with ``max_kimg`` raised to K (a ``--tag`` variant needs its ``--set`` overrides again); checkpoints already in ``benchmarks/results/<config name>.json`` at the same ``--num``
keep their numbers and are not evaluated again (the same file: ``--continue-to`` is not part of the key).
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
from PIL import Image
from torchvision.utils import make_grid, save_image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from mnist_dcgan import run_measured  # noqa: E402

from callbacks.cond_acc import ConditionalAccuracy, LabelClassifier, quantize  # noqa: E402
from datamodules import ImageFolderDataModule  # noqa: E402
from gans.labels import LabelSpace, class_names_per_head, head_names  # noqa: E402
from gans.metrics import protocol  # noqa: E402
from gans.metrics.inception import InceptionFeatures, to_uint8  # noqa: E402
from gans.tools.pictures import class_grid_labels, write_labels  # noqa: E402

FACES = REPO.parent / "shared" / "data" / "faces" / "celeba-10k.zip"
RESULTS = HERE / "results"
OUT = HERE / "out"


def features(extractor: InceptionFeatures, images_uint8: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([extractor(chunk) for chunk in images_uint8.split(batch)])


PATH_ARGS = ("root", "tags_file")  # data arguments that are paths, relative to the repository in the configs


def data_args(config: dict) -> dict:
    """The config's ``data.init_args`` with its paths made absolute (the fits run in ``benchmarks/out/<name>``)."""
    init_args = dict(config["data"].get("init_args") or {})
    for key in PATH_ARGS:
        if init_args.get(key) and not Path(init_args[key]).is_absolute():
            init_args[key] = str((REPO / init_args[key]).resolve())
    return init_args


_DATAMODULES: dict = {}


def real_datamodule(config: dict | None, resolution: int):
    """The config's datamodule (the face zip when ``config`` is None), set up with every image in memory; built once."""
    key = (json.dumps(config["data"], sort_keys=True) if config else None, resolution)
    if key not in _DATAMODULES:
        _DATAMODULES[key] = _build_datamodule(config, resolution)
    return _DATAMODULES[key]


def _build_datamodule(config: dict | None, resolution: int):
    if config is None:
        data = ImageFolderDataModule(root=str(FACES), img_resolution=resolution, cache="memory", num_workers=0)
    else:
        module, _, name = config["data"]["class_path"].rpartition(".")
        init_args = {**data_args(config), "img_resolution": resolution, "cache": "memory", "num_workers": 0}
        # A limited-data run (data.init_args.subset) is compared with all the images, as in the ADA paper (Karras et al.
        # 2020, arXiv:2006.06676, section 2), so that memorising the subset does not pass for quality.
        for key in ("subset", "subset_seed"):
            init_args.pop(key, None)
        data = getattr(importlib.import_module(module), name)(**init_args)
    data.setup("fit")
    return data


def reference_labels(config: dict | None, resolution: int) -> torch.Tensor | None:
    """The real images' labels when ``config``'s model is conditional (the reference is then stratified by class)."""
    if config is None or not label_heads(config):
        return None
    dataset = real_datamodule(config, resolution).real_dataset()
    return dataset.labels if dataset.labels is not None else torch.stack([torch.as_tensor(dataset[i][1]) for i in range(len(dataset))])


def real_features(extractor: InceptionFeatures, num: int, resolution: int, cache_dir: Path = OUT, config: dict | None = None,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, protocol.Floor | None]:
    """The protocol's real reference (:func:`gans.metrics.protocol.reference_indices`: ``num`` images at ``resolution``
    drawn with ``seed``, stratified for a conditional config; unflipped), its Inception features and the real-vs-real
    floor at that N, cached: the face photos, or the images of ``config``'s datamodule."""
    root = None if config is None else Path(data_args(config)["root"])
    tag = "" if root is None or root.resolve() == FACES.resolve() else f"{root.stem}_"
    labels = reference_labels(config, resolution)
    cache = cache_dir / f"real_features_{tag}{resolution}px_{num}_ref{seed}{'s' if labels is not None else ''}.pt"
    if cache.exists():
        stored = torch.load(cache, weights_only=True)
        floor = protocol.Floor(*stored["floor"][:3].tolist(), int(stored["floor"][3])) if "floor" in stored else None
        return stored["indices"], stored["features"], floor
    dataset = real_datamodule(config, resolution).real_dataset()
    indices = protocol.reference_indices(len(dataset), num, seed, labels)
    feats = features(extractor, to_uint8(torch.stack([dataset[int(i)][0] for i in indices])))
    stored = {"indices": indices, "features": feats}
    floor = None
    if protocol.floor_size(len(dataset), num) >= 2:
        first, second = protocol.floor_indices(len(dataset), num, seed, labels)
        known = dict(zip(indices.tolist(), feats))
        pair = [torch.stack([known[i] if i in known else features(extractor, to_uint8(dataset[i][0][None]))[0] for i in part.tolist()])
                for part in (first, second)]
        floor = protocol.real_floor(*pair, seed=seed)
        stored["floor"] = torch.tensor([floor.fid, floor.kid, floor.kid_std, floor.n], dtype=torch.float64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stored, cache)
    return indices, feats, floor


def label_classifier(config: dict, resolution: int, heads: tuple[int, ...], steps: int) -> tuple[LabelClassifier, list[float], list[str]]:
    """:class:`callbacks.ConditionalAccuracy`'s classifier for the config's labelled data, trained once and cached in
    ``benchmarks/out/classifiers``; with its held-out real accuracy per head and the heads' names."""
    data = real_datamodule(config, resolution)
    scorer = ConditionalAccuracy(classifier_steps=steps, cache_dir=str(OUT / "classifiers"))
    dataset = data.real_dataset()
    shape = tuple(dataset[0][0].shape)
    path = scorer.cache_path(data, heads, shape)
    if path.is_file():
        payload = torch.load(path, map_location="cpu", weights_only=True)
    else:
        with torch.enable_grad():
            state, accuracy = scorer.train_classifier(dataset, heads, torch.device("cpu"))
        payload = {"state_dict": state, "real_accuracy": torch.tensor(accuracy)}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
    classifier = LabelClassifier(shape[0], heads, scorer.classifier_width)
    classifier.load_state_dict(payload["state_dict"])
    return classifier.eval(), [round(float(a), 3) for a in payload["real_accuracy"]], head_names(data, len(heads))


def save_class_grid(model, datamodule, path: Path, columns: int = 10) -> None:
    """One row per class of the first label head (the hair colour), named beside the row; column c holds latent c and
    the c-th combination of the other heads' classes (named above), as :class:`callbacks.SampleGrid` draws them."""
    labels = class_grid_labels(model.label_space, columns)
    z = model.indexed_z(torch.arange(columns)).repeat(model.label_space.heads[0], 1)
    images = model.sample(len(z), labels=labels, z=z).clamp(-1, 1).add(1).div(2)
    grid = (make_grid(images, nrow=columns, padding=2, pad_value=1.0) * 255).round().byte().permute(1, 2, 0).numpy()
    names = class_names_per_head(datamodule, len(model.label_space.heads))
    word = (lambda h, c: names[h][c]) if names else (lambda h, c: str(c))
    rows = [word(0, r) for r in range(model.label_space.heads[0])]
    cells = labels.reshape(len(labels), -1)[:columns]
    header = [", ".join(word(h, int(c)) for h, c in enumerate(cell) if h > 0) for cell in cells] if cells.shape[1] > 1 else None
    Image.fromarray(write_labels(grid, rows, images.shape[-1], header)).save(path)


def conditional_accuracy(model, classifier: LabelClassifier, num: int) -> list[float]:
    """Per head, the share of samples 0 ... num-1 (each with the i-th label of the fixed walk over the classes, so
    every class counts equally, not the reference's class mix) that the classifier assigns to the class asked for."""
    correct = torch.zeros(len(model.label_space.heads))
    for indices in torch.arange(num).split(100):
        labels = model.label_space.for_indices(indices).reshape(len(indices), -1)
        for h, logits in enumerate(classifier(quantize(model.sample_indexed(indices)))):
            correct[h] += (logits.argmax(1) == labels[:, h]).sum()
    return [round(float(c) / num, 3) for c in correct]


def within_class_spread(feats: torch.Tensor, labels: torch.Tensor) -> float:
    """The mean distance between the Inception features of two different images of the same class, averaged over the
    classes with at least two images: how varied one class's images are. A class that collapsed to a few faces scores
    low; :func:`evaluate` divides the samples' spread by the real images' (1 = as varied as the data)."""
    spreads = []
    for c in labels.unique():
        members = feats[labels == c].double()
        if len(members) > 1:
            spreads.append(torch.cdist(members, members).sum() / (len(members) * (len(members) - 1)))
    return float(torch.stack(spreads).mean())


def augment_state(model) -> dict:
    """ADA's p and last r_t = E[sign(D(real))] in a checkpoint's model (nothing for a model without ADA)."""
    if getattr(model, "ada_stats", None) is None:
        return {}
    return {"augment_p": round(float(model.augment_pipe.p), 4), "ada_rt": round(float(model.ada_stats[2]), 3)}


def kimg_of(checkpoint: Path) -> float:
    return float(re.search(r"kimg([\d.]+)", checkpoint.stem).group(1).rstrip("."))


def checkpoints_at(checkpoints: list[Path], at: list[float]) -> list[Path]:
    """For each kimg of ``at``, the first of ``checkpoints`` (sorted by kimg) at or past it: a checkpoint is written
    at the first batch end past each multiple of its interval, so at batch 64 the "10 kimg" one is ``kimg00010.048``."""
    chosen = []
    for kimg in sorted(at):
        first = next((c for c in checkpoints if kimg_of(c) >= kimg - 1e-9), None)
        if first is not None and first not in chosen:
            chosen.append(first)
    return chosen


def data_overrides(config: dict) -> list[str]:
    """Command-line overrides that point the fit (run in ``benchmarks/out/<name>``) at the config's data."""
    return [f"--data.init_args.{key}={value}" for key, value in data_args(config).items() if key in PATH_ARGS and value]


def label_heads(config: dict) -> tuple[int, ...]:
    """The label heads of the config's model (``num_classes``), empty when unconditional."""
    model = config.get("model") or {}  # none in a data-only config (a CycleGAN domain's reference)
    return LabelSpace.from_num_classes((model.get("init_args") or {}).get("num_classes")).heads


def model_class(config: dict) -> type:
    module, _, name = config["model"]["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)


def fit_overrides(max_kimg: float, settings: list[str]) -> list[str]:
    """``lightning fit`` arguments for ``--max-kimg`` and each ``--set KEY=VALUE``."""
    for setting in settings:
        if "=" not in setting:
            raise SystemExit(f"--set {setting!r}: expected KEY=VALUE, e.g. model.init_args.g_dropout=0")
    return ([f"--model.init_args.max_kimg={max_kimg:g}"] if max_kimg else []) + [f"--{setting}" for setting in settings]


def evaluate(config_path: Path, num: int, skip_fit: bool, extractor: InceptionFeatures, every: int = 1, continue_to: float = 0.0,
             classifier_steps: int = 2000, overrides: list[str] | None = None, tag: str = "", at: list[float] | None = None,
             seed: int = 0) -> dict:
    config = yaml.safe_load(config_path.read_text())
    name = f"{config_path.stem}_{tag}" if tag else config_path.stem
    overrides = overrides or []
    # The run and its result file are keyed by everything that defines them: a changed config or override trains a new
    # run and starts a new curve (--continue-to extends the same run and is not part of the key).
    fit_key = {"config": str(config_path.resolve().relative_to(REPO)), "contents": config, "overrides": overrides}
    run = OUT / name
    check_run_folder(run, fit_key, fresh=not (skip_fit or continue_to))
    key = {**fit_key, "num": num, "seed": seed, "extractor": extractor.cache_name}
    if label_heads(config):
        key["fake_labels"] = "reference"  # conditional samples take the reference's labels (a new curve since they walked over the classes)
    result_file = protocol.result_path(RESULTS, name, key)
    summary: dict = {"config": fit_key["config"], "num_samples": num, "reference_seed": seed, "torch": torch.__version__}
    if overrides:
        summary["overrides"] = overrides
    previous = json.loads(result_file.read_text()) if result_file.exists() else {}
    known = {row["kimg"]: row for row in previous.get("curve", [])}
    if continue_to:
        last = next(run.rglob("checkpoints/last.ckpt"), None)
        if last is None:
            raise SystemExit(f"--continue-to: no finished run under {run} (checkpoints/last.ckpt): run without it first.")
        cmd = [sys.executable, "-m", "gans", "fit", "--config", str(config_path.resolve()), *data_overrides(config),
               "--trainer.enable_progress_bar=false", *overrides, f"--model.init_args.max_kimg={continue_to:g}", f"--ckpt_path={last.resolve()}"]
        wall, foreign = run_measured(cmd, dict(os.environ), cwd=run)
        summary.update({key: previous[key] for key in ("wall_s", "foreign_cpu_share") if key in previous})
        summary["continued"] = previous.get("continued", []) + [{"to_kimg": continue_to, "wall_s": round(wall), "foreign_cpu_share": round(foreign, 2)}]
    elif not skip_fit:
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "gans", "fit", "--config", str(config_path.resolve()), *data_overrides(config),
               "--trainer.enable_progress_bar=false", *overrides]
        wall, foreign = run_measured(cmd, dict(os.environ), cwd=run)
        summary.update(wall_s=round(wall), foreign_cpu_share=round(foreign, 2))
    elif previous:
        summary.update({key: previous[key] for key in ("wall_s", "foreign_cpu_share", "continued") if key in previous})
    checkpoints = sorted(run.rglob("kimg*.ckpt"), key=kimg_of)
    if not checkpoints:
        raise SystemExit(f"No kimg checkpoints under {run}: run without --skip-fit first.")
    chosen = checkpoints_at(checkpoints, at) if at else checkpoints[every - 1 :: every]
    if chosen[-1:] != checkpoints[-1:]:
        chosen.append(checkpoints[-1])
    resolution = config["data"]["init_args"]["img_resolution"]
    reference, real, floor = real_features(extractor, num, resolution, config=config, seed=seed)
    summary.update(n_real=len(reference), floor=floor_summary(floor))
    cls = model_class(config)
    heads = label_heads(config)
    classifier, reference_labels = None, None
    if heads:
        classifier, real_accuracy, names = label_classifier(config, resolution, heads, classifier_steps)
        summary.update(cond_acc_heads=names, cond_acc_real=real_accuracy, cond_acc_chance=[round(1 / k, 3) for k in heads])
        dataset = real_datamodule(config, resolution).real_dataset()
        reference_labels = torch.stack([torch.as_tensor(dataset[int(i)][1]) for i in reference])
        real_classes = reference_labels.reshape(len(reference), -1)[:, 0]
        real_spread = within_class_spread(real, real_classes)
    asked = protocol.fake_labels(reference_labels, torch.arange(num))  # the labels samples 0 ... num-1 are asked for
    rows, model, loaded = [], None, None
    for ckpt in chosen:
        if kimg_of(ckpt) in known and (classifier is None or "class_diversity" in known[kimg_of(ckpt)]):
            rows.append(known[kimg_of(ckpt)])  # evaluated before under the same key: the same numbers
            continue
        model, loaded = cls.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval(), ckpt
        start = time.perf_counter()
        fake = torch.cat([to_uint8(model.sample_indexed(idx, labels=protocol.fake_labels(reference_labels, idx)))
                          for idx in torch.arange(num).split(100)])
        fake_features = features(extractor, fake)
        result = protocol.evaluate(real, fake_features, floor, seed=seed)
        row = {"kimg": kimg_of(ckpt), "fid": round(result.fid, 1), "kid_x1e3": round(result.kid * 1e3, 1),
               "kid_std_x1e3": round(result.kid_std * 1e3, 1), "precision": round(result.precision, 3), "recall": round(result.recall, 3),
               "density": round(result.density, 3), "coverage": round(result.coverage, 3), "n_fake": result.n_fake}
        if classifier is not None:
            row["cond_acc"] = conditional_accuracy(model, classifier, num)
            row["class_diversity"] = round(within_class_spread(fake_features, asked.reshape(num, -1)[:, 0]) / real_spread, 3)
        row.update(augment_state(model))
        row["eval_s"] = round(time.perf_counter() - start)
        print(name, f"{row['kimg']:g} kimg:", result.describe(), flush=True)
        rows.append(row)
    evaluated = {row["kimg"] for row in rows}
    summary["curve"] = sorted(rows + [row for kimg, row in known.items() if kimg not in evaluated], key=lambda row: row["kimg"])
    RESULTS.mkdir(exist_ok=True)
    if loaded != chosen[-1]:  # the grid shows the last checkpoint, whose numbers may have been known already
        model = cls.load_from_checkpoint(chosen[-1], map_location="cpu", weights_only=True).eval()
    if heads:
        save_class_grid(model, real_datamodule(config, resolution), result_file.with_suffix(".png"))
    else:
        save_image(make_grid(model.sample_indexed(torch.arange(64)).clamp(-1, 1).add(1).div(2), nrow=8, padding=1, pad_value=1.0),
                   result_file.with_suffix(".png"))
    result_file.write_text(json.dumps(summary, indent=2))
    print(f"{name}: {result_file.relative_to(REPO)}", flush=True)
    return summary


def check_run_folder(run: Path, fit_key: dict, fresh: bool) -> None:
    """Keep the run folder to one config: a fresh fit stamps ``<run>/fit_key.json`` with the config and overrides;
    ``--skip-fit`` and ``--continue-to`` refuse a folder stamped with another (a changed config is a new run: give it a
    ``--tag``), and go on with a warning in a folder from before the stamps."""
    stamp = run / "fit_key.json"
    canonical = json.loads(json.dumps(fit_key, default=str))
    if fresh:
        run.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(canonical, indent=1))
    elif stamp.exists() and json.loads(stamp.read_text()) != canonical:
        raise SystemExit(f"{run} holds a run of another config or overrides ({stamp}): train this one under another --tag.")
    elif not stamp.exists():
        print(f"warning: {run} has no fit_key.json (a run from before the stamps): its config cannot be checked.", flush=True)


def floor_summary(floor: protocol.Floor | None) -> dict | None:
    """The real-vs-real floor as a result file records it (FID, KID x 1e3 and its std, N), or None."""
    if floor is None:
        return None
    return {"fid": round(floor.fid, 1), "kid_x1e3": round(floor.kid * 1e3, 1), "kid_std_x1e3": round(floor.kid_std * 1e3, 1), "n": floor.n}


def floor_cell(summary: dict) -> str:
    floor = summary.get("floor")
    if not floor:
        return "none: the split holds fewer than 4 images"
    return f"{floor['fid']} / {floor['kid_x1e3']} ({floor['n']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, nargs="+", required=True, help="experiment configs, trained one after the other")
    parser.add_argument("--skip-fit", action="store_true", help="evaluate the checkpoints of existing runs")
    parser.add_argument("--num", type=int, default=1000, help="samples (and real images) for FID/KID")
    parser.add_argument("--every", type=int, default=1, help="evaluate every n-th kimg checkpoint (and the last)")
    parser.add_argument("--at", type=float, nargs="+", default=[], metavar="KIMG", help="evaluate the first checkpoint at or past each of these kimg (and the last) instead of --every")
    parser.add_argument("--continue-to", type=float, default=0.0, help="resume each finished run up to this kimg")
    parser.add_argument("--max-kimg", type=float, default=0.0, help="train every config for this many kimg (its own max_kimg when 0)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="lightning fit overrides for every config")
    parser.add_argument("--tag", default="", help="suffix of the run's name (benchmarks/out/<config>_<tag>), for --set variants")
    parser.add_argument("--classifier-steps", type=int, default=2000, help="training steps of the conditional-accuracy classifier")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random real reference (and of KID's subsets)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.set and not args.tag:
        parser.error("--set needs --tag, so that the variant's run does not overwrite the config's own")
    overrides = fit_overrides(args.max_kimg, args.set)
    extractor = InceptionFeatures()
    results = {}
    for config in args.config:
        name = f"{config.stem}_{args.tag}" if args.tag else config.stem
        results[name] = evaluate(config, args.num, args.skip_fit, extractor, args.every, args.continue_to, args.classifier_steps, overrides, args.tag,
                                 args.at, args.seed)
    print("| config | kimg | FID | KID x 1e3 | precision | recall | N (fake / real) | floor FID / KID x 1e3 (N) "
          "| conditional accuracy per head | within-class diversity |\n|" + " --- |" * 10)
    for name, summary in results.items():
        for row in summary["curve"]:
            acc = ", ".join(f"{h} {a}" for h, a in zip(summary.get("cond_acc_heads", []), row.get("cond_acc", [])))
            print(f"| {name} | {row['kimg']:g} | {row['fid']} | {row['kid_x1e3']} ± {row['kid_std_x1e3']} | {row.get('precision', '')} "
                  f"| {row.get('recall', '')} | {row.get('n_fake', summary['num_samples'])} / {summary['n_real']} | {floor_cell(summary)} | {acc} "
                  f"| {row.get('class_diversity', '')} |")


if __name__ == "__main__":
    main()
