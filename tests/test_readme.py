"""The README stays true: its Python example runs and trains, its commands exist."""

import re
from pathlib import Path

import torch
from helpers import quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_subclass_example_trains(tmp_path: Path) -> None:
    section = README.split("## Subclassing in a notebook", 1)[-1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README lost its subclassing example"
    namespace: dict = {}
    exec(blocks[0], namespace)
    model = namespace["model"]
    before = [p.clone() for p in model.generator.parameters()]
    images = torch.rand(32, 1, 32, 32) * 2 - 1
    trainer = quiet_trainer(tmp_path, max_steps=4)
    trainer.fit(model, DataLoader(TensorDataset(images, torch.zeros(32)), batch_size=8))
    assert trainer.callback_metrics["train/g_loss"].isfinite()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.generator.parameters()))


QUICKSTART_LINE = 'pip install -e ".[fid]" && lightning fit --config experiments/quickstart.yaml'
TESTS_LINE = 'pip install -e ".[dev]" && python -m pytest -q'


def test_readme_commands_match_ci() -> None:
    """Set-up is the README's two lines, and CI runs exactly those (the quickstart's may add flags)."""
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    for command in (QUICKSTART_LINE, TESTS_LINE):
        assert command in README, command
        assert command in ci, command
    installs = [line for line in ci.splitlines()
                if "pip install" in line and not line.lstrip().startswith("#") and "--upgrade pip" not in line]
    assert installs and all(line.startswith((QUICKSTART_LINE, TESTS_LINE)) for line in installs), installs
