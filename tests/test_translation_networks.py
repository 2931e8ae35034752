"""pix2pix's U-Net and PatchGAN and CycleGAN's ResNet generator (gans.models.translation.networks)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from helpers import count_parameters
from torch import nn

from gans import Pix2Pix
from gans.errors import ConfigError
from gans.models.translation.networks import (
    PatchGANDiscriminator,
    PixelDiscriminator,
    ResidualBlock,
    ResnetGenerator,
    UNetGenerator,
    receptive_field,
)

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def test_unet_maps_images_to_images_of_the_same_size() -> None:
    g = UNetGenerator(in_channels=1, out_channels=3, img_resolution=16, ngf=4)
    out = g(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 3, 16, 16)
    assert out.abs().max() <= 1  # tanh
    assert len(g.down) == len(g.up) == 4  # log2(16) levels down to a 1x1 bottleneck


@pytest.mark.parametrize(
    "build, images, words",
    [
        (lambda: UNetGenerator(img_resolution=24), None, "power of two"),
        (lambda: UNetGenerator(img_resolution=8, dropout_blocks=3), None, "dropout_blocks"),
        (lambda: UNetGenerator(norm="group"), None, "'instance'"),
        (lambda: UNetGenerator(img_resolution=16, ngf=4), torch.randn(1, 3, 32, 32), "img_resolution"),
        (lambda: UNetGenerator(img_resolution=16, ngf=4), torch.randn(1, 1, 16, 16), "in_channels"),
        (lambda: PatchGANDiscriminator(ndf=4), torch.randn(1, 6, 16, 16), "at least 24x24"),
        (lambda: PatchGANDiscriminator(n_layers=0), None, "PixelDiscriminator"),
        (lambda: ResnetGenerator(ngf=4, n_blocks=1), torch.randn(1, 3, 18, 18), "multiples of 4"),
        (lambda: ResnetGenerator(padding="circular"), None, "'reflect'"),
    ],
)
def test_bad_settings_name_the_fix(build: Callable[[], nn.Module], images: torch.Tensor | None, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        build()(images)


def test_unet_skips_carry_the_input_past_a_zeroed_bottleneck() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(img_resolution=32, ngf=4, norm="none", dropout=0.0)
    g.down[-1].register_forward_hook(lambda module, args, out: torch.zeros_like(out))  # no information through 1x1
    x = torch.randn(1, 3, 32, 32)
    nudged = x.clone()
    nudged[0, :, 5, 5] += 1.0
    with torch.no_grad():
        change = (g(nudged) - g(x)).abs().sum(1)[0]  # [32, 32]
    assert change[4:7, 4:7].min() > 0  # the pixel and its neighbours move: only the skips can carry it


def test_unet_dropout_stays_on_in_eval_mode_in_the_first_decoder_layers_only() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(img_resolution=16, ngf=4, dropout_blocks=2).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(g(x), g(x))  # pix2pix's noise at test time
        for j, up in enumerate(g.up[:-1]):  # decoder layer j reads 2^j x 2^j maps
            h = torch.randn(4, up.block[1].in_channels, 2**j, 2**j)
            assert torch.equal(up(h), up(h)) == (j >= 2), j
        deterministic = UNetGenerator(img_resolution=16, ngf=4, dropout=0.0).eval()
        assert torch.equal(deterministic(x), deterministic(x))


def test_unet_batch_norm_uses_the_test_batch_statistics() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(img_resolution=16, ngf=4)
    x = torch.randn(3, 3, 16, 16)
    for _ in range(3):  # training forwards, which would move running statistics
        g(torch.randn(3, 3, 16, 16) * 5 + 2)
    with torch.no_grad():
        torch.manual_seed(1)
        evaluated = g.eval()(x)
        torch.manual_seed(1)  # the same dropout masks
        trained = g.train()(x)
    assert torch.allclose(evaluated, trained, atol=1e-6)


def test_unet_batch_norm_of_one_image_is_instance_norm() -> None:
    torch.manual_seed(0)
    batch = UNetGenerator(img_resolution=16, ngf=4, norm="batch", dropout=0.0).eval()
    instance = UNetGenerator(img_resolution=16, ngf=4, norm="instance", dropout=0.0).eval()
    with torch.no_grad():  # the same convolutions; batch norm with unit scale, zero shift
        for b, i in zip(batch.modules(), instance.modules()):
            if isinstance(b, (nn.Conv2d, nn.ConvTranspose2d)):
                i.weight.copy_(b.weight)
                i.bias.copy_(b.bias if b.bias is not None else torch.zeros_like(i.bias))
            elif isinstance(b, nn.BatchNorm2d):
                b.weight.fill_(1.0)
                b.bias.zero_()
        x = torch.randn(2, 3, 16, 16)
        assert torch.allclose(batch(x[:1]), instance(x[:1]), atol=1e-5)
        assert not torch.allclose(batch(x)[:1], instance(x[:1]), atol=1e-3)  # a bigger batch shares statistics


def test_patchgan_gives_30x30_logits_at_256_px() -> None:
    d = PatchGANDiscriminator(in_channels=6, ndf=4)
    assert d(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    assert PixelDiscriminator(in_channels=6, ndf=4)(torch.randn(1, 6, 8, 8)).shape == (1, 1, 8, 8)


@pytest.mark.parametrize(
    "build, paper_size, image_size",
    [
        (lambda: PatchGANDiscriminator(ndf=2, n_layers=1), 16, 32),
        (lambda: PatchGANDiscriminator(ndf=2, n_layers=3), 70, 128),
        (lambda: PatchGANDiscriminator(ndf=2, n_layers=5), 286, 288),
        (lambda: PixelDiscriminator(ndf=2), 1, 8),
    ],
)
def test_receptive_field_computed_and_measured(build: Callable[[], nn.Module], paper_size: int, image_size: int) -> None:
    torch.manual_seed(0)
    d = build().double().eval()  # eval: batch norm with fixed statistics, so each logit depends on its patch only
    assert receptive_field(d) == paper_size
    x = torch.randn(1, 6, image_size, image_size, dtype=torch.float64, requires_grad=True)
    logits = d(x)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    support = x.grad.abs().sum(dim=(0, 1)) > 0  # [H, W]: the pixels this logit sees
    rows, cols = support.any(1).nonzero().flatten(), support.any(0).nonzero().flatten()
    assert rows[-1] - rows[0] + 1 == cols[-1] - cols[0] + 1 == paper_size
    assert support.sum() == paper_size**2  # the whole square, nothing outside it


def test_receptive_field_refuses_transposed_convolutions() -> None:
    with pytest.raises(ConfigError, match="transposed"):
        receptive_field(UNetGenerator(img_resolution=8, ngf=2, dropout_blocks=0))


@pytest.mark.parametrize("n_blocks", [9, 6])
def test_resnet_generator_shapes(n_blocks: int) -> None:
    g = ResnetGenerator(ngf=4, n_blocks=n_blocks)
    assert sum(isinstance(m, ResidualBlock) for m in g.modules()) == n_blocks
    assert g(torch.randn(2, 3, 16, 16)).shape == (2, 3, 16, 16)
    assert g(torch.randn(1, 3, 16, 24)).shape == (1, 3, 16, 24)  # fully convolutional


def test_resnet_generator_pads_by_reflection() -> None:
    g = ResnetGenerator(ngf=4, n_blocks=2)
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.padding == (0, 0) for m in convs if m.stride == (1, 1))  # every stride-1 convolution pads explicitly
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in g.modules()) == 2 + 2 * 2
    # Reflection keeps a constant image constant up to the borders, where zero padding shows an edge.
    constant = torch.ones(1, 16, 8, 8)
    with torch.no_grad():
        for padding, flat in [("reflect", True), ("zero", False)]:
            torch.manual_seed(0)
            out = ResidualBlock(16, norm="none", padding=padding, dropout=0.0)(constant)
            assert torch.allclose(out, out[:, :, :1, :1].expand_as(out), atol=1e-7) == flat, padding


def test_residual_block_adds_its_input() -> None:
    block = ResidualBlock(8, norm="instance", padding="reflect", dropout=0.0)
    last_conv = [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.zero_()
        last_conv.bias.zero_()  # the residual branch now outputs 0
        x = torch.randn(2, 8, 8, 8)
        assert torch.equal(block(x), x)


@pytest.mark.parametrize(
    "build",
    [
        lambda: UNetGenerator(img_resolution=32, ngf=8),
        lambda: PatchGANDiscriminator(ndf=16),
        lambda: ResnetGenerator(ngf=16, n_blocks=2, norm="batch"),
    ],
)
def test_initialisation_is_the_official_normal_002(build: Callable[[], nn.Module]) -> None:
    torch.manual_seed(0)
    net = build()
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.mean()) < 1e-3 and abs(weights.std() - 0.02) < 1e-3
    assert 0.035 < (weights.abs() > 0.04).float().mean() < 0.056  # normal (4.55% beyond 2 sigma), not uniform (0%)
    assert all((m.bias == 0).all() for m in convs if m.bias is not None)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight for m in norms])
    assert abs(scales.mean() - 1) < 0.01 and 0.01 < scales.std() < 0.03
    assert all((m.bias == 0).all() for m in norms)


def test_parameter_counts_match_the_official_code() -> None:
    # Counted by hand from junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py (UnetGenerator(3, 3, 8) with
    # batch norm; NLayerDiscriminator n_layers 3; ResnetGenerator 9 / 6 blocks with affine-free instance norm); the
    # official pix2pix training log prints the first two rounded: "[Network G] ... 54.414 M", "[Network D] ... 2.769 M".
    assert count_parameters(UNetGenerator(3, 3, img_resolution=256, norm="batch")) == 54_413_955
    assert count_parameters(PatchGANDiscriminator(in_channels=6, norm="batch")) == 2_768_705
    assert count_parameters(PatchGANDiscriminator(in_channels=3, norm="instance")) == 2_764_737
    assert count_parameters(ResnetGenerator(n_blocks=9, norm="instance")) == 11_378_179
    assert count_parameters(ResnetGenerator(n_blocks=6, norm="instance")) == 7_837_699


def encoder_widths(g: UNetGenerator) -> list[int]:
    return [next(m for m in down.modules() if isinstance(m, nn.Conv2d)).out_channels for down in g.down]


def test_widths_are_capped_at_8_times_ngf_as_the_official_code() -> None:
    """The official UnetGenerator's widths are ``ngf * min(2**i, 8)`` and NLayerDiscriminator's ``ndf * min(2**n, 8)``:
    capped at 8 ngf, not at 512 whatever ngf is, so a narrower ngf scales the whole network down."""
    g = UNetGenerator(3, 3, img_resolution=64, ngf=32)
    assert encoder_widths(g) == [32, 64, 128, 256, 256, 256]  # 8 x 32 from the fourth level on
    # ngf 32 at 64 px, the settings of experiments/pix2pix_edges_cpu.yaml: the official code's count (the earlier
    # 512-capped U-Net had 16,752,963); the default ngf 64 keeps its count at 256 px (test above).
    assert count_parameters(g) == 7_314_755
    init_args = yaml.safe_load((EXPERIMENTS / "pix2pix_edges_cpu.yaml").read_text())["model"]["init_args"]
    assert (init_args["ngf"], init_args["img_resolution"]) == (32, 64)
    assert count_parameters(Pix2Pix(**init_args).generator) == 7_314_755
    # The widest encoder layer is 8 ngf at any ngf (128 px: 7 levels, the last four at the cap).
    wide = UNetGenerator(3, 3, img_resolution=128, ngf=128)
    assert encoder_widths(wide) == [128, 256, 512, 1024, 1024, 1024, 1024]
    # PatchGAN follows the same rule: 5 layers at ndf 32 end at 256 channels, not 512.
    d = PatchGANDiscriminator(in_channels=6, ndf=32, n_layers=5)
    assert max(m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)) == 256
