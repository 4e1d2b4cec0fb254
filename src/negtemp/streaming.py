"""What a generation yields a token at a time, and stop strings matched across tokens."""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["Chunk", "FinishReason", "StopFilter", "TokenProb", "TokenText", "stop_strings"]

FinishReason = Literal["length", "stop", "eog"]
"""Why a generation ended: n_predict tokens ("length"), a stop string ("stop"),
or an end-of-generation token such as </s> or <|im_end|> ("eog")."""


@dataclass(frozen=True)
class TokenProb:
    """One of the most likely tokens at a step (``n_probs``).

    ``logprob`` is its log-probability in the distribution the step actually
    sampled from (after every filter and the temperature: at T < 0 the model's
    least likely tokens lead); ``model_logprob`` is under the model's own
    distribution, the softmax of its raw logits at T = 1. -inf where a token
    has probability 0 (filtered out, masked, or underflowed).
    """

    token: int
    text: str
    logprob: float
    model_logprob: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "text": self.text,
            "logprob": _json_float(self.logprob),
            "model_logprob": _json_float(self.model_logprob),
        }


@dataclass(frozen=True)
class Chunk:
    """One generated token and the text it adds.

    ``text`` can be "" for a token that ends inside a UTF-8 sequence, or whose
    text might begin a stop string (it is released with a later chunk, or
    dropped if the stop string completes). ``logprob`` is the token's
    log-probability in the distribution it was sampled from. ``finish_reason``
    is None except on the last chunk. ``top`` holds the ``n_probs`` most likely
    tokens of the step, most likely first in the sampled distribution;
    ``logits`` the raw logits the token was drawn from, with ``keep_logits``.
    """

    text: str
    token: int
    logprob: float
    finish_reason: FinishReason | None = None
    top: tuple[TokenProb, ...] = ()
    logits: np.ndarray | None = None


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def stop_strings(stop: str | Iterable[str] | None) -> tuple[str, ...]:
    """The stop strings as a tuple: one string or several (OpenAI's convention), none empty."""
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    for s in stops:
        if not isinstance(s, str):
            raise TypeError(f"stop strings must be str, got {type(s).__name__}: {s!r}")
        if not s:
            raise ValueError("a stop string is empty: it would stop before the first token")
    return stops


class StopFilter:
    """Text released as it is generated, cut at the first stop string.

    A stop string can span tokens, so the end of the text that could still
    become one is held back until the next piece decides it. The stop string
    and everything after it are never released.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._longest = max((len(s) for s in stops), default=0)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The text that is now certain to be output; sets ``stopped`` at a stop string."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        held = self._held + text
        cut = min((i for i in (held.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return held[:cut]
        keep = self._open_prefix(held)
        self._held = held[len(held) - keep:]
        return held[: len(held) - keep]

    def flush(self) -> str:
        """The held-back text, once no more text follows."""
        out, self._held = ("" if self.stopped else self._held), ""
        return out

    def _open_prefix(self, text: str) -> int:
        """Length of the longest end of text that begins some stop string."""
        for k in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self._stops):
                return k
        return 0


class TokenText:
    """Tokens' bytes in, text out: UTF-8 decoded across tokens, cut at the first stop string.

    The one place a generation's text is made, for stream() and for the sweep.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = StopFilter(stops)

    @property
    def stopped(self) -> bool:
        return self._stop.stopped

    def feed(self, piece: bytes, last: bool) -> str:
        """The text that is now certain, after this token's bytes; all that is left when ``last``."""
        text = self._stop.feed(self._decoder.decode(piece, final=last))
        return text + self._stop.flush() if last else text
