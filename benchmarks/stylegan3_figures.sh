#!/usr/bin/env bash
# StyleGAN3's pictures and metrics (gans.tools.equivariance_pictures) on a StyleGAN3 checkpoint, next to a StyleGAN2 one
# trained on the same data: the texture-sticking figure (paper Figure 1: central image and the average of 32
# neighbouring latents' images, StyleGAN2 | StyleGAN3), translation and rotation GIFs of the StyleGAN3, and its
# EQ-T / EQ-T_frac / EQ-R (official protocol) as JSON, and the StyleGAN2's beside it. Writes benchmarks/results/stylegan3_*.{png,gif,json}.
# Usage: bash benchmarks/stylegan3_figures.sh SG3_CHECKPOINT [SG2_CHECKPOINT] [EQ_SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
sg3=${1:?usage: bash benchmarks/stylegan3_figures.sh SG3_CHECKPOINT [SG2_CHECKPOINT] [EQ_SAMPLES]}
sg2=${2:-benchmarks/out/stylegan2_faces_cpu/runs/stylegan2_faces_cpu/checkpoints/last.ckpt}
samples=${3:-50000}
out=benchmarks/results/stylegan3
tools="python -m gans.tools.equivariance_pictures"
$tools sticking --checkpoint "$sg2" "$sg3" --name StyleGAN2 StyleGAN3 --out ${out}_texture_sticking.png --seeds 0 1 2 3 --neighbours 32 --radius 0.8
$tools animate  --checkpoint "$sg3" --out ${out}_translate.gif --motion translate --frames 48
$tools animate  --checkpoint "$sg3" --out ${out}_rotate.gif --motion rotate --frames 48
$tools measure  --checkpoint "$sg3" --out ${out}_equivariance.json --samples "$samples"
# StyleGAN2 through the paper's approximation for its config A (the learned constant resampled under the transform)
$tools measure  --checkpoint "$sg2" --out ${out}_equivariance_stylegan2.json --samples "$samples"
