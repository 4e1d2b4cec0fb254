"""Generation on a tiny random LLaMA model written at test time."""

import math

import numpy as np
import pytest

import negtemp
from negtemp import reference

PROMPT = "the temperature is a concept"


def chosen_logprobs_from_model(model: negtemp.Model, c: negtemp.Completion, temp: float) -> np.ndarray:
    """Log-probability of each generated token under the reference, from the model's own logits."""
    seq = np.concatenate([c.prompt_tokens, c.tokens])
    logits = model.logits(seq)
    n_prompt = c.prompt_tokens.size
    out = []
    for i, tok in enumerate(c.tokens):
        p = reference.probs(logits[n_prompt - 1 + i], temp)
        out.append(math.log(p[tok]) if p[tok] > 0 else -math.inf)
    return np.array(out)


@pytest.mark.parametrize("temp", [1.0, 2.0, -0.5, -1.0, -5.0])
def test_reported_logprobs_match_the_reference_distribution(tiny, temp):
    c = tiny.complete(PROMPT, temp, seed=7, n_predict=12)
    assert c.tokens.size == 12
    expected = chosen_logprobs_from_model(tiny, c, temp)
    # The logits are recomputed in one batch rather than token by token, which
    # rounds differently (~1e-3); a wrong formula is off by far more.
    np.testing.assert_allclose(
        c.logprobs, expected, atol=1e-2,
        err_msg=f"the sampler's probabilities at T={temp} differ from p ~ exp((z - z*)/T)",
    )


def test_same_seed_gives_same_tokens_and_different_seeds_differ(tiny):
    a = tiny.complete(PROMPT, -1.0, seed=1, n_predict=16)
    b = tiny.complete(PROMPT, -1.0, seed=1, n_predict=16)
    c = tiny.complete(PROMPT, -1.0, seed=2, n_predict=16)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens), "seeds 1 and 2 gave the same 16 tokens at T = -1"


@pytest.mark.parametrize("temp", [1.0, -1.0, -0.001, 0.001])
def test_backend_path_draws_the_same_tokens_as_the_cpu_path(tiny, temp):
    cpu = tiny.complete(PROMPT, temp, seed=5, n_predict=16)
    gpu = tiny.complete(PROMPT, temp, seed=5, n_predict=16, path="backend")
    np.testing.assert_array_equal(gpu.tokens, cpu.tokens, err_msg=f"backend and CPU paths disagree at T={temp}")


def test_tiny_negative_temperature_picks_the_least_likely_token(tiny):
    c = tiny.complete(PROMPT, -0.001, seed=1, n_predict=10)
    logits = tiny.logits(np.concatenate([c.prompt_tokens, c.tokens]))
    n = c.prompt_tokens.size
    for i, tok in enumerate(c.tokens):
        assert tok == int(np.argmin(logits[n - 1 + i])), f"step {i}: T=-0.001 did not choose the least likely token"


def test_beta_minus_infinity_is_anti_greedy_and_plus_infinity_is_greedy(tiny):
    anti = tiny.complete(PROMPT, beta=-math.inf, seed=1, n_predict=8)
    greedy = tiny.complete(PROMPT, beta=math.inf, seed=1, n_predict=8)
    zero = tiny.complete(PROMPT, 0.0, seed=9, n_predict=8)
    np.testing.assert_array_equal(greedy.tokens, zero.tokens)
    logits = tiny.logits(np.concatenate([anti.prompt_tokens, anti.tokens]))
    n = anti.prompt_tokens.size
    assert [int(np.argmin(logits[n - 1 + i])) for i in range(8)] == anti.tokens.tolist()


@pytest.mark.parametrize("backend", [False, True])
def test_banned_tokens_are_never_emitted_at_negative_temperature(tiny, backend):
    c0 = tiny.complete(PROMPT, -0.001, seed=1, n_predict=10, path="backend" if backend else "auto")
    banned = {int(t): -math.inf for t in set(c0.tokens.tolist())}
    c = tiny.complete(PROMPT, -0.001, seed=1, n_predict=10, logit_bias=banned, path="backend" if backend else "auto")
    assert c.tokens.size == 10
    assert not set(c.tokens.tolist()) & banned.keys(), "a token banned with logit_bias -inf was sampled"


def test_ignore_eos_runs_the_full_length_without_emitting_end_tokens(tiny):
    c = tiny.complete(PROMPT, -1.0, seed=3, n_predict=40, ignore_eos=True)
    assert c.tokens.size == 40
    assert not set(c.tokens.tolist()) & tiny.eog_tokens


def test_streamed_text_equals_the_completion_text(tiny):
    parts: list[str] = []
    c = tiny.complete(PROMPT, -1.0, seed=4, n_predict=20, on_text=parts.append)
    assert "".join(parts) == c.text
    assert c.text == tiny.detokenize(c.tokens)


def test_closed_model_raises_a_clear_error(tiny_path):
    m = negtemp.Model(tiny_path, n_ctx=64, n_threads=1)
    m.close()
    with pytest.raises(RuntimeError, match="closed"):
        m.complete(PROMPT)


def test_invalid_arguments_raise_before_sampling(tiny):
    with pytest.raises(TypeError):
        tiny.complete(PROMPT, 1.0, beta=1.0)
    with pytest.raises(ValueError, match="NaN"):
        tiny.complete(PROMPT, math.nan)
    with pytest.raises(ValueError, match="n_predict"):
        tiny.complete(PROMPT, n_predict=0)
    with pytest.raises(ValueError, match="exceeds n_ctx"):
        tiny.complete(PROMPT, n_predict=10_000)
    with pytest.raises(ValueError, match="top_p"):
        tiny.complete(PROMPT, top_p=1.5)
    with pytest.raises(ValueError, match="seed"):
        tiny.complete(PROMPT, seed=-1)
    with pytest.raises(ValueError, match="UTF-8"):
        tiny.complete(b"\xff\xfe")


def test_unusable_model_files_raise_model_load_error(tmp_path):
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(negtemp.ModelLoadError):
        negtemp.Model(empty)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(negtemp.ModelLoadError, match="junk.gguf"):
        negtemp.Model(junk)
    with pytest.raises(IsADirectoryError):
        negtemp.Model(tmp_path)
    with pytest.raises(FileNotFoundError, match="known model name"):
        negtemp.Model(tmp_path / "missing.gguf")


def test_a_prompt_of_token_ids_samples_what_its_text_samples(tiny):
    ids = tiny.tokenize("the concept of temperature")
    by_text = tiny.complete("the concept of temperature", -1.0, n_predict=8, seed=3)
    by_ids = tiny.complete(ids.tolist(), -1.0, n_predict=8, seed=3)
    assert by_ids.prompt_tokens.tolist() == ids.tolist()
    assert by_ids.tokens.tolist() == by_text.tokens.tolist()


@pytest.mark.parametrize(("prompt", "error"), [([10**6], ValueError), (np.array([1.5]), TypeError)])
def test_a_prompt_of_token_ids_outside_the_vocabulary_or_not_integers_is_refused(tiny, prompt, error):
    with pytest.raises(error):
        tiny.complete(prompt, -1.0, n_predict=2, seed=1)
