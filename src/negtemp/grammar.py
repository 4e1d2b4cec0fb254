"""Grammars: the GBNF a generation follows, given as GBNF text or as a JSON schema.

The grammar masks the tokens it does not allow at each step, and the chain
then runs on what is left (docs/semantics.md, "Grammars"); llama.cpp's own
grammar sampler applies it, and llama.cpp's own converter (the one
llama-server uses for ``json_schema``) turns a JSON schema into GBNF.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import _native

__all__ = ["JsonSchema", "grammar_text", "json_schema_grammar"]

JsonSchema = Mapping[str, Any] | bool
"""A JSON schema: a dict (or True/False, the schemas that allow anything and nothing)."""


def json_schema_grammar(schema: JsonSchema) -> str:
    """GBNF that allows exactly the JSON texts ``schema`` validates (as llama.cpp's converter reads it).

    ValueError for a value that is not JSON or a schema the converter does not support."""
    if not isinstance(schema, (Mapping, bool)):
        raise TypeError(f"json_schema must be a dict (a JSON schema), not {type(schema).__name__}")
    try:
        text = json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"json_schema is not JSON: {e}") from None
    return _native.json_schema_grammar(text)


def grammar_text(grammar: str | None, json_schema: JsonSchema | None) -> str:
    """The GBNF a generation follows ("" for none): ``grammar`` as it is, or ``json_schema`` converted."""
    if grammar is not None and json_schema is not None:
        raise ValueError("give grammar or json_schema, not both")
    if json_schema is not None:
        return json_schema_grammar(json_schema)
    if grammar is None:
        return ""
    if not isinstance(grammar, str):
        raise TypeError(f"grammar must be GBNF text (a str), not {type(grammar).__name__}")
    if not grammar.strip():
        raise ValueError("grammar is empty: give GBNF with a rule named root, or None for no grammar")
    return grammar
