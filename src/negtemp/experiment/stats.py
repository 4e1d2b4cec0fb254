"""The experiment's statistics, in NumPy: tie-aware ranks and AUC, the cluster and crossed bootstraps, an exact
rank-sum test, Wilson intervals, and logistic regression with cluster-robust standard errors.

Draws at T = -0.001 are nearly deterministic given the prompt, so the unit
of resampling is the prompt (a cluster of draws), not the draw; and the
prompts are a subjects x templates grid, so both factors are resampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

__all__ = [
    "Z95", "LogisticFit", "OddsRatio", "RankedScore", "auc", "average_ranks", "bootstrap_cis", "choice_model",
    "crossed_bootstrap_cis", "half_sample_cis", "logistic_regression", "odds_ratio", "odds_ratio_ratio",
    "percentile_of_all", "rank_sum_test", "signed_rank_test", "wilson_interval",
]

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
    return _percentile_intervals(point, reps, level)


def crossed_bootstrap_cis(cells: Mapping[tuple[Hashable, Hashable], Sequence[T]],
                          statistic: Callable[[Sequence[T]], Sequence[float] | np.ndarray], *, n_boot: int = 1000,
                          seed: int = 0, level: float = 0.95) -> list[tuple[float, float, float]]:
    """bootstrap_cis for units in a crossed design: cells[(row, column)] holds the units of one cell.

    Each resample draws the row levels and, independently, the column levels
    with replacement and keeps every cell of a drawn row and a drawn column,
    as often as both were drawn (Owen 2007's bootstrap of both factors, the
    "pigeonhole" bootstrap). It keeps what prompts of one subject or of one
    template share, which resampling prompts alone treats as independent;
    Owen shows it errs, if at all, on the wide side.
    """
    rows = sorted({r for r, _ in cells}, key=repr)
    cols = sorted({c for _, c in cells}, key=repr)
    point = np.asarray(statistic([u for key in cells for u in cells[key]]), dtype=float)
    rng = np.random.default_rng(seed)
    empty: Sequence[T] = ()
    reps = []
    for _ in range(n_boot):
        rs, cs = rng.integers(0, len(rows), len(rows)), rng.integers(0, len(cols), len(cols))
        units = [u for r in rs for c in cs for u in cells.get((rows[r], cols[c]), empty)]
        reps.append(np.asarray(statistic(units), dtype=float))
    return _percentile_intervals(point, np.array(reps).reshape(n_boot, point.size), level)


def half_sample_cis(units: Sequence[T], statistic: Callable[[Sequence[T]], Sequence[float] | np.ndarray], *,
                    n_rep: int = 1000, seed: int = 0) -> list[tuple[float, float, float]]:
    """(value on units, lower, upper): value +- Z95 standard deviations of the statistic over random halves of the
    units, drawn without replacement (half-sampling, the delete-n/2 jackknife).

    For a statistic over the distinct tokens the units pick (a detector's
    set), a bootstrap resample repeats units and so picks fewer distinct
    tokens, shifting the statistic; its percentiles then need not hold the
    value. A half-sample's variance matches the full sample's to first
    order (a mean over n/2 of n units without replacement has variance
    sigma^2/n), so only the spread of the halves is used, centred on the
    value.
    """
    point = np.asarray(statistic(units), dtype=float)
    rng = np.random.default_rng(seed)
    n = len(units)
    reps = np.array([np.asarray(statistic([units[i] for i in rng.permutation(n)[: n // 2]]), dtype=float)
                     for _ in range(n_rep)]).reshape(n_rep, point.size)
    sd = np.nanstd(reps, axis=0, ddof=1)
    return [(float(v), float(v - Z95 * s), float(v + Z95 * s)) for v, s in zip(point, sd, strict=True)]


def _percentile_intervals(point: np.ndarray, reps: np.ndarray, level: float) -> list[tuple[float, float, float]]:
    tail = 100.0 * (1.0 - level) / 2.0
    out = []
    for j in range(point.size):
        col = reps[:, j][np.isfinite(reps[:, j])]
        lo, hi = np.percentile(col, [tail, 100.0 - tail]) if col.size else (np.nan, np.nan)
        out.append((float(point[j]), float(lo), float(hi)))
    return out


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


def signed_rank_test(differences: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of Wilcoxon's signed-rank test of matched pairs (differences x - y), exact, ties included.

    Zero differences are dropped (Wilcoxon's convention); the others are
    ranked by size, ties sharing their mid-rank. Under the null each sign is
    + or - with probability 1/2 independently, and the distribution of the
    positive ranks' sum over all 2^n sign patterns is counted by dynamic
    programming over the doubled (so integral) ranks: exact for any n.
    """
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return float("nan")
    doubled = np.rint(2 * average_ranks(np.abs(d))).astype(np.int64)
    total = int(doubled.sum())
    ways = np.zeros(total + 1)  # ways[s]: sign patterns whose positive doubled ranks sum to s
    ways[0] = 1.0
    for v in doubled:
        ways[v:] = ways[v:] + ways[: total + 1 - v]
    dist = ways / ways.sum()
    observed = int(doubled[d > 0].sum())
    mean = total / 2
    sums = np.arange(total + 1)
    return float(min(1.0, dist[np.abs(sums - mean) >= abs(observed - mean) - 1e-9].sum()))


@dataclass(frozen=True)
class OddsRatio:
    """An odds ratio with its 95% interval and two-sided p-value (Woolf's log-scale normal approximation)."""

    value: float
    low: float
    high: float
    p: float
    log_se: float
    corrected: bool  # a cell was zero, so 0.5 was added to every cell (Haldane-Anscombe)

    def as_dict(self) -> dict[str, object]:
        return {"odds ratio": self.value, "95% interval": [self.low, self.high], "p": self.p,
                "zero cell corrected": self.corrected}


def _odds(log_or: float, se: float, corrected: bool) -> OddsRatio:
    z = Z95
    p = math.erfc(abs(log_or / se) / math.sqrt(2)) if se > 0 else float("nan")
    return OddsRatio(math.exp(log_or), math.exp(log_or - z * se), math.exp(log_or + z * se), p, se, corrected)


def odds_ratio(a: int, b: int, c: int, d: int) -> OddsRatio:
    """The odds ratio (a/b) / (c/d) of a 2x2 table (a, b: outcome yes/no in the first group; c, d: in the second),
    with Woolf's interval; where a cell is zero, 0.5 is added to every cell, so the ratio stays finite."""
    corrected = min(a, b, c, d) == 0
    x = [v + 0.5 if corrected else float(v) for v in (a, b, c, d)]
    return _odds(math.log(x[0] * x[3] / (x[1] * x[2])), math.sqrt(sum(1 / v for v in x)), corrected)


def odds_ratio_ratio(first: OddsRatio, second: OddsRatio) -> OddsRatio:
    """first / second for two odds ratios of independent tables: the interaction of a 2x2x2 design (the same as a
    saturated logistic model's interaction term), with its interval and p-value on the log scale."""
    return _odds(math.log(first.value / second.value), math.hypot(first.log_se, second.log_se),
                 first.corrected or second.corrected)


def auc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 for X from `positive`, Y from `negative`: the area under the ROC curve, the
    effect size of a rank-sum test (0.5: no separation; 1: every positive above every negative)."""
    a, b = np.asarray(positive, float), np.asarray(negative, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    ranks = average_ranks(np.r_[a, b])
    return float((ranks[: a.size].sum() - a.size * (a.size + 1) / 2) / (a.size * b.size))


class RankedScore:
    """One score over a fixed population, ranked once, so the AUC of any subset of it against the rest costs one
    sum: for bootstraps that resample which tokens are positive, not the score."""

    def __init__(self, score: np.ndarray) -> None:
        self.ranks = average_ranks(score)

    def auc(self, positive: np.ndarray) -> float:
        """auc(score[positive], score[~positive]) for a boolean mask over the population."""
        n1 = int(positive.sum())
        n0 = positive.size - n1
        if n1 == 0 or n0 == 0:
            return float("nan")
        return float((self.ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """(k / n, lower, upper): the Wilson score interval of a binomial proportion, sensible at 0 and n too."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    z = _normal_quantile(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    """The standard normal quantile, by bisection on erfc (exact to double precision; no SciPy needed)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


Z95 = _normal_quantile(0.975)  # a two-sided 95% normal interval is +- Z95 standard errors


def choice_model(x: np.ndarray, chosen_mean: np.ndarray, *, start: np.ndarray | None = None,
                 max_iter: int = 100) -> tuple[np.ndarray, bool]:
    """(theta, converged): the conditional logit of choices among the rows of x (one row of features per
    alternative, the same set at every choice): P(row i) = exp(x_i . theta) / sum_j exp(x_j . theta), fitted by
    maximum likelihood to choices whose mean feature vector is chosen_mean. The likelihood depends on the choices
    only through that mean, so the fit is the theta whose model mean E_theta[x] equals it (Newton's method, the
    step halved until the likelihood rises)."""
    theta = np.zeros(x.shape[1]) if start is None else np.array(start, float)

    def loglik(t: np.ndarray) -> tuple[float, np.ndarray]:
        eta = x @ t
        top = float(eta.max())
        w = np.exp(eta - top)
        total = float(w.sum())
        return float(chosen_mean @ t) - top - math.log(total), w / total

    value, p = loglik(theta)
    for _ in range(max_iter):
        mean = p @ x
        cov = (x * p[:, None]).T @ x - np.outer(mean, mean)
        step = np.linalg.lstsq(cov, chosen_mean - mean, rcond=None)[0]
        for _ in range(50):
            new_value, new_p = loglik(theta + step)
            if new_value >= value - 1e-12:
                break
            step = step / 2
        theta, value, p = theta + step, new_value, new_p
        if np.max(np.abs(step)) < 1e-9:
            return theta, True
    return theta, False


@dataclass(frozen=True)
class LogisticFit:
    """A logistic regression: coefficients, their standard errors, z and two-sided normal p-values."""

    names: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    converged: bool  # False when the data separate (a coefficient runs off to infinity): read no p-value
    clusters: int | None  # the number of clusters behind cluster-robust errors; None: model-based errors

    @property
    def z(self) -> np.ndarray:
        return np.asarray(self.coef / self.se)

    @property
    def p(self) -> np.ndarray:
        return np.array([math.erfc(abs(z) / math.sqrt(2)) for z in self.z])

    def as_dict(self) -> dict[str, object]:
        return {"converged": self.converged, "clusters": self.clusters,
                "terms": {n: {"coef": float(c), "se": float(s), "z": float(z), "p": float(p)}
                          for n, c, s, z, p in zip(self.names, self.coef, self.se, self.z, self.p, strict=True)}}


def logistic_regression(x: np.ndarray, y: np.ndarray, names: Sequence[str], *,
                        clusters: Sequence[Hashable] | None = None, max_iter: int = 100,
                        start: np.ndarray | None = None) -> LogisticFit:
    """Maximum-likelihood logistic regression of y (0/1) on the columns of x (include a column of ones for an
    intercept), by Newton's method.

    With `clusters` (one label per row: the token a trial probed), the
    standard errors are cluster-robust: the sandwich A^-1 (sum_g s_g s_g') A^-1
    with s_g the score summed over cluster g, times G / (G - 1). Rows of one
    cluster are then not taken as independent (the templates of one token).
    `start`: the coefficients to start from (a bootstrap starts from the
    full sample's fit and converges in fewer steps).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    beta = np.zeros(x.shape[1]) if start is None else np.array(start, float)
    converged = False
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(x @ beta)))
        info = x.T @ (x * (p * (1 - p))[:, None])
        step = np.linalg.lstsq(info, x.T @ (y - p), rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            converged = bool(np.max(np.abs(beta)) < 30)  # beyond that the fitted odds are 1e13: separation
            break
    p = 1 / (1 + np.exp(-(x @ beta)))
    info_inv = np.linalg.pinv(x.T @ (x * (p * (1 - p))[:, None]))
    if clusters is None:
        return LogisticFit(tuple(names), beta, np.sqrt(np.diag(info_inv)), converged, None)
    labels = list(clusters)
    index = {c: i for i, c in enumerate(dict.fromkeys(labels))}
    scores = np.zeros((len(index), x.shape[1]))
    np.add.at(scores, [index[c] for c in labels], x * (y - p)[:, None])
    g = len(index)
    cov = info_inv @ (scores.T @ scores) @ info_inv * (g / (g - 1) if g > 1 else float("nan"))
    return LogisticFit(tuple(names), beta, np.sqrt(np.diag(cov)), converged, g)
