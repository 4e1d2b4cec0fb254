"""llama.cpp's own sampler chain, run on a caller's logits: the check that the
patched tree implements negtemp.reference exactly, on every sampling path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native
from .config import SamplingConfig, make_config

__all__ = ["sample_tokens", "sampler_probs"]


def _logits(logits: npt.ArrayLike) -> np.ndarray:
    z = np.ascontiguousarray(logits, dtype=np.float32)
    if z.ndim != 1 or z.size == 0:
        raise ValueError("logits must be a non-empty 1-D array")
    return z


def _run(config: SamplingConfig, path: str | None) -> SamplingConfig:
    """The config that runs: path= wins over config.path ("cpu" is the older name of "chain"), resolved."""
    p = "chain" if path == "cpu" else (path or config.path)
    return replace(config, path=p).resolved()  # type: ignore[arg-type]


def sampler_probs(
    logits: npt.ArrayLike,
    temp: float | None = None,
    *,
    config: SamplingConfig | None = None,
    path: str | None = None,
    history: Sequence[int] = (),
    device: str = "CPU",
    **options: Any,
) -> np.ndarray:
    """The probability every token has after the sampler chain, from llama.cpp's own samplers.

    The chain is ``config`` (a SamplingConfig) or built from ``temp`` and the
    keyword arguments of SamplingConfig (beta=, top_k=, top_p=, min_p=,
    repeat_penalty=, logit_bias=). ``path``: "chain" (llama.cpp's chain on
    the CPU; "cpu" is accepted too), "backend" (the chain's ggml graph,
    computed on ``device``), "fused" (negtemp's fused sampler, plain
    chain only); default: the config's path, "auto" picking fused or chain.
    ``history``: tokens accepted before, for the repeat penalty. ``device``:
    the ggml device the backend path computes on ("CPU", or in a GPU build
    "Vulkan0", "CUDA0", ...: negtemp.devices()); an op the device lacks raises
    RuntimeError rather than running on the CPU. Raises negtemp.SamplingError
    (a ValueError) when every token is masked.
    """
    run = _run(make_config(temp, config, options), path)
    return _native.sampler_probs(_logits(logits), run.native(), run.path, [int(t) for t in history], str(device))


def sample_tokens(
    logits: npt.ArrayLike,
    temp: float | None = None,
    *,
    n: int,
    seed: int,
    config: SamplingConfig | None = None,
    path: str | None = None,
    device: str = "CPU",
    **options: Any,
) -> np.ndarray:
    """n independent draws (token indices, int32) through the chain on one logits vector.

    ``path`` and ``device`` as in sampler_probs; "backend" computes the chain's
    ggml graph once per draw, with a fresh uniform each time, as each decode does. The
    same seed gives the same draws. Penalties are refused: they make each draw
    depend on the ones before.
    """
    cfg = replace(make_config(temp, config, options), seed=int(seed))
    if cfg.repeat_penalty != 1.0:
        raise ValueError("sample_tokens draws independently; a repeat penalty would chain the draws "
                         "(use sampler_probs(..., history=...) for penalties)")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    run = _run(cfg, path)
    return _native.sample_tokens(_logits(logits), run.native(), run.path, int(n), str(device))
