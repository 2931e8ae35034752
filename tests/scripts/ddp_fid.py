"""Evaluate callbacks.FID before training on 1 or 2 CPU processes (gloo) and save rank 0's result.

Run by tests/test_fid_ddp.py as ``python ddp_fid.py OUT_FILE DEVICES DATA_ROOT CACHE_DIR [OTHER_RANKS_CACHE_DIR]``;
Lightning's launcher starts rank 1 by re-running this command. With ``OTHER_RANKS_CACHE_DIR`` the ranks other than 0
look for the real statistics there instead (a cache only rank 0 can see).
"""

import json
import os
import sys
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the test extractor
from test_manifold_metrics import QuadrantMeansAndLogits

from callbacks import FID
from datamodules import MNISTDataModule
from gans import DCGAN

out_file, devices, data_root, cache_dir = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if len(sys.argv) > 5 and os.environ.get("LOCAL_RANK", "0") != "0":  # set by Lightning's launcher in rank 1
    cache_dir = sys.argv[5]
L.seed_everything(0)
model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
# Odd sizes: the ranks get blocks of different lengths.
# Features on which the generated and real sets overlap, and class logits: precision/recall, density/coverage and IS
# are not trivially 0 (or 1), so they test the gathering of every rank's features and logits in index order.
fid = FID(every_kimg=0, num_samples=31, num_real=51, batch_size=8, feature_extractor=QuadrantMeansAndLogits(),
          at_start=True, at_end=False, kid_subset_size=20, kid_subsets=10, cache_dir=cache_dir)
trainer = L.Trainer(
    accelerator="cpu",
    devices=devices,
    strategy="ddp" if devices > 1 else "auto",
    max_steps=2,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=[fid],
)
data = MNISTDataModule(root=data_root, img_resolution=16, batch_size=8, num_workers=0, download=False)
trainer.fit(model, datamodule=data)
if trainer.is_global_zero:
    out_file.write_text(json.dumps(fid.history[0]))
