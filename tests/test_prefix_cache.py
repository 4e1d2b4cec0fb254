"""The prefix cache: a prompt that shares a prefix with a recent one evaluates only the rest, and
gives what a fresh context gives."""

from contextlib import closing

import numpy as np
import pytest

import negtemp

PROMPT = "the temperature is a concept that"
# batched and single decodes round differently in the last bits: the tolerance test_sweep uses
ATOL = 1e-2


@pytest.fixture()
def cached(tiny_path):
    with negtemp.Model(tiny_path, n_ctx=256, n_threads=2, prefix_cache=4) as m:
        yield m


@pytest.fixture(scope="module")
def fresh(tiny_path):
    with negtemp.Model(tiny_path, n_ctx=256, n_threads=2, prefix_cache=0) as m:
        yield m


def same(a: negtemp.Completion, b: negtemp.Completion) -> None:
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=ATOL)


def run(m, prompt, seed=3, temp=-1.0, n=12):
    return m.complete(prompt, temp, seed=seed, n_predict=n, ignore_eos=True)


def test_a_repeated_prompt_is_not_evaluated_again(cached, fresh):
    first = run(cached, PROMPT)
    again = run(cached, PROMPT)
    info = cached.prefix_cache_info()
    n = first.prompt_tokens.size
    assert (info.last_reused, info.last_evaluated) == (n - 1, 1)
    same(again, first)
    same(again, run(fresh, PROMPT))


def test_a_prompt_extending_an_earlier_one_and_its_reply_evaluates_only_the_new_tokens(cached, fresh):
    first = run(cached, PROMPT)
    turn = np.concatenate([first.prompt_tokens, first.tokens, cached.tokenize(" and so", add_special=False)])
    second = run(cached, turn)
    info = cached.prefix_cache_info()
    # the cells hold the prompt and every generated token but the last (sampled, never decoded)
    assert info.last_reused == first.prompt_tokens.size + first.tokens.size - 1
    same(second, run(fresh, turn))


@pytest.mark.parametrize("slots", [1, 4])
def test_a_prompt_that_shares_a_prefix_and_then_differs_gives_what_a_fresh_context_gives(tiny_path, fresh, slots):
    # the stale-KV check: cells past the shared prefix hold the first prompt's tokens, which must not be
    # seen; one slot is cut in place, with several the prefix is copied to another slot
    a = fresh.tokenize(PROMPT + " is hot")
    b = np.concatenate([a[:-2], fresh.tokenize(" cold and wet", add_special=False)])
    with negtemp.Model(tiny_path, n_ctx=256, n_threads=2, prefix_cache=slots) as cached:
        run(cached, a)
        got = run(cached, b)
        assert cached.prefix_cache_info().last_reused == a.size - 2
        assert cached.prefix_cache_info().prompts == min(slots, 2)
    same(got, run(fresh, b))


def test_several_prompts_are_kept_and_each_is_found_again(cached):
    prompts = [f"prompt number {i} says" for i in range(4)]
    for p in prompts:
        run(cached, p)
    assert cached.prefix_cache_info().prompts == 4
    for p in prompts:
        run(cached, p)
        assert cached.prefix_cache_info().last_evaluated == 1, p


def test_the_least_recently_used_prompt_is_evicted_past_the_slots(cached):
    for i in range(5):
        run(cached, f"prompt number {i} says")
    run(cached, "prompt number 0 says")
    assert cached.prefix_cache_info().last_evaluated > 1
    assert cached.prefix_cache_info().prompts == 4


def test_the_cache_never_holds_more_than_the_context(tiny_path):
    with negtemp.Model(tiny_path, n_ctx=64, n_threads=2, prefix_cache=8) as m:
        for i in range(6):
            m.complete(f"a prompt {i} of a few tokens", 1.0, seed=i, n_predict=20, ignore_eos=True)
            info = m.prefix_cache_info()
            assert info.tokens <= info.capacity == 64


def test_clearing_the_cache_makes_the_next_call_evaluate_everything(cached):
    run(cached, PROMPT)
    cached.clear_prefix_cache()
    assert cached.prefix_cache_info().prompts == 0
    again = run(cached, PROMPT)
    assert cached.prefix_cache_info().last_evaluated == again.prompt_tokens.size


def test_a_model_without_a_prefix_cache_keeps_nothing(fresh):
    run(fresh, PROMPT)
    info = fresh.prefix_cache_info()
    assert (info.prompts, info.tokens, info.bytes) == (0, 0, 0)


def test_a_stream_closed_early_keeps_only_what_it_decoded(cached, fresh):
    with closing(cached.stream(PROMPT, -1.0, seed=3, n_predict=12, ignore_eos=True)) as s:
        chunks = [next(s) for _ in range(4)]
    prompt = cached.tokenize(PROMPT)
    turn = np.concatenate([prompt, [c.token for c in chunks]])
    got = run(cached, turn)
    assert cached.prefix_cache_info().last_reused == prompt.size + 3
    same(got, run(fresh, turn))


def test_a_stream_open_while_another_call_runs_leaves_it_a_fresh_context(cached, fresh):
    with closing(cached.stream(PROMPT, -1.0, seed=3, n_predict=6, ignore_eos=True)) as s:
        next(s)
        other = run(cached, "another prompt entirely")
        rest = list(s)
    same(other, run(fresh, "another prompt entirely"))
    assert len(rest) == 5


def test_draws_on_the_cache_are_the_draws_of_a_fresh_context(cached, fresh):
    run(cached, PROMPT)
    got = cached.draws(PROMPT, -1.0, n=3, seed=2, n_predict=8, ignore_eos=True)
    assert cached.prefix_cache_info().last_reused > 0
    for a, b in zip(got, fresh.draws(PROMPT, -1.0, n=3, seed=2, n_predict=8, ignore_eos=True)):
        same(a, b)


def test_a_prefix_cache_outside_its_range_is_refused(tiny_path):
    with pytest.raises(ValueError, match=r"prefix_cache must be in \[0, 64\]"):
        negtemp.Model(tiny_path, n_ctx=64, prefix_cache=65)


@pytest.mark.real_model
def test_a_real_models_chat_turn_on_the_cache_is_the_turn_of_a_fresh_context(real_model):
    with negtemp.Model(real_model.path, n_ctx=256, n_threads=2, prefix_cache=2) as m:
        first = m.complete("Temperature is a concept", -1.0, seed=1, n_predict=10, top_k=40)
        turn = np.concatenate([first.prompt_tokens, first.tokens, m.tokenize(" Then", add_special=False)])
        second = m.complete(turn, -1.0, seed=2, n_predict=10, top_k=40)
        info = m.prefix_cache_info()
        differs = np.concatenate([first.prompt_tokens[:-1], m.tokenize(" heat", add_special=False)])
        third = m.complete(differs, -1.0, seed=3, n_predict=10, top_k=40)
    # SmolLM2's logits do not depend on how a sequence is split into decodes, so its prefixes are reused;
    # gemma-3's move by up to a unit with the split, so its cache evaluates each prompt whole
    reuses = real_model.path.name.startswith("SmolLM2")
    assert info.reuses is reuses
    assert info.last_reused == (first.prompt_tokens.size + first.tokens.size - 1 if reuses else 0)
    with negtemp.Model(real_model.path, n_ctx=256, n_threads=2, prefix_cache=0) as fresh:
        same(second, fresh.complete(turn, -1.0, seed=2, n_predict=10, top_k=40))
        same(third, fresh.complete(differs, -1.0, seed=3, n_predict=10, top_k=40))
