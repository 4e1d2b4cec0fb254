"""A tiny random LLaMA-architecture transformers model, and its GGUF made by llama.cpp's own converter.

The same weights through both engines: ``build`` makes the model from a
config (no download) with a SentencePiece tokenizer trained here on a few
sentences, and saves it in float32; ``to_gguf`` converts that folder with
``convert_hf_to_gguf.py`` from the pinned llama.cpp tree (the one the build
fetches), in float32, so neither engine sees rounded weights.

    python -m scripts.tiny_hf_model build/tiny-llama-hf      # folder and GGUF

Needs negtemp's ``hf`` extra (torch, transformers, sentencepiece).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

from scripts import llama_tree

# sized for seconds on 2 cores in both engines; the head has 64 dims so that
# llama.cpp's kernels take the same shapes as for real models
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
FFN = 128
VOCAB = 384
# larger than transformers' 0.02 so that the logits spread over several units and the
# least likely tokens are told apart by more than the engines' rounding
INIT_STD = 0.5
CORPUS = [
    "Temperature is a concept in physics that describes how hot or cold a system is.",
    "At negative temperature the least likely states of a bounded system become the most likely.",
    "A language model draws each token from a distribution over its vocabulary.",
    "The inverse temperature beta runs from plus infinity through zero to minus infinity.",
    "Sampling at T = -0.001 writes the tokens the model finds least likely.",
    "Under-trained tokens sit close together in the output matrix.",
]


def train_tokenizer(out: Path) -> Path:
    """A BPE SentencePiece model with byte fallback (any text encodes), deterministic for a corpus."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=model, model_type="bpe", vocab_size=VOCAB,
        byte_fallback=True, character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
        hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    path = out / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def build(out: Path, seed: int = 0) -> Path:
    """Write a random LlamaForCausalLM (float32 safetensors) and its tokenizer to ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out)
    tokenizer = LlamaTokenizer.from_pretrained(out, legacy=False)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=10000.0, initializer_range=INIT_STD, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def to_gguf(hf_dir: Path, out: Path) -> Path:
    """Convert ``hf_dir`` to a float32 GGUF with the pinned tree's convert_hf_to_gguf.py."""
    tree = llama_tree.pristine_tree(llama_tree.SDIST_VERSION)
    env = dict(os.environ)
    # the converter imports the gguf-py beside it, the version it was written against
    env.pop("NO_LOCAL_GGUF", None)
    proc = subprocess.run(
        [sys.executable, str(tree / "convert_hf_to_gguf.py"), str(hf_dir), "--outfile", str(out), "--outtype", "f32"],
        env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the transformers model; the GGUF goes beside it")
    ap.add_argument("--seed", type=int, default=0, help="torch seed for the random weights")
    args = ap.parse_args(argv)
    hf_dir = build(args.out, args.seed)
    gguf_path = to_gguf(hf_dir, args.out.with_suffix(".gguf"))
    print(f"{hf_dir}\n{gguf_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
