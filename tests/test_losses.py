"""gans.training.losses and gans.training.tricks against their formulas, computed independently of the package.

Expected values use ``math.log`` / ``math.exp`` on hand-picked logits, never the helper under
test, so a sign slip, a swapped term or a wrong reduction fails here.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from gans.training.losses import (
    LOSS_NAMES,
    clip_weights,
    drift_penalty,
    get_loss,
    gradient_penalty,
    hinge_d_loss,
    least_squares_d_loss,
    least_squares_g_loss,
    logistic_d_loss,
    minimax_g_loss,
    non_saturating_g_loss,
    r1_penalty,
    r2_penalty,
    wasserstein_d_loss,
    wasserstein_g_loss,
)
from gans.training.tricks import (
    SOFT_FAKE_RANGE,
    SOFT_REAL_RANGE,
    instance_noise,
    label_targets,
)

REAL = [0.5, -1.0, 2.0, 0.0]
FAKE = [-0.3, 1.5, 0.0, -2.5]


def t(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def bce(logit: float, target: float) -> float:
    """-[t log D + (1 - t) log(1 - D)] with D = sigmoid(logit), straight from the definition."""
    d = sigmoid(logit)
    return -(target * math.log(d) + (1.0 - target) * math.log(1.0 - d))


# Adversarial losses.


def test_logistic_d_loss_matches_binary_cross_entropy_by_hand():
    expected = mean(-math.log(sigmoid(r)) for r in REAL) + mean(-math.log(1.0 - sigmoid(f)) for f in FAKE)
    assert logistic_d_loss(t(REAL), t(FAKE)).item() == pytest.approx(expected, rel=1e-10)


def test_logistic_d_loss_at_zero_logits_is_two_log_two():
    assert logistic_d_loss(torch.zeros(5), torch.zeros(5)).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_logistic_d_loss_with_targets_matches_by_hand():
    real_t, fake_t = 0.9, 0.1
    expected = mean(bce(r, real_t) for r in REAL) + mean(bce(f, fake_t) for f in FAKE)
    assert logistic_d_loss(t(REAL), t(FAKE), real_t, fake_t).item() == pytest.approx(expected, rel=1e-10)
    # Per-sample tensor targets.
    rt, ft = [1.0, 0.8, 1.1, 0.95], [0.0, 0.2, 0.05, 0.1]
    expected = mean(bce(r, x) for r, x in zip(REAL, rt)) + mean(bce(f, x) for f, x in zip(FAKE, ft))
    assert logistic_d_loss(t(REAL), t(FAKE), t(rt), t(ft)).item() == pytest.approx(expected, rel=1e-10)


def test_logistic_d_loss_is_stable_for_large_logits():
    big = torch.tensor([100.0, 80.0])
    assert logistic_d_loss(big, -big).item() == pytest.approx(0.0, abs=1e-6)  # D perfectly right
    wrong = logistic_d_loss(-big, big)  # D confidently wrong: log(1 + e^x) ~ x
    assert torch.isfinite(wrong)
    assert wrong.item() == pytest.approx(2 * 90.0, rel=1e-6)


def test_minimax_g_loss_is_mean_log_one_minus_d():
    expected = mean(math.log(1.0 - sigmoid(f)) for f in FAKE)
    assert minimax_g_loss(t(FAKE)).item() == pytest.approx(expected, rel=1e-10)
    assert expected < 0  # G minimises a negative quantity, so the sign matters


def test_non_saturating_g_loss_is_minus_mean_log_d():
    expected = mean(-math.log(sigmoid(f)) for f in FAKE)
    assert non_saturating_g_loss(t(FAKE)).item() == pytest.approx(expected, rel=1e-10)
    assert non_saturating_g_loss(torch.zeros(3)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_non_saturating_does_not_saturate_where_minimax_does():
    """Goodfellow et al. section 3: when D rejects fakes (logit -10) minimax's gradient vanishes."""
    fake = torch.tensor([-10.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(minimax_g_loss(fake), fake)
    (g_ns,) = torch.autograd.grad(non_saturating_g_loss(fake), fake)
    # d/dx log(1 - sigmoid(x)) = -sigmoid(x);  d/dx -log sigmoid(x) = -(1 - sigmoid(x)).
    assert g_mm.item() == pytest.approx(-sigmoid(-10.0), rel=1e-4)
    assert g_ns.item() == pytest.approx(-(1 - sigmoid(-10.0)), rel=1e-4)
    assert abs(g_ns.item()) > 1000 * abs(g_mm.item())


def test_least_squares_losses_match_mao_eq_2():
    expected_d = 0.5 * mean((r - 1.0) ** 2 for r in REAL) + 0.5 * mean(f**2 for f in FAKE)
    expected_g = 0.5 * mean((f - 1.0) ** 2 for f in FAKE)
    assert least_squares_d_loss(t(REAL), t(FAKE)).item() == pytest.approx(expected_d, rel=1e-12)
    assert least_squares_g_loss(t(FAKE)).item() == pytest.approx(expected_g, rel=1e-12)
    # Known values: a perfect D has loss 0; a G that fools D completely has loss 0.
    assert least_squares_d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0
    assert least_squares_g_loss(torch.ones(3)).item() == 0.0


def test_least_squares_d_loss_uses_its_targets():
    b, a = 0.9, 0.1
    expected = 0.5 * mean((r - b) ** 2 for r in REAL) + 0.5 * mean((f - a) ** 2 for f in FAKE)
    assert least_squares_d_loss(t(REAL), t(FAKE), b, a).item() == pytest.approx(expected, rel=1e-12)


def test_wasserstein_losses():
    assert wasserstein_d_loss(t(REAL), t(FAKE)).item() == pytest.approx(mean(FAKE) - mean(REAL), rel=1e-12)
    assert wasserstein_g_loss(t(FAKE)).item() == pytest.approx(-mean(FAKE), rel=1e-12)
    # A critic scoring real 3 and fake 1 estimates W = 2, so its loss is -2.
    assert wasserstein_d_loss(torch.full((4,), 3.0), torch.full((4,), 1.0)).item() == pytest.approx(-2.0)


def test_hinge_d_loss_matches_formula():
    expected = mean(max(0.0, 1.0 - r) for r in REAL) + mean(max(0.0, 1.0 + f) for f in FAKE)
    assert hinge_d_loss(t(REAL), t(FAKE)).item() == pytest.approx(expected, rel=1e-12)


def test_hinge_known_values():
    assert hinge_d_loss(torch.tensor([2.0]), torch.tensor([-2.0])).item() == 0.0  # both beyond the margin
    assert hinge_d_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(2.0)
    assert hinge_d_loss(torch.tensor([0.5]), torch.tensor([-3.0])).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "name, d_expected, g_expected, uses_labels",
    [
        (
            "minimax",
            mean(-math.log(sigmoid(r)) for r in REAL) + mean(-math.log(1 - sigmoid(f)) for f in FAKE),
            mean(math.log(1 - sigmoid(f)) for f in FAKE),
            True,
        ),
        (
            "non_saturating",
            mean(-math.log(sigmoid(r)) for r in REAL) + mean(-math.log(1 - sigmoid(f)) for f in FAKE),
            mean(-math.log(sigmoid(f)) for f in FAKE),
            True,
        ),
        (
            "least_squares",
            0.5 * mean((r - 1) ** 2 for r in REAL) + 0.5 * mean(f**2 for f in FAKE),
            0.5 * mean((f - 1) ** 2 for f in FAKE),
            True,
        ),
        ("wasserstein", mean(FAKE) - mean(REAL), -mean(FAKE), False),
        (
            "hinge",
            mean(max(0, 1 - r) for r in REAL) + mean(max(0, 1 + f) for f in FAKE),
            -mean(FAKE),
            False,
        ),
    ],
)
def test_get_loss_pairs_the_right_d_and_g_losses(name, d_expected, g_expected, uses_labels):
    loss = get_loss(name)
    assert loss.name == name
    assert loss.uses_labels is uses_labels
    assert loss.discriminator(t(REAL), t(FAKE)).item() == pytest.approx(d_expected, rel=1e-10)
    assert loss.generator(t(FAKE)).item() == pytest.approx(g_expected, rel=1e-10)


def test_loss_names_cover_the_spec():
    assert set(LOSS_NAMES) == {"minimax", "non_saturating", "least_squares", "wasserstein", "hinge",
                               "relativistic_average", "relativistic_average_hinge"}


# Relativistic average losses (Jolicoeur-Martineau 2018, arXiv:1807.00734, section 4.3): each logit relative to the
# other side's batch mean, D~(x_r) = C(x_r) - mean C(x_f), D~(x_f) = C(x_f) - mean C(x_r); G's loss swaps the roles.
REL_REAL = [r - mean(FAKE) for r in REAL]
REL_FAKE = [f - mean(REAL) for f in FAKE]


@pytest.mark.parametrize(
    "name, d_expected, g_expected",
    [
        (
            "relativistic_average",  # RaSGAN: -E log sigmoid(D~(x_r)) - E log(1 - sigmoid(D~(x_f)))
            mean(-math.log(sigmoid(r)) for r in REL_REAL) + mean(-math.log(1 - sigmoid(f)) for f in REL_FAKE),
            mean(-math.log(sigmoid(f)) for f in REL_FAKE) + mean(-math.log(1 - sigmoid(r)) for r in REL_REAL),
        ),
        (
            "relativistic_average_hinge",  # RaHinge: E max(0, 1 - D~(x_r)) + E max(0, 1 + D~(x_f))
            mean(max(0, 1 - r) for r in REL_REAL) + mean(max(0, 1 + f) for f in REL_FAKE),
            mean(max(0, 1 - f) for f in REL_FAKE) + mean(max(0, 1 + r) for r in REL_REAL),
        ),
    ],
)
def test_relativistic_average_losses_match_hand_computations(name, d_expected, g_expected):
    loss = get_loss(name)
    assert loss.relativistic and not loss.uses_labels
    assert loss.discriminator(t(REAL), t(FAKE)).item() == pytest.approx(d_expected, rel=1e-10)
    assert loss.generator_loss(t(FAKE), t(REAL)).item() == pytest.approx(g_expected, rel=1e-10)


def test_relativistic_hinge_known_values():
    """Equal logits everywhere: every relative logit is 0, so both sides pay 1 + 1 = 2; a margin of 2 between the
    sides (reals 1 above the fakes' mean, fakes 1 below the reals') zeroes D's hinge and doubles G's."""
    loss = get_loss("relativistic_average_hinge")
    zeros = torch.zeros(4)
    assert loss.discriminator(zeros, zeros).item() == pytest.approx(2.0)
    assert loss.generator_loss(zeros, zeros).item() == pytest.approx(2.0)
    real, fake = torch.full([4], 1.0), torch.full([4], -1.0)
    assert loss.discriminator(real, fake).item() == pytest.approx(0.0)
    assert loss.generator_loss(fake, real).item() == pytest.approx(6.0)  # relu(1 + 2) twice


def test_relativistic_g_loss_depends_on_the_real_logits_and_needs_them():
    """Unlike the absolute losses, G's relativistic loss moves with D(real); without them it is refused in one line."""
    for name in ("relativistic_average", "relativistic_average_hinge"):
        loss = get_loss(name)
        assert loss.generator_loss(t(FAKE), t(REAL)).item() != pytest.approx(loss.generator_loss(t(FAKE), t(REAL) + 1.0).item())
        with pytest.raises(ValueError, match=f"{name} loss compares") as info:
            loss.generator_loss(t(FAKE))
        assert "\n" not in str(info.value)
    assert get_loss("hinge").generator_loss(t(FAKE), t(REAL)).item() == pytest.approx(-mean(FAKE))  # absolute: real ignored


def test_get_loss_unknown_name_lists_the_choices():
    with pytest.raises(ValueError) as info:
        get_loss("nonsaturating")
    message = str(info.value)
    assert "nonsaturating" in message
    for name in LOSS_NAMES:
        assert name in message


# Gradient penalty (WGAN-GP).


def linear_critic(w: Tensor):
    """D(x) = <w, x> per sample; grad D = w everywhere."""
    return lambda x: (x * w).flatten(1).sum(1)


def quadratic_critic(a: Tensor):
    """D(x) = sum(a * x^2) per sample; grad D = 2 a x."""
    return lambda x: (a * x.pow(2)).flatten(1).sum(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_penalty_linear_critic_is_norm_minus_one_squared(seed):
    torch.manual_seed(seed)
    w = torch.tensor([[[0.5, -1.0], [2.0, 0.25]]], dtype=torch.float64)  # [1, 2, 2], ||w|| = sqrt(5.3125)
    real, fake = torch.randn(6, 1, 2, 2, dtype=torch.float64), torch.randn(6, 1, 2, 2, dtype=torch.float64)
    expected = (math.sqrt(0.25 + 1.0 + 4.0 + 0.0625) - 1.0) ** 2
    assert gradient_penalty(linear_critic(w), real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic():
    w = torch.tensor([0.6, 0.8])
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert gradient_penalty(linear_critic(w), real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_back_propagates_to_the_critic():
    """create_graph must be on: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||."""
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    penalty = gradient_penalty(linear_critic(w), torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64))
    (grad,) = torch.autograd.grad(penalty, w)
    expected = 2 * (5.0 - 1.0) * torch.tensor([3.0, 4.0], dtype=torch.float64) / 5.0
    torch.testing.assert_close(grad, expected)


def test_gradient_penalty_quadratic_critic_matches_separate_autograd():
    a = torch.tensor([[1.5, -0.5], [0.25, 2.0]], dtype=torch.float64)  # [2, 2] per channel of 1
    critic = quadratic_critic(a)
    gen = torch.Generator().manual_seed(3)
    real = torch.randn(5, 1, 2, 2, generator=gen, dtype=torch.float64)
    fake = torch.randn(5, 1, 2, 2, generator=gen, dtype=torch.float64)

    torch.manual_seed(123)
    penalty = gradient_penalty(critic, real, fake)

    # The same per-sample eps from the same seed, then an independent computation.
    torch.manual_seed(123)
    eps = torch.rand(5, 1, 1, 1, dtype=torch.float64)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    torch.testing.assert_close(grad, 2 * a * x_hat.detach())  # the analytic gradient, as a sanity check
    expected = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)

    # eps is drawn per sample: one shared eps for the whole batch would give another value here.
    shared = (eps[:1] * real + (1 - eps[:1]) * fake).requires_grad_(True)
    (g_shared,) = torch.autograd.grad(critic(shared).sum(), shared)
    assert ((g_shared.flatten(1).norm(dim=1) - 1.0) ** 2).mean().item() != pytest.approx(penalty.item(), rel=1e-6)


def test_gradient_penalty_does_not_back_propagate_into_real_or_fake():
    real = torch.randn(4, 3, requires_grad=True)
    fake = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(3, requires_grad=True)
    penalty = gradient_penalty(quadratic_critic(w), real, fake)
    penalty.backward()
    assert real.grad is None and fake.grad is None
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize("grad_scale", [2.0**10, 65536.0])
def test_gradient_penalty_grad_scale_gives_the_same_value(grad_scale):
    a = torch.tensor([0.7, -1.3, 0.2])
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    torch.manual_seed(7)
    plain = gradient_penalty(quadratic_critic(a), real, fake)
    torch.manual_seed(7)
    scaled = gradient_penalty(quadratic_critic(a), real, fake, grad_scale=grad_scale)
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-5)


# R1 / R2 and drift.


def test_r1_linear_critic_is_squared_weight_norm():
    w = torch.tensor([1.0, -2.0, 0.5])
    real = torch.randn(7, 3, requires_grad=True)
    logits = linear_critic(w)(real)
    assert r1_penalty(logits, real).item() == pytest.approx(1.0 + 4.0 + 0.25, rel=1e-6)


def test_r1_quadratic_critic_matches_hand_computation():
    a = torch.tensor([[0.5, -1.0], [2.0, 0.1]], dtype=torch.float64)
    real = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    logits = quadratic_critic(a)(real)
    expected = (2 * a * real.detach()).flatten(1).pow(2).sum(1).mean()  # grad = 2 a x
    assert r1_penalty(logits, real).item() == pytest.approx(expected.item(), rel=1e-6)


def test_r2_quadratic_critic_matches_hand_computation():
    a = torch.tensor([1.0, 3.0], dtype=torch.float64)
    fake = torch.tensor([[1.0, 2.0], [-0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    logits = quadratic_critic(a)(fake)
    # grads: [2, 12] and [-1, 0] -> squared norms 148 and 1 -> mean 74.5
    assert r2_penalty(logits, fake).item() == pytest.approx(74.5, rel=1e-12)


def test_r1_back_propagates_to_the_critic():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    real = torch.randn(5, 2, requires_grad=True)
    penalty = r1_penalty(linear_critic(w)(real), real)  # ||w||^2
    (grad,) = torch.autograd.grad(penalty, w)
    torch.testing.assert_close(grad, 2 * w.detach())


@pytest.mark.parametrize("penalty_fn", [r1_penalty, r2_penalty])
def test_r1_r2_grad_scale_gives_the_same_value(penalty_fn):
    a = torch.tensor([0.3, -2.0, 1.1])
    x = torch.randn(6, 3, requires_grad=True)
    plain = penalty_fn(quadratic_critic(a)(x), x)
    scaled = penalty_fn(quadratic_critic(a)(x), x, grad_scale=4096.0)
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-5)


def test_drift_penalty_is_mean_square():
    assert drift_penalty(torch.tensor([1.0, -2.0, 3.0])).item() == pytest.approx(14.0 / 3.0)
    assert drift_penalty(torch.zeros(4)).item() == 0.0


# Weight clipping.


def test_clip_weights_clamps_every_parameter_and_keeps_the_rest():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[-1.0, 0.005, 0.5], [0.0, -0.003, 2.0]]))
        net[0].bias.copy_(torch.tensor([0.02, -0.02]))
    clip_weights(net, 0.01)
    torch.testing.assert_close(net[0].weight.data, torch.tensor([[-0.01, 0.005, 0.01], [0.0, -0.003, 0.01]]))
    torch.testing.assert_close(net[0].bias.data, torch.tensor([0.01, -0.01]))
    torch.testing.assert_close(net[1].weight.data, torch.full((2,), 0.01))  # BN scale 1 -> 0.01
    for p in net.parameters():
        assert p.abs().max() <= 0.01 + 1e-9


def test_clip_weights_leaves_no_autograd_history():
    net = nn.Linear(2, 2)
    clip_weights(net, 0.01)
    assert net.weight.grad_fn is None and net.weight.requires_grad


# Training tricks.


def test_label_targets_default_are_one_and_zero():
    logits = torch.randn(4, dtype=torch.float64)
    real, fake = label_targets(logits, True), label_targets(logits, False)
    assert real.shape == logits.shape and real.dtype == logits.dtype
    assert torch.equal(real, torch.ones_like(logits))
    assert torch.equal(fake, torch.zeros_like(logits))


def test_label_smoothing_is_one_sided():
    logits = torch.randn(10)
    torch.testing.assert_close(label_targets(logits, True, smoothing=0.1), torch.full((10,), 0.9))
    assert torch.equal(label_targets(logits, False, smoothing=0.1), torch.zeros(10))


def test_soft_labels_fill_their_ranges():
    torch.manual_seed(0)
    logits = torch.zeros(20_000)
    real, fake = label_targets(logits, True, soft=True), label_targets(logits, False, soft=True)
    assert SOFT_REAL_RANGE == (0.8, 1.2) and SOFT_FAKE_RANGE == (0.0, 0.2)
    assert real.min() >= 0.8 and real.max() <= 1.2
    assert fake.min() >= 0.0 and fake.max() <= 0.2
    # Uniform over the whole range, not a constant: means at the centres, extremes near the ends.
    assert real.mean().item() == pytest.approx(1.0, abs=0.01)
    assert fake.mean().item() == pytest.approx(0.1, abs=0.01)
    assert real.min() < 0.81 and real.max() > 1.19
    assert fake.min() < 0.01 and fake.max() > 0.19
    assert real.unique().numel() > 1000


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_label_flip_probability(p):
    torch.manual_seed(1)
    logits = torch.zeros(100_000)
    real, fake = label_targets(logits, True, flip_prob=p), label_targets(logits, False, flip_prob=p)
    assert set(real.unique().tolist()) == {0.0, 1.0}
    assert set(fake.unique().tolist()) == {0.0, 1.0}
    assert (real == 0).float().mean().item() == pytest.approx(p, abs=0.01)
    assert (fake == 1).float().mean().item() == pytest.approx(p, abs=0.01)


def test_label_flip_with_smoothing_swaps_in_the_other_sides_target():
    torch.manual_seed(2)
    real = label_targets(torch.zeros(50_000), True, smoothing=0.1, flip_prob=0.2)
    values = set(round(v, 5) for v in real.unique().tolist())
    assert values == {0.9, 0.0}
    fake = label_targets(torch.zeros(50_000), False, smoothing=0.1, flip_prob=0.2)
    assert set(round(v, 5) for v in fake.unique().tolist()) == {0.0, 0.9}
    assert (real < 0.5).float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_flipped_soft_labels_stay_in_the_soft_ranges():
    torch.manual_seed(3)
    for real in (True, False):
        targets = label_targets(torch.zeros(20_000), real, soft=True, flip_prob=0.3)
        in_fake = (targets >= 0.0) & (targets <= 0.2)
        in_real = (targets >= 0.8) & (targets <= 1.2)
        assert bool((in_fake | in_real).all())


def test_instance_noise_is_identity_at_zero_std():
    x = torch.randn(3, 1, 4, 4)
    assert torch.equal(instance_noise(x, 0.0), x)


def test_instance_noise_has_the_requested_std():
    torch.manual_seed(4)
    x = torch.full((100_000,), 0.5)
    noisy = instance_noise(x, 0.3)
    assert not torch.equal(noisy, x)
    assert (noisy - x).std().item() == pytest.approx(0.3, rel=0.02)
    assert (noisy - x).mean().item() == pytest.approx(0.0, abs=0.005)

