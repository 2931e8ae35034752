"""Perceptual path length (PPL) during training, correct under DDP, next to FID.

StyleGAN (Karras et al. 2019, arXiv:1812.04948), section 4.2: how much the image changes under a small
step along a latent path, eq. 3 in W,
``l_W = E[ d(g(lerp(f(z1), f(z2); t)), g(lerp(f(z1), f(z2); t + eps))) / eps^2 ]``, and eq. 2 in Z with slerp,
``t ~ U(0, 1)`` ("full" paths) or ``t = 0`` ("end"). StyleGAN2 (Karras et al. 2020, arXiv:1912.04958,
section 3) reports it in W at the path ends; its official metric (stylegan2-ada-pytorch ``ppl2_wend``) is this
callback's default: space W, end points, eps 1e-4, the full image (StyleGAN's FFHQ numbers cropped to the
face: ``crop=True``), images larger than 256 px box-downsampled to 256, the noise maps randomised per batch
and shared by both images of a pair, and the mean of the distances between their 1st ("lower") and 99th
("higher") percentiles. The distance is LPIPS in the papers; here :class:`gans.metrics.perceptual.InceptionDistance`
(no download) by default, or any module ``distance(img_a, img_b) -> [N]`` (e.g. an LPIPS you have). Papers
use 50,000 paths; 10,000 (the default) monitors well.

Why not torchmetrics' ``PerceptualPathLength``: it draws all latents through a ``sample(n)`` hook and applies
its percentile filter inside one process, so under DDP each rank would filter its own share (the official
filters all distances at once); it has no "full" paths in W, cannot share one label and one noise draw between
the two ends of a path, and its own filter uses the "lower" percentile at both ends. What it would add is a
loop of a few lines, so the metric is written here (:func:`path_distances`, :func:`filtered_mean`) and takes
the same kind of similarity module.

Protocol, as :class:`callbacks.FID`'s: path i comes from a ``torch.Generator`` seeded by i (both latents and
t) and the i-th label of :meth:`gans.labels.LabelSpace.for_indices`, and its noise maps from one seeded by
``i // batch_size``, so the value does not depend on the number of ranks; each rank measures a
contiguous block of the paths, the distances are gathered through the Lightning strategy
(:func:`gans.training.distributed.gather_uneven`) and every rank filters and averages all of them. The EMA generator
is used (in eval mode) when :class:`callbacks.EMA` keeps one; the global random state is not touched.
Logged as ``metrics/ppl`` together with ``train/kimg``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from callbacks.fid import rank_block
from callbacks.schedule import EvaluationBar, KimgMetric
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.metrics.perceptual import Distance, InceptionDistance, per_image
from gans.tools.projector import noise_buffers
from gans.training import contracts, distributed
from gans.training.latents import lerp, slerp

Space = Literal["w", "z"]
Sampling = Literal["end", "full"]
PPL_RESOLUTION = 256  # larger images are box-downsampled to this side first (official code)


# The metric.


def path_latents(indices: Tensor, z_dim: int, sampling: Sampling) -> tuple[Tensor, Tensor, Tensor]:
    """``(z0 [N, z_dim], z1 [N, z_dim], t [N])`` of the paths numbered ``indices``, on the CPU: path i draws
    z0, z1 and t from a ``torch.Generator`` seeded by i (t = 0 for ``"end"`` paths)."""
    z0, z1, t = [], [], []
    for i in indices.long().tolist():
        g = torch.Generator().manual_seed(i)
        z = torch.randn(2, z_dim, generator=g)
        z0.append(z[0])
        z1.append(z[1])
        t.append(torch.rand((), generator=g) if sampling == "full" else torch.zeros(()))
    return torch.stack(z0), torch.stack(z1), torch.stack(t)


def ppl_images(images: Tensor, crop: bool) -> Tensor:
    """The official preprocessing: optionally crop to the face (rows 3/8-7/8, columns 2/8-6/8), then
    box-downsample images larger than 256 px to 256 px."""
    if crop:
        c = images.shape[-1] // 8
        images = images[:, :, c * 3 : c * 7, c * 2 : c * 6]
    factor = images.shape[-1] // PPL_RESOLUTION
    if factor > 1:
        images = F.avg_pool2d(images, kernel_size=factor)
    return images


@torch.no_grad()
def randomize_noise_(synthesis: nn.Module, seed: int) -> None:
    """Fill the ``noise_const`` buffers of ``synthesis`` with N(0, 1) from a generator seeded by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    for buf in noise_buffers(synthesis).values():
        buf.copy_(torch.randn(buf.shape, generator=g))


@torch.no_grad()
def path_distances(
    generator: contracts.StyleGenerator,
    z0: Tensor,
    z1: Tensor,
    t: Tensor,
    c: Tensor | None,
    distance: Distance,
    epsilon: float = 1e-4,
    space: Space = "w",
    crop: bool = False,
    noise_mode: str = "const",
) -> Tensor:
    """``d(G(p(t)), G(p(t + eps))) / eps^2`` for each path (``[N]``): eq. 3 (``space="w"``: lerp of the mapped
    latents) or eq. 2 (``"z"``: slerp of the latents, then mapping). Both images of a pair go through one
    synthesis call, so with ``noise_mode="const"`` they share the noise maps."""
    n = z0.shape[0]
    c2 = None if c is None else torch.cat([c, c])
    if space == "w":
        w0, w1 = generator.mapping(torch.cat([z0, z1]), c2, update_w_avg=False).chunk(2)  # [N, num_ws, w_dim] each
        t = t.reshape(-1, 1, 1)
        ws = torch.cat([lerp(w0, w1, t), lerp(w0, w1, t + epsilon)])
    else:
        t = t.reshape(-1, 1)
        z = torch.cat([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)])
        ws = generator.mapping(z, c2, update_w_avg=False)
    images = ppl_images(generator.synthesis(ws, noise_mode=noise_mode).float(), crop)
    return per_image(distance, images[:n], images[n:]) / epsilon**2


def filtered_mean(distances: Tensor, lower: float = 0.01, upper: float = 0.99) -> float:
    """The mean of the distances between the ``lower`` quantile (rounded down to a sample) and the ``upper``
    quantile (rounded up), both included: the official outlier rejection."""
    d = distances.double().flatten()
    lo = torch.quantile(d, lower, interpolation="lower")
    hi = torch.quantile(d, upper, interpolation="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


def global_batches(indices: Tensor, batch_size: int) -> tuple[Tensor, ...]:
    """``indices`` (ascending) cut where ``i // batch_size`` changes: the pieces of the global batches of
    ``range(num_samples)`` that this rank holds, so that path i meets the same noise draw (seeded by its global
    batch number) on any number of ranks."""
    indices = indices.long()
    cuts = torch.nonzero(indices[1:] // batch_size != indices[:-1] // batch_size).flatten() + 1
    return torch.tensor_split(indices, cuts.tolist())


def perceptual_path_length(
    generator: contracts.StyleGenerator,
    label_space: LabelSpace,
    indices: Tensor,
    distance: Distance,
    epsilon: float = 1e-4,
    space: Space = "w",
    sampling: Sampling = "end",
    crop: bool = False,
    noise_mode: str = "const",
    batch_size: int = 16,
    progress: Callable[[int], Any] | None = None,
) -> Tensor:
    """The scaled distances ``[len(indices)]`` of the paths numbered ``indices`` (unfiltered; one process).

    ``generator`` is a :class:`gans.training.contracts.StyleGenerator`; it is deep-copied when its noise maps are randomised (once per
    global batch of ``batch_size`` paths, :func:`global_batches`), so the caller's is left alone.
    ``label_space`` (:class:`gans.labels.LabelSpace`) gives path i its label. ``progress`` is called with the number
    of paths of each batch measured (:class:`callbacks.schedule.EvaluationBar`'s ``update``).
    """
    device = next(generator.parameters()).device
    noise = noise_mode == "const" and bool(noise_buffers(generator.synthesis))
    g = copy.deepcopy(generator) if noise else generator
    out = []
    for batch in global_batches(indices, batch_size):
        z0, z1, t = (x.to(device) for x in path_latents(batch, g.z_dim, sampling))
        labels = label_space.for_indices(batch)
        c = None if labels is None else g.class_vector(labels.to(device))
        if noise:
            randomize_noise_(g.synthesis, int(batch[0]) // batch_size)
        out.append(path_distances(g, z0, z1, t, c, distance, epsilon, space, crop, noise_mode))
        if progress is not None:
            progress(len(batch))
    return torch.cat(out) if out else torch.zeros(0, device=device)


# The callback.


class PPL(KimgMetric):
    """Every ``every_kimg`` thousand images: perceptual path length of the (EMA) generator, as ``metrics/ppl``."""

    def __init__(
        self,
        every_kimg: float = 50.0,
        num_samples: int = 10_000,
        batch_size: int = 16,
        epsilon: float = 1e-4,
        space: Space = "w",
        sampling: Sampling = "end",
        crop: bool = False,
        distance: nn.Module | Distance | None = None,
        noise_mode: Literal["const", "none"] = "const",
        at_start: bool = False,
        at_end: bool = True,
    ) -> None:
        """
        Args:
            every_kimg: thousands of real images shown to D between evaluations; 0 = only at start/end.
            num_samples: paths per evaluation (papers: 50,000; monitoring: 10,000).
            batch_size: paths per generator batch (each path is two images).
            epsilon: step along the path (1e-4).
            space: ``w`` (eq. 3, lerp; StyleGAN2) or ``z`` (eq. 2, slerp).
            sampling: ``end`` (t = 0; StyleGAN2) or ``full`` (t uniform in [0, 1]).
            crop: crop to the face centre first (StyleGAN's FFHQ numbers); StyleGAN2's ``ppl2_wend`` does not.
            distance: a module ``distance(img_a, img_b) -> [N]`` on images in [-1, 1];
                None = :class:`gans.metrics.perceptual.InceptionDistance` (offline, LPIPS-style).
            noise_mode: ``const`` (noise maps randomised per batch, shared within a pair: official) or ``none``.
            at_start: also evaluate before the first step.
            at_end: also evaluate when training ends.
        """
        super().__init__(every_kimg, at_start, at_end)
        if num_samples < 1 or batch_size < 1:
            raise ConfigError(f"PPL needs num_samples >= 1 and batch_size >= 1, got {num_samples} and {batch_size}.")
        if not epsilon > 0:
            raise ConfigError(f"PPL epsilon must be > 0, got {epsilon}.")
        if space not in ("w", "z") or sampling not in ("end", "full") or noise_mode not in ("const", "none"):
            raise ConfigError(f"PPL takes space w|z, sampling end|full and noise_mode const|none, got {space!r}, {sampling!r}, {noise_mode!r}.")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.epsilon = epsilon
        self.space = space
        self.sampling = sampling
        self.crop = crop
        self.distance = distance
        self.noise_mode = noise_mode
        self._distance: nn.Module | Distance | None = None

    # Lightning hooks.

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        contracts.require(pl_module, contracts.StyleSampler, "callbacks.PPL", "it measures paths in W; remove callbacks.PPL for this model")
        if self._distance is None:
            self._distance = self.distance if self.distance is not None else InceptionDistance()

    # The evaluation.

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Measure this rank's paths, gather every rank's distances, filter and average them; log from rank 0."""
        start = time.perf_counter()
        device = pl_module.device
        indices = rank_block(self.num_samples, trainer.global_rank, trainer.world_size)
        with self.measuring(trainer, pl_module):
            if isinstance(self._distance, nn.Module):
                self._distance.to(device)
            with EvaluationBar(trainer, self.num_samples, "PPL: paths", unit="path") as bar:
                distances = perceptual_path_length(
                    pl_module.sampling_generator, pl_module.label_space, indices, self._distance, self.epsilon,
                    self.space, self.sampling, self.crop, self.noise_mode, self.batch_size, progress=bar.update,
                )
        everyone = torch.cat([d.to(device) for d in distributed.gather_uneven(trainer.strategy, distances.float())])
        values = {"metrics/ppl": filtered_mean(everyone)}

        return self.record(trainer, pl_module, values, f"PPL {values['metrics/ppl']:.2f}",
                           f"{self.num_samples} paths, {time.perf_counter() - start:.0f} s")
