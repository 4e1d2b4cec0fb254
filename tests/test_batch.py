"""Model.batch, stream_batch and batch_requests: many prompts through llama.cpp's sequences in one decode loop."""

from dataclasses import replace

import numpy as np
import pytest
from stats import g_test_pvalue

import negtemp
from negtemp import reference

# different lengths, two sharing a prefix with a third, one repeated
PROMPTS = ["the temperature is a concept", "the temperature is", "a cold day", "the temperature is a concept too",
           "a cold day"]


def reference_config(model: negtemp.Model, c: negtemp.Completion) -> negtemp.SamplingConfig:
    """c's settings as the reference takes them: ignore_eos as a ban on the model's end-of-generation tokens."""
    return replace(c.config, ignore_eos=False, logit_bias={t: float("-inf") for t in model.eog_tokens})


def history(c: negtemp.Completion, i: int) -> list[int]:
    """What the repeat penalty's window saw before step i: the prompt and the tokens drawn before."""
    return [*c.prompt_tokens.tolist(), *c.tokens[:i].tolist()]


def test_each_prompt_gets_its_own_draws_seeded_seed_plus_i(tiny):
    runs = tiny.batch(PROMPTS[:3], -1.0, n=2, seed=10, n_predict=4, ignore_eos=True)
    assert [[c.config.seed for c in draws] for draws in runs] == [[10, 11]] * 3
    for prompt, draws in zip(PROMPTS[:3], runs, strict=True):
        for c in draws:
            np.testing.assert_array_equal(c.prompt_tokens, tiny.tokenize(prompt))
            assert len(c.tokens) == 4 and c.stop_type == "limit"


@pytest.mark.filterwarnings("ignore:the 2 draws will be nearly identical")
@pytest.mark.parametrize("parallel", [1, 2, 32])
def test_a_batched_draw_is_what_complete_gives_alone_with_its_seed(tiny, parallel):
    # at |T| = 0.001 sampling is sharp, so a batched decode's last bits cannot change a token
    for t in (-0.001, 0.001):
        runs = tiny.batch(PROMPTS, t, n=2, seed=5, n_predict=8, ignore_eos=True, parallel=parallel)
        for prompt, draws in zip(PROMPTS, runs, strict=True):
            for c in draws:
                alone = tiny.complete(prompt, t, seed=c.config.seed, n_predict=8, ignore_eos=True)
                np.testing.assert_array_equal(c.tokens, alone.tokens, err_msg=f"T={t}, {prompt!r}, {parallel=}")


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_prompt_that_continues_a_prefix_another_sequence_holds_gets_the_logits_of_a_fresh_evaluation(
        tiny, parallel):
    # parallel=1: each prompt takes over the one slot and keeps what it shares with the last;
    # parallel=3: prompts copy the prefix from the slot that holds it
    runs = tiny.batch(PROMPTS, -1.0, seed=2, n_predict=5, ignore_eos=True, keep_logits=True, parallel=parallel)
    for (c,) in runs:
        tokens = np.concatenate([c.prompt_tokens, c.tokens])
        fresh = tiny.logits(tokens)[c.prompt_tokens.size - 1:-1]
        # the f16 KV cache rounds a decode of one token and of many differently (about 3e-3 here); cells
        # of another prompt or position would be off by whole units
        np.testing.assert_allclose(c.step_logits, fresh, atol=2e-2)


@pytest.mark.parametrize("settings", [
    {"temp": -1.0}, {"temp": 0.7}, {"temp": -1.0, "top_k": 5}, {"temp": -0.5, "top_p": 0.9, "min_p": 0.02},
    {"temp": -1.0, "repeat_penalty": 1.5, "penalty_last_n": 8}, {"beta": 0.0, "path": "chain"},
])
def test_every_batched_token_is_drawn_from_the_reference_chain_on_its_logits(tiny, settings):
    runs = tiny.batch(PROMPTS, n=2, seed=4, n_predict=6, ignore_eos=True, keep_logits=True, parallel=3,
                      **settings)
    for draws in runs:
        for c in draws:
            for i, token in enumerate(c.tokens):
                p = reference.probs(c.step_logits[i].astype(np.float64), config=reference_config(tiny, c),
                                    history=history(c, i))
                assert np.log(p[token]) == pytest.approx(c.logprobs[i], abs=1e-4), (settings, i)


def test_draws_spread_over_the_slots_follow_the_reference_distribution(tiny):
    # 600 one-token draws of one prompt through 7 slots: every slot is reused many times
    (draws,) = tiny.batch([PROMPTS[0]], -1.0, n=600, seed=1, n_predict=1, ignore_eos=True, keep_logits=True,
                          parallel=7)
    p = reference.probs(draws[0].step_logits[0].astype(np.float64), config=reference_config(tiny, draws[0]))
    counts = np.bincount([c.tokens[0] for c in draws], minlength=tiny.n_vocab)
    assert g_test_pvalue(counts, p) > 1e-3


def test_more_draws_than_slots_all_run_to_their_end(tiny):
    runs = tiny.batch(PROMPTS, 1.0, n=7, seed=3, n_predict=5, ignore_eos=True, parallel=4)
    assert [len(draws) for draws in runs] == [7] * len(PROMPTS)
    assert all(len(c.tokens) == 5 for draws in runs for c in draws)


def test_stream_batch_yields_each_token_with_its_prompt_and_draw(tiny):
    runs = tiny.batch(PROMPTS[:3], -1.0, n=2, seed=8, n_predict=5, ignore_eos=True)
    seen: dict[tuple[int, int], list[int]] = {}
    for r, d, chunk in tiny.stream_batch(PROMPTS[:3], -1.0, n=2, seed=8, n_predict=5, ignore_eos=True):
        seen.setdefault((r, d), []).append(chunk.token)
    assert seen == {(r, d): c.tokens.tolist() for r, draws in enumerate(runs) for d, c in enumerate(draws)}


def test_a_draw_that_reaches_a_stop_string_ends_there_while_the_others_run_on(tiny):
    free = tiny.batch(PROMPTS[:2], 1.5, n=2, seed=7, n_predict=16, ignore_eos=True)
    first = free[0][0]
    at = next(i for i in range(1, 16) if first.pieces[i].decode("utf-8", errors="ignore").strip())
    stop = first.pieces[at].decode("utf-8", errors="ignore").strip()
    runs = tiny.batch(PROMPTS[:2], 1.5, n=2, seed=7, n_predict=16, ignore_eos=True, stop=stop)
    assert runs[0][0].stop_type == "word" and stop not in runs[0][0].text
    assert len(runs[0][0].tokens) <= at + 1
    assert any(c.stop_type == "limit" and len(c.tokens) == 16 for draws in runs for c in draws if stop not in
               "".join(p.decode("utf-8", errors="ignore") for p in c.pieces))


def test_requests_take_settings_of_their_own(tiny):
    requests = [negtemp.Request(PROMPTS[0], negtemp.SamplingConfig(temp=-1.0, seed=1, ignore_eos=True), n=2,
                                n_predict=3),
                negtemp.Request(PROMPTS[2], negtemp.SamplingConfig(temp=0.5, seed=9, top_k=3, ignore_eos=True),
                                n_predict=6, n_probs=2)]
    done = dict(tiny.batch_requests(requests))
    assert [c.config.seed for c in done[0]] == [1, 2] and [len(c.tokens) for c in done[0]] == [3, 3]
    (only,) = done[1]
    assert only.config.top_k == 3 and len(only.tokens) == 6 and len(only.top_logprobs[0]) == 2
    alone = tiny.complete(PROMPTS[2], 0.5, seed=9, top_k=3, ignore_eos=True, n_predict=6)
    np.testing.assert_array_equal(only.tokens, alone.tokens)


def test_a_request_that_cannot_draw_is_reported_while_the_others_finish(tiny):
    # after "a" the grammar is complete: only an end-of-generation token is allowed, and ignore_eos bans it
    stuck = negtemp.Request(PROMPTS[0], negtemp.SamplingConfig(temp=1.0, seed=1, ignore_eos=True), n_predict=4,
                            grammar='root ::= "a"')
    fine = negtemp.Request(PROMPTS[1], negtemp.SamplingConfig(temp=1.0, seed=1, ignore_eos=True), n_predict=4)
    done = dict(tiny.batch_requests([stuck, fine, fine]))
    assert isinstance(done[0], negtemp.SamplingError)
    assert [len(c.tokens) for c in done[1]] == [4] and [len(c.tokens) for c in done[2]] == [4]


def test_batch_names_the_prompt_that_could_not_draw(tiny):
    # the first draw that cannot is the first prompt's second token: the grammar is then complete and
    # ignore_eos bans the end-of-generation tokens
    with pytest.raises(negtemp.SamplingError, match="prompt 0: every token was masked"):
        tiny.batch(["x", "y"], 1.0, n_predict=4, ignore_eos=True, grammar='root ::= "a"')


@pytest.mark.parametrize("prompts, match", [
    ("one prompt", "prompts must be a list"), ([], "prompts is empty"), (["ok", []], "the prompt has no tokens"),
])
def test_a_batch_that_is_not_a_list_of_prompts_is_refused(tiny, prompts, match):
    with pytest.raises((TypeError, ValueError), match=match):
        tiny.batch(prompts, n_predict=2)


def test_a_batch_of_several_sequences_on_the_backend_path_is_refused(tiny):
    with pytest.raises(ValueError, match="several sequences sample on the CPU paths only"):
        tiny.batch(PROMPTS[:2], -1.0, n_predict=2, path="backend")


def test_a_batch_of_one_sequence_on_the_backend_path_runs_as_complete(tiny):
    ((c,),) = tiny.batch(PROMPTS[:1], -1.0, n_predict=4, seed=3, ignore_eos=True, path="backend")
    alone = tiny.complete(PROMPTS[0], -1.0, n_predict=4, seed=3, ignore_eos=True, path="backend")
    np.testing.assert_array_equal(c.tokens, alone.tokens)


@pytest.mark.real_model
@pytest.mark.filterwarnings("ignore:the 2 draws will be nearly identical")
def test_a_real_models_batched_draws_are_what_complete_gives_alone(real_model):
    # gemma-3's sliding window shares whole prompts only; SmolLM2 shares prefixes too
    prompts = ["The capital of France is", "The capital of France is a city", "Once upon a time"]
    runs = real_model.batch(prompts, -0.001, n=2, seed=11, n_predict=6, ignore_eos=True, parallel=2)
    for prompt, draws in zip(prompts, runs, strict=True):
        for c in draws:
            alone = real_model.complete(prompt, -0.001, seed=c.config.seed, n_predict=6, ignore_eos=True)
            np.testing.assert_array_equal(c.tokens, alone.tokens, err_msg=f"{prompt!r}, seed {c.config.seed}")


def test_a_request_keeps_its_logits_when_it_asks(tiny):
    requests = [negtemp.Request(PROMPTS[0], negtemp.SamplingConfig(temp=1.0, seed=1), n_predict=3, keep_logits=True),
                negtemp.Request(PROMPTS[1], negtemp.SamplingConfig(temp=1.0, seed=1), n_predict=3)]
    done = dict(tiny.batch_requests(requests))
    assert done[0][0].step_logits.shape == (len(done[0][0].tokens), tiny.n_vocab)
    assert done[1][0].step_logits is None
