"""Side-by-side speed figures for negtemp on this machine, in one run.

Prints: sampler cost per token at 49,152 and 262,144 vocabularies (fused
sampler, llama.cpp's chain, the backend graph, the NumPy reference), and
end-to-end generate throughput on SmolLM2-135M and gemma-3-270m with each
sampling path, plus each model's peak RSS, and the batched temperature sweep
against sequential calls. Medians of --reps runs. Not measured here:
llama-bench and llama.cpp's CLI, which negtemp's build does not compile.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import negtemp
from negtemp import reference

RSS_PROBE = (
    "import resource, sys, negtemp\n"
    "m = negtemp.Model(sys.argv[1], n_ctx=512, n_threads=int(sys.argv[2]))\n"
    "m.generate('Temperature is a concept', -0.001, seed=1, n_predict=128, ignore_eos=True)\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
)


def median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sampler_table(reps: int) -> None:
    print("sampler cost per token (us), T = -1")
    print(f"{'vocab':>8} {'fused':>9} {'chain':>9} {'backend':>9} {'numpy':>9}")
    rng = np.random.default_rng(0)
    for n in (49_152, 262_144):
        z = rng.normal(0, 3, n).astype(np.float32)
        draws = 50
        fused = median_time(lambda: negtemp.sample_tokens(z, -1.0, n=draws, seed=1, path="fused"), reps) / draws
        chain = median_time(lambda: negtemp.sample_tokens(z, -1.0, n=draws, seed=1, path="cpu"), reps) / draws
        backend = median_time(lambda: negtemp.sampler_probs(z, -1.0, path="backend"), reps)
        ref = median_time(lambda: rng.choice(n, p=reference.probs(z, -1.0)), reps)
        print(f"{n:>8} {fused * 1e6:>9.0f} {chain * 1e6:>9.0f} {backend * 1e6:>9.0f} {ref * 1e6:>9.0f}")
    print("  (backend: one graph build + compute on the CPU backend, set-up included)\n")


def generate_table(models: list[str], threads: int, reps: int, n_predict: int) -> None:
    print(f"generate, {n_predict} tokens, T = -0.001, {threads} threads (tokens/s, median of {reps})")
    print(f"{'model':>14} {'fused':>8} {'chain':>8} {'backend':>8} {'peak RSS MB':>12} {'file MB':>8}")
    for name in models:
        path = negtemp.models.pull(name)
        with negtemp.Model(path, n_ctx=512, n_threads=threads) as m:
            m.generate("Temperature is a concept", -0.001, seed=1, n_predict=16)
            rates = {}
            for label, kw in (("fused", {}), ("chain", {"fused": False}), ("backend", {"backend_sampling": True})):
                def run() -> None:
                    m.complete("Temperature is a concept", -0.001, seed=1, n_predict=n_predict, ignore_eos=True, **kw)
                rates[label] = n_predict / median_time(run, reps)
        rss = float(subprocess.run([sys.executable, "-c", RSS_PROBE, str(path), str(threads)],
                                   capture_output=True, text=True, check=True).stdout)
        size = path.stat().st_size / 2**20
        print(f"{name:>14} {rates['fused']:>8.1f} {rates['chain']:>8.1f} {rates['backend']:>8.1f} {rss:>12.0f} {size:>8.0f}")


def sweep_table(model: str, threads: int, reps: int, n_predict: int) -> None:
    print(f"\nsweep on {model}, {n_predict} tokens per temperature (tokens/s summed over sequences)")
    print(f"{'K':>3} {'sweep':>8} {'sequential':>11} {'ratio':>6}")
    temps = [-1.0, -0.001, 0.001, 1.0, -0.5, 0.5, -2.0, 2.0]
    with negtemp.Model(model, n_ctx=2048, n_threads=threads) as m:
        for k in (1, 2, 4, 8):
            ts = temps[:k]
            batched = median_time(lambda: m.sweep("Temperature is a concept", ts, n_predict=n_predict, seed=1,
                                                  ignore_eos=True), reps)
            sequential = median_time(lambda: [m.complete("Temperature is a concept", t, n_predict=n_predict, seed=1,
                                                         ignore_eos=True) for t in ts], reps)
            total = k * n_predict
            print(f"{k:>3} {total / batched:>8.1f} {total / sequential:>11.1f} {sequential / batched:>6.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", "--n-predict", type=int, default=128)
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    args = ap.parse_args(argv)
    print(f"negtemp bench on {platform.machine()}, {platform.processor() or 'cpu'}; {negtemp.__version__}\n")
    sampler_table(args.reps)
    generate_table(args.models.split(","), args.threads, args.reps, args.n_predict)
    sweep_table(args.models.split(",")[0], args.threads, args.reps, args.n_predict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
