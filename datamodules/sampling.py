"""Shuffling that depends only on a seed and the epoch, so that a resumed run sees the same batches.

``DataLoader(shuffle=True)`` draws each epoch's permutation from the global random stream when an
iterator is created. Lightning creates an extra, discarded iterator whenever it rebuilds the
dataloaders (``FitLoop.setup_data`` calls ``iter`` and the epoch loop calls it again), and progressive
growing rebuilds them at every new stage, so an uninterrupted run and one resumed at that epoch would
shuffle differently. :class:`EpochShuffle` draws epoch e's permutation from ``seed + e`` instead;
Lightning calls ``set_epoch`` at every epoch, as it does for ``DistributedSampler`` (which it uses in
place of this under DDP, and which is seeded the same way). The loader also gets its own generator, so
creating an iterator leaves the global stream (latents, augmentation in the main process) alone.
Worker processes' seeds come from that generator, drawn per iterator: augmentation inside workers is
reproducible run to run, but not across a resume at an epoch where Lightning rebuilt the dataloaders.
"""

from __future__ import annotations

import os
from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(size)`` per epoch, from ``torch.Generator().manual_seed(seed + epoch)``."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def shuffle_arguments(datamodule, size: int) -> dict:
    """``DataLoader`` keyword arguments that shuffle training data: :class:`EpochShuffle` on one process
    (seeded by the datamodule's ``shuffle_seed``), plain ``shuffle=True`` under a distributed strategy,
    where Lightning substitutes its epoch-seeded ``DistributedSampler``."""
    trainer = getattr(datamodule, "trainer", None)
    if trainer is not None and trainer.world_size > 1:
        return {"shuffle": True}
    # The loader's own generator: its iterators' worker seeds are then not drawn from the global stream either.
    return {"sampler": EpochShuffle(size, datamodule.shuffle_seed), "generator": torch.Generator().manual_seed(datamodule.shuffle_seed)}


class UnpairedShuffle(Sampler[tuple[int, int]]):
    """Pairs ``(index_a, index_b)`` of two unpaired domains, ``length`` per epoch (default ``max(size_a, size_b)``),
    from ``torch.Generator().manual_seed(seed + epoch)`` like :class:`EpochShuffle`.

    As the official CycleGAN ``UnalignedDataset`` (Zhu et al. 2017, arXiv:1703.10593) and CoGAN's MNIST pairs
    (Liu & Tuzel 2016, arXiv:1606.07536, official ``dataset_mnistedge.py``): domain A is walked in a random
    order (a permutation of ``range(length)`` taken modulo ``size_a``, so every A image comes up once per epoch
    when A is the larger domain), and each A image is paired with a B image drawn uniformly at random,
    independently of A. Under DDP Lightning wraps this sampler in its ``DistributedSamplerWrapper``, which
    shards the pairs and forwards ``set_epoch``.
    """

    def __init__(self, size_a: int, size_b: int, seed: int, length: int | None = None) -> None:
        self.size_a, self.size_b, self.seed, self.epoch = size_a, size_b, seed, 0
        self.length = max(size_a, size_b) if length is None else length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        index_a = torch.randperm(self.length, generator=generator) % self.size_a
        index_b = torch.randint(self.size_b, (self.length,), generator=generator)
        return iter(zip(index_a.tolist(), index_b.tolist()))

    def __len__(self) -> int:
        return self.length


def unpaired_shuffle_arguments(datamodule, size_a: int, size_b: int) -> dict:
    """``DataLoader`` keyword arguments that draw :class:`UnpairedShuffle` pairs: seeded by the datamodule's
    ``shuffle_seed`` on one process; under a distributed strategy by ``PL_GLOBAL_SEED`` (what Lightning seeds its
    ``DistributedSampler`` with, the same on every process), so that every process draws the same pairs and
    Lightning's wrapper gives each its own share."""
    trainer = getattr(datamodule, "trainer", None)
    distributed = trainer is not None and trainer.world_size > 1
    seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if distributed else datamodule.shuffle_seed
    return {"sampler": UnpairedShuffle(size_a, size_b, seed), "generator": torch.Generator().manual_seed(seed)}
