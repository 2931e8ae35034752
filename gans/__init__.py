"""gans: generative adversarial networks for PyTorch Lightning, one paper-faithful module per variant.

``from gans import StyleGAN2`` imports that model's module only when the name is first used (PEP 562), so
``import gans.errors`` or ``import datamodules`` loads no model. The package by role:

- :mod:`gans.errors`, :mod:`gans.checks`, :mod:`gans.cache`, :mod:`gans.labels`: what data and models share
- :mod:`gans.nn`: building blocks by family
- :mod:`gans.training`: the adversarial core, the noise-to-image and image-to-image modules, phases, losses
- :mod:`gans.metrics`: Inception and VGG features, perceptual distances
- :mod:`gans.models`: one module per variant, by family
- :mod:`gans.tools`: pictures, the projector, StyleGAN's figures, neural style transfer
- :mod:`gans.cli`: the ``lightning`` command, the one place that assembles models, data and callbacks
"""

from __future__ import annotations

import importlib
from typing import Any

from gans import legacy

# Public name -> the module that defines it.
_EXPORTS = {
    "AdversarialModule": "gans.training.core",
    "GANModule": "gans.training.gan_module",
    "TranslationGAN": "gans.training.image_to_image",
    "GAN": "gans.models.classic.gan",
    "CGAN": "gans.models.classic.cgan",
    "DCGAN": "gans.models.classic.dcgan",
    "LSGAN": "gans.models.classic.lsgan",
    "WGAN": "gans.models.classic.wgan",
    "WGANGP": "gans.models.classic.wgan_gp",
    "ACGAN": "gans.models.conditional.acgan",
    "SNGAN": "gans.models.conditional.sngan",
    "ProjectionGAN": "gans.models.conditional.sngan",
    "SAGAN": "gans.models.conditional.sagan",
    "BigGAN": "gans.models.conditional.biggan",
    "ProGAN": "gans.models.style.progan",
    "MSGGAN": "gans.models.style.msggan",
    "StyleGAN": "gans.models.style.stylegan",
    "StyleGAN2": "gans.models.style.stylegan2",
    "StyleGAN3": "gans.models.style.stylegan3",
    "Pix2Pix": "gans.models.translation.pix2pix",
    "CycleGAN": "gans.models.translation.cyclegan",
    "CoGAN": "gans.models.translation.cogan",
    "StarGAN": "gans.models.translation.stargan",
    "StyleTransfer": "gans.tools.style_transfer",
}

__all__ = list(_EXPORTS)
__version__ = "0.1.0"

legacy.install()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gans' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
