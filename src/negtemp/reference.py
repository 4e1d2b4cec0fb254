"""NumPy reference for the sampling distribution negtemp claims to draw from.

For finite logits z and temperature T (beta = 1/T):

    p_i = exp((z_i - z*) / T) / sum_j exp((z_j - z*) / T)

with z* = max z for T > 0 and z* = min z over the finite entries for T < 0, so
every exponent is <= 0 and nothing overflows. Entries at -inf (masked tokens)
have p = 0 at every T. T = 0 (beta = +inf) is upstream's greedy: all mass on
the first largest logit (llama.cpp's CPU path; its backend argmax may take
another of the tied maxima). beta = -inf is anti-greedy: all mass on the
smallest finite logit, split evenly over ties, the limit of T -> 0 from below.
|T| = inf (beta = 0) is uniform over unmasked tokens.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["probs", "resolve_beta"]


def resolve_beta(temp: float | None, beta: float | None) -> float:
    """The inverse temperature for a (temp, beta) pair; exactly one must be given."""
    if (temp is None) == (beta is None):
        raise TypeError("give exactly one of temp= and beta=")
    if temp is not None:
        t = float(temp)
        if math.isnan(t):
            raise ValueError("temp is NaN")
        if t == 0.0:
            return math.inf
        return 0.0 if math.isinf(t) else 1.0 / t
    b = float(beta)  # type: ignore[arg-type]
    if math.isnan(b):
        raise ValueError("beta is NaN")
    return b


def probs(logits: npt.ArrayLike, temp: float | None = None, *, beta: float | None = None) -> np.ndarray:
    """Probabilities (float64) of each entry of a 1-D logits vector at temperature temp (or beta)."""
    b = resolve_beta(temp, beta)
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise ValueError("logits must be a non-empty 1-D array")
    finite = np.isfinite(z)
    if not finite.any():
        raise ValueError("every logit is masked (-inf or non-finite): there is nothing to sample")
    out = np.zeros_like(z)
    zf = z[finite]
    if b == 0.0:
        p = np.ones_like(zf)
    elif b == math.inf:
        p = np.zeros_like(zf)
        p[np.argmax(zf)] = 1.0
    elif b == -math.inf:
        p = (zf == zf.min()).astype(np.float64)
    else:
        z_star = zf.max() if b > 0 else zf.min()
        with np.errstate(over="ignore"):
            p = np.exp((zf - z_star) * b)
    out[finite] = p / p.sum()
    return out
