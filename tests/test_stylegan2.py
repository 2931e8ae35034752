"""StyleGAN2: equality with NVIDIA's official networks (../shared/fixtures/stylegan2-reference), parameter
counts of config F, modulated convolution, style mixing, truncation, and short trainings with the lazy
regularisers."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import count_parameters, quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from callbacks import EMA
from gans.errors import ConfigError
from gans.models.style.stylegan2 import (
    StyleGAN2,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    convert_official_state_dict,
)
from gans.nn.resample import BINOMIAL_4, fir_kernel, upfirdn2d
from gans.nn.style import modulated_conv2d

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan2-reference"



def tiny(**overrides) -> StyleGAN2:
    settings = dict(img_resolution=8, z_dim=16, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16)
    settings.update(overrides)
    return StyleGAN2(**settings)


# Fidelity to the official networks.


def load_fixture(name: str) -> dict:
    path = FIXTURES / f"stylegan2_{name}_32px.pt"
    if not path.exists():
        pytest.skip(f"{path} not found: the StyleGAN2 reference outputs live in ../shared/fixtures beside the repository")
    return torch.load(path, weights_only=True)


def assert_matches(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    scale = reference.abs().max().item()
    error = (ours - reference).abs().max().item()
    assert error <= 1e-4 * scale, f"{what}: max |ours - official| = {error:.3g} on a scale of {scale:.3g}"


@pytest.mark.parametrize("name", ["uncond", "cond10"])
def test_every_output_equals_the_official_networks(name: str) -> None:
    fixture = load_fixture(name)
    config, inputs, outputs = fixture["config"], fixture["inputs"], fixture["outputs"]
    num_classes = config["c_dim"]
    model = StyleGAN2.from_official_state_dict(
        fixture["G"], fixture["D"], img_resolution=config["img_resolution"], z_dim=config["z_dim"], w_dim=config["w_dim"],
        num_classes=num_classes, mapping_layers=config["mapping_layers"], channel_base=config["channel_base"],
        channel_max=config["channel_max"], g_architecture=config["g_architecture"], d_architecture=config["d_architecture"],
        mbstd_group_size=config["mbstd_group_size"], mbstd_num_channels=config["mbstd_num_channels"],
    ).eval()
    G, D = model.generator, model.discriminator
    assert G.num_ws == config["num_ws"]
    assert count_parameters(G) == {"uncond": 428_723, "cond10": 446_515}[name]
    assert count_parameters(D) == {"uncond": 288_993, "cond10": 327_072}[name]
    labels = inputs["c"].argmax(1) if num_classes else None  # the fixture's one-hot c as class indices
    c = G.class_vector(labels)
    if num_classes:
        torch.testing.assert_close(c, inputs["c"].float())
    with torch.no_grad():
        ws = G.mapping(inputs["z"], c)
        assert_matches(ws, outputs["ws"], "mapping")
        assert_matches(G.mapping(inputs["z"], c, truncation_psi=0.7), outputs["ws_trunc0.7"], "truncated mapping")
        assert_matches(G.mapping(inputs["z"], c, truncation_psi=0.5, truncation_cutoff=4), outputs["ws_trunc0.5_cutoff4"], "truncation cutoff")
        assert_matches(G.synthesis(ws, noise_mode="const"), outputs["img_const"], "synthesis, constant noise")
        assert_matches(G.synthesis(ws, noise_mode="none"), outputs["img_none"], "synthesis, no noise")
        assert_matches(G(inputs["z"], labels, truncation_psi=0.7, noise_mode="const"), outputs["img_trunc0.7_const"], "truncated image")
        mixed = torch.cat([ws[:, :6], G.mapping(inputs["z2"], c)[:, 6:]], dim=1)
        assert_matches(mixed, outputs["ws_mixed_at6"], "mixed ws")
        assert_matches(G.synthesis(mixed, noise_mode="const"), outputs["img_mixed_at6_const"], "style-mixed image")
        assert_matches(D(outputs["img_const"], labels), outputs["d_logits_img_const"].squeeze(1), "D on G's image")
        assert_matches(D(inputs["x"], labels), outputs["d_logits_x"].squeeze(1), "D on a random batch")
    x = inputs["x"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, labels).sum(), x)
    assert_matches(grad, outputs["d_grad_x"], "D's input gradient (what R1 penalises)")


def test_an_official_state_dict_of_another_network_is_refused_with_the_mismatch() -> None:
    fixture = load_fixture("uncond")
    wrong_size = StyleGAN2Generator(z_dim=128, w_dim=128, img_resolution=64, channel_base=1024, channel_max=64)
    with pytest.raises(ConfigError, match="missing synthesis.b64"):
        convert_official_state_dict(fixture["G"], wrong_size, "generator")
    wrong_width = StyleGAN2Discriminator(img_resolution=32, channel_base=2048, channel_max=64)
    with pytest.raises(ConfigError, match="b32.conv0.weight has shape"):
        convert_official_state_dict(fixture["D"], wrong_width, "discriminator")
    conditional = StyleGAN2Generator(z_dim=128, w_dim=128, img_resolution=32, channel_base=1024, channel_max=64, num_classes=10)
    with pytest.raises(ConfigError, match="missing mapping.embed.weight"):
        convert_official_state_dict(fixture["G"], conditional, "generator")


# Parameter counts of the official configurations.


@pytest.mark.parametrize(
    "resolution, channel_base, mapping_layers, g_total, g_mapping, d_total",
    [
        (1024, 32768, 8, 30_370_060, 2_101_248, 29_012_513),  # config F at 1024
        (256, 32768, 8, 30_034_338, 2_101_248, 28_864_129),  # config F at 256
        (64, 16384, 2, 22_243_608, 525_312, 23_407_361),  # the official "auto" config at 64 px (the speed benchmark's)
    ],
)
def test_parameter_counts_equal_the_official_networks(resolution, channel_base, mapping_layers, g_total, g_mapping, d_total) -> None:
    with torch.device("meta"):
        G = StyleGAN2Generator(img_resolution=resolution, channel_base=channel_base, mapping_layers=mapping_layers)
        D = StyleGAN2Discriminator(img_resolution=resolution, channel_base=channel_base, mapping_layers=mapping_layers)
    assert (count_parameters(G), count_parameters(G.mapping), count_parameters(D)) == (g_total, g_mapping, d_total)
    assert G.num_ws == 2 * int(torch.log2(torch.tensor(resolution))) - 2


# The modulated convolution.


def test_demodulated_weights_give_unit_output_variance_for_unit_variance_input() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 32, 64, 64)
    weight = torch.randn(16, 32, 3, 3)
    styles = torch.rand(3, 32) * 3 + 0.1  # far from 1, different per sample
    out = modulated_conv2d(x, weight, styles, demodulate=True)[:, :, 1:-1, 1:-1]  # no zero padding in the window
    std = out.std(dim=(2, 3))  # per sample and output channel
    assert torch.allclose(std, torch.ones_like(std), atol=0.05), std
    plain = modulated_conv2d(x, weight, styles, demodulate=False)[:, :, 1:-1, 1:-1].std(dim=(2, 3))
    assert (plain - 1).abs().mean() > 1  # without demodulation the scale follows the styles


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up", [False, True])
def test_modulated_convolution_equals_the_per_sample_loop(up: bool, fused: bool) -> None:
    """Both forms (grouped per-sample weights; scaled activations around the shared weight) against eq. 1-3 per sample."""
    torch.manual_seed(1)
    n, cin, cout = 4, 5, 6
    x, weight, styles = torch.randn(n, cin, 8, 8), torch.randn(cout, cin, 3, 3), torch.randn(n, cin)
    kernel = fir_kernel(BINOMIAL_4)
    batched = modulated_conv2d(x, weight, styles, up=up, fir_kernel=kernel, fused=fused)
    for i in range(n):
        w = weight * styles[i].reshape(1, cin, 1, 1)
        w = w / w.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        if up:  # transposed stride-2 convolution, then the FIR filter with gain 4, as the official conv2d_resample
            y = upfirdn2d(F.conv_transpose2d(x[i : i + 1], w.transpose(0, 1), stride=2), kernel, padding=1, gain=4)
        else:
            y = F.conv2d(x[i : i + 1], w, padding=1)
        torch.testing.assert_close(batched[i : i + 1], y, rtol=1e-5, atol=1e-5)
    assert batched.shape[-1] == (16 if up else 8)


# Style mixing and truncation.


def test_style_mixing_switches_w_at_the_crossover_layer() -> None:
    torch.manual_seed(0)
    model = tiny(style_mixing_prob=1.0)
    G = model.generator
    z = torch.randn(4, 16)
    crossovers = set()
    for _ in range(20):
        ws = model.mapped_latents(z)
        plain = G.mapping(z, None, update_w_avg=False)
        same = (ws == plain).all(dim=2).all(dim=0)  # [num_ws]: the layers that kept z's styles
        crossover = int(same.long().sum())
        assert 1 <= crossover < G.num_ws and same[:crossover].all() and not same[crossover:].any()
        # From the crossover on, every layer reads the same second w.
        assert torch.equal(ws[:, crossover:], ws[:, -1:].expand_as(ws[:, crossover:]))
        crossovers.add(crossover)
    assert len(crossovers) > 1
    model.eval()
    torch.testing.assert_close(model.mapped_latents(z), G.mapping(z, None, update_w_avg=False))  # no mixing outside training
    unmixed = tiny(style_mixing_prob=0.0).mapped_latents(z)
    assert torch.equal(unmixed, unmixed[:, :1].expand_as(unmixed))  # style_mixing_prob 0: one w for every layer


def test_synthesis_layers_read_their_own_w() -> None:
    torch.manual_seed(0)
    G = tiny().generator.eval()
    ws = torch.randn(2, G.num_ws, 16)
    base = G.synthesis(ws, noise_mode="const")
    for i in range(G.num_ws):
        changed = ws.clone()
        changed[:, i] += 1.0
        assert not torch.allclose(G.synthesis(changed, noise_mode="const"), base), f"w {i} is read by no layer"
    assert G.synthesis.ws_resolutions == [4, 8, 8, 8]


def test_training_and_eval_synthesis_compute_the_same_images_and_gradients() -> None:
    """Training runs the scaled-activation modulated convolutions, eval the grouped ones: same function."""
    torch.manual_seed(0)
    G = tiny().generator  # skip G: every block's modulated convolutions (one upsampling) and toRGB are used
    ws = torch.randn(3, G.num_ws, 16)
    outputs, grads = [], []
    for training in (True, False):
        G.train(training)
        G.zero_grad()
        image = G.synthesis(ws, noise_mode="const")
        image.square().mean().backward()
        outputs.append(image.detach())
        grads.append(torch.cat([p.grad.flatten() for p in G.synthesis.parameters() if p.grad is not None]))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_truncation_psi_zero_gives_the_average_w_image() -> None:
    torch.manual_seed(0)
    model = tiny()
    model.generator.mapping.w_avg.normal_()
    model.eval()
    images = model.sample(4, truncation_psi=0.0, noise_mode="const")
    average = model.generator.synthesis(model.generator.mapping.w_avg.reshape(1, 1, -1).expand(1, model.generator.num_ws, -1), noise_mode="const")
    torch.testing.assert_close(images, average.expand_as(images))
    assert not torch.allclose(model.sample(2, truncation_psi=1.0, noise_mode="const")[0], average[0])


def test_noise_modes() -> None:
    torch.manual_seed(0)
    G = tiny().generator.eval()
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    ws = torch.randn(2, G.num_ws, 16)
    assert not torch.equal(G.synthesis(ws, "random"), G.synthesis(ws, "random"))
    assert torch.equal(G.synthesis(ws, "const"), G.synthesis(ws, "const"))
    assert not torch.equal(G.synthesis(ws, "const"), G.synthesis(ws, "none"))
    with pytest.raises(ConfigError, match="noise_mode"):
        tiny().sample(1, noise_mode="off")


def test_w_avg_tracks_the_training_mapping_only() -> None:
    torch.manual_seed(0)
    G = tiny().generator
    G.mapping(torch.randn(8, 16), None)
    moved = G.mapping.w_avg.clone()
    assert moved.abs().sum() > 0
    G.eval()
    G.mapping(torch.randn(8, 16), None)
    assert torch.equal(G.mapping.w_avg, moved)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="architecture"):
        tiny(g_architecture="residual")
    with pytest.raises(ConfigError, match="power of two"):
        tiny(img_resolution=48)
    with pytest.raises(ConfigError, match="style_mixing_prob"):
        tiny(style_mixing_prob=1.5)
    model = tiny(num_classes=3)
    with pytest.raises(ConfigError, match="no labels"):
        model.generator(torch.randn(2, 16), None)


@pytest.mark.parametrize("g_architecture, d_architecture", [("orig", "orig"), ("resnet", "skip"), ("skip", "resnet")])
def test_every_architecture_runs_and_gets_gradients(g_architecture: str, d_architecture: str) -> None:
    torch.manual_seed(0)
    model = tiny(g_architecture=g_architecture, d_architecture=d_architecture, num_classes=[2, 3])
    labels = torch.tensor([[0, 2], [1, 0], [1, 1], [0, 0]])
    logits = model.discriminator(model(torch.randn(4, 16), labels), labels)
    assert logits.shape == (4,)
    logits.sum().backward()
    for network in (model.generator, model.discriminator):
        no_grad = [n for n, p in network.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        if network is model.generator:  # noise strengths start at 0 and get gradients from random noise; all should move
            no_grad = [n for n in no_grad if "noise_strength" not in n]
        assert not no_grad, no_grad


# Training.


def colour_batch(n: int, resolution: int = 8) -> torch.Tensor:
    """Images of one colour (red-ish) with a little noise: a target G must move toward."""
    colour = torch.tensor([0.8, -0.6, -0.2]).reshape(1, 3, 1, 1)
    return (colour + 0.05 * torch.randn(n, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)


def test_a_short_training_with_lazy_r1_and_path_length_moves_g_toward_the_data(tmp_path) -> None:
    L.seed_everything(0)
    model = tiny(lr_g=0.005, lr_d=0.005, r1_gamma=1.0, r1_interval=4, pl_weight=2.0, pl_interval=2)
    real = colour_batch(512)
    target = real.mean(dim=(0, 2, 3))
    z = torch.randn(64, 16)
    before = (model.generator.eval()(z, noise_mode="const").mean(dim=(0, 2, 3)) - target).norm()
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=2, callbacks=[EMA(half_life_kimg=0.1)])
    trainer.fit(model.train(), DataLoader(TensorDataset(real, torch.zeros(len(real))), batch_size=16, shuffle=True))
    metrics = trainer.callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/r1", "train/pl", "train/pl_mean"):
        assert torch.isfinite(metrics[name]), name
    assert model.pl_mean > 0 and model.generator.mapping.w_avg.abs().sum() > 0
    with torch.no_grad():
        fake = model.generator.eval()(z, noise_mode="const")
        after = (fake.mean(dim=(0, 2, 3)) - target).norm()
        assert after < 0.5 * before, f"G's colour did not move toward the data's: {before:.3f} -> {after:.3f}"
        d_real, d_fake = model.discriminator(real[:64]).mean(), model.discriminator(fake).mean()
    assert d_real > d_fake
    assert model.sample(4).shape == (4, 3, 8, 8)  # from the EMA generator
