"""The ``lightning`` command: LightningCLI over every gans model and datamodule (subclass mode).

``lightning fit --config experiments/dcgan_mnist.yaml`` and ``python -m gans fit ...`` are the
same; ``lightning list`` prints every model with its paper and every config with its purpose (:func:`catalogue`).
LightningCLI's ``class_path`` is the registry: any importable ``LightningModule`` (every GAN, the
image-to-image models, :class:`gans.tools.style_transfer.StyleTransfer`) or ``LightningDataModule`` works, including
your own.
"""

from __future__ import annotations

import csv
import difflib
import importlib
import netrc
import os
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.trainer.states import TrainerStatus

from callbacks.progress import replace_default_bar
from callbacks.run_id import WandbRunId, wandb_run_id
from gans.errors import ConfigError, exit_on_user_error
from gans.training.core import AdversarialModule, qualified_name


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
    return _entries_of(logger_config, WandbLogger)


def imported_class(class_path: str) -> type | None:
    """The class a config's ``class_path`` names, or None when it cannot be imported (jsonargparse reports that)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return cls if isinstance(cls, type) else None


def _entries_of(config_value: Any, base: type) -> list[Any]:
    """The entries of a parsed list of classes (``trainer.logger``, ``trainer.callbacks``; one or a list) whose class
    is ``base`` or a subclass."""
    entries = config_value if isinstance(config_value, (list, tuple)) else [config_value]
    found = []
    for entry in entries:
        class_path = entry.get("class_path") if hasattr(entry, "get") else None
        if not isinstance(class_path, str) or "." not in class_path:
            continue
        cls = imported_class(class_path)
        if cls is not None and issubclass(cls, base):
            found.append(entry)
    return found


def last_checkpoint(callbacks_config: Any) -> str | None:
    """What ``--ckpt_path last`` means, found before anything is built (so that the W&B run id saved in it is read as
    for an explicit path): the newest ``last*.ckpt`` in the ``dirpath`` of the configured ModelCheckpoints, as
    Lightning looks for it. None when none is found (or no ``dirpath`` is set; Lightning then resolves ``last``)."""
    found = []
    for entry in _entries_of(callbacks_config, ModelCheckpoint):
        dirpath = (entry.get("init_args") or {}).get("dirpath")
        if dirpath:
            name, extension = ModelCheckpoint.CHECKPOINT_NAME_LAST, ModelCheckpoint.FILE_EXTENSION
            found += [p for p in Path(dirpath).expanduser().glob(f"{name}*{extension}") if p.stem == name or p.stem.startswith(f"{name}-v")]
    return str(max(found, key=lambda p: p.stat().st_mtime_ns)) if found else None


def missing_checkpoint(ckpt_path: Any) -> None:
    """Refuse a ``--ckpt_path`` file that is not there (Lightning's own names ``last``, ``best``, ``hpc``, ``registry``
    and URLs are left to Lightning)."""
    if not isinstance(ckpt_path, (str, os.PathLike)) or not str(ckpt_path):
        return
    path = str(ckpt_path)
    if path in ("last", "best", "hpc") or path.startswith("registry") or "://" in path or Path(path).expanduser().is_file():
        return
    raise ConfigError(f"--ckpt_path {path}: no such file ({Path(path).expanduser().resolve()}): pass the path of a saved "
                      f"checkpoint (e.g. <run>/checkpoints/last.ckpt), --ckpt_path last, or leave it out to start a new run.")


def newest_checkpoint(trainer: L.Trainer) -> str | None:
    """The newest checkpoint this run's ModelCheckpoints saved (or restored as theirs), shown relative to the working
    directory when it lies below it; None when there is none."""
    paths = {p for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)
             for p in (cb.last_model_path, cb.best_model_path, *cb.best_k_models) if p and Path(p).is_file()}
    if not paths:
        return None
    newest = max(paths, key=lambda p: (Path(p).stat().st_mtime_ns, Path(p).stem.startswith(ModelCheckpoint.CHECKPOINT_NAME_LAST)))
    relative = os.path.relpath(newest)
    return newest if relative.startswith("..") else relative


def resume_command(args: Any, ckpt_path: str) -> str:
    """The ``lightning`` command line of ``args`` (the command's arguments) continuing from ``ckpt_path``."""
    if not isinstance(args, (list, tuple)):
        return f"lightning fit <the same arguments> --ckpt_path {shlex.quote(ckpt_path)}"
    kept, skip = [], False
    for arg in map(str, args):
        if skip or arg.startswith("--ckpt_path="):
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        kept.append(arg)
    return "lightning " + shlex.join([*kept, "--ckpt_path", ckpt_path])


def keep_csv_history(logger: CSVLogger) -> None:
    """Keep the ``metrics.csv`` that a resumed run's CSVLogger finds in its folder (one with a fixed ``version``, as
    ``name: ""``, ``version: ""``): Lightning deletes it when the logger starts; its rows are written back first, and
    the resumed run's rows follow them."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        writer = logger.experiment  # deletes metrics.csv
    for row in rows:
        values = {key: value for key, value in row.items() if key != "step" and value not in ("", None)}
        writer.log_metrics(values, step=int(float(row["step"])))
    writer.save()


class GANCLI(LightningCLI):
    """LightningCLI that keeps a resumed run in its W&B run (see :mod:`callbacks.run_id`) and shows progress in kimg.

    - The progress bar is :class:`callbacks.KimgProgressBar` (images toward ``max_kimg``, with an ETA, and the latest
      losses) unless the config lists a progress bar of its own; ``--trainer.enable_progress_bar=false`` shows none.
    - Every trainer that logs to W&B gets a :class:`callbacks.WandbRunId`, which saves the run id
      in checkpoints (unless the config lists one already).
    - ``fit --ckpt_path X``: the run id saved in ``X`` becomes the WandbLogger's ``id`` (W&B's
      ``resume="allow"`` is WandbLogger's default), so the curves continue in the same W&B run. An
      ``id``/``version`` set in the config wins; a checkpoint without an id starts a new run.
    - ``fit --ckpt_path X``: the config's model arguments run (e.g. a raised ``max_kimg``), not the ones saved in
      ``X``; the differences are printed.
    - ``fit --ckpt_path last``: the newest ``last.ckpt`` of the configured checkpoint folders, found first, so it
      continues the same W&B run as its explicit path would.
    - ``fit --ckpt_path X`` with a CSVLogger writing to a fixed folder: the earlier ``metrics.csv`` rows are kept.
    - An interrupted ``fit`` (Ctrl-C, SIGTERM) names the newest checkpoint and the command that resumes from it.
    """

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, keep the command's arguments (for the resume command) and resolve ``fit --ckpt_path last``."""
        self.command_args = sys.argv[1:] if args is None else args
        super().parse_arguments(parser, args)
        if self.config.get("subcommand") == "fit" and self.config["fit"].get("ckpt_path") == "last":
            found = last_checkpoint(self.config["fit"].get("trainer.callbacks"))
            if found is not None:
                self.config["fit"]["ckpt_path"] = found
                print(f"--ckpt_path last: resuming from {found}", file=sys.stderr)

    def fit(self, **kwargs: Any) -> None:
        """``trainer.fit``; interrupted (Ctrl-C or SIGTERM: Lightning saves what its callbacks save on an exception and
        exits), it says which checkpoint is the newest and the command that resumes from it."""
        try:
            self.trainer.fit(**kwargs)
        except SystemExit:  # Lightning's exit after a KeyboardInterrupt; SIGTERMException
            if self.trainer.state.status == TrainerStatus.INTERRUPTED and self.trainer.is_global_zero:
                newest = newest_checkpoint(self.trainer)
                if newest is None:
                    print("Interrupted before any checkpoint was saved: nothing to resume from "
                          "(callbacks.KimgCheckpoint in the config saves every every_kimg and at the end).", file=sys.stderr)
                else:
                    print(f"Interrupted; newest checkpoint: {newest}\nResume with: {resume_command(self.command_args, newest)}", file=sys.stderr)
            raise

    def _parse_ckpt_path(self) -> None:
        """``fit --ckpt_path``: the model arguments of the config and command line are the ones that run.

        Lightning's CLI would overwrite them with the hyperparameters saved in the checkpoint, so continuing a run
        with a raised ``max_kimg`` (StyleGAN's ``--resume`` with more ``--kimg``) would silently stop at the old
        limit. Arguments that differ from the checkpoint's are printed; a network whose shapes differ fails when
        the checkpoint loads, with the fix (:meth:`gans.training.core.AdversarialModule.on_load_checkpoint`). ``predict``
        and the other subcommands keep Lightning's behaviour: the model is rebuilt as the checkpoint saved it (a
        configured model of another class is refused: :meth:`_refuse_checkpoint_of_another_model`).
        A ``--ckpt_path`` file that does not exist is refused in one line, before anything is built.
        """
        if self.config.get("subcommand"):
            missing_checkpoint(self.config[self.config["subcommand"]].get("ckpt_path"))
        if self.config.get("subcommand") != "fit":
            self._refuse_checkpoint_of_another_model()
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

    def _refuse_checkpoint_of_another_model(self) -> None:
        """``predict`` (and the other subcommands but ``fit``) rebuild the model the checkpoint names, as Lightning's CLI
        does: a different ``model.class_path`` would be dropped silently (``--model=gans.SNGAN`` on a DCGAN checkpoint
        would sample DCGAN), so it is refused in one line naming both classes."""
        subcommand = self.config.get("subcommand")
        if subcommand is None:  # cli(run=False): nothing is run, no checkpoint is loaded
            return
        config = self.config[subcommand]
        ckpt_path, class_path = config.get("ckpt_path"), config.get("model.class_path")
        if not ckpt_path or not class_path or not Path(ckpt_path).is_file():
            return
        model_class = imported_class(class_path)
        if not (model_class is not None and issubclass(model_class, AdversarialModule)):
            return
        written_by = AdversarialModule.checkpoint_writer(ckpt_path)
        if "." in written_by and written_by != qualified_name(model_class):
            raise ConfigError(
                f"--ckpt_path {ckpt_path} was written by {written_by}, not the configured model {qualified_name(model_class)}: "
                f"{subcommand} uses the checkpoint's model, so set model.class_path: {written_by} (in the config, or "
                f"--model={written_by}), or pass a checkpoint of {model_class.__name__}."
            )

    def before_predict(self) -> None:
        if not self.config[self.subcommand].get("ckpt_path"):
            print("warning: predict without --ckpt_path samples an untrained model (random weights); pass "
                  "--ckpt_path <run>/checkpoints/last.ckpt to sample a trained one.", file=sys.stderr)

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
        config = self.config_init[self.subcommand] if getattr(self, "subcommand", None) else self.config_init  # None: run=False
        given = [entry for entry in (config.get("trainer.callbacks"), kwargs.get("callbacks")) if entry]
        configured = [cb for entry in given for cb in (entry if isinstance(entry, list) else [entry])]  # before the
        trainer = super().instantiate_trainer(**kwargs)  # trainer appends its defaults to the config's list
        uses_wandb = any(isinstance(lg, WandbLogger) for lg in trainer.loggers)
        if uses_wandb and not any(isinstance(cb, WandbRunId) for cb in trainer.callbacks):
            # Before the checkpoint callbacks, which Lightning keeps last.
            checkpoints = [i for i, cb in enumerate(trainer.callbacks) if isinstance(cb, Checkpoint)]
            trainer.callbacks.insert(checkpoints[0] if checkpoints else len(trainer.callbacks), WandbRunId())
        replace_default_bar(trainer, configured)
        return trainer

    def before_fit(self) -> None:
        if self.config[self.subcommand].get("ckpt_path"):
            for logger in self.trainer.loggers:
                if isinstance(logger, CSVLogger):
                    keep_csv_history(logger)
        if os.environ.get("WANDB_MODE") == "offline" and any(type(lg).__name__ == "WandbLogger" for lg in self.trainer.loggers):
            print("W&B: logging offline (WANDB_MODE=offline, or no API key found); sync later with `wandb sync <run folder>/wandb/offline-run-*`.", file=sys.stderr)


def _plain(value: Any) -> Any:
    """A parsed config value as plain Python (tuples and lists alike), to compare with a saved hyperparameter."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _first_sentence(text: str, min_length: int = 20) -> str:
    """``text`` up to its first ``. `` or ``: `` outside parentheses (not in "et al. 2014", "arXiv:1406"), past
    ``min_length`` characters."""
    depth = 0
    for i, char in enumerate(text):
        depth += (char in "([") - (char in ")]")
        end = i + 1 == len(text) or text[i + 1].isspace()
        if depth == 0 and char in ".:" and end and i >= min_length and not text[:i].endswith((" al", "e.g", "i.e", "cf")):
            return text[:i]
    return text.rstrip(".")


def _docstrings(module: str, name: str) -> tuple[str, str]:
    """The docstrings of ``module`` and of its class ``name``, read from the source (no import)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return "", ""
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    return ast.get_docstring(tree) or "", (ast.get_docstring(node) or "") if node else ""


def model_papers() -> dict[str, str]:
    """Every model of ``from gans import ...`` with its paper: the first paragraph of its module's docstring, which
    cites it (the training bases, which have none, with their class docstring's first line)."""
    import gans

    papers = {}
    for name, module in gans._EXPORTS.items():
        module_doc, class_doc = _docstrings(module, name)
        if module.startswith("gans.training."):
            papers[name] = "base class: " + _first_sentence(" ".join(class_doc.split("\n\n")[0].split()))
            continue
        cited = _first_sentence(" ".join(class_doc.split("\n\n")[0].split()))
        if re.search(r"\([^()]*\b(19|20)\d\d\)", cited):  # the class cites its own paper (ProjectionGAN in SNGAN's module)
            papers[name] = cited
            continue
        paper = " ".join(module_doc.split("\n\n")[0].split())
        prefix, _, rest = paper.partition(": ")
        if rest and "".join(c for c in prefix.lower() if c.isalnum()) == name.lower():  # "DCGAN: Unsupervised ..."
            paper = rest
        papers[name] = paper
    return papers


def config_purposes(folder: Path = EXPERIMENTS) -> dict[str, str]:
    """Every ``experiments/*.yaml`` with its purpose: the first sentence of the comment block it starts with."""
    purposes = {}
    for path in sorted(folder.glob("*.yaml")):
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("#").strip())
        purpose = _first_sentence(" ".join(lines)) if lines else "(no comment)"
        purposes[path.name] = purpose if len(purpose) <= 150 else purpose[:150].rsplit(" ", 1)[0] + " ..."
    return purposes


def catalogue() -> str:
    """What ``lightning list`` prints: the models with their papers and the configs with their purposes."""
    papers = model_papers()
    width = max(map(len, papers))
    lines = ["Models (from gans import NAME; in a config: model: {class_path: gans.NAME}):"]
    lines += [f"  {name:<{width}}  {paper}" for name, paper in papers.items()]
    if EXPERIMENTS.is_dir():
        purposes = config_purposes()
        width = max(map(len, purposes), default=0)
        lines += ["", f"Configs (lightning fit --config experiments/NAME; in {EXPERIMENTS}):"]
        lines += [f"  {name:<{width}}  {purpose}" for name, purpose in purposes.items()]
    else:
        lines += ["", f"Configs: no experiments/ folder beside the package ({EXPERIMENTS}); they are in the source repository."]
    return "\n".join(lines)


_UNKNOWN_OPTION = re.compile(r"(?:does not accept option|unrecognized arguments:) '?-*([\w.\-]+)")
_CLASS_PROBLEM = re.compile(r"Parser key \"([\w.]+)\":.*?Problem with given class_path '([\w.]+)':\s*(.*?)\n", re.S)
_UNION_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value", "- Expected a <class 'NoneType'>")


def _class_arguments(class_path: str) -> list[str]:
    """The init arguments jsonargparse accepts for ``class_path`` (its base classes' through ``**kwargs`` included)."""
    from jsonargparse import ArgumentParser

    cls = imported_class(class_path)
    if cls is None:
        return []
    try:
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, "x", fail_untyped=False)
    except Exception:  # noqa: BLE001 - only suggestions are lost
        return []
    return [action.dest[2:] for action in parser._actions if action.dest.startswith("x.")]


def _closest(key: str, valid: list[str]) -> list[str]:
    """The valid keys nearest ``key`` (difflib); else ``key`` with its first word corrected (``modle.init_args.ngf``)."""
    found = difflib.get_close_matches(key, list(dict.fromkeys(valid)), n=3, cutoff=0.6)
    if not found and "." in key:
        top, _, rest = key.partition(".")
        found = [f"{word}.{rest}" for word in difflib.get_close_matches(top, sorted({v.split(".")[0] for v in valid}), n=2, cutoff=0.6)]
    return found


def one_line_parse_error(message: str, parser: Any) -> str:
    """jsonargparse's error (often dozens of lines of union errors) as one line: an unknown key with the closest
    valid ones, a mistyped class_path with the closest classes, else the message without the union noise."""
    options = [o.lstrip("-") for action in parser._actions for o in action.option_strings if o.startswith("--")]
    unknown = _UNKNOWN_OPTION.search(message)
    problem = _CLASS_PROBLEM.search(message)
    if unknown:
        key = unknown.group(1).split("=")[0]
        closest = _closest(key, options)
    elif problem and (option := re.match(r"Option '([\w.\-]+)' is not accepted", problem.group(3).strip())):
        prefix, class_path = problem.group(1), problem.group(2)
        key = f"{prefix}.init_args.{option.group(1)}"
        closest = _closest(key, [f"{prefix}.init_args.{name}" for name in _class_arguments(class_path)])
        key += f" ({class_path} has no argument {option.group(1)!r})"
    elif problem and (missing := re.match(r"module '([\w.]+)' has no attribute '(\w+)'", problem.group(3).strip())):
        module, name = missing.groups()
        try:
            names = list(dict.fromkeys(n for n in dir(importlib.import_module(module)) if not n.startswith("_")))
        except ImportError:
            names = []
        closest = [f"{module}.{n}" for n in difflib.get_close_matches(name, names, n=3, cutoff=0.6)]
        return (f"{problem.group(1)}: no class {problem.group(2)}" + (f"; did you mean {', '.join(closest)}?" if closest else ".")
                + " (`lightning list` names every model)")
    else:
        lines = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith(_UNION_NOISE)]
        return " ".join(lines) + " (run with --help for every setting)"
    suggestion = f"; did you mean {' or '.join(closest)}?" if closest else "."
    return f"unknown setting {key}{suggestion} (run with --help for every setting, --model.help CLASS for a model's)"


class GANArgumentParser(LightningArgumentParser):
    """LightningCLI's parser whose errors are one ``error:`` line (:func:`one_line_parse_error`); ``--help`` still
    prints the whole usage."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        from jsonargparse._common import debug_mode_active

        if not self.exit_on_error or debug_mode_active() or callable(self._error_handler):
            super().error(message, ex)
        self._logger.error(message)
        sys.stderr.write(f"error: {one_line_parse_error(message, getattr(ex, 'subcommand_parser', None) or self)}\n")
        self.exit(2)


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
        parser_class=GANArgumentParser,
        save_config_kwargs={"overwrite": True},
    )


def main() -> None:
    """Entry point of the ``lightning`` console script and ``python -m gans``.

    A :mod:`gans.errors` user error (bad setting, missing data) prints as one line, not a traceback.
    ``lightning list`` prints every model with its paper and every config with its purpose (:func:`catalogue`).
    """
    if sys.argv[1:] == ["list"]:  # not a LightningCLI subcommand: answered before it parses
        try:
            print(catalogue(), flush=True)
        except BrokenPipeError:  # `lightning list | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    exit_on_user_error(cli)
