"""Fit a tiny model with DDP on 2 CPU processes (gloo) and save each rank's parameters.

Run by tests/test_ddp.py as ``python ddp_fit.py OUT_DIR MODEL``; Lightning's launcher starts rank 1
by re-running this command.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from gans import DCGAN, WGANGP

out_dir, model_name = Path(sys.argv[1]), sys.argv[2]
L.seed_everything(0)
model_cls = {"dcgan": DCGAN, "wgan_gp": WGANGP}[model_name]
model = model_cls(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8, n_critic=2)
# Different data per rank (DistributedSampler): the ranks only agree if gradients are averaged.
images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=8, shuffle=True)
trainer = L.Trainer(
    accelerator="cpu",
    devices=2,
    strategy="ddp",
    max_steps=12,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
before = {k: v.clone() for k, v in model.state_dict().items()}
trainer.fit(model, loader)
state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
torch.save({"before": before, "after": state, "g_steps": model.g_steps, "images_seen": model.images_seen}, out_dir / f"rank{trainer.global_rank}.pt")
