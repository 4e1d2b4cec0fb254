"""Exceptions raised by negtemp."""

from __future__ import annotations

from ._native import SamplingError
from .models import ModelFetchError

__all__ = ["ModelLoadError", "ModelFetchError", "SamplingError"]


class ModelLoadError(RuntimeError):
    """A model file exists but llama.cpp cannot use it (not a GGUF, corrupt, unsupported)."""
