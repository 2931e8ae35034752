"""What callbacks and tools rely on, stated once as typed contracts (:class:`typing.Protocol`).

A callback or tool that needs something of a model, a network or a datamodule names its contract here and
checks it once, when it is set up (:func:`require`): a module that lacks a member fails there, in one line
naming the member, the contract and the callback that needs it, instead of with an ``AttributeError``
somewhere in training. After the check the members are used directly. Optional capabilities (a datamodule that
may or may not serve growth stages, or cache statistics under a stable key) are tested with ``isinstance``
against the runtime-checkable protocol, never by probing names.

The contracts and who relies on them:

- :class:`Sampler` (every :class:`gans.training.gan_module.GANModule`): ``z_dim``, ``label_space``, ``sample``,
  ``sample_indexed``; :class:`callbacks.SampleGrid`, :class:`callbacks.FID`, :class:`callbacks.ConditionalAccuracy`.
- :class:`StyleGenerator` (StyleGAN's and StyleGAN2's generators, :mod:`gans.models.style.base`): a
  :class:`StyleMapping` z -> ws with its tracked ``w_avg``, a :class:`StyleSynthesis` ws -> images with the resolution
  each w is read at, ``num_ws`` and the sizes; the style tools (:mod:`gans.tools.style_tools`), the projector
  (:mod:`gans.tools.projector`) and, through :class:`StyleSampler`, :class:`callbacks.PPL`. :class:`StyleModel`
  adds what training in W uses (``mapped_latents``: style mixing, the path length regulariser);
  :class:`NoiseLayer` is the optional per-layer noise switch of the style tools' noise figure.
- :class:`TransformableGenerator` (StyleGAN3's generator: a :class:`StyleGenerator` whose synthesis has an input
  layer with a user ``transform``): the equivariance tools (:mod:`gans.tools.equivariance_pictures`) and, through
  :class:`TransformableSampler`, :class:`callbacks.Equivariance`.
- :class:`GrowingModel` (ProGAN, StyleGAN; required) and :class:`GrowingData` (:class:`datamodules.ImageFolderDataModule`;
  optional): :class:`callbacks.ProgressiveGrowing`. Both extend :class:`TrainingProgress` (the core's counters).
- :class:`ProgressReporter` (the core's counters, ``max_kimg`` and the latest progress-bar values; optional):
  :class:`callbacks.KimgProgressBar`.
- :class:`EMAHost` (GANModule: ``generator``; TranslationGAN: its generators): :class:`callbacks.EMA`, which keeps
  the average of network ``name`` as the module's ``<name>_ema`` (:func:`network`, :func:`ema_copy`).
- Data, all optional: :class:`ShapedData` (``data_shape``, of a datamodule or a model: :func:`data_shape`),
  :class:`LabelledData` (``num_classes``, checked against a conditional model's),
  :class:`RealImages` and :class:`CacheKeyed` (every :class:`datamodules.base.GANDataModule`): the real images FID
  and ConditionalAccuracy compare against (:func:`real_dataset`; FID stratifies its reference by
  :func:`real_labels`, read from a :class:`LabelledDataset`) and the key of their caches; :class:`CacheNamed`,
  a feature extractor's name in FID's cache.

The protocols' first docstring line is the noun phrase :func:`require` puts in its message.
"""

from __future__ import annotations

import typing
from typing import Any, Protocol, Sequence, TypeVar, runtime_checkable

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from gans.errors import ConfigError
from gans.labels import LabelSpace

NOISE_MODES = ("random", "const", "none")  # what Synthesis.__call__ takes as noise_mode

T = TypeVar("T")


def check_noise_mode(noise_mode: str) -> str:
    """``noise_mode`` when it is one of :data:`NOISE_MODES`, else a one-line ConfigError."""
    if noise_mode not in NOISE_MODES:
        raise ConfigError(f"Unknown noise_mode {noise_mode!r}: choose one of {', '.join(NOISE_MODES)}.")
    return noise_mode


# Style-based generators (StyleGAN, StyleGAN2; the protocol of gans.models.style.base).


@runtime_checkable
class StyleMapping(Protocol):
    """a mapping network z -> ws with a tracked average w"""

    w_avg: Tensor  # [w_dim]: the tracked average w (truncation trick, StyleGAN Appendix B)

    def __call__(self, z: Tensor, c: Tensor | None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                 update_w_avg: bool = True) -> Tensor:
        """ws ``[N, num_ws, w_dim]`` of latents ``z [N, z_dim]`` and class vectors ``c [N, c_dim]`` (None: unconditional)."""
        ...


@runtime_checkable
class StyleSynthesis(Protocol):
    """a synthesis network ws -> images"""

    ws_resolutions: Sequence[int]  # the resolution of the layer that reads each of the num_ws ws

    def __call__(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        """Images ``[N, C, H, W]`` in [-1, 1] of ``ws [N, num_ws, w_dim]``; ``noise_mode`` one of :data:`NOISE_MODES`."""
        ...


@runtime_checkable
class StyleGenerator(Protocol):
    """a style-based generator (a mapping z -> ws and a synthesis ws -> images)

    StyleGAN's and StyleGAN2's generators (:class:`gans.models.style.base.StyleGenerator`).
    """

    mapping: StyleMapping
    synthesis: StyleSynthesis
    num_ws: int
    z_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    label_space: LabelSpace

    def class_vector(self, labels: Tensor | None) -> Tensor | None:
        """The class vector the mapping takes for labels in the package's form (:mod:`gans.labels`); None when unconditional."""
        ...


@runtime_checkable
class NoiseLayer(Protocol):
    """a synthesis layer whose per-pixel noise can be switched off (the style tools' noise figures)"""

    use_noise: bool  # read at every forward
    resolution: int


@runtime_checkable
class InputTransform(Protocol):
    """an input layer with a user transform"""

    transform: Tensor  # [3, 3] buffer: the image is drawn at the coordinates it maps to (identity: as trained)


@runtime_checkable
class TransformableSynthesis(StyleSynthesis, Protocol):
    """a synthesis network whose input coordinates can be transformed"""

    input: InputTransform


@runtime_checkable
class TransformableGenerator(StyleGenerator, Protocol):
    """a style-based generator whose image can be translated and rotated through its input transform (StyleGAN3)

    :class:`gans.models.style.stylegan3.StyleGAN3Generator`: its ``synthesis.input.transform`` is the inverse of the
    transform applied to the image (NVIDIA's ``gen_images.py``).
    """

    synthesis: TransformableSynthesis
    c_dim: int  # width of the class vector the mapping takes (0: unconditional)


# Sampling.


@runtime_checkable
class Sampler(Protocol):
    """a model that draws samples

    Every :class:`gans.training.gan_module.GANModule`.
    """

    z_dim: int
    label_space: LabelSpace

    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """``n`` samples (with the model's truncation), from the EMA generator when one is kept."""
        ...

    def sample_indexed(self, indices: Tensor, labels: Tensor | None = None) -> Tensor:
        """Sample i from the latent seeded by i and the given label, or the i-th of :meth:`gans.labels.LabelSpace.for_indices`."""
        ...


@runtime_checkable
class StyleSampler(Protocol):
    """a model that samples from a style-based generator

    StyleGAN, StyleGAN2 (:class:`gans.models.style.base.StyleBasedGAN`).
    """

    label_space: LabelSpace
    sampling_generator: StyleGenerator  # the EMA generator when callbacks.EMA keeps one


@runtime_checkable
class TransformableSampler(Protocol):
    """a model that samples from a style-based generator with an input transform

    StyleGAN3 (:class:`gans.models.style.stylegan3.StyleGAN3`).
    """

    label_space: LabelSpace
    sampling_generator: TransformableGenerator  # the EMA generator when callbacks.EMA keeps one


@runtime_checkable
class StyleModel(StyleSampler, Protocol):
    """a style-based GAN module

    :class:`gans.models.style.base.StyleBasedGAN`.
    """

    generator: StyleGenerator

    def mapped_latents(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Training ws ``[N, num_ws, w_dim]``: the mapping, with style mixing in training mode."""
        ...


# Training: progress, growth, EMA.


@runtime_checkable
class TrainingProgress(Protocol):
    """a module that counts its training

    :class:`gans.training.core.AdversarialModule`.
    """

    images_seen: int  # real images shown to D, all ranks
    g_steps: int  # generator updates

    def log_train(self, metrics: dict[str, Any], prog_bar: bool = False, always: bool = False) -> None:
        ...


@runtime_checkable
class ProgressReporter(TrainingProgress, Protocol):
    """a module that reports its progress to the progress bar

    :class:`gans.training.core.AdversarialModule`; :class:`callbacks.KimgProgressBar` (optional: another module gets
    Lightning's bar).
    """

    max_kimg: float  # the run ends after this many thousand images; 0 = no limit
    progress_bar_values: dict[str, Any]  # the latest values logged with prog_bar=True (tensors not read yet)


@runtime_checkable
class GrowingModel(TrainingProgress, Protocol):
    """a growing model

    :class:`gans.ProGAN`, :class:`gans.StyleGAN` (:class:`gans.models.style.progan.ProgressiveGrowth`).
    """

    resolutions: Sequence[int]  # the stages it can run at, ascending
    current_resolution: int
    alpha: float  # fade-in weight of the newest block
    max_kimg: float  # 0 = no limit

    def set_growth(self, resolution: int, alpha: float = 1.0) -> None:
        ...

    def request_new_epoch(self) -> None:
        """End the epoch before the current batch trains, so the next one starts from rebuilt dataloaders."""
        ...

    def lr_decay_share(self) -> float:
        """The last share of ``max_kimg`` over which the model decays its learning rates itself (0 = off)."""
        ...


@runtime_checkable
class EMAHost(TrainingProgress, Protocol):
    """a module that names the networks to average

    GANModule (``generator``), TranslationGAN (its generators).
    """

    ema_networks: Sequence[str]  # names of nn.Module attributes; the average of `name` is kept as `<name>_ema`


# Data.


@runtime_checkable
class ShapedData(Protocol):
    """data that state the shape of one sample"""

    data_shape: Sequence[int]  # (C, H, W) for images, (2,) for 2-D points


@runtime_checkable
class LabelledData(Protocol):
    """data that state their classes"""

    num_classes: int | Sequence[int]  # 0 = unlabelled; an int (one head) or one count per label head (gans.labels)


@runtime_checkable
class RealImages(Protocol):
    """a datamodule that offers its real images

    Every :class:`datamodules.base.GANDataModule`.
    """

    def real_dataset(self) -> Dataset:
        """The training images as a map-style dataset of ``(image, label)`` in [-1, 1], unshuffled and unaugmented."""
        ...


@runtime_checkable
class LabelledDataset(Protocol):
    """a dataset that holds its labels

    :class:`datamodules.images.ImageDataset`; read by :func:`real_labels` without decoding an image.
    """

    labels: Tensor | None  # [N] or [N, heads] (gans.labels); None = unlabelled


@runtime_checkable
class CacheKeyed(Protocol):
    """data with a stable identity, under which statistics are cached"""

    def cache_key(self) -> str:
        ...


@runtime_checkable
class CacheNamed(Protocol):
    """a feature extractor with a name for caches of its statistics (gans.metrics.inception.InceptionFeatures)"""

    cache_name: str


@runtime_checkable
class GrowingData(Protocol):
    """a datamodule that serves growth stages

    :class:`datamodules.ImageFolderDataModule` and its subclasses.
    """

    batch_size: int

    def set_stage(self, resolution: int, batch_size: int | None = None) -> None:
        """Serve images at ``resolution`` in batches of ``batch_size`` from the next ``train_dataloader()`` on."""
        ...


# Checking.


def members(contract: type) -> list[str]:
    """The members a contract asks for: its annotated attributes and its methods (``__call__`` included), over
    the contract and the contracts it extends."""
    names: dict[str, None] = {}
    for cls in reversed(contract.__mro__):
        if cls in (object, Protocol, typing.Generic) or not getattr(cls, "_is_protocol", False):
            continue
        for name in cls.__dict__.get("__annotations__", {}):
            names[name] = None
        for name, value in cls.__dict__.items():
            if callable(value) and (name == "__call__" or not name.startswith("_")):
                names[name] = None
    return list(names)


def missing(obj: Any, contract: type, prefix: str = "") -> list[str]:
    """The members of ``contract`` that ``obj`` lacks (``a.b`` for a member of a member whose type is a contract)."""
    hints = typing.get_type_hints(contract)
    absent = []
    for name in members(contract):
        if not hasattr(obj, name):
            absent.append(prefix + name)
            continue
        nested = hints.get(name)
        if isinstance(nested, type) and getattr(nested, "_is_protocol", False):
            absent += missing(getattr(obj, name), nested, f"{prefix}{name}.")
    return absent


def require(obj: T, contract: type, user: str, fix: str = "") -> T:
    """``obj`` when it has every member of ``contract``, else a one-line ConfigError naming what ``user`` (the
    callback or tool) needs, the members ``obj`` lacks and the ``fix``."""
    absent = missing(obj, contract)
    if absent:
        what = (contract.__doc__ or contract.__name__).strip().splitlines()[0]
        lack = f"there is none (to provide {', '.join(absent)})" if obj is None else f"{type(obj).__name__} lacks {', '.join(absent)}"
        raise ConfigError(f"{user} needs {what} (gans.training.contracts.{contract.__name__}); {lack}{': ' + fix if fix else ''}.")
    return obj


# Optional capabilities, resolved in one place.


def data_shape(*sources: Any) -> tuple[int, ...] | None:
    """The shape of one sample as the first of ``sources`` (a datamodule, a model) that states one gives it; None
    when none does."""
    for source in sources:
        if isinstance(source, ShapedData):
            return tuple(source.data_shape)
    return None


def real_dataset(trainer: L.Trainer) -> Dataset:
    """The real images to compare against: the datamodule's :meth:`RealImages.real_dataset`, else the training
    dataloader's dataset."""
    datamodule = trainer.datamodule
    if isinstance(datamodule, RealImages):
        return datamodule.real_dataset()
    return trainer.train_dataloader.dataset


def real_labels(trainer: L.Trainer, dataset: Dataset) -> Tensor | None:
    """The labels of :func:`real_dataset`'s items (``[N]`` or ``[N, heads]``) when the datamodule is labelled
    (:class:`LabelledData` with classes), else None: the dataset's :class:`LabelledDataset` labels, or each item's."""
    datamodule = trainer.datamodule
    if not isinstance(datamodule, LabelledData) or not LabelSpace.from_num_classes(datamodule.num_classes).conditional:
        return None
    if isinstance(dataset, LabelledDataset) and dataset.labels is not None:
        return dataset.labels
    return torch.stack([torch.as_tensor(dataset[i][1]) for i in range(len(dataset))])


def ema_name(name: str) -> str:
    """Where :class:`callbacks.EMA` keeps the average of network ``name`` on the module."""
    return f"{name}_ema"


def network(host: nn.Module, name: str, user: str) -> nn.Module:
    """The network attribute ``name`` of ``host``; a one-line ConfigError naming it when ``host`` has none."""
    found = dict(host.named_children()).get(name)
    if found is None:
        raise ConfigError(f"{user}: {type(host).__name__} names a network {name!r} but has no nn.Module attribute {name}.")
    return found


def ema_copy(host: nn.Module, name: str) -> nn.Module | None:
    """The EMA copy of network ``name`` (``<name>_ema``), or None while :class:`callbacks.EMA` keeps none."""
    return dict(host.named_children()).get(ema_name(name))
