"""pix2pix: Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional Adversarial Networks",
arXiv:1611.07004.

A U-Net generator (section 3.2.1, appendix 6.1.1) maps the input image to the output; there is no z: the noise is
dropout 0.5 in the first decoder blocks, on at train and test time (section 3.1). A 70x70 PatchGAN (section
3.2.2, appendix 6.1.2) judges (input, output) pairs, channel-concatenated, patch by patch. G minimises the
conditional GAN loss plus lambda * L1 to the target (eq. 4, lambda = 100); D's objective is halved (section 3.3).
Adam 2e-4 (0.5, 0.999), batch 1, batch norm with the test batch's statistics, random jitter (resize 286, crop 256,
flip) in the data (:class:`datamodules.PairedImageDataModule`), and the official code's schedule: constant lr for
100 epochs, then linear decay to 0 over 100.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from gans.models.translation.networks import PatchGANDiscriminator, UNetGenerator
from gans.training.image_to_image import Images, TranslationGAN


class Pix2Pix(TranslationGAN):
    """Paired translation: batches ``(input, target)`` from :class:`datamodules.PairedImageDataModule`."""

    def __init__(
        self,
        img_resolution: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        ndf: int = 64,
        d_layers: int = 3,
        norm: Literal["batch", "instance", "none"] = "batch",
        dropout: float = 0.5,
        l1_weight: float = 100.0,
        loss: str = "non_saturating",
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
            img_resolution: image side (a power of two; the U-Net has log2 of it down blocks, 8 at 256).
            in_channels: channels of the input image.
            out_channels: channels of the output image.
            ngf: generator width (64 in the paper).
            ndf: discriminator width (64).
            d_layers: stride-2 layers of the PatchGAN: 3 = 70x70 (the paper's), 1 = 16x16, 5 = 286x286.
            norm: batch (the paper's, with test-batch statistics; instance norm at batch 1), instance or none.
            dropout: dropout in the first three decoder blocks at train and test time; 0 = off.
            l1_weight: lambda of the L1 term (eq. 4).
            loss: the GAN loss by name: non_saturating is the paper's ("vanilla" in its code), least_squares too.
            lr_g: Adam learning rate of G.
            lr_d: Adam learning rate of D.
            betas: Adam's betas.
            lr_constant: epochs at the initial lr (the official n_epochs, 100).
            lr_decay: epochs of linear decay to 0 after them (n_epochs_decay, 100); 0 = constant lr.
            lr_unit: epoch (the official code) or step.
            gradient_clip_val: clip each optimizer's gradient norm; 0 = off.
            max_nonfinite_steps: stop after this many batches in a row with a NaN/Inf loss.
            max_kimg: stop after this many thousand pairs; 0 = the trainer's limits.
        """
        super().__init__(loss=loss, lr_g=lr_g, lr_d=lr_d, betas=betas, lr_constant=lr_constant, lr_decay=lr_decay, lr_unit=lr_unit,
                         gradient_clip_val=gradient_clip_val, max_nonfinite_steps=max_nonfinite_steps, max_kimg=max_kimg)
        self.save_hyperparameters()
        self.data_shape = (out_channels, img_resolution, img_resolution)
        self.generator = UNetGenerator(in_channels, out_channels, img_resolution=img_resolution, ngf=ngf, norm=norm, dropout=dropout)
        self.discriminator = PatchGANDiscriminator(in_channels + out_channels, ndf=ndf, n_layers=d_layers, norm=norm)
        self.l1_weight = l1_weight

    def generate(self, batch: Any) -> Images:
        inputs, _ = batch
        return {"output": self.generator(inputs)}

    def discriminator_loss(self, batch: Any, images: Images) -> Tensor:
        inputs, target = batch
        real_logits = self.discriminator(torch.cat([inputs, target], dim=1))
        fake_logits = self.discriminator(torch.cat([inputs, images["output"]], dim=1))
        self.log_train({"train/d_real": real_logits.detach().mean(), "train/d_fake": fake_logits.detach().mean()})
        return self.adversarial_d_loss(real_logits, fake_logits)

    def generator_loss(self, batch: Any, images: Images) -> Tensor:
        inputs, target = batch
        adversarial = self.adversarial_g_loss(self.discriminator(torch.cat([inputs, images["output"]], dim=1)))
        l1 = (images["output"] - target).abs().mean()
        self.log_train({"train/g_adversarial": adversarial.detach(), "train/l1": l1.detach()})
        return adversarial + self.l1_weight * l1

    def forward(self, inputs: Tensor) -> Tensor:
        return self.generator(inputs)

    @torch.no_grad()
    def translate(self, inputs: Tensor) -> Tensor:
        """Outputs for ``inputs`` from the (EMA) generator, with its test-time dropout and batch statistics."""
        return self.sampling_network("generator")(inputs.to(self.device))

    def pictures(self, held_out: Any) -> list[tuple[str, Tensor]]:
        inputs, target = held_out
        return [("input", inputs), ("output", self.translate(inputs)), ("target", target)]
