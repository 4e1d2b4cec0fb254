"""Files that would crash llama.cpp become ModelLoadError, and this process lives."""

import gguf
import numpy as np
import pytest

import negtemp
from negtemp import vetting
from scripts.tiny_model import Quantized, write_tiny_llama


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Verdicts in a cache of the test's own, so each test loads its file afresh."""
    monkeypatch.setenv("NEGTEMP_CACHE", str(tmp_path / "cache"))


def test_a_file_that_aborts_llama_cpp_at_load_is_refused_quoting_the_assertion(tmp_path):
    bad = write_tiny_llama(tmp_path / "no-layers.gguf", n_layer=0)
    with pytest.raises(negtemp.ModelLoadError, match=r"while loading it: .*GGML_ASSERT\(hparams.n_layer_all > 0"):
        negtemp.Model(bad, n_threads=1)


def test_a_file_that_aborts_at_the_first_decode_is_refused_before_loading(tmp_path):
    bad = write_tiny_llama(tmp_path / "kv-heads-3-of-4.gguf", n_head_kv=3)
    with pytest.raises(negtemp.ModelLoadError, match=r"while generating on the fused path: .*ggml_can_mul_mat"):
        negtemp.Model(bad, n_threads=1)


def test_verdicts_are_cached_so_a_second_load_runs_no_trial_load(tmp_path, monkeypatch):
    bad = write_tiny_llama(tmp_path / "no-layers.gguf", n_layer=0)
    good = write_tiny_llama(tmp_path / "good.gguf")
    with pytest.raises(negtemp.ModelLoadError) as first:
        negtemp.Model(bad, n_threads=1)
    negtemp.Model(good, n_threads=1).close()

    def no_trial_load(path):
        raise AssertionError(f"loaded {path} in a child again")

    monkeypatch.setattr(vetting, "_trial_load", no_trial_load)
    with pytest.raises(negtemp.ModelLoadError) as second:
        negtemp.Model(bad, n_threads=1)
    assert str(second.value) == str(first.value)
    negtemp.Model(good, n_threads=1).close()


def test_a_changed_file_is_loaded_in_a_child_again(tmp_path):
    path = write_tiny_llama(tmp_path / "model.gguf")
    negtemp.Model(path, n_threads=1).close()
    write_tiny_llama(path, n_layer=0)
    with pytest.raises(negtemp.ModelLoadError, match="GGML_ASSERT"):
        negtemp.Model(path, n_threads=1)


def test_a_trial_load_that_does_not_finish_in_time_is_reported_as_a_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(vetting, "TRIAL_TIMEOUT_S", 0.01)
    path = write_tiny_llama(tmp_path / "model.gguf")
    with pytest.raises(negtemp.ModelLoadError, match=r"did not finish .* within 0.01 s"):
        negtemp.Model(path, n_threads=1)


def test_vet_false_loads_without_a_trial_load(tmp_path, monkeypatch):
    monkeypatch.setattr(vetting, "_trial_load", lambda path: "should not run")
    negtemp.Model(write_tiny_llama(tmp_path / "model.gguf"), n_threads=1, vet=False).close()


# the rwkv tokenizer over this vocabulary matches "p" (the start of "pe") where no token ends:
# it looped forever, growing its memory, until patch 0004
RWKV = {"tokenizer.ggml.model": "rwkv"}


def test_an_rwkv_tokenizer_gives_unknown_tokens_for_text_no_token_covers(tmp_path):
    odd = write_tiny_llama(tmp_path / "rwkv.gguf", meta=RWKV)
    with negtemp.Model(odd, n_threads=1, vet=False) as m:
        assert m.tokenize("probe", add_special=False).tolist() == [0] * 5  # <unk> for each byte


def test_text_a_vocabulary_without_an_unknown_token_cannot_cover_raises(tmp_path):
    odd = write_tiny_llama(tmp_path / "rwkv.gguf", meta={**RWKV, "tokenizer.ggml.unknown_token_id": None})
    with negtemp.Model(odd, n_threads=1, vet=False) as m:
        with pytest.raises(ValueError, match="no token for some of its bytes and no unknown token"):
            m.tokenize("probe")


def test_a_trial_load_that_grows_without_end_is_stopped_at_its_memory_limit(tmp_path, monkeypatch):
    # what a runaway inside llama.cpp looks like to the trial load: memory growing until the limit,
    # reported as the trial load reports Python errors (a line on stdout, exit status 3)
    (tmp_path / "runaway.py").write_text("import sys\n"
                                         "print('stage: tokenizing', flush=True)\n"
                                         "grow = []\n"
                                         "try:\n"
                                         "    while True:\n"
                                         "        grow.append(bytearray(64 << 20))\n"
                                         "except MemoryError as e:\n"
                                         "    print('python error: MemoryError', e, flush=True)\n"
                                         "    sys.exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(vetting, "_TRIAL_LOAD", "runaway")
    with pytest.raises(negtemp.ModelLoadError, match=r"memory limit while tokenizing"):
        negtemp.Model(write_tiny_llama(tmp_path / "model.gguf"), n_threads=1)


def test_verdicts_of_deleted_files_are_dropped_when_a_new_one_is_written(tmp_path):
    gone = write_tiny_llama(tmp_path / "gone.gguf")
    negtemp.Model(gone, n_threads=1).close()
    folder = tmp_path / "cache" / "vetted"
    assert len(list(folder.glob("*.json"))) == 1
    gone.unlink()
    negtemp.Model(write_tiny_llama(tmp_path / "new.gguf"), n_threads=1).close()
    assert [json_path.read_text().count("new.gguf") for json_path in folder.glob("*.json")] == [1]


N_VOCAB = 3 + 256 + 24  # tiny_model's vocabulary: specials, bytes, words

# Well-formed, hostile files (each aborted or hung the Python process before)
HOSTILE = {
    "block_count 0": {"meta": {"llama.block_count": 0}},
    "block_count 513": {"meta": {"llama.block_count": 513}},
    "nextn_predict_layers > block_count": {"meta": {"llama.nextn_predict_layers": 5}},
    "rope.scaling.type bogus": {"meta": {"llama.rope.scaling.type": "bogus"}},
    "expert_count 2000": {"meta": {"llama.expert_count": 2000}},
    "expert_used_count without experts": {"meta": {"llama.expert_used_count": 2}},
    "tokenizer bert": {"meta": {"tokenizer.ggml.model": "bert"}},
    "head_count_kv 8 of 4 heads": {"meta": {"llama.attention.head_count_kv": 8}},
    "head_count_kv 3 of 4 heads": {"n_head_kv": 3},
    "odd rope dimensions": {"meta": {"llama.rope.dimension_count": 7}},
    "rms_norm_epsilon NaN": {"meta": {"llama.attention.layer_norm_rms_epsilon": float("nan")}},
    "rms_norm_epsilon -1": {"meta": {"llama.attention.layer_norm_rms_epsilon": -1.0}},
    "token_embd as I32": {"tensors": {"token_embd.weight": np.ones((N_VOCAB, 32), dtype=np.int32)}},
    "output_norm as F16": {"tensors": {"output_norm.weight": np.ones(32, dtype=np.float16)}},
    "output_norm as Q8_0": {"tensors": {"output_norm.weight": Quantized(np.ones(32), gguf.GGMLQuantizationType.Q8_0)}},
    "one-token vocabulary with add_bos": {"meta": {"tokenizer.ggml.tokens": ["a"], "tokenizer.ggml.scores": [0.0],
                                                   "tokenizer.ggml.token_type": [1]}},
    "gemma3: block_count 0": {"arch": "gemma3", "meta": {"gemma3.block_count": 0}},
    "gemma3: key_length 0": {"arch": "gemma3", "meta": {"gemma3.attention.key_length": 0}},
    "gemma3: head_count_kv 3 of 4 heads": {"arch": "gemma3", "n_head_kv": 3},
    "gemma3: sliding window 2^31": {"arch": "gemma3", "meta": {"gemma3.attention.sliding_window": 2**31}},
    "gemma3: post_ffw_norm as Q8_0": {"arch": "gemma3", "tensors": {
        "blk.0.post_ffw_norm.weight": Quantized(np.ones(32), gguf.GGMLQuantizationType.Q8_0)}},
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_each_hostile_file_from_the_issue_ends_in_text_or_an_error_never_a_crash(tmp_path, case):
    path = write_tiny_llama(tmp_path / "hostile.gguf", **HOSTILE[case])
    try:
        with negtemp.Model(path, n_ctx=64, n_threads=1) as m:
            for p in ("fused", "chain", "backend"):
                m.complete("the temperature", -1.0, n_predict=2, seed=1, path=p)
            m.sweep("the temperature", [-1.0, 1.0], n_predict=2, seed=1)
    except (negtemp.ModelLoadError, ValueError, RuntimeError) as e:
        assert str(e), f"{case}: an error without a reason"
