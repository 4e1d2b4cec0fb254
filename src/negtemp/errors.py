"""Exceptions raised by negtemp."""

from __future__ import annotations

from ._native import Cancelled, SamplingError
from .models import ModelFetchError

__all__ = ["Cancelled", "ContextOverflowError", "ModelFetchError", "ModelLoadError", "SamplingError"]


class ModelLoadError(RuntimeError):
    """A model file exists but llama.cpp cannot use it (not a GGUF, corrupt, unsupported)."""


class ContextOverflowError(ValueError):
    """The prompt plus the tokens asked for do not fit the Model's context (n_ctx).

    Its fields let a front end name its own options (the CLI says -c and -n).
    """

    def __init__(self, prompt_tokens: int, n_predict: int, n_ctx: int, n_ctx_train: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.n_predict = n_predict
        self.n_ctx = n_ctx
        self.n_ctx_train = n_ctx_train
        super().__init__(
            f"the prompt ({prompt_tokens} tokens) plus n_predict ({n_predict}) exceeds n_ctx={n_ctx}; create the "
            f"Model with a larger n_ctx (it was trained on {n_ctx_train} tokens) or lower n_predict"
        )
