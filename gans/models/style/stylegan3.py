"""StyleGAN3: Alias-Free Generative Adversarial Networks (Karras et al. 2021, arXiv:2106.12423).

The generator of the paper's configs T (translation equivariant) and R (rotation equivariant), computing exactly
what NVIDIA's official ``training/networks_stylegan3.py`` computes (the test against
``../shared/fixtures/stylegan3-reference`` checks it to float32 round-off), with the official parameter and
buffer names, so an official state dict loads with :meth:`StyleGAN3Generator.from_official`:

- **Mapping** (:class:`gans.nn.style.MappingNetwork`): 2 dense layers (lr multiplier 0.01), w_avg decay 0.998.
- **Input** (:class:`gans.nn.alias_free.FourierFeatures`, section 3.1): Fourier features at the first cutoff on a
  grid with a 10 px margin, rotated and translated by a learned affine map of ``ws[:, 0]`` and by the user
  ``synthesis.input.transform`` (the inverse of the transform to apply to the image, as ``gen_images.py``).
- **Layers** ``L0 .. L13`` (section 3.2, Figure 4): a modulated and demodulated convolution (3x3 for T, 1x1 for R;
  "full" padding ``k - 1``) of the input scaled by ``magnitude_ema^-1/2`` (the running mean square of the layer
  input, updated with ``magnitude_ema_beta`` in the training passes that update the EMAs), then the filtered
  leaky ReLU (:func:`gans.nn.alias_free.filtered_lrelu`: upsample to twice the higher of the input and output
  rates, leaky ReLU, low-pass and downsample), with the cutoff, stopband and sampling-rate schedule of
  :func:`gans.nn.alias_free.synthesis_schedule` (cutoff from 2 to ``res / 2``, stopband from ``2^2.1`` to
  ``res / 2 * 2^0.3``; the last two layers critically sampled at the image size, the others 10 px larger).
  Config R uses radially symmetric downsampling filters in the non-critical layers and twice the channels.
- **ToRGB** ``L14``: a modulated 1x1 convolution without demodulation plus bias (slope 1, no filters); the image
  is scaled by ``output_scale`` 0.25.

Channels per layer: ``min(channel_base / 2 / cutoff, channel_max)`` (T: 32768 / 512; R: 65536 / 1024, doubled as
``train.py``). Parameter counts (tests pin them): T at 1024 px G 22,313,167 (mapping 525,312), R at 1024 px
15,093,151; at 256 px with ``train.py``'s defaults T 28,472,133, R 18,816,387.

Training (:class:`StyleGAN3`, the official ``train.py`` for ``--cfg=stylegan3-t|r``): the StyleGAN2 discriminator
(resnet, channel_base 32768 / channel_max 512: ``train.py`` doubles G's channels only), non-saturating loss, lazy
R1 every 16 batches (gamma per data set: FFHQ 1024 px 32), no path length regularisation, no style mixing,
Adam lr G 0.0025, D 0.002, betas (0, 0.99), eps 1e-8, G EMA with a ``batch * 10 / 32`` kimg half-life and the
0.05 ramp-up (:class:`callbacks.EMA`), ``magnitude_ema_beta = 0.5^(batch / 20000)``, ADA by default; for config R
the images D sees are blurred with a Gaussian of sigma 10 px fading linearly to 0 over the first
``batch * 200 / 32`` kimg (the official ``blur_init_sigma`` / ``blur_fade_kimg``; config T has no blur).

Deviations from the official code (none changes what is computed beyond float32 round-off):

- Always float32 (``num_fp16_res`` is not an argument): mixed precision is Lightning's ``precision`` setting.
- The separable filters run as two matrix products per layer (:func:`gans.nn.resample.upfirdn2d` with a 1-D
  kernel), the activation gain rides on the upsampling filter and the input gain on the styles; the official
  reference path is convolutions and elementwise products in that order.
- The official demodulation first divides the weight and the styles by their RMS, which cancels up to the 1e-8
  epsilon; it is not repeated here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.models.style.base import StyleBasedGAN, StyleGenerator, check_noise_mode
from gans.models.style.stylegan2 import (
    StyleGAN2Discriminator,
    convert_official_state_dict,
)
from gans.nn.alias_free import (
    FourierFeatures,
    design_lowpass_filter,
    filtered_lrelu,
    synthesis_schedule,
)
from gans.nn.equalized import EqualizedLinear
from gans.nn.resample import upfirdn2d
from gans.nn.style import MappingNetwork, modulated_conv2d
from gans.training.gan_module import AugmentName

Config = Literal["t", "r"]
CONFIGS = ("t", "r")
# Each config's defaults (train.py: config R doubles G's channels and uses 1x1 convolutions and radial filters).
CONFIG_DEFAULTS = {
    "t": {"channel_base": 32768, "channel_max": 512, "conv_kernel": 3, "use_radial_filters": False},
    "r": {"channel_base": 65536, "channel_max": 1024, "conv_kernel": 1, "use_radial_filters": True},
}


def _check_config(config: str) -> str:
    if config not in CONFIGS:
        raise ConfigError(f"Unknown StyleGAN3 config {config!r}: choose t (translation equivariant) or r (rotation equivariant).")
    return config


class SynthesisLayer(nn.Module):
    """One StyleGAN3 layer: magnitude-normalised modulated convolution, then the filtered leaky ReLU (section 3.2);
    the ToRGB layer (``is_torgb``) is a modulated 1x1 convolution without demodulation plus bias."""

    def __init__(
        self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        in_channels: int,
        out_channels: int,
        in_size: int,
        out_size: int,
        in_sampling_rate: float,
        out_sampling_rate: float,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.999,
    ) -> None:
        super().__init__()
        self.is_torgb, self.is_critically_sampled = is_torgb, is_critically_sampled
        self.in_channels, self.out_channels, self.in_size, self.out_size = in_channels, out_channels, int(in_size), int(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, self.conv_kernel, self.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        # The nonlinearity runs at twice the higher rate (ToRGB: no nonlinearity, the input rate).
        tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.up_factor = round(tmp_sampling_rate / in_sampling_rate)
        self.down_factor = round(tmp_sampling_rate / out_sampling_rate)
        if in_sampling_rate * self.up_factor != tmp_sampling_rate or out_sampling_rate * self.down_factor != tmp_sampling_rate:
            raise ConfigError(f"StyleGAN3 layer rates {in_sampling_rate:g} -> {out_sampling_rate:g} are not integer factors of "
                              f"{tmp_sampling_rate:g}: use powers of two (img_resolution a power of two).")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("up_filter", design_lowpass_filter(self.up_taps, in_cutoff, in_half_width * 2, tmp_sampling_rate))
        self.register_buffer(
            "down_filter", design_lowpass_filter(self.down_taps, out_cutoff, out_half_width * 2, tmp_sampling_rate, radial=self.down_radial)
        )
        # Pad (or crop) so that the output has out_size samples, centred as the "symmetric interpretation" (Appendix C.3).
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        self.padding = (pad_lo, pad_total - pad_lo, pad_lo, pad_total - pad_lo)

    def forward(self, x: Tensor, w: Tensor, update_emas: bool = False) -> Tensor:
        if update_emas:
            magnitude_cur = x.detach().float().square().mean()
            self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles / math.sqrt(self.in_channels * self.conv_kernel**2)
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb, fused=not self.training, padding=self.conv_kernel - 1,
                             input_gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(
            x, self.up_filter, self.down_filter, self.bias, self.up_factor, self.down_factor, self.padding,
            gain=1.0 if self.is_torgb else math.sqrt(2), slope=1.0 if self.is_torgb else 0.2, clamp=self.conv_clamp,
        )

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, size={self.in_size}->{self.out_size}, "
                f"rate={self.in_sampling_rate:g}->{self.out_sampling_rate:g}, cutoff={self.in_cutoff:.4g}->{self.out_cutoff:.4g}, "
                f"up={self.up_factor}, down={self.down_factor}, radial={self.down_radial}, torgb={self.is_torgb}")


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_layers + 2, w_dim]`` -> image: ``input`` (``ws[:, 0]``), layers ``L{i}_{size}_{channels}``
    (``ws[:, 1 + i]``; the last is ToRGB), times ``output_scale``; the official names."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2.0,
        first_stopband: float = 2**2.1,
        last_stopband_rel: float = 2**0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ConfigError(f"StyleGAN3 needs img_resolution a power of two >= 4, got {img_resolution}.")
        if num_layers <= num_critical:
            raise ConfigError(f"StyleGAN3 needs num_layers ({num_layers}) > num_critical ({num_critical}).")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_layers, self.num_critical, self.margin_size, self.output_scale = num_layers, num_critical, margin_size, output_scale
        self.num_ws = num_layers + 2
        s = synthesis_schedule(img_resolution, num_layers, num_critical, first_cutoff, first_stopband, last_stopband_rel, margin_size)
        self.schedule = s
        channels = np.rint(np.minimum((channel_base / 2) / s["cutoffs"], channel_max))
        channels[-1] = img_channels
        self.input = FourierFeatures(w_dim, int(channels[0]), int(s["sizes"][0]), s["sampling_rates"][0], s["cutoffs"][0])
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim, is_torgb=idx == num_layers, is_critically_sampled=idx >= num_layers - num_critical,
                in_channels=int(channels[prev]), out_channels=int(channels[idx]), in_size=int(s["sizes"][prev]), out_size=int(s["sizes"][idx]),
                in_sampling_rate=int(s["sampling_rates"][prev]), out_sampling_rate=int(s["sampling_rates"][idx]),
                in_cutoff=s["cutoffs"][prev], out_cutoff=s["cutoffs"][idx], in_half_width=s["half_widths"][prev],
                out_half_width=s["half_widths"][idx], **layer_kwargs,
            )
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
        # The style tools' resolution of the layer reading each w: the input's and each layer's sampling rate.
        self.ws_resolutions = [int(s["sampling_rates"][0])] + [int(r) for r in s["sampling_rates"]]

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def forward(self, ws: Tensor, noise_mode: str = "random", update_emas: bool = False) -> Tensor:
        """``noise_mode`` is accepted for the style-generator contract and has no effect (StyleGAN3 has no noise
        inputs); ``update_emas`` moves every layer's ``magnitude_ema`` toward its input's mean square."""
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise ConfigError(f"StyleGAN3's synthesis takes ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}.")
        check_noise_mode(noise_mode)
        ws = ws.float().unbind(dim=1)
        x = self.input(ws[0])
        for layer, w in zip(self.layers(), ws[1:]):
            x = layer(x, w, update_emas=update_emas)
        return x * self.output_scale if self.output_scale != 1 else x


class StyleGAN3Generator(StyleGenerator):
    """z (and labels) -> image: :class:`gans.nn.style.MappingNetwork` then :class:`SynthesisNetwork` (protocol:
    :mod:`gans.models.style.base`). ``mapping(z, c, truncation_psi=1, truncation_cutoff=None)`` -> ws
    ``[N, num_ws, w_dim]``; ``synthesis(ws)`` -> images; ``synthesis.input.transform`` moves the output."""

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        num_classes: int | Sequence[int] = 0,
        config: Config = "t",
        channel_base: int | None = None,
        channel_max: int | None = None,
        conv_kernel: int | None = None,
        use_radial_filters: bool | None = None,
        mapping_layers: int = 2,
        mapping_lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2.0,
        first_stopband: float = 2**2.1,
        last_stopband_rel: float = 2**0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.5 ** (32 / 20000),
    ) -> None:
        """
        Args:
            z_dim, w_dim: latent sizes (512).
            img_resolution: image side, a power of two.
            img_channels: 3 for RGB.
            num_classes: 0 = unconditional; classes (or a list per head): the one-hot vector is embedded into the
                mapping input (StyleGAN2-ADA's conditioning).
            config: ``t`` or ``r``; sets the defaults of the four settings below.
            channel_base: channels are ``min(channel_base / 2 / cutoff, channel_max)``; None = T 32768, R 65536.
            channel_max: None = T 512, R 1024.
            conv_kernel: None = T 3, R 1.
            use_radial_filters: radially symmetric downsampling filters in the non-critical layers; None = R only.
            mapping_layers, mapping_lr_multiplier, w_avg_beta: the mapping network (2, 0.01, 0.998).
            num_layers, num_critical, first_cutoff, first_stopband, last_stopband_rel, margin_size: the schedule of
                :func:`gans.nn.alias_free.synthesis_schedule` (14, 2, 2, 2^2.1, 2^0.3, 10).
            output_scale: the image is the ToRGB output times this (0.25).
            filter_size: low-pass taps per unit of the up/downsampling factor (6).
            lrelu_upsampling: the nonlinearity's rate relative to the higher of the input and output rates (2).
            conv_clamp: clamp of the activations (256); None = off.
            magnitude_ema_beta: decay of each layer's input magnitude EMA per update, ``0.5^(batch / 20000)`` as
                ``train.py`` (batch 32: 0.998891).
        """
        super().__init__()
        defaults = CONFIG_DEFAULTS[_check_config(config)]
        channel_base = defaults["channel_base"] if channel_base is None else channel_base
        channel_max = defaults["channel_max"] if channel_max is None else channel_max
        conv_kernel = defaults["conv_kernel"] if conv_kernel is None else conv_kernel
        use_radial_filters = defaults["use_radial_filters"] if use_radial_filters is None else use_radial_filters
        self.config = config
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        self.label_space = LabelSpace.from_num_classes(num_classes)
        self.c_dim = sum(self.label_space.heads)
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical, first_cutoff, first_stopband,
            last_stopband_rel, margin_size, output_scale, conv_kernel=conv_kernel, filter_size=filter_size,
            lrelu_upsampling=lrelu_upsampling, use_radial_filters=use_radial_filters, conv_clamp=conv_clamp,
            magnitude_ema_beta=magnitude_ema_beta,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, self.c_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta)

    def forward(
        self,
        z: Tensor,
        labels: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
    ) -> Tensor:
        """``synthesis(mapping(z, c))``; ``update_emas`` moves ``w_avg`` and the magnitude EMAs (the official training
        passes that generate D's fakes)."""
        ws = self.mapping(z, self.class_vector(labels), truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_w_avg=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas)

    @classmethod
    def from_official(cls, state_dict: Mapping[str, Tensor], **kwargs: Any) -> StyleGAN3Generator:
        """A generator built with ``kwargs`` (:func:`official_kwargs` of the official constructor's) holding the
        official ``state_dict()`` (NVlabs/stylegan3 ``training/networks_stylegan3.Generator``, names unchanged;
        :func:`gans.models.style.stylegan2.convert_official_state_dict` checks every name and shape). The official
        low-pass filters are checked against the ones this network designs (a mismatch means other filter
        settings): a :class:`ConfigError` names the layer."""
        generator = cls(**kwargs)
        settings = ("img_resolution, z_dim, w_dim, num_classes, config, channel_base, channel_max, conv_kernel, use_radial_filters, "
                    "mapping_layers and the layer schedule (official_kwargs(G_kwargs) gives them)")
        converted = convert_official_state_dict(state_dict, generator, "StyleGAN3 generator", model="StyleGAN3Generator", settings=settings)
        ours = generator.state_dict()
        for key, value in converted.items():
            if key.endswith(("up_filter", "down_filter")) and not torch.allclose(value, ours[key], rtol=1e-4, atol=1e-6):
                raise ConfigError(
                    f"The official {key} differs from the filter this StyleGAN3Generator designs: build it with the official "
                    f"filter_size, lrelu_upsampling, use_radial_filters and layer schedule (official_kwargs(G_kwargs))."
                )
        generator.load_state_dict(converted)
        return generator


# The official Generator's keyword arguments -> ours (None: accepted and ignored).
_OFFICIAL_NAMES = {
    "z_dim": "z_dim", "w_dim": "w_dim", "img_resolution": "img_resolution", "img_channels": "img_channels", "c_dim": "num_classes",
    "channel_base": "channel_base", "channel_max": "channel_max", "conv_kernel": "conv_kernel", "use_radial_filters": "use_radial_filters",
    "num_layers": "num_layers", "num_critical": "num_critical", "first_cutoff": "first_cutoff", "first_stopband": "first_stopband",
    "last_stopband_rel": "last_stopband_rel", "margin_size": "margin_size", "output_scale": "output_scale", "filter_size": "filter_size",
    "lrelu_upsampling": "lrelu_upsampling", "conv_clamp": "conv_clamp", "magnitude_ema_beta": "magnitude_ema_beta",
    "num_fp16_res": None,  # float16 is Lightning's precision setting here
    "class_name": None,
}
_OFFICIAL_MAPPING_NAMES = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier", "w_avg_beta": "w_avg_beta"}


def official_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`StyleGAN3Generator`'s keyword arguments for an official ``Generator(**G_kwargs)``: pass ``G_kwargs`` (or a
    dict holding it, as the fixtures' ``config``). ``config`` is ``r`` when radial filters are on, else ``t``; the
    channel and kernel settings are passed through as given. An argument with no counterpart is a :class:`ConfigError`."""
    g_kwargs = config.get("G_kwargs", config)
    kwargs: dict[str, Any] = {}
    for name, value in g_kwargs.items():
        if name == "mapping_kwargs":
            for key, val in value.items():
                if key not in _OFFICIAL_MAPPING_NAMES:
                    raise ConfigError(f"The official mapping_kwargs[{key!r}] has no StyleGAN3Generator counterpart: drop it.")
                kwargs[_OFFICIAL_MAPPING_NAMES[key]] = val
        elif name not in _OFFICIAL_NAMES:
            raise ConfigError(f"The official Generator argument {name!r} has no StyleGAN3Generator counterpart: drop it.")
        elif _OFFICIAL_NAMES[name] is not None:
            kwargs[_OFFICIAL_NAMES[name]] = value
    kwargs["config"] = "r" if kwargs.get("use_radial_filters") else "t"
    return kwargs


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """``images`` filtered with the official D-input blur (``StyleGAN2Loss.run_D``): the separable kernel
    ``2^(-(x / sigma)^2)`` for ``x`` in ``[-floor(3 sigma), floor(3 sigma)]``, normalised to sum 1, same size;
    the images themselves when ``floor(3 sigma)`` is 0."""
    size = math.floor(sigma * 3)
    if size <= 0:
        return images
    taps = torch.arange(-size, size + 1, device=images.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return upfirdn2d(images, taps / taps.sum(), padding=size)


# The LightningModule.


class StyleGAN3(StyleBasedGAN):
    """StyleGAN3's generator (config T or R) with the StyleGAN2 discriminator and the official training recipe.

    Add :class:`callbacks.EMA` (``half_life_kimg: batch * 10 / 32``, ``rampup: 0.05``) as
    ``experiments/stylegan3_t_ffhq.yaml`` does; set ``r1_gamma`` for the data (FFHQ 1024: 32; the official
    ``docs/configs.md``) and ``magnitude_ema_beta`` / ``blur_fade_kimg`` for the batch.
    """

    def __init__(
        self,
        img_resolution: int = 1024,
        img_channels: int = 3,
        z_dim: int = 512,
        w_dim: int = 512,
        num_classes: int | Sequence[int] = 0,
        config: Config = "t",
        channel_base: int | None = None,
        channel_max: int | None = None,
        mapping_layers: int = 2,
        magnitude_ema_beta: float = 0.5 ** (32 / 20000),
        d_channel_base: int = 32768,
        d_channel_max: int = 512,
        d_architecture: str = "resnet",
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        loss: str = "non_saturating",
        lr_g: float = 0.0025,
        lr_d: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float = 32.0,
        r1_interval: int = 16,
        blur_init_sigma: float | None = None,
        blur_fade_kimg: float = 200.0,
        augment: AugmentName = "ada",
        **kwargs: Any,
    ) -> None:
        """
        Args:
            img_resolution: image side, a power of two (the paper: 1024 for FFHQ).
            img_channels: 3 for RGB.
            z_dim, w_dim: latent sizes (512).
            num_classes: 0 = unconditional; classes (or a list per head).
            config: ``t`` (translation equivariant) or ``r`` (rotation equivariant: 1x1 convolutions, radial filters,
                doubled G channels, D-input blur).
            channel_base, channel_max: G's channels (None: the config's, T 32768 / 512, R 65536 / 1024).
            mapping_layers: depth of the mapping network (2).
            magnitude_ema_beta: ``0.5^(batch / 20000)`` (``train.py``; the default is batch 32's).
            d_channel_base, d_channel_max: the StyleGAN2 discriminator's channels (32768 / 512, not doubled for R).
            d_architecture: resnet (the official), skip or orig.
            mbstd_group_size, mbstd_num_channels: minibatch standard deviation (4, 1).
            truncation_psi, truncation_cutoff: truncation when sampling; 1 = off.
            loss: non_saturating (the official logistic loss).
            lr_g: G's learning rate (0.0025, ``train.py --glr`` for StyleGAN3).
            lr_d: D's learning rate (0.002).
            betas: Adam betas (0, 0.99), before the lazy-R1 correction.
            r1_gamma: R1 gamma (FFHQ 1024: 32; 512: 8; 256: 2, ``docs/configs.md``).
            r1_interval: lazy R1 every this many batches (16).
            blur_init_sigma: sigma in pixels of the Gaussian blur of every image D sees at the start; None = the
                config's (R: 10, T: 0 as ``train.py``); 0 = off.
            blur_fade_kimg: the blur fades linearly to 0 over this many thousand images: ``batch * 200 / 32``
                (``train.py``; the default is batch 32's).
            augment: what D sees after the blur (:class:`gans.training.gan_module.GANModule`): ``ada`` as the official
                default; ``none``, ``fixed`` or ``diffaugment``.
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (max_kimg, ...).
        """
        _check_config(config)
        if kwargs.pop("style_mixing_prob", 0.0):  # a checkpoint's hparams hold the 0 given below
            raise ConfigError("StyleGAN3 trains without style mixing (the official configs T and R): remove style_mixing_prob.")
        if blur_init_sigma is not None and blur_init_sigma < 0:
            raise ConfigError(f"blur_init_sigma must be >= 0 (0 = no blur), got {blur_init_sigma}.")
        if blur_fade_kimg < 0:
            raise ConfigError(f"blur_fade_kimg must be >= 0, got {blur_fade_kimg}: set it to batch * 200 / 32 as train.py.")
        generator = StyleGAN3Generator(z_dim, w_dim, img_resolution, img_channels, num_classes, config, channel_base, channel_max,
                                       mapping_layers=mapping_layers, magnitude_ema_beta=magnitude_ema_beta)
        discriminator = StyleGAN2Discriminator(img_resolution, img_channels, num_classes, d_channel_base, d_channel_max, d_architecture,
                                               mbstd_group_size, mbstd_num_channels, mapping_layers=8)
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            z_dim=z_dim,
            num_classes=num_classes,
            style_mixing_prob=0.0,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            loss=loss,
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            r1_gamma=r1_gamma,
            r1_interval=r1_interval,
            augment=augment,
            **kwargs,
        )
        self.data_shape = (img_channels, img_resolution, img_resolution)

    def blur_sigma(self) -> float:
        """The D-input blur's sigma now: ``max(1 - images_seen / (blur_fade_kimg * 1000), 0) * blur_init_sigma``
        (0 when ``blur_fade_kimg`` is 0), as the official ``StyleGAN2Loss.accumulate_gradients``."""
        hp = self.hparams
        init = (10.0 if hp.config == "r" else 0.0) if hp.blur_init_sigma is None else hp.blur_init_sigma
        if hp.blur_fade_kimg <= 0:
            return 0.0
        return max(1.0 - self.images_seen / (hp.blur_fade_kimg * 1000.0), 0.0) * init

    def augment_for_d(self, images: Tensor) -> Tensor:
        """The official ``run_D``: the blur (:func:`gaussian_blur` at :meth:`blur_sigma`), then the augmentation; R1
        differentiates with respect to the images before both (``.unaugmented``)."""
        view = super().augment_for_d(gaussian_blur(images, self.blur_sigma()))
        if view is not images:
            view.unaugmented = images
        return view

    def forward(self, z: Tensor, labels: Tensor | None = None, update_emas: bool = False) -> Tensor:
        """The training generator, without style mixing; ``update_emas`` moves ``w_avg`` and the magnitude EMAs."""
        return self.generator(z, labels, update_emas=update_emas)

    def discriminator_main_loss(self, real: Tensor, labels: Tensor | None) -> Tensor:
        """``Dmain``: as :class:`gans.training.gan_module.GANModule`'s, with the fakes drawn with ``update_emas`` (the
        official ``run_G(gen_z, gen_c, update_emas=True)`` of the D phase: the one training pass that moves the EMAs)."""
        with torch.no_grad():
            fake = self(self.sample_z(real.shape[0]), labels, update_emas=True)
        return self.discriminator_loss(real, fake, labels)
