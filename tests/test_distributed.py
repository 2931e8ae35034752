"""gans.training.distributed's gathers, on ranks simulated by threads whose ``all_gather`` stacks (DDP) or concatenates
along dim 0 (XLA): every rank gets every rank's tensor, in rank order, either way."""

import threading
from typing import Any, Callable

import pytest
import torch

from gans.models.translation.cyclegan import CycleGAN
from gans.training import distributed


class ThreadRanks:
    """``world_size`` threads as the ranks of a Lightning strategy. ``all_gather`` meets every rank's tensor and stacks
    them (DDP: ``[world_size, *shape]``) or, with ``concatenate``, joins them along dim 0 as Lightning's XLA strategy does
    (``[world_size * n, ...]``; a 0-dim tensor becomes 1-dim first)."""

    def __init__(self, world_size: int, concatenate: bool) -> None:
        self.world_size = world_size
        self.concatenate = concatenate
        self._barrier = threading.Barrier(world_size, timeout=30)
        self._slots: list[Any] = [None] * world_size
        self._local = threading.local()

    root_device = torch.device("cpu")

    @property
    def global_rank(self) -> int:
        return self._local.rank

    @property
    def strategy(self) -> "ThreadRanks":  # also the Trainer that a module's ``self.trainer`` reaches
        return self

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "mean"
        return torch.stack(distributed.gather_per_rank(self, tensor)).mean(0)

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        self._slots[self.global_rank] = tensor
        self._barrier.wait()
        everyone = list(self._slots)
        self._barrier.wait()  # every rank has read before any writes its next tensor
        return torch.cat([t.reshape(1) if t.dim() == 0 else t for t in everyone]) if self.concatenate else torch.stack(everyone)

    def run(self, fn: Callable[["ThreadRanks", int], Any]) -> list[Any]:
        """``fn(strategy, rank)`` on every rank at once; the results in rank order."""
        results: list[Any] = [None] * self.world_size
        errors: list[BaseException] = []

        def rank_main(rank: int) -> None:
            self._local.rank = rank
            try:
                results[rank] = fn(self, rank)
            except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(error)
                self._barrier.abort()

        threads = [threading.Thread(target=rank_main, args=(rank,)) for rank in range(self.world_size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


LAUNCHERS = pytest.mark.parametrize("concatenate", [False, True], ids=["ddp-stacks", "xla-concatenates"])


def own(rank: int, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor that only ``rank`` holds."""
    return torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape) + 100 * rank


@LAUNCHERS
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)], ids=["0-dim", "1-dim", "2-dim"])
def test_gather_per_rank_gives_every_rank_each_ranks_tensor_in_rank_order(concatenate: bool, shape: tuple[int, ...]) -> None:
    ranks = ThreadRanks(3, concatenate)
    for gathered in ranks.run(lambda strategy, rank: distributed.gather_per_rank(strategy, own(rank, shape))):
        assert len(gathered) == 3
        for rank, tensor in enumerate(gathered):
            assert torch.equal(tensor, own(rank, shape)), rank


@LAUNCHERS
def test_gather_uneven_cuts_each_ranks_rows_back_out(concatenate: bool) -> None:
    rows = (3, 0, 2)
    ranks = ThreadRanks(3, concatenate)
    for gathered in ranks.run(lambda strategy, rank: distributed.gather_uneven(strategy, own(rank, (rows[rank], 2)))):
        assert [tuple(t.shape) for t in gathered] == [(3, 2), (0, 2), (2, 2)]
        for rank, tensor in enumerate(gathered):
            assert torch.equal(tensor, own(rank, (rows[rank], 2))), rank


@LAUNCHERS
def test_every_ranks_buffers_in_their_dtypes(concatenate: bool) -> None:
    def buffers(strategy: ThreadRanks, rank: int) -> list[dict[str, torch.Tensor]]:
        module = torch.nn.BatchNorm1d(3)
        module.running_mean.fill_(rank)
        module.register_buffer("precise", torch.full((2,), 1 + rank * 1e-12, dtype=torch.float64))
        return distributed.buffers_of_every_rank(strategy, module)

    for everyone in ThreadRanks(2, concatenate).run(buffers):
        for rank, values in enumerate(everyone):
            assert torch.equal(values["running_mean"], torch.full((3,), float(rank)))
            assert values["precise"].dtype == torch.float64
            assert torch.equal(values["precise"], torch.full((2,), 1 + rank * 1e-12, dtype=torch.float64))


def test_one_process_gathers_nothing() -> None:
    tensor = torch.arange(4.0)
    for strategy in (None, ThreadRanks(1, concatenate=False)):
        (gathered,) = distributed.gather_per_rank(strategy, tensor)
        assert gathered is tensor


@LAUNCHERS
def test_a_checkpoint_holds_every_ranks_history_pools_and_random_state(concatenate: bool) -> None:
    """CycleGAN's pools (:class:`gans.training.image_to_image.HistoryPool`, each rank's filled with its own fakes) and
    the core's RNG states are gathered per rank on save, in rank order (a resume gives each rank its own back)."""

    def save(strategy: ThreadRanks, rank: int) -> dict:
        model = CycleGAN(img_resolution=16, ngf=4, ndf=4, g_blocks=1, d_layers=2, pool_size=3)
        model._trainer = strategy
        for name, pool in model.history_pools.items():
            pool.query(own(rank, (2, 3, 16, 16)) + len(name))
        checkpoint = {"state_dict": model.state_dict()}
        model.on_save_checkpoint(checkpoint)
        return checkpoint

    for checkpoint in ThreadRanks(2, concatenate).run(save):
        for name, pools in checkpoint["history_pools"].items():
            assert [tuple(p.shape) for p in pools] == [(2, 3, 16, 16)] * 2
            assert all(torch.equal(p, own(r, (2, 3, 16, 16)) + len(name)) for r, p in enumerate(pools)), name
        assert [tuple(s.shape) for s in checkpoint["gan_progress"]["rng_cpu"]] == [tuple(torch.get_rng_state().shape)] * 2
