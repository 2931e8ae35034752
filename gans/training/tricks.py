"""Training tricks from the seed reports, each a switch of :class:`gans.training.gan_module.GANModule`.

- One-sided label smoothing: real targets 1 - s (Salimans et al. 2016, arXiv:1606.03498, section 3.4).
- Soft labels: real targets ~ U[0.8, 1.2], fake ~ U[0, 0.2], drawn for each sample at each step (Chintala et al.,
  "ganhacks", trick 6; the MLDS anime report's tip).
- Noisy labels: each target flipped with probability p (ganhacks, trick 6).
- Instance noise: Gaussian noise on D's inputs, real and fake alike, optionally annealed to zero
  (Sonderby et al. 2017, arXiv:1610.04490, section 5).
"""

from __future__ import annotations

import torch
from torch import Tensor

SOFT_REAL_RANGE = (0.8, 1.2)
SOFT_FAKE_RANGE = (0.0, 0.2)


def label_targets(
    logits: Tensor,
    real: bool,
    smoothing: float = 0.0,
    soft: bool = False,
    flip_prob: float = 0.0,
) -> Tensor:
    """Per-sample D targets shaped like ``logits``: 1 for real and 0 for fake, changed by the tricks.

    Smoothing is one-sided: it only lowers the real targets, as Salimans et al. recommend.
    """
    if soft:
        targets = _soft_targets(logits, real)
    else:
        targets = torch.full_like(logits, (1.0 - smoothing) if real else 0.0, dtype=torch.float32)
    if flip_prob > 0:
        # A flipped target is the other side's target, drawn from that side's range.
        flipped = _soft_targets(logits, not real) if soft else torch.full_like(targets, 0.0 if real else 1.0 - smoothing)
        targets = torch.where(torch.rand_like(targets) < flip_prob, flipped, targets)
    return targets.to(logits.dtype)


def _soft_targets(logits: Tensor, real: bool) -> Tensor:
    low, high = SOFT_REAL_RANGE if real else SOFT_FAKE_RANGE
    return torch.empty_like(logits, dtype=torch.float32).uniform_(low, high)


def instance_noise(x: Tensor, std: float) -> Tensor:
    """x + N(0, std^2); the identity when std is 0."""
    return x + std * torch.randn_like(x) if std > 0 else x
