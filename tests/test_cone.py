"""Cone-restricted reachability, on geometries whose answer is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from negtemp.experiment.cone import cone_reach, row_groups


def circle(degrees: np.ndarray) -> np.ndarray:
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1)


# 36 rows on the unit circle at 5, 15, ..., 355 degrees: every one is a hull vertex, the argmin for h opposite it
ANGLES = np.arange(5, 360, 10)
ROWS = circle(ANGLES)
# observed hidden states at 0 and 30 degrees: the cone between them points at 180..210 degrees from the argmin's side
STATES = circle(np.array([0.0, 30.0])).T


def logits(u: np.ndarray, h: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    z = (u @ h).T
    return z if bias is None else z + bias


def test_only_the_rows_facing_the_cone_of_observed_states_are_reachable():
    r = cone_reach(logits(ROWS, STATES), np.arange(ANGLES.size), groups=row_groups(ROWS))
    assert sorted(ANGLES[r.status == "reachable"].tolist()) == [185, 195, 205]
    assert (r.status == "unreachable").sum() == ANGLES.size - 3


def test_a_token_argmin_only_on_a_tie_at_an_observed_state_needs_the_program():
    r = cone_reach(logits(ROWS, STATES), np.arange(ANGLES.size), groups=row_groups(ROWS))
    assert set(r.method[r.status == "reachable"]) == {"lp"}


def test_the_argmax_side_is_reachable_where_the_cone_points():
    r = cone_reach(logits(ROWS, STATES), np.arange(ANGLES.size), groups=row_groups(ROWS), side="max")
    assert sorted(ANGLES[r.status == "reachable"].tolist()) == [5, 15, 25]


def test_every_strict_argmin_of_a_random_cone_point_is_certified_reachable_and_none_unreachable():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((60, 5))
    h = np.abs(rng.standard_normal((5, 8)))
    r = cone_reach(logits(u, h), np.arange(60), groups=row_groups(u))
    points = h @ rng.dirichlet(np.full(8, 0.3), size=20000).T
    z = u @ points
    low = np.sort(z, axis=0)[:2]
    hit = np.unique(np.argmin(z, axis=0)[low[1] > low[0]])
    assert set(hit) <= set(np.flatnonzero(r.status == "reachable"))
    assert (r.status == "undecided").sum() == 0


def test_an_output_bias_makes_reachable_what_the_lifted_point_reaches():
    # one dimension, h >= 0: logits 0, h - 1, 2h - 3. For h < 1.5 the third is lowest, above it the first; the
    # second is never the minimum. Without the bias only the first (smallest slope) would be reachable.
    u = np.array([[0.0], [1.0], [2.0]])
    b = np.array([0.0, -1.0, -3.0])
    h = np.array([[1.0]])
    with_bias = cone_reach(logits(u, h, b), np.arange(3), groups=row_groups(u, b), bias=b)
    assert with_bias.status.tolist() == ["reachable", "unreachable", "reachable"]
    without = cone_reach(logits(u, h), np.arange(3), groups=row_groups(u))
    assert without.status.tolist() == ["reachable", "unreachable", "unreachable"]


def test_tokens_sharing_a_row_are_unreachable_alone_and_their_group_reachable_as_a_tie():
    u = np.vstack([ROWS, ROWS[ANGLES == 195]])  # token 36 is a copy of the row at 195 degrees
    r = cone_reach(logits(u, STATES), np.array([19, 36, 0]), groups=row_groups(u))
    assert r.status.tolist() == ["unreachable", "unreachable", "unreachable"]
    assert r.method.tolist()[:2] == ["shared row", "shared row"] and r.ties.tolist() == [1, 1, 0]
    assert r.tie_reachable.tolist() == [1, 1, -1]


def test_tokens_left_when_the_time_budget_runs_out_are_undecided_not_counted():
    r = cone_reach(logits(ROWS, STATES), np.arange(ANGLES.size), groups=row_groups(ROWS), budget_seconds=0.0)
    assert set(r.method) == {"not reached"} and r.counts() == {"reachable": 0, "unreachable": 0, "undecided": 36}


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_with_the_whole_space_as_the_cone_the_reachable_rows_are_qhulls_vertices(dim):
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(dim)
    u = rng.normal(size=(200, dim))
    same = [5, 7, int(np.argmax(u[:, 0]))]
    u[same] = u[same[-1]]  # three identical rows at a vertex
    u[8] = u[:4].mean(axis=0)  # a row inside
    whole = np.hstack([np.eye(dim), -np.eye(dim)])  # +-e_i span every direction
    r = cone_reach(logits(u, whole), np.arange(200), groups=row_groups(u))
    vertices = np.zeros(200, bool)
    vertices[ConvexHull(u).vertices] = True
    lone = np.ones(200, bool)
    lone[same] = False
    np.testing.assert_array_equal((r.status == "reachable")[lone], vertices[lone])
    assert (r.status[same] == "unreachable").all() and (r.tie_reachable[same] == 1).all()
    assert r.status[8] == "unreachable" and (r.method == "lp").any()
