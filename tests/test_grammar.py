"""Grammars and JSON schemas: the grammar masks the tokens it does not allow, then the chain runs on the rest."""

import json
from dataclasses import replace

import jsonschema
import numpy as np
import pytest
from stats import g_test_pvalue

import negtemp
from negtemp import reference

GRAMMAR = 'root ::= ("yes" | "no" | "maybe") "."'
WORDS = ("yes.", "no.", "maybe.")
PROMPT = "the answer is"
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "count": {"type": "integer", "minimum": 0, "maximum": 99},
        "ok": {"type": "boolean"},
        "kind": {"enum": ["cold", "hot"]},
    },
    "required": ["name", "count", "ok", "kind"],
    "additionalProperties": False,
}


def allowed_tokens(model: negtemp.Model, text: bytes) -> set[int]:
    """The tokens GRAMMAR allows after text, found from the words themselves: a token whose bytes extend text
    to the start of a word, and the end-of-generation tokens once text is a whole word."""
    out = {t for t in range(model.n_vocab)
           if (piece := model.token_bytes(t)) and any(w.encode().startswith(text + piece) for w in WORDS)}
    if text.decode() in WORDS:
        out |= set(model.eog_tokens)
    return out


def reference_config(model: negtemp.Model, c: negtemp.Completion) -> negtemp.SamplingConfig:
    return replace(c.config, ignore_eos=False, logit_bias={t: float("-inf") for t in model.eog_tokens})


@pytest.mark.parametrize("temp", [-1.0, 1.0])
def test_each_step_masks_exactly_the_tokens_the_grammar_does_not_allow(tiny, temp):
    for seed in range(4):
        c = tiny.complete(PROMPT, temp, seed=seed, n_predict=8, grammar=GRAMMAR, keep_logits=True)
        assert c.text in WORDS and c.stop_type == "eos"
        for i in range(len(c.tokens)):
            done = b"".join(c.pieces[:i])
            masked = set(np.flatnonzero(np.isfinite(c.step_logits[i])).tolist())
            assert masked == allowed_tokens(tiny, done), (seed, i, done)


@pytest.mark.parametrize("settings", [
    {"temp": -1.0}, {"temp": 0.8}, {"temp": -1.0, "path": "chain", "top_k": 3}, {"temp": -0.5, "min_p": 0.05},
    {"temp": -1.0, "repeat_penalty": 1.3},
])
def test_every_grammar_token_is_drawn_from_the_reference_on_the_masked_logits(tiny, settings):
    for seed in range(3):
        c = tiny.complete(PROMPT, seed=seed, n_predict=8, grammar=GRAMMAR, keep_logits=True, **settings)
        history = c.prompt_tokens.tolist()
        for i, token in enumerate(c.tokens):
            p = reference.probs(c.step_logits[i].astype(np.float64), config=c.config, history=history)
            assert np.log(p[token]) == pytest.approx(c.logprobs[i], abs=1e-4), (settings, seed, i)
            history.append(int(token))


def test_a_grammars_first_tokens_follow_the_reference_on_the_masked_logits(tiny):
    (draws,) = tiny.batch([PROMPT], -1.0, n=400, seed=1, n_predict=1, grammar=GRAMMAR, keep_logits=True)
    p = reference.probs(draws[0].step_logits[0].astype(np.float64), -1.0)
    counts = np.bincount([c.tokens[0] for c in draws], minlength=tiny.n_vocab)
    assert g_test_pvalue(counts, p) > 1e-3


def test_at_t_toward_zero_from_below_the_least_likely_allowed_token_wins(tiny):
    free = tiny.complete(PROMPT, 1.0, n_predict=1, keep_logits=True)
    c = tiny.complete(PROMPT, beta=float("-inf"), n_predict=6, grammar=GRAMMAR, keep_logits=True)
    raw = free.step_logits[0]
    allowed = sorted(allowed_tokens(tiny, b""))
    assert c.tokens[0] == allowed[int(np.argmin(raw[allowed]))]
    assert c.tokens[0] != int(np.argmin(raw))  # the grammar changed the pick


def test_a_grammar_works_in_draws_stream_and_batch(tiny):
    assert all(c.text in WORDS for c in tiny.draws(PROMPT, -1.0, n=4, n_predict=8, grammar=GRAMMAR))
    assert "".join(ch.text for ch in tiny.stream(PROMPT, -1.0, n_predict=8, grammar=GRAMMAR)) in WORDS
    runs = tiny.batch([PROMPT, "no or yes:"], -1.0, n=3, n_predict=8, grammar=GRAMMAR)
    assert all(c.text in WORDS for draws in runs for c in draws)


@pytest.mark.filterwarnings("ignore:the 4 draws will be nearly identical")
@pytest.mark.parametrize("temp", [-1.0, -0.001, 0.7])
def test_every_json_schema_draw_parses_and_validates(tiny, temp):
    runs = tiny.batch([PROMPT, "{"], temp, n=4, seed=2, n_predict=200, json_schema=SCHEMA)
    for c in (c for draws in runs for c in draws):
        assert c.stop_type == "eos", c.text
        jsonschema.validate(json.loads(c.text), SCHEMA)


@pytest.mark.real_model
def test_every_json_schema_draw_of_a_real_model_parses_and_validates(real_model):
    for c in real_model.draws("A JSON object:", -1.0, n=4, seed=3, n_predict=200, json_schema=SCHEMA):
        assert c.stop_type == "eos", c.text
        jsonschema.validate(json.loads(c.text), SCHEMA)
        assert c.settings["json_schema"] == SCHEMA


def test_the_grammar_a_json_schema_becomes_is_llama_cpps():
    gbnf = negtemp.grammar.json_schema_grammar({"enum": ["cold", "hot"]})
    assert gbnf.startswith("root ::= ") and '"\\"cold\\""' in gbnf


@pytest.mark.parametrize("kwargs, match", [
    ({"grammar": "root ::= ("}, "the grammar does not parse"),
    ({"grammar": "start ::= \"x\""}, "the grammar does not parse"),
    ({"grammar": "root ::= " + "(" * 300 + '"x"' + ")" * 300}, "nests groups more than 256 deep"),
    ({"grammar": "   "}, "grammar is empty"),
    ({"grammar": GRAMMAR, "json_schema": SCHEMA}, "not both"),
    ({"json_schema": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}, "cannot be turned into"),
    ({"json_schema": {"x": float("nan")}}, "json_schema is not JSON"),
    ({"grammar": GRAMMAR, "path": "backend"}, "a grammar needs a CPU path"),
])
def test_a_grammar_that_cannot_be_used_is_refused_with_what_to_do(tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny.complete(PROMPT, -1.0, n_predict=2, **kwargs)


def test_a_grammar_of_more_rules_than_negtemp_takes_is_refused(tiny):
    rules = "\n".join(f'r{i} ::= "x"' for i in range(5000))
    with pytest.raises(ValueError, match="5001 rules, more than the 4096"):
        tiny.complete(PROMPT, n_predict=2, grammar=f"root ::= r0\n{rules}")


@pytest.mark.parametrize("temp", [-1.0, 1.0])
def test_grammar_text_is_well_formed_utf8_where_llama_cpps_decoder_is_lenient(tiny, temp):
    # at T < 0 the tiny model favours stray bytes: overlong forms and surrogates that llama.cpp's
    # grammar decoder would let through as characters
    for c in tiny.draws(PROMPT, temp, n=8, seed=4, n_predict=40, grammar='root ::= [^\\x00-\\x1f]{6} "."'):
        assert c.stop_type == "eos"
        assert len(b"".join(c.pieces).decode("utf-8")) == 7
