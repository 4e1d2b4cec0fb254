"""The backend sampling path on a real GPU API: ggml's Vulkan backend (Mesa's lavapipe in CI).

These run against a Vulkan build of negtemp (CMAKE_ARGS=-DGGML_VULKAN=on) with
a Vulkan device visible (GGML_VK_VISIBLE_DEVICES=0 selects lavapipe, which
ggml-vulkan otherwise ignores as a CPU device); elsewhere they are skipped
(conftest.py), and `.ci/vulkan` runs them with NEGTEMP_REQUIRE_VULKAN=1 so
that a skip fails CI instead.
"""

import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings

import negtemp
from negtemp import SamplingConfig, reference
from test_chains import PROPERTY, WORST, cases, check, check_draws
from test_sampler_exact import CASES, check_against_the_reference

log = logging.getLogger(__name__)
pytestmark = pytest.mark.vulkan
DEVICE = "Vulkan0"
PROMPT = "Temperature is a concept"


@pytest.fixture(scope="module")
def smollm2_on_vulkan():
    """SmolLM2 with every layer on Vulkan0 (the default n_gpu_layers=-1); each call on a fresh context, so
    that the chain and backend paths compare on logits computed alike (test_prefix_cache covers the cache)."""
    with negtemp.Model("smollm2-135m", n_ctx=256, n_threads=2, prefix_cache=0) as m:
        yield m


def after_the_model(nodes: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """The sampler's nodes: those computed after the model's output ("result_output")."""
    names = [n[0] for n in nodes]
    assert "result_output" in names, f"no result_output node among {len(nodes)} nodes"
    return nodes[names.index("result_output") + 1:]


@pytest.mark.parametrize("name, z", CASES, ids=[c[0] for c in CASES])
def test_backend_probabilities_on_vulkan_equal_the_reference(name, z):
    err = check_against_the_reference("backend", name, z, device=DEVICE)
    WORST[f"backend on {DEVICE}, fixed cases"] = max(WORST.get(f"backend on {DEVICE}, fixed cases", 0.0), err)


@settings(PROPERTY, max_examples=200)
@given(case=cases())
def test_backend_graph_on_vulkan_equals_the_reference_for_any_chain(case):
    check(case, "backend", device=DEVICE)


# Rows of 2 to 5 tokens, all negative (the largest logit negative) and mixed, at every k below the row's
# length: ggml-vulkan's top-k once kept the wrong token at k = 1 when the largest value was negative.
SMALL_ROWS = [
    np.array(z, dtype=np.float32)
    for z in ([-1.0, -2.0], [-2.0, -1.0], [-3.0, -0.5, -2.0], [-0.25, -4.0, -1.0, -8.0], [-5.0, -4.0, -3.0, -2.0, -1.0],
              [0.5, -1.0, 2.0], [-1.0, 3.0, -2.0, 0.0, 1.0])
]
SMALL_CASES = [(z, k, temp) for z in SMALL_ROWS for k in range(1, z.size) for temp in (-1.0, 0.7)]


@pytest.mark.parametrize("z, k, temp", SMALL_CASES,
                         ids=[f"{z.tolist()}-k{k}-T{temp}" for z, k, temp in SMALL_CASES])
def test_top_k_on_vulkan_keeps_the_k_largest_logits_of_a_small_row(z, k, temp):
    got = negtemp.sampler_probs(z, temp, top_k=k, path="backend", device=DEVICE)
    want = reference.probs(z, config=SamplingConfig(temp=temp, top_k=k))
    kept = sorted(np.flatnonzero(want > 0).tolist())
    assert sorted(np.flatnonzero(got > 0).tolist()) == kept, f"{DEVICE} kept other tokens than the {k} largest"
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("temp", [-0.5, -1.0, 2.0])
def test_vulkan_draws_follow_the_reference_and_a_sign_flipped_reference_is_rejected(temp):
    # each draw is a graph run on lavapipe (2 ms); 20,000 of them still reject the sign flip at p < 1e-12
    # (100,000 took a third of the Vulkan stage)
    check_draws("backend", "plain", temp, device=DEVICE, n=20_000)


def test_the_sampler_graph_and_the_model_run_on_vulkan(smollm2_on_vulkan):
    nodes = smollm2_on_vulkan.op_backends(PROMPT, SamplingConfig(temp=-0.001, top_k=50, path="backend"))
    sampler = after_the_model(nodes)
    assert len(sampler) >= 10, f"too few sampler nodes to be the chain: {sampler}"
    elsewhere = [n for n in sampler if n[2] != DEVICE]
    assert not elsewhere, f"sampler nodes that did not run on {DEVICE} (a CPU fallback): {elsewhere}"
    matmuls = [n for n in nodes if n[1] == "MUL_MAT"]
    assert matmuls and all(n[2] == DEVICE for n in matmuls), f"model matmuls off {DEVICE}: {matmuls[:5]}"
    log.info("%d of %d nodes on %s, all %d of the sampler's among them", sum(n[2] == DEVICE for n in nodes),
             len(nodes), DEVICE, len(sampler))


def test_the_placement_check_sees_a_model_kept_on_the_cpu(tmp_path):
    # the check above must be able to fail: with n_gpu_layers=0 the layers stay on the CPU
    with negtemp.Model("smollm2-135m", n_ctx=256, n_threads=2, n_gpu_layers=0) as m:
        nodes = m.op_backends(PROMPT, SamplingConfig(temp=-1.0, path="backend"))
    matmuls = [n for n in nodes if n[1] == "MUL_MAT"]
    assert matmuls and any(n[2] == "CPU" for n in matmuls), f"n_gpu_layers=0, yet every matmul on {DEVICE}"


# The same build on the CPU: without GGML_VK_VISIBLE_DEVICES, ggml-vulkan hides lavapipe
CPU_RUN = """
import sys, numpy as np, negtemp
assert not [d for d in negtemp.devices() if d[0].startswith("Vulkan")], "a Vulkan device is visible"
m = negtemp.Model("smollm2-135m", n_ctx=256, n_threads=2, prefix_cache=0)
c = m.complete(sys.argv[1], float(sys.argv[2]), n_predict=24, seed=1, path="chain", keep_logits=True)
np.savez(sys.argv[3], tokens=c.tokens, logits=c.step_logits)
"""
# The largest difference between a SmolLM2 logit computed on lavapipe and on the CPU, measured:
# 0.9 (mean 0.1 to 0.3). The two backends' arithmetic may order tokens closer than this differently.
CROSS_BACKEND_LOGIT_GAP = 1.0


def cpu_run(temp: float, tmp_path) -> tuple[list[int], np.ndarray]:
    env = {k: v for k, v in os.environ.items() if k != "GGML_VK_VISIBLE_DEVICES"}
    out = tmp_path / "cpu.npz"
    res = subprocess.run([sys.executable, "-c", CPU_RUN, PROMPT, repr(temp), str(out)], capture_output=True,
                         text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-1000:]
    with np.load(out) as f:
        return f["tokens"].tolist(), f["logits"]


@pytest.mark.parametrize("temp", [-0.001, 0.001])
def test_the_vulkan_backend_sampler_draws_the_cpu_chains_tokens_on_the_same_logits(smollm2_on_vulkan, temp):
    chain = smollm2_on_vulkan.complete(PROMPT, temp, n_predict=24, seed=1, path="chain").tokens.tolist()
    backend = smollm2_on_vulkan.complete(PROMPT, temp, n_predict=24, seed=1, path="backend").tokens.tolist()
    assert backend == chain, f"T={temp}: the sampler graph on {DEVICE} drew other tokens than llama.cpp's CPU chain"


@pytest.mark.parametrize("temp", [-0.001, 0.001])
def test_vulkan_and_cpu_generations_agree_until_a_near_tie(smollm2_on_vulkan, temp, tmp_path):
    cpu_tokens, cpu_logits = cpu_run(temp, tmp_path)
    got = smollm2_on_vulkan.complete(PROMPT, temp, n_predict=24, seed=1, path="chain").tokens.tolist()
    first = next((i for i, (a, b) in enumerate(zip(got, cpu_tokens)) if a != b), None)
    log.info("T=%g: %s and the CPU agree on %s of 24 tokens", temp, DEVICE, first if first is not None else "all")
    if first is not None:
        gap = abs(float(cpu_logits[first][got[first]] - cpu_logits[first][cpu_tokens[first]]))
        assert gap < CROSS_BACKEND_LOGIT_GAP, (
            f"T={temp}, step {first}: {DEVICE} drew {got[first]}, the CPU {cpu_tokens[first]}, whose logits are "
            f"{gap:.3f} apart: more than the two backends' arithmetic explains")


@pytest.mark.parametrize("temp", [-0.001, -1.0])
def test_each_vulkan_logprob_is_the_references_on_that_steps_logits(smollm2_on_vulkan, temp):
    c = smollm2_on_vulkan.complete(PROMPT, temp, n_predict=16, seed=1, path="chain", keep_logits=True)
    for i, tok in enumerate(c.tokens):
        want = math.log(reference.probs(c.step_logits[i], temp)[tok])
        assert abs(c.logprobs[i] - want) <= 1e-4, f"T={temp}, step {i}: logprob {c.logprobs[i]} against {want}"


def test_ignore_eos_and_bans_hold_on_the_vulkan_backend_path(smollm2_on_vulkan):
    m = smollm2_on_vulkan
    free = m.complete(PROMPT, -0.001, n_predict=8, seed=1, path="backend")
    banned = set(free.tokens[:5].tolist()) | set(m.eog_tokens)
    c = m.complete(PROMPT, -0.001, n_predict=32, seed=1, path="backend", ignore_eos=True,
                   logit_bias={t: -math.inf for t in banned})
    assert c.tokens.size == 32, f"stopped after {c.tokens.size} tokens despite ignore_eos"
    assert not banned & set(c.tokens.tolist()), f"banned tokens drawn on {DEVICE}: {banned & set(c.tokens.tolist())}"


def teardown_module() -> None:
    for where, err in sorted(WORST.items()):
        if DEVICE in where:
            log.info("max |sampler - reference|, %s: %.3g", where, err)
