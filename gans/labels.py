"""The conditioning protocol: what a label is, for every conditional model, datamodule and callback.

A model's labels are described by its :class:`LabelSpace`, built from ``num_classes``:

- ``0``: unconditional; labels are ``None`` everywhere.
- ``10``: one class index per sample, a ``[N]`` long tensor (CGAN on MNIST, BigGAN on CIFAR-10).
- ``[12, 10]``: several heads, one class index per head, a ``[N, 2]`` long tensor (the anime faces'
  hair and eye colours for ACGAN and StarGAN). :meth:`LabelSpace.multi_hot` turns it into the
  concatenated one-hot vector ``[N, 22]`` that networks conditioned on a tag vector take.

Datamodules yield ``(images, labels)`` with labels in this form; the model draws labels for its fakes
with :meth:`LabelSpace.sample` and numbers them with :meth:`LabelSpace.for_indices`, which walks through
every combination of classes in order (index i: head 0 takes ``i mod n0``, head 1 ``(i // n0) mod n1``,
...), so a grid of ``n0`` columns shows one class of head 0 per column and FID / ``predict`` samples
cover all classes evenly whatever the number of ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from gans.errors import ConfigError


@dataclass(frozen=True)
class LabelSpace:
    """Class counts per label head; ``()`` = unconditional."""

    heads: tuple[int, ...] = ()

    @classmethod
    def from_num_classes(cls, num_classes: int | Sequence[int] | None) -> "LabelSpace":
        """``0``/``None`` = unconditional, an int = one class index, a list = one class index per head."""
        if not num_classes:
            return cls(())
        heads = (int(num_classes),) if isinstance(num_classes, int) else tuple(int(n) for n in num_classes)
        if any(n < 1 for n in heads):
            raise ConfigError(f"num_classes must be 0 (unconditional), an int >= 1 or a list of ints >= 1, got {num_classes}.")
        return cls(heads)

    @property
    def conditional(self) -> bool:
        return bool(self.heads)

    @property
    def multi_head(self) -> bool:
        return len(self.heads) > 1

    @property
    def num_combinations(self) -> int:
        """Distinct labels: the product of the heads' class counts (0 when unconditional)."""
        return math.prod(self.heads) if self.heads else 0

    def _shape(self, labels: Tensor) -> Tensor:
        return labels if self.multi_head else labels[:, 0]

    def sample(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> Tensor | None:
        """``n`` labels drawn uniformly and independently per head, or None when unconditional."""
        if not self.heads:
            return None
        columns = [torch.randint(0, k, (n,), generator=generator, device=device) for k in self.heads]
        return self._shape(torch.stack(columns, dim=1))

    def for_indices(self, indices: Tensor) -> Tensor | None:
        """The label of sample number i for each i in ``indices`` (mixed radix over the heads), or None."""
        if not self.heads:
            return None
        indices = indices.long()
        columns, rest = [], indices
        for k in self.heads:
            columns.append(rest % k)
            rest = rest // k
        return self._shape(torch.stack(columns, dim=1))

    def multi_hot(self, labels: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """``[N, sum(heads)]``: the one-hot vectors of the heads concatenated (one-hot for one head)."""
        labels = labels.long().reshape(labels.shape[0], len(self.heads))
        parts = [torch.nn.functional.one_hot(labels[:, h], k) for h, k in enumerate(self.heads)]
        return torch.cat(parts, dim=1).to(dtype)

    def check(self, labels: Tensor | None, where: str) -> None:
        """Raise a :class:`ConfigError` naming ``where`` when ``labels`` do not have this space's form."""
        if not self.heads:
            return
        if labels is None:
            raise ConfigError(f"{where}: the model is conditional (num_classes={list(self.heads)}) but the batch has no labels.")
        expected = 2 if self.multi_head else 1
        if labels.dim() != expected or (self.multi_head and labels.shape[1] != len(self.heads)):
            raise ConfigError(
                f"{where}: labels of shape {tuple(labels.shape)} do not fit num_classes={list(self.heads)} "
                f"(expected {'[N, %d] class indices' % len(self.heads) if self.multi_head else '[N] class indices'})."
            )


def class_names_per_head(datamodule: object, num_heads: int) -> list[list[str]] | None:
    """The datamodule's ``class_names`` as one list per label head, or None when it has none that fit: a flat list
    of names is the one head's (CIFAR-10's ``airplane``, ...), a list of lists one per head (the anime faces')."""
    names = getattr(datamodule, "class_names", None)
    if not names:
        return None
    per_head = [list(names)] if all(isinstance(n, str) for n in names) else [list(head) for head in names]
    return per_head if len(per_head) == num_heads else None


def head_names(datamodule: object, num_heads: int) -> list[str]:
    """Names of the label heads, for metric names: the datamodule's ``label_heads`` (the anime faces' ``hair``,
    ``eye``), else ``class`` for one head and ``head0``, ``head1``, ... for several."""
    names = getattr(datamodule, "label_heads", None)
    if names and len(names) == num_heads:
        return [str(n) for n in names]
    return ["class"] if num_heads == 1 else [f"head{h}" for h in range(num_heads)]
