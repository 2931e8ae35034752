"""MSG-GAN (gans/models/style/msggan.py): the official construction's parameter counts, every scale's shape, gradient at
every scale's output and input layer, the combine functions, a short fit that moves both networks the right way, and
the refused settings."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import count_parameters, quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from gans import MSGGAN
from gans.errors import ConfigError
from gans.models.style.msggan import (
    CatLinCombine,
    LinCatCombine,
    MSGDiscriminator,
    MSGGenerator,
    SimpleCombine,
)

pytestmark = [pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered.*"), pytest.mark.usefixtures("one_thread")]

COMBINES = ["simple", "lin_cat", "cat_lin"]


def tiny(combine: str = "lin_cat", **kwargs) -> MSGGAN:
    return MSGGAN(img_resolution=16, z_dim=8, fmap_base=64, fmap_max=8, combine=combine, **kwargs)


def test_parameter_counts_equal_the_official_construction() -> None:
    """akanimax/BMSG-GAN ``Generator(depth, latent_size)`` / ``Discriminator(depth, latent_size)`` instantiated: depth 9,
    latent 512 (1024 px) builds G 23,079,115 and D 18,756,321; depth 4, latent 64 (32 px) G 324,876 and D 269,985.
    Their widths are ours with fmap_base = 16 x latent, and their D concatenates a linear fromRGB (lin_cat)."""
    assert count_parameters(MSGGenerator(512, 1024)) == 23_079_115
    assert count_parameters(MSGDiscriminator(1024, combine="lin_cat")) == 18_756_321
    assert count_parameters(MSGGenerator(64, 32, fmap_base=1024, fmap_max=64)) == 324_876
    assert count_parameters(MSGDiscriminator(32, fmap_base=1024, fmap_max=64, combine="lin_cat")) == 269_985


@pytest.mark.parametrize("combine", COMBINES)
def test_generator_emits_every_scale_and_discriminator_takes_them(combine: str) -> None:
    torch.manual_seed(0)
    g, d = MSGGenerator(8, 32, fmap_base=64, fmap_max=8), MSGDiscriminator(32, fmap_base=64, fmap_max=8, combine=combine)
    z = torch.randn(4, 8)
    images = g.multi_scale(z)
    assert [tuple(x.shape) for x in images] == [(4, 3, r, r) for r in (4, 8, 16, 32)]
    torch.testing.assert_close(g(z), images[-1])  # forward: the full-size image alone
    logits = d(images)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    # One image is seen at every scale as its average-pooled versions.
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    pyramid = d.pyramid(real)
    assert [x.shape[-1] for x in pyramid] == [4, 8, 16, 32]
    torch.testing.assert_close(pyramid[1], F.avg_pool2d(real, 4))
    torch.testing.assert_close(d(real), d(pyramid))


def test_combine_functions_are_the_papers() -> None:
    """phi_simple = [x; a]; phi_lin_cat = [r'(x); a]; phi_cat_lin = r'([a; x]) with r' a 1x1 convolution."""
    torch.manual_seed(0)
    a, x = torch.randn(2, 6, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(SimpleCombine(6, 3)(a, x), torch.cat([x, a], 1))
    lin_cat = LinCatCombine(6, 3, 5)
    torch.testing.assert_close(lin_cat(a, x), torch.cat([lin_cat.from_rgb(x), a], 1))
    cat_lin = CatLinCombine(6, 3, 7)
    torch.testing.assert_close(cat_lin(a, x), cat_lin.conv(torch.cat([a, x], 1)))
    assert cat_lin.conv.bias is None and cat_lin(a, x).shape == (2, 7, 4, 4)
    # With lin_cat the image fills half of each block's width (BMSG-GAN); with the others the main path keeps it all.
    widths = {4: 8, 8: 8, 16: 4}
    d = {c: MSGDiscriminator(16, fmap_base=32, fmap_max=8, combine=c) for c in COMBINES}
    assert {r: d["lin_cat"].combine[str(r)].out_channels for r in (4, 8)} == {r: widths[r] for r in (4, 8)}
    assert {r: d["simple"].combine[str(r)].out_channels for r in (4, 8)} == {r: widths[r] + 3 for r in (4, 8)}
    assert {r: d["cat_lin"].combine[str(r)].out_channels for r in (4, 8)} == {r: widths[r] for r in (4, 8)}


# D's output bias shifts every logit alike, which the relativistic loss cancels (C(x) - E C(x')): its gradient is 0.
SHIFT_INVARIANT = "output.out.bias"


def assert_nonzero_gradients(network: torch.nn.Module, prefixes: tuple[str, ...]) -> None:
    for name, p in network.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name == SHIFT_INVARIANT:
            assert p.grad.abs().max() < 1e-6, name
        else:
            assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"
    names = [name for name, _ in network.named_parameters()]
    for prefix in prefixes:
        assert any(name.startswith(prefix) for name in names), prefix


@pytest.mark.parametrize("combine", COMBINES)
def test_every_scale_receives_gradient_from_d(combine: str) -> None:
    """G step: every block's toRGB (every scale's output) gets gradient from the RaHinge G loss; D step: the top
    fromRGB and every scale's combine layer get gradient from D's loss, and G none."""
    torch.manual_seed(0)
    model = tiny(combine)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    loss = model.generator_loss(model(model.sample_z(4)), None, real=real)
    loss.backward()
    assert_nonzero_gradients(model.generator, tuple(f"to_rgb.{r}." for r in (4, 8, 16)))
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        fake = model(model.sample_z(4))
    model.discriminator_loss(real, fake).backward()
    layers = ("from_rgb.",) + (tuple(f"combine.{r}." for r in (4, 8)) if combine != "simple" else ())
    assert_nonzero_gradients(model.discriminator, layers)
    assert all(p.grad is None for p in model.generator.parameters())


def test_a_few_steps_move_every_scale_toward_the_data_and_d_apart(tmp_path) -> None:
    """Reals are one flat colour (0.6, -0.4, 0.2) with a little noise: after 80 batches G's image at every scale is
    twice nearer that colour than at the start, and D scores the reals above the fakes."""
    L.seed_everything(0)
    model = tiny()
    colour = torch.tensor([0.6, -0.4, 0.2]).reshape(1, 3, 1, 1)
    images = (colour + 0.05 * torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    z = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))

    def distances() -> list[float]:
        with torch.no_grad():
            return [(x.mean(dim=(2, 3), keepdim=True) - colour).abs().mean().item() for x in model(z)]

    before = distances()
    trainer = quiet_trainer(tmp_path, max_steps=160)  # 80 D and 80 G steps
    trainer.fit(model, DataLoader(TensorDataset(images, torch.zeros(64)), batch_size=8, shuffle=True))
    after = distances()
    assert all(a < 0.5 * b for a, b in zip(after, before)), (before, after)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/g_loss"]) and metrics["train/d_real"] > metrics["train/d_fake"]
    assert model.sample(4).shape == (4, 3, 16, 16)


def test_r1_trains_through_the_pyramid(tmp_path) -> None:
    L.seed_everything(0)
    model = tiny(r1_gamma=10.0)
    images = torch.rand(16, 3, 16, 16) * 2 - 1
    trainer = quiet_trainer(tmp_path, max_steps=4)
    trainer.fit(model, DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=8))
    assert trainer.callback_metrics["train/r1"] > 0


def test_the_papers_recipe() -> None:
    model = tiny()
    hp = model.hparams
    assert (hp.loss, hp.n_critic, hp.lr_g, hp.lr_d, tuple(hp.betas), hp.combine) == ("relativistic_average_hinge", 1, 0.003, 0.003, (0.0, 0.99), "lin_cat")
    assert model.adversarial_loss.relativistic
    assert MSGGAN.__init__.__defaults__[:3] == (1024, 3, 512)  # img_resolution, img_channels, z_dim


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"img_resolution": 24}, "power of two >= 8"),
        ({"img_resolution": 4}, "power of two >= 8"),
        ({"combine": "concat"}, "Unknown combine 'concat'"),
        ({"augment": "ada"}, "augment"),
        ({"gp_weight": 10.0}, "gp_weight"),
        ({"instance_noise_std": 0.1}, "instance_noise_std"),
        ({"num_classes": 10}, "unconditional"),
        ({"loss": "relativistic"}, "Unknown loss"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings: dict, match: str) -> None:
    args = {"img_resolution": 16, "z_dim": 8, "fmap_base": 64, "fmap_max": 8, **settings}
    with pytest.raises(ConfigError, match=match) as info:
        MSGGAN(**args)
    assert "\n" not in str(info.value)
