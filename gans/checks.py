"""Checks of settings shared by models and datamodules (no model imports: datamodules use these)."""

from __future__ import annotations

import math

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
