"""The ProGAN / StyleGAN layers of gans/nn/ against their definitions."""

import math

import pytest
import torch
import torch.nn.functional as F

from gans.errors import ConfigError
from gans.nn.equalized import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
)


def test_equalized_linear_scales_at_run_time_with_he_constant_and_lr_multiplier() -> None:
    torch.manual_seed(0)
    layer = EqualizedLinear(512, 256, gain=math.sqrt(2), lr_multiplier=0.01, bias_init=1.0)
    assert layer.weight.std().item() == pytest.approx(100.0, rel=0.02)  # stored N(0, 1 / lr_mul^2)
    x = torch.randn(8, 512)
    expected = F.linear(x, layer.weight * math.sqrt(2) * 0.01 / math.sqrt(512), layer.bias * 0.01)
    torch.testing.assert_close(layer(x), expected)
    assert torch.allclose(layer.bias * layer.bias_gain, torch.ones(256))  # the bias starts at bias_init as seen
    # He's constant: unit-variance inputs give outputs of variance gain^2 whatever the fan-in.
    layer = EqualizedLinear(2048, 2048, bias=False, gain=math.sqrt(2))
    assert layer(torch.randn(512, 2048)).var().item() == pytest.approx(2.0, rel=0.05)


def test_equalized_learning_rate_makes_the_gradient_step_fan_in_independent() -> None:
    """The point of section 4.1: the stored weights see gradients scaled by the run-time constant, so with
    Adam (update ~ lr * sign) every layer's effective weights move by lr * constant, relative to their scale."""
    torch.manual_seed(0)
    for fan_in in (16, 1024):
        layer = EqualizedLinear(fan_in, 4)
        x = torch.randn(32, fan_in)
        layer(x).square().sum().backward()
        effective = (layer.weight * layer.weight_gain).detach().requires_grad_(True)
        F.linear(x, effective, layer.bias).square().sum().backward()
        torch.testing.assert_close(layer.weight.grad, effective.grad * layer.weight_gain)


def test_equalized_conv_is_a_scaled_conv_with_same_padding() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(8, 16, 3, gain=math.sqrt(2))
    x = torch.randn(2, 8, 10, 10)
    out = conv(x)
    assert out.shape == (2, 16, 10, 10) and torch.count_nonzero(conv.bias) == 0
    torch.testing.assert_close(out, F.conv2d(x, conv.weight * math.sqrt(2) / math.sqrt(8 * 9), conv.bias, padding=1))
    assert EqualizedConv2d(8, 3, 1)(x).shape == (2, 3, 10, 10)  # toRGB
    assert EqualizedConv2d(8, 8, 4, padding=0)(torch.randn(1, 8, 4, 4)).shape == (1, 8, 1, 1)  # D's last block


def test_pixel_norm_gives_every_pixel_unit_mean_square() -> None:
    x = torch.randn(4, 16, 5, 5) * 7 + 3
    y = PixelNorm()(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(4, 5, 5), rtol=1e-5, atol=1e-5)
    z = PixelNorm()(torch.randn(3, 512) * 10)  # a latent
    torch.testing.assert_close(z.square().mean(dim=1), torch.ones(3), rtol=1e-5, atol=1e-5)


def _stddev_by_hand(x: torch.Tensor, group_size: int, num_features: int) -> torch.Tensor:
    """The definition, one group and one feature block at a time (sample i is in group i mod (N / G))."""
    n, c, h, w = x.shape
    groups = n // group_size
    out = torch.empty(n, num_features, h, w)
    for m in range(groups):
        members = x[m::groups]  # [G, C, H, W]
        for f in range(num_features):
            block = members[:, f * (c // num_features) : (f + 1) * (c // num_features)]
            std = (block.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
            out[m::groups, f] = std
    return torch.cat([x, out], dim=1)


@pytest.mark.parametrize("n, group_size, num_features", [(8, 4, 1), (8, 4, 2), (6, 2, 1), (3, 4, 1)])
def test_minibatch_stddev_matches_the_definition(n: int, group_size: int, num_features: int) -> None:
    x = torch.randn(n, 4, 3, 3, generator=torch.Generator().manual_seed(n))
    out = MinibatchStdDev(group_size, num_features)(x)
    assert out.shape == (n, 4 + num_features, 3, 3)
    torch.testing.assert_close(out, _stddev_by_hand(x, min(group_size, n), num_features))


def test_minibatch_stddev_rejects_a_batch_the_groups_do_not_divide() -> None:
    with pytest.raises(ConfigError, match="multiple of the group size"):
        MinibatchStdDev(4)(torch.randn(6, 4, 2, 2))
