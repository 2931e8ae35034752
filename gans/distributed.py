"""Gradient averaging for alternating D/G updates under DDP.

DDP's reducer assumes one backward over all parameters per forward. A GAN step makes
several backwards per ``training_step`` (D, then G), each touching one network, so the
reducer either hangs or needs ``find_unused_parameters=True``, which also hides real
unused-parameter bugs. Instead the base module runs each backward under ``no_sync`` and averages the
gradients of exactly the network that is about to step, with one all-reduce. Parameters
start identical (DDP broadcasts them at wrap time) and every rank applies the same averaged
gradient, so they stay identical; buffers (batch-norm statistics) are broadcast from rank 0
after each step, as DDP does with ``broadcast_buffers=True``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def reducer_off(model: nn.Module) -> AbstractContextManager:
    """A context in which DDP's reducer leaves the gradients of ``model`` alone (``no_sync``)."""
    return model.no_sync() if isinstance(model, DistributedDataParallel) else nullcontext()


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_ranks(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``flag`` holds on every rank (one all-reduce of a single number under DDP)."""
    if not _is_distributed():
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The average of ``value`` over all ranks (a copy; ``value`` itself is left alone)."""
    if not _is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def all_reduce_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module``'s trainable parameters over all ranks (one flat all-reduce).

    A parameter without a gradient contributes zeros, so every rank sends the same layout.
    """
    if not _is_distributed():
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        averaged = flat[offset : offset + p.numel()].view_as(p)
        if p.grad is None:
            p.grad = averaged.clone()
        else:
            p.grad.copy_(averaged)
        offset += p.numel()


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy ``module``'s floating-point and integer buffers from rank ``src`` to all ranks."""
    if not _is_distributed():
        return
    for buf in module.buffers():
        dist.broadcast(buf, src)
