"""StyleGAN3: equality with NVIDIA's official generators (../shared/fixtures/stylegan3-reference), the official
parameter counts, the Kaiser filters and the separable resampling they run on, and a short training of the module
with its D-input blur."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from helpers import count_parameters, quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from gans.errors import ConfigError
from gans.models.style.stylegan3 import (
    StyleGAN3,
    StyleGAN3Generator,
    gaussian_blur,
    official_kwargs,
)
from gans.nn.alias_free import kaiser_lowpass, kaiser_lowpass_radial
from gans.nn.resample import upfirdn2d

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan3-reference"
NETWORKS = ["t", "r", "t_cond10"]


def load_fixture(name: str) -> dict:
    path = FIXTURES / f"stylegan3_{name}_32px.pt"
    if not path.exists():
        pytest.skip(f"{path} not found: the StyleGAN3 reference outputs live in ../shared/fixtures beside the repository")
    return torch.load(path, weights_only=True)


def assert_matches(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    scale = reference.abs().max().item()
    error = (ours - reference).abs().max().item()
    assert error <= 1e-4 * scale, f"{what}: max |ours - official| = {error:.3g} on a scale of {scale:.3g}"


def official_generator(fixture: dict) -> StyleGAN3Generator:
    return StyleGAN3Generator.from_official(fixture["G"], **official_kwargs(fixture["config"]))


def labels_of(c: torch.Tensor) -> torch.Tensor | None:
    return c.argmax(1) if c.shape[1] else None


# Fidelity to the official networks.


@pytest.mark.parametrize("name", NETWORKS)
def test_mapping_and_images_equal_the_official_generator(name: str) -> None:
    fixture = load_fixture(name)
    config, inputs, outputs = fixture["config"], fixture["inputs"], fixture["outputs"]
    G = official_generator(fixture).eval()
    assert (G.num_ws, G.z_dim, G.w_dim, G.c_dim, G.img_resolution) == (config["num_ws"], 128, 128, config["G_kwargs"]["c_dim"], 32)
    assert count_parameters(G) == config["num_params"] and count_parameters(G.mapping) == config["num_params_mapping"]
    assert G.synthesis.layer_names == config["layer_names"]
    for layer, official in zip(G.synthesis.layers(), config["layers"][1:]):
        assert list(layer.padding) == official["padding"] and (layer.up_factor, layer.down_factor) == (official["up_factor"], official["down_factor"])
    z, c = inputs["z"], inputs["c"]
    if c.shape[1]:
        torch.testing.assert_close(G.class_vector(labels_of(c)), c.float())
    features: dict[str, torch.Tensor] = {}
    hooks = [getattr(G.synthesis, key).register_forward_hook(lambda m, a, out, key=key: features.update({key: out[:1].clone()}))
             for key in fixture.get("features", {})]
    with torch.no_grad():
        ws = G.mapping(z, c)
        assert_matches(ws, outputs["ws"], "mapping")
        assert_matches(G.mapping(z, c, truncation_psi=0.7), outputs["ws_trunc0.7"], "truncated mapping")
        assert_matches(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=8), outputs["ws_trunc0.7_cutoff8"], "truncation cutoff")
        perlayer = torch.stack([G.mapping(inputs["z_perlayer"][:, i], c)[:, i] for i in range(G.num_ws)], dim=1)
        assert_matches(perlayer, outputs["ws_perlayer"], "a w per layer")
        # One synthesis call for the plain, truncated and per-layer images (the features hooks see sample 0 of the plain).
        images = G.synthesis(torch.cat([outputs["ws"], outputs["ws_trunc0.7"], outputs["ws_perlayer"]])).split(len(z))
        for hook in hooks:
            hook.remove()
        for image, key in zip(images, ["img", "img_trunc0.7", "img_perlayer"]):
            assert_matches(image, outputs[key], key)
        for key, reference in fixture.get("features", {}).items():
            assert_matches(features[key], reference, f"features of {key}")
        assert_matches(G(z, labels_of(c)), outputs["img"], "G(z) = synthesis(mapping(z))")
        for move in ("translate", "rotate_translate"):
            G.synthesis.input.transform.copy_(inputs[f"input_transform_{move}"])
            if move == "rotate_translate" and fixture.get("features_rotate_translate"):  # T and R
                assert_matches(G.synthesis.input(ws[:1, 0]), fixture["features_rotate_translate"]["input"], "input layer, rotated")
            assert_matches(G.synthesis(ws), outputs[f"img_{move}"], f"img_{move}")


@pytest.mark.parametrize("name", NETWORKS)
def test_the_training_pass_updates_w_avg_and_the_magnitude_emas_as_the_official(name: str) -> None:
    fixture = load_fixture(name)
    expected = fixture["ema_update"]
    G = official_generator(fixture).train()
    observed: dict[str, torch.Tensor] = {}
    for key in G.synthesis.layer_names:
        getattr(G.synthesis, key).register_forward_pre_hook(lambda m, args, key=key: observed.update({key: args[0].detach().square().mean()}))
    G.mapping.register_forward_hook(lambda m, args, out: observed.update({"w_mean": out[:, 0].detach().mean(dim=0)}))
    with torch.no_grad():
        image = G(fixture["inputs"]["z_update"], labels_of(fixture["inputs"]["c_update"]), update_emas=True)
    assert_matches(observed["w_mean"], expected["w_mean"], "w_mean")
    assert_matches(G.mapping.w_avg, expected["w_avg"], "w_avg")
    for key in G.synthesis.layer_names:
        assert_matches(observed[key], expected["magnitude_cur"][key], f"magnitude_cur of {key}")
        assert_matches(getattr(G.synthesis, key).magnitude_ema, expected["magnitude_ema"][key], f"magnitude_ema of {key}")
    assert_matches(image, expected["img"], "image with the updated magnitude EMAs")
    frozen = {key: getattr(G.synthesis, key).magnitude_ema.clone() for key in G.synthesis.layer_names}
    with torch.no_grad():
        G(fixture["inputs"]["z_update"], labels_of(fixture["inputs"]["c_update"]))  # training mode, no update_emas
    assert all(torch.equal(getattr(G.synthesis, key).magnitude_ema, frozen[key]) for key in frozen)


def test_an_official_state_dict_of_another_network_is_refused_with_the_mismatch() -> None:
    fixture = load_fixture("t")
    kwargs = official_kwargs(fixture["config"])
    with pytest.raises(ConfigError, match=r"L0_36_64.weight has shape|missing synthesis.L0"):
        StyleGAN3Generator.from_official(fixture["G"], **{**kwargs, "conv_kernel": 1})
    with pytest.raises(ConfigError, match="missing mapping.embed.weight"):
        StyleGAN3Generator.from_official(fixture["G"], **{**kwargs, "num_classes": 10})
    with pytest.raises(ConfigError, match="filter differs from the filter this StyleGAN3Generator designs"):
        StyleGAN3Generator.from_official(fixture["G"], **{**kwargs, "first_stopband": 2**2.3})
    with pytest.raises(ConfigError, match="'fancy' has no StyleGAN3Generator counterpart"):
        official_kwargs({**fixture["config"]["G_kwargs"], "fancy": 1})


# Parameter counts of the official configurations (the fixture README's constructions).


@pytest.mark.parametrize(
    "config, resolution, channel_base, total",
    [
        ("t", 1024, None, 22_313_167),
        ("r", 1024, None, 15_093_151),
        ("t", 256, None, 28_472_133),
        ("r", 256, None, 18_816_387),
        ("t", 256, 16384, 23_320_443),  # the paper's FFHQ-U 256 ablation (--cbase=16384)
    ],
)
def test_parameter_counts_equal_the_official_networks(config: str, resolution: int, channel_base: int | None, total: int) -> None:
    with torch.device("meta"):
        G = StyleGAN3Generator(img_resolution=resolution, config=config, channel_base=channel_base)
    assert (count_parameters(G), count_parameters(G.mapping)) == (total, 525_312)
    assert G.num_ws == 16


# Filters and resampling.


@pytest.mark.parametrize("numtaps, cutoff, width, fs", [(12, 2.0, 12.0, 32.0), (24, 4.0, 8.0, 64.0), (12, 16.0, 7.4, 64.0)])
def test_kaiser_filters_equal_scipy_design(numtaps: int, cutoff: float, width: float, fs: float) -> None:
    signal = pytest.importorskip("scipy.signal")
    special = pytest.importorskip("scipy.special")
    import numpy as np

    reference = signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    torch.testing.assert_close(kaiser_lowpass(numtaps, cutoff, width, fs).double(), torch.from_numpy(reference), rtol=0, atol=1e-7)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    radial = special.j1(2 * cutoff * np.pi * r) / (np.pi * r)
    window = np.kaiser(numtaps, signal.kaiser_beta(signal.kaiser_atten(numtaps, width / (fs / 2))))
    radial = radial * np.outer(window, window)
    torch.testing.assert_close(kaiser_lowpass_radial(numtaps, cutoff, width, fs).double(), torch.from_numpy(radial / radial.sum()), rtol=0, atol=1e-7)


@pytest.mark.parametrize("up, down, padding", [(1, 1, [3, 3, 3, 3]), (2, 1, [5, -2, 4, 1]), (4, 1, [-2, -5, 9, 3]), (1, 2, [0, 0, 0, 0]), (2, 2, [4, 3, -1, 2])])
def test_a_1d_kernel_is_the_separable_2d_filter(up: int, down: int, padding: list[int]) -> None:
    generator = torch.Generator().manual_seed(0)
    x, taps = torch.randn(2, 3, 9, 11, generator=generator), torch.rand(7, generator=generator)  # an asymmetric kernel: the flip counts
    torch.testing.assert_close(upfirdn2d(x, taps, up, down, padding, gain=up**2), upfirdn2d(x, torch.outer(taps, taps), up, down, padding, gain=up**2),
                               rtol=1e-5, atol=1e-5)


def test_the_d_input_blur_is_the_official_normalised_kernel() -> None:
    impulse = torch.zeros(1, 1, 41, 41)
    impulse[0, 0, 20, 20] = 1
    sigma = 3.0
    blurred = gaussian_blur(impulse, sigma)
    x = torch.arange(-9, 10, dtype=torch.float32)
    profile = torch.exp2(-(x / sigma).square())
    torch.testing.assert_close(blurred[0, 0, 11:30, 11:30], torch.outer(profile, profile) / profile.sum() ** 2)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert gaussian_blur(impulse, 0.3) is impulse  # floor(3 sigma) = 0: no blur


# The LightningModule.


def tiny(**overrides) -> StyleGAN3:
    settings = {"img_resolution": 8, "z_dim": 16, "w_dim": 16, "channel_base": 64, "channel_max": 16, "d_channel_base": 64,
                "d_channel_max": 16, "augment": "none", "r1_gamma": 1.0, "r1_interval": 2, "magnitude_ema_beta": 0.9}
    settings.update(overrides)
    return StyleGAN3(**settings)


def test_the_blur_sigma_fades_from_10_px_to_0_for_config_r_and_is_off_for_t() -> None:
    model = tiny(config="r", blur_fade_kimg=2.0)
    assert model.blur_sigma() == 10.0
    model.images_seen = 1000
    assert model.blur_sigma() == pytest.approx(5.0)
    model.images_seen = 2500
    assert model.blur_sigma() == 0.0
    assert tiny(config="t").blur_sigma() == 0.0
    assert tiny(config="t", blur_init_sigma=4.0).blur_sigma() == 4.0
    real = torch.randn(2, 3, 8, 8)
    model.images_seen = 0
    seen = model.augment_for_d(real)
    assert seen.unaugmented is real and not torch.allclose(seen, real)  # R1 differentiates with respect to the unblurred reals
    with pytest.raises(ConfigError, match="config"):
        tiny(config="x")


def test_a_short_training_moves_d_and_g_and_the_training_emas(tmp_path) -> None:
    torch.manual_seed(0)
    model = tiny(config="r", lr_g=0.01, lr_d=0.01)
    G, D = model.generator, model.discriminator
    before_g, before_d = copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())
    real = torch.rand(8, 3, 8, 8) * 2 - 1
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=1)
    trainer.fit(model, DataLoader(TensorDataset(real, torch.zeros(len(real))), batch_size=4))
    assert model.batches == 2
    for name in ("train/d_loss", "train/g_loss", "train/r1"):
        assert math.isfinite(float(trainer.callback_metrics[name])), name
    after_g, after_d = G.state_dict(), D.state_dict()
    first = f"synthesis.{G.synthesis.layer_names[0]}.weight"
    assert not torch.equal(after_g[first], before_g[first])
    assert not torch.equal(after_g["mapping.fc0.weight"], before_g["mapping.fc0.weight"])
    assert not torch.equal(after_d["b8.conv0.weight"], before_d["b8.conv0.weight"])
    assert not torch.equal(after_g["mapping.w_avg"], before_g["mapping.w_avg"])
    assert all(not torch.equal(after_g[k], before_g[k]) for k in after_g if k.endswith("magnitude_ema"))
    with torch.no_grad():
        assert torch.isfinite(model.sample(2)).all()
    trainer.save_checkpoint(tmp_path / "sg3.ckpt")  # the hparams hold GANModule's style_mixing_prob=0: it must load
    loaded = StyleGAN3.load_from_checkpoint(tmp_path / "sg3.ckpt", weights_only=True).eval()
    z = torch.randn(2, 16)
    torch.testing.assert_close(loaded.generator(z), model.eval().generator(z))
