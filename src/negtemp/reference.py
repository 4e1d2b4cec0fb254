"""NumPy reference (float64) for the distribution every sampling path claims to draw from.

The chain, in llama.cpp's order, on logits z with inverse temperature beta = 1/T:

1. Masks: NaN and +-inf logits are masked (p = 0 at every T).
2. Logit bias: z_i += bias_i; a bias of -inf bans token i.
3. Repeat penalty r on the tokens among the last ``penalty_last_n`` of
   ``history``: llama.cpp's rule (z <= 0: z * r, else z / r) for T >= 0; for
   T < 0 it acts on -z (z >= 0: z * r, else z / r), so a penalty always makes
   a repeated token less likely, whichever end of the order T favours.
4. Filters on the model's own distribution (T = 1) of what is left:
   top-k keeps the k largest logits; top-p the most likely tokens until their
   probability reaches p (at least one); min-p the tokens with
   p_i >= min_p * p_max. So at T < 0, top-k 40 means "the least likely of the
   40 most likely".
5. Temperature over the survivors: p_i = exp((z_i - z*) / T) / sum_j exp((z_j - z*) / T),
   z* the largest surviving logit for T > 0 and the smallest for T < 0, so no
   exponent is positive and nothing overflows.

beta = +inf (T = 0) is greedy: all mass on the largest surviving logit.
beta = -inf is anti-greedy: the mass split evenly over the smallest surviving
logits, the limit T -> 0 from below. beta = 0 (|T| = inf) is uniform over the
survivors. Where several tokens tie at a filter's boundary (or at greedy's
maximum), llama.cpp keeps an unspecified one of them; the reference breaks
such ties by the lower token id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .config import SamplingConfig, resolve_beta
from .errors import ALL_MASKED, SamplingError

__all__ = ["adjusted_logits", "probs"]


def _logits(logits: npt.ArrayLike) -> np.ndarray:
    z = np.array(logits, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise ValueError("logits must be a non-empty 1-D array")
    z[~np.isfinite(z)] = -np.inf
    return z


def adjusted_logits(logits: npt.ArrayLike, config: SamplingConfig, history: Sequence[int] = ()) -> np.ndarray:
    """Steps 1-3: the logits after masks, bias and the repeat penalty (masked at -inf)."""
    if config.ignore_eos:
        raise ValueError("the reference does not know the model's end-of-generation tokens: ban them with logit_bias")
    z = _logits(logits)
    config.native().check(z.size, [int(t) for t in history])
    for tok, bias in config.logit_bias.items():
        z[tok] += bias
    if config.repeat_penalty != 1.0 and len(history):
        r = config.repeat_penalty
        seen = np.unique(np.asarray(history, dtype=np.int64)[-config.penalty_last_n:])
        s = z[seen]
        if config.inverse_temperature < 0:
            z[seen] = np.where(s >= 0, s * r, s / r)
        else:
            z[seen] = np.where(s <= 0, s * r, s / r)
    return z


def _survivors(z: np.ndarray, config: SamplingConfig) -> np.ndarray:
    """Step 4: a mask of the tokens the filters keep."""
    live = np.isfinite(z)
    if not live.any() or config.plain:
        return np.asarray(live)
    # descending by logit, ties by token id
    order = np.lexsort((np.arange(z.size), -z))
    order = order[live[order]]
    if config.top_k > 0:
        order = order[: config.top_k]
    if config.top_p < 1.0:
        w = np.exp(z[order] - z[order[0]])
        cum = np.cumsum(w / w.sum())
        order = order[: int(np.searchsorted(cum, config.top_p, side="left")) + 1]
    if config.min_p > 0.0:
        order = order[z[order] >= z[order[0]] + math.log(config.min_p)]
    keep = np.zeros(z.size, dtype=bool)
    keep[order] = True
    return keep


def probs(
    logits: npt.ArrayLike,
    temp: float | None = None,
    *,
    beta: float | None = None,
    config: SamplingConfig | None = None,
    history: Sequence[int] = (),
) -> np.ndarray:
    """Probabilities (float64) of each entry of a 1-D logits vector under the chain.

    Give temp or beta for the plain chain, or a SamplingConfig for any chain
    (``history``: tokens generated before, for the repeat penalty). Raises
    negtemp.SamplingError (a ValueError) when every token is masked.
    """
    if config is None:
        resolve_beta(temp, beta)  # exactly one of them
        config = SamplingConfig(temp=temp, beta=beta)
    elif temp is not None or beta is not None:
        raise TypeError("give temp/beta or config, not both")
    b = config.inverse_temperature
    z = adjusted_logits(logits, config, history)
    keep = _survivors(z, config)
    if not keep.any():
        raise SamplingError(ALL_MASKED)
    zs = z[keep]
    if b == 0.0:
        p = np.ones_like(zs)
    elif b == math.inf:
        p = np.zeros_like(zs)
        p[np.argmax(zs)] = 1.0
    elif b == -math.inf:
        p = (zs == zs.min()).astype(np.float64)
    else:
        z_star = zs.max() if b > 0 else zs.min()
        with np.errstate(over="ignore"):
            p = np.exp((zs - z_star) * b)
    out = np.zeros_like(z)
    out[keep] = p / p.sum()
    return out
