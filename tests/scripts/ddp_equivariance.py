"""Evaluate callbacks.Equivariance before training on 2 CPU processes (gloo) and save each rank's values.

Run by tests/test_equivariance.py as ``python ddp_equivariance.py OUT_DIR DATA_ROOT``; Lightning's launcher starts
rank 1 by re-running this command. 3 batches of 4 samples: rank 0 measures batches 0 and 1, rank 1 batch 2.
"""

import json
import os
import sys
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the toy generator
from test_equivariance import FourierStyleGAN

from callbacks import Equivariance
from datamodules import MNISTDataModule

out_dir, data_root = Path(sys.argv[1]), sys.argv[2]
torch.set_num_threads(1)
L.seed_everything(0)
model = FourierStyleGAN()
callback = Equivariance(every_kimg=0, num_samples=12, batch_size=4, at_start=True, at_end=False)
trainer = L.Trainer(
    accelerator="cpu",
    devices=2,
    strategy="ddp",
    max_steps=2,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=[callback],
)
trainer.fit(model, datamodule=MNISTDataModule(root=data_root, img_resolution=16, batch_size=8, num_workers=0, download=False))
(out_dir / f"rank{os.environ.get('LOCAL_RANK', '0')}.json").write_text(json.dumps(callback.history[0]))
