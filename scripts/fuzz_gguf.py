"""Fuzz negtemp's model loading with mutated GGUF files, each loaded in a subprocess.

Two kinds of case, each run in its own subprocess:
- bytes (default): mutations of the tiny test model's header region
  (truncations, random bytes, bit flips, huge counts and lengths). Every case
  must end in a loaded model or a negtemp.ModelLoadError with a reason.
- --semantic: well-formed files whose meaning is hostile, for both the LLaMA
  and the Gemma 3 architecture: every hyperparameter key absent, 0, negative,
  huge, NaN/inf or of the wrong type; tokenizer models and fields; tensor types
  and shapes; then combinations within one architecture. Each
  is loaded, tokenized, generated on every sampling path and swept; it must end
  in text or a Python exception with a reason (ModelLoadError, ValueError,
  RuntimeError), at whatever stage.
Never a crash, a hang, or another exception.
Usage: python -m scripts.fuzz_gguf [--semantic] [-n 2000] [--seed 0] [-j 2]
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOADER = (
    "import sys, negtemp\n"
    "try:\n"
    "    negtemp.Model(sys.argv[1], n_ctx=32, n_threads=1).close()\n"
    "except negtemp.ModelLoadError as e:\n"
    "    print('rejected:', e)\n"
    "    sys.exit(3)\n"
)


SEMANTIC_RUNNER = (
    "import sys, negtemp, negtemp.vetting\n"
    "negtemp.vetting.PROBE_TIMEOUT_S = 20\n"
    "stage = 'load'\n"
    "try:\n"
    "    m = negtemp.Model(sys.argv[1], n_ctx=64, n_threads=1)\n"
    "    stage = 'tokenize'\n"
    "    m.tokenize('the temperature')\n"
    "    for path in ('fused', 'chain', 'backend'):\n"
    "        stage = 'generate-' + path\n"
    "        m.complete('the temperature', -1.0, n_predict=2, seed=1, path=path)\n"
    "    stage = 'sweep'\n"
    "    m.sweep('the temperature', [-1.0, 1.0], n_predict=2, seed=1)\n"
    "except (negtemp.ModelLoadError, ValueError, RuntimeError) as e:\n"
    "    print('rejected:', stage, type(e).__name__, e)\n"
    "    sys.exit(3)\n"
)

# Hyperparameters llama.cpp reads (prefixed with the architecture), tokenizer
# fields, and values that mean nonsense for them (None: the key left out)
HPARAM_KEYS = {
    "llama": [
        "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
        "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.dimension_count", "rope.freq_base",
        "rope.scaling.type", "expert_count", "expert_used_count", "nextn_predict_layers", "vocab_size",
    ],
    "gemma3": [
        "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
        "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "attention.key_length",
        "attention.value_length", "attention.sliding_window", "attention.sliding_window_pattern",
        "rope.freq_base", "rope.freq_base_swa", "rope.scaling.type", "rope.scaling.factor",
        "final_logit_softcapping", "vocab_size",
    ],
}
FILE_KEYS = ["general.file_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
             "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token"]
SEMANTIC_VALUES = [None, 0, -1, 3, 513, 2**31, 2**32 - 1, 2**40, float("nan"), float("inf"), -1.0, 1e30, "bogus", True]
TOKENIZER_MODELS = ["bert", "rwkv", "gpt2", "t5", "ugm", "plamo2", "none", "bogus", ""]

Case = tuple[str, str, dict, dict]  # (name, architecture, metadata overrides, tensor overrides)


def semantic_mutations() -> list[Case]:
    """Every single semantic mutation, for each architecture."""
    import gguf
    import numpy as np
    from scripts.tiny_model import ARCHS, N_EMBD, N_HEAD, Quantized, vocab

    n_vocab = len(vocab()[0])
    out: list[Case] = []
    for arch in ARCHS:
        for key in [f"{arch}.{k}" for k in HPARAM_KEYS[arch]] + FILE_KEYS:
            for value in SEMANTIC_VALUES:
                out.append((f"{arch}: {key}={value!r}", arch, {key: value}, {}))
        for model in TOKENIZER_MODELS:
            out.append((f"{arch}: tokenizer={model!r}", arch, {"tokenizer.ggml.model": model}, {}))
        tensors = {
            "token_embd as int32": {"token_embd.weight": np.ones((n_vocab, N_EMBD), dtype=np.int32)},
            "output_norm as f16": {"output_norm.weight": np.ones(N_EMBD, dtype=np.float16)},
            "output_norm as Q8_0": {"output_norm.weight": Quantized(np.ones(N_EMBD), gguf.GGMLQuantizationType.Q8_0)},
            "output_norm one too long": {"output_norm.weight": np.ones(N_EMBD + 1, dtype=np.float32)},
            "attn_q missing": {"blk.0.attn_q.weight": None},
            "output missing (tied embeddings)": {"output.weight": None},
            "NaN embeddings": {"token_embd.weight": np.full((n_vocab, N_EMBD), np.nan, dtype=np.float32)},
            "inf output": {"output.weight": np.full((n_vocab, N_EMBD), np.inf, dtype=np.float32)},
        }
        if arch == "gemma3":
            tensors.update({
                "attn_q_norm one too long": {"blk.0.attn_q_norm.weight": np.ones(N_EMBD // N_HEAD + 1, np.float32)},
                "post_ffw_norm missing": {"blk.1.post_ffw_norm.weight": None},
                "post_attention_norm as Q8_0": {"blk.0.post_attention_norm.weight": Quantized(
                    np.ones(N_EMBD), gguf.GGMLQuantizationType.Q8_0)},
            })
        out += [(f"{arch}: {name}", arch, {}, t) for name, t in tensors.items()]
        out += [
            (f"{arch}: one-token vocabulary", arch, {"tokenizer.ggml.tokens": ["a"], "tokenizer.ggml.scores": [0.0],
                                                      "tokenizer.ggml.token_type": [1]}, {}),
            (f"{arch}: scores shorter than tokens", arch, {"tokenizer.ggml.scores": [0.0, 1.0]}, {}),
            (f"{arch}: token types out of range", arch, {"tokenizer.ggml.token_type": [99] * n_vocab}, {}),
            (f"{arch}: no tokens", arch, {"tokenizer.ggml.tokens": None}, {}),
        ]
    return out


def semantic_cases(n: int, seed: int, sample: bool = False) -> list[Case]:
    """The single mutations first (a seeded sample of them when `sample`), then
    random combinations of two or three of one architecture's, n in all."""
    singles = semantic_mutations()
    rng = random.Random(seed)
    cases = rng.sample(singles, min(n // 2, len(singles))) if sample else list(singles[:n])
    while len(cases) < n:
        arch = rng.choice(sorted({c[1] for c in singles}))
        picked = rng.sample([c for c in singles if c[1] == arch], rng.randint(2, 3))
        meta, tensors = {}, {}
        for _, _, m, t in picked:
            meta.update(m)
            tensors.update(t)
        cases.append((" + ".join(name for name, _, _, _ in picked), arch, meta, tensors))
    return cases


def run_semantic_case(case: Case, workdir: Path, timeout: float = 90.0) -> tuple[str, str]:
    """('ok' | 'rejected-at-STAGE' | 'crash' | 'hang' | 'error', detail)."""
    from scripts.tiny_model import write_tiny_llama

    name, arch, meta, tensors = case
    fd, tmp = tempfile.mkstemp(suffix=".gguf", dir=workdir)
    os.close(fd)
    path = Path(tmp)
    try:
        try:
            write_tiny_llama(path, arch=arch, meta=meta, tensors=tensors)
        except Exception as e:  # the gguf package refuses to write it: nothing to load
            return "unwritable", f"{name}: {e}"
        env = dict(os.environ, NEGTEMP_CACHE=str(workdir / "cache"))
        return run_loader(SEMANTIC_RUNNER, path, name, timeout, env, by_stage=True)
    finally:
        path.unlink(missing_ok=True)


def semantic_fuzz(n: int, seed: int, jobs: int, sample: bool = False) -> tuple[Counter[str], list[str]]:
    with tempfile.TemporaryDirectory(prefix="negtemp-fuzz-") as tmp:
        cases = semantic_cases(n, seed, sample)
        return tally(lambda c: run_semantic_case(c, Path(tmp)), cases, jobs)


def run_loader(code: str, path: Path, name: str, timeout: float, env: dict | None = None,
               by_stage: bool = False) -> tuple[str, str]:
    """Run a loader script on path in a subprocess: ('ok' | 'rejected[-at-STAGE]' | 'crash' | 'hang' | 'error', detail)."""
    try:
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return "hang", name
    if r.returncode == 0:
        return "ok", name
    if r.returncode == 3 and r.stdout.startswith("rejected:") and len(r.stdout.split()) > 1:
        return (f"rejected-at-{r.stdout.split()[1]}" if by_stage else "rejected"), name
    if r.returncode < 0:
        return "crash", f"{name}: signal {-r.returncode}\n{r.stderr[-800:]}"
    return "error", f"{name}: exit {r.returncode}\n{r.stderr[-800:]}{r.stdout[-400:]}"


def tally(run, cases: list, jobs: int) -> tuple[Counter[str], list[str]]:
    """Run the cases on `jobs` threads (each case is its own subprocess); count outcomes, keep failures."""
    counts: Counter[str] = Counter()
    failures: list[str] = []
    with ThreadPoolExecutor(jobs) as pool:
        for i, (outcome, detail) in enumerate(pool.map(run, cases), 1):
            counts[outcome] += 1
            if outcome in ("crash", "hang", "error"):
                failures.append(detail)
            if i % 100 == 0:
                print(f"  {i}/{len(cases)}: {dict(counts)}", file=sys.stderr, flush=True)
    return counts, failures


def header_size(path: Path) -> int:
    """Bytes before the tensor data: the region worth mutating."""
    import gguf

    return int(gguf.GGUFReader(path, "r").data_offset)


def mutations(base: bytes, head: int, n: int, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    cases: list[tuple[str, bytes]] = []
    kinds = ["truncate", "random-bytes", "bit-flip", "huge-count"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "truncate":
            cut = rng.randrange(0, len(base))
            cases.append((f"truncate@{cut}", base[:cut]))
        elif kind == "random-bytes":
            buf = bytearray(base)
            at = rng.randrange(0, head)
            length = rng.randint(1, 16)
            buf[at : at + length] = rng.randbytes(length)
            cases.append((f"random-bytes@{at}+{length}", bytes(buf)))
        elif kind == "bit-flip":
            buf = bytearray(base)
            flips = [rng.randrange(0, head * 8) for _ in range(rng.randint(1, 4))]
            for bit in flips:
                buf[bit // 8] ^= 1 << (bit % 8)
            cases.append((f"bit-flip@{','.join(map(str, flips))}", bytes(buf)))
        else:
            buf = bytearray(base)
            at = rng.choice([8, 16, 24]) if rng.random() < 0.5 else rng.randrange(0, head - 8)
            value = rng.choice([2**63, 2**64 - 1, 2**32, 2**40, 0xFFFFFFFF])
            buf[at : at + 8] = struct.pack("<Q", value)
            cases.append((f"huge-count@{at}={value}", bytes(buf)))
    return cases


def run_case(name: str, data: bytes, workdir: Path, timeout: float = 60.0) -> tuple[str, str]:
    """('ok' | 'rejected' | 'crash' | 'hang' | 'error', detail)."""
    fd, tmp = tempfile.mkstemp(suffix=".gguf", dir=workdir)
    path = Path(tmp)
    with open(fd, "wb") as f:
        f.write(data)
    try:
        return run_loader(LOADER, path, name, timeout)
    finally:
        path.unlink(missing_ok=True)


def fuzz(base: bytes, head: int, n: int, seed: int, jobs: int) -> tuple[Counter[str], list[str]]:
    with tempfile.TemporaryDirectory(prefix="negtemp-fuzz-") as tmp:
        return tally(lambda c: run_case(c[0], c[1], Path(tmp)), mutations(base, head, n, seed), jobs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="number of cases (default 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--semantic", action="store_true", help="hostile meaning in well-formed files (see above)")
    args = ap.parse_args(argv)
    if args.semantic:
        counts, failures = semantic_fuzz(args.n, args.seed, args.jobs)
        print(f"fuzz_gguf --semantic: {args.n} cases: {dict(sorted(counts.items()))}")
        for f in failures[:20]:
            print("FAIL", f)
        return 1 if failures else 0
    from scripts.tiny_model import write_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_llama(Path(tmp) / "base.gguf")
        base, head = path.read_bytes(), header_size(path)
    counts, failures = fuzz(base, head, args.n, args.seed, args.jobs)
    print(f"fuzz_gguf: {args.n} cases: {dict(counts)}")
    for f in failures[:20]:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
