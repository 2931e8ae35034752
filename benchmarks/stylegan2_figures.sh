#!/usr/bin/env bash
# The StyleGAN tools on the CPU-trained StyleGAN2 (experiments/stylegan2_faces_cpu.yaml, run by
# benchmarks/faces_fid.py): truncation, style mixing, noise, interpolation and the projection of one real
# face, written to benchmarks/results/stylegan2_faces_cpu_*.{png,gif}. Usage: bash benchmarks/stylegan2_figures.sh [CHECKPOINT]
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:-benchmarks/out/stylegan2_faces_cpu/runs/stylegan2_faces_cpu/checkpoints/last.ckpt}
out=benchmarks/results/stylegan2_faces_cpu
tools="python -m gans.tools.style_tools"
$tools truncation  --checkpoint "$ckpt" --out ${out}_truncation.png --seeds 0 1 2 3 --psi 1 0.7 0.5 0 -0.5 -1
$tools mix         --checkpoint "$ckpt" --out ${out}_mix_coarse.png --cols 0 1 2 3 4 --rows 5 6 7 --styles coarse
$tools mix         --checkpoint "$ckpt" --out ${out}_mix_fine.png --cols 0 1 2 3 4 --rows 5 6 7 --styles 32,64
$tools noise       --checkpoint "$ckpt" --out ${out}_noise.png --seeds 0 1 2 --fine-from 32
$tools interpolate --checkpoint "$ckpt" --out ${out}_interpolation.png --seeds 0 1 2 3 --steps 8 --space w
$tools interpolate --checkpoint "$ckpt" --out ${out}_interpolation.gif --seeds 0 1 2 3 0 --steps 12 --space w
# A real face the model has seen (the zip's 000001.jpg), projected with the offline Inception distance.
python - <<'PY'
import zipfile
zipfile.ZipFile("../shared/data/faces/celeba-10k.zip").extract("celebA/000001.jpg", "benchmarks/out")
PY
$tools project --checkpoint "$ckpt" --target benchmarks/out/celebA/000001.jpg --out ${out}_projection.png --steps 300 \
  --w-out benchmarks/out/stylegan2_faces_cpu_projection_w.pt
