"""Lazy regularisation as declared training phases (gans.training.phases, GANModule.training_phases): StyleGAN2's lazy
R1 and path length (arXiv:1912.04958, section 3.1, Appendix B, eq. 4), the optimizer correction where the optimizers
are built and its composition with lr schedules, the official path length update, checkpoints, the removed callback."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from helpers import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import gans.training.gan_module as gan_module
from callbacks import LazyRegularization, ProgressiveGrowing
from datamodules import ToyDataModule
from gans import GAN, SNGAN, GANModule, StyleGAN2
from gans.errors import ConfigError
from gans.models.style.stylegan2 import StyleGAN2Generator
from gans.training.losses import path_length_penalty, path_lengths
from gans.training.phases import RATIO_KEY, Phase, correct_optimizer_, lazy_ratio

FIXTURES = Path(__file__).parent / "fixtures"

# path_lengths and path_length_penalty


def test_path_length_of_a_linear_generator_is_the_norm_of_a_times_the_noise() -> None:
    # images = (w flattened) @ A, so J^T y = A y: the length is known in closed form.
    n, num_ws, w_dim, c, h, w = 5, 3, 4, 2, 3, 4
    A = torch.randn(num_ws * w_dim, c * h * w)
    ws = torch.randn(n, num_ws, w_dim, requires_grad=True)
    images = (ws.flatten(1) @ A).view(n, c, h, w)
    torch.manual_seed(3)
    lengths = path_lengths(images, ws)
    torch.manual_seed(3)
    noise = torch.randn(n, c, h, w) / math.sqrt(h * w)  # by the pixels per channel, not c*h*w
    grad = (noise.flatten(1) @ A.T).view(n, num_ws, w_dim)
    expected = grad.pow(2).sum(2).mean(1).sqrt()  # sum over w_dim, mean over the ws
    torch.testing.assert_close(lengths, expected, rtol=1e-5, atol=0)
    penalty, mean = path_length_penalty(lengths, torch.tensor(0.7), 0.25)
    assert mean.item() == pytest.approx(0.7 + 0.25 * (expected.mean().item() - 0.7), rel=1e-6)
    assert penalty.item() == pytest.approx((expected - mean.item()).pow(2).mean().item(), rel=1e-5)
    # Differentiable with respect to the generator (here A): the penalty can train G.
    A.requires_grad_(True)
    penalty, _ = path_length_penalty(path_lengths((ws.flatten(1) @ A).view(n, c, h, w), ws), torch.tensor(0.7), 0.01)
    (grad_a,) = torch.autograd.grad(penalty, A)
    assert grad_a.abs().sum() > 0


def test_a_non_finite_batch_mean_leaves_the_running_mean() -> None:
    lengths = torch.tensor([1.0, float("inf")])
    _, mean = path_length_penalty(lengths, torch.tensor(0.5), 0.01)
    assert mean.item() == 0.5


def test_path_length_on_z_matches_an_autograd_jacobian() -> None:
    # A non-linear generator of flat samples, latents [N, z]: ||J_n^T y_n|| from the full Jacobian.
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 6))
    z = torch.randn(4, 3, requires_grad=True)
    torch.manual_seed(1)
    lengths = path_lengths(g(z), z)
    torch.manual_seed(1)
    noise = torch.randn(4, 6) / math.sqrt(6)  # flat samples: scaled by all their elements
    for i in range(4):
        jac = torch.autograd.functional.jacobian(g, z[i].detach())  # [6, 3]
        assert lengths[i].item() == pytest.approx((jac.T @ noise[i]).norm().item(), rel=1e-5)


def test_amp_grad_scale_is_undone() -> None:
    z = torch.randn(4, 3, requires_grad=True)
    images = torch.sin(z) @ torch.randn(3, 5)
    torch.manual_seed(2)
    plain = path_lengths(images, z)
    torch.manual_seed(2)
    scaled = path_lengths(images, z, grad_scale=1024.0)
    assert torch.allclose(plain, scaled)


def toy(cls=GAN, **kwargs) -> GAN:
    settings = dict(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, d_input_dropout=0.0, d_dropout=0.0,
                    g_tanh=False, optimizer="adam", lr_g=2e-3, lr_d=1e-3, betas=(0.5, 0.99))
    settings.update(kwargs)
    return cls(**settings)


def test_the_path_length_gradient_is_the_official_one_through_the_running_mean() -> None:
    """stylegan2-ada-pytorch ``loss.py`` Greg: ``pl_mean = self.pl_mean.lerp(pl_lengths.mean(), decay)``, the penalty
    ``(pl_lengths - pl_mean).square()`` with the batch mean not detached, times weight and interval."""
    torch.manual_seed(0)
    model = toy(pl_weight=2.0, pl_interval=4, pl_batch_shrink=2, pl_decay=0.3)
    model.pl_mean.fill_(0.5)
    real = torch.zeros(8, 2)
    params = [p for p in model.generator.parameters() if p.dim() > 1]  # the weights (the last bias does not reach J)

    torch.manual_seed(1)
    loss = model.path_length_loss(real, None)
    ours = torch.autograd.grad(loss, params)
    stored = model.pl_mean.clone()

    def official(detach: bool) -> tuple[tuple[Tensor, ...], Tensor]:
        torch.manual_seed(1)
        z = torch.randn(4, 4, requires_grad=True)  # batch 8 // pl_batch_shrink 2, J with respect to z for a plain generator
        images = model.generator(z, None)
        noise = torch.randn_like(images) / math.sqrt(images.shape[1])
        (grads,) = torch.autograd.grad((images * noise).sum(), z, create_graph=True)
        lengths = grads.square().sum(1).sqrt()
        batch_mean = lengths.mean().detach() if detach else lengths.mean()
        pl_mean = torch.tensor(0.5).lerp(batch_mean, 0.3)
        penalty = (lengths - pl_mean).square().mean() * 2.0 * 4
        return torch.autograd.grad(penalty, params), pl_mean.detach()

    expected, expected_mean = official(detach=False)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(stored, expected_mean)
    detached, _ = official(detach=True)  # what the module computed before: a measurably different gradient
    assert any(not torch.allclose(a, b, rtol=1e-3, atol=0) for a, b in zip(ours, detached))


# The optimizer correction.


def test_the_ratio_and_the_correction_of_a_fresh_optimizer() -> None:
    phases = [Phase("Dmain", "discriminator", 0, lambda r, c: r), Phase("Dreg", "discriminator", 0, lambda r, c: r, interval=16),
              Phase("Gmain", "generator", 1, lambda r, c: r, clock="g_steps")]
    assert lazy_ratio(phases, 0) == 16 / 17 and lazy_ratio(phases, 1) == 1.0
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3, betas=(0.5, 0.99))
    correct_optimizer_(opt, 16 / 17)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(1e-3 * 16 / 17) and group[RATIO_KEY] == 16 / 17
    assert group["betas"] == pytest.approx((0.5 ** (16 / 17), 0.99 ** (16 / 17)))
    with pytest.raises(ConfigError, match="already corrected"):
        correct_optimizer_(opt, 4 / 5)
    sgd = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.5)
    correct_optimizer_(sgd, 0.5)
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.05) and sgd.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ConfigError, match="interval"):
        Phase("Dreg", "discriminator", 0, lambda r, c: r, interval=0)


def test_the_declared_phases_follow_the_settings() -> None:
    def declared(**kwargs) -> list[tuple[str, int, str]]:
        return [(p.name, p.interval, p.clock) for p in toy(**kwargs).training_phases()]

    assert declared() == [("Dmain", 1, "batches"), ("Gmain", 1, "g_steps")]
    assert declared(r1_gamma=1.0, r1_interval=16, pl_weight=2.0) == [
        ("Dmain", 1, "batches"), ("Dreg", 16, "batches"), ("Gmain", 1, "g_steps"), ("Greg", 4, "g_steps")]
    assert declared(r1_gamma=1.0, pl_weight=2.0, pl_interval=1) == [("Dmain", 1, "batches"), ("Gmain", 1, "g_steps")]  # merged
    assert [(p.name, p.interval) for p in StyleGAN2(img_resolution=8, channel_base=16, channel_max=4).training_phases()] == [
        ("Dmain", 1), ("Dreg", 16), ("Gmain", 1), ("Greg", 4)]  # StyleGAN2's defaults


class Scheduled(GAN):
    """A toy GAN whose learning rates follow a LambdaLR schedule per batch."""

    def configure_optimizers(self):
        opt_d, opt_g = super().configure_optimizers()
        schedule = [torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.9**step) for opt in (opt_d, opt_g)]
        return [opt_d, opt_g], [{"scheduler": s, "interval": "step"} for s in schedule]


def fit(root: Path, model: GANModule, max_epochs: int = 1, ckpt_path: str | None = None, num_samples: int = 256, **trainer) -> L.Trainer:
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True,
                            callbacks=[ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)], **trainer)
    trainer.fit(model, datamodule=ToyDataModule(num_samples=num_samples, batch_size=32), ckpt_path=ckpt_path, weights_only=True)
    return trainer


def test_an_lr_scheduler_composes_with_the_correction_and_a_resume_keeps_both(tmp_path: Path) -> None:
    lazy = dict(r1_gamma=1.0, r1_interval=4, pl_weight=2.0, pl_interval=2)

    def check(trainer: L.Trainer, batches: int) -> None:
        for opt, lr, c in zip(trainer.optimizers, (1e-3, 2e-3), (4 / 5, 2 / 3)):
            group = opt.param_groups[0]
            assert group["lr"] == pytest.approx(lr * 0.9**batches * c, rel=1e-12)
            assert group["betas"] == pytest.approx((0.5**c, 0.99**c), rel=1e-12)

    L.seed_everything(0)
    check(fit(tmp_path, toy(Scheduled, **lazy), num_samples=160), 5)
    resumed = fit(tmp_path, toy(Scheduled, **lazy), max_epochs=2, num_samples=160, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert resumed.current_epoch == 2
    check(resumed, 10)


def test_a_resume_with_other_intervals_is_refused_in_one_line(tmp_path: Path) -> None:
    fit(tmp_path, toy(), num_samples=32)
    with pytest.raises(ConfigError, match=r"D's optimizer carries .*\[1\.0\] but r1_interval / pl_interval need 0\.8"):
        fit(tmp_path, toy(r1_gamma=1.0, r1_interval=4), max_epochs=2, num_samples=32, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))


def test_sngan_decay_and_progressive_lr_keep_the_correction(tmp_path: Path) -> None:
    images = torch.rand(16, 3, 16, 16) * 2 - 1
    model = SNGAN(architecture="cnn", img_resolution=16, g_ch=8, d_ch=4, n_critic=1, lr_decay=True, max_kimg=1.0,
                  r1_gamma=1.0, r1_interval=4, pl_weight=1.0, pl_interval=2)
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1).fit(model, DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=8))
    opt_d, opt_g = model.optimizers()
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - 8 / 1000) * 4 / 5)  # the second batch's rate
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - 8 / 1000) * 2 / 3)
    assert opt_d.param_groups[0]["betas"] == pytest.approx((0.0, 0.9 ** (4 / 5)))
    # ProgressiveGrowing's lr at a resolution, times the correction; elsewhere the optimizer's own (corrected) lr.
    opt = correct_optimizer_(torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3), 16 / 17)
    growing = ProgressiveGrowing(lr={8: 0.0015})
    growing.base_lr = [opt.param_groups[0]["lr"]]
    trainer = SimpleNamespace(optimizers=[opt])
    growing._set_lr(trainer, 8)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0015 * 16 / 17)
    growing._set_lr(trainer, 4)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 16 / 17)


# The schedule of the phases.


class PhaseLog(GAN):
    """Records every update: the batch, the phase, its loss, and whether its network's parameters moved."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.updates: list[tuple[int, str, float, bool]] = []

    def run_phase(self, phase, opt, real, labels) -> None:
        network = getattr(self, phase.network)
        before = [p.detach().clone() for p in network.parameters()]
        losses = []
        recorded = dataclasses.replace(phase, loss=lambda r, c: losses.append(phase.loss(r, c)) or losses[-1])
        super().run_phase(recorded, opt, real, labels)
        moved = any(not torch.equal(a, p) for a, p in zip(before, network.parameters()))
        self.updates.append((self.batches, phase.name, losses[-1].item(), moved))


def test_phases_run_on_their_intervals_from_the_first_batch(tmp_path: Path) -> None:
    L.seed_everything(0)
    model = toy(PhaseLog, n_critic=2, r1_gamma=4.0, r1_interval=3, pl_weight=2.0, pl_interval=2)
    trainer = fit(tmp_path, model)
    # 8 batches; R1 at batches 0, 3, 6; G turns at batches 1, 3, 5, 7 (G steps 0-3), path length at G steps 0 and 2.
    expected = {0: "Dmain Dreg", 1: "Dmain Gmain Greg", 2: "Dmain", 3: "Dmain Dreg Gmain", 4: "Dmain", 5: "Dmain Gmain Greg",
                6: "Dmain Dreg", 7: "Dmain Gmain"}
    ran = {b: " ".join(name for batch, name, _, _ in model.updates if batch == b) for b in range(8)}
    assert ran == expected
    assert all(moved for *_, moved in model.updates)  # every update, the lazy ones included, moved its network
    assert model.batches == 8 and model.g_steps == 4
    # The lazy losses are the logged (unweighted) penalties times weight and interval; the last batch logged R1 at 6.
    r1_loss = [loss for batch, name, loss, _ in model.updates if name == "Dreg"][-1]
    assert r1_loss == pytest.approx(4.0 / 2 * 3 * trainer.callback_metrics["train/r1"].item(), rel=1e-5)
    pl_loss = [loss for batch, name, loss, _ in model.updates if name == "Greg"][-1]
    assert pl_loss == pytest.approx(2.0 * 2 * trainer.callback_metrics["train/pl"].item(), rel=1e-5)


def test_stylegan2_takes_its_first_r1_and_path_length_steps_at_batch_0(tmp_path: Path) -> None:
    """The official loop runs a phase when ``batch_idx % interval == 0``: with StyleGAN2's 16 and 4 both at the first batch."""
    ran: list[str] = []

    class Logged(StyleGAN2):
        def run_phase(self, phase, opt, real, labels) -> None:
            ran.append(phase.name)
            super().run_phase(phase, opt, real, labels)

    L.seed_everything(0)
    model = Logged(img_resolution=8, z_dim=8, w_dim=8, mapping_layers=1, channel_base=16, channel_max=4, r1_gamma=1.0)
    images = torch.rand(8, 3, 8, 8) * 2 - 1
    quiet_trainer(tmp_path, max_steps=-1, max_epochs=1).fit(model, DataLoader(TensorDataset(images, torch.zeros(8)), batch_size=8))
    assert ran == ["Dmain", "Dreg", "Gmain", "Greg"]
    assert model.pl_mean > 0


class NaNRegulariser(GAN):
    def r1_loss(self, real, labels):
        return super().r1_loss(real, labels) * float("nan")


def test_a_skipped_regularisation_update_counts_against_its_own_batch(tmp_path: Path) -> None:
    L.seed_everything(0)
    model = toy(NaNRegulariser, r1_gamma=1.0, r1_interval=2)
    fit(tmp_path, model, num_samples=32)  # one batch: Dmain, Dreg (NaN, skipped), Gmain
    assert model.batches == 1 and model.nonfinite_steps == 1 and model.nonfinite_streak == 1


def test_pl_mean_follows_the_batch_means(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Tensor] = []

    def recording(images: Tensor, latents: Tensor, grad_scale: float = 1.0) -> Tensor:
        lengths = path_lengths(images, latents, grad_scale)
        seen.append(lengths.detach().clone())
        assert latents.shape == (16, 4)  # batch 32 // pl_batch_shrink 2, on z for a plain generator
        return lengths

    monkeypatch.setattr(gan_module, "path_lengths", recording)
    L.seed_everything(0)
    model = toy(pl_weight=2.0, pl_interval=2, pl_decay=0.25)
    trainer = fit(tmp_path, model, num_samples=160)  # 5 batches: path length at G steps 0, 2, 4
    assert len(seen) == 3
    mean = torch.zeros([])
    for lengths in seen:
        mean = mean + 0.25 * (lengths.mean() - mean)
    assert model.pl_mean.item() == pytest.approx(mean.item(), rel=1e-6)
    assert trainer.callback_metrics["train/pl_mean"].item() == pytest.approx(mean.item(), rel=1e-6)
    assert trainer.callback_metrics["train/pl"].item() == pytest.approx((seen[-1] - mean).pow(2).mean().item(), rel=1e-5)
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]["pl_mean"] == model.pl_mean


def test_path_length_latents_are_the_training_ws_of_a_style_model_and_z_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[tuple[int, ...]] = []

    def recording(images: Tensor, latents: Tensor, grad_scale: float = 1.0) -> Tensor:
        shapes.append(tuple(latents.shape))
        return path_lengths(images, latents, grad_scale)

    monkeypatch.setattr(gan_module, "path_lengths", recording)
    torch.manual_seed(0)
    settings = dict(z_dim=8, w_dim=8, img_resolution=8, num_classes=3, mapping_layers=1, channel_base=16, channel_max=4)
    style = StyleGAN2(**settings, pl_weight=2.0)
    style.path_length_loss(torch.zeros(4, 3, 8, 8), None)  # conditional: labels drawn, mapped through the class vector
    # A conditional style generator in a plain GANModule: J with respect to its input z (its mapping takes a class
    # vector, which only a style-based module builds).
    generator = StyleGAN2Generator(**{k: settings[k] for k in ("z_dim", "w_dim", "img_resolution", "num_classes", "mapping_layers", "channel_base", "channel_max")})
    plain = GANModule(generator, style.discriminator, z_dim=8, num_classes=3, pl_weight=2.0)
    plain.path_length_loss(torch.zeros(4, 3, 8, 8), None)
    assert shapes == [(2, style.generator.num_ws, 8), (2, 8)]
    assert style.pl_mean > 0 and plain.pl_mean > 0


# Settings and the removed callback.


@pytest.mark.parametrize("setting", [dict(r1_interval=0), dict(pl_interval=0), dict(pl_batch_shrink=0), dict(pl_weight=-2.0),
                                     dict(pl_decay=1.5), dict(r1_interval=2.5)])
def test_bad_settings_are_rejected(setting: dict) -> None:
    with pytest.raises(ConfigError, match=f"{next(iter(setting))}"):
        toy(**setting)


def test_the_old_callback_names_the_model_settings() -> None:
    with pytest.raises(ConfigError, match=r"LazyRegularization is gone.*model\.init_args\.r1_gamma: 10\.0, model\.init_args\.r1_interval: 16"):
        LazyRegularization(r1_gamma=10.0, pl_weight=2.0)


def test_a_config_with_the_old_callback_fails_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gans.cli import cli
    from gans.errors import exit_on_user_error

    args = ["--model=gans.GAN", "--trainer.callbacks+=callbacks.LazyRegularization", "--trainer.callbacks.init_args.pl_weight=2.0",
            f"--trainer.default_root_dir={tmp_path}"]
    with pytest.raises(SystemExit) as exited:
        exit_on_user_error(lambda: cli(args, run=False))
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "LazyRegularization is gone" in errors[0] and "model.init_args.pl_weight: 2.0" in errors[0]


# Checkpoints.


def test_an_old_checkpoint_brings_the_callbacks_pl_mean_into_the_buffer() -> None:
    checkpoint = torch.load(FIXTURES / "stylegan2_lazy_ema_v0.ckpt", weights_only=True)
    old = checkpoint["callbacks"]["LazyRegularization"]["pl_mean"]
    model = StyleGAN2.load_from_checkpoint(FIXTURES / "stylegan2_lazy_ema_v0.ckpt", weights_only=True)
    assert old > 0 and torch.equal(model.pl_mean, old)
    # And a model without path length drops a saved mean.
    assert StyleGAN2.load_from_checkpoint(FIXTURES / "stylegan2_lazy_ema_v0.ckpt", weights_only=True, pl_weight=0.0).pl_mean is None


def test_resume_continues_identically(tmp_path: Path) -> None:
    def run(root: Path, max_epochs: int, ckpt_path: str | None = None) -> tuple[GAN, L.Trainer]:
        L.seed_everything(123)
        model = toy(d_input_dropout=0.1, r1_gamma=1.0, r1_interval=3, pl_weight=2.0, pl_interval=3)  # periods cross epochs
        return model, fit(root, model, max_epochs=max_epochs, ckpt_path=ckpt_path)

    straight, straight_trainer = run(tmp_path / "straight", 2)
    run(tmp_path / "resumed", 1)
    resumed, resumed_trainer = run(tmp_path / "resumed", 2, str(tmp_path / "resumed" / "ckpt" / "last.ckpt"))
    assert resumed_trainer.global_step == straight_trainer.global_step
    assert resumed.batches == straight.batches == 16 and resumed.pl_mean > 0
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), f"{name} differs after resume"


DDP_SCRIPT = '''
import sys
from pathlib import Path
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from gans import DCGAN

out = Path(sys.argv[1])
L.seed_everything(0)
model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8, r1_gamma=1.0, r1_interval=2, pl_weight=2.0, pl_interval=2)
images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=8, shuffle=True)
means = []


class Means(L.Callback):  # pl_mean after every batch, before fit's end averages the buffers
    def on_train_batch_end(self, trainer, pl_module, *args):
        means.append(pl_module.pl_mean.clone())


trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, callbacks=[Means()])
trainer.fit(model, loader)
state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
# Each rank draws its own latents (gans.training.core), so only the reduction keeps pl_mean equal across ranks.
torch.save({"state": state, "means": torch.stack(means), "z": model.sample_z(4)}, out / f"rank{trainer.global_rank}.pt")
'''


def test_ddp_ranks_keep_the_same_pl_mean_and_weights(tmp_path: Path) -> None:
    script = tmp_path / "lazy_ddp.py"
    script.write_text(DDP_SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(rank0["z"], rank1["z"])  # the ranks' random streams differ (no reseeding by hand)
    assert rank0["means"][-1] > 0 and torch.equal(rank0["means"], rank1["means"])  # after every batch
    for name, value in rank0["state"].items():  # pl_mean and batch-norm statistics of the extra forwards included
        assert torch.equal(value, rank1["state"][name]), f"{name} differs across ranks"
