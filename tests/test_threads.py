"""Calls on one Model from its own callback and from other threads: nested calls,
cancellation, never a deadlock."""

import subprocess
import sys
import threading

import pytest

import negtemp
from negtemp.host import usable_cpus

PROMPT = "Temperature is a concept"


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.tokenize("x"),
        lambda m: m.complete(PROMPT, n_predict=2),
        lambda m: m.logits([1, 2]),
    ],
    ids=["tokenize", "complete", "logits"],
)
def test_the_model_can_be_called_from_its_own_on_text_callback(tiny, call):
    results = []
    c = tiny.complete(PROMPT, -1.0, n_predict=4, ignore_eos=True, on_text=lambda s: results.append(call(tiny)))
    assert c.tokens.size == 4 and len(results) >= 1, "the generation did not run to its end around the nested calls"


def test_closing_the_model_from_its_own_callback_stops_the_generation(tiny_path):
    m = negtemp.Model(tiny_path, n_ctx=256, n_threads=1)
    pieces = []

    def on_text(s):
        pieces.append(s)
        m.close()

    with pytest.raises(negtemp.Cancelled, match="closed"):
        m.complete(PROMPT, -1.0, n_predict=50, ignore_eos=True, on_text=on_text)
    assert m.closed and len(pieces) == 1, f"{len(pieces)} tokens came after close()"


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


# Ctrl-C (SIGINT, from a timer) while SmolLM2 tokenizes 16 MB, about 18 s of work
INTERRUPT_TOKENIZATION = """
import os, signal, sys, threading
import negtemp

signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored

m = negtemp.Model(sys.argv[1], n_threads=1)
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
timer.start()
try:
    m.tokenize("a" * (16 << 20))
    print("finished")
except KeyboardInterrupt:
    timer.join()
    print("interrupted", threads() - before)
m.close()
print("closed")
"""


@pytest.mark.real_model
def test_ctrl_c_interrupts_a_long_tokenization_and_close_waits_for_it(smollm2):
    out = subprocess.run([sys.executable, "-c", INTERRUPT_TOKENIZATION, str(smollm2.path)], capture_output=True,
                         text=True, timeout=300).stdout.split("\n")
    assert out[0] == "interrupted 1", (
        f"Ctrl-C did not stop the tokenization while it ran (printed {out[0]!r}; 'interrupted 1' means it "
        "raised KeyboardInterrupt with the tokenizing thread still at work)")
    assert out[1] == "closed", "close() after an interrupted tokenization did not return cleanly"


# Every thread of a pool of 256 gets a stack; with 1 GiB of address space they do not all fit
THREADS_PAST_MEMORY = """
import resource, sys, warnings
import negtemp

warnings.simplefilter("ignore", RuntimeWarning)  # more threads than CPUs
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
try:
    negtemp.Model(sys.argv[1], n_ctx=64, n_threads=256, vet=False).complete("the temperature", n_predict=2)
    print("generated")
except RuntimeError as e:
    print("RuntimeError:", e)
negtemp.Model(sys.argv[1], n_ctx=64, n_threads=2, vet=False).complete("the temperature", n_predict=2)
print("2 threads generated")
"""


def test_more_threads_than_memory_allows_raise_and_the_process_lives_on(tiny_path):
    res = subprocess.run([sys.executable, "-c", THREADS_PAST_MEMORY, str(tiny_path)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, f"the process died (status {res.returncode}): {res.stderr[-500:]}"
    first, second = res.stdout.splitlines()[:2]
    assert first.startswith("RuntimeError:") and "lower n_threads" in first, f"256 threads under 1 GiB: {first}"
    assert second == "2 threads generated"


def test_more_threads_than_usable_cpus_are_warned_about(tiny_path):
    with pytest.warns(RuntimeWarning, match=r"more than the \d+ CPUs this process may use"):
        negtemp.Model(tiny_path, n_ctx=64, n_threads=usable_cpus() + 1).close()
