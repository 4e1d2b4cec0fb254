"""What a from-source install costs, part by part, against llama-cpp-python's, in one run.

    python -m scripts.build_times               # both installs, fresh, one after the other (about 10 min)
    python -m scripts.build_times --log DIR     # only the parts of a build directory's last build

Each install runs in a new virtual environment with empty pip and negtemp caches
and no compiler cache, as on a new machine: negtemp's `pip install .` from a
copy of this working tree (its files as git sees them), then
`pip install llama-cpp-python==<the pinned sdist>` built from its sdist (its
llama, ggml, common and mtmd libraries). The copy's build directory and llama-cpp-python's
(kept by scikit-build-core's build-dir setting) are then read: ninja's log gives
each compiled file's time, summed by part (ggml, its CPU backend, llama, the
extension, llama.cpp's common library, mtmd, the server). Ninja runs up to
cores + 2 jobs, so a part's seconds are wall time per file under that load;
the shares are what compare. The time until the build starts (pip fetching the
build requirements and the llama.cpp source, configuring) is the wall time less
the build's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from collections import defaultdict
from pathlib import Path

from scripts import llama_tree

REPO = llama_tree.REPO

# the first pattern an output's path matches names its part
PARTS = [
    ("ggml CPU backend", r"/ggml-cpu"),
    ("ggml", r"/ggml/|ggml-rpc|/ggml\b"),
    ("llama", r"/src/CMakeFiles/llama\.dir|libllama"),
    ("negtemp extension", r"_native"),
    ("common", r"/common/|vendor-hash"),
    ("mtmd", r"/mtmd/"),
    ("llama-server", r"/server/|httplib|/ui/|llama-server"),
    ("llama-cpp-python", r"llama_cpp|/llava/"),
]


def ninja_parts(build_dir: Path) -> tuple[dict[str, float], float]:
    """Seconds per part of the last build in build_dir (from .ninja_log), and the build's wall time."""
    log = build_dir / ".ninja_log"
    if not log.exists():
        raise SystemExit(f"build_times: no ninja log in {build_dir}")
    parts: dict[str, float] = defaultdict(float)
    start, end = float("inf"), 0.0
    for line in log.read_text().splitlines()[1:]:
        first, last, _, out, _ = line.split("\t")
        t0, t1 = int(first) / 1e3, int(last) / 1e3
        start, end = min(start, t0), max(end, t1)
        part = next((name for name, pattern in PARTS if re.search(pattern, out)), "other")
        parts[part] += t1 - t0
    return dict(parts), end - start


def show(title: str, parts: dict[str, float], wall: float) -> None:
    total = sum(parts.values())
    print(f"   {title}: build {wall:.0f} s wall, {total:.0f} s of compile jobs")
    for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"     {name:>18} {seconds:7.0f} s  {100 * seconds / total:4.0f}%")


def fresh_env(root: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A new venv, and an environment with empty caches and no compiler cache for pip to run in."""
    env_dir = root / name
    venv.create(env_dir / "venv", with_pip=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CMAKE_", "CCACHE", "NEGTEMP_", "PIP_", "VIRTUAL_ENV"))}
    # ggml's CMake launches ccache by itself wherever it is installed (GGML_CCACHE)
    env.update(PIP_CACHE_DIR=str(env_dir / "pip-cache"), NEGTEMP_CACHE=str(env_dir / "negtemp-cache"),
               CCACHE_DISABLE="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", VIRTUAL_ENV=str(env_dir / "venv"),
               PATH=f"{env_dir / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return env_dir / "venv" / "bin" / "python", env


def timed_install(python: Path, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run([str(python), "-m", "pip", "install", "-v", *args], env=env, cwd=cwd, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"build_times: `pip install {' '.join(args)}` failed; see {log}")
    return time.perf_counter() - started


def copy_tree(dest: Path) -> None:
    """This working tree's files as git sees them (tracked and untracked, not ignored): no build/."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / os.fsdecode(name)
        if src.is_file():
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))


def race(work: Path) -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    print(f"build_times: fresh installs in {work}, one after the other, on {os.cpu_count()} cores", flush=True)
    results = {}

    python, env = fresh_env(work, "negtemp")
    tree = work / "negtemp" / "src-tree"
    copy_tree(tree)
    seconds = timed_install(python, ["."], env, tree, work / "negtemp" / "pip.log")
    (build,) = (tree / "build").glob(f"{tag}-*")
    results["negtemp (pip install .)"] = (seconds, *ninja_parts(build))
    print(f"   negtemp installed in {seconds:.0f} s", flush=True)

    python, env = fresh_env(work, "llama-cpp-python")
    lcp_build = work / "llama-cpp-python" / "build"
    spec = f"{llama_tree.SDIST_NAME}=={llama_tree.SDIST_VERSION}"
    seconds = timed_install(python, ["--no-binary", llama_tree.SDIST_NAME, f"--config-settings=build-dir={lcp_build}",
                                     spec], env, work, work / "llama-cpp-python" / "pip.log")
    results[f"{spec} (from its sdist)"] = (seconds, *ninja_parts(lcp_build))
    print(f"   llama-cpp-python installed in {seconds:.0f} s", flush=True)

    print("\nfrom-source installs, same machine, same run, empty caches:")
    for name, (total, parts, wall) in results.items():
        print(f" {name}: {total // 60:.0f} min {total % 60:.0f} s in all; {total - wall:.0f} s before and "
              "after the build (fetching, configuring, packing)")
        show("its build", parts, wall)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, help="only report the parts of this build directory's last build")
    ap.add_argument("--keep", type=Path, help="run the installs here and keep them (default: a temporary directory)")
    args = ap.parse_args(argv)
    if args.log:
        show(str(args.log), *ninja_parts(args.log))
        return 0
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        race(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="negtemp-build-times-") as tmp:
            race(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
