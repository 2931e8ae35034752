"""Latents by seed and paths between latents: what the StyleGAN tools and the path-length metric walk along.

- :func:`seeded_latents`: the latent of seed s is N(0, I) drawn from a generator seeded by s, exactly as
  :meth:`gans.training.gan_module.GANModule.indexed_z` draws sample number s, so "seed 7" in a tool's picture is sample 7
  of ``lightning predict`` and of FID.
- :func:`lerp`: linear interpolation, the path in W (StyleGAN, Karras et al. 2019, arXiv:1812.04948,
  section 4.2, eq. 3).
- :func:`slerp`: spherical interpolation of directions, the path in Z (same section, eq. 2), since
  z ~ N(0, I) concentrates on a sphere (White 2016, arXiv:1609.04468).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor


def seeded_latents(seeds: Sequence[int] | Tensor, z_dim: int) -> Tensor:
    """``[len(seeds), z_dim]`` on the CPU: row i is N(0, I) from a ``torch.Generator`` seeded by ``seeds[i]``.

    The global random state is not touched.
    """
    rows = [torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows) if rows else torch.zeros(0, z_dim)


def lerp(a: Tensor, b: Tensor, t: Tensor | float) -> Tensor:
    """``a + t (b - a)``; ``t`` broadcasts against ``a`` (e.g. ``[N, 1, 1]`` for ``ws [N, num_ws, w_dim]``)."""
    return a + (b - a) * t


def slerp(a: Tensor, b: Tensor, t: Tensor | float, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation of the directions of ``a`` and ``b`` (``[N, D]``), a unit vector ``[N, D]``.

    The point at angle ``t * omega`` from ``a/|a|`` on the great circle through ``b/|b|`` (``omega`` the angle
    between them). ``t`` may lie outside [0, 1]: the point keeps turning along the same circle, which the
    path-length metric relies on. Parallel or opposite directions fall back to a normalised lerp.
    """
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    cos_omega = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)  # [N, 1]
    omega = torch.acos(cos_omega)
    # Unit vector orthogonal to a in the plane of a and b; the path is a cos(t omega) + c sin(t omega).
    c = b - cos_omega * a
    c_norm = c.norm(dim=-1, keepdim=True)
    angle = omega * t
    turned = a * torch.cos(angle) + c / c_norm.clamp_min(eps) * torch.sin(angle)
    straight = lerp(a, b, t)
    out = torch.where(c_norm > eps, turned, straight)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(eps)


def truncated_normal(n: int, dim: int, threshold: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    """``[n, dim]`` from N(0, I) truncated to ``[-threshold, threshold]`` per coordinate: BigGAN's truncation
    trick (Brock et al. 2018, arXiv:1809.11096, section 3.1), sampled exactly (``torch.nn.init.trunc_normal_``),
    not by clipping. ``threshold <= 0`` or ``inf`` = the untruncated prior."""
    z = torch.empty(n, dim, device=device)
    if threshold <= 0 or math.isinf(threshold):
        return z.normal_(generator=generator)
    return torch.nn.init.trunc_normal_(z, 0.0, 1.0, -threshold, threshold, generator=generator)
