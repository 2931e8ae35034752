"""MNIST from tiny IDX files in the real format (conftest), and the 2-D toy mixtures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MNIST_FILES, write_mnist_idx

from datamodules import MNISTDataModule, ToyDataModule
from datamodules.toy import MIXTURES, mixture_centers, mode_coverage, sample_mixture

ALL_RAW_FILES = [name + ".gz" for pair in MNIST_FILES.values() for name in pair]


def digits(n: int, seed: int) -> np.ndarray:
    """The images conftest's write_mnist_idx writes for (n, seed), regenerated independently."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def loaded(root: Path, **kwargs) -> MNISTDataModule:
    dm = MNISTDataModule(root=str(root), num_workers=0, download=False, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


# MNIST.


def test_mnist_train_split_reads_the_idx_files(mnist_root):
    dm = loaded(mnist_root, split="train", batch_size=16)
    assert len(dm.dataset) == 64
    expected = torch.from_numpy(digits(64, seed=0)).float() / 127.5 - 1.0  # [0, 255] -> [-1, 1]
    for i in (0, 17, 63):
        image, label = dm.dataset[i]
        assert image.shape == (1, 28, 28)
        torch.testing.assert_close(image[0], expected[i], atol=1e-5, rtol=0)
        assert int(label) == i % 10


def test_mnist_batches_at_28_px(mnist_root):
    dm = loaded(mnist_root, batch_size=16)
    batches = list(dm.train_dataloader())
    assert len(batches) == 4  # 64 images, drop_last
    images, labels = batches[0]
    assert images.shape == (16, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (16,) and labels.dtype == torch.int64
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() < -0.95 and images.max() > 0.95  # the full range is used, not [0, 1]
    all_labels = torch.cat([b[1] for b in batches])
    assert sorted(all_labels.tolist()) == sorted(i % 10 for i in range(64))
    assert dm.data_shape == (1, 28, 28) and dm.num_classes == 10


def test_mnist_32_px_pads_with_background(mnist_root):
    dm = loaded(mnist_root, img_resolution=32, batch_size=8)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 32, 32)
    assert labels.shape == (8,)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert dm.data_shape == (1, 32, 32)
    # 2 px of background (-1) on every side, the digit untouched (not resized) inside.
    image, _ = dm.dataset[5]
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.all(image[0][border] == -1.0)
    expected = torch.from_numpy(digits(64, seed=0)[5]).float() / 127.5 - 1.0
    torch.testing.assert_close(image[0, 2:30, 2:30], expected, atol=1e-5, rtol=0)


def test_mnist_other_resolutions_resize(mnist_root):
    dm = loaded(mnist_root, img_resolution=16, batch_size=8)
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 16, 16)
    assert images.min() >= -1.0 - 1e-6 and images.max() <= 1.0 + 1e-6


def test_mnist_test_split_from_a_folder_with_only_test_files(tmp_path):
    root = tmp_path / "only_test"
    raw = write_mnist_idx(root, "test", n=20, seed=3)
    dm = loaded(root, split="test", batch_size=5)
    assert len(dm.dataset) == 20
    image, label = dm.dataset[7]
    expected = torch.from_numpy(digits(20, seed=3)[7]).float() / 127.5 - 1.0
    torch.testing.assert_close(image[0], expected, atol=1e-5, rtol=0)
    assert int(label) == 7
    assert not any(raw.glob("train-*"))  # nothing was downloaded or invented
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (5, 1, 28, 28) and labels.shape == (5,)


def test_mnist_gz_only_files_are_extracted(tmp_path):
    root = tmp_path / "gz"
    raw = write_mnist_idx(root, "train", n=10, seed=4, gz=True)
    assert sorted(p.name for p in raw.iterdir()) == sorted(n + ".gz" for n in MNIST_FILES["train"])
    dm = loaded(root, split="train", batch_size=5)
    for name in MNIST_FILES["train"]:
        assert (raw / name).is_file()
    assert len(dm.dataset) == 10


def test_mnist_uncompressed_files_are_read(tmp_path):
    root = tmp_path / "plain"
    write_mnist_idx(root, "train", n=12, seed=5, gz=False)
    dm = loaded(root, split="train", batch_size=4)
    assert len(dm.dataset) == 12
    assert [int(dm.dataset[i][1]) for i in range(12)] == [i % 10 for i in range(12)]


def test_mnist_train_and_test_splits_differ(mnist_root):
    train = loaded(mnist_root, split="train")
    test = loaded(mnist_root, split="test")
    assert len(train.dataset) == 64 and len(test.dataset) == 32
    assert not torch.equal(train.dataset[0][0], test.dataset[0][0])


def test_mnist_missing_folder_names_the_folder_and_the_files(tmp_path):
    root = tmp_path / "nowhere"
    dm = MNISTDataModule(root=str(root), num_workers=0, download=False)
    with pytest.raises(FileNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert str((root / "MNIST" / "raw").resolve()) in message
    for name in ALL_RAW_FILES:
        assert name in message


def test_mnist_train_split_missing_suggests_the_test_split(tmp_path):
    root = tmp_path / "only_test"
    write_mnist_idx(root, "test", n=8)
    with pytest.raises(FileNotFoundError, match="split: test"):
        MNISTDataModule(root=str(root), split="train", num_workers=0, download=False).prepare_data()


def test_mnist_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        MNISTDataModule(split="valid")
    with pytest.raises(ValueError, match="img_resolution"):
        MNISTDataModule(img_resolution=4)


# Toy mixtures.


@pytest.mark.parametrize("mixture, modes", [("ring", 8), ("grid", 25)])
def test_toy_batches(mixture, modes):
    dm = ToyDataModule(mixture=mixture, num_samples=1000, batch_size=100, seed=0)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 10
    points, labels = batches[0]
    assert points.shape == (100, 2) and points.dtype == torch.float32
    assert labels.shape == (100,)
    assert labels.min() >= 0 and labels.max() < modes
    assert dm.num_classes == modes and dm.data_shape == (2,)
    # Every point sits near the centre of the mode it is labelled with.
    centers = mixture_centers(mixture)
    std = MIXTURES[mixture][1]
    all_points, all_labels = dm.dataset.tensors
    assert (all_points - centers[all_labels]).norm(dim=1).max() < 6 * std


def test_toy_data_are_reproducible_from_the_seed():
    a, b, c = (ToyDataModule(num_samples=100, seed=s) for s in (0, 0, 1))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.dataset.tensors[0], b.dataset.tensors[0])
    assert not torch.equal(a.dataset.tensors[0], c.dataset.tensors[0])


def test_mixture_centers():
    ring = mixture_centers("ring")
    assert ring.shape == (8, 2)
    torch.testing.assert_close(ring.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(ring[:, 1], ring[:, 0]).remainder(2 * math.pi).sort().values
    torch.testing.assert_close(angles, torch.arange(8) * (2 * math.pi / 8), atol=1e-5, rtol=0)

    grid = mixture_centers("grid")
    assert grid.shape == (25, 2)
    assert len({tuple(p) for p in grid.tolist()}) == 25
    assert set(grid.flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}

    with pytest.raises(ValueError, match="ring"):
        mixture_centers("spiral")


@pytest.mark.parametrize("mixture", ["ring", "grid"])
def test_mode_coverage_on_exact_data_covers_every_mode(mixture):
    modes = MIXTURES[mixture][0]
    points, _ = sample_mixture(mixture, 20_000, torch.Generator().manual_seed(0))
    covered, quality = mode_coverage(points, mixture)
    assert covered == modes
    # In 2-D, P(|x - mu| < 3 std) = 1 - exp(-9/2) = 0.9889.
    assert quality == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    # The centres themselves are all perfect samples.
    assert mode_coverage(mixture_centers(mixture), mixture) == (modes, 1.0)


@pytest.mark.parametrize("mixture", ["ring", "grid"])
def test_mode_coverage_on_a_collapsed_sample_covers_one(mixture):
    centers = mixture_centers(mixture)
    collapsed = centers[3].expand(500, 2) + 0.001 * torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    covered, quality = mode_coverage(collapsed, mixture)
    assert covered == 1
    assert quality == pytest.approx(1.0)


def test_mode_coverage_counts_far_points_as_low_quality():
    far = torch.tensor([[1.0, 1.0], [0.0, 0.0], [10.0, 10.0], [2.0, 0.0]])  # only the last is on a ring mode
    covered, quality = mode_coverage(far, "ring")
    assert covered == 1
    assert quality == pytest.approx(0.25)


def test_mode_coverage_min_fraction():
    centers = mixture_centers("ring")
    # 93 points on mode 0, one on each of the other 7.
    points = torch.cat([centers[:1].expand(93, 2), centers[1:]])
    assert mode_coverage(points, "ring")[0] == 8
    assert mode_coverage(points, "ring", min_fraction=0.05)[0] == 1


def test_toy_unknown_mixture():
    with pytest.raises(ValueError, match="grid"):
        ToyDataModule(mixture="spiral")


def test_mnist_without_a_labels_file_serves_unlabelled_images(tmp_path):
    """A user with the images file only trains an unconditional model; no dummy labels file is needed (issue 25)."""
    raw = write_mnist_idx(tmp_path, "train", n=32)
    (raw / f"{MNIST_FILES['train'][1]}.gz").unlink()
    dm = loaded(tmp_path, split="train", batch_size=8)
    assert len(dm.dataset) == 32 and dm.num_classes == 0
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 28, 28) and (labels == 0).all()


def test_mnist_batch_larger_than_the_split_is_refused(mnist_root):
    from gans.errors import ConfigError

    dm = loaded(mnist_root, split="test", batch_size=33)
    with pytest.raises(ConfigError, match="fewer than batch_size=33.*data.init_args.batch_size"):
        dm.train_dataloader()
