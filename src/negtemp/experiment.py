"""The negative-temperature experiment as a one-command report.

`negtemp experiment -m MODEL --out DIR` (or run_experiment()) writes
report.md, two PNG plots and the raw numbers (results.json, CSVs):

1. side by side: continuations at T = +-0.001 and +-1 for fixed prompts, with
   each chosen token's probability and rank under the model's distribution
   (T = 1) at that step;
2. which tokens T < 0 finds over a few hundred built-in prompts;
3. where those tokens sit relative to the centroid of the token embeddings
   (Euclidean and cosine), against tokens chosen at T > 0 and random tokens;
4. whether the model can repeat them when asked;
5. entropy and expected log-probability against beta = 1/T and against T.

Needs the `experiment` extra (gguf, matplotlib).
"""

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

from .model import Model
from .reference import probs

__all__ = ["centroid_distances", "embedding_matrix", "run_experiment", "varied_prompts"]

SIDE_PROMPTS = ["Temperature is a concept", "The capital of France is", "Once upon a time", "def fibonacci(n):"]
SIDE_TEMPS = [0.001, -0.001, 1.0, -1.0]
_SUBJECTS = ["the ocean", "a violin", "quantum physics", "my grandmother", "the stock market", "a cat", "Mars",
             "democracy", "the internet", "a thunderstorm", "chess", "bread", "the Roman Empire", "a bicycle",
             "photosynthesis", "jazz", "a volcano", "friendship", "the moon", "a library"]
_TEMPLATES = ["Tell me about {}.", "{} is", "The history of {} begins", "Why do people love {}?",
              "A short poem about {}:", "Here is a fact about {}:", "I never understood {} until",
              "The problem with {} is", "Explain {} to a child.", "My favourite thing about {} is",
              "In the future, {} will", "Describe {} in one word:", "The best way to study {} is",
              "Scientists discovered that {}", "Q: What is {}?\nA:"]
_REPEAT_TEMPLATES = ['Repeat the following string exactly: "{}"', 'Please say "{}" back to me.',
                     'Copy this word: {}']


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"negtemp experiment: {msg}", file=sys.stderr, flush=True)


def varied_prompts(n: int) -> list[str]:
    """n built-in prompts (subjects x templates), deterministic; at most 300 distinct."""
    all_prompts = [t.format(s) for t in _TEMPLATES for s in _SUBJECTS]
    return [all_prompts[i % len(all_prompts)] for i in range(n)]


def embedding_matrix(path: str | Path) -> tuple[np.ndarray, bool]:
    """(token embeddings dequantized to float32 [n_vocab, n_embd], whether the output layer is tied to them)."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    emb = tensors["token_embd.weight"]
    return np.asarray(dequantize(emb.data, emb.tensor_type), dtype=np.float32), "output.weight" not in tensors


def centroid_distances(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Euclidean distance, cosine distance) of every token embedding to the centroid of all of them."""
    c = emb.astype(np.float64).mean(axis=0)
    diff = emb - c.astype(np.float32)
    euclid = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    norms = np.linalg.norm(emb, axis=1).astype(np.float64) * np.linalg.norm(c)
    cosine = 1.0 - (emb @ c.astype(np.float32)).astype(np.float64) / np.where(norms > 0, norms, 1.0)
    return euclid, cosine


def _percentiles(values: np.ndarray) -> np.ndarray:
    """Percentile (0 = nearest the centroid) of every token's value among all tokens."""
    order = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return 100.0 * order / max(len(values) - 1, 1)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3:
        return float("nan")
    rx = np.argsort(np.argsort(x)).astype(np.float64)
    ry = np.argsort(np.argsort(y)).astype(np.float64)
    return float(np.corrcoef(rx, ry)[0, 1])


def _step_stats(step_logits: np.ndarray, tokens: np.ndarray) -> list[tuple[float, int]]:
    """(probability at T = 1, rank 1 = most likely) of each chosen token."""
    out = []
    for z, tok in zip(step_logits, tokens, strict=True):
        p = probs(z, 1.0)
        out.append((float(p[tok]), int((z > z[tok]).sum()) + 1))
    return out


def _token_text(m: Model, tok: int) -> str:
    return m.token_bytes(tok).decode("utf-8", errors="replace")


def run_experiment(
    model: str | Path | Model | None = None,
    out: str | Path = "negtemp-report",
    *,
    n_prompts: int = 300,
    n_tokens: int = 16,
    n_probe: int = 8,
    seed: int = 1,
    quiet: bool = False,
) -> Path:
    """Run every part of the experiment and write the report; returns the path of report.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    own = not isinstance(model, Model)
    m = model if isinstance(model, Model) else Model(model, n_ctx=1024)
    t_start = time.perf_counter()
    results: dict[str, Any] = {"model": str(m.path), "n_vocab": m.n_vocab}
    try:
        # 1. side by side
        _progress(f"[1/5] side by side: {len(SIDE_PROMPTS)} prompts x {len(SIDE_TEMPS)} temperatures", quiet)
        side = []
        with open(out / "side_by_side.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["prompt", "temp", "step", "token", "text", "prob_T1", "rank_T1"])
            for prompt in SIDE_PROMPTS:
                for t in SIDE_TEMPS:
                    c = m.complete(prompt, t, seed=seed, n_predict=24, keep_logits=True)
                    stats = _step_stats(c.step_logits, c.tokens)  # type: ignore[arg-type]
                    for i, (tok, (p, r)) in enumerate(zip(c.tokens.tolist(), stats, strict=True)):
                        w.writerow([prompt, t, i, tok, _token_text(m, tok), p, r])
                    side.append({"prompt": prompt, "temp": t, "text": c.text,
                                 "median_rank": float(np.median([r for _, r in stats])) if stats else None,
                                 "mean_log10_prob": float(np.mean([math.log10(max(p, 1e-300)) for p, _ in stats]))
                                 if stats else None})
        results["side_by_side"] = side

        # 2. which tokens T < 0 finds
        prompts = varied_prompts(n_prompts)
        neg: Counter[int] = Counter()
        pos: Counter[int] = Counter()
        n_generated = {"neg": 0, "pos": 0}
        for i, prompt in enumerate(prompts):
            cold, hot = m.sweep(prompt, [-0.001, 0.001], n_predict=n_tokens, seed=seed + i)
            neg.update(cold.tokens.tolist())
            pos.update(hot.tokens.tolist())
            n_generated["neg"] += cold.tokens.size
            n_generated["pos"] += hot.tokens.size
            if (i + 1) % 50 == 0 or i + 1 == len(prompts):
                _progress(f"[2/5] T = -0.001 and +0.001 over prompts: {i + 1}/{len(prompts)}", quiet)
        with open(out / "token_counts.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["token", "text", "count_T_minus_0.001", "count_T_plus_0.001"])
            for tok in sorted(set(neg) | set(pos), key=lambda t: (-neg[t], -pos[t], t)):
                w.writerow([tok, _token_text(m, tok), neg[tok], pos[tok]])
        top = neg.most_common(20)
        results["tokens"] = {
            "prompts": len(prompts), "generated": n_generated, "distinct_neg": len(neg), "distinct_pos": len(pos),
            "top_neg": [{"token": t, "text": _token_text(m, t), "count": c} for t, c in top],
        }

        # 3. centroid analysis
        _progress("[3/5] centroid analysis: dequantizing token embeddings", quiet)
        emb, tied = embedding_matrix(m.path)
        euclid, cosine = centroid_distances(emb)
        rng = np.random.default_rng(seed)
        random_ids = rng.integers(0, emb.shape[0], 1000).tolist()
        groups = {"T<0 tokens": sorted(neg), "T>0 tokens": sorted(pos), "random tokens": random_ids}
        pct_euclid, pct_cosine = _percentiles(euclid), _percentiles(cosine)
        cent: dict[str, Any] = {"tied_output": tied, "n_embd": int(emb.shape[1]), "groups": {}}
        for name, ids in groups.items():
            cent["groups"][name] = {
                "n": len(ids),
                "median_percentile_euclid": float(np.median(pct_euclid[ids])),
                "median_percentile_cosine": float(np.median(pct_cosine[ids])),
            }
        neg_ids = sorted(neg)
        cent["spearman_count_vs_euclid"] = _spearman(np.array([neg[t] for t in neg_ids]), euclid[neg_ids])
        cent["spearman_count_vs_cosine"] = _spearman(np.array([neg[t] for t in neg_ids]), cosine[neg_ids])
        nearest = np.argsort(euclid)[:10].tolist()
        cent["nearest_centroid"] = [
            {"token": t, "text": _token_text(m, t), "euclid": float(euclid[t])} for t in nearest
        ]
        cent["top_neg_percentiles"] = [
            {"token": t, "euclid_pct": float(pct_euclid[t]), "cosine_pct": float(pct_cosine[t])}
            for t, _ in top
        ]
        results["centroid"] = cent
        np.save(out / "centroid_distance_euclid.npy", euclid)
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for a, d, label in ((ax[0], euclid, "Euclidean"), (ax[1], cosine, "cosine")):
            a.hist(d, bins=100, density=True, color="0.75", label="all tokens")
            for name, ids in groups.items():
                if ids:
                    a.hist(d[ids], bins=50, density=True, histtype="step", linewidth=1.5, label=name)
            a.set_xlabel(f"{label} distance to the embedding centroid")
            a.set_ylabel("density")
        ax[0].legend(fontsize=8)
        fig.suptitle(f"{m.path.name}: tokens chosen at T = -0.001 vs the centroid")
        fig.tight_layout()
        fig.savefig(out / "centroid_hist.png", dpi=110)
        plt.close(fig)

        # 4. repetition probe
        _progress(f"[4/5] repetition probe: {n_probe} anomalous and {n_probe} control tokens", quiet)
        # only tokens with visible text can be asked for (control and unused tokens print as nothing)
        anomalous = [t for t, _ in neg.most_common() if _token_text(m, t).strip()][:n_probe]
        controls = []
        for tok in anomalous:
            for step in range(1, 200):
                cand = tok + step if tok + step < m.n_vocab else tok - step
                text = _token_text(m, cand).strip()
                if cand not in neg and text.isalpha() and cand not in controls:
                    controls.append(cand)
                    break
        probe = []
        for kind, ids in (("anomalous", anomalous), ("control", controls)):
            for t in ids:
                word = _token_text(m, t).strip() or _token_text(m, t)
                for tmpl in _REPEAT_TEMPLATES:
                    request = tmpl.format(word)
                    text = m.chat_prompt(request) or request + "\n"
                    toks = m.tokenize(text)
                    z = m.logits(toks)[-1]
                    target = m.tokenize(word, add_special=False)
                    p_first = float(probs(z, 1.0)[target[0]]) if target.size else float("nan")
                    answer = m.generate(text, 0.0, seed=0, n_predict=12)
                    probe.append({"kind": kind, "token": t, "word": word, "template": tmpl,
                                  "p_first_token": p_first, "greedy_answer": answer,
                                  "repeated": word in answer})
        results["repetition"] = {}
        for kind in ("anomalous", "control"):
            trials = [r for r in probe if r["kind"] == kind]
            results["repetition"][kind] = {
                "tokens": len(trials) // len(_REPEAT_TEMPLATES),
                "mean_p_first_token": float(np.mean([r["p_first_token"] for r in trials])) if trials else None,
                "repeat_rate": float(np.mean([r["repeated"] for r in trials])) if trials else None,
            }
        results["repetition"]["trials"] = probe

        # 5. beta sweep
        _progress("[5/5] beta sweep", quiet)
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
        results["beta_sweep"] = {"beta": betas.tolist(), "entropy": entropy, "expected_logprob_T1": exp_logp}
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        ax[0].plot(betas, entropy, label="entropy (nats)")
        ax[0].plot(betas, exp_logp, label="E[log p(token) at T=1]")
        ax[0].set_xscale("symlog", linthresh=1e-3)
        ax[0].set_xlabel("beta = 1/T")
        ax[0].axvline(0, color="0.6", linewidth=0.8)
        ax[0].legend(fontsize=8)
        nonzero = betas != 0
        temps = 1.0 / betas[nonzero]
        for neg_side in (temps < 0, temps > 0):
            ax[1].plot(temps[neg_side], np.array(entropy)[nonzero][neg_side], color="C0")
            ax[1].plot(temps[neg_side], np.array(exp_logp)[nonzero][neg_side], color="C1")
        ax[1].set_xscale("symlog", linthresh=1e-3)
        ax[1].set_xlabel("T (jumps at 0: greedy on one side, anti-greedy on the other)")
        fig.suptitle(f"{m.path.name}: next token after {SIDE_PROMPTS[0]!r}")
        fig.tight_layout()
        fig.savefig(out / "beta_sweep.png", dpi=110)
        plt.close(fig)
    finally:
        if own:
            m.close()

    results["seconds"] = time.perf_counter() - t_start
    (out / "results.json").write_text(json.dumps(_finite(results), indent=1, ensure_ascii=False, allow_nan=False))
    report = out / "report.md"
    report.write_text(_markdown(results))
    _progress(f"done in {results['seconds']:.0f} s: {report}", quiet)
    return report


def _finite(obj: Any) -> Any:
    """NaN and inf become None, so results.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _markdown(r: dict[str, Any]) -> str:
    c = r["centroid"]
    lines = [f"# Negative-temperature experiment: {Path(r['model']).name}", "",
             f"Vocabulary {r['n_vocab']:,} tokens; embeddings {c['n_embd']}-dimensional, "
             f"output layer {'tied to' if c['tied_output'] else 'separate from'} the token embeddings; "
             f"{r['seconds']:.0f} s.", "", "## 1. Side by side", "",
             "| prompt | T | continuation | median rank at T = 1 | mean log10 p |", "|---|---|---|---|---|"]
    for s in r["side_by_side"]:
        text = s["text"].replace("\n", "\\n").replace("|", "\\|")[:120]
        lines.append(f"| {s['prompt']} | {s['temp']:g} | `{text}` | {s['median_rank']} | "
                     f"{s['mean_log10_prob']:.1f} |")
    t = r["tokens"]
    lines += ["", "Per-token probabilities and ranks: `side_by_side.csv`.", "",
              "## 2. Which tokens T = -0.001 finds", "",
              f"{t['prompts']} prompts, {t['generated']['neg']} tokens at T = -0.001 ({t['distinct_neg']} distinct) "
              f"and {t['generated']['pos']} at T = +0.001 ({t['distinct_pos']} distinct).", "",
              "| token id | text | count |", "|---|---|---|"]
    for row in t["top_neg"]:
        lines.append(f"| {row['token']} | `{row['text']!r}` | {row['count']} |")
    lines += ["", "## 3. Distance to the embedding centroid", "",
              "Percentile 0 = nearest the centroid, 100 = farthest.", "",
              "| group | tokens | median percentile (Euclidean) | median percentile (cosine) |", "|---|---|---|---|"]
    for name, g in c["groups"].items():
        lines.append(
            f"| {name} | {g['n']} | {g['median_percentile_euclid']:.1f} | {g['median_percentile_cosine']:.1f} |"
        )
    lines += ["", f"Spearman rank correlation between a token's count at T = -0.001 and its distance: "
              f"{c['spearman_count_vs_euclid']:.3f} (Euclidean), {c['spearman_count_vs_cosine']:.3f} (cosine).", "",
              "Nearest the centroid: " + ", ".join(f"`{n['text']!r}`" for n in c["nearest_centroid"]), "",
              "![distances](centroid_hist.png)", "", "## 4. Can the model repeat them?", "",
              "Controls are tokens with neighbouring ids (BPE ids roughly follow frequency) that T < 0 never "
              "chose.", "",
              "| tokens | mean p(first token of the word) at the answer | greedy answer contains the word |",
              "|---|---|---|"]
    for kind in ("anomalous", "control"):
        rep = r["repetition"][kind]
        if rep["mean_p_first_token"] is not None:
            lines.append(
                f"| {rep['tokens']} {kind} | {rep['mean_p_first_token']:.4f} | {100 * rep['repeat_rate']:.0f}% |"
            )
    lines += ["", "Trials with each template and answer: `results.json`.", "", "## 5. beta = 1/T is continuous", "",
              "![beta sweep](beta_sweep.png)", ""]
    return "\n".join(lines)
