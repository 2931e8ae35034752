"""Projection of an image into W: the StyleGAN2 projector (Karras et al. 2020, arXiv:1912.04958, Appendix D).

Finds the w (one vector, broadcast to every layer) and the per-layer noise maps whose image is closest to a
target, by Adam on ``distance(G(w, noise), target) + alpha * L_noise``:

- w starts at the mean of 10,000 mapped latents; its "spread" ``sigma_w`` is the root mean squared
  distance of those samples to the mean, summed over dimensions (as the official code computes it);
- learning rate 0.1, ramped up over the first 5% of steps and down with a cosine over the last 25%;
- during the first 75% of steps Gaussian noise of std ``0.05 sigma_w (1 - t/0.75)^2`` is added to w before
  synthesis, which explores W early on (the paper's "ramped-down noise");
- the noise maps n_i start as N(0, I) and are optimised too, with the noise regulariser (weight 1e5) and,
  after every step, renormalised to zero mean and unit variance (:func:`noise_regularization`);
- the image distance is LPIPS in the paper; here any distance of :mod:`gans.metrics.perceptual` (default: the
  LPIPS-style :class:`gans.metrics.perceptual.InceptionDistance`, no download) or your own callable.

It takes a :class:`gans.training.contracts.StyleGenerator`, checked first. What it relies on beyond that contract:
with ``noise_mode="const"`` the synthesis layers
read buffers whose names end in ``noise_const`` (the official naming). The projector works on a deep copy of
the generator, makes those buffers optimisable there and leaves the caller's generator untouched. A
generator with no such buffers is projected through w alone (with a warning).

Deviations from the official ``projector.py``: the distance (above); the target's side must equal the
generator's resolution (no internal 256 px downsampling: the distance resizes); random draws come from
``seed`` through a private ``torch.Generator`` (the global random state is left alone).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.metrics.perceptual import (
    Distance,
    FeatureDistance,
    per_image,
    resolve_distance,
)
from gans.training import contracts

NOISE_BUFFER_SUFFIX = "noise_const"
NOISE_REGULARIZATION_MIN_SIZE = 8  # autocorrelation is penalised down to 8x8 (Appendix D)


@dataclass
class Projection:
    """The result of :func:`project`."""

    ws: Tensor  # [1, num_ws, w_dim]: the projected w, broadcast to every layer
    image: Tensor  # [1, C, H, W]: G(ws) with the optimised noise maps, in [-1, 1]
    noise: dict[str, Tensor]  # optimised noise maps, by buffer name in the synthesis network
    distances: list[float]  # image distance at every step
    w_steps: Tensor | None = field(default=None)  # [num_steps, w_dim]: w after every step (keep_steps=True)


# The schedule (official projector.py).


def projector_learning_rate(t: float, initial: float = 0.1, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """Learning rate at progress ``t = step / num_steps``: a linear ramp up over ``rampup`` and a cosine ramp
    down over the last ``rampdown`` of the steps."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial * ramp * min(1.0, t / rampup)


def w_noise_std(t: float, w_std: float, initial_noise_factor: float = 0.05, noise_ramp_length: float = 0.75) -> float:
    """Std of the noise added to w at progress ``t``: ``w_std * factor * max(0, 1 - t / ramp)^2``."""
    return w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2


# The noise regulariser (Appendix D).


def noise_regularization(noise_maps: list[Tensor], min_size: int = NOISE_REGULARIZATION_MIN_SIZE) -> Tensor:
    """``sum_i sum_j L_ij``: for each noise map n_i (last two dims spatial), at every level j of its pyramid
    (2x2 average pooling until the side is ``min_size`` or less, that level included),
    ``L_ij = (mean_xy n_ij(x, y) n_ij(x - 1, y))^2 + (mean_xy n_ij(x, y) n_ij(x, y - 1))^2`` with cyclic
    shifts: the squared autocorrelation at one pixel's lag, which is zero for white noise."""
    total = torch.zeros(())
    for noise in noise_maps:
        x = noise.reshape(-1, 1, *noise.shape[-2:])  # [maps, 1, H, W]
        total = total.to(x.device)
        while True:
            total = total + (x * torch.roll(x, shifts=1, dims=3)).mean().square()
            total = total + (x * torch.roll(x, shifts=1, dims=2)).mean().square()
            if x.shape[-1] <= min_size or x.shape[-2] <= min_size:
                break
            x = F.avg_pool2d(x, kernel_size=2)
    return total


@torch.no_grad()
def normalize_noise_(noise_maps: list[Tensor]) -> None:
    """Each map in place to zero mean and unit variance (after every step, Appendix D)."""
    for noise in noise_maps:
        noise.sub_(noise.mean())
        noise.mul_(noise.square().mean().rsqrt())


def noise_buffers(synthesis: nn.Module) -> dict[str, Tensor]:
    """The buffers of ``synthesis`` whose names end in ``noise_const``, read with ``noise_mode="const"``."""
    return {name: buf for name, buf in synthesis.named_buffers() if name.endswith(NOISE_BUFFER_SUFFIX)}


# W statistics.


@torch.no_grad()
def w_statistics(generator: contracts.StyleGenerator, c: Tensor | None, num_samples: int = 10_000, seed: int = 123, batch_size: int = 1000) -> tuple[Tensor, float]:
    """``(w_mean [1, 1, w_dim], w_std)``: the mean of ``num_samples`` mapped latents (latents seeded from
    ``seed``; class vector ``c [1, c_dim]`` for all) and the root mean squared distance to it, summed over
    the dimensions of w."""
    device = generator.mapping.w_avg.device
    g = torch.Generator().manual_seed(seed)
    ws = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        z = torch.randn(n, generator.z_dim, generator=g).to(device)
        cs = None if c is None else c.expand(n, -1)
        ws.append(generator.mapping(z, cs, update_w_avg=False)[:, :1].float())  # [n, 1, w_dim]
    ws = torch.cat(ws)
    w_mean = ws.mean(dim=0, keepdim=True)
    w_std = float((ws - w_mean).square().sum().div(num_samples).sqrt())
    return w_mean, w_std


# The projector.


def project(
    generator: contracts.StyleGenerator,
    target: Tensor,
    labels: Tensor | None = None,
    *,
    num_steps: int = 1000,
    distance: str | Distance = "inception",
    w_avg_samples: int = 10_000,
    initial_learning_rate: float = 0.1,
    initial_noise_factor: float = 0.05,
    lr_rampdown_length: float = 0.25,
    lr_rampup_length: float = 0.05,
    noise_ramp_length: float = 0.75,
    regularize_noise_weight: float = 1e5,
    seed: int = 0,
    keep_steps: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> Projection:
    """Project ``target`` into the W space of ``generator`` (StyleGAN2 Appendix D; see the module docstring).

    Args:
        generator: a :class:`gans.training.contracts.StyleGenerator` (left unchanged).
        target: the image ``[C, H, W]`` or ``[1, C, H, W]`` in [-1, 1], at the generator's resolution.
        labels: for a conditional generator, the class of the target (``[1]``, or ``[1, heads]``).
        num_steps: Adam steps (1000).
        distance: ``"inception"``, ``"pixel"`` or a callable ``distance(img_a, img_b) -> [N]`` (images in [-1, 1]).
        w_avg_samples: mapped latents for the initial w and its spread (10,000).
        initial_learning_rate: peak Adam learning rate (0.1).
        initial_noise_factor: std of the noise added to w at the start, relative to the spread of W (0.05).
        lr_rampdown_length: fraction of the steps over which the learning rate ramps down (0.25).
        lr_rampup_length: fraction of the steps over which it ramps up (0.05).
        noise_ramp_length: fraction of the steps after which no noise is added to w (0.75).
        regularize_noise_weight: weight alpha of the noise regulariser (1e5).
        seed: seed of the initial noise maps and the noise added to w.
        keep_steps: also return w after every step (for a video of the optimisation).
        on_step: called as ``on_step(step, distance)`` after every step (progress printing).
    """
    contracts.require(generator, contracts.StyleGenerator, "gans.tools.projector.project")
    if num_steps < 1:
        raise ConfigError(f"project needs num_steps >= 1, got {num_steps}.")
    if target.dim() == 3:
        target = target.unsqueeze(0)
    expected = (1, generator.img_channels, generator.img_resolution, generator.img_resolution)
    if tuple(target.shape) != expected:
        raise ConfigError(f"The target must be one image of shape {list(expected[1:])} (the generator's), got {list(target.shape)}.")
    distance = resolve_distance(distance)

    # Setup: a private copy of the generator whose noise buffers become optimisable.
    g = copy.deepcopy(generator).eval().requires_grad_(False)
    device = next(g.parameters()).device
    target = target.to(device).float()
    if isinstance(distance, nn.Module):
        distance = distance.to(device)
    c = g.class_vector(None if labels is None else labels.to(device).reshape(1, *labels.shape[1:]))
    w_mean, w_std = w_statistics(g, c, w_avg_samples)
    noise = noise_buffers(g.synthesis)
    if not noise:
        warnings.warn("project: the synthesis network has no noise_const buffers, so only w is optimised.", stacklevel=2)
    rng = torch.Generator(device=device).manual_seed(seed)
    for buf in noise.values():
        buf.copy_(torch.randn(buf.shape, generator=rng, device=device))
        buf.requires_grad_(True)
    w_opt = w_mean.clone().requires_grad_(True)  # [1, 1, w_dim]
    optimizer = torch.optim.Adam([w_opt, *noise.values()], lr=initial_learning_rate, betas=(0.9, 0.999))
    with torch.no_grad():
        target_features = distance.features(target) if isinstance(distance, FeatureDistance) else None

    # Optimisation.
    distances, w_steps = [], []
    for step in range(num_steps):
        t = step / num_steps
        for group in optimizer.param_groups:
            group["lr"] = projector_learning_rate(t, initial_learning_rate, lr_rampdown_length, lr_rampup_length)
        w_noise = torch.randn(w_opt.shape, generator=rng, device=device) * w_noise_std(t, w_std, initial_noise_factor, noise_ramp_length)
        ws = (w_opt + w_noise).expand(-1, g.num_ws, -1)  # [1, num_ws, w_dim]
        image = g.synthesis(ws, noise_mode="const")
        if target_features is not None:
            dist = distance.compare(distance.features(image), target_features).sum()
        else:
            dist = per_image(distance, image, target).sum()
        loss = dist + regularize_noise_weight * noise_regularization(list(noise.values()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        normalize_noise_(list(noise.values()))
        distances.append(float(dist.detach()))
        if keep_steps:
            w_steps.append(w_opt.detach()[0, 0].clone())
        if on_step is not None:
            on_step(step, distances[-1])

    # Result.
    with torch.no_grad():
        ws = w_opt.detach().expand(-1, g.num_ws, -1).clone()
        image = g.synthesis(ws, noise_mode="const")
    return Projection(
        ws=ws,
        image=image,
        noise={name: buf.detach().clone() for name, buf in noise.items()},
        distances=distances,
        w_steps=torch.stack(w_steps) if keep_steps else None,
    )


def load_noise_(generator: nn.Module, noise: dict[str, Tensor]) -> None:
    """Put noise maps returned by :func:`project` into ``generator``'s ``noise_const`` buffers, so that
    ``generator.synthesis(projection.ws, noise_mode="const")`` reproduces the projected image."""
    buffers = noise_buffers(generator.synthesis)
    missing = sorted(set(noise) - set(buffers))
    if missing:
        raise ConfigError(f"The generator has no noise buffers {missing}: the noise maps come from another architecture.")
    with torch.no_grad():
        for name, value in noise.items():
            buffers[name].copy_(value)

