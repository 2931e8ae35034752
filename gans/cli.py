"""The ``lightning`` command: LightningCLI over every gans model and datamodule (subclass mode).

``lightning fit --config experiments/dcgan_mnist.yaml`` and ``python -m gans fit ...`` are the
same. LightningCLI's ``class_path`` is the registry: any importable ``LightningModule`` (every GAN, the
image-to-image models, :class:`gans.tools.style_transfer.StyleTransfer`) or ``LightningDataModule`` works, including
your own.
"""

from __future__ import annotations

import importlib
import netrc
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import WandbLogger

from callbacks.run_id import WandbRunId, wandb_run_id
from gans.errors import exit_on_user_error


def wandb_key_available() -> bool:
    """Whether W&B can log online: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def default_wandb_offline() -> None:
    """Make W&B log offline when there is no key, instead of prompting for a login."""
    if "WANDB_MODE" not in os.environ and not wandb_key_available():
        os.environ["WANDB_MODE"] = "offline"


def _wandb_logger_configs(logger_config: Any) -> list[Any]:
    """The entries of a parsed ``trainer.logger`` value (one or a list) whose class is a WandbLogger."""
    entries = logger_config if isinstance(logger_config, (list, tuple)) else [logger_config]
    found = []
    for entry in entries:
        class_path = entry.get("class_path") if hasattr(entry, "get") else None
        if not isinstance(class_path, str) or "." not in class_path:
            continue
        module, _, name = class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue  # jsonargparse reports it
        if isinstance(cls, type) and issubclass(cls, WandbLogger):
            found.append(entry)
    return found


class GANCLI(LightningCLI):
    """LightningCLI that keeps a resumed run in its W&B run (see :mod:`callbacks.run_id`).

    - Every trainer that logs to W&B gets a :class:`callbacks.WandbRunId`, which saves the run id
      in checkpoints (unless the config lists one already).
    - ``fit --ckpt_path X``: the run id saved in ``X`` becomes the WandbLogger's ``id`` (W&B's
      ``resume="allow"`` is WandbLogger's default), so the curves continue in the same W&B run. An
      ``id``/``version`` set in the config wins; a checkpoint without an id starts a new run.
    - ``fit --ckpt_path X``: the config's model arguments run (e.g. a raised ``max_kimg``), not the ones saved in
      ``X``; the differences are printed.
    """

    def _parse_ckpt_path(self) -> None:
        """``fit --ckpt_path``: the model arguments of the config and command line are the ones that run.

        Lightning's CLI would overwrite them with the hyperparameters saved in the checkpoint, so continuing a run
        with a raised ``max_kimg`` (StyleGAN's ``--resume`` with more ``--kimg``) would silently stop at the old
        limit. Arguments that differ from the checkpoint's are printed; a network whose shapes differ fails when
        the checkpoint loads, with the fix (:meth:`gans.training.core.AdversarialModule.on_load_checkpoint`). ``predict``
        and the other subcommands keep Lightning's behaviour: the model is rebuilt as the checkpoint saved it.
        """
        if self.config.get("subcommand") != "fit":
            return super()._parse_ckpt_path()
        config = self.config["fit"]
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return None
        saved = torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters", {})
        given = config.get("model.init_args") or {}
        changed = [
            f"{name}: {saved[name]!r} -> {given[name]!r}"
            for name in sorted(saved)
            if not name.startswith("_") and name in given and _plain(given[name]) != _plain(saved[name])
        ]
        if changed:
            print(f"Resuming from {ckpt_path} with model arguments changed from the checkpoint's: {'; '.join(changed)}.", file=sys.stderr)
        return None

    def before_instantiate_classes(self) -> None:
        if self.subcommand != "fit":
            return
        config = self.config[self.subcommand]
        run_id = wandb_run_id(config.get("ckpt_path"))
        if run_id is None:
            return
        for entry in _wandb_logger_configs(config.get("trainer.logger"))[:1]:  # the one WandbRunId saved
            init_args = entry.get("init_args")
            if init_args is None:
                entry["init_args"] = init_args = type(entry)()
            if not init_args.get("id") and not init_args.get("version"):
                init_args["id"] = run_id

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        uses_wandb = any(isinstance(lg, WandbLogger) for lg in trainer.loggers)
        if uses_wandb and not any(isinstance(cb, WandbRunId) for cb in trainer.callbacks):
            # Before the checkpoint callbacks, which Lightning keeps last.
            checkpoints = [i for i, cb in enumerate(trainer.callbacks) if isinstance(cb, Checkpoint)]
            trainer.callbacks.insert(checkpoints[0] if checkpoints else len(trainer.callbacks), WandbRunId())
        return trainer

    def before_fit(self) -> None:
        if os.environ.get("WANDB_MODE") == "offline" and any(type(lg).__name__ == "WandbLogger" for lg in self.trainer.loggers):
            print("W&B: logging offline (WANDB_MODE=offline, or no API key found); sync later with `wandb sync <run folder>/wandb/offline-run-*`.", file=sys.stderr)


def _plain(value: Any) -> Any:
    """A parsed config value as plain Python (tuples and lists alike), to compare with a saved hyperparameter."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


def cli(args: list[str] | dict | None = None, run: bool = True) -> GANCLI:
    """Build (and with ``run``, execute) the CLI; ``args`` replaces ``sys.argv[1:]`` when given."""
    default_wandb_offline()
    return GANCLI(
        L.LightningModule,
        None,  # any LightningDataModule, as subclass_mode_data, but optional: StyleTransfer serves its own loader
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
    )


def main() -> None:
    """Entry point of the ``lightning`` console script and ``python -m gans``.

    A :mod:`gans.errors` user error (bad setting, missing data) prints as one line, not a traceback.
    """
    exit_on_user_error(cli)
