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
