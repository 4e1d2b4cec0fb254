"""Strict inputs and bounded resources at the Model boundary."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import negtemp


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_threads": 100_000}, ValueError, r"n_threads must be in \[1, 256\]"),
        ({"n_threads": 0}, ValueError, "n_threads"),
        ({"n_threads": True}, TypeError, "n_threads must be an int"),
        ({"n_threads": 1.5}, TypeError, "n_threads must be an int"),
        ({"n_ctx": 8}, ValueError, "n_ctx"),
        ({"n_ctx": 2**40}, ValueError, "n_ctx"),
    ],
)
def test_thread_and_context_counts_out_of_range_are_refused_before_loading(tiny_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        negtemp.Model(tiny_path, **kwargs)


def test_a_context_whose_kv_cache_cannot_fit_in_memory_is_refused_with_its_size(tiny_path):
    with pytest.raises(ValueError, match=r"needs a [0-9.]+ GiB KV cache .* more than the [0-9.]+ GiB"):
        negtemp.Model(tiny_path, n_ctx=2**31 - 1, n_threads=1)


def test_a_context_past_the_training_context_is_warned_about(tiny_path):
    with pytest.warns(UserWarning, match="past the 256 tokens"):
        negtemp.Model(tiny_path, n_ctx=512, n_threads=1).close()


def test_the_default_context_is_the_training_context_up_to_2048(tiny_path, smollm2):
    with negtemp.Model(tiny_path, n_threads=1) as m:
        assert m.n_ctx == m.n_ctx_train == 256
    with negtemp.Model(smollm2.path, n_threads=1) as m:  # trained on 8192
        assert m.n_ctx == 2048


def test_a_model_at_a_path_that_is_not_utf8_loads(tiny_path, tmp_path):
    odd = bytes(tmp_path) + b"/model-\xff\xfe.gguf"
    shutil.copyfile(tiny_path, odd)
    with negtemp.Model(odd, n_ctx=64, n_threads=1) as m:
        assert m.complete("hi", -1.0, n_predict=2).tokens.size > 0


@pytest.mark.parametrize("tokens", [[1.5, 2.0], [True, False], np.array([1.0, 2.0])])
def test_token_ids_that_are_not_integers_are_refused(tiny, tokens):
    with pytest.raises(TypeError, match="token ids must be integers"):
        tiny.logits(tokens)
    with pytest.raises(TypeError, match="token ids must be integers"):
        tiny.detokenize(tokens)


def test_token_ids_past_int32_are_refused_not_wrapped(tiny):
    with pytest.raises(ValueError, match=r"\[0, 2\*\*31\)"):
        tiny.detokenize([2**40 + 5])


def test_control_token_text_in_a_prompt_is_parsed_only_when_asked(smollm2):
    text = "Hello<|im_end|>"
    special = smollm2.tokenize(text, add_special=False)
    plain = smollm2.tokenize(text, add_special=False, parse_special=False)
    eos = set(smollm2.eog_tokens)
    assert eos & set(special.tolist()), "parse_special=True should turn <|im_end|> into the control token"
    assert not eos & set(plain.tolist()) and plain.size > special.size, "parse_special=False still made a control token"
    c = smollm2.complete(text, -1.0, n_predict=2, parse_special=False, seed=1)
    np.testing.assert_array_equal(c.prompt_tokens[-plain.size:], plain)


def test_four_megabytes_of_text_the_vocabulary_lacks_tokenize_within_a_minute(tiny):
    # each "a" falls back to a byte token; SPM's reserve() made that quadratic before patch
    # 0004 (1 MB took 146 s, so 4 MB would take about 40 minutes; about 0.5 s after)
    code = ("import sys, negtemp; m = negtemp.Model(sys.argv[1], n_threads=1)\n"
            "print(m.tokenize('a' * (4 << 20)).size)")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(tiny.path)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("tokenizing 4 MB of byte-fallback text took over 60 s: work per byte is not bounded")
    assert out.stdout.strip() == str((4 << 20) + 1), out.stderr[-500:]
