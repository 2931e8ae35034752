"""Numbers and a picture for a finished image-to-image run (issue 12): pix2pix, CycleGAN, StarGAN or CoGAN.

Trains nothing: give the config the run was trained from and its checkpoint.

    python benchmarks/translation_eval.py --config experiments/cyclegan_face2anime_cpu.yaml \
        --checkpoint runs/cyclegan_face2anime_cpu/checkpoints/last.ckpt --num 500

What is measured depends on the model (the generators the model samples with, EMA copies when the run kept them):

- **pix2pix**: mean L1 (pixels in [-1, 1]) between output and real photo on the held-back split
  (``data.init_args.held_out_split``) and on the first training pairs; the picture is input | output | target.
- **CycleGAN**: FID/KID (TF FID Inception, ``--num`` images, the protocol of :mod:`gans.metrics.protocol`: N and the
  real-vs-real floor beside each) of G_AB(A's reference: ``--num`` A images drawn at random with seed 0) against B's
  reference, and of G_BA(B's reference) against A's, next to the untranslated baseline (A's reference against B's); the cycle L1
  |G_BA(G_AB(a)) - a| and |G_AB(G_BA(b)) - b|. The real features are shared with ``faces_fid.py``'s cache.
- **StarGAN**: the protocol's reference (``--num`` labelled images drawn at random with seed 0, stratified by class),
  image i sent to the class i mod K of the first domain head (the others kept): the share that ``callbacks.ConditionalAccuracy``'s classifier (trained on the real labels, cached in
  ``benchmarks/out/classifiers``) assigns to the requested class, next to the same share for the untranslated
  images (the baseline); the reconstruction L1 |G(G(x, c'), c) - x|; FID/KID against the reference of the same images
  each sent to the class of another reference image (a seeded shuffle: the reference's class mix).
- **CoGAN**: the paper's claim, that pairs from one latent correspond although the domains share no image: for
  ``--num`` latents, the mean |x_B - f(x_A)| where f is the known map between the domains (edges: dilate(x) - x;
  negative: 1 - x, on [0, 1] pixels), next to the same error for shuffled pairs (no correspondence).

It writes the picture (the model's own columns, the ones :class:`callbacks.TranslationGrid` draws, each image
``--zoom`` times larger) to ``benchmarks/results/<config name>.png`` and the numbers to
``benchmarks/results/<config name>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch.utils.data import default_collate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from faces_fid import (  # noqa: E402
    RESULTS,
    data_args,
    features,
    label_classifier,
    model_class,
    real_datamodule,
    real_features,
)

from callbacks.cond_acc import quantize  # noqa: E402
from datamodules.mnist_domains import edge_digits  # noqa: E402
from gans.metrics import protocol  # noqa: E402
from gans.metrics.inception import InceptionFeatures, to_uint8  # noqa: E402
from gans.tools.pictures import columns_picture  # noqa: E402


def build(spec: dict):
    """An object from a config's ``class_path`` / ``init_args``, nested specs built first, paths made absolute."""
    module, _, name = spec["class_path"].rpartition(".")
    args = data_args({"data": spec})
    args = {key: build(value) if isinstance(value, dict) and "class_path" in value else value for key, value in args.items()}
    return getattr(__import__(module, fromlist=[name]), name)(**args)


def in_batches(fn, *tensors: torch.Tensor, size: int = 100) -> torch.Tensor:
    return torch.cat([fn(*chunk) for chunk in zip(*(t.split(size) for t in tensors))])


def zoomed(columns: list[tuple[str, torch.Tensor]], zoom: int) -> list[tuple[str, torch.Tensor]]:
    return [(title, F.interpolate(images.float().cpu(), scale_factor=zoom, mode="nearest")) for title, images in columns]


def pix2pix(model, config: dict, data, num: int) -> dict:
    held_a, held_b = data.held_out_pairs(num)
    train = build({**config["data"], "init_args": {**config["data"]["init_args"], "held_out_split": "train"}})
    train_a, train_b = train.held_out_pairs(num)
    l1 = lambda a, b: float((model.translate(a).cpu() - b).abs().mean())  # noqa: E731
    return {"held_out_pairs": len(held_a), "l1_held_out": round(l1(held_a, held_b), 4),
            "train_pairs": len(train_a), "l1_train": round(l1(train_a, train_b), 4)}


def cyclegan(model, config: dict, data, num: int, extractor: InceptionFeatures) -> dict:
    resolution = data.held_out_pairs(1)[0].shape[-1]
    domains = [{"data": config["data"]["init_args"][key]} for key in ("domain_a", "domain_b")]
    # The protocol's references (random with seed 0, faces_fid.py's cache); each domain's reference is also what is translated.
    (ref_a, feats_a, floor_a), (ref_b, feats_b, floor_b) = (real_features(extractor, num, resolution, config=domain) for domain in domains)
    real_a, real_b = (torch.stack([real_datamodule(domain, resolution).real_dataset()[int(i)][0] for i in ref])
                      for domain, ref in zip(domains, (ref_a, ref_b)))
    fake_b = in_batches(lambda x: model.translate(x, "ab").cpu(), real_a)
    fake_a = in_batches(lambda x: model.translate(x, "ba").cpu(), real_b)
    cycle_a = in_batches(lambda x: model.translate(x, "ba").cpu(), fake_b)
    cycle_b = in_batches(lambda x: model.translate(x, "ab").cpu(), fake_a)
    numbers = {}
    for name, real, fake, floor in (("A vs B (untranslated)", feats_b, feats_a, floor_b),
                                    ("G_AB(A) vs B", feats_b, features(extractor, to_uint8(fake_b)), floor_b),
                                    ("G_BA(B) vs A", feats_a, features(extractor, to_uint8(fake_a)), floor_a)):
        result = protocol.evaluate(real, fake, floor)
        print(name, result.describe())
        numbers[name] = result.as_dict()
    numbers["cycle_l1_a"] = round(float((cycle_a - real_a).abs().mean()), 4)
    numbers["cycle_l1_b"] = round(float((cycle_b - real_b).abs().mean()), 4)
    return numbers


def stargan(model, config: dict, data, num: int, extractor: InceptionFeatures, classifier_steps: int) -> dict:
    dataset = data.real_dataset()
    resolution = dataset[0][0].shape[-1]
    # The inputs are the protocol's reference (random with seed 0, stratified by class; faces_fid.py's cache).
    reference, real, floor = real_features(extractor, num, resolution, config=config)
    images, labels = default_collate([dataset[int(i)] for i in reference])
    labels = model.label_rows(labels)
    head = model.domain_heads[0]
    classes = model.label_space.heads[head]
    # Accuracy: image i sent to class i mod K, so every class counts equally.
    target = labels.clone()
    target[:, head] = torch.arange(len(reference)) % classes
    moved = in_batches(lambda x, t: model.translate(x, t).cpu(), images, target)
    back = in_batches(lambda x, t: model.translate(x, t).cpu(), moved, labels)
    classifier, real_accuracy, heads = label_classifier(config, resolution, model.label_space.heads, classifier_steps)

    def hits(x: torch.Tensor) -> float:
        predicted = torch.cat([classifier(quantize(chunk))[head].argmax(1) for chunk in x.split(100)])
        return round(float((predicted == target[:, head]).float().mean()), 3)

    # FID: image i sent to the class of another reference image (a seeded shuffle), so the translations have the
    # reference's class mix, as the protocol asks of conditional samples.
    shuffled = labels.clone()
    shuffled[:, head] = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)), head]
    mixed = in_batches(lambda x, t: model.translate(x, t).cpu(), images, shuffled)
    result = protocol.evaluate(real, features(extractor, to_uint8(mixed)), floor)
    print("translations vs real:", result.describe())
    return {"head": heads[head], "classes": classes, "classifier_real_accuracy": real_accuracy[head],
            "target_accuracy_translated": hits(moved), "target_accuracy_untranslated": hits(images),
            "reconstruction_l1": round(float((back - images).abs().mean()), 4),
            "translated_vs_real": result.as_dict()}


def cogan(model, config: dict, num: int) -> dict:
    variant = config["data"]["init_args"].get("variant", "edges")
    x_a, x_b = map(torch.cat, zip(*(model.sample_indexed(indices) for indices in torch.arange(num).split(100))))
    a01, b01 = x_a.clamp(-1, 1).add(1).div(2), x_b.clamp(-1, 1).add(1).div(2)
    if variant == "edges":
        expected = edge_digits((a01[:, 0] * 255).round().to(torch.uint8))[:, None].float() / 255
    else:
        expected = 1 - a01
    shuffled = expected[torch.randperm(num, generator=torch.Generator().manual_seed(0))]
    return {"variant": variant, "pairs": num, "pair_error": round(float((b01 - expected).abs().mean()), 4),
            "shuffled_pair_error": round(float((b01 - shuffled).abs().mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--num", type=int, default=500, help="images (pairs for CoGAN) to measure on")
    parser.add_argument("--examples", type=int, default=8, help="rows of the picture")
    parser.add_argument("--zoom", type=int, default=2, help="each image this many times larger in the picture")
    parser.add_argument("--classifier-steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    config = yaml.safe_load(args.config.read_text())
    model = model_class(config).load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True).eval()
    kind = type(model).__name__
    extractor = None if kind in ("Pix2Pix", "CoGAN") else InceptionFeatures()
    data = build(config["data"])
    data.setup("fit")
    if kind == "Pix2Pix":
        numbers = pix2pix(model, config, data, args.num)
    elif kind == "CycleGAN":
        numbers = cyclegan(model, config, data, args.num, extractor)
    elif kind == "StarGAN":
        numbers = stargan(model, config, data, args.num, extractor, args.classifier_steps)
    elif kind == "CoGAN":
        numbers = cogan(model, config, args.num)
    else:
        raise SystemExit(f"{kind} is not an image-to-image model this script measures (pix2pix, CycleGAN, StarGAN, CoGAN).")
    numbers = {"config": str(args.config), "checkpoint": str(args.checkpoint), **numbers}
    picture = columns_picture(zoomed(model.pictures(model.held_out(data, args.examples)), args.zoom))
    RESULTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(RESULTS / f"{args.config.stem}.png")
    (RESULTS / f"{args.config.stem}.json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
