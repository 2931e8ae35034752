"""FID and KID during training, on torchmetrics, correct under DDP, with cached real statistics.

FID: Heusel et al. 2017, arXiv:1706.08500, eq. 6: ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^1/2)
on Inception features (torchmetrics' ``FrechetInceptionDistance``). KID: Binkowski et al. 2018,
arXiv:1801.01401, the unbiased squared MMD with a cubic polynomial kernel, averaged over random
subsets (torchmetrics' ``KernelInceptionDistance``); unlike FID it has no bias at small sample
sizes, so it is the number to watch when monitoring with a few thousand images.

Protocol, so numbers compare across runs, batch sizes and numbers of GPUs:

- Generated images: sample i comes from the latent seeded by i (and the i-th label of
  :meth:`gans.labels.LabelSpace.for_indices`): :meth:`gans.training.gan_module.GANModule.sample_indexed`, which draws
  through the model's ``sample`` (so a truncation trick applies), with the EMA generator when
  :class:`callbacks.EMA` keeps one, in eval mode. Each rank generates a contiguous block of the indices.
- Real images: the first ``num_real`` images of the datamodule's training set
  (:meth:`datamodules.base.GANDataModule.real_dataset`), unshuffled and unaugmented.
- Both pass through the same preprocessing (uint8 quantisation, TF1 bilinear resize to 299;
  see :mod:`gans.metrics.inception`), then one feature pass feeds every metric.
- The features of the real images are computed once per dataset, resolution, extractor and
  ``num_real`` and cached on disk (``<cache_dir>/<data key>-<extractor>-n<num_real>.pt``); under
  DDP rank 0 decides whether the cache is used (and alone reads and writes it), each rank extracts
  its share and the statistics are reduced once.
- torchmetrics reduces the metric states across ranks at ``compute`` through the Lightning
  strategy (:func:`gans.training.distributed.gather_uneven`), so every rank gets the same value on any
  launcher (DDP, XLA). The generator's buffers are averaged over ranks first. The evaluation never touches the global RNG: training continues identically
  with or without this callback.

Logged as ``metrics/fid``, ``metrics/kid`` and ``metrics/kid_std`` together with ``train/kimg``, so a
dashboard can plot them against kimg; also put in ``trainer.callback_metrics`` for
``ModelCheckpoint(monitor="metrics/fid", mode="min")``.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from callbacks.schedule import EvaluationBar, KimgMetric
from gans.cache import cache_root, write_atomically
from gans.errors import ConfigError
from gans.metrics.inception import InceptionFeatures, to_uint8
from gans.training import contracts, distributed


def default_cache_dir() -> Path:
    """``$GANS_CACHE/real_stats``, by default ``~/.cache/gans/real_stats``."""
    return cache_root() / "real_stats"


class _Precomputed(nn.Module):
    """Lets torchmetrics take features computed once for all metrics instead of running its own network."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def rank_block(n: int, rank: int, world_size: int) -> Tensor:
    """The contiguous block of ``range(n)`` that ``rank`` handles; blocks in rank order give ``range(n)``."""
    return torch.tensor_split(torch.arange(n), world_size)[rank]


class FID(KimgMetric):
    """Every ``every_kimg`` thousand images: FID (and KID) of ``num_samples`` generated images vs the real ones."""

    def __init__(
        self,
        every_kimg: float = 50.0,
        num_samples: int = 10_000,
        num_real: int | None = None,
        batch_size: int = 64,
        feature_extractor: nn.Module | None = None,
        kid: bool = True,
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        at_start: bool = False,
        at_end: bool = True,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        """
        Args:
            every_kimg: thousands of real images shown to D between evaluations; 0 = only at start/end.
            num_samples: generated images per evaluation (papers: 50,000; monitoring: 1-10k).
            num_real: real images for the reference statistics; None = ``num_samples`` (capped at the dataset size).
            batch_size: images per generator / feature-extractor batch.
            feature_extractor: a module mapping uint8 images ``[N, C, H, W]`` to features ``[N, F]``;
                None = the standard FID Inception (:class:`gans.metrics.inception.InceptionFeatures`).
            kid: also compute KID.
            kid_subset_size: images per KID subset (capped at the number of images).
            kid_subsets: KID subsets.
            at_start: also evaluate before the first step (a curve starting at kimg 0).
            at_end: also evaluate when training ends.
            cache_dir: where real statistics are cached; None = ``$GANS_CACHE/real_stats`` or ``~/.cache/gans/real_stats``.
            seed: seed of KID's random subsets.
        """
        super().__init__(every_kimg, at_start, at_end)
        if num_samples < 2 or (num_real is not None and num_real < 2):
            raise ConfigError(f"FID needs at least 2 generated and 2 real images, got num_samples={num_samples}, num_real={num_real}.")
        if batch_size < 1 or kid_subset_size < 2 or kid_subsets < 1:
            raise ConfigError("FID batch_size must be >= 1, kid_subset_size >= 2 and kid_subsets >= 1.")
        self.num_samples = num_samples
        self.num_real = num_real if num_real is not None else num_samples
        self.batch_size = batch_size
        self.feature_extractor = feature_extractor
        self.kid = kid
        self.kid_subset_size = kid_subset_size
        self.kid_subsets = kid_subsets
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.seed = seed
        self._extractor: nn.Module | None = None
        self._metrics: dict[str, Any] = {}
        self._real_ready = False

    # Lightning hooks.

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        contracts.require(pl_module, contracts.Sampler, "callbacks.FID", "remove callbacks.FID for this model")
        shape = contracts.data_shape(trainer.datamodule, pl_module)
        if shape is not None and len(shape) != 3:
            raise ConfigError(f"FID compares images, but the data have shape {shape}: remove callbacks.FID for this data.")
        if self._extractor is None:
            self._extractor = self.feature_extractor if self.feature_extractor is not None else InceptionFeatures()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._announce(trainer, pl_module)
        super().on_train_start(trainer, pl_module)

    def _announce(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Say at the start how many images each evaluation takes and when it comes; on a CPU, where 10,000 images
        through Inception take about half an hour, also about how long, timed on a few images."""
        moments = [f"every {self.every_kimg:g} kimg"] if self.every_kimg > 0 else []
        moments += [name for name, on in (("at the start", self.at_start and pl_module.images_seen == 0), ("at the end of fit", self.at_end)) if on]
        if not moments:
            return
        line = (f"FID will measure {self.num_samples} generated images {' and '.join(moments)} (and {self.num_real} real "
                f"images once, cached in {self.cache_dir})")
        if pl_module.device.type == "cpu":
            n = min(self.batch_size, 8)
            with torch.no_grad(), self.measuring(trainer, pl_module):
                start = time.perf_counter()
                self._extractor.to(pl_module.device)(to_uint8(pl_module.sample_indexed(torch.arange(n))))
                seconds = (time.perf_counter() - start) / n * self.num_samples / trainer.world_size
            line += (f"; about {seconds:.0f} s each on this CPU: callbacks.FID num_samples (or at_end: false) makes it "
                     f"shorter, at the price of a noisier, higher FID")
        rank_zero_info(line + ".")

    # The evaluation.

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Compute the metrics for the current generator on every rank; log them from rank 0."""
        start = time.perf_counter()
        device = pl_module.device
        with self.measuring(trainer, pl_module):
            self._prepare(trainer, device)
            with EvaluationBar(trainer, self.num_samples, "FID: generated images") as bar:
                for indices in rank_block(self.num_samples, trainer.global_rank, trainer.world_size).split(self.batch_size):
                    self._update(to_uint8(pl_module.sample_indexed(indices)), real=False)
                    bar.update(len(indices))
            values = {"metrics/fid": float(self._metrics["fid"].compute())}
            if "kid" in self._metrics:
                self._one_tensor_per_rank(self._metrics["kid"])
                torch.manual_seed(self.seed)  # KID's subsets, identical on every rank and every evaluation
                kid_mean, kid_std = self._metrics["kid"].compute()
                values.update({"metrics/kid": float(kid_mean), "metrics/kid_std": float(kid_std)})
            for metric in self._metrics.values():
                metric.reset()  # the fake half only: reset_real_features=False

        kid_text = f", KID {values['metrics/kid'] * 1e3:.2f}e-3" if "metrics/kid" in values else ""
        return self.record(trainer, pl_module, values, f"FID {values['metrics/fid']:.2f}{kid_text}",
                           f"{self.num_samples} samples, {time.perf_counter() - start:.0f} s")

    def _update(self, images: Tensor, real: bool) -> None:
        features = self._extractor(images.to(self._metrics["fid"].device))
        for metric in self._metrics.values():
            metric.update(features, real=real)

    def _prepare(self, trainer: L.Trainer, device: torch.device) -> None:
        """Build the metrics and fill in the real statistics, from the cache or by one pass over the data."""
        if self._real_ready:
            return
        dataset = contracts.real_dataset(trainer)
        num_real = min(self.num_real, len(dataset))
        if num_real < self.num_real:
            rank_zero_warn(f"FID: the data hold {len(dataset)} images, fewer than num_real={self.num_real}; using all of them.")
        self._extractor.to(device)
        probe = self._extractor(to_uint8(dataset[0][0].unsqueeze(0)).to(device))
        num_features = probe.shape[-1]
        strategy = trainer.strategy
        sync = distributed.metric_sync(strategy)  # metric states reduced through the Lightning strategy, on any launcher
        self._metrics = {"fid": FrechetInceptionDistance(feature=_Precomputed(num_features), reset_real_features=False, **sync)}
        if self.kid:
            subset = min(self.kid_subset_size, num_real, self.num_samples)
            self._metrics["kid"] = KernelInceptionDistance(
                feature=_Precomputed(num_features), subsets=self.kid_subsets, subset_size=subset, reset_real_features=False, **sync
            )
        for metric in self._metrics.values():
            metric.to(device)

        path = self._cache_path(trainer, num_real)
        if not self._load_cache(path, num_features, strategy):
            rank_zero_info(f"FID: extracting features of {num_real} real images (cached afterwards in {path or 'memory only'}).")
            with EvaluationBar(trainer, num_real, "FID: real images") as bar:
                for indices in rank_block(num_real, trainer.global_rank, trainer.world_size).split(self.batch_size):
                    images = torch.stack([dataset[int(i)][0] for i in indices])
                    self._update(to_uint8(images), real=True)
                    bar.update(len(indices))
            if path is not None:
                self._save_cache(path, trainer.is_global_zero)
        self._real_ready = True

    @staticmethod
    def _one_tensor_per_rank(kid: KernelInceptionDistance) -> None:
        """Concatenate KID's per-batch feature lists on each rank first. torchmetrics gathers list states
        element by element, so ranks with different numbers of batches would deadlock and equal numbers
        would interleave the ranks' images; one tensor per rank gathers in rank order, i.e. index order."""
        for name in ("real_features", "fake_features"):
            parts = getattr(kid, name)
            if len(parts) != 1:
                empty = torch.zeros(0, kid.inception.num_features, device=kid.device)
                setattr(kid, name, [torch.cat(parts) if parts else empty])

    def _cache_path(self, trainer: L.Trainer, num_real: int) -> Path | None:
        datamodule = trainer.datamodule
        if not isinstance(datamodule, contracts.CacheKeyed):
            return None  # no stable identity for the data: statistics are kept for this run only
        extractor = self._extractor.cache_name if isinstance(self._extractor, contracts.CacheNamed) else type(self._extractor).__qualname__
        return self.cache_dir / f"{datamodule.cache_key()}-{extractor}-n{num_real}.pt"

    def _load_cache(self, path: Path | None, num_features: int, strategy: Any) -> bool:
        """Put the cached real statistics on rank 0 (the other ranks keep empty ones, so the DDP sums are
        right); False, on every rank, when rank 0 has no usable cache.

        Rank 0 decides and broadcasts its verdict (as :class:`callbacks.ConditionalAccuracy` does with its
        classifier): a rank that decided alone, not seeing the file (a disk of its own, a cache written while
        it looked), would extract features and enter the reduction of :meth:`_save_cache` by itself and hang."""
        stats = None
        if strategy.is_global_zero and path is not None and path.is_file():
            stats = torch.load(path, map_location="cpu", weights_only=True)
            if stats["sum"].shape[0] != num_features or (self.kid and "features" not in stats):
                stats = None
        if not strategy.broadcast(stats is not None, src=0):
            return False
        fid = self._metrics["fid"]
        if stats is not None:
            fid.real_features_sum = stats["sum"].to(fid.device)
            fid.real_features_cov_sum = stats["cov_sum"].to(fid.device)
            fid.real_features_num_samples = stats["num"].to(fid.device)
        if "kid" in self._metrics:
            features = stats["features"] if stats is not None else torch.zeros(0, num_features)
            self._metrics["kid"].real_features = [features.to(fid.device)]
        return True

    def _save_cache(self, path: Path, is_global_zero: bool) -> None:
        """Reduce the real statistics over ranks once, write them from rank 0, keep each rank's own share."""
        fid, kid = self._metrics["fid"], self._metrics.get("kid")
        if kid is not None:
            self._one_tensor_per_rank(kid)
        with fid.sync_context(dist_sync_fn=fid.dist_sync_fn), (
            kid.sync_context(dist_sync_fn=kid.dist_sync_fn) if kid is not None else nullcontext()
        ):
            if is_global_zero:
                stats = {"sum": fid.real_features_sum, "cov_sum": fid.real_features_cov_sum, "num": fid.real_features_num_samples}
                if kid is not None:
                    stats["features"] = torch.cat(list(kid.real_features))
                write_atomically(path, lambda partial: torch.save({k: v.detach().cpu() for k, v in stats.items()}, partial))
