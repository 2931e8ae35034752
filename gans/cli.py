"""The ``lightning`` command: LightningCLI over every gans model and datamodule (subclass mode).

``lightning fit --config experiments/dcgan_mnist.yaml`` and ``python -m gans fit ...`` are the
same. LightningCLI's ``class_path`` is the registry: any importable ``GANModule`` subclass or
``LightningDataModule`` works, including your own.
"""

from __future__ import annotations

import netrc
import os
import sys

import lightning as L
from lightning.pytorch.cli import LightningCLI

from gans.base import GANModule
from gans.errors import find_user_error


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


class GANCLI(LightningCLI):
    def before_fit(self) -> None:
        if os.environ.get("WANDB_MODE") == "offline" and any(type(lg).__name__ == "WandbLogger" for lg in self.trainer.loggers):
            print("W&B: no API key found, logging offline; sync later with `wandb sync <run folder>/wandb/offline-run-*`.", file=sys.stderr)


def cli(args: list[str] | dict | None = None, run: bool = True) -> GANCLI:
    """Build (and with ``run``, execute) the CLI; ``args`` replaces ``sys.argv[1:]`` when given."""
    default_wandb_offline()
    return GANCLI(
        GANModule,
        L.LightningDataModule,
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
    try:
        cli()
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None
