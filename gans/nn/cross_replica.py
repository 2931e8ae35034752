"""BigGAN's cross-replica batch norm: batch statistics over every rank, on any device."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


class CrossReplicaBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics are those of the global batch over every rank: BigGAN's "cross-replica"
    batch norm (Brock et al. 2018, arXiv:1809.11096, appendix C; the official code's ``cross_replica`` /
    ``SyncBN2d``), what ``nn.SyncBatchNorm`` does, on any device (``nn.SyncBatchNorm`` refuses CPU tensors).

    The sum over ranks is ``sum_over_ranks``, which the model sets from its Lightning strategy once the trainer is up
    (:func:`set_sum_over_ranks`: ``LightningModule.all_gather(..., sync_grads=True)`` summed, differentiable, so the
    backward sums the gradients over the ranks too). One collective of ``[sum x, sum x^2, count]`` per channel per
    forward: every rank normalises with the same mean and variance and updates the same running statistics.
    Without ``sum_over_ranks`` (one process), outside training or with ``sync = False`` it is exactly
    ``nn.BatchNorm2d``. Under DDP every rank must run the same train-mode forwards in the same order (the GAN steps
    do; sampling is in eval mode; :class:`local_batchnorm` turns the collective off).
    """

    sync: bool = True
    sum_over_ranks: Callable[[Tensor], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and self.sync and self.sum_over_ranks is not None):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        local = torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3)), xf.new_full([1], x.numel() // c)])
        total = self.sum_over_ranks(local)
        count = total[-1]
        mean = total[:c] / count
        var = (total[c : 2 * c] / count - mean.square()).clamp_min(0)  # biased, as batch norm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_((var * count / (count - 1).clamp_min(1)).to(self.running_var.dtype), factor)
        out = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)


def cross_replica_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` (also the one inside :class:`ConditionalBatchNorm2d`) replaced, in
    place, by a :class:`CrossReplicaBatchNorm2d` with the same settings, parameters and statistics."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                synced = CrossReplicaBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                synced.load_state_dict(child.state_dict())
                setattr(parent, name, synced.to(next(child.buffers(), torch.zeros(())).device))
    return module


def set_sum_over_ranks(module: nn.Module, sum_over_ranks: Callable[[Tensor], Tensor] | None) -> None:
    """Give every :class:`CrossReplicaBatchNorm2d` in ``module`` the differentiable sum over ranks (None: one process)."""
    for layer in module.modules():
        if isinstance(layer, CrossReplicaBatchNorm2d):
            layer.sum_over_ranks = sum_over_ranks


class local_batchnorm:
    """A context in which the :class:`CrossReplicaBatchNorm2d` layers of ``module`` use this rank's batch only
    (no collective), e.g. to accumulate standing statistics on one rank."""

    def __init__(self, module: nn.Module) -> None:
        self.layers = [m for m in module.modules() if isinstance(m, CrossReplicaBatchNorm2d)]

    def __enter__(self) -> None:
        for layer in self.layers:
            layer.sync = False

    def __exit__(self, *exc: object) -> None:
        for layer in self.layers:
            layer.sync = True
