"""Obtain the pinned llama.cpp tree and apply negtemp's patch series to a copy.

The pristine tree comes from the `vendor/llama.cpp` submodule when it is
checked out. Our machines cannot reach GitHub, so otherwise it is taken from
the llama-cpp-python sdist that vendors the same commit, fetched with pip,
checked against a known SHA-256 and cached outside the repository.

Used by CMakeLists.txt at configure time and by scripts/verify_patch.py.
Standard library only: it runs inside pip's isolated build environment.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def _read_pin(path: Path) -> dict[str, str]:
    """The key=value lines of cmake/llama_pin.txt, the one place the pin is written."""
    pin = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pin[key.strip()] = value.strip()
    return pin


_PIN = _read_pin(REPO / "cmake" / "llama_pin.txt")
PIN_COMMIT = _PIN["commit"]
SDIST_NAME = _PIN["sdist"]
SDIST_VERSION = _PIN["sdist_version"]
SDIST_SHA256 = _PIN["sdist_sha256"]
SUBMODULE = REPO / "vendor" / "llama.cpp"
PATCHES = REPO / "patches"


class TreeError(RuntimeError):
    pass


def _negtemp_cache() -> ModuleType:
    """src/negtemp/cache.py, loaded from the source tree: the build runs this script before negtemp is installed,
    and caches the sdist where negtemp caches its models."""
    spec = importlib.util.spec_from_file_location("_negtemp_cache", REPO / "src" / "negtemp" / "cache.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CACHE = _negtemp_cache()
cache_root: Callable[[], Path] = _CACHE.cache_dir
sha256_file: Callable[[Path], str] = _CACHE.sha256_file


def download_sdist(version: str, dest: Path) -> Path:
    """Fetch the llama-cpp-python sdist with pip; never builds it."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        # Only this package as source: `:all:` would also force pip to build
        # its build requirements (cmake, ninja) from source, which takes ages.
        "--no-binary", SDIST_NAME,
        "-d", str(dest), f"{SDIST_NAME}=={version}",
    ]
    print(f"negtemp: fetching {SDIST_NAME}=={version} sdist with pip", file=sys.stderr)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if res.returncode != 0 or not found:
        raise TreeError(
            f"could not download {SDIST_NAME}=={version} with pip:\n{res.stdout[-2000:]}\n"
            "Check network access to the package index, or check out the submodule "
            "(git submodule update --init vendor/llama.cpp)."
        )
    return found[0]


def extract_vendored(sdist: Path, dest: Path) -> str:
    """Unpack the sdist's vendor/llama.cpp into dest; return the commit its git metadata names."""
    tmp = Path(tempfile.mkdtemp(prefix="negtemp-sdist-", dir=dest.parent))
    try:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        (top,) = [p for p in tmp.iterdir() if p.is_dir()]
        head = top / ".git" / "modules" / "vendor" / "llama.cpp" / "HEAD"
        commit = head.read_text().strip() if head.exists() else "unknown"
        src = top / "vendor" / "llama.cpp"
        (src / ".git").unlink(missing_ok=True)  # points into the sdist's .git, gone after this
        if dest.exists():
            shutil.rmtree(dest)
        src.rename(dest)
        return commit
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pristine_tree(version: str = SDIST_VERSION) -> Path:
    """Return the path of an unmodified llama.cpp tree for the given sdist version."""
    pinned = version == SDIST_VERSION
    if pinned and (SUBMODULE / "CMakeLists.txt").exists():
        return SUBMODULE
    root = cache_root()
    tree = root / f"llama.cpp-{version}"
    stamp = tree / ".negtemp-commit"
    if stamp.exists():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="negtemp-dl-", dir=root) as dl:
        sdist = download_sdist(version, Path(dl))
        digest = sha256_file(sdist)
        if pinned and digest != SDIST_SHA256:
            raise TreeError(
                f"{sdist.name} has SHA-256 {digest}, expected {SDIST_SHA256}: "
                "refusing to build from an unverified llama.cpp tree."
            )
        commit = extract_vendored(sdist, tree)
    if pinned and commit != PIN_COMMIT:
        shutil.rmtree(tree)
        raise TreeError(f"the sdist vendors llama.cpp {commit}, expected {PIN_COMMIT}")
    stamp.write_text(commit + "\n")
    return tree


def patch_series() -> list[Path]:
    return sorted(PATCHES.glob("*.patch"))


def series_digest(patches: list[Path]) -> str:
    h = hashlib.sha256()
    for p in patches:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def apply_series(tree: Path, patches: list[Path]) -> None:
    """git apply each patch in order; stop at the first that does not apply, naming it."""
    # Inside another repository (a build dir under our checkout) git apply would
    # resolve paths against that repository and silently skip every file.
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tree.parent))
    for p in patches:
        args = ["git", "apply", "--verbose", str(p)]
        res = subprocess.run(args, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if res.returncode != 0 or "Skipped patch" in res.stdout:
            raise TreeError(f"patch {p.name} does not apply to {tree}:\n{res.stdout.strip()}")


def prepare(dest: Path, version: str = SDIST_VERSION, patches: list[Path] | None = None) -> Path:
    """Copy the pristine tree to dest and apply the series (or `patches`, a part of it, in order);
    reuse dest if nothing changed."""
    patches = patch_series() if patches is None else patches
    src = pristine_tree(version)
    key = f"{src}\n{series_digest(patches)}\n"
    stamp = dest / ".negtemp-patched"
    if stamp.exists() and stamp.read_text() == key:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    # shutil.copy, not copy2: a copy that kept the pristine files' old mtimes
    # left a file a patch no longer touches older than its object file, and
    # the build kept linking the object compiled from the patched source
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git"), symlinks=True, copy_function=shutil.copy)
    apply_series(dest, patches)
    stamp.write_text(key)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path, help="where to write the patched copy")
    ap.add_argument("--version", default=SDIST_VERSION, help="llama-cpp-python sdist version to take llama.cpp from")
    args = ap.parse_args(argv)
    try:
        out = prepare(args.dest.resolve(), args.version)
    except TreeError as e:
        print(f"negtemp: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
