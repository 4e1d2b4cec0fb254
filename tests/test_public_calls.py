"""No public call can end the process: every entry point, driven with arbitrary arguments, returns or raises.

Each example runs in a forked child of the test process (the tiny model is
loaded once, before the fork), so a call that corrupts memory, aborts or
segfaults kills only the child; the parent sees the signal and hypothesis
shrinks the arguments to a minimal crashing call. A child that hangs is
ended by an alarm and counts as a failure too. The checks that these calls
raise the *right* exception live with each entry point's own tests; this one
proves only that the process survives whatever a caller passes.
"""

from __future__ import annotations

import faulthandler
import math
import os
import signal
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import negtemp

# an alarm ends a child that hangs; a call here finishes in well under a second
CHILD_SECONDS = 20

# integers of every size a caller might pass: small ones that hit the tiny vocabulary's edges,
# int32 and int64 edges, and huge ones
INTS = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([2**31 - 1, 2**31, -(2**31) - 1, 2**32 - 1, 2**32, 10**7, 10**9, -(10**9), 2**63, -(2**63)]),
    st.integers(),
)
FLOATS = st.one_of(st.floats(-5, 5), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0]))
# what a caller might pass where a number belongs
ANY_SCALAR = st.one_of(INTS, FLOATS, st.none(), st.booleans(), st.text(max_size=3))


def mostly(valid: st.SearchStrategy[Any], wild: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """valid three times in four: a call must get past its other settings to reach the one that is wild."""
    return st.one_of(valid, valid, valid, wild)




def bias_for(n_vocab: int) -> st.SearchStrategy[dict[Any, float]]:
    """Logit-bias maps whose keys sit at the edges of a vocabulary of n_vocab tokens, inside it, or anywhere."""
    edge = st.sampled_from([n_vocab - 1, n_vocab, n_vocab + 1, -1, 0, 10**7, 2**31, -(2**31), 2**70])
    key = st.one_of(edge, edge, st.integers(0, n_vocab - 1), st.one_of(INTS, st.text(max_size=2)))
    return st.dictionaries(key, mostly(st.floats(-5, 5), FLOATS), min_size=1, max_size=3)


HISTORY = st.one_of(st.just([]), st.just([]), st.lists(mostly(st.integers(0, 40), INTS), max_size=6))
TOKENS = st.lists(mostly(st.integers(0, 40), INTS), max_size=6)
PATHS = mostly(st.sampled_from(["auto", "fused", "chain", "backend"]), st.sampled_from(["cpu", "gpu", ""]))
LOGITS = arrays(np.float32, st.integers(1, 40),
                elements=mostly(st.floats(-10, 10, width=32), st.floats(width=32, allow_nan=True, allow_infinity=True)))
TEXT = st.one_of(st.text(max_size=30), st.binary(max_size=30), TOKENS)


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for part in parts for k, v in part.items()}


TEMPERATURE = mostly(st.one_of(st.fixed_dictionaries({"temp": FLOATS}), st.fixed_dictionaries({"beta": FLOATS}),
                               st.just({})), st.fixed_dictionaries({"temp": FLOATS, "beta": FLOATS}))
SETTINGS = st.builds(_merge, TEMPERATURE, st.fixed_dictionaries(
    {},
    optional={
        "seed": mostly(st.integers(0, 2**32 - 2), ANY_SCALAR), "top_k": mostly(st.integers(0, 50), ANY_SCALAR),
        "top_p": mostly(st.floats(0, 1), FLOATS), "min_p": mostly(st.floats(0, 1), FLOATS),
        "repeat_penalty": mostly(st.floats(0.5, 2), FLOATS), "penalty_last_n": mostly(st.integers(1, 64), INTS),
        "path": PATHS, "ignore_eos": st.booleans(),
    },
))
# the length of a generation: small, so a valid call finishes quickly; bad values included
N_PREDICT = st.one_of(st.integers(1, 4), st.sampled_from([0, -1, 2**31, 10**12]))
N_DRAWS = st.one_of(st.integers(1, 20), st.sampled_from([0, -1, -(2**40), 2**63]))


def _outcome_in_child(call: Callable[[], object]) -> str:
    """Run call in a forked child: "ok", "raised <type>", or how the child died."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that a forked child of a threaded process may deadlock; the alarm covers that
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        faulthandler.disable()  # the parent reports how the child died; its traceback would be noise
        signal.alarm(CHILD_SECONDS)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                call()
            message = "ok"
        except Exception as e:
            message = f"raised {type(e).__name__}"
        except BaseException as e:  # KeyboardInterrupt and the like are Python exceptions too
            message = f"raised {type(e).__name__}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}" + (" (a hang)" if sig == signal.SIGALRM else "")
    if os.WEXITSTATUS(status) != 0 or not message:
        return f"exited with status {os.WEXITSTATUS(status)} without returning or raising"
    return message


def assert_survives(call: Callable[[], object]) -> None:
    outcome = _outcome_in_child(call)
    assert outcome == "ok" or outcome.startswith("raised "), f"the call ended the process: {outcome}"


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_bias(data: st.DataObject, options: dict[str, Any], n_vocab: int) -> dict[str, Any]:
    """options, half the time with a logit bias drawn for a vocabulary of n_vocab tokens."""
    if data.draw(st.booleans()):
        options["logit_bias"] = data.draw(bias_for(n_vocab))
    return options


@PROPERTY
@given(logits=LOGITS, options=SETTINGS, path=st.one_of(st.none(), PATHS), history=HISTORY, data=st.data())
def test_sampler_probs_never_ends_the_process(logits: np.ndarray, options: dict[str, Any], path: str | None,
                                              history: list[int], data: st.DataObject) -> None:
    options = with_bias(data, options, logits.size)
    assert_survives(lambda: negtemp.sampler_probs(logits, path=path, history=history, **options))


@PROPERTY
@given(logits=LOGITS, options=SETTINGS, n=N_DRAWS, seed=INTS, path=st.one_of(st.none(), PATHS), data=st.data())
def test_sample_tokens_never_ends_the_process(logits: np.ndarray, options: dict[str, Any], n: int, seed: int,
                                              path: str | None, data: st.DataObject) -> None:
    options = with_bias(data, options, logits.size)
    options.pop("seed", None)
    assert_survives(lambda: negtemp.sample_tokens(logits, n=n, seed=seed, path=path, **options))


@PROPERTY
@given(prompt=TEXT, options=SETTINGS, n_predict=N_PREDICT, n_probs=st.one_of(st.integers(0, 5), INTS),
       keep_logits=st.booleans(), stop=st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=3))),
       data=st.data())
def test_complete_never_ends_the_process(tiny: negtemp.Model, prompt: Any, options: dict[str, Any], n_predict: int,
                                         n_probs: int, keep_logits: bool, stop: Any, data: st.DataObject) -> None:
    options = with_bias(data, options, tiny.n_vocab)
    assert_survives(lambda: tiny.complete(prompt, n_predict=n_predict, n_probs=n_probs, keep_logits=keep_logits,
                                          stop=stop, **options))


@PROPERTY
@given(prompt=TEXT, options=SETTINGS, n_predict=N_PREDICT, take=st.integers(0, 5), data=st.data())
def test_stream_never_ends_the_process(tiny: negtemp.Model, prompt: Any, options: dict[str, Any], n_predict: int,
                                       take: int, data: st.DataObject) -> None:
    options = with_bias(data, options, tiny.n_vocab)

    def call() -> None:
        chunks = tiny.stream(prompt, n_predict=n_predict, **options)
        for _, _ in zip(range(take), chunks):
            pass

    assert_survives(call)


@PROPERTY
@given(prompt=TEXT, temps=st.lists(FLOATS, max_size=6), options=SETTINGS, n_predict=N_PREDICT,
       many=st.sampled_from([0, 300, 4096]), data=st.data())
def test_sweep_never_ends_the_process(tiny: negtemp.Model, prompt: Any, temps: list[float], options: dict[str, Any],
                                      n_predict: int, many: int, data: st.DataObject) -> None:
    options = with_bias(data, options, tiny.n_vocab)
    options.pop("temp", None)
    options.pop("beta", None)
    values = temps + [-1.0] * many
    assert_survives(lambda: tiny.sweep(prompt, values, n_predict=min(n_predict, 2), **options))


@PROPERTY
@given(tokens=TOKENS, token=st.one_of(INTS, ANY_SCALAR), text=TEXT, messages=st.one_of(
    st.text(max_size=10),
    st.lists(st.dictionaries(st.sampled_from(["role", "content", "x"]),
                             st.one_of(st.sampled_from(["user", "system", "assistant", "tool"]), st.text(max_size=5),
                                       st.none())), max_size=3)))
def test_model_utilities_never_end_the_process(tiny: negtemp.Model, tokens: list[int], token: Any, text: Any,
                                               messages: Any) -> None:
    assert_survives(lambda: tiny.detokenize(tokens))
    assert_survives(lambda: tiny.token_bytes(token))
    assert_survives(lambda: tiny.logits(tokens))
    assert_survives(lambda: tiny.tokenize(text))
    assert_survives(lambda: tiny.chat_prompt(messages))


@PROPERTY
@given(logits=LOGITS, options=SETTINGS, history=HISTORY, data=st.data())
def test_the_reference_never_ends_the_process(logits: np.ndarray, options: dict[str, Any], history: list[int],
                                              data: st.DataObject) -> None:
    options = with_bias(data, options, logits.size)

    def call() -> None:
        config = negtemp.SamplingConfig(**options)
        negtemp.reference.probs(logits, config=config, history=history)

    assert_survives(call)


def test_the_harness_reports_a_call_that_kills_the_process() -> None:
    assert _outcome_in_child(lambda: os.kill(os.getpid(), signal.SIGSEGV)) == "killed by SIGSEGV"
    assert _outcome_in_child(lambda: os.abort()) == "killed by SIGABRT"
    assert _outcome_in_child(lambda: math.sqrt(-1)) == "raised ValueError"
    with pytest.raises(AssertionError, match="ended the process"):
        assert_survives(lambda: os.kill(os.getpid(), signal.SIGSEGV))
