"""callbacks.PPL and its metric functions: zero for a generator that ignores w, a hand computation for one that
is linear in w, the official percentile filter, noise shared within a pair, and logging in a tiny fit."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.loggers import CSVLogger
from style_stub import StubStyleGAN
from torch import Tensor, nn

from callbacks.fid import rank_block
from callbacks.ppl import (
    PPL,
    filtered_mean,
    global_batches,
    path_latents,
    perceptual_path_length,
)
from datamodules import MNISTDataModule
from gans import DCGAN
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.metrics.perceptual import pixel_distance
from gans.nn.style import MappingNetwork

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread (tests/conftest.py)

UNCONDITIONAL = LabelSpace.from_num_classes(0)


class LinearSynthesis(nn.Module):
    """image = A ws (flattened), plus ``noise_const`` times ``noise_strength`` in "const" mode."""

    def __init__(self, num_ws: int, w_dim: int, side: int = 4, noise_strength: float = 0.0, w_gain: float = 1.0) -> None:
        super().__init__()
        self.side = side
        self.A = nn.Parameter(torch.randn(num_ws * w_dim, side * side, generator=torch.Generator().manual_seed(1)) * w_gain)
        self.register_buffer("noise_const", torch.randn(side, side))
        self.noise_strength = noise_strength
        self.ws_resolutions = [side] * num_ws

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        image = (ws.flatten(1) @ self.A).reshape(-1, 1, self.side, self.side)
        if noise_mode == "random":
            image = image + torch.randn_like(image) * self.noise_strength
        elif noise_mode == "const":
            image = image + self.noise_const * self.noise_strength
        return image


class LinearGenerator(nn.Module):
    def __init__(self, w_gain: float = 1.0, noise_strength: float = 0.0) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.img_resolution, self.img_channels = 4, 3, 2, 4, 1
        self.label_space = UNCONDITIONAL
        self.mapping = MappingNetwork(4, 0, 3, 2, num_layers=2, lr_multiplier=1.0)
        self.synthesis = LinearSynthesis(2, 3, noise_strength=noise_strength, w_gain=w_gain)

    def class_vector(self, labels: Tensor | None) -> None:
        return None


def test_filter_keeps_the_official_percentiles() -> None:
    d = torch.from_numpy(np.random.default_rng(0).exponential(size=1000))
    lo, hi = np.percentile(d.numpy(), 1, method="lower"), np.percentile(d.numpy(), 99, method="higher")
    expected = d.numpy()[(d.numpy() >= lo) & (d.numpy() <= hi)].mean()
    assert filtered_mean(d) == pytest.approx(expected, rel=1e-12)
    assert filtered_mean(torch.zeros(7)) == 0.0


def test_paths_depend_only_on_their_index() -> None:
    z0, z1, t = path_latents(torch.arange(6), 4, "full")
    z0b, z1b, tb = path_latents(torch.tensor([4, 5]), 4, "full")
    assert torch.equal(z0[4:], z0b) and torch.equal(z1[4:], z1b) and torch.equal(t[4:], tb)
    assert (t > 0).all() and (t < 1).all() and not torch.equal(z0, z1)
    assert torch.equal(path_latents(torch.arange(6), 4, "end")[2], torch.zeros(6))


def test_ppl_of_a_generator_that_ignores_w_is_zero() -> None:
    g = LinearGenerator(w_gain=0.0).eval()
    d = perceptual_path_length(g, UNCONDITIONAL, torch.arange(20), pixel_distance, batch_size=8)
    assert d.shape == (20,) and filtered_mean(d) == 0.0


@pytest.mark.parametrize("sampling", ["end", "full"])
def test_ppl_of_a_generator_linear_in_w_matches_the_hand_computation(sampling: str) -> None:
    g = LinearGenerator().eval()
    n, eps = 50, 1e-2  # the image is linear in w, so any epsilon gives the exact derivative
    with torch.no_grad():
        z0, z1, _ = path_latents(torch.arange(n), 4, sampling)
        w0, w1 = g.mapping(z0, None), g.mapping(z1, None)
        images_delta = (w1 - w0).flatten(1) @ g.synthesis.A  # d image / dt along the path
        expected = images_delta.square().mean(dim=1)  # pixel distance of a step eps, divided by eps^2
    d = perceptual_path_length(g, UNCONDITIONAL, torch.arange(n), pixel_distance, epsilon=eps, sampling=sampling, batch_size=16)
    assert torch.allclose(d, expected, rtol=1e-3)
    assert filtered_mean(d) == pytest.approx(filtered_mean(expected), rel=1e-3)


def test_both_ends_of_a_path_share_the_noise_and_the_callers_buffers_stay() -> None:
    g = LinearGenerator(w_gain=0.0, noise_strength=1.0).eval()
    buffer = g.synthesis.noise_const.clone()
    const = perceptual_path_length(g, UNCONDITIONAL, torch.arange(8), pixel_distance, batch_size=4, noise_mode="const")
    assert filtered_mean(const) == 0.0  # only noise changes the image, and it is the same for both images of a pair
    assert torch.equal(g.synthesis.noise_const, buffer)
    torch.manual_seed(0)
    fresh = perceptual_path_length(g, UNCONDITIONAL, torch.arange(8), pixel_distance, batch_size=4, noise_mode="random")
    assert filtered_mean(fresh) > 1e3  # independent noise per image would dominate


def test_z_space_and_lpips_shaped_distances_work() -> None:
    g = LinearGenerator().eval()
    lpips_like = lambda a, b: pixel_distance(a, b).reshape(-1, 1, 1, 1)
    d = perceptual_path_length(g, UNCONDITIONAL, torch.arange(10), lpips_like, space="z", sampling="full", batch_size=4)
    assert d.shape == (10,) and torch.isfinite(d).all() and (d > 0).all()
    with pytest.raises(ConfigError, match="one value per image"):
        perceptual_path_length(g, UNCONDITIONAL, torch.arange(4), lambda a, b: pixel_distance(a, b).mean(), batch_size=4)


class MeanSquare(nn.Module):
    """A pixel distance as a module, as a user would plug in an LPIPS network."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return pixel_distance(a, b)


def small_fit(root: Path, mnist_root: Path, callbacks: list, max_steps: int = 8, **trainer_args) -> tuple[StubStyleGAN, L.Trainer]:
    L.seed_everything(0)
    model = StubStyleGAN()
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    trainer = quiet_trainer(root, max_steps=max_steps, callbacks=callbacks, **trainer_args)
    trainer.fit(model, datamodule=data)
    return model, trainer


def test_callback_logs_ppl_with_kimg_and_leaves_training_alone(tmp_path: Path, mnist_root: Path) -> None:
    ppl = PPL(every_kimg=0.032, num_samples=12, batch_size=8, distance=MeanSquare())
    model, trainer = small_fit(tmp_path / "a", mnist_root, [ppl], logger=CSVLogger(tmp_path, name="csv"))
    rows = [r for r in csv.DictReader(open(Path(trainer.logger.log_dir) / "metrics.csv")) if r.get("metrics/ppl")]
    assert [float(r["train/kimg"]) for r in rows] == [0.032, 0.064]
    assert [h["train/kimg"] for h in ppl.history] == [0.032, 0.064]
    model.eval()
    expected = perceptual_path_length(model.sampling_generator, model.label_space, torch.arange(12), pixel_distance, batch_size=8)
    assert ppl.history[-1]["metrics/ppl"] == pytest.approx(filtered_mean(expected), rel=1e-5)
    assert float(trainer.callback_metrics["metrics/ppl"]) == pytest.approx(ppl.history[-1]["metrics/ppl"])
    assert ppl.history[-1]["metrics/ppl"] > 0

    without, _ = small_fit(tmp_path / "b", mnist_root, [])
    for name, value in model.state_dict().items():
        assert torch.equal(value, without.state_dict()[name]), name


def test_callback_refuses_models_without_a_style_generator_and_bad_settings() -> None:
    model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
    with pytest.raises(ConfigError, match="style-based generator"):
        PPL(distance=MeanSquare()).setup(None, model, "fit")
    with pytest.raises(ConfigError, match="space w\\|z"):
        PPL(space="x")
    with pytest.raises(ConfigError, match="epsilon"):
        PPL(epsilon=0.0)


def test_global_batches_cut_a_rank_block_at_the_global_batch_boundaries() -> None:
    pieces = global_batches(torch.arange(6, 13), 4)  # rank 1 of 2 for 13 paths
    assert [p.tolist() for p in pieces] == [[6, 7], [8, 9, 10, 11], [12]]


def test_rank_blocks_measure_exactly_what_one_process_does() -> None:
    torch.manual_seed(0)
    g = StubStyleGAN().sampling_generator.eval()  # noise in every layer, randomised per global batch
    everything = perceptual_path_length(g, UNCONDITIONAL, torch.arange(13), pixel_distance, batch_size=4)
    blocks = [perceptual_path_length(g, UNCONDITIONAL, rank_block(13, rank, 2), pixel_distance, batch_size=4) for rank in (0, 1)]
    # What the callback gathers from 2 ranks, in rank order: the same latents and noise per path, so the same distances
    # up to float round-off, which the 1 / epsilon^2 of eq. 2 magnifies (other batch compositions run other kernels;
    # never bitwise across machines).
    scale = everything.abs().max()
    torch.testing.assert_close(torch.cat(blocks), everything, rtol=1e-3, atol=1e-3 * scale)
    other_noise = perceptual_path_length(g, UNCONDITIONAL, torch.arange(13), pixel_distance, batch_size=5)
    assert (other_noise - everything).abs().max() > 0.05 * scale  # the check above can fail: noise draws do move the distances


def test_ppl_runs_on_a_tiny_stylegan2() -> None:
    stylegan2 = pytest.importorskip("gans.models.style.stylegan2")
    torch.manual_seed(0)
    g = stylegan2.StyleGAN2Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, mapping_layers=2, channel_base=64, channel_max=8).eval()
    with torch.no_grad():
        for module in g.synthesis.modules():
            if hasattr(module, "use_noise"):
                module.noise_strength.fill_(0.5)
    buffers = {name: b.clone() for name, b in g.named_buffers()}
    d = perceptual_path_length(g, g.label_space, torch.arange(6), pixel_distance, batch_size=3, space="w", sampling="end")
    assert d.shape == (6,) and torch.isfinite(d).all() and (d > 0).all()
    assert all(torch.equal(b, buffers[name]) for name, b in g.named_buffers())
