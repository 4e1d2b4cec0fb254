"""The experiment report on the tiny model: each number against a direct NumPy computation."""

import csv
import itertools
import json

import numpy as np
import pytest

from negtemp.experiment import (
    centroid_distances,
    embedding_matrix,
    read_matrices,
    run_experiment,
    undertrained_indicator,
)
from negtemp.experiment.analysis import Geometry, draw_statistics, variant_tokens
from negtemp.experiment.geometry import reference_tokens, top_candidates
from negtemp.experiment.probe import N_ANSWER, TEMPLATES, matched_controls, probe_tokens, request_tokens, surface_form
from negtemp.experiment.stats import average_ranks, bootstrap_ci, percentile_of_all, rank_sum_test, spearman


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = run_experiment(tiny, out, n_prompts=12, n_tokens=5, n_probe=3, n_boot=200, quiet=True)
    return out, json.loads((out / "results.json").read_text()), path.read_text()


@pytest.fixture(scope="module")
def reference(tiny, tiny_path):
    return reference_tokens(tiny, read_matrices(tiny_path).token_types).ids


def test_report_has_every_section_and_every_plot(report):
    out, _, md = report
    for heading in ("Side by side", "Which tokens", "Norm and direction", "against the geometry", "repeat",
                    "beta = 1/T"):
        assert heading in md, f"report.md lacks the section on {heading!r}"
    for name in ("norm_direction.png", "groups_hist.png", "beta_sweep.png", "side_by_side.csv", "token_counts.csv",
                 "candidates_output.csv", "candidates_input.csv", "repetition_probe.csv"):
        assert (out / name).stat().st_size > 0, f"{name} missing or empty"


def test_centroid_distances_equal_a_direct_numpy_computation(report, tiny_path):
    out, _, _ = report
    emb, tied = embedding_matrix(tiny_path)
    assert tied is False  # the tiny model has its own output.weight
    out_rows = read_matrices(tiny_path).output.astype(np.float64)
    direct = np.linalg.norm(out_rows - out_rows.mean(axis=0), axis=1)
    np.testing.assert_allclose(np.load(out / "centroid_distance_euclid.npy"), direct, rtol=1e-5)
    c = emb.astype(np.float64).mean(axis=0)
    cos = 1 - emb.astype(np.float64) @ c / (np.linalg.norm(emb, axis=1) * np.linalg.norm(c))
    np.testing.assert_allclose(centroid_distances(emb)[1], cos, atol=1e-5)


def test_token_counts_add_up_to_the_generated_tokens(report):
    out, results, _ = report
    with open(out / "token_counts.csv") as f:
        rows = list(csv.DictReader(f))
    for temp in ("-0.001", "-0.1", "-1", "0.001"):
        assert sum(int(r[f"count_T_{temp}"]) for r in rows) == results["tokens"]["generated"][temp] == 12 * 5


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


# --- statistics ---------------------------------------------------------------


def direct_average_ranks(x):
    x = list(x)
    return np.array([1 + sum(v < xi for v in x) + (sum(v == xi for v in x) - 1) / 2 for xi in x])


def test_average_ranks_give_tied_values_the_mean_of_their_ranks():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    np.testing.assert_array_equal(average_ranks(x), direct_average_ranks(x))
    np.testing.assert_allclose(percentile_of_all(x), 100 * (direct_average_ranks(x) - 1) / 5)


def test_spearman_is_pearson_on_average_ranks_and_a_rank_order_that_ignores_ties_differs():
    x = np.array([1, 1, 1, 2, 2, 3, 5, 8, 8, 9], float)
    y = np.array([2, 1, 3, 3, 2, 5, 4, 9, 7, 9], float)
    rho, p = spearman(x, y, n_perm=2000, seed=3)
    assert rho == pytest.approx(np.corrcoef(direct_average_ranks(x), direct_average_ranks(y))[0, 1], abs=1e-12)
    ordinal = np.corrcoef(np.argsort(np.argsort(x)), np.argsort(np.argsort(y)))[0, 1]
    assert abs(ordinal - rho) > 0.01, "the tied data cannot tell a tie-aware Spearman from one that breaks ties"
    assert 0 < p < 0.01, f"a rho of {rho:.2f} over 10 pairs should be significant, got p = {p}"


def test_spearman_p_value_is_large_for_independent_data():
    rng = np.random.default_rng(0)
    _, p = spearman(rng.normal(size=200), rng.normal(size=200), n_perm=2000, seed=1)
    assert p > 0.05


def test_the_rank_sum_test_equals_enumerating_every_split():
    a, b = [0.1, 0.5, 0.5, 0.9, 0.3], [0.5, 0.2, 0.0, 0.05]
    pooled = np.array(a + b)
    ranks = direct_average_ranks(pooled)
    mean = len(a) * ranks.sum() / len(pooled)
    observed = abs(ranks[: len(a)].sum() - mean)
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    direct = sum(abs(ranks[list(s)].sum() - mean) >= observed - 1e-9 for s in splits) / len(splits)
    assert rank_sum_test(a, b) == pytest.approx(direct, abs=1e-12)
    assert rank_sum_test([5, 6, 7, 8, 9], [0, 1, 2, 3, 4]) == pytest.approx(2 / 252, abs=1e-12)


def test_the_bootstrap_resamples_whole_clusters_with_the_seed_given():
    clusters = [np.full(8, v) for v in (0.0, 1.0, 1.0, 3.0, 0.0, 2.0)]

    def mean(units):
        return float(np.concatenate(units).mean())

    point, lo, hi = bootstrap_ci(clusters, mean, n_boot=500, seed=7)
    rng = np.random.default_rng(7)
    reps = [mean([clusters[i] for i in rng.integers(0, 6, 6)]) for _ in range(500)]
    assert (point, lo, hi) == pytest.approx((mean(clusters), *np.percentile(reps, [2.5, 97.5])))
    draws = list(np.concatenate(clusters))
    _, lo_iid, hi_iid = bootstrap_ci(draws, lambda u: float(np.mean(u)), n_boot=500, seed=7)
    assert hi - lo > 2 * (hi_iid - lo_iid), "resampling draws instead of clusters should look far more certain"


# --- geometry -----------------------------------------------------------------


def test_the_undertrained_indicator_equals_a_direct_computation(tiny_path, reference):
    w = read_matrices(tiny_path).output.astype(np.float64)
    x = w - w.mean(axis=0)
    pc = np.linalg.svd(x, full_matrices=False)[2][0]
    x_pc = x - np.outer(x @ pc, pc)
    for got, rows in ((undertrained_indicator(w.astype(np.float32), reference, "pc"), x_pc),
                      (undertrained_indicator(w.astype(np.float32), reference, "mean"), x)):
        r = rows[reference].mean(axis=0)
        direct = rows @ r / (np.linalg.norm(rows, axis=1) * np.linalg.norm(r))
        np.testing.assert_allclose(got, direct, atol=1e-5)


def test_candidates_are_the_two_percent_of_other_tokens_most_like_the_reference(tiny_path, reference):
    w = read_matrices(tiny_path).output
    ind = undertrained_indicator(w, reference)
    others = np.setdiff1d(np.arange(w.shape[0]), reference)
    k = round(0.02 * others.size)
    direct = np.sort(others[np.argsort(-ind[others])[:k]])
    np.testing.assert_array_equal(top_candidates(ind, reference), direct)
    assert not set(top_candidates(ind, reference)) & set(reference.tolist())


def test_the_reference_tokens_are_the_normal_tokens_that_do_not_tokenize_back_to_themselves(tiny, tiny_path,
                                                                                           reference):
    types = read_matrices(tiny_path).token_types  # the tiny vocabulary: no unused or spare control token

    def round_trips(t):
        text = tiny.token_bytes(t).decode("utf-8")
        tries = [text, text[1:]] if text.startswith(" ") and len(text) > 1 else [text]
        return any(tiny.tokenize(x, add_special=False, parse_special=False).tolist() == [t] for x in tries)

    normal = np.flatnonzero(types == 1).tolist()
    assert reference.size and set(reference.tolist()) <= set(normal)
    for t in normal:
        assert round_trips(t) != (t in set(reference.tolist())), f"token {t} is misclassified"


def test_the_overlap_with_candidates_and_its_chance_level_equal_a_direct_count(report, reference):
    out, results, _ = report
    with open(out / "candidates_output.csv") as f:
        candidates = {int(r["token"]) for r in csv.DictReader(f)}
    with open(out / "token_counts.csv") as f:
        neg = {int(r["token"]) for r in csv.DictReader(f) if int(r["count_T_-0.001"]) > 0}
    regular = neg - set(reference.tolist())
    d = results["draws"]["-0.001"]
    assert d["distinct tokens"]["candidates among distinct tokens"][0] == len(regular & candidates)
    assert d["distinct non-reference tokens"] == len(regular)
    pool = results["n_vocab"] - reference.size
    assert d["chance overlap with candidates"] == pytest.approx(len(regular) * len(candidates) / pool)


def test_draw_statistics_equal_direct_numbers_for_every_variant():
    rng = np.random.default_rng(5)
    n = 50
    g = Geometry(rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.random(n) < 0.2, rng.random(n) < 0.1)
    draws = [rng.integers(0, n, 6) for _ in range(9)]
    stats = draw_statistics(draws, g, n_boot=50, seed=0)
    for variant, tokens in (("all draws", np.concatenate(draws)),
                            ("each token once per prompt", np.concatenate([np.unique(d) for d in draws])),
                            ("first token per prompt", np.array([d[0] for d in draws])),
                            ("distinct tokens", np.unique(np.concatenate(draws)))):
        np.testing.assert_array_equal(variant_tokens(draws, variant), tokens)
        s = stats[variant]
        regular = tokens[~g.reference[tokens]]
        assert s["median norm percentile"][0] == pytest.approx(np.median(g.norm_pct[tokens]))
        assert s["median direction percentile"][0] == pytest.approx(np.median(g.direction_pct[tokens]))
        assert s["share that are candidates"][0] == pytest.approx(g.candidate[regular].mean())
        assert s["share that are reference tokens"][0] == pytest.approx(g.reference[tokens].mean())
        lo, hi = s["median norm percentile"][1:]
        assert lo <= s["median norm percentile"][0] <= hi


# --- the repetition probe -------------------------------------------------------


def test_the_probe_puts_the_token_into_the_request_by_its_id(tiny):
    token = 270  # a word the tiny tokenizer cannot produce from its own text
    assert tiny.chat_prompt("x") is None  # so the request is the template's text and a newline
    for template in TEMPLATES:
        ids = request_tokens(tiny, template, token).tolist()
        before = tiny.tokenize(template.split("{}")[0]).tolist()
        assert ids.count(token) == 1 and ids[: len(before)] == before and ids[len(before)] == token


def test_matched_controls_share_the_probed_tokens_surface_form(tiny, tiny_path):
    types = read_matrices(tiny_path).token_types
    probed = [259, 260, 261]
    controls, exact = matched_controls(tiny, probed, set(probed), types, seed=0)
    texts = {t: tiny.token_bytes(t).decode("utf-8", errors="replace") for t in range(tiny.n_vocab)}
    prefixes = {text[:i] for text in texts.values() for i in range(1, len(text))}
    assert any(exact), "no control matched exactly: the check below would be empty"
    for p, c, e in zip(probed, controls, exact, strict=True):
        assert c not in probed
        if e:
            assert surface_form(texts[p], texts[p] in prefixes) == surface_form(texts[c], texts[c] in prefixes)


def test_a_probe_trial_scores_the_tokens_highest_probability_over_the_greedy_answer(tiny):
    token = 270
    trials = probe_tokens(tiny, {"group": [token]})
    assert [tr.template for tr in trials] == list(range(len(TEMPLATES)))
    for tr in trials:
        request = request_tokens(tiny, TEMPLATES[tr.template], token)
        answer = tiny.complete(request, 0.0, n_predict=N_ANSWER, seed=0).tokens
        z = tiny.logits(np.concatenate([request, answer]))[request.size - 1 : request.size - 1 + answer.size]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        direct = float((p[:, token] / p.sum(axis=1)).max())
        # the probe's requests share their template's prefix, which the prefix cache evaluates once: logits
        # of a sequence decoded in parts differ from one batch's in the last digits (test_sweep's tolerance)
        assert tr.max_p == pytest.approx(direct, rel=1e-2)
        assert tr.repeated == (tr.text.strip().lower() in tr.answer.lower())
