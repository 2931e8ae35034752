"""BigGAN (Brock et al. 2018): shapes, the official parameter counts, orthogonal regularisation, truncation,
hierarchical z, the shared embedding, standing statistics, and a few training steps. DDP: tests/test_ddp.py."""

from __future__ import annotations

import pytest
import torch
from helpers import count_parameters, quiet_trainer
from torch import nn

from callbacks import EMA
from gans import BigGAN
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.models.conditional.biggan import (
    BigGANDiscriminator,
    BigGANGenerator,
    truncate_given,
)
from gans.nn.cross_replica import CrossReplicaBatchNorm2d
from gans.training.latents import truncated_normal
from gans.training.losses import orthogonal_penalty


def tiny(**kwargs) -> BigGAN:
    settings = dict(img_resolution=16, num_classes=[3, 2], z_dim=12, g_ch=2, d_ch=2, shared_dim=8, g_attention=[16], d_attention=[8])
    settings.update(kwargs)
    model = BigGAN(**settings)
    model._log_now = False  # no trainer to log to
    return model


def test_shapes_with_one_and_two_label_heads() -> None:
    for num_classes in (5, [3, 2]):
        model = tiny(num_classes=num_classes)
        labels = model.sample_labels(4)
        images = model(torch.randn(4, 12), labels)
        assert images.shape == (4, 3, 16, 16) and images.abs().max() <= 1
        assert model.discriminator(images, labels).shape == (4,)
    with pytest.raises(ConfigError, match="multiple of 3"):
        tiny(z_dim=10)
    with pytest.raises(ConfigError, match="output resolution"):
        tiny(d_attention=[16])
    with pytest.raises(ConfigError, match="shared_embedding"):
        tiny(shared_embedding=False)
    with pytest.raises(ConfigError, match="img_resolution"):
        tiny(img_resolution=48)


# The official networks' parameter counts, from the layer definitions of BigGAN-PyTorch (BigGAN.py G_arch / D_arch,
# Generator, Discriminator; layers.py GBlock, DBlock, ccbn, bn, Attention, SNLinear, SNEmbedding), written out here
# independently of gans/models/conditional/biggan.py.


def official_g_count(res: int, ch: int, dim_z: int, n_classes: int, shared: bool, hier: bool, shared_dim: int, attn: list[int]) -> int:
    arch = {32: ([4, 4, 4], [4, 4, 4], [8, 16, 32]), 128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1], [8, 16, 32, 64, 128])}
    ins, outs, resolutions = arch[res]
    ins, outs = [ch * i for i in ins], [ch * o for o in outs]
    chunk = dim_z // (len(ins) + 1 if hier else 1)
    count = n_classes * shared_dim if shared else 0  # G.shared: nn.Embedding, or the identity
    count += chunk * ins[0] * 16 + ins[0] * 16  # G.linear, bottom width 4, with bias
    cond = shared_dim + (chunk if hier else 0)
    for i, o, r in zip(ins, outs, resolutions):
        count += i * o * 9 + o + o * o * 9 + o + i * o + o  # conv1, conv2, conv_sc (every G block upsamples)
        count += 2 * i * cond + 2 * o * cond if shared else 2 * n_classes * (i + o)  # ccbn gain and bias: SNLinear(bias=False) or nn.Embedding
        if r in attn:
            count += 2 * o * (o // 8) + 2 * o * (o // 2) + 1  # theta, phi, g, o (no bias), gamma
    return count + 2 * outs[-1] + outs[-1] * 3 * 9 + 3  # output bn gain and bias, conv to RGB


def official_d_count(res: int, ch: int, n_classes: int, attn: list[int]) -> int:
    arch = {
        32: ([3] + [4 * ch] * 3, [4 * ch] * 4, [True, True, False, False], [16, 16, 16, 16]),
        128: ([3] + [ch * m for m in (1, 2, 4, 8, 16)], [ch * m for m in (1, 2, 4, 8, 16, 16)], [True] * 5 + [False], [64, 32, 16, 8, 4, 4]),
    }
    count = 0
    for i, o, down, r in zip(*arch[res]):
        count += i * o * 9 + o + o * o * 9 + o + (i * o + o if i != o or down else 0)
        if r in attn:
            count += 2 * o * (o // 8) + 2 * o * (o // 2) + 1
    return count + arch[res][1][-1] + 1 + n_classes * arch[res][1][-1]  # linear (with bias), SNEmbedding



def test_parameter_counts_equal_the_official_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # Built on the meta device without spectral norm's power iterations (parameters only, no memory or compute).
    monkeypatch.setattr(nn.utils.parametrizations._SpectralNorm, "_power_method", lambda self, weight, n: None)
    imagenet, cifar = LabelSpace.from_num_classes(1000), LabelSpace.from_num_classes(10)
    with torch.device("meta"):
        g128 = BigGANGenerator(128, 3, 120, 96, imagenet, attention=[64])
        d128 = BigGANDiscriminator(128, 3, 96, imagenet, attention=[64])
        g32 = BigGANGenerator(32, 3, 128, 64, cifar, shared_embedding=False, hierarchical=False, attention=[])
        d32 = BigGANDiscriminator(32, 3, 64, cifar, attention=[])
    assert count_parameters(g128) == official_g_count(128, 96, 120, 1000, True, True, 128, [64]) == 70_433_988
    assert count_parameters(d128) == official_d_count(128, 96, 1000, [64]) == 87_982_370
    assert count_parameters(g32) == official_g_count(32, 64, 128, 10, False, False, 128, []) == 4_304_387
    assert count_parameters(d32) == official_d_count(32, 64, 10, []) == 4_207_361


def test_orthogonal_penalty_against_its_formula_and_the_official_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(5, 3, 3, 3, generator=gen).requires_grad_(True), torch.randn(4, 7, generator=gen).requires_grad_(True)]
    expected = 0.0
    for w in weights:  # sum over pairs of different filters of their squared inner product (eq. 3)
        rows = w.detach().reshape(w.shape[0], -1)
        expected += sum(float(rows[i] @ rows[j]) ** 2 for i in range(len(rows)) for j in range(len(rows)) if i != j)
    beta = 1e-4
    penalty = orthogonal_penalty(weights)
    assert penalty.item() == pytest.approx(expected, rel=1e-5)
    (beta / 2 * penalty).backward()
    for w in weights:  # BigGAN-PyTorch utils.ortho: grad += strength * 2 (W W^T * (1 - I)) W
        rows = w.detach().reshape(w.shape[0], -1)
        official = beta * 2 * ((rows @ rows.t()) * (1 - torch.eye(rows.shape[0]))) @ rows
        torch.testing.assert_close(w.grad.reshape(w.shape[0], -1), official)
    # Orthogonal rows of any norms are not penalised.
    q = torch.linalg.qr(torch.randn(6, 6, generator=gen))[0] * torch.arange(1.0, 7.0)[:, None]
    assert orthogonal_penalty([q]).item() == pytest.approx(0.0, abs=1e-8)


def test_orthogonal_regularisation_reaches_every_g_weight_but_the_shared_embedding() -> None:
    model = tiny()
    names = {name for name, p in model.generator.named_parameters() if any(p is w for w in model.orthogonal_weights())}
    matrices = {name for name, p in model.generator.named_parameters() if p.dim() >= 2}
    assert matrices - names == {"shared.embedding.weight"}
    assert {"linear.parametrizations.weight.original", "blocks.0.norm1.gain.parametrizations.weight.original",
            "attention.1.query.parametrizations.weight.original", "out_conv.parametrizations.weight.original"} <= names
    model.eval()  # spectral norm's power iterations would change D between the two losses
    labels = model.sample_labels(4)
    fake = model(torch.randn(4, 12), labels)
    model.hparams.ortho_beta = 0.0
    without = model.generator_loss(fake, labels)
    model.hparams.ortho_beta = 0.5  # large, so the difference of two float32 losses is exact enough
    with_ortho = model.generator_loss(fake, labels)
    assert (with_ortho - without).item() == pytest.approx(0.5 / 2 * orthogonal_penalty(model.orthogonal_weights()).item(), rel=1e-4)


class Spy(nn.Module):
    """Wraps a generator and keeps the latents it was called with."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator, self.z = generator, []

    def forward(self, z, labels=None):
        self.z.append(z)
        return self.generator(z, labels)


def test_sample_respects_the_truncation() -> None:
    model = tiny(truncation=0.5).eval()
    spy = model.generator = Spy(model.generator)
    model.sample(16)
    assert spy.z[-1].abs().max() <= 0.5 and spy.z[-1].abs().max() > 0.4  # the default threshold, filled up to it
    model.sample(16, truncation=0.2)
    assert spy.z[-1].abs().max() <= 0.2
    z = torch.randn(16, 12) * 3
    model.sample(16, z=z, truncation=0.3)  # given latents (grids, FID, predict) are mapped onto the truncated normal
    assert spy.z[-1].abs().max() <= 0.3
    order = z.argsort(dim=0)  # coordinate-wise and monotone (non-decreasing: the tails round to the threshold)
    assert (spy.z[-1].gather(0, order).diff(dim=0) >= 0).all()
    model.sample(16, z=z, truncation=0.0)
    assert torch.equal(spy.z[-1], z)
    # The map turns N(0, 1) into the truncated normal: compare quantiles with the sampler's.
    drawn = truncate_given(torch.randn(200_000, 1, generator=torch.Generator().manual_seed(1)), 1.0).flatten()
    direct = truncated_normal(200_000, 1, 1.0, generator=torch.Generator().manual_seed(2)).flatten()
    qs = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    torch.testing.assert_close(drawn.quantile(qs), direct.quantile(qs), atol=0.01, rtol=0)
    # Numbered samples (FID, predict) are reproducible under truncation.
    model.generator = spy.generator
    indices = torch.arange(4)
    torch.testing.assert_close(model.sample_indexed(indices), model.sample_indexed(indices))


def test_hierarchical_z_reaches_each_block_through_its_conditional_bn() -> None:
    model = tiny()
    generator = model.generator.eval()
    inputs: dict[str, torch.Tensor] = {}
    hooks = [generator.linear.register_forward_hook(lambda m, args, out: inputs.__setitem__("linear", args[0]))]
    for i, block in enumerate(generator.blocks):
        hooks.append(block.register_forward_hook(lambda m, args, out, i=i: inputs.__setitem__(f"block{i}", args[1])))
    z, labels = torch.randn(2, 12), torch.tensor([[0, 1], [2, 0]])
    base_image = generator(z, labels)
    base = dict(inputs)
    assert generator.chunk == 4 and base["block0"].shape == (2, 8 + 4)  # [shared embedding, z chunk]
    for k, slot in enumerate(["linear", "block0", "block1"]):  # chunk k feeds the first layer (k = 0) or block k - 1
        changed = z.clone()
        changed[:, 4 * k : 4 * k + 4] += 1.0
        image = generator(changed, labels)
        assert not torch.allclose(image, base_image), f"chunk {k} does not reach the output"
        for name in base:
            assert torch.equal(inputs[name], base[name]) == (name != slot), f"chunk {k}: {name}"
    for hook in hooks:
        hook.remove()


def test_the_shared_embedding_is_one_parameter_for_every_block() -> None:
    model = tiny()
    generator = model.generator
    embeddings = [m for m in generator.modules() if isinstance(m, nn.Embedding)]
    assert embeddings == [generator.shared.embedding]
    table = generator.shared.embedding.weight
    assert table.shape == (3 + 2, 8)  # one row per hair class and per eye class: a pair is the sum of two rows
    labels = torch.tensor([[2, 1]])
    torch.testing.assert_close(generator.shared(labels), (table[2] + table[3 + 1])[None])
    generator(torch.randn(1, 12), labels).sum().backward()
    used = table.grad.abs().sum(dim=1) > 0
    assert used.tolist() == [False, False, True, False, True]  # read through every block, only the pair's rows


def test_standing_statistics_average_the_batch_statistics_of_many_passes() -> None:
    model = tiny()
    generator = model.generator
    norm = generator.blocks[0].norm1.bn
    assert isinstance(norm, CrossReplicaBatchNorm2d)
    means = []
    hook = norm.register_forward_hook(lambda m, args, out: means.append(args[0].mean(dim=(0, 2, 3))))
    generator.eval()
    model.accumulate_standing_stats(passes=3, batch_size=4)
    hook.remove()
    assert len(means) == 3 and int(norm.num_batches_tracked) == 3
    torch.testing.assert_close(norm.running_mean, torch.stack(means).mean(dim=0))  # the plain average, not a moving one
    assert norm.momentum == 0.1 and not generator.training  # settings and mode restored
    running = norm.running_mean.clone()
    model.accumulate_standing_stats(passes=3, batch_size=4)  # seeded: the same statistics again
    torch.testing.assert_close(norm.running_mean, running)
    # sample() with standing_stats accumulates them in eval mode, once per state of the generator.
    model.hparams.standing_stats, model.hparams.standing_stats_batch_size = 2, 4
    norm.reset_running_stats()
    model.sample(2)
    assert int(norm.num_batches_tracked) == 2
    model.sample(2)
    assert int(norm.num_batches_tracked) == 2
    generator.train()
    model.sample(2)  # in train mode the batch's own statistics are used
    assert int(norm.num_batches_tracked) == 3


def test_cross_replica_batch_norm_is_batch_norm_on_one_process() -> None:
    reference, synced = nn.BatchNorm2d(4), CrossReplicaBatchNorm2d(4)
    x = torch.randn(8, 4, 3, 3)
    torch.testing.assert_close(synced(x), reference(x))
    torch.testing.assert_close(synced.running_var, reference.running_var)


def test_a_few_training_steps(tmp_path) -> None:
    model = tiny(num_classes=3)
    images = torch.rand(16, 3, 16, 16) * 2 - 1
    labels = torch.randint(0, 3, (16,))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=4)
    ema = EMA(half_life_kimg=0.01, start_kimg=0.008)
    trainer = quiet_trainer(tmp_path, max_steps=6, callbacks=[ema])  # 4 batches: 4 D steps and 2 G steps
    trainer.fit(model, data)
    assert model.g_steps == 2 and model.images_seen == 16
    opt_d, opt_g = model.optimizers()
    assert opt_d.param_groups[0]["eps"] == opt_g.param_groups[0]["eps"] == 1e-6
    assert opt_d.param_groups[0]["lr"] == 4e-4 and opt_g.param_groups[0]["lr"] == 1e-4
    assert opt_g.param_groups[0]["betas"] == (0.0, 0.999)
    assert trainer.callback_metrics["train/ortho"] > 0 and trainer.callback_metrics["train/g_loss"].isfinite()
    name = "blocks.0.conv1.parametrizations.weight.original"
    ema_weight, weight = dict(model.generator_ema.named_parameters())[name], dict(model.generator.named_parameters())[name]
    assert not torch.equal(ema_weight, weight)  # the first G step (8 images) was before the start, the second averaged
