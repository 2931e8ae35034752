"""Settings shared by every family are checked once, in one line naming the setting (gans/checks.py)."""

import math

import pytest

from gans import DCGAN, StarGAN
from gans.checks import check_at_least
from gans.errors import ConfigError


@pytest.mark.parametrize("build", [lambda: DCGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, n_critic=0),
                                   lambda: StarGAN(num_classes=[3, 2], domain_heads=[0], img_resolution=8, ngf=4, ndf=4, g_blocks=1, n_critic=0)], ids=["noise-to-image", "image-to-image"])
def test_n_critic_below_one_is_refused_in_both_families(build) -> None:
    with pytest.raises(ConfigError, match=r"^n_critic must be >= 1, got 0: set model.init_args.n_critic to 1 or more\.$"):
        build()


def test_nan_is_not_at_least_anything() -> None:
    check_at_least("x", 1, 1)
    with pytest.raises(ConfigError, match="x must be >= 0"):
        check_at_least("x", math.nan, 0)


NOISE_TO_IMAGE = dict(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4)
IMAGE_TO_IMAGE = dict(num_classes=[3, 2], domain_heads=[0], img_resolution=8, ngf=4, ndf=4, g_blocks=1)


@pytest.mark.parametrize("build", [lambda **kw: DCGAN(**NOISE_TO_IMAGE, **kw), lambda **kw: StarGAN(**IMAGE_TO_IMAGE, **kw)],
                         ids=["noise-to-image", "image-to-image"])
@pytest.mark.parametrize("setting, value", [("lr_g", -1e-4), ("lr_d", -2e-4), ("lr_g", math.nan), ("betas", (-0.1, 0.9)),
                                            ("betas", (0.5, 1.0)), ("gradient_clip_val", -1.0), ("max_kimg", -1.0)])
def test_optimizer_and_run_settings_are_checked_when_built_in_both_families(build, setting: str, value) -> None:
    with pytest.raises(ConfigError, match=rf"^{setting} must be .*model\.init_args\.{setting}") as refused:
        build(**{setting: value})
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("setting, value", [("momentum", -0.9), ("gp_weight", -1.0), ("r1_gamma", -1.0), ("clip_value", -0.01),
                                            ("label_smoothing", 1.0), ("label_flip_prob", 1.5), ("instance_noise_std", -0.1)])
def test_gan_module_numeric_settings_are_checked(setting: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"^{setting} must be .*model\.init_args\.{setting}"):
        DCGAN(**NOISE_TO_IMAGE, **{setting: value})


def test_a_zero_learning_rate_freezes_its_network_and_says_so() -> None:
    with pytest.warns(UserWarning, match="lr_g is 0: the generator is never updated"):
        DCGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, lr_g=0.0)
