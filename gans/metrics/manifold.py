"""Precision, recall, density and coverage: how much of each feature set lies on the other's k-NN manifold.

The manifold of a set of feature vectors is the union of balls, one around each vector, whose radius is the distance
to its k-th nearest neighbour in the same set (itself excluded).

- Precision and recall, Kynkaanniemi et al. 2019 (arXiv:1904.06991), section 2, k = 3: precision is the fraction of
  generated samples inside the real manifold (quality), recall the fraction of real samples inside the generated
  manifold (coverage of the data). A point on a ball's boundary is inside (``<=``, as in the authors' code and
  StyleGAN2-ADA's ``metrics/precision_recall.py``).
- Density and coverage, Naeem et al. 2020 (arXiv:2002.09797), eqs. 3-4, k = 5, both from the real manifold only, so
  outliers among the generated samples do not inflate them: density = ``1 / (k M) sum_j sum_i 1[Y_j in B(X_i, r_i)]``
  (how many real balls hold each generated sample, over k; about 1 when the two sets come from one distribution, and
  unbounded above), coverage = ``1 / N sum_i 1[some Y_j in B(X_i, r_i)]`` (the fraction of real balls that hold a
  generated sample).

Which features: the papers embed images with VGG-16's second fully connected layer (4096-d); :class:`callbacks.FID`
uses whatever its extractor gives (the FID Inception's 2048-d pool features by default, one extraction for every
metric), so its values are not those of StyleGAN2's Table 1, which used VGG-16; a VGG-16 extractor named as
``feature_extractor`` gives the papers' protocol.

Everything here works in blocks of rows of the distance matrix (:func:`torch.cdist`), at most about
:data:`BLOCK_ELEMENTS` distances at a time, so 50k x 50k sets fit on any device; one pass over the generated-vs-real
distances gives all four numbers. Distances come from matrix products (:func:`torch.cdist`'s fast path; the exact
one is about 20 times slower on a CPU), so a point exactly on a ball's boundary, a duplicate of some point's k-th
neighbour, can fall either side by rounding: identical sets give density 1.2 (k + 1 balls over k) only about.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

BLOCK_ELEMENTS = 2**24  # distances held at once (64 MB in float32)
PRECISION_RECALL_K = 3  # Kynkaanniemi et al. 2019, as StyleGAN2 reports them
DENSITY_COVERAGE_K = 5  # Naeem et al. 2020


def _row_blocks(rows: int, columns: int) -> Iterator[slice]:
    step = max(1, BLOCK_ELEMENTS // max(columns, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _check(features: Tensor, k: int, name: str) -> None:
    if features.dim() != 2:
        raise ValueError(f"{name} features must be [N, F], got shape {tuple(features.shape)}")
    if features.shape[0] <= k:
        raise ValueError(f"{name}: the k-NN radius with k={k} needs more than {k} samples, got {features.shape[0]}")


def knn_radii(features: Tensor, ks: Iterable[int]) -> dict[int, Tensor]:
    """For each k in ``ks``: ``[N]``, the distance from each row of ``features`` ``[N, F]`` to its k-th nearest other row."""
    ks = sorted(set(ks))
    _check(features, ks[-1], "knn_radii")
    features = features.float()
    nearest = torch.cat([
        torch.cdist(features[rows], features).topk(ks[-1] + 1, dim=1, largest=False).values  # the point itself first
        for rows in _row_blocks(len(features), len(features))
    ])
    return {k: nearest[:, k] for k in ks}


def manifold_metrics(
    real: Tensor,
    fake: Tensor,
    precision_recall_k: int | None = PRECISION_RECALL_K,
    density_coverage_k: int | None = DENSITY_COVERAGE_K,
    real_radii: dict[int, Tensor] | None = None,
) -> dict[str, float]:
    """Precision and recall (with ``precision_recall_k``; None = skip) and density and coverage (with
    ``density_coverage_k``; None = skip) of generated features ``fake`` ``[M, F]`` against real features ``real``
    ``[N, F]``, keyed ``precision``, ``recall``, ``density``, ``coverage``.

    ``real_radii``: the real set's :func:`knn_radii` for those ks, when the caller keeps them across evaluations.
    """
    wanted = [k for k in (precision_recall_k, density_coverage_k) if k is not None]
    if not wanted:
        return {}
    real, fake = real.float(), fake.to(real.device, torch.float32)
    if real_radii is None or any(k not in real_radii for k in wanted):
        real_radii = knn_radii(real, wanted)
    _check(real, max(wanted), "real")
    pr, dc = precision_recall_k, density_coverage_k
    fake_radii = knn_radii(fake, [pr])[pr] if pr is not None else None
    in_real = torch.zeros(len(fake), dtype=torch.bool, device=real.device)  # precision: Y_j in some B(X_i, r_i)
    in_fake = torch.zeros(len(real), dtype=torch.bool, device=real.device)  # recall: X_i in some B(Y_j, s_j)
    balls_held = torch.zeros((), dtype=torch.float64, device=real.device)  # density: sum_j #{i: Y_j in B(X_i, r_i)}
    nearest_fake = torch.full((len(real),), torch.inf, device=real.device)  # coverage: min_j d(X_i, Y_j)
    for rows in _row_blocks(len(fake), len(real)):
        distances = torch.cdist(fake[rows], real)  # [block of generated, real]
        if pr is not None:
            in_real[rows] = (distances <= real_radii[pr]).any(dim=1)
            in_fake |= (distances <= fake_radii[rows, None]).any(dim=0)
        if dc is not None:
            balls_held += (distances <= real_radii[dc]).sum(dtype=torch.float64)
            nearest_fake = torch.minimum(nearest_fake, distances.min(dim=0).values)
    values = {}
    if pr is not None:
        values.update(precision=float(in_real.double().mean()), recall=float(in_fake.double().mean()))
    if dc is not None:
        values.update(density=float(balls_held / (dc * len(fake))), coverage=float((nearest_fake <= real_radii[dc]).double().mean()))
    return values


def precision_recall(real: Tensor, fake: Tensor, k: int = PRECISION_RECALL_K) -> tuple[float, float]:
    """Kynkaanniemi et al. 2019: (precision, recall) of ``fake`` against ``real``, both ``[N, F]``."""
    values = manifold_metrics(real, fake, precision_recall_k=k, density_coverage_k=None)
    return values["precision"], values["recall"]


def density_coverage(real: Tensor, fake: Tensor, k: int = DENSITY_COVERAGE_K) -> tuple[float, float]:
    """Naeem et al. 2020: (density, coverage) of ``fake`` against ``real``, both ``[N, F]``."""
    values = manifold_metrics(real, fake, precision_recall_k=None, density_coverage_k=k)
    return values["density"], values["coverage"]
