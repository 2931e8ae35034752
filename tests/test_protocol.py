"""gans.metrics.protocol: a random but reproducible reference, stratified by class; the real-vs-real floor on disjoint
sets; KID with its std; result files keyed by the whole config; and callbacks.FID on that reference."""

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import TinyFeatures, quiet_trainer

from callbacks import FID
from datamodules import MNISTDataModule
from gans import ACGAN, DCGAN
from gans.errors import ConfigError
from gans.metrics import protocol
from gans.metrics.inception import to_uint8


def test_the_reference_is_random_but_reproducible() -> None:
    a = protocol.reference_indices(1000, 100, seed=0)
    assert torch.equal(a, protocol.reference_indices(1000, 100, seed=0))
    assert not torch.equal(a, protocol.reference_indices(1000, 100, seed=1))
    assert len(a.unique()) == 100 and torch.equal(a, a.sort().values)
    assert not torch.equal(a, torch.arange(100))  # not the first N
    assert a.max() > 500  # spread over the split
    assert torch.equal(protocol.reference_indices(50, 100), torch.arange(50))  # N covers the split: all of it


def test_a_labelled_reference_is_stratified_by_class() -> None:
    # Sorted by class as files sorted by name can be: the first 100 are classes 0 and 1 only.
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([70, 50, 30, 25, 15, 10])])
    chosen = protocol.reference_indices(len(labels), 40, seed=3, labels=labels)
    counts = torch.bincount(labels[chosen], minlength=6).tolist()
    # Quotas 40 * [70, 50, 30, 25, 15, 10] / 200 = 14, 10, 6, 5, 3, 2: exact.
    assert counts == [14, 10, 6, 5, 3, 2]
    # Largest remainder: quotas 21 * sizes / 200 = 7.35, 5.25, 3.15, 2.625, 1.575, 1.05 -> floors 7,5,3,2,1,1 (19),
    # the 2 left go to the largest remainders (0.625, 0.575).
    counts = torch.bincount(labels[protocol.reference_indices(len(labels), 21, labels=labels)], minlength=6).tolist()
    assert counts == [7, 5, 3, 3, 2, 1]
    # Two heads stratify by the joint class.
    two_heads = torch.stack([labels % 2, labels // 2], dim=1)
    joint = protocol.reference_indices(len(labels), 40, seed=3, labels=two_heads)
    assert torch.bincount(labels[joint], minlength=6).tolist() == [14, 10, 6, 5, 3, 2]
    with pytest.raises(ConfigError, match="labels"):
        protocol.reference_indices(10, 5, labels=torch.zeros(9))


def test_the_floor_compares_two_disjoint_real_sets_of_n() -> None:
    labels = torch.arange(300) % 3
    first, second = protocol.floor_indices(300, 100, seed=0, labels=labels)
    assert len(first) == len(second) == 100
    assert not set(first.tolist()) & set(second.tolist())
    assert torch.equal(first, protocol.reference_indices(300, 100, seed=0, labels=labels))  # the reference itself
    assert torch.bincount(labels[second]).tolist() == [33, 34, 33]  # from the 66, 67, 67 left
    # A split under 2N: the floor is measured at half the split, and says so.
    small, other = protocol.floor_indices(150, 100)
    assert len(small) == len(other) == 75 and not set(small.tolist()) & set(other.tolist())
    features = torch.randn(150, 4, generator=torch.Generator().manual_seed(0))
    floor = protocol.real_floor(features[small], features[other], kid_subsets=10, kid_subset_size=50)
    result = protocol.evaluate(features[:100], features[:100] + 1, floor=floor, kid_subsets=10, kid_subset_size=50)
    assert floor.n == 75 and "floor at N = 75" in result.describe() and "N = 100 fake / 100 real" in result.describe()
    assert "fewer than 2 x 100" in result.markdown_row("model")


def test_evaluation_reports_kid_std_n_and_the_floor() -> None:
    generator = torch.Generator().manual_seed(0)
    real, other_real = torch.randn(2, 200, 8, generator=generator)
    fake = torch.randn(200, 8, generator=generator) * 1.5 + 0.5
    floor = protocol.real_floor(real, other_real, kid_subsets=20, kid_subset_size=100)
    result = protocol.evaluate(real, fake, floor=floor, kid_subsets=20, kid_subset_size=100)
    assert result.kid_std > 0 and result.kid > 3 * result.kid_std  # apart: a clear KID over its spread
    assert result.fid > 5 * floor.fid and abs(floor.kid) < 5 * floor.kid_std  # same data: KID about 0
    assert result.precision is not None and result.recall is not None and result.coverage is not None
    assert (result.n_fake, result.n_real, result.floor_n) == (200, 200, 200)
    text = result.describe()
    assert "N = 200 fake / 200 real" in text and f"floor FID {floor.fid:.2f}" in text and "±" in text
    row = result.markdown_row("model")
    assert row.count("|") == protocol.Evaluation.markdown_header("model").splitlines()[0].count("|")
    # KID's subsets come from the seed, not the global RNG, and leave it as it was.
    state = torch.random.get_rng_state()
    assert protocol.kernel_inception_distance(real, fake, 20, 100, seed=5) == protocol.kernel_inception_distance(real, fake, 20, 100, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())
    # Without a floor, the description says there is none.
    assert "no real-vs-real floor" in protocol.evaluate(real, fake, kid_subsets=5, kid_subset_size=50).describe()


def test_result_files_are_keyed_by_the_whole_config(tmp_path: Path) -> None:
    config = {"config": "experiments/acgan_anime_cpu.yaml", "overrides": ["--model.init_args.g_dropout=0"], "n": 500, "seed": 0}
    path = protocol.result_path(tmp_path, "acgan_anime_cpu", config)
    assert path == protocol.result_path(tmp_path, "acgan_anime_cpu", dict(reversed(list(config.items()))))  # key order
    assert path.parent == tmp_path and path.name.startswith("acgan_anime_cpu-") and path.suffix == ".json"
    for change in ({"n": 1000}, {"seed": 1}, {"overrides": []}, {"config": "experiments/acgan_anime.yaml"}):
        assert protocol.result_path(tmp_path, "acgan_anime_cpu", {**config, **change}) != path, change
    with pytest.raises(ConfigError, match="result name"):
        protocol.result_path(tmp_path, "a/b", config)


def test_fid_callback_compares_with_the_seeded_reference_and_logs_the_floor(tmp_path: Path, mnist_root: Path) -> None:
    extractor = TinyFeatures()
    fid = FID(every_kimg=0, num_samples=16, num_real=16, batch_size=16, feature_extractor=extractor, cache_dir=str(tmp_path / "c"))
    L.seed_everything(0)
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
    trainer = quiet_trainer(tmp_path, max_steps=2, callbacks=[fid])
    trainer.fit(model, datamodule=data)
    dataset = data.real_dataset()
    labels = dataset.labels
    chosen = protocol.reference_indices(len(dataset), 16, seed=0, labels=labels)  # MNIST is labelled: stratified
    assert not torch.equal(chosen, torch.arange(16))
    first, second = protocol.floor_indices(len(dataset), 16, seed=0, labels=labels)
    model.eval()
    with torch.no_grad():
        real = extractor(to_uint8(torch.stack([dataset[int(i)][0] for i in chosen])))
        fake = extractor(to_uint8(model.sample_indexed(torch.arange(16))))
        floor_real = [extractor(to_uint8(torch.stack([dataset[int(i)][0] for i in part]))) for part in (first, second)]
    assert fid.history[-1]["metrics/fid"] == pytest.approx(protocol.frechet_distance(real, fake), rel=1e-4)
    floor = protocol.real_floor(*floor_real, kid_subset_size=1000, kid_subsets=100)
    logged = fid.floor
    assert logged.fid == pytest.approx(floor.fid, rel=1e-4) and logged.n == 16
    assert float(trainer.callback_metrics["metrics/fid_floor"]) == pytest.approx(floor.fid, rel=1e-4)
    assert float(trainer.callback_metrics["metrics/kid_floor"]) == pytest.approx(floor.kid, rel=1e-3, abs=1e-6)
    assert fid.history[-1]["metrics/kid_std"] >= 0


def test_conditional_fakes_are_asked_for_the_references_classes() -> None:
    reference = torch.tensor([[0, 1], [0, 2], [3, 1]])  # 3 reference images, 2 heads
    asked = protocol.fake_labels(reference, torch.arange(7))
    assert torch.equal(asked, reference[torch.tensor([0, 1, 2, 0, 1, 2, 0])])  # sample i: reference label i mod N
    assert torch.equal(protocol.fake_labels(reference, torch.tensor([4, 2])), reference[torch.tensor([1, 2])])  # any block of indices
    assert protocol.fake_labels(None, torch.arange(3)) is None
    # N samples have the reference's class mix exactly, a stratified reference of a skewed split included.
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([90, 8, 2])])
    chosen = protocol.reference_indices(len(labels), 50, seed=1, labels=labels)
    mix = torch.bincount(protocol.fake_labels(labels[chosen], torch.arange(50)), minlength=3)
    assert mix.tolist() == torch.bincount(labels[chosen], minlength=3).tolist() == [45, 4, 1]


def test_fid_callback_asks_a_conditional_model_for_the_references_labels(tmp_path: Path, mnist_root: Path) -> None:
    extractor = TinyFeatures()
    fid = FID(every_kimg=0, num_samples=24, num_real=16, batch_size=8, feature_extractor=extractor, cache_dir=str(tmp_path / "c"),
              kid=False, floor=False)
    L.seed_everything(0)
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    model = ACGAN(num_classes=10, img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8, architecture="dcgan")
    drawn = []  # (indices, labels) of every call the callback makes
    sample_indexed = model.sample_indexed

    def recording(indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        drawn.append((indices, labels))
        return sample_indexed(indices, labels=labels)

    model.sample_indexed = recording
    trainer = quiet_trainer(tmp_path, max_steps=2, callbacks=[fid])
    trainer.fit(model, datamodule=data)
    dataset = data.real_dataset()
    chosen = protocol.reference_indices(len(dataset), 16, seed=0, labels=dataset.labels)
    indices = torch.arange(24)
    asked = dataset.labels[chosen][indices % 16]
    assert not torch.equal(asked, model.label_space.for_indices(indices))  # so the check below tells them apart
    evaluation = [(i, labels) for i, labels in drawn if labels is not None]
    assert torch.equal(torch.cat([i for i, _ in evaluation]), indices)  # one pass over the samples, in blocks
    assert torch.equal(torch.cat([labels for _, labels in evaluation]), asked)
    model.eval()
    with torch.no_grad():
        real = extractor(to_uint8(torch.stack([dataset[int(i)][0] for i in chosen])))
        fake = extractor(to_uint8(sample_indexed(indices, labels=asked)))
    assert fid.history[-1]["metrics/fid"] == pytest.approx(protocol.frechet_distance(real, fake), rel=1e-4)


def test_sample_indexed_takes_one_label_per_index() -> None:
    model = ACGAN(num_classes=10, img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8, architecture="dcgan").eval()
    with torch.no_grad():
        walk = model.sample_indexed(torch.arange(4))
        same = model.sample_indexed(torch.arange(4), labels=model.label_space.for_indices(torch.arange(4)))
        other = model.sample_indexed(torch.arange(4), labels=torch.tensor([5, 5, 5, 5]))
    scale = walk.abs().max()  # an untrained G's images are small
    assert torch.allclose(walk, same, atol=1e-4 * scale) and (walk - other).abs().max() > 0.1 * scale
    with pytest.raises(ValueError, match="one label per index"):
        model.sample_indexed(torch.arange(4), labels=torch.tensor([1, 2]))


def test_kid_subsets_are_at_most_half_the_set_so_the_std_measures_a_spread() -> None:
    """With subsets as large as the sets (N = 500 and the default 1000 capped at N), every subset was the whole set
    and KID's std read 0 (the ACGAN ablation's first row said ``± 0.00``)."""
    assert protocol.kid_subset_size(1000, 500, 500) == 250
    assert protocol.kid_subset_size(1000, 5000, 4000) == 1000
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 60, 8, generator=generator)
    mean, std = protocol.kernel_inception_distance(real, fake + 0.3, subsets=10)
    assert std > 0 and math.isfinite(mean)
