"""Discoverability: ``lightning list`` names every model with its paper and every config with its purpose, and the
notebook-style example of examples/ runs."""

import re
import runpy
import sys
from pathlib import Path

import pytest

import gans

ROOT = Path(__file__).parents[1]


def test_list_names_every_model_with_its_paper_and_every_config_with_its_purpose(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``lightning list`` and ``python -m gans list`` (both ``gans.cli.main``), answered before LightningCLI parses."""
    from gans.cli import main

    monkeypatch.setattr(sys, "argv", ["lightning", "list"])
    main()
    out = capsys.readouterr()
    lines = out.out.splitlines()
    for name in gans.__all__:
        [line] = [line for line in lines if line.split()[:1] == [name]]
        if not name.endswith(("Module", "TranslationGAN")):  # the training bases cite no paper
            assert re.search(r"\b(19|20)\d\d\b", line), line  # the paper's year
    for config in sorted((ROOT / "experiments").glob("*.yaml")):
        [line] = [line for line in lines if line.split()[:1] == [config.name]]
        assert len(line.split()) > 3, line  # a purpose beside the name
    assert not out.err


def test_custom_gan_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """examples/custom_gan.py with 2 batches: subclass, replaced network and loss, plain Trainer, sample, reload."""
    monkeypatch.setenv("GANS_EXAMPLE_STEPS", "2")
    namespace = runpy.run_path(str(ROOT / "examples" / "custom_gan.py"), run_name="__main__")
    model, reloaded = namespace["model"], namespace["reloaded"]
    assert model.images_seen == 64
    assert type(reloaded).__name__ == "SquaresGAN" and type(reloaded.generator).__name__ == "UpsamplingGenerator"
    assert "saved and reloaded" in capsys.readouterr().out
