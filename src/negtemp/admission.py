"""Model admission: what a GGUF must pass before this process loads it.

First its structure (gguf_check: sizes, offsets, types, the vocabulary, in
Python, without llama.cpp); then, for a file negtemp has not verified by
SHA-256, a trial load in a child process (vetting), so that a file that
would abort llama.cpp raises ModelLoadError instead. Model and `negtemp
serve` admit every file through admit().
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .gguf_check import check_gguf
from .registry import is_verified
from .remote import remote_share
from .vetting import vet

__all__ = ["admit"]


def admit(path: Path, *, vet_file: bool = True, rpc: Sequence[str] = (), rpc_timeout: float = 60.0,
          n_gpu_layers: int | None = None) -> int:
    """The layers to offload once the file has passed; ModelLoadError naming what it failed.

    ``n_gpu_layers`` None is -1 (all) without ``rpc``, and with it an equal
    share for this machine and each server (remote.remote_share); the trial
    load splits the model the same way over the same servers. ``vet_file=False``
    skips the trial load, for files the caller trusts.
    """
    meta = check_gguf(path)
    layers = n_gpu_layers if n_gpu_layers is not None else remote_share(meta, len(rpc)) if rpc else -1
    if vet_file and not is_verified(path):
        split: dict[str, object] = {"rpc": list(rpc), "rpc_timeout": rpc_timeout, "n_gpu_layers": layers}
        vet(path, split if rpc else None)
    return layers
