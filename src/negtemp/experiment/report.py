"""The experiment's plots and report.md, from its results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .analysis import VARIANTS, Geometry

__all__ = ["markdown", "plots"]

_BETA_TICKS = [-1e3, -1.0, -1e-3, 0.0, 1e-3, 1.0, 1e3]
_T_TICKS = [-1e3, -1.0, -1e-3, 1e-3, 1.0, 1e3]


def plots(out: Path, name: str, results: dict[str, Any], g: Geometry, raw: dict[str, np.ndarray],
          neg_ids: np.ndarray, pos_ids: np.ndarray, seed: int) -> None:
    """norm_direction.png, groups_hist.png and beta_sweep.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    n_vocab = raw["norm"].size
    background = rng.choice(n_vocab, size=min(20_000, n_vocab), replace=False)
    # drawn in this order, so the T<0 tokens lie on top
    groups = {"under-trained candidates": np.flatnonzero(g.candidate),
              "reference (known unused)": np.flatnonzero(g.reference),
              "T>0 tokens (distinct)": pos_ids, "T<0 tokens (distinct)": neg_ids}

    fig, ax = plt.subplots(figsize=(8, 6))
    ax.scatter(raw["indicator_pc"][background], raw["norm"][background], s=2, color="0.8",
               label=f"all tokens (sample of {background.size:,})", rasterized=True)
    for (label, ids), marker in zip(groups.items(), ("^", "x", "s", "o"), strict=True):
        if ids.size:
            ax.scatter(raw["indicator_pc"][ids], raw["norm"][ids], s=10, marker=marker, alpha=0.7,
                       label=f"{label}, n = {ids.size:,}")
    ax.set_xlabel("direction: cosine to the mean unused token (centred, first PC removed)")
    ax.set_ylabel("norm of the unembedding row")
    ax.set_title(f"{name}: direction and norm of each token's output row")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out / "norm_direction.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for a, key, label in ((axes[0], "norm_pct", "norm percentile"), (axes[1], "direction_pct",
                                                                    "direction percentile (100: most like unused)")):
        values = getattr(g, key)
        bins = np.linspace(0, 100, 41)  # the same bins for every group, so heights compare
        a.hist(values, bins=bins, density=True, color="0.8", label=f"all tokens, n = {values.size:,}")
        for group, ids in groups.items():
            if ids.size:
                a.hist(values[ids], bins=bins, density=True, histtype="step", linewidth=1.5,
                       label=f"{group}, n = {ids.size:,}")
        a.set_xlabel(label)
        a.set_ylabel("density")
        a.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{name}: where each group's distinct tokens sit among all tokens")
    fig.tight_layout()
    fig.savefig(out / "groups_hist.png", dpi=110)
    plt.close(fig)

    sweep = results["beta_sweep"]
    betas = np.array(sweep["beta"])
    entropy, exp_logp = np.array(sweep["entropy"]), np.array(sweep["expected_logprob_T1"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    axes[0].plot(betas, entropy, color="C0", label="entropy of the distribution (nats)")
    axes[0].plot(betas, exp_logp, color="C1", label="E[log p at T = 1] of the drawn token")
    axes[0].set_xscale("symlog", linthresh=1e-3)
    axes[0].set_xticks(_BETA_TICKS, ["-1e3", "-1", "-1e-3", "0", "1e-3", "1", "1e3"])
    axes[0].set_xlabel("beta = 1/T (continuous through 0, the uniform distribution)")
    nonzero = betas != 0
    temps = 1.0 / betas[nonzero]
    for i, side in enumerate((temps < 0, temps > 0)):
        axes[1].plot(temps[side], entropy[nonzero][side], color="C0", label="entropy" if i else None)
        axes[1].plot(temps[side], exp_logp[nonzero][side], color="C1", label="E[log p at T = 1]" if i else None)
    axes[1].set_xscale("symlog", linthresh=1e-3)
    axes[1].set_xticks(_T_TICKS, ["-1e3", "-1", "-1e-3", "1e-3", "1", "1e3"])
    axes[1].set_xlabel("T (jumps at 0: anti-greedy to the left, greedy to the right)")
    for a, where in zip(axes, ("center right", "center"), strict=True):  # where the curves leave room
        a.set_ylabel("nats")
        a.axvline(0, color="0.6", linewidth=0.8)
        a.legend(fontsize=8, loc=where)
    fig.suptitle(f"{name}: the next token after 'Temperature is a concept'")
    fig.tight_layout()
    fig.savefig(out / "beta_sweep.png", dpi=110)
    plt.close(fig)


def _ci(v: list[float] | None, digits: int = 1, scale: float = 1.0) -> str:
    if v is None or v[0] is None:
        return "n/a"
    point, lo, hi = (x * scale if x is not None else float("nan") for x in v)
    return f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _p(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2g}" if x >= 1e-4 else "< 1e-4")


def markdown(r: dict[str, Any]) -> str:
    """report.md: every number in results.json that the conclusions rest on, with its interval."""
    geo = r["geometry"]
    t = r["tokens"]
    ref = r["reference"]
    lines = [f"# Negative-temperature experiment: {Path(r['model']).name}", "",
             f"Vocabulary {r['n_vocab']:,} tokens; rows {geo['n_embd']}-dimensional; output layer "
             f"{'tied to' if geo['tied_output'] else 'separate from'} the token embeddings; seed {r['seed']}; "
             f"{r['seconds']:.0f} s. Intervals are 95% bootstrap intervals; for draws they resample prompts.", "",
             "## 1. Side by side", "",
             "| prompt | T | continuation | median rank at T = 1 | mean log10 p |", "|---|---|---|---|---|"]
    for s in r["side_by_side"]:
        text = s["text"].replace("\n", "\\n").replace("|", "\\|")[:120]
        lines.append(f"| {s['prompt']} | {s['temp']:g} | `{text}` | {s['median_rank']} | "
                     f"{s['mean_log10_prob']:.1f} |")
    lines += ["", "Per-token probabilities and ranks: `side_by_side.csv`.", "",
              "## 2. Which tokens negative temperatures draw", "",
              f"{t['prompts']} prompts x {t['tokens_per_prompt']} tokens at each temperature (one batched sweep a "
              f"prompt). With another seed, {t['seed_check']['changed']} of the first {t['seed_check']['prompts']} "
              "prompts draw different tokens at T = -0.001: the draws are nearly a function of the prompt.", "",
              "| T | distinct tokens | distinct first tokens | top 10 tokens' share of draws |", "|---|---|---|---|"]
    for temp, d in r["draws"].items():
        lines.append(f"| {temp} | {t['distinct'][temp]:,} | {d['distinct first tokens']} | "
                     f"{100 * d['top 10 share of draws']:.0f}% |")
    lines += ["", "Most drawn at T = -0.001:", "", "| token id | text | count |", "|---|---|---|"]
    for row in t["top_neg"]:
        lines.append(f"| {row['token']} | `{row['text']!r}` | {row['count']} |")
    lines += ["", "Counts at every temperature: `token_counts.csv`.", "",
              "## 3. Norm and direction", "",
              f"Known-unused reference tokens: {ref['total']:,} ({ref['unused_type']:,} of type UNUSED, "
              f"{ref['unused_control']:,} unused control tokens, {ref['unreachable']:,} unreachable by the "
              "tokenizer). "
              f"Rule: {ref['rule']}. Under-trained candidates: the 2% of the other tokens whose output row, centred "
              "and with its first principal component removed, points most nearly the way the reference tokens' "
              "mean does (Land & Bartolo's indicator). Norm percentile 100 = largest norm; direction percentile "
              "100 = most like the unused tokens.", ""]
    for name in ("output", "input"):
        if name not in geo:
            continue
        gm = geo[name]
        lines += [f"### The {'unembedding (output)' if name == 'output' else 'embedding (input)'} matrix", "",
                  "| group (distinct tokens) | n | median norm percentile | median direction percentile |",
                  "|---|---|---|---|"]
        for group, s in gm["groups"].items():
            if s["n"]:
                lines.append(f"| {group} | {s['n']:,} | {_ci(s['median norm percentile'])} | "
                             f"{_ci(s['median direction percentile'])} |")
        lines += ["", "Strongest candidates: " + ", ".join(f"`{c['text']!r}`" for c in gm["top_candidates"][:15])
                  + f" (all {gm['candidates']:,}: `candidates_{name}.csv`).", ""]
    lines += [f"For comparison with the first version of this report: the T<0 tokens' median percentile of "
              f"Euclidean distance to the centroid of the output rows is {geo['euclid_percentile_T<0_median']:.1f}, "
              f"and of uncentred cosine distance {geo['cosine_percentile_T<0_median']:.1f}.", "",
              "![direction and norm](norm_direction.png)", "", "![groups](groups_hist.png)", "",
              "## 4. The draws against the geometry", ""]
    lines += ["The variants weight the same draws differently: every draw, each token once per prompt, only each "
              "prompt's first token, or each distinct token once. An interval for the distinct tokens, and for the "
              "overlap count, leans low: a resample repeats some prompts and so sees fewer distinct tokens.", ""]
    for temp, d in r["draws"].items():
        lines += [f"### T = {temp}", "",
                  "| variant | median norm pct | median direction pct | share candidates | share reference | "
                  "candidates among distinct |", "|---|---|---|---|---|---|"]
        for v in VARIANTS:
            s = d[v]
            lines.append(f"| {v} | {_ci(s['median norm percentile'])} | {_ci(s['median direction percentile'])} | "
                         f"{_ci(s['share that are candidates'], 1, 100)}% | "
                         f"{_ci(s['share that are reference tokens'], 1, 100)}% | "
                         f"{_ci(s['candidates among distinct tokens'], 0)} |")
        sn, sd = d["spearman count vs norm"], d["spearman count vs direction"]
        lines += ["", f"{d['distinct non-reference tokens']} distinct non-reference tokens; by chance "
                  f"{d['chance overlap with candidates']:.1f} of them would be candidates. Spearman (ties "
                  f"averaged; permutation p) between a token's count and its norm: {sn['rho']:.3f} (p {_p(sn['p'])}),"
                  f" its direction: {sd['rho']:.3f} (p {_p(sd['p'])}); n = {sn['n']}, "
                  f"{sn['ties_in_count']} tokens share their count with another.", ""]
    rep = r["repetition"]
    lines += ["## 5. Can the model repeat them?", "",
              "Each token is placed in the request by its id, under three templates, and the model answers "
              "greedily. Score: the highest probability of the token over the answer; repeated: its text "
              "appears in the answer, ignoring case. Per token, the mean over templates; p: exact rank-sum "
              "test against the matched controls. Controls match on leading space, length, script, case, "
              f"letters only, and being a prefix of a longer token ({rep['exact_matches']['T<0 controls']} and "
              f"{rep['exact_matches']['candidate controls']} matched exactly, the rest on space, script and "
              "letters).", "",
              "| group | tokens | mean score | median score | repeated | max p < 0.001 | max p < 0.1 | p (score) "
              "| p (repeated) |", "|---|---|---|---|---|---|---|---|---|"]
    for group, s in rep["groups"].items():
        lines.append(f"| {group} | {s['tokens']} | {s['mean_max_p']:.3f} | {s['median_max_p']:.3g} | "
                     f"{100 * s['repeat_rate']:.0f}% | {100 * s['share_max_p_below_0.001']:.0f}% | "
                     f"{100 * s['share_max_p_below_0.1']:.0f}% | {_p(s.get('p_max_p_vs_controls'))} | "
                     f"{_p(s.get('p_repeat_vs_controls'))} |")
    lines += ["", "Every trial, with its answer: `repetition_probe.csv`.", "",
              "## 6. beta = 1/T is continuous", "", "![beta sweep](beta_sweep.png)", ""]
    return "\n".join(lines)
