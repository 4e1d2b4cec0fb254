"""`negtemp batch`: JSONL in, JSONL out, nothing lost when a run is killed and started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import negtemp
from negtemp.jsonl_batch import line_seed

PROMPTS = ["the temperature is a concept", "a cold day", "the temperature is", "hot and cold"]


def write_requests(path: Path, count: int, **extra: object) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            f.write(json.dumps({"id": f"r{i}", "prompt": PROMPTS[i % len(PROMPTS)], **extra}) + "\n")
    return path


def batch(tiny_path: Path, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "negtemp", "batch", *map(str, args), "-m", str(tiny_path), "-t", "2"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=check)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_line_gets_a_result_with_its_id_in_input_order(tiny_path, tmp_path):
    src = write_requests(tmp_path / "in.jsonl", 6, n=2)
    batch(tiny_path, src, "-o", tmp_path / "out.jsonl", "--temp", "-1", "-n", "4", "--seed", "7", "--ignore-eos")
    out = records(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == [f"r{i}" for i in range(6)] and [r["line"] for r in out] == list(range(1, 7))
    assert all(len(r["completions"]) == 2 and len(r["completions"][0]["tokens"]) == 4 for r in out)
    assert [c["seed"] for c in out[0]["completions"]] == [line_seed(7, "r0", 2), line_seed(7, "r0", 2) + 1]


def test_a_lines_settings_override_the_command_lines(tiny_path, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "hot", "temp": 0.5, "top_k": 3, "n_predict": 2, "seed": 4}) + "\n"
                   + json.dumps({"tokens": [1, 5, 9]}) + "\n", encoding="utf-8")
    batch(tiny_path, src, "-o", tmp_path / "out.jsonl", "--beta", "-2", "-n", "3", "--ignore-eos")
    first, second = records(tmp_path / "out.jsonl")
    c = first["completions"][0]
    assert (c["temp"], c["top_k"], c["seed"], len(c["tokens"])) == (0.5, 3, 4, 2)
    assert second["completions"][0]["beta"] == -2.0 and second["completions"][0]["prompt_tokens"] == [1, 5, 9]
    assert second["id"] == 2


def test_a_killed_run_started_again_ends_with_the_file_an_uninterrupted_run_writes(tiny_path, tmp_path):
    src = write_requests(tmp_path / "in.jsonl", 300, n_predict=48)
    args = ["--temp", "-1", "--seed", "3", "--ignore-eos", "--parallel", "4"]
    whole = tmp_path / "whole.jsonl"
    batch(tiny_path, src, "-o", whole, *args)

    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "negtemp", "batch", str(src), "-o", str(out), "-m", str(tiny_path), "-t", "2", *args]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (not out.exists() or out.read_text().count("\n") < 20) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    written = out.read_text().count("\n")
    assert 20 <= written < 300, "the run was not killed part way"

    resumed = batch(tiny_path, src, "-o", out, *args)
    assert f"resuming: {written} of 300 results already" in resumed.stderr
    assert_same_results(records(out), records(whole))


def assert_same_results(got: list[dict], want: list[dict]) -> None:
    """The same requests in the same order, drawn with the same seeds to the same tokens; log-probabilities equal
    to the last bits a batched decode can change (a resumed run decodes its requests beside different ones)."""
    assert [r["id"] for r in got] == [r["id"] for r in want]
    for g, w in zip(got, want, strict=True):
        for cg, cw in zip(g["completions"], w["completions"], strict=True):
            lg, lw = cg.pop("logprobs"), cw.pop("logprobs")
            assert cg == cw, g["id"]
            assert lg == pytest.approx(lw, abs=1e-2), g["id"]


def test_a_line_cut_off_by_a_kill_is_run_again(tiny_path, tmp_path):
    src = write_requests(tmp_path / "in.jsonl", 3, n_predict=3)
    whole = tmp_path / "whole.jsonl"
    batch(tiny_path, src, "-o", whole, "--temp", "-1", "--seed", "1")
    out = tmp_path / "out.jsonl"
    lines = whole.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    batch(tiny_path, src, "-o", out, "--temp", "-1", "--seed", "1")
    assert out.read_bytes() == whole.read_bytes()


def test_a_malformed_line_is_reported_with_its_number_and_the_others_run(tiny_path, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "hot"}\nnot json\n{"prompt": "x", "top_p": 1.5}\n{"prompt": "x", "topp": 1}\n'
                   '{"prompt": "cold", "id": 1}\n{"prompt": "x", "n_predict": 100000}\n', encoding="utf-8")
    result = batch(tiny_path, src, "-o", tmp_path / "out.jsonl", "-n", "2", check=False)
    assert result.returncode == 1
    out = records(tmp_path / "out.jsonl")
    assert [r["line"] for r in out] == [1, 2, 3, 4, 5, 6]
    assert "completions" in out[0]
    assert out[1]["error"].startswith("not JSON") and "in.jsonl:2: skipped: not JSON" in result.stderr
    assert "top_p must be in [0, 1]" in out[2]["error"]
    assert "unknown key 'topp'" in out[3]["error"]
    assert out[4]["error"] == "id 1 is used by an earlier line"
    assert "plus n_predict (100000) exceeds n_ctx" in out[5]["error"]


def test_strict_refuses_the_file_listing_every_bad_line(tiny_path, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "hot"}\n[1]\n{"prompt": "x", "grammar": "root ::= ("}\n', encoding="utf-8")
    result = batch(tiny_path, src, "-o", tmp_path / "out.jsonl", "--strict", check=False)
    assert result.returncode == 2 and not (tmp_path / "out.jsonl").exists()
    assert "in.jsonl:2: a line is a JSON object, not list" in result.stderr
    assert "in.jsonl:3: the grammar does not parse" in result.stderr


def test_an_out_file_negtemp_did_not_write_is_not_resumed(tiny_path, tmp_path):
    src = write_requests(tmp_path / "in.jsonl", 2, n_predict=2)
    out = tmp_path / "out.jsonl"
    out.write_text("precious data\n")
    result = batch(tiny_path, src, "-o", out, check=False)
    assert result.returncode == 2 and "is not a line negtemp batch wrote" in result.stderr
    assert out.read_text() == "precious data\n"


def test_progress_is_plain_lines_when_standard_error_is_not_a_terminal(tiny_path, tmp_path):
    src = write_requests(tmp_path / "in.jsonl", 3, n_predict=2)
    result = batch(tiny_path, src, "-o", tmp_path / "out.jsonl")
    assert "negtemp: 3/3 requests," in result.stderr and "s left" in result.stderr


def test_batch_json_schema_results_all_parse(tiny_path, tmp_path):
    schema = {"enum": ["hot", "cold", "tepid"]}
    src = write_requests(tmp_path / "in.jsonl", 4, n=3)
    batch(tiny_path, src, "-o", tmp_path / "out.jsonl", "--temp", "-1", "--json-schema", json.dumps(schema),
          "-n", "20")
    for r in records(tmp_path / "out.jsonl"):
        assert all(json.loads(c["text"]) in schema["enum"] for c in r["completions"])


def test_generate_takes_a_grammar(tiny_path, tmp_path):
    result = subprocess.run([sys.executable, "-m", "negtemp", "hot or cold:", "-m", str(tiny_path), "--temp", "-1",
                             "--grammar", 'root ::= ("yes" | "no") "."', "--json"], capture_output=True, text=True,
                            check=True, timeout=120)
    assert json.loads(result.stdout)["text"] in ("yes.", "no.")


@pytest.mark.parametrize("flags", [["--grammar", "root ::= \"a\"", "--json-schema", "{}"]])
def test_grammar_and_json_schema_together_are_refused(tiny_path, tmp_path, flags):
    result = subprocess.run([sys.executable, "-m", "negtemp", "x", "-m", str(tiny_path), *flags],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_the_model_library_and_the_cli_agree_on_a_line_seed(tiny_path):
    assert 0 <= line_seed(1, "a", 256) <= negtemp.config.MAX_SEED - 255
    assert line_seed(1, "a", 1) != line_seed(1, "b", 1) and line_seed(1, "a", 1) == line_seed(1, "a", 1)
