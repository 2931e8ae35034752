"""SNGAN (Miyato et al. 2018) and the projection cGAN (Miyato & Koyama 2018): parameter counts against the official
networks, shapes, spectral norm on every D weight, the power-iteration vectors in checkpoints, the projection
output by hand and the label flow through G's conditional batch norm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import count_parameters, quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from gans import SNGAN, ProjectionGAN
from gans.errors import ConfigError
from gans.models.conditional.sngan import SNGANDiscriminator, SNGANGenerator

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread (tests/conftest.py)


# Counts of the official Chainer networks (pfnet-research/sngan_projection: gen_models/resnet_32.py and
# dis_models/snresnet_32.py with ch 256 / 128, the CIFAR-10 configs; resnet_64.py / snresnet_64.py with ch 64) and of
# the standard CNN of the SNGAN paper's Table 3 (G as chainer-gan-lib's DCGANGenerator: biases, BN after the dense
# layer), RGB, z 128. Each was also summed by hand layer by layer, e.g. the 32 px D: optimized block 151,680, down
# block 311,680, two plain blocks 2 x 295,168, dense 128 (no bias) = 1,053,824; the projection adds the 10 x 128 table,
# and conditional BN turns each of the 6 BN layers' 2C parameters into 2 x 10 x C (+9,216 per block).
PAPER_COUNTS = [
    (dict(), 4_276_739, 1_053_824),
    (dict(num_classes=10), 4_304_387, 1_055_104),
    (dict(img_resolution=64), 12_220_675, 10_141_441),
    (dict(architecture="cnn"), 3_828_739, 2_935_873),
]


@pytest.mark.parametrize("settings, g_params, d_params", PAPER_COUNTS, ids=["resnet32", "projection32", "resnet64", "cnn32"])
def test_parameter_counts_match_the_official_networks(settings: dict, g_params: int, d_params: int) -> None:
    model = SNGAN(**settings)
    assert (count_parameters(model.generator), count_parameters(model.discriminator)) == (g_params, d_params)


def test_paper_recipe_and_class_embedding_sizes() -> None:
    model = ProjectionGAN(num_classes=[12, 10], g_ch=8, d_ch=8)
    hp = model.hparams
    assert (hp.loss, hp.n_critic, hp.lr_g, hp.lr_d, tuple(hp.betas), hp.z_dim) == ("hinge", 5, 2e-4, 2e-4, (0.0, 0.9), 128)
    # One embedding row per class of every head (hair and eye), width = the pooled features; CBN reads the 22-d tag vector.
    assert model.discriminator.head.embed.embedding.parametrizations.weight.original.shape == (22, 8)
    assert model.generator.blocks[0].norm1.gain.weight.shape == (8, 22)


@pytest.mark.parametrize(
    "architecture, resolution, heads",
    [("resnet", 32, ()), ("resnet", 64, (3,)), ("cnn", 48, (3, 2)), ("cnn", 16, ())],
)
def test_shapes(architecture: str, resolution: int, heads: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    ch = 2 if resolution == 64 else 8
    g = SNGANGenerator(16, resolution, 3, architecture, ch * (4 if architecture == "cnn" else 1), heads)
    d = SNGANDiscriminator(resolution, 3, architecture, ch, heads)
    labels = None
    if heads:
        labels = torch.stack([torch.randint(0, k, (4,)) for k in heads], dim=1)
        labels = labels[:, 0] if len(heads) == 1 else labels
    x = g(torch.randn(4, 16), labels)
    assert x.shape == (4, 3, resolution, resolution) and x.abs().max() <= 1
    assert d(x, labels).shape == (4,)


def test_bad_configs_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="32 or 64"):
        SNGAN(img_resolution=48)
    with pytest.raises(ConfigError, match="multiple of 8"):
        SNGAN(architecture="cnn", img_resolution=20)
    with pytest.raises(ConfigError, match="use SNGAN"):
        ProjectionGAN(num_classes=0)
    with pytest.raises(ConfigError, match="max_kimg"):
        SNGAN(lr_decay=True)
    with pytest.raises(ConfigError, match="resnet' or 'cnn"):
        SNGAN(architecture="mlp")


@pytest.mark.parametrize("settings", [dict(), dict(num_classes=[3, 2]), dict(architecture="cnn", img_resolution=16, num_classes=4)],
                         ids=["resnet", "projection", "cnn-projection"])
def test_every_discriminator_weight_is_spectrally_normalised(settings: dict) -> None:
    model = SNGAN(g_ch=8, d_ch=8, **settings)
    names = [name for name, _ in model.discriminator.named_parameters()]
    plain = [name for name in names if not (name.endswith("parametrizations.weight.original") or name.endswith(".bias"))]
    assert not plain, f"unnormalised weights in D: {plain}"
    weights = [name for name in names if name.endswith("original")]
    layers = [m for m in model.discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert len(weights) == len(layers) > 0
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    # G is not normalised (SN is the discriminator's constraint in both papers).
    assert not any("parametrizations" in name for name, _ in model.generator.named_parameters())


@pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered.*")
@pytest.mark.parametrize("settings", [dict(), dict(num_classes=[3, 2]), dict(architecture="cnn", img_resolution=16, num_classes=4)],
                         ids=["resnet", "projection", "cnn-projection"])
def test_every_parameter_gets_a_gradient_from_its_loss(settings: dict) -> None:
    torch.manual_seed(0)
    model = SNGAN(z_dim=16, g_ch=8, d_ch=8, **settings)
    real = torch.rand(6, 3, model.data_shape[-1], model.data_shape[-1]) * 2 - 1
    labels = model.label_space.for_indices(torch.arange(6))
    fake = model(model.sample_z(6), labels)
    model.discriminator_loss(real, fake.detach(), labels).backward()
    # Allowed: D's output bias, whose hinge-loss gradient is (#fake with margin - #real with margin) / N, 0 when both
    # batches are inside the margin (as here at init).
    missing = [name for name, p in model.discriminator.named_parameters() if (p.grad is None or not p.grad.abs().sum() > 0) and name != "head.linear.bias"]
    assert not missing, f"D parameters without a gradient from the D loss: {missing}"
    model.generator_loss(fake, labels).backward()
    missing = [name for name, p in model.generator.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"G parameters without a gradient from the G loss: {missing}"


def power_vectors(model: SNGAN) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.discriminator.state_dict().items() if k.endswith("._u") or k.endswith("._v")}


def test_power_iteration_vectors_are_checkpointed_and_restored_on_resume(tmp_path: Path) -> None:
    images = torch.rand(16, 3, 16, 16) * 2 - 1
    loader = lambda: DataLoader(TensorDataset(images, torch.zeros(16, dtype=torch.long)), batch_size=8)  # noqa: E731
    settings = dict(architecture="cnn", img_resolution=16, g_ch=16, d_ch=4, n_critic=1, lr_decay=True, max_kimg=1.0)
    torch.manual_seed(0)
    model = SNGAN(**settings)
    start = power_vectors(model)
    trainer = quiet_trainer(tmp_path, max_steps=4)  # 2 batches: D and G steps
    trainer.fit(model, train_dataloaders=loader())
    trained = power_vectors(model)
    moved = [k for k in start if start[k].numel() > 1]  # a 1-row weight's u is the constant [1]
    assert all(not torch.equal(start[k], trained[k]) for k in moved), "u/v did not move in training forwards"
    # The linear decay to 0 at max_kimg: the second batch ran with the rate for 8 of 1000 images seen.
    assert all(opt.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - 8 / 1000)) for opt in model.optimizers())
    path = tmp_path / "sngan.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["state_dict"]
    assert all(torch.equal(saved[f"discriminator.{k}"], trained[k]) for k in trained)

    torch.manual_seed(1)
    resumed = SNGAN(**settings)
    assert not all(torch.equal(power_vectors(resumed)[k], trained[k]) for k in trained)
    quiet_trainer(tmp_path, max_steps=4).fit(resumed, train_dataloaders=loader(), ckpt_path=path)  # restores, nothing left to run
    restored = power_vectors(resumed)
    assert all(torch.equal(restored[k], trained[k]) for k in trained)


def test_projection_output_against_a_hand_computation() -> None:
    """D(x, y) = psi(phi(x)) + <V_hair[y0] + V_eye[y1], phi(x)>, with every spectrally normalised matrix rebuilt
    by hand from its raw weight and the stored power-iteration vectors: W / (u^T W v)."""
    torch.manual_seed(0)
    d = SNGANDiscriminator(32, 3, "resnet", 8, heads=(3, 2))
    x = torch.randn(2, 3, 32, 32)
    d.train()
    for _ in range(3):
        d(x, torch.tensor([[0, 1], [2, 0]]))  # move u and v off their start
    d.eval()

    def normalised(module: torch.nn.Module) -> torch.Tensor:
        raw = module.parametrizations.weight.original.detach()
        sn = module.parametrizations.weight[0]
        matrix = raw.flatten(1)
        return raw / (sn._u @ matrix @ sn._v)

    labels = torch.tensor([[2, 1], [0, 0]])
    with torch.no_grad():
        phi = d.features(x)
        w_out, table = normalised(d.head.linear), normalised(d.head.embed.embedding)
        expected = phi @ w_out[0] + ((table[labels[:, 0]] + table[3 + labels[:, 1]]) * phi).sum(dim=1)
        torch.testing.assert_close(d(x, labels), expected, rtol=1e-5, atol=1e-5)
        # The class term is what changes with the label: the same images with other labels differ by it alone.
        other = torch.tensor([[1, 0], [0, 1]])
        class_term = lambda y: table[y[:, 0]] + table[3 + y[:, 1]]  # noqa: E731
        torch.testing.assert_close(d(x, labels) - d(x, other), ((class_term(labels) - class_term(other)) * phi).sum(1), rtol=1e-4, atol=1e-4)


def test_conditional_generator_reads_every_head() -> None:
    torch.manual_seed(0)
    g = SNGANGenerator(16, 32, 3, "resnet", 8, heads=(3, 2))
    z = torch.randn(1, 16).expand(4, 16)
    labels = torch.tensor([[0, 0], [0, 0], [0, 1], [2, 0]])
    with torch.no_grad():
        assert torch.equal(g(z, labels)[0], g(z, labels)[2])  # conditional BN starts at gain 1, bias 0 for every class
        for block in g.blocks:
            for norm in (block.norm1, block.norm2):
                norm.gain.weight.normal_()
                norm.bias.weight.normal_()
        g.eval()
        out = g(z, labels)
    assert torch.equal(out[0], out[1])
    assert not torch.allclose(out[0], out[2]) and not torch.allclose(out[0], out[3])  # the eye head and the hair head


def test_label_flow_moves_class_samples_toward_their_class(tmp_path: Path) -> None:
    """A toy labelled set: class 0 dark images, class 1 bright ones. G's class samples start identical (conditional
    BN at gain 1, bias 0 for every class); a few training steps of the projection cGAN pull each class's samples
    apart, each class's toward its own colour: class 1's samples end brighter than class 0's (closer to the bright data,
    farther from the dark data)."""
    torch.manual_seed(1)
    n, res = 64, 16
    labels = torch.arange(n) % 2
    colours = torch.tensor([-0.8, 0.8])
    images = colours[labels].view(n, 1, 1, 1).expand(n, 3, res, res).contiguous()
    loader = DataLoader(TensorDataset(images, labels), batch_size=16, shuffle=True)
    # A recipe for a quick toy (the paper's lr 2e-4, (0, 0.9), n_critic 5 needs far more steps); measured over 10 seeds:
    # the class gap ends between 0.48 and 0.86.
    model = ProjectionGAN(num_classes=2, architecture="cnn", img_resolution=res, z_dim=8, g_ch=32, d_ch=8, n_critic=1,
                          lr_g=5e-3, lr_d=1e-3, betas=(0.5, 0.999))
    z = torch.randn(32, 8)

    def class_means() -> list[float]:
        model.eval()
        with torch.no_grad():
            means = [model.generator(z, torch.full((32,), k)).mean().item() for k in (0, 1)]
        model.train()
        return means

    before = class_means()
    assert before[0] == pytest.approx(before[1], abs=1e-6)
    quiet_trainer(tmp_path, max_steps=60).fit(model, train_dataloaders=loader)  # 30 batches
    dark, bright = class_means()
    assert bright - dark > 0.3, (dark, bright)
