"""StarGAN (gans/models/translation/stargan.py): the official networks, the domain vector, the losses of eq. 1-7, n_critic, pictures."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import count_parameters, quiet_trainer
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from gans import StarGAN
from gans.errors import ConfigError
from gans.models.translation.stargan import (
    InstanceNorm,
    StarGANDiscriminator,
    StarGANGenerator,
)

pytestmark = pytest.mark.usefixtures("one_thread")

HEADS = [3, 2]  # two label heads, like the anime faces' [hair, eye]


def tiny(domain_heads=(0,), **kwargs) -> StarGAN:
    settings = dict(num_classes=HEADS, domain_heads=list(domain_heads), img_resolution=8, ngf=4, ndf=4, g_blocks=1)
    return StarGAN(**{**settings, **kwargs})


def batch(n: int = 4, size: int = 8) -> tuple[Tensor, Tensor]:
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.stack([torch.arange(n) % HEADS[0], (torch.arange(n) // HEADS[0]) % HEADS[1]], dim=1)  # distinct rows
    return images, labels


def shifted(labels: Tensor) -> Tensor:
    """Fixed target labels for the tests: every row moved by one, so no image keeps its own labels."""
    return labels.roll(1, dims=0)


def logged(model: StarGAN) -> dict[str, float]:
    """Capture what the model logs (the losses' terms) instead of sending it to a trainer."""
    terms: dict[str, float] = {}
    model.log_train = lambda metrics, **_: terms.update({k: float(v) for k, v in metrics.items()})
    return terms


# Networks.


def test_shapes_and_the_discriminator_depth_follows_the_resolution() -> None:
    for side, layers in ((8, 2), (32, 4), (64, 5), (128, 6)):
        with torch.device("meta"):
            d = StarGANDiscriminator(5, side, ndf=2)
        assert sum(isinstance(m, torch.nn.Conv2d) for m in d.trunk) == layers
        assert d.cls.kernel_size == (2, 2)  # the domain convolution covers the final 2x2 map
    g, d = StarGANGenerator(5, ngf=4, n_blocks=1), StarGANDiscriminator(5, 16, ndf=4)
    x, c = torch.rand(3, 3, 16, 16) * 2 - 1, torch.eye(5)[:3]
    y = g(x, c)
    assert y.shape == x.shape and y.abs().max() <= 1
    src, cls = d(y)
    assert src.shape == (3, 1, 2, 2) and cls.shape == (3, 5)


def test_parameter_counts_of_the_official_networks() -> None:
    """Pinned against yunjey/stargan model.py (Generator(64, c_dim=5, 6) and Discriminator(image_size, 64, 5, 6)),
    whose solver prints these counts: G 8,430,528; D 44,762,048 at 128 px and 44,884,928 at 256 px."""
    with torch.device("meta"):
        g = StarGANGenerator(5)
        d128 = StarGANDiscriminator(5, 128)
        d256 = StarGANDiscriminator(5, 256, n_layers=6)
    assert count_parameters(g) == 8_430_528
    assert count_parameters(d128) == 44_762_048
    assert count_parameters(d256) == 44_884_928
    assert count_parameters(d256) - count_parameters(d128) == 2048 * 5 * (4 * 4 - 2 * 2)  # only D_cls's kernel grows


def test_instance_norm_keeps_the_official_buffers_but_uses_the_inputs_statistics_in_eval_mode() -> None:
    norm = InstanceNorm(3)
    assert norm.affine and norm.track_running_stats and norm.running_mean is not None
    x = torch.randn(2, 3, 4, 4) * 3 + 5
    with torch.no_grad():
        train_out = norm(x)
        assert not torch.equal(norm.running_mean, torch.zeros(3))  # training updates the buffers, as the official code
        stats = norm.running_mean.clone()
        eval_out = norm.eval()(x)
    assert torch.allclose(eval_out, train_out, atol=1e-5)
    assert torch.equal(norm.running_mean, stats)  # eval mode neither reads nor updates them


def test_the_target_domain_reaches_the_generator() -> None:
    torch.manual_seed(0)
    model = tiny()
    images, _ = batch(2)
    first, other = torch.tensor([[0, 0], [0, 0]]), torch.tensor([[2, 0], [2, 0]])
    to_first = model.translate(images, first)
    assert torch.equal(model.translate(images, first), to_first)
    assert (model.translate(images, other) - to_first).abs().max() > 1e-4
    # With domain_heads [0] the eye colour (head 1) is not a domain: it does not change the output.
    assert torch.equal(model.translate(images, torch.tensor([[0, 1], [0, 1]])), to_first)


def test_the_domain_vector_concatenates_the_chosen_heads_one_hot() -> None:
    labels = torch.tensor([[2, 1], [0, 0]])
    assert torch.equal(tiny().domains(labels), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    assert torch.equal(tiny([0, 1]).domains(labels), torch.tensor([[0.0, 0, 1, 0, 1], [1, 0, 0, 1, 0]]))
    assert torch.equal(tiny([1]).domains(labels), torch.tensor([[0.0, 1], [1, 0]]))
    assert tiny([0, 1]).generator.net[0].in_channels == 3 + 5


# The losses.


def test_generator_loss_reconstructs_through_the_original_domains() -> None:
    """eq. 6 against a hand computation: -mean D_src(fake) + CE(D_cls(fake), targets) + 10 |x - G(G(x, c_trg), c_org)|."""
    torch.manual_seed(0)
    model = tiny()
    model.target_labels = shifted
    terms = logged(model)
    images, labels = batch()
    one_hot = lambda rows: F.one_hot(rows[:, 0], HEADS[0]).float()  # noqa: E731  (hair is the domain)
    fake = model.generator(images, one_hot(shifted(labels)))
    generated = model.generate((images, labels))
    assert torch.equal(generated["fake"], fake) and torch.equal(generated["target"], shifted(labels))
    loss = model.generator_loss((images, labels), generated)
    rec = (images - model.generator(fake, one_hot(labels))).abs().mean()
    wrong_rec = (images - model.generator(fake, one_hot(shifted(labels)))).abs().mean()  # back to the target: not eq. 4
    assert terms["train/rec"] == pytest.approx(rec.item(), rel=1e-6)
    assert abs(rec.item() - wrong_rec.item()) > 1e-4
    src, cls = model.discriminator(fake)
    expected = -src.mean() + F.cross_entropy(cls, shifted(labels)[:, 0]) + 10 * rec
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_classification_uses_original_labels_on_real_images_and_target_labels_on_fakes() -> None:
    torch.manual_seed(0)
    model = tiny([0, 1], gp_weight=0.0)
    model.target_labels = shifted
    terms = logged(model)
    images, labels = batch()
    generated = model.generate((images, labels))

    def ce(logits: Tensor, rows: Tensor) -> float:  # one softmax cross-entropy per head (3 hair, 2 eye logits), summed
        return (F.cross_entropy(logits[:, :3], rows[:, 0]) + F.cross_entropy(logits[:, 3:], rows[:, 1])).item()

    d_loss = model.discriminator_loss((images, labels), {k: v.detach() for k, v in generated.items()})
    real_src, real_cls = model.discriminator(images)
    fake_src, fake_cls = model.discriminator(generated["fake"])
    assert terms["train/d_cls"] == pytest.approx(ce(real_cls, labels), rel=1e-5)
    assert abs(ce(real_cls, labels) - ce(real_cls, shifted(labels))) > 1e-4
    assert d_loss.item() == pytest.approx((fake_src.mean() - real_src.mean()).item() + ce(real_cls, labels), rel=1e-5)
    model.generator_loss((images, labels), generated)
    assert terms["train/g_cls"] == pytest.approx(ce(fake_cls, shifted(labels)), rel=1e-5)
    assert abs(ce(fake_cls, labels) - ce(fake_cls, shifted(labels))) > 1e-4


def test_gradient_penalty_is_added_with_weight_10() -> None:
    torch.manual_seed(0)
    model = tiny()
    terms = logged(model)
    images, labels = batch()
    generated = {k: v.detach() for k, v in model.generate((images, labels)).items()}
    torch.manual_seed(1)
    with_gp = model.discriminator_loss((images, labels), generated).item()
    model.gp_weight = 0.0
    without = model.discriminator_loss((images, labels), generated).item()
    assert terms["train/gp"] > 0 and with_gp == pytest.approx(without + 10 * terms["train/gp"], rel=1e-5)


def test_targets_are_the_batchs_labels_in_a_random_order() -> None:
    torch.manual_seed(0)
    labels = torch.stack([torch.arange(64) % 3, torch.arange(64) % 2], dim=1)
    target = tiny().target_labels(labels)
    assert not torch.equal(target, labels)
    assert sorted(map(tuple, target.tolist())) == sorted(map(tuple, labels.tolist()))  # whole rows, permuted


# Training.


class TinyLabelledFaces(L.LightningDataModule):
    """8x8 images with [hair, eye] labels, the anime datamodule's protocol (num_classes, data_shape, class_names)."""

    def __init__(self, num_classes=HEADS, n: int = 8) -> None:
        super().__init__()
        self.num_classes, self.data_shape = list(num_classes), (3, 8, 8)
        self.class_names = [["blonde", "blue", "pink"], ["green", "red"]]
        self.dataset = TensorDataset(*batch(n))

    def real_dataset(self) -> TensorDataset:
        return self.dataset

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=2)


def test_generator_steps_every_fifth_batch_and_both_networks_move(tmp_path: Path) -> None:
    L.seed_everything(0)
    model = tiny()
    g_batches: list[int] = []
    generator_loss = model.generator_loss
    model.generator_loss = lambda b, images: (g_batches.append(model.batches), generator_loss(b, images))[1]
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    d_before = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer = quiet_trainer(tmp_path, max_steps=-1, max_epochs=3, limit_train_batches=4)  # 12 batches
    trainer.fit(model, datamodule=TinyLabelledFaces())
    assert model.batches == 12 and g_batches == [4, 9] and model.g_steps == 2  # the 5th and 10th batches (n_critic 5)
    assert all(not torch.equal(a, p) for a, p in zip(g_before, model.generator.parameters()))
    assert all(not torch.equal(a, p) for a, p in zip(d_before, model.discriminator.parameters()))
    for name in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/gp", "train/d_cls", "train/g_cls", "train/rec"):
        assert trainer.callback_metrics[name].isfinite(), name


def test_pictures_show_the_input_and_every_hair_colour() -> None:
    torch.manual_seed(0)
    model = tiny([0, 1])
    data = TinyLabelledFaces()
    held = model.held_out(data, 4)
    images, labels, _ = held
    assert torch.equal(images, data.dataset.tensors[0][[0, 2, 5, 7]])  # spread over the data, first and last included
    columns = model.pictures(held)
    assert [title for title, _ in columns] == ["input", "blonde", "blue", "pink"]
    assert torch.equal(columns[0][1], images)
    to_pink = labels.clone()
    to_pink[:, 0] = 2  # hair pink, each image's own eye colour
    assert torch.equal(columns[3][1], model.translate(images, to_pink))


# Errors.


def test_clear_errors_for_bad_domain_heads_labels_and_data(tmp_path: Path) -> None:
    for heads in ([2], [0, 0], [], [-1]):
        with pytest.raises(ConfigError, match="domain_heads"):
            tiny(heads)
    with pytest.raises(ConfigError, match="labelled images"):
        StarGAN(num_classes=0)
    with pytest.raises(ConfigError, match=r"num_classes=\[3, 2\]"):
        tiny().domains(torch.tensor([0, 1]))  # [N] labels for a two-head model
    with pytest.raises(ConfigError, match=r"set model.init_args.num_classes: \[4, 2\]"):
        quiet_trainer(tmp_path, max_steps=1).fit(tiny(), datamodule=TinyLabelledFaces(num_classes=[4, 2]))
    with pytest.raises(ConfigError, match="img_resolution"):
        StarGANDiscriminator(5, 48)
