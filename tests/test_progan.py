"""ProGAN's networks (gans/models/style/progan.py): the paper's parameter counts, every growth stage, the fade-in."""

import pytest
import torch
import torch.nn.functional as F
from helpers import count_parameters

from gans.errors import ConfigError
from gans.models.style.progan import ProGANDiscriminator, ProGANGenerator, progan_widths


def test_widths_follow_the_paper() -> None:
    assert progan_widths(1024) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    with pytest.raises(ConfigError, match="power of two"):
        progan_widths(96)


def test_parameter_counts_at_1024_equal_the_papers_23_1m() -> None:
    """Table 2 (CelebA-HQ, 1024x1024): 23.1M parameters in each network. The exact totals of the final networks
    (without the toRGB / fromRGB layers the lower resolutions keep for growing) are pinned."""
    g, d = ProGANGenerator(img_resolution=1024), ProGANDiscriminator(img_resolution=1024)
    g_final = count_parameters(g) - sum(count_parameters(g.to_rgb[str(r)]) for r in g.widths if r < 1024)
    d_final = count_parameters(d) - sum(count_parameters(d.from_rgb[str(r)]) for r in d.widths if r < 1024)
    assert g_final == 23_071_507 and d_final == 23_077_137
    assert round(g_final / 1e6, 1) == round(d_final / 1e6, 1) == 23.1
    assert count_parameters(g) - g_final == 7_608 and count_parameters(d) - d_final == 10_112


@pytest.mark.parametrize("resolution", [4, 8, 16, 32])
def test_every_stage_runs_with_and_without_fade_in(resolution: int) -> None:
    torch.manual_seed(0)
    g, d = ProGANGenerator(z_dim=16, img_resolution=32, fmap_max=32), ProGANDiscriminator(img_resolution=32, fmap_max=32)
    for alpha in (0.3, 1.0):
        g.set_growth(resolution, alpha)
        d.set_growth(resolution, alpha)
        images = g(torch.randn(8, 16))
        assert images.shape == (8, 3, resolution, resolution)
        logits = d(images)
        assert logits.shape == (8,) and torch.isfinite(logits).all()


def test_fade_in_starts_from_the_previous_stage() -> None:
    """alpha = 0 at a new resolution gives exactly the previous stage's output (G: upsampled image; D: the
    downsampled image's logit), and alpha = 1 the new block alone."""
    torch.manual_seed(0)
    g, d = ProGANGenerator(z_dim=16, img_resolution=32, fmap_max=32), ProGANDiscriminator(img_resolution=32, fmap_max=32)
    z, image = torch.randn(4, 16), torch.randn(4, 3, 32, 32)
    g.set_growth(16)
    d.set_growth(16)
    previous_image, previous_logit = g(z), d(F.avg_pool2d(image, 2))
    g.set_growth(32, alpha=0.0)
    d.set_growth(32, alpha=0.0)
    torch.testing.assert_close(g(z), F.interpolate(previous_image, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(d(image), previous_logit)
    g.set_growth(32, alpha=0.5)
    d.set_growth(32, alpha=0.5)
    halfway = g(z)
    g.set_growth(32, alpha=1.0)
    torch.testing.assert_close(halfway, 0.5 * g(z) + 0.5 * F.interpolate(previous_image, scale_factor=2, mode="nearest"))


def test_every_parameter_of_the_full_networks_gets_a_gradient_except_the_lower_rgb_layers() -> None:
    torch.manual_seed(0)
    g, d = ProGANGenerator(z_dim=16, img_resolution=16, fmap_max=16), ProGANDiscriminator(img_resolution=16, fmap_max=16)
    d(g(torch.randn(4, 16))).sum().backward()
    for net, rgb in ((g, "to_rgb"), (d, "from_rgb")):
        for name, p in net.named_parameters():
            lower_rgb = name.startswith(rgb) and not name.startswith(f"{rgb}.16.")
            assert (p.grad is None) == lower_rgb, name


def test_bad_growth_settings_are_refused() -> None:
    g = ProGANGenerator(z_dim=8, img_resolution=16, fmap_max=8)
    with pytest.raises(ConfigError, match="no 32x32 stage"):
        g.set_growth(32)
    with pytest.raises(ConfigError, match="alpha"):
        g.set_growth(8, 1.5)
    d = ProGANDiscriminator(img_resolution=16, fmap_max=8)
    d.set_growth(8)
    with pytest.raises(ConfigError, match="runs at 8x8"):
        d(torch.randn(4, 3, 16, 16))


def test_progan_module_has_the_papers_recipe() -> None:
    from gans import ProGAN

    model = ProGAN(img_resolution=16, z_dim=8, fmap_max=8)
    hp = model.hparams
    assert (hp.loss, hp.gp_weight, hp.drift_weight, hp.n_critic) == ("wasserstein", 10.0, 0.001, 1)
    assert (hp.lr_g, hp.lr_d, tuple(hp.betas), hp.optimizer) == (1e-3, 1e-3, (0.0, 0.99), "adam")
    assert ProGAN.__init__.__defaults__[:3] == (1024, 3, 512)  # img_resolution, img_channels, z_dim


def test_progan_trains_at_a_stage_and_moves_every_network_there(tmp_path) -> None:
    """A few steps at 8x8 mid fade-in: D's WGAN-GP + drift loss and G's loss are finite, both networks move,
    and the EMA generator follows set_growth."""
    import lightning as L
    from helpers import quiet_trainer
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks import EMA
    from gans import ProGAN

    L.seed_everything(0)
    model = ProGAN(img_resolution=16, z_dim=8, fmap_max=8)
    model.set_growth(8, alpha=0.5)
    images = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=1, callbacks=[EMA(half_life_kimg=0.01)])
    trainer.fit(model, DataLoader(TensorDataset(images, torch.zeros(32)), batch_size=8))
    metrics = trainer.callback_metrics
    assert all(torch.isfinite(metrics[k]) for k in ("train/d_loss", "train/g_loss", "train/gp", "train/drift"))
    moved = {k.split(".")[0] for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before.get(k, v))}
    assert {"generator", "discriminator"} <= moved
    assert (model.generator_ema.current_resolution, model.generator_ema.alpha) == (8, 0.5)
    model.set_growth(16)
    assert (model.current_resolution, model.alpha, model.discriminator.current_resolution) == (16, 1.0, 16)
    assert model.sample(4).shape == (4, 3, 16, 16) and model.generator_ema.current_resolution == 16


def test_real_images_are_pooled_to_the_stage_and_faded_like_the_networks() -> None:
    from gans import ProGAN

    model = ProGAN(img_resolution=16, z_dim=8, fmap_max=8)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.set_growth(16)
    torch.testing.assert_close(model.real_at_stage(x), x)
    model.set_growth(8, alpha=1.0)
    x8 = F.avg_pool2d(x, 2)
    torch.testing.assert_close(model.real_at_stage(x), x8)
    model.set_growth(8, alpha=0.0)  # just grown to 8: the reals look like upsampled 4x4 images, as G's output does
    torch.testing.assert_close(model.real_at_stage(x), F.interpolate(F.avg_pool2d(x8, 2), scale_factor=2, mode="nearest"))
    model.set_growth(8, alpha=0.25)
    low = F.interpolate(F.avg_pool2d(x8, 2), scale_factor=2, mode="nearest")
    torch.testing.assert_close(model.real_at_stage(x), 0.75 * low + 0.25 * x8)
    with pytest.raises(ConfigError, match="multiple of 8"):
        model.real_at_stage(torch.rand(2, 3, 12, 12))


def test_progan_trains_at_a_lower_stage_on_full_resolution_data(tmp_path) -> None:
    import lightning as L
    from helpers import quiet_trainer
    from torch.utils.data import DataLoader, TensorDataset

    from gans import ProGAN

    L.seed_everything(0)
    model = ProGAN(img_resolution=16, z_dim=8, fmap_max=8)
    model.set_growth(4)
    seen = []
    model.discriminator.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    quiet_trainer(tmp_path, max_steps=4).fit(model, DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=8))
    assert seen and set(seen) == {(4, 4)}
