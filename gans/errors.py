"""Errors a user can fix: the ``lightning`` command prints their message on one line instead of a traceback."""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that cannot work; the message names the setting and the fix."""


class DataNotFoundError(FileNotFoundError):
    """Data missing, empty or unreadable; the message names the folder and what to put there."""


class NonFiniteLossError(RuntimeError):
    """Training diverged (NaN/Inf losses in a row); the message names the last good checkpoint."""


USER_ERRORS = (ConfigError, DataNotFoundError, NonFiniteLossError)


def find_user_error(err: BaseException | None) -> BaseException | None:
    """The first :data:`USER_ERRORS` in ``err``'s cause/context chain (libraries re-raise ours wrapped)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, USER_ERRORS):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_on_user_error(run: Callable[[], T]) -> T:
    """``run()``; a :data:`USER_ERRORS` anywhere in a failure's chain prints as one ``error:`` line on stderr and
    exits with status 2 instead of a traceback (the command-line entry points)."""
    try:
        return run()
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None
