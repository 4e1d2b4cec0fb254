"""The trial load vetting runs in a child process: `python -m negtemp.trial_load PATH SPLIT_JSON`.

It loads the GGUF, tokenizes, generates two tokens on every sampling path and
runs a sweep, printing each stage as it starts ("stage: loading it"), so that
the parent can say where llama.cpp ended the process if it does. An ordinary
Python exception is not a crash: it is printed ("python error: ...") and the
child exits 3, and the parent's own load reports it (negtemp.vetting owns these
words). Nothing imports this
module: it is a program, run by negtemp.vetting.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from .model import Model
from .vetting import PYTHON_ERROR, PYTHON_ERROR_EXIT, STAGE


def _stage(name: str) -> None:
    print(f"{STAGE}{name}", flush=True)


def main(argv: Sequence[str]) -> int:
    path, split = argv[0], json.loads(argv[1])
    _stage("loading it")
    try:
        m = Model(os.fsencode(path), n_ctx=64, n_threads=1, vet=False, **split)
        _stage("tokenizing")
        m.tokenize("probe")
        for sampler_path in ("fused", "chain", "backend"):
            _stage(f"generating on the {sampler_path} path")
            m.complete("probe", -1.0, n_predict=2, seed=1, path=sampler_path)
        _stage("running a sweep")
        m.sweep("probe", [-1.0, 1.0], n_predict=2, seed=1)
    except Exception as e:
        print(f"{PYTHON_ERROR}{type(e).__name__} {e}", flush=True)
        return PYTHON_ERROR_EXIT
    _stage("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
