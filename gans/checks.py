"""Checks of settings shared by models and datamodules (no model imports: datamodules use these)."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

from gans.errors import ConfigError


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def check_resolution(img_resolution: int, minimum: int, model: str) -> int:
    """log2 of ``img_resolution``, or a ValueError that says what to change."""
    if not is_power_of_two(img_resolution) or img_resolution < minimum:
        raise ConfigError(
            f"{model} needs img_resolution to be a power of two >= {minimum}, got {img_resolution}: "
            f"set data.init_args.img_resolution (and model.init_args.img_resolution) to e.g. 32 or 64 "
            f"(MNIST's 28 px digits are padded/resized to 32)."
        )
    return int(math.log2(img_resolution))


def check_at_least(setting: str, value: float, minimum: float) -> None:
    """Refuse ``value`` below ``minimum`` in one line naming the setting (``model.init_args.<setting>``)."""
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{setting} must be >= {minimum}, got {value}: set model.init_args.{setting} to {minimum} or more.")


def check_in_range(setting: str, value: float, low: float, high: float, hint: str = "", closed: bool = False) -> None:
    """Refuse ``value`` outside ``[low, high)`` (``[low, high]`` when ``closed``; also NaN) in one line naming the
    setting, with ``hint`` (a typical value)."""
    if not (low <= value <= high if closed else low <= value < high):
        interval = f"[{low}, {high}{']' if closed else ')'}"
        raise ConfigError(f"{setting} must be in {interval}, got {value}: set model.init_args.{setting} {hint or 'in that range'}.")


def check_count(setting: str, value: float, minimum: int = 1) -> None:
    """Refuse a count (an interval, a divisor) that is not a whole number >= ``minimum``, in one line naming the setting."""
    if int(value) != value or value < minimum:
        raise ConfigError(f"{setting} must be an integer >= {minimum}, got {value}: set model.init_args.{setting}: {minimum} or more.")


def check_positive(setting: str, value: float, hint: str = "") -> None:
    """Refuse ``value`` <= 0 (also NaN) in one line naming the setting."""
    if not value > 0:
        raise ConfigError(f"{setting} must be > 0, got {value}: set model.init_args.{setting} {hint or 'to a positive value'}.")


def check_optimizer_settings(lr_g: float, lr_d: float, betas: Sequence[float], momentum: float = 0.0, weight_decay: float = 0.0) -> None:
    """The optimizer settings every adversarial model shares (noise-to-image and image-to-image), checked when the
    model is built rather than when torch builds the optimizers at ``fit``."""
    for setting, lr, network in (("lr_g", lr_g, "generator"), ("lr_d", lr_d, "discriminator")):
        if not lr >= 0:  # also NaN
            raise ConfigError(f"{setting} must be >= 0, got {lr}: set model.init_args.{setting} to e.g. 2e-4.")
        if lr == 0:  # a way to train one network alone (tests, ablations), and never a silent one
            warnings.warn(f"{setting} is 0: the {network} is never updated (set model.init_args.{setting} to e.g. 2e-4 to train it).", stacklevel=3)
    if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
        raise ConfigError(f"betas must be Adam's (beta1, beta2), each in [0, 1), got {list(betas)}: set model.init_args.betas to e.g. [0.5, 0.999].")
    check_at_least("momentum", momentum, 0)
    check_at_least("weight_decay", weight_decay, 0)


def check_run_settings(max_nonfinite_steps: int, gradient_clip_val: float, max_kimg: float) -> None:
    """The run settings of :class:`gans.training.core.AdversarialModule`."""
    check_at_least("max_nonfinite_steps", max_nonfinite_steps, 1)
    check_at_least("gradient_clip_val", gradient_clip_val, 0)
    check_at_least("max_kimg", max_kimg, 0)
