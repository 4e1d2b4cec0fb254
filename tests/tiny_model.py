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


def write_tiny_llama(
    path: Path, *, seed: int = 0, scale: float = 1.0, n_layer: int = N_LAYER, n_head_kv: int = N_HEAD_KV
) -> Path:
    """A valid LLaMA GGUF with random F32 weights; `scale` sets the spread of its logits.
    n_layer and n_head_kv change the shape consistently (tensors match the metadata),
    to write files that are well formed yet make llama.cpp abort."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocab()
    n_vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(256)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    def t(name: str, *shape: int, std: float = 0.2) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * std).astype(np.float32))

    n_kv = N_EMBD // N_HEAD * n_head_kv
    t("token_embd.weight", n_vocab, N_EMBD, std=1.0)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    t("output.weight", n_vocab, N_EMBD, std=scale)
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        t(f"blk.{i}.attn_q.weight", N_EMBD, N_EMBD)
        t(f"blk.{i}.attn_k.weight", n_kv, N_EMBD)
        t(f"blk.{i}.attn_v.weight", n_kv, N_EMBD)
        t(f"blk.{i}.attn_output.weight", N_EMBD, N_EMBD)
        t(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
