"""The chain on a caller's logits: llama.cpp's own sampler chain, run on logits you give it, on every path.

What the tests compare against negtemp.reference to show that the patched tree
samples exactly the distribution it claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _native
from .config import SamplingConfig, make_config
from .convert import strict_int

__all__ = ["sample_tokens", "sampler_probs"]


def _run(config: SamplingConfig, path: str | None) -> SamplingConfig:
    """The config that runs: path= wins over config.path, resolved."""
    return replace(config, path=path or config.path).resolved()  # type: ignore[arg-type]


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
    the CPU), "backend" (the chain's ggml graph, computed on ``device``),
    "fused" (negtemp's fused sampler, plain chain only); default: the
    config's path, "auto" picking fused or chain. ``history``: tokens
    accepted before, for the repeat penalty. ``device``: the ggml device the
    backend path computes on ("CPU", or in a GPU build "Vulkan0", "CUDA0",
    ...: negtemp.devices()); an op the device lacks raises RuntimeError
    rather than running on the CPU. Raises ValueError for a setting out of
    range (a logit-bias token outside the logits, say), and
    negtemp.SamplingError (a ValueError) when every token is masked.
    """
    run = _run(make_config(temp, config, options), path)
    return _native.sampler_probs(np.asarray(logits, dtype=np.float32), run.native(), list(history), str(device))


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
    run = _run(replace(make_config(temp, config, options), seed=seed), path)
    return _native.sample_tokens(np.asarray(logits, dtype=np.float32), run.native(), strict_int("n", n), str(device))
