"""A generation's text: its tokens' bytes decoded as UTF-8 across tokens, cut at the first stop string.

The one place stop strings are matched, for stream(), complete() and the sweep.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

__all__ = ["StopFilter", "TokenText", "stop_strings"]


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
