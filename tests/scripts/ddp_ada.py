"""DDP with 2 CPU processes: ADA's p when the ranks' discriminators see different overfitting, recorded per rank.

Run by tests/test_augment.py as ``python ddp_ada.py OUT_DIR``; Lightning's launcher starts rank 1 by re-running this
command. Each rank trains on its own images (no distributed sampler): rank 0 on images whose mean is +0.5, rank 1 on
images whose mean is +0.5 and -0.5 in turn. D's logit is the image mean times a positive learned scale, and the
pipeline keeps only x-flips and 90-degree rotations (both keep an image's mean), so sign(D(real)) is +1 on every image
of rank 0 and +1 on half of rank 1's, whatever G and the augmentation do: local r_t 1 and 0, their mean 0.5 below the
target 0.6, their sum 1 above it.

Each rank writes ``OUT_DIR/rank{r}.pt``: ``local_rt`` (this rank's mean sign over the batches of each adjustment),
``p`` and ``rt`` after every batch (the pipeline's p and ``ada_stats[2]``), and the settings the test needs.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gans import DCGAN
from gans.nn.augment import AugmentPipe

BATCH = 4
BATCHES = 8
INTERVAL = 2
P_START = 0.5
STEP = 0.05  # p's move per adjustment: BATCH * 2 ranks * INTERVAL images / (ADA_KIMG * 1000)
ADA_KIMG = BATCH * 2 * INTERVAL / (STEP * 1000)


class MeanLogit(nn.Module):
    """D(x) = exp(s) * mean(x): its sign is the sign of the image's mean."""

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_scale.exp() * images.mean(dim=(1, 2, 3))


class Recorded(DCGAN):
    def __init__(self) -> None:
        super().__init__(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, augment="ada", augment_p=P_START,
                         ada_kimg=ADA_KIMG, ada_interval=INTERVAL, lr_d=1e-3, lr_g=1e-3)
        self.discriminator = MeanLogit()
        self.augment_pipe = AugmentPipe(P_START, ("xflip", "rotate90"))
        self.record: dict = {"local_rt": [], "p": [], "rt": []}
        self._local = torch.zeros(2)

    def accumulate_ada_signs(self, real_logits: torch.Tensor) -> None:
        signs = real_logits.detach().sign()
        self._local += torch.tensor([float(signs.sum()), float(signs.numel())])
        super().accumulate_ada_signs(real_logits)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if (self.batches) % INTERVAL == 0:  # end_of_batch has counted this batch: an adjustment just happened
            self.record["local_rt"].append(float(self._local[0] / self._local[1]))
            self._local.zero_()
        self.record["p"].append(float(self.augment_pipe.p))
        self.record["rt"].append(float(self.ada_stats[2]))


class RankData(L.LightningDataModule):
    """Each rank's own images (``use_distributed_sampler=False``): see the module docstring."""

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank
        n = BATCH * BATCHES
        signs = torch.ones(n) if rank == 0 else torch.tensor([1.0, -1.0]).repeat(n // 2)
        noise = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(rank)) * 0.2 - 0.1
        images = signs.reshape(n, 1, 1, 1) * 0.5 + noise
        return DataLoader(TensorDataset(images, torch.zeros(n)), batch_size=BATCH)


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    L.seed_everything(0)
    model = Recorded()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False)
    trainer.fit(model, datamodule=RankData())
    model.record.update(p_start=P_START, step=STEP, interval=INTERVAL, batches=BATCHES, world_size=trainer.world_size)
    torch.save(model.record, out_dir / f"rank{trainer.global_rank}.pt")
