"""`negtemp pull`, `negtemp list`, `negtemp rm`: the named models' cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import registry


def pull(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="negtemp pull", description="Fetch and verify a named model; print its path.")
    ap.add_argument("name", choices=sorted(registry.MODELS))
    args = ap.parse_args(argv)
    print(registry.pull(args.name))
    return 0


def list_models(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="negtemp list",
                                 description="The named models, whether each is cached, and where.")
    ap.parse_args(argv)
    print(f"{'NAME':<14} {'CACHED':>9}  {'LICENSE':<18} DESCRIPTION / PATH")
    for spec in registry.MODELS.values():
        path = registry.cache_dir() / spec.filename
        size = f"{path.stat().st_size / 1e6:.0f} MB" if path.exists() else "no"
        print(f"{spec.name:<14} {size:>9}  {spec.license:<18} {spec.description}")
        if path.exists():
            print(f"{'':<14} {'':>9}  {'':<18} {path}")
    return 0


def rm(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="negtemp rm", description="Remove a named model from the cache.")
    ap.add_argument("name", choices=sorted(registry.MODELS))
    args = ap.parse_args(argv)
    path = registry.cache_dir() / registry.MODELS[args.name].filename
    if not path.exists():
        print(f"negtemp: {args.name} is not cached (looked for {path})", file=sys.stderr)
        return 1
    path.unlink()
    print(f"negtemp: removed {path}", file=sys.stderr)
    return 0
