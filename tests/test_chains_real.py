"""Filters composed with T = -0.001 on real models: each token is the least likely
survivor of its step's logits, its log-probability is finite and the reference's,
and the CPU and backend paths draw the same tokens."""

import math
from dataclasses import replace

import numpy as np
import pytest

from negtemp import SamplingConfig, reference

PROMPT = "Temperature is a concept"
N = 24
pytestmark = pytest.mark.real_model

CHAINS = {
    "top-k 50": {"top_k": 50},
    "top-k 7": {"top_k": 7},
    "top-p 0.9": {"top_p": 0.9},
    "llama.cpp defaults (top-k 40, top-p 0.95, min-p 0.05)": {"top_k": 40, "top_p": 0.95, "min_p": 0.05},
}


def config_for(model, chain: str) -> SamplingConfig:
    bans = {t: -math.inf for t in model.eog_tokens}  # ignore_eos, spelled out for the reference
    return SamplingConfig(temp=-0.001, seed=1, logit_bias=bans, **CHAINS[chain])


@pytest.mark.parametrize("chain", list(CHAINS))
def test_each_token_is_the_least_likely_survivor_with_a_finite_logprob(real_model, chain):
    config = config_for(real_model, chain)
    c = real_model.complete(PROMPT, config=replace(config, path="chain"), n_predict=N, keep_logits=True)
    assert c.tokens.size == N
    assert np.isfinite(c.logprobs).all(), f"{chain}: non-finite logprobs {c.logprobs}"
    for i, tok in enumerate(c.tokens):
        z = reference.adjusted_logits(c.step_logits[i], config)
        survivors = reference.probs(c.step_logits[i], config=replace(config, temp=None, beta=0.0)) > 0
        assert survivors[tok], f"{chain}, step {i}: token {tok} was filtered out, yet drawn"
        gap = z[tok] - z[survivors].min()
        assert gap <= 0.02, (
            f"{chain}, step {i}: drew a token {gap:.3g} above the least likely survivor "
            f"(the {int((z[survivors] < z[tok]).sum()) + 1}-th least likely of {survivors.sum()})"
        )
        want = math.log(reference.probs(c.step_logits[i], config=config)[tok])
        assert abs(c.logprobs[i] - want) < 1e-4, f"{chain}, step {i}: logprob {c.logprobs[i]:.6f}, reference {want:.6f}"


@pytest.mark.parametrize("chain", list(CHAINS))
def test_the_backend_path_draws_the_chain_paths_tokens(real_model, chain):
    config = config_for(real_model, chain)
    cpu = real_model.complete(PROMPT, config=replace(config, path="chain"), n_predict=N)
    backend = real_model.complete(PROMPT, config=replace(config, path="backend"), n_predict=N)
    assert backend.config.path == "backend" and cpu.config.path == "chain"
    np.testing.assert_array_equal(backend.tokens, cpu.tokens, err_msg=f"{chain}: the paths disagree at T = -0.001")
    assert np.isfinite(backend.logprobs).all(), f"{chain}: backend logprobs {backend.logprobs}"
    np.testing.assert_allclose(backend.logprobs, cpu.logprobs, atol=1e-4)


def test_a_repeat_penalty_raises_the_variety_of_text_at_negative_temperature(smollm2):
    # At T < 0 the penalty acts on -z (docs/semantics.md): repeated tokens become
    # less likely, as at T > 0. llama.cpp's rule on z would make them more likely.
    def distinct(penalty: float) -> int:
        c = smollm2.complete(PROMPT, -0.001, seed=3, n_predict=64, ignore_eos=True, repeat_penalty=penalty)
        return len(set(c.tokens.tolist()))

    plain, penalised = distinct(1.0), distinct(1.5)
    assert penalised > plain, f"repeat_penalty 1.5 at T = -0.001 gave {penalised} distinct tokens in 64, none gave {plain}"
