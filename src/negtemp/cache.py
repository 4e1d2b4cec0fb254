"""Where negtemp keeps what it fetches, and how a fetched file is checked.

Standard library only: the build (scripts/llama_tree.py) loads this file from
the source tree before negtemp is installed, to cache the pinned llama.cpp
sdist beside the models.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["cache_dir", "sha256_file"]


def cache_dir() -> Path:
    """$NEGTEMP_CACHE, else $XDG_CACHE_HOME/negtemp, else ~/.cache/negtemp."""
    env = os.environ.get("NEGTEMP_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "negtemp"


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read a MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
