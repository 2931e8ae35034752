"""Image folders and zips, decoded once into a uint8 cache, served as batches in [-1, 1].

The pipeline: list the images of a folder (recursively) or a zip, centre-crop each to a square
(its shorter side), resize it to ``img_resolution`` with Lanczos antialiasing, and store all of
them as one uint8 array ``[N, C, R, R]``, in memory or as a memory-mapped ``.npy`` file that
later runs reuse. Batches are cut from that array, converted to float and flipped.

Progressive growing (Karras et al. 2018, arXiv:1710.10196, section 2: "the real images are
downscaled to match the current resolution") trains on lower resolutions first. A stage ``r < R``
is served from a uint8 *pyramid level*: an array ``[N, C, r, r]`` built once, lazily, from the
full-resolution cache (:func:`pyramid_level`), so a 4x4 stage reads 16 values per channel and
image, not ``R * R``. Each level-``r`` pixel is the mean of its ``(R/r) x (R/r)`` block of
full-resolution pixels rounded to the nearest integer, ties to even: the level the official
ProGAN ``dataset_tool.py`` stores (``TFRecordExporter.add_image`` writes one record per level;
each level is the 2x2 average of the level above kept in float32, and only the stored copy is
rounded with ``np.rint``), since that float chain is exact for up to 8 halvings. A served
pixel is therefore within 0.5/127.5 of float average pooling of the full-resolution image.
Without a cache (``cache="none"``), or with an ``augment`` transform (defined on full-size
images), batches are pooled on the fly in float instead.

The training loader fetches whole batches (the dataset's ``__getitems__``), so conversion,
pooling and flipping run once per batch instead of once per image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from datamodules.base import GANDataModule
from datamodules.sampling import shuffle_arguments
from gans.cache import cache_root
from gans.checks import is_power_of_two
from gans.errors import ConfigError, DataNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CACHE_FORMAT = 1  # bump when the preprocessing changes, so old caches are rebuilt
MIN_RESOLUTION = 4
Cache = Literal["memory", "disk", "none"]
LARGE_CACHE_BYTES = 50 << 30  # a disk cache above this gets a warning before it is built
PYRAMID_CHUNK_BYTES = 16 << 20  # full-resolution uint8 read per step when a pyramid level is built
# PIL's decompression-bomb guard: an image over Image.MAX_IMAGE_PIXELS warns, over twice that raises. Both skip the file.
UNDECODABLE = (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning)


# Sources: a folder or a zip of images.


class ImageSource:
    """The image files under a folder (recursive) or inside a zip, in sorted order.

    ``entries`` are ``(name, size, stamp)`` per image, the cheap identity used in cache keys
    (a folder's modification time in ns, a zip member's CRC). A zip is opened once per process,
    so DataLoader workers each get their own handle.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.is_zip = root.is_file() and zipfile.is_zipfile(root)
        self.entries = self._zip_entries() if self.is_zip else self._folder_entries()
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1

    def _folder_entries(self) -> list[tuple[str, int, int]]:
        entries = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # .gans-cache and the like
            for name in files:
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    path = Path(folder) / name
                    stat = path.stat()
                    entries.append((path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime_ns))
        return sorted(entries)

    def _zip_entries(self) -> list[tuple[str, int, int]]:
        with zipfile.ZipFile(self.root) as archive:
            return sorted(
                (info.filename, info.file_size, info.CRC)
                for info in archive.infolist()
                if not info.is_dir() and info.filename.lower().endswith(IMAGE_EXTENSIONS)
            )

    def read(self, name: str) -> bytes:
        if not self.is_zip:
            return (self.root / name).read_bytes()
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip, self._zip_pid = zipfile.ZipFile(self.root), os.getpid()
        return self._zip.read(name)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None, "_zip_pid": -1}


# Decoding and preprocessing.


def decode_image(data: bytes, channels: int) -> Image.Image:
    """Decode an encoded image to RGB (3 channels) or grayscale (1); raises on undecodable data."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB" if channels == 3 else "L")


def largest_power_of_two(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def check_size(name: str, size: tuple[int, int], resolution: int) -> None:
    """Refuse an image whose shorter side is below ``resolution``: upscaling it would silently blur the data."""
    width, height = size
    if min(width, height) < resolution:
        fit = largest_power_of_two(min(width, height))
        raise ConfigError(
            f"Image {name} is {width}x{height} px, smaller than img_resolution={resolution}: upscaling would train on "
            f"blurred images. Set data.init_args.img_resolution to {fit} or lower, or use larger source images."
        )


def crop_resize(image: Image.Image, resolution: int) -> np.ndarray:
    """Centre-crop to a square of the shorter side, Lanczos-resize to ``resolution``; uint8 ``[C, R, R]``."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def load_image(source: ImageSource, name: str, resolution: int, channels: int) -> np.ndarray:
    image = decode_image(source.read(name), channels)
    check_size(name, image.size, resolution)
    return crop_resize(image, resolution)


def to_float(pixels: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], as ``pixels.float() / 127.5 - 1`` (the same float32 operations).

    Done in NumPy, single-threaded: torch's OpenMP loops over a batch stall by orders of magnitude when
    the cores are busy (benchmarks/README.md, "Thread oversubscription"), and this runs in the training
    process when ``num_workers=0``.
    """
    images = pixels.numpy().astype(np.float32)
    images /= np.float32(127.5)
    images -= np.float32(1.0)
    return torch.from_numpy(images)


# Pixel storages: where a batch of uint8 images comes from.


class TensorPixels:
    """All images in memory, a uint8 tensor ``[N, C, R, R]``."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def fetch(self, indices: Sequence[int]) -> Tensor:
        return torch.from_numpy(self.images.numpy()[np.asarray(indices, dtype=np.int64)])  # NumPy: see to_float


class MemmapPixels:
    """A ``.npy`` file of uint8 ``[N, C, R, R]``, memory-mapped (pages shared by every worker)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._array: np.ndarray | None = None
        self.length = len(self.array)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return self.length

    def fetch(self, indices: Sequence[int]) -> Tensor:
        return torch.from_numpy(self.array[np.asarray(indices, dtype=np.int64)])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}


class DecodedPixels:
    """No cache: every fetch decodes, crops and resizes the files again."""

    def __init__(self, source: ImageSource, names: list[str], resolution: int, channels: int) -> None:
        self.source, self.names, self.resolution, self.channels = source, names, resolution, channels

    def __len__(self) -> int:
        return len(self.names)

    def fetch(self, indices: Sequence[int]) -> Tensor:
        images = []
        for i in indices:
            try:
                images.append(load_image(self.source, self.names[i], self.resolution, self.channels))
            except (*UNDECODABLE, ValueError) as err:
                if isinstance(err, ConfigError):
                    raise
                raise DataNotFoundError(f"Cannot decode {self.source.root}/{self.names[i]} ({err}): remove or replace the file.") from None
        return torch.from_numpy(np.stack(images))


# The dataset.


class ImageDataset(Dataset):
    """uint8 images served as ``(float image in [-1, 1], label)``.

    ``dataset[i]`` is one image ``[C, r, r]``; ``dataset[[i, j, ...]]`` a whole batch ``[B, C, r, r]``
    (what the training loader asks for). A batch is converted to float, passed through ``augment``
    (per image, at the resolution of ``pixels``), average-pooled to ``resolution`` when ``pixels`` are
    larger (no pooling when they are a pyramid level of that resolution already) and flipped left-right
    per image with probability 1/2 when ``xflip`` (torch's RNG, so worker seeding makes it reproducible).
    Labels are ``labels[i]``, or a dummy 0 when there are none.
    """

    def __init__(
        self,
        pixels: TensorPixels | MemmapPixels | DecodedPixels,
        labels: Tensor | None = None,
        resolution: int | None = None,
        xflip: bool = False,
        augment: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.pixels = pixels
        self.labels = labels
        self.resolution = resolution
        self.xflip = xflip
        self.augment = augment

    def view(self, **changes) -> "ImageDataset":
        """The same images and labels served with other settings (``resolution``, ``xflip``, ``augment``)."""
        settings = {"resolution": self.resolution, "xflip": self.xflip, "augment": self.augment, **changes}
        return ImageDataset(self.pixels, self.labels, **settings)

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int | Sequence[int]) -> tuple[Tensor, Tensor]:
        if isinstance(index, (int, np.integer)) or (isinstance(index, Tensor) and index.dim() == 0):
            images, labels = self.batch([int(index)])
            return images[0], labels[0]
        return self.batch(list(index))

    def batch(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        images = to_float(self.pixels.fetch(indices))  # [B, C, R, R]
        if self.augment is not None:
            images = torch.stack([self.augment(image) for image in images])
        factor = images.shape[-1] // self.resolution if self.resolution else 1
        if factor > 1:
            images = F.avg_pool2d(images, factor)  # [B, C, r, r]
        if self.xflip:
            flip = (torch.rand(len(images)) < 0.5).numpy()
            array = images.numpy()
            array[flip] = array[flip, ..., ::-1]
        if self.labels is None:
            labels = torch.zeros(len(images), dtype=torch.long)
        else:
            labels = self.labels[torch.as_tensor(indices, dtype=torch.long)]
        return images, labels


class ImageBatches(ImageDataset):
    """The training view of an :class:`ImageDataset`: the DataLoader's fetcher hands ``__getitems__`` the
    indices of a whole batch (whatever the sampler, e.g. Lightning's DistributedSampler), and
    :func:`keep_batch` passes the batch through as the collate function."""

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        return self.batch(indices)


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


def check_batch_fits(count: int, batch_size: int, source: str) -> None:
    """Refuse a training set smaller than one batch (the loaders drop the last partial batch, so the fit would
    train nothing and end without a word)."""
    if count < batch_size:
        raise ConfigError(
            f"{source} has {count} usable images, fewer than batch_size={batch_size}: lower data.init_args.batch_size or add images."
        )


def batch_loader(dataset: Dataset, batch_size: int, num_workers: int, pin_memory: bool, shuffle: dict | None = None) -> DataLoader:
    """A shuffled loader that fetches whole batches from ``dataset`` (drop_last, like every training loader here):
    an :class:`ImageDataset`, or any dataset whose ``__getitems__`` returns a whole batch (used as is);
    ``shuffle``: how, :func:`datamodules.sampling.shuffle_arguments` (default: ``shuffle=True``)."""
    if hasattr(dataset, "__getitems__"):
        batches = dataset
    else:
        batches = ImageBatches(dataset.pixels, dataset.labels, dataset.resolution, dataset.xflip, dataset.augment)
    return DataLoader(
        batches,
        batch_size=batch_size,
        drop_last=True,
        **(shuffle or {"shuffle": True}),
        collate_fn=keep_batch,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


# The pyramid: lower resolutions of the cached images, for progressive growing.


def pyramid_level(full: np.ndarray, resolution: int, out: np.ndarray, progress: str | None = None) -> None:
    """Fill ``out`` (uint8 ``[N, C, r, r]``, ``r = resolution``) with the pyramid level of ``full`` (uint8
    ``[N, C, R, R]``, a power-of-two multiple of ``r``).

    Each output pixel is ``S / f**2`` rounded to the nearest integer, ties to even, where ``f = R / r`` and
    ``S`` is the integer sum of its ``f x f`` block of input pixels: the 2x2 sums are repeated in integers
    (exact: uint16 holds ``255 * f**2`` up to ``f = 16``, uint32 beyond) and divided once, in float64
    (exact, ``f**2`` being a power of two).
    This is what the official ProGAN ``dataset_tool.py`` stores per level (see the module docstring).
    Rounding each level before averaging the next instead would drift by up to 0.5 per level (up to 4
    at 1024 -> 4). ``full`` (e.g. a memmap) is read in chunks of about :data:`PYRAMID_CHUNK_BYTES`, so
    memory stays bounded (a few times the chunk); ``progress`` names a progress bar (None = no bar).
    """
    n, channels, top = full.shape[0], full.shape[1], full.shape[-1]
    factor = top // resolution
    if factor * resolution != top or factor & (factor - 1) or out.shape != (n, channels, resolution, resolution):
        raise ValueError(f"pyramid_level: cannot take {tuple(full.shape)} to {tuple(out.shape)}.")
    sums = np.uint16 if factor <= 16 else np.uint32
    rows = max(1, PYRAMID_CHUNK_BYTES // (channels * top * top))
    for start in tqdm(range(0, n, rows), desc=progress, unit="chunk", disable=progress is None):
        block = full[start : start + rows]
        while block.shape[-1] > resolution:
            pairs = block[..., 0::2].astype(sums, copy=False) + block[..., 1::2]  # horizontal pairs, then vertical
            block = pairs[..., 0::2, :] + pairs[..., 1::2, :]
        out[start : start + rows] = np.rint(block / float(factor * factor)).astype(np.uint8)


def format_bytes(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:,.1f} {unit}"


def announce_disk_array(kind: str, path: Path, shape: tuple[int, ...]) -> None:
    """Log the size of a uint8 array about to be written to disk; warn when it is large or the disk too small."""
    size = int(np.prod(shape))
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else None
    where = f", {format_bytes(free)} free there" if free is not None else ""
    rank_zero_info(f"Building the {kind} {path}: {shape[0]:,} images of {'x'.join(map(str, shape[1:]))} uint8 = {format_bytes(size)}{where}.")
    if size > LARGE_CACHE_BYTES or (free is not None and size > free):
        warnings.warn(
            f"The {kind} {path} will take {format_bytes(size)} of disk{where}: if that is too much, set "
            f"data.init_args.img_resolution lower (each halving divides it by 4), point data.init_args.cache_dir at a "
            f"larger disk, or set data.init_args.cache: none (decode every image every time, no disk used).",
            stacklevel=3,
        )


# The cache.


def writable_dir(path: Path) -> bool:
    """Whether cache files may go in ``path`` (created if missing). A folder whose permission bits let nobody
    write counts as read-only even for root, who could write there anyway (a shared data folder)."""
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.stat().st_mode & 0o222:
        return False
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def images_key(source: ImageSource, names: list[str], resolution: int, channels: int) -> str:
    """A hash of the image files used (names, sizes, stamps) and the preprocessing settings: the
    identity of the decoded images, in cache file names and in :meth:`ImageFolderDataModule.cache_key`."""
    stamps = dict((name, (size, stamp)) for name, size, stamp in source.entries)
    identity = {
        "format": CACHE_FORMAT,
        "files": [(name, *stamps[name]) for name in names],
        "resolution": resolution,
        "channels": channels,
        "crop": "centre-square",
        "resize": "lanczos",
    }
    return hashlib.sha1(json.dumps(identity).encode()).hexdigest()[:16]


class ImageCache:
    """The decoded images of one source at one setting, as ``<cache_dir>/<prefix>-<key>.npy`` plus a
    ``.json`` naming the images kept, and the pyramid levels built from it as
    ``<prefix>-<key>-level<r>.npy``. ``key`` (:func:`images_key`) hashes the file list (names, sizes,
    stamps) and the preprocessing settings, so a changed folder or setting gets new files; older files
    of the same source and setting, levels included, are removed when the main cache is written."""

    def __init__(self, source: ImageSource, names: list[str], resolution: int, channels: int, cache_dir: Path) -> None:
        self.source, self.names, self.resolution, self.channels = source, names, resolution, channels
        self.key = images_key(source, names, resolution, channels)
        where = hashlib.sha1(str(source.root).encode()).hexdigest()[:8]
        self.prefix = f"{source.root.stem}-{where}-{resolution}px-{channels}ch"
        self.array_path = cache_dir / f"{self.prefix}-{self.key}.npy"
        self.meta_path = cache_dir / f"{self.prefix}-{self.key}.json"

    def level_path(self, resolution: int) -> Path:
        return self.array_path.with_name(f"{self.prefix}-{self.key}-level{resolution}.npy")

    def level(self, resolution: int) -> "MemmapPixels":
        """The pyramid level ``resolution`` (:func:`pyramid_level`) of the main cache, built on first use
        into a temporary file and then moved in place (safe against concurrent writers)."""
        path = self.level_path(resolution)
        full = np.load(self.array_path, mmap_mode="r")
        shape = (len(full), self.channels, resolution, resolution)
        if path.is_file() and np.load(path, mmap_mode="r").shape == shape:
            return MemmapPixels(path)
        announce_disk_array(f"{resolution}x{resolution} pyramid level of the image cache", path, shape)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            pyramid_level(full, resolution, out, progress=f"Caching the {resolution}x{resolution} level")
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return MemmapPixels(path)

    def exists(self) -> bool:
        return self.array_path.is_file() and self.meta_path.is_file()

    def kept_names(self) -> list[str]:
        return json.loads(self.meta_path.read_text())["names"]

    def write(self, num_threads: int) -> None:
        """Decode everything into a temporary file, then move it in place (safe against concurrent writers)."""
        self.array_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.array_path.with_suffix(f".tmp{os.getpid()}.npy")
        shape = (len(self.names), self.channels, self.resolution, self.resolution)
        announce_disk_array("image cache", self.array_path, shape)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        try:
            kept = decode_all(self.source, self.names, self.resolution, self.channels, num_threads, out=array)
            array.flush()
            del array
            if len(kept) < len(self.names):  # compact: drop the rows of skipped files, one image at a time
                index = {name: i for i, name in enumerate(self.names)}
                full = np.load(tmp, mmap_mode="r")
                compact = np.lib.format.open_memmap(tmp.with_suffix(".compact.npy"), mode="w+", dtype=np.uint8, shape=(len(kept), *shape[1:]))
                for row, name in enumerate(kept):
                    compact[row] = full[index[name]]
                compact.flush()
                del full, compact
                os.replace(tmp.with_suffix(".compact.npy"), tmp)
            for old in self.array_path.parent.glob(f"{self.prefix}-*"):
                if old.suffix in (".npy", ".json") and ".tmp" not in old.name:
                    old.unlink(missing_ok=True)
            meta_tmp = self.meta_path.with_suffix(f".tmp{os.getpid()}")
            meta_tmp.write_text(json.dumps({"source": str(self.source.root), "names": kept}))
            os.replace(meta_tmp, self.meta_path)
            os.replace(tmp, self.array_path)
        finally:
            tmp.unlink(missing_ok=True)


def decode_all(
    source: ImageSource, names: list[str], resolution: int, channels: int, num_threads: int, out: np.ndarray | None = None
) -> list[str]:
    """Decode ``names`` into ``out`` (rows in order of ``names``); the names decoded.

    Undecodable files (decompression bombs included: over ``Image.MAX_IMAGE_PIXELS``) are skipped with
    one warning at the end; no decodable file at all, or an image smaller than ``resolution``, is an error.
    """

    def work(name: str) -> np.ndarray | Exception:
        try:
            return load_image(source, name, resolution, channels)
        except ConfigError:
            raise
        except (*UNDECODABLE, ValueError) as err:
            return err

    kept, skipped = [], []
    # The warnings filters are process-wide: the decoding threads raise the bomb warning as an error too.
    with warnings.catch_warnings(), ThreadPoolExecutor(max(1, num_threads)) as pool:  # PIL releases the GIL while decoding
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        results = pool.map(work, names)
        for i, (name, result) in enumerate(tqdm(zip(names, results), total=len(names), desc="Caching images", unit="img")):
            if isinstance(result, Exception):
                skipped.append(name)
                continue
            out[i] = result
            kept.append(name)
    report_skipped(source, names, kept, skipped)
    return kept


def check_headers(source: ImageSource, names: list[str], resolution: int) -> list[str]:
    """For ``cache="none"``: read only each file's header (format and size); the names that open."""
    kept, skipped = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for name in names:
            try:
                with Image.open(io.BytesIO(source.read(name))) as image:
                    check_size(name, image.size, resolution)
                kept.append(name)
            except UNDECODABLE:
                skipped.append(name)
    report_skipped(source, names, kept, skipped)
    return kept


def report_skipped(source: ImageSource, names: list[str], kept: list[str], skipped: list[str]) -> None:
    """One warning for all skipped files; an error when nothing is left."""
    if not kept:
        raise DataNotFoundError(
            f"None of the {len(names)} image files in {source.root} could be decoded (e.g. {', '.join(skipped[:3])}): "
            f"check that they are PNG/JPEG/BMP/WebP images and not truncated."
        )
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} of {len(names)} files in {source.root} that could not be decoded as images "
            f"(e.g. {', '.join(skipped[:5])}).",
            stacklevel=3,
        )


# The datamodule.


def default_cache_dir(root: Path) -> Path:
    """``.gans-cache`` next to the data, or ``$GANS_CACHE`` (default ``~/.cache/gans``) when the data's folder is read-only."""
    beside = root.parent / ".gans-cache"
    return beside if writable_dir(beside) else cache_root()


class ImageFolderDataModule(GANDataModule):
    """Any folder (searched recursively) or zip of PNG/JPEG/BMP/WebP images, unlabelled.

    Every image is centre-cropped to a square and Lanczos-resized to ``img_resolution``, once, into a
    uint8 cache (see the module docstring). Batches are ``(images [B, C, r, r] in [-1, 1], zeros [B])``.

    Progressive growing (:class:`callbacks.ProgressiveGrowing`) calls ``set_stage(resolution, batch_size)``;
    the next ``train_dataloader()`` then serves the images at ``resolution``, in batches of ``batch_size``:
    from the uint8 pyramid level of that resolution (built once, on first use, from the disk or memory
    cache; the disk level is kept next to the cache for later runs), or average-pooled on the fly with
    ``cache="none"`` or an ``augment`` transform. ``data_shape`` and ``real_dataset()`` stay at the final
    ``(C, R, R)``.
    """

    # Augmentation and caching change the training stream, not the real images metrics compare against.
    LOADING_ARGS = GANDataModule.LOADING_ARGS | {"cache", "cache_dir", "xflip", "rotate_degrees"}
    num_classes = 0

    def __init__(
        self,
        root: str = "data/images",
        img_resolution: int = 64,
        img_channels: int = 3,
        xflip: bool = False,
        batch_size: int = 64,
        num_workers: int = 2,
        pin_memory: bool = False,
        cache: Cache = "disk",
        cache_dir: str | None = None,
        subset: int = 0,
        subset_seed: int = 0,
        **kwargs,
    ) -> None:
        """
        Args:
            root: a folder of images (subfolders included) or a ``.zip`` of them.
            img_resolution: image side after centre crop and resize, a power of two >= 4. Images smaller
                than this are an error, never upscaled.
            img_channels: 3 (RGB) or 1 (grayscale).
            xflip: flip each training image left-right with probability 1/2.
            batch_size: images per batch on each device (``set_stage`` may change it).
            num_workers: DataLoader worker processes (0 loads in the main process); also the threads
                that decode images when the cache is built.
            pin_memory: pin batches for faster host-to-GPU copies.
            cache: ``disk`` (decoded once into a memory-mapped uint8 ``.npy`` that later runs reuse),
                ``memory`` (decoded at every setup, kept in RAM) or ``none`` (decode every image every time).
            cache_dir: where the disk cache goes; None = ``.gans-cache`` next to ``root``, or ``$GANS_CACHE`` (``~/.cache/gans``)
                when that folder is read-only.
            subset: use only this many of the images, drawn at random with ``subset_seed`` (a limited-data run, as the
                ``--subset`` of StyleGAN2-ADA's train.py); 0 = all of them.
            subset_seed: the seed of that draw (the same images for the same seed, whatever the run's seed).
            **kwargs: ``num_predict`` and ``predict_batch_size`` of :class:`datamodules.base.GANDataModule`.
        """
        super().__init__(**kwargs)
        if not is_power_of_two(img_resolution) or img_resolution < MIN_RESOLUTION:
            raise ConfigError(
                f"img_resolution must be a power of two >= {MIN_RESOLUTION}, got {img_resolution}: "
                f"set data.init_args.img_resolution to e.g. 64 or 128."
            )
        if img_channels not in (1, 3):
            raise ConfigError(f"img_channels must be 3 (RGB) or 1 (grayscale), got {img_channels}.")
        if cache not in ("memory", "disk", "none"):
            raise ConfigError(f"Unknown cache {cache!r}: choose 'disk', 'memory' or 'none'.")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        if subset < 0:
            raise ConfigError(f"subset must be >= 0 (0 = every image), got {subset}: set data.init_args.subset to e.g. 2000, or 0.")
        self.save_hyperparameters()
        self.data_shape = (img_channels, img_resolution, img_resolution)
        self.batch_size = batch_size
        self.resolution = img_resolution
        self.dataset: ImageDataset | None = None
        self.images_key: str | None = None  # images_key() of the images used, set by setup
        self._cache: ImageCache | None = None
        self._levels: dict[int, TensorPixels | MemmapPixels] = {}  # pyramid levels built so far

    # Hooks for subclasses.

    def missing_data_hint(self) -> str:
        """Where to get the data (appended to the missing-data message)."""
        return "Set data.init_args.root to a folder or .zip of PNG/JPEG/BMP/WebP images."

    def select(self, names: list[str]) -> tuple[list[str], Tensor | None]:
        """The image files to use and their labels (None = unlabelled); all of them here."""
        return names, None

    def used_images(self, source: ImageSource) -> tuple[list[str], Tensor | None]:
        """The images this module serves and their labels: :meth:`select`'s, then ``subset`` of them drawn at random
        with a generator seeded by ``subset_seed`` and kept in file order: ``randperm`` of a ``torch.Generator`` seeded
        so, its first ``subset``, sorted (the seeded draw of the evaluation protocol's real reference, unstratified)."""
        names, labels = self.select([name for name, _, _ in source.entries])
        n = self.hparams.subset
        if n <= 0 or n >= len(names):
            return names, labels
        chosen = torch.randperm(len(names), generator=torch.Generator().manual_seed(self.hparams.subset_seed))[:n].sort().values
        return [names[i] for i in chosen.tolist()], None if labels is None else labels[chosen]

    def augment(self) -> Callable[[Tensor], Tensor] | None:
        """A per-image transform of float ``[C, R, R]`` training images, applied before pooling and flipping
        (at full resolution: an augmented dataset is pooled on the fly, not served from the pyramid)."""
        return None

    def kept_labels(self, names: list[str], labels: Tensor | None, kept: list[str]) -> Tensor | None:
        """The labels of ``kept`` (the images of ``names`` that decoded), given ``select``'s ``labels`` of
        ``names``; here its rows of the kept images."""
        if labels is None or len(kept) == len(names):
            return labels
        index = {name: i for i, name in enumerate(names)}
        return labels[[index[name] for name in kept]]

    def content_identity(self) -> dict:
        """What :meth:`cache_key` adds to the init arguments: the identity of the images used (file names,
        sizes, stamps and preprocessing, :func:`images_key`). Subclasses add e.g. the labels' source."""
        key = self.images_key
        if key is None:  # before setup: list the files (cheap, nothing is decoded)
            hp = self.hparams
            source = self.source()
            names = self.used_images(source)[0]
            key = images_key(source, names, hp.img_resolution, hp.img_channels)
        return {"images": key}

    def cache_key(self) -> str:
        """:meth:`GANDataModule.cache_key` plus a hash of :meth:`content_identity`: statistics cached under it
        (FID's real features) are recomputed when images are added, removed or changed."""
        content = json.dumps(self.content_identity(), sort_keys=True)
        return f"{super().cache_key()}-{hashlib.sha1(content.encode()).hexdigest()[:10]}"

    # Loading.

    @property
    def root(self) -> Path:
        return Path(self.hparams.root).expanduser().resolve()

    def source(self) -> ImageSource:
        root = self.root
        if not root.exists():
            raise DataNotFoundError(f"No data at {root}: the folder or zip does not exist. {self.missing_data_hint()}")
        source = ImageSource(root)
        if not source.entries:
            kind = "zip" if source.is_zip else "folder"
            raise DataNotFoundError(
                f"The {kind} {root} holds no images ({', '.join(IMAGE_EXTENSIONS)}). {self.missing_data_hint()}"
            )
        return source

    def cache_files(self, source: ImageSource, names: list[str]) -> ImageCache:
        hp = self.hparams
        cache_dir = Path(hp.cache_dir).expanduser() if hp.cache_dir else default_cache_dir(source.root)
        return ImageCache(source, names, hp.img_resolution, hp.img_channels, cache_dir)

    def prepare_data(self) -> None:
        if self.hparams.cache == "disk":
            source = self.source()
            cache = self.cache_files(source, self.used_images(source)[0])
            if not cache.exists():
                cache.write(self.hparams.num_workers)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        hp = self.hparams
        source = self.source()
        names, labels = self.used_images(source)
        if hp.cache == "disk":
            cache = self.cache_files(source, names)
            if not cache.exists():  # setup without prepare_data
                cache.write(hp.num_workers)
            kept, pixels = cache.kept_names(), MemmapPixels(cache.array_path)
            self._cache = cache
        elif hp.cache == "memory":
            array = np.empty((len(names), *self.data_shape), dtype=np.uint8)
            kept = decode_all(source, names, hp.img_resolution, hp.img_channels, hp.num_workers, out=array)
            if len(kept) < len(names):
                index = {name: i for i, name in enumerate(names)}
                array = array[[index[name] for name in kept]]
            pixels = TensorPixels(torch.from_numpy(array))
        else:
            kept = check_headers(source, names, hp.img_resolution)
            pixels = DecodedPixels(source, kept, hp.img_resolution, hp.img_channels)
        labels = self.kept_labels(names, labels, kept)
        self.names = kept
        self.images_key = images_key(source, names, hp.img_resolution, hp.img_channels)
        self.dataset = ImageDataset(pixels, labels)

    # Progressive growing.

    def set_stage(self, resolution: int, batch_size: int | None = None) -> None:
        """Serve images at ``resolution`` (a power of two, 4 ... img_resolution) from the next
        ``train_dataloader()`` on, in batches of ``batch_size`` (None = keep the current one). The pyramid
        level of a lower resolution is built by that ``train_dataloader()`` call if it is not there yet."""
        top = self.hparams.img_resolution
        if not is_power_of_two(resolution) or not MIN_RESOLUTION <= resolution <= top:
            raise ConfigError(f"set_stage: resolution must be a power of two from {MIN_RESOLUTION} to img_resolution={top}, got {resolution}.")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"set_stage: batch_size must be >= 1, got {batch_size}.")
        self.resolution = resolution
        if batch_size is not None:
            self.batch_size = batch_size

    def stage_pixels(self, resolution: int) -> TensorPixels | MemmapPixels | DecodedPixels:
        """The uint8 images to serve ``resolution`` from: the pyramid level of that resolution with a disk
        or memory cache (built on first use, see :func:`pyramid_level`), else the full-resolution ones."""
        full = self.dataset.pixels
        if resolution >= self.hparams.img_resolution or isinstance(full, DecodedPixels):
            return full
        if resolution not in self._levels:
            if isinstance(full, TensorPixels):
                out = np.empty((len(full), *self.data_shape[:1], resolution, resolution), dtype=np.uint8)
                pyramid_level(full.images.numpy(), resolution, out)
                self._levels[resolution] = TensorPixels(torch.from_numpy(out))
            else:
                self._levels[resolution] = self._disk_level(resolution)
        return self._levels[resolution]

    def _disk_level(self, resolution: int) -> MemmapPixels:
        """The disk pyramid level; under DDP the first process of each node builds it while the others wait."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.world_size == 1:
            return self._cache.level(resolution)
        if trainer.local_rank == 0:  # every process takes the same branches up to the barrier
            self._cache.level(resolution)
        trainer.strategy.barrier("gans-pyramid-level")
        return self._cache.level(resolution)  # built by now by the first process of this node

    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise ConfigError(f"{type(self).__name__}: call setup('fit') before train_dataloader().")
        check_batch_fits(len(self.dataset), self.batch_size, str(self.root))
        augment = self.augment()
        pixels = self.dataset.pixels if augment is not None else self.stage_pixels(self.resolution)
        dataset = ImageDataset(pixels, self.dataset.labels, self.resolution, self.hparams.xflip, augment)
        hp = self.hparams
        return batch_loader(dataset, self.batch_size, hp.num_workers, hp.pin_memory, shuffle_arguments(self, len(dataset)))
