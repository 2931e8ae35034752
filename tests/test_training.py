"""Short real fits: D learns to separate, G moves toward the data; mixed precision stays finite."""

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from datamodules import ToyDataModule
from datamodules.toy import mixture_centers
from gans import DCGAN, GAN, WGANGP


def mean_distance_to_modes(points: torch.Tensor) -> float:
    return torch.cdist(points, mixture_centers("ring")).min(dim=1).values.mean().item()


@pytest.mark.parametrize("loss", ["non_saturating", "least_squares", "hinge", "relativistic_average_hinge"])
def test_toy_ring_fit_separates_and_moves_generator_toward_modes(tmp_path: Path, loss: str) -> None:
    L.seed_everything(0)
    model = GAN(
        data_shape=(2,), z_dim=8, g_hidden=(64, 64), d_hidden=(64, 64), d_pieces=2,
        d_input_dropout=0.0, d_dropout=0.0, g_tanh=False, optimizer="adam", lr_g=1e-3, lr_d=1e-3, loss=loss,
    )
    data = ToyDataModule(num_samples=8192, batch_size=256)
    z = torch.randn(1000, 8)
    before = mean_distance_to_modes(model.sample(1000, z=z))
    quiet_trainer(tmp_path, max_steps=400).fit(model, datamodule=data)  # 200 D and 200 G steps
    fake = model.sample(1000, z=z)
    after = mean_distance_to_modes(fake)
    assert after < 0.5 * before, f"G did not move toward the ring: {before:.3f} -> {after:.3f}"
    real = data.dataset.tensors[0][:1000]
    with torch.no_grad():
        d_real, d_fake = model.discriminator(real).mean(), model.discriminator(fake).mean()
    assert d_real > d_fake, "D scores fakes above real data"


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered.*")
@pytest.mark.parametrize("loss", ["relativistic_average", "relativistic_average_hinge"])
def test_relativistic_g_step_reads_d_on_the_real_batch(loss: str) -> None:
    """Gmain with a relativistic loss (Jolicoeur-Martineau 2018, section 4.3) compares D(fake) with D(real) of the same
    batch: the G step's loss equals the formula on D's logits for both, computed here by hand; and G gets a gradient."""
    torch.manual_seed(0)
    model = DCGAN(img_resolution=32, img_channels=1, z_dim=8, ngf=8, ndf=8, loss=loss).eval()  # eval: BN as a fixed map
    real = torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(2)
    g_loss = model.generator_main_loss(real, None)
    torch.manual_seed(2)
    with torch.no_grad():
        f, r = model.discriminator(model(model.sample_z(6))), model.discriminator(real)
    rel_f, rel_r = f - r.mean(), r - f.mean()
    if loss == "relativistic_average_hinge":
        expected = torch.relu(1 - rel_f).mean() + torch.relu(1 + rel_r).mean()
    else:
        expected = -torch.log(torch.sigmoid(rel_f)).mean() - torch.log(1 - torch.sigmoid(rel_r)).mean()
    torch.testing.assert_close(g_loss.detach(), expected, rtol=1e-5, atol=1e-6)
    g_loss.backward()
    assert all(p.grad is not None for p in model.generator.parameters())


def test_translation_models_refuse_relativistic_losses() -> None:
    """Their G steps do not compute D(real): a relativistic loss is refused in one line, before any network is built."""
    from gans import Pix2Pix
    from gans.errors import ConfigError

    with pytest.raises(ConfigError, match="relativistic loss 'relativistic_average_hinge'") as info:
        Pix2Pix(loss="relativistic_average_hinge")
    assert "\n" not in str(info.value)


def test_discriminator_alone_learns_to_separate(tmp_path: Path) -> None:
    """With G's learning rate 0, D must drive its loss down and score real above fake."""
    L.seed_everything(0)
    model = GAN(data_shape=(2,), z_dim=8, g_hidden=(32,), d_hidden=(32,), d_pieces=2, d_input_dropout=0.0,
                d_dropout=0.0, g_tanh=False, optimizer="adam", lr_g=0.0, lr_d=1e-2)
    fit = quiet_trainer(tmp_path, max_steps=200)
    fit.fit(model, datamodule=ToyDataModule(num_samples=4096, batch_size=128))
    assert fit.callback_metrics["train/d_loss"] < 0.3  # 2 log 2 = 1.386 at chance
    assert fit.callback_metrics["train/d_real"] > 0 > fit.callback_metrics["train/d_fake"]


@pytest.mark.parametrize("cls", [DCGAN, WGANGP])
def test_bf16_mixed_precision_trains_without_nans(tmp_path: Path, cls) -> None:
    L.seed_everything(0)
    model = cls(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(64, 1, 16, 16) * 2 - 1
    loader = DataLoader(TensorDataset(images, torch.zeros(64)), batch_size=16, shuffle=True)
    fit = quiet_trainer(tmp_path, max_steps=12, precision="bf16-mixed")
    fit.fit(model, loader)
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            assert value.isfinite().all(), f"{name} has non-finite values"
    assert all(fit.callback_metrics[k].isfinite() for k in ("train/d_loss", "train/g_loss"))
    if cls is WGANGP:
        assert fit.callback_metrics["train/gp"].isfinite()
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("generator.") for k in moved) and any(k.startswith("discriminator.") for k in moved)


class GradNormProbe(GAN):
    """Records each network's gradient norm as the optimizer sees it, after the base hook clipped it."""

    def on_before_optimizer_step(self, optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.seen_norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item())


@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_gradient_clipping_bounds_every_step(tmp_path: Path, clip: float) -> None:
    L.seed_everything(0)
    model = GradNormProbe(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, g_tanh=False,
                          optimizer="adam", gradient_clip_val=clip)
    model.seen_norms = []
    quiet_trainer(tmp_path, max_steps=10).fit(model, datamodule=ToyDataModule(num_samples=512, batch_size=64))
    assert len(model.seen_norms) == 10
    if clip:
        assert max(model.seen_norms) <= clip * (1 + 1e-4)
    else:
        assert max(model.seen_norms) > 1e-3  # the bound above is not met by accident


def test_fp16_with_grad_scaler_unscales_the_gradient_penalty(tmp_path: Path) -> None:
    """Under "16-mixed" with a GradScaler (CPU has one since torch 2.3), the penalty is computed on
    scaled outputs and unscaled again: its value matches the fp32 run instead of growing by the scale."""
    from lightning.pytorch.plugins import MixedPrecision

    images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    results = {}
    for name, extra in {"fp32": {}, "fp16": {"plugins": [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))]}}.items():
        L.seed_everything(0)
        model = WGANGP(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
        fit = quiet_trainer(tmp_path / name, max_steps=12, **extra)
        fit.fit(model, DataLoader(TensorDataset(images, torch.zeros(64)), batch_size=16))
        assert all(p.isfinite().all() for p in model.parameters())
        results[name] = (fit.callback_metrics["train/gp"].item(), model.grad_scale())
    (gp32, scale32), (gp16, scale16) = results["fp32"], results["fp16"]
    assert scale32 == 1.0 and scale16 > 1.0  # the scaler was in use
    assert gp16 == pytest.approx(gp32, rel=0.05)


class LearningRates(L.Callback):
    """The (D, G) learning rates each batch trained with."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        opt_d, opt_g = pl_module.optimizers()
        self.seen.append((opt_d.param_groups[0]["lr"], opt_g.param_groups[0]["lr"]))


def test_lr_decay_fraction_holds_the_rates_then_decays_them_linearly_to_zero_at_max_kimg(tmp_path: Path) -> None:
    """lr_decay_fraction 0.5 of 10 batches of 64: batches 0-5 at the full rates, then lr * (640 - 64 i) / 320 from the
    images seen before batch i (0.8, 0.6, 0.4, 0.2), both networks, and the run ends at max_kimg."""
    L.seed_everything(0)
    model = GAN(data_shape=(2,), z_dim=2, g_hidden=(8,), d_hidden=(8,), d_pieces=2, g_tanh=False, optimizer="adam",
                lr_g=2e-3, lr_d=1e-3, max_kimg=0.64, lr_decay_fraction=0.5)
    rates = LearningRates()
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=-1, callbacks=[rates]).fit(model, datamodule=ToyDataModule(num_samples=640, batch_size=64))
    expected = [min(1.0, (640 - 64 * i) / 320) for i in range(10)]
    assert rates.seen == [(pytest.approx(1e-3 * f), pytest.approx(2e-3 * f)) for f in expected]


def test_lr_decay_fraction_needs_a_fraction_and_max_kimg() -> None:
    from gans.errors import ConfigError

    with pytest.raises(ConfigError, match="lr_decay_fraction.*max_kimg"):
        GAN(data_shape=(2,), lr_decay_fraction=0.5)  # max_kimg 0: no end to decay to
    with pytest.raises(ConfigError, match="lr_decay_fraction must be in"):
        GAN(data_shape=(2,), lr_decay_fraction=1.5, max_kimg=1.0)
