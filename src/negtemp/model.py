"""The Python API: Model, Completion and the module-level generate()."""

from __future__ import annotations

import codecs
import math
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _native
from .errors import ModelLoadError
from .gguf_check import check_gguf
from .models import resolve
from .sampling import native_temp

__all__ = ["Model", "Completion", "generate"]

DEFAULT_TEMP = 0.8
_MAX_SEED = 2**32 - 2  # 2**32 - 1 is llama.cpp's "pick a random seed"


@dataclass(frozen=True)
class Completion:
    """One generated continuation and the settings that produced it."""

    text: str
    tokens: np.ndarray
    prompt_tokens: np.ndarray
    logprobs: np.ndarray
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


def _check_range(name: str, value: float, lo: float, hi: float) -> float:
    v = float(value)
    if not (lo <= v <= hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return v


class Model:
    """A GGUF model loaded once and sampled many times.

    ``path`` is a GGUF file, a name from ``negtemp.models.MODELS``, or None
    for the default model ($NEGTEMP_MODEL, else SmolLM2-135M-Instruct).
    Calls on one Model are serialized; each call gets a fresh llama.cpp
    context, so a call never sees another's state.
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
        """Free the model's memory; later calls raise RuntimeError."""
        with self._lock:
            if self._native is not None:
                self._native.close()
                self._native = None

    @property
    def closed(self) -> bool:
        return self._native is None

    def _handle(self) -> _native.Model:
        if self._native is None:
            raise RuntimeError(f"Model({self.path.name}) is closed; create a new negtemp.Model")
        return self._native

    def tokenize(self, text: str | bytes, *, add_special: bool = True) -> np.ndarray:
        """Token ids (int32) of text, with BOS where the model wants one."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"prompt bytes are not valid UTF-8: {e}") from None
        if not isinstance(text, str):
            raise TypeError(f"prompt must be str or bytes, not {type(text).__name__}")
        with self._lock:
            return self._handle().tokenize(text, add_special)

    def chat_prompt(self, user: str) -> str | None:
        """user wrapped in the model's chat template (assistant turn open), or None if it has none."""
        with self._lock:
            return self._handle().chat_prompt(user)

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 sequence)."""
        with self._lock:
            return self._handle().token_to_piece(int(token))

    def detokenize(self, tokens: np.ndarray | list[int]) -> str:
        """Text of a token sequence; invalid UTF-8 becomes U+FFFD."""
        with self._lock:
            h = self._handle()
            return b"".join(h.token_to_piece(int(t)) for t in tokens).decode("utf-8", errors="replace")

    def logits(self, tokens: np.ndarray | list[int]) -> np.ndarray:
        """Raw logits (float32, shape [len(tokens), n_vocab]) after each prefix of tokens."""
        arr = np.asarray(tokens, dtype=np.int32)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence of token ids")
        if arr.size > self.n_ctx:
            raise ValueError(f"{arr.size} tokens do not fit n_ctx={self.n_ctx}")
        with self._lock:
            return self._handle().eval_logits(arr)

    def complete(
        self,
        prompt: str | bytes,
        temp: float | None = None,
        *,
        beta: float | None = None,
        n_predict: int = 128,
        seed: int | None = None,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        logit_bias: Mapping[int, float] | None = None,
        ignore_eos: bool = False,
        backend_sampling: bool = False,
        on_text: Callable[[str], None] | None = None,
        keep_logits: bool = False,
        fused: bool = True,
    ) -> Completion:
        """Sample a continuation of prompt.

        The chain is llama.cpp's: logit bias, then repeat penalty, top-k,
        top-p and min-p (each only when changed from its neutral value),
        then temperature and the random draw. ``temp`` defaults to 0.8; give
        ``beta`` (= 1/T) instead to reach beta = -inf (anti-greedy) or 0
        (uniform). A seed of None picks one at random and records it.
        ``on_text`` receives the text as it is generated. ``keep_logits``
        (CPU path only) keeps the raw logits each token was sampled from in
        ``Completion.step_logits`` (float32, one row per generated token).
        On the CPU path the plain chain (logit bias, temperature, draw) runs
        negtemp's fused sampler: the same distribution and random stream as
        llama.cpp's chain (so the same tokens for a seed, up to rounding at
        cumulative boundaries), about 20 times faster; ``fused=False`` forces
        the chain.
        """
        params, settings = self._sampling(
            temp, beta, seed, top_k, top_p, min_p, repeat_penalty, logit_bias, ignore_eos, backend_sampling, fused
        )
        prompt_tokens = self._prompt_tokens(prompt, n_predict)
        settings["n_predict"] = int(n_predict)

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []

        def on_piece(raw: bytes) -> None:
            s = decoder.decode(raw)
            if s:
                pieces.append(s)
                if on_text is not None:
                    on_text(s)

        with self._lock:
            tokens, logprobs, step_logits = self._handle().generate(
                prompt_tokens, int(n_predict), params, on_piece, bool(keep_logits)
            )
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            if on_text is not None:
                on_text(tail)

        return Completion("".join(pieces), tokens, prompt_tokens, logprobs, settings, step_logits)

    def sweep(
        self,
        prompt: str | bytes,
        temps: Sequence[float] | None = None,
        *,
        betas: Sequence[float] | None = None,
        n_predict: int = 128,
        seed: int | None = None,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        logit_bias: Mapping[int, float] | None = None,
        ignore_eos: bool = False,
        fused: bool = True,
    ) -> list[Completion]:
        """One completion per temperature (or beta), decoded together in one batch.

        The prompt is evaluated once and its KV cache shared; each sequence is
        sampled at its own temperature with the same seed (CPU path). Logits of
        a batched decode can differ from a single-sequence decode in the last
        bits, so a sweep matches complete() exactly only where sampling is sharp.
        """
        if (temps is None) == (betas is None):
            raise TypeError("give exactly one of temps= and betas=")
        values = list(temps if temps is not None else betas)  # type: ignore[arg-type]
        if not values:
            raise ValueError("the sweep needs at least one temperature")
        if seed is None:
            seed = secrets.randbelow(_MAX_SEED + 1)
        runs = [
            self._sampling(
                v if temps is not None else None, v if betas is not None else None, seed, top_k, top_p, min_p,
                repeat_penalty, logit_bias, ignore_eos, False, fused,
            )
            for v in values
        ]
        prompt_tokens = self._prompt_tokens(prompt, n_predict)
        with self._lock:
            results = self._handle().sweep(prompt_tokens, int(n_predict), [p for p, _ in runs])
        out = []
        for (tokens, logprobs), (_, settings) in zip(results, runs):
            settings["n_predict"] = int(n_predict)
            out.append(Completion(self.detokenize(tokens), tokens, prompt_tokens, logprobs, settings))
        return out

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

    def _sampling(
        self,
        temp: float | None,
        beta: float | None,
        seed: int | None,
        top_k: int,
        top_p: float,
        min_p: float,
        repeat_penalty: float,
        logit_bias: Mapping[int, float] | None,
        ignore_eos: bool,
        backend: bool,
        fused: bool,
    ) -> tuple[_native.SamplingParams, dict[str, Any]]:
        """Validated native sampling parameters and the settings to report with them."""
        if temp is None and beta is None:
            temp = DEFAULT_TEMP
        b, t_native = native_temp(temp, beta)
        if int(top_k) < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
        top_p = _check_range("top_p", top_p, 0.0, 1.0)
        min_p = _check_range("min_p", min_p, 0.0, 1.0)
        if not (repeat_penalty > 0 and math.isfinite(repeat_penalty)):
            raise ValueError(f"repeat_penalty must be a positive finite number, got {repeat_penalty}")
        if seed is None:
            seed = secrets.randbelow(_MAX_SEED + 1)
        if not (0 <= int(seed) <= _MAX_SEED):
            raise ValueError(f"seed must be in [0, {_MAX_SEED}], got {seed}")
        bias: dict[int, float] = {}
        for tok, val in (logit_bias or {}).items():
            if not (0 <= int(tok) < self.n_vocab):
                raise ValueError(f"logit_bias token {tok} is outside the vocabulary [0, {self.n_vocab})")
            bias[int(tok)] = float(val)
        if ignore_eos:
            bias.update({t: -math.inf for t in self.eog_tokens})

        params = _native.SamplingParams()
        params.temp = t_native
        params.seed = int(seed)
        params.top_k = int(top_k)
        params.top_p = top_p
        params.min_p = min_p
        params.repeat_penalty = float(repeat_penalty)
        params.backend = bool(backend)
        params.fused = bool(fused)
        params.logit_bias = bias
        settings: dict[str, Any] = {
            "model": str(self.path),
            "temp": None if temp is None else float(temp),
            "beta": b,
            "seed": int(seed),
            "top_k": int(top_k),
            "top_p": top_p,
            "min_p": min_p,
            "repeat_penalty": float(repeat_penalty),
            "logit_bias": {str(k): v for k, v in (logit_bias or {}).items()},
            "ignore_eos": bool(ignore_eos),
            "backend_sampling": bool(backend),
        }
        return params, settings

    def generate(self, prompt: str | bytes, temp: float | None = None, **kwargs: Any) -> str:
        """Like complete(), returning only the text."""
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
