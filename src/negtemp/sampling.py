"""llama.cpp's own sampler, run on a caller's logits: the check that the patch
implements negtemp.reference exactly, on either sampling path."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from . import _native
from .reference import resolve_beta

__all__ = ["native_temp", "sampler_probs", "sample_tokens"]

# llama.cpp keeps T = -0.0 greedy, so beta = -inf (anti-greedy) is passed as
# the smallest normal float32 below zero: (z - z_min) / T is then -inf, or
# underflows to p = 0, for every logit above the minimum.
_ANTI_GREEDY_TEMP = -1.1754943508222875e-38
_PATHS = ("cpu", "backend", "fused")


def native_temp(temp: float | None, beta: float | None) -> tuple[float, float]:
    """(beta, the float temperature handed to llama.cpp) for a temp or beta argument."""
    b = resolve_beta(temp, beta)
    if b == math.inf:
        return b, 0.0
    if b == -math.inf:
        return b, _ANTI_GREEDY_TEMP
    if b == 0.0:
        return b, math.inf
    return b, 1.0 / b


def _logits(logits: npt.ArrayLike) -> np.ndarray:
    z = np.ascontiguousarray(logits, dtype=np.float32)
    if z.ndim != 1 or z.size == 0:
        raise ValueError("logits must be a non-empty 1-D array")
    if not np.isfinite(z).any():
        raise ValueError("every logit is masked (-inf or non-finite): there is nothing to sample")
    return z


def sampler_probs(
    logits: npt.ArrayLike, temp: float | None = None, *, beta: float | None = None, path: str = "cpu"
) -> np.ndarray:
    """The probabilities llama.cpp's temperature sampler and draw assign to each logit.

    path="cpu" runs the sampler chain; path="backend" computes the sampler's
    ggml graph (the GPU path in a GPU build) on the CPU backend; path="fused"
    runs negtemp's fused sampler, which generation uses for the plain chain.
    """
    if path not in _PATHS:
        raise ValueError(f"path must be one of {_PATHS}, got {path!r}")
    _, t = native_temp(temp, beta)
    return _native.sampler_probs(_logits(logits), t, path)


def sample_tokens(
    logits: npt.ArrayLike,
    temp: float | None = None,
    *,
    beta: float | None = None,
    n: int,
    seed: int,
    path: str = "cpu",
) -> np.ndarray:
    """n independent draws (token indices, int32) through llama.cpp's temperature sampler and draw.

    path="cpu" (llama.cpp's chain) or "fused" (negtemp's fused sampler; the
    same seed gives the same draws). The backend draw runs only inside a
    decode: generate with Model.complete(..., backend_sampling=True) to use it.
    """
    if path not in ("cpu", "fused"):
        raise ValueError("sample_tokens runs path='cpu' or 'fused'; the backend draw runs inside Model.complete")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (0 <= int(seed) < 2**32 - 1):
        raise ValueError(f"seed must be in [0, 2**32 - 2], got {seed}")
    _, t = native_temp(temp, beta)
    return _native.sample_tokens(_logits(logits), t, int(n), int(seed), path == "fused")
