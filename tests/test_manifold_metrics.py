"""Precision/recall (Kynkaanniemi et al. 2019), density/coverage (Naeem et al. 2020) and the Inception Score: hand
computations on tiny point sets, closed cases, a brute-force reference, and callbacks.FID computing them from the
features it extracts."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TinyFeatures
from lightning.pytorch.loggers import CSVLogger
from test_fid import small_fit

from callbacks import FID
from gans.errors import ConfigError
from gans.metrics import manifold, protocol
from gans.metrics.inception import to_uint8
from gans.metrics.inception_score import inception_score
from gans.metrics.manifold import (
    density_coverage,
    knn_radii,
    manifold_metrics,
    precision_recall,
)

# Worked by hand with k = 1. Real: a (0,0), b (2,0), c (0,3), d (10,10); their 1-NN radii 2, 2, 3, sqrt(149) = 12.21.
REAL = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [10.0, 10.0]])
# Generated: p (1,1) lies in the balls of a, b (1.41 <= 2) and c (2.24 <= 3); q (0,7) only in d's (10.44 <= 12.21);
# s (-20,0) in none (20 from a). Their 1-NN radii: p, q 6.08 (each other), s 21.02 (to p).
FAKE = torch.tensor([[1.0, 1.0], [0.0, 7.0], [-20.0, 0.0]])


def test_knn_radii_by_hand() -> None:
    radii = knn_radii(REAL, [1, 2])
    assert torch.allclose(radii[1], torch.tensor([2.0, 2.0, 3.0, math.sqrt(149)]))
    assert torch.allclose(radii[2], torch.tensor([3.0, math.sqrt(13), math.sqrt(13), math.sqrt(164)]))  # a: c at 3; b, c: each other


def test_precision_recall_by_hand() -> None:
    # Precision: p and q in the real manifold, s not: 2/3. Recall: a, b, c within 6.08 of p; d is 12.73 from p,
    # 10.44 from q (radii 6.08) and 31.6 from s (radius 21.02): 3/4.
    precision, recall = precision_recall(REAL, FAKE, k=1)
    assert precision == pytest.approx(2 / 3) and recall == pytest.approx(3 / 4)


def test_density_coverage_by_hand() -> None:
    # Density: p is in 3 real balls, q in 1, s in none: (3 + 1 + 0) / (k=1 * 3). Coverage: every real ball holds a
    # generated sample (d's holds q).
    assert density_coverage(REAL, FAKE, k=1) == pytest.approx((4 / 3, 1.0))
    # Without q, d's ball is empty (p is 12.73 > 12.21 from d): coverage 3/4; density (3 + 0) / 2.
    assert density_coverage(REAL, FAKE[[0, 2]], k=1) == pytest.approx((1.5, 3 / 4))


def brute_force(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """The papers' definitions written with loops over points."""
    dist = lambda a, b: float(np.sqrt(((a - b) ** 2).sum()))
    radius = lambda s, i, k: sorted(dist(s[i], s[j]) for j in range(len(s)) if j != i)[k - 1]
    r_pr = [radius(real, i, k_pr) for i in range(len(real))]
    r_dc = [radius(real, i, k_dc) for i in range(len(real))]
    s_pr = [radius(fake, j, k_pr) for j in range(len(fake))]
    precision = np.mean([any(dist(y, x) <= r for x, r in zip(real, r_pr)) for y in fake])
    recall = np.mean([any(dist(x, y) <= s for y, s in zip(fake, s_pr)) for x in real])
    density = sum(dist(y, x) <= r for y in fake for x, r in zip(real, r_dc)) / (k_dc * len(fake))
    coverage = np.mean([min(dist(x, y) for y in fake) <= r for x, r in zip(real, r_dc)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_matches_the_definitions_in_blocks_of_any_size(monkeypatch) -> None:
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, 3, generator=g), torch.randn(30, 3, generator=g) * 0.6 + 0.8
    expected = brute_force(real.double().numpy(), fake.double().numpy(), 3, 5)
    assert 0.1 < expected["precision"] < 0.95 and 0.1 < expected["recall"] < 0.95  # neither case trivial
    whole = manifold_metrics(real, fake)
    monkeypatch.setattr(manifold, "BLOCK_ELEMENTS", 50)  # one or two rows of distances at a time
    blocked = manifold_metrics(real, fake)
    for name, value in expected.items():
        assert whole[name] == pytest.approx(value, abs=1e-9), name
        assert blocked[name] == pytest.approx(value, abs=1e-9), name


def test_identical_sets() -> None:
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(1))
    values = manifold_metrics(x, x.clone())
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0
    # Each point lies in its own ball and in the balls of the points it is one of the k nearest of: k + 1 balls on average.
    # (Distances come from matrix products, so a point exactly on a ball's boundary, here the k-th neighbour, can fall
    # either side by rounding: about.)
    assert values["density"] == pytest.approx(6 / 5, abs=0.01)


def test_two_samples_of_one_distribution_have_density_near_one() -> None:
    g = torch.Generator().manual_seed(2)
    values = manifold_metrics(torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g))
    assert values["density"] == pytest.approx(1.0, abs=0.08)
    assert values["coverage"] > 0.9 and values["precision"] > 0.9 and values["recall"] > 0.9


def test_disjoint_far_apart_sets() -> None:
    g = torch.Generator().manual_seed(3)
    values = manifold_metrics(torch.randn(50, 4, generator=g), torch.randn(60, 4, generator=g) + 100)
    assert values == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_too_few_points_for_k() -> None:
    with pytest.raises(ValueError, match="more than 3 samples"):
        precision_recall(REAL, FAKE)  # 3 generated points, k = 3


def test_inception_score_closed_cases() -> None:
    assert inception_score(torch.zeros(50, 1008)) == pytest.approx((1.0, 0.0))  # uniform: p(y|x) = p(y)
    classes = 7
    confident = 60.0 * torch.nn.functional.one_hot(torch.arange(10 * classes) % classes, 1008)  # each split: every class once
    assert inception_score(confident) == pytest.approx((classes, 0.0), rel=1e-9, abs=1e-9)


def test_inception_score_by_hand() -> None:
    # One split of two images, p(y|x) = (1, 0) and (1/2, 1/2): p(y) = (3/4, 1/4), KLs log(4/3) and log(4/3) / 2.
    logits = torch.tensor([[80.0, 0.0], [0.0, 0.0]])
    assert inception_score(logits, splits=1)[0] == pytest.approx((4 / 3) ** 0.75, rel=1e-9)
    # Ten consecutive splits of two: the first five all uniform (score 1), the last five two confident classes (2):
    # mean 1.5 and the population standard deviation 0.5, as OpenAI's code (np.std) reports them.
    logits = torch.cat([torch.zeros(10, 2), 80.0 * torch.nn.functional.one_hot(torch.arange(10) % 2, 2)])
    assert inception_score(logits) == pytest.approx((1.5, 0.5), rel=1e-9)
    with pytest.raises(ValueError, match="at least 10 images"):
        inception_score(torch.zeros(9, 4))


class QuadrantMeansAndLogits(torch.nn.Module):
    """uint8 images to their 4 quadrant means (centred on mid-grey, over 16) and 5 class logits (a fixed linear map of
    them); counts the images it sees.

    On the random test digits and an untrained DCGAN the sets overlap as a collapsed generator's do: the generated
    images are all mid-grey (quadrant means 127.5 +- 0.1), the real ones spread around that (+- 10), so precision is high
    and recall low, not all 0 as with :class:`helpers.TinyFeatures`, where the two sets lie far apart. Also used by
    tests/scripts/ddp_fid.py."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.randn(4, 5, generator=torch.Generator().manual_seed(7))
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.images_seen += images.shape[0]
        features = (torch.nn.functional.avg_pool2d(images.float(), images.shape[-1] // 2).flatten(1) - 127.5) / 16
        return features, 4 * features @ self.head


def test_fid_callback_computes_and_logs_them_from_its_own_features(tmp_path: Path, mnist_root: Path) -> None:
    extractor = QuadrantMeansAndLogits()
    fid = FID(every_kimg=0, num_samples=40, num_real=48, batch_size=16, feature_extractor=extractor, cache_dir=str(tmp_path / "cache"))
    model, trainer = small_fit(tmp_path, mnist_root, [fid], logger=CSVLogger(tmp_path, name="csv"))
    dataset = trainer.datamodule.real_dataset()
    reference = protocol.reference_indices(len(dataset), 48, seed=0, labels=dataset.labels)  # the protocol's reference
    model.eval()
    with torch.no_grad():
        real, _ = extractor(to_uint8(torch.stack([dataset[int(i)][0] for i in reference])))
        fake, logits = extractor(to_uint8(model.sample_indexed(torch.arange(40))))
    result = fid.history[-1]
    for name, value in manifold_metrics(real, fake).items():
        assert result[f"metrics/{name}"] == pytest.approx(value, abs=1e-9), name
    assert (result["metrics/is"], result["metrics/is_std"]) == pytest.approx(inception_score(logits), rel=1e-5)
    assert result["metrics/precision"] > 0.9 and result["metrics/recall"] < 0.2 and 0 < result["metrics/coverage"] < 1
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
        (row,) = [r for r in csv.DictReader(f) if r.get("metrics/fid")]
    for name in ("precision", "recall", "density", "coverage", "is", "is_std"):
        assert float(row[f"metrics/{name}"]) == pytest.approx(result[f"metrics/{name}"], rel=1e-6), name

    # A second run takes the real features from the cache (without KID, which also keeps them) and gets the same numbers.
    again = QuadrantMeansAndLogits()
    cached = FID(every_kimg=0, num_samples=40, num_real=48, batch_size=16, kid=False, feature_extractor=again, cache_dir=str(tmp_path / "cache"))
    small_fit(tmp_path / "again", mnist_root, [cached])
    assert again.images_seen == 8 + 1 + 40  # the startup timing, probe, generated: no real pass
    for name in ("precision", "recall", "density", "coverage", "is"):
        assert cached.history[-1][f"metrics/{name}"] == pytest.approx(result[f"metrics/{name}"], abs=1e-9), name


def test_switches_and_the_fid_only_path(tmp_path: Path, mnist_root: Path) -> None:
    cache = tmp_path / "cache"
    only_fid = FID(every_kimg=0, num_samples=20, num_real=20, kid=False, precision_recall=False, density_coverage=False,
                   feature_extractor=QuadrantMeansAndLogits(), inception_score=False, cache_dir=str(cache))
    small_fit(tmp_path / "a", mnist_root, [only_fid], max_steps=2)
    assert set(only_fid.history[-1]) == {"train/kimg", "metrics/fid"}
    (stats,) = [torch.load(f, weights_only=True) for f in cache.glob("*.pt")]
    assert "features" not in stats  # only the sums, as before these metrics
    # Features-only extractor: no IS unless asked for, and asking for it names the fix.
    default = FID(every_kimg=0, num_samples=20, num_real=20, feature_extractor=TinyFeatures(), cache_dir=str(cache))
    small_fit(tmp_path / "b", mnist_root, [default], max_steps=2)
    assert {"metrics/precision", "metrics/recall", "metrics/density", "metrics/coverage"} <= set(default.history[-1])
    assert "metrics/is" not in default.history[-1]
    # Before training, not at the first evaluation: the extractor saw one probe image and no real pass began.
    probe = TinyFeatures()
    with pytest.raises(ConfigError, match="inception_score needs class logits.*inception_score: false"):
        small_fit(tmp_path / "c", mnist_root, [FID(every_kimg=0, num_samples=20, num_real=20, feature_extractor=probe,
                                                   inception_score=True, cache_dir=str(cache))], max_steps=2)
    assert probe.images_seen == 1


def test_settings_too_small_for_the_metrics_are_refused() -> None:
    with pytest.raises(ConfigError, match="precision_recall .*num_samples=3.*precision_recall: false"):
        FID(num_samples=3, precision_recall=True)
    with pytest.raises(ConfigError, match="density_coverage .*num_real=5"):
        FID(num_samples=100, num_real=5, density_coverage=True)
    with pytest.raises(ConfigError, match="inception_score needs num_samples >= 10"):
        FID(num_samples=8, inception_score=True)
    FID(num_samples=2)  # left to None, each metric is computed when there are enough images: FID alone needs 2


def test_by_default_each_is_computed_when_there_are_enough_images(tmp_path: Path, mnist_root: Path) -> None:
    fid = FID(every_kimg=0, num_samples=5, num_real=20, feature_extractor=QuadrantMeansAndLogits(), cache_dir=str(tmp_path / "c"))
    small_fit(tmp_path, mnist_root, [fid], max_steps=2)
    assert {"metrics/precision", "metrics/recall"} <= set(fid.history[-1])  # more than k = 3 images
    assert not {"metrics/density", "metrics/is"} & set(fid.history[-1])  # not more than k = 5, not 10 for IS's splits
