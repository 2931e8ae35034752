"""Where gans keeps files it can rebuild (decoded image caches, FID real statistics)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$GANS_CACHE``, by default ``~/.cache/gans``."""
    return Path(os.environ.get("GANS_CACHE", Path.home() / ".cache" / "gans")).expanduser()
