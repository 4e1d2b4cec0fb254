"""negtemp: sample language models at negative temperature with a patched llama.cpp.

    >>> import negtemp
    >>> negtemp.generate("Temperature is a concept", temp=-0.001, seed=1)

See negtemp.Model for loading a model once and sampling it many times, and
negtemp.reference for the exact distribution every sampling path implements.
"""

from __future__ import annotations

from importlib.metadata import version

from . import _native, reference, registry
from ._native import system_info
from .batching import Request
from .config import SamplingConfig
from .errors import (
    Cancelled,
    ContextOverflowError,
    ModelFetchError,
    ModelLoadError,
    RemoteError,
    RemoteLoadError,
    SamplingError,
)
from .logits import sample_tokens, sampler_probs
from .model import Model, generate
from .results import Chunk, Completion, FinishReason, PrefixCacheInfo, StopType, TokenProb
from .view import render_html


def devices() -> list[tuple[str, str, str, int]]:
    """The ggml devices this build can use: (name, description, kind, memory bytes).

    kind is "cpu", "gpu", "igpu", "accel" or "other". A CPU build lists the
    CPU; a Vulkan build adds each Vulkan device the driver exposes (a
    CPU-based one such as Mesa's lavapipe only with GGML_VK_VISIBLE_DEVICES).
    """
    return [tuple(d) for d in _native.devices()]  # type: ignore[misc]

__all__ = [
    "Cancelled",
    "Chunk",
    "Completion",
    "ContextOverflowError",
    "FinishReason",
    "Model",
    "ModelFetchError",
    "ModelLoadError",
    "PrefixCacheInfo",
    "RemoteError",
    "RemoteLoadError",
    "Request",
    "SamplingConfig",
    "SamplingError",
    "StopType",
    "TokenProb",
    "devices",
    "generate",
    "reference",
    "registry",
    "render_html",
    "sample_tokens",
    "sampler_probs",
    "system_info",
]
__version__ = version("negtemp")  # the one version, pyproject.toml's
