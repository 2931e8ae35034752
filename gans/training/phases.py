"""Training phases declared by the module, as NVIDIA's StyleGAN2-ADA training loop declares them
(stylegan2-ada-pytorch ``training/training_loop.py``: ``phases``, each with a name, a network, an
optimizer and an interval; ``training/loss.py``: the loss of each).

A training batch runs a module's phases in order (:meth:`gans.training.gan_module.GANModule.training_phases`);
each :class:`Phase` is one update of one network by its optimizer on its own loss, and runs when its
clock's count is a multiple of its ``interval``, counted from 0 as the official ``batch_idx % interval == 0``
(so a lazy phase's first update is at the first batch).

**Lazy regularisation** (StyleGAN2, Karras et al. 2020, arXiv:1912.04958, section 3.1 and Appendix B):
a regulariser computed less often than the main loss, in its own phase of interval k (R1: 16; path
length, eq. 4: 4), its penalty multiplied by k so that its strength per image is unchanged. The
network then takes ``k + 1`` updates where the schedule counts ``k``, so its optimizer is built with
``lr * c`` and Adam ``betas ** c``, ``c = k / (k + 1)`` (:func:`lazy_ratio`; other optimizers: lr only).
The correction is made where the optimizers are built (:func:`correct_optimizer_`), so every lr
schedule composes with it: a Lightning lr scheduler takes the corrected lr as its ``base_lrs``, and
code that sets an lr itself (SNGAN's linear decay, :class:`callbacks.ProgressiveGrowing`'s lr per
resolution) multiplies by the factor each param group records (:func:`lr_ratio`), which the
optimizer's state dict saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Literal, Mapping, Sequence

from torch import Tensor

from gans.errors import ConfigError

# The param-group key that records the correction applied to its lr (and betas); saved with the optimizer's state.
RATIO_KEY = "lazy_ratio"

Clock = Literal["batches", "g_steps"]
CLOCKS: tuple[str, ...] = Clock.__args__


@dataclass(frozen=True)
class Phase:
    """One update of a training batch.

    Attributes:
        name: the official name (``Dmain``, ``Dreg``, ``Gmain``, ``Greg``), logged nowhere, read by people and tests.
        network: the attribute of the module that the update trains (``discriminator``, ``generator``).
        optimizer: the index of its optimizer in ``configure_optimizers``' return (``self.optimizers()``).
        loss: ``loss(real, labels) -> Tensor`` on the batch's real images and labels; the module's method.
        interval: the phase runs when its clock's count is a multiple of this (1 = every tick).
        clock: what the interval counts: ``batches`` (training batches, one D step each) or ``g_steps``
            (generator turns: the batches that end ``critic_steps()`` D steps; the official loop has one per batch).
    """

    name: str
    network: str
    optimizer: int
    loss: Callable[[Tensor, Tensor | None], Tensor]
    interval: int = 1
    clock: Clock = "batches"

    def __post_init__(self) -> None:
        if int(self.interval) != self.interval or self.interval < 1:
            raise ConfigError(f"Phase {self.name} needs an integer interval >= 1, got {self.interval}.")
        if self.clock not in CLOCKS:
            raise ConfigError(f"Phase {self.name} has clock {self.clock!r}: choose one of {', '.join(CLOCKS)}.")

    def due(self, counts: Mapping[str, int | None]) -> bool:
        """Whether the phase runs now, given each clock's count (None: that clock does not tick this batch)."""
        count = counts[self.clock]
        return count is not None and count % self.interval == 0


def lazy_ratio(phases: Sequence[Phase], optimizer: int) -> float:
    """StyleGAN2's minibatch ratio for ``optimizer`` (Appendix B): ``k / (k + 1)`` when it also steps a lazy
    phase of interval ``k > 1``, 1 when it steps only every-tick phases. In general the number of main updates
    over all updates per period, ``1 / (1 + sum 1/k)`` over its lazy phases (computed exactly, then rounded once)."""
    lazy = [p.interval for p in phases if p.optimizer == optimizer and p.interval > 1]
    return float(1 / (1 + sum((Fraction(1, k) for k in lazy), Fraction(0))))


def correct_optimizer_(optimizer: Any, ratio: float) -> Any:
    """Scale a freshly built optimizer's lr by ``ratio`` and raise its Adam betas to ``ratio`` (optimizers without
    ``betas``: the lr only), recording ``ratio`` in each param group (:data:`RATIO_KEY`). Returns ``optimizer``."""
    if ratio == 1.0:
        return optimizer
    for group in optimizer.param_groups:
        if group.get(RATIO_KEY, 1.0) != 1.0:
            raise ConfigError(f"The optimizer is already corrected for a lazy interval (ratio {group[RATIO_KEY]}): correct it once, where it is built.")
        group["lr"] = group["lr"] * ratio
        if "betas" in group:
            group["betas"] = tuple(beta**ratio for beta in group["betas"])
        group[RATIO_KEY] = ratio
    return optimizer


def lr_ratio(group: Mapping[str, Any]) -> float:
    """The lazy-regularisation factor a param group's lr carries (1 when none): code that sets an lr
    itself multiplies by it."""
    return float(group.get(RATIO_KEY, 1.0))
