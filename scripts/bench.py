"""Side-by-side speed figures for negtemp against llama.cpp's own tools, in one run.

Builds llama-bench, llama-completion and llama-batched-bench from the same patched llama.cpp tree
and flags as negtemp's extension (scripts/llama_tools.py, cached in
build/tools/), then prints, with medians of --reps runs on this machine:

  1. sampler cost per token at 49,152 and 262,144 vocabularies: negtemp's
     fused sampler, llama.cpp's chain (temperature + dist), the backend
     sampler graph computed standalone, and the NumPy reference;
  2. end-to-end Model.complete throughput (128 tokens, T = -0.001) on
     SmolLM2-135M and gemma-3-270m for each sampling path, against
     llama-bench decode, llama-completion running the same chain, and
     llama-cpp-python when it is importable; the per-token time each path
     adds to llama-bench's decode; peak RSS against file + KV cache;
  3. the batched temperature sweep against K sequential calls, and
     llama-batched-bench's batched decode as the ceiling; then K draws of one
     prompt (Model.draws, T = -1) against K sequential complete() calls, with
     the same ceiling;
  3c. many prompts: 32 different prompts (5 to 40 tokens), 32 tokens each at
     T = -1, as one Model.batch against 32 sequential complete() calls, with
     llama-batched-bench's speed-up at 32 sequences as the ceiling; the same
     through `negtemp batch` (JSONL); the batch's memory; and the experiment's
     draws (part 2) as a sweep a prompt against one batch;
  3b. prefix reuse: a 10-turn chat over a 1,000-token history, and the
     experiment's prompt set (a 4-temperature sweep each), with the prefix
     cache against without it, and the cache's memory;
  4. ggml's threads: llama-bench decode built with ggml's own thread pool
     (negtemp's default, fork-safe) against an OpenMP build, at -t 1 and -t 2,
     idle and while another process keeps one core busy (--no-threads skips it:
     the OpenMP build of llama-bench takes about 2 more minutes the first time);
  5. the speed targets, met or missed;
  6. what vetting (negtemp.vetting) adds to loading an unfamiliar copy of each
     model: the first load runs the child-process probe, later loads read its
     cached verdict;
  7. `negtemp serve` (llama-server from the patched tree) on the first model:
     requests/s and tokens/s for 1, 4 and 8 concurrent clients at T = -0.001
     against as many sequential negtemp.generate calls (--no-serve skips it);
  8. with --rpc: each model split over 1 and 2 `negtemp rpc-server`
     processes on loopback (this machine keeping an equal share of the
     layers), tokens/s against the local model, and the load time;
  9. with --wheel: the portable wheel installed in a virtual environment
     (scripts/check_wheel.py makes build/wheel-venv) against this
     environment's negtemp (a native source build): generate tokens/s and the
     fused sampler at 262,144 tokens, each in its own process, and llama-bench
     decode from the portable build (build/portable, made by build_wheel) beside the wheel's
     backends; with ggml's best CPU variant for this CPU and with lower ones
     forced (NEGTEMP_CPU_VARIANT; for llama-bench, a directory holding only that
     variant), so the drop the variant selection saves shows. `--only wheel`
     runs this table alone.

Needs cmake, ninja and a compiler (as the install does), the models (fetched
on first use) and the `gguf` package (in the test extra). About 6 minutes on a
2-core machine with nothing built (measured 353 s), 4 once the tools are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import negtemp
from negtemp import reference
from negtemp.gguf_check import check_gguf
from scripts import llama_tools, llama_tree

PROMPT = "Temperature is a concept"
TEMP = -0.001
SEED = 1

RSS_PROBE = """
import resource, sys, negtemp
m = negtemp.Model(sys.argv[1], n_ctx=512, n_threads=int(sys.argv[2]))
m.complete(sys.argv[3], float(sys.argv[4]), seed=1, n_predict=int(sys.argv[5]), ignore_eos=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

# llama-cpp-python in its own process: it carries its own libllama, which must not meet ours.
# Its chain at T < 0 is not temperature (it special-cases T < 0), so it runs at +|T| with every
# other sampler neutral: temperature + dist, the same cost as ours.
LCP_PROBE = """
import statistics, sys, time
from llama_cpp import Llama
path, threads, prompt, temp, n, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
llm = Llama(model_path=path, n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
rates = []
for _ in range(reps + 1):
    t = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=n, temperature=abs(temp), top_k=0, top_p=1.0, min_p=0.0,
                                typical_p=1.0, repeat_penalty=1.0, seed=1)
    rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
print(statistics.median(rates[1:]))
"""


# One measurement in a process of the Python given (the wheel's or this one): generate tokens/s and the
# fused sampler's time per draw over 262,144 logits, with the CPU code that runs.
BUILD_PROBE = """
import json, sys, time
import numpy as np
import negtemp
from negtemp import _native
path, threads, prompt, temp, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
with negtemp.Model(path, n_ctx=512, n_threads=threads) as m:
    m.complete(prompt, temp, seed=1, n_predict=16)
    t = time.perf_counter()
    m.complete(prompt, temp, seed=1, n_predict=n, ignore_eos=True)
    rate = n / (time.perf_counter() - t)
z = np.random.default_rng(0).normal(0, 3, 262_144).astype(np.float32)
negtemp.sample_tokens(z, -1.0, n=10, seed=1, path="fused")
t = time.perf_counter()
negtemp.sample_tokens(z, -1.0, n=200, seed=1, path="fused")
fused = (time.perf_counter() - t) / 200
print(json.dumps({"cpu": _native.cpu_backend(), "fused_target": _native.fused_target(), "generate": rate,
                  "fused_us": fused * 1e6}))
"""


def median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if res.returncode != 0:
        raise SystemExit(f"bench: {Path(cmd[0]).name} failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    return res


def sampler_table(reps: int) -> dict[int, dict[str, float]]:
    print("1. sampler cost per token (us), T = -1")
    print(f"{'vocab':>8} {'fused':>8} {'chain':>8} {'backend':>8} {'numpy':>8}")
    rng = np.random.default_rng(0)
    out = {}
    for n in (49_152, 262_144):
        z = rng.normal(0, 3, n).astype(np.float32)
        draws = 100
        row = {
            "fused": median_time(lambda: negtemp.sample_tokens(z, -1.0, n=draws, seed=1, path="fused"), reps) / draws,
            "chain": median_time(lambda: negtemp.sample_tokens(z, -1.0, n=draws, seed=1, path="chain"), reps) / draws,
            "backend": median_time(lambda: negtemp.sampler_probs(z, -1.0, path="backend"), reps),
            "numpy": median_time(lambda: rng.choice(n, p=reference.probs(z, -1.0)), reps),
        }
        out[n] = row
        print(f"{n:>8} " + " ".join(f"{row[k] * 1e6:>8.0f}" for k in ("fused", "chain", "backend", "numpy")))
    print("   backend here: one graph built, allocated and computed on 1 CPU thread per call;\n"
          "   its cost inside generation is in table 2.\n")
    return out


def llama_bench(exe: Path, model: Path, threads: int, n: int) -> float:
    """One llama-bench decode run of n tokens: tokens/s."""
    res = run([str(exe), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(n), "-r", "1", "-o", "json"])
    return float(json.loads(res.stdout)[0]["avg_ts"])


def llama_completion(exe: Path, model: Path, threads: int, n: int) -> tuple[float, float]:
    """One llama-completion run: (tokens/s over its own total time, its sampling ms per token)."""
    res = run([str(exe), "-m", str(model), "-p", PROMPT, "-n", str(n), "--temp", str(TEMP), "--seed", str(SEED),
               "--samplers", "temperature", "-t", str(threads), "-no-cnv", "--ignore-eos", "--no-display-prompt"])
    total = float(re.search(r"total time =\s*([\d.]+) ms", res.stderr).group(1))
    sampling = float(re.search(r"sampling time =\s*([\d.]+) ms", res.stderr).group(1))
    return n / (total / 1e3), sampling / n


def llama_cpp_python(model: Path, threads: int, n: int, reps: int) -> float | None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return None
    res = run([sys.executable, "-c", LCP_PROBE, str(model), str(threads), PROMPT, str(TEMP), str(n), str(reps)])
    return float(res.stdout)


def kv_cache_mb(model: Path, n_cells: int) -> float:
    """f16 K and V for n_cells positions, from the GGUF's hyperparameters."""
    import gguf

    r = gguf.GGUFReader(model)
    arch = str(r.fields["general.architecture"].contents())

    def meta(key: str) -> int:
        return int(r.fields[f"{arch}.{key}"].contents())

    n_head = meta("attention.head_count")
    n_head_kv = meta("attention.head_count_kv") if f"{arch}.attention.head_count_kv" in r.fields else n_head
    head_dim = (meta("attention.key_length") if f"{arch}.attention.key_length" in r.fields
                else meta("embedding_length") // n_head)
    return 2 * meta("block_count") * n_cells * n_head_kv * head_dim * 2 / 2**20


def generate_table(models: list[str], tools: dict[str, Path], threads: int, reps: int, n: int) -> list[dict]:
    print(f"2. generate: {n} tokens, T = {TEMP}, {threads} threads (tokens/s, median of {reps})")
    rows = []
    for name in models:
        path = negtemp.registry.pull(name)
        with negtemp.Model(path, n_ctx=512, n_threads=threads) as m:
            m.complete(PROMPT, TEMP, seed=SEED, n_predict=16)

            def ours(**kw) -> float:
                return n / median_time(lambda: m.complete(PROMPT, TEMP, seed=SEED, n_predict=n, ignore_eos=True, **kw), 1)

            cli_sampling: list[float] = []

            def cli() -> float:
                rate, sampling = llama_completion(tools["llama-completion"], path, threads, n)
                cli_sampling.append(sampling)
                return rate

            measures = {
                "fused": ours,
                "chain": lambda: ours(path="chain"),
                "backend": lambda: ours(path="backend"),
                "llama-bench": lambda: llama_bench(tools["llama-bench"], path, threads, n),
                "cli": cli,
            }
            # round-robin, so that drift in the machine's speed hits every column alike
            samples: dict[str, list[float]] = {k: [] for k in measures}
            for _ in range(reps):
                for key, measure in measures.items():
                    samples[key].append(measure())
            row: dict = {"model": name, **{k: statistics.median(v) for k, v in samples.items()}}
            row["cli_sampling_ms"] = statistics.median(cli_sampling)
            n_cells = len(m.tokenize(PROMPT)) + n
        row["llama-cpp-python"] = llama_cpp_python(path, threads, n, reps)
        row["rss"] = float(run([sys.executable, "-c", RSS_PROBE, str(path), str(threads), PROMPT, str(TEMP),
                                str(n)]).stdout)
        row["file"] = path.stat().st_size / 2**20
        row["kv"] = kv_cache_mb(path, -(-n_cells // 256) * 256)  # llama.cpp pads the cache to 256 cells
        rows.append(row)

    print(f"{'model':>14} {'fused':>7} {'chain':>7} {'backend':>8} {'llama-bench':>12} {'llama-completion':>17} "
          f"{'llama-cpp-py':>13}")
    for r in rows:
        lcp = f"{r['llama-cpp-python']:>13.1f}" if r["llama-cpp-python"] else f"{'(not installed)':>13}"
        print(f"{r['model']:>14} {r['fused']:>7.1f} {r['chain']:>7.1f} {r['backend']:>8.1f} {r['llama-bench']:>12.1f} "
              f"{r['cli']:>17.1f} {lcp}")
    print("   ratios of negtemp (fused) to: llama-bench decode, llama-completion (same chain), llama-cpp-python")
    for r in rows:
        lcp = f"{r['fused'] / r['llama-cpp-python']:.2f}" if r["llama-cpp-python"] else "-"
        print(f"{r['model']:>14}   {r['fused'] / r['llama-bench']:.3f}   {r['fused'] / r['cli']:.2f}   {lcp}")
    print("   ms per token added to llama-bench's decode (sampling, Python, context set-up, prompt):")
    for r in rows:
        base = 1e3 / r["llama-bench"]
        added = "  ".join(f"{k} {1e3 / r[k] - base:+.2f}" for k in ("fused", "chain", "backend"))
        print(f"{r['model']:>14}   {added}   (llama-completion's sampling alone: {r['cli_sampling_ms']:.2f})")
    print("   peak RSS of a process that loads the model and generates (MB):")
    for r in rows:
        print(f"{r['model']:>14}   {r['rss']:.0f} = file {r['file']:.0f} + KV {r['kv']:.1f} "
              f"+ {r['rss'] - r['file'] - r['kv']:.0f}")
    print()
    return rows


def batched_bench(exe: Path, model: Path, threads: int, n_prompt: int, n: int, ks: list[int]) -> dict[int, float]:
    """llama.cpp's own batched decode (prompt shared, as in a sweep): {K: generated tokens/s summed}."""
    res = run([str(exe), "-m", str(model), "-c", str(max(ks) * (n_prompt + n) + 256), "-npp", str(n_prompt),
               "-ntg", str(n), "-npl", ",".join(map(str, ks)), "-pps", "-t", str(threads), "--output-format", "jsonl"])
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return {int(r["pl"]): float(r["speed_tg"]) for r in rows}


def sweep_table(model: str, tools: dict[str, Path], threads: int, reps: int, n: int) -> tuple[dict, dict]:
    print(f"3. sweep on {model}, {n} tokens per temperature (tokens/s summed over sequences)")
    temps = [-1.0, -0.001, 0.001, 1.0, -0.5, 0.5, -2.0, 2.0]
    ks = [1, 2, 4, 8]
    ratios = {}
    path = negtemp.registry.pull(model)
    with negtemp.Model(path, n_ctx=2048, n_threads=threads) as m:
        n_prompt = len(m.tokenize(PROMPT))
        ceiling = batched_bench(tools["llama-batched-bench"], path, threads, n_prompt, n, ks)
        print(f"{'K':>3} {'sweep':>8} {'sequential':>11} {'ratio':>6}   {'llama-batched-bench':>20} {'its ratio':>10}")
        for k in ks:
            ts = temps[:k]
            times: dict[str, list[float]] = {"batched": [], "sequential": []}
            for _ in range(reps):  # alternating, so drift hits both alike
                times["batched"].append(
                    median_time(lambda: m.sweep(PROMPT, ts, n_predict=n, seed=SEED, ignore_eos=True), 1))
                times["sequential"].append(median_time(
                    lambda: [m.complete(PROMPT, t, n_predict=n, seed=SEED, ignore_eos=True) for t in ts], 1))
            batched, sequential = statistics.median(times["batched"]), statistics.median(times["sequential"])
            ratios[k] = sequential / batched
            print(f"{k:>3} {k * n / batched:>8.1f} {k * n / sequential:>11.1f} {ratios[k]:>6.2f}   "
                  f"{ceiling[k]:>20.1f} {ceiling[k] / ceiling[1]:>10.2f}")
    print("   llama-batched-bench: llama.cpp's own batched decode of K sequences (decode only, no sampling),\n"
          "   the ceiling for a sweep on this machine.\n")
    return ratios, ceiling


def draws_table(model: str, threads: int, reps: int, n: int, ceiling: dict[int, float]) -> dict[int, float]:
    print(f"3. draws on {model}: K draws at T = -1, {n} tokens each (tokens/s summed over draws)")
    ratios = {}
    with negtemp.Model(negtemp.registry.pull(model), n_ctx=2048, n_threads=threads) as m:
        print(f"{'K':>3} {'draws':>8} {'sequential':>11} {'ratio':>6}   {'llama-batched-bench ratio':>26}")
        for k in (1, 2, 4, 8):
            times: dict[str, list[float]] = {"batched": [], "sequential": []}
            for _ in range(reps):  # alternating, so drift hits both alike
                times["batched"].append(median_time(
                    lambda k=k: m.draws(PROMPT, -1.0, n=k, n_predict=n, seed=SEED, ignore_eos=True), 1))
                times["sequential"].append(median_time(
                    lambda k=k: [m.complete(PROMPT, -1.0, n_predict=n, seed=SEED + i, ignore_eos=True)
                                 for i in range(k)], 1))
            batched, sequential = statistics.median(times["batched"]), statistics.median(times["sequential"])
            ratios[k] = sequential / batched
            print(f"{k:>3} {k * n / batched:>8.1f} {k * n / sequential:>11.1f} {ratios[k]:>6.2f}   "
                  f"{ceiling[k] / ceiling[1]:>26.2f}")
    print("   sequential: K complete() calls with seeds SEED + i (each reusing the cached prompt).\n")
    return ratios


# 32 different prompts of 5 to 40 tokens (SmolLM2's tokenizer): continuous batching's test case
BATCH_PROMPTS = [" ".join(["Temperature", "is", "a", "concept", "from", "physics", "that", "describes", "how", "hot",
                           "or", "cold", "a", "system", "is"][: 5 + (i * 7) % 11]) + " and why" * (i % 13)
                 for i in range(32)]

BATCH_RSS_PROBE = """
import json, resource, sys, negtemp
path, threads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
prompts = json.loads(sys.argv[4])
m = negtemp.Model(path, n_ctx=512, n_threads=threads)
m.complete(prompts[0], -1.0, seed=1, n_predict=n, ignore_eos=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
m.batch(prompts, -1.0, seed=1, n_predict=n, ignore_eos=True)
print(json.dumps({"before": before, "after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def batch_table(model: str, tools: dict[str, Path], threads: int, reps: int, n: int = 32) -> dict[str, float]:
    """Many prompts: Model.batch and `negtemp batch` against sequential complete() calls, llama-batched-bench's
    ceiling at the same parallelism, the batch's memory, and the experiment's part 2 before and after."""
    k = len(BATCH_PROMPTS)
    path = negtemp.registry.pull(model)
    print(f"3c. {k} different prompts on {model}, {n} tokens each at T = -1, {k} sequences together")
    with negtemp.Model(path, n_ctx=512, n_threads=threads, prefix_cache=0) as m:
        lengths = [len(m.tokenize(p)) for p in BATCH_PROMPTS]
        kv_per_token = m._native.kv_bytes_per_token if m._native else 0
        n_vocab = m.n_vocab
        m.batch(BATCH_PROMPTS[:4], -1.0, seed=SEED, n_predict=4, ignore_eos=True)  # warm-up
        times: dict[str, list[float]] = {"batch": [], "sequential": []}
        for _ in range(reps):  # alternating, so drift hits both alike
            times["batch"].append(median_time(
                lambda: m.batch(BATCH_PROMPTS, -1.0, seed=SEED, n_predict=n, ignore_eos=True), 1))
            times["sequential"].append(median_time(
                lambda: [m.complete(p, -1.0, seed=SEED, n_predict=n, ignore_eos=True) for p in BATCH_PROMPTS], 1))
    batch_t, seq_t = statistics.median(times["batch"]), statistics.median(times["sequential"])
    n_prompt = round(statistics.mean(lengths))
    res = run([str(tools["llama-batched-bench"]), "-m", str(path), "-c", str(k * (max(lengths) + n) + 256),
               "-npp", str(n_prompt), "-ntg", str(n), "-npl", f"1,{k}", "-t", str(threads), "--output-format",
               "jsonl"])
    bench = {int(r["pl"]): float(r["t"]) for r in (json.loads(line) for line in res.stdout.splitlines()
                                                    if line.startswith("{"))}
    ceiling = k * bench[1] / bench[k]
    ours = seq_t / batch_t
    print(f"   prompts of {min(lengths)} to {max(lengths)} tokens (mean {statistics.mean(lengths):.1f})")
    print(f"   Model.batch {batch_t:.2f} s, {k} sequential complete() {seq_t:.2f} s: {ours:.2f}x")
    print(f"   llama-batched-bench, {k} sequences of {n_prompt} + {n} tokens against one: {ceiling:.2f}x "
          f"(its prompts evaluated separately, no sampling)")
    print(f"   Model.batch's speed-up / the ceiling's: {ours / ceiling:.2f} (target >= 0.95); in time, Model.batch "
          f"{batch_t:.2f} s against llama-batched-bench's {bench[k]:.2f} s for its {k} sequences: "
          f"{bench[k] / batch_t:.2f} of its speed")

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in BATCH_PROMPTS), encoding="utf-8")
        cli_args = ["batch", str(src), "-o", str(out), "-m", str(path), "-t", str(threads), "-c", "512",
                    "--prefix-cache", "0", "--temp", "-1", "--seed", str(SEED), "-n", str(n), "--ignore-eos",
                    "--overwrite"]
        jsonl: list[float] = []
        library: list[float] = []

        def with_load() -> None:
            with negtemp.Model(path, n_ctx=512, n_threads=threads, prefix_cache=0) as m:
                m.batch(BATCH_PROMPTS, -1.0, seed=SEED, n_predict=n, ignore_eos=True)

        from negtemp.cli import main as cli_main
        for _ in range(reps):
            library.append(median_time(with_load, 1))
            jsonl.append(median_time(lambda: cli_main(cli_args), 1))
    lib_t, jsonl_t = statistics.median(library), statistics.median(jsonl)
    print(f"   negtemp batch (JSONL, in-process, model load included) {jsonl_t:.2f} s against Model + "
          f"Model.batch {lib_t:.2f} s: {jsonl_t / lib_t - 1:+.1%} (target within 5%)")

    cells = k * (max(lengths) + n)
    print(f"   memory of the batch: KV cache {k} x ({max(lengths)} + {n}) cells x {kv_per_token / 1024:.1f} KiB = "
          f"{cells * kv_per_token / 2**20:.1f} MiB; logits {k} rows x {n_vocab} x 4 B = "
          f"{k * n_vocab * 4 / 2**20:.1f} MiB (both scale with --parallel / parallel=)")
    probe = json.loads(run([sys.executable, "-c", BATCH_RSS_PROBE, str(path), str(threads), str(n),
                            json.dumps(BATCH_PROMPTS)]).stdout)
    print(f"   peak RSS: {probe['before']:.0f} MB after one complete(), {probe['after']:.0f} MB after the batch "
          f"(+{probe['after'] - probe['before']:.0f} MB)")

    from negtemp.experiment.run import DRAW_TEMPS, draw_tokens, varied_prompts
    prompts = varied_prompts(100)

    def before(m: negtemp.Model) -> None:
        # the experiment's part 2 as it ran before: a sweep and a one-token complete() per prompt
        for i, prompt in enumerate(prompts):
            m.sweep(prompt, list(DRAW_TEMPS), n_predict=16, seed=SEED + i)
            m.complete(prompt, 1.0, n_predict=1, keep_logits=True)

    def after(m: negtemp.Model) -> None:
        draw_tokens(m, prompts, 16, SEED, quiet=True)

    parts: dict[str, list[float]] = {"before": [], "after": []}
    with negtemp.Model(path, n_ctx=2048, n_threads=threads) as m:
        for _ in range(max(1, reps // 2)):
            parts["before"].append(median_time(lambda: before(m), 1))
            parts["after"].append(median_time(lambda: after(m), 1))
    b, a = statistics.median(parts["before"]), statistics.median(parts["after"])
    print(f"   the experiment's draws, 100 prompts x {len(DRAW_TEMPS)} temperatures x 16 tokens: a sweep a prompt "
          f"{b:.1f} s, one batch {a:.1f} s ({b / a:.2f}x; the batch also runs the seed check)\n")
    return {"ratio": ours, "ceiling": ceiling, "jsonl": jsonl_t / lib_t}


def chat_history(m: negtemp.Model, n_tokens: int) -> list[dict[str, str]]:
    """Earlier turns of a conversation, about n_tokens long under the model's template."""
    messages = [{"role": "system", "content": "You are a helpful assistant who answers at length."}]
    i = 0
    while len(m.tokenize(m.chat_prompt(messages) or "")) < n_tokens:
        messages.append({"role": "user", "content": f"Tell me something about the number {i}."})
        messages.append({"role": "assistant", "content": f"The number {i} is a number that comes after "
                         f"{i - 1} and before {i + 1}; people have written about it for centuries. " * 2})
        i += 1
    return messages


def prefix_table(model: str, threads: int, reps: int) -> dict[str, float]:
    """3b: the same calls with the prefix cache on and off, alternating; their time and the cache's memory."""
    from negtemp.experiment.run import DRAW_TEMPS, varied_prompts

    print(f"3b. prefix reuse on {model} (seconds, median of {reps}; 'on' keeps 4 prompts' KV cache)")
    path = negtemp.registry.pull(model)
    ratios: dict[str, float] = {}
    with negtemp.Model(path, n_ctx=2048, n_threads=threads, prefix_cache=4) as on, \
            negtemp.Model(path, n_ctx=2048, n_threads=threads, prefix_cache=0) as off:
        history = chat_history(on, 1000)
        n_history = len(on.tokenize(on.chat_prompt(history) or ""))

        def chat(m: negtemp.Model) -> None:
            messages = list(history)
            for turn in range(10):
                messages.append({"role": "user", "content": f"And what about {turn * 7}?"})
                reply = m.chat(messages, 0.7, seed=turn, n_predict=32)
                messages.append({"role": "assistant", "content": reply.text})

        # the experiment's part 2 on its first 100 prompts (a 4-temperature sweep each), 16 tokens a sequence
        prompts = varied_prompts(100)

        def experiment(m: negtemp.Model) -> None:
            for i, prompt in enumerate(prompts):
                m.sweep(prompt, list(DRAW_TEMPS), n_predict=16, seed=1 + i)

        print(f"{'workload':<52} {'off':>7} {'on':>7} {'ratio':>6}")
        for name, work in ((f"10-turn chat, {n_history}-token history, 32-token replies", chat),
                           ("experiment prompts: 100 x 4-temperature sweep, 16 tokens", experiment)):
            times: dict[str, list[float]] = {"on": [], "off": []}
            for _ in range(reps):
                times["off"].append(median_time(lambda: work(off), 1))
                times["on"].append(median_time(lambda: work(on), 1))
            t_off, t_on = statistics.median(times["off"]), statistics.median(times["on"])
            ratios[name] = t_off / t_on
            print(f"{name:<52} {t_off:>7.2f} {t_on:>7.2f} {t_off / t_on:>6.2f}")
        info = on.prefix_cache_info()
        print(f"   the cache: {info.capacity} cells (n_ctx), {info.bytes / 2**20:.0f} MiB of KV for {model}, "
              f"holding {info.prompts} prompts / {info.tokens} tokens at the end\n")
    return ratios


def targets(samplers: dict[int, dict[str, float]], rows: list[dict], sweep: dict[int, float],
            ceiling: dict[int, float], draws: dict[int, float]) -> None:
    print("5. targets")

    def line(ok: bool, text: str) -> None:
        print(f"   [{'met   ' if ok else 'MISSED'}] {text}")

    for r in rows:
        ratio = r["fused"] / r["llama-bench"]
        line(ratio >= 0.95, f"{r['model']}: generate / llama-bench decode = {ratio:.3f} (>= 0.95)")
    for r in rows:
        if r["model"] == "gemma3-270m":
            ratio = r["fused"] / r["cli"]
            line(ratio >= 1.2, f"gemma3-270m: generate / llama-completion = {ratio:.2f} (>= 1.2)")
    fused_262k = samplers[262_144]["fused"] * 1e3
    line(fused_262k <= 0.3, f"fused sampler at 262,144 tokens: {fused_262k:.3f} ms (<= 0.3)")
    vocab = {"smollm2-135m": 49_152, "gemma3-270m": 262_144}
    for r in rows:
        fused = samplers[vocab[r["model"]]]["fused"] * 1e3
        backend = 1e3 / r["backend"] - 1e3 / r["fused"] + fused
        line(backend <= 2 * fused, f"{r['model']}: backend sampling costs {backend:.2f} ms a token inside generate "
             f"(its time per token over the fused path's, plus the fused sampler's {fused:.3f}) (<= 2x fused)")
    line(sweep[8] >= 3.0, f"sweep K = 8: {sweep[8]:.2f}x 8 sequential calls (>= 3); llama.cpp's own batched "
         f"decode reaches {ceiling[8] / ceiling[1]:.2f}x here")
    line(draws[8] >= 0.95 * ceiling[8] / ceiling[1], f"draws K = 8: {draws[8]:.2f}x 8 sequential calls, against "
         f"llama.cpp's own batched decode's {ceiling[8] / ceiling[1]:.2f}x (>= 0.95 of it)")
    for r in rows:
        ratio = r["fused"] / r["llama-bench"]
        line(ratio >= 0.99, f"{r['model']}: generate (prompt cached) / llama-bench decode = {ratio:.3f} (>= 0.99)")
    for r in rows:
        extra = r["rss"] - r["file"] - r["kv"]
        line(extra < 150, f"{r['model']}: peak RSS {r['rss']:.0f} MB = file + KV + {extra:.0f} MB (< 150)")


def portable_llama_bench(wheel_bin: Path, variant: str | None, work: Path) -> Path:
    """llama-bench of the portable build, in a directory beside the wheel's backends (only `variant` of the CPU's)."""
    built = llama_tree.REPO / "build" / "portable" / "bin" / "llama-bench"
    if not built.exists():
        raise SystemExit("bench: no llama-bench in build/portable; run python -m scripts.build_wheel first")
    home = work / (variant or "best")
    home.mkdir(parents=True, exist_ok=True)
    for lib in wheel_bin.glob("lib*.so"):
        if variant is None or not lib.name.startswith("libggml-cpu-") or lib.name == f"libggml-cpu-{variant}.so":
            (home / lib.name).symlink_to(lib)
    # ggml looks for backends beside the executable (and in the working directory, which is the same)
    shutil.copy2(built, home / "llama-bench")
    return home / "llama-bench"


def wheel_table(venv: Path, models: list[str], tools: dict[str, Path], threads: int, reps: int, n: int,
                lower: tuple[str, ...] = ("haswell", "x64")) -> None:
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"bench: no virtual environment at {venv}; run python -m scripts.check_wheel first")
    wheel_bin = Path(run([str(python), "-c", "import negtemp, pathlib; print(pathlib.Path(negtemp.__file__).parent "
                          "/ 'bin')"]).stdout.strip())
    print(f"9. the portable wheel ({venv}) against this native build: {n} tokens, T = {TEMP}, {threads} threads; "
          f"medians of {reps}, round-robin")
    builds: dict[str, tuple[str, dict[str, str]]] = {"native": (sys.executable, {})}
    builds["wheel"] = (str(python), {})
    for v in lower:
        builds[f"wheel {v}"] = (str(python), {"NEGTEMP_CPU_VARIANT": v})
    with tempfile.TemporaryDirectory(prefix="negtemp-bench-") as tmp:
        benches = {"native": tools["llama-bench"], "wheel": portable_llama_bench(wheel_bin, None, Path(tmp))}
        for v in lower:
            benches[f"wheel {v}"] = portable_llama_bench(wheel_bin, v, Path(tmp))
        for name in models:
            path = negtemp.registry.pull(name)
            gen: dict[str, list[dict]] = {k: [] for k in builds}
            dec: dict[str, list[float]] = {k: [] for k in benches}
            for _ in range(reps):
                for key, (exe, env) in builds.items():
                    res = subprocess.run([exe, "-c", BUILD_PROBE, str(path), str(threads), PROMPT, str(TEMP), str(n)],
                                         capture_output=True, text=True, env={**os.environ, **env})
                    if res.returncode != 0:
                        raise SystemExit(f"bench: the {key} probe failed:\n{res.stderr[-2000:]}")
                    gen[key].append(json.loads(res.stdout))
                for key, exe in benches.items():
                    dec[key].append(llama_bench(exe, path, threads, n))
            print(f"   {name}")
            print(f"   {'build':>14} {'CPU backend':>44} {'generate':>9} {'/native':>8} {'llama-bench':>12} "
                  f"{'/native':>8} {'fused us':>9} {'fused target':>30}")
            base_gen = statistics.median(r["generate"] for r in gen["native"])
            base_dec = statistics.median(dec["native"])
            for key in builds:
                g = statistics.median(r["generate"] for r in gen[key])
                d = statistics.median(dec[key])
                f = statistics.median(r["fused_us"] for r in gen[key])
                last = gen[key][-1]
                print(f"   {key:>14} {last['cpu'][:44]:>44} {g:>9.1f} {g / base_gen:>8.3f} {d:>12.1f} "
                      f"{d / base_dec:>8.3f} {f:>9.0f} {last['fused_target'][:30]:>30}")
    print("   target: the wheel (best variant) within 5% of native on generate and llama-bench")


BUSY_LOOP = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass\n"


def threads_table(model: str, pool_bench: Path, reps: int, n: int) -> None:
    """llama-bench decode, ggml's thread pool against OpenMP, idle and with one core taken."""
    omp_bench = llama_tools.build(["llama-bench"], openmp=True, log=lambda m: print("   " + m, flush=True))["llama-bench"]
    path = negtemp.registry.pull(model)
    print(f"4. ggml threads on {model}: llama-bench decode, {n} tokens (tokens/s, median of {reps})")
    print(f"{'load':>12} {'threads':>8} {'pool':>8} {'openmp':>8} {'pool/openmp':>12}")
    for load in ("idle", "1 core busy"):
        busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if load != "idle" else None
        try:
            for t in (1, 2):
                pool, omp = [], []
                for _ in range(reps):  # interleaved, so drift hits both alike
                    pool.append(llama_bench(pool_bench, path, t, n))
                    omp.append(llama_bench(omp_bench, path, t, n))
                p, o = statistics.median(pool), statistics.median(omp)
                print(f"{load:>12} {t:>8} {p:>8.1f} {o:>8.1f} {p / o:>12.2f}")
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


def vetting_table(models: list[str], reps: int) -> None:
    """Load time of an unfamiliar copy of each model: unvetted, first vetted load (probe), later loads."""
    print(f"6. vetting an unfamiliar copy of each model: load time (s, median of {reps})")
    print(f"{'model':>14} {'vet=False':>10} {'first':>8} {'later':>8}   (first: child-process probe + load)")
    sources = {name: negtemp.registry.pull(name) for name in models}  # before the cache is pointed elsewhere
    saved = os.environ.get("NEGTEMP_CACHE")
    try:
        for name, src in sources.items():
            with tempfile.TemporaryDirectory(prefix="negtemp-bench-") as tmp:
                copy = Path(tmp) / src.name  # not the verified named model, so it is vetted
                shutil.copyfile(src, copy)
                times: dict[str, list[float]] = {"plain": [], "first": [], "later": []}
                for i in range(reps):
                    os.environ["NEGTEMP_CACHE"] = str(Path(tmp) / f"cache{i}")  # no verdict yet
                    for kind, vet in (("plain", False), ("first", True), ("later", True)):
                        started = time.perf_counter()
                        negtemp.Model(copy, n_threads=1, vet=vet).close()
                        times[kind].append(time.perf_counter() - started)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{name:>14} {med['plain']:>10.3f} {med['first']:>8.3f} {med['later']:>8.3f}")
    finally:
        if saved is None:
            os.environ.pop("NEGTEMP_CACHE", None)
        else:
            os.environ["NEGTEMP_CACHE"] = saved


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_table(model: str, threads: int, reps: int, n: int) -> None:
    """`negtemp serve` with K concurrent clients against K sequential Model.complete calls."""
    print(f"7. negtemp serve on {model}: K clients, one request each of {n} tokens at T = -0.001, "
          f"{threads} threads, median of {reps}")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "negtemp", "serve", "-m", model, "--port", str(port),
                             "-np", "8", "-c", str(n + 64), "-t", str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url:
            raise SystemExit(f"bench: negtemp serve did not start (exit {proc.wait()})")

        def request(i: int) -> int:
            body = json.dumps({"prompt": f"Temperature is a concept {i}", "temperature": -0.001, "max_tokens": n,
                               "ignore_eos": True, "seed": i}).encode()
            req = urllib.request.Request(f"{url}/completions", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                return int(json.load(r)["usage"]["completion_tokens"])

        print(f"{'K':>3} {'served req/s':>13} {'tok/s':>8}   {'sequential req/s':>17} {'tok/s':>8}   {'ratio':>6}")
        with negtemp.Model(model, n_ctx=n + 64, n_threads=threads) as m:
            for k in (1, 4, 8):
                served, sequential = [], []
                for _ in range(reps):
                    started = time.perf_counter()
                    with ThreadPoolExecutor(k) as pool:
                        tokens = sum(pool.map(request, range(k)))
                    served.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    for i in range(k):
                        m.complete(f"Temperature is a concept {i}", -0.001, n_predict=n, ignore_eos=True, seed=i)
                    sequential.append(time.perf_counter() - started)
                t_srv, t_seq = statistics.median(served), statistics.median(sequential)
                print(f"{k:>3} {k / t_srv:>13.2f} {tokens / t_srv:>8.1f}   {k / t_seq:>17.2f} {k * n / t_seq:>8.1f}"
                      f"   {t_seq / t_srv:>6.2f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc.stdout.close()
    print("   served: llama-server's parallel slots batch the K requests into one decode a step; sequential:\n"
          "   the same K requests one after another through negtemp.Model in this process.")


def start_rpc_server(threads: int) -> tuple[subprocess.Popen, str]:
    """`negtemp rpc-server` on a free loopback port, once it listens: the process and its endpoint."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "negtemp", "rpc-server", "--port", str(port), "-t", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"bench: negtemp rpc-server did not listen on port {port}")


def rpc_table(models: list[str], threads: int, reps: int, n: int) -> None:
    """Each model local and split over 1 and 2 RPC servers on loopback: decode tokens/s and load time."""
    print(f"8. split over llama.cpp RPC servers on loopback: {n} tokens at T = -0.001, {threads} threads here and "
          f"in each server, median of {reps}")
    print(f"{'model':<14} {'servers':>7} {'layers here':>11} {'load s':>7} {'tok/s':>7} {'vs local':>9}")
    servers = [start_rpc_server(threads) for _ in range(2)]
    try:
        for model in models:
            meta = check_gguf(negtemp.registry.resolve(model))
            total = int(meta[f"{meta['general.architecture']}.block_count"]) + 1  # type: ignore[call-overload]
            local_rate = None
            for k in (0, 1, 2):
                started = time.perf_counter()
                with negtemp.Model(model, n_ctx=n + 64, n_threads=threads,
                                   rpc=[e for _, e in servers[:k]]) as m:
                    load = time.perf_counter() - started
                    m.complete(PROMPT, TEMP, n_predict=8, seed=SEED)  # warm-up
                    times = []
                    for _ in range(reps):
                        t0 = time.perf_counter()
                        m.complete(PROMPT, TEMP, n_predict=n, seed=SEED, ignore_eos=True)
                        times.append(time.perf_counter() - t0)
                    rate = n / statistics.median(times)
                    here = total if k == 0 else total - m.n_gpu_layers
                local_rate = local_rate or rate
                print(f"{model:<14} {k:>7} {f'{here}/{total}':>11} {load:>7.2f} {rate:>7.1f} "
                      f"{rate / local_rate:>8.2f}x")
    finally:
        for proc, _ in servers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    print("   layers here: of the model's layers plus its output layer, those this process computes; the rest\n"
          "   are split evenly over the servers, each a separate process on this machine, so the figures show the\n"
          "   protocol's cost (one round trip per server per token, plus the activations) and not a speed-up.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", "--n-predict", type=int, default=128)
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--no-threads", action="store_true", help="skip the thread-pool against OpenMP table")
    ap.add_argument("--no-serve", action="store_true", help="skip the negtemp serve table")
    ap.add_argument("--no-prefix", action="store_true", help="skip the prefix reuse table (about 3 minutes a rep)")
    ap.add_argument("--wheel", type=Path, nargs="?", const=llama_tree.REPO / "build" / "wheel-venv",
                    help="add the portable wheel's table: the venv it is installed in (default build/wheel-venv)")
    ap.add_argument("--only", choices=["draws", "prefix", "wheel", "batch"],
                    help="only the tools' build and this table (with the ceiling it compares against)")
    ap.add_argument("--rpc", action="store_true", help="add the table of models split over RPC servers")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    started = time.perf_counter()
    print(f"negtemp {negtemp.__version__} bench on {platform.machine()} {platform.processor() or ''}, "
          f"{args.threads} threads\n{negtemp.system_info()}\n")
    tools = llama_tools.build(["llama-bench", "llama-completion", "llama-batched-bench"],
                              log=lambda m: print(m, flush=True))
    print()
    if args.only == "draws":
        path = negtemp.registry.pull(models[0])
        with negtemp.Model(path) as m:
            n_prompt = len(m.tokenize(PROMPT))
        ceiling = batched_bench(tools["llama-batched-bench"], path, args.threads, n_prompt, args.n_predict,
                                [1, 2, 4, 8])
        draws_table(models[0], args.threads, args.reps, args.n_predict, ceiling)
    if args.only == "prefix":
        prefix_table(models[0], args.threads, args.reps)
    if args.only == "batch":
        batch_table(models[0], tools, args.threads, args.reps)
    if args.only == "wheel":
        wheel_table(args.wheel or llama_tree.REPO / "build" / "wheel-venv", models, tools, args.threads, args.reps,
                    args.n_predict)
    if args.only:
        print(f"bench took {time.perf_counter() - started:.0f} s")
        return 0
    samplers = sampler_table(args.reps)
    rows = generate_table(models, tools, args.threads, args.reps, args.n_predict)
    sweep, ceiling = sweep_table(models[0], tools, args.threads, args.reps, args.n_predict)
    draws = draws_table(models[0], args.threads, args.reps, args.n_predict, ceiling)
    batch_table(models[0], tools, args.threads, args.reps)
    if not args.no_prefix:
        prefix_table(models[0], args.threads, max(1, args.reps // 2))
    if not args.no_threads:
        print()
        threads_table(models[0], tools["llama-bench"], args.reps, args.n_predict)
    if {"smollm2-135m", "gemma3-270m"} <= set(models):
        targets(samplers, rows, sweep, ceiling, draws)
    print()
    vetting_table(models, args.reps)
    if not args.no_serve:
        print()
        serve_table(models[0], args.threads, args.reps, args.n_predict)
    if args.rpc:
        print()
        rpc_table(models, args.threads, args.reps, args.n_predict)
    if args.wheel:
        print()
        wheel_table(args.wheel, models, tools, args.threads, args.reps, args.n_predict)
    print(f"\nbench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
