"""Which tokens negative temperature can reach at all: the vertices of the convex hull of the output rows.

As T -> 0- the draw becomes the argmin over tokens of the logit h . u_i
(no output bias: both models here have none). A token is the unique argmin
for some hidden state h exactly when its row u_j is a vertex of the convex
hull of all rows; a row inside the hull, or on a face between other rows,
is never the unique argmin, at any context. (As T -> 0+ the same holds for
the argmax, with -h.) So the hypothesis the experiment tests: T < 0
sampling finds an under-trained token only where training left its row a
vertex, pushed outward; one collapsed inside the hull is unreachable.

vertex_status decides it token by token, each answer with a certificate,
or leaves it undecided and says so:

- a vertex: a direction h for which the token is the unique argmin over
  every row (checked in float64). Two directions are tried first (away
  from the centroid, away from the origin), then the linear program below;
- inside the hull: the linear program that maximizes the margin t of
  min_i h . (u_i - u_j) over h in the unit box has the optimum t = 0 on a
  subset of the rows (h = 0 is always feasible; more rows can only lower
  t), so no direction separates u_j from the others;
- undecided: the program, which adds the most violated rows as
  constraints each round, ran out of rounds or time. Quantized rows that
  differ from their neighbours by one quantization step make it slow.

Rows identical to u_j are one point with it: they tie, and T -> 0- draws
among them evenly, so they are decided together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HullStatus", "argmin_tokens", "vertex_status"]

_BATCH = 256  # rows added to the linear program per round


@dataclass(frozen=True)
class HullStatus:
    """Per token of `ids`: whether its row is a hull vertex, and how that was decided."""

    ids: np.ndarray
    vertex: np.ndarray  # bool
    method: np.ndarray  # "direction" (found directly), "lp" (the program decided), "undecided", "not reached"
    undecided: np.ndarray  # bool: no certificate either way (vertex is then False and means "not shown")
    ties: np.ndarray  # int: other rows identical to this one


def argmin_tokens(u: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmin over rows of u . h for each column h, whether that argmin is unique) for hidden states h [d, n]."""
    z = u @ h
    low = np.partition(z, 1, axis=0)[:2] if u.shape[0] > 1 else np.vstack([z, z + 1])
    return np.argmin(z, axis=0), low[1] > low[0]


def _lp_margin(u: np.ndarray, j: int, h0: np.ndarray, same: np.ndarray, rounds: int, seconds: float
               ) -> bool | None:
    """True: u_j is a vertex; False: inside the hull of the rows other than `same`; None: undecided."""
    from scipy.optimize import linprog

    d = u.shape[1]
    uj = u[j]

    def margins(h: np.ndarray) -> np.ndarray:
        m: np.ndarray = u @ h - uj @ h
        m[same] = np.inf
        return m

    start = margins(h0)
    active = np.argsort(start)[:_BATCH]
    active = active[np.isfinite(start[active])]
    c = np.zeros(d + 1)
    c[-1] = -1.0  # maximize t
    bounds = [(-1.0, 1.0)] * d + [(None, None)]
    for _ in range(rounds):
        a = np.hstack([-(u[active] - uj), np.ones((active.size, 1))])  # t - h . (u_i - u_j) <= 0
        res = linprog(c, A_ub=a, b_ub=np.zeros(active.size), bounds=bounds, method="highs",
                      options={"time_limit": seconds})
        if res.status != 0:
            return None  # the time limit, or a numerical failure: no certificate
        h, t = res.x[:d], float(res.x[-1])
        if t <= 1e-9:
            return False
        m = margins(h)
        violated = np.flatnonzero(m < t - 1e-9)
        if violated.size == 0:
            return True
        active = np.union1d(active, violated[np.argsort(m[violated])[:_BATCH]])
    return None


def vertex_status(u: np.ndarray, ids: np.ndarray, *, lp_rounds: int = 6, lp_seconds: float = 2.0,
                  budget_seconds: float = float("inf"), chunk: int = 256) -> HullStatus:
    """Which rows u[ids] are vertices of the convex hull of all rows of u (float64 throughout).

    The program gets lp_rounds rounds of at most lp_seconds each; tokens
    are taken in the order given until budget_seconds have passed, and the
    rest are "not reached" (give a random order, and the decided ones stay
    a random sample).
    """
    import time

    deadline = time.monotonic() + budget_seconds
    u = np.asarray(u, np.float64)
    ids = np.asarray(ids, np.int64)
    _, group, counts = np.unique(u, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    centre = u.mean(axis=0)
    vertex = np.zeros(ids.size, bool)
    method = np.full(ids.size, "direction", dtype=object)
    for lo in range(0, ids.size, chunk):  # the two directions that show most vertices: away from the centre
        part = ids[lo : lo + chunk]  # and away from the origin, as matrix products over a chunk of tokens
        for h in ((centre - u[part]).T, -u[part].T):
            z = u @ h
            own = z[part, np.arange(part.size)]
            z[group[:, None] == group[part][None, :]] = np.inf
            vertex[lo : lo + chunk] |= z.min(axis=0) > own
    decided: dict[int, bool | None] = {}
    for k in np.flatnonzero(~vertex).tolist():
        j = int(ids[k])
        if group[j] not in decided:
            if time.monotonic() > deadline:
                method[k] = "not reached"
                continue
            decided[group[j]] = _lp_margin(u, j, centre - u[j], np.flatnonzero(group == group[j]), lp_rounds,
                                           lp_seconds)
        answer = decided[group[j]]
        vertex[k] = answer is True
        method[k] = "lp" if answer is not None else "undecided"
    undecided = np.isin(method, ["undecided", "not reached"])
    return HullStatus(ids, vertex, method.astype(str), undecided, counts[group[ids]] - 1)
