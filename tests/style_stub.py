"""A tiny generator with the protocol of gans.models.style.base (and a LightningModule around it) for the style tools' tests.

Like the real ones: :class:`gans.nn.style.MappingNetwork`, a learned 4x4 constant, layers that modulate their
input by an affine map of their w, add ``noise_const`` (or fresh) noise times ``noise_strength`` when
``use_noise``, and record their ``resolution``; a toRGB reading the last w. 16 px, 7 ws at 4, 4, 8, 8, 16, 16, 16.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.labels import LabelSpace
from gans.models.style.base import StyleBasedGAN, StyleGenerator, check_noise_mode
from gans.nn.style import MappingNetwork


class StubLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool) -> None:
        super().__init__()
        self.resolution, self.up = resolution, up
        self.affine = nn.Linear(w_dim, in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.tensor(0.3))
        self.use_noise = True

    def forward(self, x: Tensor, w: Tensor, noise_mode: str) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x * (1 + self.affine(w))[:, :, None, None])
        if self.use_noise and noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return F.leaky_relu(x, 0.2)


class StubSynthesis(nn.Module):
    def __init__(self, w_dim: int, img_channels: int, channels: int = 8) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(channels, 4, 4))
        specs = [(4, False), (4, False), (8, True), (8, False), (16, True), (16, False)]
        self.layers = nn.ModuleList([StubLayer(channels, channels, w_dim, res, up) for res, up in specs])
        self.to_rgb_affine = nn.Linear(w_dim, channels)
        self.to_rgb = nn.Conv2d(channels, img_channels, 1)
        self.ws_resolutions = [res for res, _ in specs] + [16]
        self.num_ws = len(self.ws_resolutions)

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        check_noise_mode(noise_mode)
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i], noise_mode)
        return self.to_rgb(x * (1 + self.to_rgb_affine(ws[:, -1]))[:, :, None, None])


class StubGenerator(StyleGenerator):
    def __init__(self, z_dim: int = 8, w_dim: int = 8, img_channels: int = 1, num_classes: int = 0) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, 16, img_channels
        self.label_space = LabelSpace.from_num_classes(num_classes)
        self.synthesis = StubSynthesis(w_dim, img_channels)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, sum(self.label_space.heads), w_dim, self.num_ws, num_layers=2, lr_multiplier=1.0)


class StubDiscriminator(nn.Module):
    def __init__(self, img_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(img_channels, 4, 4, stride=4)
        self.out = nn.Linear(4 * 4 * 4, 1)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.out(F.leaky_relu(self.conv(images), 0.2).flatten(1)).squeeze(1)


class StubStyleGAN(StyleBasedGAN):
    """A 16 px StyleBasedGAN for fits and checkpoints in tests."""

    def __init__(self, img_channels: int = 1, z_dim: int = 8, w_dim: int = 8, num_classes: int = 0, **kwargs: Any) -> None:
        super().__init__(
            generator=StubGenerator(z_dim, w_dim, img_channels, num_classes),
            discriminator=StubDiscriminator(img_channels),
            z_dim=z_dim,
            num_classes=num_classes,
            **kwargs,
        )
        self.data_shape = (img_channels, 16, 16)
