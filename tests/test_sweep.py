"""Batched temperature sweep: one decode batch, one sequence per temperature."""

import numpy as np
import pytest

from negtemp import reference

PROMPT = "the temperature is a concept"


def test_sweep_matches_single_runs_at_sharp_temperatures(tiny):
    temps = [-0.001, 0.001, 0.0]
    swept = tiny.sweep(PROMPT, temps, n_predict=12, seed=4, ignore_eos=True)
    assert [c.settings["temp"] for c in swept] == temps
    for t, c in zip(temps, swept):
        single = tiny.complete(PROMPT, t, n_predict=12, seed=4, ignore_eos=True)
        np.testing.assert_array_equal(c.tokens, single.tokens, err_msg=f"sweep differs from complete() at T={t}")
        assert c.text == single.text


def test_each_swept_sequence_is_sampled_from_its_own_temperature(tiny):
    temps = [-1.0, 2.0]
    swept = tiny.sweep(PROMPT, temps, n_predict=10, seed=8, ignore_eos=True)
    for t, c in zip(temps, swept):
        # the model's logits for this sequence, recomputed in one batch (rounds differently: atol)
        logits = tiny.logits(np.concatenate([c.prompt_tokens, c.tokens]))
        n = c.prompt_tokens.size
        z_masked = logits.astype(np.float64)
        z_masked[:, sorted(tiny.eog_tokens)] = -np.inf
        want = [np.log(reference.probs(z_masked[n - 1 + i], t)[tok]) for i, tok in enumerate(c.tokens)]
        np.testing.assert_allclose(c.logprobs, want, atol=1e-2, err_msg=f"sequence at T={t}")


def test_betas_and_argument_errors(tiny):
    by_beta = tiny.sweep(PROMPT, betas=[-1000.0], n_predict=6, seed=1, ignore_eos=True)
    by_temp = tiny.sweep(PROMPT, [-0.001], n_predict=6, seed=1, ignore_eos=True)
    np.testing.assert_array_equal(by_beta[0].tokens, by_temp[0].tokens)
    with pytest.raises(TypeError):
        tiny.sweep(PROMPT, [1.0], betas=[1.0])
    with pytest.raises(ValueError, match="at least one setting"):
        tiny.sweep(PROMPT, [])


def test_a_sweep_of_one_sequence_on_the_backend_path_is_the_backend_generation(tiny):
    # one stepper runs both: a single swept sequence may sample inside the graph, as complete() does
    swept = tiny.sweep(PROMPT, [-0.001], n_predict=8, seed=2, path="backend", ignore_eos=True)[0]
    alone = tiny.complete(PROMPT, -0.001, n_predict=8, seed=2, path="backend", ignore_eos=True)
    np.testing.assert_array_equal(swept.tokens, alone.tokens)
    assert swept.finish_reason == alone.finish_reason == "length"
