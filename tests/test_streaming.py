"""Model.stream(), stop strings, finish reasons and the top-N tokens of each step."""

import subprocess
import sys
import threading
from contextlib import closing

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import negtemp
from negtemp import reference
from negtemp.text import StopFilter

PROMPT = "the temperature is a concept"


def test_stream_yields_the_tokens_and_text_of_complete(tiny):
    chunks = list(tiny.stream(PROMPT, -1.0, seed=3, n_predict=20, ignore_eos=True))
    c = tiny.complete(PROMPT, -1.0, seed=3, n_predict=20, ignore_eos=True)
    assert [ch.token for ch in chunks] == c.tokens.tolist(), "stream() drew other tokens than complete()"
    assert "".join(ch.text for ch in chunks) == c.text
    # complete() continues the prompt stream() left in the prefix cache: its first step decodes one token where
    # stream() decoded the prompt whole, which can move a logit in its last bits
    np.testing.assert_allclose([ch.logprob for ch in chunks], c.logprobs, rtol=1e-5)
    assert [ch.finish_reason for ch in chunks] == [None] * 19 + ["length"]


def test_stream_checks_its_settings_when_called_not_at_the_first_token(tiny):
    with pytest.raises(negtemp.ContextOverflowError, match="n_ctx=256"):
        tiny.stream(PROMPT, -1.0, n_predict=1000)


def test_a_stream_stopped_early_leaves_the_model_ready(tiny):
    with closing(tiny.stream(PROMPT, -1.0, seed=1, n_predict=200, ignore_eos=True)) as chunks:
        first = [next(chunks) for _ in range(3)]
    assert len(first) == 3
    with pytest.raises(StopIteration):
        next(chunks)
    assert tiny.complete(PROMPT, -1.0, n_predict=3, ignore_eos=True).tokens.size == 3


_RSS_PROBE = """
import sys
import negtemp

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

# a fresh context per call: the prefix cache keeps its one context for the Model's life (test_prefix_cache)
with negtemp.Model(sys.argv[1], n_ctx=8192, n_threads=2, prefix_cache=0) as m:
    m.complete("Hi", 1.0, n_predict=2)  # the model's own buffers, paged in once
    base = rss()
    chunks = m.stream("Hi", 1.0, n_predict=8000, ignore_eos=True)
    next(chunks)
    held = rss()
    chunks.close()
    freed = rss()
print(base, held, freed)
"""


@pytest.mark.real_model
def test_closing_a_stream_frees_its_context_at_once(smollm2_path):
    """The KV cache of an 8,000-token generation (about 180 MB) is returned when the stream closes."""
    # in a process of its own: memory earlier tests freed stays resident in this one's heap, where the KV cache
    # can be placed without the resident size moving
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(smollm2_path)], capture_output=True, text=True,
                         check=True, timeout=300)
    base, held, freed = map(int, out.stdout.split())
    assert held - base > 100e6, f"an open 8,000-token stream held only {(held - base) / 1e6:.0f} MB"
    assert held - freed > 100e6, f"closing the stream gave back only {(held - freed) / 1e6:.0f} MB"


def test_two_streams_on_one_model_interleave_and_each_draws_its_own_tokens(tiny):
    a = tiny.stream(PROMPT, -1.0, seed=1, n_predict=8, ignore_eos=True)
    b = tiny.stream(PROMPT, -1.0, seed=2, n_predict=8, ignore_eos=True)
    pairs = list(zip(a, b))
    assert [x.token for x, _ in pairs] == tiny.complete(PROMPT, -1.0, seed=1, n_predict=8, ignore_eos=True).tokens.tolist()
    assert [y.token for _, y in pairs] == tiny.complete(PROMPT, -1.0, seed=2, n_predict=8, ignore_eos=True).tokens.tolist()


def test_cancel_from_another_thread_stops_an_open_stream(tiny):
    chunks = tiny.stream(PROMPT, -1.0, n_predict=100, ignore_eos=True)
    next(chunks)
    canceller = threading.Thread(target=tiny.cancel)
    canceller.start()
    canceller.join()
    with pytest.raises(negtemp.Cancelled):
        next(chunks)
    assert tiny.complete(PROMPT, -1.0, n_predict=2, ignore_eos=True).tokens.size == 2, "a later generation was cancelled"


def test_closing_the_model_stops_an_open_stream(tiny_path):
    m = negtemp.Model(tiny_path, n_ctx=256, n_threads=1)
    chunks = m.stream(PROMPT, -1.0, n_predict=100, ignore_eos=True)
    next(chunks)
    m.close()
    with pytest.raises(negtemp.Cancelled, match="closed"):
        next(chunks)


def spanning_stop(model, c):
    """(i, stop, start): a two-character stop string made of the last character of token i's text and
    the first of token i + 1's, whose first occurrence in c.text is there, at index start."""
    for i in range(c.tokens.size - 1):
        a = model.detokenize(c.tokens[: i + 1])
        b = model.detokenize(c.tokens[: i + 2])
        if not (a and len(b) > len(a) and c.text.startswith(b) and "\ufffd" not in b):
            continue
        stop = a[-1] + b[len(a)]
        if stop.isprintable() and c.text.find(stop) == len(a) - 1:
            return i, stop, len(a) - 1
    pytest.fail(f"no two-character stop string spans a token boundary in {c.text!r}")


def test_a_stop_string_spanning_two_tokens_ends_the_text_before_it(tiny):
    full = tiny.complete(PROMPT, -1.0, seed=11, n_predict=40, ignore_eos=True)
    i, stop, start = spanning_stop(tiny, full)
    c = tiny.complete(PROMPT, -1.0, seed=11, n_predict=40, ignore_eos=True, stop=["never-there", stop])
    assert (c.finish_reason, c.stop_type) == ("stop", "word")
    assert c.text == full.text[:start], "the text should end right before the stop string"
    assert c.tokens.tolist() == full.tokens[: i + 2].tolist(), "generation should end at the token completing the stop"
    assert c.settings["stop"] == ["never-there", stop]


def test_streamed_chunks_hold_back_text_that_may_begin_a_stop_string(tiny):
    full = tiny.complete(PROMPT, -1.0, seed=11, n_predict=40, ignore_eos=True)
    i, stop, start = spanning_stop(tiny, full)
    chunks = list(tiny.stream(PROMPT, -1.0, seed=11, n_predict=40, ignore_eos=True, stop=stop))
    assert "".join(ch.text for ch in chunks) == full.text[:start]
    assert chunks[-1].stop_type == "word" and len(chunks) == i + 2
    assert stop[0] not in chunks[i].text[-1:], "the stop string's first character was released before it was decided"


def test_an_end_of_generation_token_stops_with_stop_type_eos(tiny):
    eos = min(tiny.eog_tokens)
    c = tiny.complete(PROMPT, 1.0, n_predict=10, logit_bias={eos: 1000.0})
    assert (c.finish_reason, c.stop_type) == ("stop", "eos") and c.tokens.tolist() == [eos]
    assert (c.to_dict()["finish_reason"], c.to_dict()["stop_type"]) == ("stop", "eos")


def test_sweep_cuts_each_sequence_at_its_stop_string_and_says_why(tiny):
    runs = tiny.sweep(PROMPT, [-1.0, 1.0], seed=5, n_predict=30, ignore_eos=True)
    i, stop, start = spanning_stop(tiny, runs[0])
    cut = tiny.sweep(PROMPT, [-1.0, 1.0], seed=5, n_predict=30, ignore_eos=True, stop=stop)
    assert cut[0].stop_type == "word" and cut[0].text == runs[0].text[:start]
    assert cut[0].tokens.tolist() == runs[0].tokens[: i + 2].tolist()
    assert cut[0].logprobs.size == i + 2
    assert cut[1].stop_type == ("word" if stop in runs[1].text else "limit")
    assert [r.finish_reason for r in runs] == ["length", "length"]


@pytest.mark.parametrize("bad, error", [([""], ValueError), ([3], TypeError)])
def test_bad_stop_strings_are_refused(tiny, bad, error):
    with pytest.raises(error, match="stop string"):
        tiny.complete(PROMPT, stop=bad)


def reference_cut(pieces: list[str], stops: list[str]) -> str:
    """Generation ends at the first piece that completes a stop string; the text, before the
    earliest stop string in the text so far."""
    for k in range(1, len(pieces) + 1):
        text = "".join(pieces[:k])
        hits = [i for i in (text.find(s) for s in stops) if i >= 0]
        if hits:
            return text[: min(hits)]
    return "".join(pieces)


def filtered(pieces: list[str], stops: list[str], filter_cls=StopFilter) -> str:
    f = filter_cls(tuple(stops))
    out = ""
    for p in pieces:
        out += f.feed(p)
        if f.stopped:
            return out
    return out + f.flush()


class PerPieceStop:
    """A wrong matcher: looks for stop strings inside each piece only."""

    def __init__(self, stops):
        self.stops, self.stopped = stops, False

    def feed(self, text):
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            return text[: min(hits)]
        return text

    def flush(self):
        return ""


pieces_st = st.lists(st.text(alphabet="abc", max_size=4), max_size=12)
stops_st = st.lists(st.text(alphabet="abc", min_size=1, max_size=4), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(pieces=pieces_st, stops=stops_st)
def test_stop_filter_releases_exactly_the_text_before_the_first_stop_string(pieces, stops):
    assert filtered(pieces, stops) == reference_cut(pieces, stops)


def test_the_stop_property_rejects_a_matcher_that_ignores_token_boundaries():
    @settings(max_examples=300, deadline=None, database=None)
    @given(pieces=pieces_st, stops=stops_st)
    def prop(pieces, stops):
        assert filtered(pieces, stops, PerPieceStop) == reference_cut(pieces, stops)

    with pytest.raises(AssertionError):
        prop()


def log_softmax(z):
    z = z.astype(np.float64)
    m = z.max()
    return z - m - np.log(np.exp(z - m).sum())


@pytest.mark.parametrize(
    "temp, options",
    [(-1.0, {}), (0.7, {}), (-0.5, {"top_k": 5}), (-1.0, {"min_p": 0.2, "path": "chain"})],
    ids=["fused-negative", "fused-positive", "top-k-negative", "min-p-chain"],
)
def test_top_n_gives_the_sampled_and_the_model_log_probabilities(tiny, temp, options):
    c = tiny.complete(PROMPT, temp, seed=2, n_predict=6, n_probs=4, keep_logits=True, **options)
    assert len(c.top_logprobs) == c.tokens.size
    for step, (top, z) in enumerate(zip(c.top_logprobs, c.step_logits)):
        sampled = negtemp.sampler_probs(z, config=c.config)
        order = sorted(range(z.size), key=lambda t: (-sampled[t], z[t] if temp < 0 else -z[t], t))[:4]
        assert [t.token for t in top] == order, f"step {step}: not the 4 most likely tokens of the sampled distribution"
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose([t.logprob for t in top], np.log(sampled[order]), rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {step}: logprob is not the sampled distribution's")
        np.testing.assert_allclose([t.model_logprob for t in top], log_softmax(z)[order], rtol=1e-5, atol=1e-5,
                                   err_msg=f"step {step}: model_logprob is not the model's T = 1 distribution")


def test_at_negative_temperature_the_top_tokens_are_the_models_least_likely(tiny):
    c = tiny.complete(PROMPT, -0.01, seed=1, n_predict=3, n_probs=3, keep_logits=True)
    for top, z in zip(c.top_logprobs, c.step_logits):
        assert [t.token for t in top] == np.argsort(z, kind="stable")[:3].tolist()
        assert top[0].logprob > top[0].model_logprob, "the sampled and model log-probabilities were swapped"
    assert all(np.isclose(reference.probs(z, -0.01)[top[0].token], np.exp(top[0].logprob), atol=1e-6)
               for top, z in zip(c.top_logprobs, c.step_logits))


def test_top_n_is_in_the_json_with_its_two_distributions_named(tiny):
    d = tiny.complete(PROMPT, -1.0, seed=1, n_predict=2, n_probs=2, ignore_eos=True).to_dict()
    assert [sorted(t) for t in d["top_logprobs"][0]] == [["logprob", "model_logprob", "text", "token"]] * 2


def test_top_n_on_the_backend_path_is_refused_with_the_paths_that_have_it(tiny):
    with pytest.raises(ValueError, match="CPU path"):
        tiny.complete(PROMPT, -1.0, n_probs=2, path="backend")
