"""Model.draws: n independent draws of one prompt, decoded together, each with its own seed."""

import numpy as np
import pytest

import negtemp
from negtemp import reference

PROMPT = "the temperature is a concept"


def test_each_draw_records_the_seed_it_was_drawn_with(tiny):
    draws = tiny.draws(PROMPT, -1.0, n=4, seed=10, n_predict=6, ignore_eos=True)
    assert [c.config.seed for c in draws] == [10, 11, 12, 13]
    assert [c.settings["seed"] for c in draws] == [10, 11, 12, 13]


@pytest.mark.filterwarnings("ignore:the 3 draws will be nearly identical")
def test_a_draw_is_what_complete_gives_alone_with_its_seed(tiny):
    # at |T| = 0.001 sampling is sharp, so the batched decode's last bits cannot change a token
    for t in (-0.001, 0.001):
        draws = tiny.draws(PROMPT, t, n=3, seed=5, n_predict=10, ignore_eos=True)
        for c in draws:
            alone = tiny.complete(PROMPT, t, seed=c.config.seed, n_predict=10, ignore_eos=True)
            np.testing.assert_array_equal(c.tokens, alone.tokens, err_msg=f"T={t}, seed {c.config.seed}")
            assert c.text == alone.text


def test_draws_at_a_negative_temperature_differ_from_each_other(tiny):
    draws = tiny.draws(PROMPT, -1.0, n=6, seed=1, n_predict=12, ignore_eos=True)
    assert len({tuple(c.tokens.tolist()) for c in draws}) > 1


def test_each_draw_is_sampled_from_the_distribution_at_its_temperature(tiny):
    for c in tiny.draws(PROMPT, -1.0, n=3, seed=3, n_predict=8, ignore_eos=True):
        logits = tiny.logits(np.concatenate([c.prompt_tokens, c.tokens])).astype(np.float64)
        logits[:, sorted(tiny.eog_tokens)] = -np.inf
        n = c.prompt_tokens.size
        want = [np.log(reference.probs(logits[n - 1 + i], -1.0)[tok]) for i, tok in enumerate(c.tokens)]
        np.testing.assert_allclose(c.logprobs, want, atol=1e-2)


@pytest.mark.parametrize("settings", [{"temp": 0.0}, {"beta": float("-inf")}, {"temp": 1.0, "top_k": 1},
                                      {"temp": -0.001}])
def test_draws_that_cannot_differ_warn(tiny, settings):
    with pytest.warns(UserWarning, match="identical"):
        tiny.draws(PROMPT, n=2, seed=1, n_predict=2, **settings)


def test_a_single_draw_does_not_warn(tiny, recwarn):
    tiny.draws(PROMPT, 0.0, n=1, n_predict=2)
    assert not [w for w in recwarn if "identical" in str(w.message)]


def test_a_draw_that_reaches_a_stop_string_ends_there_while_the_others_run_on(tiny):
    free = tiny.draws(PROMPT, 1.5, n=4, seed=7, n_predict=16, ignore_eos=True)
    # a stop string that the first draw produces early: the text of its first token past the first
    first = free[0]
    at = next(i for i in range(1, 16) if first.pieces[i].decode("utf-8", errors="ignore").strip())
    stop = first.pieces[at].decode("utf-8", errors="ignore").strip()
    stopped = tiny.draws(PROMPT, 1.5, n=4, seed=7, n_predict=16, ignore_eos=True, stop=stop)
    assert stopped[0].finish_reason == "stop" and len(stopped[0].tokens) <= at + 1
    for a, b in zip(free, stopped):
        if b.finish_reason == "length":
            np.testing.assert_array_equal(a.tokens, b.tokens)


def test_draws_report_the_top_tokens_and_each_tokens_model_rank(tiny):
    draws = tiny.draws(PROMPT, -1.0, n=2, seed=2, n_predict=5, ignore_eos=True, n_probs=3)
    for c in draws:
        assert len(c.top_logprobs) == len(c.tokens) and all(len(step) == 3 for step in c.top_logprobs)
        logits = tiny.logits(np.concatenate([c.prompt_tokens, c.tokens]))[c.prompt_tokens.size - 1: -1]
        for i, (z, tok) in enumerate(zip(logits, c.tokens)):
            assert c.ranks[i] == 1 + int((z > z[tok]).sum())
            log_softmax = z[tok] - np.log(np.exp(z.astype(np.float64) - z.max()).sum()) - z.max()
            # the KV cache holds f16, rounded per batch: a decode on the prefix cache and a one-batch
            # evaluation agree to about 1e-3 of the logits' scale
            assert c.model_logprobs[i] == pytest.approx(log_softmax, abs=1e-3 * np.abs(z).max())


@pytest.mark.parametrize("n", [0, 257, -1])
def test_a_number_of_draws_outside_llama_cpps_limit_is_refused(tiny, n):
    with pytest.raises(ValueError, match=r"n must be in \[1, 256\]"):
        tiny.draws(PROMPT, 1.0, n=n, n_predict=2)


def test_draws_whose_seeds_would_pass_the_largest_seed_are_refused(tiny):
    with pytest.raises(ValueError, match="start from a seed at most 4294967292"):
        tiny.draws(PROMPT, 1.0, n=3, seed=negtemp.config.MAX_SEED, n_predict=2)


@pytest.mark.filterwarnings("ignore:the 20 draws will be nearly identical")
def test_more_draws_than_the_prefix_cache_takes_decode_on_a_fresh_context(tiny):
    many = tiny.draws(PROMPT, 0.001, n=20, seed=1, n_predict=3, ignore_eos=True)
    alone = tiny.complete(PROMPT, 0.001, seed=20, n_predict=3, ignore_eos=True)
    np.testing.assert_array_equal(many[-1].tokens, alone.tokens)


@pytest.mark.real_model
def test_draws_of_a_real_model_at_t_minus_1_follow_their_seeds(smollm2):
    draws = smollm2.draws("Temperature is a concept", -1.0, n=4, seed=1, n_predict=8, top_k=40)
    again = smollm2.draws("Temperature is a concept", -1.0, n=4, seed=1, n_predict=8, top_k=40)
    assert [c.tokens.tolist() for c in draws] == [c.tokens.tolist() for c in again]
    assert len({c.text for c in draws}) > 1
