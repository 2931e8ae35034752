"""Equivariance metrics EQ-T, EQ-T_frac and EQ-R: how exactly a generator's image follows a translation or rotation
of its input coordinates.

Karras et al. 2021, "Alias-Free Generative Adversarial Networks" (StyleGAN3, arXiv:2106.12423), section 3 and
Appendix E. A generator whose synthesis takes a user transform (StyleGAN3's input layer,
``G.synthesis.input.transform``, a [3, 3] matrix; the image is drawn in the coordinates that matrix maps to, so a
translation by ``-t`` moves the picture by ``+t``) draws the same w twice, once untransformed and once transformed,
and the untransformed image is moved with an ideal operator of its own; the metric is the peak signal-to-noise ratio
between the two, over the pixels both define, with the images' range [-1, 1] (peak-to-peak 2):

``PSNR = 20 log10(2) - 10 log10(sum mask (ref - img)^2 / sum mask)``, summed over all samples, in dB.

- EQ-T (``translation_int``, Appendix E.1): a translation by a whole number of pixels (``t`` uniform in
  ``[-translate_max, translate_max]^2`` image widths, rounded to the pixel grid); the reference is the image moved
  by that many pixels, valid where it comes from inside the image.
- EQ-T_frac (``translation_frac``, E.2): a translation by any ``t``; the reference is the image moved by a separable
  Lanczos-3 interpolation (taps ``sinc(u) sinc(u / 3)``, normalised to sum 1), valid where all six taps fall inside.
- EQ-R (``rotation``, E.3): a rotation by ``alpha`` uniform in ``[-rotate_max, rotate_max] * pi`` (the generator
  gets the rotation by ``-alpha``); the reference is the image rotated by ``alpha`` through an ideal band-limited
  resampler (upsampled x4 with an oriented low-pass filter: the convolution of two 2-D sincs, one in the input's and
  one in the rotated output's axes, windowed by the convolution of two Lanczos windows; then bilinear sampling), and
  the generated image goes through the same filter without the rotation ("pseudo-rotation" R*_alpha), so both carry
  the same frequency content; valid where both filters stayed inside.

Protocol (NVIDIA's ``metrics/equivariance.py``, which ``metric_main.py`` runs on 50,000 samples in batches of 4):
per batch, ``z = randn(batch_size, z_dim)``, the batch's class vectors, then for each metric computed, in the order
EQ-T, EQ-T_frac, EQ-R, one transform shared by the batch (``rand(2)`` or ``rand([])``). With ``seed`` the torch
draws come from ``torch.Generator().manual_seed(seed)`` (the sequence the global generator gives after
``torch.manual_seed(seed)``) and the labels from ``numpy.random.RandomState(seed)`` (``np.random.seed(seed)``), on
the CPU whatever the device, so a run is reproducible everywhere and equals the official one on a CPU. Every draw of
every batch is made even when :func:`equivariance_sums` measures only some batches (``batches``): processes that
split the batches between them together measure what one process would.

Deviation from the official code: labels are drawn uniformly per head of ``label_space`` (official: the label of a
uniformly drawn training image, i.e. the data's label frequencies; the same for class-balanced data, and equal to it
for one head of ``c_dim`` classes, as the fixture's stand-in dataset). The official metric also re-draws the
``noise_const`` buffers of generators that have them; StyleGAN3 has none.

StyleGAN2 (the paper's config A) has no continuous input to transform; as the paper does (section 3.1), the operator
is approximated on its learned 4x4 constant: :class:`TransformableConstantGenerator` translates and rotates the
constant with the operators above and runs the unchanged synthesis on it with its fixed noise (``noise_mode="const"``,
the generator's own ``noise_const`` for every batch, where the official code re-draws them per batch). The metrics
wrap a StyleGAN2 generator so automatically (:func:`transformable`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.nn.basic import eval_mode
from gans.nn.resample import upfirdn2d

Kind = Literal["translation_int", "translation_frac", "rotation"]
KINDS: tuple[Kind, ...] = ("translation_int", "translation_frac", "rotation")  # the official draw order within a batch
METRIC_NAMES: dict[str, str] = {"translation_int": "eqt_int", "translation_frac": "eqt_frac", "rotation": "eqr"}
LANCZOS_A = 3  # Lanczos-3 interpolation (Appendix E.2) and window (E.3)
ROTATION_UP = 4  # E.3: the reference rotation resamples a x4 upsampled image
FILTER_SUPPORT = 64  # half-width (input pixels) of the grid the oriented filter is designed on, before cropping
PEAK_TO_PEAK = 2.0  # images in [-1, 1]


# The ideal operators (Appendix E).


def lanczos_window(u: Tensor, a: int = LANCZOS_A) -> Tensor:
    """The Lanczos window ``sinc(u / a)`` on ``|u| < a``, 0 elsewhere (``sinc(u) = sin(pi u) / (pi u)``)."""
    return torch.where(u.abs() < a, torch.sinc(u / a), torch.zeros_like(u))


def lanczos(u: Tensor, a: int = LANCZOS_A) -> Tensor:
    """The Lanczos kernel: ``sinc(u)`` times :func:`lanczos_window`."""
    return torch.sinc(u) * lanczos_window(u, a)


def rotation_matrix(angle: Tensor | float) -> Tensor:
    """The [3, 3] homogeneous matrix ``[[cos a, sin a, 0], [-sin a, cos a, 0], [0, 0, 1]]`` (float32), the official
    metric's convention: ``rotation_matrix(-alpha)`` as the generator's input transform rotates its image by
    ``alpha`` as :func:`rotate` does."""
    angle = torch.as_tensor(angle, dtype=torch.float32)
    c, s = angle.cos(), angle.sin()
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([torch.stack([c, s, zero]), torch.stack([-s, c, zero]), torch.stack([zero, zero, one])])


def _span(n: int, start: int, stop: int, device: torch.device) -> Tensor:
    """``[n]`` bool: True on ``start <= i < stop``."""
    i = torch.arange(n, device=device)
    return (i >= start) & (i < stop)


def _mask(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """The mask of ``x``'s shape that is 1 on the rows and columns flagged."""
    return (rows[:, None] & cols[None, :]).to(x.dtype).expand_as(x)


def translate_integer(x: Tensor, dx: int, dy: int) -> tuple[Tensor, Tensor]:
    """``x [N, C, H, W]`` moved right by ``dx`` and down by ``dy`` whole pixels, and the mask (``x``'s shape) of the
    pixels that come from inside the image (Appendix E.1's T_x). Values outside the mask are not defined."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h, device=x.device) - dy).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device) - dx).clamp(0, w - 1)
    moved = x[:, :, rows][:, :, :, cols]
    return moved, _mask(x, _span(h, dy, h + dy, x.device), _span(w, dx, w + dx, x.device))


def lanczos_shift_matrix(n: int, shift: float, a: int = LANCZOS_A, device: torch.device | None = None) -> Tensor:
    """``[n, n]``: row m holds the Lanczos-``a`` weights that interpolate sample ``m - shift`` of a length-``n``
    signal, normalised to sum 1 over the ``2a`` taps ``j = floor(m - shift) - (a - 1) .. floor(m - shift) + a``
    (rows near the ends lose the taps that fall outside)."""
    whole = math.floor(shift)
    frac = torch.tensor(shift - whole, dtype=torch.float32, device=device)
    m = torch.arange(n, device=device)
    d = m[:, None] - m[None, :] - whole  # integer part of m - j - shift
    weights = torch.where((d > -a) & (d <= a), lanczos(d.float() - frac, a), torch.zeros((), device=device))
    taps = torch.arange(-(a - 1), a + 1, device=device).float() - frac
    return weights / lanczos(taps, a).sum()


def translate_fractional(x: Tensor, tx: float, ty: float, a: int = LANCZOS_A) -> tuple[Tensor, Tensor]:
    """``x [N, C, H, W]`` moved right by ``tx`` and down by ``ty`` pixels (any real numbers) with separable
    Lanczos-``a`` interpolation, and the mask of the pixels whose ``2a`` taps all fall inside the image
    (Appendix E.2's T_x)."""
    h, w = x.shape[-2:]
    rows_matrix = lanczos_shift_matrix(h, ty, a, x.device)  # [H, H]
    cols_matrix = lanczos_shift_matrix(w, tx, a, x.device)  # [W, W]
    moved = rows_matrix @ x.float() @ cols_matrix.T
    ix, iy = math.floor(tx), math.floor(ty)
    rows = _span(h, max(iy + a, 0), h + min(iy - (a - 1), 0), x.device)
    cols = _span(w, max(ix + a, 0), w + min(ix - (a - 1), 0), x.device)
    return moved.to(x.dtype), _mask(x, rows, cols)


def oriented_lowpass(matrix: Tensor, a: int = LANCZOS_A, half_width: int = 2 * LANCZOS_A, up: int = ROTATION_UP) -> Tensor:
    """The 2-D FIR filter ``[2 half_width up - 1]^2`` (odd, centred) of Appendix E.3 that band-limits an image
    both in its own axes and in the axes of the affine transform ``matrix`` ([3, 3], its [2, 2] part used), for a
    signal upsampled by ``up``.

    On a grid of spacing ``1 / up`` input pixels (:data:`FILTER_SUPPORT` pixels each side), the ideal filter is the
    convolution of ``sinc(x) sinc(y)`` with the same sinc in the transformed coordinates, windowed by the
    convolution of the two Lanczos-``a`` windows; both convolutions are circular (FFT) on that grid. The filter is
    then cropped to ``half_width`` input pixels each side and every one of its ``up x up`` polyphase components is
    normalised to sum ``1 / up^2`` (so upsampling with gain ``up^2`` keeps a constant image constant).
    """
    if not a <= half_width < FILTER_SUPPORT:
        raise ConfigError(f"The oriented filter needs a <= half_width < {FILTER_SUPPORT}, got a={a}, half_width={half_width}.")
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    device = matrix.device
    n = 2 * FILTER_SUPPORT * up - 1  # odd grid, sample 0 at index 0 (FFT order)
    k = torch.arange(n, device=device)
    taps = torch.where(k <= n // 2, k, k - n).float() / up
    yi, xi = torch.meshgrid(taps, taps, indexing="ij")  # input coordinates
    xo = xi * matrix[0, 0] + yi * matrix[0, 1]  # transformed coordinates
    yo = xi * matrix[1, 0] + yi * matrix[1, 1]

    def circular_conv(p: Tensor, q: Tensor) -> Tensor:
        return torch.fft.ifft2(torch.fft.fft2(p) * torch.fft.fft2(q)).real

    ideal = circular_conv(torch.sinc(xi) * torch.sinc(yi), torch.sinc(xo) * torch.sinc(yo))
    window = circular_conv(lanczos_window(xi, a) * lanczos_window(yi, a), lanczos_window(xo, a) * lanczos_window(yo, a))
    f = torch.fft.fftshift(ideal * window)  # sample 0 at the centre, index n // 2
    c = (FILTER_SUPPORT - half_width) * up
    f = f[c : n - c, c : n - c]  # [2 half_width up - 1]^2
    side = 2 * half_width  # polyphase: pad to a multiple of up, one component per (row, column) phase
    f = F.pad(f, [0, 1, 0, 1]).reshape(side, up, side, up)
    f = f / f.sum(dim=(0, 2), keepdim=True) / up**2
    return f.reshape(side * up, side * up)[:-1, :-1]


def upsample_margin(x: Tensor, f: Tensor, up: int, margin: int) -> Tensor:
    """``x [N, C, H, W]`` upsampled by ``up`` with the odd 2-D filter ``f [K, K]`` (gain ``up^2``): ``up`` times the
    size plus ``margin`` samples each side, the official ``upsample2d(x, f, up, padding=margin)``.

    The zero insertion and the convolution are one transposed convolution of stride ``up`` (the polyphase form:
    ``y[n] = sum_i x[i] f[n - up i]``, no products with the inserted zeros, ``up^2`` times fewer than a convolution of
    the zero-inserted image, as :func:`gans.nn.resample.upfirdn2d` computes it). Sample ``j`` of that full output is
    sample ``j - (K - 1) + before`` of the official padded-and-filtered signal, so a pad (negative: a crop) of
    ``before - (K - 1)`` in front and ``after - (K - up)`` behind gives the official output.
    """
    c, k = x.shape[1], f.shape[-1]
    weight = (f * up**2).to(dtype=x.dtype, device=x.device).expand(c, 1, k, k)
    full = F.conv_transpose2d(x, weight, stride=up, groups=c)  # [N, C, up (H - 1) + K, ...]
    before = margin + (k + up - 1) // 2  # the official padding of the zero-inserted image
    after = margin + (k - up) // 2
    front, back = before - (k - 1), after - (k - up)  # full[j] is the padded-and-filtered signal at j + (k - 1) - before
    return F.pad(full, [front, back, front, back])


def rotate(x: Tensor, angle: float | Tensor, a: int = LANCZOS_A, up: int = ROTATION_UP) -> tuple[Tensor, Tensor]:
    """``x [N, C, H, W]`` rotated by ``angle`` (radians) with the band-limited resampler of Appendix E.3 (R_alpha):
    upsampled by ``up`` with :func:`oriented_lowpass`, then sampled bilinearly on the rotated grid; and the mask of
    the pixels whose filter footprint lay inside the image (nearest sampling of the upsampled image's interior)."""
    n, _, h, w = x.shape
    matrix = rotation_matrix(torch.as_tensor(angle)).to(x.device)
    f = oriented_lowpass(matrix, a, 2 * a, up)
    p = f.shape[0] // 2
    big = upsample_margin(x.float(), f, up, p)  # [N, C, up H + 2p, up W + 2p]
    # The sampling grid: output pixel centres mapped by the inverse rotation into the upsampled image's normalised
    # coordinates (which reach p / up input pixels further on each side), shifted by half a fine sample.
    theta = torch.linalg.inv(matrix)
    theta[:2, 2] *= 2
    theta[0, 2] += 1 / up / w
    theta[1, 2] += 1 / up / h
    theta[0, :] *= w / (w + p / up * 2)
    theta[1, :] *= h / (h + p / up * 2)
    grid = F.affine_grid(theta[:2].unsqueeze(0).expand(n, 2, 3), list(x.shape), align_corners=False)
    rotated = F.grid_sample(big, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    interior = torch.zeros_like(big)
    c = 2 * p + 1
    interior[:, :, c:-c, c:-c] = 1
    mask = F.grid_sample(interior, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return rotated.to(x.dtype), mask.to(x.dtype)


def pseudo_rotate(x: Tensor, angle: float | Tensor, a: int = LANCZOS_A) -> tuple[Tensor, Tensor]:
    """``x`` filtered as if rotated by ``angle`` but not moved (Appendix E.3's R*_alpha): the :func:`oriented_lowpass`
    of the rotation by ``-angle`` at the image's own sampling, same size; and the mask of the pixels the filter saw
    whole."""
    f = oriented_lowpass(rotation_matrix(-torch.as_tensor(angle)).to(x.device), a, 2 * a, up=1)
    c = f.shape[0] // 2
    filtered = upfirdn2d(x.float(), f, padding=c)
    h, w = x.shape[-2:]
    return filtered.to(x.dtype), _mask(x, _span(h, c, h - c, x.device), _span(w, c, w - c, x.device))


# StyleGAN2's learned constant under a user transform (the StyleGAN3 paper's config A).

CONSTANT = "b4.const"  # the learned [C, 4, 4] input of a StyleGAN2 synthesis network (the official parameter name)


def has_learned_constant(G: Any) -> bool:
    """Whether ``G`` is a style generator whose synthesis starts from a learned constant ``synthesis.b4.const``
    ([C, H, W]; StyleGAN2's :class:`gans.models.style.stylegan2.SynthesisNetwork`, and StyleGAN's, of the same name)."""
    const = getattr(getattr(getattr(G, "synthesis", None), "b4", None), "const", None)
    return isinstance(const, Tensor) and const.dim() == 3 and hasattr(G, "mapping")


def transform_constant(const: Tensor, matrix: Tensor) -> Tensor:
    """``const [C, H, W]`` resampled at the coordinates the rigid transform ``matrix`` ([3, 3], rotation and
    translation, as ``synthesis.input.transform``) maps its pixel centres to: ``out(x) = const(A x + b)``, with ``x``
    in units of the constant's width (the same fraction of the image's width), origin at the centre, and ``const``
    zero outside its ``H x W`` pixels.

    ``const(A x + b)`` is ``const`` moved by ``-b`` and then rotated by the angle of ``A`` (``A =
    rotation_matrix(-alpha)``: a rotation by ``alpha``), each with the metric's own ideal operator: the Lanczos-3
    interpolation of :func:`translate_fractional` (a whole pixel moves exactly) and the band-limited resampler of
    :func:`rotate`. The identity returns ``const`` itself.
    """
    matrix = torch.as_tensor(matrix, dtype=torch.float32, device=const.device)
    angle = torch.atan2(matrix[0, 1], matrix[0, 0])
    rigid = torch.eye(3, device=const.device)
    rigid[:2, :2] = rotation_matrix(angle)[:2, :2]
    if not torch.allclose(matrix[:2, :2], rigid[:2, :2], atol=1e-5) or not torch.equal(matrix[2], rigid[2]):
        raise ConfigError(f"The learned constant follows rotations and translations only, got the transform {matrix.tolist()}.")
    x = const.unsqueeze(0)
    h, w = const.shape[-2:]
    offset = matrix[:2, 2]
    if bool(offset.any()):
        x, _ = translate_fractional(x, -float(offset[0]) * w, -float(offset[1]) * h)
    if float(angle) != 0:
        x, _ = rotate(x, -angle)
    return x[0]


class ConstantInput(nn.Module):
    """The user transform of a :class:`TransformedConstantSynthesis` (``transform``, a [3, 3] buffer)."""

    def __init__(self, device: torch.device | None = None) -> None:
        super().__init__()
        self.register_buffer("transform", torch.eye(3, device=device))


class TransformedConstantSynthesis(nn.Module):
    """A StyleGAN2 synthesis network (``network``) whose learned constant is resampled under ``input.transform``
    (:func:`transform_constant`) before the unchanged synthesis runs, by default with ``noise_mode="const"``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.input = ConstantInput(getattr(network, CONSTANT.split(".")[0]).const.device)
        self.ws_resolutions = network.ws_resolutions

    def forward(self, ws: Tensor, noise_mode: str = "const") -> Tensor:
        if torch.equal(self.input.transform, torch.eye(3, device=self.input.transform.device)):
            return self.network(ws, noise_mode=noise_mode)
        const = self.network.get_parameter(CONSTANT)
        moved = transform_constant(const, self.input.transform).to(const.dtype)
        return torch.func.functional_call(self.network, {CONSTANT: moved}, (ws,), {"noise_mode": noise_mode})


class TransformableConstantGenerator(nn.Module):
    """A StyleGAN2 generator seen as a :class:`gans.training.contracts.TransformableGenerator`, for the equivariance
    metrics: the StyleGAN3 paper's approximation for its config A (arXiv:2106.12423, section 3.1: StyleGAN2 has no
    continuous input, so the operator t is approximated on the learned 4x4 constant).

    ``synthesis.input.transform`` translates and rotates the learned constant (:func:`transform_constant`: a
    translation by a fraction of the image's width moves the constant by the same fraction of its width, a rotation
    turns it about its centre; band-limited, zero outside the constant), and the generator's own synthesis then runs
    on it with ``noise_mode="const"``: the per-pixel noise is the layers' fixed ``noise_const`` pattern, which stays at
    its pixels under the transform, as the paper's point about texture sticking is. The official metric re-draws the
    ``noise_const`` buffers before every batch; here they stay the generator's (one pattern for every batch).

    The wrapped generator is shared, not copied, and not changed: its constant is replaced only in the call
    (``torch.func.functional_call``); with the identity transform the output is its plain ``synthesis(ws, "const")``.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        if not has_learned_constant(generator):
            raise ConfigError(f"{type(generator).__name__} has no learned constant synthesis.{CONSTANT} to transform (StyleGAN2 has one).")
        self.mapping = generator.mapping
        self.synthesis = TransformedConstantSynthesis(generator.synthesis)
        for name in ("z_dim", "w_dim", "num_ws", "img_resolution", "img_channels", "label_space"):
            setattr(self, name, getattr(generator, name))
        self.c_dim = sum(self.label_space.heads) if self.label_space.conditional else 0
        self.class_vector = generator.class_vector
        self.training = generator.training  # eval_mode(self) restores the generator's own mode

    def forward(self, z: Tensor, labels: Tensor | None = None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const") -> Tensor:
        ws = self.mapping(z, self.class_vector(labels), truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


def transformable(G: Any) -> Any:
    """``G`` when its synthesis has a user transform (StyleGAN3), a :class:`TransformableConstantGenerator` around it
    when it starts from a learned constant (StyleGAN2), else a one-line ConfigError."""
    if isinstance(getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None), Tensor):
        return G
    if has_learned_constant(G):
        return TransformableConstantGenerator(G)
    raise ConfigError(
        f"The equivariance metrics need a generator with an input transform (StyleGAN3's synthesis.input.transform) or a "
        f"learned constant (StyleGAN2's synthesis.{CONSTANT}); {type(G).__name__} has neither."
    )


# The protocol.


@contextmanager
def user_transform(synthesis: Any, matrix: Tensor) -> Iterator[None]:
    """Within the block the synthesis network draws its image under the input transform ``matrix`` ([3, 3]); the
    transform it had is put back afterwards."""
    transform = synthesis.input.transform
    saved = transform.clone()
    transform.copy_(matrix)
    try:
        yield
    finally:
        transform.copy_(saved)


def sample_labels(label_space: LabelSpace, n: int, rng: Any) -> Tensor | None:
    """Class vectors ``[n, sum(heads)]`` of ``n`` labels drawn uniformly per head from the numpy ``rng`` (``randint``
    per sample and head, the official order for one head), or None when ``label_space`` is unconditional."""
    if not label_space.conditional:
        return None
    labels = torch.tensor([[rng.randint(k) for k in label_space.heads] for _ in range(n)], dtype=torch.long)
    return label_space.multi_hot(labels)


def ordered_kinds(kinds: Iterable[str]) -> list[Kind]:
    """``kinds`` in the official order (EQ-T, EQ-T_frac, EQ-R), or a one-line ConfigError for an unknown or empty one."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ConfigError(f"Equivariance kinds must be some of {', '.join(KINDS)}, got {kinds!r}.")
    return [k for k in KINDS if k in kinds]


@torch.no_grad()
def equivariance_sums(
    G: Any,
    kinds: Sequence[str],
    num_samples: int,
    batch_size: int = 4,
    translate_max: float = 0.125,
    rotate_max: float = 1.0,
    seed: int | None = 0,
    label_space: LabelSpace | None = None,
    batches: Iterable[int] | None = None,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Tensor]:
    """Per metric of ``kinds``, ``[sum mask (ref - img)^2, sum mask]`` (float64, on the CPU) over the batches measured.

    Args:
        G: the generator: ``G.mapping(z, c)`` -> ws, ``G.synthesis(ws)`` -> images in [-1, 1], the input transform
            ``G.synthesis.input.transform`` ([3, 3], set for each image and put back afterwards), ``G.z_dim``,
            ``G.c_dim``; or a StyleGAN2 generator, measured through :class:`TransformableConstantGenerator`. Run in
            eval mode; its mode is restored.
        kinds: any of ``translation_int``, ``translation_frac``, ``rotation`` (measured in that order).
        num_samples: samples per metric, in ``ceil(num_samples / batch_size)`` whole batches (official).
        batch_size: samples per batch; each batch shares one transform (official: 4).
        translate_max: largest translation per axis, in image widths (official: 0.125).
        rotate_max: largest rotation, in half turns (official: 1, any angle).
        seed: the draws' seed (see the module docstring); None = the global torch and numpy random states, as the
            official code.
        label_space: the labels drawn for a conditional G; None = one head of ``G.c_dim`` classes (one-hot).
        batches: the batch numbers to measure (e.g. one process's share); None = all.
        progress: called with the number of samples of each batch measured.
    """
    kinds = ordered_kinds(kinds)
    G = transformable(G)
    if num_samples < 1 or batch_size < 1:
        raise ConfigError(f"Equivariance needs num_samples >= 1 and batch_size >= 1, got {num_samples} and {batch_size}.")
    label_space = label_space if label_space is not None else LabelSpace.from_num_classes(int(G.c_dim))
    num_batches = -(-num_samples // batch_size)
    wanted = set(range(num_batches) if batches is None else batches)
    torch_rng = torch.Generator().manual_seed(seed) if seed is not None else None
    numpy_rng = np.random.RandomState(seed) if seed is not None else np.random
    device = next(G.parameters()).device
    identity = torch.eye(3)
    sums = {kind: torch.zeros(2, dtype=torch.float64) for kind in kinds}
    with eval_mode(G):
        for b in range(num_batches):
            # Draws, every batch (the official order).
            z = torch.randn([batch_size, G.z_dim], generator=torch_rng)
            c = sample_labels(label_space, batch_size, numpy_rng)
            params = {}
            for kind in kinds:
                if kind == "rotation":
                    params[kind] = (torch.rand([], generator=torch_rng) * 2 - 1) * (rotate_max * math.pi)
                else:
                    params[kind] = (torch.rand(2, generator=torch_rng) * 2 - 1) * translate_max
            if b not in wanted:
                continue
            # This batch.
            ws = G.mapping(z.to(device), None if c is None else c.to(device))
            with user_transform(G.synthesis, identity):
                orig = G.synthesis(ws).float()
            h, w = orig.shape[-2:]
            for kind in kinds:
                sums[kind] += _error_sums(G, ws, orig, kind, params[kind], w, h)
            if progress is not None:
                progress(batch_size)
    return sums


def _error_sums(G: Any, ws: Tensor, orig: Tensor, kind: Kind, param: Tensor, w: int, h: int) -> Tensor:
    """``[sum mask (ref - img)^2, sum mask]`` of one batch and one metric (``param``: t [2] or the angle)."""
    matrix = torch.eye(3)
    if kind == "rotation":
        matrix = rotation_matrix(-param)
    else:
        t = (param * w).round() / w if kind == "translation_int" else param  # official: rounded with the resolution
        matrix[:2, 2] = -t
    with user_transform(G.synthesis, matrix):
        img = G.synthesis(ws).float()
    if kind == "translation_int":
        ref, mask = translate_integer(orig, int((t[0] * w).round()), int((t[1] * h).round()))
    elif kind == "translation_frac":
        ref, mask = translate_fractional(orig, float(t[0] * w), float(t[1] * h))
    else:
        ref, ref_mask = rotate(orig, param)
        img, img_mask = pseudo_rotate(img, param)
        mask = ref_mask * img_mask
    return torch.stack([((ref - img).square() * mask).double().sum(), mask.double().sum()]).cpu()


def psnr(sums: Tensor) -> float:
    """The PSNR in dB of ``[sum of squared errors, number of pixels]`` for images in [-1, 1]; inf when the images agree
    exactly, nan when no pixel was compared."""
    error, count = float(sums[0]), float(sums[1])
    if count == 0:
        return math.nan
    if error == 0:
        return math.inf
    return 20 * math.log10(PEAK_TO_PEAK) - 10 * math.log10(error / count)


def equivariance(
    G: Any,
    kind: Kind,
    num_samples: int = 50_000,
    batch_size: int = 4,
    translate_max: float = 0.125,
    rotate_max: float = 1.0,
    seed: int | None = 0,
    label_space: LabelSpace | None = None,
) -> float:
    """EQ-T (``kind="translation_int"``), EQ-T_frac (``"translation_frac"``) or EQ-R (``"rotation"``) of ``G`` in dB,
    the official protocol (:func:`equivariance_sums` for the arguments; the paper's numbers use 50,000 samples)."""
    sums = equivariance_sums(G, [kind], num_samples, batch_size, translate_max, rotate_max, seed, label_space)
    return psnr(sums[kind])
