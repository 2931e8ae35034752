"""Where gans keeps files it can rebuild (decoded image caches, FID real statistics, trained classifiers), and how it writes them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    """``$GANS_CACHE``, by default ``~/.cache/gans``."""
    return Path(os.environ.get("GANS_CACHE", Path.home() / ".cache" / "gans")).expanduser()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Create ``path`` through ``write(partial)``, which writes a file of this process's own beside it, then moved in
    place: a concurrent reader (another rank, another run sharing the cache) sees no file or a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
