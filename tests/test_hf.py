"""negtemp.hf: transformers models sampled with negtemp's chain, exact by the reference and checked against
llama.cpp on the same weights.

The tiny model is a random LLaMA built by transformers from a config and converted to GGUF by the pinned
llama.cpp tree's own convert_hf_to_gguf.py (scripts/tiny_hf_model.py), both in float32. llama.cpp runs it
with an f32 KV cache (kv_type="f32"): its default f16 cache, and flash attention, round keys and values,
which moves this model's logits by up to 0.03 from transformers' (a per-step |p - p'| of 4e-3).

torch is imported inside the tests, not at collection, and these tests run last (conftest.py): a process
that has loaded torch forks more slowly, and tests/test_public_calls.py forks a child per example.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from stats import g_test_pvalue
from test_chains import Case, cases

import negtemp
from negtemp import SamplingConfig, reference

if TYPE_CHECKING:
    import torch
    import transformers

    HFModel = tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]

log = logging.getLogger(__name__)

# the torch chain and the reference both run in float64 on the same float32 logits
EXACT = 1e-9
# the two engines on the same float32 weights: logits, and each step's distribution
LOGIT_TOL = 1e-3
PROB_TOL = 1e-4
PROMPT = "Temperature is a concept"
WORST: list[float] = [0.0]


@pytest.fixture(scope="module", autouse=True)
def _log_worst() -> Iterator[None]:
    yield
    log.info("torch chain against the reference: max |p - reference| = %.3g over the property run", WORST[0])


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from scripts import tiny_hf_model

    folder = tiny_hf_model.build(tmp_path_factory.mktemp("hf") / "tiny-llama")
    return folder, tiny_hf_model.to_gguf(folder, folder.with_suffix(".gguf"))


@pytest.fixture(scope="module")
def hf_model(tiny_hf: tuple[Path, Path]) -> HFModel:
    import transformers

    folder = tiny_hf[0]
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def gguf_model(tiny_hf: tuple[Path, Path]) -> Iterator[negtemp.Model]:
    with negtemp.Model(tiny_hf[1], kv_type="f32", n_threads=2) as m:
        yield m


def naive_probs(scores: torch.Tensor, config: SamplingConfig, history: torch.Tensor) -> torch.Tensor:
    """What a hand-written processor that divides by T gets: masked logits flip to +inf at T < 0."""
    import torch

    z = scores.to(torch.float64) * config.inverse_temperature
    return torch.softmax(torch.nan_to_num(z, nan=-math.inf), -1)


def worst_error(chain: Callable[[torch.Tensor, SamplingConfig, torch.Tensor], torch.Tensor], case: Case) -> float:
    """max |p - reference| of a chain implementation on one case; inf where only one of them raises."""
    import torch

    try:
        want = reference.probs(case.z, config=case.config, history=case.history)
    except ValueError:
        want = None
    try:
        got = chain(torch.from_numpy(case.z)[None], case.config, torch.tensor([case.history], dtype=torch.long))
    except negtemp.SamplingError:
        got = None
    if want is None or got is None:
        return 0.0 if want is None and got is None else math.inf
    return float(np.nan_to_num(np.abs(got[0].numpy() - want), nan=math.inf).max())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_chain_probs_equal_the_reference(case: Case) -> None:
    from negtemp import hf

    err = worst_error(hf.chain_probs, case)
    WORST[0] = max(WORST[0], err)
    assert err <= EXACT


def test_a_processor_that_divides_by_t_fails_the_same_check() -> None:
    from negtemp import hf

    z = np.array([2.0, 1.0, -np.inf, 0.5], dtype=np.float32)
    case = Case(z, SamplingConfig(temp=-0.5), [])
    assert worst_error(naive_probs, case) > 0.5
    assert worst_error(hf.chain_probs, case) <= EXACT


def test_chain_probs_refuses_ignore_eos_it_cannot_apply() -> None:
    import torch

    from negtemp import hf

    with pytest.raises(ValueError, match="end-of-generation"):
        hf.chain_probs(torch.zeros(1, 4), SamplingConfig(temp=-1.0, ignore_eos=True), torch.zeros(1, 0))


def draw_counts(config: SamplingConfig, z: np.ndarray, steps: int) -> np.ndarray:
    """Counts of the tokens one processor draws over `steps` calls on the same logits."""
    import torch

    from negtemp import hf

    processor = hf.ChainProcessor(config, n=4)
    scores = torch.from_numpy(np.tile(z, (4, 1)))
    counts = np.zeros(z.size, dtype=np.int64)
    ids = torch.zeros(4, 1, dtype=torch.long)
    for _ in range(steps):
        out = processor(ids, scores)
        drawn = out.argmax(-1)
        assert bool((out.isfinite().sum(-1) == 1).all())
        counts += np.bincount(drawn.numpy(), minlength=z.size)
        ids = torch.cat([ids, drawn[:, None]], 1)
    return counts


@pytest.mark.parametrize("config", [SamplingConfig(temp=-1.0, seed=3), SamplingConfig(temp=-0.7, top_k=6, seed=4),
                                    SamplingConfig(temp=0.8, min_p=0.05, seed=5)],
                         ids=["T=-1", "T=-0.7 top-k 6", "T=0.8 min-p"])
def test_draws_pass_a_g_test_against_the_reference_and_fail_the_sign_flipped_one(config: SamplingConfig) -> None:
    z = np.random.default_rng(0).normal(0, 1.5, 10).astype(np.float32)
    counts = draw_counts(config, z, 1500)
    p_right = g_test_pvalue(counts, reference.probs(z, config=config))
    flipped = dataclasses.replace(config, temp=None, beta=-config.inverse_temperature)
    p_flipped = g_test_pvalue(counts, reference.probs(z, config=flipped))
    log.info("G-test T=%g top_k=%d min_p=%g: p = %.3g against the reference, %.3g against the sign-flipped one",
             config.temp, config.top_k, config.min_p, p_right, p_flipped)
    assert p_right > 1e-3
    assert p_flipped < 1e-6


def forward_logits(model: transformers.PreTrainedModel, tokens: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].double().numpy()


def test_generate_draws_from_the_raw_logits_whatever_the_models_generation_config(hf_model: HFModel) -> None:
    import transformers

    from negtemp import hf

    model, tokenizer = hf_model
    saved = model.generation_config
    # a repetition penalty applied before the chain favours repeats at T < 0; the rest would cut or bend the draw
    model.generation_config = transformers.GenerationConfig(
        do_sample=True, temperature=0.3, top_k=5, top_p=0.5, repetition_penalty=1.5, no_repeat_ngram_size=1,
        min_new_tokens=30, suppress_tokens=list(range(3, 40)), eos_token_id=saved.eos_token_id)
    config = SamplingConfig(temp=-0.7, top_k=100, repeat_penalty=1.4, seed=9)
    try:
        (c,) = hf.generate(model, PROMPT, tokenizer=tokenizer, config=config, n_predict=24, keep_logits=True)
    finally:
        model.generation_config = saved
    assert model.generation_config is saved
    teacher = forward_logits(model, [*c.prompt_tokens.tolist(), *c.tokens.tolist()])[len(c.prompt_tokens) - 1:-1]
    assert c.step_logits is not None
    assert np.abs(c.step_logits - teacher).max() < 1e-4
    for step, tok in enumerate(c.tokens):
        history = [*c.prompt_tokens.tolist(), *c.tokens[:step].tolist()]  # the penalty's window counts the prompt
        p = reference.probs(c.step_logits[step], config=config, history=history)
        assert c.logprobs[step] == pytest.approx(math.log(p[tok]), abs=1e-9)


def test_draw_i_is_the_draw_of_seed_plus_i(hf_model: HFModel) -> None:
    from negtemp import hf

    model, tokenizer = hf_model
    many = hf.generate(model, PROMPT, -1.0, tokenizer=tokenizer, n=3, seed=20, top_k=40, n_predict=16)
    assert [c.config.seed for c in many] == [20, 21, 22]
    assert len({tuple(c.tokens) for c in many}) == 3
    for c in many:
        (alone,) = hf.generate(model, PROMPT, -1.0, tokenizer=tokenizer, seed=c.config.seed, top_k=40,
                               n_predict=16)
        assert alone.tokens.tolist() == c.tokens.tolist()


def test_ignore_eos_never_draws_the_end_token(hf_model: HFModel) -> None:
    from negtemp import hf

    model, tokenizer = hf_model
    eos = tokenizer.eos_token_id
    ends = hf.generate(model, PROMPT, 1.0, tokenizer=tokenizer, logit_bias={eos: 50.0}, seed=1)
    assert ends[0].stop_type == "eos"
    assert ends[0].tokens.tolist() == [eos]
    (runs,) = hf.generate(model, PROMPT, 1.0, tokenizer=tokenizer, logit_bias={eos: 50.0}, ignore_eos=True,
                          seed=1, n_predict=12)
    assert runs.finish_reason == "length"
    assert eos not in runs.tokens.tolist()
    assert len(runs.tokens) == 12


def test_a_processor_serves_one_generate_call(hf_model: HFModel) -> None:
    from negtemp import hf

    model, tokenizer = hf_model
    processor = hf.ChainProcessor(SamplingConfig(temp=-1.0, seed=1))
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    model.generate(ids, logits_processor=[processor], max_new_tokens=4, do_sample=True)
    with pytest.raises(RuntimeError, match="one generate"):
        model.generate(ids, logits_processor=[processor], max_new_tokens=4, do_sample=True)


def test_a_processor_under_transformers_sampling_settings_still_draws_the_chain(hf_model: HFModel) -> None:
    """The processor's own draw survives generate's default top_k=50 and a temperature after it."""
    from negtemp import hf

    model, tokenizer = hf_model
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    processor = hf.ChainProcessor(SamplingConfig(temp=-0.001, seed=1))
    out = model.generate(ids, logits_processor=[processor], max_new_tokens=8, do_sample=True, temperature=0.7,
                         top_k=50)
    drawn = out[0, ids.shape[1]:].tolist()
    assert drawn == [s.token for s in processor.steps[0]]
    assert all(s.rank == model.config.vocab_size for s in processor.steps[0][:1])


def test_a_path_other_than_auto_is_refused() -> None:
    from negtemp import hf

    with pytest.raises(ValueError, match="path"):
        hf.ChainProcessor(SamplingConfig(temp=-1.0, path="fused"))


def test_a_logit_bias_outside_the_vocabulary_raises_before_any_draw(hf_model: HFModel) -> None:
    from negtemp import hf

    model, tokenizer = hf_model
    with pytest.raises(ValueError, match="logit_bias"):
        hf.generate(model, PROMPT, -1.0, tokenizer=tokenizer, logit_bias={10**6: 1.0})


@pytest.mark.parametrize("temp", [-0.5, 1.0])
def test_llama_cpp_and_transformers_give_the_same_distributions_on_the_same_weights(
        temp: float, gguf_model: negtemp.Model, hf_model: HFModel) -> None:
    model, tokenizer = hf_model
    prompt = tokenizer(PROMPT)["input_ids"]
    c = gguf_model.complete(prompt, temp=temp, n_predict=32, seed=2, keep_logits=True)
    assert c.step_logits is not None
    teacher = forward_logits(model, [*prompt, *c.tokens.tolist()])[len(prompt) - 1:-1]
    logit_err = float(np.abs(c.step_logits - teacher).max())
    prob_err = max(float(np.abs(reference.probs(a, temp) - reference.probs(b, temp)).max())
                   for a, b in zip(c.step_logits, teacher, strict=True))
    log.info("T=%g over %d steps: max |z_llama - z_hf| = %.3g, max |p_llama - p_hf| = %.3g", temp, len(c.tokens),
             logit_err, prob_err)
    assert logit_err < LOGIT_TOL
    assert prob_err < PROB_TOL


def test_llama_cpp_and_transformers_draw_the_same_anti_greedy_tokens(gguf_model: negtemp.Model,
                                                                    hf_model: HFModel) -> None:
    from negtemp import hf

    model, tokenizer = hf_model
    prompt = tokenizer(PROMPT)["input_ids"]
    ours = gguf_model.complete(prompt, temp=-0.001, n_predict=32, seed=1, keep_logits=True)
    (theirs,) = hf.generate(model, prompt, -0.001, seed=1, n_predict=32, keep_logits=True)
    assert ours.step_logits is not None and theirs.step_logits is not None
    # where the two least likely tokens are closer than the engines' rounding, either may be drawn
    gaps = [min(np.diff(np.sort(z)[:2])[0] for z in (a, b))
            for a, b in zip(ours.step_logits, theirs.step_logits, strict=False)]
    sharp = next((i for i, g in enumerate(gaps) if g < 10 * LOGIT_TOL), len(gaps))
    log.info("anti-greedy: %d sharp steps of %d; smallest bottom-two gap there %.3g", sharp, len(gaps),
             min(gaps[:sharp], default=math.nan))
    assert sharp >= 16
    assert ours.tokens[:sharp].tolist() == theirs.tokens[:sharp].tolist()
    assert all(r == model.config.vocab_size for r in theirs.ranks[:sharp])


def test_kv_type_is_checked_natively_and_recorded(tiny_hf: tuple[Path, Path], gguf_model: negtemp.Model) -> None:
    with pytest.raises(ValueError, match="kv_type"):
        negtemp.Model(tiny_hf[1], kv_type="q8_0", prefix_cache=0)  # type: ignore[arg-type]
    assert gguf_model.complete([1, 2], temp=1.0, n_predict=1, seed=1).settings["kv_type"] == "f32"


def test_each_row_of_a_left_padded_batch_is_its_own_single_prompt_run(hf_model: HFModel) -> None:
    from negtemp import hf

    model, tokenizer = hf_model
    prompts = [PROMPT, "Hot", "Temperature is a concept from physics that says how hot or cold a system is"]
    # a penalty window longer than the short prompts: the pads must stay out of it
    settings = {"seed": 5, "repeat_penalty": 1.3, "penalty_last_n": 64, "n_predict": 10, "ignore_eos": True}
    runs = hf.batch(model, prompts, -1.0, tokenizer=tokenizer, n=2, **settings)
    assert [len(r) for r in runs] == [2, 2, 2]
    for prompt, draws in zip(prompts, runs, strict=True):
        for c in draws:
            (alone,) = hf.generate(model, prompt, -1.0, tokenizer=tokenizer, **{**settings, "seed": c.config.seed})
            assert c.tokens.tolist() == alone.tokens.tolist(), prompt
            # float32 matrix products over a padded batch round differently from a single row's
            np.testing.assert_allclose(c.logprobs, alone.logprobs, atol=1e-4)


def scores_generate(model, ids, processor, streamer=None, **settings):
    """model.generate with transformers' own sampler over a scores-mode processor, as docs/transformers.md
    shows it."""
    import torch

    from negtemp import hf

    with hf.neutral_generation_config(model), torch.no_grad():
        return model.generate(ids, attention_mask=torch.ones_like(ids), logits_processor=[processor],
                              streamer=streamer, generation_config=hf.sampling_generation_config(**settings))


def test_transformers_own_sampler_over_the_chains_scores_draws_the_reference(hf_model: HFModel) -> None:
    import torch

    from negtemp import hf

    model, tokenizer = hf_model
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    config = SamplingConfig(temp=-1.0, top_k=30, seed=1)
    processor = hf.ChainProcessor(config, mode="scores")
    torch.manual_seed(0)
    out = scores_generate(model, ids, processor, max_new_tokens=1, num_return_sequences=600, pad_token_id=0)
    p = reference.probs(forward_logits(model, ids[0].tolist())[-1], config=config)
    counts = np.bincount(out[:, -1].numpy(), minlength=p.size)
    assert g_test_pvalue(counts, p) > 1e-3
    flipped = reference.probs(forward_logits(model, ids[0].tolist())[-1], config=dataclasses.replace(config,
                                                                                                     temp=1.0))
    assert g_test_pvalue(counts, flipped) < 1e-6


def test_transition_scores_are_the_chains_log_probabilities(hf_model: HFModel) -> None:
    import torch

    from negtemp import hf

    model, tokenizer = hf_model
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    config = SamplingConfig(temp=-0.7, repeat_penalty=1.4, seed=1)
    processor = hf.ChainProcessor(config, mode="scores")
    torch.manual_seed(3)
    out = scores_generate(model, ids, processor, max_new_tokens=8, output_scores=True, return_dict_in_generate=True,
                          pad_token_id=0, eos_token_id=None)
    got = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=False)[0].double().numpy()
    tokens = out.sequences[0].tolist()
    logits = forward_logits(model, tokens)
    for step in range(8):
        at = ids.shape[1] + step
        p = reference.probs(logits[at - 1], config=config, history=tokens[:at])
        assert got[step] == pytest.approx(math.log(p[tokens[at]]), abs=1e-5)


def test_a_scores_processor_serves_many_calls_and_streamers(hf_model: HFModel) -> None:
    import torch
    from transformers.generation.streamers import BaseStreamer

    from negtemp import hf

    class Collect(BaseStreamer):
        def __init__(self) -> None:
            self.seen: list[int] = []

        def put(self, value: torch.Tensor) -> None:
            self.seen += value.flatten().tolist()

        def end(self) -> None:
            pass

    model, tokenizer = hf_model
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    processor = hf.ChainProcessor(SamplingConfig(temp=-1.0), mode="scores")
    for _ in range(2):
        streamer = Collect()
        out = scores_generate(model, ids, processor, max_new_tokens=5, pad_token_id=0, eos_token_id=None,
                              streamer=streamer)
        assert streamer.seen == out[0].tolist()


@pytest.mark.parametrize("setting", [{"temperature": 0.5}, {"top_k": 50}, {"top_p": 0.9}, {"repetition_penalty": 1.2},
                                     {"min_new_tokens": 3}, {"num_beams": 2}, {"do_sample": False}])
def test_generation_settings_that_would_change_the_distribution_are_refused(setting: dict) -> None:
    from negtemp import hf

    with pytest.raises(ValueError, match="would change the distribution"):
        hf.sampling_generation_config(max_new_tokens=4, **setting)
