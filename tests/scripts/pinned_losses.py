"""Print the per-update D and G losses of a short fixed-seed CPU run of each classic model (JSON).

Used to pin the models' behaviour across refactors of the training core: tests/test_pinned.py holds
the numbers this printed before the core was split (commit 7c2c6b7) and checks today's run equals them.
"""

from __future__ import annotations

import json
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from gans import CGAN, DCGAN, GAN, LSGAN, WGAN, WGANGP

CASES = {
    "gan": lambda: GAN(data_shape=(1, 8, 8), z_dim=4, g_hidden=(16,), d_hidden=(8,), d_pieces=2, g_dropout=0.1),
    "cgan": lambda: CGAN(num_classes=3, data_shape=(1, 8, 8), z_dim=4, g_hidden=(16,), d_hidden=(8,), d_pieces=2),
    "dcgan": lambda: DCGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, soft_labels=True, label_flip_prob=0.2,
                           instance_noise_std=0.1, instance_noise_anneal_kimg=1.0),
    "lsgan": lambda: LSGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, label_smoothing=0.1),
    "wgan": lambda: WGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, n_critic_boost=3, boost_first_g_steps=1),
    "wgan_gp": lambda: WGANGP(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, n_critic=2),
}


def run(name: str) -> dict[str, list[float]]:
    L.seed_everything(0)
    model = CASES[name]()
    shape = (1, 8, 8) if name in ("gan", "cgan") else (1, 16, 16)
    images = torch.rand(48, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.arange(48) % 3
    losses: dict[str, list[float]] = {"d": [], "g": []}
    d_loss, g_loss = type(model).discriminator_loss, type(model).generator_loss

    def record_d(self, *args, **kwargs):
        loss = d_loss(self, *args, **kwargs)
        losses["d"].append(loss.item())
        return loss

    def record_g(self, *args, **kwargs):
        loss = g_loss(self, *args, **kwargs)
        losses["g"].append(loss.item())
        return loss

    model.discriminator_loss = record_d.__get__(model)
    model.generator_loss = record_g.__get__(model)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=True))
    losses["g_sum"] = [float(sum(p.double().sum() for p in model.generator.parameters()))]
    return losses


if __name__ == "__main__":
    torch.set_num_threads(1)
    names = sys.argv[1:] or list(CASES)
    print(json.dumps({name: run(name) for name in names}))
