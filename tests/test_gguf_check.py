"""Hostile GGUF files end in ModelLoadError with a reason, never a crash."""

import struct
import sys
from pathlib import Path

import pytest

import negtemp
from negtemp.gguf_check import check_gguf

from scripts import fuzz_gguf


def test_the_tiny_model_passes_the_structure_check(tiny_path):
    check_gguf(tiny_path)


@pytest.mark.parametrize(
    "offset, value, reason",
    [
        (8, 2**63, "tensors"),  # tensor count
        (16, 2**64 - 1, "metadata"),  # metadata count
        (24, 2**40, "length"),  # first key's length
    ],
)
def test_huge_counts_and_lengths_are_rejected_with_a_reason(tiny_path, tmp_path, offset, value, reason):
    data = bytearray(tiny_path.read_bytes())
    data[offset : offset + 8] = struct.pack("<Q", value)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(negtemp.ModelLoadError, match=reason):
        negtemp.Model(bad)


def test_a_vocabulary_with_a_duplicate_token_is_rejected_not_aborted(tiny_path, tmp_path):
    # found by scripts/fuzz_gguf.py: llama.cpp asserts (aborts) on duplicate tokens
    data = tiny_path.read_bytes()
    bad = tmp_path / "dup.gguf"
    bad.write_bytes(data.replace(b"<0x2F>", b"<0x2E>", 1))
    with pytest.raises(negtemp.ModelLoadError, match="twice"):
        negtemp.Model(bad)


def test_truncated_files_are_rejected(tiny_path, tmp_path):
    data = tiny_path.read_bytes()
    for cut in [3, 20, 200, len(data) // 2, len(data) - 1]:
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(negtemp.ModelLoadError):
            negtemp.Model(bad)


def test_a_fixed_sample_of_fuzz_cases_never_crashes_or_hangs(tiny_path):
    """40 of scripts/fuzz_gguf.py's cases, each loaded in a subprocess (the full run is the script's)."""
    base = tiny_path.read_bytes()
    counts, failures = fuzz_gguf.fuzz(base, fuzz_gguf.header_size(tiny_path), 40, seed=1, jobs=2)
    assert not failures, "a mutated GGUF crashed, hung or raised the wrong error:\n" + "\n".join(failures[:5])
    assert counts["rejected"] > 0, f"no mutation was rejected: {dict(counts)}"


def test_a_fixed_sample_of_semantic_fuzz_cases_never_crashes_or_hangs():
    """100 of scripts/fuzz_gguf.py --semantic's cases: every single mutation there is a chance to
    draw, plus combinations; each loaded, tokenized, generated on every path and swept in a subprocess."""
    counts, failures = fuzz_gguf.semantic_fuzz(100, seed=7, jobs=2, sample=True)
    assert not failures, "a hostile GGUF crashed, hung or raised the wrong error:\n" + "\n".join(failures[:5])
    assert counts["ok"] > 0 and sum(v for k, v in counts.items() if k.startswith("rejected")) > 0, dict(counts)
