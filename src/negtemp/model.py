"""The Python API: Model, and the module-level generate() over a cache of Models."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import _native, remote
from .admission import admit
from .batching import Prompt, Request
from .chat import chat_messages
from .config import SamplingConfig, SamplingOptions, make_config, warn_identical_draws
from .convert import int_in, strict_int
from .errors import Cancelled, ModelLoadError, RemoteError, RemoteLoadError, SamplingError
from .grammar import JsonSchema, grammar_text
from .host import available_memory, context_size, thread_count
from .registry import resolve
from .remote import rpc_endpoints
from .results import Chunk, Completion, PrefixCacheInfo, StopType, TokenProb
from .schema import convert, default
from .text import TokenText, stop_strings

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Model", "Prompt", "Request", "RequestError", "generate"]

# what a batch reports for a request that cannot run, or could not draw
RequestError = ValueError | TypeError
# the names are the native layer's, which refuses any other
KVType = Literal["f16", "f32"]

N_PREDICT: int = default("n_predict")
N_PROBS: int = default("n_probs")

# recent prompts whose KV cache a Model keeps by default (docs/python.md, "Prefix reuse")
DEFAULT_PREFIX_CACHE = 4

# what ended a sequence, as the native stepper says it ("" while it runs)
_NATIVE_STOP: dict[str, StopType] = {"eos": "eos", "limit": "limit"}


def _token_ids(tokens: npt.ArrayLike) -> np.ndarray:
    """int32 token ids from integers only (no floats, no bools); the vocabulary range is checked natively."""
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"token ids must be a 1-D sequence, got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or arr.dtype.kind not in "iu"):
        raise TypeError(f"token ids must be integers, got {arr.dtype} values such as {arr[0]!r}")
    if arr.size and not (arr.min() >= 0 and arr.max() < 2**31):
        raise ValueError(f"token ids must be in [0, 2**31), got {arr.min()} .. {arr.max()}")
    return arr.astype(np.int32)


class Model:
    """A GGUF model loaded once and sampled many times.

    ``path`` is a GGUF file (str, bytes or path-like), a name from
    ``negtemp.registry.MODELS``, a Hugging Face name (``"hf:owner/repo:Q4_K_M"``,
    negtemp.hub; or ``Model.from_pretrained``), or None for the default model
    ($NEGTEMP_MODEL, else SmolLM2-135M-Instruct). ``n_ctx`` (prompt plus generated tokens) is
    at most the model's training context by default, and 2048; a larger one
    is refused when its KV cache would not fit in memory and warned about past
    the training context. ``n_threads`` is 1 to host.MAX_THREADS (256), warned
    about past the CPUs the process may use, and by default those CPUs, at
    most 8. ``n_gpu_layers``: how many layers (the output layer counts as
    one) go to the GPU devices of a GPU build (negtemp.devices()) and to the
    ``rpc`` servers; -1 all of them, 0 none; None, the default, is -1 without
    ``rpc``, and with it an equal share for this machine and each server.
    ``rpc``: llama.cpp RPC servers ("host:port", e.g. started with
    ``negtemp rpc-server``) to split the model over; the offloaded layers,
    the last ones, are divided among them in proportion to their free memory.
    ``rpc_timeout``: seconds a server may take to accept, take or answer one
    request before it counts as lost. A server that cannot be reached, dies
    or misbehaves raises negtemp.RemoteError (RemoteLoadError while loading)
    and leaves the Model unusable (docs/rpc.md).
    ``main_gpu``: in a GPU build, the index of the one GPU device that holds
    the whole model (llama.cpp's split mode "none"); None, the default,
    splits the layers over every GPU device. A CPU build has no GPU device:
    both are accepted there, recorded in each Completion's settings, and
    change nothing. An
    unfamiliar file is first tried in a child process (negtemp.vetting), so
    one that would crash llama.cpp raises ModelLoadError instead; ``vet=False``
    skips that for files you trust.
    ``prefix_cache``: how many recent prompts (0 to 64; 0 turns it off) keep
    their KV cache between calls, in one cache of ``n_ctx`` tokens in all
    (its memory: ``prefix_cache_info().bytes``, made at the first call). A
    prompt that starts with one of them, or with one and what was generated
    after it (the next turn of a chat), evaluates only the tokens past that
    prefix; the result is what a fresh context gives (docs/python.md, "Prefix reuse").
    ``clear_prefix_cache()`` empties it.
    ``kv_type``: the KV cache's element type, "f16" (llama.cpp's default) or
    "f32", which keeps keys and values unrounded at twice the memory: what
    comparing logits with a float32 implementation of the same weights needs
    (docs/transformers.md).
    Calls on one Model are serialized a step at a time. A call on the CPU
    paths uses the prefix cache when it is free and large enough (one call
    at a time; at most 8 draws), else a fresh llama.cpp context, as the
    backend path always does; either way it sees only its own prompt's
    cells, and an ``on_text`` callback or a ``stream()`` loop may call the
    Model itself.
    ``cancel()`` and ``close()`` work from any thread and stop the running
    generations within one token (they raise negtemp.Cancelled).
    """

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int | None = None,
        main_gpu: int | None = None,
        rpc: str | Sequence[str] = (),
        rpc_timeout: float = 60.0,
        vet: bool = True,
        prefix_cache: int = DEFAULT_PREFIX_CACHE,
        kv_type: KVType = "f16",
    ) -> None:
        self.n_threads = thread_count("n_threads", n_threads)
        asked_ctx = context_size("n_ctx", n_ctx) or 0
        self.main_gpu = None if main_gpu is None else int_in("main_gpu", main_gpu, 0, 2**31 - 1)
        self.rpc: tuple[str, ...] = rpc_endpoints(rpc)
        self.rpc_timeout = remote.rpc_timeout(rpc_timeout)
        if self.rpc and self.main_gpu is not None:
            raise ValueError("main_gpu puts the whole model on one local GPU; it cannot be combined with rpc")
        if n_gpu_layers is not None:
            int_in("n_gpu_layers", n_gpu_layers, -1, 2**31 - 1)
        self.path: Path = resolve(path)
        self.n_gpu_layers = admit(self.path, vet_file=vet, rpc=self.rpc, rpc_timeout=self.rpc_timeout,
                                  n_gpu_layers=n_gpu_layers)
        self._lock = threading.Lock()
        self.kv_type = kv_type
        try:
            self._native: _native.Model | None = _native.Model(
                os.fsencode(self.path), asked_ctx, self.n_threads, self.n_gpu_layers,
                -1 if self.main_gpu is None else self.main_gpu, list(self.rpc), round(self.rpc_timeout * 1000),
                strict_int("prefix_cache", prefix_cache), str(kv_type),
            )
        except RemoteError as e:
            raise RemoteLoadError(f"{self.path}: {e}", e.endpoint) from None
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
        free = available_memory()
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

    @classmethod
    def from_pretrained(cls, repo_id: str, quant: str | None = None, *, filename: str | None = None,
                        **kwargs: Any) -> Model:
        """A GGUF from a Hugging Face repository, downloaded into the Hugging Face cache (negtemp.hub):
        the file named, else the one of quantization ``quant`` (e.g. "Q4_K_M"), else Q4_K_M or the
        repository's only GGUF. ``kwargs`` are Model's."""
        if quant is not None and filename is not None:
            raise ValueError("give quant or filename, not both")
        name = f"hf:{repo_id}" + (f"/{filename}" if filename else f":{quant}" if quant else "")
        return cls(name, **kwargs)

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the model's memory; later calls raise RuntimeError.

        A generation running in another thread stops at its next token, and
        an open stream() at its next step, raising negtemp.Cancelled there.
        """
        while not self._lock.acquire(timeout=0.05):
            self.cancel()  # again each time: a generation that was just starting clears the request
        try:
            if self._native is not None:
                self._native.close()
                self._native = None
        finally:
            self._lock.release()

    def cancel(self) -> None:
        """Stop the generations running on this Model (complete(), open
        stream()s, a sweep), from any thread: each raises negtemp.Cancelled at
        its next token. Generations started later are not affected."""
        native = self._native
        if native is not None:
            native.cancel()

    @property
    def closed(self) -> bool:
        return self._native is None

    def clear_prefix_cache(self) -> None:
        """Forget every cached prompt (docs/python.md, "Prefix reuse"); one in use now is dropped when its call ends."""
        with self._call() as native:
            native.clear_prefix_cache()

    def prefix_cache_info(self) -> PrefixCacheInfo:
        """What the prefix cache holds now, and what the last call that used it reused."""
        with self._call() as native:
            return PrefixCacheInfo(*native.prefix_cache_info())

    @contextmanager
    def _call(self) -> Iterator[_native.Model]:
        """The native model, held for one call (or one step of a generation) by this thread."""
        with self._lock:
            if self._native is None:
                raise RuntimeError(f"Model({self.path.name}) is closed; create a new negtemp.Model")
            yield self._native

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
        with self._call() as native:
            return native.tokenize(text, bool(add_special), bool(parse_special))

    def chat_prompt(self, messages: str | Sequence[Mapping[str, str]]) -> str | None:
        """The prompt the model's own chat template makes of ``messages`` (OpenAI
        style, ``[{"role": "user", "content": "..."}]``; a str is one user
        message), with the assistant's turn opened; None if the GGUF has no
        template. ValueError for a malformed message, or a template llama.cpp
        does not recognise."""
        pairs = chat_messages(messages)
        with self._call() as native:
            return native.chat_prompt(pairs)

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 sequence)."""
        with self._call() as native:
            return native.token_to_piece(strict_int("token", token))

    def detokenize(self, tokens: np.ndarray | list[int]) -> str:
        """Text of a token sequence; invalid UTF-8 becomes U+FFFD."""
        tokens = _token_ids(tokens)
        with self._call() as h:
            return b"".join(h.token_to_piece(int(t)) for t in tokens).decode("utf-8", errors="replace")

    def logits(self, tokens: np.ndarray | list[int]) -> np.ndarray:
        """Raw logits (float32, shape [len(tokens), n_vocab]) after each prefix of tokens."""
        arr = _token_ids(tokens)
        free = available_memory()
        if free is not None and arr.size * self.n_vocab * 4 > free:
            raise ValueError(f"the logits of {arr.size} tokens ({arr.size * self.n_vocab * 4 / 2**30:.1f} GiB) "
                             "do not fit in the memory available; ask for fewer tokens at a time")
        with self._call() as native:
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
        with self._call() as native:
            return native.op_backends(tokens, cfg.native())

    def stream(
        self,
        prompt: Prompt,
        temp: float | None = None,
        *,
        config: SamplingConfig | None = None,
        n_predict: int = N_PREDICT,
        stop: str | Iterable[str] | None = None,
        n_probs: int = N_PROBS,
        keep_logits: bool = False,
        parse_special: bool = True,
        grammar: str | None = None,
        json_schema: JsonSchema | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Iterator[Chunk]:
        """Sample a continuation of prompt a token at a time: one negtemp.Chunk per token.

        Takes complete()'s arguments. The generation runs as the iterator is
        read; closing it (``close()``, leaving a ``with closing(...)`` block,
        or dropping it) stops the generation and frees its context at once.
        The settings are checked and the context made when stream() is
        called, so errors in them raise here, not at the first token.
        """
        cfg = make_config(temp, config, dict(options)).resolved()
        stops = stop_strings(stop)
        gen, _ = self._start(prompt, cfg, n_predict, 1, n_probs, keep_logits, parse_special,
                             grammar_text(grammar, json_schema))
        return self._chunks(gen, stops)

    def _start(self, prompt: Prompt, cfg: SamplingConfig, n_predict: int, n: int, n_probs: int, keep_logits: bool,
               parse_special: bool, grammar: str) -> tuple[_native.Generation, np.ndarray]:
        """A native generation of n draws of prompt, ready for their first tokens, and the prompt's tokens."""
        prompt_tokens = self._prompt_tokens(prompt, parse_special)
        with self._call() as native:
            gen = _native.Generation(native, prompt_tokens, convert("n_predict", n_predict), cfg.native(),
                                     convert("n", n), bool(keep_logits), convert("n_probs", n_probs), grammar)
        return gen, prompt_tokens

    def _steps(self, gen: _native.Generation, stops: Sequence[tuple[str, ...]]
               ) -> Iterator[tuple[int, Chunk | SamplingError]]:
        """Each sequence's tokens as (sequence, Chunk), in decoding order: text decoded across tokens, each
        sequence cut at its first stop string (stops[sequence]; it then decodes no more). A batch's sequence
        that could not draw (every token masked) ends with (sequence, SamplingError)."""
        texts = [TokenText(s) for s in stops]
        try:
            while True:
                with self._lock:
                    if self._native is None:
                        raise Cancelled(f"Model({self.path.name}) was closed while this generation was open")
                    steps = gen.next()
                if steps is None:
                    return
                for seq, token, logprob, piece, finish, logits, top in steps:
                    if finish == "error":
                        yield seq, SamplingError(piece.decode())
                        continue
                    text = texts[seq]
                    new = text.feed(piece, last=bool(finish))
                    reason: StopType | None = "word" if text.stopped else _NATIVE_STOP.get(finish)
                    if text.stopped and not finish:
                        gen.end(seq)
                    yield seq, self._chunk(new, token, logprob, reason, top, logits, piece)
        finally:
            gen.close()

    def _chunks(self, gen: _native.Generation, stops: tuple[str, ...]) -> Iterator[Chunk]:
        """The generation's one sequence as Chunks."""
        for _, chunk in self._steps(gen, [stops]):
            assert isinstance(chunk, Chunk)  # only a batch's sequences end in an error
            yield chunk
            if chunk.stop_type is not None:
                return

    def _chunk(self, text: str, token: int, logprob: float, reason: StopType | None,
               top: tuple[np.ndarray, np.ndarray, np.ndarray, float, int] | None, logits: np.ndarray | None,
               piece: bytes) -> Chunk:
        """A native step as a Chunk: with n_probs, the step's most likely tokens with their text, and the drawn
        token's log-probability and rank under the model."""
        if top is None:
            return Chunk(text, int(token), float(logprob), reason, (), logits, piece)
        ids, sampled, model, drawn_model, rank = top
        with self._call() as native:
            pieces = [native.token_to_piece(int(t)) for t in ids]
        alternatives = tuple(
            TokenProb(int(t), p.decode("utf-8", errors="replace"), float(ls), float(lm))
            for t, p, ls, lm in zip(ids, pieces, sampled, model, strict=True)
        )
        return Chunk(text, int(token), float(logprob), reason, alternatives, logits, piece, float(drawn_model),
                     int(rank))

    def complete(
        self,
        prompt: Prompt,
        temp: float | None = None,
        *,
        config: SamplingConfig | None = None,
        n_predict: int = N_PREDICT,
        stop: str | Iterable[str] | None = None,
        n_probs: int = N_PROBS,
        on_text: Callable[[str], None] | None = None,
        keep_logits: bool = False,
        parse_special: bool = True,
        on_chunk: Callable[[Chunk], None] | None = None,
        grammar: str | None = None,
        json_schema: JsonSchema | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Completion:
        """Sample a continuation of prompt (text, or token ids used as they are).

        The sampling settings are ``config`` (a negtemp.SamplingConfig) or the
        same as keyword arguments: ``temp`` (default 0.8) or ``beta`` (= 1/T,
        to reach beta = -inf, anti-greedy, or 0, uniform), ``seed`` (None picks
        one and records it), ``top_k``, ``top_p``, ``min_p``,
        ``repeat_penalty``, ``penalty_last_n``, ``logit_bias``, ``ignore_eos``
        and ``path`` ("auto", "fused", "chain", "backend"). docs/semantics.md
        defines every chain at every T. Generation ends after ``n_predict``
        tokens, at an end-of-generation token, or at the first of the
        ``stop`` strings (one or several, matched across token boundaries
        and left out of the text); ``stop_type`` says which ("limit", "eos",
        "word"), and ``finish_reason`` in OpenAI's words. ``n_probs``
        (CPU paths) keeps each step's ``n_probs`` most likely tokens in
        ``top_logprobs`` (and each token's probability and rank under the
        model in ``model_logprobs`` and ``ranks``). ``on_text`` receives the
        text as it is generated, ``on_chunk`` each negtemp.Chunk.
        ``keep_logits`` (CPU paths) keeps the raw logits each token was
        sampled from in ``Completion.step_logits``. ``parse_special`` as in
        tokenize(). ``grammar`` (GBNF text with a rule named root) or
        ``json_schema`` (a dict) restricts the text (CPU paths): at each step
        the tokens it does not allow are masked, then the chain runs on the
        rest, so T -> 0- picks the least likely allowed token
        (docs/semantics.md, "Grammars"); ``step_logits`` and ``top_logprobs``
        then hold the masked logits. Raises ValueError naming a setting out of range (a
        logit-bias token outside the vocabulary, say), negtemp.SamplingError
        (a ValueError) if a step has every token masked, and
        negtemp.ContextOverflowError (a ValueError) if the prompt and
        n_predict do not fit n_ctx.
        """
        cfg = make_config(temp, config, dict(options)).resolved()
        stops = stop_strings(stop)
        gbnf = grammar_text(grammar, json_schema)
        gen, prompt_tokens = self._start(prompt, cfg, n_predict, 1, n_probs, keep_logits, parse_special, gbnf)
        draw = _Draw()
        for c in self._chunks(gen, stops):
            draw.add(c)
            if c.text and on_text is not None:
                on_text(c.text)
            if on_chunk is not None:
                on_chunk(c)
        return draw.completion(prompt_tokens, cfg, self._settings(cfg, n_predict, stops, grammar, json_schema),
                               n_probs, keep_logits)

    def draws(
        self,
        prompt: Prompt,
        temp: float | None = None,
        *,
        n: int,
        config: SamplingConfig | None = None,
        n_predict: int = N_PREDICT,
        stop: str | Iterable[str] | None = None,
        n_probs: int = N_PROBS,
        keep_logits: bool = False,
        parse_special: bool = True,
        grammar: str | None = None,
        json_schema: JsonSchema | None = None,
        **options: Unpack[SamplingOptions],
    ) -> list[Completion]:
        """``n`` independent draws of one prompt at one setting, decoded together in one batch.

        Takes complete()'s arguments. The prompt is evaluated once (past the
        prefix cache's part) and its KV cache shared; draw i is sampled with
        seed + i (as llama-server seeds the ``n`` completions of a request),
        recorded in its ``config``, so ``complete(..., seed=draws[i].config.seed)``
        gives it again alone (exactly where sampling is sharp: a batched decode's
        logits can differ from a single sequence's in the last bits). A draw that
        reaches a stop string stops decoding there. One to 256 draws (llama.cpp's
        limit); more than 8 decode on a fresh context rather than the prefix
        cache. Warns when the setting leaves no randomness, so every draw is the
        same (T = 0, beta = +-inf, top_k = 1) or nearly so (|T| <= 0.001).
        """
        cfg = make_config(temp, config, dict(options)).resolved()
        stops = stop_strings(stop)
        gen, prompt_tokens = self._start(prompt, cfg, n_predict, n, n_probs, keep_logits, parse_special,
                                         grammar_text(grammar, json_schema))
        warn_identical_draws(cfg, len(gen.seeds))
        draws = [_Draw() for _ in gen.seeds]
        for seq, c in self._steps(gen, [stops] * len(draws)):
            assert isinstance(c, Chunk)  # only a batch's sequences end in an error
            draws[seq].add(c)
        configs = [replace(cfg, seed=s) for s in gen.seeds]
        return [d.completion(prompt_tokens, c, self._settings(c, n_predict, stops, grammar, json_schema), n_probs,
                             keep_logits)
                for d, c in zip(draws, configs, strict=True)]

    def batch(
        self,
        prompts: Sequence[Prompt],
        temp: float | None = None,
        *,
        n: int = 1,
        config: SamplingConfig | None = None,
        n_predict: int = N_PREDICT,
        stop: str | Iterable[str] | None = None,
        n_probs: int = N_PROBS,
        keep_logits: bool = False,
        parse_special: bool = True,
        grammar: str | None = None,
        json_schema: JsonSchema | None = None,
        parallel: int | None = None,
        **options: Unpack[SamplingOptions],
    ) -> list[list[Completion]]:
        """Many prompts in one decode loop: for each prompt, its ``n`` draws (a list, draw i seeded seed + i).

        Takes draws()'s arguments, for every prompt. ``parallel`` sequences
        (1 to 256; by default 32, or fewer when there are fewer draws in all)
        decode together, a token each per step; a sequence that ends frees its
        place for the next draw at once (continuous batching). A prompt
        continues the longest prefix another sequence holds (a shared system
        prompt or few-shot header is evaluated once) on a model without a
        sliding window, and a prompt's draws that start together evaluate it
        once. Memory: a KV cache of ``parallel`` x (the longest prompt +
        n_predict) tokens, and a row of logits per sequence; the batch runs on
        a context of its own, not the prefix cache. Each draw samples exactly
        as complete() would from the logits its step gave (which a batched
        decode can change in the last bits). Raises negtemp.SamplingError,
        naming the prompt, when a step of one has every token masked.
        stream_batch() gives the tokens as they come; batch_requests() takes a
        setting per prompt.
        """
        requests = self._requests(prompts, temp, config, options, n, n_predict, stop, n_probs, grammar, json_schema)
        warn_identical_draws(requests[0].config, n)
        return self._collect(requests, parallel, keep_logits, parse_special)

    def stream_batch(
        self,
        prompts: Sequence[Prompt],
        temp: float | None = None,
        *,
        n: int = 1,
        config: SamplingConfig | None = None,
        n_predict: int = N_PREDICT,
        stop: str | Iterable[str] | None = None,
        n_probs: int = N_PROBS,
        keep_logits: bool = False,
        parse_special: bool = True,
        grammar: str | None = None,
        json_schema: JsonSchema | None = None,
        parallel: int | None = None,
        **options: Unpack[SamplingOptions],
    ) -> Iterator[tuple[int, int, Chunk]]:
        """batch() a token at a time: (prompt index, draw index, negtemp.Chunk) as each token is sampled.

        A draw's last chunk has its ``stop_type``. Closing the iterator stops
        the batch and frees its context, as for stream(). The prompts and
        settings are checked, and the context made, when stream_batch() is
        called. Raises negtemp.SamplingError, naming the prompt, when a step
        of one has every token masked.
        """
        requests = self._requests(prompts, temp, config, options, n, n_predict, stop, n_probs, grammar, json_schema)
        prepared = []
        for r, req in enumerate(requests):
            try:
                prepared.append(self._prepare(req, parse_special))
            except ValueError as e:
                raise type(e)(f"prompt {r}: {e}") from None
        return self._batch_chunks(self._start_batch(prepared, parallel, keep_logits), prepared)

    def _batch_chunks(self, gen: _native.Generation, prepared: list[_Prepared]) -> Iterator[tuple[int, int, Chunk]]:
        jobs = gen.jobs
        for job, item in self._steps(gen, [prepared[r].stops for r, _ in jobs]):
            r, d = jobs[job]
            if isinstance(item, SamplingError):
                raise SamplingError(f"prompt {r}: {item}")
            yield r, d, item

    def batch_requests(
        self,
        requests: Sequence[Request],
        *,
        parallel: int | None = None,
        keep_logits: bool = False,
        parse_special: bool = True,
    ) -> Iterator[tuple[int, list[Completion] | RequestError]]:
        """batch() with settings of each prompt's own (negtemp.Request): (request index, its draws) as each
        request finishes, in the order they finish; ``keep_logits`` keeps every request's logits (a
        Request's own keeps its). A request that cannot run (check_request() raises) or a
        step of which has every token masked (negtemp.SamplingError) gives (index, the exception) instead,
        and the others go on."""
        prepared: dict[int, _Prepared] = {}
        for r, req in enumerate(requests):
            try:
                prepared[r] = self._prepare(req, parse_special)
            except (ValueError, TypeError) as e:
                yield r, e
        if not prepared:
            return
        order = list(prepared)
        gen = self._start_batch([prepared[r] for r in order], parallel, keep_logits)
        jobs = [(order[i], d) for i, d in gen.jobs]
        draws = [_Draw() for _ in jobs]
        left = {r: p.request.n for r, p in prepared.items()}
        errors: dict[int, SamplingError] = {}
        for job, item in self._steps(gen, [prepared[r].stops for r, _ in jobs]):
            r = jobs[job][0]
            if isinstance(item, SamplingError):
                errors.setdefault(r, item)
            else:
                draws[job].add(item)
                if item.stop_type is None:
                    continue
            left[r] -= 1
            if left[r] == 0:
                yield r, errors.get(r) or self._request_completions(prepared[r], jobs, gen.seeds, draws, keep_logits,
                                                                    r)

    def check_request(self, request: Request, *, parse_special: bool = True) -> None:
        """Raise what batch_requests() would report for ``request`` before decoding it: a setting out of range,
        a prompt that does not fit with n_predict (negtemp.ContextOverflowError), a grammar that does not parse."""
        self._prepare(request, parse_special)

    def _prepare(self, req: Request, parse_special: bool) -> _Prepared:
        """A request checked and ready for the native batch."""
        if not isinstance(req, Request):
            raise TypeError(f"a request must be a negtemp.Request, not {type(req).__name__}")
        p = _Prepared(req, self._prompt_tokens(req.prompt, parse_special), req.config.resolved(),
                      stop_strings(req.stop), grammar_text(req.grammar, req.json_schema),
                      convert("n_predict", req.n_predict), strict_int("n", req.n), convert("n_probs", req.n_probs))
        with self._call() as native:
            native.check_request(p.tokens, p.n_predict, p.grammar)
        return p

    def _requests(self, prompts: Sequence[Prompt], temp: float | None, config: SamplingConfig | None,
                  options: Mapping[str, Any], n: int, n_predict: int, stop: str | Iterable[str] | None, n_probs: int,
                  grammar: str | None, json_schema: JsonSchema | None) -> list[Request]:
        """One Request per prompt, all with the same settings (the seed drawn once)."""
        if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
            raise TypeError("prompts must be a list of prompts (for one prompt, use complete() or draws())")
        if not prompts:
            raise ValueError("prompts is empty: give at least one prompt")
        cfg = make_config(temp, config, dict(options)).resolved()
        stops = stop_strings(stop)
        return [Request(p, cfg, n, n_predict, stops, n_probs, grammar, json_schema) for p in prompts]

    def _start_batch(self, prepared: Sequence[_Prepared], parallel: int | None, keep_logits: bool
                     ) -> _native.Generation:
        """A native generation of every request's draws, ready for their first tokens."""
        with self._call() as native:
            return _native.Generation(
                native, [p.tokens for p in prepared], [p.config.native() for p in prepared],
                [p.n_predict for p in prepared], [p.n for p in prepared], [p.n_probs for p in prepared],
                [p.grammar for p in prepared], [bool(keep_logits or p.request.keep_logits) for p in prepared],
                None if parallel is None else strict_int("parallel", parallel),
            )

    def _request_completions(self, p: _Prepared, jobs: Sequence[tuple[int, int]], seeds: Sequence[int],
                             draws: list[_Draw], keep_logits: bool, r: int) -> list[Completion]:
        """Request r's draws as Completions, in draw order."""
        req = p.request
        out = []
        for job, ((owner, _), seed) in enumerate(zip(jobs, seeds, strict=True)):
            if owner == r:
                cfg = replace(p.config, seed=seed)
                settings = self._settings(cfg, p.n_predict, p.stops, req.grammar, req.json_schema)
                out.append(draws[job].completion(p.tokens, cfg, settings, p.n_probs,
                                                 keep_logits or req.keep_logits))
        return out

    def _collect(self, requests: Sequence[Request], parallel: int | None, keep_logits: bool,
                 parse_special: bool) -> list[list[Completion]]:
        """Every request's draws, in request order; SamplingError naming the first request that could not draw."""
        out: list[list[Completion]] = [[] for _ in requests]
        for r, draws in self.batch_requests(requests, parallel=parallel, keep_logits=keep_logits,
                                            parse_special=parse_special):
            if isinstance(draws, BaseException):
                raise type(draws)(f"prompt {r}: {draws}") from None
            out[r] = draws
        return out

    def chat(
        self,
        messages: str | Sequence[Mapping[str, str]],
        temp: float | None = None,
        **kwargs: Any,
    ) -> Completion:
        """The assistant's reply to an OpenAI-style conversation, with the model's own chat template.

        ``messages``: ``[{"role": "system" | "user" | "assistant", "content":
        "..."}, ...]``, or a str for one user message. Takes complete()'s
        other arguments; the reply ends at the model's end-of-turn token
        (stop_type "eos") unless a stop string or n_predict comes first.
        ValueError for a model without a chat template (a base model): use
        complete() with a prompt of your own.
        """
        prompt = self.chat_prompt(messages)
        if prompt is None:
            raise ValueError(
                f"{self.path.name} has no chat template (a base model, or a GGUF without "
                "tokenizer.chat_template): it was not trained on conversations; use complete() with a prompt"
            )
        return self.complete(prompt, temp, **kwargs)

    def sweep(
        self,
        prompt: str | bytes,
        temps: Sequence[float] | None = None,
        *,
        betas: Sequence[float] | None = None,
        n_predict: int = N_PREDICT,
        config: SamplingConfig | None = None,
        stop: str | Iterable[str] | None = None,
        parse_special: bool = True,
        **options: Unpack[SamplingOptions],
    ) -> list[Completion]:
        """One completion per temperature (or beta), decoded together in one batch.

        The prompt is evaluated once and its KV cache shared; each sequence is
        sampled at its own temperature with the same seed and the other settings
        of ``config`` or the keyword arguments (CPU paths). Logits of a batched
        decode can differ from a single-sequence decode in the last bits, so a
        sweep matches complete() exactly only where sampling is sharp. A
        sequence that reaches a ``stop`` string ends there, as in draws(). It
        runs as a batch() of one prompt: 32 sequences decode together unless
        there are fewer temperatures.
        """
        if (temps is None) == (betas is None):
            raise TypeError("give exactly one of temps= and betas=")
        values = list(temps if temps is not None else betas)  # type: ignore[arg-type]
        if not values:
            raise ValueError("nothing to sweep: give at least one setting (a temperature or a beta)")
        base = make_config(None, config, dict(options))
        base = replace(base, seed=base.resolved().seed)
        configs = [
            (replace(base, temp=v, beta=None) if temps is not None else replace(base, temp=None, beta=v)).resolved()
            for v in values
        ]
        requests = [Request(prompt, c, 1, n_predict, stop_strings(stop)) for c in configs]
        return [draws[0] for draws in self._collect(requests, None, False, parse_special)]

    def _settings(self, config: SamplingConfig, n_predict: int, stops: tuple[str, ...], grammar: str | None = None,
                  json_schema: JsonSchema | None = None) -> dict[str, Any]:
        constraint: dict[str, Any] = {"grammar": grammar} if grammar is not None else {}
        if json_schema is not None:
            constraint["json_schema"] = json_schema
        return {
            "model": str(self.path), **config.to_dict(), "n_predict": int(n_predict), "stop": list(stops),
            **constraint, "n_gpu_layers": self.n_gpu_layers, "main_gpu": self.main_gpu, "rpc": list(self.rpc),
            "kv_type": self.kv_type,
        }

    def _prompt_tokens(self, prompt: Prompt, parse_special: bool) -> np.ndarray:
        """The prompt's token ids: text tokenized, ids converted (the native layer checks them and their fit)."""
        if isinstance(prompt, (str, bytes)):
            return self.tokenize(prompt, parse_special=parse_special)
        return _token_ids(prompt)

    def generate(self, prompt: Prompt, temp: float | None = None, **kwargs: Any) -> str:
        """Like complete() (same arguments), returning only the text."""
        return self.complete(prompt, temp, **kwargs).text


@dataclass(frozen=True)
class _Prepared:
    """A batch's request checked: its prompt's tokens, its settings resolved, its stop strings, its GBNF, and
    its numbers converted."""

    request: Request
    tokens: np.ndarray
    config: SamplingConfig
    stops: tuple[str, ...]
    grammar: str
    n_predict: int
    n: int
    n_probs: int


class _Draw:
    """One sequence's chunks gathered into a Completion."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []

    def add(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)

    def completion(self, prompt_tokens: np.ndarray, cfg: SamplingConfig, settings: dict[str, Any], n_probs: int,
                   keep_logits: bool) -> Completion:
        cs = self.chunks
        reason: StopType = next((c.stop_type for c in reversed(cs) if c.stop_type), "limit")
        return Completion(
            "".join(c.text for c in cs), np.asarray([c.token for c in cs], np.int32), prompt_tokens,
            np.asarray([c.logprob for c in cs], np.float64), cfg, settings,
            np.stack([c.logits for c in cs if c.logits is not None]) if keep_logits else None, reason,
            tuple(c.top for c in cs) if n_probs else (),
            np.asarray([c.model_logprob for c in cs], np.float64) if n_probs else None,
            np.asarray([c.rank for c in cs], np.int64) if n_probs else None,
            tuple(c.piece for c in cs),
        )


def _text(pieces: list[bytes], stops: tuple[str, ...]) -> tuple[str, int, bool]:
    """A finished sequence's text, how many of its tokens count, and whether a stop string ended it,
    found as stream() finds them: the text cut at the first stop string."""
    text = TokenText(stops)
    parts = []
    for i, piece in enumerate(pieces):
        parts.append(text.feed(piece, last=i + 1 == len(pieces)))
        if text.stopped:
            return "".join(parts), i + 1, True
    return "".join(parts), len(pieces), False


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
