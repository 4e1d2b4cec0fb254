"""Which CPU code runs: a native build's own, or in a portable build the best of ggml's CPU variants
for this CPU and the widest of the fused sampler's clones (src/native/backends.cpp, fused_sampler.cpp).

The portable tests run against the wheel (scripts/check_wheel.py --tests); a native build skips them,
as it skips the Vulkan tests, and runs the one test of its own.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import negtemp
from negtemp import _native

BIN = Path(negtemp.__file__).resolve().parent / "bin"
portable = pytest.mark.skipif(not _native.portable(), reason="a native build has one CPU backend, linked in")


def in_child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def cpu_variants() -> dict[str, Path]:
    return {p.name[len("libggml-cpu-"):-len(".so")]: p for p in BIN.glob("libggml-cpu-*.so")}


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_system_info_begins_with_the_cpu_backend_and_the_fused_samplers_target():
    assert negtemp.system_info().splitlines()[0] == (
        f"negtemp: CPU backend {_native.cpu_backend()}; fused sampler {_native.fused_target()}")


@pytest.mark.skipif(_native.portable(), reason="a portable build has variants to choose from")
def test_a_native_build_refuses_a_cpu_variant_it_cannot_offer():
    r = in_child("import negtemp", NEGTEMP_CPU_VARIANT="x64")
    assert r.returncode != 0 and "built with one CPU backend" in r.stderr, r.stderr[-500:]


@portable
def test_a_portable_build_loads_the_highest_scoring_cpu_variant():
    # each variant scores this CPU by the instruction sets it needs (0: cannot run here), which is
    # all that loading one runs; ggml's loader keeps the highest
    scores = {name: ctypes.CDLL(str(path)).ggml_backend_score() for name, path in cpu_variants().items()}
    best = max(scores, key=lambda name: scores[name])
    assert _native.cpu_backend() == f"libggml-cpu-{best}.so, loaded at run time", scores


@portable
def test_the_wheel_ships_the_baseline_variant_and_leaves_out_amx():
    # cmake/portable.cmake: AMX's variant would be chosen where a VM reports AMX and traps it (cmake/amx.cmake)
    assert "x64" in cpu_variants() and "sapphirerapids" not in cpu_variants(), sorted(cpu_variants())


@portable
def test_negtemp_cpu_variant_runs_the_variant_it_names_with_the_same_logits(tiny_path, tiny):
    code = ("import sys, numpy as np, negtemp; from negtemp import _native; print(_native.cpu_backend()); "
            "m = negtemp.Model(sys.argv[1], n_ctx=256, n_threads=2); "
            "np.save(sys.argv[2], m.logits(m.tokenize('Once upon a')))")
    out = tiny_path.parent / "x64-logits.npy"
    r = subprocess.run([sys.executable, "-c", code, str(tiny_path), str(out)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "NEGTEMP_CPU_VARIANT": "x64"})
    assert r.returncode == 0, r.stderr[-1000:]
    assert r.stdout.splitlines()[0] == "libggml-cpu-x64.so, loaded at run time"
    np.testing.assert_allclose(np.load(out), tiny.logits(tiny.tokenize("Once upon a")), atol=1e-3, rtol=0)


@portable
def test_an_unknown_cpu_variant_is_refused_naming_the_variants_there():
    r = in_child("import negtemp", NEGTEMP_CPU_VARIANT="pentium")
    assert r.returncode != 0
    assert "NEGTEMP_CPU_VARIANT=pentium: no such CPU variant" in r.stderr and "haswell" in r.stderr, r.stderr[-500:]


@portable
def test_the_fused_sampler_runs_the_widest_clone_this_cpu_allows():
    flags = cpu_flags()
    v3 = {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    level = "x86-64-v4" if v4 else "x86-64-v3" if v3 else "x86-64"
    assert _native.fused_target() == f"{level}, chosen at load time"
