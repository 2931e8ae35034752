"""The image-to-image datamodules: pix2pix pairs (A|B files), CycleGAN's unpaired domains (trainA/trainB folders or
two datamodules), CoGAN's MNIST domain pairs; tiny files in the real formats, the shared edge pairs when present."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_mnist_idx
from PIL import Image
from torchvision.transforms import v2

from datamodules import (
    MNISTDomainsDataModule,
    PairedImageDataModule,
    UnpairedImageDataModule,
)
from datamodules.images import ImageFolderDataModule, to_float
from datamodules.mnist_domains import edge_digits
from datamodules.sampling import UnpairedShuffle
from gans.errors import ConfigError, DataNotFoundError

EDGE_PAIRS = Path(__file__).parents[2] / "shared" / "data" / "edges-pairs"


def write_pairs(folder: Path, halves: np.ndarray) -> None:
    """``halves`` [n, 2, H, W, 3] uint8: file ``i.png`` is halves[i, 0] | halves[i, 1], side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (a, b) in enumerate(halves):
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i}.png")


def random_halves(n: int, side: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 2, side, side, 3), dtype=np.uint8)


def reference(half: np.ndarray, size: int) -> torch.Tensor:
    """One half resized as the jitter resizes it (bicubic, antialiased), in [-1, 1]: ``[3, size, size]``."""
    image = torch.from_numpy(half).permute(2, 0, 1).contiguous()
    resized = v2.functional.resize(image, [size, size], interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
    return to_float(resized)


def placement(image: torch.Tensor, full: torch.Tensor) -> tuple[int, int, bool]:
    """Where ``image`` [C, c, c] sits in ``full`` [C, L, L]: the crop offset and whether it is mirrored."""
    crop = image.shape[-1]
    found = [
        (top, left, mirrored)
        for top in range(full.shape[-1] - crop + 1)
        for left in range(full.shape[-1] - crop + 1)
        for mirrored in (False, True)
        if torch.equal(image, full[:, top : top + crop, left : left + crop].flip(-1) if mirrored else full[:, top : top + crop, left : left + crop])
    ]
    assert len(found) == 1, found
    return found[0]


def paired(root: Path, **overrides) -> PairedImageDataModule:
    settings = dict(load_size=12, crop_size=8, batch_size=2, num_workers=0)
    dm = PairedImageDataModule(str(root), **{**settings, **overrides})
    dm.setup("fit")
    return dm


# pix2pix pairs.


def test_paired_batches_are_two_image_tensors_in_range(tmp_path: Path) -> None:
    write_pairs(tmp_path / "train", random_halves(4))
    dm = paired(tmp_path)
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    for batch in batches:
        assert isinstance(batch, tuple) and len(batch) == 2
        for images in batch:
            assert images.shape == (2, *dm.data_shape) == (2, 3, 8, 8) and images.dtype == torch.float32
            assert images.min() >= -1 and images.max() <= 1


def test_jitter_crops_and_flips_both_halves_alike(tmp_path: Path) -> None:
    """Each a and b is a window of its half resized to load_size, at the same offset and equally mirrored, and the
    offsets and flips really vary (A and B are independent random images, so no coincidence can pass)."""
    halves = random_halves(3)
    write_pairs(tmp_path / "train", halves)
    dm = paired(tmp_path, batch_size=3)
    full = {i: (reference(halves[i, 0], 12), reference(halves[i, 1], 12)) for i in range(3)}
    seen = set()
    torch.manual_seed(0)
    for _ in range(8):
        for i, (a, b) in enumerate(zip(*dm.dataset.__getitems__([0, 1, 2]))):
            where = placement(a, full[i][0])
            assert placement(b, full[i][1]) == where
            seen.add(where)
    assert {mirrored for _, _, mirrored in seen} == {False, True}
    assert len({(top, left) for top, left, _ in seen}) > 4


def test_no_flip_and_full_crop_is_the_plain_resize(tmp_path: Path) -> None:
    halves = random_halves(2)
    write_pairs(tmp_path / "train", halves)
    dm = paired(tmp_path, load_size=8, crop_size=8, flip=False)
    a, b = dm.dataset.__getitems__([0, 1])
    assert torch.equal(a[1], reference(halves[1, 0], 8)) and torch.equal(b[1], reference(halves[1, 1], 8))


def test_direction_btoa_swaps_input_and_target(tmp_path: Path) -> None:
    halves = np.zeros((2, 2, 8, 8, 3), dtype=np.uint8)
    halves[:, 0], halves[:, 1] = 200, 50  # left half bright, right half dark
    write_pairs(tmp_path / "train", halves)
    bright, dark = 200 / 127.5 - 1, 50 / 127.5 - 1
    a, b = next(iter(paired(tmp_path, direction="AtoB").train_dataloader()))
    assert torch.allclose(a, torch.full_like(a, bright)) and torch.allclose(b, torch.full_like(b, dark))
    a, b = next(iter(paired(tmp_path, direction="BtoA").train_dataloader()))
    assert torch.allclose(a, torch.full_like(a, dark)) and torch.allclose(b, torch.full_like(b, bright))


def test_held_out_pairs_are_the_first_val_pairs_unjittered(tmp_path: Path) -> None:
    write_pairs(tmp_path / "train", random_halves(2, seed=1))
    val = random_halves(3, seed=2)
    write_pairs(tmp_path / "val", val)
    dm = PairedImageDataModule(str(tmp_path), direction="BtoA", load_size=12, crop_size=8, num_workers=0)  # no setup needed
    a, b = dm.held_out_pairs(2)
    assert a.shape == b.shape == (2, 3, 8, 8)
    for i in range(2):  # BtoA: a is the right half
        assert torch.equal(a[i], reference(val[i, 1], 8)) and torch.equal(b[i], reference(val[i, 0], 8))
    again = dm.held_out_pairs(2)
    assert torch.equal(again[0], a) and torch.equal(again[1], b)
    assert dm.held_out_pairs(10)[0].shape[0] == 3  # all the split holds
    dm.setup("fit")
    target, label = dm.real_dataset()[1]  # the training targets, unjittered
    assert label == 0 and target.shape == (3, 8, 8)


def test_held_out_pairs_fall_back_to_the_training_split(tmp_path: Path) -> None:
    train = random_halves(2, seed=3)
    write_pairs(tmp_path / "train", train)
    dm = PairedImageDataModule(str(tmp_path), load_size=8, crop_size=8, num_workers=0)
    with pytest.warns(UserWarning, match="training split"):
        a, _ = dm.held_out_pairs(1)
    assert torch.equal(a[0], reference(train[0, 0], 8))


@pytest.mark.skipif(not EDGE_PAIRS.is_dir(), reason="needs ../shared/data/edges-pairs")
def test_the_real_edge_pairs_load() -> None:
    """10 + 10 pairs of photo | edges at 512x256: BtoA gives grayscale edge maps as inputs, colour photos as targets."""
    dm = PairedImageDataModule(str(EDGE_PAIRS), direction="BtoA", load_size=36, crop_size=32, num_workers=0, batch_size=5)
    dm.setup("fit")
    assert len(dm.dataset) == 10
    a, b = next(iter(dm.train_dataloader()))
    assert a.shape == b.shape == (5, 3, 32, 32)
    a, b = dm.held_out_pairs(10)
    assert a.shape[0] == 10
    colour_spread = lambda x: (x.amax(1) - x.amin(1)).mean((1, 2))  # noqa: E731
    assert (colour_spread(a) == 0).all() and (colour_spread(b) > 0.005).all()


@pytest.mark.parametrize(
    "layout, settings, error, message",
    [
        (None, {}, DataNotFoundError, "No dataset at .*train/ and <root>/val/.*facades.*edges2shoes.*download_pix2pix_dataset.sh"),
        ("val", {}, DataNotFoundError, r"No train/ folder in .* \(found: val\).*A\|B"),
        ("empty", {}, DataNotFoundError, "holds no images"),
        ("square", {}, ConfigError, r"not twice as wide as high \(e.g. 0.png \(8x8\)\): expected A\|B side by side"),
        ("pairs", {"direction": "AtB"}, ConfigError, "Unknown direction 'AtB'"),
        ("pairs", {"load_size": 8, "crop_size": 12}, ConfigError, "crop_size=12 is larger than load_size=8"),
        ("pairs", {"batch_size": 3}, ConfigError, "2 usable pairs, fewer than batch_size=3"),
    ],
)
def test_paired_errors_say_what_is_expected(tmp_path: Path, layout, settings, error, message) -> None:
    root = tmp_path / "data"
    if layout == "val":
        write_pairs(root / "val", random_halves(1))
    elif layout == "empty":
        (root / "train").mkdir(parents=True)
    elif layout == "square":
        (root / "train").mkdir(parents=True)
        Image.fromarray(random_halves(1, side=8)[0, 0]).save(root / "train" / "0.png")
    elif layout == "pairs":
        write_pairs(root / "train", random_halves(2))
    with pytest.raises(error, match=message):
        dm = PairedImageDataModule(str(root), **{"load_size": 12, "crop_size": 8, "num_workers": 0, **settings})
        dm.prepare_data()
        dm.setup("fit")
        dm.train_dataloader()


# CycleGAN's unpaired domains.


def write_colours(folder: Path, values: list[int], side: int = 10) -> None:
    """One flat grey image per value, named by its value: images that identify themselves after any jitter."""
    folder.mkdir(parents=True, exist_ok=True)
    for value in values:
        Image.fromarray(np.full((side, side, 3), value, dtype=np.uint8)).save(folder / f"{value}.png")


def grey_level(images: torch.Tensor) -> list[int]:
    return [round(float((image.mean() + 1) * 127.5)) for image in images]


def test_unpaired_epoch_is_the_larger_domain_with_b_drawn_independently(tmp_path: Path) -> None:
    a_values, b_values = [10, 40, 70, 100, 130], [160, 190, 220]
    write_colours(tmp_path / "trainA", a_values)
    write_colours(tmp_path / "trainB", b_values)
    dm = UnpairedImageDataModule(str(tmp_path), load_size=8, crop_size=8, num_workers=0, batch_size=1)
    dm.setup("fit")
    assert dm.data_shape == (3, 8, 8)
    loader = dm.train_dataloader()
    partners, b_seen = defaultdict(set), Counter()
    for epoch in range(6):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == 5  # max(5, 3)
        a_epoch = [grey_level(a)[0] for a, _ in batches]
        assert sorted(a_epoch) == a_values  # every A image once per epoch
        for a, b in batches:
            assert a.shape == b.shape == (1, 3, 8, 8)
            partners[grey_level(a)[0]].add(grey_level(b)[0])
            b_seen[grey_level(b)[0]] += 1
    assert set(b_seen) == set(b_values)
    assert all(len(found) > 1 for found in partners.values())  # no fixed partner: B is not aligned with A


def test_unpaired_shuffle_is_seeded_per_epoch() -> None:
    sampler = UnpairedShuffle(3, 7, seed=5)
    first = list(sampler)
    assert len(first) == len(sampler) == 7 and list(sampler) == first
    assert Counter(a for a, _ in first) == Counter({0: 3, 1: 2, 2: 2})  # permutation of range(7) mod 3
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_unpaired_shuffle_shards_under_lightnings_ddp_wrapper() -> None:
    """Under DDP Lightning wraps the sampler in DistributedSamplerWrapper: the processes split one epoch's pairs."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    shards = []
    for rank in range(2):
        wrapper = DistributedSamplerWrapper(UnpairedShuffle(4, 6, seed=1), num_replicas=2, rank=rank, shuffle=False)
        wrapper.set_epoch(3)
        shards.append(list(wrapper))
    epoch = UnpairedShuffle(4, 6, seed=1)
    epoch.set_epoch(3)
    assert sorted(shards[0] + shards[1]) == sorted(epoch) and len(shards[0]) == len(shards[1]) == 3


def test_unpaired_jitter_is_per_image(tmp_path: Path) -> None:
    """The same asymmetric image in both domains: A and B are flipped independently, so they sometimes disagree."""
    half = np.zeros((8, 8, 3), dtype=np.uint8)
    half[:, :4] = 255
    for domain in ("trainA", "trainB"):
        (tmp_path / domain).mkdir()
        Image.fromarray(half).save(tmp_path / domain / "0.png")
    dm = UnpairedImageDataModule(str(tmp_path), load_size=8, crop_size=8, num_workers=0)
    dm.setup("fit")
    torch.manual_seed(0)
    agree = [torch.equal(*dm.dataset[(0, 0)]) for _ in range(20)]
    assert True in agree and False in agree


def test_unpaired_held_out_images_come_from_the_test_folders(tmp_path: Path) -> None:
    write_colours(tmp_path / "trainA", [10, 20])
    write_colours(tmp_path / "trainB", [30, 40])
    write_colours(tmp_path / "testA", [50, 60, 70])
    write_colours(tmp_path / "testB", [80])
    dm = UnpairedImageDataModule(str(tmp_path), load_size=12, crop_size=8, num_workers=0)
    a, b = dm.held_out_pairs(2)
    assert grey_level(a) == [50, 60] and grey_level(b) == [80]
    assert a.shape[1:] == dm.data_shape


def test_two_datamodules_as_domains_through_the_cli_yaml(tmp_path: Path) -> None:
    """The nested form in a config (class_path/init_args under data.init_args.domain_a), parsed by gans.cli: the
    domains' own datamodules load the images, their labels are dropped, batches are (a, b) at their shape."""
    from gans.cli import cli

    write_colours(tmp_path / "faces", [10, 20, 30], side=16)
    write_colours(tmp_path / "anime" / "images", [200, 210], side=16)
    config = tmp_path / "face2anime.yaml"
    config.write_text(
        f"""
seed_everything: 0
trainer: {{accelerator: cpu, logger: false, enable_checkpointing: false, default_root_dir: {tmp_path}}}
model:
  class_path: gans.GAN
  init_args: {{data_shape: [2], z_dim: 2, g_hidden: [4], d_hidden: [4]}}
data:
  class_path: datamodules.UnpairedImageDataModule
  init_args:
    batch_size: 2
    num_workers: 0
    domain_a:
      class_path: datamodules.ImageFolderDataModule
      init_args: {{root: {tmp_path / 'faces'}, img_resolution: 8, cache: memory, num_workers: 0}}
    domain_b:
      class_path: datamodules.AnimeFacesDataModule
      init_args: {{root: {tmp_path / 'anime'}, img_resolution: 8, cache: memory, num_workers: 0}}
"""
    )
    dm = cli(["--config", str(config)], run=False).datamodule
    assert isinstance(dm, UnpairedImageDataModule) and type(dm.domain_b).__name__ == "AnimeFacesDataModule"
    assert isinstance(dm.domain_a, ImageFolderDataModule) and dm.data_shape == (3, 8, 8)
    assert "domain_a" not in dm.hparams  # checkpoints keep plain hyperparameters, not datamodule objects
    # Each domain keeps its own hyperparameters (LightningCLI hands every nested datamodule the data config).
    assert dm.domain_a.hparams.root == str(tmp_path / "faces") and dm.domain_b.hparams.cache == "memory"
    dm.prepare_data()
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 1  # max(3, 2) pairs, batches of 2, the last one dropped
    a, b = batches[0]
    assert a.shape == b.shape == (2, 3, 8, 8)
    assert set(grey_level(a)) <= {10, 20, 30} and set(grey_level(b)) <= {200, 210}
    held_a, held_b = dm.held_out_pairs(8)
    assert grey_level(held_a) == [10, 20, 30] and grey_level(held_b) == [200, 210]


def folder_domain(root: Path, resolution: int = 8, channels: int = 3) -> ImageFolderDataModule:
    return ImageFolderDataModule(str(root), img_resolution=resolution, img_channels=channels, cache="memory", num_workers=0)


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("no trainB", DataNotFoundError, r"No trainB/ folder in .* \(found: trainA\).*trainA/ and <root>/trainB/.*horse2zebra"),
        ("empty trainB", DataNotFoundError, r"trainB holds no images"),
        ("empty domain", DataNotFoundError, r"holds no images"),
        ("both", ConfigError, "either data.init_args.root .* or domain_a and domain_b"),
        ("neither", ConfigError, "No data: set data.init_args.root"),
        ("one domain", ConfigError, "No data: set data.init_args.root"),
        ("shapes", ConfigError, r"differ in shape: ImageFolderDataModule gives \(3, 8, 8\), ImageFolderDataModule \(1, 8, 8\)"),
        ("load only", ConfigError, "Set both load_size and crop_size"),
    ],
)
def test_unpaired_errors_name_the_problem(tmp_path: Path, case: str, error, message: str) -> None:
    root = tmp_path / "data"
    write_colours(root / "trainA", [10])
    if case == "empty trainB":
        (root / "trainB").mkdir()
    (tmp_path / "empty").mkdir()
    faces = folder_domain(root / "trainA")
    arguments = {
        "no trainB": dict(root=str(root)),
        "empty trainB": dict(root=str(root)),
        "empty domain": dict(domain_a=faces, domain_b=folder_domain(tmp_path / "empty")),
        "both": dict(root=str(root), domain_a=faces, domain_b=faces),
        "neither": dict(),
        "one domain": dict(domain_a=faces),
        "shapes": dict(domain_a=faces, domain_b=folder_domain(root / "trainA", channels=1)),
        "load only": dict(domain_a=faces, domain_b=faces, load_size=10),
    }[case]
    with pytest.raises(error, match=message):
        dm = UnpairedImageDataModule(**arguments, num_workers=0)
        dm.prepare_data()
        dm.setup("fit")


# CoGAN's MNIST domains.


def test_edge_digit_of_a_hand_example() -> None:
    """dilate(x, 3x3) - x: a lone pixel becomes its 8-neighbour ring; a pixel next to a brighter one gets the difference."""
    digit = torch.zeros(1, 5, 6, dtype=torch.uint8)
    digit[0, 2, 2], digit[0, 2, 3] = 100, 250
    expected = torch.tensor(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 250, 250, 250, 250, 0],
            [0, 250, 150, 0, 250, 0],
            [0, 250, 250, 250, 250, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=torch.uint8,
    )
    expected[1:4, 1] = 100  # the column left of the pair sees only the 100
    assert torch.equal(edge_digits(digit)[0], expected)


def mnist_domains(tmp_path: Path, variant: str, digits: np.ndarray, **overrides) -> MNISTDomainsDataModule:
    write_mnist_idx(tmp_path, "train", images=digits)
    dm = MNISTDomainsDataModule(variant, root=str(tmp_path), download=False, batch_size=4, num_workers=0, **overrides)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("variant", ["edges", "negative"])
def test_mnist_domains_are_disjoint_halves_transformed(tmp_path: Path, variant: str) -> None:
    digits = np.random.default_rng(0).integers(0, 256, size=(21, 28, 28), dtype=np.uint8)
    dm = mnist_domains(tmp_path, variant, digits)
    a_ids, b_ids = dm.indices_a.tolist(), dm.indices_b.tolist()
    assert len(a_ids) == 10 and len(b_ids) == 11 and sorted(a_ids + b_ids) == list(range(21))  # disjoint, all used
    a, b = dm.held_out_pairs()
    original = torch.from_numpy(digits)
    assert torch.equal(a, to_float(original[a_ids][:, None]))
    expected_b = edge_digits(original[b_ids]) if variant == "edges" else 255 - original[b_ids]
    assert torch.equal(b, to_float(expected_b[:, None]))
    if variant == "negative":
        assert torch.allclose(b, -to_float(original[b_ids][:, None]), atol=1e-6)  # 1 - x in [0, 1] is -x in [-1, 1]
    batches = list(dm.train_dataloader())
    assert len(batches) == 2 and all(x.shape == (4, 1, 28, 28) for batch in batches for x in batch)  # 11 pairs, batches of 4
    assert dm.num_classes == 0 and dm.data_shape == (1, 28, 28)


def test_negative_digits_padded_to_32_have_a_white_border(tmp_path: Path) -> None:
    dm = mnist_domains(tmp_path, "negative", np.zeros((4, 28, 28), dtype=np.uint8), img_resolution=32)
    a, b = dm.held_out_pairs(2)
    assert a.shape == (2, 1, 32, 32) and (a == -1).all() and (b == 1).all()


def test_mnist_domains_reject_an_unknown_variant() -> None:
    with pytest.raises(ConfigError, match="Unknown variant 'edge'.*'edges'"):
        MNISTDomainsDataModule("edge")
