"""VGG-19 feature maps for neural style transfer, with average pooling and the paper's layer names.

Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks" (CVPR; the earlier
version is arXiv:1508.06576), section 2: the feature space of the 16 convolutional and 5 pooling layers of
VGG-19 (Simonyan & Zisserman 2015, arXiv:1409.1556, configuration E), no fully connected layer, and "replacing
the maximum pooling operation by average pooling yields slightly more appealing results".

:class:`VGGFeatures` builds torchvision's ``vgg19().features`` (the architecture only), swaps its five
``MaxPool2d`` for ``AvgPool2d`` of the same window, and returns the feature maps of the requested layers in one
forward that stops after the deepest of them. Layers are named as the paper and Caffe name them: ``conv1_1`` ...
``conv5_4`` (a convolution's output), ``relu1_1`` ... ``relu5_4`` (after its rectifier) and ``pool1`` ... ``pool5``;
:data:`VGG19_LAYERS` maps each name to its index in torchvision's ``features``.

Weights (``weights=``):

- ``"imagenet"``: torchvision's ``IMAGENET1K_V1`` file ``vgg19-dcbb9e9d.pth`` from torch's hub cache
  (``torch.hub.get_dir()/checkpoints/``), where ``torchvision.models.vgg19(weights="IMAGENET1K_V1")`` puts it.
  Nothing is downloaded: without the file a :class:`gans.errors.DataNotFoundError` says in one line where
  to get it and where to put it.
- a path to that file (any ``.pth`` state dict in torchvision's format, ``features.<index>.weight/bias``; keys of
  the classifier and of layers past the deepest one used are ignored).
- ``"random"``: torchvision's initialisation (Kaiming normal convolutions, zero biases), seeded by ``seed``.
  For tests and offline experiments only: random filters transfer colours and some texture, not the paper's
  results.

Inputs are images in [-1, 1] (the package's convention), mapped to [0, 1] and normalised with the ImageNet
mean and std that torchvision's weights expect (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`).

VGG-19 has 143,667,240 parameters in torchvision (its weights' ``num_params``); the 16 convolutions used
here hold 20,024,384 of them (checked in tests/test_style_transfer.py).

Deviations from the paper: the paper's network is "normalised": weights rescaled so that each filter's mean
activation over ImageNet images and positions is 1 (section 2). torchvision's weights are not;
:meth:`VGGFeatures.normalize_filters` applies the same rescaling over the images it is given (no ImageNet here;
:class:`gans.tools.style_transfer.StyleTransfer` uses the content and style images). The paper's Caffe model takes BGR
images in [0, 255] minus the mean pixel; torchvision's takes RGB in [0, 1], normalised with the ImageNet mean and std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from gans.errors import ConfigError, DataNotFoundError

WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
WEIGHTS_URL = f"https://download.pytorch.org/models/{WEIGHTS_FILE}"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VGG19_CONFIG = cfgs["E"]  # torchvision's VGG-19: [64, 64, "M", 128, 128, "M", 256 x 4, "M", 512 x 4, "M", 512 x 4, "M"]


def vgg19_layer_names() -> dict[str, int]:
    """``{"conv1_1": 0, "relu1_1": 1, "conv1_2": 2, ..., "pool5": 36}``: the paper's names of torchvision's
    ``vgg19().features`` indices (each convolution is followed by its ReLU; a pool ends a block)."""
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for entry in VGG19_CONFIG:
        if entry == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"], names[f"relu{block}_{conv}"] = index, index + 1
            index, conv = index + 2, conv + 1
    return names


VGG19_LAYERS = vgg19_layer_names()


def hub_weights_path() -> Path:
    """Where torchvision keeps ``vgg19-dcbb9e9d.pth`` once downloaded: ``torch.hub.get_dir()/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def missing_weights_message(path: Path) -> str:
    return (
        f"VGG-19 weights not found: {path} does not exist. Download torchvision's IMAGENET1K_V1 file {WEIGHTS_FILE} "
        f"from {WEIGHTS_URL} and put it at {hub_weights_path()} (torch's hub cache) or give its path as weights; "
        f"weights=random runs with random filters (tests, offline trials; not the paper's results)."
    )


def load_vgg19_state(path: Path, indices: Sequence[int]) -> dict[str, Tensor]:
    """The tensors of ``features.<i>.weight/bias`` for the convolution indices ``indices`` from a torchvision
    state-dict file, read with ``weights_only=True``; one-line errors for a missing or unfitting file."""
    if not path.is_file():
        raise DataNotFoundError(missing_weights_message(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # pickle errors, truncated files, not a torch file at all
        raise ConfigError(f"Cannot read VGG-19 weights from {path} ({type(err).__name__}: {err}); expected torchvision's {WEIGHTS_FILE} ({WEIGHTS_URL}).".replace("\n", " ")) from err
    wanted = [f"features.{i}.{kind}" for i in indices for kind in ("weight", "bias")]
    missing = [key for key in wanted if not isinstance(state, dict) or key not in state]
    if missing:
        raise ConfigError(f"{path} is not a torchvision VGG-19 state dict: it lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}; expected {WEIGHTS_FILE} ({WEIGHTS_URL}).")
    return {key.removeprefix("features."): state[key] for key in wanted}


def vgg19_features(depth: int, weights: str, seed: int = 0) -> nn.Sequential:
    """The first ``depth`` modules of torchvision's ``vgg19().features`` (its ``make_layers`` on configuration E),
    with ``weights`` loaded (``"imagenet"`` or a path) or, for ``"random"``, initialised as torchvision initialises
    VGG (Kaiming normal, fan-out, zero biases) from ``seed``, leaving the global RNG alone."""
    config, size = [], 0
    for entry in VGG19_CONFIG:
        if size >= depth:
            break
        config.append(entry)
        size += 1 if entry == "M" else 2
    with torch.device("meta"):  # no default init: the weights are loaded or drawn below
        features = make_layers(config)[:depth]
    convs = [i for i, module in enumerate(features) if isinstance(module, nn.Conv2d)]
    if weights != "random":
        path = hub_weights_path() if weights == "imagenet" else Path(weights).expanduser()
        features.load_state_dict(load_vgg19_state(path, convs), assign=True)
        return features
    features = features.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    for i in convs:
        nn.init.kaiming_normal_(features[i].weight, mode="fan_out", nonlinearity="relu", generator=generator)
        nn.init.zeros_(features[i].bias)
    return features


class VGGFeatures(nn.Module):
    """Frozen VGG-19 convolutional layers returning the feature maps of named layers (see the module docstring).

    ``forward(images)`` takes ``[N, 3, H, W]`` in [-1, 1] and returns ``{name: [N, C_l, H_l, W_l]}`` for every
    name in ``layers``. Only the layers up to the deepest requested one are built and run.
    """

    def __init__(self, layers: Sequence[str], weights: str = "imagenet", pooling: str = "avg", seed: int = 0) -> None:
        """
        Args:
            layers: names of the layers whose outputs ``forward`` returns (``relu4_2``, ``conv1_1``, ``pool3``, ...).
            weights: ``"imagenet"`` (torchvision's file in torch's hub cache), a path to that file, or ``"random"``
                (seeded torchvision initialisation: tests and offline runs only).
            pooling: ``"avg"`` (the paper, section 2) or ``"max"`` (VGG-19 as trained).
            seed: seed of the random weights (``weights="random"`` only).
        """
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise ConfigError(f"Unknown VGG-19 layers {unknown or list(layers)}: choose from {', '.join(VGG19_LAYERS)}.")
        if pooling not in ("avg", "max"):
            raise ConfigError(f"pooling must be 'avg' (the paper) or 'max', got {pooling!r}.")
        self.layers = tuple(layers)
        self.indices = {name: VGG19_LAYERS[name] for name in self.layers}
        self.features = vgg19_features(max(self.indices.values()) + 1, weights, seed)
        for i, module in enumerate(self.features):
            if isinstance(module, nn.MaxPool2d) and pooling == "avg":
                self.features[i] = nn.AvgPool2d(kernel_size=module.kernel_size, stride=module.stride)
            elif isinstance(module, nn.ReLU):
                module.inplace = False  # a returned conv output must not be rectified in place by the next layer
        self.weights = weights
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)  # no batch norm or dropout: train and eval mode compute the same

    def normalize(self, images: Tensor) -> Tensor:
        """[-1, 1] -> [0, 1] -> ImageNet-normalised, the input torchvision's VGG weights expect."""
        return (images.add(1).div(2) - self.mean) / self.std

    @property
    def min_size(self) -> int:
        """The smallest image side the layers take: 2 to the number of poolings they contain."""
        return 2 ** sum(isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in self.features)

    @torch.no_grad()
    def normalize_filters(self, images: Tensor) -> Tensor:
        """Section 2's normalised network: rescale the convolutions so that the mean rectified activation of each
        filter over ``images`` (``[N, 3, H, W]`` in [-1, 1]) and positions is 1, without changing what the
        network computes beyond that scale.

        With ``m_l`` the mean of layer l's rectified filters in the network as it is, filter i of layer l becomes
        ``W[i, j] m_{l-1}[j] / m_l[i]`` and ``b[i] / m_l[i]``: it undoes the scaling of its inputs (ReLU and average
        pooling commute with positive per-channel scales) and divides its output by its own mean, so every feature
        map is the old one divided by a positive factor per filter ("without changing its output", as the paper
        says). Filters silent on ``images`` keep their scale. Returns the ``m_l`` of all convolutions, concatenated.
        """
        means = []
        x = self.normalize(images)
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                mean = x.relu().mean(dim=(0, 2, 3))  # [C_l] of the network as it is
                means.append(torch.where(mean > 0, mean, torch.ones_like(mean)))
        inputs = torch.ones(3, device=images.device)
        for layer, mean in zip((m for m in self.features if isinstance(m, nn.Conv2d)), means):
            layer.weight.mul_(inputs.view(1, -1, 1, 1)).div_(mean.view(-1, 1, 1, 1))
            layer.bias.div_(mean)
            inputs = mean
        return torch.cat(means)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        wanted = {index: name for name, index in self.indices.items()}
        out: dict[str, Tensor] = {}
        x = self.normalize(images)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return {name: out[name] for name in self.layers}
