"""Build llama.cpp's own tools (llama-bench, llama-completion, ...) from the patched tree.

The tree is the one negtemp's extension compiles (scripts/llama_tree.py: the
pin plus patches/), built with the same flags: Release, static libraries,
cmake/llama_options.cmake's options (GGML_NATIVE from $NEGTEMP_NATIVE,
GGML_OPENMP from $NEGTEMP_OPENMP, ggml's AMX kernels from $NEGTEMP_AMX), and
$CMAKE_ARGS. scripts/bench.py times negtemp against these tools and
scripts/verify_patch.py runs llama-completion at a negative temperature.

The build is kept in build/tools/<version>/ (build/tools/<version>-openmp/
for an OpenMP build) and reused; a first build of llama-bench +
llama-completion takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scripts import llama_tree

BUILD = llama_tree.REPO / "build" / "tools"


def openmp_default() -> bool:
    return os.environ.get("NEGTEMP_OPENMP", "OFF").upper() in ("ON", "1", "TRUE", "YES")


def cmake_flags(openmp: bool) -> list[str]:
    """The extension's llama.cpp options (cmake/llama_options.cmake), with the tools on and OpenMP as asked."""
    cmake = llama_tree.REPO / "cmake"
    flags = [
        f"-C{cmake / 'llama_options.cmake'}", f"-DCMAKE_PROJECT_INCLUDE={cmake / 'patched_tree.cmake'}",
        "-DCMAKE_BUILD_TYPE=Release", f"-DGGML_OPENMP={'ON' if openmp else 'OFF'}",
        "-DLLAMA_BUILD_COMMON=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=OFF",
    ]
    return flags + shlex.split(os.environ.get("CMAKE_ARGS", ""))


def build(targets: list[str], *, version: str = llama_tree.SDIST_VERSION, openmp: bool | None = None,
          log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, Path]:
    """Build the named tools from the patched tree of llama-cpp-python `version`'s llama.cpp.

    openmp: ggml's threads from OpenMP (True) or its own pool (False); default
    as the extension ($NEGTEMP_OPENMP). Returns {target: executable}; raises
    RuntimeError with the build's tail.
    """
    openmp = openmp_default() if openmp is None else openmp
    src = llama_tree.prepare(BUILD / version / "llama.cpp", version)
    out = BUILD / (f"{version}-openmp" if openmp else version) / "build"
    started = time.perf_counter()
    first = not (out / "build.ninja").exists()
    log(f"llama_tools: {', '.join(targets)} from the patched llama.cpp in {out}"
        + (": configuring and building, about 3 min the first time..." if first else ": bringing up to date..."))
    steps = [
        ["cmake", "-S", str(src), "-B", str(out), "-G", "Ninja", *cmake_flags(openmp)],
        ["cmake", "--build", str(out), "--target", *targets],
    ]
    for cmd in steps:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd[:3])} ...` failed:\n{res.stdout[-3000:]}")
    if "no work to do" in res.stdout:
        log("llama_tools: already up to date")
    else:
        log(f"llama_tools: built in {time.perf_counter() - started:.0f} s")
    return {t: out / "bin" / t for t in targets}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", default=["llama-bench", "llama-completion"],
                    help="llama.cpp CMake targets (default: llama-bench llama-completion)")
    ap.add_argument("--version", default=llama_tree.SDIST_VERSION,
                    help="llama-cpp-python sdist version to take llama.cpp from")
    args = ap.parse_args(argv)
    try:
        built = build(args.targets, version=args.version)
    except RuntimeError as e:  # also llama_tree.TreeError
        print(f"llama_tools: {e}", file=sys.stderr)
        return 1
    for name, path in built.items():
        print(name, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
