"""Fuzz negtemp's model loading with mutated GGUF files, each loaded in a subprocess.

Mutations of the tiny test model's header region: truncations, random bytes,
bit flips, and huge counts and lengths. Every case must end in a loaded model
or a negtemp.ModelLoadError with a reason: never a crash, a hang, or another
exception. Usage: python scripts/fuzz_gguf.py [-n 2000] [--seed 0] [-j 2]
"""

from __future__ import annotations

import argparse
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
        r = subprocess.run([sys.executable, "-c", LOADER, str(path)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", name
    finally:
        path.unlink(missing_ok=True)
    if r.returncode == 0:
        return "ok", name
    if r.returncode == 3 and r.stdout.startswith("rejected:") and len(r.stdout.strip()) > len("rejected:"):
        return "rejected", name
    if r.returncode < 0:
        return "crash", f"{name}: signal {-r.returncode}\n{r.stderr[-800:]}"
    return "error", f"{name}: exit {r.returncode}\n{r.stderr[-800:]}"


def fuzz(base: bytes, head: int, n: int, seed: int, jobs: int) -> tuple[Counter[str], list[str]]:
    counts: Counter[str] = Counter()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="negtemp-fuzz-") as tmp, ThreadPoolExecutor(jobs) as pool:
        cases = mutations(base, head, n, seed)
        for i, (outcome, detail) in enumerate(pool.map(lambda c: run_case(c[0], c[1], Path(tmp)), cases), 1):
            counts[outcome] += 1
            if outcome in ("crash", "hang", "error"):
                failures.append(detail)
            if i % 100 == 0:
                print(f"  {i}/{n}: {dict(counts)}", file=sys.stderr, flush=True)
    return counts, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="number of cases (default 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import write_tiny_llama

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
