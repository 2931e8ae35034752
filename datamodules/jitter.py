"""The random jitter of the image-to-image models, and reading image files as uint8 tensors for it.

pix2pix (Isola et al. 2017, arXiv:1611.07004, section 6.2) trains with "random jitter": each image is
resized to 286x286 and randomly cropped back to 256x256, and flipped left-right at random; the official
code (junyanz/pytorch-CycleGAN-and-pix2pix, ``--preprocess resize_and_crop``, the default) resizes to
``load_size`` x ``load_size`` with bicubic interpolation, whatever the aspect ratio, crops ``crop_size``
at a random position and flips with probability 1/2. CycleGAN (Zhu et al. 2017, arXiv:1703.10593) and
the same code use this jitter on each domain's images, independently. At test time the official code resizes to
``crop_size`` (``load_size`` is set to ``crop_size``) and does not flip: :func:`fixed_resize`.

The transforms are ``torchvision.transforms.v2``: called on several ``tv_tensors.Image`` at once, they
draw one crop position and one flip for all of them (pix2pix's A and B). Random numbers come from torch's
global generator, seeded per DataLoader worker, as the flips of :class:`datamodules.images.ImageDataset`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torchvision.transforms import v2

from datamodules.images import UNDECODABLE, ImageSource, decode_image, to_float
from gans.errors import ConfigError, DataNotFoundError

Transform = Callable[..., Tensor]


def check_jitter(load_size: int, crop_size: int) -> None:
    if crop_size < 1 or load_size < 1:
        raise ConfigError(f"load_size and crop_size must be >= 1, got {load_size} and {crop_size}.")
    if crop_size > load_size:
        raise ConfigError(
            f"crop_size={crop_size} is larger than load_size={load_size}: images are resized to load_size, then "
            f"cropped to crop_size. Set data.init_args.load_size >= crop_size (pix2pix at 256 px: 286)."
        )


def random_jitter(load_size: int, crop_size: int, flip: bool) -> v2.Compose:
    """Resize to ``load_size`` squared (bicubic, antialiased), random ``crop_size`` crop, random left-right flip."""
    steps = [v2.Resize((load_size, load_size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True)]
    if crop_size < load_size:
        steps.append(v2.RandomCrop(crop_size))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


def fixed_resize(size: int) -> v2.Resize:
    """The test-time transform: resize to ``size`` squared, no crop, no flip."""
    return v2.Resize((size, size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True)


def read_uint8(source: ImageSource, name: str, channels: int) -> Tensor:
    """One image file of ``source`` as uint8 ``[C, H, W]`` (RGB or grayscale); a clear error if it cannot be decoded."""
    try:
        return v2.functional.pil_to_tensor(decode_image(source.read(name), channels))
    except (*UNDECODABLE, ValueError) as err:
        raise DataNotFoundError(f"Cannot decode {source.root}/{name} ({err}): remove or replace the file.") from None


def as_float(image: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1] (:func:`datamodules.images.to_float`); a float image, already in [-1, 1],
    is clamped back into it (bicubic resizing overshoots)."""
    image = image.as_subclass(Tensor)
    if image.dtype == torch.uint8:
        return to_float(image)
    return image.clamp(-1.0, 1.0)
