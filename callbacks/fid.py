"""FID and KID during training, on torchmetrics, correct under DDP, with cached real statistics.

FID: Heusel et al. 2017, arXiv:1706.08500, eq. 6: ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^1/2)
on Inception features (torchmetrics' ``FrechetInceptionDistance``). KID: Binkowski et al. 2018,
arXiv:1801.01401, the unbiased squared MMD with a cubic polynomial kernel, averaged over random
subsets (torchmetrics' ``KernelInceptionDistance``); unlike FID it has no bias at small sample
sizes, so it is the number to watch when monitoring with a few thousand images.

Protocol, so numbers compare across runs, batch sizes and numbers of GPUs:

- Generated images: sample i comes from the latent seeded by i and, for a conditional model on labelled data, the
  label of the i-th real reference image (:func:`gans.metrics.protocol.fake_labels`: the fakes have the reference's
  class mix): :meth:`gans.training.gan_module.GANModule.sample_indexed`, which draws
  through the model's ``sample`` (so a truncation trick applies), with the EMA generator when
  :class:`callbacks.EMA` keeps one, in eval mode. Each rank generates a contiguous block of the indices.
- Real images: ``num_real`` images of the datamodule's training set (:meth:`datamodules.base.GANDataModule.real_dataset`,
  unshuffled and unaugmented) drawn at random with ``seed`` (all of them when ``num_real`` covers the split), stratified
  by class when the data are labelled (:func:`gans.metrics.protocol.reference_indices`), never the first N files.
- The real-vs-real floor at the same N (``floor``): FID and KID between two disjoint random real sets of ``num_real``
  each (:func:`gans.metrics.protocol.floor_indices`; half the split each when it holds fewer than 2N), computed with
  the real statistics, cached with them and logged once, with the first evaluation, as ``metrics/fid_floor``,
  ``metrics/kid_floor`` (and ``metrics/floor_n``); every summary line states N and the floor.
- Both pass through the same preprocessing (uint8 quantisation, TF1 bilinear resize to 299;
  see :mod:`gans.metrics.inception`), then one feature pass feeds every metric.
- The features of the real images are computed once per dataset, resolution, reference draw, extractor and
  ``num_real`` and cached on disk (``<cache_dir>/<data key>-ref<seed>[s]-<extractor>-n<num_real>.pt``, ``s`` when
  stratified); under
  DDP rank 0 decides whether the cache is used (and alone reads and writes it), each rank extracts
  its share and the statistics are reduced once.
- torchmetrics reduces the metric states across ranks at ``compute`` through the Lightning
  strategy (:func:`gans.training.distributed.gather_uneven`), so every rank gets the same value on any
  launcher (DDP, XLA). The generator's buffers are averaged over ranks first. The evaluation never touches the global RNG: training continues identically
  with or without this callback.

From the same features (one extraction per evaluation), behind switches: precision and recall (Kynkaanniemi et al.
2019, k = 3) and density and coverage (Naeem et al. 2020, k = 5), :mod:`gans.metrics.manifold`; the Inception Score
(Salimans et al. 2016, 10 splits), :mod:`gans.metrics.inception_score`, when the extractor also returns class
logits (the default FID Inception has no classifier layer). These need every feature, not sums: the real features are
cached with the statistics, the generated ones are gathered from every rank (:func:`gans.training.distributed.gather_uneven`,
in rank order, i.e. index order) and every rank computes the same numbers from the whole sets.

Logged as ``metrics/fid``, ``metrics/kid``, ``metrics/kid_std`` and, when on, ``metrics/precision``,
``metrics/recall``, ``metrics/density``, ``metrics/coverage``, ``metrics/is`` and ``metrics/is_std``, together with
``train/kimg``, so a dashboard can plot them against kimg; also put in ``trainer.callback_metrics`` for
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
from gans.metrics import inception_score as inception_score_
from gans.metrics import manifold, protocol
from gans.metrics.inception import InceptionFeatures, to_uint8
from gans.training import contracts, distributed


def default_cache_dir() -> Path:
    """``$GANS_CACHE/real_stats``, by default ``~/.cache/gans/real_stats``."""
    return cache_root() / "real_stats"


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
        precision_recall: bool | None = None,
        density_coverage: bool | None = None,
        inception_score: bool | None = None,
        at_start: bool = False,
        at_end: bool = True,
        cache_dir: str | None = None,
        seed: int = 0,
        floor: bool = True,
    ) -> None:
        """
        Args:
            every_kimg: thousands of real images shown to D between evaluations; 0 = only at start/end.
            num_samples: generated images per evaluation (papers: 50,000; monitoring: 1-10k).
            num_real: real images for the reference statistics; None = ``num_samples`` (capped at the dataset size).
            batch_size: images per generator / feature-extractor batch.
            feature_extractor: a module mapping uint8 images ``[N, C, H, W]`` to features ``[N, F]``, or to a pair
                ``(features [N, F], class logits [N, K])`` (then the Inception Score can be computed);
                None = the standard FID Inception (:class:`gans.metrics.inception.InceptionFeatures`, features only).
            kid: also compute KID.
            kid_subset_size: images per KID subset (at most half the smaller set: :func:`gans.metrics.protocol.kid_subset_size`).
            kid_subsets: KID subsets.
            precision_recall: also compute precision and recall (k = 3; cheap next to the feature extraction, but the
                real features are kept and cached, as KID does); None = when there are more than 3 generated and real
                images, True = refuse fewer.
            density_coverage: also compute density and coverage (k = 5; as cheap); None = when there are more than 5
                generated and real images, True = refuse fewer.
            inception_score: also compute the Inception Score of the generated images (10 splits, mean and std) from
                the extractor's class logits; None = when the extractor returns logits and there are at least 10
                generated images, True = refuse an extractor without logits or fewer images.
            at_start: also evaluate before the first step (a curve starting at kimg 0).
            at_end: also evaluate when training ends.
            cache_dir: where real statistics are cached; None = ``$GANS_CACHE/real_stats`` or ``~/.cache/gans/real_stats``.
            seed: seed of the real reference's random draw and of KID's random subsets.
            floor: also measure the real-vs-real floor at N once (with the real statistics; doubles that one pass).
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
        self.precision_recall = precision_recall
        self.density_coverage = density_coverage
        self.inception_score = inception_score
        for name, k in (("precision_recall", manifold.PRECISION_RECALL_K), ("density_coverage", manifold.DENSITY_COVERAGE_K)):
            if getattr(self, name) and min(num_samples, self.num_real) <= k:
                raise ConfigError(f"FID {name} (k={k}) needs more than {k} generated and real images, got num_samples={num_samples}, "
                                  f"num_real={self.num_real}: raise them or set {name}: false.")
        if inception_score and num_samples < inception_score_.SPLITS:
            raise ConfigError(f"FID inception_score needs num_samples >= {inception_score_.SPLITS} (its splits), got {num_samples}: "
                              "raise it or set inception_score: false.")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.seed = seed
        self.floor_on = floor
        self.floor: protocol.Floor | None = None  # the real-vs-real floor, once the real statistics are ready
        self._floor_logged = False
        self._extractor: nn.Module | None = None
        self._metrics: dict[str, Any] = {}
        self._real_ready = False
        self._reference_labels: Tensor | None = None  # the real reference's labels, in its order (labelled data)
        self._computes_is = False  # inception_score on and the extractor returns class logits beside the features
        self._parts: dict[str, list[Tensor]] = {}  # this rank's features (and logits) of the pass under way
        self._widths: dict[str, int] = {}  # of the features and logits
        self._real_features: Tensor | None = None  # every real feature, on every rank, when a manifold metric is on
        self._real_radii: dict[int, Tensor] = {}
        self._num_real = self.num_real  # once the data are known: capped at their size

    def _computes(self, name: str) -> bool:
        """Whether ``precision_recall`` or ``density_coverage`` is computed: asked for, or left to None and possible."""
        k = manifold.PRECISION_RECALL_K if name == "precision_recall" else manifold.DENSITY_COVERAGE_K
        switch = getattr(self, name)
        return bool(switch) or (switch is None and min(self.num_samples, self._num_real) > k)

    @property
    def _manifold_ks(self) -> list[int]:
        return [k for k, name in ((manifold.PRECISION_RECALL_K, "precision_recall"), (manifold.DENSITY_COVERAGE_K, "density_coverage"))
                if self._computes(name)]

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
        if self.inception_score:
            self._probe(trainer, pl_module.device)  # an extractor without logits is refused now, not after training
        self._announce(trainer, pl_module)
        super().on_train_start(trainer, pl_module)

    @torch.no_grad()
    def _probe(self, trainer: L.Trainer, device: torch.device) -> tuple[Tensor, Tensor | None]:
        """The extractor's output for one real image; refused when ``inception_score: true`` and it gives no logits."""
        self._extractor.to(device)
        features, logits = self._extract(to_uint8(contracts.real_dataset(trainer)[0][0].unsqueeze(0)).to(device))
        if self.inception_score and logits is None:
            raise ConfigError(
                f"FID inception_score needs class logits, but the feature extractor ({type(self._extractor).__name__}) returns "
                "features only (the standard FID Inception file has no classifier layer): set inception_score: false, or give a "
                "feature_extractor that returns (features, logits)."
            )
        return features, logits

    def _announce(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Say at the start how many images each evaluation takes and when it comes; on a CPU, where 10,000 images
        through Inception take about half an hour, also about how long, timed on a few images."""
        moments = [f"every {self.every_kimg:g} kimg"] if self.every_kimg > 0 else []
        moments += [name for name, on in (("at the start", self.at_start and pl_module.images_seen == 0), ("at the end of fit", self.at_end)) if on]
        if not moments:
            return
        line = (f"FID will measure {self.num_samples} generated images {' and '.join(moments)} (and {self.num_real} real "
                f"images once, cached in {self.cache_dir})")
        also = [name for name, on in (("KID", self.kid), ("precision/recall", self._computes("precision_recall")),
                                      ("density/coverage", self._computes("density_coverage")), ("IS", self.inception_score)) if on]
        if also:
            line += f", with {', '.join(also)} from the same features"
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
                    labels = protocol.fake_labels(self._fake_label_pool(pl_module), indices)
                    self._update(to_uint8(pl_module.sample_indexed(indices, labels=labels)), real=False)
                    bar.update(len(indices))
            values = {"metrics/fid": float(self._metrics["fid"].compute())}
            if "kid" in self._metrics:
                self._one_tensor_per_rank(self._metrics["kid"])
                torch.manual_seed(self.seed)  # KID's subsets, identical on every rank and every evaluation
                kid_mean, kid_std = self._metrics["kid"].compute()
                values.update({"metrics/kid": float(kid_mean), "metrics/kid_std": float(kid_std)})
            for metric in self._metrics.values():
                metric.reset()  # the fake half only: reset_real_features=False
            values.update(self._whole_set_metrics(trainer.strategy))

        summary = f"FID {values['metrics/fid']:.2f}"
        if "metrics/kid" in values:
            summary += f", KID {values['metrics/kid'] * 1e3:.2f}e-3 ± {values['metrics/kid_std'] * 1e3:.2f}e-3"
        for name in ("precision", "recall", "density", "coverage", "is"):
            if f"metrics/{name}" in values:
                summary += f", {'IS' if name == 'is' else name} {values[f'metrics/{name}']:.3f}"
        summary += f" (N = {self.num_samples} fake / {self._num_real} real; {self._floor_text()})"
        floor = None
        if self.floor is not None and not self._floor_logged:  # once: it does not change during training
            floor = {"metrics/fid_floor": self.floor.fid, "metrics/kid_floor": self.floor.kid, "metrics/floor_n": float(self.floor.n)}
            self._floor_logged = True
        return self.record(trainer, pl_module, values, summary,
                           f"{self.num_samples} samples, {time.perf_counter() - start:.0f} s", also_logged=floor)

    def _floor_text(self) -> str:
        if self.floor is None:
            return "no real-vs-real floor (floor: false)" if not self.floor_on else "no real-vs-real floor: the split is too small"
        at = f" at N = {self.floor.n} (the split holds fewer than 2N)" if self.floor.n != self._num_real else ""
        return f"real-vs-real floor FID {self.floor.fid:.2f}, KID {self.floor.kid * 1e3:.2f}e-3{at}"

    def _gathered(self, strategy: Any, name: str) -> Tensor:
        """This pass's ``features`` or ``logits`` of every rank, in rank order (= index order), on every rank; one collective."""
        parts = self._parts.pop(name, []) or [torch.zeros(0, self._widths[name], device=self._metrics["fid"].device)]
        return torch.cat(distributed.gather_uneven(strategy, torch.cat(parts)))

    def _whole_set_metrics(self, strategy: Any) -> dict[str, float]:
        """The metrics that need every generated feature (or logit), not sums, computed by every rank from the same
        whole sets: precision/recall, density/coverage, Inception Score."""
        values = {}
        if self._manifold_ks:
            scores = manifold.manifold_metrics(
                self._real_features, self._gathered(strategy, "features"), real_radii=self._real_radii,
                precision_recall_k=manifold.PRECISION_RECALL_K if self._computes("precision_recall") else None,
                density_coverage_k=manifold.DENSITY_COVERAGE_K if self._computes("density_coverage") else None,
            )
            values.update({f"metrics/{name}": value for name, value in scores.items()})
        if self._computes_is:
            mean, std = inception_score_.inception_score(self._gathered(strategy, "logits"))
            values.update({"metrics/is": mean, "metrics/is_std": std})
        self._parts = {}
        return values

    def _extract(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """The extractor's features and, where it gives them, class logits."""
        out = self._extractor(images)
        if isinstance(out, (tuple, list)):
            features, logits = out
            return features, logits
        return out, None

    def _update(self, images: Tensor, real: bool) -> None:
        features, logits = self._extract(images.to(self._metrics["fid"].device))
        for metric in self._metrics.values():
            metric.update(features, real=real)
        if real or self._manifold_ks:
            self._parts.setdefault("features", []).append(features.float())
        if not real and self._computes_is:
            self._parts.setdefault("logits", []).append(logits.float())

    def _prepare(self, trainer: L.Trainer, device: torch.device) -> None:
        """Build the metrics and fill in the real statistics, from the cache or by one pass over the data."""
        if self._real_ready:
            return
        dataset = contracts.real_dataset(trainer)
        num_real = min(self.num_real, len(dataset))
        if num_real < self.num_real:
            rank_zero_warn(f"FID: the data hold {len(dataset)} images, fewer than num_real={self.num_real}; using all of them.")
        self._num_real = num_real
        for name, k in (("precision_recall", manifold.PRECISION_RECALL_K), ("density_coverage", manifold.DENSITY_COVERAGE_K)):
            if getattr(self, name) and num_real <= k:
                raise ConfigError(f"FID {name} (k={k}) needs more than {k} real images and the data hold {num_real}: "
                                  f"set {name}: false.")
        probe, logits = self._probe(trainer, device)
        num_features = probe.shape[-1]
        self._computes_is = logits is not None and self.inception_score is not False and self.num_samples >= inception_score_.SPLITS
        self._widths = {"features": num_features, "logits": logits.shape[-1] if logits is not None else 0}
        strategy = trainer.strategy
        sync = distributed.metric_sync(strategy)  # metric states reduced through the Lightning strategy, on any launcher
        self._metrics = {"fid": FrechetInceptionDistance(feature=protocol.Precomputed(num_features), reset_real_features=False, **sync)}
        if self.kid:
            subset = protocol.kid_subset_size(self.kid_subset_size, num_real, self.num_samples)
            self._metrics["kid"] = KernelInceptionDistance(
                feature=protocol.Precomputed(num_features), subsets=self.kid_subsets, subset_size=subset, reset_real_features=False, **sync
            )
        for metric in self._metrics.values():
            metric.to(device)

        labels = contracts.real_labels(trainer, dataset)
        reference = protocol.reference_indices(len(dataset), num_real, self.seed, labels)
        self._reference_labels = None if labels is None else labels[reference]
        path = self._cache_path(trainer, num_real, stratified=labels is not None)
        loaded = self._load_cache(path, num_features, strategy)
        if not loaded:
            rank_zero_info(f"FID: extracting features of {num_real} real images (cached afterwards in {path or 'memory only'}).")
            with EvaluationBar(trainer, num_real, "FID: real images") as bar:
                for positions in rank_block(num_real, trainer.global_rank, trainer.world_size).split(self.batch_size):
                    images = torch.stack([dataset[int(i)][0] for i in reference[positions]])
                    self._update(to_uint8(images), real=True)
                    bar.update(len(positions))
        # Rank 0's cached features or each rank's share: all of them, in the reference's order, on every rank.
        self._real_features = self._gathered(strategy, "features")
        if self._manifold_ks:
            self._real_radii = manifold.knn_radii(self._real_features, self._manifold_ks)
        if not loaded and self.floor_on and protocol.floor_size(len(dataset), num_real) >= 2:
            self.floor = self._measure_floor(trainer, dataset, reference, labels)
        self._parts = {}
        if not loaded and path is not None:
            self._save_cache(path, trainer.is_global_zero)
        self._real_ready = True

    def _fake_label_pool(self, pl_module: L.LightningModule) -> Tensor | None:
        """The reference's labels in its order, which a conditional model's samples are asked for; None when the model
        or the data is unconditional (the samples then follow :meth:`gans.labels.LabelSpace.for_indices`)."""
        if self._reference_labels is None or not pl_module.label_space.conditional:
            return None
        return self._reference_labels

    def _measure_floor(self, trainer: L.Trainer, dataset: Any, reference: Tensor, labels: Tensor | None) -> protocol.Floor:
        """FID and KID of :func:`gans.metrics.protocol.floor_indices`' two real sets: the reference's features where it
        holds an image, the others extracted (each rank its share, gathered); every rank computes the same numbers."""
        first, second = protocol.floor_indices(len(dataset), len(reference), self.seed, labels)
        known = {int(i): position for position, i in enumerate(reference.tolist())}
        extra = sorted((set(first.tolist()) | set(second.tolist())) - set(known))
        parts = []
        with EvaluationBar(trainer, len(extra), "FID: real-vs-real floor") as bar:
            for positions in rank_block(len(extra), trainer.global_rank, trainer.world_size).split(self.batch_size):
                if not len(positions):
                    continue  # this rank's share is empty (an empty tensor still splits into one empty part)
                images = torch.stack([dataset[extra[int(p)]][0] for p in positions])
                parts.append(self._extract(to_uint8(images).to(self._real_features.device))[0].float())
                bar.update(len(positions))
        mine = torch.cat(parts) if parts else self._real_features.new_zeros(0, self._real_features.shape[1])
        extra_features = torch.cat(distributed.gather_uneven(trainer.strategy, mine))
        known.update({i: len(reference) + position for position, i in enumerate(extra)})
        pool = torch.cat([self._real_features, extra_features])
        first_features, second_features = (pool[[known[int(i)] for i in part]] for part in (first, second))
        return protocol.real_floor(first_features, second_features, self.kid_subsets, self.kid_subset_size, self.seed)

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

    def _cache_path(self, trainer: L.Trainer, num_real: int, stratified: bool) -> Path | None:
        datamodule = trainer.datamodule
        if not isinstance(datamodule, contracts.CacheKeyed):
            return None  # no stable identity for the data: statistics are kept for this run only
        extractor = self._extractor.cache_name if isinstance(self._extractor, contracts.CacheNamed) else type(self._extractor).__qualname__
        draw = f"ref{self.seed}{'s' if stratified else ''}"  # which real images: protocol.reference_indices' seed and labels
        return self.cache_dir / f"{datamodule.cache_key()}-{draw}-{extractor}-n{num_real}.pt"

    def _load_cache(self, path: Path | None, num_features: int, strategy: Any) -> bool:
        """Put the cached real statistics on rank 0 (the other ranks keep empty ones, so the DDP sums are
        right); False, on every rank, when rank 0 has no usable cache.

        Rank 0 decides and broadcasts its verdict (as :class:`callbacks.ConditionalAccuracy` does with its
        classifier): a rank that decided alone, not seeing the file (a disk of its own, a cache written while
        it looked), would extract features and enter the reduction of :meth:`_save_cache` by itself and hang."""
        stats = None
        if strategy.is_global_zero and path is not None and path.is_file():
            stats = torch.load(path, map_location="cpu", weights_only=True)
            if (stats["sum"].shape[0] != num_features or ((self.kid or self._manifold_ks) and "features" not in stats)
                    or (self.floor_on and "floor" not in stats)):
                stats = None
        if not strategy.broadcast(stats is not None, src=0):
            return False
        floor = stats["floor"].tolist() if stats is not None and "floor" in stats else None  # [fid, kid, kid_std, n]
        floor = strategy.broadcast(floor, src=0)
        self.floor = protocol.Floor(floor[0], floor[1], floor[2], int(floor[3])) if floor and self.floor_on else None
        fid = self._metrics["fid"]
        if stats is not None:
            fid.real_features_sum = stats["sum"].to(fid.device)
            fid.real_features_cov_sum = stats["cov_sum"].to(fid.device)
            fid.real_features_num_samples = stats["num"].to(fid.device)
        features = stats["features"] if stats is not None and "features" in stats else torch.zeros(0, num_features)
        if "kid" in self._metrics:
            self._metrics["kid"].real_features = [features.to(fid.device)]
        self._parts["features"] = [features.to(fid.device)]
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
                if self.kid or self._manifold_ks:  # the metrics that need every feature, not sums
                    stats["features"] = self._real_features
                if self.floor is not None:
                    stats["floor"] = torch.tensor([self.floor.fid, self.floor.kid, self.floor.kid_std, self.floor.n], dtype=torch.float64)
                write_atomically(path, lambda partial: torch.save({k: v.detach().cpu() for k, v in stats.items()}, partial))
