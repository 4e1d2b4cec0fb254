"""Regenerate src/negtemp/_native.pyi from the built extension, or check that it is current.

The stub is pybind11-stubgen's output for negtemp._native, whole: the C++
signatures name their Python types (pybind11::typing), so nothing is written
by hand and nothing drifts. Run after changing the bindings (src/native/):

    pip install --no-deps . && python -m scripts.stubgen

`--check` exits 1 and prints a diff when the committed stub differs (the test
suite runs it). Needs pybind11-stubgen (in the test extra).
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

STUB = Path(__file__).resolve().parent.parent / "src" / "negtemp" / "_native.pyi"


def generate() -> str:
    """The stub of the installed negtemp._native, as pybind11-stubgen writes it."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "pybind11_stubgen", "negtemp._native", "-o", out, "--exit-code"],
                       check=True, capture_output=True, text=True)
        return (Path(out) / "negtemp" / "_native.pyi").read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = ap.parse_args()
    try:
        fresh = generate()
    except subprocess.CalledProcessError as e:
        print(f"stubgen: pybind11-stubgen failed:\n{e.stdout}{e.stderr}", file=sys.stderr)
        return 2
    if not args.check:
        STUB.write_text(fresh)
        print(f"stubgen: wrote {STUB}")
        return 0
    current = STUB.read_text()
    if current == fresh:
        return 0
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), fresh.splitlines(True),
                                               "committed _native.pyi", "generated from the module"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
