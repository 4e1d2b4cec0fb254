"""One schema at every door: the library, the CLI and `negtemp serve` accept and refuse each sampling
setting alike, with the same message, at T > 0 and T < 0.

The cases are the schema's own (negtemp.schema.SCHEMA, the native table): for every setting a request
can give, a value below its range, above it, of the wrong type, and one inside it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import pytest

import negtemp
from negtemp import cli
from negtemp.schema import SCHEMA
from serving import post, running_server

pytestmark = pytest.mark.real_model

PROMPT = "Temperature is a concept"
TEMPS = (0.7, -0.5)


@dataclass(frozen=True)
class Case:
    setting: str
    what: str  # "below", "above", "type" or "inside"
    value: Any
    stem: str | None  # the message every door gives; None: every door accepts

    @property
    def id(self) -> str:
        return f"{self.setting}-{self.what}"


def cases() -> list[Case]:
    """Each setting llama-server takes in a request: below, above, the wrong type, and inside its range."""
    out = []
    for s in SCHEMA.values():
        if not s.field or s.kind not in ("int", "float", "bool"):
            continue
        out.append(Case(s.name, "type", "x" if s.kind != "bool" else 1, f"{s.name} must be {s.expects}, got"))
        if s.kind == "bool":
            out.append(Case(s.name, "inside", True, None))
            continue
        step = 1 if s.kind == "int" else 0.5
        cast = int if s.kind == "int" else float
        if math.isfinite(s.lo):
            out.append(Case(s.name, "below", cast(s.lo if s.open else s.lo - step), f"{s.name} must be in {s.range}"))
        if math.isfinite(s.hi):
            out.append(Case(s.name, "above", cast(s.hi if s.open else s.hi + step), f"{s.name} must be in {s.range}"))
        inside = s.lo if math.isfinite(s.lo) and not s.open else s.default
        out.append(Case(s.name, "inside", cast(inside), None))
    return out


CASES = cases()

def library(model: negtemp.Model, case: Case, temp: float) -> str | None:
    """The library's message for the case (None: it sampled)."""
    kwargs: dict[str, Any] = {"n_predict": 1}
    kwargs[case.setting] = case.value
    try:
        if case.setting == "temp":
            model.complete(PROMPT, case.value, n_predict=1)
        elif case.setting == "n":
            model.draws(PROMPT, temp, **kwargs)
        else:
            model.complete(PROMPT, temp, **kwargs)
    except (ValueError, TypeError) as e:
        return str(e)
    return None


def command_line(path: str, case: Case, temp: float) -> str | None:
    """The CLI's message for the case (None: it sampled and exited 0)."""
    s = SCHEMA[case.setting]
    args = ["-m", path, "-p", PROMPT, "-t", "1", "-c", "128"]
    if case.setting != "temp":
        args += ["--temp", str(temp)]
    if case.setting != "n_predict":
        args += ["-n", "1"]
    if s.kind == "bool":
        args.append(s.flag)
    else:
        args += [s.flag, str(case.value)]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            status = cli.main(args)
        except SystemExit as e:  # argparse's refusals
            status = e.code
    return None if status == 0 else err.getvalue() or f"exit {status}"


def server(base_url: str, case: Case, temp: float) -> str | None:
    """The server's message for the case (None: it answered 200)."""
    body: dict[str, Any] = {"prompt": PROMPT, "max_tokens": 1, "temperature": temp}
    body[SCHEMA[case.setting].field] = case.value
    status, text = post(base_url, "/completions", json.dumps(body).encode())
    if status == 200:
        return None
    assert status == 400, f"{case.id}: {status} {text[:300]}"
    return str(json.loads(text)["error"]["message"])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, smollm2_path):
    with running_server(tmp_path_factory.mktemp("doors"), "-m", str(smollm2_path), "-np", "2", "-c", "1024", "-t", "2") as url:
        yield url


@pytest.fixture(scope="module")
def model(smollm2_path):
    with negtemp.Model(smollm2_path, n_ctx=256, n_threads=2) as m:
        yield m


def verdict(message: str | None, stem: str | None) -> str:
    if stem is None:
        return "accepted" if message is None else f"refused: {message.strip()[-300:]}"
    if message is None:
        return "accepted"
    return "refused with the stem" if stem in message else f"refused otherwise: {message.strip()[-300:]}"


@pytest.mark.parametrize("temp", TEMPS, ids=["T+", "T-"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_library_the_cli_and_the_server_agree_on_each_setting(case, temp, model, smollm2_path, base_url):
    want = "accepted" if case.stem is None else "refused with the stem"
    got = {
        "library": verdict(library(model, case, temp), case.stem),
        "server": verdict(server(base_url, case, temp), case.stem),
    }
    if SCHEMA[case.setting].kind != "bool" or case.what == "inside":  # a CLI switch takes no value to get wrong
        got["cli"] = verdict(command_line(str(smollm2_path), case, temp), case.stem)
    assert got == dict.fromkeys(got, want), f"{case} at T = {temp}: {got}"
    assert server(base_url, Case("top_k", "inside", 0, None), temp) is None, "the server stopped serving"


def test_the_cases_cover_every_setting_a_request_can_give():
    walked = {c.setting for c in CASES}
    assert walked == {s.name for s in SCHEMA.values() if s.field and s.name != "logit_bias"}
    assert {"temp", "seed", "top_k", "top_p", "min_p", "repeat_penalty", "n_probs", "n_predict", "n"} <= walked
