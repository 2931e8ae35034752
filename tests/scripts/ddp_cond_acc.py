"""Score callbacks.ConditionalAccuracy at the end of a 1-step fit on 1 or 2 CPU processes (gloo); each rank saves its values.

Run by tests/test_cond_acc.py as ``python ddp_cond_acc.py OUT_PREFIX DEVICES CACHE_DIR`` (the settings: its
``ddp_setup``); Lightning's launcher starts rank 1 by re-running this command.
"""

import json
import sys
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the test's datamodule and stand-in generator
from test_cond_acc import ddp_setup  # noqa: E402

out_prefix, devices, cache_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
L.seed_everything(0)
callback, data, model = ddp_setup(cache_dir)
trainer = L.Trainer(
    accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", max_steps=1, logger=False,
    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
)
trainer.fit(model, datamodule=data)
values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("metrics/")}
Path(f"{out_prefix}.rank{trainer.global_rank}.json").write_text(json.dumps({**values, "trained": callback.trained}))
