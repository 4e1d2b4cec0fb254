"""The teacher-forced measure: the T -> 0- choice (the argmin) and the T -> 0+ one (the argmax) at every position of
natural text, so that no context is the model's own gibberish.

Free-running draws at T < 0 condition on the anti-greedy tokens drawn
before them; after the first one, every later token follows garbage. Here
the context is always real text: each window of a fixed corpus is run
through the model once, and each position's logits give the token T -> 0-
would draw next.

The corpus is the help text of the Python language reference that every
CPython ships, `pydoc_data.topics` (read at run time, never copied into
this project): offline, fixed for a Python version, and named with that
version and a hash of the text in results.json. It is English prose about
a programming language, with some code.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import Model

__all__ = ["TeacherForced", "cone_positions", "corpus_windows", "outside_cone", "strict_picks", "teacher_forced",
           "text_windows"]


@dataclass(frozen=True)
class TeacherForced:
    """Per window (the unit of resampling): each position's argmin and argmax token, and whether each is unique."""

    windows: list[str]  # the topic each window is from
    argmin: list[np.ndarray]
    argmin_unique: list[np.ndarray]
    argmax: list[np.ndarray]
    argmax_unique: list[np.ndarray]
    mean_logits: np.ndarray  # the mean over every position: u_i . h_mean, the context-free ranking
    window_mean_logits: np.ndarray  # [windows, n_vocab] float32: each window's mean, for cross-fitting and resampling
    positions: int
    kept: np.ndarray | None = None  # [positions kept, n_vocab]: the logits teacher_forced was asked to keep


def corpus_windows(m: Model, n_windows: int, window: int) -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    """(n_windows windows of `window` tokens, one per help topic, from topics evenly spaced in name order; a
    description of the corpus for results.json). Each window is a topic's first tokens, the model's BOS first."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    texts = {n: " ".join(topics[n].split()) for n in names}
    tokens = {n: m.tokenize(texts[n]) for n in names}
    long_enough = [n for n in names if tokens[n].size >= window]
    if len(long_enough) < n_windows:
        raise ValueError(f"the corpus has {len(long_enough)} topics of at least {window} tokens for this model; "
                         f"ask for at most that many windows")
    chosen = [long_enough[round(i * (len(long_enough) - 1) / max(n_windows - 1, 1))] for i in range(n_windows)]
    digest = hashlib.sha256("\n".join(texts[n] for n in chosen).encode()).hexdigest()[:16]
    about = {"name": f"pydoc_data.topics of CPython {platform.python_version()} (the language reference's help "
                     "topics, whitespace collapsed)", "sha256_16": digest, "windows": n_windows,
             "tokens_per_window": window, "topics": chosen}
    return [(n, tokens[n][:window]) for n in chosen], about


def text_windows(m: Model, text: str, n_windows: int, window: int) -> tuple[list[tuple[str, np.ndarray]],
                                                                           dict[str, Any]]:
    """(up to n_windows consecutive windows of `window` tokens of a caller's text, the model's BOS first in each;
    a description for the report). ValueError if the text has less than one window."""
    tokens = m.tokenize(text, add_special=False, parse_special=False)
    bos = m.tokenize("", add_special=True, parse_special=False)
    body = window - bos.size
    count = min(n_windows, tokens.size // body)
    if count < 1:
        raise ValueError(f"the corpus is {tokens.size} tokens long, less than one window of {body}: give a longer "
                         "text or a smaller window")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    about = {"name": "the given text", "sha256_16": digest, "windows": count, "tokens_per_window": window}
    return [(f"tokens {k * body}-{(k + 1) * body}", np.concatenate([bos, tokens[k * body:(k + 1) * body]]))
            for k in range(count)], about


def teacher_forced(m: Model, windows: list[tuple[str, np.ndarray]], keep: Callable[[int], slice] | None = None
                   ) -> TeacherForced:
    """Each window through the model once; the argmin and argmax of the logits after every token of it. `keep`
    names, for window k, the positions whose logits to keep (the observed states of cone reachability)."""
    argmin, unique, argmax, unique_max, kept, means = [], [], [], [], [], []
    total = np.zeros(m.n_vocab, np.float64)
    positions = 0
    for _, tokens in windows:
        z = m.logits(tokens)
        low = np.partition(z, 1, axis=1)[:, :2]
        argmin.append(np.argmin(z, axis=1).astype(np.int64))
        unique.append(low[:, 1] > low[:, 0])
        argmax.append(np.argmax(z, axis=1).astype(np.int64))
        high = np.partition(z, -2, axis=1)[:, -2:]
        unique_max.append(high[:, 1] > high[:, 0])
        total += z.sum(axis=0, dtype=np.float64)
        means.append(z.mean(axis=0, dtype=np.float64).astype(np.float32))
        positions += z.shape[0]
        if keep is not None:
            kept.append(np.array(z[keep(len(argmin) - 1)]))  # a copy: a view would keep the window alive
    return TeacherForced([n for n, _ in windows], argmin, unique, argmax, unique_max, total / max(positions, 1),
                         np.array(means, np.float32).reshape(len(means), m.n_vocab), positions,
                         np.concatenate(kept) if kept else None)


def strict_picks(tf: TeacherForced, positions: Callable[[int], np.ndarray], side: str = "argmin") -> np.ndarray:
    """The distinct tokens that are the strict argmin (or argmax) at the positions `positions(k)` (a boolean mask)
    of window k."""
    picks, unique = (tf.argmin, tf.argmin_unique) if side == "argmin" else (tf.argmax, tf.argmax_unique)
    chosen = [a[u & positions(k)] for k, (a, u) in enumerate(zip(picks, unique, strict=True))]
    return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def cone_positions(windows: list[tuple[str, np.ndarray]], states: int) -> Callable[[int], slice]:
    """For window k, the positions whose states span the cone: every n-th of the even windows, about `states` in
    all; the odd windows are held out (teacher_forced's `keep`)."""
    fit = sum(w.size for k, (_, w) in enumerate(windows) if k % 2 == 0)
    every = max(1, -(-fit // states))

    def kept(k: int) -> slice:
        return slice(0, 0) if k % 2 else slice(0, None, every)

    return kept


def outside_cone(tf: TeacherForced, kept: Callable[[int], slice], held_out_only: bool = False
                 ) -> Callable[[int], np.ndarray]:
    """For window k, a mask of the positions whose states do not span the cone (of the held-out windows only, with
    held_out_only): where strict_picks checks the cone's predictions."""

    def mask(k: int) -> np.ndarray:
        m = np.ones(tf.argmin[k].size, bool)
        m[kept(k)] = False
        return m & (k % 2 == 1) if held_out_only else m

    return mask
