"""pix2pix and CycleGAN on the image-to-image loop: their losses against the papers' formulas, a few steps that move
every network the right way, EMA over both CycleGAN generators, and a resume that continues exactly (history pools
included)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from callbacks import EMA, TranslationGrid
from gans.errors import ConfigError
from gans.models.translation.cyclegan import CycleGAN
from gans.models.translation.pix2pix import Pix2Pix

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cyclegan(**kwargs) -> CycleGAN:
    return CycleGAN(img_resolution=16, ngf=4, ndf=4, g_blocks=1, d_layers=2, pool_size=3, **kwargs)


def tiny_pix2pix(**kwargs) -> Pix2Pix:
    return Pix2Pix(img_resolution=16, ngf=4, ndf=4, d_layers=2, **kwargs)


def pairs(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random inputs and their colour negatives as targets (a mapping a tiny U-Net can learn)."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    a = torch.nn.functional.interpolate(coarse, size=16, mode="bilinear", align_corners=False)
    return a, -a


def loader(n: int = 16, batch_size: int = 2) -> DataLoader:
    return DataLoader(TensorDataset(*pairs(n)), batch_size=batch_size)


def test_cyclegan_generator_loss_is_the_papers_objective():
    """Eq. 3 with the LSGAN terms of eq. 1 (official code: MSE against 1) + 10 x cycle + 0.5 x 10 x identity."""
    torch.manual_seed(0)
    model = tiny_cyclegan()
    a, b = pairs(2)
    images = model.generate((a, b))
    g, f = model.generator_ab, model.generator_ba
    expected = (
        ((model.discriminator_b(g(a)) - 1) ** 2).mean() + ((model.discriminator_a(f(b)) - 1) ** 2).mean()
        + 10 * ((f(g(a)) - a).abs().mean() + (g(f(b)) - b).abs().mean())
        + 5 * ((f(a) - a).abs().mean() + (g(b) - b).abs().mean())
    )
    torch.testing.assert_close(model.generator_loss((a, b), images), expected)
    no_identity = tiny_cyclegan(identity_weight=0.0)
    no_identity.load_state_dict(model.state_dict())
    expected_no_identity = expected - 5 * ((f(a) - a).abs().mean() + (g(b) - b).abs().mean())
    torch.testing.assert_close(no_identity.generator_loss((a, b), no_identity.generate((a, b))), expected_no_identity)


def test_cyclegan_discriminator_loss_is_halved_least_squares_on_pooled_fakes():
    torch.manual_seed(0)
    model = tiny_cyclegan()
    a, b = pairs(2)
    images = {k: v.detach() for k, v in model.generate((a, b)).items()}
    loss = model.discriminator_loss((a, b), images)  # the pools are empty: they return the new fakes and keep them
    d_a, d_b = model.discriminator_a, model.discriminator_b
    expected = 0.5 * (((d_b(b) - 1) ** 2).mean() + (d_b(images["fake_b"]) ** 2).mean()) + 0.5 * (((d_a(a) - 1) ** 2).mean() + (d_a(images["fake_a"]) ** 2).mean())
    torch.testing.assert_close(loss, expected)
    assert torch.equal(model.history_pools["fake_b"].state(), images["fake_b"])


def test_pix2pix_losses_are_the_papers():
    """Eq. 4: the conditional GAN loss on (input, output) pairs + 100 x L1; D's objective halved (section 3.3)."""
    torch.manual_seed(0)
    model = tiny_pix2pix()
    x, y = pairs(2)
    torch.manual_seed(1)
    images = model.generate((x, y))
    d = model.discriminator
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    fake_logits = d(torch.cat([x, images["output"]], 1))
    expected_g = bce(fake_logits, torch.ones_like(fake_logits)) + 100 * (images["output"] - y).abs().mean()
    torch.testing.assert_close(model.generator_loss((x, y), images), expected_g)
    real_logits = d(torch.cat([x, y], 1))
    expected_d = 0.5 * (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits)))
    torch.testing.assert_close(model.discriminator_loss((x, y), {"output": images["output"].detach()}), expected_d)


def test_pix2pix_learns_toward_the_target_and_keeps_test_time_dropout(tmp_path):
    L.seed_everything(0)
    model = tiny_pix2pix(lr_g=2e-3, lr_d=2e-4, lr_decay=0)
    x, y = pairs(16)
    with torch.no_grad():
        before = (model.generator(x) - y).abs().mean()
    quiet_trainer(tmp_path, max_steps=80).fit(model, loader(16, 4))  # 40 batches
    model.eval()
    after = (model.translate(x) - y).abs().mean()
    assert after < 0.75 * before, (before, after)
    assert not torch.equal(model.translate(x), model.translate(x))  # dropout stays on in eval (section 3.1)


def test_cyclegan_steps_move_all_four_networks_and_ema_averages_both_generators(tmp_path):
    L.seed_everything(0)
    model = tiny_cyclegan(lr_decay=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = quiet_trainer(tmp_path, max_steps=6, callbacks=[EMA(half_life_kimg=0.002), TranslationGrid(every_n_steps=0, num_examples=2)])
    model.held_out = lambda datamodule, n: pairs(n)  # a plain DataLoader has no held-out pairs
    trainer.fit(model, loader())
    after = model.state_dict()
    for network in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(network + ".")), f"{network} did not move"
    for network in ("generator_ab", "generator_ba"):
        ema, live = getattr(model, f"{network}_ema"), getattr(model, network)
        assert any(not torch.equal(p, q) for p, q in zip(ema.parameters(), live.parameters())), f"{network}_ema is a copy, not an average"
    picture = tmp_path / "samples" / "latest.png"
    assert picture.exists()
    assert model.g_steps == 3 and model.images_seen == 6


def fit_cyclegan(root: Path, max_epochs: int, ckpt_path: str | None = None) -> tuple[CycleGAN, L.Trainer]:
    L.seed_everything(3)
    model = tiny_cyclegan(lr_constant=1, lr_decay=2)
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True,
                            callbacks=[EMA(half_life_kimg=0.004), ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)])
    data = DataLoader(TensorDataset(*pairs(12)), batch_size=2, shuffle=True)
    trainer.fit(model, data, ckpt_path=ckpt_path, weights_only=True)
    return model, trainer


def test_cyclegan_resume_continues_identically_with_its_history_pools(tmp_path):
    """Pools of 3 fill in the first epoch; the second and third epochs draw from them: the resumed run must have the
    same pools, RNG streams, lr schedule and EMA to end equal."""
    straight, straight_trainer = fit_cyclegan(tmp_path / "straight", max_epochs=3)
    fit_cyclegan(tmp_path / "resumed", max_epochs=1)
    resumed, resumed_trainer = fit_cyclegan(tmp_path / "resumed", max_epochs=3, ckpt_path=str(tmp_path / "resumed" / "ckpt" / "last.ckpt"))
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), f"{name} differs after resume"
    for name, pool in straight.history_pools.items():
        assert pool.stored == 3 and torch.equal(pool.state(), resumed.history_pools[name].state()), name
    assert [g["lr"] for o in resumed_trainer.optimizers for g in o.param_groups] == [g["lr"] for o in straight_trainer.optimizers for g in o.param_groups]


def test_identity_loss_needs_equal_channels():
    with pytest.raises(ConfigError, match="identity_weight"):
        CycleGAN(img_resolution=16, channels_a=1, channels_b=3, ngf=4, ndf=4, g_blocks=1)
    assert CycleGAN(img_resolution=16, channels_a=1, channels_b=3, ngf=4, ndf=4, g_blocks=1, identity_weight=0.0).data_shape == (3, 16, 16)


@pytest.mark.parametrize("make", [tiny_pix2pix, tiny_cyclegan])
def test_data_of_another_resolution_is_refused_with_the_fix(tmp_path, make):
    class Larger(L.LightningDataModule):
        data_shape = (3, 32, 32)  # the models are built for 16 px

        def train_dataloader(self) -> DataLoader:
            return loader()

    with pytest.raises(ConfigError, match=r"shape \(3, 16, 16\) but Larger gives \(3, 32, 32\).*img_resolution"):
        quiet_trainer(tmp_path, max_steps=1).fit(make(), datamodule=Larger())
