"""SamplingConfig: every sampling setting in one frozen, typed value.

The API (Model.complete, Model.sweep, sampler_probs, sample_tokens), the CLI,
the NumPy reference and every Completion share it: a Completion's ``config``
is the one that produced it, with the seed that was drawn and the path that ran.
This module converts and documents; the rules (ranges, the plain chain, which
path runs which chain) are the native ChainSpec's, checked when a config is
made and again, against a vocabulary, where it runs (ARCHITECTURE.md).
"""

from __future__ import annotations

import math
import numbers
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, TypedDict, cast

from . import _native
from .convert import strict_int
from .schema import MAX_SEED, SCHEMA, convert, default, other_word

__all__ = ["DEFAULT_TEMP", "MAX_SEED", "NEAR_GREEDY_T", "SamplerPath", "SamplingConfig", "SamplingOptions",
           "identical_draws", "make_config", "resolve_beta", "warn_identical_draws"]

DEFAULT_TEMP: float = default("temp")
# |T| at or below which draws of one prompt are nearly all the same: at T = -0.001 the least
# likely token outweighs one 0.01 nats more likely by e**10
NEAR_GREEDY_T = 1e-3

# the names are the native layer's (_native.sampler_paths()); this types them for callers, and
# tests/test_config.py holds the two equal
SamplerPath = Literal["auto", "fused", "chain", "backend"]


# llama.cpp samplers negtemp does not offer, and why (docs/semantics.md): asked
# for by name, they are refused with the reason rather than ignored.
UNSUPPORTED: Mapping[str, str] = MappingProxyType(_native.unoffered_samplers())


def resolve_beta(temp: float | None, beta: float | None) -> float:
    """The inverse temperature for a (temp, beta) pair; exactly one must be given."""
    if (temp is None) == (beta is None):
        raise TypeError("give exactly one of temp= and beta=")
    if temp is not None:
        t = SCHEMA["temp"].check(convert("temp", temp))
        if t == 0.0:
            return math.inf
        return 0.0 if math.isinf(t) else 1.0 / t
    return SCHEMA["beta"].check(convert("beta", beta))


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


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample: the chain, its settings, and where it runs.

    Give ``temp`` or ``beta`` (= 1/T), not both; neither means T = 0.8. The
    chain is llama.cpp's: logit bias, repeat penalty, top-k, top-p, min-p
    (each only when changed from its neutral value), temperature, the draw;
    docs/semantics.md defines each at every T. ``path``: "fused" (negtemp's
    fused sampler, plain chain only), "chain" (llama.cpp's chain on the CPU),
    "backend" (the chain as a ggml graph inside the decode), or "auto" (fused
    when the chain is plain, else chain). ``seed=None`` draws one when the
    config is resolved for a run.
    """

    temp: float | None = None
    beta: float | None = None
    seed: int | None = None
    top_k: int = default("top_k")
    top_p: float = default("top_p")
    min_p: float = default("min_p")
    repeat_penalty: float = default("repeat_penalty")
    penalty_last_n: int = default("penalty_last_n")
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    ignore_eos: bool = default("ignore_eos")
    path: SamplerPath = "auto"
    # the native layer's validated form of the fields above (made from them, never given)
    _spec: _native.ChainSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.temp is None and self.beta is None:
            object.__setattr__(self, "temp", DEFAULT_TEMP)
        for name in ("seed", "temp", "beta"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, convert(name, getattr(self, name)))
        for name in ("top_k", "top_p", "min_p", "repeat_penalty", "penalty_last_n", "ignore_eos", "path"):
            object.__setattr__(self, name, convert(name, getattr(self, name)))
        bias = {_bias_token(tok): _bias_value(tok, val) for tok, val in (self.logit_bias or {}).items()}
        object.__setattr__(self, "logit_bias", MappingProxyType(bias))
        spec = _native.ChainSpec(
            beta=self.inverse_temperature, seed=0 if self.seed is None else self.seed, top_k=self.top_k,
            top_p=self.top_p, min_p=self.min_p, repeat_penalty=self.repeat_penalty,
            penalty_last_n=self.penalty_last_n, logit_bias=bias, ignore_eos=self.ignore_eos, path=self.path,
        )
        object.__setattr__(self, "_spec", spec)

    def __hash__(self) -> int:
        return hash((*(getattr(self, f) for f in _SCALARS), tuple(sorted(self.logit_bias.items()))))

    @classmethod
    def from_options(cls, temp: float | None = None, **options: Any) -> SamplingConfig:
        """A config from the API's keyword arguments, refusing llama.cpp samplers negtemp does not offer and
        naming negtemp's word where another tool's was given (temperature=: temp=)."""
        refused = sorted(UNSUPPORTED.keys() & options.keys())
        if refused:
            raise ValueError("; ".join(f"{name}: {UNSUPPORTED[name]}" for name in refused))
        for word in options:
            if word not in cls.__dataclass_fields__ or word == "_spec":
                raise TypeError(_unknown_option(word))
        return cls(temp=temp, **options)

    @property
    def inverse_temperature(self) -> float:
        """beta = 1/T (+inf greedy, 0 uniform, -inf anti-greedy)."""
        return resolve_beta(self.temp, self.beta)

    @property
    def plain(self) -> bool:
        """True when the chain is logit bias, temperature and the draw only (what the fused sampler runs)."""
        return bool(self._spec.plain)

    def resolved(self) -> SamplingConfig:
        """This config ready to run: a seed drawn if none was given, and the path that will run."""
        seed = secrets.randbelow(MAX_SEED + 1) if self.seed is None else self.seed
        return replace(self, seed=seed, path=cast(SamplerPath, self._spec.resolved_path))

    def native(self) -> _native.ChainSpec:
        """The validated settings the extension runs (call on a resolved config: its seed is the draw's)."""
        return self._spec

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain values, beta = 1/T filled in (Completion.to_dict makes it JSON)."""
        d: dict[str, Any] = {f: getattr(self, f) for f in _SCALARS}
        d["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()}
        d["beta"] = self.inverse_temperature
        return d


def _bias_token(token: object) -> int:
    if isinstance(token, str):
        raise TypeError(f"logit_bias keys are token ids, got the text {token!r}: its ids are "
                        f"model.tokenize({token!r}, add_special=False)")
    return strict_int("logit_bias token", token)


def _bias_value(token: object, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"logit_bias[{token!r}] must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _unknown_option(word: str) -> str:
    """The message for a keyword argument that is not a sampling setting."""
    if word == "stream":
        return "stream= is not an option: Model.stream(prompt, ...) yields the chunks as they are sampled"
    if word == "n":
        return "n= is not an option of this call: Model.draws(prompt, n=K) makes K draws decoded together"
    ours = other_word(word)
    if ours is not None:
        return f"{word}= is another tool's word: negtemp's is {ours}"
    return f"{word}= is not a sampling setting; they are: {', '.join(s for s in SCHEMA if s != 'n')}"


_SCALARS = tuple(f for f in SamplingConfig.__dataclass_fields__ if f not in ("logit_bias", "_spec"))


def identical_draws(config: SamplingConfig) -> str:
    """Why several draws of config would all be the same text ("" when they need not be): a warning's words."""
    beta = config.inverse_temperature
    if math.isinf(beta):
        return (f"identical: beta = {beta:g} takes the {'most' if beta > 0 else 'least'} likely token at every "
                "step, whatever the seed")
    if config.top_k == 1:
        return "identical: top_k = 1 leaves one token at every step, whatever the seed"
    if abs(beta) >= 1 / NEAR_GREEDY_T:
        return (f"nearly identical: at T = {1 / beta:g} (|T| <= {NEAR_GREEDY_T:g}) one token outweighs the rest "
                "at almost every step")
    return ""


def warn_identical_draws(config: SamplingConfig, n: int) -> None:
    """Warn, at the caller's caller, when n > 1 draws of config would all be (nearly) the same text."""
    why = identical_draws(config)
    if why and n > 1:
        warnings.warn(f"the {n} draws will be {why}; n > 1 is for a setting that samples", stacklevel=3)


def make_config(temp: float | None, config: SamplingConfig | None, options: dict[str, Any]) -> SamplingConfig:
    """The config of a call that takes config= or sampling keyword arguments (not both)."""
    if config is None:
        return SamplingConfig.from_options(temp, **options)
    if temp is not None or options:
        raise TypeError("give config= or sampling keyword arguments (temp, beta, top_k, ...), not both")
    if not isinstance(config, SamplingConfig):
        raise TypeError(f"config must be a negtemp.SamplingConfig, not {type(config).__name__}")
    return config
