"""Models by Hugging Face name (negtemp.hub): which file a name picks, and the whole path through
huggingface_hub against a local endpoint that serves the real SmolLM2 GGUF in the Hub's layout."""

from __future__ import annotations

import json
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from hub_server import COMMIT, hub_server

from negtemp import hub
from negtemp.errors import ModelFetchError

REPO = "negtemp-test/SmolLM2-135M-Instruct-GGUF"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.parametrize(("name", "parsed"), [
    ("hf:owner/repo", hub.HubName("owner/repo")),
    ("hf:owner/repo:Q4_K_M", hub.HubName("owner/repo", quant="Q4_K_M")),
    ("hf:owner/repo/sub/model-q8_0.gguf", hub.HubName("owner/repo", filename="sub/model-q8_0.gguf")),
])
def test_a_hub_name_names_a_repository_and_a_quantization_or_a_file(name, parsed):
    assert hub.parse(name) == parsed and str(parsed) == name


@pytest.mark.parametrize("name", ["hf:", "hf:repo", "hf:owner/", "hf:owner/repo:", "hf:owner/repo:Q4 K",
                                  "hf:owner/repo/model.bin", "hf:owner/repo/../x.gguf", "hf:owner/repo/a.gguf:Q4_0"])
def test_a_malformed_hub_name_is_refused_with_the_forms_it_may_take(name):
    with pytest.raises(ValueError, match="hf:"):
        hub.parse(name)


FILES = ["README.md", "model-Q4_K_M.gguf", "model-q8_0.gguf", "model-IQ4_XS.gguf", "mmproj-model-f16.gguf",
         "big-Q4_K_M-00002-of-00002.gguf", "big-Q4_K_M-00001-of-00002.gguf"]


def test_a_quantization_picks_the_gguf_carrying_its_tag_in_any_case():
    assert hub.choose(hub.HubName("o/r", quant="Q8_0"), FILES) == ["model-q8_0.gguf"]


def test_without_a_quantization_the_only_gguf_is_taken():
    assert hub.choose(hub.HubName("o/r"), ["README.md", "model-q8_0.gguf"]) == ["model-q8_0.gguf"]


def test_a_projector_file_is_never_picked():
    assert hub.choose(hub.HubName("o/r"), ["mmproj-f16.gguf", "model-f16.gguf"]) == ["model-f16.gguf"]


def test_a_split_model_is_fetched_whole_first_part_first():
    files = ["big-Q4_K_M-00002-of-00002.gguf", "big-Q4_K_M-00001-of-00002.gguf"]
    assert hub.choose(hub.HubName("o/r"), files) == files[::-1]


def test_a_split_model_missing_a_part_is_refused():
    with pytest.raises(ModelFetchError, match="1 of its 2 parts"):
        hub.choose(hub.HubName("o/r"), ["big-Q4_K_M-00001-of-00002.gguf"])


def test_an_ambiguous_quantization_names_the_files_to_choose_from():
    with pytest.raises(ModelFetchError, match="several Q4_K_M GGUFs; name the file: hf:o/r/big-Q4_K_M-00001"):
        hub.choose(hub.HubName("o/r"), FILES)


def test_a_missing_quantization_lists_those_the_repository_has():
    with pytest.raises(ModelFetchError, match=r"no Q2_K GGUF; name one: hf:o/r:IQ4_XS, hf:o/r:Q4_K_M, hf:o/r:Q8_0"):
        hub.choose(hub.HubName("o/r", quant="Q2_K"), FILES)


def test_a_repository_without_gguf_says_so():
    with pytest.raises(ModelFetchError, match="has no GGUF file"):
        hub.choose(hub.HubName("o/r"), ["model.safetensors", "config.json"])


# the whole path, as a user runs it: a new process with HF_ENDPOINT and its own HF_HOME


@pytest.fixture()
def hub_env(tmp_path: Path, smollm2_path: Path):
    """The endpoint serving REPO (the real SmolLM2 GGUF, a README and a projector decoy), and the
    environment of a process that uses it: its own Hugging Face and negtemp caches."""
    decoy = tmp_path / "mmproj.gguf"
    decoy.write_bytes(b"not a model")
    readme = tmp_path / "README.md"
    readme.write_text("a model\n")
    repos = {REPO: {FILE: smollm2_path, "README.md": readme, "mmproj-SmolLM2-f16.gguf": decoy}}
    with hub_server(repos) as (url, requests):
        env = dict(os.environ, HF_ENDPOINT=url, HF_HOME=str(tmp_path / "hf"), NEGTEMP_CACHE=str(tmp_path / "nt"))
        env.pop("HF_HUB_OFFLINE", None)
        yield env, requests


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "negtemp", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_cli_samples_a_model_named_by_repository_and_quantization(hub_env):
    env, requests = hub_env
    got = run(env, "-m", f"hf:{REPO}:q4_1", "Temperature is a concept", "--temp", "-0.001", "--seed", "1",
              "-n", "8", "--json")
    assert got.returncode == 0, got.stderr
    cached = Path(env["HF_HOME"]) / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT / FILE
    assert cached.exists(), "the file is not in the Hugging Face cache layout other tools share"
    assert f"GET /{REPO}/resolve/main/{FILE}" in requests
    assert not any("mmproj" in r for r in requests), "fetched the projector decoy"
    assert json.loads(got.stdout)["text"], got.stdout


def test_a_hub_model_samples_as_the_same_file_given_by_path(hub_env, smollm2_path):
    env, _ = hub_env
    args = ("Temperature is a concept", "--temp", "-0.5", "--seed", "3", "-n", "8", "--json")
    by_name = run(env, "-m", f"hf:{REPO}:Q4_1", *args)
    by_path = run(env, "-m", str(smollm2_path), *args)
    assert by_name.returncode == 0 and by_path.returncode == 0, by_name.stderr + by_path.stderr
    assert json.loads(by_name.stdout)["tokens"] == json.loads(by_path.stdout)["tokens"]


def test_the_download_names_the_file_on_stderr(hub_env):
    env, _ = hub_env
    got = run(env, "-m", f"hf:{REPO}:Q4_1", "hi", "-n", "1")
    assert got.returncode == 0, got.stderr
    assert f"negtemp: hf:{REPO}:Q4_1: {FILE} from the Hugging Face Hub" in got.stderr


def test_the_download_shows_a_progress_bar_on_a_terminal(hub_env):
    env, _ = hub_env
    primary, secondary = pty.openpty()
    # a terminal 100 columns wide (a new one has none, and tqdm then draws an empty bar)
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "negtemp", "-m", f"hf:{REPO}/{FILE}", "hi", "-n", "1"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    seen = b""
    while True:
        try:
            block = os.read(primary, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not block:
            break
        seen += block
    os.close(primary)
    assert proc.wait(timeout=300) == 0, seen[-2000:]
    assert b"100%" in seen, seen[-2000:]


def test_from_pretrained_loads_the_quantization_named(hub_env):
    env, _ = hub_env
    code = ("import negtemp\n"
            f"with negtemp.Model.from_pretrained({REPO!r}, 'Q4_1', n_ctx=64) as m:\n"
            "    print(m.path.name, m.n_vocab)\n")
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == [FILE, "49152"]


def test_a_cached_hub_model_loads_offline(hub_env):
    env, _ = hub_env
    assert run(env, "-m", f"hf:{REPO}:Q4_1", "hi", "-n", "1").returncode == 0
    offline = dict(env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    got = run(offline, "-m", f"hf:{REPO}:Q4_1", "hi", "-n", "1")
    assert got.returncode == 0, got.stderr


def test_an_unknown_repository_is_one_line_saying_so(hub_env):
    env, _ = hub_env
    got = run(env, "-m", "hf:nobody/nothing:Q4_K_M", "hi")
    assert got.returncode != 0
    assert "Traceback" not in got.stderr
    assert "no repository nobody/nothing" in got.stderr, got.stderr


def test_a_missing_quantization_on_the_hub_lists_what_there_is(hub_env):
    env, _ = hub_env
    got = run(env, "-m", f"hf:{REPO}:Q8_0", "hi")
    assert got.returncode != 0 and "Traceback" not in got.stderr
    assert f"no Q8_0 GGUF; name one: hf:{REPO}:Q4_1" in got.stderr, got.stderr
