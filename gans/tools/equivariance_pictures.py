"""StyleGAN3's pictures as tools: texture sticking (Figure 1) and translation/rotation animations.

Karras et al. 2021, "Alias-Free Generative Adversarial Networks" (StyleGAN3, arXiv:2106.12423):

- :func:`neighbourhood_average`, :func:`texture_sticking_picture`: Figure 1 (left) and the paper's videos. Images
  drawn from a small neighbourhood of one latent move a little (pose, shape); in an equivariant generator all their
  details move with them, so the average of the images is uniformly blurry, while in StyleGAN2 many details (hair,
  fur, wrinkles) stay at the same pixel coordinates ("texture sticking") and the average stays sharp there. The
  picture shows, per generator and seed, the central image and the average, StyleGAN2 beside StyleGAN3. Any
  style-based generator (:class:`gans.training.contracts.StyleGenerator`) works.
- :func:`transform_frames`: the image of one latent while the input coordinates of a StyleGAN3
  (:class:`gans.training.contracts.TransformableGenerator`) sweep a translation along a circle and/or a full turn,
  for a GIF (NVIDIA's ``gen_images.py --translate/--rotate`` at every frame): an equivariant generator moves its
  picture rigidly, details included.

The neighbourhood is in Z: ``z + radius * n`` with ``n ~ N(0, I)`` from a generator seeded by the seed, each mapped
(and truncated) as usual; the paper does not state its neighbourhood. Seeds give latents as
:func:`gans.training.latents.seeded_latents`. Images are ``[N, C, H, W]`` in [-1, 1].

Command line (``--help`` on each command lists every option)::

    python -m gans.tools.equivariance_pictures sticking --checkpoint sg2.ckpt sg3.ckpt --name StyleGAN2 StyleGAN3 --out sticking.png
    python -m gans.tools.equivariance_pictures animate --checkpoint sg3.ckpt --out moves.gif --motion both --frames 48
    python -m gans.tools.equivariance_pictures measure --checkpoint sg3.ckpt --out eq.json --samples 50000

``measure`` writes EQ-T, EQ-T_frac and EQ-R (:mod:`gans.metrics.equivariance`, one official call each) as JSON, of a
StyleGAN3 or of a StyleGAN2 (whose learned constant is translated and rotated: the paper's approximation for config A,
:class:`gans.metrics.equivariance.TransformableConstantGenerator`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gans.errors import ConfigError, exit_on_user_error
from gans.metrics.equivariance import KINDS, METRIC_NAMES, equivariance, rotation_matrix, transformable, user_transform
from gans.tools.pictures import columns_picture
from gans.tools.style_tools import class_vectors, load_model, map_seeds, save_gif, save_picture
from gans.training import contracts
from gans.training.contracts import check_noise_mode
from gans.training.latents import seeded_latents

Motion = Literal["translate", "rotate", "both"]
MOTIONS = ("translate", "rotate", "both")


# Texture sticking (Figure 1).


@torch.no_grad()
def neighbourhood_average(
    generator: contracts.StyleGenerator,
    seeds: Sequence[int],
    num_neighbours: int = 32,
    radius: float = 0.2,
    labels: Tensor | Sequence[int] | int | None = None,
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
) -> tuple[Tensor, Tensor]:
    """``(central [S, C, H, W], average [S, C, H, W])``: per seed its image and the mean of the images of
    ``num_neighbours`` latents ``z + radius * n`` around its latent ``z`` (``n`` drawn from a generator seeded by the
    seed)."""
    contracts.require(generator, contracts.StyleGenerator, "gans.tools.equivariance_pictures.neighbourhood_average")
    check_noise_mode(noise_mode)
    if num_neighbours < 1 or not radius >= 0:
        raise ConfigError(f"The neighbourhood needs num_neighbours >= 1 and radius >= 0, got {num_neighbours} and {radius}.")
    device = next(generator.parameters()).device
    central = generator.synthesis(map_seeds(generator, seeds, labels, truncation_psi), noise_mode=noise_mode)
    c = class_vectors(generator, labels, num_neighbours)
    averages = []
    for seed, z in zip(seeds, seeded_latents(seeds, generator.z_dim)):
        noise = torch.randn(num_neighbours, generator.z_dim, generator=torch.Generator().manual_seed(seed))
        ws = generator.mapping((z + radius * noise).to(device), c, truncation_psi=truncation_psi, update_w_avg=False)
        averages.append(generator.synthesis(ws, noise_mode=noise_mode).mean(dim=0))
    return central, torch.stack(averages)


MIN_SIDE = 96  # pixels of a picture's cell: a 32 px run's cells are enlarged 3x so the titles fit


def texture_sticking_picture(columns: Sequence[tuple[str, Tensor, Tensor]]) -> np.ndarray:
    """The figure as ``[H, W, 3]`` uint8: for each ``(name, central, average)`` (e.g. StyleGAN2's, then StyleGAN3's)
    a column of central images and one of averages, a row per seed; images of lower resolution are enlarged (nearest)
    to the largest, and all by a whole factor to at least ``MIN_SIDE`` pixels, so that the column titles fit."""
    side = max(t.shape[-1] for _, central, average in columns for t in (central, average))
    side *= -(-MIN_SIDE // side)  # the whole factor that brings the largest to at least MIN_SIDE

    def fit(images: Tensor) -> Tensor:
        images = images.float().cpu()
        return images if images.shape[-1] == side else F.interpolate(images, size=(side, side), mode="nearest")

    titled = []
    for name, central, average in columns:
        titled += [(name, fit(central)), (f"{name} average", fit(average))]
    channels = max(images.shape[1] for _, images in titled)
    return columns_picture([(title, images.expand(-1, channels, -1, -1)) for title, images in titled])


# Translation and rotation (the videos).


def image_transform(translate: tuple[float, float], angle: float) -> Tensor:
    """The [3, 3] transform that rotates an image by ``angle`` degrees and moves it by ``translate`` image widths
    (``gen_images.make_transform``); its inverse is what ``synthesis.input.transform`` takes."""
    matrix = rotation_matrix(math.radians(angle))
    matrix[0, 2], matrix[1, 2] = translate
    return matrix


@torch.no_grad()
def transform_frames(
    generator: contracts.TransformableGenerator,
    seed: int,
    num_frames: int = 48,
    motion: Motion = "both",
    translate_radius: float = 0.125,
    labels: Tensor | Sequence[int] | int | None = None,
    truncation_psi: float = 1.0,
) -> Tensor:
    """``[num_frames, C, H, W]``: the image of ``seed`` as its content moves once round a circle of
    ``translate_radius`` image widths (``translate``), turns once (``rotate``) or both, one loop (frame
    ``num_frames`` would equal frame 0). The generator's input transform is put back afterwards."""
    contracts.require(
        generator,
        contracts.TransformableGenerator,
        "gans.tools.equivariance_pictures.transform_frames",
        "use a StyleGAN3 checkpoint (its synthesis has an input transform)",
    )
    if motion not in MOTIONS:
        raise ConfigError(f"Unknown motion {motion!r}: choose one of {', '.join(MOTIONS)}.")
    if num_frames < 2:
        raise ConfigError(f"An animation needs at least 2 frames, got {num_frames}.")
    ws = map_seeds(generator, [seed], labels, truncation_psi)
    frames = []
    for k in range(num_frames):
        phase = 2 * math.pi * k / num_frames
        translate = (translate_radius * math.cos(phase), translate_radius * math.sin(phase)) if motion != "rotate" else (0.0, 0.0)
        angle = math.degrees(phase) if motion != "translate" else 0.0
        matrix = torch.linalg.inv(image_transform(translate, angle)).to(ws.device)
        with user_transform(generator.synthesis, matrix):
            frames.append(generator.synthesis(ws, noise_mode="const")[0])
    return torch.stack(frames)


# Command line.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gans.tools.equivariance_pictures", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, many: bool) -> None:
        p.add_argument("--checkpoint", required=True, nargs="+" if many else None, help="Lightning checkpoint(s) of a style-based run")
        p.add_argument("--out", required=True, help="output picture (.png) or animation (.gif)")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: cuda when available)")
        p.add_argument("--class-label", type=int, nargs="+", default=None, help="class of a conditional model (one per label head)")
        p.add_argument("--truncation-psi", type=float, default=1.0, help="truncation psi of the latents (1 = off)")

    p = commands.add_parser("sticking", help="central image and neighbourhood average per model (texture sticking, Figure 1)")
    common(p, many=True)
    p.add_argument("--name", nargs="+", default=None, help="column title per checkpoint (default: the model class)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--neighbours", type=int, default=32, help="latents averaged per seed")
    p.add_argument("--radius", type=float, default=0.2, help="size of the neighbourhood in Z (standard deviation)")

    p = commands.add_parser("animate", help="translation/rotation of a StyleGAN3's input as a GIF")
    common(p, many=False)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--motion", default="both", choices=MOTIONS)
    p.add_argument("--frames", type=int, default=48, help="frames per loop")
    p.add_argument("--radius", type=float, default=0.125, help="radius of the translation circle, in image widths")
    p.add_argument("--fps", type=float, default=24.0)

    p = commands.add_parser("measure", help="EQ-T, EQ-T_frac and EQ-R of a StyleGAN3 or StyleGAN2 (official protocol) as JSON")
    common(p, many=False)
    p.add_argument("--samples", type=int, default=50_000, help="samples per metric (paper: 50,000)")
    p.add_argument("--seed", type=int, default=0)
    return parser


def _labels(values: list[int] | None) -> list[int] | int | None:
    return None if not values else values[0] if len(values) == 1 else values


def run(args: argparse.Namespace) -> Path:
    """Execute one parsed command; returns the file written."""
    labels = _labels(args.class_label)
    if args.command == "sticking":
        names = args.name or [None] * len(args.checkpoint)
        if len(names) != len(args.checkpoint):
            raise ConfigError(f"Give one --name per --checkpoint: {len(args.checkpoint)} checkpoints, {len(names)} names.")
        columns = []
        for checkpoint, name in zip(args.checkpoint, names):
            model = load_model(checkpoint, args.device)
            central, average = neighbourhood_average(model.sampling_generator, args.seeds, args.neighbours, args.radius, labels, args.truncation_psi)
            columns.append((name or type(model).__name__, central, average))
        return save_picture(texture_sticking_picture(columns), args.out)
    model = load_model(args.checkpoint, args.device)
    if args.command == "measure":
        generator = transformable(model.sampling_generator)  # a StyleGAN2's learned constant is transformed (config A)
        values = {METRIC_NAMES[kind]: equivariance(generator, kind, args.samples, seed=args.seed, label_space=model.label_space) for kind in KINDS}
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**values, "num_samples": args.samples, "seed": args.seed}, indent=1) + "\n")
        return path
    frames = transform_frames(model.sampling_generator, args.seed, args.frames, args.motion, args.radius, labels, args.truncation_psi)
    return save_gif(frames, args.out, args.fps)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gans.tools.equivariance_pictures <command> ...``; a user error prints one line (exit status 2)."""
    args = build_parser().parse_args(argv)
    path = exit_on_user_error(lambda: run(args))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
