"""Checkpoints and class paths from before ``gans/`` was arranged by role still work (tests/fixtures/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gans import GAN, StyleGAN2
from gans.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "v0_expected_samples.pt", weights_only=True)


def test_a_gan_checkpoint_written_before_the_move_loads_with_its_ema_generator(expected) -> None:
    checkpoint = torch.load(FIXTURES / "gan_ema_v0.ckpt", weights_only=True)
    assert checkpoint["gan_progress"]["model_class"] == "gans.gan.GAN"  # the old module path
    model = GAN.load_from_checkpoint(FIXTURES / "gan_ema_v0.ckpt", weights_only=True).eval()
    assert model.sampling_generator is model.generator_ema
    torch.testing.assert_close(model.sample(4, z=expected["gan_z"]), expected["gan_samples"])


def test_a_stylegan2_checkpoint_with_the_old_lazy_regularisation_state_loads(expected) -> None:
    model = StyleGAN2.load_from_checkpoint(FIXTURES / "stylegan2_lazy_ema_v0.ckpt", weights_only=True).eval()
    assert model.sampling_generator is model.generator_ema
    torch.testing.assert_close(model.sample(2, z=expected["sg2_z"]), expected["sg2_samples"])


def test_an_old_checkpoint_is_still_refused_by_another_model_class() -> None:
    from gans import DCGAN

    with pytest.raises(ConfigError, match="gans.models.classic.gan.GAN"):
        DCGAN.load_from_checkpoint(FIXTURES / "gan_ema_v0.ckpt", weights_only=True)


def test_old_module_paths_import_the_modules_that_hold_the_code_now() -> None:
    from gans.dcgan import (
        DCGAN as OldDCGAN,  # the path a config's class_path or a notebook may name
    )
    from gans.layers import SelfAttention as OldSelfAttention

    from gans import DCGAN
    from gans.nn.spectral import SelfAttention

    assert OldDCGAN is DCGAN and OldSelfAttention is SelfAttention
    import gans.models.classic.dcgan as module

    assert module.__spec__.name == "gans.models.classic.dcgan"  # the alias does not rename the real module


def test_importing_errors_and_datamodules_loads_no_model() -> None:
    code = "import datamodules, gans.errors, sys; print([m for m in sys.modules if m.startswith('gans.models')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
