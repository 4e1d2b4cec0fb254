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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import Model

__all__ = ["TeacherForced", "corpus_windows", "teacher_forced"]


@dataclass(frozen=True)
class TeacherForced:
    """Per window (the unit of resampling): each position's argmin and argmax token, and whether each is unique."""

    windows: list[str]  # the topic each window is from
    argmin: list[np.ndarray]
    argmin_unique: list[np.ndarray]
    argmax: list[np.ndarray]
    mean_logits: np.ndarray  # the mean over every position: u_i . h_mean, the context-free ranking
    positions: int


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


def teacher_forced(m: Model, windows: list[tuple[str, np.ndarray]]) -> TeacherForced:
    """Each window through the model once; the argmin and argmax of the logits after every token of it."""
    argmin, unique, argmax = [], [], []
    total = np.zeros(m.n_vocab, np.float64)
    positions = 0
    for _, tokens in windows:
        z = m.logits(tokens)
        low = np.partition(z, 1, axis=1)[:, :2]
        argmin.append(np.argmin(z, axis=1).astype(np.int64))
        unique.append(low[:, 1] > low[:, 0])
        argmax.append(np.argmax(z, axis=1).astype(np.int64))
        total += z.sum(axis=0, dtype=np.float64)
        positions += z.shape[0]
    return TeacherForced([n for n, _ in windows], argmin, unique, argmax, total / max(positions, 1), positions)
