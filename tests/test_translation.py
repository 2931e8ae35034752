"""The image-to-image training loop (gans.training.image_to_image): phases over named networks, the history pool, the lr decay."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.training.image_to_image import HistoryPool, TranslationGAN, linear_decay

pytestmark = pytest.mark.usefixtures("one_thread")


# The history pool.


def test_pool_stores_and_returns_new_images_until_full():
    pool = HistoryPool(size=3)
    first = torch.arange(2.0).reshape(2, 1, 1, 1)
    assert torch.equal(pool.query(first), first)
    second = torch.tensor([2.0]).reshape(1, 1, 1, 1)
    assert torch.equal(pool.query(second), second)
    assert pool.stored == 3 and torch.equal(pool.state().flatten(), torch.tensor([0.0, 1.0, 2.0]))


def test_full_pool_returns_an_old_image_half_the_time_and_keeps_the_new_one_in_its_place():
    torch.manual_seed(0)
    pool = HistoryPool(size=50)
    pool.query(-torch.ones(50, 1, 1, 1))  # the pool holds 50 images of value -1
    new = torch.arange(1.0, 401.0).reshape(400, 1, 1, 1)  # 400 new images, all distinct and positive
    out = pool.query(new).flatten()
    old = out < 0
    swapped_in = out[(out > 0) & (out != new.flatten())]  # a new image that an earlier query stored
    assert 0.4 < (out != new.flatten()).float().mean() < 0.6  # official ImagePool: p = 0.5 of returning a stored one
    assert old.any() and len(swapped_in) > 0
    stored = pool.state().flatten()
    returned_new = set(out[out == new.flatten()].tolist())
    assert not (set(stored.tolist()) & returned_new)  # what was returned as new was not stored
    assert (stored > 0).sum() >= 45  # nearly every old image has been swapped out for a new one by now


def test_pool_state_round_trips_and_size_zero_passes_through():
    torch.manual_seed(0)
    pool = HistoryPool(size=4)
    pool.query(torch.randn(6, 3, 2, 2))
    copy = HistoryPool(size=4)
    copy.load_state(pool.state(), torch.device("cpu"))
    torch.manual_seed(1)
    a = pool.query(torch.ones(5, 3, 2, 2))
    torch.manual_seed(1)
    assert torch.equal(copy.query(torch.ones(5, 3, 2, 2)), a)
    fakes = torch.randn(3, 3, 2, 2)
    assert torch.equal(HistoryPool(0).query(fakes), fakes)
    with pytest.raises(ConfigError, match="pool_size"):
        HistoryPool(2).load_state(torch.zeros(3, 1, 1, 1), torch.device("cpu"))


def test_linear_decay_is_the_official_lambda_rule():
    rule = linear_decay(100, 100)  # 1.0 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)
    assert [rule(e) for e in (0, 98, 99)] == [1.0, 1.0, 1.0]
    assert rule(100) == pytest.approx(1 - 1 / 101) and rule(150) == pytest.approx(1 - 51 / 101)
    assert rule(199) == pytest.approx(1 / 101) and rule(200) == 0.0  # the last of the 200 epochs trains at 1/101 of the lr


# The loop, on a toy model: x -> y = -x with two tiny generators and two discriminators.


class ToyTranslation(TranslationGAN):
    """Two 1x1-conv generators (A -> B and back), two discriminators; records the order of the phases."""

    generator_names = ("g_ab", "g_ba")
    discriminator_names = ("d_a", "d_b")

    def __init__(self, generator_first: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.g_ab, self.g_ba = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)
        self.d_a, self.d_b = nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)
        self.generator_phase_first = generator_first
        self.order: list[str] = []

    def generate(self, batch: Any) -> dict[str, Tensor]:
        a, b = batch
        return {"fake_b": self.g_ab(a), "fake_a": self.g_ba(b)}

    def discriminator_loss(self, batch: Any, images: dict[str, Tensor]) -> Tensor:
        self.order.append("D")
        assert not images["fake_b"].requires_grad  # the D phase sees the generators' outputs detached
        a, b = batch
        return self.adversarial_d_loss(self.d_b(b), self.d_b(images["fake_b"])) + self.adversarial_d_loss(self.d_a(a), self.d_a(images["fake_a"]))

    def generator_loss(self, batch: Any, images: dict[str, Tensor]) -> Tensor:
        self.order.append("G")
        assert images["fake_b"].requires_grad
        return self.adversarial_g_loss(self.d_b(images["fake_b"])) + self.adversarial_g_loss(self.d_a(images["fake_a"]))

    def pictures(self, held_out: Any) -> list[tuple[str, Tensor]]:
        a, _ = held_out
        return [("A", a), ("A -> B", self.g_ab(a))]


def toy_data(n: int = 32, batch_size: int = 4) -> torch.utils.data.DataLoader:
    a = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(a, -a), batch_size=batch_size)


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("generator_first", [False, True])
def test_phases_run_in_the_models_order_and_every_network_moves(tmp_path, generator_first):
    L.seed_everything(0)
    model = ToyTranslation(generator_first=generator_first, n_critic=1)
    before = snapshot(model)
    quiet_trainer(tmp_path, max_steps=4).fit(model, toy_data())
    assert model.order == (["G", "D"] if generator_first else ["D", "G"]) * 2
    assert model.g_steps == 2 and model.images_seen == 8
    after = snapshot(model)
    for network in ("g_ab", "g_ba", "d_a", "d_b"):
        assert not torch.equal(before[f"{network}.weight"], after[f"{network}.weight"]), f"{network} did not move"


def test_n_critic_makes_generator_steps_every_nth_batch_and_the_optimizers_cover_the_named_networks(tmp_path):
    L.seed_everything(0)
    model = ToyTranslation(n_critic=3)
    trainer = quiet_trainer(tmp_path, max_steps=8)  # D, D, D + G, D, D, D + G: 8 optimizer steps in 6 batches
    trainer.fit(model, toy_data())
    assert "".join(model.order) == "DDDGDDDG" and model.g_steps == 2 and model.batches == 6
    opt_d, opt_g = trainer.optimizers
    names = {id(p): n.split(".")[0] for n, p in model.named_parameters()}
    assert {names[id(p)] for g in opt_d.param_groups for p in g["params"]} == {"d_a", "d_b"}
    assert {names[id(p)] for g in opt_g.param_groups for p in g["params"]} == {"g_ab", "g_ba"}


def test_linear_decay_runs_as_a_lightning_scheduler_per_epoch(tmp_path):
    L.seed_everything(0)
    model = ToyTranslation(lr_g=1.0, lr_d=1.0, lr_constant=1, lr_decay=3)
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=3)
    trainer.fit(model, toy_data(n=8))
    # after 3 epochs: factor(3) = 1 - (3 + 1 - 1) / 4
    assert [g["lr"] for opt in trainer.optimizers for g in opt.param_groups] == pytest.approx([0.25, 0.25])


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="n_critic"):
        ToyTranslation(n_critic=0)
    with pytest.raises(ConfigError, match="Unknown loss"):
        ToyTranslation(loss="l2")
    with pytest.raises(ConfigError, match="lr_unit"):
        ToyTranslation(lr_unit="kimg")


def test_papers_adversarial_scales():
    """pix2pix / CycleGAN code: D 1/2 (l(real, 1) + l(fake, 0)), G l(fake, 1), with l = BCE or the squared error."""
    real, fake = torch.tensor([0.3, -1.2]), torch.tensor([0.7, 0.1])
    bce = nn.functional.binary_cross_entropy_with_logits
    vanilla = ToyTranslation(loss="non_saturating")
    assert vanilla.adversarial_d_loss(real, fake) == pytest.approx(0.5 * (bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))).item())
    assert vanilla.adversarial_g_loss(fake) == pytest.approx(bce(fake, torch.ones(2)).item())
    lsgan = ToyTranslation(loss="least_squares")
    assert lsgan.adversarial_d_loss(real, fake) == pytest.approx(0.5 * (((real - 1) ** 2).mean() + (fake**2).mean()).item())
    assert lsgan.adversarial_g_loss(fake) == pytest.approx(((fake - 1) ** 2).mean().item())
