"""negtemp scan: the planted token of a tiny model found and verified, the copy probability exact, the real models."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

pytest.importorskip("scipy")

from scripts.tiny_model import write_planted_llama, write_tiny_llama

import negtemp
from negtemp.cli import main
from negtemp.experiment.repetition import VocabularyBytes, copy_probability, request_tokens
from negtemp.experiment.scan import ScanSettings, scan
from negtemp.reference import probs

SMALL = ScanSettings(windows=4, window=32, top=10, verify=5, cone_states=64, cone_seconds=60)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return write_planted_llama(tmp_path_factory.mktemp("planted") / "planted.gguf")


@pytest.fixture(scope="module")
def planted_report(planted):
    path, _ = planted
    with negtemp.Model(path, n_ctx=256, n_threads=2) as m:
        return scan(m, SMALL)


def test_scan_ranks_the_token_left_untrained_first_among_the_candidates(planted, planted_report):
    _, target = planted
    assert planted_report["candidates"][0]["id"] == target


def test_scan_verifies_the_planted_token_by_the_repetition_probe(planted, planted_report):
    _, target = planted
    (row,) = [r for r in planted_report["verified"] if r["id"] == target]
    assert row["copy_probability"] < 0.01 and row["verified"]


def test_scan_decides_the_cone_of_the_strongest_candidates(planted_report):
    decided = [r["cone"]["status"] for r in planted_report["candidates"] if "cone" in r]
    assert decided and set(decided) <= {"reachable", "unreachable", "undecided"}
    cone = planted_report["summary"]["cone"]
    assert cone["reachable"] + cone["unreachable"] + cone["undecided"] == cone["decided of"] == len(decided)


def test_scan_counts_each_tokens_teacher_forced_argmin(planted_report):
    counts = np.array(planted_report["tokens"]["argmin_count"])
    assert counts.sum() == planted_report["corpus"]["positions"] == SMALL.windows * SMALL.window


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """The tiny model with nearly uniform logits, where a text's longer tokenizations carry weight."""
    with negtemp.Model(write_tiny_llama(tmp_path_factory.mktemp("flat") / "flat.gguf", scale=0.01), n_ctx=256,
                       n_threads=2) as m:
        yield m


def test_copy_probability_sums_every_tokenization_of_the_text(flat):
    tiny = flat
    vocab = VocabularyBytes(tiny)
    token = next(t for t in range(tiny.n_vocab) if tiny.token_bytes(t) == b" a")
    request = request_tokens(tiny, 0, token)
    target = tiny.token_bytes(token)
    pieces: dict[bytes, list[int]] = {}
    for t in range(tiny.n_vocab):
        pieces.setdefault(tiny.token_bytes(t), []).append(t)

    def p_next(ctx: list[int]) -> np.ndarray:
        return probs(tiny.logits(np.array(ctx, np.int32))[-1], 1.0)

    total = 0.0  # every split of the text into pieces, the last piece any token beginning with what is left
    for cuts in itertools.chain.from_iterable(itertools.combinations(range(1, len(target)), k)
                                              for k in range(len(target))):
        bounds = [0, *cuts]
        heads = [target[a:b] for a, b in itertools.pairwise(bounds)]
        for path in itertools.product(*(pieces.get(h, []) for h in heads)):
            weight, ctx = 1.0, request.tolist()
            for t in path:
                weight *= float(p_next(ctx)[t])
                ctx.append(t)
            last = target[bounds[-1]:]
            covering = [t for t in range(tiny.n_vocab) if tiny.token_bytes(t).startswith(last) and last]
            total += weight * float(p_next(ctx)[covering].sum())
    first_token_only = float(p_next(request.tolist())[vocab.starting_with(target)].sum())
    assert total - first_token_only > 1e-3 * total, "the text's longer tokenizations should count here"
    # the f16 KV cache rounds per batch: copy_probability decodes step by step, p_next evaluates at once
    assert copy_probability(tiny, request, target, vocab, floor=0.0) == pytest.approx(total, rel=1e-5)


def test_a_token_the_model_copies_is_not_verified(smollm2):
    vocab = VocabularyBytes(smollm2)
    token = int(smollm2.tokenize(" river", add_special=False)[0])
    p = copy_probability(smollm2, request_tokens(smollm2, 1, token), smollm2.token_bytes(token), vocab)
    assert p > 0.5


def test_scan_writes_json_and_a_page_for_a_tiny_model(planted, tmp_path, capsys):
    path, target = planted
    assert main(["scan", str(path), "--out", str(tmp_path), "--windows", "2", "--window", "32", "--top", "3",
                 "--verify", "2", "--cone-states", "32"]) == 0
    report = json.loads((tmp_path / "scan.json").read_text())
    assert report["candidates"][0]["id"] == target
    page = (tmp_path / "scan.html").read_text()
    assert "Verified under-trained" in page and f">{target}<" in page
    assert "verified under-trained" in capsys.readouterr().out


def test_scan_json_prints_only_the_report_on_stdout(planted, capsys):
    path, _ = planted
    assert main(["scan", str(path), "--json", "--windows", "2", "--window", "32", "--top", "2", "--verify", "1",
                 "--cone-states", "32"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["n_vocab"] > 0 and "negtemp scan:" in out.err


@pytest.mark.parametrize("flag, value", [("--windows", "1"), ("--window", "4"), ("--top", "0"),
                                         ("--cone-seconds", "0")])
def test_scan_refuses_settings_that_cannot_run(planted, flag, value, capsys):
    path, _ = planted
    assert main(["scan", str(path), flag, value]) == 2
    assert flag.lstrip("-").replace("-", "_") in capsys.readouterr().err


def test_scan_reports_a_real_model(real_model):
    report = scan(real_model, SMALL)
    assert report["summary"]["candidates"] > 0 and len(report["tokens"]["text"]) == real_model.n_vocab
    assert report["summary"]["probed"] == SMALL.verify
