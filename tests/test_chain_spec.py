"""Every sampling rule is checked once, at the native boundary, and a bad value is a ValueError naming it.

The four calls that once ended the process come
first; then the rules that moved to the boundary with them.
"""

import math

import numpy as np
import pytest

import negtemp

Z = np.linspace(-3, 3, 8).astype(np.float32)


@pytest.mark.parametrize("path", ["fused", "chain", "backend"])
@pytest.mark.parametrize("token", [10**7, -1, 8, 2**63 - 1, -(2**63), 2**70])
def test_a_logit_bias_token_outside_the_logits_is_refused_on_every_path(path, token):
    with pytest.raises(ValueError, match=rf"logit_bias token {token} is outside (the vocabulary \[0, 8\)|every)"):
        negtemp.sampler_probs(Z, -1.0, path=path, logit_bias={token: 5.0})


@pytest.mark.parametrize("path", ["fused", "chain", "backend"])
def test_sample_tokens_refuses_a_logit_bias_token_outside_the_logits(path):
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 8\)"):
        negtemp.sample_tokens(Z, -1.0, n=4, seed=1, path=path, logit_bias={8: 5.0})


def test_the_last_token_of_the_logits_takes_a_bias():
    p = negtemp.sampler_probs(Z, -1.0, path="chain", logit_bias={7: -math.inf})
    assert p[7] == 0.0 and p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("path", ["fused", "chain", "backend"])
def test_a_generation_refuses_a_logit_bias_token_outside_the_models_vocabulary(tiny, path):
    with pytest.raises(ValueError, match=rf"logit_bias token {tiny.n_vocab} is outside the vocabulary "
                                         rf"\[0, {tiny.n_vocab}\)"):
        tiny.complete("hi", -1.0, n_predict=2, path=path, logit_bias={tiny.n_vocab: 1.0})


def test_a_sweep_refuses_a_logit_bias_token_outside_the_models_vocabulary(tiny):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny.sweep("hi", [-1.0, 1.0], n_predict=2, logit_bias={-5: 1.0})


def test_the_reference_refuses_a_logit_bias_token_outside_the_logits():
    config = negtemp.SamplingConfig(temp=-1.0, logit_bias={8: 1.0})
    with pytest.raises(ValueError, match=r"logit_bias token 8 is outside the vocabulary \[0, 8\)"):
        negtemp.reference.probs(Z, config=config)


@pytest.mark.parametrize("history", [[8], [-1], [2**40]])
def test_a_penalty_history_token_outside_the_logits_is_refused(history):
    with pytest.raises(ValueError, match="history token"):
        negtemp.sampler_probs(Z, -1.0, path="chain", repeat_penalty=1.5, history=history)


def test_the_reference_refuses_a_penalty_history_token_outside_the_logits():
    config = negtemp.SamplingConfig(temp=-1.0, repeat_penalty=1.5)
    with pytest.raises(ValueError, match="history token -1 is outside"):
        negtemp.reference.probs(Z, config=config, history=[-1])


def test_token_bytes_of_a_token_outside_the_vocabulary_names_the_vocabulary(tiny):
    with pytest.raises(ValueError, match=rf"token id 1000000000 is outside the vocabulary \[0, {tiny.n_vocab}\)"):
        tiny.token_bytes(10**9)


def test_a_batch_of_more_sequences_than_llama_cpp_decodes_together_names_the_limit(tiny):
    with pytest.raises(ValueError, match=r"parallel must be in \[1, 256\] \(sequences decoded together; llama.cpp's "
                                         r"limit\), got 4096"):
        tiny.batch(["hi"], n=2, n_predict=1, parallel=4096)


def test_a_sweep_of_more_temperatures_than_llama_cpp_decodes_together_runs_them_in_turn(tiny):
    runs = tiny.sweep("hi", [-1.0] * 300, n_predict=1, seed=1)
    assert len(runs) == 300 and all(len(r.tokens) == 1 for r in runs)


def test_a_penalty_window_past_a_million_tokens_is_refused_before_it_allocates():
    with pytest.raises(ValueError, match=r"penalty_last_n must be in \[1, 1048576\], got 2147483647"):
        negtemp.SamplingConfig(temp=1.0, repeat_penalty=1.1, penalty_last_n=2**31 - 1)


@pytest.mark.parametrize("name, value, match", [
    ("seed", 2**70, r"seed must be in \[0, 4294967294\], got 1180591620717411303424"),
    ("top_k", 2**31, r"top_k must be in \[0, 2147483647\] \(0 = off\), got 2147483648"),
    ("top_p", math.nan, r"top_p must be in \[0, 1\]"),
])
def test_a_setting_out_of_range_names_the_setting_its_range_and_the_value(name, value, match):
    with pytest.raises(ValueError, match=match):
        negtemp.SamplingConfig(temp=1.0, **{name: value})


def test_ignore_eos_on_bare_logits_is_refused_rather_than_ignored():
    with pytest.raises(ValueError, match="ignore_eos needs a model's end-of-generation tokens"):
        negtemp.sampler_probs(Z, -1.0, path="chain", ignore_eos=True)


@pytest.mark.parametrize("n", [0, -1, 2**31])
def test_a_draw_count_out_of_range_is_refused(n):
    with pytest.raises(ValueError, match=r"n must be in \[1, 2147483647\] \(draws\)"):
        negtemp.sample_tokens(Z, -1.0, n=n, seed=1)


def test_the_plain_chain_and_the_path_it_resolves_to_are_the_native_layers():
    assert negtemp.SamplingConfig(temp=-1.0).plain
    assert negtemp.SamplingConfig(temp=-1.0).resolved().path == "fused"
    for setting in ({"top_k": 1}, {"top_p": 0.5}, {"min_p": 0.1}, {"repeat_penalty": 1.1}):
        c = negtemp.SamplingConfig(temp=-1.0, **setting)
        assert not c.plain and c.resolved().path == "chain", setting


@pytest.mark.parametrize("n_predict", [0, -3])
def test_n_predict_below_one_is_refused_by_the_generation(tiny, n_predict):
    with pytest.raises(ValueError, match=r"n_predict must be in \[1, 2147483647\]"):
        tiny.complete("hi", -1.0, n_predict=n_predict)
