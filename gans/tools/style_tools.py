"""The StyleGAN figures as tools: truncation grids, style mixing, per-layer noise, interpolation, projection.

StyleGAN (Karras et al. 2019, arXiv:1812.04948) and StyleGAN2 (Karras et al. 2020, arXiv:1912.04958):

- :func:`truncation_grid`: the truncation trick (StyleGAN section 3.3, Figure 8): rows are seeds, columns
  values of psi, ``w' = w_avg + psi (w - w_avg)`` (psi 1: no truncation, 0: the average face, < 0: the
  "anti-face").
- :func:`style_mixing_grid`: style mixing (section 3.1, Figure 3): the top row shows source A, the left
  column source B, and each cell A's ws with the ws of the chosen layers taken from B: coarse styles
  (4-8 px: pose, face shape, glasses), middle (16-32 px: features, hair style, eyes) or fine (64 px and up:
  colour scheme, micro-structure).
- :func:`noise_grid`: stochastic variation (section 3.2, Figure 7): the same w rendered with noise in all
  layers, in none, only in the fine layers (64 px and up) and only in the coarse ones (below 64 px).
- :func:`interpolation_frames`: a path between seeds, lerp in W or slerp in Z (section 4.2), for a GIF or a grid.
- projection into W: :func:`gans.tools.projector.project` (StyleGAN2 Appendix D).

Every function takes a :class:`gans.training.contracts.StyleGenerator` (the EMA generator of a trained model:
:func:`load_model`, then ``model.sampling_generator``), checked when called, and returns images ``[N, C, H, W]``
in [-1, 1]; seeds give latents as :func:`gans.training.latents.seeded_latents` (seed i is sample i of
``lightning predict``). No model class is imported: a checkpoint's class is the one it names.

What the tools rely on beyond the contract: per-layer noise control (:func:`noise_only_at`) needs the synthesis
layers that add noise to be :class:`gans.training.contracts.NoiseLayer` s (``resolution``, and ``use_noise`` read at
every forward; both :mod:`gans.models.style.stylegan` and :mod:`gans.models.style.stylegan2` have them); projection
needs the ``noise_const`` buffers (:mod:`gans.tools.projector`).

Command line (``--help`` on each command lists every option)::

    python -m gans.tools.style_tools truncation --checkpoint last.ckpt --out truncation.png --seeds 0 1 2 --psi 1 0.7 0.5 0 -0.5 -1
    python -m gans.tools.style_tools mix --checkpoint last.ckpt --out mix.png --cols 0 1 2 3 --rows 4 5 --styles coarse
    python -m gans.tools.style_tools noise --checkpoint last.ckpt --out noise.png --seeds 0 1
    python -m gans.tools.style_tools interpolate --checkpoint last.ckpt --out walk.gif --seeds 0 1 2 --steps 30
    python -m gans.tools.style_tools project --checkpoint last.ckpt --target face.png --out projection.png
"""

from __future__ import annotations

import argparse
import importlib
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.utils import make_grid

from gans import legacy
from gans.errors import ConfigError, exit_on_user_error
from gans.metrics.inception import to_uint8
from gans.tools.pictures import real_vs_fake_grid
from gans.tools.projector import project
from gans.training import contracts
from gans.training.contracts import check_noise_mode
from gans.training.core import AdversarialModule
from gans.training.latents import lerp, seeded_latents, slerp

# Style ranges of StyleGAN Figure 3, by the resolution of the layer that reads each w.
STYLE_RANGES: dict[str, Callable[[int], bool]] = {
    "coarse": lambda res: res <= 8,
    "middle": lambda res: 16 <= res <= 32,
    "fine": lambda res: res >= 64,
}
NOISE_FINE_FROM = 64  # Figure 7: "fine" noise is 64^2 - 1024^2, "coarse" 4^2 - 32^2
DEFAULT_PSIS = (1.0, 0.7, 0.5, 0.0, -0.5, -1.0)  # the columns of Figure 8
Space = Literal["w", "z"]


# Latents and labels.


def class_vectors(generator: contracts.StyleGenerator, labels: Tensor | Sequence[int] | int | None, n: int) -> Tensor | None:
    """The class vectors ``[n, c_dim]`` of one label repeated ``n`` times (or of ``n`` labels); None when
    unconditional. A single-head label is an int; a multi-head one a list with one class per head."""
    space = generator.label_space
    if not space.conditional:
        if labels is not None:
            raise ConfigError("This generator is unconditional: drop the class label.")
        return None
    if labels is None:
        raise ConfigError(f"This generator is conditional (num_classes={list(space.heads)}): give a class label (--class-label).")
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.dim() == 0 or (space.multi_head and labels.dim() == 1):
        labels = labels.unsqueeze(0).expand(n, *labels.shape)
    for h, (k, column) in enumerate(zip(space.heads, labels.reshape(len(labels), -1).T)):
        if column.min() < 0 or column.max() >= k:
            raise ConfigError(f"Class label {column.tolist()} out of range for head {h} with {k} classes.")
    return generator.class_vector(labels.to(_device(generator)))


def map_seeds(
    generator: contracts.StyleGenerator,
    seeds: Sequence[int],
    labels: Tensor | Sequence[int] | int | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
) -> Tensor:
    """``ws [len(seeds), num_ws, w_dim]`` of the seeded latents (truncated with ``truncation_psi``)."""
    z = seeded_latents(seeds, generator.z_dim).to(_device(generator))
    c = class_vectors(generator, labels, len(seeds))
    return generator.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_w_avg=False)


def _device(generator: nn.Module) -> torch.device:
    return next(generator.parameters()).device


def _style_generator(generator: nn.Module, tool: str) -> contracts.StyleGenerator:
    return contracts.require(generator, contracts.StyleGenerator, f"gans.tools.style_tools.{tool}")


# Truncation (Figure 8).


@torch.no_grad()
def truncation_grid(
    generator: contracts.StyleGenerator,
    seeds: Sequence[int],
    psis: Sequence[float] = DEFAULT_PSIS,
    labels: Tensor | Sequence[int] | int | None = None,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
) -> Tensor:
    """``[len(seeds) * len(psis), C, H, W]``, row-major: row i is seed i at every psi."""
    _style_generator(generator, "truncation_grid")
    check_noise_mode(noise_mode)
    ws = map_seeds(generator, seeds, labels)  # [S, num_ws, w_dim], untruncated
    w_avg = generator.mapping.w_avg
    cutoff = generator.num_ws if truncation_cutoff is None else truncation_cutoff
    rows = []
    for w in ws:
        truncated = w.unsqueeze(0).repeat(len(psis), 1, 1)  # [P, num_ws, w_dim]
        psi = torch.tensor(list(psis), device=w.device, dtype=w.dtype).reshape(-1, 1, 1)
        truncated[:, :cutoff] = lerp(w_avg, truncated[:, :cutoff], psi)
        rows.append(generator.synthesis(truncated, noise_mode=noise_mode))
    return torch.cat(rows)


# Style mixing (Figure 3).


def style_layers(ws_resolutions: Sequence[int], styles: str | Sequence[int]) -> list[int]:
    """Indices of the ws read at the resolutions ``styles`` names: ``"coarse"`` (4-8 px), ``"middle"`` (16-32),
    ``"fine"`` (64 and up), or explicit resolutions such as ``[4, 8]``."""
    if isinstance(styles, str):
        if styles not in STYLE_RANGES:
            raise ConfigError(f"Unknown styles {styles!r}: choose coarse, middle, fine or give resolutions (e.g. 4,8).")
        layers = [i for i, res in enumerate(ws_resolutions) if STYLE_RANGES[styles](res)]
    else:
        layers = [i for i, res in enumerate(ws_resolutions) if res in set(styles)]
    if not layers:
        raise ConfigError(
            f"No layer of this generator reads styles {styles!r}: its layers work at {sorted(set(ws_resolutions))} px."
        )
    return layers


@torch.no_grad()
def style_mixing_grid(
    generator: contracts.StyleGenerator,
    seeds_a: Sequence[int],
    seeds_b: Sequence[int],
    styles: str | Sequence[int] = "coarse",
    labels: Tensor | Sequence[int] | int | None = None,
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
) -> Tensor:
    """``[(1 + len(seeds_b)) * (1 + len(seeds_a)), C, H, W]`` row-major, as Figure 3: a blank corner and the
    A images on the top row; then per B seed, the B image and A's ws with B's ``styles`` layers."""
    _style_generator(generator, "style_mixing_grid")
    check_noise_mode(noise_mode)
    layers = style_layers(generator.synthesis.ws_resolutions, styles)
    ws_a = map_seeds(generator, seeds_a, labels, truncation_psi)  # [A, num_ws, w_dim]
    ws_b = map_seeds(generator, seeds_b, labels, truncation_psi)  # [B, num_ws, w_dim]
    images_a = generator.synthesis(ws_a, noise_mode=noise_mode)
    images_b = generator.synthesis(ws_b, noise_mode=noise_mode)
    rows = [torch.cat([torch.ones_like(images_a[:1]), images_a])]  # blank (white) corner
    for i in range(len(seeds_b)):
        mixed = ws_a.clone()
        mixed[:, layers] = ws_b[i, layers]
        rows.append(torch.cat([images_b[i : i + 1], generator.synthesis(mixed, noise_mode=noise_mode)]))
    return torch.cat(rows)


# Noise (Figure 7).


def noise_layers(synthesis: nn.Module) -> list[nn.Module]:
    """The layers of ``synthesis`` that add noise: the :class:`gans.training.contracts.NoiseLayer` s among its modules."""
    layers = [m for m in synthesis.modules() if isinstance(m, contracts.NoiseLayer)]
    if not layers:
        raise ConfigError(
            f"{type(synthesis).__name__} has no layers with `use_noise` and `resolution` attributes, so the tools cannot "
            "switch its noise per layer (see gans.tools.style_tools)."
        )
    return layers


@contextmanager
def noise_only_at(synthesis: nn.Module, keep: Callable[[int], bool]) -> Iterator[None]:
    """Within the block only the layers whose resolution passes ``keep`` add noise; the rest get ``use_noise = False``
    (restored afterwards)."""
    layers = noise_layers(synthesis)
    saved = [layer.use_noise for layer in layers]
    try:
        for layer in layers:
            layer.use_noise = layer.use_noise and bool(keep(layer.resolution))
        yield
    finally:
        for layer, value in zip(layers, saved):
            layer.use_noise = value


NOISE_COLUMNS = ("all", "none", "fine", "coarse")


@torch.no_grad()
def noise_grid(
    generator: contracts.StyleGenerator,
    seeds: Sequence[int],
    labels: Tensor | Sequence[int] | int | None = None,
    truncation_psi: float = 1.0,
    fine_from: int = NOISE_FINE_FROM,
    noise_mode: str = "const",
) -> Tensor:
    """``[len(seeds) * 4, C, H, W]``, row-major, as Figure 7: per seed the same w with noise in all layers,
    in none, only at ``fine_from`` px and up, only below ``fine_from`` px. ``noise_mode``: the noise shown,
    ``"const"`` (each layer's fixed map) or ``"random"`` (drawn from the global random state)."""
    _style_generator(generator, "noise_grid")
    if noise_mode not in ("const", "random"):
        raise ConfigError(f"noise_grid shows noise: noise_mode must be const or random, got {noise_mode!r}.")
    resolutions = {layer.resolution for layer in noise_layers(generator.synthesis)}
    if not any(r >= fine_from for r in resolutions) or not any(r < fine_from for r in resolutions):
        raise ConfigError(
            f"fine_from={fine_from} leaves no fine or no coarse noise layer (noise layers at {sorted(resolutions)} px): "
            "choose a resolution in between (--fine-from)."
        )
    ws = map_seeds(generator, seeds, labels, truncation_psi)
    keeps = {"all": lambda r: True, "none": lambda r: False, "fine": lambda r: r >= fine_from, "coarse": lambda r: r < fine_from}
    columns = []
    for name in NOISE_COLUMNS:
        with noise_only_at(generator.synthesis, keeps[name]):
            columns.append(generator.synthesis(ws, noise_mode=noise_mode))
    return torch.stack(columns, dim=1).flatten(0, 1)  # [S, 4, C, H, W] -> row-major


# Interpolation (section 4.2's paths).


@torch.no_grad()
def interpolation_frames(
    generator: contracts.StyleGenerator,
    seeds: Sequence[int],
    steps: int = 16,
    space: Space = "w",
    labels: Tensor | Sequence[int] | int | None = None,
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
) -> Tensor:
    """``[len(seeds) - 1, steps, C, H, W]``: row k walks from seed k to seed k + 1 in ``steps`` frames, both
    ends included. ``space="w"``: lerp of the (truncated) ws; ``"z"``: slerp of the latents' directions with
    their lengths lerped (so the ends are exactly the seeds' latents), then mapping."""
    _style_generator(generator, "interpolation_frames")
    check_noise_mode(noise_mode)
    if len(seeds) < 2 or steps < 2:
        raise ConfigError(f"Interpolation needs at least 2 seeds and 2 steps, got {len(seeds)} seeds and {steps} steps.")
    if space not in ("w", "z"):
        raise ConfigError(f"Unknown interpolation space {space!r}: choose w (lerp) or z (slerp).")
    device = _device(generator)
    t = torch.linspace(0, 1, steps, device=device).reshape(-1, 1)  # [T, 1]
    rows = []
    if space == "w":
        ws = map_seeds(generator, seeds, labels, truncation_psi)
        for a, b in zip(ws[:-1], ws[1:]):
            path = lerp(a.unsqueeze(0), b.unsqueeze(0), t.unsqueeze(-1))  # [T, num_ws, w_dim]
            rows.append(generator.synthesis(path, noise_mode=noise_mode))
    else:
        z = seeded_latents(seeds, generator.z_dim).to(device)
        c = class_vectors(generator, labels, steps)
        for a, b in zip(z[:-1], z[1:]):
            a, b = a.expand(steps, -1), b.expand(steps, -1)
            path = slerp(a, b, t) * lerp(a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True), t)  # [T, z_dim]
            ws = generator.mapping(path, c, truncation_psi=truncation_psi, update_w_avg=False)
            rows.append(generator.synthesis(ws, noise_mode=noise_mode))
    return torch.stack(rows)


# Pictures.


def grid_picture(images: Tensor, nrow: int) -> np.ndarray:
    """``[H, W, 3]`` uint8: ``images`` in [-1, 1] on a white-padded grid of ``nrow`` columns."""
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=2, pad_value=1.0)  # 1 channel -> 3
    return to_uint8(grid).permute(1, 2, 0).numpy()


def save_picture(picture: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path


def save_gif(frames: Tensor, path: str | Path, fps: float = 15.0, bounce: bool = False) -> Path:
    """An animated GIF (looping) of ``frames [T, C, H, W]`` in [-1, 1]; ``bounce`` plays it forth and back."""
    from PIL import Image

    pictures = [Image.fromarray(grid_picture(frame.unsqueeze(0), 1)) for frame in frames]
    if bounce:
        pictures += pictures[-2:0:-1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=round(1000 / fps), loop=0)
    return path


def load_image(path: str | Path, resolution: int, channels: int) -> Tensor:
    """The image at ``path`` as ``[channels, resolution, resolution]`` in [-1, 1]: centre-cropped to a square and
    resized with Lanczos (as the official projector prepares its target)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Target image {path} does not exist.")
    try:
        image = Image.open(path).convert("RGB" if channels == 3 else "L")
    except OSError as err:
        raise ConfigError(f"Cannot read the target image {path}: {err}.") from None
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((resolution, resolution), Image.LANCZOS)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).float()
    pixels = pixels.unsqueeze(-1) if pixels.dim() == 2 else pixels
    return pixels.permute(2, 0, 1).div(127.5).sub(1)


# Checkpoints.


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> contracts.StyleSampler:
    """The style-based model (a :class:`gans.training.contracts.StyleSampler`) saved in a Lightning checkpoint of any
    gans run, in eval mode on ``device``; its ``sampling_generator`` is the EMA generator when the run kept one.

    The class is the one the checkpoint names (``gan_progress.model_class``, an old module path translated as
    :mod:`gans.legacy` does), and it must be a gans model; the file is read with ``weights_only=True`` (no code from
    the checkpoint runs). A model that is not style-based is refused in one line naming what it lacks."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"Checkpoint {path} does not exist.")
    header = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    class_path = header.get("gan_progress", {}).get("model_class") if isinstance(header, dict) else None
    if not class_path:
        raise ConfigError(f"{path} was not written by a gans run (no gan_progress.model_class): pass a checkpoint of a StyleGAN model.")
    del header
    class_path = legacy.current_name(class_path)
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise ConfigError(f"{path} was written by {class_path}, which cannot be imported here.") from None
    if not (isinstance(cls, type) and issubclass(cls, AdversarialModule)):
        raise ConfigError(f"{path} names {class_path}, which is not a gans model: pass a checkpoint of a StyleGAN or StyleGAN2 run.")
    model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    contracts.require(model, contracts.StyleSampler, "gans.tools.style_tools", "pass a checkpoint of a StyleGAN or StyleGAN2 run")
    return model.to(device).eval()


# Command line.


def _labels_arg(values: list[int] | None) -> list[int] | int | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="Lightning checkpoint of a StyleGAN / StyleGAN2 run")
    parser.add_argument("--out", required=True, help="output picture (.png; interpolate also .gif)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: cuda when available)")
    parser.add_argument("--class-label", type=int, nargs="+", default=None, help="class of a conditional model (one per label head)")
    parser.add_argument("--noise-mode", default="const", choices=("const", "random", "none"), help="synthesis noise (default: const)")


def _psi(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truncation-psi", type=float, default=1.0, help="truncation psi of the latents (1 = off)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gans.tools.style_tools", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("truncation", help="grid of seeds (rows) x psi (columns), StyleGAN Figure 8")
    _common(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--psi", type=float, nargs="+", default=list(DEFAULT_PSIS), help="psi values, one column each")
    p.add_argument("--truncation-cutoff", type=int, default=None, help="truncate only the first this many ws")

    p = commands.add_parser("mix", help="style-mixing grid, StyleGAN Figure 3")
    _common(p)
    _psi(p)
    p.add_argument("--cols", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="source A seeds (top row)")
    p.add_argument("--rows", type=int, nargs="+", default=[5, 6, 7], help="source B seeds (left column)")
    p.add_argument("--styles", default="coarse", help="styles copied from B: coarse (4-8 px), middle (16-32), fine (64+) or resolutions, e.g. 4,8")

    p = commands.add_parser("noise", help="noise in all / no / fine / coarse layers, StyleGAN Figure 7")
    _common(p)
    _psi(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fine-from", type=int, default=NOISE_FINE_FROM, help="layers at this resolution and up are 'fine' (64)")

    p = commands.add_parser("interpolate", help="latent walk between seeds as a GIF (.gif) or grid (.png)")
    _common(p)
    _psi(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 0])
    p.add_argument("--steps", type=int, default=16, help="frames per pair of seeds, both ends included")
    p.add_argument("--space", default="w", choices=("w", "z"), help="lerp in W or slerp in Z")
    p.add_argument("--fps", type=float, default=15.0)

    p = commands.add_parser("project", help="project an image into W (StyleGAN2 Appendix D); writes target | projection and the w")
    _common(p)
    p.add_argument("--target", required=True, help="image to project (centre-cropped and resized to the model's resolution)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--distance", default="inception", choices=("inception", "pixel"), help="image distance (inception: LPIPS-style, offline)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial noise maps and w noise")
    p.add_argument("--w-out", default=None, help="where the projected ws [1, num_ws, w_dim] go (torch.save; default: --out with .pt)")
    return parser


def _styles_arg(text: str) -> str | list[int]:
    if text in STYLE_RANGES:
        return text
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--styles takes coarse, middle, fine or comma-separated resolutions (4,8), got {text!r}.") from None


def run(args: argparse.Namespace) -> Path:
    """Execute one parsed command; returns the picture written."""
    model = load_model(args.checkpoint, args.device)
    generator = model.sampling_generator
    labels = _labels_arg(args.class_label)
    out = Path(args.out)
    if args.command == "truncation":
        images = truncation_grid(generator, args.seeds, args.psi, labels, args.truncation_cutoff, args.noise_mode)
        return save_picture(grid_picture(images, len(args.psi)), out)
    if args.command == "mix":
        images = style_mixing_grid(generator, args.cols, args.rows, _styles_arg(args.styles), labels, args.truncation_psi, args.noise_mode)
        return save_picture(grid_picture(images, len(args.cols) + 1), out)
    if args.command == "noise":
        images = noise_grid(generator, args.seeds, labels, args.truncation_psi, args.fine_from, args.noise_mode)
        return save_picture(grid_picture(images, len(NOISE_COLUMNS)), out)
    if args.command == "interpolate":
        frames = interpolation_frames(generator, args.seeds, args.steps, args.space, labels, args.truncation_psi, args.noise_mode)
        if out.suffix.lower() == ".gif":
            walk = torch.cat([frames[0], *(row[1:] for row in frames[1:])])  # shared ends once
            return save_gif(walk, out, args.fps)
        return save_picture(grid_picture(frames.flatten(0, 1), args.steps), out)
    if args.command == "project":
        target = load_image(args.target, generator.img_resolution, generator.img_channels)
        label = None if labels is None else torch.as_tensor(labels).reshape((1, -1) if generator.label_space.multi_head else (1,))

        def report(step: int, distance: float) -> None:
            if step == 0 or (step + 1) % 100 == 0 or step + 1 == args.steps:
                print(f"step {step + 1}/{args.steps}: distance {distance:.4f}", file=sys.stderr)

        projection = project(generator, target, label, num_steps=args.steps, distance=args.distance, seed=args.seed, on_step=report)
        w_out = Path(args.w_out) if args.w_out else out.with_suffix(".pt")
        w_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(projection.ws.cpu(), w_out)
        picture = real_vs_fake_grid(target.unsqueeze(0), projection.image.cpu(), nrow=1)
        return save_picture(picture.permute(1, 2, 0).numpy(), out)
    raise ConfigError(f"Unknown command {args.command!r}.")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gans.tools.style_tools <command> ...``; a user error prints one line (exit status 2)."""
    args = build_parser().parse_args(argv)
    path = exit_on_user_error(lambda: run(args))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
