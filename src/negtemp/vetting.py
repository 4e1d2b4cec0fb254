"""Vetting: an unfamiliar GGUF is tried in a child process before this process loads it.

A GGUF can be structurally sound (gguf_check) and still make llama.cpp call
abort() or loop forever: a zero block count at load, a head count that does
not divide at the first decode. Those kill the whole Python process, so
negtemp does not load an unfamiliar file in-process first: a child loads it,
tokenizes, generates two tokens on every sampling path and runs a sweep,
under a time and memory limit (negtemp.trial_load, a program of its own). A child that dies (or hangs) becomes a
ModelLoadError quoting llama.cpp's last error lines and the stage it reached;
a child that ends in an ordinary Python exception is not a crash, and the
parent's own load reports it. The verdict is cached by the file's identity
(path, size, mtime, inode), so only a new or changed file pays for a trial load.
Named models, verified by SHA-256, are known to pass and skip it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from .cache import cache_dir
from .errors import ModelLoadError

__all__ = ["TRIAL_TIMEOUT_S", "vet"]

TRIAL_TIMEOUT_S = 120

# the child's program (it imports the API, which vetting, below it, must not), and what it reports:
# each stage as it starts, and an ordinary Python exception as a line and an exit status
_TRIAL_LOAD = "negtemp.trial_load"
STAGE = "stage: "
PYTHON_ERROR = "python error: "
PYTHON_ERROR_EXIT = 3


def _verdict_file(path: Path) -> Path:
    st = path.stat()
    key = f"{os.fsencode(path.resolve())!r}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_dev}"
    return cache_dir() / "vetted" / (hashlib.sha256(key.encode()).hexdigest() + ".json")


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _trial_load(path: Path, split: dict[str, object]) -> str | None:
    """Run the trial load in a child; None if it did not crash or hang, else what happened."""
    limit = max(4 << 30, 3 * path.stat().st_size + (2 << 30))
    try:
        res = subprocess.run(
            [sys.executable, "-m", _TRIAL_LOAD, os.fsdecode(path), json.dumps(split)],
            capture_output=True, timeout=TRIAL_TIMEOUT_S, preexec_fn=lambda: _limit_memory(limit),
        )
    except subprocess.TimeoutExpired as e:
        stages = [ln for ln in (e.stdout or b"").decode(errors="replace").splitlines() if ln.startswith(STAGE)]
        last = stages[-1][len(STAGE):] if stages else "starting"
        return f"llama.cpp did not finish {last} within {TRIAL_TIMEOUT_S} s (a hang, or a runaway loop)"
    out = res.stdout.decode(errors="replace").splitlines()
    stages = [ln[len(STAGE):] for ln in out if ln.startswith(STAGE)]
    errors = [ln[len(PYTHON_ERROR):] for ln in out if ln.startswith(PYTHON_ERROR)]
    if res.returncode == PYTHON_ERROR_EXIT and errors and ("MemoryError" in errors[-1] or "bad_alloc" in errors[-1]):
        # a runaway (a tokenizer that never stops) ends at the memory limit here;
        # in this process it would grow until the machine ran out
        return (f"llama.cpp used up the trial load's {limit / 2**30:.0f} GiB memory limit while "
                f"{stages[-1] if stages else 'starting'} ({errors[-1]})")
    if res.returncode in (0, PYTHON_ERROR_EXIT):
        return None
    err = [ln.strip() for ln in res.stderr.decode(errors="replace").splitlines() if ln.strip()]
    reason = [ln for ln in err if "GGML_ASSERT" in ln or "error" in ln.lower() or "abort" in ln.lower()] or err
    how = f"signal {-res.returncode}" if res.returncode < 0 else f"exit status {res.returncode}"
    return (f"llama.cpp ended the process ({how}) while {stages[-1] if stages else 'starting'}: "
            + (" | ".join(reason[-3:]) if reason else "no message"))


def _forget_missing(folder: Path) -> None:
    """Drop the verdicts of files that no longer exist (test models in temporary directories, say)."""
    for old in folder.glob("*.json"):
        try:
            if not Path(json.loads(old.read_text())["path"]).exists():
                old.unlink()
        except (OSError, ValueError, KeyError):
            old.unlink(missing_ok=True)


def vet(path: Path, split: dict[str, object] | None = None) -> None:
    """Load path in a child unless its verdict is cached; raise ModelLoadError if it would crash us.

    ``split``: the Model's rpc, rpc_timeout and n_gpu_layers when it is split
    over RPC servers, so that the child loads it the same way (and a model too
    big for this machine alone can be vetted); the servers take one client at
    a time, and the child is done before this process connects.
    """
    verdict = _verdict_file(path)
    try:
        crash = json.loads(verdict.read_text())["crash"]
    except (OSError, ValueError, KeyError):
        crash = _trial_load(path, split or {})
        verdict.parent.mkdir(parents=True, exist_ok=True)
        _forget_missing(verdict.parent)
        tmp = verdict.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"path": os.fsdecode(path), "crash": crash}))
        os.replace(tmp, verdict)
    if crash is not None:
        raise ModelLoadError(f"{path}: {crash}. negtemp refuses files that crash llama.cpp; this one would have "
                             "ended the Python process.")
