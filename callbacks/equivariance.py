"""StyleGAN3's equivariance metrics during training, correct under DDP, next to FID.

Karras et al. 2021, "Alias-Free Generative Adversarial Networks" (arXiv:2106.12423), section 3 and Appendix E:
EQ-T (integer translation), EQ-T_frac (fractional translation) and EQ-R (rotation), the PSNR in dB between the
generator's transformed image and its untransformed image moved by an ideal operator
(:mod:`gans.metrics.equivariance`, the official protocol; a StyleGAN2 is measured by transforming its learned constant,
the paper's approximation for its config A). Logged as ``metrics/eqt_int``, ``metrics/eqt_frac``
and ``metrics/eqr`` together with ``train/kimg``; higher is more equivariant (StyleGAN2 about 16-20 dB at 1024 px
in the paper's Table 1, StyleGAN3-T about 60 dB EQ-T and StyleGAN3-R about 40 dB EQ-R at convergence).

The paper measures 50,000 samples per metric; 10,000 (the default) monitors well. The metrics chosen share one
pass (one mapping and one untransformed image per batch, the official order of draws when several are
computed); measured one at a time (``kinds`` of one), a metric equals the official ``eqt50k_int``/``eqt50k_frac``/
``eqr50k`` call with the same seed.

Under DDP every rank makes every draw of every batch and measures its contiguous block of the batches
(:func:`callbacks.fid.rank_block` over batch numbers); the per-rank sums of squared errors and pixel counts are
gathered through the Lightning strategy and added in rank order, so the value does not depend on the number of
ranks (up to float64 round-off). The EMA generator is used (in eval mode, its input transform put back) when
:class:`callbacks.EMA` keeps one; the global random state is not touched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import lightning as L
import torch

from callbacks.fid import rank_block
from callbacks.schedule import EvaluationBar, KimgMetric
from gans.errors import ConfigError
from gans.metrics.equivariance import KINDS, METRIC_NAMES, equivariance_sums, has_learned_constant, ordered_kinds, psnr
from gans.training import contracts, distributed


class Equivariance(KimgMetric):
    """Every ``every_kimg`` thousand images: EQ-T, EQ-T_frac and EQ-R of the (EMA) generator, as ``metrics/eqt_int``,
    ``metrics/eqt_frac`` and ``metrics/eqr`` (dB)."""

    def __init__(
        self,
        every_kimg: float = 50.0,
        num_samples: int = 10_000,
        kinds: Sequence[str] = KINDS,
        batch_size: int = 4,
        translate_max: float = 0.125,
        rotate_max: float = 1.0,
        seed: int = 0,
        at_start: bool = False,
        at_end: bool = True,
    ) -> None:
        """
        Args:
            every_kimg: thousands of real images shown to D between evaluations; 0 = only at start/end.
            num_samples: samples per metric (paper: 50,000; monitoring: 10,000).
            kinds: the metrics: ``translation_int`` (EQ-T), ``translation_frac`` (EQ-T_frac), ``rotation`` (EQ-R).
            batch_size: samples per batch; a batch shares one transform (official: 4).
            translate_max: largest translation per axis, in image widths (official: 0.125).
            rotate_max: largest rotation, in half turns (official: 1).
            seed: seed of the latents, labels and transforms (the same at every evaluation).
            at_start: also evaluate before the first step.
            at_end: also evaluate when training ends.
        """
        super().__init__(every_kimg, at_start, at_end)
        if num_samples < 1 or batch_size < 1:
            raise ConfigError(f"Equivariance needs num_samples >= 1 and batch_size >= 1, got {num_samples} and {batch_size}.")
        if not translate_max > 0 or not rotate_max > 0:
            raise ConfigError(f"Equivariance needs translate_max > 0 and rotate_max > 0, got {translate_max} and {rotate_max}.")
        self.kinds = ordered_kinds(kinds)
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.translate_max = translate_max
        self.rotate_max = rotate_max
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        learned_constant = isinstance(pl_module, contracts.StyleSampler) and has_learned_constant(pl_module.sampling_generator)  # StyleGAN2
        if stage == "fit" and not learned_constant:
            contracts.require(
                pl_module,
                contracts.TransformableSampler,
                "callbacks.Equivariance",
                "it translates and rotates the generator's input (StyleGAN3) or its learned constant (StyleGAN2); "
                "remove callbacks.Equivariance for this model",
            )

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Measure this rank's batches, add every rank's sums, log the PSNRs from rank 0."""
        start = time.perf_counter()
        num_batches = -(-self.num_samples // self.batch_size)
        batches = rank_block(num_batches, trainer.global_rank, trainer.world_size).tolist()
        with self.measuring(trainer, pl_module), EvaluationBar(trainer, num_batches * self.batch_size, "Equivariance: samples") as bar:
            sums = equivariance_sums(
                pl_module.sampling_generator,
                self.kinds,
                self.num_samples,
                self.batch_size,
                self.translate_max,
                self.rotate_max,
                self.seed,
                pl_module.label_space,
                batches=batches,
                progress=bar.update,
            )
        mine = torch.stack([sums[kind] for kind in self.kinds]).to(pl_module.device)  # [K, 2] float64
        total = torch.stack(distributed.gather_per_rank(trainer.strategy, mine)).sum(dim=0).cpu()
        values = {f"metrics/{METRIC_NAMES[kind]}": psnr(total[k]) for k, kind in enumerate(self.kinds)}
        summary = ", ".join(f"{METRIC_NAMES[kind]} {values[f'metrics/{METRIC_NAMES[kind]}']:.2f} dB" for kind in self.kinds)
        return self.record(trainer, pl_module, values, summary, f"{self.num_samples} samples, {time.perf_counter() - start:.0f} s")
