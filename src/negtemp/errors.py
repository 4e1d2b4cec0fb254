"""Exceptions raised by negtemp."""

from __future__ import annotations

from ._native import Cancelled, SamplingError, all_masked

__all__ = [
    "ALL_MASKED", "Cancelled", "ContextOverflowError", "ModelFetchError", "ModelLoadError", "RemoteError",
    "RemoteLoadError", "SamplingError",
]

# SamplingError's message when every token is masked, on every path and in the references (the native layer's)
ALL_MASKED: str = all_masked


class ModelFetchError(RuntimeError):
    """A named model could not be fetched or failed verification."""


class ModelLoadError(RuntimeError):
    """A model file exists but llama.cpp cannot use it (not a GGUF, corrupt, unsupported)."""


class RemoteError(RuntimeError):
    """A model split over llama.cpp RPC servers (``Model(rpc=...)``) lost one.

    The server could not be reached or resolved, speaks another RPC protocol
    version, closed the connection (it stopped or crashed), sent or took
    nothing for ``rpc_timeout`` seconds, or replied malformed. ``endpoint``
    is the server's "host:port"; the message says what happened. The Model
    cannot be used after it (each call raises it again): close it, and create
    a new Model once the server is back.
    """

    def __init__(self, message: str, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint

    def __reduce__(self) -> tuple[type[RemoteError], tuple[str, str]]:
        return type(self), (str(self), self.endpoint)


class RemoteLoadError(RemoteError, ModelLoadError):
    """A RemoteError while the model was loading: also a ModelLoadError."""


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
