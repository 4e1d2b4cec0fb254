"""Memory over long runs: no growth per call, and close() gives the memory back."""

import gc
import os

import pytest

import negtemp

PROMPT = "the temperature is a concept"


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from Linux's /proc")


def test_a_thousand_generate_calls_grow_rss_by_less_than_10_mb(tiny):
    for _ in range(20):  # warm up allocator pools
        tiny.generate(PROMPT, -1.0, seed=1, n_predict=4)
    before = rss_mb()
    for i in range(1000):
        tiny.generate(PROMPT, -1.0, seed=i, n_predict=4)
    grown = rss_mb() - before
    assert grown < 10, f"RSS grew by {grown:.1f} MB over 1,000 generate calls"


def load_generate_close(path) -> tuple[negtemp.Model, float]:
    with negtemp.Model(path, n_ctx=256, n_threads=2) as m:
        m.generate("Temperature is a concept", 0.5, seed=1, n_predict=8)
        loaded = rss_mb()
    gc.collect()
    return m, loaded


@pytest.mark.real_model
def test_close_and_the_context_manager_give_the_model_memory_back():
    path = negtemp.registry.pull("smollm2-135m")
    # the first load initialises ggml's tables and grows malloc's pools once; measure after it
    load_generate_close(path)
    baseline = rss_mb()
    m, loaded = load_generate_close(path)
    after = rss_mb()
    assert loaded - baseline > 50, f"loading a 98 MB model raised RSS by only {loaded - baseline:.1f} MB"
    assert after - baseline < 10, f"RSS stayed {after - baseline:.1f} MB above the baseline after close()"
    with pytest.raises(RuntimeError, match="closed"):
        m.generate("again")
