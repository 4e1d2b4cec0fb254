"""Can the model repeat a token when asked? The repetition probe, with matched controls.

Each probed token is put into the request by its id (not by re-tokenizing
its text, which can give other tokens), under each of the templates; the
model answers greedily. A trial's score is the highest probability the
model gives the token at any step of its answer; "repeated" means the
token's text appears in the answer, ignoring case. Templates are repeated
measures of one token, so a token's numbers are its means over them, and
groups are compared token by token with an exact rank-sum test.

Controls are drawn, one per probed token, from tokens that match it on
surface form: leading space, length, script, case pattern, letters only or
not, and whether the vocabulary has a longer token that extends it (a proxy
for a word fragment such as " Confuci").
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..model import Model
from ..reference import probs
from .stats import rank_sum_test

__all__ = [
    "N_ANSWER", "TEMPLATES", "ProbeTrial", "matched_controls", "probe_tokens", "probeable", "request_tokens",
    "summarize", "surface_form",
]

TEMPLATES = ('Repeat the following string exactly: "{}"', 'Please say "{}" back to me.', "Copy this word: {}")
_MARK = "\x1dNEGTEMP-TOKEN\x1d"  # stands for the token while the chat template formats the request
N_ANSWER = 12  # answer tokens the score looks at


def _script(text: str) -> str:
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            return name.split(" ")[0] if name else "OTHER"
    return "NONE"


def _case(core: str) -> str:
    if core.islower():
        return "lower"
    if core.isupper():
        return "upper"
    if core.istitle():
        return "title"
    return "mixed"


def surface_form(text: str, extended: bool) -> tuple[object, ...]:
    """What a control must share with a probed token: (leading space, length, script, case, letters only, extended)."""
    core = text.strip()
    return (text.startswith(" "), len(core), _script(core), _case(core), core.isalpha(), extended)


def _texts(m: Model, ids: Iterable[int]) -> dict[int, str]:
    return {t: m.token_bytes(t).decode("utf-8", errors="replace") for t in ids}


def _extended(texts: dict[int, str]) -> set[str]:
    """Texts that are a proper prefix of another token's text (same leading space)."""
    prefixes: set[str] = set()
    for text in texts.values():
        prefixes.update(text[:i] for i in range(1, len(text)))
    return prefixes


def probeable(text: str) -> bool:
    """Whether a token's text can be asked for: visible, printable, valid UTF-8 on its own."""
    return bool(text.strip()) and text.isprintable() and "\ufffd" not in text


def matched_controls(m: Model, probed: Sequence[int], exclude: set[int], types: np.ndarray,
                     seed: int) -> tuple[list[int], list[int]]:
    """(one control per probed token, or -1 where no token matches its surface form; the exact-match flags).

    Controls are normal tokens outside `exclude`, each used once, drawn at
    random among those with the probed token's surface_form; where none is
    left, the match is relaxed to leading space, script and letters only.
    """
    rng = np.random.default_rng(seed)
    texts = _texts(m, np.flatnonzero(types == 1).tolist())
    prefixes = _extended(texts)
    strata: dict[tuple[object, ...], list[int]] = defaultdict(list)
    loose: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for t, text in texts.items():
        if t in exclude or not probeable(text):
            continue
        form = surface_form(text, text in prefixes)
        strata[form].append(t)
        loose[(form[0], form[2], form[4])].append(t)
    chosen: set[int] = set()
    controls, exact = [], []
    probed_texts = _texts(m, probed)
    for t in probed:
        form = surface_form(probed_texts[t], probed_texts[t] in prefixes)
        pick = -1
        for pool, is_exact in ((strata[form], 1), (loose[(form[0], form[2], form[4])], 0)):
            free = [c for c in pool if c not in chosen]
            if free:
                pick = int(free[rng.integers(len(free))])
                exact.append(is_exact)
                break
        else:
            exact.append(0)
        if pick >= 0:
            chosen.add(pick)
        controls.append(pick)
    return controls, exact


@dataclass(frozen=True)
class ProbeTrial:
    group: str
    token: int
    text: str
    template: int
    max_p: float  # the highest probability of the token over the answer's steps
    repeated: bool  # the token's text appears in the answer, ignoring case
    answer: str


def request_tokens(m: Model, template: str, token: int) -> np.ndarray:
    """The request under the model's chat template (plain text for a base model), the token placed by its id."""
    message = template.format(_MARK)
    formatted = m.chat_prompt(message)
    text = formatted if formatted is not None else message + "\n"
    before, after = text.split(_MARK)
    head = m.tokenize(before, add_special=True)
    tail = m.tokenize(after, add_special=False) if after else np.zeros(0, np.int32)
    return np.concatenate([head, np.array([token], np.int32), tail])


def probe_tokens(m: Model, groups: Mapping[str, Sequence[int]]) -> list[ProbeTrial]:
    """Every token of every group under every template: one greedy answer each."""
    trials = []
    for group, ids in groups.items():
        texts = _texts(m, ids)
        for t in ids:
            for k, template in enumerate(TEMPLATES):
                c = m.complete(request_tokens(m, template, t), 0.0, seed=0, n_predict=N_ANSWER, keep_logits=True)
                assert c.step_logits is not None
                max_p = max(float(probs(z, 1.0)[t]) for z in c.step_logits)
                trials.append(ProbeTrial(group, t, texts[t], k, max_p,
                                         texts[t].strip().lower() in c.text.lower(), c.text))
    return trials


def summarize(trials: Sequence[ProbeTrial], controls: dict[str, str]) -> dict[str, dict[str, object]]:
    """Per group: tokens, mean and median score and repeat rate (per-token means over templates), the share of
    tokens whose highest probability over every template stays under 0.001 and under 0.1 (Land & Bartolo's
    verification), and for each group in `controls` the exact rank-sum p-values against its control group."""
    per_token: dict[str, dict[int, list[ProbeTrial]]] = defaultdict(lambda: defaultdict(list))
    for tr in trials:
        per_token[tr.group][tr.token].append(tr)

    def means(group: str, field: str) -> np.ndarray:
        return np.array([np.mean([getattr(tr, field) for tr in ts]) for ts in per_token[group].values()], float)

    out: dict[str, dict[str, object]] = {}
    for group, tokens in per_token.items():
        best = np.array([max(tr.max_p for tr in ts) for ts in tokens.values()])
        row: dict[str, object] = {
            "tokens": len(tokens),
            "mean_max_p": float(means(group, "max_p").mean()),
            "median_max_p": float(np.median(means(group, "max_p"))),
            "repeat_rate": float(means(group, "repeated").mean()),
            "share_max_p_below_0.001": float((best < 0.001).mean()),
            "share_max_p_below_0.1": float((best < 0.1).mean()),
        }
        control = controls.get(group)
        if control in per_token:
            row["controls"] = control
            row["p_max_p_vs_controls"] = rank_sum_test(means(group, "max_p"), means(control, "max_p"))
            row["p_repeat_vs_controls"] = rank_sum_test(means(group, "repeated"), means(control, "repeated"))
        out[group] = row
    return out
