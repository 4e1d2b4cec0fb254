"""Exceptions raised by negtemp."""

from __future__ import annotations

from ._native import Cancelled, SamplingError
from .models import ModelFetchError

__all__ = ["Cancelled", "ModelLoadError", "ModelFetchError", "SamplingError"]


class ModelLoadError(RuntimeError):
    """A model file exists but llama.cpp cannot use it (not a GGUF, corrupt, unsupported)."""
