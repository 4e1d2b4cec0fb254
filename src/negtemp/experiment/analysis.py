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

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .geometry import top_candidates
from .stats import auc, bootstrap_cis, crossed_bootstrap_cis, logistic_regression

__all__ = [
    "STATS", "VARIANTS", "Geometry", "draw_statistics", "indicator_table", "null_expectations", "teacher_statistics",
    "variant_tokens", "vocabulary_regression",
]

VARIANTS = ("all draws", "each token once per prompt", "first token per prompt", "distinct tokens")
STATS = ("mean norm percentile", "mean direction percentile", "share norm percentile >= 90",
         "share direction percentile >= 90", "share candidates of all", "share candidates of non-reference",
         "share reference", "share in the context-free bottom 2%", "mean first-PC percentile")
NORM_BINS = 50  # the norm-matched null compares tokens within these norm-percentile bins


@dataclass(frozen=True)
class Geometry:
    """Per-token measures of one matrix (the unembedding, or the embedding of an untied model)."""

    norm_pct: np.ndarray  # percentile of the row's norm among all rows
    direction_pct: np.ndarray  # percentile of the under-trained indicator (100: most like the unused tokens)
    pc1_pct: np.ndarray  # percentile of the row's coordinate on the first principal component the indicator removes
    candidate: np.ndarray  # bool: an under-trained candidate
    reference: np.ndarray  # bool: a known-unused reference token


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


def _numbers(tokens: np.ndarray, g: Geometry, static_bottom: np.ndarray) -> list[float]:
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
        float(static_bottom[tokens].mean()),
        float(g.pc1_pct[tokens].mean()),
    ]


def _points(values: list[float]) -> dict[str, list[float]]:
    """STATS without an interval: a resample repeats units and so sees fewer distinct tokens, which biases every
    number over distinct tokens (the interval need not even hold the point)."""
    return {name: [v, float("nan"), float("nan")] for name, v in zip(STATS, values, strict=True)}


def null_expectations(distinct: np.ndarray, g: Geometry) -> dict[str, float]:
    """How many of the distinct non-reference tokens would be candidates by chance, two ways: drawn uniformly
    from the non-reference vocabulary, and drawn with the same norms (each token replaced by a random
    non-reference token of its norm-percentile bin). The second is the null that Land & Bartolo's own argument
    calls for: a shared direction times the rows' norms alone would already favour some tokens."""
    regular = distinct[~g.reference[distinct]]
    pool = ~g.reference
    bins = np.minimum((g.norm_pct * NORM_BINS / 100).astype(np.int64), NORM_BINS - 1)
    in_bin = np.bincount(bins[pool], minlength=NORM_BINS)
    cand_in_bin = np.bincount(bins[pool & g.candidate], minlength=NORM_BINS)
    rate = np.divide(cand_in_bin, in_bin, out=np.zeros(NORM_BINS), where=in_bin > 0)
    return {"observed": float(g.candidate[regular].sum()), "tokens": int(regular.size),
            "uniform": float(regular.size * g.candidate[pool].mean()),
            "norm-matched": float(rate[bins[regular]].sum())}


def draw_statistics(draws: Sequence[np.ndarray], factors: Sequence[tuple[Hashable, Hashable]], g: Geometry,
                    static_bottom: np.ndarray, *, n_boot: int, seed: int) -> dict[str, object]:
    """One temperature's free-running draws: STATS per variant as [value, 95% low, 95% high] from the crossed
    bootstrap over factors[i] = (template, subject) of prompt i; the nulls; the top-10 share."""
    out: dict[str, object] = {}
    per_prompt = {"all draws": list(draws), "each token once per prompt": [np.unique(d) for d in draws],
                  "first token per prompt": [d[:1] for d in draws], "distinct tokens": list(draws)}
    for variant in VARIANTS:
        cells: dict[tuple[Hashable, Hashable], list[np.ndarray]] = {}
        for f, d in zip(factors, per_prompt[variant], strict=True):
            cells.setdefault(f, []).append(d)

        def numbers(ds: Sequence[np.ndarray], distinct: bool = variant == "distinct tokens") -> list[float]:
            tokens = np.concatenate(ds) if ds else np.zeros(0, np.int64)
            return _numbers(np.unique(tokens) if distinct else tokens, g, static_bottom)

        if variant == "distinct tokens":
            out[variant] = _points(numbers(list(draws)))
            continue
        cis = crossed_bootstrap_cis(cells, numbers, n_boot=n_boot, seed=seed)
        out[variant] = {name: list(ci) for name, ci in zip(STATS, cis, strict=True)}
    distinct = variant_tokens(draws, "distinct tokens")
    out["candidates among distinct tokens"] = null_expectations(distinct, g)
    counts = Counter(np.concatenate(draws).tolist()) if draws else Counter()
    total = sum(counts.values())
    out["top 10 share of draws"] = sum(c for _, c in counts.most_common(10)) / total if total else float("nan")
    out["distinct token count"] = int(distinct.size)
    out["distinct first tokens"] = int(np.unique(variant_tokens(draws, "first token per prompt")).size)
    return out


def teacher_statistics(argmins: Sequence[np.ndarray], g: Geometry, static_bottom: np.ndarray, *, n_boot: int,
                       seed: int) -> dict[str, object]:
    """The teacher-forced argmins, one array per corpus window: STATS over all positions and over the distinct
    tokens, with 95% intervals resampling windows; the nulls."""
    out: dict[str, object] = {}
    for variant, distinct in (("all positions", False), ("distinct tokens", True)):
        def numbers(ws: Sequence[np.ndarray], distinct: bool = distinct) -> list[float]:
            tokens = np.concatenate(ws) if ws else np.zeros(0, np.int64)
            return _numbers(np.unique(tokens) if distinct else tokens, g, static_bottom)

        if distinct:
            out[variant] = _points(numbers(list(argmins)))
            continue
        cis = bootstrap_cis(list(argmins), numbers, n_boot=n_boot, seed=seed)
        out[variant] = {name: list(ci) for name, ci in zip(STATS, cis, strict=True)}
    distinct_ids = np.unique(np.concatenate(argmins))
    out["candidates among distinct tokens"] = null_expectations(distinct_ids, g)
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


def vocabulary_regression(reached: np.ndarray, norm: np.ndarray, direction: np.ndarray,
                          reference: np.ndarray) -> dict[str, object]:
    """Over every non-reference token, reached or not: a logistic regression of "reached at T < 0" on the row's
    norm and direction together (each standardized, so the coefficients compare), and each one's AUC alone."""
    pool = np.setdiff1d(np.arange(norm.size), reference)
    y = np.isin(pool, reached).astype(float)

    def z(v: np.ndarray) -> np.ndarray:
        s = float(v[pool].std())
        return np.asarray((v[pool] - v[pool].mean()) / (s if s > 0 else 1.0))

    x = np.column_stack([np.ones(pool.size), z(norm), z(direction)])
    fit = logistic_regression(x, y, ("intercept", "norm (sd)", "direction (sd)"))
    return {"tokens": int(pool.size), "reached": int(y.sum()), "model": fit.as_dict(),
            "auc norm": auc(norm[pool][y == 1], norm[pool][y == 0]),
            "auc direction": auc(direction[pool][y == 1], direction[pool][y == 0])}
