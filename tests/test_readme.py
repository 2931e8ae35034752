"""The README stays true: its Python example runs and trains, its commands exist."""

import re
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers import quiet_trainer

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_subclass_example_trains(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
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


def test_readme_commands_match_ci() -> None:
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    for command in ("pip install torch==2.14.1 torchvision==0.29.1", 'pip install -e ".[dev]"', "python -m pytest -q",
                    "lightning fit --config experiments/quickstart.yaml"):
        assert command in README, command
        assert command in ci, command
