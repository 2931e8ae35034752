"""SAGAN (Zhang et al. 2018): parameter counts against the official code, shapes, the self-attention block at its
documented feature map (identity at init, not after a training step), spectral norm on every G and D weight, TTUR
reaching the optimizers, conditional BN reading each sample's class and the projection term of D."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import count_parameters, quiet_trainer
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader, TensorDataset

from gans import SAGAN
from gans.errors import ConfigError
from gans.models.conditional.sagan import (
    SAGANDiscriminator,
    SAGANGenerator,
    default_attention_resolution,
)
from gans.nn.conditional import ConditionalBatchNorm2d
from gans.nn.spectral import SelfAttention

HEADS = [3, 2]  # a hair / eye pair of heads, small



pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread (tests/conftest.py)


def official_counts(classes: int = 1000, ch: int = 64, z: int = 128, value_div: int = 2) -> tuple[int, int]:
    """Trainable variables of brain-research/self-attention-gan (``generator_test`` / ``discriminator_test``, 128 px),
    layer by layer: snconv2d / snlinear have a weight and a bias, ConditionalBatchNorm a gamma and a beta per class,
    the final BatchNorm a gamma and a beta, sn_non_local_block_sim four bias-free 1x1 convs (theta, phi C/8, g C/value_div,
    attn back to C) and sigma, D's sn_embedding a classes x 16ch table (u vectors and BN statistics are not trainable)."""
    def conv(i: int, o: int, k: int) -> int:
        return k * k * i * o + o

    def attention(c: int) -> int:
        return 2 * c * (c // 8) + 2 * c * (c // value_div) + 1

    g = z * 16 * ch * 16 + 16 * ch * 16  # g_snh0
    widths = [16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    for i, o in zip(widths, widths[1:]):  # g_block1 ... g_block5: cbn_0, snconv1, cbn_1, snconv2, snconv3 (1x1)
        g += 2 * classes * i + conv(i, o, 3) + 2 * classes * o + conv(o, o, 3) + conv(i, o, 1)
    g += attention(4 * ch) + 2 * ch + conv(ch, 3, 3)  # g_non_local at 32x32, g_bn, g_snconv_last
    d = conv(3, ch, 3) + conv(ch, ch, 3) + conv(3, ch, 1)  # d_optimized_block1
    widths = [ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch]
    for i, o in zip(widths, widths[1:]):  # d_block2 ... d_block5 (downsampling: the 1x1 shortcut is learned)
        d += conv(i, o, 3) + conv(o, o, 3) + conv(i, o, 1)
    d += 2 * conv(16 * ch, 16 * ch, 3)  # d_block6: no pooling, same width, identity shortcut
    d += attention(2 * ch) + 16 * ch + 1 + classes * 16 * ch  # d_non_local at 32x32, d_sn_linear, d_embedding
    return g, d


def test_parameter_counts_at_128_px_match_the_official_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # The official 128 px ImageNet networks (1000 classes, gf_dim = df_dim = 64, z 128): 42,078,852 / 39,463,618.
    assert official_counts() == (42_078_852, 39_463_618)
    # Counts only: on the meta device (no memory) and without spectral norm's power iterations at construction, which
    # are slow there; the parametrization keeps the weight as its one parameter (``original``), so counts are the same.
    layer = SAGANDiscriminator(16, 3, 1)
    monkeypatch.setattr(torch.nn.utils.parametrizations, "spectral_norm", lambda module, **kwargs: module)
    assert count_parameters(SAGANDiscriminator(16, 3, 1)) == count_parameters(layer)
    with torch.device("meta"):
        model = SAGAN(img_resolution=128, num_classes=1000, attention="official")
        paper = SAGAN(img_resolution=128, num_classes=1000)
    assert (count_parameters(model.generator), count_parameters(model.discriminator)) == (42_078_852, 39_463_618)
    # The paper's block (value C/8, section 3): the value and output 1x1 convs are C x C/8 instead of C x C/2.
    assert (count_parameters(paper.generator), count_parameters(paper.discriminator)) == official_counts(value_div=8) == (42_029_700, 39_451_330)
    assert count_parameters(model.generator) - count_parameters(paper.generator) == 2 * 256 * (128 - 32)
    assert count_parameters(model.discriminator) - count_parameters(paper.discriminator) == 2 * 128 * (64 - 16)


@pytest.mark.parametrize("num_classes, labels", [(0, None), (5, torch.tensor([0, 4])), (HEADS, torch.tensor([[2, 0], [1, 1]]))], ids=["uncond", "one-head", "two-heads"])
@pytest.mark.parametrize("resolution", [16, 32])
def test_shapes(num_classes, labels, resolution: int) -> None:
    torch.manual_seed(0)
    g = SAGANGenerator(16, resolution, 3, 2, num_classes)
    d = SAGANDiscriminator(resolution, 3, 2, num_classes)
    images = g(torch.randn(2, 16), labels)
    assert images.shape == (2, 3, resolution, resolution) and images.abs().max() <= 1
    assert d(images, labels).shape == (2,)


def test_widths_keep_the_official_width_at_each_feature_map() -> None:
    g = SAGANGenerator(8, 64, 3, 1)
    assert g.widths == {4: 16, 8: 16, 16: 8, 32: 4, 64: 2}  # the 128 px network's G without its 128x128 block
    d = SAGANDiscriminator(64, 3, 1)
    assert [block.conv2.parametrizations.weight.original.shape[0] for block in d.blocks] == [2, 4, 8, 16, 16]
    assert [block.downsample for block in d.blocks] == [True, True, True, True, False]


def attention_inputs(g: SAGANGenerator, d: SAGANDiscriminator, labels) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The (input, output) of each network's attention block in one forward."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [net.attention.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, (args[0], out)))
             for name, net in (("G", g), ("D", d))]
    d(g(torch.randn(4, g.linear.parametrizations.weight.original.shape[1]), labels), labels)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("resolution, side", [(16, 8), (32, 16), (64, 32)])
def test_attention_sits_at_the_documented_feature_map_and_is_the_identity_at_init(resolution: int, side: int) -> None:
    torch.manual_seed(0)
    assert default_attention_resolution(resolution) == side and default_attention_resolution(128) == 32  # the official 32x32
    g, d = SAGANGenerator(8, resolution, 3, 1, HEADS), SAGANDiscriminator(resolution, 3, 1, HEADS)
    # G after its block ending at side x side (before the next up-block), D after its block ending there.
    assert g.attention.query.parametrizations.weight.original.shape[1] == g.widths[side]
    labels = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0]])
    seen = attention_inputs(g, d, labels)
    for name in ("G", "D"):
        x, y = seen[name]
        assert x.shape[-2:] == (side, side), name
        assert torch.equal(x, y), f"{name}'s attention is not the identity with gamma = 0"


def test_attention_resolution_can_be_set_or_left_out() -> None:
    g, d = SAGANGenerator(8, 32, 3, 1, attn_resolution=8), SAGANDiscriminator(32, 3, 1, attn_resolution=8)
    assert attention_inputs(g, d, None)["G"][0].shape[-1] == attention_inputs(g, d, None)["D"][0].shape[-1] == 8
    none = SAGAN(img_resolution=32, g_ch=1, d_ch=1, attn_resolution=0)
    assert none.generator.attention is None and none.discriminator.attention is None
    assert not any(isinstance(m, SelfAttention) for m in none.modules())
    for bad in (32, 12, 4):
        with pytest.raises(ConfigError, match="attn_resolution"):
            SAGAN(img_resolution=32, g_ch=1, d_ch=1, attn_resolution=bad)
    with pytest.raises(ConfigError, match="128"):
        SAGANGenerator(8, 256, 3, 1)
    with pytest.raises(ConfigError, match="paper"):
        SAGANGenerator(8, 32, 3, 1, attention="global")


def test_every_conv_linear_and_embedding_of_g_and_d_is_spectrally_normalised() -> None:
    model = SAGAN(img_resolution=32, num_classes=HEADS, g_ch=1, d_ch=1)
    for name, net in (("G", model.generator), ("D", model.discriminator)):
        cbn_tables = {id(m) for cbn in net.modules() if isinstance(cbn, ConditionalBatchNorm2d) for m in (cbn.gain, cbn.bias)}
        layers = [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)) and id(m) not in cbn_tables]
        attention = [n for n, _ in layers if n.startswith("attention.")]
        assert len(attention) == 4, attention  # query, key, value, out
        for layer_name, layer in layers:
            assert parametrize.is_parametrized(layer, "weight"), f"{name}.{layer_name} is not spectrally normalised"
            assert type(layer.parametrizations.weight[0]).__name__ == "_SpectralNorm", f"{name}.{layer_name}"
        # The conditional BN's per-class gain / bias tables are not (official ops.ConditionalBatchNorm): gain 1, bias 0.
        for table in (m for m in net.modules() if id(m) in cbn_tables):
            assert not parametrize.is_parametrized(table) and not table.weight.any()
    assert model.discriminator.head.embed is not None and len([m for m in model.discriminator.modules() if isinstance(m, nn.Embedding)]) == 1
    assert sum(isinstance(m, ConditionalBatchNorm2d) for m in model.generator.modules()) == 2 * len(model.generator.blocks)


def test_conditional_bn_reads_each_samples_class() -> None:
    torch.manual_seed(0)
    g = SAGANGenerator(8, 16, 3, 1, HEADS).eval()
    z = torch.randn(1, 8).repeat(4, 1)
    labels = torch.tensor([[0, 0], [1, 0], [0, 1], [0, 0]])  # sample 0 = 3; 1 differs in hair, 2 in eye
    out = g(z, labels)
    assert torch.equal(out[0], out[3])  # the class tables start at gain 1, bias 0: the class has no effect yet
    assert torch.allclose(out[0], out[1])
    for cbn in (m for m in g.modules() if isinstance(m, ConditionalBatchNorm2d)):  # as after training: a gain / bias per class
        nn.init.normal_(cbn.gain.weight, 0, 0.5)
        nn.init.normal_(cbn.bias.weight, 0, 0.5)
    out = g(z, labels)
    assert torch.equal(out[0], out[3])
    assert not torch.allclose(out[0], out[1], atol=1e-4) and not torch.allclose(out[0], out[2], atol=1e-4)
    # Each sample reads its own class: sample 0's output does not depend on the others' labels.
    torch.testing.assert_close(g(z, torch.tensor([[0, 0], [2, 1], [2, 1], [2, 1]]))[0], out[0])
    assert g.blocks[0].norm1.gain.weight.shape == (16, sum(HEADS))  # the concatenated one-hot vectors of both heads


def test_projection_term_of_the_discriminator() -> None:
    torch.manual_seed(0)
    d = SAGANDiscriminator(16, 3, 1, HEADS).eval()
    x = torch.randn(2, 3, 16, 16)
    a, b = torch.tensor([[0, 1], [2, 0]]), torch.tensor([[1, 1], [2, 1]])
    phi = d.features(x)
    table = d.head.embed.embedding.weight  # spectrally normalised rows: hair 0..2, then eye 0..1
    expected = ((table[a[:, 0]] + table[3 + a[:, 1]]) - (table[b[:, 0]] + table[3 + b[:, 1]])).mul(phi).sum(1)
    torch.testing.assert_close(d(x, a) - d(x, b), expected, rtol=1e-4, atol=1e-5)
    assert SAGANDiscriminator(16, 3, 1).head.embed is None  # unconditional: no projection term


def test_unconditional_uses_plain_batch_norm() -> None:
    g = SAGANGenerator(8, 16, 3, 1, 0)
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in g.modules())
    assert all(isinstance(block.norm1, nn.BatchNorm2d) and block.norm1.affine for block in g.blocks)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A tiny conditional SAGAN after two training steps (one D and one G step each)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = SAGAN(img_resolution=16, num_classes=HEADS, z_dim=8, g_ch=1, d_ch=1)
    images = torch.rand(16, 3, 16, 16) * 2 - 1
    labels = torch.stack([torch.arange(16) % 3, torch.arange(16) % 2], 1)
    trainer = quiet_trainer(Path(tmp_path_factory.mktemp("sagan")), max_steps=4)
    trainer.fit(model, DataLoader(TensorDataset(images, labels), batch_size=8))
    torch.set_num_threads(threads)
    return model, trainer


def test_ttur_learning_rates_reach_the_optimizers(trained) -> None:
    model, trainer = trained
    opt_d, opt_g = (opt.optimizer if hasattr(opt, "optimizer") else opt for opt in trainer.optimizers)
    assert isinstance(opt_d, torch.optim.Adam) and isinstance(opt_g, torch.optim.Adam)
    assert (opt_d.param_groups[0]["lr"], opt_g.param_groups[0]["lr"]) == (4e-4, 1e-4)
    assert tuple(opt_d.param_groups[0]["betas"]) == tuple(opt_g.param_groups[0]["betas"]) == (0.0, 0.9)
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in model.generator.parameters()}
    assert model.hparams.loss == "hinge" and model.g_steps == 2  # one G step per D step


def test_attention_leaves_the_identity_once_training_moves_gamma(trained) -> None:
    model, _ = trained
    g, d = model.generator.eval(), model.discriminator.eval()
    assert g.attention.gamma.item() != 0 and d.attention.gamma.item() != 0
    seen = attention_inputs(g, d, torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0]]))
    for name in ("G", "D"):
        x, y = seen[name]
        assert not torch.equal(x, y), name
