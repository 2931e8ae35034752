"""CoGAN: Liu & Tuzel 2016, "Coupled Generative Adversarial Networks", arXiv:1606.07536.

Two GANs, one per domain, that learn the joint distribution of corresponding images from unpaired samples of each
domain (section 3). The generators share their first layers, which decode the high-level semantics, and differ
only in the last, which render each domain's details; the discriminators differ in their first layers and share
the rest. Fed the same z, the two generators draw a corresponding pair (a digit and its edge image, a digit and its
negative: section 5, figure 2). Here the sharing is literal: :class:`CoupledGenerator` is one network with the
shared trunk and two heads, :class:`CoupledDiscriminator` one network with two first layers and the shared tail,
so each shared layer is one set of parameters, updated by the gradients of both domains.

The MNIST networks are Table 1's, as the official PyTorch code builds them (mingyuliutw/CoGAN,
``cogan_pytorch/src/net_cogan_mnistedge.py``, 28x28 images):

- G: z (100) -> 4x4 transposed conv (1024) -> three 3x3 stride-2 transposed convs (512, 256, 128), each with
  batch norm (no affine) and PReLU: 4 -> 7 -> 13 -> 25 px, shared; then per domain a 6x6 transposed conv to 28 px
  and a sigmoid. 7,842,694 parameters.
- D: per domain a 5x5 conv (20) and 2x2 max pooling; shared: a 5x5 conv (50), max pooling, a 4x4 conv (500) on
  the 4x4 map (the paper's FC 500) with PReLU, and a 1x1 conv to 2 class scores (real, fake) under a softmax. The
  logit of "real" is their difference, so the official softmax cross-entropy is exactly the binary cross-entropy
  on it. 427,593 parameters.

Training as the official solver (``trainer_cogan_mnistedge.py``): Glorot-uniform weights with gain sqrt(2) and
biases 0.1; both domains' fakes from the same z ~ N(0, I); D's loss is the cross-entropy of real and fake over
both domains' batches stacked, not halved; G's the non-saturating cross-entropy of its fakes labelled real; Adam
2e-4, (0.5, 0.999), weight decay 0.0005, constant lr, one D step then one G step per batch.

Deviations: pixels are in [-1, 1] (the package's convention): the sigmoid output is rescaled to
``2 sigmoid - 1``. The G step reuses the D step's z instead of drawing a new one (the training loop generates once
per batch). The paper's Caffe code differs from the PyTorch code in small ways (z ~ U[-1, 1], per-channel PReLU, a
bias after batch norm, dropout 0.5 after D's 500 units, MSRA init, no decay on biases, batch 128, 50,000
iterations); the networks here are the PyTorch code's.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.training.image_to_image import Images, TranslationGAN
from gans.training.latents import seeded_latents

IMG_RESOLUTION = 28  # Table 1's networks: 4 -> 7 -> 13 -> 25 -> 28 in G, 28 -> 24 -> 12 -> 8 -> 4 -> 1 in D


def cogan_init_(module: nn.Module) -> None:
    """The official init (``xavier_weights_init``): convolutions' weights Glorot-uniform with gain sqrt(2), biases 0.1."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(module.weight, gain=math.sqrt(2))
        nn.init.constant_(module.bias, 0.1)


def to_pixels(h: Tensor) -> Tensor:
    """The official sigmoid output, rescaled from [0, 1] to the package's [-1, 1]."""
    return torch.sigmoid(h) * 2 - 1


class CoupledGenerator(nn.Module):
    """z ``[N, z_dim]`` -> ``(x_a, x_b)``, each ``[N, C, 28, 28]`` in [-1, 1]: Table 1's generator pair, the first
    four layers shared, the last one per domain."""

    def __init__(self, z_dim: int = 100, channels: Sequence[int] = (1024, 512, 256, 128), channels_a: int = 1, channels_b: int = 1) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ConfigError(f"g_channels lists the widths of Table 1's four shared generator layers, got {list(channels)}.")
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([z_dim, *channels[:-1]], channels)):
            upsample = nn.ConvTranspose2d(c_in, c_out, 4, 1) if i == 0 else nn.ConvTranspose2d(c_in, c_out, 3, 2, 1)
            layers += [upsample, nn.BatchNorm2d(c_out, affine=False), nn.PReLU()]
        self.shared = nn.Sequential(*layers)  # [N, z_dim, 1, 1] -> [N, channels[-1], 25, 25]
        self.head_a = nn.ConvTranspose2d(channels[-1], channels_a, 6, 1, 1)  # 25 -> 28
        self.head_b = nn.ConvTranspose2d(channels[-1], channels_b, 6, 1, 1)
        self.apply(cogan_init_)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.shared(z[:, :, None, None])
        return to_pixels(self.head_a(h)), to_pixels(self.head_b(h))


class CoupledDiscriminator(nn.Module):
    """``(x_a, x_b)`` -> ``(logits_a, logits_b)``, each ``[N]``: Table 1's discriminator pair, the first layer (conv and
    pooling) per domain, the rest shared. Both domains' features pass the shared layers as one batch."""

    def __init__(self, channels: Sequence[int] = (20, 50, 500), channels_a: int = 1, channels_b: int = 1) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ConfigError(f"d_channels lists the widths of Table 1's three discriminator layers before the output, got {list(channels)}.")
        c0, c1, c2 = channels
        self.first_a = nn.Sequential(nn.Conv2d(channels_a, c0, 5), nn.MaxPool2d(2))  # 28 -> 24 -> 12
        self.first_b = nn.Sequential(nn.Conv2d(channels_b, c0, 5), nn.MaxPool2d(2))
        self.shared = nn.Sequential(
            nn.Conv2d(c0, c1, 5), nn.MaxPool2d(2),  # 12 -> 8 -> 4
            nn.Conv2d(c1, c2, 4), nn.PReLU(),  # the fully connected layer of 500 units, as a 4x4 convolution
            nn.Conv2d(c2, 2, 1),  # scores of (fake, real), the official 2-way softmax
        )
        self.apply(cogan_init_)

    def forward(self, x_a: Tensor, x_b: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.cat([self.first_a(x_a), self.first_b(x_b)])
        scores = self.shared(h).flatten(1)  # [N_a + N_b, 2]
        logits = scores[:, 1] - scores[:, 0]  # log softmax(real) - log softmax(fake)
        return logits[: len(x_a)], logits[len(x_a) :]


class CoGAN(TranslationGAN):
    """A coupled GAN on unpaired batches ``(a, b)`` of two domains (:class:`datamodules.MNISTDomainsDataModule`);
    draws pairs ``(x_a, x_b)`` of corresponding images from one z."""

    generator_names = ("generator",)
    discriminator_names = ("discriminator",)

    def __init__(
        self,
        z_dim: int = 100,
        channels_a: int = 1,
        channels_b: int = 1,
        g_channels: Sequence[int] = (1024, 512, 256, 128),
        d_channels: Sequence[int] = (20, 50, 500),
        loss: str = "non_saturating",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        weight_decay: float = 5e-4,
        gradient_clip_val: float = 0.0,
        max_nonfinite_steps: int = 10,
        max_kimg: float = 0.0,
    ) -> None:
        """
        Args:
            z_dim: latent size (100).
            channels_a: channels of domain A's images (1 for MNIST).
            channels_b: channels of domain B's images.
            g_channels: widths of the generator's four shared layers (Table 1: 1024, 512, 256, 128).
            d_channels: widths of the discriminator's layers (Table 1: 20 per domain, then 50 and 500 shared).
            loss: the adversarial loss by name; non_saturating is the official cross-entropy.
            lr_g: Adam learning rate of the generator pair (2e-4).
            lr_d: Adam learning rate of the discriminator pair (2e-4).
            betas: Adam's betas ((0.5, 0.999)).
            weight_decay: Adam's L2 weight decay of both networks (the official 0.0005).
            gradient_clip_val: clip each optimizer's gradient norm; 0 = off.
            max_nonfinite_steps: stop after this many batches in a row with a NaN/Inf loss.
            max_kimg: stop after this many thousand images of domain A; 0 = the trainer's limits.
        """
        super().__init__(loss=loss, lr_g=lr_g, lr_d=lr_d, betas=betas, weight_decay=weight_decay, gradient_clip_val=gradient_clip_val,
                         max_nonfinite_steps=max_nonfinite_steps, max_kimg=max_kimg)
        self.save_hyperparameters()
        self.z_dim = z_dim
        self.data_shape = (channels_a, IMG_RESOLUTION, IMG_RESOLUTION)
        self.generator = CoupledGenerator(z_dim, g_channels, channels_a, channels_b)
        self.discriminator = CoupledDiscriminator(d_channels, channels_a, channels_b)

    data_shape_fix = f"CoGAN's MNIST networks (Table 1) are fixed at this size: set data.init_args.img_resolution: {IMG_RESOLUTION}"

    # Training.

    def sample_z(self, n: int) -> Tensor:
        """``n`` latents from N(0, I) (the official PyTorch code's prior), from this rank's random stream."""
        return torch.randn(n, self.z_dim, device=self.device)

    def generate(self, batch: Any) -> Images:
        a, _ = batch
        fake_a, fake_b = self.generator(self.sample_z(len(a)))  # one z for both domains
        return {"fake_a": fake_a, "fake_b": fake_b}

    def discriminator_loss(self, batch: Any, images: Images) -> Tensor:
        real = torch.cat(self.discriminator(*batch))  # both domains as one batch, as the official solver
        fake = torch.cat(self.discriminator(images["fake_a"], images["fake_b"]))
        self.log_train({"train/d_real": real.detach().mean(), "train/d_fake": fake.detach().mean()})
        return self.adversarial_d_loss(real, fake)

    def generator_loss(self, batch: Any, images: Images) -> Tensor:
        return self.adversarial_g_loss(torch.cat(self.discriminator(images["fake_a"], images["fake_b"])))

    def adversarial_d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Not halved (unlike pix2pix / CycleGAN): the official solver's ``d_loss = true_loss + fake_loss``, and the
        paper's objective (eq. 4) sums both GANs' full terms."""
        return self.adversarial_loss.discriminator(real_logits, fake_logits)

    # Sampling and pictures.

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int = 0, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A pair ``(x_a, x_b)`` from ``n`` fresh latents, or from ``z``, by the (EMA) generator in its current mode."""
        z = self.sample_z(n) if z is None else z.to(self.device)
        return self.sampling_network("generator")(z)

    @torch.no_grad()
    def sample_indexed(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """The pairs numbered by ``indices``: pair i from the latent seeded by i (:func:`gans.training.latents.seeded_latents`)."""
        return self.sample(z=seeded_latents(indices.long().cpu(), self.z_dim))

    def held_out(self, datamodule: Any, n: int) -> Tensor:
        """``n`` fixed latents (those of pairs 0 ... n-1) for :class:`callbacks.TranslationGrid`."""
        return seeded_latents(range(n), self.z_dim)

    def pictures(self, held_out: Tensor) -> list[tuple[str, Tensor]]:
        """The pair of each latent side by side: domain A | domain B (the paper's figure 2)."""
        x_a, x_b = self.sample(z=held_out)
        return [("A", x_a), ("B", x_b)]
