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
from negtemp.experiment.analysis import (
    DETECTORS,
    NEIGHBOURS,
    STATS,
    Baseline,
    Geometry,
    detector_comparison,
    draw_statistics,
    indicator_table,
    null_expectations,
    teacher_statistics,
    variant_tokens,
    vocabulary_regression,
)
from negtemp.experiment.corpus import corpus_windows, teacher_forced
from negtemp.experiment.geometry import first_component, indicator_variant, reference_tokens, top_candidates
from negtemp.experiment.repetition import (
    N_ANSWER,
    TEMPLATES,
    VocabularyBytes,
    copy_probability,
    fragments,
    interaction,
    matched_controls,
    probe_tokens,
    request_tokens,
    summarize,
)
from negtemp.experiment.run import prompt_factors, varied_prompts
from negtemp.experiment.stats import (
    RankedScore,
    auc,
    average_ranks,
    bootstrap_cis,
    choice_model,
    crossed_bootstrap_cis,
    half_sample_cis,
    logistic_regression,
    odds_ratio,
    odds_ratio_ratio,
    percentile_of_all,
    rank_sum_test,
    signed_rank_test,
    wilson_interval,
)


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = run_experiment(tiny, out, n_prompts=12, n_tokens=5, n_windows=3, window=32, n_probe=3, n_cone=10,
                          n_boot=200, quiet=True)
    return out, json.loads((out / "results.json").read_text()), path.read_text()


@pytest.fixture(scope="module")
def reference(tiny, tiny_path):
    return reference_tokens(tiny, read_matrices(tiny_path).token_types).ids


def test_report_has_every_section_and_every_plot(report):
    out, _, md = report
    for heading in ("Side by side", "Free-running draws", "Geometry", "Teacher-forced", "against the geometry",
                    "Cone reachability", "repeat", "beta = 1/T"):
        assert heading in md, f"report.md lacks the section on {heading!r}"
    for name in ("norm_direction.png", "repetition_ecdf.png", "beta_sweep.png", "side_by_side.csv",
                 "token_counts.csv", "candidates_output.csv", "candidates_input.csv", "repetition_probe.csv"):
        assert (out / name).stat().st_size > 0, f"{name} missing or empty"


@pytest.mark.parametrize(("setting", "flag"), [("n_windows", "--windows"), ("n_prompts", "--prompts")])
def test_the_experiment_refuses_fewer_than_two_units_to_cross_fit(tiny, tmp_path, setting, flag):
    with pytest.raises(ValueError, match=f"{flag}.*at least 2"):
        run_experiment(tiny, tmp_path, **{setting: 1}, quiet=True)
    assert not any(tmp_path.iterdir()), "nothing should be written before the settings are checked"


def test_centroid_distances_equal_a_direct_numpy_computation(report, tiny_path):
    out, _, _ = report
    emb, tied = embedding_matrix(tiny_path)
    assert tied is False  # the tiny model has its own output.weight
    out_rows = read_matrices(tiny_path).output.astype(np.float64)
    direct = np.linalg.norm(out_rows - out_rows.mean(axis=0), axis=1)
    np.testing.assert_allclose(np.load(out / "centroid_distance_euclid_output.npy"), direct, rtol=1e-5)
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
        return [float(np.concatenate(units).mean())]

    (point, lo, hi), = bootstrap_cis(clusters, mean, n_boot=500, seed=7)
    rng = np.random.default_rng(7)
    reps = [mean([clusters[i] for i in rng.integers(0, 6, 6)])[0] for _ in range(500)]
    assert (point, lo, hi) == pytest.approx((mean(clusters)[0], *np.percentile(reps, [2.5, 97.5])))
    draws = list(np.concatenate(clusters))
    (_, lo_iid, hi_iid), = bootstrap_cis(draws, lambda u: [float(np.mean(u))], n_boot=500, seed=7)
    assert hi - lo > 2 * (hi_iid - lo_iid), "resampling draws instead of clusters should look far more certain"


def test_the_crossed_bootstrap_resamples_rows_and_columns_and_keeps_every_drawn_cell():
    rng = np.random.default_rng(2)
    row_effect, col_effect = rng.normal(0, 3, 4), rng.normal(0, 3, 5)
    cells = {(r, c): [np.array([row_effect[r] + col_effect[c] + rng.normal()])] for r in range(4) for c in range(5)}

    def mean(units):
        return [float(np.concatenate(units).mean())]

    (point, lo, hi), = crossed_bootstrap_cis(cells, mean, n_boot=300, seed=4)
    rng = np.random.default_rng(4)
    reps = []
    for _ in range(300):
        rs, cs = rng.integers(0, 4, 4), rng.integers(0, 5, 5)
        reps.append(np.mean([cells[(r, c)][0][0] for r in rs for c in cs]))
    assert (point, lo, hi) == pytest.approx((np.mean([v[0] for v in cells.values()]),
                                             *np.percentile(reps, [2.5, 97.5])))
    (_, lo_one, hi_one), = bootstrap_cis([u for v in cells.values() for u in v], mean, n_boot=300, seed=4)
    assert hi - lo > 1.5 * (hi_one - lo_one), "with strong row and column effects, resampling cells alone is too sure"


def test_half_samples_give_the_spread_of_a_mean_over_every_unit():
    rng = np.random.default_rng(12)
    units = rng.normal(3, 2, 400).tolist()
    (point, lo, hi), = half_sample_cis(units, lambda u: [float(np.mean(u))], n_rep=400, seed=1)
    assert point == pytest.approx(np.mean(units))
    assert (hi - lo) / 2 == pytest.approx(1.96 * 2 / np.sqrt(400), rel=0.15)
    assert lo < point < hi


def test_half_samples_stay_centred_where_a_resample_of_distinct_tokens_would_not_be():
    rng = np.random.default_rng(13)
    units = [rng.choice(1000, 5) for _ in range(40)]
    distinct = lambda u: [float(np.unique(np.concatenate(u)).size)]  # noqa: E731
    (point, lo, hi), = half_sample_cis(units, distinct, n_rep=200, seed=0)
    (_, _, boot_hi), = bootstrap_cis(units, distinct, n_boot=200, seed=0)
    assert boot_hi < point, "a resample repeats units, so it picks fewer distinct tokens"
    assert lo < point < hi


def test_auc_is_the_share_of_pairs_ordered_right_with_ties_counting_half():
    a, b = [0.3, 0.9, 0.5, 0.5], [0.5, 0.1, 0.7]
    direct = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert auc(a, b) == pytest.approx(direct, abs=1e-12)
    assert auc([2, 3], [0, 1]) == 1.0


def test_the_wilson_interval_equals_scipys():
    from scipy.stats import binomtest

    for k, n in ((0, 7), (3, 10), (40, 40), (17, 200)):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert wilson_interval(k, n) == pytest.approx((k / n, ci.low, ci.high), abs=1e-9)


def _logistic_data(seed=0, n=400, per_cluster=4):
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.random(n) < 0.5])
    shared = np.repeat(rng.normal(0, 1.5, n // per_cluster), per_cluster)  # what rows of one cluster share
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.2 + 0.8 * x[:, 1] - 0.6 * x[:, 2] + shared)))).astype(float)
    return x, y, np.arange(n) // per_cluster


def test_logistic_regression_maximizes_the_likelihood_as_scipy_finds_it():
    from scipy.optimize import minimize

    x, y, _ = _logistic_data()
    fit = logistic_regression(x, y, ("c", "a", "b"))

    def nll(beta):
        eta = x @ beta
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    best = minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(fit.coef, best, atol=1e-5)
    p = 1 / (1 + np.exp(-(x @ fit.coef)))
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None])))))


def test_cluster_robust_errors_equal_the_sandwich_summed_cluster_by_cluster():
    x, y, clusters = _logistic_data()
    fit = logistic_regression(x, y, ("c", "a", "b"), clusters=clusters)
    p = 1 / (1 + np.exp(-(x @ fit.coef)))
    bread = np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None]))
    meat = np.zeros((3, 3))
    for g in np.unique(clusters):
        s = (x[clusters == g] * (y - p)[clusters == g, None]).sum(axis=0)
        meat += np.outer(s, s)
    g = np.unique(clusters).size
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(bread @ meat @ bread * g / (g - 1))), rtol=1e-8)
    assert fit.clusters == g
    model_based = logistic_regression(x, y, ("c", "a", "b"))
    assert fit.se[2] > model_based.se[2], "rows that share a cluster effect should widen the errors"


def test_the_signed_rank_test_equals_enumerating_every_sign_pattern():
    d = np.array([0.4, -0.1, 0.25, 0.4, -0.05, 0.0, 0.3, -0.4, 0.2])
    nonzero = d[d != 0]
    ranks = direct_average_ranks(np.abs(nonzero))
    mean = ranks.sum() / 2
    observed = abs(ranks[nonzero > 0].sum() - mean)
    patterns = list(itertools.product((0, 1), repeat=nonzero.size))
    direct = sum(abs(ranks[np.array(p, bool)].sum() - mean) >= observed - 1e-9 for p in patterns) / len(patterns)
    assert signed_rank_test(d) == pytest.approx(direct, abs=1e-12)
    assert signed_rank_test(np.arange(1, 11)) == pytest.approx(2 / 2**10, abs=1e-15)


def test_odds_ratios_and_their_ratio_equal_a_saturated_logistic_model():
    cells = {(1, 1): (14, 6), (1, 0): (5, 15), (0, 1): (9, 11), (0, 0): (6, 14)}  # (reached, candidate): yes, no
    rows = [(r, c, float(y)) for (r, c), (yes, no) in cells.items() for y in [1] * yes + [0] * no]
    x = np.array([[1.0, r, c, r * c] for r, c, _ in rows])
    fit = logistic_regression(x, np.array([y for *_, y in rows]), ("c", "reached", "candidate", "both"))
    reached = odds_ratio(*cells[(1, 1)], *cells[(1, 0)])
    never = odds_ratio(*cells[(0, 1)], *cells[(0, 0)])
    assert never.value == pytest.approx(np.exp(fit.coef[2])) and never.log_se == pytest.approx(fit.se[2])
    both = odds_ratio_ratio(reached, never)
    assert both.value == pytest.approx(np.exp(fit.coef[3])) and both.log_se == pytest.approx(fit.se[3])
    assert both.p == pytest.approx(fit.p[3]) and both.low < both.value < both.high


def test_an_empty_cell_keeps_the_odds_ratio_finite():
    r = odds_ratio(0, 30, 12, 18)
    assert r.corrected and r.value == pytest.approx((0.5 * 18.5) / (30.5 * 12.5)) and 0 < r.low < r.high < 1


def test_the_interaction_compares_candidates_with_non_candidates_reached_and_never_reached():
    scores = {"rc": [0.001] * 9 + [0.5], "rn": [0.5] * 9 + [0.001], "nc": [0.5] * 5 + [0.001] * 5,
              "nn": [0.5] * 5 + [0.001] * 5}
    d = interaction(scores, ("rc", "rn"), ("nc", "nn"))
    assert d["odds ratio, candidates vs not: reached"]["odds ratio"] == pytest.approx(81)
    assert d["odds ratio, candidates vs not: never reached"]["odds ratio"] == pytest.approx(1)
    x = d["interaction (ratio of the odds ratios)"]
    assert x["odds ratio"] == pytest.approx(81) and x["p"] < 0.05
    assert d["rc"][0] == 0.9
    logs = {g: np.log10(v) for g, v in scores.items()}
    direct = (logs["rc"].mean() - logs["rn"].mean()) - (logs["nc"].mean() - logs["nn"].mean())
    ls = d["interaction in mean log10 score"]
    assert ls["difference of differences"] == pytest.approx(direct) and direct < 0
    se = np.sqrt(sum(v.var(ddof=1) / v.size for v in logs.values()))
    assert ls["95% interval"] == pytest.approx([direct - 1.959964 * se, direct + 1.959964 * se])


def test_ranked_scores_give_the_auc_of_any_subset():
    rng = np.random.default_rng(2)
    score = rng.integers(0, 20, 300).astype(float)
    ranked = RankedScore(score)
    for _ in range(5):
        mask = rng.random(300) < 0.2
        assert ranked.auc(mask) == pytest.approx(auc(score[mask], score[~mask]))


def test_teacher_forced_statistics_cross_fit_each_window_against_the_other_half():
    rng = np.random.default_rng(10)
    g = _random_geometry(rng)
    same, odd_half, even_half = rng.random(50) < 0.3, rng.random(50) < 0.3, rng.random(50) < 0.3
    argmins = [rng.integers(0, 50, 8) for _ in range(6)]
    s = teacher_statistics(argmins, g, Baseline(same, (odd_half, even_half)), rng.normal(5, 1, 50), n_boot=50,
                           seed=0)
    direct = np.concatenate([(odd_half if k % 2 == 0 else even_half)[a] for k, a in enumerate(argmins)]).mean()
    assert s["all positions"]["share in the cross-fitted bottom 2%"][0] == pytest.approx(direct)
    assert s["all positions"]["share in the context-free bottom 2%"][0] == pytest.approx(
        same[np.concatenate(argmins)].mean())


def test_logistic_regression_flags_separated_data():
    x = np.column_stack([np.ones(20), np.r_[np.zeros(10), np.ones(10)]])
    y = np.r_[np.zeros(10), np.ones(10)]
    assert not logistic_regression(x, y, ("c", "group")).converged


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


def test_the_indicator_variants_equal_direct_computations(tiny_path, reference):
    mats = read_matrices(tiny_path)
    w = mats.output.astype(np.float64)
    pc_raw = np.linalg.svd(w, full_matrices=False)[2][0]
    x = w - np.outer(w @ pc_raw, pc_raw)
    r = x[reference].mean(axis=0)
    direct = x @ r / (np.linalg.norm(x, axis=1) * np.linalg.norm(r))
    np.testing.assert_allclose(indicator_variant("first PC removed", mats.output, mats.input, reference), direct,
                               atol=1e-5)
    np.testing.assert_allclose(indicator_variant("small input norm", mats.output, mats.input, reference),
                               -np.linalg.norm(mats.input.astype(np.float64), axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown indicator"):
        indicator_variant("largest", mats.output, mats.input, reference)


def test_the_first_component_points_where_the_rows_mean_coordinate_is_positive(tiny_path):
    w = read_matrices(tiny_path).output
    for rows in (w, -w):
        pc = first_component(rows)
        assert float(np.mean(rows @ pc)) >= 0
        x = rows.astype(np.float64) - rows.mean(axis=0)
        assert abs(abs(pc @ np.linalg.svd(x, full_matrices=False)[2][0]) - 1) < 1e-6


# --- the analysis -------------------------------------------------------------


def test_the_overlap_with_candidates_and_its_chance_level_equal_a_direct_count(report, reference):
    out, results, _ = report
    with open(out / "candidates_output.csv") as f:
        candidates = {int(r["token"]) for r in csv.DictReader(f)}
    with open(out / "token_counts.csv") as f:
        neg = {int(r["token"]) for r in csv.DictReader(f) if int(r["count_T_-0.001"]) > 0}
    regular = neg - set(reference.tolist())
    n = results["draws"]["-0.001"]["candidates among distinct tokens"]
    assert n["observed"] == len(regular & candidates) and n["tokens"] == len(regular)
    pool = results["n_vocab"] - reference.size
    assert n["uniform"] == pytest.approx(len(regular) * len(candidates) / pool)


def _random_geometry(rng, n=50):
    return Geometry(rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.random(n) < 0.2,
                    rng.random(n) < 0.1)


def test_draw_statistics_equal_direct_numbers_for_every_variant():
    rng = np.random.default_rng(5)
    g = _random_geometry(rng)
    g.candidate[g.reference] = False
    static = rng.random(50) < 0.3
    halves = (rng.random(50) < 0.3, rng.random(50) < 0.3)
    draws = [rng.integers(0, 50, 6) for _ in range(12)]
    stats = draw_statistics(draws, prompt_factors(12), g, Baseline(static, halves), rng.normal(5, 1, 50), n_boot=50,
                            seed=0)
    per_prompt = {"all draws": draws, "each token once per prompt": [np.unique(d) for d in draws],
                  "first token per prompt": [d[:1] for d in draws]}
    for variant, tokens in (("all draws", np.concatenate(draws)),
                            ("each token once per prompt", np.concatenate([np.unique(d) for d in draws])),
                            ("first token per prompt", np.array([d[0] for d in draws])),
                            ("distinct tokens", np.unique(np.concatenate(draws)))):
        np.testing.assert_array_equal(variant_tokens(draws, variant), tokens)
        s = stats[variant]
        regular = tokens[~g.reference[tokens]]
        direct = {"mean norm percentile": g.norm_pct[tokens].mean(),
                  "mean direction percentile": g.direction_pct[tokens].mean(),
                  "share norm percentile >= 90": (g.norm_pct[tokens] >= 90).mean(),
                  "share direction percentile >= 90": (g.direction_pct[tokens] >= 90).mean(),
                  "share candidates of all": g.candidate[tokens].mean(),
                  "share candidates of non-reference": g.candidate[regular].mean(),
                  "share reference": g.reference[tokens].mean(),
                  "share in the context-free bottom 2%": static[tokens].mean(),
                  # prompt i's picks against the bottom 2% of the other half of the prompts (parity of i)
                  "share in the cross-fitted bottom 2%": np.concatenate(
                      [halves[i % 2][d] for i, d in enumerate(per_prompt[variant])]).mean()
                  if variant in per_prompt else float("nan"),
                  "mean first-PC percentile": g.pc1_pct[tokens].mean()}
        assert set(direct) == set(STATS)
        for name, value in direct.items():
            assert s[name][0] == pytest.approx(value, nan_ok=True), f"{variant}: {name}"
            if variant == "distinct tokens" or value != value:  # a resample sees fewer distinct tokens
                assert np.isnan(s[name][1:]).all(), f"{variant}: {name}"
            else:
                assert s[name][1] <= s[name][0] + 1e-12 and s[name][0] <= s[name][2] + 1e-12, f"{variant}: {name}"


def test_the_prompts_are_the_crossed_grid_the_bootstrap_resamples():
    from negtemp.experiment.run import _SUBJECTS

    prompts, factors = varied_prompts(300), prompt_factors(300)
    assert len(set(prompts)) == 300 and len(set(factors)) == 300
    subject_of = {}
    for p, (_, s) in zip(prompts, factors, strict=True):
        subject_of.setdefault(s, set()).add(next(x for x in _SUBJECTS if x in p))
    assert len(subject_of) == 20 and all(len(v) == 1 for v in subject_of.values()), "a subject factor mixes subjects"
    template_of = {}
    for p, (t, s) in zip(prompts, factors, strict=True):
        template_of.setdefault(t, set()).add(p.replace(next(iter(subject_of[s])), "{}"))
    assert len(template_of) == 15 and all(len(v) == 1 for v in template_of.values()), "a template factor mixes"


def test_the_norm_matched_null_is_the_candidate_rate_of_each_tokens_nearest_unpicked_tokens_by_norm():
    rng = np.random.default_rng(3)
    g = _random_geometry(rng, 400)
    g.candidate[g.reference] = False
    norm = rng.normal(5, 1, 400)
    distinct = rng.choice(400, 60, replace=False)
    n = null_expectations(distinct, g, norm)
    regular = distinct[~g.reference[distinct]]
    pool = np.flatnonzero(~g.reference)
    unpicked = np.setdiff1d(pool, regular)
    nearest = {t: unpicked[np.argsort(np.abs(norm[unpicked] - norm[t]))[:NEIGHBOURS]] for t in regular}
    assert n["norm-matched"] == pytest.approx(sum(g.candidate[nearest[t]].mean() for t in regular))
    matched = np.concatenate(list(nearest.values()))
    smd = (norm[regular].mean() - norm[matched].mean()) / np.sqrt((norm[regular].var() + norm[matched].var()) / 2)
    assert n["balance: norm standardized difference"] == pytest.approx(smd)
    assert abs(smd) < 0.1, "ten nearest neighbours in 340 tokens should balance the norms"
    assert n["uniform"] == pytest.approx(regular.size * g.candidate[pool].mean())
    assert n["observed"] == g.candidate[regular].sum()


def test_the_norm_matched_null_finds_the_enrichment_that_norm_alone_does_not_explain():
    rng = np.random.default_rng(8)
    g = _random_geometry(rng, 2000)
    g.reference[:] = False
    norm = rng.normal(5, 1, 2000)
    large = norm > 6
    by_norm = np.argsort(-norm)[:80]
    g.candidate[:] = large & (rng.random(2000) < 0.5)  # half the large rows: the picks are enriched by norm alone
    explained = null_expectations(by_norm, g, norm)
    assert explained["observed"] > 5 * explained["uniform"]
    assert explained["p observed vs norm-matched"] > 0.01
    g.candidate[:] = large & (rng.random(2000) < 0.3)
    g.candidate[by_norm] = True  # every picked token, and only 30% of the other large rows
    enriched = null_expectations(by_norm, g, norm)
    assert enriched["p observed vs norm-matched"] < 1e-6


def test_the_indicator_table_counts_candidates_per_cutoff_and_its_auc():
    rng = np.random.default_rng(4)
    score = rng.normal(size=500)
    reference = np.arange(10)
    reached = rng.choice(np.arange(10, 500), 40, replace=False)
    table = indicator_table({"s": score}, reference, {"r": reached}, (0.02, 0.05))["s"]["r"]
    for cut in (0.02, 0.05):
        cand = set(top_candidates(score, reference, cut).tolist())
        share = np.mean([t in cand for t in reached])
        assert table[f"{100 * cut:g}%"]["share"] == pytest.approx(share)
        assert table[f"{100 * cut:g}%"]["enrichment"] == pytest.approx(share / cut)
    others = np.setdiff1d(np.arange(10, 500), reached)
    assert table["auc"] == pytest.approx(auc(score[reached], score[others]))


def test_the_vocabulary_regression_fits_every_pick_and_every_distinct_token():
    rng = np.random.default_rng(6)
    norm, direction = rng.normal(5, 1, 300), rng.normal(0, 0.1, 300)
    reference = np.arange(5)
    likely = np.flatnonzero(norm + rng.normal(0, 0.5, 300) > 6)
    units = [rng.choice(np.r_[likely, reference], 4) for _ in range(20)]
    v = vocabulary_regression(units, norm, direction, reference, n_boot=100, seed=0)
    pool = np.arange(5, 300)
    z = lambda a: (a[pool] - a[pool].mean()) / a[pool].std()  # noqa: E731
    x = np.column_stack([z(norm), z(direction)])
    picked = np.concatenate(units)
    picked = picked[picked >= 5] - 5  # reference picks are not choices among the pool
    theta = choice_model(x, x[picked].mean(axis=0))[0]
    e = v["per pick"]
    assert v["picks"] == picked.size
    assert e["coef norm (sd)"][0] == pytest.approx(theta[0]) and e["coef norm (sd)"][0] > 1
    others = lambda t: np.delete(norm[pool], t)  # noqa: E731
    assert e["auc norm"][0] == pytest.approx(np.mean([auc([norm[pool][t]], others(t)) for t in picked]))
    low, high = e["coef norm (sd)"][1:]
    assert low < theta[0] < high and high - low > 0.1, "the interval should come from resampled units"
    y = np.isin(np.arange(pool.size), picked)
    fit = logistic_regression(np.column_stack([np.ones(pool.size), x]), y.astype(float), ("c", "n", "d"))
    d = v["per distinct token"]
    assert v["reached"] == y.sum() and d["coef norm (sd)"] == pytest.approx(fit.coef[1])
    assert d["auc norm"] == pytest.approx(auc(norm[pool][y], norm[pool][~y]))


def test_the_choice_model_maximizes_the_conditional_likelihood_as_scipy_finds_it():
    from scipy.optimize import minimize

    rng = np.random.default_rng(11)
    x = rng.normal(size=(500, 2))
    chosen = rng.choice(500, 200, p=np.exp(x @ [1.5, -0.5]) / np.exp(x @ [1.5, -0.5]).sum())

    def nll(t):
        eta = x @ t
        return float(-(eta[chosen].sum() - chosen.size * (np.log(np.exp(eta - eta.max()).sum()) + eta.max())))

    best = minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-9}).x
    theta, converged = choice_model(x, x[chosen].mean(axis=0))
    assert converged
    np.testing.assert_allclose(theta, best, atol=1e-4)
    assert abs(theta[0] - 1.5) < 0.5


def test_the_detectors_precision_and_auc_equal_direct_counts():
    rng = np.random.default_rng(9)
    n = 200
    norm = rng.normal(5, 1, n)
    window_means = rng.normal(0, 1, (6, n)).astype(np.float32)
    argmins = [rng.choice(30, 10) for _ in range(6)]
    truth = np.arange(0, 60, 3)
    pool = np.arange(n)
    d = detector_comparison(argmins, window_means, norm, {"t": (truth, pool)}, n_boot=50, seed=0)["t"]
    counts = np.bincount(np.concatenate(argmins), minlength=n)
    k = int((counts > 0).sum())
    is_true = np.isin(pool, truth)
    h_mean = window_means.mean(axis=0)
    direct = {"T -> 0- picks (by count)": (is_true[counts > 0].mean(), auc(counts[is_true], counts[~is_true])),
              "bottom of u . h_mean": (is_true[np.argsort(h_mean)[:k]].mean(),
                                       auc(-h_mean[is_true], -h_mean[~is_true])),
              "largest norm": (is_true[np.argsort(-norm)[:k]].mean(), auc(norm[is_true], norm[~is_true]))}
    assert d["k"] == k and set(direct) == set(DETECTORS)
    for name, (precision, area) in direct.items():
        assert d["precision at k"][name][0] == pytest.approx(precision), name
        assert d["auc"][name][0] == pytest.approx(area, abs=1e-6), name


# --- the teacher-forced measure -------------------------------------------------


def test_teacher_forced_argmins_are_the_argmins_of_each_windows_logits(tiny):
    windows, about = corpus_windows(tiny, 2, 16)
    tf = teacher_forced(tiny, windows)
    assert about["windows"] == 2 and len(about["topics"]) == 2 and about["name"].startswith("pydoc_data.topics")
    total = np.zeros(tiny.n_vocab)
    for (_, tokens), lo, hi, mean in zip(windows, tf.argmin, tf.argmax, tf.window_mean_logits, strict=True):
        z = tiny.logits(tokens)
        np.testing.assert_array_equal(lo, z.argmin(axis=1))
        np.testing.assert_array_equal(hi, z.argmax(axis=1))
        np.testing.assert_allclose(mean, z.mean(axis=0), rtol=1e-5, atol=1e-5)
        total += z.sum(axis=0)
    np.testing.assert_allclose(tf.mean_logits, total / 32, rtol=1e-5)


def test_the_corpus_refuses_more_windows_than_it_has(tiny):
    with pytest.raises(ValueError, match="at most"):
        corpus_windows(tiny, 10_000, 16)


# --- the repetition probe -------------------------------------------------------


def test_the_probe_puts_the_token_into_the_request_by_its_id_with_the_tokens_own_spacing(tiny):
    words = {t: tiny.token_bytes(t) for t in range(tiny.n_vocab)}
    picks = [next(t for t, b in words.items() if b[:1] == b" " and b[1:].isalpha() and len(b) > 2),
             next(t for t, b in words.items() if b.isalpha() and len(b) > 1)]
    for token in picks:
        spaced = words[token].startswith(b" ")
        for k, (first, second, examples) in enumerate(TEMPLATES):
            ids = request_tokens(tiny, k, token).tolist()
            at = len(ids) - 1 - ids[::-1].index(token)
            assert tiny.detokenize(ids[at + 1 :]) == f"\n{second}", "the cue does not follow the token"
            text = tiny.detokenize(ids)
            word = tiny.token_bytes(token).decode("utf-8", errors="replace")
            assert f"{first}{word}\n{second}" in text
            assert f"{first}{' ' if spaced else ''}{examples[0]}\n" in text
            assert "  " not in text, "a doubled space"


def test_fragments_are_prefixes_or_suffixes_of_other_tokens():
    texts = {0: " Confuci", 1: " Confucius", 2: "emeteries", 3: " cemeteries", 4: "table", 5: " chair"}
    assert fragments(texts) == {0, 2}


def test_matched_controls_are_the_nearest_of_the_same_kind_in_frequency_and_norm(tiny, tiny_path):
    from scipy.stats import rankdata

    mats = read_matrices(tiny_path)
    norm = np.linalg.norm(mats.output, axis=1).astype(np.float64)
    probed = [259, 260, 261]
    match = matched_controls(tiny, probed, set(probed), mats.token_types, norm, mats.frequency_rank)
    normal = np.flatnonzero(mats.token_types == 1)
    texts = {int(t): tiny.token_bytes(int(t)).decode("utf-8", errors="replace") for t in normal}
    frag = fragments(texts)
    pct = {}
    for name, v in (("f", mats.frequency_rank[normal].astype(float)), ("n", norm[normal])):
        pct[name] = dict(zip(normal.tolist(), 100 * (rankdata(v) - 1) / (normal.size - 1), strict=True))

    def kind(t):
        return texts[t].startswith(" "), texts[t].strip().isalpha(), t in frag

    used = set()
    assert all(match.same_kind), "a control of another kind: the check below assumes none"
    for p, c in zip(probed, match.controls, strict=True):
        free = [t for t in texts if t not in used and t not in probed and kind(t) == kind(p)
                and texts[t].strip() and texts[t].isprintable()]
        dist = {t: np.hypot(pct["f"][t] - pct["f"][p], pct["n"][t] - pct["n"][p]) for t in free}
        assert dist[c] == pytest.approx(min(dist.values())), f"control {c} of {p} is not the nearest"
        used.add(c)


def test_a_probe_trial_scores_the_probability_that_the_copy_spells_the_token(tiny):
    token = 270
    trials = probe_tokens(tiny, {"group": [token]})
    assert [tr.template for tr in trials] == list(range(len(TEMPLATES)))
    vocab = VocabularyBytes(tiny)
    for tr in trials:
        request = request_tokens(tiny, tr.template, token)
        z = tiny.logits(request)[-1].astype(np.float64)
        direct = float(np.exp(z[token] - z.max()) / np.exp(z - z.max()).sum())
        # the probe's requests share their examples, which the prefix cache evaluates once: logits of a sequence
        # decoded in parts differ from one batch's in the last digits (test_sweep's tolerance)
        assert tr.p_token == pytest.approx(direct, rel=1e-2, abs=1e-9)
        # the f16 KV cache rounds per batch, to about 1e-3 of the logits' scale (about 20 here): a few percent
        again = copy_probability(tiny, request, tiny.token_bytes(token), vocab)
        assert tr.p == pytest.approx(again, rel=5e-2) and tr.p >= tr.p_token * (1 - 5e-2)
        answer = tiny.complete(request, 0.0, n_predict=N_ANSWER, seed=0).text
        assert tr.repeated == answer.startswith(tr.text)


def test_a_token_in_two_groups_is_probed_once_and_reported_in_both(tiny):
    calls = []
    original = tiny.complete

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    tiny.complete = counting
    try:
        once = probe_tokens(tiny, {"a": [270]})
        n_once = len(calls)
        twice = probe_tokens(tiny, {"a": [270], "b": [270]})
    finally:
        del tiny.complete
    assert len(calls) == 2 * n_once, "the second group should reuse the first's trials"
    assert [(tr.group, tr.p) for tr in twice] == [("a", tr.p) for tr in once] + [("b", tr.p) for tr in once]


def test_the_probe_summary_takes_each_tokens_best_template_and_clusters_its_trials():
    from negtemp.experiment.repetition import ProbeTrial

    trials = [ProbeTrial(g, t, "x", k, p, rep, "") for g, t, k, p, rep in [
        ("a", 1, 0, 0.1, False), ("a", 1, 1, 0.3, True), ("a", 2, 0, 0.01, False), ("a", 2, 1, 0.02, False),
        ("c", 3, 0, 0.5, True), ("c", 3, 1, 0.6, True), ("c", 4, 0, 0.2, False), ("c", 4, 1, 0.4, True)]]
    s = summarize(trials, {"a": "c"}, {"a": [(1, 4), (2, 3)]})["a"]
    assert s["scores"] == [0.3, 0.02] and s["repeat_rate"] == 0.25
    assert s["auc_score_vs_controls"] == auc([0.3, 0.02], [0.6, 0.4])
    assert s["repeated_model"]["clusters"] == 4
    assert s["matched pairs"] == 2 and s["p_score_matched_pairs"] == signed_rank_test([0.3 - 0.4, 0.02 - 0.6])
    odds, low, high = s["odds_ratio_repeated"]
    assert low < odds < high


def test_the_context_free_ranking_of_the_draws_is_the_mean_of_the_logits_after_each_prompt(tiny):
    from negtemp.experiment.run import bottom, draw_tokens

    prompts = varied_prompts(3)
    draws, means, seed_check = draw_tokens(tiny, prompts, 4, 1, quiet=True)
    each = np.array([tiny.logits(tiny.tokenize(p))[-1] for p in prompts])
    # the prompts come from the prefix cache, whose logits differ from one batch's in the last digits
    for got, direct in zip(means, (each.mean(axis=0), each[0::2].mean(axis=0), each[1::2].mean(axis=0)),
                           strict=True):
        np.testing.assert_allclose(got, direct, atol=2e-2)
    mean_logits = means[0]
    assert all(d.size == 4 for d in draws[-0.001]) and seed_check["prompts"] == 3
    low = bottom(mean_logits)
    assert low.sum() == round(0.02 * tiny.n_vocab)
    assert mean_logits[low].max() <= mean_logits[~low].min()
