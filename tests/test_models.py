"""The same checks over the whole zoo (timm style), then each variant's paper settings and errors.

The hooks ``generator_loss`` / ``discriminator_loss`` are called directly, outside a Trainer:
``self.log`` then only warns ("the `self.trainer` reference is not registered") and returns, so
no Trainer is needed; that warning is silenced here.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from helpers import count_parameters
from torch import nn

from gans import CGAN, DCGAN, GAN, LSGAN, WGAN, WGANGP, GANModule
from gans.nn.basic import AlwaysDropout

pytestmark = pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered.*")

Z = 16
N = 4

# name -> (factory with small widths, sample shape without the batch dimension)
ZOO: dict[str, tuple[Callable[[], GANModule], tuple[int, ...]]] = {
    "gan": (lambda: GAN(data_shape=(1, 28, 28), z_dim=Z, g_hidden=(32, 32), d_hidden=(16, 16), d_pieces=3), (1, 28, 28)),
    "gan_toy": (lambda: GAN(data_shape=(2,), z_dim=2, g_hidden=(16,), d_hidden=(8,), d_pieces=2, g_tanh=False), (2,)),
    "cgan": (lambda: CGAN(num_classes=10, data_shape=(1, 28, 28), z_dim=Z, g_hidden=(32,), d_hidden=(16, 16), d_pieces=3), (1, 28, 28)),
    "dcgan32": (lambda: DCGAN(img_resolution=32, img_channels=1, z_dim=Z, ngf=8, ndf=8), (1, 32, 32)),
    "dcgan64": (lambda: DCGAN(img_resolution=64, img_channels=3, z_dim=Z, ngf=8, ndf=8), (3, 64, 64)),
    "lsgan": (lambda: LSGAN(img_resolution=32, img_channels=1, z_dim=Z, ngf=8, ndf=8), (1, 32, 32)),
    "wgan": (lambda: WGAN(img_resolution=32, img_channels=1, z_dim=Z, ngf=8, ndf=8), (1, 32, 32)),
    "wgangp": (lambda: WGANGP(img_resolution=32, img_channels=1, z_dim=Z, ngf=8, ndf=8), (1, 32, 32)),
}


@pytest.fixture(params=list(ZOO))
def zoo_model(request) -> tuple[GANModule, tuple[int, ...]]:
    torch.manual_seed(0)
    factory, shape = ZOO[request.param]
    return factory(), shape


def make_labels(model: GANModule, n: int = N):
    return torch.arange(n) % model.num_classes if model.num_classes else None


def make_real(shape: tuple[int, ...], n: int = N) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, *shape, generator=gen) * 2 - 1


# The zoo.


def test_sample_shape_and_range(zoo_model):
    model, shape = zoo_model
    x = model.sample(N, labels=make_labels(model))
    assert x.shape == (N, *shape)
    assert torch.isfinite(x).all()
    if len(shape) == 3:  # images end in tanh
        assert x.min() >= -1 and x.max() <= 1
    # forward is the generator, and sample honours a given z.
    z = torch.randn(N, model.z_dim)
    model.eval()
    torch.testing.assert_close(model.sample(N, labels=make_labels(model), z=z), model(z, make_labels(model)))


def test_discriminator_output_is_one_logit_per_sample(zoo_model):
    model, shape = zoo_model
    for n in (N, 1):
        model.train(n > 1)  # batch norm needs more than one sample in train mode
        logits = model.discriminator(make_real(shape, n), make_labels(model, n))
        assert logits.shape == (n,)
        assert torch.isfinite(logits).all()


def assert_every_parameter_has_a_gradient(network, prefix):
    for name, p in network.named_parameters():
        assert p.grad is not None, f"{prefix}.{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{prefix}.{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{prefix}.{name} got a zero gradient"


def test_every_generator_parameter_gets_a_gradient_from_the_generator_loss(zoo_model):
    model, _ = zoo_model
    labels = make_labels(model)
    model.zero_grad(set_to_none=True)
    loss = model.generator_loss(model(model.sample_z(N), labels), labels)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert_every_parameter_has_a_gradient(model.generator, "generator")


def test_every_discriminator_parameter_gets_a_gradient_from_the_discriminator_loss(zoo_model):
    model, shape = zoo_model
    labels = make_labels(model)
    with torch.no_grad():
        fake = model(model.sample_z(N), labels)
    model.zero_grad(set_to_none=True)
    loss = model.discriminator_loss(make_real(shape), fake, labels)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert_every_parameter_has_a_gradient(model.discriminator, "discriminator")
    # The fakes were made without a graph, so G is untouched by D's loss.
    assert all(p.grad is None for p in model.generator.parameters())


def test_two_optimizers_one_per_network_d_first(zoo_model):
    model, _ = zoo_model
    opt_d, opt_g = model.configure_optimizers()
    d_params = {id(p) for group in opt_d.param_groups for p in group["params"]}
    g_params = {id(p) for group in opt_g.param_groups for p in group["params"]}
    assert d_params == {id(p) for p in model.discriminator.parameters()}
    assert g_params == {id(p) for p in model.generator.parameters()}


def test_uniform_hooks_across_the_zoo(zoo_model):
    model, _ = zoo_model
    assert model.automatic_optimization is False
    for hook in ("forward", "sample", "generator_loss", "discriminator_loss", "critic_steps"):
        assert callable(getattr(model, hook))


# Parameter counts and paper settings.



def test_dcgan_64_rgb_parameter_counts_match_the_reference():
    model = DCGAN(img_resolution=64, img_channels=3, z_dim=100, ngf=64, ndf=64)
    assert count_parameters(model.generator) == 3_576_704
    assert count_parameters(model.discriminator) == 2_765_568


def test_mlp_gan_matches_the_papers_mnist_networks():
    """Goodfellow et al.'s released MNIST model: G 100-1200-1200-784, D two maxout layers of 240 x 5 pieces."""
    model = GAN()
    g = 100 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 784 + 784
    d = 784 * 240 * 5 + 240 * 5 + 240 * 240 * 5 + 240 * 5 + 240 + 1
    assert sum(p.numel() for p in model.generator.parameters()) == g == 2_503_984
    assert sum(p.numel() for p in model.discriminator.parameters()) == d == 1_231_441
    assert (model.hparams.optimizer, model.hparams.lr_d, model.hparams.momentum) == ("sgd", 0.1, 0.5)


def test_dcgan_32px_parameter_counts():
    """At 32 px one stride-2 layer fewer: G z->256->128->64->C, D C->64->128->256->1, no biases."""
    model = DCGAN(img_resolution=32, img_channels=1)
    g = 100 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 1 * 16 + 2 * (256 + 128 + 64)
    d = 1 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 1 * 16 + 2 * (128 + 256)
    assert sum(p.numel() for p in model.generator.parameters()) == g
    assert sum(p.numel() for p in model.discriminator.parameters()) == d


def test_dcgan_paper_settings():
    torch.manual_seed(0)
    model = DCGAN(img_resolution=64, img_channels=3)
    hp = model.hparams
    assert (hp.optimizer, hp.lr_g, hp.lr_d, tuple(hp.betas), hp.loss) == ("adam", 2e-4, 2e-4, (0.5, 0.999), "non_saturating")
    # N(0, 0.02) init of the big conv layers.
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() > 100_000]
    assert convs
    for conv in convs:
        assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert conv.weight.mean().abs().item() < 1e-3
    # LeakyReLU(0.2) in D, BN in both networks, tanh output.
    slopes = {m.negative_slope for m in model.discriminator.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.discriminator.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.generator.modules())
    assert isinstance(list(model.generator.modules())[-1], nn.Tanh)


def test_lsgan_uses_least_squares():
    model = LSGAN(img_resolution=32, img_channels=1, ngf=4, ndf=4)
    assert model.adversarial_loss.name == "least_squares"
    real_logits, fake_logits = torch.tensor([0.5, 2.0]), torch.tensor([0.0, -1.0])
    expected = 0.5 * (((0.5 - 1) ** 2 + (2 - 1) ** 2) / 2) + 0.5 * ((0.0 + 1.0) / 2)
    assert model.adversarial_loss.discriminator(real_logits, fake_logits).item() == pytest.approx(expected)


def test_wgan_hparams_match_the_paper():
    model = WGAN(img_resolution=32, img_channels=1, ngf=4, ndf=4)
    hp = model.hparams
    assert hp.loss == "wasserstein"
    assert hp.optimizer == "rmsprop"
    assert hp.lr_g == 5e-5 and hp.lr_d == 5e-5
    assert hp.clip_value == 0.01
    assert hp.n_critic == 5
    assert hp.gp_weight == 0.0
    for opt in model.configure_optimizers():
        assert isinstance(opt, torch.optim.RMSprop)
        assert opt.param_groups[0]["lr"] == 5e-5


def test_wgan_clips_critic_weights_after_each_d_step():
    model = WGAN(img_resolution=32, img_channels=1, ngf=4, ndf=4)
    with torch.no_grad():
        for p in model.discriminator.parameters():
            p.fill_(0.5)
        first = next(model.discriminator.parameters())
        first[0].fill_(-3.0)
    g_before = [p.clone() for p in model.generator.parameters()]
    model.after_discriminator_step()
    values = torch.cat([p.flatten() for p in model.discriminator.parameters()])
    assert values.abs().max().item() == pytest.approx(0.01)
    assert values.min().item() == pytest.approx(-0.01)
    for before, p in zip(g_before, model.generator.parameters()):
        assert torch.equal(before, p)  # only the critic is clipped


def test_wgangp_hparams_match_the_paper():
    model = WGANGP(img_resolution=32, img_channels=1, ngf=4, ndf=4)
    hp = model.hparams
    assert hp.loss == "wasserstein"
    assert hp.optimizer == "adam"
    assert hp.lr_g == 1e-4 and hp.lr_d == 1e-4
    assert tuple(hp.betas) == (0.0, 0.9)
    assert hp.gp_weight == 10.0
    assert hp.n_critic == 5
    assert hp.clip_value == 0.0
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.discriminator.modules())
    for opt in model.configure_optimizers():
        assert isinstance(opt, torch.optim.Adam)
        assert opt.param_groups[0]["lr"] == 1e-4
        assert tuple(opt.param_groups[0]["betas"]) == (0.0, 0.9)


def test_wgangp_discriminator_loss_includes_ten_times_the_penalty():
    torch.manual_seed(0)
    model = WGANGP(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4)
    real = make_real((1, 16, 16))
    with torch.no_grad():
        fake = model(model.sample_z(N))
    torch.manual_seed(5)
    loss = model.discriminator_loss(real, fake)
    with torch.no_grad():
        adversarial = model.discriminator(fake).mean() - model.discriminator(real).mean()
    from gans.training.losses import gradient_penalty

    torch.manual_seed(5)
    gp = gradient_penalty(model.discriminator, real, fake)
    assert gp.item() > 0
    assert loss.item() == pytest.approx(adversarial.item() + 10.0 * gp.item(), rel=1e-5)


@pytest.mark.parametrize(
    "g_steps, expected",
    [(0, 100), (1, 100), (24, 100), (25, 5), (26, 5), (499, 5), (500, 100), (501, 5), (999, 5), (1000, 100), (1500, 100)],
)
def test_wgan_critic_steps_schedule(g_steps, expected):
    model = WGAN(img_resolution=16, img_channels=1, ngf=4, ndf=4)
    model.g_steps = g_steps
    assert model.critic_steps() == expected


def test_other_models_use_a_constant_n_critic():
    model = WGANGP(img_resolution=16, img_channels=1, ngf=4, ndf=4)
    for g_steps in (0, 10, 500):
        model.g_steps = g_steps
        assert model.critic_steps() == 5
    assert DCGAN(img_resolution=16, img_channels=1, ngf=4, ndf=4).critic_steps() == 1


# Errors that tell the user what to change.


def test_unknown_loss_name_is_a_clear_error():
    with pytest.raises(ValueError, match="hinge"):
        DCGAN(img_resolution=32, img_channels=1, ngf=4, ndf=4, loss="wgan")


@pytest.mark.parametrize("resolution", [28, 48, 8])
def test_dcgan_rejects_resolutions_that_are_not_a_power_of_two(resolution):
    with pytest.raises(ValueError, match="power of two") as info:
        DCGAN(img_resolution=resolution, img_channels=1, ngf=4, ndf=4)
    assert str(resolution) in str(info.value)


def test_wgangp_rejects_batch_norm_in_the_critic():
    with pytest.raises(ValueError, match="batch norm"):
        WGANGP(img_resolution=32, img_channels=1, ngf=4, ndf=4, d_norm="batch")


@pytest.mark.parametrize("trick", [{"label_smoothing": 0.1}, {"soft_labels": True}, {"label_flip_prob": 0.05}])
@pytest.mark.parametrize("model_cls", [WGAN, WGANGP])
def test_label_tricks_with_wasserstein_loss_are_rejected(model_cls, trick):
    with pytest.raises(ValueError, match="wasserstein"):
        model_cls(img_resolution=32, img_channels=1, ngf=4, ndf=4, **trick)


def test_label_tricks_with_hinge_loss_are_rejected():
    with pytest.raises(ValueError, match="hinge"):
        DCGAN(img_resolution=32, img_channels=1, ngf=4, ndf=4, loss="hinge", label_smoothing=0.1)


def test_cgan_needs_classes():
    with pytest.raises(ValueError, match="num_classes"):
        CGAN(num_classes=0)


def test_conditional_networks_need_labels():
    model = ZOO["cgan"][0]()
    with pytest.raises(ValueError, match="labels"):
        model(torch.randn(2, Z), None)


def test_n_critic_must_be_positive():
    with pytest.raises(ValueError, match="n_critic"):
        DCGAN(img_resolution=32, img_channels=1, ngf=4, ndf=4, n_critic=0)


# Tricks inside the modules.


def test_label_smoothing_changes_the_d_loss_as_the_formula_says():
    """With smoothing s, the real term is BCE against 1 - s; the fake term is unchanged (one-sided)."""
    torch.manual_seed(0)
    model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4, label_smoothing=0.2)
    model.eval()  # fixed BN statistics, so the logits below are the ones the loss sees
    real = make_real((1, 16, 16))
    fake = model(model.sample_z(N)).detach()
    loss = model.discriminator_loss(real, fake)
    with torch.no_grad():
        r, f = model.discriminator(real), model.discriminator(fake)
    t = 0.8
    expected = (-(t * torch.log(torch.sigmoid(r)) + (1 - t) * torch.log(1 - torch.sigmoid(r)))).mean() - torch.log(1 - torch.sigmoid(f)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_always_dropout_stays_active_in_eval_mode():
    torch.manual_seed(0)
    layer = AlwaysDropout(0.5).eval()
    x = torch.ones(20_000)
    y = layer(x)
    assert not layer.training
    assert (y == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert set(y.unique().tolist()) == {0.0, 2.0}  # inverted dropout keeps the expectation
    assert not torch.equal(layer(x), y)  # fresh noise on every call


def test_always_dropout_p_zero_is_identity_and_bad_p_is_rejected():
    x = torch.randn(10)
    assert torch.equal(AlwaysDropout(0.0).eval()(x), x)
    with pytest.raises(ValueError):
        AlwaysDropout(1.0)


@pytest.mark.parametrize(
    "factory",
    [
        lambda p: DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4, g_dropout=p),
        lambda p: GAN(data_shape=(1, 8, 8), z_dim=8, g_hidden=(32,), d_hidden=(8,), d_pieces=2, g_dropout=p),
    ],
    ids=["dcgan", "gan"],
)
def test_generator_dropout_is_noise_at_test_time(factory):
    torch.manual_seed(0)
    z = torch.randn(3, 8)
    noisy = factory(0.5).eval()
    assert not torch.allclose(noisy.sample(3, z=z), noisy.sample(3, z=z))
    clean = factory(0.0).eval()
    torch.testing.assert_close(clean.sample(3, z=z), clean.sample(3, z=z))
