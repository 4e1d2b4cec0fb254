"""Forking after a generation: the child generates too, never hangs.

With OpenMP threads (llama.cpp's default build) a child forked after a
generation with n_threads >= 2 hung inside libgomp; negtemp builds ggml with
its own thread pool. Each child runs under an alarm, so a regression fails
the test instead of hanging the suite.
"""

import multiprocessing
import os
import signal

import numpy as np
import pytest

import negtemp

PROMPT = "Temperature is a concept"


def test_the_build_uses_ggml_threads_not_openmp():
    assert "OPENMP = 1" not in negtemp.system_info(), "built with OpenMP: a fork after generating would hang"


def test_a_forked_child_generates_what_the_parent_does(tiny_path):
    with negtemp.Model(tiny_path, n_ctx=64, n_threads=2) as m:
        parent = m.complete(PROMPT, -1.0, seed=4, n_predict=8, ignore_eos=True).tokens
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.alarm(60)
            try:
                child = m.complete(PROMPT, -1.0, seed=4, n_predict=8, ignore_eos=True).tokens
                os.write(write, child.astype(np.int32).tobytes())
            finally:
                os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        data = os.read(read, 1024)
        os.close(read)
    assert os.WIFEXITED(status), f"the forked child died (signal {os.WTERMSIG(status)}; 14 = hung until the alarm)"
    np.testing.assert_array_equal(np.frombuffer(data, dtype=np.int32), parent)


def _generate_in_worker(path: str) -> list[int]:
    signal.alarm(60)
    with negtemp.Model(path, n_ctx=64, n_threads=2) as m:
        return m.complete(PROMPT, -1.0, seed=4, n_predict=6, ignore_eos=True).tokens.tolist()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_fork_pool_started_after_generating_runs_generations(tiny_path):
    with negtemp.Model(tiny_path, n_ctx=64, n_threads=2) as m:
        want = m.complete(PROMPT, -1.0, seed=4, n_predict=6, ignore_eos=True).tokens.tolist()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_generate_in_worker, [str(tiny_path)] * 2).get(timeout=120)
    assert got == [want, want]
