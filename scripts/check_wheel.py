"""Install a built wheel where no compiler is, and check it as a new user would.

    python -m scripts.check_wheel [WHEEL] [--tests]

1. A fresh virtual environment (build/wheel-venv) run with a PATH of its own
   bin/ only: no compiler, CMake, ninja or git can be found (checked).
2. `pip install WHEEL` in it, timed (numpy comes from pip's cache or the index).
3. The README's first command (its `negtemp ...` part), whose output must
   begin with the README's T = -0.001 continuation; `negtemp --version`,
   which names the CPU variant loaded; and `negtemp serve`, which must answer
   /health (the wheel's own llama-server).
4. With --tests: the wheel's test extra installed into the same environment,
   then the whole test suite run from this repository against that installed
   package (the tests import negtemp from the venv: the repository holds it
   only under src/). PATH then gets the rest of the system's back, for the
   tests that call git and Chromium.

WHEEL defaults to the newest dist/negtemp-*.whl for this Python
(scripts/build_wheel.py builds it). The model comes from the cache as
usual (~/.cache/negtemp), fetched with pip on first use.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

from scripts import build_wheel, llama_tree

REPO = llama_tree.REPO
VENV = REPO / "build" / "wheel-venv"
README = REPO / "README.md"
TOOLS = ("cc", "gcc", "g++", "c++", "clang", "cmake", "ninja", "make", "git")


def readme_example() -> tuple[list[str], str]:
    """The negtemp command of the README's first step, and the T = -0.001 continuation it shows."""
    text = README.read_text()
    command = re.search(r"&& (negtemp \"Temperature is a concept\"[^\n`]*)", text)
    row = re.search("^\\| \u22120\\.001 \\| `(.*)\u2026` \\|$", text, re.M)  # the table's minus sign and ellipsis
    if not command or not row:
        raise SystemExit("check_wheel: README.md no longer has step 1's negtemp command or the T = -0.001 row")
    return shlex.split(command.group(1)), row.group(1).replace("\\|", "|")


def timed(cmd: list[str], env: dict[str, str], **kw) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"check_wheel: `{' '.join(cmd)}` failed ({res.returncode}):\n{res.stdout[-2000:]}"
                         f"\n{res.stderr[-3000:]}")
    return res, elapsed


def serve_health(bin_dir: Path, env: dict[str, str]) -> float:
    """Start the wheel's `negtemp serve` on a free port; seconds until /health answered 200 (then SIGTERM, as a
    service manager stops it: SIGINT may be ignored here, as it is in a job a shell started in the background)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen([str(bin_dir / "negtemp"), "serve", "--port", str(port), "-t", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - started < 120 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"check_wheel: negtemp serve did not answer /health (exit {proc.poll()}):\n"
                         f"{proc.stderr.read()[-3000:] if proc.poll() is not None and proc.stderr else ''}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", nargs="?", type=Path, help="the wheel (default: the newest in dist/ for this Python)")
    ap.add_argument("--tests", action="store_true", help="also run the whole test suite against it")
    args = ap.parse_args(argv)
    built = build_wheel.DIST.glob(f"negtemp-*-{build_wheel.python_tag()}-*.whl")
    wheel = args.wheel or max(built, key=lambda p: p.stat().st_mtime, default=None)
    if wheel is None:
        raise SystemExit("check_wheel: no wheel in dist/ for this Python; build one with python -m scripts.build_wheel")
    wheel = wheel.resolve()

    shutil.rmtree(VENV, ignore_errors=True)
    venv.create(VENV, with_pip=True)
    bin_dir = VENV / "bin"
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("CMAKE", "CC", "CXX", "NEGTEMP_CPU"))}
    bare.update(PATH=str(bin_dir), VIRTUAL_ENV=str(VENV))
    found = [t for t in TOOLS if shutil.which(t, path=bare["PATH"])]
    if found:
        raise SystemExit(f"check_wheel: the venv's PATH still finds {', '.join(found)}")
    python = str(bin_dir / "python")

    _, install_s = timed([python, "-m", "pip", "install", "--disable-pip-version-check", str(wheel)], bare)
    print(f"check_wheel: {wheel.name} ({wheel.stat().st_size / 2**20:.1f} MiB) installed in {install_s:.1f} s "
          f"with no {', '.join(TOOLS)} on PATH")

    command, expected = readme_example()
    res, run_s = timed([str(bin_dir / command[0]), *command[1:]], bare, cwd=VENV)
    if not res.stdout.startswith(expected):
        raise SystemExit(f"check_wheel: the README's command printed\n{res.stdout[:300]!r}\nnot the README's\n"
                         f"{expected!r}")
    print(f"check_wheel: the README's first command gave the README's text ({run_s:.1f} s)")
    version, _ = timed([str(bin_dir / "negtemp"), "--version"], bare)
    print("check_wheel: negtemp --version:\n  " + version.stdout.strip().replace("\n", "\n  "))
    print(f"check_wheel: negtemp serve answered /health {serve_health(bin_dir, bare):.1f} s after it started")

    if args.tests:
        full = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(VENV))
        _, extra_s = timed([python, "-m", "pip", "install", "--disable-pip-version-check", f"{wheel}[test]"], full)
        print(f"check_wheel: the test extra installed in {extra_s:.0f} s; running the tests", flush=True)
        where, _ = timed([python, "-c", "import negtemp; print(negtemp.__file__)"], full, cwd=REPO)
        if not where.stdout.startswith(str(VENV)):
            raise SystemExit(f"check_wheel: the tests would import {where.stdout.strip()}, not the wheel's negtemp")
        started = time.perf_counter()
        rc = subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider"], env=full, cwd=REPO).returncode
        print(f"check_wheel: the test suite against the wheel exited {rc} after {time.perf_counter() - started:.0f} s")
        return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
