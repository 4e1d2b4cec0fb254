"""The headline numbers of the experiment, from the draws, the teacher-forced argmins and the token geometry.

Two measures of what T < 0 picks:

- **teacher-forced** (primary): the argmin of the logits at every position
  of a natural-text corpus, so every context is real text; resampled by
  corpus window;
- **free-running draws** (secondary): 16 tokens drawn at T < 0 after each
  built-in prompt, where every token after the first follows the model's own
  anti-greedy text; the prompts are a templates x subjects grid, and the
  crossed bootstrap resamples both factors.

Numbers are means and shares above thresholds, not medians (percentiles of
tokens drawn hundreds of times tie, and a median of ties has an interval of
width zero). Every share of candidates is given twice: of all draws, and of
the draws that are not reference tokens. Numbers over the distinct tokens
have no interval (see _points).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .geometry import top_candidates
from .stats import (
    RankedScore,
    auc,
    bootstrap_cis,
    choice_model,
    crossed_bootstrap_cis,
    half_sample_cis,
    logistic_regression,
)

__all__ = [
    "DETECTORS", "NEIGHBOURS", "STATS", "VARIANTS", "Baseline", "Geometry", "detector_comparison",
    "draw_statistics", "indicator_table", "null_expectations", "teacher_statistics", "variant_tokens",
    "vocabulary_regression",
]

VARIANTS = ("all draws", "each token once per prompt", "first token per prompt", "distinct tokens")
STATS = ("mean norm percentile", "mean direction percentile", "share norm percentile >= 90",
         "share direction percentile >= 90", "share candidates of all", "share candidates of non-reference",
         "share reference", "share in the context-free bottom 2%", "share in the cross-fitted bottom 2%",
         "mean first-PC percentile")
NEIGHBOURS = 10  # the norm-matched null: each picked token's nearest unpicked tokens by norm


@dataclass(frozen=True)
class Geometry:
    """Per-token measures of one matrix (the unembedding, or the embedding of an untied model)."""

    norm_pct: np.ndarray  # percentile of the row's norm among all rows
    direction_pct: np.ndarray  # percentile of the under-trained indicator (100: most like the unused tokens)
    pc1_pct: np.ndarray  # percentile of the row's coordinate on the first principal component the indicator removes
    candidate: np.ndarray  # bool: an under-trained candidate
    reference: np.ndarray  # bool: a known-unused reference token


@dataclass(frozen=True)
class Baseline:
    """The context-free bottom 2% of u_i . h_mean: over the same contexts as the picks it is set against, and
    cross-fitted (unit k's picks against h_mean of the other half of the units, by parity of k)."""

    same: np.ndarray  # bool over the vocabulary
    other_half: tuple[np.ndarray, np.ndarray]  # bool over the vocabulary: from the odd units, from the even ones

    def cross_fitted(self, unit: int) -> np.ndarray:
        return self.other_half[unit % 2]


def variant_tokens(draws: Sequence[np.ndarray], variant: str) -> np.ndarray:
    """The token ids a variant counts, from per-prompt draws."""
    if not draws:
        return np.zeros(0, np.int64)
    if variant == "all draws":
        return np.concatenate(draws)
    if variant == "each token once per prompt":
        return np.concatenate([np.unique(d) for d in draws])
    if variant == "first token per prompt":
        return np.array([d[0] for d in draws if d.size], np.int64)
    if variant == "distinct tokens":
        return np.unique(np.concatenate(draws))
    raise ValueError(f"unknown variant {variant!r}")


def _numbers(tokens: np.ndarray, g: Geometry, baseline: Baseline, cross_fitted: np.ndarray | None) -> list[float]:
    """STATS of the picked tokens; cross_fitted: whether each is in its own unit's cross-fitted bottom 2% (None for
    distinct tokens, which belong to no one unit)."""
    if tokens.size == 0:
        return [float("nan")] * len(STATS)
    regular = tokens[~g.reference[tokens]]
    return [
        float(g.norm_pct[tokens].mean()),
        float(g.direction_pct[tokens].mean()),
        float((g.norm_pct[tokens] >= 90).mean()),
        float((g.direction_pct[tokens] >= 90).mean()),
        float(g.candidate[tokens].mean()),
        float(g.candidate[regular].mean()) if regular.size else float("nan"),
        float(g.reference[tokens].mean()),
        float(baseline.same[tokens].mean()),
        float(cross_fitted.mean()) if cross_fitted is not None else float("nan"),
        float(g.pc1_pct[tokens].mean()),
    ]


def _points(values: list[float]) -> dict[str, list[float]]:
    """STATS without an interval: a resample repeats units and so sees fewer distinct tokens, which biases every
    number over distinct tokens (the interval need not even hold the point)."""
    return {name: [v, float("nan"), float("nan")] for name, v in zip(STATS, values, strict=True)}


def _unit_numbers(per_unit: Sequence[np.ndarray], g: Geometry, baseline: Baseline
                  ) -> Callable[[Sequence[int]], list[float]]:
    """STATS of the picks of the units (indices into per_unit) a resample holds."""
    def numbers(units: Sequence[int]) -> list[float]:
        if not units:
            return _numbers(np.zeros(0, np.int64), g, baseline, None)
        tokens = np.concatenate([per_unit[k] for k in units])
        crossed = np.concatenate([baseline.cross_fitted(k)[per_unit[k]] for k in units])
        return _numbers(tokens, g, baseline, crossed)

    return numbers


def _cells(factors: Sequence[tuple[Hashable, Hashable]]) -> dict[tuple[Hashable, Hashable], list[int]]:
    """The units (indices) of each (row, column) cell of a crossed design, for crossed_bootstrap_cis."""
    cells: dict[tuple[Hashable, Hashable], list[int]] = {}
    for k, f in enumerate(factors):
        cells.setdefault(f, []).append(k)
    return cells


def null_expectations(distinct: np.ndarray, g: Geometry, norm: np.ndarray) -> dict[str, float]:
    """How many of the distinct non-reference tokens picked would be candidates by chance, two ways: drawn
    uniformly from the non-reference vocabulary, and norm-matched: each picked token set against its NEIGHBOURS
    nearest unpicked non-reference tokens by norm (the null that Land & Bartolo's own argument calls for: a
    shared direction times the rows' norms alone would already favour some tokens). The match's balance: the
    standardized mean difference of the norms (picked - matched, over the pooled standard deviation; below 0.1
    reads as balanced) and the mean |norm-percentile gap|. p: observed against the matched expectation, a normal
    approximation with the variance of both the picked tokens' and the matched tokens' statuses."""
    regular = distinct[~g.reference[distinct]]
    pool = np.flatnonzero(~g.reference)
    out: dict[str, float] = {"observed": float(g.candidate[regular].sum()), "tokens": int(regular.size),
                             "uniform": float(regular.size * g.candidate[pool].mean())}
    unpicked = np.setdiff1d(pool, regular)
    if regular.size == 0 or unpicked.size < NEIGHBOURS:
        return out | {"norm-matched": float("nan")}
    order = unpicked[np.argsort(norm[unpicked], kind="stable")]
    pad = np.full(NEIGHBOURS, np.inf)  # sentinels, so the window round each picked token never leaves the array
    sorted_norm = np.r_[-pad, norm[order], pad]
    window = np.searchsorted(sorted_norm, norm[regular])[:, None] + np.arange(-NEIGHBOURS, NEIGHBOURS)[None, :]
    gap = np.abs(sorted_norm[window] - norm[regular][:, None])
    nearest = np.take_along_axis(window, np.argsort(gap, axis=1, kind="stable")[:, :NEIGHBOURS], axis=1)
    matches = order[nearest - NEIGHBOURS]  # [picked, NEIGHBOURS]
    rate = g.candidate[matches].mean(axis=1)
    # both sides vary: each picked token's status around its neighbours' rate, and each matched token's own, weighted
    # by how often it is used (matching with replacement reuses the tokens next to a dense run of picks)
    used = np.bincount(matches.ravel(), minlength=norm.size)
    weighted = np.bincount(matches.ravel(), weights=np.repeat(rate, NEIGHBOURS), minlength=norm.size)
    reused = used > 0
    local = weighted[reused] / used[reused]
    expected = float(rate.sum())
    variance = float((rate * (1 - rate)).sum() + ((used[reused] / NEIGHBOURS) ** 2 * local * (1 - local)).sum())
    pooled = math.sqrt((norm[regular].var() + norm[matches].var()) / 2)
    if variance > 0:
        p = math.erfc(abs(out["observed"] - expected) / math.sqrt(2 * variance))
    else:  # every neighbourhood all candidates or none: the null is one number
        p = float(out["observed"] == expected)
    return out | {
        "norm-matched": expected,
        "p observed vs norm-matched": p,
        "balance: norm standardized difference": float((norm[regular].mean() - norm[matches].mean()) / pooled)
        if pooled > 0 else 0.0,
        "balance: mean norm-percentile gap": float(np.abs(g.norm_pct[matches] - g.norm_pct[regular][:, None]).mean()),
    }


def draw_statistics(draws: Sequence[np.ndarray], factors: Sequence[tuple[Hashable, Hashable]], g: Geometry,
                    baseline: Baseline, norm: np.ndarray, *, n_boot: int, seed: int) -> dict[str, object]:
    """One temperature's free-running draws: STATS per variant as [value, 95% low, 95% high] from the crossed
    bootstrap over factors[i] = (template, subject) of prompt i; the nulls; the top-10 share."""
    out: dict[str, object] = {}
    per_prompt = {"all draws": list(draws), "each token once per prompt": [np.unique(d) for d in draws],
                  "first token per prompt": [d[:1] for d in draws]}
    cells = _cells(factors)
    for variant in VARIANTS:
        if variant == "distinct tokens":
            out[variant] = _points(_numbers(variant_tokens(draws, variant), g, baseline, None))
            continue
        cis = crossed_bootstrap_cis(cells, _unit_numbers(per_prompt[variant], g, baseline), n_boot=n_boot, seed=seed)
        out[variant] = {name: list(ci) for name, ci in zip(STATS, cis, strict=True)}
    distinct = variant_tokens(draws, "distinct tokens")
    out["candidates among distinct tokens"] = null_expectations(distinct, g, norm)
    counts = Counter(np.concatenate(draws).tolist()) if draws else Counter()
    total = sum(counts.values())
    out["top 10 share of draws"] = sum(c for _, c in counts.most_common(10)) / total if total else float("nan")
    out["distinct token count"] = int(distinct.size)
    out["distinct first tokens"] = int(np.unique(variant_tokens(draws, "first token per prompt")).size)
    return out


def teacher_statistics(argmins: Sequence[np.ndarray], g: Geometry, baseline: Baseline, norm: np.ndarray, *,
                       n_boot: int, seed: int) -> dict[str, object]:
    """The teacher-forced argmins, one array per corpus window: STATS over all positions and over the distinct
    tokens, with 95% intervals resampling windows; the nulls."""
    out: dict[str, object] = {}
    cis = bootstrap_cis(list(range(len(argmins))), _unit_numbers(argmins, g, baseline), n_boot=n_boot, seed=seed)
    out["all positions"] = {name: list(ci) for name, ci in zip(STATS, cis, strict=True)}
    distinct_ids = np.unique(np.concatenate(argmins))
    out["distinct tokens"] = _points(_numbers(distinct_ids, g, baseline, None))
    out["candidates among distinct tokens"] = null_expectations(distinct_ids, g, norm)
    out["distinct token count"] = int(distinct_ids.size)
    return out


def indicator_table(scores: Mapping[str, np.ndarray], reference: np.ndarray, reached: Mapping[str, np.ndarray],
                    cutoffs: Sequence[float]) -> dict[str, dict[str, object]]:
    """For each indicator variant: per cutoff, the share of each reached set's distinct non-reference tokens that
    are candidates by that variant and cutoff, and its enrichment over the cutoff; and the AUC of the variant's
    score for reached against unreached non-reference tokens (0.5: the score does not tell them apart)."""
    pool = np.setdiff1d(np.arange(next(iter(scores.values())).size), reference)
    out: dict[str, dict[str, object]] = {}
    for name, score in scores.items():
        row: dict[str, object] = {}
        for label, ids in reached.items():
            regular = np.setdiff1d(ids, reference)
            hit = np.zeros(score.size, bool)
            hit[regular] = True
            entry: dict[str, object] = {"auc": auc(score[pool][hit[pool]], score[pool][~hit[pool]])}
            for cut in cutoffs:
                cand = np.zeros(score.size, bool)
                cand[top_candidates(score, reference, cut)] = True
                share = float(cand[regular].mean()) if regular.size else float("nan")
                entry[f"{100 * cut:g}%"] = {"share": share, "enrichment": share / cut}
            row[label] = entry
        out[name] = row
    return out


def vocabulary_regression(picks: Sequence[np.ndarray], norm: np.ndarray, direction: np.ndarray,
                          reference: np.ndarray, *, n_boot: int, seed: int,
                          factors: Sequence[tuple[Hashable, Hashable]] | None = None) -> dict[str, object]:
    """Norm against direction over the whole vocabulary (every non-reference token), for the picks of the units in
    `picks` (a window's argmins, a prompt's draws), two ways:

    - per pick, with intervals: a conditional logit of which token is picked, among all of them, on norm and
      direction together (each standardized, so the coefficients compare), and each one's AUC for the picked
      token against every other, averaged over picks. Both are smooth in the picks, so the intervals resample
      the units (the crossed bootstrap over `factors` where given): the contexts are the sample, not the tokens;
    - per distinct token, descriptive: a logistic regression of "picked at all" on the two, and each one's AUC.
      No interval: a resample holds fewer distinct units and so picks fewer distinct tokens, which biases any
      number over them; and no model-based p-value, which would take correlated tokens as independent.
    """
    pool = np.setdiff1d(np.arange(norm.size), reference)
    in_pool = np.zeros(norm.size, bool)
    in_pool[pool] = True

    def z(v: np.ndarray) -> np.ndarray:
        s = float(v[pool].std())
        return np.asarray((v[pool] - v[pool].mean()) / (s if s > 0 else 1.0))

    features = np.zeros((norm.size, 2))
    features[pool] = np.column_stack([z(norm), z(direction)])
    n = pool.size
    share_below = np.zeros((norm.size, 2))  # each token's AUC against every other token of the pool
    for j, v in enumerate((norm, direction)):
        share_below[pool, j] = (RankedScore(v[pool]).ranks - 1) / max(n - 1, 1)
    per_unit = [p[in_pool[p]] for p in picks]
    sums = np.array([[*features[p].sum(axis=0), *share_below[p].sum(axis=0), p.size] for p in per_unit])
    x = features[pool]
    full, _ = choice_model(x, sums[:, :2].sum(axis=0) / max(sums[:, 4].sum(), 1))

    def numbers(units: Sequence[int]) -> list[float]:
        total = sums[list(units)].sum(axis=0)
        if total[4] == 0:
            return [float("nan")] * 4
        theta, _ = choice_model(x, total[:2] / total[4], start=full)
        return [*theta, *(total[2:4] / total[4])]

    units = list(range(len(picks)))
    if factors is None:
        cis = bootstrap_cis(units, numbers, n_boot=n_boot, seed=seed)
    else:
        cis = crossed_bootstrap_cis(_cells(factors), numbers, n_boot=n_boot, seed=seed)
    hit = np.zeros(norm.size, bool)
    if per_unit:
        hit[np.concatenate(per_unit)] = True
    y = hit[pool]
    fit = logistic_regression(np.column_stack([np.ones(n), x]), y.astype(float), ("intercept", "norm", "direction"))
    return {"tokens": int(n), "picks": int(sums[:, 4].sum()), "reached": int(y.sum()),
            "per pick": {"coef norm (sd)": list(cis[0]), "coef direction (sd)": list(cis[1]),
                         "auc norm": list(cis[2]), "auc direction": list(cis[3])},
            "per distinct token": {"converged": fit.converged, "coef norm (sd)": float(fit.coef[1]),
                                   "coef direction (sd)": float(fit.coef[2]), "auc norm": auc(norm[pool][y],
                                                                                               norm[pool][~y]),
                                   "auc direction": auc(direction[pool][y], direction[pool][~y])}}


DETECTORS = ("T -> 0- picks (by count)", "bottom of u . h_mean", "largest norm")


def detector_comparison(argmins: Sequence[np.ndarray], window_mean_logits: np.ndarray, norm: np.ndarray,
                        truths: Mapping[str, tuple[np.ndarray, np.ndarray]], *, n_boot: int,
                        seed: int) -> dict[str, object]:
    """T -> 0- as a detector of under-trained tokens, against two as cheap: the bottom of the context-free ranking
    u_i . h_mean over the same windows, and the largest output rows by norm.

    truths: name -> (the tokens to find, the pool they are found in). Each
    detector returns as many tokens of the pool as T -> 0- picks there
    (k); precision at k is the share of them in the truth, the AUC ranks
    the whole pool by the detector's score (T -> 0-: how often a token is
    picked; ties count half). The intervals come from random halves of the
    windows (half_sample_cis: a bootstrap resample picks fewer distinct
    tokens, which would shift every number); the norms read no context, so
    the norm's AUC is a population value."""
    out: dict[str, object] = {}
    for truth, (positives, pool) in truths.items():
        is_true = np.isin(pool, positives)
        norm_rank = RankedScore(norm[pool])
        norm_order = pool[np.argsort(-norm[pool], kind="stable")]
        target = np.zeros(norm.size, bool)
        target[positives] = True

        def numbers(units: Sequence[int], pool: np.ndarray = pool, is_true: np.ndarray = is_true,
                    norm_rank: RankedScore = norm_rank, norm_order: np.ndarray = norm_order,
                    target: np.ndarray = target) -> list[float]:
            counts = np.bincount(np.concatenate([argmins[k] for k in units]), minlength=norm.size)[pool]
            mean_logits = window_mean_logits[list(units)].mean(axis=0, dtype=np.float64)[pool]
            k = int((counts > 0).sum())
            if k == 0:
                return [float("nan")] * 6
            low = pool[np.argpartition(mean_logits, k - 1)[:k]]
            return [float(is_true[counts > 0].mean()), float(target[low].mean()),
                    float(target[norm_order[:k]].mean()),
                    _count_auc(counts, is_true), RankedScore(-mean_logits).auc(is_true), norm_rank.auc(is_true)]

        cis = half_sample_cis(list(range(len(argmins))), numbers, n_rep=n_boot, seed=seed)
        k = int(np.isin(pool, np.concatenate(list(argmins))).sum())
        out[truth] = {"k": k, "truth": int(is_true.sum()), "pool": int(pool.size),
                      "precision at k": {d: list(cis[j]) for j, d in enumerate(DETECTORS)},
                      "auc": {d: list(cis[3 + j]) for j, d in enumerate(DETECTORS)}}
    return out


def _count_auc(counts: np.ndarray, positive: np.ndarray) -> float:
    """The AUC of a small-integer score (a pick count) for positive against the rest, ties counting half, by
    counting values instead of sorting the pool."""
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    top = int(counts.max()) + 1
    pos, neg = np.bincount(counts[positive], minlength=top), np.bincount(counts[~positive], minlength=top)
    below = np.cumsum(neg) - neg  # negatives with a smaller count than each value
    return float((pos * (below + neg / 2)).sum() / (n1 * n0))
