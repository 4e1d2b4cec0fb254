"""Exceptions raised by negtemp."""

from __future__ import annotations

from .models import ModelFetchError

__all__ = ["ModelLoadError", "ModelFetchError"]


class ModelLoadError(RuntimeError):
    """A model file exists but llama.cpp cannot use it (not a GGUF, corrupt, unsupported)."""
