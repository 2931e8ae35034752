"""Data parallelism for alternating GAN updates, through Lightning's strategies and DDP itself.

Nothing here calls ``torch.distributed``: collectives go through the Lightning strategy
(``reduce``, ``all_gather``), so they work on every launcher Lightning has (``ddp``, ``ddp_spawn``,
multi-node, XLA), and gradients are reduced by ``DistributedDataParallel``.

**Gradients.** Lightning's DDP strategy wraps the whole LightningModule in one DDP, whose reducer
expects one backward over all parameters per forward. A GAN step makes several backwards, each
training a different network. As in StyleGAN2-ADA's training loop, each trained network gets its
own DDP wrapper (:func:`wrap_networks`), so its gradients are bucketed and all-reduced while the
backward still runs; before a backward, only the wrappers of the networks the stepping optimizer
trains are told to expect gradients (:func:`expect_gradients`), the others stay idle, and the
whole-module wrapper runs the backward under its ``no_sync`` (:func:`whole_module_idle`). The wrappers are built with
``find_unused_parameters=True``: a parameter that no rank used keeps ``grad = None`` and the
optimizer leaves it alone (ProGAN's blocks that have not faded in yet), instead of getting a zero
gradient that Adam would step on.

**Under XLA** Lightning's XLA strategy has no DDP: its precision plugin all-reduces (averages) the
gradients of the stepping optimizer inside ``optimizer.step()``, and only the gradients that are not
None, so every core must leave the same parameters without a gradient (all our phases do). The
non-finite verdict is then reduced through the strategy before the step (:func:`any_rank`), so every
core takes the same decision; XLA's ``all_gather`` concatenates along dim 0 and ``reduce`` returns a
CPU tensor, which the helpers here allow for.

**Buffers** (batch-norm running statistics, a tracked mean w) do not take part in the updates, so
they are not communicated every step, and each rank's follow its own data. Where they are read, their
average over ranks is taken without touching them (:func:`averaged_buffers`): a checkpoint holds the
averages, and an evaluation (FID, PPL) samples one network on every rank under :func:`buffers_averaged`,
which puts each rank's own back afterwards, so writing a checkpoint or measuring FID leaves training as
it was. A checkpoint also keeps every rank's own (:func:`buffers_of_every_rank`), which a resume gives back to
each rank, as it does their random streams. Only the end of fit sets them to the average
(:func:`average_buffers_`): the trained model is then one model on every rank, the one its last checkpoint
holds (and the one ``ddp_spawn`` hands back).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from gans.training.lightning_compat import prepare_for_backward


def poison_nonfinite(loss: Tensor, nonfinite: Tensor) -> Tensor:
    """``loss``, whose backward turns the gradients it reaches into NaN when the loss itself is NaN/Inf
    (``nonfinite``, the flag of :func:`nonfinite_loss`).

    A non-finite loss does not always give non-finite gradients (``x * 0``, a detached term); this
    makes it so: the backward starts from ``d(poisoned)/d(loss) = NaN``. Not every element becomes NaN
    (a ReLU's backward passes exact zeros where it was off), but every network's last layer does, and
    the gradient average then carries the verdict to every rank with no extra collective.
    """
    return loss * torch.where(nonfinite.bool(), float("nan"), 1.0)


def nonfinite_loss(loss: Tensor) -> Tensor:
    """A 0-dim float tensor on the loss's device: 1 if ``loss`` is NaN/Inf, else 0."""
    return (~torch.isfinite(loss.detach())).float().reshape(())


def nonfinite_gradients(params: Iterable[Tensor]) -> Tensor:
    """A 0-dim float tensor on the gradients' device: 1 if any gradient holds a NaN/Inf, else 0.

    One fused norm per device and dtype (as ``clip_grad_norm_`` computes it); a norm that overflows
    to Inf from huge finite gradients also counts, which such an update deserves.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.stack([n.float() for n in torch._foreach_norm(grads)]).sum()
    return (~torch.isfinite(total)).float()


def is_ddp(model: Any) -> bool:
    return isinstance(model, DistributedDataParallel)


def whole_module_idle(model: Any) -> AbstractContextManager:
    """A context in which Lightning's whole-module DDP wrapper leaves the backward alone (its ``no_sync``);
    the per-network wrappers do the reducing. A null context for any other model."""
    return model.no_sync() if isinstance(model, DistributedDataParallel) else nullcontext()


def wrap_networks(networks: dict[str, nn.Module], like: DistributedDataParallel) -> dict[str, DistributedDataParallel]:
    """One DDP wrapper per network, on the devices and process group of Lightning's wrapper ``like``."""
    return {
        name: DistributedDataParallel(
            network,
            device_ids=like.device_ids,
            process_group=like.process_group,
            find_unused_parameters=True,
            broadcast_buffers=False,
        )
        for name, network in networks.items()
    }


def keep_buffers_local(wrapper: DistributedDataParallel) -> None:
    """Stop ``wrapper`` from broadcasting rank 0's buffers at the start of its forward.

    DDP does so at the first forward of a fresh wrapper (and whenever its last forward was followed by a synchronised
    backward); here the buffers are each rank's own during fit, and a resumed rank gets its own back at train start
    (:meth:`gans.training.core.AdversarialModule.on_train_start`), which that broadcast would overwrite.
    Set on Lightning's whole-module wrapper before its first forward: ``forward_sync_buffers`` (torch >= 2.13) or
    ``broadcast_buffers`` (before), the attribute DDP reads for it."""
    for name in ("forward_sync_buffers", "broadcast_buffers"):
        if hasattr(wrapper, name):
            setattr(wrapper, name, False)


def expect_gradients(wrappers: Iterable[DistributedDataParallel], loss: Tensor) -> None:
    """Tell each wrapper that the next backward (of ``loss``) computes its network's gradients."""
    for wrapper in wrappers:
        prepare_for_backward(wrapper, loss)


def any_rank(strategy: Any, flag: Tensor) -> Tensor:
    """``flag`` (0/1) OR-ed over ranks, through the strategy; the flag itself when there is one process.

    Not ``strategy.reduce_boolean_decision``, which returns a Python bool: this stays a device tensor, so the
    non-finite verdict of an XLA step needs no host sync."""
    if strategy.world_size <= 1:
        return flag
    total = strategy.reduce(flag.detach().float().clone(), reduce_op="sum")  # XLA returns it on the CPU
    return (total.to(flag.device) > 0).float()


def mean_over_ranks(strategy: Any, value: Tensor) -> Tensor:
    """The mean of ``value`` over ranks, through the strategy (a copy; ``value`` is left alone)."""
    if strategy is None or strategy.world_size <= 1:
        return value
    return strategy.reduce(value.detach().clone(), reduce_op="mean")


def _buffer_groups(module: nn.Module) -> list[list[tuple[str, Tensor]]]:
    """``module``'s floating-point buffers (``named_buffers``), grouped by the precision they are communicated in:
    float64 buffers in float64, the others in float32, so none is rounded through a narrower type than its own.
    Integer buffers, which count steps the same on every rank, are left out. The same groups on every rank."""
    named = [(name, b) for name, b in module.named_buffers() if b.is_floating_point()]
    groups = [[(name, b) for name, b in named if b.dtype != torch.float64], [(name, b) for name, b in named if b.dtype == torch.float64]]
    return [group for group in groups if group]


def _flat(group: list[tuple[str, Tensor]]) -> Tensor:
    precision = torch.float64 if group[0][1].dtype == torch.float64 else torch.float32
    return torch.cat([b.detach().to(precision).reshape(-1) for _, b in group])


def _unflat(group: list[tuple[str, Tensor]], flat: Tensor) -> dict[str, Tensor]:
    parts = flat.split([b.numel() for _, b in group])
    return {name: part.reshape(b.shape).to(device=b.device, dtype=b.dtype) for (name, b), part in zip(group, parts)}


@torch.no_grad()
def averaged_buffers(strategy: Any, module: nn.Module) -> dict[str, Tensor]:
    """Copies of ``module``'s floating-point buffers averaged over ranks, by ``named_buffers`` name, each in its
    buffer's dtype and on its device (one collective per precision, :func:`_buffer_groups`); the buffers
    themselves are left alone. With one process there is nothing to average (an empty dict)."""
    if strategy is None or strategy.world_size <= 1:
        return {}
    averaged = {}
    for group in _buffer_groups(module):
        averaged.update(_unflat(group, strategy.reduce(_flat(group), reduce_op="mean")))  # XLA returns it on the CPU
    return averaged


@torch.no_grad()
def buffers_of_every_rank(strategy: Any, module: nn.Module) -> list[dict[str, Tensor]]:
    """Every rank's own floating-point buffers, in rank order, by name, each in its dtype and on this rank's device
    (one ``all_gather`` per precision); this rank's alone with one process."""
    ranks: list[dict[str, Tensor]] = [{} for _ in range(1 if strategy is None else strategy.world_size)]
    for group in _buffer_groups(module):
        flat = _flat(group)
        for rank, values in zip(ranks, gather_per_rank(strategy, flat)):
            rank.update(_unflat(group, values))
    return ranks


@contextmanager
def buffers_averaged(strategy: Any, module: nn.Module) -> Iterator[None]:
    """A context in which ``module``'s floating-point buffers hold their average over ranks (:func:`averaged_buffers`),
    so that every rank samples one network; each rank's own values are put back when it exits."""
    averaged = averaged_buffers(strategy, module)
    buffers = dict(module.named_buffers())
    own = {name: buffers[name].detach().clone() for name in averaged}
    with torch.no_grad():
        for name, value in averaged.items():
            buffers[name].copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, value in own.items():
                buffers[name].copy_(value)


@torch.no_grad()
def average_buffers_(strategy: Any, module: nn.Module) -> None:
    """Set ``module``'s floating-point buffers to their average over ranks (:func:`averaged_buffers`), in place."""
    buffers = dict(module.named_buffers())
    for name, value in averaged_buffers(strategy, module).items():
        buffers[name].copy_(value)


def gather_per_rank(strategy: Any, tensor: Tensor) -> list[Tensor]:
    """Every rank's ``tensor`` (one shape on every rank) in rank order, through the strategy: views of one gathered
    tensor, on the device the strategy gathers on; ``[tensor]`` itself with one process or none.

    Lightning's ``all_gather`` stacks under DDP (``[world_size, *shape]``) and concatenates along dim 0 under XLA
    (``[world_size * n, ...]``); both read as ``[world_size, *shape]`` here, so the callers need not know which."""
    if strategy is None or strategy.world_size <= 1:
        return [tensor]
    return list(strategy.all_gather(tensor).reshape(strategy.world_size, *tensor.shape).unbind(0))


def gather_uneven(strategy: Any, tensor: Tensor) -> list[Tensor]:
    """Every rank's ``tensor`` in rank order, through the strategy, when their first dimensions differ.

    Usable as torchmetrics' ``dist_sync_fn`` (:func:`metric_sync`): metric states are synchronised by the strategy on
    any launcher (torchmetrics' own default needs a ``torch.distributed`` process group).
    """
    if strategy.world_size <= 1 or tensor.dim() == 0:
        return gather_per_rank(strategy, tensor)
    sizes = [int(n) for n in gather_per_rank(strategy, torch.tensor([tensor.shape[0]], device=tensor.device))]
    longest = max(sizes)
    padded = torch.cat([tensor, tensor.new_zeros(longest - tensor.shape[0], *tensor.shape[1:])]) if tensor.shape[0] < longest else tensor
    return [everyone[:n] for everyone, n in zip(gather_per_rank(strategy, padded), sizes)]


def metric_sync(strategy: Any) -> dict[str, Any]:
    """torchmetrics' synchronisation arguments (``dist_sync_fn``, ``distributed_available_fn``) that reduce a metric's
    states over ranks through ``strategy`` (:func:`gather_uneven`), on any launcher Lightning has."""
    return dict(
        dist_sync_fn=lambda tensor, group=None: gather_uneven(strategy, tensor),
        distributed_available_fn=lambda: strategy.world_size > 1,
    )
