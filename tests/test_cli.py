import json
import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "negtemp", *args], capture_output=True, text=True, timeout=300)


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
    [(("-m", "no-such-model", "hi"), "known model name"), (("--temp", "nan", "hi"), "NaN"), ((), "prompt")],
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
