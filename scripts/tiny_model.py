"""Write a tiny random LLaMA- or Gemma 3-architecture GGUF with the gguf package (seconds, a few hundred KB)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

N_EMBD = 32
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 64
N_LAYER = 2
WORDS = ["▁the", "▁a", "▁is", "▁concept", "▁temperature", "▁hot", "▁cold", "▁of", "▁and", "▁to",
         "er", "ing", "ed", "s", "▁T", "em", "pe", "ra", "ture", "▁co", "n", "c", "ept", "▁"]


def vocab() -> tuple[list[str], list[float], list[int]]:
    """SentencePiece-style vocabulary: specials, the 256 byte tokens, a few words."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    tokens += WORDS
    types += [gguf.TokenType.NORMAL] * len(WORDS)
    scores = [0.0] * (3 + 256) + [-float(i) for i in range(len(WORDS))]
    return tokens, scores, [int(t) for t in types]


ARCHS = ("llama", "gemma3")


@dataclass(frozen=True)
class Quantized:
    """A tensor override stored in a quantized ggml type (Q8_0, say) instead of as its numpy dtype."""

    values: np.ndarray
    qtype: gguf.GGMLQuantizationType

    def add_to(self, w: gguf.GGUFWriter, name: str) -> None:
        w.add_tensor(name, gguf.quants.quantize(self.values.astype(np.float32), self.qtype), raw_dtype=self.qtype)


def base_metadata(n_layer: int = N_LAYER, n_head_kv: int = N_HEAD_KV, arch: str = "llama") -> dict[str, object]:
    """The tiny model's GGUF key-value metadata (general.architecture aside)."""
    tokens, scores, types = vocab()
    hparams: dict[str, object] = {
        "context_length": 256,
        "embedding_length": N_EMBD,
        "block_count": n_layer,
        "feed_forward_length": N_FF,
        "attention.head_count": N_HEAD,
        "attention.head_count_kv": n_head_kv,
        "attention.layer_norm_rms_epsilon": 1e-5,
    }
    if arch == "llama":
        hparams["rope.dimension_count"] = N_EMBD // N_HEAD
    else:  # gemma3: head size given outright, and a sliding window on all but every 6th layer
        hparams.update({
            "attention.key_length": N_EMBD // N_HEAD,
            "attention.value_length": N_EMBD // N_HEAD,
            "attention.sliding_window": 16,
            "rope.freq_base": 1e6,
        })
    return {
        **{f"{arch}.{key}": value for key, value in hparams.items()},
        "general.file_type": int(gguf.LlamaFileType.ALL_F32),
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": True,
    }


def _add(w: gguf.GGUFWriter, key: str, value: object) -> None:
    if isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        if 0 <= value < 2**32:
            w.add_uint32(key, value)
        elif -(2**31) <= value < 0:
            w.add_int32(key, value)
        else:
            w.add_uint64(key, value) if value > 0 else w.add_int64(key, value)
    elif isinstance(value, float):
        w.add_float32(key, value)
    elif isinstance(value, str):
        w.add_string(key, value)
    else:
        w.add_array(key, list(value))  # type: ignore[call-overload]


def write_tiny_llama(
    path: Path,
    *,
    seed: int = 0,
    scale: float = 1.0,
    n_layer: int = N_LAYER,
    n_head_kv: int = N_HEAD_KV,
    arch: str = "llama",
    meta: dict[str, object] | None = None,
    tensors: dict[str, np.ndarray | Quantized | None] | None = None,
) -> Path:
    """A valid GGUF of `arch` (ARCHS) with random F32 weights; `scale` sets the spread of its logits.

    n_layer and n_head_kv change the shape consistently (tensors match the
    metadata). meta and tensors override single entries (None: leave it out),
    for files that are well formed yet mean something llama.cpp may not expect.
    """
    rng = np.random.default_rng(seed)
    n_vocab = len(vocab()[0])
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in {**base_metadata(n_layer, n_head_kv, arch), **(meta or {})}.items():
        if value is not None:
            _add(w, key, value)

    weights: dict[str, np.ndarray | Quantized | None] = {}

    def t(name: str, *shape: int, std: float = 0.2) -> None:
        weights[name] = (rng.standard_normal(shape) * std).astype(np.float32)

    n_kv = N_EMBD // N_HEAD * n_head_kv
    t("token_embd.weight", n_vocab, N_EMBD, std=1.0)
    weights["output_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)
    t("output.weight", n_vocab, N_EMBD, std=scale)
    for i in range(n_layer):
        weights[f"blk.{i}.attn_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)
        weights[f"blk.{i}.ffn_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)
        t(f"blk.{i}.attn_q.weight", N_EMBD, N_EMBD)
        t(f"blk.{i}.attn_k.weight", n_kv, N_EMBD)
        t(f"blk.{i}.attn_v.weight", n_kv, N_EMBD)
        t(f"blk.{i}.attn_output.weight", N_EMBD, N_EMBD)
        t(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
        if arch == "gemma3":
            for norm, size in (("post_attention_norm", N_EMBD), ("post_ffw_norm", N_EMBD),
                               ("attn_q_norm", N_EMBD // N_HEAD), ("attn_k_norm", N_EMBD // N_HEAD)):
                weights[f"blk.{i}.{norm}.weight"] = np.ones(size, dtype=np.float32)
    weights.update(tensors or {})
    for name, array in weights.items():
        if isinstance(array, Quantized):
            array.add_to(w, name)
        elif array is not None:
            w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_planted_llama(path: Path, *, planted: str = "▁T", n_unused: int = 64, seed: int = 0) -> tuple[Path, int]:
    """The tiny LLaMA with `n_unused` tokens of GGUF type UNUSED appended and one normal token, `planted`, left
    as under-trained as they are: (path, the planted token's id).

    A token training never shows keeps the rows every unseen token gets: one
    shared direction, a small norm, little else. The unused tokens and the
    planted one get such rows (a shared vector plus 2% noise) in both
    matrices; every other row is random, as in write_tiny_llama. The planted
    token must be one the tokenizer produces (most of the tiny vocabulary's
    words are not, and count as known unused): "▁T" is.
    """
    tokens, scores, types = vocab()
    tokens = tokens + [f"<unused{k}>" for k in range(n_unused)]
    scores = scores + [-1000.0] * n_unused
    types = types + [int(gguf.TokenType.UNUSED)] * n_unused
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(N_EMBD) * 0.3
    target = tokens.index(planted)
    untrained = [target, *range(n_vocab - n_unused, n_vocab)]
    matrices = {}
    for name, std in (("token_embd.weight", 1.0), ("output.weight", 1.0)):
        rows = (rng.standard_normal((n_vocab, N_EMBD)) * std).astype(np.float32)
        rows[untrained] = shared + 0.02 * rng.standard_normal((len(untrained), N_EMBD)) * np.abs(shared).mean()
        matrices[name] = rows.astype(np.float32)
    meta = {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.scores": scores, "tokenizer.ggml.token_type": types}
    return write_tiny_llama(path, seed=seed, meta=meta, tensors=dict(matrices)), target
