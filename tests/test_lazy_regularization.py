"""callbacks.LazyRegularization and gans.training.losses.path_length_penalty: StyleGAN2's lazy R1 and path length
regulariser, the optimizer correction for the intervals, checkpoints."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import callbacks.lazy_regularization as lazy
from callbacks import LazyRegularization
from callbacks.lazy_regularization import correct_optimizer_
from datamodules import ToyDataModule
from gans import DCGAN, GAN, GANModule
from gans.models.classic.dcgan import DCGANDiscriminator
from gans.errors import ConfigError
from gans.training.losses import path_length_penalty, path_lengths
from helpers import quiet_trainer

# path_length_penalty


def test_path_length_of_a_linear_generator_is_the_norm_of_a_times_the_noise() -> None:
    # images = (w flattened) @ A, so J^T y = A y: the length is known in closed form.
    n, num_ws, w_dim, c, h, w = 5, 3, 4, 2, 3, 4
    A = torch.randn(num_ws * w_dim, c * h * w)
    ws = torch.randn(n, num_ws, w_dim, requires_grad=True)
    images = (ws.flatten(1) @ A).view(n, c, h, w)
    mean = torch.tensor(0.7)
    torch.manual_seed(3)
    penalty, batch_mean = path_length_penalty(images, ws, mean)
    torch.manual_seed(3)
    noise = torch.randn(n, c, h, w) / math.sqrt(h * w)  # by the pixels per channel, not c*h*w
    grad = (noise.flatten(1) @ A.T).view(n, num_ws, w_dim)
    expected = grad.pow(2).sum(2).mean(1).sqrt()  # sum over w_dim, mean over the ws
    assert batch_mean == pytest.approx(expected.mean().item(), rel=1e-5)
    assert not batch_mean.requires_grad
    assert penalty.item() == pytest.approx((expected - 0.7).pow(2).mean().item(), rel=1e-5)
    # Differentiable with respect to the generator (here A): the penalty can train G.
    A.requires_grad_(True)
    images = (ws.flatten(1) @ A).view(n, c, h, w)
    penalty, _ = path_length_penalty(images, ws, mean)
    (grad_a,) = torch.autograd.grad(penalty, A)
    assert grad_a.abs().sum() > 0


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


# The optimizer correction.


def test_correction_is_relative_to_what_was_applied() -> None:
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3, betas=(0.5, 0.99))
    correct_optimizer_(opt, 16 / 17)
    correct_optimizer_(opt, 16 / 17)  # idempotent
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(1e-3 * 16 / 17)
    assert group["betas"] == pytest.approx((0.5 ** (16 / 17), 0.99 ** (16 / 17)))
    correct_optimizer_(opt, 4 / 5)  # another interval: from the original settings, not on top
    assert group["lr"] == pytest.approx(1e-3 * 4 / 5)
    assert group["betas"] == pytest.approx((0.5 ** (4 / 5), 0.99 ** (4 / 5)))
    correct_optimizer_(opt, 1.0)
    assert group["lr"] == pytest.approx(1e-3) and group["betas"] == pytest.approx((0.5, 0.99))
    sgd = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.5)
    correct_optimizer_(sgd, 0.5)
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.05) and sgd.param_groups[0]["momentum"] == 0.5


class StepLog(GAN):
    """Records every update: which network, the loss, and whether the network's parameters moved."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.updates: list[tuple[str, float, bool]] = []

    def backward_and_step(self, opt, loss, network) -> bool:
        before = [p.detach().clone() for p in network.parameters()]
        stepped = super().backward_and_step(opt, loss, network)
        moved = any(not torch.equal(a, p) for a, p in zip(before, network.parameters()))
        self.updates.append(("D" if network is self.discriminator else "G", loss.item(), moved and stepped))
        return stepped


def toy(cls=GAN, **kwargs) -> GAN:
    settings = dict(data_shape=(2,), z_dim=4, g_hidden=(16,), d_hidden=(16,), d_pieces=2, d_input_dropout=0.0, d_dropout=0.0,
                    g_tanh=False, optimizer="adam", lr_g=2e-3, lr_d=1e-3, betas=(0.5, 0.99))
    settings.update(kwargs)
    return cls(**settings)


def fit(root: Path, model: GANModule, callback: LazyRegularization | None, max_epochs: int = 1, ckpt_path: str | None = None,
        num_samples: int = 256) -> L.Trainer:
    trainer = quiet_trainer(root, max_steps=-1, max_epochs=max_epochs, enable_checkpointing=True,
                            callbacks=[c for c in (callback, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=0)) if c])
    trainer.fit(model, datamodule=ToyDataModule(num_samples=num_samples, batch_size=32), ckpt_path=ckpt_path, weights_only=True)
    return trainer


def test_lr_and_betas_are_corrected_once_even_across_resume(tmp_path: Path) -> None:
    L.seed_everything(0)
    trainer = fit(tmp_path, toy(), LazyRegularization(r1_gamma=1.0, pl_weight=2.0))
    expected = {"d": (1e-3 * 16 / 17, (0.5 ** (16 / 17), 0.99 ** (16 / 17))), "g": (2e-3 * 4 / 5, (0.5 ** (4 / 5), 0.99 ** (4 / 5)))}

    def check(trainer: L.Trainer) -> None:
        for opt, (lr, betas) in zip(trainer.optimizers, expected.values()):
            assert opt.param_groups[0]["lr"] == pytest.approx(lr)
            assert opt.param_groups[0]["betas"] == pytest.approx(betas)

    check(trainer)
    # Lightning restores the optimizer state after on_fit_start: the saved, corrected groups win, once.
    resumed = fit(tmp_path, toy(), LazyRegularization(r1_gamma=1.0, pl_weight=2.0), max_epochs=2,
                  ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert resumed.current_epoch == 2
    check(resumed)
    # A checkpoint written without the callback gets corrected when resumed with it.
    plain = fit(tmp_path / "plain", toy(), None)
    assert plain.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3)
    resumed = fit(tmp_path / "plain", toy(), LazyRegularization(r1_gamma=1.0, pl_weight=2.0), max_epochs=2,
                  ckpt_path=str(tmp_path / "plain" / "ckpt" / "last.ckpt"))
    check(resumed)


def test_only_the_regularised_network_is_corrected_and_sgd_keeps_its_momentum(tmp_path: Path) -> None:
    L.seed_everything(0)
    trainer = fit(tmp_path, toy(optimizer="sgd", momentum=0.5), LazyRegularization(r1_gamma=1.0, r1_interval=4, pl_weight=0.0))
    opt_d, opt_g = trainer.optimizers
    assert opt_d.param_groups[0]["lr"] == pytest.approx(1e-3 * 4 / 5) and opt_d.param_groups[0]["momentum"] == 0.5
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-3)


# The schedule.


def test_r1_and_path_length_steps_run_on_their_intervals_and_move_their_network(tmp_path: Path) -> None:
    L.seed_everything(0)
    model = toy(StepLog, n_critic=2)
    trainer = fit(tmp_path, model, LazyRegularization(r1_gamma=4.0, r1_interval=3, pl_weight=2.0, pl_interval=2))
    # 8 batches; G steps after batches 2, 4, 6, 8; R1 after batches 3 and 6; path length after G steps 2 and 4.
    per_batch = {1: "D", 2: "DG", 3: "DD", 4: "DGG", 5: "D", 6: "DGD", 7: "D", 8: "DGG"}
    assert "".join(name for name, _, _ in model.updates) == "".join(per_batch.values())
    assert all(moved for _, _, moved in model.updates)  # every update, the regulariser ones included, moved its network
    # The R1 update's loss is gamma / 2 * interval * the logged (unweighted) penalty.
    r1_loss = model.updates[-5][1]  # batch 6's third update (then batch 7: D, batch 8: D G G)
    assert r1_loss == pytest.approx(4.0 / 2 * 3 * trainer.callback_metrics["train/r1"].item(), rel=1e-5)
    assert model.updates[-1][1] == pytest.approx(2.0 * 2 * trainer.callback_metrics["train/pl"].item(), rel=1e-5)


def test_the_r1_step_changes_the_outcome(tmp_path: Path) -> None:
    outcomes = []
    for callback in (None, LazyRegularization(r1_gamma=10.0, r1_interval=2)):
        L.seed_everything(0)
        model = toy()
        fit(tmp_path, model, callback, num_samples=64)
        outcomes.append(torch.cat([p.detach().flatten() for p in model.discriminator.parameters()]))
    assert not torch.equal(*outcomes)


def test_pl_mean_follows_the_batch_means(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Tensor] = []

    def recording(images: Tensor, latents: Tensor, grad_scale: float = 1.0) -> Tensor:
        lengths = path_lengths(images, latents, grad_scale)
        seen.append(lengths.detach().clone())
        assert latents.shape == (16, 4)  # batch 32 // pl_batch_shrink 2, on z for a plain generator
        return lengths

    monkeypatch.setattr(lazy, "path_lengths", recording)
    L.seed_everything(0)
    callback = LazyRegularization(r1_gamma=0.0, pl_weight=2.0, pl_interval=1, pl_decay=0.25)
    trainer = fit(tmp_path, toy(), callback, num_samples=96)
    assert len(seen) == 3
    mean = torch.zeros([])
    for lengths in seen:
        mean = mean + 0.25 * (lengths.mean() - mean)
    assert callback.pl_mean.item() == pytest.approx(mean.item(), rel=1e-6)
    assert trainer.callback_metrics["train/pl_mean"].item() == pytest.approx(mean.item(), rel=1e-6)
    assert trainer.callback_metrics["train/pl"].item() == pytest.approx((seen[-1] - mean).pow(2).mean().item(), rel=1e-5)


# Settings.


def test_r1_on_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="R1 is on twice.*model.init_args.r1_gamma: 0"):
        fit(tmp_path, toy(r1_gamma=1.0), LazyRegularization(r1_gamma=10.0))
    fit(tmp_path, toy(r1_gamma=1.0), LazyRegularization(r1_gamma=0.0, pl_weight=2.0), num_samples=32)  # path length alone is fine


@pytest.mark.parametrize("setting", [dict(r1_interval=0), dict(pl_interval=0), dict(pl_batch_shrink=0), dict(r1_gamma=-1.0),
                                     dict(pl_weight=-2.0), dict(pl_decay=1.5)])
def test_bad_settings_are_rejected(setting: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(setting))):
        LazyRegularization(**setting)


# Real generators.


class TinyMapping(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__()
        self.num_ws = num_ws
        self.net = nn.Sequential(nn.Linear(z_dim, w_dim), nn.LeakyReLU(0.2), nn.Linear(w_dim, w_dim))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z).unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim], one w broadcast


class TinySynthesis(nn.Module):
    """A learned constant, modulated by one w per layer, upsampled 4 -> 16."""

    def __init__(self, w_dim: int, num_ws: int, channels: int = 8) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(channels, 4, 4))
        self.styles = nn.ModuleList(nn.Linear(w_dim, channels) for _ in range(num_ws))
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(num_ws - 1))
        self.to_rgb = nn.Conv2d(channels, 1, 1)
        self.batch_sizes: list[int] = []

    def forward(self, ws: Tensor) -> Tensor:
        self.batch_sizes.append(ws.shape[0])
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, conv in enumerate(self.convs):
            x = conv(x * (1 + self.styles[i](ws[:, i]))[:, :, None, None])
            x = nn.functional.interpolate(nn.functional.leaky_relu(x, 0.2), scale_factor=2)
        return torch.tanh(self.to_rgb(x * (1 + self.styles[-1](ws[:, -1]))[:, :, None, None]))


class TinyStyleGenerator(nn.Module):
    def __init__(self, z_dim: int = 8, w_dim: int = 8, num_ws: int = 3) -> None:
        super().__init__()
        self.mapping = TinyMapping(z_dim, w_dim, num_ws)
        self.synthesis = TinySynthesis(w_dim, num_ws)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.synthesis(self.mapping(z, labels))


def image_loader() -> DataLoader:
    images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return DataLoader(TensorDataset(images, torch.zeros(64)), batch_size=16, shuffle=True)


@pytest.mark.parametrize("kind", ["dcgan", "style"])
def test_image_generators_train_with_both_regularisers(tmp_path: Path, kind: str) -> None:
    L.seed_everything(0)
    if kind == "dcgan":
        model = DCGAN(img_resolution=16, img_channels=1, ngf=8, ndf=8, z_dim=8)
    else:
        model = GANModule(TinyStyleGenerator(), DCGANDiscriminator(16, 1, 8), z_dim=8, betas=(0.0, 0.99), lr_g=2e-3, lr_d=2e-3)
    callback = LazyRegularization(r1_gamma=1.0, r1_interval=2, pl_weight=2.0, pl_interval=2)
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=2, callbacks=[callback])
    trainer.fit(model, image_loader())
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            assert value.isfinite().all(), f"{name} has non-finite values"
    metrics = trainer.callback_metrics
    assert all(metrics[k].isfinite() for k in ("train/r1", "train/pl", "train/d_loss", "train/g_loss"))
    assert metrics["train/pl_mean"] > 0
    if kind == "style":
        # 8 batches of 16: 8 G steps and 8 D fakes of 16, plus 4 path length batches of 16 // 2 through synthesis(w).
        assert sorted(model.generator.synthesis.batch_sizes).count(8) == 4


# Checkpoints.


def test_resume_continues_identically(tmp_path: Path) -> None:
    def run(root: Path, max_epochs: int, ckpt_path: str | None = None) -> tuple[GAN, LazyRegularization, L.Trainer]:
        L.seed_everything(123)
        model = toy(d_input_dropout=0.1)
        callback = LazyRegularization(r1_gamma=1.0, r1_interval=3, pl_weight=2.0, pl_interval=3)  # periods cross epochs
        trainer = fit(root, model, callback, max_epochs=max_epochs, ckpt_path=ckpt_path)
        return model, callback, trainer

    straight, straight_cb, straight_trainer = run(tmp_path / "straight", 2)
    run(tmp_path / "resumed", 1)
    resumed, resumed_cb, resumed_trainer = run(tmp_path / "resumed", 2, str(tmp_path / "resumed" / "ckpt" / "last.ckpt"))
    assert resumed_trainer.global_step == straight_trainer.global_step
    assert resumed_cb.d_steps == straight_cb.d_steps == 16
    assert resumed_cb.pl_mean > 0
    assert torch.equal(resumed_cb.pl_mean, straight_cb.pl_mean)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), f"{name} differs after resume"


DDP_SCRIPT = '''
import sys
from pathlib import Path
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from callbacks import LazyRegularization
from gans import DCGAN

out = Path(sys.argv[1])
L.seed_everything(0)
model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=8, shuffle=True)
lazy = LazyRegularization(r1_gamma=1.0, r1_interval=2, pl_weight=2.0, pl_interval=2)
trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, callbacks=[lazy])
trainer.fit(model, loader)
state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
# Each rank draws its own latents (gans.training.core), so only the reduction keeps pl_mean equal across ranks.
torch.save({"state": state, "pl_mean": lazy.pl_mean, "z": model.sample_z(4)}, out / f"rank{trainer.global_rank}.pt")
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
    assert rank0["pl_mean"] > 0 and torch.equal(rank0["pl_mean"], rank1["pl_mean"])
    for name, value in rank0["state"].items():  # batch-norm statistics of the extra forwards included
        assert torch.equal(value, rank1["state"][name]), f"{name} differs across ranks"
