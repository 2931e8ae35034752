"""Fit a tiny model with DDP on 2 CPU processes (gloo) and save each rank's parameters.

Run by tests/test_ddp.py as ``python ddp_fit.py OUT_DIR MODEL [IMAGE_FOLDER]``; Lightning's launcher starts
rank 1 by re-running this command. ``progan`` grows 4 -> 16 through every phase on the images of IMAGE_FOLDER
(per-resolution batch sizes, so the dataloaders are rebuilt mid-run on both ranks). ``stylegan2`` trains a
conditional StyleGAN2 with style mixing, lazy R1 and path length every 2 steps, and EMA. ``biggan`` trains a tiny
conditional BigGAN (cross-replica BN, hierarchical z, attention, orthogonal regularisation, EMA from 64 images on) and
also records, on each rank, a cross-replica batch norm's output and input gradient on its own data, and G's BN running
statistics after every batch (before fit's end averages the buffers). ``cyclegan`` trains a tiny CycleGAN (two
generators under one optimizer, two discriminators under another, history pools, EMA of both generators, the linear
lr decay per step).
"""

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks import EMA, ProgressiveGrowing
from datamodules import ImageFolderDataModule
from gans import DCGAN, WGANGP, BigGAN, CycleGAN, ProGAN, StyleGAN2
from gans.nn.cross_replica import CrossReplicaBatchNorm2d

out_dir, model_name = Path(sys.argv[1]), sys.argv[2]
L.seed_everything(0)
callbacks, max_steps = [], 12
if model_name == "progan":
    model = ProGAN(img_resolution=16, z_dim=8, fmap_base=64, fmap_max=16, mbstd_group_size=2)
    # Phases of 32 images over both ranks: 4 stable (2 batches of 2 x 8), 8 fading in and 8 stable (4 batches of
    # 2 x 4 each), 16 fading in (2 batches of 2 x 8), then 2 batches at 16 stable: 14 batches = 28 optimizer steps.
    callbacks, max_steps = [ProgressiveGrowing(stable_kimg=0.032, fade_kimg=0.032, batch_size={8: 4})], 28
    data = ImageFolderDataModule(root=sys.argv[3], img_resolution=16, batch_size=8, num_workers=0, cache_dir=str(out_dir / "cache"))
elif model_name == "stylegan2":
    model = StyleGAN2(img_resolution=16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8, mbstd_group_size=2, num_classes=3,
                      r1_gamma=1.0, r1_interval=2, pl_weight=2.0, pl_interval=2)
    # 15 batches: a D and a G step each, and R1 and path length steps at batches 0, 2, ..., 14 (8 each): 46 optimizer steps.
    callbacks, max_steps = [EMA(half_life_kimg=0.01)], 46
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(64, 3, 16, 16, generator=gen) * 2 - 1
    data = DataLoader(TensorDataset(images, torch.randint(0, 3, (64,), generator=gen)), batch_size=8, shuffle=True)
elif model_name == "biggan":

    class Probe(L.Callback):
        """The cross-replica BN on this rank's own data once the process group is up, and G's BN statistics per batch."""

        def __init__(self) -> None:
            self.stats: list[torch.Tensor] = []

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            bn = CrossReplicaBatchNorm2d(3)
            bn.sum_over_ranks = lambda tensor: pl_module.all_gather(tensor, sync_grads=True).sum(dim=0)
            with torch.no_grad():
                bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
                bn.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))
            gen = torch.Generator().manual_seed(10 + trainer.global_rank)
            x = torch.randn(4, 3, 2, 2, generator=gen).mul_(trainer.global_rank + 1).requires_grad_(True)
            w = torch.randn(4, 3, 2, 2, generator=gen)
            y = bn(x)
            (y * w).sum().backward()
            self.bn = {"x": x.detach(), "w": w, "y": y.detach(), "x_grad": x.grad, "weight_grad": bn.weight.grad,
                       "running_mean": bn.running_mean.clone(), "running_var": bn.running_var.clone()}

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
            norm = pl_module.generator.blocks[0].norm1.bn
            self.stats.append(torch.cat([norm.running_mean, norm.running_var]).clone())

    model = BigGAN(img_resolution=16, num_classes=3, z_dim=12, g_ch=4, d_ch=4, g_attention=[16], d_attention=[8])
    probe = Probe()
    callbacks, max_steps = [probe, EMA(half_life_kimg=0.01, start_kimg=0.064)], 12  # 8 batches: 8 D + 4 G steps
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(64, 3, 16, 16, generator=gen) * 2 - 1
    data = DataLoader(TensorDataset(images, torch.randint(0, 3, (64,), generator=gen)), batch_size=8, shuffle=True)
elif model_name == "cyclegan":
    # Different unpaired data per rank; pools of 2 fill in the first batch and are drawn from after; EMA of both generators.
    model = CycleGAN(img_resolution=16, ngf=4, ndf=4, g_blocks=1, d_layers=2, pool_size=2, lr_constant=2, lr_decay=9, lr_unit="step")
    callbacks, max_steps = [EMA(half_life_kimg=0.004)], 12  # 6 batches: G then D each
    gen = torch.Generator().manual_seed(1)
    data = DataLoader(TensorDataset(torch.rand(48, 3, 16, 16, generator=gen) * 2 - 1, torch.rand(48, 3, 16, 16, generator=gen) * 2 - 1), batch_size=2, shuffle=True)
else:
    model_cls = {"dcgan": DCGAN, "wgan_gp": WGANGP}[model_name]
    model = model_cls(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8, n_critic=2)
    # Different data per rank (DistributedSampler): the ranks only agree if gradients are averaged.
    images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    data = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=8, shuffle=True)
trainer = L.Trainer(
    accelerator="cpu",
    devices=2,
    strategy="ddp",
    max_steps=max_steps,
    max_epochs=-1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=callbacks,
)
before = {k: v.clone() for k, v in model.state_dict().items()}
if isinstance(data, DataLoader):
    trainer.fit(model, data)
else:
    trainer.fit(model, datamodule=data)
state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
record = {"before": before, "after": state, "g_steps": model.g_steps, "images_seen": model.images_seen}
if model_name == "progan":
    record.update(resolution=model.current_resolution, alpha=model.alpha, batch_size=data.batch_size)
if model_name == "stylegan2":
    record.update(pl_mean=model.pl_mean, d_steps=model.batches)
if model_name == "biggan":
    record.update(bn=probe.bn, stats=torch.stack(probe.stats))
if model_name == "cyclegan":
    record.update(pools={name: pool.state() for name, pool in model.history_pools.items()}, lr=[g["lr"] for o in trainer.optimizers for g in o.param_groups])
torch.save(record, out_dir / f"rank{trainer.global_rank}.pt")
