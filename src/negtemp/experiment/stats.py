"""The experiment's statistics, in NumPy: tie-aware ranks and Spearman, the cluster bootstrap, an exact rank-sum test.

Draws at T = -0.001 are nearly deterministic given the prompt, so the
unit of resampling is the prompt (a cluster of draws), not the draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["average_ranks", "bootstrap_ci", "bootstrap_cis", "percentile_of_all", "rank_sum_test", "spearman"]

T = TypeVar("T")


def average_ranks(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n of x, tied values sharing the mean of the ranks they span."""
    a = np.asarray(x, dtype=np.float64)
    n = a.size
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], n]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(n)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def percentile_of_all(values: np.ndarray) -> np.ndarray:
    """Each value's percentile among all of them (0 = smallest, 100 = largest; ties share one)."""
    if values.size < 2:
        return np.zeros(values.size)
    return 100.0 * (average_ranks(values) - 1.0) / (values.size - 1)


def _pearson_rows(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of rx with each row of ry."""
    x = rx - rx.mean()
    y = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((x * x).sum()) * np.sqrt((y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((y @ x) / den)


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, n_perm: int = 10_000,
             seed: int = 0) -> tuple[float, float]:
    """(Spearman's rho on average ranks, two-sided permutation p-value from n_perm shuffles of y).

    The permutation test needs no distributional assumption and handles ties
    as they are; p is (k + 1) / (n_perm + 1), k the shuffles at least as
    extreme. (nan, nan) for fewer than 3 pairs or a constant variable.
    """
    rx, ry = average_ranks(x), average_ranks(y)
    if rx.size < 3 or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan"), float("nan")
    rho = float(_pearson_rows(rx, ry[None, :])[0])
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_perm, 1000):
        batch = min(1000, n_perm - start)
        shuffled = rng.permuted(np.broadcast_to(ry, (batch, ry.size)), axis=1)
        extreme += int((np.abs(_pearson_rows(rx, shuffled)) >= abs(rho) - 1e-12).sum())
    return rho, (extreme + 1) / (n_perm + 1)


def bootstrap_cis(units: Sequence[T], statistic: Callable[[Sequence[T]], Sequence[float] | np.ndarray], *,
                  n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> list[tuple[float, float, float]]:
    """(value on units, lower, upper) for each number the statistic returns: percentile bootstrap intervals
    from n_boot resamples of whole units, with replacement.

    The units are the independent pieces (prompts for draws, tokens for a
    token group); resampling them keeps whatever is correlated inside one.
    """
    point = np.asarray(statistic(units), dtype=float)
    rng = np.random.default_rng(seed)
    n = len(units)
    reps = np.array([np.asarray(statistic([units[i] for i in rng.integers(0, n, n)]), dtype=float)
                     for _ in range(n_boot)]).reshape(n_boot, point.size)
    tail = 100.0 * (1.0 - level) / 2.0
    out = []
    for j in range(point.size):
        col = reps[:, j][np.isfinite(reps[:, j])]
        lo, hi = np.percentile(col, [tail, 100.0 - tail]) if col.size else (np.nan, np.nan)
        out.append((float(point[j]), float(lo), float(hi)))
    return out


def bootstrap_ci(units: Sequence[T], statistic: Callable[[Sequence[T]], float], *, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(statistic of units, lower, upper): bootstrap_cis for one number."""
    return bootstrap_cis(units, lambda u: [statistic(u)], n_boot=n_boot, seed=seed, level=level)[0]


def rank_sum_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon-Mann-Whitney rank-sum test, exact, ties included.

    The exact permutation distribution of a's rank sum over every way of
    splitting the pooled values into groups of len(a) and len(b): counted
    by dynamic programming over the (doubled, so integral) mid-ranks, so it
    is exact for any sizes, with no normal approximation.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    k, n = a.size, a.size + b.size
    if k == 0 or b.size == 0:
        return float("nan")
    doubled = np.rint(2 * average_ranks(np.r_[a, b])).astype(np.int64)
    total = int(doubled.sum())
    ways = np.zeros((k + 1, total + 1))  # ways[j, s]: subsets of j values with doubled rank sum s
    ways[0, 0] = 1.0
    for v in doubled:
        ways[1:, v:] = ways[1:, v:] + ways[:-1, : total + 1 - v]
    dist = ways[k] / ways[k].sum()
    observed = int(doubled[:k].sum())
    mean = k * total / n
    sums = np.arange(total + 1)
    return float(min(1.0, dist[np.abs(sums - mean) >= abs(observed - mean) - 1e-9].sum()))
