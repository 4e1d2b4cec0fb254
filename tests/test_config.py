"""SamplingConfig: one validated, frozen value that every result records in full."""

import dataclasses
import json
import math
import typing

import numpy as np
import pytest

import negtemp
from negtemp import SamplingConfig

PROMPT = "Temperature is a concept"


def test_a_config_is_frozen_and_hashable():
    c = SamplingConfig(temp=-0.001, top_k=40, logit_bias={3: -math.inf})
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.top_k = 5  # type: ignore[misc]
    assert hash(c) == hash(SamplingConfig(temp=-0.001, top_k=40, logit_bias={3: -math.inf}))
    assert c != SamplingConfig(temp=-0.001, top_k=41, logit_bias={3: -math.inf})


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temp": 1.0, "beta": 1.0}, TypeError, "exactly one"),
        ({"temp": math.nan}, ValueError, "NaN"),
        ({"top_k": -1}, ValueError, "top_k"),
        ({"top_k": 2.5}, TypeError, "top_k must be an int"),
        ({"top_p": 1.5}, ValueError, "top_p"),
        ({"min_p": -0.1}, ValueError, "min_p"),
        ({"repeat_penalty": 0.0}, ValueError, "repeat_penalty"),
        ({"penalty_last_n": 0}, ValueError, "penalty_last_n"),
        ({"seed": 2**32 - 1}, ValueError, "seed"),
        ({"seed": 1.9}, TypeError, "seed must be an int"),
        ({"logit_bias": {"42": 1.0}}, TypeError, "logit_bias key"),
        ({"logit_bias": {42: math.inf}}, ValueError, "finite, or -inf"),
        ({"logit_bias": {42: math.nan}}, ValueError, "finite, or -inf"),
        ({"path": "gpu"}, ValueError, "path must be one of"),
        ({"path": "fused", "top_k": 5}, ValueError, "plain chain only"),
    ],
)
def test_invalid_settings_are_refused_with_a_message_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        SamplingConfig(**kwargs)


@pytest.mark.parametrize("name", ["mirostat", "xtc_probability", "frequency_penalty", "dry_multiplier"])
def test_llama_cpp_samplers_without_a_sound_meaning_at_negative_temperature_are_refused_by_name(name):
    with pytest.raises(ValueError, match=name):
        SamplingConfig.from_options(-1.0, **{name: 1.0})


def test_numpy_integers_are_accepted_where_ints_are():
    c = SamplingConfig(seed=np.int64(3), top_k=np.int32(4), logit_bias={np.int32(7): -1.0})
    assert (type(c.seed), type(c.top_k), list(c.logit_bias)) == (int, int, [7])


def test_resolving_draws_a_seed_and_names_the_path_that_will_run():
    assert SamplingConfig(temp=-1.0).resolved().path == "fused"
    assert SamplingConfig(temp=-1.0, min_p=0.1).resolved().path == "chain"
    assert SamplingConfig(temp=-1.0, path="backend").resolved().path == "backend"
    seed = SamplingConfig(temp=1.0).resolved().seed
    assert seed is not None and 0 <= seed <= negtemp.config.MAX_SEED
    assert SamplingConfig(temp=1.0, seed=7).resolved().seed == 7


def test_the_path_names_python_types_are_the_native_layers():
    assert typing.get_args(negtemp.config.SamplerPath) == tuple(negtemp._native.sampler_paths())


@pytest.mark.parametrize("word, message", [
    ("temperature", "temperature= is another tool's word: negtemp's is temp="),
    ("max_tokens", "negtemp's is n_predict="),
    ("max_new_tokens", "negtemp's is n_predict="),
    ("repeat_last_n", "negtemp's is penalty_last_n="),
    ("backend_sampling", "negtemp's is path='backend'"),
    ("n", r"Model.draws\(prompt, n=K\)"),
    ("stream", r"Model.stream\(prompt, ...\)"),
    ("fused", "fused= is not a sampling setting; they are: temp, beta"),
])
def test_another_tools_word_for_a_setting_is_refused_with_negtemps(word, message):
    with pytest.raises(TypeError, match=message):
        SamplingConfig.from_options(1.0, **{word: 1})


def test_a_logit_bias_keyed_by_text_is_refused_with_how_to_get_its_token_ids():
    with pytest.raises(TypeError, match=r"logit_bias keys are token ids, got the text 'hello'.*model.tokenize"):
        SamplingConfig(logit_bias={"hello": 5.0})


def test_a_completion_records_the_resolved_config_and_the_path_that_ran(tiny):
    c = tiny.complete(PROMPT, -0.5, n_predict=4, top_k=3)
    assert c.config.path == "chain" and c.config.seed is not None and c.config.top_k == 3
    assert c.settings["path"] == "chain" and c.settings["seed"] == c.config.seed
    again = tiny.complete(PROMPT, config=c.config, n_predict=4)
    np.testing.assert_array_equal(again.tokens, c.tokens, err_msg="rerunning a recorded config changed the tokens")
    json.dumps(tiny.complete(PROMPT, beta=-math.inf, n_predict=2).to_dict(), allow_nan=False)


def test_config_and_sampling_keywords_are_exclusive(tiny):
    with pytest.raises(TypeError, match="not both"):
        tiny.complete(PROMPT, config=SamplingConfig(temp=1.0), top_k=3)
    with pytest.raises(TypeError, match="SamplingConfig"):
        tiny.complete(PROMPT, config={"temp": 1.0})  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["fused", "chain", "backend"])
def test_generation_with_every_token_banned_raises_a_sampling_error(tiny, path):
    ban = {t: -math.inf for t in range(tiny.n_vocab)}
    with pytest.raises(negtemp.SamplingError, match="every token was masked"):
        tiny.complete(PROMPT, -1.0, n_predict=3, logit_bias=ban, path=path)
    assert tiny.complete(PROMPT, -1.0, n_predict=3, path=path).tokens.size > 0, "the Model broke after the error"


@pytest.mark.parametrize("path", ["chain", "backend"])
def test_backend_and_chain_logprobs_are_finite_with_filters(tiny, path):
    c = tiny.complete(PROMPT, -0.001, seed=2, n_predict=8, top_k=5, top_p=0.9, path=path)
    assert np.isfinite(c.logprobs).all(), f"{path} logprobs {c.logprobs}"


def test_a_sweep_shares_the_other_settings_and_records_one_config_per_temperature(tiny):
    runs = tiny.sweep(PROMPT, [-1.0, 1.0], n_predict=4, seed=3, top_k=4)
    assert [r.config.temp for r in runs] == [-1.0, 1.0]
    assert {r.config.seed for r in runs} == {3} and {r.config.top_k for r in runs} == {4}
    with pytest.raises(ValueError, match="several sequences sample on the CPU paths only"):
        tiny.sweep(PROMPT, [1.0, -1.0], n_predict=2, path="backend")


def test_a_numpy_bool_is_a_bool_and_an_int_is_not():
    assert SamplingConfig(ignore_eos=np.True_).ignore_eos is True
    with pytest.raises(TypeError, match="ignore_eos must be a bool, got int 1"):
        SamplingConfig(ignore_eos=1)
