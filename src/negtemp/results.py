"""What a generation returns: Completion, and per token Chunk and TokenProb; and how each is written as JSON.

Strict JSON has no inf or NaN. The policy, written once here: a log-probability
that is not finite (-inf for a token that had probability 0) becomes null,
while a setting that is not finite (beta = +-inf, a logit bias of -inf)
becomes the string "inf" or "-inf", so that it reads back as the setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .config import SamplingConfig

__all__ = ["Chunk", "Completion", "FinishReason", "PrefixCacheInfo", "StopType", "TokenProb", "json_value"]

StopType = Literal["eos", "word", "limit"]
"""What ended a generation, in llama-server's words (its ``stop_type``): an
end-of-generation token such as </s> or <|im_end|> ("eos"), a stop string
("word"), or n_predict tokens ("limit")."""

FinishReason = Literal["stop", "length"]
"""Why a generation ended, in OpenAI's words as llama-server answers them:
"length" after n_predict tokens, else "stop" (stop_type says which stop)."""


def finish_reason(stop_type: StopType) -> FinishReason:
    """OpenAI's finish_reason for a stop_type."""
    return "length" if stop_type == "limit" else "stop"


def json_value(value: Any, *, infinity_as_text: bool = False) -> Any:
    """value with each non-finite float, however deep, made strict JSON: None, or with
    ``infinity_as_text`` (settings) +-inf as "inf"/"-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value) if infinity_as_text and not math.isnan(value) else None
    if isinstance(value, dict):
        return {k: json_value(v, infinity_as_text=infinity_as_text) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, infinity_as_text=infinity_as_text) for v in value]
    return value


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
        return {"token": self.token, "text": self.text, "logprob": json_value(self.logprob),
                "model_logprob": json_value(self.model_logprob)}


@dataclass(frozen=True)
class Chunk:
    """One generated token and the text it adds.

    ``text`` can be "" for a token that ends inside a UTF-8 sequence, or whose
    text might begin a stop string (it is released with a later chunk, or
    dropped if the stop string completes). ``logprob`` is the token's
    log-probability in the distribution it was sampled from. ``stop_type``
    and ``finish_reason`` are None except on the last chunk. ``top`` holds the ``n_probs`` most likely
    tokens of the step, most likely first in the sampled distribution, and
    with them ``model_logprob`` and ``rank``, the token's log-probability and
    rank under the model at T = 1; ``logits`` the raw logits the token was
    drawn from, with ``keep_logits``. ``piece``: the token's own bytes.
    """

    text: str
    token: int
    logprob: float
    stop_type: StopType | None = None
    top: tuple[TokenProb, ...] = ()
    logits: np.ndarray | None = None
    piece: bytes = b""
    model_logprob: float | None = None
    rank: int | None = None

    @property
    def finish_reason(self) -> FinishReason | None:
        """OpenAI's word for stop_type ("stop", "length"); None before the last chunk."""
        return None if self.stop_type is None else finish_reason(self.stop_type)


@dataclass(frozen=True)
class Completion:
    """One generated continuation and the settings that produced it.

    ``config`` is the resolved SamplingConfig (the seed drawn, the path that
    ran); ``settings`` is the model, ``config.to_dict()``, ``n_predict`` and
    the stop strings. ``tokens`` and ``logprobs`` cover every token sampled,
    the one that completed a stop string included; ``text`` ends before the
    stop string. ``stop_type``: "eos" (an end-of-generation token), "word"
    (a stop string) or "limit" (n_predict tokens); ``finish_reason`` says
    it in OpenAI's words: "length" for "limit", else "stop". ``top_logprobs``:
    with ``n_probs``, each step's most likely tokens (negtemp.TokenProb);
    with it too, ``model_logprobs`` (each token's log-probability under the
    model at T = 1) and ``ranks`` (its rank there, 1 for the model's most
    likely token). ``pieces``: each token's own bytes (a token may end inside
    a UTF-8 sequence, so ``text`` is their joint decoding). ``seed`` of
    ``config`` is the draw's own: draw i of Model.draws() has seed + i.
    """

    text: str
    tokens: np.ndarray
    prompt_tokens: np.ndarray
    logprobs: np.ndarray
    config: SamplingConfig
    settings: dict[str, Any] = field(default_factory=dict)
    step_logits: np.ndarray | None = None
    stop_type: StopType = "limit"
    top_logprobs: tuple[tuple[TokenProb, ...], ...] = ()
    model_logprobs: np.ndarray | None = None
    ranks: np.ndarray | None = None
    pieces: tuple[bytes, ...] = ()

    @property
    def finish_reason(self) -> FinishReason:
        """OpenAI's word for stop_type: "length" after n_predict tokens, else "stop"."""
        return finish_reason(self.stop_type)

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON-ready dict (the module's policy: log-probabilities that are not finite become None,
        settings that are not finite their string "inf" / "-inf")."""
        out = {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "stop_type": self.stop_type,
            "tokens": self.tokens.tolist(),
            "prompt_tokens": self.prompt_tokens.tolist(),
            "logprobs": json_value([float(x) for x in self.logprobs]),
            **json_value(self.settings, infinity_as_text=True),
        }
        if self.top_logprobs:
            out["top_logprobs"] = [[t.to_dict() for t in step] for step in self.top_logprobs]
        if self.model_logprobs is not None and self.ranks is not None:
            out["model_logprobs"] = json_value([float(x) for x in self.model_logprobs])
            out["ranks"] = self.ranks.tolist()
        return out


@dataclass(frozen=True)
class PrefixCacheInfo:
    """What a Model's prefix cache holds (Model.prefix_cache_info(); docs/python.md, "Prefix reuse").

    ``prompts``: cached prompts (each with what was generated after it);
    ``tokens``: the KV cells they hold; ``capacity``: cells in all (n_ctx);
    ``bytes``: the cache's KV memory once made (0 before the first call);
    ``last_reused`` and ``last_evaluated``: prompt tokens the last call that
    used the cache found there and evaluated; ``reuses``: False for a model
    whose logits depend on how a sequence is split into decodes (gemma-3's
    move by up to a unit), where every prompt is evaluated whole so that the
    result stays a fresh context's, and the cache only keeps the context.
    """

    prompts: int
    tokens: int
    capacity: int
    bytes: int
    last_reused: int
    last_evaluated: int
    reuses: bool
