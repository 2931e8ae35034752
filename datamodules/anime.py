"""Anime faces with hair and eye colour tags: the "extra data" of the 2018 MLDS GAN homework
(National Taiwan University, Machine Learning and having it Deep and Structured), as the anime
report in the seed material uses it for conditional GANs (ACGAN, StarGAN).

The tags file has one line per image, ``<id>,<colour> hair <colour> eyes``, ``id`` being the image's
file stem. Labels are two class indices per image, ``[hair, eye]`` (:class:`gans.labels.LabelSpace`
with ``num_classes = [n_hair, n_eye]``).

The report's cleaning and augmentation are options: drop images without tags, with several hair or
eye colours, or with bicoloured eyes; flip left-right and rotate by up to +-5 degrees.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchvision.transforms import v2

from datamodules.images import ImageFolderDataModule
from gans.errors import ConfigError, DataNotFoundError
from gans.labels import LabelSpace

BICOLORED = "bicolored"
BICOLOR_WORDS = frozenset({"bicolored", "bicoloured", "bicolor", "bicolour", "heterochromia"})
EYE_WORDS = frozenset({"eyes", "eye"})


@dataclass(frozen=True)
class Tags:
    """The distinct hair and eye colours named for one image, in the order they appear."""

    hair: tuple[str, ...] = ()
    eyes: tuple[str, ...] = ()
    line: str = field(default="", compare=False)  # where the tags came from, ``line N: '<text>'`` (first line of an id)

    @property
    def untagged(self) -> bool:
        return not self.hair or not self.eyes

    @property
    def ambiguous(self) -> bool:
        """Several hair colours, or several eye tags."""
        return len(self.hair) > 1 or len(self.eyes) > 1

    @property
    def bicolored(self) -> bool:
        """A ``bicolored eyes`` tag, or two eye colours."""
        return BICOLORED in self.eyes or len(self.eyes) > 1

    def restricted(self, hair: Sequence[str] | None, eyes: Sequence[str] | None) -> "Tags":
        """Only the colours in the given vocabularies (None = keep all)."""
        return Tags(
            tuple(c for c in self.hair if hair is None or c in hair),
            tuple(c for c in self.eyes if eyes is None or c in eyes or c == BICOLORED),
            self.line,
        )


def parse_tags(text: str) -> Tags:
    """The colours of the ``<colour> hair`` and ``<colour> eyes`` phrases in ``text``, any number, any order.

    The colour is the word before ``hair``/``eyes``; ``bicolored`` (or bicolor, heterochromia) eyes
    become :data:`BICOLORED`. Other words are ignored.
    """
    words = re.findall(r"[a-z]+", text.lower())
    hair: list[str] = []
    eyes: list[str] = []
    for colour, word in zip(words, words[1:]):
        if colour == "hair" or colour in EYE_WORDS:
            continue
        if word == "hair" and colour not in hair:
            hair.append(colour)
        elif word in EYE_WORDS:
            colour = BICOLORED if colour in BICOLOR_WORDS else colour
            if colour not in eyes:
                eyes.append(colour)
    return Tags(tuple(hair), tuple(eyes))


def read_tags(path: Path) -> dict[str, Tags]:
    """``id -> Tags`` from lines ``<id>,<phrases>``; blank lines, ``#`` comments and a header line are skipped,
    and the phrases of an id listed twice are merged."""
    tags: dict[str, Tags] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataNotFoundError(
            f"{path} is not UTF-8 text (line {line}, byte {err.object[err.start:err.start + 1]!r}): save the tags file as UTF-8 "
            f"(e.g. iconv -f latin1 -t utf-8), lines '<id>,<hair colour> hair <eye colour> eyes'."
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        image_id, comma, text = line.partition(",")
        if not comma:
            raise DataNotFoundError(f"{path}, line {number}: {line!r} is not '<id>,<hair colour> hair <eye colour> eyes'.")
        found = parse_tags(text)
        if number == 1 and not found.hair and not found.eyes and not image_id.strip().isdigit():
            continue  # a header such as "id,tags"
        image_id = image_id.strip()
        if image_id in tags:
            old = tags[image_id]
            found = Tags(tuple(dict.fromkeys(old.hair + found.hair)), tuple(dict.fromkeys(old.eyes + found.eyes)), old.line)
        else:
            found = Tags(found.hair, found.eyes, f"line {number}: {line!r}")
        tags[image_id] = found
    return tags


class EdgeRotation:
    """Rotate a ``[C, R, R]`` image by a uniform angle in [-degrees, degrees] (torchvision.transforms.v2),
    the corners filled by the replicated border rather than a constant colour."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees
        self.rotate = v2.RandomRotation(degrees, interpolation=v2.InterpolationMode.BILINEAR)

    def __call__(self, image: Tensor) -> Tensor:
        size = image.shape[-1]
        angle = math.radians(self.degrees)
        pad = math.ceil(size / 2 * (math.cos(angle) + math.sin(angle) - 1)) + 1  # reach of the rotated corners
        padded = v2.functional.pad(image, [pad], padding_mode="edge")
        return v2.functional.center_crop(self.rotate(padded), [size, size])


def examples(items: Sequence[str], k: int = 5) -> str:
    return ", ".join(items[:k]) + (", ..." if len(items) > k else "")


class AnimeFacesDataModule(ImageFolderDataModule):
    """Anime face crops, unconditional or labelled ``[hair colour, eye colour]`` from a tags file.

    With ``tags_file``, ``num_classes = [n_hair, n_eye]`` and labels are long ``[2]`` per image. In a
    conditional run every image needs exactly one hair and one eye label: an image without a hair or eye
    tag (or without a line) is dropped when ``drop_untagged`` and an error otherwise; several hair colours
    are dropped when ``drop_ambiguous`` and an error otherwise. Bicoloured eyes (a ``bicolored eyes`` tag,
    or two eye colours) are dropped when ``drop_bicolored``, else labelled as the eye class ``bicolored``;
    two eye colours also count as ambiguous. Without ``tags_file`` every image is used, labels are 0.

    Labels are looked up by file stem, so two image files with the same stem are an error with a tags
    file. Unless ``hair_colors``/``eye_colors`` are given, the classes are the colours of the images
    actually kept (after cleaning and after skipping undecodable files, at ``setup``), so none is empty;
    before ``setup`` they are those of every usable line of the tags file.
    """

    label_heads = ["hair", "eye"]  # the names of the two label heads (metric names such as metrics/cond_acc_hair)

    def __init__(
        self,
        root: str = "data/anime-faces",
        tags_file: str | None = None,
        img_resolution: int = 64,
        hair_colors: list[str] | None = None,
        eye_colors: list[str] | None = None,
        drop_untagged: bool = True,
        drop_ambiguous: bool = True,
        drop_bicolored: bool = True,
        rotate_degrees: float = 0.0,
        xflip: bool = False,
        **kwargs,
    ) -> None:
        """
        Args:
            root: folder (or zip) of the face images, e.g. ``data/anime-faces`` holding ``images/<id>.jpg``.
            tags_file: the tags, lines ``<id>,<colour> hair <colour> eyes`` (id = image file stem),
                e.g. ``data/anime-faces/tags.csv``; None = unconditional.
            img_resolution: image side, a power of two >= 4 (the MLDS extra data is 64 px).
            hair_colors: the hair classes in label order; None = the hair colours of the images kept, sorted.
                Tags outside the list are ignored.
            eye_colors: the eye classes likewise (``bicolored`` is the class of bicoloured eyes; a given list
                needs it when ``drop_bicolored`` is false).
            drop_untagged: drop images without a hair or eye colour (else an error in a conditional run).
            drop_ambiguous: drop images with several hair colours or eye tags (else several hair colours are an error).
            drop_bicolored: drop images with bicoloured eyes (else they get the eye class ``bicolored``).
            rotate_degrees: rotate training images by a random angle up to this many degrees (the report uses 5; 0 = off).
            xflip: flip training images left-right with probability 1/2.
            **kwargs: the other arguments of :class:`datamodules.ImageFolderDataModule` (``batch_size``,
                ``img_channels``, ``cache``, ...).
        """
        super().__init__(root=root, img_resolution=img_resolution, xflip=xflip, **kwargs)
        if rotate_degrees < 0 or rotate_degrees >= 45:
            raise ConfigError(f"rotate_degrees must be in [0, 45), got {rotate_degrees}.")
        self.tags: dict[str, Tags] | None = None
        self.tags_sha1: str | None = None  # of the tags file's bytes, part of cache_key()
        self.hair_colors: list[str] = []
        self.eye_colors: list[str] = []
        self._pairs: dict[str, tuple[str, str]] = {}  # image name -> (hair, eye) of the images select() keeps
        if tags_file is not None:
            if not drop_bicolored and eye_colors and BICOLORED not in eye_colors:
                raise ConfigError(
                    f"drop_bicolored is false, so images with bicoloured eyes get the eye class '{BICOLORED}', but "
                    f"eye_colors {list(eye_colors)} lacks it: add {BICOLORED} to data.init_args.eye_colors, or set "
                    f"data.init_args.drop_bicolored: true."
                )
            self.tags = self._read_tags(Path(tags_file).expanduser())
            self._warn_malformed(tags_file)
            labelled = [label for label in map(self._label, self.tags.values()) if isinstance(label, tuple)]
            self._set_classes(labelled)
            if not self.hair_colors or not self.eye_colors:
                raise DataNotFoundError(f"{tags_file} names no usable '<colour> hair <colour> eyes' pair after cleaning.")

    def missing_data_hint(self) -> str:
        return (
            "The anime faces are the extra data of the 2018 MLDS GAN homework (NTU, Machine Learning and having it "
            "Deep and Structured; e.g. the extra_data/ folder of the GitHub repository Bowen3235/MLDS_3-2_Gan): put the "
            f"images in {self.root}/images/ (<id>.jpg) and the tags in {self.root}/tags.csv, then set "
            "data.init_args.tags_file to that file for a conditional run."
        )

    def _read_tags(self, path: Path) -> dict[str, Tags]:
        if not path.is_file():
            if not self.root.exists():
                raise DataNotFoundError(f"No data at {self.root}. {self.missing_data_hint()}")
            raise DataNotFoundError(
                f"Tags file {path.resolve()} not found: point data.init_args.tags_file at the tags "
                f"(lines '<id>,<hair colour> hair <eye colour> eyes'), or set it to null for unconditional training."
            )
        self.tags_sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
        return read_tags(path)

    def _warn_malformed(self, tags_file: str) -> None:
        """One warning for the lines that name no usable hair and eye colour (a typo such as ``hiar``, a missing eye
        colour, a colour outside hair_colors/eye_colors), which drop_untagged drops: their count and the first."""
        hp = self.hparams
        bad = [tags for tags in self.tags.values() if tags.restricted(hp.hair_colors, hp.eye_colors).untagged]
        if bad and hp.drop_untagged:
            rank_zero_warn(
                f"{tags_file}: {len(bad)} of {len(self.tags)} tagged ids name no usable '<colour> hair <colour> eyes' pair "
                f"(a misspelt word, a missing colour, or a colour outside hair_colors/eye_colors) and are dropped; the first is "
                f"{bad[0].line}. Fix those lines, or set data.init_args.drop_untagged: false to have them refused."
            )

    def _set_classes(self, pairs: Sequence[tuple[str, str]]) -> None:
        """The classes: ``hair_colors``/``eye_colors`` when given, else the colours of ``pairs``, sorted."""
        hp = self.hparams
        self.hair_colors = list(hp.hair_colors) if hp.hair_colors else sorted({hair for hair, _ in pairs})
        self.eye_colors = list(hp.eye_colors) if hp.eye_colors else sorted({eye for _, eye in pairs})
        self.num_classes = [len(self.hair_colors), len(self.eye_colors)]

    def _encode(self, names: list[str]) -> Tensor:
        """``[N, 2]`` class indices of ``names`` (images select() kept), the classes fitted to them first."""
        pairs = [self._pairs[name] for name in names]
        self._set_classes(pairs)
        hair_index = {c: i for i, c in enumerate(self.hair_colors)}
        eye_index = {c: i for i, c in enumerate(self.eye_colors)}
        return torch.tensor([(hair_index[hair], eye_index[eye]) for hair, eye in pairs], dtype=torch.long).view(-1, 2)

    def _label(self, tags: Tags | None) -> tuple[str, str] | str:
        """``(hair, eye)``, or why the image has none: ``drop``, ``untagged`` or ``ambiguous``."""
        hp = self.hparams
        tags = (tags or Tags()).restricted(hp.hair_colors, hp.eye_colors)
        if tags.untagged:
            return "drop" if hp.drop_untagged else "untagged"
        if (hp.drop_ambiguous and tags.ambiguous) or (hp.drop_bicolored and tags.bicolored):
            return "drop"
        if len(tags.hair) > 1:
            return "ambiguous"
        return tags.hair[0], BICOLORED if tags.bicolored else tags.eyes[0]

    def select(self, names: list[str]) -> tuple[list[str], Tensor | None]:
        """The images whose tags give one hair and one eye class, and those classes ``[N, 2]`` (the classes
        fitted to these images unless given; :meth:`kept_labels` fits them again to the images that decode)."""
        if self.tags is None:
            return names, None
        by_stem: dict[str, list[str]] = {}
        for name in names:
            by_stem.setdefault(Path(name).stem, []).append(name)
        shared = [files for files in by_stem.values() if len(files) > 1]
        if shared:
            raise ConfigError(
                f"{shared[0][0]} and {shared[0][1]} in {self.root} have the same file stem, and {self.hparams.tags_file} "
                f"labels images by stem ({len(shared)} such stems, e.g. {examples([Path(files[0]).stem for files in shared])}): "
                f"keep one image per id (remove or rename the others), or point data.init_args.root at the folder of the tagged images only."
            )
        unknown = [image_id for image_id in self.tags if image_id not in by_stem]
        if unknown:
            raise DataNotFoundError(
                f"{self.hparams.tags_file} tags {len(unknown)} ids with no image in {self.root} (e.g. {examples(unknown)}): "
                f"check that root and tags_file belong together."
            )
        hp = self.hparams
        kept, problems = [], {"untagged": [], "ambiguous": []}
        self._pairs = {}
        for name in names:
            label = self._label(self.tags.get(Path(name).stem))
            if isinstance(label, tuple) and (not hp.hair_colors or label[0] in hp.hair_colors) and (not hp.eye_colors or label[1] in hp.eye_colors):
                kept.append(name)
                self._pairs[name] = label
            elif label in problems:
                problems[label].append(name)
            elif label != "drop":  # a class outside the given hair_colors/eye_colors
                problems["untagged"].append(name)
        if problems["untagged"]:
            bad = problems["untagged"]
            raise ConfigError(
                f"{len(bad)} images have no hair or eye colour in {self.hparams.tags_file} (e.g. {examples(bad)}): "
                f"set data.init_args.drop_untagged: true, or tags_file: null for unconditional training."
            )
        if problems["ambiguous"]:
            bad = problems["ambiguous"]
            raise ConfigError(
                f"{len(bad)} images have several hair colours (e.g. {examples(bad)}): set data.init_args.drop_ambiguous: true."
            )
        if not kept:
            raise DataNotFoundError(
                f"No image of {self.root} is left after cleaning with {self.hparams.tags_file} (drop_untagged, "
                f"drop_ambiguous, drop_bicolored): check the tags file, or relax the drop_* options."
            )
        return kept, self._encode(kept)

    def kept_labels(self, names: list[str], labels: Tensor | None, kept: list[str]) -> Tensor | None:
        """The labels of the images that decoded, with the classes fitted to them (no class is left empty)."""
        if self.tags is None or len(kept) == len(names):
            return labels
        return self._encode(kept)

    def content_identity(self) -> dict:
        """The images used plus the tags file's contents (edited tags change the labels, not the files)."""
        return {**super().content_identity(), "tags": self.tags_sha1}

    def augment(self):
        degrees = self.hparams.rotate_degrees
        return EdgeRotation(degrees) if degrees > 0 else None

    @property
    def class_names(self) -> list[list[str]]:
        """``[[hair colours], [eye colours]]`` in label order (empty lists when unconditional)."""
        return [list(self.hair_colors), list(self.eye_colors)]

    def multi_hot(self, labels: Tensor) -> Tensor:
        """``[N, n_hair + n_eye]``: the one-hot hair and eye vectors concatenated (the tag vector of ACGAN/StarGAN)."""
        return LabelSpace.from_num_classes(self.num_classes).multi_hot(labels)
