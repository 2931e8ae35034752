"""The conditional family's shared layers (gans.layers): spectral norm, class embedding, conditional BN,
projection, self-attention; and the truncated-normal sampler (gans.training.latents)."""

from __future__ import annotations

import torch
from torch import nn

from gans.labels import LabelSpace
from gans.nn.conditional import (
    ClassEmbedding,
    ConditionalBatchNorm2d,
    ProjectionHead,
    projection,
)
from gans.nn.spectral import SelfAttention, sn_conv2d, sn_linear, spectral_norm
from gans.training.latents import truncated_normal


def test_spectral_norm_divides_by_the_largest_singular_value_after_power_iterations() -> None:
    torch.manual_seed(0)
    conv = sn_conv2d(8, 16, 3, padding=1)
    raw = conv.parametrizations.weight.original.detach()
    sigma = torch.linalg.matrix_norm(raw.reshape(16, -1), ord=2)
    x = torch.randn(2, 8, 5, 5)
    for _ in range(50):  # one power iteration per training forward
        conv(x)
    conv.eval()
    normalised = conv.weight.detach().reshape(16, -1)
    torch.testing.assert_close(normalised, raw.reshape(16, -1) / sigma, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.linalg.matrix_norm(normalised, ord=2), torch.tensor(1.0), rtol=1e-4, atol=0)
    assert {"parametrizations.weight.0._u", "parametrizations.weight.0._v"} <= set(conv.state_dict())  # the power-iteration vector is checkpointed


def test_spectral_norm_switch_and_linear() -> None:
    plain = sn_linear(4, 3, sn=False)
    assert isinstance(plain, nn.Linear) and not hasattr(plain, "parametrizations")
    assert spectral_norm(nn.Linear(4, 3), enabled=True).parametrizations.weight.original.shape == (3, 4)


def test_projection_head_against_a_hand_computation() -> None:
    """psi(phi) + <embed(y), phi> (Miyato & Koyama eq. 3), and psi(phi) alone when unconditional."""
    features = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    head = ProjectionHead(3, heads=(2,), sn=False)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, 0.0, -1.0]]))
        head.linear.bias.fill_(0.5)
        head.embed.embedding.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    labels = torch.tensor([1, 0])
    psi = torch.tensor([1.0 - 3.0 + 0.5, 0.5 + 0.5])
    torch.testing.assert_close(head(features, labels), psi + torch.tensor([2.0 + 3.0, 0.5]))
    torch.testing.assert_close(projection(features, head.embed(labels)), torch.tensor([5.0, 0.5]))
    unconditional = ProjectionHead(3, sn=False)
    assert unconditional.embed is None and unconditional(features).shape == (2,)
    assert isinstance(ProjectionHead(3, (2,)).embed.embedding.parametrizations.weight[0], nn.Module)  # SN by default


def test_multi_head_class_embedding_is_the_linear_map_of_the_tag_vector() -> None:
    torch.manual_seed(0)
    space = LabelSpace.from_num_classes([3, 4])
    embed = ClassEmbedding(space.heads, 5)
    labels = space.sample(6)
    torch.testing.assert_close(embed(labels), space.multi_hot(labels) @ embed.embedding.weight)


def test_self_attention_with_gamma_zero_is_the_identity_and_attends_otherwise() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8)
    for block in (SelfAttention(16), SelfAttention(16, value_channels=8, pool=True, sn=False)):
        assert torch.equal(block(x), x)
        block.gamma.data.fill_(1.0)
        out = block(x)
        assert out.shape == x.shape and not torch.allclose(out, x)
        # Non-local: changing one far pixel changes the output at another position.
        moved = x.clone()
        moved[:, :, 7, 7] += 5.0
        assert not torch.allclose(block(moved)[:, :, 0, 0], out[:, :, 0, 0])
    assert SelfAttention(64).query.parametrizations.weight.original.shape == (8, 64, 1, 1)  # C/8


def test_conditional_batch_norm_uses_each_samples_class() -> None:
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(4, cond_dim=3)
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]).expand(4, 3))  # class k: gain 1 + (k + 1)
        cbn.bias.weight.copy_(torch.tensor([[10.0, 20.0, 30.0]]).expand(4, 3))
    x = torch.randn(6, 4, 5, 5)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    out = cbn(x, torch.nn.functional.one_hot(labels, 3).float())
    normalised = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / (x.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    for i, k in enumerate(labels.tolist()):
        torch.testing.assert_close(out[i], normalised[i] * (2.0 + k) + 10.0 * (k + 1), rtol=1e-4, atol=1e-4)
    fresh = ConditionalBatchNorm2d(4, cond_dim=3)  # starts as plain BN for every class
    torch.testing.assert_close(fresh(x, torch.eye(3)[labels]), normalised, rtol=1e-4, atol=1e-4)
    assert isinstance(nn.SyncBatchNorm.convert_sync_batchnorm(fresh).bn, nn.SyncBatchNorm)


def test_truncated_normal_stays_within_the_threshold_and_is_not_clipped() -> None:
    z = truncated_normal(4000, 8, 0.5, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    assert (z.abs() > 0.499).float().mean() < 0.01  # sampled inside the interval, not piled up at its ends
    # Truncated N(0, 1) to [-a, a] has variance 1 - 2 a phi(a) / (2 Phi(a) - 1); for a = 0.5 that is 0.0797.
    assert abs(z.var().item() - 0.0797) < 0.005
    assert truncated_normal(10, 3, 0.0).abs().max() > 0  # threshold 0: the plain prior
