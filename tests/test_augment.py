"""Augmenting what D sees: ADA's pipeline and adaptive p (Karras et al. 2020, arXiv:2006.06676) and DiffAugment
(Zhao et al. 2020, arXiv:2006.10738), in gans.nn.augment and GANModule(augment=...)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import quiet_trainer, run_ranks
from lightning.pytorch.callbacks import ModelCheckpoint

from gans import DCGAN, GAN, StyleGAN2
from gans.errors import ConfigError
from gans.nn.augment import COLOUR, GEOMETRIC, AugmentPipe, diff_augment, recolour, warp


def pattern(n: int = 1, size: int = 8, channels: int = 3) -> torch.Tensor:
    """Images with no symmetry: every pixel of every channel different."""
    return torch.arange(n * channels * size * size, dtype=torch.float32).reshape(n, channels, size, size) / (n * channels * size * size)


def matches_one_of(image: torch.Tensor, candidates: list[torch.Tensor]) -> int | None:
    for i, candidate in enumerate(candidates):
        if torch.allclose(image, candidate, atol=1e-5):
            return i
    return None


# The pipeline.


@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_is_exactly_the_identity(channels: int) -> None:
    x = torch.randn(16, channels, 8, 8)
    assert torch.equal(AugmentPipe(0.0)(x), x)
    model = DCGAN(img_resolution=16, img_channels=channels, z_dim=4, ngf=4, ndf=4, augment="ada")
    assert torch.equal(model.augment_for_d(x), x)
    assert DCGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4).augment_for_d(x) is x  # augment: none


def _translations(x: torch.Tensor, shift: int) -> list[torch.Tensor]:
    padded = F.pad(x[None], [shift] * 4, mode="reflect")[0]
    size = x.shape[-1]
    return [padded[:, shift + dy: shift + dy + size, shift + dx: shift + dx + size] for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]


@pytest.mark.parametrize("name", ["xflip", "rotate90", "xint"])
def test_pixel_blitting_gives_the_expected_images(name: str) -> None:
    """At p = 1 every output is one of the transform's exact images of the pattern (reflection padding for integer
    translation by up to round(0.125 * 8) = 1 pixel), and every one of them occurs."""
    torch.manual_seed(0)
    x = pattern()[0]
    candidates = {
        "xflip": [x, x.flip(-1)],
        "rotate90": [torch.rot90(x, k, dims=(1, 2)) for k in range(4)],
        "xint": _translations(x, 1),
    }[name]
    out = AugmentPipe(1.0, (name,))(x.expand(200, -1, -1, -1))
    found = [matches_one_of(image, candidates) for image in out]
    assert None not in found
    assert set(found) == set(range(len(candidates)))


@pytest.mark.parametrize("name", ["scale", "rotate", "aniso", "xfrac"])
def test_general_geometric_transforms_pad_by_reflection(name: str) -> None:
    """A constant image stays constant (no border leaks in: reflection), a pattern changes, and at p = 1 the transform
    acts on every sample."""
    torch.manual_seed(0)
    pipe = AugmentPipe(1.0, (name,))
    constant = torch.full((32, 3, 8, 8), 0.3)
    torch.testing.assert_close(pipe(constant), constant)
    x = pattern().expand(32, -1, -1, -1)
    changed = (pipe(x) - x).abs().flatten(1).amax(1) > 1e-4
    assert changed.float().mean() > 0.9


def test_geometric_matrix_scales_as_configured() -> None:
    """Isotropic scaling alone: the inverse matrix is diag(1/s, 1/s, 1) with log2 s ~ N(0, 0.2^2)."""
    torch.manual_seed(0)
    g, applied = AugmentPipe(1.0, ("scale",)).geometric_matrix(4000, 8, 8, torch.zeros(1))
    assert applied.all()
    torch.testing.assert_close(g[:, 0, 0], g[:, 1, 1])
    log_s = -torch.log2(g[:, 0, 0])
    assert abs(log_s.mean()) < 0.02 and abs(log_s.std() - 0.2) < 0.01


def test_each_transform_fires_with_probability_p() -> None:
    """x-flip at p = 0.4 flips 0.4 * 1/2 of the samples; rotation (pre or post, each 1 - sqrt(1 - p)) rotates p."""
    torch.manual_seed(0)
    n = 4000
    _, flipped = AugmentPipe(0.4, ("xflip",)).geometric_matrix(n, 8, 8, torch.zeros(1))
    g, _ = AugmentPipe(0.4, ("xflip",)).geometric_matrix(n, 8, 8, torch.zeros(1))
    assert abs((g[:, 0, 0] < 0).float().mean() - 0.2) < 0.03
    assert abs(flipped.float().mean() - 0.4) < 0.03
    _, rotated = AugmentPipe(0.4, ("rotate",)).geometric_matrix(n, 8, 8, torch.zeros(1))
    assert abs(rotated.float().mean() - 0.4) < 0.03


def test_xflip_keeps_a_symmetric_set_as_it_is() -> None:
    """The paper's non-leaking requirement, on the simplest case: a set closed under x-flip, augmented, is the same
    distribution (each image as often as its mirror)."""
    torch.manual_seed(0)
    x = pattern()[0]
    data = torch.stack([x, x.flip(-1)]).repeat(1000, 1, 1, 1)
    out = AugmentPipe(1.0, ("xflip",))(data)
    share = torch.tensor([matches_one_of(image, [x, x.flip(-1)]) for image in out]).float().mean()
    assert abs(share - 0.5) < 0.03


def test_colour_transforms_preserve_what_they_should() -> None:
    torch.manual_seed(0)
    rgb = torch.rand(500, 3, 4, 4) * 2 - 1
    luma = rgb.mean(dim=1)
    for name in ("hue", "saturation"):  # both turn about / scale off the luma axis: each pixel's luma stays
        out = AugmentPipe(1.0, (name,))(rgb)
        torch.testing.assert_close(out.mean(dim=1), luma, atol=1e-5, rtol=0)
        assert (out - rgb).abs().amax() > 0.1
    grey = (torch.rand(400, 1, 4, 4) * 2 - 1).expand(-1, 3, -1, -1)
    flipped = AugmentPipe(1.0, ("lumaflip",))(grey)  # a Householder reflection about luma: grey x -> -x, half the time
    negated = [torch.allclose(o, -g, atol=1e-6) for o, g in zip(flipped, grey)]
    assert all(n or torch.allclose(o, g, atol=1e-6) for n, o, g in zip(negated, flipped, grey))
    assert abs(sum(negated) / len(negated) - 0.5) < 0.08
    zeros = torch.zeros(4000, 3, 2, 2)
    offsets = AugmentPipe(1.0, ("brightness",))(zeros)[:, 0, 0, 0]  # + N(0, 0.2^2), the same on every channel
    assert abs(offsets.mean()) < 0.015 and abs(offsets.std() - 0.2) < 0.01
    torch.testing.assert_close(AugmentPipe(1.0, ("contrast",))(zeros), zeros)  # contrast scales about 0
    scale = AugmentPipe(1.0, ("contrast",))(torch.ones(4000, 3, 1, 1))[:, 0, 0, 0]
    assert abs(torch.log2(scale).std() - 0.5) < 0.03 and abs(torch.log2(scale).mean()) < 0.03


@pytest.mark.parametrize("name", [*GEOMETRIC, "all"])
def test_every_geometric_transform_is_invertible(name: str) -> None:
    """The paper's pipeline uses invertible transforms only (arXiv:2006.06676, section 2.2): warping by each drawn
    matrix and then by its inverse gives the image back wherever both warps read inside it. On a linear image, which
    bilinear resampling reproduces exactly, that holds to round-off; the border (reflected) is left out."""
    torch.manual_seed(0)
    size, n = 32, 64
    pipe = AugmentPipe(1.0, GEOMETRIC if name == "all" else (name,))
    g, applied = pipe.geometric_matrix(n, size, size, torch.zeros(1))
    assert applied.all()
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float32) - half
    py, px = torch.meshgrid(coords, coords, indexing="ij")
    image = torch.stack([0.03 * px - 0.02 * py, -0.01 * px + 0.025 * py, 0.02 * px + 0.01 * py])  # [3, H, W], linear
    x = image.expand(n, -1, -1, -1).contiguous()
    g_back = torch.linalg.inv(g)
    restored = warp(warp(x, g), g_back)
    # Valid output pixels p: q = g^-1 p lies a pixel inside the border, and so do g r for q's neighbours r (|p| + |g| sqrt 2).
    p = torch.stack([px.flatten(), py.flatten(), torch.ones(size * size)])  # [3, H * W]
    q = g_back @ p  # [N, 3, H * W]
    reach = torch.linalg.matrix_norm(g[:, :2, :2], ord=2)[:, None] * 2**0.5
    valid = (q[:, :2].abs() <= half - 1).all(1) & (p[:2].abs().amax(0)[None] + reach <= half)
    assert valid.float().mean() > 0.1
    error = (restored - x).abs().amax(1).flatten(1)  # [N, H * W]
    assert error[valid].max() < 1e-4
    if name in ("xflip", "rotate90", "xint"):  # whole-pixel transforms: exact wherever they stay inside
        torch.testing.assert_close(g[:, :2, :2].abs().sum((1, 2)), torch.full((n,), 2.0))  # a signed permutation
        torch.testing.assert_close(g[:, :2, 2], g[:, :2, 2].round())  # and a whole-pixel shift


def test_every_colour_transform_is_invertible() -> None:
    """Each colour matrix (and their product) is invertible: recolouring by it and by its inverse gives the image back."""
    torch.manual_seed(0)
    x = torch.rand(64, 3, 4, 4) * 2 - 1
    for names in [(name,) for name in COLOUR] + [COLOUR]:
        c, applied = AugmentPipe(1.0, names).colour_matrix(64, x)
        assert applied.all()
        torch.testing.assert_close(c[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(64, -1))  # affine: (r, g, b, 1) -> (r', g', b', 1)
        torch.testing.assert_close(recolour(recolour(x, c), torch.linalg.inv(c)), x, atol=1e-4, rtol=0)


def test_every_transform_together_keeps_the_graph() -> None:
    x = torch.randn(8, 3, 8, 8, requires_grad=True)
    AugmentPipe(1.0)(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert set(AugmentPipe().transforms) == set(GEOMETRIC + COLOUR)
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        AugmentPipe(1.0)(torch.zeros(2, 2, 4, 4))


def test_diff_augment_translation_and_cutout() -> None:
    torch.manual_seed(0)
    x = pattern(size=8)[0]
    out = diff_augment(x.expand(100, -1, -1, -1).contiguous(), ("translation",))
    zero_padded = [F.pad(x, [1] * 4)[:, 1 + dy: 9 + dy, 1 + dx: 9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    assert all(matches_one_of(image, zero_padded) is not None for image in out)
    cut = diff_augment(torch.ones(200, 3, 8, 8), ("cutout",))
    assert torch.equal(cut[:, 0], cut[:, 2])  # one mask for every channel
    holes = (cut[:, 0] == 0).flatten(1).sum(1)
    assert holes.max() == 16 and holes.min() >= 4  # a 4x4 square, clipped at the border
    coloured = diff_augment(torch.zeros(2000, 3, 2, 2), ("color",))
    assert abs(coloured.mean()) < 0.02  # brightness U(-0.5, 0.5) averages out; contrast and saturation keep the mean 0


# GANModule(augment=...).


def tiny(**kwargs) -> DCGAN:
    return DCGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, **kwargs)


@pytest.mark.parametrize("augment", ["ada", "diffaugment"])
def test_gradients_reach_g_through_the_pipeline(augment: str) -> None:
    torch.manual_seed(0)
    model = tiny(augment=augment, augment_p=1.0 if augment == "ada" else 0.0, r1_gamma=1.0, r1_interval=4)
    model.generator_loss(model(model.sample_z(8))).backward()
    assert all(p.grad is not None for p in model.generator.parameters())
    assert sum(p.grad.abs().sum() for p in model.generator.parameters()) > 0
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    model.zero_grad()
    model.r1_loss(real, None).backward()  # lazy R1 through the augmentation, with respect to the unaugmented reals
    assert sum(p.grad.abs().sum() for p in model.discriminator.parameters() if p.grad is not None) > 0


def test_rt_counts_the_reals_of_the_lazy_r1_phase_too() -> None:
    """The official loss reports sign(D(real)) in Dmain and in Dreg (lazy R1): both feed r_t."""
    model = tiny(augment="ada", r1_gamma=1.0, r1_interval=4)
    model.log_train = lambda *args, **kwargs: None  # no trainer to log to
    model.r1_loss(torch.rand(6, 1, 16, 16) * 2 - 1, None)
    assert float(model.ada_stats[1]) == 6
    model.discriminator_main_loss(torch.rand(4, 1, 16, 16) * 2 - 1, None)
    assert float(model.ada_stats[1]) == 10


def test_r1_differentiates_the_unaugmented_reals() -> None:
    torch.manual_seed(0)
    model = tiny(augment="fixed", augment_p=1.0, r1_gamma=1.0)
    real, fake = model.discriminator_inputs(torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16))
    assert not real.is_leaf and real.unaugmented.is_leaf and real.unaugmented.requires_grad
    model.add_d_regularisers(torch.zeros(()), real, fake, model.discriminator(real, None), model.discriminator(fake, None), None)


def _adapt(model: DCGAN, logits: torch.Tensor, batches: int) -> list[float]:
    ps = []
    for _ in range(batches):
        model.accumulate_ada_signs(logits)
        model.adapt_augment_p(batch_size=len(logits))
        model.batches += 1
        ps.append(float(model.augment_pipe.p))
    return ps


def test_p_follows_the_sign_of_rt_minus_target_and_stays_in_0_1() -> None:
    """Every 4th batch, p moves by batch * 4 / (ada_kimg * 1000): up while r_t > 0.6, down to 0 once D is fooled."""
    model = tiny(augment="ada", ada_kimg=0.1)  # a step of 8 * 4 / 100 = 0.32
    memorised = torch.tensor([1.0] * 7 + [-1.0])  # r_t = 0.75 > 0.6
    ps = _adapt(model, memorised, 16)
    assert ps[:4] == pytest.approx([0, 0, 0, 0.32]) and ps[7] == pytest.approx(0.64) and ps[11] == pytest.approx(0.96)
    assert ps[-1] == 1.0 and float(model.ada_stats[2]) == pytest.approx(0.75)
    fooled = torch.tensor([1.0] * 4 + [-1.0] * 4)  # r_t = 0 < 0.6
    ps = _adapt(model, fooled, 16)
    assert ps[3] == pytest.approx(0.68) and ps[-1] == 0.0 and float(model.ada_stats[2]) == 0.0


def test_rt_is_averaged_over_ranks() -> None:
    """Under several processes r_t is the mean over ranks (through the strategy), so every rank moves p alike."""
    model = tiny(augment="ada", ada_kimg=0.1)
    # The other rank's D is fooled, every sign -1: it holds (-count, count) where this one holds (sum, count).
    strategy = SimpleNamespace(world_size=2, reduce=lambda value, reduce_op: (value + torch.stack([-value[1], value[1]])) / 2)
    model._trainer = SimpleNamespace(strategy=strategy, world_size=2)
    model.log_train = lambda *args, **kwargs: None  # no real trainer to log to
    try:
        ps = _adapt(model, torch.ones(8), 8)  # this rank's r_t = 1, the mean 0 < 0.6: p stays at 0
    finally:
        model._trainer = None
    assert ps == [0.0] * 8 and float(model.ada_stats[2]) == 0.0


def test_ddp_p_follows_the_mean_of_the_ranks_rt(tmp_path: Path) -> None:
    """Two gloo processes whose Ds overfit differently (tests/scripts/ddp_ada.py): local r_t 1 on rank 0 and 0 on rank 1.
    p must move alike on both ranks, by the sign of the mean r_t 0.5 - 0.6 (down); a rank that used its own r_t would
    go up on rank 0, and a sum of the ranks' r_t (1 > 0.6) would go up on both."""
    run_ranks(Path(__file__).parent / "scripts" / "ddp_ada.py", tmp_path, cwd=tmp_path)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["world_size"] == 2
    assert rank0["local_rt"] == pytest.approx([1.0] * 4) and rank1["local_rt"] == pytest.approx([0.0] * 4)  # the setup
    torch.testing.assert_close(torch.tensor(rank0["p"]), torch.tensor(rank1["p"]), rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(rank0["rt"]), torch.tensor(rank1["rt"]), rtol=0, atol=1e-6)
    interval, step = rank0["interval"], rank0["step"]
    expected = [rank0["p_start"] - step * ((batch + 1) // interval) for batch in range(rank0["batches"])]
    assert rank0["p"] == pytest.approx(expected, abs=1e-6)  # 0.5, 0.45, 0.45, 0.4, ... 0.3
    assert rank0["rt"][interval - 1:] == pytest.approx([0.5] * (rank0["batches"] - interval + 1), abs=1e-6)


def test_settings_are_checked() -> None:
    for kwargs, match in (({"augment": "bogus"}, "Unknown augment"), ({"augment": "ada", "augment_p": 1.5}, "augment_p"),
                          ({"augment_p": 0.2}, "no effect"), ({"augment": "ada", "ada_kimg": 0}, "ada_kimg"),
                          ({"augment": "ada", "ada_interval": 0}, "ada_interval")):
        with pytest.raises(ConfigError, match=match):
            tiny(**kwargs)


def memorise_fit(root: Path, max_epochs: int, ckpt_path: str | None = None, **kwargs) -> tuple[DCGAN, L.Trainer]:
    L.seed_everything(0)
    model = tiny(augment="ada", ada_kimg=0.05, lr_d=2e-3, lr_g=1e-5, **kwargs)
    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.zeros(16)), batch_size=4, shuffle=True)
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True,
                            callbacks=[ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)])
    trainer.fit(model, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
    return model, trainer


def test_p_rises_when_d_memorises_a_tiny_set(tmp_path: Path) -> None:
    model, trainer = memorise_fit(tmp_path, max_epochs=6)  # 24 batches of 4 of 16 images; G nearly frozen
    assert float(model.augment_pipe.p) > 0
    assert float(model.ada_stats[2]) > 0.6 or float(model.augment_pipe.p) == 1.0
    assert {"train/ada_p", "train/ada_rt"} <= set(trainer.logged_metrics)


def test_p_is_saved_and_a_resume_continues_identically(tmp_path: Path) -> None:
    """4 batches per epoch against adjustments every 3: the checkpoint falls mid-interval, with signs accumulated."""
    straight, _ = memorise_fit(tmp_path / "straight", max_epochs=3, ada_interval=3)
    memorise_fit(tmp_path / "resumed", max_epochs=1, ada_interval=3)
    saved = torch.load(tmp_path / "resumed" / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    resumed, _ = memorise_fit(tmp_path / "resumed", max_epochs=3, ckpt_path=str(tmp_path / "resumed" / "ckpt" / "last.ckpt"), ada_interval=3)
    assert "augment_pipe.p" in saved and "ada_stats" in saved and saved["ada_stats"][1] > 0  # signs pending at the save
    assert float(straight.augment_pipe.p) > float(saved["augment_pipe.p"])  # p kept moving after the resume point
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=f"{name} differs after resume")


@pytest.mark.parametrize("make", [
    lambda: StyleGAN2(img_resolution=8, z_dim=8, w_dim=8, mapping_layers=2, channel_base=32, channel_max=8, augment="fixed", augment_p=0.5),
    lambda: DCGAN(img_resolution=16, img_channels=3, z_dim=4, ngf=4, ndf=4, augment="diffaugment", r1_gamma=1.0, r2_gamma=1.0, gp_weight=1.0),
], ids=["stylegan2-lazy-r1-pl", "dcgan-every-step-r1-r2-gp"])
def test_models_train_with_augmentation(tmp_path: Path, make) -> None:
    L.seed_everything(0)
    model = make()
    size = model.data_shape[-1]
    images = torch.rand(8, 3, size, size) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.zeros(8)), batch_size=4)
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=1)
    trainer.fit(model, train_dataloaders=loader)
    assert model.batches == 2 and all(torch.isfinite(p).all() for p in model.parameters())


def test_stylegan2_defaults_to_ada_as_the_official_code() -> None:
    """stylegan2-ada-pytorch's train.py: --aug=ada, the bgc pipeline, target 0.6, every 4 batches, 500 kimg; p from 0.
    An old checkpoint (written before the default) loads with p at 0; the config F reproduction turns it off."""
    model = StyleGAN2(img_resolution=8, z_dim=8, w_dim=8, mapping_layers=2, channel_base=32, channel_max=8)
    hp = model.hparams
    assert (hp.augment, hp.ada_target, hp.ada_kimg, hp.ada_interval) == ("ada", 0.6, 500, 4)
    assert model.augment_pipe.transforms == set(GEOMETRIC + COLOUR) and float(model.augment_pipe.p) == 0
    old = StyleGAN2.load_from_checkpoint(Path(__file__).parent / "fixtures" / "stylegan2_lazy_ema_v0.ckpt", weights_only=True)
    assert old.hparams.augment == "ada" and float(old.augment_pipe.p) == 0 and torch.equal(old.ada_stats, torch.zeros(3))
    experiments = Path(__file__).parents[1] / "experiments"
    augment = {name: yaml.safe_load((experiments / f"{name}.yaml").read_text())["model"]["init_args"].get("augment", "ada")
               for name in ("stylegan2_ffhq", "stylegan2_anime", "stylegan2_anime2k_cpu")}
    assert augment == {"stylegan2_ffhq": "none", "stylegan2_anime": "ada", "stylegan2_anime2k_cpu": "ada"}


def test_augmentation_needs_images() -> None:
    model = GAN(data_shape=(2,), z_dim=4, augment="diffaugment")
    with pytest.raises(ConfigError, match="needs images"):
        model.generator_loss(model(model.sample_z(4)))


@pytest.mark.parametrize("model", ["dcgan", "acgan"])
def test_every_generator_loss_feeds_d_through_the_augmentation(model, monkeypatch) -> None:
    """G's gradient must come through the same pipeline D trains on: GANModule's and ACGAN's generator_loss."""
    from gans import ACGAN

    if model == "dcgan":
        module, labels = DCGAN(img_resolution=16, img_channels=1, z_dim=4, ngf=4, ndf=4, augment="diffaugment"), None
    else:
        module = ACGAN(num_classes=[3, 2], img_resolution=16, img_channels=3, z_dim=4, ngf=4, ndf=4, augment="diffaugment")
        labels = module.sample_labels(4)
    seen = []
    original = type(module).augment_for_d
    monkeypatch.setattr(type(module), "augment_for_d", lambda self, images: seen.append(images.shape) or original(self, images))
    fake = module(module.sample_z(4), labels)
    module.generator_loss(fake, labels).backward()
    assert seen == [fake.shape]
    assert all(p.grad is not None for p in module.generator.parameters() if p.requires_grad)
