"""negtemp: sample language models at negative temperature with a patched llama.cpp.

    >>> import negtemp
    >>> negtemp.generate("Temperature is a concept", temp=-0.001, seed=1)

See negtemp.Model for loading a model once and sampling it many times, and
negtemp.reference for the exact distribution every sampling path implements.
"""

from __future__ import annotations

from . import models, reference
from ._native import system_info
from .config import SamplingConfig
from .errors import Cancelled, ModelFetchError, ModelLoadError, SamplingError
from .model import Completion, Model, generate
from .sampling import sample_tokens, sampler_probs

__all__ = [
    "Cancelled",
    "Completion",
    "Model",
    "ModelFetchError",
    "ModelLoadError",
    "SamplingConfig",
    "SamplingError",
    "generate",
    "models",
    "reference",
    "sample_tokens",
    "sampler_probs",
    "system_info",
]
__version__ = "0.1.0"
