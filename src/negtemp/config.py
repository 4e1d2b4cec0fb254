"""SamplingConfig: every sampling setting in one frozen, validated, typed value.

The API (Model.complete, Model.sweep, sampler_probs, sample_tokens), the CLI,
the NumPy reference and every Completion share it: a Completion's ``config``
is the one that produced it, with the seed that was drawn and the path that ran.
"""

from __future__ import annotations

import math
import numbers
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, SupportsFloat, SupportsIndex, SupportsInt, TypedDict

from . import _native
from .reference import resolve_beta

__all__ = ["DEFAULT_TEMP", "MAX_SEED", "SamplerPath", "SamplingConfig", "SamplingOptions", "make_config", "strict_int"]

DEFAULT_TEMP = 0.8
MAX_SEED = 2**32 - 2  # 2**32 - 1 is llama.cpp's "pick a random seed"

SamplerPath = Literal["auto", "fused", "chain", "backend"]
_PATHS: tuple[str, ...] = ("auto", "fused", "chain", "backend")

# llama.cpp keeps T = -0.0 greedy, so beta = -inf (anti-greedy) is passed as
# the smallest normal float32 below zero: (z - z_min) / T is then -inf, or
# underflows to p = 0, for every logit above the minimum.
_ANTI_GREEDY_TEMP = -1.1754943508222875e-38


# llama.cpp samplers negtemp does not offer, and why (README, "Semantics"): asked
# for by name, they are refused with the reason rather than ignored.
UNSUPPORTED = {
    "mirostat": "mirostat steers the draw toward a target surprise under the tempered distribution; "
                "at T < 0 that target has no sound meaning",
    "typical_p": "typical sampling is not offered (no backend implementation upstream to check it against)",
    "top_n_sigma": "top-n-sigma is not offered (no backend implementation upstream to check it against)",
    "xtc_probability": "XTC removes the most likely tokens at random; at T < 0, where the least likely win, "
                       "it has no sound meaning",
    "dry_multiplier": "DRY subtracts from the logits of repeated sequences, which at T < 0 would favour "
                      "them; use repeat_penalty, which discourages repeats at every T",
    "frequency_penalty": "llama.cpp subtracts it from z, which at T < 0 would favour repeats; use repeat_penalty",
    "presence_penalty": "llama.cpp subtracts it from z, which at T < 0 would favour repeats; use repeat_penalty",
    "dynatemp_range": "dynamic temperature is defined for T >= 0 only",
}


class SamplingOptions(TypedDict, total=False):
    """The sampling keyword arguments of Model.complete, Model.sweep and negtemp.generate."""

    beta: float | None
    seed: int | None
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    penalty_last_n: int
    logit_bias: Mapping[int, float] | None
    ignore_eos: bool
    path: SamplerPath
    backend_sampling: bool
    fused: bool


def strict_int(name: str, value: object) -> int:
    """value as an int; numpy integers count (token ids often come from arrays), bools and floats do not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _unit(name: str, value: float) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample: the chain, its settings, and where it runs.

    Give ``temp`` or ``beta`` (= 1/T), not both; neither means T = 0.8. The
    chain is llama.cpp's: logit bias, repeat penalty, top-k, top-p, min-p
    (each only when changed from its neutral value), temperature, the draw;
    README "Semantics" defines each at every T. ``path``: "fused" (negtemp's
    fused sampler, plain chain only), "chain" (llama.cpp's chain on the CPU),
    "backend" (the chain as a ggml graph inside the decode), or "auto" (fused
    when the chain is plain, else chain). ``seed=None`` draws one when the
    config is resolved for a run.
    """

    temp: float | None = None
    beta: float | None = None
    seed: int | None = None
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    penalty_last_n: int = 64
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    ignore_eos: bool = False
    path: SamplerPath = "auto"

    def __post_init__(self) -> None:
        if self.temp is None and self.beta is None:
            object.__setattr__(self, "temp", DEFAULT_TEMP)
        resolve_beta(self.temp, self.beta)  # both given, or NaN
        if self.seed is not None:
            object.__setattr__(self, "seed", strict_int("seed", self.seed))
            if not 0 <= self.seed <= MAX_SEED:
                raise ValueError(f"seed must be in [0, {MAX_SEED}], got {self.seed}")
        object.__setattr__(self, "top_k", strict_int("top_k", self.top_k))
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        object.__setattr__(self, "top_p", _unit("top_p", self.top_p))
        object.__setattr__(self, "min_p", _unit("min_p", self.min_p))
        rp = float(self.repeat_penalty)
        if not (rp > 0 and math.isfinite(rp)):
            raise ValueError(f"repeat_penalty must be a positive finite number, got {self.repeat_penalty}")
        object.__setattr__(self, "repeat_penalty", rp)
        object.__setattr__(self, "penalty_last_n", strict_int("penalty_last_n", self.penalty_last_n))
        if self.penalty_last_n < 1:
            raise ValueError(f"penalty_last_n must be >= 1, got {self.penalty_last_n}")
        bias: dict[int, float] = {}
        for tok, val in (self.logit_bias or {}).items():
            v = float(val)
            if math.isnan(v) or v == math.inf:
                raise ValueError(
                    f"logit_bias[{tok}] = {val}: a bias must be finite, or -inf to ban the token "
                    "(to force a token, ban the others or use a large finite bias)"
                )
            bias[strict_int("logit_bias key", tok)] = v
        object.__setattr__(self, "logit_bias", MappingProxyType(bias))
        if self.path not in _PATHS:
            raise ValueError(f"path must be one of {_PATHS}, got {self.path!r}")
        if self.path == "fused" and not self.plain:
            raise ValueError(
                "the fused sampler runs the plain chain only (logit bias, temperature, draw); "
                "use path='chain' or 'auto' with top_k/top_p/min_p/repeat_penalty"
            )

    def __hash__(self) -> int:
        return hash((*(getattr(self, f) for f in _SCALARS), tuple(sorted(self.logit_bias.items()))))

    @classmethod
    def from_options(cls, temp: float | None = None, **options: Any) -> SamplingConfig:
        """A config from the API's keyword arguments; ``backend_sampling=True`` and
        ``fused=False`` are the older spellings of path="backend" and path="chain"."""
        refused = sorted(UNSUPPORTED.keys() & options.keys())
        if refused:
            raise ValueError("; ".join(f"{name}: {UNSUPPORTED[name]}" for name in refused))
        backend = bool(options.pop("backend_sampling", False))
        fused = bool(options.pop("fused", True))
        if backend or not fused:
            if options.get("path", "auto") != "auto":
                raise TypeError("give path= or the older backend_sampling=/fused=, not both")
            options["path"] = "backend" if backend else "chain"
        return cls(temp=temp, **options)

    @property
    def inverse_temperature(self) -> float:
        """beta = 1/T (+inf greedy, 0 uniform, -inf anti-greedy)."""
        return resolve_beta(self.temp, self.beta)

    @property
    def plain(self) -> bool:
        """True when the chain is logit bias, temperature and the draw only."""
        return self.top_k == 0 and self.top_p == 1.0 and self.min_p == 0.0 and self.repeat_penalty == 1.0

    def resolved(self) -> SamplingConfig:
        """This config ready to run: a seed drawn if none was given, and the path that will run."""
        seed = secrets.randbelow(MAX_SEED + 1) if self.seed is None else self.seed
        path = ("fused" if self.plain else "chain") if self.path == "auto" else self.path
        return replace(self, seed=seed, path=path)

    def native(self, eog_tokens: frozenset[int] = frozenset()) -> _native.ChainConfig:
        """The chain settings the extension runs (call on a resolved config)."""
        b = self.inverse_temperature
        c = _native.ChainConfig()
        c.temp = 0.0 if b == math.inf else _ANTI_GREEDY_TEMP if b == -math.inf else math.inf if b == 0 else 1.0 / b
        c.seed = 0 if self.seed is None else self.seed
        c.top_k = self.top_k
        c.top_p = self.top_p
        c.min_p = self.min_p
        c.repeat_penalty = self.repeat_penalty
        c.penalty_last_n = self.penalty_last_n
        # the key and value types pybind11 accepts for std::map<int32_t, float>
        bias: dict[SupportsInt | SupportsIndex, SupportsFloat | SupportsIndex] = {
            t: b for t, b in self.logit_bias.items()
        }
        if self.ignore_eos:
            bias.update({t: -math.inf for t in eog_tokens})
        c.logit_bias = bias
        return c

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain values, beta = 1/T filled in (Completion.to_dict makes it JSON)."""
        d: dict[str, Any] = {f: getattr(self, f) for f in _SCALARS}
        d["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()}
        d["beta"] = self.inverse_temperature
        return d


_SCALARS = tuple(f for f in SamplingConfig.__dataclass_fields__ if f != "logit_bias")


def make_config(temp: float | None, config: SamplingConfig | None, options: dict[str, Any]) -> SamplingConfig:
    """The config of a call that takes config= or sampling keyword arguments (not both)."""
    if config is None:
        return SamplingConfig.from_options(temp, **options)
    if temp is not None or options:
        raise TypeError("give config= or sampling keyword arguments (temp, beta, top_k, ...), not both")
    if not isinstance(config, SamplingConfig):
        raise TypeError(f"config must be a negtemp.SamplingConfig, not {type(config).__name__}")
    return config
