"""Adversarial losses and regularisers, written once and shared by every variant.

Every function is a pure function of discriminator outputs (logits, never
probabilities) and, for the penalties, of the tensors they differentiate. The
identity used throughout is ``softplus(-x) = -log sigmoid(x)`` and
``softplus(x) = -log(1 - sigmoid(x))``, which keeps the logistic losses stable.

Losses (chosen by name in config, see :data:`LOSS_NAMES`):

- ``minimax``         Goodfellow et al. 2014, arXiv:1406.2661, eq. 1: G minimises log(1 - D(G(z))).
- ``non_saturating``  Goodfellow et al. 2014, section 3: G maximises log D(G(z)).
- ``least_squares``   Mao et al. 2017, arXiv:1611.04076, eq. 2 with a=0, b=1, c=1.
- ``wasserstein``     Arjovsky et al. 2017, arXiv:1701.07875, eq. 3 (critic, no sigmoid).
- ``hinge``           Lim & Ye 2017, arXiv:1705.02894; Miyato et al. 2018, eq. 16-17.
- ``relativistic_average``        RaSGAN, Jolicoeur-Martineau 2018, arXiv:1807.00734, section 4.3 (the relativistic
  average discriminator with the standard GAN's f, Algorithm 2).
- ``relativistic_average_hinge``  RaHingeGAN, the same paper's hinge variant (section 4.3 and the experiments of
  section 5); MSG-GAN's loss (Karnewar & Wang 2020, arXiv:1903.06048, section 4).

The relativistic losses compare each logit with the other side's batch mean, so their G loss reads D's logits on
real data too (:attr:`AdversarialLoss.relativistic`): ``generator(fake, real)``; every other G loss is ``generator(fake)``.

Regularisers:

- :func:`clip_weights`      WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1).
- :func:`gradient_penalty`  WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028, eq. 3).
- :func:`r1_penalty` / :func:`r2_penalty`  zero-centred penalties on real / fake
  (Mescheder et al. 2018, arXiv:1801.04406, eq. 9-10).
- :func:`drift_penalty`     ProGAN drift (Karras et al. 2018, arXiv:1710.10196, section A.1).
- :func:`path_length_penalty` StyleGAN2 path length (Karras et al. 2020, arXiv:1912.04958, section 3.2, eq. 4).
- :func:`orthogonal_penalty` BigGAN's orthogonal regularisation (Brock et al. 2018, arXiv:1809.11096, section 3.1, eq. 3).

Class losses:

- :func:`auxiliary_classifier_loss` ACGAN's L_C (Odena et al. 2017, arXiv:1610.09585, eq. 3).

Feature losses of neural style transfer (Gatys et al. 2016, CVPR, section 2; used by :mod:`gans.tools.style_transfer`,
on any network's feature maps ``[N, C, H, W]``):

- :func:`content_loss` eq. 1; :func:`gram_matrix` eq. 3; :func:`style_layer_loss` eq. 4; :func:`style_loss` eq. 5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError

# Discriminator losses. ``real_target`` / ``fake_target`` are the label targets
# (1 and 0 unless a label trick replaces them); losses that have no labels
# (wasserstein, hinge) reject them, see AdversarialLoss.uses_labels.


def logistic_d_loss(real: Tensor, fake: Tensor, real_target: Tensor | float = 1.0, fake_target: Tensor | float = 0.0) -> Tensor:
    """-E[t log D(x) + (1-t) log(1 - D(x))] summed over real and fake: binary cross-entropy on logits.

    With the default targets this is ``E[softplus(-real)] + E[softplus(fake)]``.
    """
    real_target = torch.as_tensor(real_target, dtype=real.dtype, device=real.device).expand_as(real)
    fake_target = torch.as_tensor(fake_target, dtype=fake.dtype, device=fake.device).expand_as(fake)
    return F.binary_cross_entropy_with_logits(real, real_target) + F.binary_cross_entropy_with_logits(fake, fake_target)


def minimax_g_loss(fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))] = -E[softplus(fake)]; saturates when D rejects the fakes."""
    return -F.softplus(fake).mean()


def non_saturating_g_loss(fake: Tensor) -> Tensor:
    """-E[log D(G(z))] = E[softplus(-fake)]."""
    return F.softplus(-fake).mean()


def least_squares_d_loss(real: Tensor, fake: Tensor, real_target: Tensor | float = 1.0, fake_target: Tensor | float = 0.0) -> Tensor:
    """1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] with b = real_target, a = fake_target (Mao et al. eq. 2)."""
    return 0.5 * ((real - real_target) ** 2).mean() + 0.5 * ((fake - fake_target) ** 2).mean()


def least_squares_g_loss(fake: Tensor) -> Tensor:
    """1/2 E[(D(G(z)) - c)^2] with c = 1."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def wasserstein_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[D(G(z))] - E[D(x)]: the negated estimate of the Wasserstein-1 distance."""
    return fake.mean() - real.mean()


def wasserstein_g_loss(fake: Tensor) -> Tensor:
    """-E[D(G(z))]; shared by the hinge loss (Miyato et al. 2018, eq. 17)."""
    return -fake.mean()


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _relative(x: Tensor, other: Tensor) -> Tensor:
    """x - E[other]: a logit read relative to the other side's batch mean (Jolicoeur-Martineau 2018, section 4.3,
    D~(x) = C(x) - E C(x'); the mean is over this process's batch)."""
    return x - other.mean()


def relativistic_average_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """RaSGAN's D loss: -E_r[log sigmoid(C(x_r) - E C(x_f))] - E_f[log(1 - sigmoid(C(x_f) - E C(x_r)))]
    = E[softplus(-(real - E fake))] + E[softplus(fake - E real)]."""
    return F.softplus(-_relative(real, fake)).mean() + F.softplus(_relative(fake, real)).mean()


def relativistic_average_g_loss(fake: Tensor, real: Tensor) -> Tensor:
    """RaSGAN's G loss, D's with the roles of real and fake swapped: -E_f[log sigmoid(C(x_f) - E C(x_r))]
    - E_r[log(1 - sigmoid(C(x_r) - E C(x_f)))]. Only the fake term depends on G; the real logits carry no gradient to it."""
    return F.softplus(-_relative(fake, real)).mean() + F.softplus(_relative(real, fake)).mean()


def relativistic_average_hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """RaHinge D loss: E_r[max(0, 1 - (C(x_r) - E C(x_f)))] + E_f[max(0, 1 + (C(x_f) - E C(x_r)))]."""
    return F.relu(1.0 - _relative(real, fake)).mean() + F.relu(1.0 + _relative(fake, real)).mean()


def relativistic_average_hinge_g_loss(fake: Tensor, real: Tensor) -> Tensor:
    """RaHinge G loss, D's with the roles swapped: E_f[max(0, 1 - (C(x_f) - E C(x_r)))] + E_r[max(0, 1 + (C(x_r) - E C(x_f)))]
    (as the official MSG-GAN code, BMSG-GAN ``Losses.py``)."""
    return F.relu(1.0 - _relative(fake, real)).mean() + F.relu(1.0 + _relative(real, fake)).mean()


def auxiliary_classifier_loss(class_logits: list[Tensor] | tuple[Tensor, ...], labels: Tensor) -> Tensor:
    """ACGAN's class term -L_C for one set of images (Odena et al. 2017, arXiv:1610.09585, section 3, eq. 3): the negative
    log-likelihood of each image's class under D's softmax classifier, averaged over the batch.

    ``class_logits`` holds one ``[N, k_h]`` tensor per label head and ``labels`` the class indices, ``[N]`` for one
    head or ``[N, heads]`` (:mod:`gans.labels`). The heads' terms are summed: with independent heads (hair, eye)
    the log-likelihood of the pair is the sum of the heads' log-likelihoods.
    """
    labels = labels.long().reshape(labels.shape[0], -1)
    if labels.shape[1] != len(class_logits):
        raise ConfigError(f"{labels.shape[1]} label heads but {len(class_logits)} classifier heads: set num_classes to one entry per label head.")
    return sum(F.cross_entropy(logits.float(), labels[:, h]) for h, logits in enumerate(class_logits))


@dataclass(frozen=True)
class AdversarialLoss:
    """A pair of D and G losses. ``uses_labels``: whether label targets (smoothing, soft/noisy labels) apply.
    ``relativistic``: the G loss needs D's logits on real data as well, ``generator(fake, real)`` (the G step must
    compute them); otherwise ``generator(fake)``. Call the G loss through :meth:`generator_loss`."""

    name: str
    discriminator: Callable[..., Tensor]
    generator: Callable[..., Tensor]
    uses_labels: bool
    relativistic: bool = False

    def generator_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        """The G loss on D's logits for the fakes and, for a relativistic loss, for the real batch (``real``)."""
        if not self.relativistic:
            return self.generator(fake)
        if real is None:
            raise ConfigError(f"The {self.name} loss compares D's logits on fakes with those on real images, but the G step gave "
                              f"none: pass the real batch to generator_loss(fake, labels, real=real), or choose another loss.")
        return self.generator(fake, real)


_LOSSES = {
    "minimax": AdversarialLoss("minimax", logistic_d_loss, minimax_g_loss, uses_labels=True),
    "non_saturating": AdversarialLoss("non_saturating", logistic_d_loss, non_saturating_g_loss, uses_labels=True),
    "least_squares": AdversarialLoss("least_squares", least_squares_d_loss, least_squares_g_loss, uses_labels=True),
    "wasserstein": AdversarialLoss("wasserstein", wasserstein_d_loss, wasserstein_g_loss, uses_labels=False),
    "hinge": AdversarialLoss("hinge", hinge_d_loss, wasserstein_g_loss, uses_labels=False),
    "relativistic_average": AdversarialLoss(
        "relativistic_average", relativistic_average_d_loss, relativistic_average_g_loss, uses_labels=False, relativistic=True
    ),
    "relativistic_average_hinge": AdversarialLoss(
        "relativistic_average_hinge", relativistic_average_hinge_d_loss, relativistic_average_hinge_g_loss, uses_labels=False, relativistic=True
    ),
}
LOSS_NAMES: tuple[str, ...] = tuple(_LOSSES)


def get_loss(name: str) -> AdversarialLoss:
    """The adversarial loss called ``name``; a clear error lists the valid names."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ConfigError(f"Unknown loss {name!r}: choose one of {', '.join(LOSS_NAMES)} (model.init_args.loss).") from None


# Regularisers.


@torch.no_grad()
def clip_weights(module: nn.Module, clip_value: float) -> None:
    """Clamp every parameter of ``module`` to [-c, c] in place (WGAN, Algorithm 1 line 7)."""
    for p in module.parameters():
        p.clamp_(-clip_value, clip_value)


def _unscaled_grad(output: Tensor, inputs: Tensor, grad_scale: float = 1.0) -> Tensor:
    """d output / d inputs for a scalar ``output``, keeping the graph so a penalty on it can be back-propagated.

    ``grad_scale`` is the AMP loss scale: the output is scaled before ``autograd.grad`` and the
    gradient unscaled after (in at least fp32), so fp16 gradients do not underflow (PyTorch AMP
    recipe "gradient penalty").
    """
    (grad,) = torch.autograd.grad(outputs=output * grad_scale, inputs=inputs, create_graph=True)
    return grad.to(torch.promote_types(grad.dtype, torch.float32)) / grad_scale


def _grad_norm_sq(outputs: Tensor, inputs: Tensor, grad_scale: float = 1.0) -> Tensor:
    """Per-sample ||d sum(outputs) / d inputs||^2, differentiable (see :func:`_unscaled_grad`)."""
    return _unscaled_grad(outputs.sum(), inputs, grad_scale).flatten(1).pow(2).sum(1)  # [N]


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    grad_scale: float = 1.0,
) -> Tensor:
    """WGAN-GP: E[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample.

    Gulrajani et al. 2017, eq. 3. Multiply by lambda (10 in the paper) outside.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    norm = _grad_norm_sq(discriminator(x_hat), x_hat, grad_scale).add(1e-12).sqrt()
    return (norm - 1.0).pow(2).mean()


def r1_penalty(real_logits: Tensor, real: Tensor, grad_scale: float = 1.0) -> Tensor:
    """R1: E[||grad D(x)||^2] on real data; ``real`` must require grad. Multiply by gamma / 2 outside."""
    return _grad_norm_sq(real_logits, real, grad_scale).mean()


def r2_penalty(fake_logits: Tensor, fake: Tensor, grad_scale: float = 1.0) -> Tensor:
    """R2: E[||grad D(G(z))||^2] on generated data; ``fake`` must require grad. Multiply by gamma / 2 outside."""
    return _grad_norm_sq(fake_logits, fake, grad_scale).mean()


def path_lengths(images: Tensor, latents: Tensor, grad_scale: float = 1.0) -> Tensor:
    """Per-sample ||J^T y||_2 with J = d images / d latents and y ~ N(0, I) / sqrt(H * W), keeping the graph.

    StyleGAN2 (Karras et al. 2020, arXiv:1912.04958, eq. 4): the noise is scaled by the square root of
    the pixel count per channel (``images.shape[2:]`` for ``[N, C, H, W]``; all of ``images.shape[1:]`` for
    flat ``[N, D]`` samples), so the length does not grow with the resolution. ``latents`` must require
    grad and be ``[N, num_ws, w_dim]`` (squares summed over ``w_dim``, averaged over the ``num_ws``
    copies of w, then the square root) or ``[N, z_dim]`` (one w: the plain 2-norm). ``grad_scale``: the
    AMP loss scale, as in :func:`r1_penalty`.
    """
    pixels = images.shape[2:] if images.dim() > 2 else images.shape[1:]
    noise = torch.randn_like(images) / math.sqrt(math.prod(pixels))
    grad = _unscaled_grad((images * noise).sum(), latents, grad_scale)
    if grad.dim() == 2:
        grad = grad.unsqueeze(1)  # [N, 1, z_dim]
    return grad.pow(2).sum(-1).flatten(1).mean(1).sqrt()  # [N]


def path_length_penalty(lengths: Tensor, mean_length: Tensor, decay: float, batch_mean: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """StyleGAN2's path length penalty ``E[(||J^T y|| - a)^2]`` (Karras et al. 2020, arXiv:1912.04958, eq. 4) as the
    official code (stylegan2-ada-pytorch ``training/loss.py``, ``Greg``): the running mean moves first,
    ``a = mean_length.lerp(batch_mean, decay)``, and the penalty's gradient flows through ``a`` too.

    ``lengths``: :func:`path_lengths`; ``mean_length``: the running mean before this batch (no gradient);
    ``batch_mean``: the batch's mean length, ``lengths.mean()`` by default (under several processes the caller
    passes the ranks' mean carrying this rank's gradient). A non-finite batch mean leaves ``a`` at
    ``mean_length``. Returns ``(penalty, a)``; the caller stores ``a.detach()`` and multiplies the penalty by
    the weight (2 in the paper) and the lazy interval.
    """
    batch_mean = (lengths.mean() if batch_mean is None else batch_mean).to(mean_length.dtype)
    mean = torch.where(torch.isfinite(batch_mean), mean_length.lerp(batch_mean, decay), mean_length)
    return (lengths - mean).square().mean(), mean


def drift_penalty(real_logits: Tensor) -> Tensor:
    """ProGAN drift: E[D(x)^2], keeps the critic output near zero (weight epsilon_drift = 0.001)."""
    return real_logits.float().pow(2).mean()


def orthogonal_penalty(weights: Iterable[Tensor]) -> Tensor:
    """BigGAN's orthogonal regularisation (Brock et al. 2018, arXiv:1809.11096, section 3.1, eq. 3), summed over
    ``weights``: ``sum_W ||W W^T * (1 - I)||_F^2``, each ``W`` reshaped to ``[out, in * k * k]`` (one row per filter,
    as the official code), so only the filters' pairwise cosines are pushed to 0 and their norms are free.

    Multiply by ``beta / 2`` outside: the official code (BigGAN-PyTorch ``utils.ortho``) adds
    ``beta * 2 (W W^T * (1 - I)) W`` to each gradient, which is the gradient of ``beta / 2`` times this sum
    (the paper's eq. 3 without the halving would double the step); beta = 1e-4 in the paper. Computed in at least fp32.
    """
    total = None
    for weight in weights:
        w = weight.reshape(weight.shape[0], -1)
        w = w.to(torch.promote_types(w.dtype, torch.float32))
        gram = w @ w.t()
        term = (gram * (1.0 - torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype))).square().sum()
        total = term if total is None else total + term
    if total is None:
        raise ConfigError("orthogonal_penalty got no weights: pass the generator's weight matrices (2 or more dimensions).")
    return total


# Feature losses of neural style transfer (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural
# Networks", CVPR, section 2). A layer l with N_l filters of M_l = H_l * W_l positions has features F^l [N_l, M_l]; the
# losses sum over a batch of feature maps [N, C, H, W] and are computed in at least fp32.


def _at_least_fp32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Eq. 1: ``1/2 sum_ij (F^l_ij - P^l_ij)^2``, the squared error between the generated image's feature maps
    ``features`` and the content image's ``target`` (same shape), summed over filters, positions and the batch."""
    return 0.5 * (_at_least_fp32(features) - _at_least_fp32(target)).square().sum()


def gram_matrix(features: Tensor) -> Tensor:
    """Eq. 3: ``G^l_ij = sum_k F^l_ik F^l_jk``, the inner products of the vectorised feature maps of filters i and j:
    ``[N, C, H, W] -> [N, C, C]`` (not divided by the number of positions; eq. 4 normalises)."""
    flat = _at_least_fp32(features).flatten(2)  # [N, C, M]
    return flat @ flat.transpose(1, 2)  # [N, C, C]


def style_layer_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Eq. 4: ``E_l = 1 / (4 N_l^2 M_l^2) sum_ij (G^l_ij - A^l_ij)^2`` between the Gram matrix of ``features``
    ``[N, C, H, W]`` and the style image's ``target_gram`` (``[N or 1, C, C]``), summed over the batch."""
    channels, positions = features.shape[1], features.shape[2] * features.shape[3]
    return (gram_matrix(features) - _at_least_fp32(target_gram)).square().sum() / (4 * channels**2 * positions**2)


def style_loss(features: Iterable[Tensor], target_grams: Iterable[Tensor], layer_weights: Iterable[float]) -> Tensor:
    """Eq. 5: ``L_style = sum_l w_l E_l`` over the style layers (the paper: conv1_1 ... conv5_1, w_l = 1/5)."""
    terms = [w * style_layer_loss(f, a) for f, a, w in zip(features, target_grams, layer_weights, strict=True)]
    if not terms:
        raise ConfigError("style_loss got no layers: give at least one style layer.")
    return torch.stack(terms).sum()
