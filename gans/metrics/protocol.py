"""The evaluation protocol: which real images a generator is compared with, and what every reported number carries.

One module for :class:`callbacks.FID` and every benchmark script, so their numbers mean the same thing:

- **Reference.** The real images are drawn at random with a fixed seed (:func:`reference_indices`: a
  :class:`torch.Generator` seeded with ``seed``; the whole split when N covers it), never the first N files, which
  in a folder sorted by name can be a few classes only. For labelled data the draw is stratified by class
  (proportional allocation, largest remainder; several label heads count as one joint class), so the reference has
  the split's class frequencies.
- **Conditioning of the fakes.** A conditional generator is asked for the reference's classes: generated sample i
  gets the label of the i-th reference image (:func:`fake_labels`), so the fakes have the same class mix as the real
  images they are compared with, and a conditional model's FID compares with an unconditional one's. (Asked for
  every class equally instead, a model that draws each class perfectly would still be scored for the wrong class
  frequencies.)
- **Floor.** FID is biased upward at small N (Binkowski et al. 2018, arXiv:1801.01401, section 3; Chong and
  Forsyth 2020, arXiv:1911.07023), and N images of the data against N others of the same data do not score 0. Every
  number is stated with N and with the real-vs-real floor at the same N (:func:`floor_indices`,
  :func:`real_floor`): FID and KID between two disjoint random real sets of N each. When the split holds fewer than
  2N images the floor is measured at N = half the split, and :meth:`Evaluation.describe` says so.
- **KID** (Binkowski et al. 2018, the unbiased MMD^2 with the cubic polynomial kernel) as the mean and standard
  deviation over random subsets (torchmetrics' ``KernelInceptionDistance``), the subsets drawn from ``seed``.
- **One extraction.** FID, KID, precision/recall (Kynkaanniemi et al. 2019, k = 3), density/coverage (Naeem et al.
  2020, k = 5) and the Inception Score (Salimans et al. 2016, 10 splits) all come from the same features
  (:func:`evaluate`; :mod:`gans.metrics.manifold`, :mod:`gans.metrics.inception_score`).
- **Result files keyed by the config** (:func:`result_path`): a short stable hash of the canonical JSON of everything
  that defines a run, so a changed config starts a new curve and never appends to an old one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gans.errors import ConfigError
from gans.metrics import inception_score as inception_score_
from gans.metrics import manifold

KID_SUBSETS = 100  # torchmetrics' default, as Binkowski et al.'s code
KID_SUBSET_SIZE = 1000  # Binkowski et al. 2018, section 5; capped at half the smaller set (:func:`kid_subset_size`)
FLOOR_SEED_OFFSET = 1  # the floor's second set is drawn with seed + 1 from the items the first left
CONFIG_HASH_LENGTH = 10  # hex digits of the config's SHA-1 in a result file's name


class Precomputed(nn.Module):
    """Lets torchmetrics take features computed once for all metrics instead of running its own network."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


# The reference.


def _check_draw(num_items: int, n: int, labels: Tensor | None) -> None:
    if num_items < 1 or n < 1:
        raise ConfigError(f"the reference needs a split of >= 1 item and N >= 1, got {num_items} items and N = {n}.")
    if labels is not None and len(labels) != num_items:
        raise ConfigError(f"reference labels: {len(labels)} labels for {num_items} items; give one label (row) per item.")


def class_ids(labels: Tensor) -> Tensor:
    """``[N]`` class index per item of ``labels`` ``[N]`` or ``[N, heads]`` (each distinct row of heads one joint class)."""
    return torch.unique(labels.reshape(len(labels), -1), dim=0, return_inverse=True)[1]


def stratified_counts(class_sizes: Tensor, n: int) -> Tensor:
    """How many of ``n`` draws each class of ``class_sizes`` ``[K]`` gets in proportion to its size: each class the
    floor of its quota ``n * size / total``, the draws left over to the largest remainders (ties: lower class index)."""
    total = int(class_sizes.sum())
    quota = class_sizes.double() * n / total
    counts = quota.floor().long()
    left = n - int(counts.sum())
    order = sorted(range(len(quota)), key=lambda c: (-(float(quota[c]) - int(counts[c])), c))
    counts[order[:left]] += 1
    return counts


def reference_indices(num_items: int, n: int, seed: int = 0, labels: Tensor | None = None) -> Tensor:
    """The sorted indices ``[min(n, num_items)]`` of the real reference: ``n`` of ``range(num_items)`` drawn at random
    with a generator seeded by ``seed`` (all of them when ``n >= num_items``), stratified by class when ``labels``
    (``[num_items]`` or ``[num_items, heads]``) are given."""
    _check_draw(num_items, n, labels)
    if n >= num_items:
        return torch.arange(num_items)
    generator = torch.Generator().manual_seed(seed)
    if labels is None:
        return torch.randperm(num_items, generator=generator)[:n].sort().values
    ids = class_ids(labels)
    counts = stratified_counts(torch.bincount(ids), n)
    chosen = []
    for c, count in enumerate(counts.tolist()):
        members = (ids == c).nonzero().flatten()  # ascending
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


def fake_labels(reference_labels: Tensor | None, indices: Tensor) -> Tensor | None:
    """The labels generated samples ``indices`` are asked for: sample i takes the label of reference image
    ``i mod N`` (``reference_labels`` holds the N reference images' labels in the reference's order), so N samples
    have the reference's class mix; None for unlabelled data."""
    if reference_labels is None:
        return None
    if len(reference_labels) == 0:
        raise ConfigError("fake_labels: the reference holds no labels to condition the samples on.")
    return reference_labels[indices.long().cpu() % len(reference_labels)]


def floor_size(num_items: int, n: int) -> int:
    """N of the real-vs-real floor: ``n``, or half the split when it holds fewer than ``2 n`` items."""
    return min(n, num_items // 2)


def floor_indices(num_items: int, n: int, seed: int = 0, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Two disjoint sets of :func:`floor_size` real indices each: the first is ``reference_indices(num_items, size,
    seed, labels)`` (the reference itself when the split holds ``2 n``), the second drawn the same way, with
    ``seed + 1``, from the items the first left."""
    _check_draw(num_items, n, labels)
    size = floor_size(num_items, n)
    if size < 2:
        raise ConfigError(f"the real-vs-real floor needs two sets of >= 2 images, and a split of {num_items} holds less.")
    first = reference_indices(num_items, size, seed, labels)
    rest = torch.ones(num_items, dtype=torch.bool)
    rest[first] = False
    rest = rest.nonzero().flatten()
    second = rest[reference_indices(len(rest), size, seed + FLOOR_SEED_OFFSET, None if labels is None else labels[rest])]
    return first, second


# The numbers.


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID (Heusel et al. 2017, eq. 6) of feature sets ``[N, F]`` and ``[M, F]`` (torchmetrics, float64)."""
    fid = FrechetInceptionDistance(feature=Precomputed(real.shape[1]))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def kid_subset_size(requested: int, num_real: int, num_fake: int) -> int:
    """Images per KID subset: ``requested``, at most half the smaller set. A subset as large as the set is the set
    itself every time, and the standard deviation over subsets would read 0 whatever the spread."""
    return max(2, min(requested, num_real // 2, num_fake // 2))


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              seed: int = 0) -> tuple[float, float]:
    """KID's (mean, std) over ``subsets`` random subsets of :func:`kid_subset_size` images of each set; the subsets
    drawn from ``seed`` (the global RNG is left as it was)."""
    size = kid_subset_size(subset_size, len(real), len(fake))
    kid = KernelInceptionDistance(feature=Precomputed(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # torchmetrics draws its subsets from the global RNG
        mean, std = kid.compute()
    return float(mean), float(std)


@dataclass(frozen=True)
class Floor:
    """FID and KID of two disjoint sets of ``n`` real images each (``n`` below the evaluation's N: a small split)."""

    fid: float
    kid: float
    kid_std: float
    n: int


def real_floor(first: Tensor, second: Tensor, kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
               seed: int = 0) -> Floor:
    """The real-vs-real floor from the features of :func:`floor_indices`' two sets."""
    kid, kid_std = kernel_inception_distance(first, second, kid_subsets, kid_subset_size, seed)
    return Floor(frechet_distance(first, second), kid, kid_std, min(len(first), len(second)))


@dataclass
class Evaluation:
    """One evaluation of a generator under the protocol: every number with its N and the real-vs-real floor."""

    fid: float
    kid: float
    kid_std: float
    n_fake: int
    n_real: int
    floor_fid: float | None = None  # None: no floor measured (say why in floor_note)
    floor_kid: float | None = None
    floor_n: int | None = None  # N of the floor's two sets; below n_real when the split is small
    floor_note: str = ""
    precision: float | None = None
    recall: float | None = None
    density: float | None = None
    coverage: float | None = None
    inception_score: float | None = None
    inception_score_std: float | None = None

    COLUMNS = ("FID", "KID x 1e3", "precision", "recall", "N (fake / real)", "floor FID / KID x 1e3 (N)")

    def with_floor(self, floor: Floor | None, note: str = "") -> Evaluation:
        if floor is not None:
            self.floor_fid, self.floor_kid, self.floor_n = floor.fid, floor.kid, floor.n
            if floor.n < self.n_real and not note:
                note = f"the split holds fewer than 2 x {self.n_real} images: floor at N = {floor.n}"
        self.floor_note = note
        return self

    def floor_text(self) -> str:
        if self.floor_fid is None:
            return f"no floor ({self.floor_note or 'not measured'})"
        text = f"{self.floor_fid:.1f} / {self.floor_kid * 1e3:.1f} ({self.floor_n})"
        return text + (f", {self.floor_note}" if self.floor_note and self.floor_n != self.n_real else "")

    def markdown_row(self, *leading: Any) -> str:
        """``| *leading | FID | KID x 1e3 +- std | precision | recall | N | floor |``, under :meth:`markdown_header`."""
        cells = [*map(str, leading), f"{self.fid:.1f}", f"{self.kid * 1e3:.1f} ± {self.kid_std * 1e3:.1f}",
                 _optional(self.precision), _optional(self.recall), f"{self.n_fake} / {self.n_real}", self.floor_text()]
        return "| " + " | ".join(cells) + " |"

    @classmethod
    def markdown_header(cls, *leading: str) -> str:
        columns = [*leading, *cls.COLUMNS]
        return "| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns)

    def describe(self) -> str:
        """One line: ``FID 41.2, KID 12.3e-3 ± 0.8e-3 (N = 1000 fake / 1000 real; real-vs-real floor FID 9.1, KID ...)``."""
        text = f"FID {self.fid:.2f}, KID {self.kid * 1e3:.2f}e-3 ± {self.kid_std * 1e3:.2f}e-3"
        for name in ("precision", "recall", "density", "coverage"):
            if getattr(self, name) is not None:
                text += f", {name} {getattr(self, name):.3f}"
        if self.inception_score is not None:
            text += f", IS {self.inception_score:.2f} ± {self.inception_score_std:.2f}"
        text += f" (N = {self.n_fake} fake / {self.n_real} real; "
        if self.floor_fid is None:
            return text + f"no real-vs-real floor: {self.floor_note or 'not measured'})"
        at = f" at N = {self.floor_n}" + (f": {self.floor_note}" if self.floor_note else "") if self.floor_n != self.n_real else ""
        return text + f"real-vs-real floor FID {self.floor_fid:.2f}, KID {self.floor_kid * 1e3:.2f}e-3{at})"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


def _optional(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def evaluate(real: Tensor, fake: Tensor, floor: Floor | None = None, logits: Tensor | None = None,
             kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE, seed: int = 0,
             manifold_metrics: bool = True) -> Evaluation:
    """Every metric of generated features ``fake`` ``[M, F]`` (and class ``logits`` ``[M, K]``: the Inception Score)
    against the reference's features ``real`` ``[N, F]``, from these features only."""
    kid, kid_std = kernel_inception_distance(real, fake, kid_subsets, kid_subset_size, seed)
    result = Evaluation(frechet_distance(real, fake), kid, kid_std, len(fake), len(real))
    if manifold_metrics and min(len(real), len(fake)) > max(manifold.PRECISION_RECALL_K, manifold.DENSITY_COVERAGE_K):
        for name, value in manifold.manifold_metrics(real, fake).items():
            setattr(result, name, value)
    if logits is not None and len(logits) >= inception_score_.SPLITS:
        result.inception_score, result.inception_score_std = inception_score_.inception_score(logits)
    return result.with_floor(floor, "" if floor is not None else "not measured")


# Result files.


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of ``config``: SHA-1 of its canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(canonical.encode()).hexdigest()[:CONFIG_HASH_LENGTH]


def result_path(directory: str | Path, name: str, config: dict[str, Any]) -> Path:
    """``<directory>/<name>-<config hash>.json``: one result file per full config (model, data, overrides, N, seed,
    extractor, ...), so a changed config starts a new file and never appends to an old curve."""
    if not name or any(c in name for c in "/\\"):
        raise ConfigError(f"result name {name!r}: give a plain file stem without slashes.")
    return Path(directory) / f"{name}-{config_hash(config)}.json"

