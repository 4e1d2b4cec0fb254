"""The Python API: Model, Completion and the module-level generate()."""

from __future__ import annotations

import codecs
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import _native
from .config import SamplingConfig, SamplingOptions, make_config, strict_int
from .errors import ModelLoadError
from .gguf_check import check_gguf
from .models import is_verified, resolve
from .vetting import vet as vet_model

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Model", "Completion", "generate", "MAX_THREADS"]

# More threads than this are refused: ggml gains nothing past the cores, and
# libgomp segfaults or exits the process when it cannot start that many.
MAX_THREADS = 256


def _int_in(name: str, value: object, lo: int, hi: int) -> int:
    v = strict_int(name, value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return v


def _token_ids(tokens: npt.ArrayLike) -> np.ndarray:
    """int32 token ids from integers only (no floats, no bools); the vocabulary range is checked natively."""
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"token ids must be a 1-D sequence, got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or arr.dtype.kind not in "iu"):
        raise TypeError(f"token ids must be integers, got {arr.dtype} values such as {arr[0]!r}")
    if arr.size and not (0 <= arr.min() and arr.max() < 2**31):
        raise ValueError(f"token ids must be in [0, 2**31), got {arr.min()} .. {arr.max()}")
    return arr.astype(np.int32)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _available_memory() -> int | None:
    """Bytes of memory the system can still hand out (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


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

    ``path`` is a GGUF file (str, bytes or path-like), a name from
    ``negtemp.models.MODELS``, or None for the default model ($NEGTEMP_MODEL,
    else SmolLM2-135M-Instruct). ``n_ctx`` (prompt plus generated tokens) is
    at most the model's training context by default, and 2048; a larger one
    is refused when its KV cache would not fit in memory and warned about past
    the training context. ``n_threads`` is 1 to MAX_THREADS (256), warned
    about past the CPUs the process may use, and by default those CPUs, at
    most 8. ``n_gpu_layers``: in a GPU build, how many layers go to the GPU
    devices (negtemp.devices()); -1, the default, all of them, 0 none. An
    unfamiliar file is first tried in a child process (negtemp.vetting), so
    one that would crash llama.cpp raises ModelLoadError instead; ``vet=False``
    skips that for files you trust.
    Calls on one Model are serialized; each call gets a fresh llama.cpp
    context, so a call never sees another's state. ``cancel()`` and
    ``close()`` work from any thread and stop a running generation within one
    token; calling the Model from its own ``on_text`` callback raises
    RuntimeError (the call in progress holds it).
    """

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = -1,
        vet: bool = True,
    ) -> None:
        cpus = usable_cpus()
        if n_threads is None:
            n_threads = min(cpus, 8)
        self.n_threads = _int_in("n_threads", n_threads, 1, MAX_THREADS)
        if self.n_threads > cpus:
            # ggml's workers meet at a barrier after every operation: a worker
            # waiting for a CPU holds up all of them (README, "Threads and fork")
            warnings.warn(
                f"n_threads={self.n_threads} is more than the {cpus} CPUs this process may use; "
                "generation slows down sharply (two tokens of a tiny model on 2 CPUs: 3.7 s with 16 threads, "
                "2 ms with 2)",
                RuntimeWarning, stacklevel=2,
            )
        asked_ctx = 0 if n_ctx is None else _int_in("n_ctx", n_ctx, 16, 2**31 - 1)
        self.n_gpu_layers = _int_in("n_gpu_layers", n_gpu_layers, -1, 2**31 - 1)
        self.path: Path = resolve(path)
        check_gguf(self.path)
        if vet and not is_verified(self.path):
            vet_model(self.path)
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread inside a native call, while one runs
        try:
            self._native: _native.Model | None = _native.Model(os.fsencode(self.path), asked_ctx, self.n_threads,
                                                               self.n_gpu_layers)
        except RuntimeError as e:
            raise ModelLoadError(f"{self.path}: {e}") from None
        self.n_vocab: int = self._native.n_vocab
        self.n_ctx: int = self._native.n_ctx
        self.n_ctx_train: int = self._native.n_ctx_train
        self.eog_tokens: frozenset[int] = frozenset(self._native.eog_tokens())
        self._check_context()

    def _check_context(self) -> None:
        """Refuse an n_ctx whose KV cache cannot fit in memory; warn past the training context."""
        assert self._native is not None
        need = self.n_ctx * self._native.kv_bytes_per_token
        free = _available_memory()
        if free is not None and need > free:
            self.close()
            raise ValueError(
                f"n_ctx={self.n_ctx} needs a {need / 2**30:.1f} GiB KV cache for {self.path.name}, more than the "
                f"{free / 2**30:.1f} GiB of memory available; lower n_ctx (the model was trained on "
                f"{self.n_ctx_train} tokens)"
            )
        if self.n_ctx > self.n_ctx_train > 0:
            warnings.warn(
                f"n_ctx={self.n_ctx} is past the {self.n_ctx_train} tokens {self.path.name} was trained on: "
                "text past that length degrades",
                stacklevel=3,
            )

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

    def tokenize(self, text: str | bytes, *, add_special: bool = True, parse_special: bool = True) -> np.ndarray:
        """Token ids (int32) of text, with BOS where the model wants one.

        ``parse_special``: control-token text in ``text`` ("<|im_end|>") becomes
        that control token (True, llama.cpp's default, which chat templates
        need) or is tokenized as plain text (False, for untrusted text).
        """
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"prompt bytes are not valid UTF-8: {e}") from None
        if not isinstance(text, str):
            raise TypeError(f"prompt must be str or bytes, not {type(text).__name__}")
        with self._call("tokenize") as native:
            return native.tokenize(text, bool(add_special), bool(parse_special))

    def chat_prompt(self, user: str) -> str | None:
        """user wrapped in the model's chat template (assistant turn open), or None if it has none."""
        with self._call("chat_prompt") as native:
            return native.chat_prompt(user)

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 sequence)."""
        token = _token_ids([token])[0]
        with self._call("token_bytes") as native:
            return native.token_to_piece(int(token))

    def detokenize(self, tokens: np.ndarray | list[int]) -> str:
        """Text of a token sequence; invalid UTF-8 becomes U+FFFD."""
        tokens = _token_ids(tokens)
        with self._call("detokenize") as h:
            return b"".join(h.token_to_piece(int(t)) for t in tokens).decode("utf-8", errors="replace")

    def logits(self, tokens: np.ndarray | list[int]) -> np.ndarray:
        """Raw logits (float32, shape [len(tokens), n_vocab]) after each prefix of tokens."""
        arr = _token_ids(tokens)
        if arr.size == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence of token ids")
        if arr.size > self.n_ctx:
            raise ValueError(f"{arr.size} tokens do not fit n_ctx={self.n_ctx}")
        free = _available_memory()
        if free is not None and arr.size * self.n_vocab * 4 > free:
            raise ValueError(f"the logits of {arr.size} tokens ({arr.size * self.n_vocab * 4 / 2**30:.1f} GiB) "
                             "do not fit in the memory available; ask for fewer tokens at a time")
        with self._call("logits") as native:
            return native.eval_logits(arr)

    def op_backends(self, prompt: str | bytes = "Temperature", config: SamplingConfig | None = None
                    ) -> list[tuple[str, str, str, str]]:
        """Where one decode of ``prompt`` ran each node of its graph: (name, op, device, buffer type), in order.

        With ``config.path == "backend"`` (the default config: T = -1 on the
        backend path) the sampler chain is part of the graph, and its nodes
        follow the model's "result_output". The device ("CPU", "Vulkan0",
        "CUDA0", ...) is read from the memory the scheduler put the node's
        result in: a device's own buffer type means that device computed it;
        host memory ("CPU", or "Vulkan_Host", the pinned memory a GPU build
        gives the CPU backend) means the CPU did, as for an op a device lacks.
        For checking where a GPU build runs; each node is observed, so this
        decode is slower than a normal one.
        """
        cfg = (config or SamplingConfig(temp=-1.0, path="backend")).resolved()
        tokens = self.tokenize(prompt)
        with self._call("op_backends") as native:
            return [tuple(node) for node in native.op_backends(tokens, cfg.native(self.eog_tokens),
                                                               cfg.path == "backend")]

    def complete(
        self,
        prompt: str | bytes,
        temp: float | None = None,
        *,
        config: SamplingConfig | None = None,
        n_predict: int = 128,
        on_text: Callable[[str], None] | None = None,
        keep_logits: bool = False,
        parse_special: bool = True,
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
        ``parse_special`` as in tokenize(). Raises negtemp.SamplingError (a
        ValueError) if a step has every token masked.
        """
        cfg = make_config(temp, config, dict(options)).resolved()
        native = cfg.native(self.eog_tokens)
        self._check_bias(cfg)
        prompt_tokens = self._prompt_tokens(prompt, n_predict, parse_special)

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
        parse_special: bool = True,
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
        prompt_tokens = self._prompt_tokens(prompt, n_predict, parse_special)
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

    def _prompt_tokens(self, prompt: str | bytes, n_predict: int, parse_special: bool) -> np.ndarray:
        _int_in("n_predict", n_predict, 1, 2**31 - 1)
        tokens = self.tokenize(prompt, parse_special=parse_special)
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
