"""The experiment's plots and report.md, from its results."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import DETECTORS, NEIGHBOURS, STATS, VARIANTS, Geometry
from .repetition import VERIFIED_BELOW

__all__ = ["markdown", "plots"]

_BETA_TICKS = [-1e3, -1.0, -1e-3, 0.0, 1e-3, 1.0, 1e3]
_T_TICKS = [-1e3, -1.0, -1e-3, 1e-3, 1.0, 1e3]


NEARLY_CONSTANT = 0.01  # a coefficient of variation of the norms below this: a norm axis would show nothing


def plots(out: Path, name: str, results: dict[str, Any], g: Geometry, raw: dict[str, Any], neg: Counter[int],
          forced: Counter[int], pos_ids: np.ndarray) -> None:
    """norm_direction.png (a strip plot of direction per group where the norms are nearly constant),
    beta_sweep.png and repetition_ecdf.png. neg: the T = -0.001 draws; forced: the teacher-forced argmins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = raw["norm"]
    if norm.std() / norm.mean() < NEARLY_CONSTANT:
        _direction_strips(plt, out, name, g, raw, neg, forced, pos_ids)
    else:
        _norm_direction(plt, out, name, g, raw, neg, forced, pos_ids)
    _beta_sweep(plt, out, name, results["beta_sweep"])
    _repetition_ecdf(plt, out, name, results["repetition"]["groups"])


def _norm_direction(plt: Any, out: Path, name: str, g: Geometry, raw: dict[str, Any], neg: Counter[int],
                    forced: Counter[int], pos_ids: np.ndarray) -> None:
    direction, norm = raw["indicator"], raw["norm"]
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.scatter(direction, norm, s=1, color="0.82", label=f"every token, n = {norm.size:,}", rasterized=True)
    cand = np.flatnonzero(g.candidate)
    ax.scatter(direction[cand], norm[cand], s=4, color="C0", label=f"under-trained candidates, n = {cand.size:,}",
               rasterized=True)
    ax.scatter(direction[pos_ids], norm[pos_ids], s=6, color="C2", marker="s",
               label=f"T = +0.001 tokens (distinct), n = {pos_ids.size:,}")
    ref = np.flatnonzero(g.reference)
    points = Counter(zip(direction[ref].round(6).tolist(), norm[ref].round(6).tolist(), strict=True))
    xs, ys = zip(*points, strict=True) if points else ((), ())
    ax.scatter(xs, ys, s=[20 + 4 * np.sqrt(c) for c in points.values()], marker="x", color="k",
               label=f"reference (known unused), n = {ref.size:,} at {len(points):,} points (size: tokens there)")
    for counts, colour, marker, label in ((forced, "C1", "D", "teacher-forced argmins (primary)"),
                                          (neg, "C3", "o", "T = -0.001 draws")):
        ids = np.array(sorted(counts), np.int64)
        sizes = 6 + 6 * np.sqrt([counts[t] for t in ids.tolist()])
        ax.scatter(direction[ids], norm[ids], s=sizes, marker=marker, facecolors="none", edgecolors=colour,
                   linewidths=0.8, label=f"{label} (distinct), n = {ids.size:,}; area: picks")
    ax.axvline(raw["cutoff"], color="C0", linestyle="--", linewidth=0.8, label="candidate cutoff (top 2%)")
    ax.set_ylim(0, float(norm.max()) * 1.05)  # from zero, so the spread of the norms reads at its true size
    ax.set_xlabel("direction: cosine to the mean unused row (centred, first PC removed)")
    ax.set_ylabel("norm of the output row")
    ax.set_title(f"{name}: direction and norm of every token's output row")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "norm_direction.png", dpi=110)
    plt.close(fig)


def _direction_strips(plt: Any, out: Path, name: str, g: Geometry, raw: dict[str, Any], neg: Counter[int],
                      forced: Counter[int], pos_ids: np.ndarray) -> None:
    """Direction per group, one row each, every token a jittered point: with constant norms the direction is all
    there is, and no group hides under another's markers."""
    direction = raw["indicator"]
    rows = [("every token", np.arange(direction.size)), ("under-trained candidates", np.flatnonzero(g.candidate)),
            ("reference (known unused)", np.flatnonzero(g.reference)),
            ("teacher-forced argmins (primary)", np.array(sorted(forced), np.int64)),
            ("T = -0.001 draws", np.array(sorted(neg), np.int64)), ("T = +0.001 draws", pos_ids)]
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (_, ids) in enumerate(rows):
        y = len(rows) - 1 - i + rng.uniform(-0.3, 0.3, ids.size)
        ax.scatter(direction[ids], y, s=1 if ids.size > 5000 else 4, color="0.6" if i == 0 else f"C{i - 1}",
                   alpha=0.5 if ids.size > 5000 else 0.8, rasterized=True)
    ax.set_yticks(range(len(rows)), [f"{label}\nn = {ids.size:,}" for label, ids in reversed(rows)], fontsize=8)
    ax.axvline(raw["cutoff"], color="C0", linestyle="--", linewidth=0.8)
    ax.text(raw["cutoff"], len(rows) - 0.45, " candidate cutoff (top 2%)", color="C0", fontsize=7, va="bottom")
    ax.set_xlabel("direction: cosine to the mean unused row (centred, first PC removed)")
    ax.set_title(f"{name}: direction of each group's output rows\n(the norms are nearly constant, so not shown)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "norm_direction.png", dpi=110)
    plt.close(fig)


def _beta_sweep(plt: Any, out: Path, name: str, sweep: dict[str, Any]) -> None:
    betas = np.array(sweep["beta"])
    entropy, exp_logp = np.array(sweep["entropy"]), np.array(sweep["expected_logprob_T1"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    axes[0].plot(betas, entropy, color="C0", label="entropy of the distribution (nats)")
    axes[0].plot(betas, exp_logp, color="C1", label="E[log p at T = 1] of the drawn token")
    axes[0].axhline(sweep["ln reference tokens"], color="0.5", linestyle=":", linewidth=1,
                    label=f"ln(reference tokens) = {sweep['ln reference tokens']:.2f}")
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


def _repetition_ecdf(plt: Any, out: Path, name: str, groups: dict[str, Any]) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, group in enumerate(g for g in groups if not g.endswith(": controls")):
        for label, key, style in ((group, group, "-"), (f"{group}: controls", f"{group}: controls", "--")):
            if key not in groups:
                continue
            v = np.sort(np.maximum(np.array(groups[key]["scores"]), 1e-12))
            ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", color=f"C{i}", linestyle=style,
                    label=f"{label} (n = {v.size})")
    ax.set_xscale("log")
    ax.set_xlabel("score: p(the copy spells the token), highest over three prompts (floored at 1e-12)")
    ax.set_ylabel("share of tokens scoring at most this")
    ax.axvline(VERIFIED_BELOW, color="0.4", linestyle=":", linewidth=1,
               label=f"{VERIFIED_BELOW:g}: below it, verified under-trained")
    ax.set_title(f"{name}: can the model repeat the token? (left: cannot)")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "repetition_ecdf.png", dpi=110)
    plt.close(fig)


def _ci(v: list[float] | None, digits: int = 1, scale: float = 1.0) -> str:
    if v is None or v[0] is None:
        return "n/a"
    point, lo, hi = (x * scale if x is not None else float("nan") for x in v)
    if point != point:
        return "n/a"
    if lo != lo:  # no interval (nan): the number is over distinct tokens, or nothing was resampled
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _p(x: float | None, floor: float | None = None) -> str:
    if x is None:
        return "n/a"
    if floor is not None and x <= floor:
        return f"<= {floor:.2g}"
    return f"{x:.2g}"


def _stats_table(title: str, rows: dict[str, dict[str, list[float]]]) -> list[str]:
    percent = {s for s in STATS if s.startswith("share")}
    lines = [f"| {title} | " + " | ".join(STATS) + " |", "|---" * (len(STATS) + 1) + "|"]
    for label, s in rows.items():
        cells = [(_ci(s[k], 1, 100) + "%").replace("n/a%", "n/a") if k in percent else _ci(s[k]) for k in STATS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def markdown(r: dict[str, Any]) -> str:
    """report.md: the numbers in results.json that the conclusions rest on, each with its interval."""
    geo, t, ref, tf = r["geometry"], r["tokens"], r["reference"], r["teacher_forced"]
    lines = [f"# Negative-temperature experiment: {Path(r['model']).name}", "",
             f"Vocabulary {r['n_vocab']:,} tokens; rows {geo['n_embd']}-dimensional; output layer "
             f"{'tied to' if geo['tied_output'] else 'separate from'} the token embeddings; seed {r['seed']}; "
             f"{r['seconds']:.0f} s. Intervals are 95%: for the teacher-forced measure, a bootstrap over corpus "
             "windows; for the draws, the crossed bootstrap over templates and subjects; for shares of tokens, "
             "Wilson intervals.", "",
             "## 1. Side by side", "",
             "| prompt | T | continuation | median rank at T = 1 | mean log10 p |", "|---|---|---|---|---|"]
    for s in r["side_by_side"]:
        text = s["text"].replace("\n", "\\n").replace("|", "\\|")[:120]
        lines.append(f"| {s['prompt']} | {s['temp']:g} | `{text}` | {s['median_rank']} | "
                     f"{s['mean_log10_prob']:.1f} |")
    sc = r["seed_check"]
    lines += ["", "## 2. Free-running draws", "",
              f"{t['prompts']} prompts x {t['tokens_per_prompt']} tokens at each temperature (one batch). Seed "
              f"check at T = -0.001 on {sc['prompts']} prompts, redrawn as a batch of their own: with another seed, "
              f"{sc['same path, new seed: differ']} draw other tokens ({sc['same path, new seed: first token differs']}"
              f" a different first token); with the same seed on the other path (complete()), "
              f"{sc['other path (complete), same seed: differ']} do, and in the whole run's batch "
              f"{sc['whole batch, same seed: differ']}.", "",
              "| T | distinct tokens | distinct first tokens | top 10 tokens' share of draws |", "|---|---|---|---|"]
    for temp, d in r["draws"].items():
        lines.append(f"| {temp} | {d['distinct token count']:,} | {d['distinct first tokens']} | "
                     f"{100 * d['top 10 share of draws']:.0f}% |")
    lines += ["", "Most drawn at T = -0.001: " + ", ".join(f"`{row['text']!r}` ({row['count']})"
                                                          for row in t["top_neg"][:10]), "",
              "## 3. Geometry", "",
              f"Reference tokens: {ref['total']:,} ({ref['unused_type']:,} of type UNUSED, {ref['unused_control']:,} "
              f"unused control tokens, {ref['unreachable']:,} unreachable by the tokenizer). Candidates: the 2% of "
              "the other tokens with the highest indicator (a variant of Land & Bartolo's: centred, first principal "
              "component removed, cosine to the reference tokens' mean row).", ""]
    for name in ("output", "input"):
        if name not in geo:
            continue
        gm = geo[name]
        lo, p1, p99, hi = gm["norm range"]
        lines += [f"### The {name} matrix", "",
                  f"Norms from {lo:.3g} to {hi:.3g} (1st-99th percentile {p1:.3g}-{p99:.3g}; coefficient of "
                  f"variation {gm['norm coefficient of variation']:.3f}).", "",
                  "| tokens | " + " | ".join(f"mean {k} percentile" for k in gm["mean percentiles"]["all tokens"])
                  + " |", "|---" * 5 + "|"]
        for group, vals in gm["mean percentiles"].items():
            lines.append(f"| {group} | " + " | ".join(f"{v:.1f}" for v in vals.values()) + " |")
        lines += ["", "Strongest candidates: " + ", ".join(f"`{c['text']!r}`" for c in gm["top_candidates"][:12]), ""]
    lines += ["![direction and norm](norm_direction.png)", "",
              "## 4. Teacher-forced: the argmin at every position of natural text (primary)", "",
              f"Corpus: {r['corpus']['name']}, {r['corpus']['windows']} windows of {r['corpus']['tokens_per_window']} "
              f"tokens (sha256 {r['corpus']['sha256_16']}...). {tf['positions']:,} positions; "
              f"{100 * tf['unique argmin share']:.1f}% have a unique argmin.", ""]
    lines += _stats_table("teacher-forced", {k: tf[k] for k in ("all positions", "distinct tokens")})
    lines += _nulls(tf["candidates among distinct tokens"])
    lines += ["", "## 5. The draws against the geometry (secondary)", ""]
    for temp, d in r["draws"].items():
        lines += [f"### T = {temp}", ""]
        lines += _stats_table("variant", {v: d[v] for v in VARIANTS})
        lines += [*_nulls(d["candidates among distinct tokens"]), ""]
    lines += ["### Every indicator variant, every cutoff", "",
              "| indicator | reached set | AUC | 1% | 2% | 5% |", "|---|---|---|---|---|---|"]
    for ind, row in r["indicators"].items():
        for label, e in row.items():
            cells = " | ".join(f"{100 * e[c]['share']:.1f}% ({e[c]['enrichment']:.1f}x)" for c in ("1%", "2%", "5%"))
            lines.append(f"| {ind} | {label} | {e['auc']:.3f} | {cells} |")
    lines += ["", "### The whole vocabulary: norm against direction", "",
              "Per pick: a conditional logit of which token is picked among all non-reference tokens, and each "
              "measure's AUC for the picked token against the rest, averaged over picks; intervals resample "
              "windows (teacher-forced) or templates and subjects (draws). Per distinct token (descriptive, no "
              "interval): a logistic regression of picked at all, and the AUCs.", "",
              "| picks | picks (distinct tokens) | coef norm (sd) | coef direction (sd) | AUC norm | AUC direction "
              "| distinct: coef norm, direction | distinct: AUC norm, direction |", "|---" * 8 + "|"]
    for label, v in r["vocabulary_regression"].items():
        e, d = v["per pick"], v["per distinct token"]
        lines.append(f"| {label} | {v['picks']:,} ({v['reached']:,} of {v['tokens']:,}) | "
                     f"{_ci(e['coef norm (sd)'], 2)} | {_ci(e['coef direction (sd)'], 2)} | {_ci(e['auc norm'], 3)} | "
                     f"{_ci(e['auc direction'], 3)} | {d['coef norm (sd)']:.2f}, {d['coef direction (sd)']:.2f} | "
                     f"{d['auc norm']:.3f}, {d['auc direction']:.3f} |")
    lines += ["", "### T -> 0- as a detector, against two as cheap", "",
              "Each detector returns k tokens (k: the distinct teacher-forced argmins in the pool); precision at k is "
              "the share of them in the truth; the AUC ranks the whole pool (T -> 0-: by how often a token is "
              "picked). Intervals: the spread over random halves of the windows; the norm reads no context.", "",
              "| truth (in pool) | k | detector | precision at k | AUC |", "|---|---|---|---|---|"]
    for truth, d in r["detectors"].items():
        for det in DETECTORS:
            lines.append(f"| {truth} ({d['truth']:,} of {d['pool']:,}) | {d['k']:,} | {det} | "
                         f"{_ci(d['precision at k'][det], 1, 100)}% | {_ci(d['auc'][det], 3)} |")
    c = r["cone"]
    lines += ["", "## 6. Cone reachability: which tokens the model's own hidden states can make the argmin", "",
              f"The cone of {c['cone states']:,} observed final hidden states (the even windows); "
              f"{c['held-out windows']} odd windows held out. Reached: {c['reached']}. Without the cone, "
              f"{c['random directions']:,} random Gaussian directions make "
              f"{c['distinct argmins of random directions']:,} distinct tokens the argmin.", "",
              "| side | tokens | decided | reachable | unreachable | undecided | reachable share | shared row "
              "(reachable as a tie) | unreachable yet a pick: held out, anywhere outside the cone | reached: of "
              "reachable, of unreachable |", "|---|---|---|---|---|---|---|---|---|---|"]
    for side in ("argmin", "argmax"):
        for label, x in c[side].items():
            share = x["reachable share"]
            share_text = (f"{100 * share:.1f}% (all)" if isinstance(share, float) else _ci(share, 1, 100) + "%")
            reached = (f"{x['reached, of the reachable']}, {x['reached, of the unreachable']}"
                       if "reached, of the reachable" in x else "")
            lines.append(f"| {side} | {label} ({x['tokens']:,}{'' if x['population'] else ', sampled'}) | "
                         f"{x['reachable'] + x['unreachable']} | {x['reachable']} | {x['unreachable']} | "
                         f"{x['undecided']} | {share_text} | {x['sharing their row']} "
                         f"({x['sharing their row, reachable as a tie']}) | "
                         f"{x['certified unreachable yet a held-out argmin']}, "
                         f"{x['certified unreachable yet an argmin outside the cone']} | {reached} |")
    am = c["argmin vs argmax over the corpus"]
    lines += ["", f"Over the corpus, T -> 0- reaches {am['argmin tokens']:,} distinct tokens and T -> 0+ "
              f"{am['argmax tokens']:,}; {am['shared']} are in both; candidates among them: {am['candidates'][0]} and "
              f"{am['candidates'][1]}.", ""]
    rep = r["repetition"]
    lines += ["## 7. Can the model repeat them?", "",
              "A few-shot copying prompt, the token placed by its id; score: the probability that the copy begins "
              "with the token's text, by any tokenization, the highest over three prompts; repeated: the greedy "
              "answer starts with the token. Each group a random sample of its cell. Controls: matched on "
              f"kind, frequency ({rep['frequency proxy']}) and norm. AUC: P(group > control); p (pairs): exact "
              "signed-rank test of each token against its own control; odds ratio of repeating: logistic model, "
              "tokens as clusters.", "",
              f"| group | tokens | mean score | median score | repeated | score < 0.001 | score < {VERIFIED_BELOW:g} "
              "| AUC | p (pairs) | odds ratio of repeating | p (repeated) |", "|---" * 11 + "|"]
    for group, s in rep["groups"].items():
        head = (f"| {group} | {s['tokens']} | {s['mean_score']:.3g} | {s['median_score']:.3g} | "
                f"{100 * s['repeat_rate']:.0f}% | {100 * s['share_score_below_0.001']:.0f}% | "
                f"{100 * s['share_score_below_verified']:.0f}% |")
        if "controls" not in s:
            lines.append(head + " | | | |")
            continue
        model = s["repeated_model"]
        odds = s.get("odds_ratio_repeated")
        lines.append(head + f" {s['auc_score_vs_controls']:.2f} | {_p(s.get('p_score_matched_pairs'))} | "
                     + (f"{odds[0]:.2f} [{odds[1]:.2f}, {odds[2]:.2f}] | {_p(model['terms'][group]['p'])} |"
                        if odds else "none: separation | |"))
    lines += ["", f"The 2x2 design, per token: the odds of scoring below {VERIFIED_BELOW:g} (cannot copy), "
              "candidates against non-candidates, among the tokens reached and among those never reached; their "
              "ratio is the interaction (Woolf intervals; 0.5 added to every cell of a table with an empty one). "
              "The same contrast in the mean log10 score: (candidates - non-candidates, reached) - (the same, never "
              "reached).", "",
              "| reached by | odds ratio: reached | odds ratio: never reached | interaction | p (interaction) | "
              "interaction in mean log10 score | p |", "|---" * 7 + "|"]
    for how, d in rep["2x2 design"].items():
        a, b, x = (d["odds ratio, candidates vs not: reached"], d["odds ratio, candidates vs not: never reached"],
                   d["interaction (ratio of the odds ratios)"])
        ls = d["interaction in mean log10 score"]
        low, high = ls["95% interval"]
        lines.append(f"| {how} | {_or(a)} | {_or(b)} | {_or(x)} | {_p(x['p'])} | "
                     f"{ls['difference of differences']:.2f} [{low:.2f}, {high:.2f}] | {_p(ls['p'])} |")
    lines += ["", "Answers (first prompt) of some probed candidates:", "", "| group | token | answer | score |",
              "|---|---|---|---|"]
    for e in rep["examples"][:12]:
        lines.append(f"| {e['group']} | `{e['text']!r}` | `{e['answer'][:30]!r}` | {e['p']:.2g} |")
    lines += ["", "![repetition scores](repetition_ecdf.png)", "",
              "## 8. beta = 1/T is continuous", "", "![beta sweep](beta_sweep.png)", ""]
    return "\n".join(lines)


def _or(d: dict[str, Any]) -> str:
    low, high = d["95% interval"]
    return f"{d['odds ratio']:.2g} [{low:.2g}, {high:.2g}]"


def _nulls(n: dict[str, Any]) -> list[str]:
    line = (f"Candidates among the {n['tokens']:,} distinct non-reference tokens: {n['observed']:.0f}; by chance "
            f"{n['uniform']:.1f} (uniform) or {n['norm-matched']:.1f} (each token's {NEIGHBOURS} nearest unpicked "
            "tokens by norm)")
    if "p observed vs norm-matched" in n:
        line += (f", p = {_p(n['p observed vs norm-matched'])}; balance: standardized norm difference "
                 f"{n['balance: norm standardized difference']:.3f}, mean norm-percentile gap "
                 f"{n['balance: mean norm-percentile gap']:.2f}")
    return ["", line + "."]
