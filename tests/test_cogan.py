"""CoGAN (gans.models.translation.cogan): Table 1's coupled networks, their weight sharing, the official losses, training and pictures."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import count_parameters, quiet_trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks import TranslationGrid
from gans.errors import ConfigError
from gans.models.translation.cogan import CoGAN, CoupledDiscriminator, CoupledGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(z_dim=8, g_channels=(16, 8, 8, 4), d_channels=(4, 6, 16))


def tiny(**kwargs) -> CoGAN:
    return CoGAN(**{**TINY, **kwargs})


def snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def moved(before: dict[str, Tensor], module: nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if not torch.equal(before[name], p)}


def digits_and_negatives(n: int = 32) -> DataLoader:
    """Unpaired ``(a, b)`` batches at 28 px: A = bright blobs on black, B = dark blobs on white (other blobs)."""
    g = torch.Generator().manual_seed(0)
    blobs = (F.avg_pool2d(torch.rand(2 * n, 1, 28, 28, generator=g), 7, 1, 3) > 0.52).float() * 2 - 1
    return DataLoader(TensorDataset(blobs[:n], -blobs[n:]), batch_size=8)


def test_official_mnist_networks_have_the_official_parameter_counts():
    model = CoGAN()
    # mingyuliutw/CoGAN cogan_pytorch/src/net_cogan_mnistedge.py, CoGen28x28(100): transposed convs with biases,
    # batch norm without affine, one PReLU slope per layer; CoDis28x28: convs with biases, one PReLU, 2 scores.
    g = (100 * 1024 * 4 * 4 + 1024) + (1024 * 512 * 9 + 512) + (512 * 256 * 9 + 256) + (256 * 128 * 9 + 128) + 4 + 2 * (128 * 6 * 6 + 1)
    d = 2 * (20 * 5 * 5 + 20) + (50 * 20 * 5 * 5 + 50) + (500 * 50 * 4 * 4 + 500) + 1 + (2 * 500 + 2)
    assert (g, d) == (7_842_694, 427_593)
    assert count_parameters(model.generator) == g and count_parameters(model.discriminator) == d
    x_a, x_b = model.generator(torch.randn(2, 100))
    assert x_a.shape == x_b.shape == (2, 1, 28, 28)
    assert x_a.min() >= -1 and x_a.max() <= 1
    logits_a, logits_b = model.discriminator(x_a, x_b[:1])  # the domains' batches may differ in size
    assert logits_a.shape == (2,) and logits_b.shape == (1,)


def test_one_update_from_domain_a_alone_moves_domain_b_through_the_shared_generator_layers():
    torch.manual_seed(0)
    generator = CoupledGenerator(8, (16, 8, 8, 4))
    z = torch.randn(4, 8)
    x_a, x_b = generator(z)
    assert (x_a - x_b).abs().mean() > 0.05  # the two heads draw different images from one z
    before = snapshot(generator)
    x_a.square().mean().backward()  # a loss on domain A's output only
    torch.optim.SGD(generator.parameters(), lr=0.5).step()
    changed = moved(before, generator)
    # Every shared weight moved (the official transposed convolutions' biases before batch norm get no gradient).
    assert {name for name in before if name.startswith("shared.") and name.endswith("weight")} <= changed
    assert "head_a.weight" in changed and not any(name.startswith("head_b.") for name in changed)
    with torch.no_grad():
        assert not torch.allclose(generator(z)[1], x_b)  # domain B's image of the same z changed


def test_one_update_from_domain_a_alone_moves_domain_b_through_the_shared_discriminator_layers():
    torch.manual_seed(0)
    discriminator = CoupledDiscriminator((4, 6, 16))
    x_a, x_b = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    logits_a, logits_b = discriminator(x_a, x_b)
    before = snapshot(discriminator)
    F.softplus(-logits_a).mean().backward()  # domain A's real loss only
    torch.optim.SGD(discriminator.parameters(), lr=0.5).step()
    changed = moved(before, discriminator)
    assert {name for name in before if name.startswith("shared.")} <= changed
    assert "first_a.0.weight" in changed and not any(name.startswith("first_b.") for name in changed)
    with torch.no_grad():
        assert not torch.allclose(discriminator(x_a, x_b)[1], logits_b)


def test_both_fakes_come_from_one_latent_and_the_losses_are_the_official_cross_entropies():
    model = tiny()
    model._log_now = False  # no trainer to log to
    a, b = next(iter(digits_and_negatives()))
    torch.manual_seed(3)
    images = model.generate((a, b))
    torch.manual_seed(3)
    expected_a, expected_b = model.generator(torch.randn(len(a), 8))
    torch.testing.assert_close(images["fake_a"], expected_a)
    torch.testing.assert_close(images["fake_b"], expected_b)
    real = torch.cat(model.discriminator(a, b))
    fake = torch.cat(model.discriminator(images["fake_a"], images["fake_b"]))
    # The official two-way softmax cross-entropies over both domains' batches stacked: d_loss = true_loss + fake_loss
    # (not halved); G's fakes labelled real.
    scores = lambda logits: torch.stack([torch.zeros_like(logits), logits], 1)  # noqa: E731 (softmax is shift-invariant)
    ones, zeros = torch.ones(len(real), dtype=torch.long), torch.zeros(len(fake), dtype=torch.long)
    official_d = F.cross_entropy(scores(real), ones) + F.cross_entropy(scores(fake), zeros)
    torch.testing.assert_close(model.discriminator_loss((a, b), images), official_d)
    torch.testing.assert_close(model.generator_loss((a, b), images), F.cross_entropy(scores(fake), ones))


def test_optimizers_are_the_official_adam_over_each_coupled_network_once():
    model = tiny()
    opt_d, opt_g = model.configure_optimizers()
    for opt, network in ((opt_d, model.discriminator), (opt_g, model.generator)):
        group = opt.param_groups[0]
        assert (group["lr"], group["betas"], group["weight_decay"]) == (2e-4, (0.5, 0.999), 5e-4)
        params = [p for g in opt.param_groups for p in g["params"]]
        assert len(params) == len({id(p) for p in params}) == len(list(network.parameters()))
        assert {id(p) for p in params} == {id(p) for p in network.parameters()}


def test_a_few_steps_move_both_networks_and_d_separates_real_from_fake(tmp_path: Path):
    L.seed_everything(0)
    model = tiny(lr_d=2e-3, lr_g=2e-3)
    data = digits_and_negatives()
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    trainer = quiet_trainer(tmp_path, max_steps=16, callbacks=[TranslationGrid(every_n_steps=0, num_examples=3)])
    trainer.fit(model, data)  # 8 batches: 8 D steps and 8 G steps
    assert model.g_steps == 8 and model.images_seen == 64
    assert moved(g_before, model.generator) == set(g_before)
    assert moved(d_before, model.discriminator) == set(d_before)
    a, b = next(iter(data))
    with torch.no_grad():
        fake_a, fake_b = model.sample(len(a))
        real_a, real_b = model.discriminator(a, b)
        fake_a, fake_b = model.discriminator(fake_a, fake_b)
    assert real_a.mean() > fake_a.mean() and real_b.mean() > fake_b.mean()
    accuracy = torch.cat([real_a > 0, real_b > 0, fake_a < 0, fake_b < 0]).float().mean()
    assert accuracy >= 0.75
    assert (tmp_path / "samples" / "latest.png").exists()


def test_pictures_show_the_pair_of_each_fixed_latent():
    model = tiny().eval()
    z = model.held_out(None, 3)
    torch.testing.assert_close(z, model.held_out(None, 3))  # fixed latents
    columns = model.pictures(z)
    assert [title for title, _ in columns] == ["A", "B"]
    x_a, x_b = (images for _, images in columns)
    assert x_a.shape == x_b.shape == (3, 1, 28, 28)
    torch.testing.assert_close((x_a, x_b), model.generator(z))
    pair_2 = model.sample_indexed(torch.tensor([2]))  # pair i depends on i only
    torch.testing.assert_close(pair_2, (x_a[2:], x_b[2:]))


def test_data_of_another_size_is_refused_with_the_fix(tmp_path: Path):
    class Padded(L.LightningDataModule):
        data_shape = (1, 32, 32)

        def train_dataloader(self) -> DataLoader:
            return digits_and_negatives()

    with pytest.raises(ConfigError, match="img_resolution: 28"):
        quiet_trainer(tmp_path, max_steps=2).fit(tiny(), datamodule=Padded())
