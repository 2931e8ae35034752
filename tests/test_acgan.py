"""ACGAN (gans/models/conditional/acgan.py): both network families, the auxiliary classifier loss, label flow into G, the report's tips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import count_parameters, quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from gans import ACGAN, DCGAN
from gans.errors import ConfigError
from gans.training import gan_module
from gans.training.losses import auxiliary_classifier_loss, logistic_d_loss
from gans.training.tricks import SOFT_FAKE_RANGE, SOFT_REAL_RANGE, label_targets

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
ANIME_CONFIGS = sorted(p for p in EXPERIMENTS.glob("acgan_*.yaml") if "anime" in p.stem)


def tiny(architecture: str, num_classes=(3, 2), **kwargs) -> ACGAN:
    kwargs = {"img_resolution": 16, "img_channels": 3, "z_dim": 8, "ngf": 8, "ndf": 4, **kwargs}
    if architecture == "srresnet":
        kwargs = {"g_blocks": 2, "d_blocks": 1, **kwargs}
    return ACGAN(num_classes=list(num_classes) if not isinstance(num_classes, int) else num_classes, architecture=architecture, **kwargs)


# Shapes and parameter counts.


@pytest.mark.parametrize("architecture", ["dcgan", "srresnet"])
@pytest.mark.parametrize("num_classes", [5, (3, 2)], ids=["one_head", "two_heads"])
def test_shapes_of_both_families(architecture: str, num_classes) -> None:
    model = tiny(architecture, num_classes)
    labels = model.sample_labels(6)
    fake = model(torch.randn(6, 8), labels)
    assert fake.shape == (6, 3, 16, 16) and fake.abs().max() <= 1
    logits, classes = model.discriminator.heads(fake)
    heads = [num_classes] if isinstance(num_classes, int) else list(num_classes)
    assert logits.shape == (6,) and [tuple(c.shape) for c in classes] == [(6, k) for k in heads]
    assert torch.equal(model.discriminator(fake), logits)  # forward = the real/fake logit, for regularisers and callbacks


def test_srresnet_upsampling_stages_scale_with_the_resolution() -> None:
    """16x16 -> R: one pixel-shuffle stage per doubling (2 at 64 px, the paper's 3 at 128); D ends at 2x2."""
    for resolution, stages, d_convs in [(32, 1, 4), (64, 2, 5), (128, 3, 6)]:
        model = ACGAN(num_classes=[12, 10], img_resolution=resolution, img_channels=3, architecture="srresnet", ngf=4, ndf=2, g_blocks=1, d_blocks=1)
        assert len(model.generator.body.upsample) == stages
        assert sum(isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) for m in model.discriminator.modules()) == d_convs


def srresnet_counts(tags: int, z_dim: int, stages: int, d_widths: list[int], c: int = 64, blocks: int = 16) -> tuple[int, int]:
    """Parameter counts of Jin et al.'s G and D (Figures 2-3) written out layer by layer (convs with biases)."""
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    bn = lambda ch: 2 * ch  # noqa: E731
    g = (z_dim + tags) * c * 16 * 16 + c * 16 * 16 + bn(c)  # dense to 64x16x16, BN
    g += blocks * (2 * conv(c, c, 3) + 2 * bn(c)) + bn(c)  # residual blocks, BN after them
    g += stages * (conv(c, 4 * c, 3) + bn(c)) + conv(c, 3, 9)  # pixel-shuffle blocks, 9x9 output conv
    d, w_in = 0, 3
    for i, w in enumerate(d_widths):
        d += conv(w_in, w, 4 if i < 3 else 3) + (2 * 2 * conv(w, w, 3) if i < len(d_widths) - 1 else 0)
        w_in = w
    d += (w_in * 4 + 1) * (1 + tags)  # dense real/fake and tag heads on the 2x2 map
    return g, d


def test_srresnet_parameter_counts_at_the_papers_128px_and_the_reports_64px() -> None:
    # Jin et al. at 128 px: z 128 + 34 tags, D 32 ... 1024 channels (the tag head's 34 outputs in one head).
    paper = ACGAN(num_classes=[34], img_resolution=128, img_channels=3, z_dim=128, architecture="srresnet")
    assert (count_parameters(paper.generator), count_parameters(paper.discriminator)) == srresnet_counts(34, 128, 3, [32, 64, 128, 256, 512, 1024])
    assert (count_parameters(paper.generator), count_parameters(paper.discriminator)) == (4_315_715, 19_078_531)
    # The report's 64 px anime config: z 100 + 12 hair + 10 eye colours, D 32 ... 512.
    anime = ACGAN(num_classes=[12, 10], img_resolution=64, img_channels=3, architecture="srresnet")
    assert (count_parameters(anime.generator), count_parameters(anime.discriminator)) == srresnet_counts(22, 100, 2, [32, 64, 128, 256, 512])
    assert (count_parameters(anime.generator), count_parameters(anime.discriminator)) == (3_512_515, 4_823_415)


def test_dcgan_family_is_dcgan_with_the_tag_vector_in_z_and_class_heads() -> None:
    model = ACGAN(num_classes=10, img_resolution=32, img_channels=1, architecture="dcgan")
    reference = DCGAN(img_resolution=32, img_channels=1, z_dim=110)  # z 100 + one-hot 10
    heads = 256 * 4 * 4 * 10 + 10  # a 10-way linear classifier on D's last 4x4 map of 256 channels
    assert count_parameters(model.generator) == count_parameters(reference.generator) == 1_107_840
    assert count_parameters(model.discriminator) == count_parameters(reference.discriminator) + heads == 702_218


# The auxiliary classifier loss.


def test_aux_loss_against_a_hand_computation() -> None:
    hair = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    eye = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    labels = torch.tensor([[0, 1], [2, 0]])  # [hair, eye] per image

    def nll(logits: list[float], k: int) -> float:
        return -(logits[k] - math.log(sum(math.exp(v) for v in logits)))

    expected = (nll([2, 0, -1], 0) + nll([0.5, 0.5, 3], 2)) / 2 + (nll([1, -1], 1) + nll([0, 2], 0)) / 2
    assert auxiliary_classifier_loss([hair, eye], labels).item() == pytest.approx(expected, rel=1e-6)
    assert auxiliary_classifier_loss([hair], labels[:, 0]).item() == pytest.approx((nll([2, 0, -1], 0) + nll([0.5, 0.5, 3], 2)) / 2, rel=1e-6)
    with pytest.raises(ConfigError, match="label heads"):
        auxiliary_classifier_loss([hair], labels)


@pytest.mark.parametrize("architecture", ["dcgan", "srresnet"])
def test_losses_are_the_adversarial_loss_plus_the_class_loss(architecture: str) -> None:
    """D: -L_S + w (-L_C on real + -L_C on fake); G: the non-saturating loss + w (-L_C on fakes)."""
    torch.manual_seed(0)
    model = tiny(architecture, aux_weight=0.5)
    real, labels = torch.rand(4, 3, 16, 16) * 2 - 1, model.sample_labels(4)
    fake = model(torch.randn(4, 8), labels).detach()
    real_logits, real_classes = model.discriminator.heads(real)
    fake_logits, fake_classes = model.discriminator.heads(fake)
    aux = auxiliary_classifier_loss(real_classes, labels) + auxiliary_classifier_loss(fake_classes, labels)
    expected_d = logistic_d_loss(real_logits, fake_logits) + 0.5 * aux
    assert model.discriminator_loss(real, fake, labels).item() == pytest.approx(expected_d.item(), rel=1e-5)
    expected_g = F.softplus(-fake_logits).mean() + 0.5 * auxiliary_classifier_loss(fake_classes, labels)
    assert model.generator_loss(fake, labels).item() == pytest.approx(expected_g.item(), rel=1e-5)


@pytest.mark.parametrize("architecture", ["dcgan", "srresnet"])
def test_classify_fakes_off_trains_d_classifier_on_real_images_only(architecture: str) -> None:
    """classify_fakes=False: D's class term is -L_C on the real batch alone, so the gradient of D's classifier
    heads does not depend on G's samples (with the paper's term it does); G's loss is unchanged."""
    torch.manual_seed(0)
    model = tiny(architecture, classify_fakes=False)
    paper = tiny(architecture)
    paper.load_state_dict(model.state_dict())
    real, labels = torch.rand(4, 3, 16, 16) * 2 - 1, model.sample_labels(4)
    fakes = [model(torch.randn(4, 8), labels).detach() for _ in range(2)]
    real_logits, real_classes = model.discriminator.heads(real)
    fake_logits, fake_classes = model.discriminator.heads(fakes[0])
    expected_d = logistic_d_loss(real_logits, fake_logits) + auxiliary_classifier_loss(real_classes, labels)
    assert model.discriminator_loss(real, fakes[0], labels).item() == pytest.approx(expected_d.item(), rel=1e-5)
    expected_g = F.softplus(-fake_logits).mean() + auxiliary_classifier_loss(fake_classes, labels)
    assert model.generator_loss(fakes[0], labels).item() == pytest.approx(expected_g.item(), rel=1e-5)

    def classifier_grads(m: ACGAN, fake: torch.Tensor) -> list[torch.Tensor]:
        m.discriminator.zero_grad()
        m.discriminator_loss(real, fake, labels).backward()
        return [p.grad.clone() for p in m.discriminator.classifier.parameters()]

    for a, b in zip(classifier_grads(model, fakes[0]), classifier_grads(model, fakes[1])):
        assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-7)
    assert not all(torch.allclose(a, b, atol=1e-7) for a, b in zip(classifier_grads(paper, fakes[0]), classifier_grads(paper, fakes[1])))


@pytest.mark.parametrize("architecture", ["dcgan", "srresnet"])
def test_every_parameter_gets_a_gradient_from_its_loss(architecture: str) -> None:
    model = tiny(architecture)
    labels = model.sample_labels(4)
    fake = model(torch.randn(4, 8), labels)
    model.generator_loss(fake, labels).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())
    model.zero_grad()
    model.discriminator_loss(torch.rand(4, 3, 16, 16) * 2 - 1, fake.detach(), labels).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator.parameters())


# Label flow: G's class loss moves G's samples for class k toward class k's data.


def class_means(model: ACGAN, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean pixel of G's samples per class, drawn in one mixed batch (batch norm sees both classes)."""
    with torch.no_grad():
        images = model.generator.train()(z, labels)
    return torch.stack([images[labels == k].mean() for k in (0, 1)])


def test_generator_moves_toward_the_requested_class(tmp_path: Path) -> None:
    torch.manual_seed(0)
    colours = torch.tensor([-0.8, 0.8])  # class 0: dark constant images, class 1: bright ones
    labels = torch.arange(64) % 2
    images = colours[labels].view(-1, 1, 1, 1).expand(-1, 1, 16, 16).contiguous()
    model = ACGAN(num_classes=2, img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4, lr_g=5e-3, lr_d=5e-3)
    z, probe = torch.randn(64, 8), torch.arange(64) % 2
    before = (class_means(model, z, probe) - colours).abs()
    quiet_trainer(tmp_path, max_steps=2 * 15).fit(model, DataLoader(TensorDataset(images, labels), batch_size=16, shuffle=True))
    means = class_means(model, z, probe)
    after = (means - colours).abs()
    assert (after < before).all(), (before, after)  # each class's samples are closer to that class's colour
    # And apart, class 0 darker: about 0.18 here (0.19, 0.27 with seeds 2, 1); with aux_weight 0 the two stay within 0.03.
    assert means[1] - means[0] > 0.1, means


# The report's tips through GANModule's switches.


def test_soft_and_noisy_labels_change_the_source_targets_not_the_class_term() -> None:
    torch.manual_seed(0)
    plain = tiny("dcgan")
    tips = tiny("dcgan", soft_labels=True, label_flip_prob=0.3)
    tips.load_state_dict(plain.state_dict())
    real, labels = torch.rand(8, 3, 16, 16) * 2 - 1, plain.sample_labels(8)
    fake = plain(torch.randn(8, 8), labels).detach()
    real_logits, real_classes = plain.discriminator.heads(real)
    fake_logits, fake_classes = plain.discriminator.heads(fake)
    aux = auxiliary_classifier_loss(real_classes, labels) + auxiliary_classifier_loss(fake_classes, labels)

    torch.manual_seed(1)
    with_tips = tips.discriminator_loss(real, fake, labels)
    torch.manual_seed(1)  # the same draws: the targets the tips make
    real_t, fake_t = label_targets(real_logits, True, 0.0, True, 0.3), label_targets(fake_logits, False, 0.0, True, 0.3)
    assert not torch.equal(real_t, torch.ones_like(real_t)) and not torch.equal(fake_t, torch.zeros_like(fake_t))
    assert with_tips.item() == pytest.approx((logistic_d_loss(real_logits, fake_logits, real_t, fake_t) + aux).item(), rel=1e-5)
    assert with_tips.item() != pytest.approx(plain.discriminator_loss(real, fake, labels).item(), rel=1e-3)


@pytest.mark.parametrize("architecture", ["dcgan", "srresnet"])
def test_generator_dropout_stays_on_at_test_time(architecture: str) -> None:
    z, labels = torch.randn(4, 8), torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0]])
    with_dropout, without = tiny(architecture, g_dropout=0.5).eval(), tiny(architecture).eval()
    assert not torch.equal(with_dropout.sample(4, labels, z), with_dropout.sample(4, labels, z))
    assert torch.equal(without.sample(4, labels, z), without.sample(4, labels, z))


def init_args(config: Path) -> dict:
    return yaml.safe_load(config.read_text())["model"]["init_args"]


def test_every_anime_config_is_the_reports_acgan() -> None:
    """The MLDS anime report's ACGAN: D's class loss on real images only (L_cls(D) = E_x~P_data[log P_D(label_x | x)],
    classify_fakes false), its tips (soft targets, G dropout) with label flipping off, Adam 2e-4 (0.5, 0.999)."""
    assert {p.stem for p in ANIME_CONFIGS} >= {"acgan_anime", "acgan_anime_cpu"}
    for config in ANIME_CONFIGS:
        args = init_args(config)
        assert args["classify_fakes"] is False, config.name
        assert args["soft_labels"] is True and args["g_dropout"] == 0.5, config.name
        assert args.get("label_flip_prob", 0) == 0 and args.get("label_smoothing", 0) == 0, config.name
        assert (args["lr_g"], args["lr_d"], args["betas"]) == (2e-4, 2e-4, [0.5, 0.999]), config.name
    # The MNIST config keeps the paper's (Odena et al.) L_C on real and fake, stated in it.
    assert init_args(EXPERIMENTS / "acgan_mnist.yaml")["classify_fakes"] is True


@pytest.mark.parametrize("config", ANIME_CONFIGS, ids=lambda p: p.stem)
def test_anime_configs_draw_soft_targets_per_sample_and_never_flip(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """D's source targets under an anime config (narrowed): each sample's target drawn from U[0.8, 1.2] (real) or
    U[0, 0.2] (fake), different per sample and per step; none flipped to the other side's range."""
    narrow = {"ngf": 4, "ndf": 2, "g_blocks": 1, "d_blocks": 1} if init_args(config)["architecture"] == "srresnet" else {"ngf": 4, "ndf": 4}
    model = ACGAN(**{**init_args(config), **narrow})
    assert not model.hparams.classify_fakes and model.hparams.label_flip_prob == 0
    targets: list[torch.Tensor] = []  # what D's loss is given: real, fake, real, fake
    monkeypatch.setattr(gan_module, "label_targets", lambda *args: targets.append(label_targets(*args)) or targets[-1])
    torch.manual_seed(0)
    logits = torch.zeros(5000)
    for _ in range(2):
        model.adversarial_d_loss(logits, logits)
    real, fake, real_again, _ = targets
    assert SOFT_REAL_RANGE == (0.8, 1.2) and SOFT_FAKE_RANGE == (0.0, 0.2)
    assert 0.8 <= real.min() and real.max() <= 1.2 and real.min() < 0.81 and real.max() > 1.19  # fills the range, no flips
    assert 0.0 <= fake.min() and fake.max() <= 0.2 and fake.min() < 0.01 and fake.max() > 0.19
    assert real.unique().numel() > 4000 and fake.unique().numel() > 4000  # one draw per sample, not one per batch
    assert not torch.equal(real, real_again)  # and new draws every step


def test_label_flipping_is_off_unless_asked() -> None:
    assert tiny("dcgan").hparams.label_flip_prob == 0
    torch.manual_seed(0)
    soft = label_targets(torch.zeros(5000), True, soft=True)
    assert soft.min() >= 0.8  # soft targets alone never flip
    flipped = label_targets(torch.zeros(5000), True, soft=True, flip_prob=0.3)
    assert 0.25 < (flipped <= 0.2).float().mean() < 0.35  # asked: 30 % drawn from the fake range


def test_a_few_steps_with_every_tip_on(tmp_path: Path) -> None:
    model = tiny("srresnet", soft_labels=True, label_flip_prob=0.05, g_dropout=0.5)
    data = TensorDataset(torch.rand(16, 3, 16, 16) * 2 - 1, torch.stack([torch.arange(16) % 3, torch.arange(16) % 2], dim=1))
    trainer = quiet_trainer(tmp_path, max_steps=4)
    trainer.fit(model, DataLoader(data, batch_size=8))
    metrics = trainer.callback_metrics
    for name in ("train/d_loss", "train/g_loss", "train/d_aux", "train/g_aux", "train/d_acc", "train/d_acc_0", "train/d_acc_1"):
        assert metrics[name].isfinite(), name
    assert 0 <= metrics["train/d_acc"] <= 1


def test_clear_errors() -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        ACGAN(num_classes=0)
    with pytest.raises(ConfigError, match="architecture"):
        ACGAN(architecture="resnet")
    with pytest.raises(ConfigError, match="power of two"):
        ACGAN(img_resolution=24, architecture="srresnet")
    with pytest.raises(ConfigError, match="labels"):
        tiny("dcgan").generator_loss(torch.zeros(2, 3, 16, 16), torch.tensor([0, 1]))  # two heads, one label each
