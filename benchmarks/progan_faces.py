"""ProGAN growing 4 -> 32 on the shared face photos on 2 CPU cores: wall time, a sample grid at every
resolution, and FID/KID against kimg.

1. Trains with ``lightning fit --config experiments/progan_faces_cpu.yaml`` (skipped with ``--skip-fit``
   when ``--run`` already holds a finished run), timing it and the CPU the rest of the machine used.
2. For the checkpoint at the end of every resolution (the config saves one per 10-kimg phase), samples
   the EMA generator at its stage from fixed latents: ``benchmarks/results/progan_faces_cpu_stages.png``
   (one row per checkpoint: the same 12 latents at 4, 8, 16, 32 px, lower stages nearest-upsampled) and
   the final 8x8 grid ``benchmarks/results/progan_faces_cpu.png``.
3. FID, KID (mean ± std), precision and recall of ``--num`` samples with the evaluation protocol
   (:mod:`gans.metrics.protocol`): against ``--num`` photos of the zip drawn at random with seed 0, with the
   real-vs-real floor at the same N beside them (TF FID Inception; the real features and the floor are
   ``faces_fid.py``'s cache; about 5 images/s on 2 cores). Lower stages are scored as the model samples them,
   nearest-upsampled to 32 px. The curve goes to ``benchmarks/results/progan_faces_cpu-<config hash>.json``.

    python benchmarks/progan_faces.py --num 500           # about 20 min of training + 10 min of metrics
    python benchmarks/progan_faces.py --skip-fit          # metrics and pictures of an existing run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from faces_fid import FACES, features, floor_summary, real_features  # noqa: E402
from mnist_dcgan import run_measured  # noqa: E402

from gans import ProGAN  # noqa: E402
from gans.metrics import protocol  # noqa: E402
from gans.metrics.inception import InceptionFeatures, to_uint8  # noqa: E402

CONFIG = REPO / "experiments" / "progan_faces_cpu.yaml"
RESULTS = HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=HERE / "out" / "progan_faces_cpu", help="working folder of the run")
    parser.add_argument("--skip-fit", action="store_true", help="evaluate the checkpoints of an existing run")
    parser.add_argument("--num", type=int, default=1000, help="samples (and real images) for FID/KID")
    parser.add_argument("--every", type=int, default=2, help="evaluate every n-th checkpoint (the config saves one per phase)")
    args = parser.parse_args()
    run = args.run.resolve()
    summary: dict = {"config": str(CONFIG.relative_to(REPO)), "num_samples": args.num, "torch": torch.__version__}
    if not args.skip_fit:
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "gans", "fit", "--config", str(CONFIG), f"--data.init_args.root={FACES}",
               "--trainer.enable_progress_bar=false"]
        wall, foreign = run_measured(cmd, dict(os.environ), cwd=run)  # the config writes to runs/progan_faces_cpu/
        summary.update(wall_s=round(wall), foreign_cpu_share=round(foreign, 2))

    checkpoints = sorted((run / "runs" / "progan_faces_cpu" / "checkpoints").glob("kimg*.ckpt"))
    if not checkpoints:
        raise SystemExit(f"No checkpoints in {run}/runs/progan_faces_cpu/checkpoints: run without --skip-fit first.")
    checkpoints = checkpoints[:: args.every] if len(checkpoints) > 1 else checkpoints
    torch.set_grad_enabled(False)
    extractor = InceptionFeatures()
    _, real, floor = real_features(extractor, args.num, 32)
    summary["floor"] = floor_summary(floor)
    rows, strips = [], []
    for ckpt in checkpoints:
        model = ProGAN.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
        strips.append(model.sample_indexed(torch.arange(12)))
        start = time.perf_counter()
        fake = torch.cat([to_uint8(model.sample_indexed(idx)) for idx in torch.arange(args.num).split(100)])
        result = protocol.evaluate(real, features(extractor, fake), floor)
        kimg = float(re.search(r"kimg([\d.]+)", ckpt.stem).group(1).rstrip("."))
        row = {"kimg": kimg, "resolution": model.current_resolution, "alpha": model.alpha, "fid": round(result.fid, 1),
               "kid_x1e3": round(result.kid * 1e3, 1), "kid_std_x1e3": round(result.kid_std * 1e3, 1),
               "precision": round(result.precision, 3), "recall": round(result.recall, 3), "n_fake": result.n_fake,
               "eval_s": round(time.perf_counter() - start)}
        print(f"{kimg:g} kimg, {model.current_resolution} px:", result.describe(), flush=True)
        rows.append(row)
        last = model
    summary["curve"] = rows
    RESULTS.mkdir(exist_ok=True)
    save_image(make_grid(torch.cat(strips).clamp(-1, 1).add(1).div(2), nrow=12, padding=1, pad_value=1.0), RESULTS / "progan_faces_cpu_stages.png")
    save_image(make_grid(last.sample_indexed(torch.arange(64)).clamp(-1, 1).add(1).div(2), nrow=8, padding=1, pad_value=1.0), RESULTS / "progan_faces_cpu.png")
    key = {"config": summary["config"], "contents": CONFIG.read_text(), "num": args.num, "seed": 0, "extractor": extractor.cache_name}
    protocol.result_path(RESULTS, "progan_faces_cpu", key).write_text(json.dumps(summary, indent=2))
    floor_text = "none" if floor is None else f"{floor.fid:.1f} / {floor.kid * 1e3:.1f}"
    print(f"| kimg | resolution | FID (N = {args.num}) | KID x 1e3 | precision / recall | floor FID / KID x 1e3 |\n| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['kimg']:g} | {row['resolution']} | {row['fid']} | {row['kid_x1e3']} ± {row['kid_std_x1e3']} "
              f"| {row['precision']} / {row['recall']} | {floor_text} |")


if __name__ == "__main__":
    main()
