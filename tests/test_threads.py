"""Calls on one Model from its own callback and from other threads: errors and
cancellation, never a deadlock."""

import threading

import pytest

import negtemp

PROMPT = "Temperature is a concept"


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.tokenize("x"),
        lambda m: m.complete(PROMPT, n_predict=2),
        lambda m: m.close(),
        lambda m: m.logits([1, 2]),
    ],
    ids=["tokenize", "complete", "close", "logits"],
)
def test_calling_the_model_from_its_own_callback_raises_instead_of_deadlocking(tiny, call):
    with pytest.raises(RuntimeError, match="own on_text callback"):
        tiny.complete(PROMPT, -1.0, n_predict=4, on_text=lambda s: call(tiny))
    assert not tiny.closed and tiny.complete(PROMPT, -1.0, n_predict=2).tokens.size > 0, "the Model broke"


def run_in_thread(fn):
    out = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    return t, out


def test_cancel_from_another_thread_stops_the_generation_at_the_next_token(tiny_path):
    with negtemp.Model(tiny_path, n_ctx=256, n_threads=1) as m:
        started, cancel_sent = threading.Event(), threading.Event()
        pieces = []

        def on_text(s):
            pieces.append(s)
            started.set()
            cancel_sent.wait(timeout=30)

        t, out = run_in_thread(lambda: m.complete(PROMPT, -1.0, n_predict=200, ignore_eos=True, on_text=on_text))
        assert started.wait(timeout=30), "the generation never produced a token"
        m.cancel()
        cancel_sent.set()
        t.join(timeout=60)
        assert not t.is_alive(), "cancel() did not stop the generation"
        assert isinstance(out.get("error"), negtemp.Cancelled), f"expected Cancelled, got {out}"
        assert len(pieces) == 1, f"{len(pieces)} tokens were generated after cancel(), not 0"
        assert m.complete(PROMPT, -1.0, n_predict=3).tokens.size > 0, "the Model broke after a cancel"


def test_cancel_with_nothing_running_does_not_cancel_the_next_generation(tiny):
    tiny.cancel()
    assert tiny.complete(PROMPT, -1.0, n_predict=5, ignore_eos=True).tokens.size == 5


def test_close_from_another_thread_cancels_a_running_generation_then_frees(tiny_path):
    m = negtemp.Model(tiny_path, n_ctx=256, n_threads=1)
    started, release = threading.Event(), threading.Event()
    pieces = []

    def on_text(s):
        pieces.append(s)
        started.set()
        release.wait(timeout=0.5)  # close() re-sends its cancel every 50 ms meanwhile

    t, out = run_in_thread(lambda: m.complete(PROMPT, -1.0, n_predict=200, ignore_eos=True, on_text=on_text))
    assert started.wait(timeout=30)
    m.close()
    t.join(timeout=60)
    assert not t.is_alive() and m.closed
    assert isinstance(out.get("error"), negtemp.Cancelled), f"expected Cancelled, got {out}"
    assert len(pieces) == 1, f"close() let {len(pieces) - 1} more tokens through"
    with pytest.raises(RuntimeError, match="closed"):
        m.complete(PROMPT)
