"""Every fenced sh and python example in README.md, CONTRIBUTING.md and docs/ runs, as a reader would run it.

Each file's examples run in order, in one temporary directory of its own
(so a later block finds what an earlier one wrote) and with a negtemp cache
of its own that links the models already fetched (an example may remove
one), with the repository
root on PYTHONPATH (`python -m scripts.X` works there) and the installed
negtemp. A python block runs in a new interpreter; a sh block runs in bash
with -e, so every command in it must succeed. What the examples install
(`pip install ...`, alone or before `&&`) is not run again: this run is
that install, with the test extra, which holds every extra the docs name.

An HTML comment on the line before a block says how else to run it:

- `<!-- example: serve -->`: a `negtemp serve` command, run until it prints
  its URL, then stopped with Ctrl-C (it must exit 0); the port is a free one;
- `<!-- example: client -->`: a block that talks to `negtemp serve`, run
  while one serves the default model; its URL's port is that server's;
- `<!-- example: skip REASON -->`: not run, for REASON (reported as a skip);
- `<!-- test-command: ... -->`: the README's test command, which is this
  very run (.ci/run runs it).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from ports import free_port
from serving import running_server

import negtemp
from negtemp.cache import cache_dir

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"sh", "bash", "python"}
FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.M | re.S)
MARK = re.compile(r"<!--\s*(example|test-command):?\s*(.*?)\s*-->\s*$")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Example:
    doc: Path
    line: int
    lang: str
    code: str
    mark: str  # the marker's first word ("" without one)
    reason: str

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            if m.group(2) not in RUN:
                continue
            before = text[: m.start()].rstrip("\n ").rsplit("\n", 1)[-1]
            mark = MARK.search(before)
            if mark is None:
                kind, rest = "", ""
            elif mark.group(1) == "test-command":
                kind, rest = "test-command", mark.group(2)
            else:
                kind, _, rest = mark.group(2).partition(" ")
            indent = len(m.group(1))
            code = "\n".join(line[indent:] for line in m.group(3).splitlines())
            found.append(Example(doc, text[: m.start()].count("\n") + 1, m.group(2), code, kind, rest))
    return found


EXAMPLES = examples()
_workdirs: dict[Path, Path] = {}


@pytest.fixture(scope="session")
def example_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("examples")


def workdir(root: Path, doc: Path) -> Path:
    """The directory a document's examples run in, the same for all of them, with a negtemp cache of its own
    (cache/) that holds links to the models already fetched: an example may `negtemp rm` a model."""
    if doc not in _workdirs:
        work = Path(tempfile.mkdtemp(prefix=doc.stem + "-", dir=root))
        (work / "cache").mkdir()
        for model in cache_dir().glob("*.gguf"):
            try:
                os.link(model, work / "cache" / model.name)
            except OSError:  # another file system
                shutil.copy2(model, work / "cache" / model.name)
        _workdirs[doc] = work
    return _workdirs[doc]


def env(cwd: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                NEGTEMP_CACHE=str(cwd / "cache"))


def without_installs(code: str) -> str:
    """The block less its `pip install ...` commands (this run is that install)."""
    return "\n".join(re.sub(r"^pip install [^&]*(&&\s*|$)", "", line) for line in code.splitlines())


def run(ex: Example, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    code = code if code is not None else ex.code
    if ex.lang == "python":
        cmd = [sys.executable, "-c", code]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", without_installs(code)]
    return subprocess.run(cmd, cwd=cwd, env=env(cwd), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def check(ex: Example, got: subprocess.CompletedProcess[str]) -> None:
    assert got.returncode == 0, f"{ex.id} exited {got.returncode}:\n{got.stdout[-3000:]}\n{got.stderr[-3000:]}"


def run_serve(ex: Example, cwd: Path) -> None:
    """A `negtemp serve` command on a free port: it must print its URL, then stop cleanly on Ctrl-C."""
    port = free_port()
    code = without_installs(ex.code).split("#", 1)[0].strip()
    assert code.startswith("negtemp serve"), f"{ex.id}: a serve example must be one `negtemp serve` command"
    with open(cwd / "serve.log", "w") as log:
        # its own process group, which Ctrl-C signals whole, as a terminal does; SIGINT's default action
        # restored, in case this run inherited it ignored (a job a shell put in the background)
        proc = subprocess.Popen(["bash", "-c", f"exec {code} --port {port}"], cwd=cwd, env=env(cwd),
                                stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            url = proc.stdout.readline().strip() if ready and proc.stdout else ""
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            rc = proc.wait(timeout=60)
            if proc.stdout:
                proc.stdout.close()
    assert url == f"http://127.0.0.1:{port}/v1", f"{ex.id} printed {url!r}:\n{(cwd / 'serve.log').read_text()[-3000:]}"
    assert rc == 0, f"{ex.id}: negtemp serve exited {rc} on Ctrl-C"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path):
    with running_server(tmp_path_factory.mktemp("examples-serve"), "-m", "smollm2-135m", "-t", "2") as url:
        yield url


@pytest.mark.real_model
@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_the_example_runs(ex: Example, example_root: Path, request: pytest.FixtureRequest) -> None:
    if ex.mark == "skip":
        pytest.skip(ex.reason)
    if ex.mark == "test-command":
        pytest.skip("the README's test command: this very run (.ci/run runs it)")
    # the models, fetched once, before any example's cache links them
    request.getfixturevalue("smollm2_path")
    negtemp.registry.pull("gemma3-270m", quiet=True)
    cwd = workdir(example_root, ex.doc)
    if ex.mark == "serve":
        return run_serve(ex, cwd)
    code = ex.code
    if ex.mark == "client":
        port = urlparse(request.getfixturevalue("server_url")).port
        code = code.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    elif ex.mark:
        raise AssertionError(f"{ex.id}: unknown example marker {ex.mark!r}")
    check(ex, run(ex, cwd, code))


def test_every_document_with_examples_has_them_collected():
    """The collector finds the blocks a reader sees: a fence it missed would go untested."""
    for doc in DOCS:
        fences = len(re.findall(r"^ *```(?:sh|bash|python)\b", doc.read_text(), re.M))
        assert fences == sum(e.doc == doc for e in EXAMPLES), doc


def test_a_skipped_example_says_why():
    for ex in EXAMPLES:
        if ex.mark == "skip":
            assert len(ex.reason) > 20, f"{ex.id}: say why the example is not run"
