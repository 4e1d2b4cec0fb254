"""Write a tiny random LLaMA-architecture GGUF with the gguf package (seconds, a few hundred KB)."""

from __future__ import annotations

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


def base_metadata(n_layer: int = N_LAYER, n_head_kv: int = N_HEAD_KV) -> dict[str, object]:
    """The tiny model's GGUF key-value metadata (general.architecture aside)."""
    tokens, scores, types = vocab()
    return {
        "llama.context_length": 256,
        "llama.embedding_length": N_EMBD,
        "llama.block_count": n_layer,
        "llama.feed_forward_length": N_FF,
        "llama.attention.head_count": N_HEAD,
        "llama.attention.head_count_kv": n_head_kv,
        "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "llama.rope.dimension_count": N_EMBD // N_HEAD,
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
    meta: dict[str, object] | None = None,
    tensors: dict[str, np.ndarray | None] | None = None,
) -> Path:
    """A valid LLaMA GGUF with random F32 weights; `scale` sets the spread of its logits.

    n_layer and n_head_kv change the shape consistently (tensors match the
    metadata). meta and tensors override single entries (None: leave it out),
    for files that are well formed yet mean something llama.cpp may not expect.
    """
    rng = np.random.default_rng(seed)
    n_vocab = len(vocab()[0])
    w = gguf.GGUFWriter(str(path), "llama")
    for key, value in {**base_metadata(n_layer, n_head_kv), **(meta or {})}.items():
        if value is not None:
            _add(w, key, value)

    weights: dict[str, np.ndarray] = {}

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
    weights.update(tensors or {})
    for name, array in weights.items():
        if array is not None:
            w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
