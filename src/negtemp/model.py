"""The Python API: Model, Completion and the module-level generate()."""

from __future__ import annotations

import codecs
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _native
from .config import SamplingConfig, SamplingOptions, make_config
from .errors import ModelLoadError
from .gguf_check import check_gguf
from .models import resolve

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Model", "Completion", "generate"]


@dataclass(frozen=True)
class Completion:
    """One generated continuation and the settings that produced it.

    ``config`` is the resolved SamplingConfig (the seed drawn, the path that
    ran); ``settings`` is the model, ``config.to_dict()`` and ``n_predict``.
    """

    text: str
    tokens: np.ndarray
    prompt_tokens: np.ndarray
    logprobs: np.ndarray
    config: SamplingConfig
    settings: dict[str, Any] = field(default_factory=dict)
    step_logits: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON-ready dict: non-finite log-probabilities become None,
        and a non-finite setting (beta = +-inf) its string "inf" / "-inf"."""
        settings = {
            k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in self.settings.items()
        }
        return {
            "text": self.text,
            "tokens": self.tokens.tolist(),
            "prompt_tokens": self.prompt_tokens.tolist(),
            "logprobs": [float(x) if math.isfinite(x) else None for x in self.logprobs],
            **settings,
        }


class Model:
    """A GGUF model loaded once and sampled many times.

    ``path`` is a GGUF file, a name from ``negtemp.models.MODELS``, or None
    for the default model ($NEGTEMP_MODEL, else SmolLM2-135M-Instruct).
    Calls on one Model are serialized; each call gets a fresh llama.cpp
    context, so a call never sees another's state. ``cancel()`` and
    ``close()`` work from any thread and stop a running generation within one
    token; calling the Model from its own ``on_text`` callback raises
    RuntimeError (the call in progress holds it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
    ) -> None:
        if n_threads is None:
            n_threads = min(os.cpu_count() or 1, 8)
        if int(n_threads) < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        if int(n_ctx) < 16:
            raise ValueError(f"n_ctx must be >= 16, got {n_ctx}")
        self.path: Path = resolve(path)
        check_gguf(self.path)
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads)
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread inside a native call, while one runs
        try:
            self._native: _native.Model | None = _native.Model(str(self.path), self.n_ctx, self.n_threads)
        except RuntimeError as e:
            raise ModelLoadError(str(e)) from None
        self.n_vocab: int = self._native.n_vocab
        self.eog_tokens: frozenset[int] = frozenset(self._native.eog_tokens())

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the model's memory; later calls raise RuntimeError.

        From another thread while a generation runs, that generation stops at
        its next token (raising negtemp.Cancelled there) before the memory is freed.
        """
        self._refuse_reentry("close")
        while not self._lock.acquire(timeout=0.05):
            self.cancel()  # again each time: a generation that was just starting clears the request
        try:
            if self._native is not None:
                self._native.close()
                self._native = None
        finally:
            self._lock.release()

    def cancel(self) -> None:
        """Stop the generation running on this Model, from any thread: it raises
        negtemp.Cancelled at its next token. Does nothing when none runs."""
        native = self._native
        if native is not None and self._lock.locked():
            native.cancel()

    @property
    def closed(self) -> bool:
        return self._native is None

    def _refuse_reentry(self, what: str) -> None:
        if self._owner == threading.get_ident():
            raise RuntimeError(
                f"Model.{what}() was called from this Model's own on_text callback, while the generation "
                "that called it holds the Model; collect the text and call the Model after complete() returns"
            )

    @contextmanager
    def _call(self, what: str) -> Iterator[_native.Model]:
        """The native model, held for one call by this thread."""
        self._refuse_reentry(what)
        with self._lock:
            if self._native is None:
                raise RuntimeError(f"Model({self.path.name}) is closed; create a new negtemp.Model")
            self._owner = threading.get_ident()
            try:
                yield self._native
            finally:
                self._owner = None

    def tokenize(self, text: str | bytes, *, add_special: bool = True) -> np.ndarray:
        """Token ids (int32) of text, with BOS where the model wants one."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"prompt bytes are not valid UTF-8: {e}") from None
        if not isinstance(text, str):
            raise TypeError(f"prompt must be str or bytes, not {type(text).__name__}")
        with self._call("tokenize") as native:
            return native.tokenize(text, add_special)

    def chat_prompt(self, user: str) -> str | None:
        """user wrapped in the model's chat template (assistant turn open), or None if it has none."""
        with self._call("chat_prompt") as native:
            return native.chat_prompt(user)

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 sequence)."""
        with self._call("token_bytes") as native:
            return native.token_to_piece(int(token))

    def detokenize(self, tokens: np.ndarray | list[int]) -> str:
        """Text of a token sequence; invalid UTF-8 becomes U+FFFD."""
        with self._call("detokenize") as h:
            return b"".join(h.token_to_piece(int(t)) for t in tokens).decode("utf-8", errors="replace")

    def logits(self, tokens: np.ndarray | list[int]) -> np.ndarray:
        """Raw logits (float32, shape [len(tokens), n_vocab]) after each prefix of tokens."""
        arr = np.asarray(tokens, dtype=np.int32)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence of token ids")
        if arr.size > self.n_ctx:
            raise ValueError(f"{arr.size} tokens do not fit n_ctx={self.n_ctx}")
        with self._call("logits") as native:
            return native.eval_logits(arr)

    def complete(
        self,
        prompt: str | bytes,
        temp: float | None = None,
        *,
        config: SamplingConfig | None = None,
        n_predict: int = 128,
        on_text: Callable[[str], None] | None = None,
        keep_logits: bool = False,
        **options: Unpack[SamplingOptions],
    ) -> Completion:
        """Sample a continuation of prompt.

        The sampling settings are ``config`` (a negtemp.SamplingConfig) or the
        same as keyword arguments: ``temp`` (default 0.8) or ``beta`` (= 1/T,
        to reach beta = -inf, anti-greedy, or 0, uniform), ``seed`` (None picks
        one and records it), ``top_k``, ``top_p``, ``min_p``,
        ``repeat_penalty``, ``penalty_last_n``, ``logit_bias``, ``ignore_eos``
        and ``path`` ("auto", "fused", "chain", "backend"; the older
        ``backend_sampling=True`` and ``fused=False`` still work). README
        "Semantics" defines every chain at every T. ``on_text`` receives the
        text as it is generated. ``keep_logits`` (CPU paths) keeps the raw
        logits each token was sampled from in ``Completion.step_logits``.
        Raises negtemp.SamplingError (a ValueError) if a step has every token masked.
        """
        cfg = make_config(temp, config, dict(options)).resolved()
        native = cfg.native(self.eog_tokens)
        self._check_bias(cfg)
        prompt_tokens = self._prompt_tokens(prompt, n_predict)

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []

        def on_piece(raw: bytes) -> None:
            s = decoder.decode(raw)
            if s:
                pieces.append(s)
                if on_text is not None:
                    on_text(s)

        with self._call("complete") as handle:
            tokens, logprobs, step_logits = handle.generate(
                prompt_tokens, int(n_predict), native, cfg.path, on_piece, bool(keep_logits)
            )
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            if on_text is not None:
                on_text(tail)

        return Completion(
            "".join(pieces), tokens, prompt_tokens, logprobs, cfg, self._settings(cfg, n_predict), step_logits
        )

    def sweep(
        self,
        prompt: str | bytes,
        temps: Sequence[float] | None = None,
        *,
        betas: Sequence[float] | None = None,
        n_predict: int = 128,
        config: SamplingConfig | None = None,
        **options: Unpack[SamplingOptions],
    ) -> list[Completion]:
        """One completion per temperature (or beta), decoded together in one batch.

        The prompt is evaluated once and its KV cache shared; each sequence is
        sampled at its own temperature with the same seed and the other settings
        of ``config`` or the keyword arguments (CPU paths). Logits of a batched
        decode can differ from a single-sequence decode in the last bits, so a
        sweep matches complete() exactly only where sampling is sharp.
        """
        if (temps is None) == (betas is None):
            raise TypeError("give exactly one of temps= and betas=")
        values = list(temps if temps is not None else betas)  # type: ignore[arg-type]
        if not values:
            raise ValueError("the sweep needs at least one temperature")
        base = make_config(None, config, dict(options))
        if base.path == "backend":
            raise ValueError("sweep samples on the CPU paths only ('auto', 'fused' or 'chain')")
        base = replace(base, seed=base.resolved().seed)
        configs = [
            (replace(base, temp=v, beta=None) if temps is not None else replace(base, temp=None, beta=v)).resolved()
            for v in values
        ]
        self._check_bias(base)
        prompt_tokens = self._prompt_tokens(prompt, n_predict)
        with self._call("sweep") as handle:
            results = handle.sweep(
                prompt_tokens, int(n_predict), [c.native(self.eog_tokens) for c in configs], [c.path for c in configs]
            )
        return [
            Completion(self.detokenize(tokens), tokens, prompt_tokens, logprobs, c, self._settings(c, n_predict))
            for (tokens, logprobs), c in zip(results, configs)
        ]

    def _check_bias(self, config: SamplingConfig) -> None:
        for tok in config.logit_bias:
            if not 0 <= tok < self.n_vocab:
                raise ValueError(f"logit_bias token {tok} is outside the vocabulary [0, {self.n_vocab})")

    def _settings(self, config: SamplingConfig, n_predict: int) -> dict[str, Any]:
        return {"model": str(self.path), **config.to_dict(), "n_predict": int(n_predict)}

    def _prompt_tokens(self, prompt: str | bytes, n_predict: int) -> np.ndarray:
        if int(n_predict) < 1:
            raise ValueError(f"n_predict must be >= 1, got {n_predict}")
        tokens = self.tokenize(prompt)
        if tokens.size == 0:
            raise ValueError("the prompt is empty")
        if tokens.size + int(n_predict) > self.n_ctx:
            raise ValueError(
                f"prompt ({tokens.size} tokens) plus n_predict ({n_predict}) exceeds n_ctx={self.n_ctx}; "
                "create the Model with a larger n_ctx or lower n_predict"
            )
        return tokens

    def generate(self, prompt: str | bytes, temp: float | None = None, **kwargs: Any) -> str:
        """Like complete() (same arguments), returning only the text."""
        return self.complete(prompt, temp, **kwargs).text


_cache_lock = threading.Lock()
_cache: dict[str, Model] = {}


def _cached_model(model: str | os.PathLike[str] | None) -> Model:
    key = str(resolve(model))
    with _cache_lock:
        m = _cache.get(key)
        if m is None or m.closed:
            m = _cache[key] = Model(key)
        return m


def generate(
    prompt: str | bytes,
    temp: float | None = None,
    *,
    model: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> str:
    """Sample a continuation with a cached Model (the default model unless one is named)."""
    return _cached_model(model).generate(prompt, temp, **kwargs)
