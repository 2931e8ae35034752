"""Resume under 2-process DDP, and progress counters under ``ddp_spawn``.

``python ddp_resume.py OUT_DIR ddp``: in one launch, an uninterrupted 2-epoch run, a 1-epoch run and its
resume to 2 epochs from ``last.ckpt`` (instance noise, lazy R1 + path length and EMA on, so the RNG streams,
the callbacks' state and the counters all matter). Each rank writes ``OUT_DIR/rank{r}.pt``.

``python ddp_resume.py OUT_DIR ddp_spawn``: fit a growing ProGAN with EMA under ``ddp_spawn``, stopping mid fade-in,
and write what the model holds after ``fit`` in the workers (rank 0's, at their teardown: ``OUT_DIR/worker.pt``) and in
the launching process (``OUT_DIR/spawn.pt``): the counters, the growth stage of every network and the EMA generator.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks import EMA, KimgCheckpoint, ProgressiveGrowing
from gans import DCGAN, ProGAN


def loader() -> DataLoader:
    images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=8, shuffle=True)


def fit(root: Path, max_epochs: int, strategy: str = "ddp", ckpt_path: str | None = None):
    L.seed_everything(3)
    model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4, instance_noise_std=0.1,
                  r1_gamma=1.0, r1_interval=3, pl_weight=2.0, pl_interval=2)
    callbacks = [EMA(half_life_kimg=0.05),
                 KimgCheckpoint(dirpath=root / "ckpt", every_kimg=0.064, save_last=True, save_top_k=0)]
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=max_epochs, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, default_root_dir=root)
    trainer.fit(model, loader(), ckpt_path=ckpt_path)
    return model, trainer, torch.randn(4)


def what_fit_left(model: ProGAN) -> dict:
    ema = getattr(model, "generator_ema", None)
    return {
        "counters": {"images_seen": model.images_seen, "g_steps": model.g_steps, "batches": model.batches},
        "stages": [(net.current_resolution, net.alpha) for net in (model.generator, model.discriminator, ema) if net is not None],
        "ema": None if ema is None else {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()},
        "generator": {k: v.detach().cpu().clone() for k, v in model.generator.state_dict().items()},
    }


class RecordWorker(L.Callback):
    """Rank 0's model as fit leaves it in the workers (buffers averaged at the end of fit), before Lightning hands it back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            torch.save(what_fit_left(pl_module), self.path)


def fit_spawned(out: Path) -> ProGAN:
    """64 images over 2 ranks (4 batches of 2 x 8): 4x4 for 32 images, then fading in 8x8 over 64 (alpha 0.25 at the last batch)."""
    L.seed_everything(3)
    model = ProGAN(img_resolution=16, z_dim=8, fmap_base=64, fmap_max=16, mbstd_group_size=2)
    images = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    data = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=8, shuffle=True)
    callbacks = [ProgressiveGrowing(stable_kimg=0.032, fade_kimg=0.064), EMA(half_life_kimg=0.05), RecordWorker(out / "worker.pt")]
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, default_root_dir=out)
    trainer.fit(model, data)
    return model


if __name__ == "__main__":
    out, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "ddp_spawn":
        torch.save(what_fit_left(fit_spawned(out)), out / "spawn.pt")
    else:
        straight, _, straight_draw = fit(out / "straight", 2)
        fit(out / "resumed", 1)
        resumed, trainer, resumed_draw = fit(out / "resumed", 2, ckpt_path=str(out / "resumed" / "ckpt" / "last.ckpt"))
        torch.save({"straight": straight.state_dict(), "resumed": resumed.state_dict(), "straight_draw": straight_draw,
                    "resumed_draw": resumed_draw, "images_seen": (straight.images_seen, resumed.images_seen)},
                   out / f"rank{trainer.global_rank}.pt")
