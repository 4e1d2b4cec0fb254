"""Interrupts and threads: the process survives and the Model stays usable."""

import os
import signal
import threading

import numpy as np
import pytest

import negtemp

PROMPT = "the temperature is a concept"


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler, whatever this process inherited (a shell's background job ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_generation_within_one_token_and_the_model_stays_usable(tiny, ctrl_c_raises):
    streamed: list[str] = []

    def on_text(s: str) -> None:
        streamed.append(s)
        if len(streamed) == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        tiny.complete(PROMPT, -1.0, seed=1, n_predict=200, ignore_eos=True, on_text=on_text)
    assert len(streamed) <= 6, f"generation went on for {len(streamed) - 5} tokens after Ctrl-C"
    again = tiny.complete(PROMPT, -1.0, seed=1, n_predict=8)
    assert again.tokens.size == 8


def test_four_threads_on_one_model_match_sequential_runs(tiny):
    seeds = [11, 12, 13, 14]
    sequential = [tiny.complete(PROMPT, -1.0, seed=s, n_predict=24, ignore_eos=True).tokens for s in seeds]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(s: int) -> None:
        try:
            results[s] = tiny.complete(PROMPT, -1.0, seed=s, n_predict=24, ignore_eos=True).tokens
        except BaseException as e:  # surfaced below with the seed
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, f"a thread failed: {errors[0]!r}"
    for s, want in zip(seeds, sequential):
        np.testing.assert_array_equal(results[s], want, err_msg=f"seed {s} differs when run in a thread")


def test_module_level_generate_loads_the_model_once_across_threads(tiny_path, monkeypatch):
    loads: list[str] = []
    real_init = negtemp.Model.__init__

    def counting_init(self, *args, **kwargs):
        loads.append(str(args[0] if args else kwargs.get("path")))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(negtemp.Model, "__init__", counting_init)
    model_path = str(tiny_path) + ".copy.gguf"
    with open(tiny_path, "rb") as src, open(model_path, "wb") as dst:
        dst.write(src.read())
    texts: list[str] = []
    threads = [
        threading.Thread(target=lambda: texts.append(negtemp.generate(PROMPT, -1.0, model=model_path, seed=1, n_predict=4)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(texts) == 4 and len(set(texts)) == 1
    assert len(loads) == 1, f"the model was loaded {len(loads)} times"
