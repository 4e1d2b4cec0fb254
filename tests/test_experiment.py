"""The experiment report on the tiny model: its numbers against direct computations."""

import csv
import json

import numpy as np
import pytest

from negtemp.experiment import centroid_distances, embedding_matrix, run_experiment


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = run_experiment(tiny, out, n_prompts=12, n_tokens=5, n_probe=3, quiet=True)
    return out, json.loads((out / "results.json").read_text()), path.read_text()


def test_report_has_every_section_and_both_plots(report):
    out, _, md = report
    for heading in ("Side by side", "Which tokens", "centroid", "repeat", "beta = 1/T"):
        assert heading in md, f"report.md lacks the section on {heading!r}"
    for name in ("centroid_hist.png", "beta_sweep.png", "side_by_side.csv", "token_counts.csv"):
        assert (out / name).stat().st_size > 0, f"{name} missing or empty"


def test_centroid_distances_equal_a_direct_numpy_computation(report, tiny_path):
    out, results, _ = report
    emb, tied = embedding_matrix(tiny_path)
    assert tied is False  # the tiny model has its own output.weight
    c = emb.astype(np.float64).mean(axis=0)
    direct = np.linalg.norm(emb.astype(np.float64) - c, axis=1)
    np.testing.assert_allclose(np.load(out / "centroid_distance_euclid.npy"), direct, rtol=1e-5)
    cos = 1 - emb.astype(np.float64) @ c / (np.linalg.norm(emb, axis=1) * np.linalg.norm(c))
    np.testing.assert_allclose(centroid_distances(emb)[1], cos, atol=1e-5)
    nearest = [row["token"] for row in results["centroid"]["nearest_centroid"]]
    assert nearest == np.argsort(direct)[:10].tolist()


def test_token_counts_add_up_to_the_generated_tokens(report):
    out, results, _ = report
    with open(out / "token_counts.csv") as f:
        rows = list(csv.DictReader(f))
    assert sum(int(r["count_T_minus_0.001"]) for r in rows) == results["tokens"]["generated"]["neg"]
    assert sum(int(r["count_T_plus_0.001"]) for r in rows) == results["tokens"]["generated"]["pos"]
    assert results["tokens"]["generated"]["neg"] == 12 * 5


def test_side_by_side_ranks_put_negative_temperature_at_the_bottom(report, tiny):
    out, _, _ = report
    with open(out / "side_by_side.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["temp"] == "-0.001"]
    assert rows and all(int(r["rank_T1"]) >= tiny.n_vocab - 3 for r in rows), "T=-0.001 picked a likely token"


def test_beta_sweep_entropy_peaks_at_beta_zero(report, tiny):
    _, results, _ = report
    b = np.array(results["beta_sweep"]["beta"])
    h = np.array(results["beta_sweep"]["entropy"])
    assert np.isclose(h[b == 0][0], np.log(tiny.n_vocab)), "beta = 0 is not uniform"
    assert h.argmax() == int(np.flatnonzero(b == 0)[0])
