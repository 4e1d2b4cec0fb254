"""Masked tokens at T = -0.001 on real models: they stay impossible, and the
reported log-probabilities are the reference's on the logits actually sampled."""

import math

import numpy as np
import pytest

from negtemp import reference

PROMPT = "Temperature is a concept"
N = 32
pytestmark = pytest.mark.real_model


def assert_logprobs_match_reference(c, temp, bias=None):
    assert c.step_logits is not None
    for i, tok in enumerate(c.tokens):
        z = c.step_logits[i].astype(np.float64)
        for t, b in (bias or {}).items():
            z[t] += b
        want = math.log(reference.probs(z, temp)[tok])
        assert abs(c.logprobs[i] - want) < 1e-4, f"step {i}: logprob {c.logprobs[i]:.6f}, reference {want:.6f}"


def test_ignore_eos_runs_the_full_length_and_never_emits_end_tokens(real_model):
    c = real_model.complete(PROMPT, -0.001, seed=1, n_predict=N, ignore_eos=True, keep_logits=True)
    assert c.tokens.size == N, f"stopped after {c.tokens.size} of {N} tokens with ignore_eos"
    assert not set(c.tokens.tolist()) & real_model.eog_tokens
    assert_logprobs_match_reference(c, -0.001, {t: -math.inf for t in real_model.eog_tokens})


def test_a_logit_bias_ban_is_respected_at_negative_temperature(real_model):
    free = real_model.complete(PROMPT, -0.001, seed=1, n_predict=N, ignore_eos=True)
    ban = {int(t): -math.inf for t in free.tokens[:5]}
    ban.update({t: -math.inf for t in real_model.eog_tokens})
    c = real_model.complete(PROMPT, -0.001, seed=1, n_predict=N, logit_bias=ban, keep_logits=True)
    assert c.tokens.size == N, f"stopped after {c.tokens.size} of {N} tokens"
    assert not set(c.tokens.tolist()) & ban.keys(), "a banned token was sampled"
    assert_logprobs_match_reference(c, -0.001, ban)


def test_logprobs_at_minus_one_are_the_reference_on_the_sampled_logits(real_model):
    c = real_model.complete(PROMPT, -1.0, seed=3, n_predict=16, ignore_eos=True, keep_logits=True)
    assert_logprobs_match_reference(c, -1.0, {t: -math.inf for t in real_model.eog_tokens})


@pytest.mark.parametrize("temp", [-0.001, -1.0, 0.8])
def test_fused_generation_equals_llama_cpp_chain(real_model, temp):
    fused = real_model.complete(PROMPT, temp, seed=5, n_predict=24, ignore_eos=True)
    chain = real_model.complete(PROMPT, temp, seed=5, n_predict=24, ignore_eos=True, path="chain")
    np.testing.assert_array_equal(fused.tokens, chain.tokens, err_msg=f"fused sampler and chain diverge at T={temp}")
    np.testing.assert_allclose(fused.logprobs, chain.logprobs, atol=1e-5)
