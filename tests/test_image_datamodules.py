"""Image folders and zips (datamodules.images), anime faces with tags, FFHQ, and MNIST's cached path,
all on tiny files written here."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_mnist_idx
from helpers import random_images, write_folder, zip_folder
from PIL import Image

import datamodules.images as images_module
from datamodules import (
    AnimeFacesDataModule,
    FFHQDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
)
from datamodules.anime import BICOLORED, Tags, parse_tags, read_tags
from gans.errors import ConfigError, DataNotFoundError


def loaded(cls=ImageFolderDataModule, **kwargs):
    kwargs = {"num_workers": 0, "cache": "memory", "batch_size": 4, **kwargs}
    dm = cls(**kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def all_images(dm) -> torch.Tensor:
    return dm.real_dataset()[list(range(len(dm.real_dataset())))][0]


def halves(width: int, height: int, horizontal: bool = True) -> Image.Image:
    """Black left (or top) half, white right (or bottom) half."""
    pixels = np.zeros((height, width), dtype=np.uint8)
    if horizontal:
        pixels[:, width // 2 :] = 255
    else:
        pixels[height // 2 :] = 255
    return Image.fromarray(pixels).convert("RGB")


# Batches, crop and resize.


def test_batches_are_float_images_in_minus_one_one(tmp_path):
    dm = loaded(root=str(write_folder(tmp_path / "imgs", n=10, size=(16, 16))), img_resolution=8)
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 10 images, batches of 4, drop_last
    images, labels = batches[0]
    assert images.shape == (4, 3, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (4,) and labels.dtype == torch.int64 and not labels.any()
    assert images.min() >= -1 and images.max() <= 1 and images.min() < -0.5 and images.max() > 0.5
    image, label = dm.real_dataset()[3]
    assert image.shape == (3, 8, 8) and int(label) == 0
    assert dm.data_shape == (3, 8, 8) and dm.num_classes == 0


def test_native_size_is_stored_exactly(tmp_path):
    dm = loaded(root=str(write_folder(tmp_path / "imgs", n=3, size=(8, 8), seed=2)), img_resolution=8)
    expected = torch.from_numpy(random_images(3, (8, 8), seed=2)).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(all_images(dm), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("horizontal", [True, False])
def test_non_square_images_are_centre_cropped(tmp_path, horizontal):
    root = tmp_path / "imgs"
    root.mkdir()
    size = (16, 8) if horizontal else (8, 16)  # the longer side is split into black | white
    halves(*size, horizontal=horizontal).save(root / "a.png")
    image = all_images(loaded(root=str(root), img_resolution=8, batch_size=1))[0]
    black, white = (image[:, :, :4], image[:, :, 4:]) if horizontal else (image[:, :4], image[:, 4:])
    assert torch.all(black == -1) and torch.all(white == 1)


def test_crop_then_resize_with_antialiasing(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    halves(64, 32).save(root / "a.png")  # crop: x 16..48, black | white at x = 32
    image = all_images(loaded(root=str(root), img_resolution=8, batch_size=1))[0]
    assert torch.allclose(image[:, :, :3], torch.tensor(-1.0), atol=0.05)
    assert torch.allclose(image[:, :, 5:], torch.tensor(1.0), atol=0.05)


def test_grayscale(tmp_path):
    dm = loaded(root=str(write_folder(tmp_path / "imgs", n=4)), img_resolution=8, img_channels=1)
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 1, 8, 8) and dm.data_shape == (1, 8, 8)


def test_subset_draws_the_same_random_images_for_a_seed(tmp_path):
    """``subset`` serves n of the images drawn with ``subset_seed`` (not the first n, not the run's RNG), in file order,
    each with its own pixels; another seed draws others; the subset is part of the cache key."""
    root = str(write_folder(tmp_path / "imgs", n=20))
    full = loaded(root=root, img_resolution=8)
    torch.manual_seed(1)
    dm = loaded(root=root, img_resolution=8, subset=6, subset_seed=3, cache="disk", cache_dir=str(tmp_path / "cache"))
    torch.manual_seed(2)
    again = loaded(root=root, img_resolution=8, subset=6, subset_seed=3)
    assert len(dm.real_dataset()) == 6 and dm.names == again.names and dm.names == sorted(dm.names, key=full.names.index)
    assert dm.names != full.names[:6] and set(dm.names) < set(full.names)
    index = [full.names.index(name) for name in dm.names]
    assert torch.equal(all_images(dm), all_images(full)[index])
    assert loaded(root=root, img_resolution=8, subset=6, subset_seed=4).names != dm.names
    assert dm.cache_key() != full.cache_key() != loaded(root=root, img_resolution=8, subset=6, subset_seed=4).cache_key()
    assert loaded(root=root, img_resolution=8, subset=50).names == full.names  # more than there are: all of them
    with pytest.raises(ConfigError, match="subset"):
        ImageFolderDataModule(root=root, subset=-1)


def test_zip_and_folder_give_the_same_images(tmp_path):
    folder = write_folder(tmp_path / "imgs", n=6, size=(20, 12), sub="nested/deeper")
    archive = zip_folder(folder, tmp_path / "imgs.zip")
    from_folder = all_images(loaded(root=str(folder), img_resolution=8))
    from_zip = all_images(loaded(root=str(archive), img_resolution=8))
    assert from_folder.shape == (6, 3, 8, 8)
    assert torch.equal(from_folder, from_zip)


def test_zip_without_cache_in_worker_processes(tmp_path):
    archive = zip_folder(write_folder(tmp_path / "imgs", n=8), tmp_path / "imgs.zip")
    cached = all_images(loaded(root=str(archive), img_resolution=8))
    dm = loaded(root=str(archive), img_resolution=8, cache="none", num_workers=1, batch_size=8)
    assert torch.equal(all_images(dm), cached)
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 8, 8)
    assert sorted(images.sum(dim=(1, 2, 3)).tolist()) == pytest.approx(sorted(cached.sum(dim=(1, 2, 3)).tolist()), abs=1e-3)


# The cache.


def counting_decoder(monkeypatch) -> list[int]:
    calls = [0]
    decode = images_module.decode_image

    def counted(data, channels):
        calls[0] += 1
        return decode(data, channels)

    monkeypatch.setattr(images_module, "decode_image", counted)
    return calls


def test_disk_cache_is_built_once_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "imgs", n=5)
    cache_dir = tmp_path / "cache"
    calls = counting_decoder(monkeypatch)
    first = loaded(root=str(folder), img_resolution=8, cache="disk", cache_dir=str(cache_dir))
    assert calls[0] == 5 and len(list(cache_dir.glob("*.npy"))) == 1

    second = loaded(root=str(folder), img_resolution=8, cache="disk", cache_dir=str(cache_dir))
    assert calls[0] == 5  # read from the cache, nothing decoded
    assert torch.equal(all_images(first), all_images(second))

    Image.fromarray(np.full((16, 16, 3), 255, dtype=np.uint8)).save(folder / "2.png")
    third = loaded(root=str(folder), img_resolution=8, cache="disk", cache_dir=str(cache_dir))
    assert calls[0] == 10
    assert torch.all(all_images(third)[2] == 1) and not torch.equal(all_images(third), all_images(first))
    assert len(list(cache_dir.glob("*.npy"))) == 1  # the stale cache was removed

    loaded(root=str(folder), img_resolution=4, cache="disk", cache_dir=str(cache_dir))
    assert calls[0] == 15  # another setting, another cache
    assert len(list(cache_dir.glob("*.npy"))) == 2


def test_memory_disk_and_no_cache_agree(tmp_path):
    folder = write_folder(tmp_path / "imgs", n=5, size=(24, 20))
    results = [
        all_images(loaded(root=str(folder), img_resolution=8, cache=cache, cache_dir=str(tmp_path / "cache")))
        for cache in ("memory", "disk", "none")
    ]
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_default_cache_dir_is_next_to_the_data_or_in_home(tmp_path, monkeypatch):
    data = tmp_path / "data" / "imgs"
    assert images_module.default_cache_dir(data) == tmp_path / "data" / ".gans-cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GANS_CACHE", raising=False)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o555)  # read-only by its permission bits, even for root (who runs CI)
    try:
        assert images_module.default_cache_dir(shared / "faces.zip") == tmp_path / "home" / ".cache" / "gans"
        assert not (shared / ".gans-cache").exists()
    finally:
        shared.chmod(0o755)
    monkeypatch.setattr(images_module, "writable_dir", lambda path: False)
    assert images_module.default_cache_dir(data) == tmp_path / "home" / ".cache" / "gans"
    monkeypatch.setenv("GANS_CACHE", str(tmp_path / "elsewhere"))  # the one cache root FID's statistics use too
    assert images_module.default_cache_dir(data) == tmp_path / "elsewhere"


# Progressive growing and flips.


def uint8_pyramid(full: torch.Tensor, factor: int) -> torch.Tensor:
    """The defined pyramid level of float images in [-1, 1]: the mean of each factor x factor block of the
    uint8 pixels, rounded half to even (float64 is exact here), served as float like any uint8 image."""
    pixels = torch.round((full.double() + 1) * 127.5)
    level = torch.round(F.avg_pool2d(pixels, factor)).to(torch.uint8)  # torch.round: half to even, like np.rint
    return images_module.to_float(level)


@pytest.mark.parametrize("cache", ["memory", "disk", "none"])
def test_set_stage_serves_the_uint8_pyramid_in_the_new_batch_size(tmp_path, cache):
    folder = write_folder(tmp_path / "imgs", n=12, size=(16, 16))
    dm = loaded(root=str(folder), img_resolution=16, cache=cache, cache_dir=str(tmp_path / "cache"))
    assert (dm.resolution, dm.batch_size) == (16, 4)
    dm.set_stage(4, batch_size=6)
    assert (dm.resolution, dm.batch_size) == (4, 6) and dm.data_shape == (3, 16, 16)
    loader = dm.train_dataloader()
    images, labels = next(iter(loader))
    assert images.shape == (6, 3, 4, 4) and labels.shape == (6,)
    indices = [3, 0, 7, 11]
    full = dm.real_dataset()[indices][0]
    assert full.shape == (4, 3, 16, 16)  # metrics keep the full resolution
    served = loader.dataset[indices][0]
    if cache == "none":  # no cache, no pyramid: pooled on the fly
        assert torch.equal(served, F.avg_pool2d(full, 4))
    else:
        assert torch.equal(served, uint8_pyramid(full, 4))
        assert not torch.equal(served, F.avg_pool2d(full, 4))  # random pixels: some blocks do round
    assert (served - F.avg_pool2d(full, 4)).abs().max() <= 0.5 / 127.5 + 1e-6
    dm.set_stage(8)
    assert dm.batch_size == 6 and next(iter(dm.train_dataloader()))[0].shape == (6, 3, 8, 8)
    for bad in (3, 6, 32, 2):
        with pytest.raises(ConfigError, match="power of two"):
            dm.set_stage(bad)


def test_pyramid_level_rounds_block_means_half_to_even():
    full = np.zeros((1, 1, 4, 4), dtype=np.uint8)
    full[0, 0, :2, :2] = [[0, 1], [0, 1]]  # mean 0.5 -> 0 (even)
    full[0, 0, :2, 2:] = [[1, 2], [1, 2]]  # mean 1.5 -> 2 (even)
    full[0, 0, 2:, :2] = [[3, 3], [3, 4]]  # mean 3.25 -> 3
    full[0, 0, 2:, 2:] = [[254, 255], [255, 255]]  # mean 254.75 -> 255
    out = np.empty((1, 1, 2, 2), dtype=np.uint8)
    images_module.pyramid_level(full, 2, out)
    assert out[0, 0].tolist() == [[0, 2], [3, 255]]
    big = np.random.default_rng(0).integers(0, 256, size=(3, 3, 64, 64), dtype=np.uint8)
    out = np.empty((3, 3, 4, 4), dtype=np.uint8)
    images_module.pyramid_level(big, 4, out)  # four halvings at once, exact: one rounding of the 16x16 block mean
    expected = np.rint(big.reshape(3, 3, 4, 16, 4, 16).astype(np.float64).mean(axis=(3, 5)))
    assert np.array_equal(out, expected.astype(np.uint8))


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_low_stage_does_not_read_full_resolution_rows(tmp_path, monkeypatch, cache):
    dm = loaded(root=str(write_folder(tmp_path / "imgs", n=8)), img_resolution=16, cache=cache, cache_dir=str(tmp_path / "cache"))
    full = dm.dataset.pixels

    def refuse(indices):
        raise AssertionError(f"full-resolution rows {list(indices)} read at a 4x4 stage")

    monkeypatch.setattr(full, "fetch", refuse)
    dm.set_stage(4)
    loader = dm.train_dataloader()
    assert loader.dataset.pixels is not full and len(loader.dataset.pixels) == 8
    assert [images.shape for images, _ in loader] == [(4, 3, 4, 4)] * 2
    with pytest.raises(AssertionError, match="full-resolution rows"):
        dm.real_dataset()[0]  # metrics still read the full resolution


def test_disk_pyramid_level_is_built_once_beside_the_cache(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "imgs", n=6)
    cache_dir = tmp_path / "cache"
    builds = []
    build = images_module.pyramid_level
    monkeypatch.setattr(images_module, "pyramid_level", lambda full, r, out, progress=None: builds.append(r) or build(full, r, out, progress))
    first = loaded(root=str(folder), img_resolution=16, cache="disk", cache_dir=str(cache_dir))
    first.set_stage(4)
    first.train_dataloader()
    first.train_dataloader()
    (main,) = [p for p in cache_dir.glob("*.npy") if "level" not in p.name]
    assert builds == [4] and (cache_dir / f"{main.stem}-level4.npy").is_file()

    second = loaded(root=str(folder), img_resolution=16, cache="disk", cache_dir=str(cache_dir))
    second.set_stage(4)
    served = second.train_dataloader().dataset[list(range(6))][0]
    assert builds == [4]  # reused by a later run
    memory = loaded(root=str(folder), img_resolution=16)
    memory.set_stage(4)
    assert torch.equal(served, memory.train_dataloader().dataset[list(range(6))][0])
    assert builds == [4, 4]  # the memory cache builds its own level

    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(folder / "3.png")
    loaded(root=str(folder), img_resolution=16, cache="disk", cache_dir=str(cache_dir))
    assert not list(cache_dir.glob("*level*"))  # the stale level went with the stale cache


def test_disk_cache_size_is_logged_and_a_large_one_warned_about(tmp_path, monkeypatch, caplog):
    folder = write_folder(tmp_path / "imgs", n=5)
    monkeypatch.setattr(images_module, "LARGE_CACHE_BYTES", 100)
    with caplog.at_level("INFO"), pytest.warns(UserWarning, match=r"will take 960 B of disk.*img_resolution lower.*cache: none"):
        loaded(root=str(folder), img_resolution=8, cache="disk", cache_dir=str(tmp_path / "cache"))
    assert "5 images of 3x8x8 uint8 = 960 B" in caplog.text


def test_xflip_flips_about_half_reproducibly(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    halves(8, 8).save(root / "a.png")
    dm = loaded(root=str(root), img_resolution=8, xflip=True, batch_size=1)
    served = dm.train_dataloader().dataset
    torch.manual_seed(0)
    images = served[[0] * 400][0]
    flipped = images[:, 0, 0, 0] == 1  # white on the left
    assert torch.equal(images[flipped], images[~flipped][:1].flip(-1).expand(int(flipped.sum()), -1, -1, -1))
    assert 0.4 < flipped.float().mean() < 0.6
    torch.manual_seed(0)
    assert torch.equal(served[[0] * 400][0], images)
    assert torch.equal(dm.real_dataset()[0][0], images[~flipped][0])  # real images are never flipped


def test_whole_batches_under_a_distributed_sampler(tmp_path):
    """Lightning swaps in a DistributedSampler under DDP and keeps batch_size and collate_fn: batches stay whole."""
    from torch.utils.data import DataLoader, DistributedSampler

    dm = loaded(root=str(write_folder(tmp_path / "imgs", n=12)), img_resolution=8)
    loader = dm.train_dataloader()
    sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=1)
    ddp = DataLoader(loader.dataset, batch_size=3, sampler=sampler, drop_last=True, collate_fn=loader.collate_fn)
    batches = list(ddp)
    assert len(batches) == 2 and batches[0][0].shape == (3, 3, 8, 8) and batches[0][1].shape == (3,)


# Errors.


def test_bad_img_resolution():
    for bad in (0, 3, 2, 48, 100):
        with pytest.raises(ConfigError, match=f"got {bad}"):
            ImageFolderDataModule(img_resolution=bad)
    with pytest.raises(ConfigError, match="img_channels"):
        ImageFolderDataModule(img_channels=4)
    with pytest.raises(ConfigError, match="cache"):
        ImageFolderDataModule(cache="ram")


def test_missing_root(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError, match="does not exist"):
        loaded(root=str(root))
    with pytest.raises(DataNotFoundError, match="github.com/NVlabs/ffhq-dataset.*--thumbs") as info:
        loaded(FFHQDataModule, root=str(root))
    assert str(root) in str(info.value)
    with pytest.raises(DataNotFoundError, match="MLDS.*images/.*tags.csv"):
        loaded(AnimeFacesDataModule, root=str(root))
    with pytest.raises(DataNotFoundError, match="MLDS"):
        AnimeFacesDataModule(root=str(root), tags_file=str(root / "tags.csv"))


def test_folder_or_zip_without_images(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    with pytest.raises(DataNotFoundError, match="holds no images"):
        loaded(root=str(folder))
    with pytest.raises(DataNotFoundError, match="zip .* holds no images"):
        loaded(root=str(zip_folder(folder, tmp_path / "empty.zip")))


def test_images_smaller_than_img_resolution(tmp_path):
    folder = write_folder(tmp_path / "imgs", n=2, size=(89, 109))
    for cache in ("memory", "none"):
        with pytest.raises(ConfigError, match="is 89x109 px, smaller than img_resolution=128.* 64 or lower"):
            loaded(root=str(folder), img_resolution=128, cache=cache)


def test_undecodable_files_are_skipped_with_one_warning(tmp_path):
    folder = write_folder(tmp_path / "imgs", n=4)
    for name in ("bad1.png", "bad2.jpg"):
        (folder / name).write_bytes(b"not an image")
    for cache in ("memory", "disk", "none"):
        with pytest.warns(UserWarning, match="Skipped 2 of 6 files.*bad1.png, bad2.jpg") as record:
            dm = loaded(root=str(folder), img_resolution=8, cache=cache, cache_dir=str(tmp_path / "cache"))
        assert len([w for w in record if "Skipped" in str(w.message)]) == 1
        assert len(dm.real_dataset()) == 4 and "bad1.png" not in dm.names


def test_decompression_bombs_are_skipped_like_undecodable_files(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "imgs", n=4, size=(8, 8))
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(folder / "bomb.png")  # 256 px > 2 x 100: PIL raises
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(folder / "big.png")  # 144 px > 100: PIL warns
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for cache in ("memory", "disk", "none"):
        with pytest.warns(UserWarning, match="Skipped 2 of 6 files.*big.png, bomb.png") as record:
            dm = loaded(root=str(folder), img_resolution=8, cache=cache, cache_dir=str(tmp_path / "cache"))
        assert [str(w.message)[:7] for w in record] == ["Skipped"]  # no DecompressionBombWarning of its own
        assert len(dm.real_dataset()) == 4


def test_only_undecodable_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"broken")
    with pytest.raises(DataNotFoundError, match="None of the 1 image files"):
        loaded(root=str(folder), img_resolution=8)


def test_fewer_images_than_a_batch(tmp_path):
    dm = loaded(root=str(write_folder(tmp_path / "imgs", n=3)), img_resolution=8, batch_size=4)
    with pytest.raises(ConfigError, match="3 usable images, fewer than batch_size=4"):
        dm.train_dataloader()


# Anime faces.


def test_parse_tags():
    assert parse_tags("blonde hair blue eyes") == Tags(("blonde",), ("blue",))
    assert parse_tags(" Blue Eyes ,  red hair  ") == Tags(("red",), ("blue",))
    assert parse_tags("long hair red hair bicolored eyes").hair == ("long", "red")
    tags = parse_tags("pink hair bicolored eyes")
    assert tags.eyes == (BICOLORED,) and tags.bicolored and not tags.ambiguous
    two = parse_tags("pink hair blue eyes red eyes")
    assert two.bicolored and two.ambiguous
    assert parse_tags("green hair").untagged and parse_tags("").untagged
    assert parse_tags("aqua hair aqua hair aqua eyes") == Tags(("aqua",), ("aqua",))


def write_anime(root: Path, lines: list[str], n: int = 8) -> Path:
    write_folder(root, n=n, size=(8, 8), sub="images")
    (root / "tags.csv").write_text("\n".join(lines) + "\n")
    return root / "tags.csv"


TAGS = [
    "0,blonde hair blue eyes",
    "1,red hair green eyes",
    "2,blonde hair green eyes",
    "3,red hair blonde hair blue eyes",  # ambiguous hair
    "4,red hair bicolored eyes",
    "5,blue eyes",  # no hair colour
    "6,red hair blue eyes red eyes",  # two eye colours
]  # 7 has no line


def anime(root: Path, tags: Path | None, **kwargs) -> AnimeFacesDataModule:
    return loaded(AnimeFacesDataModule, root=str(root), tags_file=str(tags) if tags else None, img_resolution=8, batch_size=2, **kwargs)


def test_anime_labels_follow_the_tags_file(tmp_path):
    tags = write_anime(tmp_path, TAGS)
    dm = anime(tmp_path, tags)  # the report's cleaning: keep 0, 1, 2
    assert dm.class_names == [["blonde", "red"], ["blue", "green"]]
    assert dm.num_classes == [2, 2]
    assert [Path(name).stem for name in dm.names] == ["0", "1", "2"]
    labels = torch.stack([dm.real_dataset()[i][1] for i in range(3)])
    assert labels.tolist() == [[0, 0], [1, 1], [0, 1]]
    images, batch_labels = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 8, 8) and batch_labels.shape == (2, 2) and batch_labels.dtype == torch.int64
    assert dm.multi_hot(labels).tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 1]]


def test_anime_subset_keeps_each_images_labels(tmp_path):
    tags = write_anime(tmp_path, TAGS)
    full, part = anime(tmp_path, tags), anime(tmp_path, tags, subset=2, subset_seed=0)
    assert len(part.names) == 2 and set(part.names) < set(full.names)
    for i, name in enumerate(part.names):
        assert torch.equal(part.real_dataset()[i][1], full.real_dataset()[full.names.index(name)][1])


def test_anime_cleaning_options(tmp_path):
    tags = write_anime(tmp_path, TAGS)
    keep_bicolored = anime(tmp_path, tags, drop_bicolored=False)
    assert [Path(n).stem for n in keep_bicolored.names] == ["0", "1", "2", "4"]
    assert keep_bicolored.class_names[1] == ["bicolored", "blue", "green"]
    assert keep_bicolored.real_dataset()[3][1].tolist() == [1, 0]  # red hair, bicolored eyes

    with pytest.raises(ConfigError, match="1 images have several hair colours .*images/3.png.*drop_ambiguous"):
        anime(tmp_path, tags, drop_ambiguous=False)
    # Only red hair counts: 3 is no longer ambiguous, blonde images become untagged; two eye colours are "bicolored".
    red = anime(tmp_path, tags, drop_ambiguous=False, drop_bicolored=False, hair_colors=["red"])
    assert [Path(n).stem for n in red.names] == ["1", "3", "4", "6"]
    assert red.class_names == [["red"], ["bicolored", "blue", "green"]]
    assert [red.real_dataset()[i][1].tolist() for i in range(4)] == [[0, 2], [0, 1], [0, 0], [0, 0]]
    with pytest.raises(ConfigError, match="2 images have no hair or eye colour .*5.png, images/7.png.*drop_untagged"):
        anime(tmp_path, tags, drop_untagged=False)

    fixed = anime(tmp_path, tags, hair_colors=["red", "blonde"], eye_colors=["green", "blue"])
    assert fixed.class_names == [["red", "blonde"], ["green", "blue"]]
    assert fixed.real_dataset()[0][1].tolist() == [1, 1]  # blonde hair, blue eyes


@pytest.mark.parametrize("cache", ["memory", "disk", "none"])
def test_anime_classes_come_from_the_images_kept(tmp_path, cache):
    tags = write_anime(tmp_path, TAGS)
    (tmp_path / "images" / "1.png").write_bytes(b"broken")  # the only kept image with red hair
    with pytest.warns(UserWarning, match="Skipped 1 of"):
        dm = anime(tmp_path, tags, cache=cache, cache_dir=str(tmp_path / "cache"))
    assert [Path(n).stem for n in dm.names] == ["0", "2"]
    assert dm.class_names == [["blonde"], ["blue", "green"]] and dm.num_classes == [1, 2]  # no empty "red" class
    assert [dm.real_dataset()[i][1].tolist() for i in range(2)] == [[0, 0], [0, 1]]
    # The disk cache is reused now: the skipped file was reported when it was built.
    with pytest.warns(UserWarning, match="Skipped 1 of") if cache != "disk" else contextlib.nullcontext():
        fixed = anime(tmp_path, tags, cache=cache, cache_dir=str(tmp_path / "cache"), hair_colors=["red", "blonde"])
    assert fixed.class_names == [["red", "blonde"], ["blue", "green"]]  # given classes are kept
    assert [fixed.real_dataset()[i][1].tolist() for i in range(2)] == [[1, 0], [1, 1]]


def test_anime_refuses_two_images_with_one_stem(tmp_path):
    tags = write_anime(tmp_path, TAGS)
    (tmp_path / "more").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "more" / "1.jpg")
    with pytest.raises(ConfigError, match=r"images/1.png and more/1.jpg .* same file stem, and .*tags.csv labels images by stem"):
        anime(tmp_path, tags)
    assert len(anime(tmp_path, None).real_dataset()) == 9  # unconditional: stems do not matter


def test_anime_kept_bicolored_eyes_need_the_bicolored_class(tmp_path):
    tags = write_anime(tmp_path, TAGS)
    with pytest.raises(ConfigError, match="drop_bicolored is false.*lacks it: add bicolored to data.init_args.eye_colors"):
        AnimeFacesDataModule(root=str(tmp_path), tags_file=str(tags), drop_bicolored=False, eye_colors=["blue", "green"])
    dm = anime(tmp_path, tags, drop_bicolored=False, eye_colors=["blue", "green", "bicolored"])
    assert dm.class_names[1] == ["blue", "green", "bicolored"] and dm.real_dataset()[3][1].tolist() == [1, 2]


def test_anime_unconditional_and_augmented(tmp_path):
    write_anime(tmp_path, TAGS)
    dm = anime(tmp_path, None, rotate_degrees=5, xflip=True)
    assert dm.num_classes == 0 and len(dm.real_dataset()) == 8 and dm.class_names == [[], []]
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 8, 8) and not labels.any()
    assert images.min() >= -1 and images.max() <= 1
    with pytest.raises(ConfigError, match="rotate_degrees"):
        AnimeFacesDataModule(rotate_degrees=-1)


def test_anime_rotation_fills_corners_from_the_border(tmp_path):
    from datamodules.anime import EdgeRotation

    image = torch.ones(3, 16, 16)
    torch.manual_seed(0)
    rotated = EdgeRotation(5)(image)
    assert rotated.shape == (3, 16, 16) and torch.allclose(rotated, image)  # no dark corners
    ramp = torch.linspace(-1, 1, 16).expand(3, 16, 16)
    assert not torch.allclose(EdgeRotation(10)(ramp), ramp)


def test_read_tags_skips_a_header_and_merges_repeated_ids(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("id,tags\n\n0,red hair\n0,blue eyes\n1,aqua hair aqua eyes")
    assert read_tags(path) == {"0": Tags(("red",), ("blue",)), "1": Tags(("aqua",), ("aqua",))}
    path.write_text("0 red hair blue eyes\n")
    with pytest.raises(DataNotFoundError, match="line 1"):
        read_tags(path)


def test_anime_tag_file_errors(tmp_path):
    tags = write_anime(tmp_path, TAGS, n=8)
    with pytest.raises(DataNotFoundError, match="Tags file .*missing.csv not found.*set it to null"):
        AnimeFacesDataModule(root=str(tmp_path), tags_file=str(tmp_path / "missing.csv"))
    tags.write_text("\n".join(TAGS + ["8,red hair blue eyes", "9,red hair blue eyes"]))
    with pytest.raises(DataNotFoundError, match="tags 2 ids with no image .*8, 9"):
        anime(tmp_path, tags)
    tags.write_text("0,red hair\n1,blue eyes\n")
    with pytest.raises(DataNotFoundError, match="no usable"):
        anime(tmp_path, tags)
    tags.write_text("0,red hair blue eyes\n")
    dm = AnimeFacesDataModule(root=str(tmp_path), tags_file=str(tags), hair_colors=["black"], eye_colors=["blue"])
    with pytest.raises(DataNotFoundError, match="left after cleaning"):
        dm.select([f"images/{i}.png" for i in range(8)])


# The cache key of FID's real statistics.


def test_cache_key_follows_the_folder_contents_and_the_tags(tmp_path):
    folder = write_folder(tmp_path / "imgs", n=5)
    dm = ImageFolderDataModule(root=str(folder), img_resolution=8, num_workers=0, cache="memory")
    before_setup = dm.cache_key()
    key = loaded(root=str(folder), img_resolution=8).cache_key()
    assert key == before_setup and key.startswith("ImageFolderDataModule-3x8x8-")
    assert loaded(root=str(folder), img_resolution=8, batch_size=2, cache="none").cache_key() == key  # loading settings
    assert loaded(root=str(folder), img_resolution=4).cache_key() != key
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(folder / "5.png")
    added = loaded(root=str(folder), img_resolution=8).cache_key()
    assert added != key
    (folder / "5.png").unlink()
    assert loaded(root=str(folder), img_resolution=8).cache_key() == key

    tags = write_anime(tmp_path / "anime", TAGS)
    anime_key = anime(tmp_path / "anime", tags).cache_key()
    assert anime(tmp_path / "anime", tags).cache_key() == anime_key
    tags.write_text("# edited\n" + "\n".join(TAGS) + "\n")
    assert anime(tmp_path / "anime", tags).cache_key() != anime_key  # the same images, another tags file


# MNIST's cached tensor against the per-image transforms.


@pytest.mark.parametrize("img_resolution", [28, 32, 16, 64])
def test_mnist_cached_tensor_matches_the_pil_transforms(tmp_path, img_resolution):
    root = tmp_path / "mnist"
    write_mnist_idx(root, "test", n=6, seed=7)
    dm = MNISTDataModule(root=str(root), split="test", img_resolution=img_resolution, num_workers=0, download=False)
    dm.setup("fit")
    from datamodules.mnist import MNISTSplit

    reference = MNISTSplit(root, "test", download=False, transform=dm.transform())
    for i in range(6):
        image, label = dm.dataset[i]
        expected, expected_label = reference[i]
        assert image.shape == (1, img_resolution, img_resolution)
        torch.testing.assert_close(image, expected, atol=1 / 255, rtol=0)
        assert int(label) == expected_label


def test_malformed_tag_lines_are_counted_in_one_warning(tmp_path):
    """Lines dropped for a typo'd key, a missing eye colour or a colour outside the list: one warning, with the count
    and the first such line (issue 25)."""
    lines = ["0,blonde hair blue eyes", "1,red hiar green eyes", "2,blonde hair", "3,pnk hair blue eyes", "4,red hair green eyes"]
    tags = write_anime(tmp_path, lines, n=5)
    with pytest.warns(UserWarning) as caught:
        AnimeFacesDataModule(root=str(tmp_path), tags_file=str(tags), hair_colors=["blonde", "red"])
    messages = [str(w.message) for w in caught if "tags" in str(w.message)]
    assert len(messages) == 1, messages
    assert "3 of 5" in messages[0] and "line 2" in messages[0] and "red hiar green eyes" in messages[0], messages[0]


def test_tags_file_not_utf8_is_a_data_error(tmp_path):
    tags = tmp_path / "tags.csv"
    tags.write_bytes("0,r\xf6d hair blue eyes\n".encode("latin-1"))
    with pytest.raises(DataNotFoundError, match="UTF-8") as refused:
        read_tags(tags)
    assert "\n" not in str(refused.value)
