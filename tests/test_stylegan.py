"""StyleGAN (gans/models/style/stylegan.py): the paper's parameter counts, AdaIN, one w per layer, style mixing, truncation,
noise modes, growth with fade-in, conditioning, and short fits (by hand and through ProgressiveGrowing)."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import count_parameters, quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from test_progressive import StagedImages
from torch.utils.data import DataLoader, TensorDataset

from callbacks import EMA, ProgressiveGrowing
from gans.errors import ConfigError
from gans.models.style.progan import DiscriminatorBlock, ProGANDiscriminator
from gans.models.style.stylegan import (
    AdaIN,
    StyleGAN,
    StyleGANDiscriminator,
    StyleGANGenerator,
    SynthesisLayer,
    instance_norm,
)
from gans.nn.resample import BINOMIAL_3, blur2d, fir_kernel

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, fmap_base=64, fmap_max=16)  # 16 feature maps at 4 and 8 px, 8 at 16, 4 at 32



def tiny_generator(img_resolution: int = 32, **kwargs) -> StyleGANGenerator:
    return StyleGANGenerator(img_resolution=img_resolution, **{**TINY, **kwargs})


def tiny_model(img_resolution: int = 16, **kwargs) -> StyleGAN:
    return StyleGAN(img_resolution=img_resolution, **{**TINY, "mbstd_group_size": 2, **kwargs})


def synthesis_layers(generator: StyleGANGenerator) -> list[SynthesisLayer]:
    """Every layer of the synthesis network, in the order the ws feed them."""
    return [m for m in generator.synthesis.modules() if isinstance(m, SynthesisLayer)]


def switch_noise_on(generator: StyleGANGenerator) -> None:
    """The noise weights start at 0 (no noise); give them a strength so that noise shows in the images."""
    with torch.no_grad():
        for layer in synthesis_layers(generator):
            layer.noise_strength.fill_(0.5)


# Networks.


def test_parameter_counts_at_1024_equal_the_papers_26_2m_and_progans_d() -> None:
    """Section 2: "26.2M trainable parameters" in G, the official FFHQ generator's total (26,219,627), counting every
    resolution's toRGB as the growing network holds them; D is ProGAN's (23.1M), the blur adding nothing."""
    g, d = StyleGANGenerator(), StyleGANDiscriminator()
    lower_rgb = sum(count_parameters(getattr(g.synthesis, f"b{r}").torgb) for r in g.synthesis.widths if r < 1024)
    assert count_parameters(g) == 26_219_627 and count_parameters(g.mapping) == 2_101_248
    assert lower_rgb == 7_608 and round((count_parameters(g) - lower_rgb) / 1e6, 1) == 26.2
    d_lower = sum(count_parameters(d.from_rgb[str(r)]) for r in d.widths if r < 1024)
    assert count_parameters(d) - d_lower == 23_077_137 and d_lower == 10_112
    assert count_parameters(d) == count_parameters(ProGANDiscriminator())
    assert g.num_ws == 18 and g.synthesis.ws_resolutions == [r for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024) for _ in range(2)]
    assert {layer.noise_const.shape[-1] for layer in synthesis_layers(g)} == set(g.synthesis.widths)


def test_adain_normalises_each_channel_of_each_sample_then_applies_the_style() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, 8) * (torch.rand(3, 5, 1, 1) * 4 + 0.1) + torch.randn(3, 5, 1, 1) * 3
    normed = instance_norm(x)
    torch.testing.assert_close(normed.mean(dim=(2, 3)), torch.zeros(3, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(normed.var(dim=(2, 3), correction=0), torch.ones(3, 5), atol=1e-4, rtol=0)
    adain, w = AdaIN(w_dim=6, channels=5), torch.randn(3, 6)
    styles = adain.styles(w)  # [N, 2, C]: (y_s, y_b)
    out = adain(x, w)
    torch.testing.assert_close(out.mean(dim=(2, 3)), styles[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3), correction=0), (styles[:, 0] + 1).abs(), atol=1e-4, rtol=1e-4)


def test_a_synthesis_layer_ends_with_adain_so_its_statistics_are_its_styles() -> None:
    """Noise, bias and leaky ReLU come before the instance norm: whatever the input, each output channel's mean and
    standard deviation are the y_b and |y_s + 1| of the layer's w (section 2, Figure 1b)."""
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 6, w_dim=8, resolution=16, up=True)
    with torch.no_grad():
        layer.noise_strength.fill_(2.0)
    x, w = torch.randn(2, 4, 8, 8) * 5 + 3, torch.randn(2, 8)
    out = layer(x, w, noise_mode="random")
    styles = layer.adain.styles(w)
    assert out.shape == (2, 6, 16, 16)
    torch.testing.assert_close(out.mean(dim=(2, 3)), styles[:, 1], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3), correction=0), (styles[:, 0] + 1).abs(), atol=1e-4, rtol=1e-4)


def test_the_upsampling_convolution_equals_the_official_fused_transposed_convolution() -> None:
    """Nearest x2 then 3x3 is what the official code computes from 128 px on as one stride-2 transposed convolution
    with the 4x4 kernel summed from four shifted copies of the 3x3 one (rotated by 180 degrees), borders included."""
    torch.manual_seed(0)
    layer = SynthesisLayer(5, 7, w_dim=4, resolution=12, up=True)
    x = torch.randn(2, 5, 6, 6)
    weight = (layer.conv.weight * layer.conv.weight_gain).flip([2, 3])
    padded = F.pad(weight, [1, 1, 1, 1])
    fused = padded[:, :, 1:, 1:] + padded[:, :, :-1, 1:] + padded[:, :, 1:, :-1] + padded[:, :, :-1, :-1]  # [O, I, 4, 4]
    official = F.conv_transpose2d(x, fused.transpose(0, 1), stride=2, padding=1)
    torch.testing.assert_close(layer.conv(F.interpolate(x, scale_factor=2, mode="nearest")), official, atol=1e-5, rtol=1e-5)


def test_the_discriminator_blurs_before_each_downsampling_convolution() -> None:
    """D_basic's block: lrelu(pool(conv1(blur(lrelu(conv0(x)))))); ProGAN's block (blur off) is unchanged."""
    torch.manual_seed(0)
    block, x = DiscriminatorBlock(3, 5, blur=True), torch.randn(2, 3, 8, 8)
    h = F.leaky_relu(block.conv0(x), 0.2)
    expected = F.leaky_relu(F.avg_pool2d(block.conv1(blur2d(h, fir_kernel(BINOMIAL_3))), 2), 0.2)
    torch.testing.assert_close(block(x), expected)
    plain = DiscriminatorBlock(3, 5)
    plain.load_state_dict(block.state_dict())
    torch.testing.assert_close(plain(x), F.avg_pool2d(F.leaky_relu(block.conv1(h), 0.2), 2))
    d = StyleGANDiscriminator(img_resolution=16, fmap_base=64, fmap_max=16)
    assert all(b.blur is not None for b in d.blocks.values())


def test_each_synthesis_layer_reads_only_its_own_w() -> None:
    """Changing ws[:, i] leaves every layer before layer i exactly as it was and changes layer i and the image: the
    property style mixing relies on. ws_resolutions names the resolution of layer i."""
    torch.manual_seed(0)
    g = tiny_generator(img_resolution=16)
    switch_noise_on(g)
    layers, outputs = synthesis_layers(g), []
    for layer in layers:
        layer.register_forward_hook(lambda module, args, out: outputs.append(out))
    assert len(layers) == g.num_ws == 6
    ws = torch.randn(2, g.num_ws, g.w_dim)
    base = g.synthesis(ws, noise_mode="const")
    reference = list(outputs)
    for i in range(g.num_ws):
        outputs.clear()
        changed = ws.clone()
        changed[:, i] += 1.0
        image = g.synthesis(changed, noise_mode="const")
        assert all(torch.equal(outputs[j], reference[j]) for j in range(i)), f"ws[:, {i}] reached an earlier layer"
        assert not torch.allclose(outputs[i], reference[i]) and not torch.allclose(image, base)
        assert g.synthesis.ws_resolutions[i] == layers[i].resolution


def test_style_mixing_switches_to_a_second_w_at_a_crossover_among_the_layers_of_the_stage() -> None:
    """With probability 1 every training batch takes ws[:, :k] from its own z and ws[:, k:] from a fresh one, k drawn
    in [1, layers the stage reads) as the official G_style (at 8x8: 4 layers, so k in {1, 2, 3}); off outside training."""
    torch.manual_seed(0)
    model = tiny_model(img_resolution=32, style_mixing_prob=1.0)
    model.set_growth(8)
    z = torch.randn(4, 16)
    own = model.generator.mapping(z, update_w_avg=False)
    crossovers = set()
    for _ in range(40):
        ws = model.mapped_latents(z)
        k = next(i for i in range(model.generator.num_ws) if not torch.equal(ws[:, i], own[:, i]))
        assert torch.equal(ws[:, :k], own[:, :k])
        assert torch.equal(ws[:, k:], ws[:, k:k + 1].expand_as(ws[:, k:])), "the mixed-in ws are one w, broadcast"
        crossovers.add(k)
    assert crossovers == {1, 2, 3}
    model.eval()
    assert torch.equal(model.mapped_latents(z), own)
    model.train()
    model.hparams.style_mixing_prob = 0.0
    assert torch.equal(model.mapped_latents(z), own)


def test_truncation_psi_zero_gives_the_image_of_the_average_w() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    switch_noise_on(model.generator)
    model.generator.mapping(torch.randn(64, 16))  # training mode: moves w_avg away from 0
    model.eval()
    w_avg = model.generator.mapping.w_avg
    assert w_avg.abs().sum() > 0
    for noise_mode in ("const", "none"):
        images = model.sample(4, truncation_psi=0.0, truncation_cutoff=None, noise_mode=noise_mode)
        expected = model.generator.synthesis(w_avg.expand(1, model.generator.num_ws, -1), noise_mode=noise_mode)
        torch.testing.assert_close(images, expected.expand_as(images))
    assert not torch.allclose(model.sample(2, truncation_psi=1.0, noise_mode="none")[0], expected[0])
    cut = model.sample(4, truncation_psi=0.0, truncation_cutoff=2, noise_mode="none")  # only the 4x4 layers truncated
    assert not torch.allclose(cut[0], cut[1])


def test_noise_modes() -> None:
    """random: fresh noise every call; const: each layer's fixed noise image (in the state dict, so the EMA copy and
    checkpoints keep it); none: no noise. Unknown modes are refused."""
    torch.manual_seed(0)
    g = tiny_generator(img_resolution=16)
    switch_noise_on(g)
    ws = g.mapping(torch.randn(2, 16), update_w_avg=False)
    random_a, random_b = g.synthesis(ws, "random"), g.synthesis(ws, "random")
    const_a, const_b = g.synthesis(ws, "const"), g.synthesis(ws, "const")
    none_a, none_b = g.synthesis(ws, "none"), g.synthesis(ws, "none")
    assert not torch.allclose(random_a, random_b)
    assert torch.equal(const_a, const_b) and torch.equal(none_a, none_b)
    assert not torch.allclose(const_a, none_a) and not torch.allclose(const_a, random_a)
    assert "synthesis.b16.layer1.noise_const" in g.state_dict()
    with torch.no_grad():
        for layer in synthesis_layers(g):
            layer.noise_strength.zero_()  # the initial state: noise has no effect yet
    torch.testing.assert_close(g.synthesis(ws, "random"), g.synthesis(ws, "none"))
    with pytest.raises(ConfigError, match="noise_mode"):
        g.synthesis(ws, "fixed")


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_every_stage_runs_and_the_fade_in_starts_from_the_previous_stage(resolution: int) -> None:
    """alpha = 0 at a new resolution gives exactly the previous stage's output (G: its image nearest-upsampled; D:
    its logit of the average-pooled image), alpha = 1 the new path alone, and alpha = 0.5 halfway (G)."""
    torch.manual_seed(0)
    g, d = tiny_generator(), StyleGANDiscriminator(img_resolution=32, fmap_base=64, fmap_max=16, mbstd_group_size=2)
    ws, image = g.mapping(torch.randn(4, 16), update_w_avg=False), torch.randn(4, 3, resolution, resolution)
    for net in (g, d):
        net.set_growth(resolution // 2)
    previous_image, previous_logit = g.synthesis(ws, "none"), d(F.avg_pool2d(image, 2))
    assert previous_image.shape == (4, 3, resolution // 2, resolution // 2)
    upsampled = F.interpolate(previous_image, scale_factor=2, mode="nearest")
    outputs = {}
    for alpha in (0.0, 0.5, 1.0):
        for net in (g, d):
            net.set_growth(resolution, alpha)
        outputs[alpha] = g.synthesis(ws, "none")
        assert outputs[alpha].shape == (4, 3, resolution, resolution) and d(image).shape == (4,)
        if alpha == 0.0:
            torch.testing.assert_close(outputs[alpha], upsampled)
            torch.testing.assert_close(d(image), previous_logit)
    torch.testing.assert_close(outputs[0.5], 0.5 * (outputs[1.0] + upsampled))
    assert not torch.allclose(outputs[1.0], upsampled)
    assert g.synthesis.num_active_ws == 2 * (resolution.bit_length() - 2)


def test_every_parameter_of_the_full_networks_gets_a_gradient_except_the_lower_rgb_layers() -> None:
    torch.manual_seed(0)
    g = tiny_generator(img_resolution=16)
    d = StyleGANDiscriminator(img_resolution=16, fmap_base=64, fmap_max=16, mbstd_group_size=2)
    d(g(torch.randn(4, 16))).sum().backward()
    for name, p in g.named_parameters():
        lower_rgb = ".torgb." in name and not name.startswith("synthesis.b16.")
        assert (p.grad is None) == lower_rgb, name
    for name, p in d.named_parameters():
        lower_rgb = name.startswith("from_rgb") and not name.startswith("from_rgb.16.")
        assert (p.grad is None) == lower_rgb, name


def test_conditional_model_embeds_labels_in_the_mapping_and_d_keeps_the_labels_score() -> None:
    torch.manual_seed(0)
    model = tiny_model(num_classes=3)
    model.eval()
    z = torch.randn(3, 16)
    a = model.sample(3, labels=torch.tensor([0, 0, 0]), z=z, noise_mode="none")
    b = model.sample(3, labels=torch.tensor([1, 1, 1]), z=z, noise_mode="none")
    assert not torch.allclose(a, b)
    d, labels = model.discriminator, torch.tensor([2, 0, 1, 2])
    images = torch.randn(4, 3, 16, 16)
    scores = d.scores(images)
    assert scores.shape == (4, 3)
    torch.testing.assert_close(d(images, labels), scores[torch.arange(4), labels])
    with pytest.raises(ConfigError, match="conditional"):
        d(images)


def test_module_has_the_papers_recipe_and_refuses_bad_settings() -> None:
    defaults = {k: v.default for k, v in inspect.signature(StyleGAN.__init__).parameters.items() if k not in ("self", "kwargs")}
    assert defaults == {
        "img_resolution": 1024, "img_channels": 3, "z_dim": 512, "w_dim": 512, "num_classes": 0, "mapping_layers": 8,
        "mapping_lr_multiplier": 0.01, "w_avg_beta": 0.995, "fmap_base": 8192, "fmap_max": 512, "mbstd_group_size": 4,
        "style_mixing_prob": 0.9, "truncation_psi": 1.0, "truncation_cutoff": 8, "loss": "non_saturating", "r1_gamma": 10.0,
        "lr_g": 0.001, "lr_d": 0.001, "betas": (0.0, 0.99),
    }
    model = tiny_model()
    assert (model.hparams.optimizer, model.hparams.n_critic, model.data_shape) == ("adam", 1, (3, 16, 16))
    assert model.generator.mapping.fc0.bias_gain == 0.01
    with pytest.raises(ConfigError, match="StyleGAN needs img_resolution"):
        tiny_model(img_resolution=24)
    with pytest.raises(ConfigError, match="mapping_layers"):
        tiny_model(mapping_layers=0)
    with pytest.raises(ConfigError, match=r"ws of shape \[N, 6, 16\]"):
        model.generator.synthesis(torch.randn(2, 5, 16))
    with pytest.raises(ConfigError, match="no 32x32 stage"):
        model.set_growth(32)


# Training.


def faces(n: int = 16) -> torch.Tensor:
    """Smooth, structured 16x16 images in [-1, 1] (a bright disc on a dark background, jittered): easy to tell
    from the untrained generator's output."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    centres = (torch.rand(n, 2, 1, 1, generator=g) - 0.5) * 0.4
    disc = ((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2 < 0.4).float()
    return (disc * 1.6 - 0.8).unsqueeze(1).repeat(1, 3, 1, 1)


def d_loss_on(model: StyleGAN, real: torch.Tensor, z: torch.Tensor) -> tuple[float, float, float]:
    """The logistic D loss on a fixed batch (at the model's stage), and D's mean real and fake logits."""
    with torch.no_grad():
        real, fake = model.real_at_stage(real), model.generator(z, noise_mode="const")
        d_real, d_fake = model.discriminator(real), model.discriminator(fake)
    return float(F.softplus(-d_real).mean() + F.softplus(d_fake).mean()), float(d_real.mean()), float(d_fake.mean())


def test_a_few_steps_move_d_and_g_the_right_way(tmp_path: Path) -> None:
    """At 8x8 mid fade-in, with EMA: D steps alone (G's lr 0) lower D's logistic loss on a fixed batch and score the
    reals above the fakes; then G steps alone (D's lr 0) raise D's score of G's samples. Losses, R1 finite; the EMA
    generator follows the stage."""
    real, z = faces(), torch.randn(16, 16, generator=torch.Generator().manual_seed(1))
    loader = DataLoader(TensorDataset(real, torch.zeros(16)), batch_size=8, shuffle=True)

    L.seed_everything(0)
    model = tiny_model(lr_g=0.0, lr_d=0.003)
    model.set_growth(8, alpha=0.5)
    loss_before, _, _ = d_loss_on(model, real, z)
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=10, callbacks=[EMA(half_life_kimg=0.01)])
    trainer.fit(model, loader)
    assert all(torch.isfinite(trainer.callback_metrics[k]) for k in ("train/d_loss", "train/g_loss", "train/r1"))
    loss_after, d_real, d_fake = d_loss_on(model, real, z)
    assert loss_after < loss_before - 0.1 and d_real > d_fake, (loss_before, loss_after)
    assert (model.generator_ema.current_resolution, model.generator_ema.alpha) == (8, 0.5)

    trained_d = model.discriminator.state_dict()
    model = tiny_model(lr_g=0.003, lr_d=0.0)
    model.discriminator.load_state_dict(trained_d)
    model.set_growth(8, alpha=0.5)
    _, _, fake_before = d_loss_on(model, real, z)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=10).fit(model, loader)
    _, _, fake_after = d_loss_on(model, real, z)
    assert fake_after > fake_before, (fake_before, fake_after)
    assert all(torch.equal(v, trained_d[k]) for k, v in model.discriminator.state_dict().items()), "D moved with lr 0"


def test_progressive_growing_drives_stylegan_across_stages(tmp_path: Path) -> None:
    """ProGAN's growing callback, unchanged: 4 px stable, 8 px fading in (batch 8) and stable, then 16 px fading in;
    every batch reaches D at the stage's size; the stage (G, D, EMA) comes back from the checkpoint and samples come
    at full size."""
    L.seed_everything(0)
    model = tiny_model(max_kimg=0.032)
    seen = []
    model.discriminator.register_forward_pre_hook(lambda module, args: seen.append((args[0].shape[0], args[0].shape[-1])))
    callbacks = [ProgressiveGrowing(stable_kimg=0.008, fade_kimg=0.008, batch_size={8: 8}), EMA(half_life_kimg=0.01),
                 ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)]
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=-1, enable_checkpointing=True, callbacks=callbacks)
    trainer.fit(model, datamodule=StagedImages())
    assert model.images_seen == 32
    assert [n for n, side in seen if side == 4] and {(n, side) for n, side in seen if side == 8} == {(8, 8)}
    assert (model.current_resolution, model.alpha) == (16, 0.5)
    assert (model.generator_ema.current_resolution, model.generator_ema.alpha) == (16, 0.5)
    restored = StyleGAN.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert (restored.current_resolution, restored.alpha, restored.discriminator.alpha) == (16, 0.5, 0.5)
    restored.set_growth(8)
    assert restored.sample(2).shape == (2, 3, 16, 16)
