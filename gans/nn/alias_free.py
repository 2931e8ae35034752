"""The alias-free building blocks of StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks",
arXiv:2106.12423): Kaiser-windowed low-pass filters, the filtered leaky ReLU and the Fourier-feature input.

The paper treats every feature map as the samples ``Z[x]`` of a continuous signal ``z(x)`` band-limited to the
cutoff ``f_c`` and sampled at rate ``s`` (section 2, eq. 1: ``z = phi_s * Z``, ``Z = III_s . z``). An operation
is alias-free when its discrete form equals the continuous one followed by ideal low-pass filtering:

- **Filters** (section 3.2 and Appendix C.2): the ideal low-pass ``phi_s`` is replaced by a windowed sinc,
  ``h[n] = 2 f_c / s * sinc(2 f_c n / s) * w_Kaiser[n]`` normalised to unit DC gain, whose Kaiser window's
  ``beta`` follows from the transition band ``2 f_h`` (Kaiser's formulas for the attenuation
  ``A = 2.285 (k - 1) pi (2 f_h / (s / 2)) + 7.95`` and ``beta(A)``): :func:`kaiser_lowpass` (separable, 1-D,
  as ``scipy.signal.firwin(k, f_c, width=2 f_h, fs=s)``) and, for the rotation-equivariant config R, the
  radially symmetric jinc ``h(r) = J_1(2 pi f_c r) / (pi r)`` under the outer product of the window
  (:func:`kaiser_lowpass_radial`, Appendix F.2).
- **Nonlinearity** (section 3.2, Figure 4, eq. 6-7): a pointwise nonlinearity creates frequencies above the
  cutoff, so it runs at a temporarily higher rate: upsample by ``up`` (zero insertion and the low-pass filter
  at the input cutoff, gain ``up^2``), leaky ReLU, then low-pass at the output cutoff and downsample by
  ``down`` (:func:`filtered_lrelu`; the official ``filtered_lrelu`` reference path, with the bias added first
  and the activation scaled by ``sqrt(2)`` and clamped).
- **Input** (section 3.1 and Appendix D/F.1): Fourier features ``sin(2 pi (x . f + phi))`` of fixed random
  frequencies inside the first cutoff, rotated and translated by a learned affine map of ``w`` and by a user
  transform that moves the output image continuously (:class:`FourierFeatures`).

Everything is computed for all channels at once (depthwise convolutions, :mod:`gans.nn.resample`), never in
a per-channel loop.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.nn.equalized import EqualizedLinear
from gans.nn.resample import upfirdn2d


def kaiser_beta(numtaps: int, width: float, fs: float) -> float:
    """Kaiser's window ``beta`` for a ``numtaps`` FIR filter with transition band ``width`` at rate ``fs``
    (Kaiser 1974; as ``scipy.signal.kaiser_beta(kaiser_atten(numtaps, width / (fs / 2)))``)."""
    atten = 2.285 * (numtaps - 1) * math.pi * (width / (fs / 2)) + 7.95
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def _taps_positions(numtaps: int) -> Tensor:
    return torch.arange(numtaps, dtype=torch.float64) - (numtaps - 1) / 2


def kaiser_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> Tensor:
    """The 1-D windowed-sinc low-pass filter ``[numtaps]`` (float32, unit DC gain): cutoff ``cutoff``, transition
    band ``width``, sampling rate ``fs``; what ``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`` returns."""
    n = _taps_positions(numtaps)
    h = (2 * cutoff / fs) * torch.sinc(2 * cutoff / fs * n)
    h = h * torch.kaiser_window(numtaps, periodic=False, beta=kaiser_beta(numtaps, width, fs), dtype=torch.float64)
    return (h / h.sum()).float()


def kaiser_lowpass_radial(numtaps: int, cutoff: float, width: float, fs: float) -> Tensor:
    """The radially symmetric 2-D low-pass filter ``[numtaps, numtaps]`` (float32, unit DC gain) of config R
    (arXiv:2106.12423 Appendix F.2): the jinc ``J_1(2 pi cutoff r) / (pi r)`` (``r`` in units of ``1 / fs``; its
    limit ``cutoff`` at ``r = 0``) times the outer product of the Kaiser window of :func:`kaiser_lowpass`."""
    x = _taps_positions(numtaps) / fs
    r = torch.hypot(x.reshape(1, -1), x.reshape(-1, 1))
    safe = torch.where(r > 0, r, torch.ones_like(r))
    h = torch.where(r > 0, torch.special.bessel_j1(2 * math.pi * cutoff * safe) / (math.pi * safe), torch.full_like(r, cutoff))
    window = torch.kaiser_window(numtaps, periodic=False, beta=kaiser_beta(numtaps, width, fs), dtype=torch.float64)
    h = h * torch.outer(window, window)
    return (h / h.sum()).float()


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> Tensor | None:
    """:func:`kaiser_lowpass` (or, ``radial``, :func:`kaiser_lowpass_radial`); None for a single tap (no filter),
    as the official ``SynthesisLayer.design_lowpass_filter``."""
    if numtaps < 1:
        raise ValueError(f"A low-pass filter needs at least one tap, got {numtaps}.")
    if numtaps == 1:
        return None
    return (kaiser_lowpass_radial if radial else kaiser_lowpass)(numtaps, cutoff, width, fs)


def filtered_lrelu(
    x: Tensor,
    up_filter: Tensor | None,
    down_filter: Tensor | None,
    bias: Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
) -> Tensor:
    """StyleGAN3's alias-free leaky ReLU (arXiv:2106.12423 section 3.2, Figure 4b; the official ``filtered_lrelu``).

    ``x [N, C, H, W]`` plus ``bias [C]``; upsampled by ``up`` (zero insertion, ``padding`` = (left, right, top,
    bottom), negative values crop, then ``up_filter`` with gain ``up^2``: the interpolation of eq. 6 at the
    temporary rate ``up * s``); ``leaky_relu(slope) * gain`` clamped to ``[-clamp, clamp]`` (the pointwise
    nonlinearity in the continuous domain); ``down_filter`` (valid) keeping every ``down``-th sample (the
    low-pass ``psi`` of eq. 7 back to the output rate). A 1-D filter is separable (x then y), a 2-D one (config
    R's radial filter) is one 2-D convolution; a None filter is no filter. ``up == 1`` and no filters is a plain
    biased activation (ToRGB: slope 1, gain 1). ``gain`` must be positive.
    """
    if gain <= 0:
        raise ValueError(f"filtered_lrelu needs a positive gain, got {gain}.")
    if bias is not None:
        x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    if up_filter is not None:
        # The leaky ReLU is positively homogeneous, lrelu(u) * gain = lrelu(gain * u): the gain rides on the filter.
        x = upfirdn2d(x, up_filter, up=up, padding=padding, gain=up**2 * gain)
    elif up > 1:
        raise ValueError("filtered_lrelu with up > 1 needs an up_filter (zero insertion alone would alias).")
    else:
        x = F.pad(x, list(padding)) * gain if any(padding) else x * gain if gain != 1 else x
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if clamp is not None:
        x = F.hardtanh(x, -clamp, clamp)  # the clamp, with a one-pass backward
    if down_filter is not None:
        return upfirdn2d(x, down_filter, down=down)
    return x[:, :, ::down, ::down] if down > 1 else x


class FourierFeatures(nn.Module):
    """StyleGAN3's input layer (arXiv:2106.12423 section 3.1, Appendix D and F.1; the official ``SynthesisInput``).

    ``channels`` fixed random frequencies ``f`` (directions uniform, radii shaped as the official init, inside
    ``bandwidth``) and phases ``phi``; per sample, a learned affine map of ``w`` gives
    ``t = (r_c, r_s, t_x, t_y)`` (initialised to the identity: weight 0, bias (1, 0, 0, 0)), normalised by
    ``|(r_c, r_s)|``, that rotates and translates the features, composed with the user ``transform`` (a
    ``[3, 3]`` buffer, the inverse of the transform to apply to the image; identity by default):
    ``T = R(t) @ T(-t_xy) @ transform``, ``phi += f . T[:2, 2]``, ``f = f @ T[:2, :2]``. The features
    ``sin(2 pi (x . f + phi))`` on a ``size`` grid at rate ``sampling_rate`` (pixel centres, the image centred
    on 0), are faded out as their frequency approaches the Nyquist rate (``amplitude = clamp(1 - (|f| -
    bandwidth) / (s / 2 - bandwidth), 0, 1)``: transformed frequencies could otherwise alias), then mixed by a
    learned ``[C, C]`` matrix (weight ``/ sqrt(C)``). Buffer and parameter names are the official ones.
    """

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn(channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand(channels) - 0.5
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = EqualizedLinear(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: Tensor) -> Tensor:
        n = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        zero, one = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
        m_r = torch.stack([t[:, 0], -t[:, 1], zero, t[:, 1], t[:, 0], zero, zero, zero, one], dim=1).reshape(n, 3, 3)
        m_t = torch.stack([one, zero, -t[:, 2], zero, one, -t[:, 3], zero, zero, one], dim=1).reshape(n, 3, 3)
        transforms = m_r @ m_t @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]  # [N, C, 2] (x, y)
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        # Pixel centres of a size x size grid at rate s, centred on 0 (affine_grid with align_corners=False).
        grid = (torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5 - self.size / 2) / self.sampling_rate
        x = grid.reshape(1, 1, -1, 1) * freqs[:, :, 0].reshape(n, 1, 1, -1) + grid.reshape(1, -1, 1, 1) * freqs[:, :, 1].reshape(n, 1, 1, -1)
        x = torch.sin((x + phases.reshape(n, 1, 1, -1)) * (2 * math.pi)) * amplitudes.reshape(n, 1, 1, -1)  # [N, H, W, C]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}"


def synthesis_schedule(
    img_resolution: int,
    num_layers: int = 14,
    num_critical: int = 2,
    first_cutoff: float = 2.0,
    first_stopband: float = 2**2.1,
    last_stopband_rel: float = 2**0.3,
    margin_size: int = 10,
) -> dict[str, np.ndarray]:
    """StyleGAN3's per-layer frequencies (arXiv:2106.12423 section 3.2 and Figure 4c; the official
    ``SynthesisNetwork``): for layers ``i = 0 .. num_layers`` (the last is ToRGB), with ``e_i = min(i / (N -
    num_critical), 1)`` the cutoff ``f_c`` and minimum stopband ``f_t`` grow geometrically from the first
    layer's to the last's (``f_c,N = img_resolution / 2``, ``f_t,N = f_c,N * last_stopband_rel``); the sampling
    rate ``s`` is the smallest power of two at least ``2 f_t`` (capped at the resolution, so the last
    ``num_critical`` layers are critically sampled); the transition half-width ``f_h = max(f_t, s / 2) - f_c``;
    the size ``s + 2 margin_size`` (the last two: the image). Returns float64 arrays ``cutoffs``,
    ``stopbands``, ``sampling_rates``, ``half_widths``, ``sizes``; index 0 is also the input layer's."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    return {"cutoffs": cutoffs, "stopbands": stopbands, "sampling_rates": sampling_rates, "half_widths": half_widths, "sizes": sizes}
