"""Can the model repeat a token when asked? The repetition probe, with controls matched on frequency and norm.

Each request is a few-shot copying exercise in plain text (no chat
template, so a base and a chat model get the same text): three example
words each written and then copied, then the probed token, placed by its
id, and the cue to copy it. In the spirit of Land & Bartolo's verification
prompts; the text is this project's own. Every word follows its label
directly and the examples take the token's own spacing: with a leading
space ("Word:" + " Confuci") they read "Word: table", without one
("Word:" + "MetaInfo") "Word:table". No space is ever doubled, and the
examples show the spacing the answer needs.

A trial's score is the probability that the copy (the answer after the
cue) begins with the token's text, by any tokenization: the token itself, a
longer token beginning with its text, or pieces that spell it
(copy_probability). A token's score is the highest over the three
templates. "Repeated" means the greedy answer's text starts with the
token's text.

Controls, one per probed token, are normal tokens of the same kind
(leading space or not, letters only or not, a fragment or not: a proper
prefix or suffix of another token's text, such as " Confuci" or
"emeteries"), the nearest among them in the tokenizer's frequency rank and
in the norm of the output row, both as percentiles.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..model import Model
from ..reference import probs
from .stats import (
    Z95,
    auc,
    logistic_regression,
    odds_ratio,
    odds_ratio_ratio,
    percentile_of_all,
    rank_sum_test,
    signed_rank_test,
    wilson_interval,
)

__all__ = [
    "N_ANSWER", "TEMPLATES", "VERIFIED_BELOW", "ControlMatch", "ProbeTrial", "VocabularyBytes", "copy_probability",
    "fragments", "interaction", "matched_controls", "probe_tokens", "probeable", "request_tokens", "summarize",
]

# (label before the word, label before its copy, the three example words)
TEMPLATES = (("Word:", "Copy:", ("table", "river", "green")),
             ("Input:", "Output:", ("seven", "cloud", "paper")),
             ("Say:", "Said:", ("lamp", "orange", "quiet")))
N_ANSWER = 4  # tokens of the greedy answer that "repeated" reads
VERIFIED_BELOW = 0.01  # a token the model copies with less probability than this is verified under-trained
SCORE_FLOOR = 1e-12  # scores below this count as this on a log scale (copy_probability stops at 1e-6 per branch)


def _texts(m: Model, ids: Iterable[int]) -> dict[int, str]:
    return {t: m.token_bytes(t).decode("utf-8", errors="replace") for t in ids}


def probeable(text: str) -> bool:
    """Whether a token's text can be asked for: visible, printable, valid UTF-8 on its own."""
    return bool(text.strip()) and text.isprintable() and "\ufffd" not in text


def fragments(texts: Mapping[int, str]) -> set[int]:
    """Tokens whose text is a proper prefix of another token's text (" Confuci" of " Confucius") or whose text,
    leading space aside, is a proper suffix of another's ("emeteries" of " cemeteries")."""
    prefixes: set[str] = set()
    suffixes: set[str] = set()
    for text in texts.values():
        prefixes.update(text[:i] for i in range(1, len(text)))
        core = text.lstrip(" ")
        suffixes.update(core[i:] for i in range(1, len(core)))
    return {t for t, text in texts.items() if text in prefixes or text.lstrip(" ") in suffixes}


def _kind(text: str, fragment: bool) -> tuple[bool, bool, bool]:
    return text.startswith(" "), text.strip().isalpha(), fragment


@dataclass(frozen=True)
class ControlMatch:
    """The controls of one group and how well they match."""

    controls: list[int]  # one per probed token, -1 where no normal token was left
    same_kind: list[bool]  # the control shares the probed token's kind (else the nearest of any kind)
    frequency_gap: float  # mean |difference| of frequency-rank percentiles, probed - control
    norm_gap: float  # the same for the norm percentiles


def matched_controls(m: Model, probed: Sequence[int], exclude: set[int], types: np.ndarray, norm: np.ndarray,
                     frequency_rank: np.ndarray) -> ControlMatch:
    """One control per probed token: a normal, probeable token outside `exclude`, not used before, of the same
    kind, the nearest in (frequency-rank percentile, norm percentile); of any kind where none of its kind is left."""
    texts = _texts(m, np.flatnonzero(types == 1).tolist())
    frag = fragments(texts)
    pool = [t for t, text in texts.items() if t not in exclude and probeable(text)]
    normal = np.array(sorted(texts), np.int64)
    freq_pct = np.zeros(norm.size)
    freq_pct[normal] = percentile_of_all(frequency_rank[normal].astype(np.float64))
    norm_pct = np.zeros(norm.size)
    norm_pct[normal] = percentile_of_all(norm[normal])
    by_kind: dict[tuple[bool, bool, bool], list[int]] = defaultdict(list)
    for t in pool:
        by_kind[_kind(texts[t], t in frag)].append(t)
    kinds = {k: np.array(v, np.int64) for k, v in by_kind.items()}
    every = np.array(pool, np.int64)
    used = np.zeros(norm.size, bool)
    probed_texts = _texts(m, probed)
    controls, same, gaps_f, gaps_n = [], [], [], []
    for t in probed:
        pick = -1
        for candidates, is_same in ((kinds.get(_kind(probed_texts[t], t in frag)), True), (every, False)):
            if candidates is None:
                continue
            free = candidates[~used[candidates]]
            if free.size:
                dist = np.hypot(freq_pct[free] - freq_pct[t], norm_pct[free] - norm_pct[t])
                pick = int(free[np.argmin(dist)])
                same.append(is_same)
                break
        else:
            same.append(False)
        if pick >= 0:
            used[pick] = True
            gaps_f.append(abs(freq_pct[t] - freq_pct[pick]))
            gaps_n.append(abs(norm_pct[t] - norm_pct[pick]))
        controls.append(pick)
    return ControlMatch(controls, same, float(np.mean(gaps_f)) if gaps_f else float("nan"),
                        float(np.mean(gaps_n)) if gaps_n else float("nan"))


@dataclass(frozen=True)
class ProbeTrial:
    group: str
    token: int
    text: str
    template: int
    p: float  # the score: the probability that the copy begins with the token's text, by any tokenization
    repeated: bool  # the greedy answer's text starts with the token's text
    answer: str
    p_token: float = float("nan")  # the probability of the token itself where the copy begins


def request_tokens(m: Model, template: int, token: int) -> np.ndarray:
    """The few-shot copying request for `token` under TEMPLATES[template], the token placed by its id."""
    first, second, examples = TEMPLATES[template]
    space = " " if m.token_bytes(token).startswith(b" ") else ""
    shots = "".join(f"{first}{space}{w}\n{second}{space}{w}\n" for w in examples)
    head = m.tokenize(shots + first, add_special=True, parse_special=False)
    # the cue tokenized as a continuation of the text, not as a text of its own, to which a SentencePiece
    # tokenizer would prefix a space
    whole = m.tokenize(f"{shots}{first}\n{second}", add_special=True, parse_special=False)
    if np.array_equal(whole[: head.size], head):
        tail = whole[head.size :]
    else:
        tail = m.tokenize("\n" + second, add_special=False, parse_special=False)
    return np.concatenate([head, np.array([token], np.int32), tail])


def probe_tokens(m: Model, groups: Mapping[str, Sequence[int]]) -> list[ProbeTrial]:
    """Every token of every group under every template: the probability that the copy begins with its text (by
    any tokenization: copy_probability) and that of the token itself, and whether the greedy answer starts with
    it (one answer token decides that unless it begins the token's text; then N_ANSWER do)."""
    trials = []
    vocab = VocabularyBytes(m)
    done: dict[int, list[ProbeTrial]] = {}  # a token in several groups is probed once
    for group, ids in groups.items():
        texts = _texts(m, ids)
        for t in ids:
            if t in done:
                trials += [replace(tr, group=group) for tr in done[t]]
                continue
            for k in range(len(TEMPLATES)):
                request = request_tokens(m, k, t)
                c = m.complete(request, 0.0, seed=0, n_predict=1, keep_logits=True)
                assert c.step_logits is not None
                p_token = float(probs(c.step_logits[0], 1.0)[t])
                answer = c.text
                if answer and texts[t].startswith(answer) and answer != texts[t]:
                    answer = m.complete(request, 0.0, seed=0, n_predict=N_ANSWER).text
                p = copy_probability(m, request, m.token_bytes(t), vocab)
                trials.append(ProbeTrial(group, t, texts[t], k, p, answer.startswith(texts[t]), answer, p_token))
            done[t] = trials[-len(TEMPLATES):]
    return trials


def summarize(trials: Sequence[ProbeTrial], controls: Mapping[str, str],
              pairs: Mapping[str, Sequence[tuple[int, int]]] | None = None) -> dict[str, dict[str, object]]:
    """Per group: tokens, the mean and median of the tokens' scores (the highest over templates), the repeat rate
    over trials, the shares of tokens scoring under 0.001, VERIFIED_BELOW and 0.1, and for each group in
    `controls`:

    - the score against its control group: the AUC (P(group > control)) and an exact rank-sum test; where
      `pairs` gives each token's own control, an exact signed-rank test of the pairs' differences, which uses
      the 1:1 matching;
    - "repeated" against its control group: a logistic regression over trials, each token a cluster (its three
      templates are not independent), giving the odds ratio, its 95% interval and its cluster-robust p-value.
    """
    per_token: dict[str, dict[int, list[ProbeTrial]]] = defaultdict(lambda: defaultdict(list))
    for tr in trials:
        per_token[tr.group][tr.token].append(tr)

    def best(group: str) -> dict[int, float]:
        return {t: max(tr.p for tr in ts) for t, ts in per_token[group].items()}

    out: dict[str, dict[str, object]] = {}
    for group, tokens in per_token.items():
        score = np.array(list(best(group).values()), float)
        rows = [tr for ts in tokens.values() for tr in ts]
        row: dict[str, object] = {
            "tokens": len(tokens),
            "mean_score": float(score.mean()),
            "median_score": float(np.median(score)),
            "repeat_rate": float(np.mean([tr.repeated for tr in rows])),
            "share_score_below_0.001": float((score < 0.001).mean()),
            "share_score_below_verified": float((score < VERIFIED_BELOW).mean()),
            "share_score_below_0.1": float((score < 0.1).mean()),
            "scores": score.tolist(),
        }
        control = controls.get(group)
        if control in per_token:
            theirs = np.array(list(best(control).values()), float)
            row["controls"] = control
            row["p_score_vs_controls"] = rank_sum_test(score, theirs)
            row["auc_score_vs_controls"] = auc(score, theirs)
            if pairs is not None and group in pairs:
                mine, other = best(group), best(control)
                d = [mine[t] - other[c] for t, c in pairs[group] if t in mine and c in other]
                row["matched pairs"] = len(d)
                row["p_score_matched_pairs"] = signed_rank_test(d)
            both = rows + [tr for ts in per_token[control].values() for tr in ts]
            x = np.array([[1.0, float(tr.group == group)] for tr in both])
            y = np.array([float(tr.repeated) for tr in both])
            fit = logistic_regression(x, y, ("intercept", group), clusters=[(tr.group, tr.token) for tr in both])
            row["repeated_model"] = fit.as_dict()
            if fit.converged:
                half = Z95 * float(fit.se[1])
                row["odds_ratio_repeated"] = [float(np.exp(fit.coef[1])), float(np.exp(fit.coef[1] - half)),
                                              float(np.exp(fit.coef[1] + half))]
        out[group] = row
    return out


def interaction(scores: Mapping[str, Sequence[float]], reached: tuple[str, str], never: tuple[str, str]
                ) -> dict[str, object]:
    """The 2x2 design reached at T < 0 x under-trained candidate, per token, two ways:

    - the odds that the model cannot copy it (score below VERIFIED_BELOW) for candidates against non-candidates,
      among the reached tokens and among those never reached, and their ratio, the interaction (the same
      estimates as a saturated logistic model over tokens);
    - the same contrast in the mean log10 score (floored at SCORE_FLOOR), which keeps what the threshold
      discards: (candidates - non-candidates, reached) - (the same, never reached), with a normal interval from
      the four cells' independent means.

    reached, never: the (candidates, non-candidates) groups of `scores` in each row."""
    cells: dict[str, object] = {}
    tables = []
    for label, (cand, other) in (("reached", reached), ("never reached", never)):
        counts = []
        for group in (cand, other):
            s = np.asarray(scores[group], float)
            k = int((s < VERIFIED_BELOW).sum())
            counts.append((k, int(s.size) - k))
            cells[group] = list(wilson_interval(k, int(s.size)))
        table = odds_ratio(counts[0][0], counts[0][1], counts[1][0], counts[1][1])
        tables.append(table)
        cells[f"odds ratio, candidates vs not: {label}"] = table.as_dict()
    cells["interaction (ratio of the odds ratios)"] = odds_ratio_ratio(tables[0], tables[1]).as_dict()
    logs = [np.log10(np.maximum(np.asarray(scores[g], float), SCORE_FLOOR)) for g in (*reached, *never)]
    contrast = (logs[0].mean() - logs[1].mean()) - (logs[2].mean() - logs[3].mean())
    se = math.sqrt(sum(v.var(ddof=1) / v.size for v in logs)) if min(v.size for v in logs) > 1 else float("nan")
    cells["interaction in mean log10 score"] = {
        "difference of differences": float(contrast),
        "95% interval": [float(contrast - Z95 * se), float(contrast + Z95 * se)],
        "p": math.erfc(abs(contrast) / (se * math.sqrt(2))) if se > 0 else float("nan")}
    return cells


class VocabularyBytes:
    """Every token's bytes, indexed to find the tokens whose bytes begin with a string and those that are a proper
    prefix of it."""

    def __init__(self, m: Model, pieces: Sequence[bytes] | None = None) -> None:
        """pieces: every token's bytes, where the caller has them already."""
        if pieces is None:
            pieces = [m.token_bytes(t) for t in range(m.n_vocab)]
        order = sorted((b, t) for t, b in enumerate(pieces) if b)
        self._keys = [b for b, _ in order]
        self._ids = np.array([t for _, t in order], np.int64)
        self._exact: dict[bytes, list[int]] = defaultdict(list)
        for b, t in order:
            self._exact[b].append(t)

    def starting_with(self, s: bytes) -> np.ndarray:
        """The tokens whose bytes begin with s (s itself included)."""
        from bisect import bisect_left

        lo = bisect_left(self._keys, s)
        hi = lo
        while hi < len(self._keys) and self._keys[hi].startswith(s):
            hi += 1
        return self._ids[lo:hi]

    def exactly(self, s: bytes) -> list[int]:
        return self._exact.get(s, [])


def copy_probability(m: Model, request: np.ndarray, target: bytes, vocab: VocabularyBytes,
                     floor: float = 1e-6) -> float:
    """The probability that the model's answer to `request` begins with the bytes `target`, by any tokenization.

    The answer's first token either covers the whole target (its bytes begin
    with it) or is a proper prefix of it, after which the rest must follow;
    the two kinds of first token are disjoint events, so the sum is exact.
    Branches below `floor` are not followed, so the result is a lower bound
    within floor times the branches cut (each branch is a prefix split of
    the target).
    """
    total = 0.0
    stack = [(request, target, 1.0)]
    while stack:
        ctx, rest, weight = stack.pop()
        c = m.complete(ctx, 0.0, seed=0, n_predict=1, keep_logits=True)
        assert c.step_logits is not None
        p = probs(c.step_logits[0], 1.0)
        total += weight * float(p[vocab.starting_with(rest)].sum())
        for k in range(1, len(rest)):
            for t in vocab.exactly(rest[:k]):
                if weight * p[t] >= floor:
                    stack.append((np.append(ctx, np.int32(t)), rest[k:], weight * float(p[t])))
    return total
