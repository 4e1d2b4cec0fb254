"""The JSONL format of ``negtemp batch``: a request per input line, a result per output line, and the output
file that a run killed at any point resumes.

An input line is a JSON object: ``prompt`` (text) or ``tokens`` (ids), an optional ``id`` (else the line
number), and any of Model.complete()'s settings by name (``temp``, ``seed``, ``top_k``, ``n_predict``,
``stop``, ``n_probs``, ``grammar``, ``json_schema``, ...) plus ``n`` (draws); the command line's flags are
the defaults a line overrides. An output line is ``{"id", "line", "completions": [...]}`` (each
Completion.to_dict()) or ``{"id", "line", "error": "..."}``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .batching import Request
from .config import MAX_SEED, SamplingConfig, make_config

__all__ = ["BadLine", "Line", "ResultsFile", "line_seed", "read_requests"]

# a line's keys besides the sampling settings: Request's own fields, the prompt's two forms, and the id
_REQUEST_KEYS = {f.name for f in fields(Request)} - {"prompt", "config"}
_CONFIG_KEYS = {f.name for f in fields(SamplingConfig) if not f.name.startswith("_")}
_KEYS = _REQUEST_KEYS | _CONFIG_KEYS | {"prompt", "tokens", "id"}


@dataclass(frozen=True)
class Line:
    """A request read from input line ``number`` (1-based), under ``id``."""

    number: int
    id: Any
    request: Request


@dataclass(frozen=True)
class BadLine:
    """An input line that is not a request, and why."""

    number: int
    id: Any
    error: str


def line_seed(base: int, request_id: Any, n: int) -> int:
    """The seed of a line without one, under ``--seed base``: a hash of the base and the line's id, so the same
    line draws the same tokens in any run, resumed or not, while different lines draw independently; at most
    MAX_SEED - (n - 1), so that the line's n draws (seed + i) stay in range."""
    digest = hashlib.blake2b(json.dumps([base, request_id]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (MAX_SEED + 2 - n)


def _request(obj: Mapping[str, Any], defaults: Mapping[str, Any], seed: int | None, request_id: Any) -> Request:
    unknown = sorted(obj.keys() - _KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}: a line takes prompt or tokens, id, and "
                         f"{', '.join(sorted(_REQUEST_KEYS | _CONFIG_KEYS))}")
    if ("prompt" in obj) == ("tokens" in obj):
        raise ValueError("give exactly one of prompt (text) and tokens (token ids)")
    prompt = obj["prompt"] if "prompt" in obj else obj["tokens"]
    if "prompt" in obj and not isinstance(prompt, str):
        raise ValueError(f"prompt must be text, not {type(prompt).__name__} (token ids go in tokens)")
    if "tokens" in obj and not (isinstance(prompt, list) and all(type(t) is int for t in prompt)):
        raise ValueError("tokens must be a list of integer token ids")
    settings = {**defaults, **obj}
    # the line's temp or beta replaces the command line's either
    temperature = {k: obj[k] for k in ("temp", "beta") if k in obj} or {
        k: defaults[k] for k in ("temp", "beta") if k in defaults}
    temp = temperature.pop("temp", None)
    options = {k: settings[k] for k in _CONFIG_KEYS - {"temp", "beta"} if k in settings} | temperature
    if isinstance(options.get("logit_bias"), Mapping):
        options["logit_bias"] = {int(k): v for k, v in options["logit_bias"].items()}
    n = settings.get("n", 1)
    if options.get("seed") is None and seed is not None and type(n) is int and n >= 1:
        options["seed"] = line_seed(seed, request_id, n)
    config = make_config(temp, None, options)
    rest = {k: settings[k] for k in _REQUEST_KEYS if k in settings}
    return Request(prompt, config, **rest)


def read_requests(path: Path, defaults: Mapping[str, Any], seed: int | None) -> Iterator[Line | BadLine]:
    """Each non-blank line of path as a Line, or a BadLine saying what is wrong with it."""
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            request_id: Any = number
            try:
                try:
                    obj = json.loads(text)
                except ValueError as e:
                    raise ValueError(f"not JSON: {e}") from None
                if not isinstance(obj, dict):
                    raise ValueError(f"a line is a JSON object, not {type(obj).__name__}")
                request_id = obj.get("id", number)
                if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
                    raise ValueError(f"id must be a string or an integer, not {json.dumps(request_id)}")
                key = json.dumps(request_id)
                if key in seen:
                    raise ValueError(f"id {key} is used by an earlier line")
                seen.add(key)
                yield Line(number, request_id, _request(obj, defaults, seed, request_id))
            except (ValueError, TypeError) as e:
                yield BadLine(number, request_id, str(e))


class ResultsFile:
    """The output JSONL: appended to and flushed to disk as each request ends, so that a run killed at any
    point loses at most the line it was writing; reopened, it says which input lines it holds (a torn last
    line is cut off), and finish() rewrites it in input order, so a resumed run ends with the same file as an
    uninterrupted one."""

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = path
        self.done: set[int] = set()  # input line numbers
        if overwrite and path.exists():
            path.unlink()
        if path.exists():
            self._recover()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open while the run lasts

    def _recover(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as f:  # a line cut off by the kill: its request runs again
                f.truncate(end)
        for number, raw in enumerate(data[:end].splitlines(), 1):
            try:
                self.done.add(int(json.loads(raw)["line"]))
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{self.path}:{number} is not a line negtemp batch wrote; give another --out, "
                                 "or --overwrite to start over") from None

    def holds(self, line: int) -> bool:
        return line in self.done

    def write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(int(record["line"]))

    def finish(self) -> None:
        """Close the file, its lines sorted by input line."""
        self._file.close()
        lines = self.path.read_text(encoding="utf-8").splitlines()
        lines.sort(key=lambda raw: json.loads(raw)["line"])
        tmp = self.path.with_name(self.path.name + ".sorting")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, self.path)

    def close(self) -> None:
        self._file.close()
