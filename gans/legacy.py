"""Module paths from before the package was arranged by role (gans 0.1 up to the restructure), still importable.

Checkpoints store the class that wrote them (``gan_progress.model_class``, e.g. ``gans.dcgan.DCGAN``), configs
name classes by path (``class_path: gans.stylegan2.StyleGAN2``) and notebooks import from the old modules
(``from gans.layers import SelfAttention``). :func:`install` adds an import hook that serves each old name
as an alias of the module that now holds its code, and :func:`current_name` translates a stored class path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

# Old module -> the module that holds its code now.
MOVED = {
    "gans.core": "gans.training.core",
    "gans.base": "gans.training.gan_module",
    "gans.translation": "gans.training.image_to_image",
    "gans.losses": "gans.training.losses",
    "gans.latents": "gans.training.latents",
    "gans.tricks": "gans.training.tricks",
    "gans.distributed": "gans.training.distributed",
    "gans.resample": "gans.nn.resample",
    "gans.resnet": "gans.nn.resnet",
    "gans.translation_networks": "gans.models.translation.networks",
    "gans.inception": "gans.metrics.inception",
    "gans.vgg": "gans.metrics.vgg",
    "gans.perceptual": "gans.metrics.perceptual",
    "gans.projector": "gans.tools.projector",
    "gans.style_tools": "gans.tools.style_tools",
    "gans.style_transfer": "gans.tools.style_transfer",
    "gans.style": "gans.models.style.base",
    "gans.progan": "gans.models.style.progan",
    "gans.stylegan": "gans.models.style.stylegan",
    "gans.stylegan2": "gans.models.style.stylegan2",
    "gans.gan": "gans.models.classic.gan",
    "gans.cgan": "gans.models.classic.cgan",
    "gans.dcgan": "gans.models.classic.dcgan",
    "gans.lsgan": "gans.models.classic.lsgan",
    "gans.wgan": "gans.models.classic.wgan",
    "gans.wgan_gp": "gans.models.classic.wgan_gp",
    "gans.acgan": "gans.models.conditional.acgan",
    "gans.sngan": "gans.models.conditional.sngan",
    "gans.sagan": "gans.models.conditional.sagan",
    "gans.biggan": "gans.models.conditional.biggan",
    "gans.pix2pix": "gans.models.translation.pix2pix",
    "gans.cyclegan": "gans.models.translation.cyclegan",
    "gans.cogan": "gans.models.translation.cogan",
    "gans.stargan": "gans.models.translation.stargan",
}
# Old modules whose names were split over several modules: each name -> its module now.
SPLIT = {
    "gans.layers": {
        **dict.fromkeys(["Norm", "dcgan_init_", "norm2d", "Maxout", "AlwaysDropout"], "gans.nn.basic"),
        **dict.fromkeys(["is_power_of_two", "check_resolution"], "gans.checks"),
        **dict.fromkeys(["EqualizedLinear", "EqualizedConv2d", "PixelNorm", "MinibatchStdDev"], "gans.nn.equalized"),
        **dict.fromkeys(["LRELU_GAIN", "lrelu_agc", "MappingNetwork", "modulated_conv2d"], "gans.nn.style"),
        **dict.fromkeys(["spectral_norm", "sn_conv2d", "sn_linear", "SelfAttention"], "gans.nn.spectral"),
        **dict.fromkeys(["ClassEmbedding", "ConditionalBatchNorm2d", "projection", "ProjectionHead"], "gans.nn.conditional"),
        **dict.fromkeys(["CrossReplicaBatchNorm2d", "cross_replica_batchnorm", "set_sum_over_ranks", "local_batchnorm"], "gans.nn.cross_replica"),
    },
}


def current_name(class_path: str) -> str:
    """``class_path`` (``module.Class``) with an old module replaced by the one that holds the class now."""
    module, _, name = class_path.rpartition(".")
    if module in MOVED:
        return f"{MOVED[module]}.{name}"
    if module in SPLIT and name in SPLIT[module]:
        return f"{SPLIT[module][name]}.{name}"
    return class_path


class _SplitModule(ModuleType):
    """An old module whose names now live in several modules: each is imported on first use."""

    def __getattr__(self, name: str) -> Any:
        home = SPLIT[self.__name__].get(name)
        if home is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self._own_specs: dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in MOVED or fullname in SPLIT:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> ModuleType:
        if spec.name in MOVED:
            module = importlib.import_module(MOVED[spec.name])  # the same module object under its old name too
            self._own_specs[module.__name__] = module.__spec__
            return module
        return _SplitModule(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        if not isinstance(module, _SplitModule):  # the import system stamped the alias's spec on the real module
            module.__spec__ = self._own_specs[module.__name__]
            module.__loader__ = module.__spec__.loader


def install() -> None:
    """Serve the old module names (idempotent)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
