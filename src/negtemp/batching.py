"""A request of a batch: one prompt with its own settings (Model.run_requests, ``negtemp batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import SamplingConfig
from .grammar import JsonSchema
from .schema import default

__all__ = ["Prompt", "Request"]

# A prompt: text, or token ids used as they are (an int array or sequence), e.g. to put a
# token into a request that its own text would not tokenize to.
Prompt = str | bytes | Sequence[int] | np.ndarray


@dataclass(frozen=True)
class Request:
    """One prompt and how to sample it: ``n`` draws (seeded config.seed + i) of at
    most ``n_predict`` tokens, ended at a ``stop`` string, with ``n_probs``
    alternatives a step, following ``grammar`` (GBNF) or ``json_schema``, the
    raw logits of each step kept with ``keep_logits``; the arguments of Model.complete()."""

    prompt: Prompt
    config: SamplingConfig = field(default_factory=SamplingConfig)
    n: int = 1
    n_predict: int = default("n_predict")
    stop: str | Sequence[str] | None = None  # one or several, as complete()'s
    n_probs: int = default("n_probs")
    grammar: str | None = None
    json_schema: JsonSchema | None = None
    keep_logits: bool = False
