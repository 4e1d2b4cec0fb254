"""run_experiment: each part of the experiment in turn, its numbers in results.json, then the report."""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from ..batching import Request
from ..config import SamplingConfig
from ..model import Model
from ..reference import probs
from ..results import json_value
from . import report
from .analysis import (
    Baseline,
    Geometry,
    detector_comparison,
    draw_statistics,
    indicator_table,
    teacher_statistics,
    vocabulary_regression,
)
from .cone import argmin_tokens, cone_reach, row_groups
from .corpus import TeacherForced, cone_positions, corpus_windows, outside_cone, strict_picks, teacher_forced
from .geometry import (
    GGUF_NORMAL,
    INDICATORS,
    Matrices,
    centroid_distances,
    first_component,
    indicator_variant,
    read_matrices,
    reference_tokens,
    top_candidates,
    undertrained_indicator,
)
from .repetition import VERIFIED_BELOW, interaction, matched_controls, probe_tokens, probeable, summarize
from .stats import auc, percentile_of_all, wilson_interval

__all__ = ["DRAW_TEMPS", "prompt_factors", "run_experiment", "undertrained_candidates", "varied_prompts"]

SIDE_PROMPTS = ["Temperature is a concept", "The capital of France is", "Once upon a time", "def fibonacci(n):"]
SIDE_TEMPS = [0.001, -0.001, 1.0, -1.0]
DRAW_TEMPS = (-0.001, -0.1, -1.0, 0.001)  # each prompt's sweep; the first is the experiment's
SEED_CHECK_PROMPTS = 20  # prompts redrawn with another seed, to measure how deterministic T = -0.001 is
CANDIDATE_FRACTION = 0.02
CUTOFFS = (0.01, 0.02, 0.05)  # the candidate fractions the indicator table compares
RANDOM_DIRECTIONS = 1024  # Gaussian hidden states: how much of the vocabulary is an argmin with no cone
CONE_STATES = 1024  # observed states (of the even windows) that span the cone
CONE_SECONDS = 60.0  # the time the cone may spend on each group and side; tokens left are undecided
STRONGEST = 30  # the strongest candidates by the indicator, each decided
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
    """n built-in prompts (templates x subjects, template-major), deterministic; at most 300 distinct."""
    return [_TEMPLATES[t].format(_SUBJECTS[s]) for t, s in prompt_factors(n)]


def prompt_factors(n: int) -> list[tuple[int, int]]:
    """(template, subject) of each of varied_prompts(n): the crossed design the bootstrap resamples."""
    cells = len(_TEMPLATES) * len(_SUBJECTS)
    return [divmod(i % cells, len(_SUBJECTS)) for i in range(n)]


class _CsvWriter:
    """csv.writer with NUL (a byte token's text, a model's answer) spelled \\x00: CSV readers refuse NUL,
    and so does Python 3.10's writer."""

    def __init__(self, f: IO[str]) -> None:
        self._w = csv.writer(f)

    def writerow(self, row: Sequence[object]) -> None:
        self._w.writerow([v.replace("\x00", "\\x00") if isinstance(v, str) else v for v in row])


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
        w = _CsvWriter(f)
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
                ) -> tuple[dict[float, list[np.ndarray]], np.ndarray, dict[str, Any]]:
    """Part 2: each prompt's draws at every DRAW_TEMPS temperature (seed + i), and the mean of the logits after
    every prompt, after the even ones and after the odd ones ([3, n_vocab]: u_i . h_mean, the context-free
    ranking, and its halves for cross-fitting), all in one Model.batch_requests;
    and the seed check at T = -0.001 on the first SEED_CHECK_PROMPTS prompts, as a batch of their own, one change
    at a time against it: another seed on the same path, the other path (complete(), one sequence) with the same
    seed, and the whole run's batch (other batch-mates) with the same seed."""
    requests = []
    for i, prompt in enumerate(prompts):
        requests += [Request(prompt, SamplingConfig(temp=t, seed=seed + i), n_predict=n_tokens) for t in DRAW_TEMPS]
        requests.append(Request(prompt, SamplingConfig(temp=1.0, seed=seed + i), n_predict=1, keep_logits=True))
    per_prompt = len(DRAW_TEMPS) + 1
    tokens: dict[int, np.ndarray] = {}
    total = np.zeros((2, m.n_vocab), np.float64)
    for done, (r, outcome) in enumerate(m.batch_requests(requests), 1):
        if isinstance(outcome, BaseException):
            raise outcome
        (c,) = outcome
        if r % per_prompt == len(DRAW_TEMPS):
            assert c.step_logits is not None
            total[(r // per_prompt) % 2] += c.step_logits[0]
        else:
            tokens[r] = c.tokens.astype(np.int64)
        if done % (50 * per_prompt) == 0 or done == len(requests):
            _progress(f"[2/8] T = {', '.join(f'{t:g}' for t in DRAW_TEMPS)} over prompts: {done // per_prompt}/"
                      f"{len(prompts)}", quiet)
    draws = {t: [tokens[i * per_prompt + k] for i in range(len(prompts))] for k, t in enumerate(DRAW_TEMPS)}
    checked = prompts[:SEED_CHECK_PROMPTS]

    def redraw(offset: int) -> list[np.ndarray]:
        """The checked prompts at T = -0.001 as one batch of their own, seed + i + offset."""
        batch = [Request(p, SamplingConfig(temp=DRAW_TEMPS[0], seed=seed + i + offset), n_predict=n_tokens)
                 for i, p in enumerate(checked)]
        out: dict[int, np.ndarray] = {}
        for r, outcome in m.batch_requests(batch):
            if isinstance(outcome, BaseException):
                raise outcome
            out[r] = outcome[0].tokens
        return [out[i] for i in range(len(checked))]

    same, new = redraw(0), redraw(1_000_003)
    alone = [m.complete(p, DRAW_TEMPS[0], n_predict=n_tokens, seed=seed + i).tokens for i, p in enumerate(checked)]

    def differ(a: list[np.ndarray], b: list[np.ndarray]) -> int:
        return sum(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    check = {"prompts": len(checked), "same path, new seed: differ": differ(new, same),
             "same path, new seed: first token differs": sum(bool(x.size and y.size and x[0] != y[0])
                                                             for x, y in zip(new, same, strict=True)),
             "other path (complete), same seed: differ": differ(alone, same),
             "whole batch, same seed: differ": differ(draws[DRAW_TEMPS[0]][: len(checked)], same)}
    halves = np.array([(len(prompts) + 1) // 2, len(prompts) // 2], np.float64)
    means = np.vstack([total.sum(axis=0) / max(len(prompts), 1), total / np.maximum(halves, 1)[:, None]])
    return draws, means, check


def undertrained_candidates(m: Model) -> np.ndarray:
    """The token ids the experiment calls under-trained candidates in m's output matrix (the probability view
    marks them): the top 2% of the other tokens by its variant of Land & Bartolo's indicator. Reads and
    dequantizes the matrix, and tokenizes the vocabulary to find the known-unused tokens: seconds for a small
    model."""
    mats = read_matrices(m.path)
    reference, _ = known_unused(m, mats.token_types)
    geometry, _ = matrix_geometry(mats.output, reference)
    return np.flatnonzero(geometry.candidate)


def matrix_geometry(w: np.ndarray, reference: np.ndarray) -> tuple[Geometry, dict[str, np.ndarray]]:
    """Norm, direction and first-PC coordinate of every row, and the candidates, as a Geometry and raw arrays."""
    norm = np.linalg.norm(w, axis=1).astype(np.float64)
    pc = undertrained_indicator(w, reference, "pc")
    pc1 = (w - w.mean(axis=0, dtype=np.float64).astype(np.float32)) @ first_component(w).astype(np.float32)
    cand = np.zeros(w.shape[0], bool)
    cand[top_candidates(pc, reference, CANDIDATE_FRACTION)] = True
    ref = np.zeros(w.shape[0], bool)
    ref[reference] = True
    g = Geometry(percentile_of_all(norm), percentile_of_all(pc), percentile_of_all(pc1.astype(np.float64)), cand, ref)
    return g, {"norm": norm, "indicator": pc, "pc1": pc1.astype(np.float64),
               "cutoff": float(np.min(pc[cand])) if cand.any() else float("nan")}


def bottom(scores: np.ndarray, fraction: float = CANDIDATE_FRACTION) -> np.ndarray:
    """A mask of the `fraction` of tokens with the lowest scores."""
    mask = np.zeros(scores.size, bool)
    mask[np.argsort(scores, kind="stable")[: max(1, round(fraction * scores.size))]] = True
    return mask


def run_experiment(
    model: str | Path | Model | None = None,
    out: str | Path = "negtemp-report",
    *,
    n_prompts: int = 300,
    n_tokens: int = 16,
    n_windows: int = 32,
    window: int = 128,
    n_probe: int = 30,
    n_cone: int = 200,
    n_boot: int = 1000,
    seed: int = 1,
    quiet: bool = False,
) -> Path:
    """Run every part of the experiment and write the report; returns the path of report.md.

    n_windows x window: the teacher-forced corpus; n_probe: tokens per group
    in the repetition probe; n_cone: candidates and reference tokens (each)
    whose cone reachability is decided (a random sample where there are more);
    n_boot: bootstrap resamples behind each interval.
    """
    for name, value in (("n_prompts (--prompts)", n_prompts), ("n_windows (--windows)", n_windows)):
        if value < 2:  # the context-free baseline is cross-fitted over two halves, and the cone holds half out
            raise ValueError(f"{name} must be at least 2 (two halves for cross-fitting), got {value}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    own = not isinstance(model, Model)
    m = model if isinstance(model, Model) else Model(model, n_ctx=1024)
    t_start = time.perf_counter()
    clock = _Clock()
    results: dict[str, Any] = {"model": str(m.path), "n_vocab": m.n_vocab, "seed": seed,
                               "seconds_per_part": clock.parts}
    try:
        _progress(f"[1/8] side by side: {len(SIDE_PROMPTS)} prompts x {len(SIDE_TEMPS)} temperatures", quiet)
        results["side_by_side"] = side_by_side(m, out, seed)
        clock.lap("side by side")

        prompts = varied_prompts(n_prompts)
        factors = prompt_factors(n_prompts)
        draws, prompt_logits, results["seed_check"] = draw_tokens(m, prompts, n_tokens, seed, quiet)
        counts = {t: Counter(np.concatenate(d).tolist()) for t, d in draws.items()}
        neg = counts[DRAW_TEMPS[0]]
        results["tokens"] = count_tokens(m, out, counts, len(prompts), n_tokens)
        clock.lap("draws")

        _progress("[3/8] geometry: dequantizing the matrices, finding the known-unused tokens", quiet)
        mats = read_matrices(m.path)
        reference, results["reference"] = known_unused(m, mats.token_types)
        clock.lap("reference tokens")
        geometry, raw, results["geometry"] = token_geometry(m, out, mats, reference, neg)
        g = geometry["output"]
        clock.lap("geometry")

        _progress(f"[4/8] teacher-forced: {n_windows} windows x {window} tokens of the corpus", quiet)
        windows, results["corpus"] = corpus_windows(m, n_windows, window)
        kept = cone_positions(windows, CONE_STATES)
        tf = teacher_forced(m, windows, keep=kept)
        clock.lap("teacher-forced")

        _progress(f"[5/8] statistics: {n_boot} bootstrap resamples per interval", quiet)
        norm = raw["output"]["norm"]
        tf_baseline = context_free(tf.mean_logits, tf.window_mean_logits[0::2].mean(axis=0),
                                   tf.window_mean_logits[1::2].mean(axis=0))
        results["teacher_forced"] = teacher_forced_statistics(m, tf, g, tf_baseline, norm, n_boot, seed)
        draw_baseline = context_free(*prompt_logits)
        results["draws"] = {f"{t:g}": draw_statistics(draws[t], factors, g, draw_baseline, norm, n_boot=n_boot,
                                                       seed=seed) for t in DRAW_TEMPS}
        tf_ids = np.unique(np.concatenate(tf.argmin))
        neg_ids = np.array(sorted(neg), np.int64)
        pos_ids = np.array(sorted(counts[DRAW_TEMPS[-1]]), np.int64)
        reached = {"teacher-forced argmins": tf_ids, "T = -0.001 draws": neg_ids}
        scores = {name: indicator_variant(name, mats.output, mats.input, reference) for name in INDICATORS}
        results["indicators"] = indicator_table(scores, reference, reached, CUTOFFS)
        direction = raw["output"]["indicator"]
        results["vocabulary_regression"] = {
            "teacher-forced argmins": vocabulary_regression(tf.argmin, norm, direction, reference, n_boot=n_boot,
                                                            seed=seed),
            "T = -0.001 draws": vocabulary_regression(draws[DRAW_TEMPS[0]], norm, direction, reference,
                                                      n_boot=n_boot, seed=seed, factors=factors)}
        everything = np.arange(m.n_vocab)
        results["detectors"] = detector_comparison(
            tf.argmin, tf.window_mean_logits, norm,
            {"under-trained candidates": (np.flatnonzero(g.candidate), np.setdiff1d(everything, reference)),
             "reference tokens (known unused)": (reference, everything)}, n_boot=n_boot, seed=seed)
        clock.lap("statistics")

        _progress(f"[6/8] cone reachability: up to {n_cone} candidates and {n_cone} reference tokens", quiet)
        results["cone"] = cone_analysis(mats, g, tf, kept, neg_ids, raw["output"]["indicator"], n_cone, seed)
        clock.lap("cone")

        _progress(f"[7/8] repetition probe: up to {n_probe} tokens per group and matched controls", quiet)
        results["repetition"] = repetition_probe(m, out, neg, tf_ids, g, raw["output"], mats, n_probe, seed)
        clock.lap("repetition probe")

        _progress("[8/8] beta sweep and plots", quiet)
        results["beta_sweep"] = beta_sweep(m, int(reference.size))
        report.plots(out, m.path.name, results, g, raw["output"], neg, Counter(np.concatenate(tf.argmin).tolist()),
                     pos_ids)
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


def count_tokens(m: Model, out: Path, counts: dict[float, Counter[int]], n_prompts: int,
                 n_tokens: int) -> dict[str, Any]:
    """token_counts.csv, and the summary of part 2 for results.json."""
    neg = counts[DRAW_TEMPS[0]]
    with open(out / "token_counts.csv", "w", newline="") as f:
        w = _CsvWriter(f)
        w.writerow(["token", "text", *(f"count_T_{t:g}" for t in DRAW_TEMPS)])
        for tok in sorted(set().union(*counts.values()), key=lambda t: (-neg[t], t)):
            w.writerow([tok, _text(m, tok), *(counts[t][tok] for t in DRAW_TEMPS)])
    return {
        "prompts": n_prompts, "tokens_per_prompt": n_tokens,
        "generated": {f"{t:g}": int(sum(counts[t].values())) for t in DRAW_TEMPS},
        "distinct": {f"{t:g}": len(counts[t]) for t in DRAW_TEMPS},
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


def _group_means(ids: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(v[ids].mean()) if ids.size else float("nan") for name, v in values.items()}


def token_geometry(m: Model, out: Path, mats: Matrices, reference: np.ndarray, neg: Counter[int]
                   ) -> tuple[dict[str, Geometry], dict[str, dict[str, Any]], dict[str, Any]]:
    """Part 3 for each matrix (the output one; the input one too when untied): norm, direction, candidates
    (candidates_<matrix>.csv), and the centroid measures of the original claim, which for an untied model are
    the input matrix's (the matrix the claim was about)."""
    neg_ids = np.array(sorted(neg), np.int64)
    matrices = {"output": mats.output} if mats.tied else {"output": mats.output, "input": mats.input}
    geometry: dict[str, Geometry] = {}
    raw: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {"tied_output": mats.tied, "n_embd": int(mats.output.shape[1])}
    for name, matrix in matrices.items():
        g, arrays = matrix_geometry(matrix, reference)
        geometry[name], raw[name] = g, arrays
        euclid, cosine = centroid_distances(matrix)
        np.save(out / f"centroid_distance_euclid_{name}.npy", euclid)
        cand_ids = np.flatnonzero(g.candidate)
        ranked = cand_ids[np.argsort(-arrays["indicator"][cand_ids])]
        pct = {"norm": g.norm_pct, "direction": g.direction_pct, "euclid to centroid": percentile_of_all(euclid),
               "uncentred cosine distance to centroid": percentile_of_all(cosine)}
        norm = arrays["norm"]
        summary[name] = {
            "candidates": int(cand_ids.size),
            "indicator cutoff": arrays["cutoff"],
            "norm range": [float(norm.min()), float(np.percentile(norm, 1)), float(np.percentile(norm, 99)),
                           float(norm.max())],
            "norm coefficient of variation": float(norm.std() / norm.mean()),
            "top_candidates": [{"token": int(t), "text": _text(m, int(t)),
                                "indicator": float(arrays["indicator"][t])} for t in ranked[:30]],
            "mean percentiles": {"T<0 tokens (distinct)": _group_means(neg_ids, pct),
                                 "under-trained candidates": _group_means(cand_ids, pct),
                                 "reference (unused)": _group_means(reference, pct),
                                 "all tokens": _group_means(np.arange(norm.size), pct)},
            "indicator of T<0 candidates": _quantiles(arrays["indicator"][np.intersect1d(neg_ids, cand_ids)]),
            "indicator of all candidates": _quantiles(arrays["indicator"][cand_ids]),
        }
        with open(out / f"candidates_{name}.csv", "w", newline="") as f:
            w = _CsvWriter(f)
            w.writerow(["token", "text", "indicator", "norm", "count_T_-0.001"])
            for t in ranked.tolist():
                w.writerow([t, _text(m, t), arrays["indicator"][t], arrays["norm"][t], neg[t]])
    return geometry, raw, summary


def _quantiles(v: np.ndarray) -> dict[str, float]:
    if v.size == 0:
        return {"n": 0}
    q = np.percentile(v, [0, 25, 50, 75, 100])
    return {"n": int(v.size), "min": float(q[0]), "q1": float(q[1]), "median": float(q[2]), "q3": float(q[3]),
            "max": float(q[4])}


def context_free(same: np.ndarray, even: np.ndarray, odd: np.ndarray) -> Baseline:
    """The context-free bottom 2% of the mean logits: over the contexts of every unit, and cross-fitted (an even
    unit's picks against the odd units' mean, and the reverse)."""
    return Baseline(bottom(same), (bottom(odd), bottom(even)))


def teacher_forced_statistics(m: Model, tf: TeacherForced, g: Geometry, baseline: Baseline, norm: np.ndarray,
                              n_boot: int, seed: int) -> dict[str, Any]:
    """Part 5's primary measure: the argmins over natural text, against the context-free bottom 2% of the mean
    logits (u_i . h_mean: the ranking no context changes), over the same windows and cross-fitted."""
    stats = teacher_statistics(tf.argmin, g, baseline, norm, n_boot=n_boot, seed=seed)
    common = Counter(np.concatenate(tf.argmin).tolist()).most_common(10)
    stats.update({
        "positions": tf.positions,
        "unique argmin share": float(np.concatenate(tf.argmin_unique).mean()),
        "most common argmins": [{"token": t, "text": _text(m, t), "positions": c} for t, c in common],
    })
    return stats


def cone_analysis(mats: Matrices, g: Geometry, tf: TeacherForced, kept: Callable[[int], slice], neg_ids: np.ndarray,
                  indicator: np.ndarray, n_cone: int, seed: int) -> dict[str, Any]:
    """Part 6: which tokens some hidden state in the cone of the observed ones makes the strict argmin (T -> 0-)
    or argmax (T -> 0+). The cone is spanned by the states `kept` names (in the even windows); the odd windows
    are held out, and a token certified unreachable should never be their strict argmin, nor at any other
    position outside the cone. Decided for the strongest candidates and the reference tokens (populations, where
    they fit in n_cone) and a random sample of n_cone candidates."""
    assert tf.kept is not None
    rng = np.random.default_rng(seed)
    w, bias = mats.output, mats.bias
    groups = row_groups(w, bias)
    tf_min, tf_max = np.unique(np.concatenate(tf.argmin)), np.unique(np.concatenate(tf.argmax))
    reached = np.union1d(tf_min, neg_ids)
    cand_ids = np.flatnonzero(g.candidate)
    strongest = cand_ids[np.argsort(-indicator[cand_ids], kind="stable")][:STRONGEST]
    sample = rng.permutation(cand_ids)[:n_cone]
    ref_ids = rng.permutation(np.flatnonzero(g.reference))[:n_cone]
    gaussian = rng.standard_normal((w.shape[1], RANDOM_DIRECTIONS)).astype(np.float32)
    random_min, random_unique = argmin_tokens(w, gaussian, bias)
    out: dict[str, Any] = {
        "cone states": int(tf.kept.shape[0]), "held-out windows": len(tf.argmin) // 2,
        "output bias": bias is not None,
        "reached": "a teacher-forced argmin or a T = -0.001 draw",
        "random directions": RANDOM_DIRECTIONS,
        "distinct argmins of random directions": int(np.unique(random_min[random_unique]).size),
    }
    for side in ("argmin", "argmax"):
        held, elsewhere = (strict_picks(tf, outside_cone(tf, kept, True), side),
                           strict_picks(tf, outside_cone(tf, kept), side))
        rows: dict[str, Any] = {}
        for label, ids in (("strongest candidates", strongest), ("candidates", sample), ("reference", ref_ids)):
            r = cone_reach(tf.kept, ids, groups=groups, bias=bias, side="min" if side == "argmin" else "max",
                           budget_seconds=CONE_SECONDS)
            population = ids.size == {"strongest candidates": strongest.size, "candidates": cand_ids.size,
                                      "reference": int(g.reference.sum())}[label]
            n_decided = int((r.status != "undecided").sum())
            reachable = int((r.status == "reachable").sum())
            row: dict[str, Any] = {
                "tokens": int(ids.size), "population": bool(population), **r.counts(),
                "by the linear program": int((r.method == "lp").sum()),
                "seen at an observed state": int((r.method == "observed").sum()),
                "sharing their row": int((r.ties > 0).sum()),
                "sharing their row, reachable as a tie": int(((r.ties > 0) & (r.tie_reachable == 1)).sum()),
                "reachable share": (reachable / n_decided if population and n_decided else
                                    list(wilson_interval(reachable, n_decided))),
                "certified unreachable yet a held-out argmin": int(np.isin(ids[r.status == "unreachable"],
                                                                           held).sum()),
                "certified unreachable yet an argmin outside the cone": int(np.isin(ids[r.status == "unreachable"],
                                                                                    elsewhere).sum()),
            }
            if side == "argmin":
                hit = np.isin(ids, reached)
                row["reached, of the reachable"] = int(hit[r.status == "reachable"].sum())
                row["reached, of the unreachable"] = int(hit[r.status == "unreachable"].sum())
            if label == "strongest candidates":
                row["each"] = [{"token": int(t), "status": str(st), "method": str(me)}
                               for t, st, me in zip(ids, r.status, r.method, strict=True)]
            rows[label] = row
        out[side] = rows
    out["argmin vs argmax over the corpus"] = {
        "argmin tokens": int(tf_min.size), "argmax tokens": int(tf_max.size),
        "shared": int(np.intersect1d(tf_min, tf_max).size),
        "candidates": [int(g.candidate[tf_min].sum()), int(g.candidate[tf_max].sum())],
        "auc norm, argmin vs argmax tokens": auc(g.norm_pct[tf_min], g.norm_pct[tf_max]),
    }
    return out


PROBE_CELLS = ("T<0 draws", "teacher-forced", "never reached")  # reached how, in the probe's 2x2 design


def repetition_probe(m: Model, out: Path, neg: Counter[int], tf_ids: np.ndarray, g: Geometry, raw: dict[str, Any],
                     mats: Matrices, n_probe: int, seed: int) -> dict[str, Any]:
    """Part 7: the 2x2 design reached at T < 0 x under-trained candidate, "reached" read two ways (drawn at
    T = -0.001; a teacher-forced argmin, the primary measure) against the tokens never reached (neither). Each
    cell is a random sample of up to n_probe probeable normal tokens (random: the most drawn or the strongest
    would confound reach with strength), and each token of every cell but the last (never reached, not a
    candidate: itself the baseline) gets a matched control."""
    types = mats.token_types
    rng = np.random.default_rng(seed)

    def sample(ids: np.ndarray) -> list[int]:
        """Up to n_probe of ids in random order that are normal, not reference tokens and can be asked for."""
        picked: list[int] = []
        for t in rng.permutation(ids).tolist():
            if len(picked) == n_probe:
                break
            if types[t] == GGUF_NORMAL and not g.reference[t] and probeable(_text(m, t)):
                picked.append(t)
        return picked

    drawn = np.zeros(m.n_vocab, bool)
    drawn[list(neg)] = True
    forced = np.zeros(m.n_vocab, bool)
    forced[tf_ids] = True
    reach = {"T<0 draws": drawn, "teacher-forced": forced, "never reached": ~(drawn | forced)}
    probed: dict[str, list[int]] = {}
    for how, mask in reach.items():
        probed[f"{how}: candidates"] = sample(np.flatnonzero(mask & g.candidate))
        probed[f"{how}: non-candidates"] = sample(np.flatnonzero(mask & ~g.candidate & ~g.reference))
    baseline_cell = "never reached: non-candidates"
    exclude = set(np.flatnonzero(drawn | forced | g.candidate).tolist()) | set(probed[baseline_cell])
    groups: dict[str, list[int]] = {}
    matching: dict[str, Any] = {}
    pairs: dict[str, list[tuple[int, int]]] = {}
    for name, ids in probed.items():
        groups[name] = ids
        if name == baseline_cell:
            continue
        match = matched_controls(m, ids, exclude, types, raw["norm"], mats.frequency_rank)
        exclude |= {c for c in match.controls if c >= 0}
        groups[f"{name}: controls"] = [c for c in match.controls if c >= 0]
        pairs[name] = [(t, c) for t, c in zip(ids, match.controls, strict=True) if c >= 0]
        matching[name] = {"same kind": int(sum(match.same_kind)), "of": len(ids),
                          "mean frequency-percentile gap": match.frequency_gap,
                          "mean norm-percentile gap": match.norm_gap}
    trials = probe_tokens(m, groups)
    with open(out / "repetition_probe.csv", "w", newline="") as f:
        w = _CsvWriter(f)
        w.writerow(["group", "token", "text", "template", "p_copy", "p_token", "repeated", "answer"])
        for tr in trials:
            w.writerow([tr.group, tr.token, tr.text, tr.template, tr.p, tr.p_token, int(tr.repeated), tr.answer])
    summary = summarize(trials, {name: f"{name}: controls" for name in pairs}, pairs)
    scores = {name: cast(list[float], summary[name]["scores"]) for name in probed if name in summary}
    design = {how: interaction(scores, (f"{how}: candidates", f"{how}: non-candidates"),
                               ("never reached: candidates", baseline_cell))
              for how in PROBE_CELLS[:2] if all(f"{h}: {c}" in scores for h in (how, "never reached")
                                                for c in ("candidates", "non-candidates"))}
    first = [tr for tr in trials if tr.template == 0 and not tr.group.endswith(": controls")]
    return {"groups": summary, "matching": matching, "frequency proxy": mats.frequency_source,
            "2x2 design": design, "cannot copy below": VERIFIED_BELOW,
            "population": {how: {"candidates": int((mask & g.candidate).sum()),
                                 "non-candidates": int((mask & ~g.candidate & ~g.reference).sum())}
                           for how, mask in reach.items()},
            "examples": [{"group": tr.group, "text": tr.text, "answer": tr.answer, "p": tr.p}
                         for tr in first if tr.group.endswith(": candidates")][:: max(1, len(first) // 40)]}


def beta_sweep(m: Model, n_reference: int) -> dict[str, Any]:
    """Part 8: entropy and expected T = 1 log-probability of the next token against beta = 1/T, with ln of the
    number of reference tokens (a flat bottom of that many near-equal logits shows as a plateau there)."""
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
    at = int(np.argmin(np.abs(betas + 1.0)))
    return {"beta": betas.tolist(), "entropy": entropy, "expected_logprob_T1": exp_logp,
            "ln reference tokens": math.log(n_reference), "entropy at beta -1": entropy[at]}
