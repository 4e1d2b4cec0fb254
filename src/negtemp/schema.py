"""The sampling settings' schema: the native table every door reads, as Python takes it.

Each setting's name, type, default, neutral value, range, CLI flag, llama-server
field and meaning are written once, in the native layer
(``src/native/sampling_rules.hpp``); ``_native.sampling_schema()`` exports
them. SamplingConfig's defaults, the CLI's flags and help, the defaults
`negtemp serve` gives llama-server and the patched llama-server's request
checks all come from there. This module converts a caller's value to the
setting's Python type, with the same message stem the native range check and
the server use ("top_k must be an int, got ..."); ranges are checked natively.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from . import _native

__all__ = ["MAX_SEED", "SCHEMA", "checked", "convert", "default", "markdown_table", "other_word"]

SCHEMA: Mapping[str, _native.Setting] = MappingProxyType({s.name: s for s in _native.sampling_schema()})

MAX_SEED = int(SCHEMA["seed"].hi)  # 2**32 - 1 is llama.cpp's "pick a random seed"

# words other tools use for negtemp's settings, with negtemp's: llama-server's request fields (from the
# schema), OpenAI's and transformers' names
_OTHER_WORDS: Mapping[str, str] = MappingProxyType({
    **{s.field: f"{s.name}=" for s in SCHEMA.values() if s.field and s.field != s.name},
    "max_tokens": "n_predict=", "max_completion_tokens": "n_predict=", "max_new_tokens": "n_predict=",
    "logprobs": "n_probs=", "top_logprobs": "n_probs=", "repetition_penalty": "repeat_penalty=",
    "backend_sampling": "path='backend'",
})


def default(name: str) -> Any:
    """The setting's default as its Python type (None where it has none)."""
    s = SCHEMA[name]
    if s.kind == "str":
        return _native.sampler_paths()[0]  # "auto"
    if s.default is None:
        return None
    return {"int": int, "bool": bool}.get(s.kind, float)(s.default)


def _refuse(s: _native.Setting, value: object) -> TypeError:
    return TypeError(f"{s.name} must be {s.expects}, got {type(value).__name__} {value!r}")


def convert(name: str, value: object) -> Any:
    """value as the setting's Python type, or TypeError in the schema's words ("top_p must be a number, got
    str 'x'"): an int is an int (numpy's too), not a bool or a float; a number is an int or a float, not a
    bool; a bool is a bool."""
    s = SCHEMA[name]
    if s.kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _refuse(s, value)
        return int(value)
    if s.kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _refuse(s, value)
        return float(value)
    if s.kind == "bool":
        if type(value).__name__ not in ("bool", "bool_"):  # numpy's bool too (named bool_ before numpy 2)
            raise _refuse(s, value)
        return bool(value)
    if s.kind == "str":
        if not isinstance(value, str):
            raise _refuse(s, value)
        return value
    raise ValueError(f"{name} is a map; it has no scalar conversion")


def checked(name: str, value: object) -> Any:
    """convert(), then the native range check (ValueError in the schema's words)."""
    v = convert(name, value)
    SCHEMA[name].check(float(v))
    return v


def other_word(word: str) -> str | None:
    """negtemp's word for another tool's word for a setting (temperature: "temp="), or None."""
    return _OTHER_WORDS.get(word)


def markdown_table() -> str:
    """The table as docs/semantics.md shows it (a test holds the two equal)."""
    rows = ["| setting | type | default | off | range | CLI | llama-server | meaning |",
            "|---|---|---|---|---|---|---|---|"]
    for s in SCHEMA.values():
        value = default(s.name)
        shown = "—" if value is None else f"`{value}`"
        off = "—" if s.neutral is None or s.kind == "bool" else f"`{s.neutral:g}`"
        span = s.range if s.kind in ("int", "float") else "—"
        cells = [f"`{s.name}`", s.kind, shown, off, span, f"`{s.flag}`" if s.flag else "—",
                 f"`{s.field}`" if s.field else "—", s.meaning]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
