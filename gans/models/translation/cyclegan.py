"""CycleGAN: Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", arXiv:1703.10593.

Two generators, G: A -> B and F: B -> A (ResNet generators, appendix 7.2: 9 residual blocks at 256 px, 6 at 128,
reflection padding, instance norm), and two 70x70 PatchGAN discriminators, D_B on domain B (real B vs G(a)) and
D_A on domain A. The full objective (eq. 3): the least-squares adversarial losses of both directions (section
4, eq. 1 with the LSGAN form) + lambda * the cycle losses ||F(G(a)) - a||_1 + ||G(F(b)) - b||_1 (eq. 2,
lambda = 10) + the identity loss ||F(a) - a||_1 + ||G(b) - b||_1 weighted 0.5 * lambda (section 5.2). As the
official code: one Adam over both generators and one over both discriminators (2e-4, (0.5, 0.999)), G updated
first, each D trained on a history of 50 generated images (:class:`gans.training.image_to_image.HistoryPool`) with its
objective halved, constant lr for 100 epochs then linear decay to 0 over 100, batch 1.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from gans.errors import ConfigError
from gans.models.translation.networks import PatchGANDiscriminator, ResnetGenerator
from gans.training.image_to_image import HistoryPool, Images, TranslationGAN


class CycleGAN(TranslationGAN):
    """Unpaired translation: batches ``(a, b)`` of independent images of the two domains
    (:class:`datamodules.UnpairedImageDataModule`)."""

    generator_names = ("generator_ab", "generator_ba")
    discriminator_names = ("discriminator_a", "discriminator_b")
    generator_phase_first = True

    def __init__(
        self,
        img_resolution: int = 256,
        channels_a: int = 3,
        channels_b: int = 3,
        ngf: int = 64,
        ndf: int = 64,
        g_blocks: int = 9,
        d_layers: int = 3,
        norm: Literal["instance", "batch", "none"] = "instance",
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        pool_size: int = 50,
        loss: str = "least_squares",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        lr_constant: int = 100,
        lr_decay: int = 100,
        lr_unit: Literal["epoch", "step"] = "epoch",
        gradient_clip_val: float = 0.0,
        max_nonfinite_steps: int = 10,
        max_kimg: float = 0.0,
    ) -> None:
        """
        Args:
            img_resolution: image side of both domains (the generators are fully convolutional; this sets data_shape).
            channels_a: channels of domain A's images.
            channels_b: channels of domain B's images.
            ngf: generator width (64).
            ndf: discriminator width (64).
            g_blocks: residual blocks per generator (9 at 256 px, 6 at 128).
            d_layers: stride-2 layers of each PatchGAN (3 = 70x70).
            norm: instance (the paper's), batch or none.
            cycle_weight: lambda of the cycle losses (eq. 3: 10).
            identity_weight: the identity loss weight as a fraction of ``cycle_weight`` (0.5; 0 = off; needs
                ``channels_a == channels_b``).
            pool_size: generated images each D's history holds (50; 0 = train D on the newest fakes only).
            loss: the adversarial loss by name (least_squares, the paper's).
            lr_g: Adam learning rate of the generators.
            lr_d: Adam learning rate of the discriminators.
            betas: Adam's betas.
            lr_constant: epochs at the initial lr (100).
            lr_decay: epochs of linear decay to 0 after them (100); 0 = constant.
            lr_unit: epoch (the paper) or step.
            gradient_clip_val: clip each optimizer's gradient norm; 0 = off.
            max_nonfinite_steps: stop after this many batches in a row with a NaN/Inf loss.
            max_kimg: stop after this many thousand images of domain A; 0 = the trainer's limits.
        """
        super().__init__(loss=loss, lr_g=lr_g, lr_d=lr_d, betas=betas, lr_constant=lr_constant, lr_decay=lr_decay, lr_unit=lr_unit,
                         gradient_clip_val=gradient_clip_val, max_nonfinite_steps=max_nonfinite_steps, max_kimg=max_kimg)
        if identity_weight > 0 and channels_a != channels_b:
            raise ConfigError(f"The identity loss maps each domain through the other's generator, so it needs channels_a == channels_b "
                              f"(got {channels_a} and {channels_b}): set identity_weight: 0.")
        self.save_hyperparameters()
        self.data_shape = (channels_b, img_resolution, img_resolution)
        self.generator_ab = ResnetGenerator(channels_a, channels_b, ngf=ngf, n_blocks=g_blocks, norm=norm)
        self.generator_ba = ResnetGenerator(channels_b, channels_a, ngf=ngf, n_blocks=g_blocks, norm=norm)
        self.discriminator_a = PatchGANDiscriminator(channels_a, ndf=ndf, n_layers=d_layers, norm=norm)
        self.discriminator_b = PatchGANDiscriminator(channels_b, ndf=ndf, n_layers=d_layers, norm=norm)
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.history_pools = {"fake_a": HistoryPool(pool_size), "fake_b": HistoryPool(pool_size)}

    def generate(self, batch: Any) -> Images:
        a, b = batch
        fake_b = self.generator_ab(a)
        fake_a = self.generator_ba(b)
        return {"fake_b": fake_b, "rec_a": self.generator_ba(fake_b), "fake_a": fake_a, "rec_b": self.generator_ab(fake_a)}

    def generator_loss(self, batch: Any, images: Images) -> Tensor:
        a, b = batch
        adversarial = self.adversarial_g_loss(self.discriminator_b(images["fake_b"])) + self.adversarial_g_loss(self.discriminator_a(images["fake_a"]))
        cycle = (images["rec_a"] - a).abs().mean() + (images["rec_b"] - b).abs().mean()
        loss = adversarial + self.cycle_weight * cycle
        terms = {"train/g_adversarial": adversarial.detach(), "train/cycle": cycle.detach()}
        if self.identity_weight > 0:
            identity = (self.generator_ba(a) - a).abs().mean() + (self.generator_ab(b) - b).abs().mean()
            loss = loss + self.cycle_weight * self.identity_weight * identity
            terms["train/identity"] = identity.detach()
        self.log_train(terms)
        return loss

    def discriminator_loss(self, batch: Any, images: Images) -> Tensor:
        a, b = batch
        fake_b = self.history_pools["fake_b"].query(images["fake_b"])
        fake_a = self.history_pools["fake_a"].query(images["fake_a"])
        real_b, fake_b = self.discriminator_b(b), self.discriminator_b(fake_b)
        real_a, fake_a = self.discriminator_a(a), self.discriminator_a(fake_a)
        self.log_train({"train/d_real": (real_a.detach().mean() + real_b.detach().mean()) / 2,
                        "train/d_fake": (fake_a.detach().mean() + fake_b.detach().mean()) / 2})
        return self.adversarial_d_loss(real_b, fake_b) + self.adversarial_d_loss(real_a, fake_a)

    def forward(self, a: Tensor) -> Tensor:
        return self.generator_ab(a)

    @torch.no_grad()
    def translate(self, images: Tensor, direction: Literal["ab", "ba"] = "ab") -> Tensor:
        """``images`` of domain A mapped to B (``ab``), or of B to A (``ba``), by the (EMA) generator."""
        if direction not in ("ab", "ba"):
            raise ValueError(f"direction must be 'ab' or 'ba', got {direction!r}.")
        return self.sampling_network(f"generator_{direction}")(images.to(self.device))

    def pictures(self, held_out: Any) -> list[tuple[str, Tensor]]:
        a, b = held_out
        fake_b, fake_a = self.translate(a, "ab"), self.translate(b, "ba")
        return [("A", a), ("A -> B", fake_b), ("A -> B -> A", self.translate(fake_b, "ba")),
                ("B", b), ("B -> A", fake_a), ("B -> A -> B", self.translate(fake_a, "ab"))]
