"""run_experiment: each part of the experiment in turn, its numbers in results.json, then the report."""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..model import Model
from ..reference import probs
from ..results import json_value
from . import report
from .analysis import Geometry, draw_statistics, group_statistics
from .geometry import (
    GGUF_NORMAL,
    Matrices,
    centroid_distances,
    read_matrices,
    reference_tokens,
    top_candidates,
    undertrained_indicator,
)
from .probe import matched_controls, probe_tokens, probeable, summarize
from .stats import percentile_of_all

__all__ = ["DRAW_TEMPS", "run_experiment", "undertrained_candidates", "varied_prompts"]

SIDE_PROMPTS = ["Temperature is a concept", "The capital of France is", "Once upon a time", "def fibonacci(n):"]
SIDE_TEMPS = [0.001, -0.001, 1.0, -1.0]
DRAW_TEMPS = (-0.001, -0.1, -1.0, 0.001)  # each prompt's sweep; the first is the experiment's
SEED_CHECK_PROMPTS = 20  # prompts redrawn with another seed, to measure how deterministic T = -0.001 is
CANDIDATE_FRACTION = 0.02
_SUBJECTS = ["the ocean", "a violin", "quantum physics", "my grandmother", "the stock market", "a cat", "Mars",
             "democracy", "the internet", "a thunderstorm", "chess", "bread", "the Roman Empire", "a bicycle",
             "photosynthesis", "jazz", "a volcano", "friendship", "the moon", "a library"]
_TEMPLATES = ["Tell me about {}.", "{} is", "The history of {} begins", "Why do people love {}?",
              "A short poem about {}:", "Here is a fact about {}:", "I never understood {} until",
              "The problem with {} is", "Explain {} to a child.", "My favourite thing about {} is",
              "In the future, {} will", "Describe {} in one word:", "The best way to study {} is",
              "Scientists discovered that {}", "Q: What is {}?\nA:"]


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"negtemp experiment: {msg}", file=sys.stderr, flush=True)


class _Clock:
    """Seconds each part of the run took, for results.json."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.parts[part] = round(now - self._last, 2)
        self._last = now


def varied_prompts(n: int) -> list[str]:
    """n built-in prompts (subjects x templates), deterministic; at most 300 distinct."""
    all_prompts = [t.format(s) for t in _TEMPLATES for s in _SUBJECTS]
    return [all_prompts[i % len(all_prompts)] for i in range(n)]


def _text(m: Model, tok: int) -> str:
    return m.token_bytes(tok).decode("utf-8", errors="replace")


def _step_stats(step_logits: np.ndarray, tokens: np.ndarray) -> list[tuple[float, int]]:
    """(probability at T = 1, rank 1 = most likely) of each chosen token."""
    out = []
    for z, tok in zip(step_logits, tokens, strict=True):
        p = probs(z, 1.0)
        out.append((float(p[tok]), int((z > z[tok]).sum()) + 1))
    return out


def side_by_side(m: Model, out: Path, seed: int) -> list[dict[str, Any]]:
    """Part 1: continuations at T = +-0.001 and +-1, each token's probability and rank at T = 1."""
    side = []
    with open(out / "side_by_side.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "temp", "step", "token", "text", "prob_T1", "rank_T1"])
        for prompt in SIDE_PROMPTS:
            for t in SIDE_TEMPS:
                c = m.complete(prompt, t, seed=seed, n_predict=24, keep_logits=True)
                assert c.step_logits is not None
                stats = _step_stats(c.step_logits, c.tokens)
                for i, (tok, (p, r)) in enumerate(zip(c.tokens.tolist(), stats, strict=True)):
                    w.writerow([prompt, t, i, tok, _text(m, tok), p, r])
                side.append({"prompt": prompt, "temp": t, "text": c.text,
                             "median_rank": float(np.median([r for _, r in stats])) if stats else None,
                             "mean_log10_prob": float(np.mean([math.log10(max(p, 1e-300)) for p, _ in stats]))
                             if stats else None})
    return side


def draw_tokens(m: Model, prompts: list[str], n_tokens: int, seed: int, quiet: bool
                ) -> tuple[dict[float, list[np.ndarray]], int]:
    """Part 2: each prompt's draws at every DRAW_TEMPS temperature (one batched sweep a prompt, seed + i), and how
    many of the first SEED_CHECK_PROMPTS prompts draw other tokens at T = -0.001 with another seed."""
    draws: dict[float, list[np.ndarray]] = {t: [] for t in DRAW_TEMPS}
    for i, prompt in enumerate(prompts):
        for t, c in zip(DRAW_TEMPS, m.sweep(prompt, list(DRAW_TEMPS), n_predict=n_tokens, seed=seed + i),
                        strict=True):
            draws[t].append(c.tokens.astype(np.int64))
        if (i + 1) % 50 == 0 or i + 1 == len(prompts):
            _progress(f"[2/6] T = {', '.join(f'{t:g}' for t in DRAW_TEMPS)} over prompts: {i + 1}/{len(prompts)}",
                      quiet)
    changed = 0
    for i, prompt in enumerate(prompts[:SEED_CHECK_PROMPTS]):
        other = m.complete(prompt, DRAW_TEMPS[0], n_predict=n_tokens, seed=seed + i + 1_000_003).tokens
        changed += not np.array_equal(other, draws[DRAW_TEMPS[0]][i])
    return draws, changed


def undertrained_candidates(m: Model) -> np.ndarray:
    """The token ids part 3 calls under-trained candidates in m's output matrix (the probability view marks
    them): the top 2% of tokens by Land & Bartolo's indicator. Reads and dequantizes the matrix, and
    tokenizes the vocabulary to find the known-unused tokens: seconds for a small model."""
    mats = read_matrices(m.path)
    reference, _ = known_unused(m, mats.token_types)
    geometry, _ = matrix_geometry(mats.output, reference)
    return np.flatnonzero(geometry.candidate)


def matrix_geometry(w: np.ndarray, reference: np.ndarray) -> tuple[Geometry, dict[str, np.ndarray]]:
    """Norm and direction (both indicators) of every row, the candidates, as a Geometry and raw arrays."""
    norm = np.linalg.norm(w, axis=1).astype(np.float64)
    pc = undertrained_indicator(w, reference, "pc")
    centred = undertrained_indicator(w, reference, "mean")
    cand = np.zeros(w.shape[0], bool)
    cand[top_candidates(pc, reference, CANDIDATE_FRACTION)] = True
    ref = np.zeros(w.shape[0], bool)
    ref[reference] = True
    g = Geometry(percentile_of_all(norm), percentile_of_all(pc), cand, ref)
    return g, {"norm": norm, "indicator_pc": pc, "indicator_centred": centred}


def run_experiment(
    model: str | Path | Model | None = None,
    out: str | Path = "negtemp-report",
    *,
    n_prompts: int = 300,
    n_tokens: int = 16,
    n_probe: int = 50,
    n_boot: int = 1000,
    seed: int = 1,
    quiet: bool = False,
) -> Path:
    """Run every part of the experiment and write the report; returns the path of report.md.

    n_probe: tokens per group in the repetition probe; n_boot: bootstrap
    resamples behind each interval.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    own = not isinstance(model, Model)
    m = model if isinstance(model, Model) else Model(model, n_ctx=1024)
    t_start = time.perf_counter()
    clock = _Clock()
    results: dict[str, Any] = {"model": str(m.path), "n_vocab": m.n_vocab, "seed": seed,
                               "seconds_per_part": clock.parts}
    try:
        _progress(f"[1/6] side by side: {len(SIDE_PROMPTS)} prompts x {len(SIDE_TEMPS)} temperatures", quiet)
        results["side_by_side"] = side_by_side(m, out, seed)
        clock.lap("side by side")

        prompts = varied_prompts(n_prompts)
        draws, changed = draw_tokens(m, prompts, n_tokens, seed, quiet)
        counts = {t: Counter(np.concatenate(d).tolist()) for t, d in draws.items()}
        neg = counts[DRAW_TEMPS[0]]
        results["tokens"] = count_tokens(m, out, counts, len(prompts), n_tokens, changed)
        clock.lap("draws")

        _progress("[3/6] geometry: dequantizing the matrices, finding the known-unused tokens", quiet)
        mats = read_matrices(m.path)
        reference, results["reference"] = known_unused(m, mats.token_types)
        clock.lap("reference tokens")
        neg_ids = np.array(sorted(neg), np.int64)
        pos_ids = np.array(sorted(counts[DRAW_TEMPS[-1]]), np.int64)
        geometry, raw, results["geometry"] = token_geometry(m, out, mats, reference, neg, pos_ids, n_boot, seed)
        clock.lap("geometry")
        _progress(f"[4/6] statistics: {n_boot} bootstrap resamples of the prompts per number", quiet)
        results["draws"] = {f"{t:g}": draw_statistics(draws[t], geometry["output"], n_boot=n_boot, seed=seed)
                            for t in DRAW_TEMPS}
        clock.lap("statistics")

        _progress(f"[5/6] repetition probe: up to {n_probe} tokens per group and matched controls", quiet)
        results["repetition"] = repetition_probe(m, out, neg, geometry["output"], raw["output"]["indicator_pc"],
                                                 mats.token_types, n_probe, seed)
        clock.lap("repetition probe")

        _progress("[6/6] beta sweep", quiet)
        results["beta_sweep"] = beta_sweep(m)
        report.plots(out, m.path.name, results, geometry["output"], raw["output"], neg_ids, pos_ids, seed)
        clock.lap("beta sweep and plots")
    finally:
        if own:
            m.close()

    results["seconds"] = time.perf_counter() - t_start
    (out / "results.json").write_text(json.dumps(json_value(results), indent=1, ensure_ascii=False, allow_nan=False))
    path = out / "report.md"
    path.write_text(report.markdown(results))
    _progress(f"done in {results['seconds']:.0f} s: {path}", quiet)
    return path


def count_tokens(m: Model, out: Path, counts: dict[float, Counter[int]], n_prompts: int, n_tokens: int,
                 changed: int) -> dict[str, Any]:
    """token_counts.csv, and the summary of part 2 for results.json."""
    neg = counts[DRAW_TEMPS[0]]
    with open(out / "token_counts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["token", "text", *(f"count_T_{t:g}" for t in DRAW_TEMPS)])
        for tok in sorted(set().union(*counts.values()), key=lambda t: (-neg[t], t)):
            w.writerow([tok, _text(m, tok), *(counts[t][tok] for t in DRAW_TEMPS)])
    return {
        "prompts": n_prompts, "tokens_per_prompt": n_tokens,
        "generated": {f"{t:g}": int(sum(counts[t].values())) for t in DRAW_TEMPS},
        "distinct": {f"{t:g}": len(counts[t]) for t in DRAW_TEMPS},
        "seed_check": {"prompts": min(SEED_CHECK_PROMPTS, n_prompts), "changed": changed},
        "top_neg": [{"token": t, "text": _text(m, t), "count": c} for t, c in neg.most_common(20)],
    }


def known_unused(m: Model, types: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The reference tokens of the indicator, and how each rule contributed; ValueError if there are none."""
    ref = reference_tokens(m, types)
    ids = ref.ids
    if ids.size == 0:
        raise ValueError(f"{m.path.name} has no known-unused token (no unused or unused control token, none "
                         "unreachable): the under-trained indicator has nothing to compare with")
    return ids, {
        "rule": "GGUF type UNUSED, plus control tokens that no special id, end-of-generation token or the chat "
                "template uses, plus normal tokens whose text does not tokenize back to them",
        "unused_type": len(ref.unused_type), "unused_control": len(ref.unused_control),
        "unreachable": len(ref.unreachable), "total": int(ids.size),
        "examples": [{"token": int(t), "text": _text(m, int(t))} for t in ids[:20]],
    }


def token_geometry(m: Model, out: Path, mats: Matrices, reference: np.ndarray, neg: Counter[int],
                   pos_ids: np.ndarray, n_boot: int, seed: int
                   ) -> tuple[dict[str, Geometry], dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Part 3 for each matrix (the output one; the input one too when untied): the groups' norm and direction,
    the candidates (candidates_<matrix>.csv), and the old centroid measures for comparison."""
    neg_ids = np.array(sorted(neg), np.int64)
    euclid, cosine = centroid_distances(mats.output)
    np.save(out / "centroid_distance_euclid.npy", euclid)
    matrices = {"output": mats.output} if mats.tied else {"output": mats.output, "input": mats.input}
    random_ids = np.random.default_rng(seed).choice(m.n_vocab, size=min(1000, m.n_vocab), replace=False)
    geometry: dict[str, Geometry] = {}
    raw: dict[str, dict[str, np.ndarray]] = {}
    summary: dict[str, Any] = {
        "tied_output": mats.tied, "n_embd": int(mats.output.shape[1]),
        "euclid_percentile_T<0_median": float(np.median(percentile_of_all(euclid)[neg_ids])),
        "cosine_percentile_T<0_median": float(np.median(percentile_of_all(cosine)[neg_ids])),
    }
    for name, matrix in matrices.items():
        g, arrays = matrix_geometry(matrix, reference)
        geometry[name], raw[name] = g, arrays
        cand_ids = np.flatnonzero(g.candidate)
        groups = {"T<0 tokens": neg_ids, "T>0 tokens": pos_ids, "random tokens": random_ids,
                  "under-trained candidates": cand_ids, "reference (unused)": reference}
        ranked = cand_ids[np.argsort(-arrays["indicator_pc"][cand_ids])]
        summary[name] = {
            "candidates": int(cand_ids.size),
            "top_candidates": [{"token": int(t), "text": _text(m, int(t)),
                                "indicator": float(arrays["indicator_pc"][t])} for t in ranked[:30]],
            "groups": group_statistics(groups, g, n_boot=n_boot, seed=seed),
        }
        with open(out / f"candidates_{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["token", "text", "indicator_pc", "indicator_centred", "norm", "count_T_-0.001"])
            for t in ranked.tolist():
                w.writerow([t, _text(m, t), arrays["indicator_pc"][t], arrays["indicator_centred"][t],
                            arrays["norm"][t], neg[t]])
    return geometry, raw, summary


def repetition_probe(m: Model, out: Path, neg: Counter[int], g: Geometry, indicator: np.ndarray,
                     types: np.ndarray, n_probe: int, seed: int) -> dict[str, Any]:
    """Part 5: the most drawn T < 0 tokens, the strongest under-trained candidates, and a matched control each."""
    def visible(ids: list[int]) -> list[int]:
        return [t for t in ids if types[t] == GGUF_NORMAL and probeable(_text(m, t))]

    anomalous = visible([t for t, _ in neg.most_common()])[:n_probe]
    ranked = np.flatnonzero(g.candidate)[np.argsort(-indicator[g.candidate])].tolist()
    candidates = visible([t for t in ranked if t not in neg])[:n_probe]
    exclude = set(neg) | set(np.flatnonzero(g.candidate).tolist())
    controls_neg, exact_neg = matched_controls(m, anomalous, exclude, types, seed)
    controls_cand, exact_cand = matched_controls(m, candidates, exclude | set(controls_neg), types, seed + 1)
    groups = {"T<0 tokens": anomalous, "T<0 controls": [c for c in controls_neg if c >= 0],
              "under-trained candidates": candidates, "candidate controls": [c for c in controls_cand if c >= 0]}
    trials = probe_tokens(m, groups)
    with open(out / "repetition_probe.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "token", "text", "template", "max_p", "repeated", "answer"])
        for tr in trials:
            w.writerow([tr.group, tr.token, tr.text, tr.template, tr.max_p, int(tr.repeated), tr.answer])
    summary = summarize(trials, {"T<0 tokens": "T<0 controls", "under-trained candidates": "candidate controls"})
    return {"groups": summary, "exact_matches": {"T<0 controls": int(sum(exact_neg)),
                                                 "candidate controls": int(sum(exact_cand))},
            "examples": [{"group": tr.group, "text": tr.text, "answer": tr.answer, "max_p": tr.max_p}
                         for tr in trials if tr.template == 0][:: max(1, len(trials) // 30)]}


def beta_sweep(m: Model) -> dict[str, list[float]]:
    """Part 6: entropy and expected T = 1 log-probability of the next token against beta = 1/T."""
    z = m.logits(m.tokenize(SIDE_PROMPTS[0]))[-1].astype(np.float64)
    logp1 = np.log(np.maximum(probs(z, 1.0), 1e-300))
    pos_betas = np.logspace(-3, 3, 61)
    betas = np.concatenate([-pos_betas[::-1], [0.0], pos_betas])
    entropy, exp_logp = [], []
    for b in betas:
        pb = probs(z, beta=float(b))
        nz = pb > 0
        entropy.append(float(-(pb[nz] * np.log(pb[nz])).sum()))
        exp_logp.append(float((pb[nz] * logp1[nz]).sum()))
    return {"beta": betas.tolist(), "entropy": entropy, "expected_logprob_T1": exp_logp}
