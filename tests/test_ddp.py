"""DDP with 2 CPU processes (gloo): parameters and buffers stay identical across ranks."""

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import run_ranks, write_folder

from gans.training import distributed

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fit.py"
CONFIG_DIR = Path(__file__).parents[1] / "experiments"


def fit_on_two_ranks(tmp_path: Path, model: str, *args: str) -> tuple[dict, dict]:
    """Run ``ddp_fit.py`` for ``model`` on 2 CPU processes and return each rank's record."""
    run_ranks(SCRIPT, tmp_path, model, *args, cwd=tmp_path)
    return tuple(torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))


@pytest.mark.parametrize("model", ["dcgan", "wgan_gp"])
def test_ddp_two_processes_keep_ranks_identical(tmp_path: Path, model: str) -> None:
    rank0, rank1 = fit_on_two_ranks(tmp_path, model)
    # Both networks trained: every floating-point parameter moved on both ranks.
    moved = [k for k, v in rank0["after"].items() if v.is_floating_point() and not torch.equal(v, rank0["before"][k])]
    assert any(k.startswith("generator.") for k in moved) and any(k.startswith("discriminator.") for k in moved)
    for name, value in rank0["after"].items():
        assert torch.equal(value, rank1["after"][name]), f"{name} differs across ranks"
    # 12 optimizer steps with n_critic 2 = 8 batches (8 D + 4 G steps); images counted over both ranks.
    assert rank0["g_steps"] == rank1["g_steps"] == 4
    assert rank0["images_seen"] == rank1["images_seen"] == 8 * 8 * 2


def test_ddp_progressive_growing_keeps_ranks_identical_through_every_phase(tmp_path: Path) -> None:
    """ProGAN grown 4 -> 16 on 2 processes: the schedule (from the images of both ranks), the rebuilt dataloaders
    with a per-resolution batch size, the optimizer resets and the blocks a stage does not use (DDP's unused
    parameters) leave the ranks identical, at the same stage."""
    write_folder(tmp_path / "images", n=32, size=(16, 16))
    rank0, rank1 = fit_on_two_ranks(tmp_path, "progan", str(tmp_path / "images"))
    for name, value in rank0["after"].items():
        assert torch.equal(value, rank1["after"][name]), f"{name} differs across ranks"
    moved = {k for k, v in rank0["after"].items() if v.is_floating_point() and not torch.equal(v, rank0["before"][k])}
    assert {"generator.to_rgb.16.weight", "discriminator.from_rgb.16.weight", "generator.to_rgb.4.weight"} <= moved
    assert rank0["images_seen"] == rank1["images_seen"] == 32 + 32 + 32 + 32 + 2 * 8 * 2
    assert (rank0["resolution"], rank0["alpha"], rank0["batch_size"]) == (rank1["resolution"], rank1["alpha"], rank1["batch_size"]) == (16, 1.0, 8)


def test_ddp_stylegan2_with_lazy_regularisation_keeps_ranks_identical(tmp_path: Path) -> None:
    """A conditional StyleGAN2 with style mixing (each rank draws its own crossover), lazy R1 and path length
    (the running mean reduced over ranks) and EMA on 2 processes: every parameter and buffer (the tracked
    average w, averaged at the end of fit) is identical on both ranks, and so is the path length mean."""
    rank0, rank1 = fit_on_two_ranks(tmp_path, "stylegan2")
    for name, value in rank0["after"].items():
        assert torch.equal(value, rank1["after"][name]), f"{name} differs across ranks"
    before, after = rank0["before"], rank0["after"]
    moved = {k.split(".")[0] for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])}
    assert {"generator", "discriminator"} <= moved
    assert not torch.equal(after["generator_ema.synthesis.b16.conv1.weight"], after["generator.synthesis.b16.conv1.weight"])
    assert not torch.equal(rank0["after"]["generator.mapping.w_avg"], rank0["before"]["generator.mapping.w_avg"])
    # max_steps 46 = 15 batches of a D and a G step, plus R1 and path length steps at batches 0, 2, ..., 14.
    assert rank0["d_steps"] == rank1["d_steps"] == rank0["g_steps"] == rank1["g_steps"] == 15
    assert rank0["pl_mean"] > 0 and torch.equal(rank0["pl_mean"], rank1["pl_mean"])


def test_ddp_biggan_keeps_ranks_identical_with_cross_replica_batch_norm(tmp_path: Path) -> None:
    """A tiny conditional BigGAN on 2 processes: every parameter and buffer (spectral norms' u and v, BN statistics,
    the EMA copy) is identical on both ranks; G's BN statistics are identical after every batch (cross-replica BN,
    not only the averaging at the end of fit); and a cross-replica BN gives each rank the output and the input gradient
    of one batch norm over both ranks' data (the loss being the sum of the ranks' losses)."""
    rank0, rank1 = fit_on_two_ranks(tmp_path, "biggan")
    for name, value in rank0["after"].items():
        assert torch.equal(value, rank1["after"][name]), f"{name} differs across ranks"
    before, after = rank0["before"], rank0["after"]
    moved = {k.split(".")[0] for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])}
    assert {"generator", "discriminator"} <= moved
    assert any("_u" in k and not torch.equal(before[k], after[k]) for k in before if k.startswith("discriminator."))  # power iterations ran
    conv = "generator.blocks.0.conv1.parametrizations.weight.original"
    assert not torch.equal(after[conv.replace("generator.", "generator_ema.", 1)], after[conv])  # EMA averaged after its start
    assert rank0["g_steps"] == rank1["g_steps"] == 4 and rank0["images_seen"] == 8 * 8 * 2
    # G's BN statistics: the same on both ranks after every batch, and moving.
    assert rank0["stats"].shape[0] == 8 and torch.equal(rank0["stats"], rank1["stats"])
    assert not torch.equal(rank0["stats"][0], rank0["stats"][-1])
    # One batch norm over both ranks' data, computed here on one process.
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))
    x = torch.cat([rank0["bn"]["x"], rank1["bn"]["x"]]).requires_grad_(True)
    y = bn(x)
    (y * torch.cat([rank0["bn"]["w"], rank1["bn"]["w"]])).sum().backward()
    for r, rank in enumerate((rank0, rank1)):
        torch.testing.assert_close(rank["bn"]["y"], y.detach()[4 * r : 4 * r + 4], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rank["bn"]["x_grad"], x.grad[4 * r : 4 * r + 4], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rank["bn"]["running_mean"], bn.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rank["bn"]["running_var"], bn.running_var, rtol=1e-5, atol=1e-6)
    # The affine gradient on each rank is its own data's part (DDP would average it): the two add up to the whole.
    torch.testing.assert_close(rank0["bn"]["weight_grad"] + rank1["bn"]["weight_grad"], bn.weight.grad, rtol=1e-4, atol=1e-5)


def test_ddp_cyclegan_keeps_all_four_networks_identical_across_ranks(tmp_path: Path) -> None:
    """A tiny CycleGAN on 2 processes with different data per rank: both generators (one optimizer) and both
    discriminators (another) move and stay identical on the ranks, as do the EMA copies and the lr schedule; each
    rank's history pools hold its own fakes."""
    rank0, rank1 = fit_on_two_ranks(tmp_path, "cyclegan")
    for name, value in rank0["after"].items():
        assert torch.equal(value, rank1["after"][name]), f"{name} differs across ranks"
    before, after = rank0["before"], rank0["after"]
    moved = {k.split(".")[0] for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])}
    assert {"generator_ab", "generator_ba", "discriminator_a", "discriminator_b"} <= moved
    assert {"generator_ab_ema", "generator_ba_ema"} <= set(k.split(".")[0] for k in after)
    assert rank0["g_steps"] == rank1["g_steps"] == 6 and rank0["images_seen"] == 6 * 2 * 2
    assert rank0["lr"] == rank1["lr"] == pytest.approx([1e-4, 1e-4])  # after 6 steps: 1 - (6 + 1 - 2) / (9 + 1) of 2e-4
    for name in ("fake_a", "fake_b"):
        assert len(rank0["pools"][name]) == 2 and not torch.equal(rank0["pools"][name], rank1["pools"][name])


EXPERIMENTS = Path(__file__).parent / "scripts" / "ddp_experiments.py"


def test_every_experiment_runs_its_callbacks_to_the_end_of_fit_on_two_ranks(mnist_root: Path, tmp_path: Path) -> None:
    """Every experiments/ config (but neural style transfer, which optimises one image on one process) fits 4 steps on
    tiny data on 2 processes, in one launch, and every callback runs to the end of fit on both ranks: no rank-0-only
    code (a sample grid, a picture's run folder, a checkpoint's name, the W&B run id) enters a collective alone, which
    would pair it with another rank's next collective and end the run ("Connection closed by peer") or hang it."""
    from test_experiments import EXPERIMENTS as CONFIGS
    from test_experiments import STYLE_TRANSFER

    names = [p.stem for p in CONFIGS if p not in STYLE_TRANSFER]
    run_ranks(EXPERIMENTS, tmp_path, mnist_root, *names, cwd=tmp_path, timeout=400)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert list(rank0) == list(rank1) == names
    for name in names:
        ours, theirs = rank0[name], rank1[name]
        assert ours["world_size"] == 2, name
        assert ours["global_step"] == theirs["global_step"] > 0 and ours["images_seen"] == theirs["images_seen"] > 0, name
        assert ours["metrics"].keys() == theirs["metrics"].keys(), name  # FID, PPL, conditional accuracy at the end
        for metric, value in ours["metrics"].items():
            assert value == pytest.approx(theirs["metrics"][metric], rel=1e-5, abs=1e-6), f"{name}: {metric} differs across ranks"
        assert ours["pictures"], f"{name}: rank 0 left no sample picture"
        callbacks = {c["class_path"] for c in yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())["trainer"].get("callbacks", [])}
        if "callbacks.KimgCheckpoint" in callbacks:
            assert "last.ckpt" in ours["checkpoints"], name
        for metric in ("FID", "PPL"):
            if f"callbacks.{metric}" in callbacks:
                assert f"metrics/{metric.lower()}" in ours["metrics"], name


PROPERTIES = Path(__file__).parent / "scripts" / "ddp_properties.py"


def _gradients(loss_fn, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    module.zero_grad(set_to_none=True)
    loss_fn().backward()
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.fixture(scope="session")  # once per xdist worker that runs one of its tests (a module fixture can be torn down between them)
def ddp_records(tmp_path_factory) -> tuple[dict, dict, dict]:
    """Each rank's record, and the checkpoint written mid-fit."""
    out = tmp_path_factory.mktemp("ddp_properties")
    run_ranks(PROPERTIES, out, cwd=out)
    ranks = tuple(torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    return (*ranks, torch.load(out / "mid.ckpt", weights_only=True))


def test_ddp_ranks_draw_different_latents(ddp_records) -> None:
    rank0, rank1, _ = ddp_records
    assert not torch.allclose(rank0["first_fake"], rank1["first_fake"])
    assert not torch.equal(rank0["g_z"], rank1["g_z"])


def test_ddp_update_uses_the_mean_of_the_ranks_gradients(ddp_records) -> None:
    """Each rank's gradient recomputed here from its recorded inputs; SGD's first step is -lr * gradient, so
    the applied update tells a mean (right) from a sum (twice as large) or a rank's own gradient."""
    sys.path.insert(0, str(PROPERTIES.parent))
    from ddp_properties import LR, Recorded

    rank0, rank1, _ = ddp_records
    model = Recorded()
    model._log_now = False
    # D's first step.
    model.discriminator.load_state_dict(rank0["d_before"])
    params = [name for name, _ in model.discriminator.named_parameters()]
    assert all(torch.equal(rank0["d_before"][k], rank1["d_before"][k]) for k in params)  # BN statistics may differ: the
    # snapshot was taken after D's forward, and in training mode BN uses batch statistics
    grads = [_gradients(lambda r=r: model.discriminator_loss(r["real"], r["fake"]), model.discriminator) for r in (rank0, rank1)]
    assert not torch.allclose(grads[0]["net.0.weight"], grads[1]["net.0.weight"])  # the ranks had different data
    for name, p in model.discriminator.named_parameters():
        if name.startswith("unused"):
            continue
        expected = rank0["d_before"][name] - LR * (grads[0][name] + grads[1][name]) / 2
        for rank in (rank0, rank1):
            torch.testing.assert_close(rank["d_after_first"][name], expected, rtol=1e-5, atol=1e-6, msg=name)
    # G's first step: one optimizer over two networks (generator and premap), both averaged.
    model.discriminator.load_state_dict(rank0["g_d_state"])
    model.generator.load_state_dict({k[len("generator."):]: v for k, v in rank0["g_before"].items() if k.startswith("generator.")})
    model.premap.load_state_dict({k[len("premap."):]: v for k, v in rank0["g_before"].items() if k.startswith("premap.")})
    both = torch.nn.ModuleDict({"generator": model.generator, "premap": model.premap})
    grads = [_gradients(lambda r=r: model.generator_loss(model(r["g_z"])), both) for r in (rank0, rank1)]
    for name, _ in both.named_parameters():
        expected = rank0["g_before"][name] - LR * (grads[0][name] + grads[1][name]) / 2
        for rank in (rank0, rank1):
            torch.testing.assert_close(rank["g_after_first"][name], expected, rtol=1e-5, atol=1e-6, msg=name)


def test_ddp_nan_on_one_rank_skips_the_update_on_both(ddp_records) -> None:
    """Rank 1's D loss is NaN at one batch while its gradients are finite, so the averaged gradients are finite too:
    both ranks skip that update only because the core turns a NaN loss into NaN gradients (its poisoning)."""
    rank0, rank1, _ = ddp_records
    for rank in (rank0, rank1):
        before, after = rank["d_around_nan"]
        assert all(torch.equal(before[k], after[k]) for k, v in before.items() if "running" not in k and "num_batches" not in k)
        assert rank["nonfinite_steps"] == 1
    assert all(torch.isfinite(v).all() for v in rank0["final"].values() if v.is_floating_point())


def test_ddp_unused_parameters_are_never_stepped_and_ranks_stay_identical(ddp_records) -> None:
    rank0, rank1, _ = ddp_records
    for rank in (rank0, rank1):
        assert rank["unused_grad"] is None and rank["unused_state"] == 0  # no zero gradient, no momentum buffer
        assert torch.equal(rank["final"]["discriminator.unused.weight"], rank0["d_before"]["unused.weight"])
    for name, value in rank0["final"].items():
        assert torch.equal(value, rank1["final"][name]), f"{name} differs across ranks"
    assert rank0["g_steps"] == rank1["g_steps"] == 4  # 64 images / 2 ranks / batch 8
    assert rank0["images_seen"] == rank1["images_seen"] == 64


def test_ddp_checkpoint_holds_averaged_buffers_and_leaves_each_ranks_own(ddp_records) -> None:
    """A checkpoint written mid-fit holds the buffers averaged over ranks, each in its own dtype (a float64 buffer is
    not rounded through float32), and each rank's own for a resume, while the live buffers, which follow each rank's own
    data, are left as they were."""
    rank0, rank1, checkpoint = ddp_records
    (before0, after0), (before1, after1) = rank0["buffers_around_save"], rank1["buffers_around_save"]
    for before, after in ((before0, after0), (before1, after1)):
        for name, value in before.items():
            assert after[name].dtype == value.dtype and torch.equal(after[name], value), f"saving changed {name}"
    bn = [name for name in before0 if name.endswith("running_mean")]
    assert bn and not any(torch.allclose(before0[name], before1[name]) for name in bn)  # each rank's own statistics
    state = checkpoint["state_dict"]
    for name, value in before0.items():
        assert state[name].dtype == value.dtype, name
        torch.testing.assert_close(state[name], (value + before1[name]) / 2, rtol=1e-6, atol=1e-7, msg=name)
    precise = state["discriminator.precise"]  # 1 + 1e-12 on rank 0, 1 + 2e-12 on rank 1
    torch.testing.assert_close(precise, torch.full((3,), 1 + 1.5e-12, dtype=torch.float64), rtol=0, atol=1e-15)
    for saved, own in zip(checkpoint["gan_progress"]["rank_buffers"], (before0, before1), strict=True):  # for a resume
        assert saved.keys() == own.keys() and all(torch.equal(saved[name], own[name]) for name in own)


class OtherRankTriples:
    """A 2-rank strategy as one rank sees it when the other holds three times its values: the mean is twice its own."""

    world_size = 2

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "mean"
        return tensor * 2


def test_buffers_averaged_for_an_evaluation_are_put_back() -> None:
    """FID and PPL sample with the buffers averaged over ranks; afterwards each rank has its own back, in its dtype."""
    module = torch.nn.BatchNorm1d(3)
    module.running_mean.fill_(0.25)
    module.register_buffer("low", torch.full((2,), 0.5, dtype=torch.float16))
    module.register_buffer("precise", torch.full((2,), 1 + 1e-12, dtype=torch.float64))
    own = {name: b.clone() for name, b in module.named_buffers()}
    with distributed.buffers_averaged(OtherRankTriples(), module):
        assert torch.equal(module.running_mean, torch.full((3,), 0.5)) and torch.equal(module.running_var, torch.full((3,), 2.0))
        assert module.low.dtype == torch.float16 and torch.equal(module.low, torch.ones(2, dtype=torch.float16))
        assert torch.equal(module.precise, torch.full((2,), 2 + 2e-12, dtype=torch.float64))
        assert int(module.num_batches_tracked) == 0  # integer buffers count the same on every rank: not averaged
    for name, b in module.named_buffers():
        assert b.dtype == own[name].dtype and torch.equal(b, own[name]), name


RESUME = Path(__file__).parent / "scripts" / "ddp_resume.py"


def _run(tmp_path: Path, mode: str) -> None:
    run_ranks(RESUME, tmp_path, mode, cwd=tmp_path, timeout=400)


def test_ddp_resume_continues_as_the_uninterrupted_two_process_run(tmp_path: Path) -> None:
    _run(tmp_path, "ddp")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for rank in ranks:
        assert rank["images_seen"] == (128, 128)
        for name, value in rank["straight"].items():  # G, D, EMA G, BN statistics, counters
            assert torch.equal(value, rank["resumed"][name]), f"{name} differs after resume"
        assert torch.equal(rank["straight_draw"], rank["resumed_draw"])  # each rank's RNG continues where it was
    assert not torch.equal(ranks[0]["straight_draw"], ranks[1]["straight_draw"])  # ... and the ranks' streams differ


def test_ddp_spawn_hands_counters_growth_stage_and_ema_generator_to_the_launching_process(tmp_path: Path) -> None:
    """Under ddp_spawn the launching process gets rank 0's weights through ``load_state_dict``: its model must end as the
    workers' did (the counters, the stage of a growing model mid fade-in, and the EMA generator, which only the workers'
    callback created), or sampling and predict there silently use the raw generator at the wrong stage."""
    _run(tmp_path, "ddp_spawn")
    worker, launcher = (torch.load(tmp_path / name, weights_only=True) for name in ("worker.pt", "spawn.pt"))
    assert worker["counters"] == launcher["counters"] == {"images_seen": 64, "g_steps": 4, "batches": 4}
    assert worker["stages"] == launcher["stages"] == [(8, 0.25)] * 3  # G, D and the EMA G, mid fade-in
    assert launcher["ema"] is not None, "the launching process has no EMA generator"
    assert launcher["ema"].keys() == worker["ema"].keys()
    for name, value in worker["ema"].items():
        assert torch.equal(launcher["ema"][name], value), name
    assert any(not torch.equal(worker["ema"][k], v) for k, v in worker["generator"].items() if v.is_floating_point())  # averaged
