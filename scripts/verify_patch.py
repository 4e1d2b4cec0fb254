"""Verify the patch series against upstream llama.cpp, on a pristine tree.

  (a) every patch applies cleanly, in order (git apply --check);
  (b) unpatched, llama.cpp turns T < 0 into greedy argmax: the reason the patch exists;
  (c) patched, both sampling paths match negtemp.reference;
  (d) patched, llama.cpp's own llama-completion takes --temp -0.001 and draws
      the same text as negtemp for the same seed and chain (temperature + dist);
  (e) chains with top-k/top-p/min-p: unpatched, T < 0 with top-k is greedy (the
      most likely token); patched, both paths match negtemp.reference;
  (f) with --vulkan, on a Vulkan device (Mesa's lavapipe in CI): unpatched
      upstream's backend path is greedy at T < 0 there (built with only the
      patch that lets ggml-vulkan compile against older Vulkan headers), and
      the patched backend path of negtemp's own Vulkan build (which must be
      the negtemp imported) matches negtemp.reference, plain and with filters;
  (g) llama-server: unpatched, a request at temperature -0.001 is answered
      with the greedy text (the clamp patch 0008 removes) and malformed JSON
      with a 500; patched, the same request draws negtemp's text for the same
      seed and chain, and malformed JSON gets a 400.

Each tree is built once under build/verify/: the llama/ggml libraries and a
small driver, with llama-server in the unpatched tree and llama-completion in
the patched one, in one build directory per tree (llama and ggml compile twice
in all, not five times). The patched llama-server of (g) is the one the
installed negtemp runs (negtemp.serve.server_binary, built with the extension
from the same patched tree), so it is not compiled a second time here; should
the install have lost it, the patched tree builds it too.
Each tree sits in its build directory as the extension's does (prepare_tree),
so with ccache as CI runs it (.ci/run) the files the patches leave alone
compile once across the extension's build and these trees.
The --vulkan tree has only the libraries and the driver. With
--llama-cpp-python-version X it checks the llama.cpp that that
llama-cpp-python sdist vendors, so moving the pin starts with one command.
Needs negtemp installed (for negtemp.reference) and cmake.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

import negtemp
from negtemp import reference
from negtemp.serve import server_binary
from scripts import llama_tree

REPO = llama_tree.REPO
TEMPS = [-100.0, -1.0, -0.5, -0.001, -1e-30, 1e-30, 0.001, 0.5, 1.0, 100.0]


@dataclasses.dataclass(frozen=True)
class Tree:
    """One llama.cpp tree's build: the driver and, when built, llama.cpp's own programs."""

    driver: Path
    programs: dict[str, Path]


def prepare_tree(build_dir: Path, version: str, patches: list[Path] | None = None) -> Path:
    """The llama.cpp tree (patched with `patches`, default the whole series) for a build in build_dir.

    It sits inside its build directory, at build_dir/llama.cpp, as the extension's tree does in
    its build (CMakeLists.txt), so that each compile command here is the extension build's, file
    for file, relative to its directory: with a compiler cache keyed on relative paths (ccache
    with CCACHE_BASEDIR, as .ci/run sets it) a file the patches leave alone compiles once in all
    the builds, not once per tree.
    """
    return llama_tree.prepare(build_dir / "llama.cpp", version, patches)


def _build_env() -> dict[str, str]:
    """The environment with the compilers the extension's build uses: scikit-build-core gives CMake
    Python's sysconfig CC and CXX (their leading words, a wrapper kept) unless they are set, and a
    compiler cache keys on the compiler's path (gcc and cc are two entries)."""
    env = dict(os.environ)
    for key in ("CC", "CXX"):
        words = (sysconfig.get_config_var(key) or "").split()
        if key not in env and words:
            env[key] = " ".join(itertools.takewhile(lambda w: not w.startswith("-"), words))
    return env


def build_tree(build_dir: Path, programs: tuple[str, ...] = (), *cmake_args: str) -> Tree:
    """The driver plus `programs` (llama.cpp targets such as llama-server), from one build of llama and ggml
    of the tree prepare_tree() put in build_dir."""
    cfg = ["cmake", "-S", str(REPO / "scripts" / "verify"), "-B", str(build_dir), "-G", "Ninja",
           "-DCMAKE_BUILD_TYPE=Release", f"-DLLAMA_DIR={build_dir / 'llama.cpp'}",
           f"-DVERIFY_TOOLS={'ON' if programs else 'OFF'}", *cmake_args]
    env = _build_env()
    for cmd in (cfg, ["cmake", "--build", str(build_dir), "--target", "verify_driver", *programs]):
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(f"verify_patch: {' '.join(cmd[:2])} failed:\n{res.stdout[-3000:]}")
    # llama.cpp puts its programs in the top build's bin/ (CMAKE_RUNTIME_OUTPUT_DIRECTORY)
    return Tree(build_dir / "verify_driver", {name: build_dir / "bin" / name for name in programs})


def driver_probs(driver: Path, z: np.ndarray, temp: float, path: str, filters: tuple = ()) -> np.ndarray:
    """filters: () or (top_k, top_p, min_p)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "z.f32", Path(tmp) / "p.f64"
        z.astype(np.float32).tofile(src)
        subprocess.run([str(driver), repr(temp), path, str(src), str(dst), *map(str, filters)], check=True)
        return np.fromfile(dst, dtype=np.float64)


# (top_k, top_p, min_p): the examples and llama.cpp's defaults
CHAINS = [(50, 1.0, 0.0), (7, 1.0, 0.0), (0, 0.9, 0.0), (40, 0.95, 0.05)]


def upstream_is_greedy(step: str, upstream: Path, z: np.ndarray, temps: tuple, filters: tuple = (),
                       paths: tuple = ("chain", "backend")) -> bool:
    """Unpatched llama.cpp turns each T < 0 into greedy argmax on both paths: why the series exists."""
    greedy = np.zeros(z.size)
    greedy[np.argmax(z)] = 1.0
    ok = True
    for path in paths:
        for t in temps:
            if not np.array_equal(driver_probs(upstream, z, t, path, filters), greedy):
                ok = False
                print(f"({step}) FAIL: unpatched {path} path at T={t} (filters {filters}) is not greedy argmax "
                      "(did upstream change?)")
    if ok:
        print(f"({step}) unpatched: T in {temps} (filters {filters or 'none'}) gives the most likely token "
              f"on the {' and '.join(paths)} path{'s' if len(paths) > 1 else ''}, as expected")
    return ok


def check_chains(upstream: Path, patched: Path) -> bool:
    """(e): filters composed with T < 0, unpatched (greedy) and patched (the reference)."""
    z = np.random.default_rng(2).normal(0, 3, 49_152).astype(np.float32)
    ok = upstream_is_greedy("e", upstream, z, (-0.001, -0.5), (40, 1.0, 0.0))
    for path in ("chain", "backend"):
        worst = 0.0
        for top_k, top_p, min_p in CHAINS:
            config = negtemp.SamplingConfig(temp=1.0, top_k=top_k, top_p=top_p, min_p=min_p)
            for t in (-100.0, -1.0, -0.05, -0.001, -1e-30, 0.001, 1.0):
                want = reference.probs(z, config=dataclasses.replace(config, temp=t))
                d = float(np.abs(driver_probs(patched, z, t, path, (top_k, top_p, min_p)) - want).max())
                worst = max(worst, d)
                if not d <= 1e-6:
                    ok = False
                    print(f"(e) FAIL: patched {path} path differs from the reference by {d:.3g} at T={t}, "
                          f"top-k {top_k}, top-p {top_p}, min-p {min_p}")
        print(f"(e) patched {path} path with filters: max |p - reference| = {worst:.3g} over {len(CHAINS)} chains")
    return ok


def logits_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    masked = rng.normal(0, 3, 5000).astype(np.float32)
    masked[rng.random(5000) < 0.3] = -np.inf
    return [
        ("normal-49152", rng.normal(0, 3, 49_152).astype(np.float32)),
        ("normal-262144", rng.normal(0, 3, 262_144).astype(np.float32)),
        ("masked-5000", masked),
        ("large-4000", (rng.choice([-1, 1], 4000) * rng.uniform(0, 1e4, 4000)).astype(np.float32)),
    ]


def check_cli(exe: Path) -> bool:
    """(d): the patched llama-completion at T = -0.001 against negtemp's chain on SmolLM2, same seed."""
    model = negtemp.registry.pull("smollm2-135m")
    prompt, temp, seed, n = "Temperature is a concept", -0.001, 1, 24
    cmd = [str(exe), "-m", str(model), "-p", prompt, "-n", str(n), "--temp", str(temp),
           "--seed", str(seed), "--samplers", "temperature", "-t", "2", "-no-cnv", "--ignore-eos",
           "--no-display-prompt"]
    res = subprocess.run(cmd, capture_output=True)
    cli_text = res.stdout.decode("utf-8", errors="replace").rstrip("\n")
    with negtemp.Model(model) as m:
        ours = m.complete(prompt, temp, seed=seed, n_predict=n, ignore_eos=True, path="chain").text
        greedy = m.complete(prompt, 0.0, n_predict=n, ignore_eos=True).text
    if res.returncode != 0 or cli_text != ours or cli_text == greedy:
        print(f"(d) FAIL: llama-completion --temp {temp} (exit {res.returncode}) printed {cli_text!r}; "
              f"negtemp draws {ours!r}; greedy is {greedy!r}")
        return False
    print(f"(d) patched llama-completion --temp {temp} --seed {seed} draws negtemp's text: {cli_text[:48]!r}...")
    return True


def post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def ask_server(exe: Path, model: Path, requests: list[bytes]) -> list[tuple[int, dict]]:
    """Start exe on a free loopback port with the experiment's chain, send each request, stop it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [str(exe), "-m", str(model), "--port", str(port), "-np", "1", "-c", "256", "-t", "2",
           "--samplers", "temperature", "--no-webui"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None:
                    raise SystemExit(f"verify_patch: {exe} exited with {proc.returncode} while starting") from None
                time.sleep(0.2)
        return [post(f"http://127.0.0.1:{port}/v1/completions", body) for body in requests]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def check_server(upstream: Path, patched: Path) -> bool:
    """(g): upstream's server clamps T < 0 to greedy and calls malformed JSON a server error; patched, neither."""
    model = negtemp.registry.pull("smollm2-135m")
    prompt, n = "Temperature is a concept", 24

    def body(temp: float) -> bytes:
        return json.dumps({"prompt": prompt, "temperature": temp, "max_tokens": n, "seed": 1,
                           "ignore_eos": True}).encode()

    requests = [body(-0.001), body(0.0), b'{"prompt": "x",']
    (up_neg, up_greedy, up_bad), (pa_neg, _, pa_bad) = ask_server(upstream, model, requests), ask_server(
        patched, model, requests)
    with negtemp.Model(model) as m:
        ours = m.complete(prompt, -0.001, seed=1, n_predict=n, ignore_eos=True, path="chain").text
    text = [r[1]["choices"][0]["text"] if r[0] == 200 else None for r in (up_neg, up_greedy, pa_neg)]
    ok = True
    if text[0] != text[1] or up_bad[0] != 500:
        print(f"(g) FAIL: unpatched llama-server at T = -0.001 gave {text[0]!r} (greedy: {text[1]!r}) and "
              f"malformed JSON a {up_bad[0]} (did upstream change?)")
        ok = False
    else:
        print(f"(g) unpatched llama-server: temperature -0.001 gives the greedy text {text[1][:40]!r}..., "
              "malformed JSON a 500")
    if text[2] != ours or pa_bad[0] != 400:
        print(f"(g) FAIL: patched llama-server at T = -0.001 gave {text[2]!r}, negtemp draws {ours!r}; malformed "
              f"JSON got a {pa_bad[0]}")
        ok = False
    else:
        print(f"(g) patched llama-server ({patched}): temperature -0.001 draws negtemp's text {ours[:40]!r}..., "
              "malformed JSON a 400")
    return ok


def check_vulkan(version: str, work: Path, device: str = "Vulkan0") -> bool:
    """(f): upstream greedy and negtemp's patched build exact, on a Vulkan device."""
    if not any(d[0] == device for d in negtemp.devices()):
        print(f"(f) FAIL: the negtemp imported ({negtemp.__file__}) has no {device}: import a build made with "
              "CMAKE_ARGS=-DGGML_VULKAN=on, with GGML_VK_VISIBLE_DEVICES=0 for lavapipe")
        return False
    # upstream as it is, plus only the build fix for older Vulkan headers (it changes no sampling)
    build_fix = [p for p in llama_tree.patch_series() if "ggml-vulkan" in p.name]
    prepare_tree(work / "upstream-vulkan", version, build_fix)
    print("    building unpatched llama.cpp with Vulkan (llama + ggml + driver)...", flush=True)
    upstream = build_tree(work / "upstream-vulkan", (), "-DGGML_VULKAN=on").driver
    z = np.random.default_rng(1).normal(0, 3, 1000).astype(np.float32)
    ok = upstream_is_greedy("f", upstream, z, (-1.0, -0.5, -0.001), paths=(f"backend@{device}",))
    ok = upstream_is_greedy("f", upstream, z, (-0.001, -0.5), (40, 1.0, 0.0), paths=(f"backend@{device}",)) and ok
    worst = 0.0
    cases = [(name, zz, negtemp.SamplingConfig(temp=1.0)) for name, zz in logits_cases()]
    cases += [(f"top-k {k} top-p {p} min-p {m}", z, negtemp.SamplingConfig(temp=1.0, top_k=k, top_p=p, min_p=m))
              for k, p, m in CHAINS]
    for name, zz, config in cases:
        for t in TEMPS:
            c = dataclasses.replace(config, temp=t)
            got = negtemp.sampler_probs(zz, config=c, path="backend", device=device)
            d = float(np.abs(got - reference.probs(zz, config=c)).max())
            worst = max(worst, d)
            if not d <= 1e-6:
                ok = False
                print(f"(f) FAIL: patched backend path on {device} differs from the reference by {d:.3g} "
                      f"at T={t} on {name}")
    print(f"(f) patched backend path on {device}: max |p - reference| = {worst:.3g} over {len(cases)} cases "
          f"x {len(TEMPS)} temperatures")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-cpp-python-version", default=llama_tree.SDIST_VERSION,
                    help="take llama.cpp from this llama-cpp-python sdist "
                         f"(default: the pin, {llama_tree.SDIST_VERSION})")
    ap.add_argument("--vulkan", action="store_true",
                    help="run only (f), on Vulkan0; needs cmake with Vulkan SDK and a Vulkan build of negtemp")
    args = ap.parse_args(argv)
    version = args.llama_cpp_python_version
    work = REPO / "build" / "verify" / version
    if args.vulkan:
        ok = check_vulkan(version, work)
        print("verify_patch --vulkan: " + ("passes" if ok else "FAILED"))
        return 0 if ok else 1
    ok = True

    prepare_tree(work / "upstream", version, [])
    patches = llama_tree.patch_series()
    try:
        # in order, on a copy: each patch may build on the ones before it
        prepare_tree(work / "patched", version)
        print(f"(a) all {len(patches)} patches apply cleanly, in order, to llama.cpp from llama-cpp-python {version}")
    except llama_tree.TreeError as e:
        print(f"(a) FAIL: {e}")
        return 1

    print("    building the unpatched tree (llama, ggml, the driver, llama-server) and the patched one (llama, "
          "ggml, the driver, llama-completion), about 14 and 8 minutes on 2 cores without a compiler cache...",
          flush=True)
    try:
        shipped_server: Path | None = server_binary()
    except FileNotFoundError:
        shipped_server = None
    upstream_tree = build_tree(work / "upstream", ("llama-server",))
    patched_tree = build_tree(work / "patched",
                              ("llama-completion",) if shipped_server else ("llama-completion", "llama-server"))
    upstream, patched = upstream_tree.driver, patched_tree.driver

    z = np.random.default_rng(1).normal(0, 3, 1000).astype(np.float32)
    ok = upstream_is_greedy("b", upstream, z, (-1.0, -0.5, -0.001))

    for path in ("chain", "backend"):
        worst = 0.0
        for name, zz in logits_cases():
            for t in TEMPS:
                d = float(np.abs(driver_probs(patched, zz, t, path) - reference.probs(zz, t)).max())
                worst = max(worst, d)
                if not d <= 1e-6:
                    ok = False
                    print(f"(c) FAIL: patched {path} path differs from the reference by {d:.3g} at T={t} on {name}")
        print(f"(c) patched {path} path: max |p - reference| = {worst:.3g} over {len(TEMPS)} temperatures")

    ok = check_cli(patched_tree.programs["llama-completion"]) and ok
    ok = check_chains(upstream, patched) and ok
    ok = check_server(upstream_tree.programs["llama-server"],
                      shipped_server or patched_tree.programs["llama-server"]) and ok
    print("verify_patch: " + ("the series still applies and passes" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
