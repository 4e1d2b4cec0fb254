"""`negtemp scan`: which tokens of a model's vocabulary are under-trained, found and verified in one report.

Four measures, each cheap on a CPU:

1. every token's under-trained indicator, in the four variants the
   experiment compares (`geometry.INDICATORS`); the candidates are the top
   2% of the tokens that are not known to be unused, by the first variant;
2. whether T -> 0- reaches each token over a corpus: how often it is the
   argmin of the logits after real text (and, for T -> 0+, the argmax);
3. cone reachability of the strongest candidates (`cone`): whether any hidden
   state in the cone of those the corpus produced makes the token the strict
   argmin, checked against held-out windows of the same corpus;
4. the repetition probe for the strongest candidates that can be asked for:
   the probability that the model copies the token's text when asked, by
   any tokenization (`repetition.copy_probability`). A candidate whose best
   probability over the probe's three templates is below VERIFIED_BELOW is
   *verified under-trained*, Land & Bartolo's criterion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..model import Model
from .cone import cone_reach, row_groups
from .corpus import cone_positions, corpus_windows, outside_cone, strict_picks, teacher_forced, text_windows
from .geometry import GGUF_NORMAL, INDICATORS, indicator_variant, read_matrices, top_candidates
from .repetition import TEMPLATES, VERIFIED_BELOW, VocabularyBytes, copy_probability, probeable, request_tokens
from .run import CANDIDATE_FRACTION, known_unused

__all__ = ["ScanSettings", "scan"]


@dataclass(frozen=True)
class ScanSettings:
    """How much of each measure a scan runs (the CLI's flags)."""

    windows: int = 32  # windows of the corpus, teacher-forced; odd ones are held out from the cone
    window: int = 128  # tokens per window
    top: int = 200  # the strongest candidates whose cone reachability is decided
    verify: int = 50  # the strongest probeable candidates the repetition probe verifies
    cone_states: int = 512  # observed states that span the cone (their logits are kept: states x n_vocab floats)
    cone_seconds: float = 300.0  # the cone's time budget; tokens left then are "undecided"

    def __post_init__(self) -> None:
        for name in ("top", "verify", "cone_states"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.windows < 2:
            raise ValueError("windows must be at least 2: the odd ones are held out to check the cone's predictions")
        if self.window < 8:
            raise ValueError(f"window must be at least 8 tokens, got {self.window}")
        if not self.cone_seconds > 0:
            raise ValueError(f"cone_seconds must be positive, got {self.cone_seconds}")


def _texts(m: Model) -> tuple[list[bytes], list[str]]:
    raw = [m.token_bytes(t) for t in range(m.n_vocab)]
    return raw, [b.decode("utf-8", errors="replace") for b in raw]


def scan(m: Model, settings: ScanSettings = ScanSettings(), *, corpus: str | None = None,
         progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Scan m's vocabulary; returns the report as a dict that json.dumps takes (through results.json_value).

    corpus: a text to teacher-force instead of the built-in one (the help
    topics of CPython's language reference). progress receives a line as each
    part begins.
    """
    s = settings
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[part] = round(now - clock, 2)
        clock = now

    progress("[1/4] indicators: dequantizing the matrices, finding the known-unused tokens")
    mats = read_matrices(m.path)
    reference, reference_about = known_unused(m, mats.token_types)
    scores = {name: indicator_variant(name, mats.output, mats.input, reference) for name in INDICATORS}
    primary = scores[INDICATORS[0]]
    candidates = top_candidates(primary, reference, CANDIDATE_FRACTION)
    ranked = candidates[np.argsort(-primary[candidates], kind="stable")]
    raw, texts = _texts(m)
    lap("indicators")

    progress(f"[2/4] T -> 0- over the corpus: {s.windows} windows of {s.window} tokens")
    if corpus is None:
        windows, corpus_about = corpus_windows(m, s.windows, s.window)
    else:
        windows, corpus_about = text_windows(m, corpus, s.windows, s.window)
        if len(windows) < 2:
            raise ValueError(f"the corpus makes {len(windows)} window of {s.window} tokens; the scan needs two (one "
                             "held out): give a longer text or a smaller --window")
    kept = cone_positions(windows, s.cone_states)
    tf = teacher_forced(m, windows, keep=kept)
    argmin_count = np.bincount(np.concatenate(tf.argmin), minlength=m.n_vocab)
    argmax_count = np.bincount(np.concatenate(tf.argmax), minlength=m.n_vocab)
    lap("teacher-forced")

    top = ranked[: s.top]
    progress(f"[3/4] cone reachability: the {top.size} strongest candidates, a budget of {s.cone_seconds:g} s")
    assert tf.kept is not None
    groups = row_groups(mats.output, mats.bias)
    reach = cone_reach(tf.kept, top, groups=groups, bias=mats.bias, budget_seconds=s.cone_seconds)
    unreachable = top[reach.status == "unreachable"]
    contradicted = {
        "held-out windows": np.intersect1d(unreachable, strict_picks(tf, outside_cone(tf, kept, True))).tolist(),
        "any position whose state does not span the cone": np.intersect1d(
            unreachable, strict_picks(tf, outside_cone(tf, kept))).tolist(),
    }
    lap("cone")

    probed = [int(t) for t in ranked if mats.token_types[t] == GGUF_NORMAL and probeable(texts[t])][: s.verify]
    progress(f"[4/4] repetition probe: the {len(probed)} strongest candidates that can be asked for")
    vocab = VocabularyBytes(m, raw)
    copy = {t: max(copy_probability(m, request_tokens(m, k, t), raw[t], vocab) for k in range(len(TEMPLATES)))
            for t in probed}
    lap("repetition probe")

    rank_of = np.full(m.n_vocab, -1, np.int64)
    rank_of[ranked] = np.arange(ranked.size)
    is_reference = np.zeros(m.n_vocab, bool)
    is_reference[reference] = True
    cone_of = {int(t): (str(st), str(me), int(ti), int(tr))
               for t, st, me, ti, tr in zip(top, reach.status, reach.method, reach.ties, reach.tie_reachable,
                                            strict=True)}

    def row(t: int) -> dict[str, Any]:
        r: dict[str, Any] = {"id": t, "text": texts[t], "bytes": raw[t].hex(), "candidate_rank": int(rank_of[t]),
                             "indicator": {name: float(v[t]) for name, v in scores.items()},
                             "argmin_count": int(argmin_count[t]), "argmax_count": int(argmax_count[t])}
        if t in cone_of:
            status, method, ties, tie = cone_of[t]
            r["cone"] = {"status": status, "method": method, "tied_tokens": ties,
                         **({"tie_reachable": {1: True, 0: False}.get(tie)} if ties else {})}
        if t in copy:
            r["copy_probability"] = copy[t]
            r["verified"] = copy[t] < VERIFIED_BELOW
        return r

    verified = [t for t in probed if copy[t] < VERIFIED_BELOW]
    return {
        "model": m.path.name,
        "n_vocab": m.n_vocab,
        "tied_output": mats.tied,
        "output_bias": mats.bias is not None,
        "settings": {**asdict(s), "candidate_fraction": CANDIDATE_FRACTION, "verified_below": VERIFIED_BELOW,
                     "primary_indicator": INDICATORS[0]},
        "reference": reference_about,
        "corpus": {**corpus_about, "positions": tf.positions, "cone states": int(tf.kept.shape[0]),
                   "held-out windows": len(windows) // 2},
        "summary": {
            "candidates": int(candidates.size),
            "candidates reached by T -> 0- over the corpus": int((argmin_count[candidates] > 0).sum()),
            "distinct T -> 0- tokens over the corpus": int((argmin_count > 0).sum()),
            "cone": {**reach.counts(), "decided of": int(top.size)},
            "cone-unreachable tokens that were a strict argmin outside the cone": contradicted,
            "probed": len(probed),
            "verified under-trained": len(verified),
        },
        "verified": [row(t) for t in verified],
        "candidates": [row(int(t)) for t in ranked],
        # columns rather than rows: a row per token would triple a 262,144-token vocabulary's file
        "tokens": {"text": texts, "bytes": [b.hex() for b in raw], "type": mats.token_types.tolist(),
                   "reference": is_reference.tolist(),
                   "indicator": {name: np.round(v, 6).tolist() for name, v in scores.items()},
                   "argmin_count": argmin_count.tolist(), "argmax_count": argmax_count.tolist()},
        "seconds": seconds,
    }
