"""The headline numbers of the experiment, from the draws and the token geometry, with their uncertainty.

Every number about draws comes with a 95% bootstrap interval that resamples
prompts (the draws of one prompt at T = -0.001 are nearly one outcome, not
many), in four variants: all draws (count-weighted), each token once per
prompt, the first token of each prompt only, and the distinct tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .stats import bootstrap_cis, spearman

__all__ = ["VARIANTS", "Geometry", "draw_statistics", "group_statistics", "variant_tokens"]

VARIANTS = ("all draws", "each token once per prompt", "first token per prompt", "distinct tokens")
_STATS = ("median norm percentile", "median direction percentile", "share that are candidates",
          "share that are reference tokens", "candidates among distinct tokens")


@dataclass(frozen=True)
class Geometry:
    """Per-token measures of one matrix (the unembedding, or the embedding of an untied model)."""

    norm_pct: np.ndarray  # percentile of the row's norm among all rows
    direction_pct: np.ndarray  # percentile of the under-trained indicator (100: most like the unused tokens)
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


def _numbers(tokens: np.ndarray, g: Geometry) -> list[float]:
    if tokens.size == 0:
        return [float("nan")] * len(_STATS)
    regular = tokens[~g.reference[tokens]]
    distinct = np.unique(regular)
    return [
        float(np.median(g.norm_pct[tokens])),
        float(np.median(g.direction_pct[tokens])),
        float(g.candidate[regular].mean()) if regular.size else float("nan"),
        float(g.reference[tokens].mean()),
        float(g.candidate[distinct].sum()),
    ]


def draw_statistics(draws: Sequence[np.ndarray], g: Geometry, *, n_boot: int, seed: int) -> dict[str, object]:
    """The headline numbers of one temperature's draws, each as [value, 95% low, 95% high], per variant.

    "share that are candidates" counts among draws that are not reference
    tokens; "candidates among distinct tokens" is the overlap of the distinct
    non-reference tokens with the candidate set, next to its chance
    expectation (the candidates' share of the non-reference vocabulary).
    """
    out: dict[str, object] = {}
    # each prompt reduced once to what its variant keeps, so a resample only joins them
    per_prompt = {"all draws": list(draws), "each token once per prompt": [np.unique(d) for d in draws],
                  "first token per prompt": [d[:1] for d in draws], "distinct tokens": list(draws)}
    for variant in VARIANTS:
        def numbers(ds: Sequence[np.ndarray], distinct: bool = variant == "distinct tokens") -> list[float]:
            tokens = np.concatenate(ds) if ds else np.zeros(0, np.int64)
            return _numbers(np.unique(tokens) if distinct else tokens, g)

        cis = bootstrap_cis(per_prompt[variant], numbers, n_boot=n_boot, seed=seed)
        out[variant] = {name: list(ci) for name, ci in zip(_STATS, cis, strict=True)}
    distinct = np.unique(np.concatenate(draws)) if draws else np.zeros(0, np.int64)
    regular = distinct[~g.reference[distinct]]
    pool = int((~g.reference).sum())
    out["distinct non-reference tokens"] = int(regular.size)
    out["chance overlap with candidates"] = float(regular.size * g.candidate.sum() / max(pool, 1))
    counts = Counter(np.concatenate(draws).tolist()) if draws else Counter()
    total = sum(counts.values())
    out["top 10 share of draws"] = sum(c for _, c in counts.most_common(10)) / total if total else float("nan")
    out["distinct first tokens"] = int(np.unique(variant_tokens(draws, "first token per prompt")).size)
    ids = np.array(sorted(counts), np.int64)
    count = np.array([counts[t] for t in ids.tolist()], float)
    for name, values in (("norm", g.norm_pct), ("direction", g.direction_pct)):
        rho, p = spearman(count, values[ids], seed=seed) if ids.size else (float("nan"), float("nan"))
        out[f"spearman count vs {name}"] = {"rho": rho, "p": p, "n": int(ids.size), "ties_in_count": int(
            sum(c for c in Counter(count.tolist()).values() if c > 1))}
    return out


def group_statistics(groups: dict[str, np.ndarray], g: Geometry, *, n_boot: int, seed: int) -> dict[str, object]:
    """Per token group: n, and median norm and direction percentiles with 95% intervals resampling tokens."""
    out: dict[str, object] = {}
    for name, ids in groups.items():
        ids = np.asarray(ids, np.int64)
        if ids.size == 0:
            out[name] = {"n": 0}
            continue
        cis = bootstrap_cis(list(ids), lambda u: [np.median(g.norm_pct[list(u)]), np.median(g.direction_pct[list(u)])],
                            n_boot=n_boot, seed=seed)
        out[name] = {"n": int(ids.size), "median norm percentile": list(cis[0]),
                     "median direction percentile": list(cis[1])}
    return out
