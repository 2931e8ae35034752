"""What the style-based generators share: the generator contract, style mixing and truncation.

StyleGAN (Karras et al. 2019, arXiv:1812.04948) and StyleGAN2 (Karras et al. 2020, arXiv:1912.04958)
split the generator into a mapping network z -> w (:class:`gans.nn.style.MappingNetwork`) and a
synthesis network that takes one w per layer. Every tool in the package that works in W (style-mixing
grids, truncation grids, interpolation, projection, perceptual path length, the path length
regulariser) relies only on this contract, :class:`gans.training.contracts.StyleGenerator`, which both
generators implement (callbacks and tools check it when they are set up, and name a missing member):

- ``generator.mapping(z, c, truncation_psi=1, truncation_cutoff=None, update_w_avg=True)`` ->
  ``ws [N, num_ws, w_dim]``; ``c`` is the class vector (:meth:`StyleGenerator.class_vector`), None
  when unconditional; ``generator.mapping.w_avg`` is the tracked average w.
- ``generator.synthesis(ws, noise_mode="random")`` -> images; ``noise_mode`` is ``"random"`` (fresh
  per-pixel noise), ``"const"`` (the fixed noise buffers of each layer) or ``"none"``.
- ``generator(z, labels=None, truncation_psi=1, truncation_cutoff=None, noise_mode="random")``, the
  composition, with labels in the package's form (:mod:`gans.labels`).
- attributes ``z_dim``, ``w_dim``, ``num_ws``, ``img_resolution``, ``img_channels``, ``label_space``, and
  ``synthesis.ws_resolutions``: the resolution of the layer that reads each of the ``num_ws`` ws
  (a style-mixing grid's "coarse 4-8, middle 16-32, fine 64+" are index sets of it).

:class:`StyleBasedGAN` is the LightningModule layer both models stand on: style-mixing regularisation
in training (StyleGAN section 3.1: with probability ``style_mixing_prob`` a batch's ws switch to those
of a second latent from a random crossover layer on), and the truncation trick in :meth:`sample`
(StyleGAN Appendix B; FID, grids and ``predict`` draw through it; ``truncation_psi`` 1 = off, as the papers'
FIDs are computed).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.training.contracts import NOISE_MODES, check_noise_mode  # noqa: F401 (part of the synthesis contract; re-exported)
from gans.training.gan_module import GANModule


class StyleGenerator(nn.Module):
    """Mapping + synthesis, with the labels of :mod:`gans.labels` turned into the class vector the mapping takes.

    Subclasses set ``self.mapping`` and ``self.synthesis`` and the attributes of
    :class:`gans.training.contracts.StyleGenerator` (``z_dim``, ``w_dim``, ``num_ws``, ``img_resolution``,
    ``img_channels``, ``label_space``), which this class then implements.
    """

    label_space: LabelSpace
    mapping: nn.Module
    synthesis: nn.Module

    def class_vector(self, labels: Tensor | None) -> Tensor | None:
        """The one-hot (one head) or concatenated one-hot (several heads) vector of ``labels``, or None."""
        if not self.label_space.conditional:
            return None
        self.label_space.check(labels, type(self).__name__)
        return self.label_space.multi_hot(labels)

    def forward(
        self,
        z: Tensor,
        labels: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
    ) -> Tensor:
        ws = self.mapping(z, self.class_vector(labels), truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


def mix_styles(ws: Tensor, ws_other: Tensor, crossover: int) -> Tensor:
    """``ws`` with the entries from layer ``crossover`` on taken from ``ws_other`` (both ``[N, num_ws, w_dim]``)."""
    return torch.cat([ws[:, :crossover], ws_other[:, crossover:]], dim=1)


class StyleBasedGAN(GANModule):
    """A :class:`gans.training.gan_module.GANModule` whose generator is a :class:`StyleGenerator`: a
    :class:`gans.training.contracts.StyleModel` (what PPL, the style tools and the path length regulariser use).
    Settings are read from ``self.hparams``, as in the whole GANModule family."""

    def __init__(
        self,
        generator: StyleGenerator,
        discriminator: nn.Module,
        z_dim: int,
        style_mixing_prob: float = 0.9,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            generator: a :class:`StyleGenerator`.
            discriminator: maps ``(images, labels)`` to logits ``[N]``.
            z_dim: latent size.
            style_mixing_prob: probability that a training batch mixes the styles of two latents (0.9; 0 = off).
            truncation_psi: psi of the truncation trick when sampling (grids, FID, predict); 1 = off.
            truncation_cutoff: truncate only the first this many ws (StyleGAN: 8 at 1024); None = all.
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule`.
        """
        if not 0.0 <= style_mixing_prob <= 1.0:
            raise ConfigError(f"style_mixing_prob must be in [0, 1], got {style_mixing_prob}.")
        super().__init__(generator=generator, discriminator=discriminator, z_dim=z_dim, **kwargs)

    # Training: mapping with style mixing, then synthesis.

    def mapped_latents(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """``ws`` for training: ``mapping(z, c)``, mixed (with probability ``style_mixing_prob``) with the ws of
        a fresh latent from a crossover layer drawn uniformly in ``[1, num_ws)``, one per batch as the official code."""
        generator = self.generator
        c = generator.class_vector(labels)
        ws = generator.mapping(z, c)
        p, layers = self.hparams.style_mixing_prob, self.mixing_layers()
        if self.training and p > 0 and layers > 1:
            crossover = int(torch.randint(1, layers, ()))
            if float(torch.rand(())) < p:
                ws_other = generator.mapping(torch.randn_like(z), c, update_w_avg=False)
                ws = mix_styles(ws, ws_other, crossover)
        return ws

    def path_length_latents(self, z: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """The path length regulariser's J is taken with respect to the training ws (StyleGAN2, arXiv:1912.04958,
        eq. 4; the official ``Greg`` phase: :meth:`mapped_latents`, style mixing included), ``[N, num_ws, w_dim]``."""
        ws = self.mapped_latents(z, labels)
        return ws, self.generator.synthesis(ws)

    def mixing_layers(self) -> int:
        """The crossover of style mixing is drawn in ``[1, mixing_layers())``: every ws (a growing model: the ws its
        current stage reads)."""
        return self.generator.num_ws

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """The training generator: :meth:`mapped_latents` (style mixing in training mode), then synthesis."""
        return self.generator.synthesis(self.mapped_latents(z, labels))

    # Sampling: the truncation trick.

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: Tensor | None = None,
        z: Tensor | None = None,
        truncation_psi: float | None = None,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
    ) -> Tensor:
        """``n`` samples from :attr:`sampling_generator`, truncated with ``truncation_psi`` / ``truncation_cutoff``
        (default: the model's ``truncation_psi`` / ``truncation_cutoff``)."""
        z, labels = self.sampling_inputs(n, labels, z)
        psi = self.hparams.truncation_psi if truncation_psi is None else truncation_psi
        cutoff = self.hparams.truncation_cutoff if truncation_cutoff is None else truncation_cutoff
        return self.sampling_generator(z, labels, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode=check_noise_mode(noise_mode))
