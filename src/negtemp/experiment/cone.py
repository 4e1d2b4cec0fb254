"""Which tokens T -> 0- can reach from the hidden states a model actually produces: cone-restricted reachability.

As T -> 0- the draw becomes the argmin over tokens of the logit u_i . h + b_i.
Over every h in R^d, almost every row of a 576-dimensional vocabulary is a
hull vertex, so "some h makes it the argmin" excludes almost nothing. The
model's final hidden states are not arbitrary: this asks instead whether
some h in the *cone* of observed hidden states, h = H lambda with
lambda >= 0 (H the final hidden states at the positions of a corpus), makes
token j the strict argmin.

Nothing here needs H itself: the logits at the observed positions are
Z = U H + b, so for h = H lambda the logits are (Z - b) lambda + b. With an
output bias, scaling h changes the argmin, and the question is whether
(lambda, s), s > 0, makes j the strict argmin of (Z - b) lambda + b s: the
lifted points (columns of Z - b, and b) with the last coordinate positive.
The strict inequalities are open, so a solution with s = 0 extends to a
small s > 0, and one linear program over the simplex of (lambda, s)
decides both cases:

    maximize t  subject to  ((G_i - G_j) . mu) >= t for every token i not tied with j,
                            mu >= 0, sum(mu) = 1,

with G the generators (the columns of Z - b, and b when there is a bias).
A mu that gives every row a positive margin, checked in float64, makes
the token reachable: a certificate. t <= 0 (within 1e-9 of the generators'
scale) on a subset of the rows makes it unreachable, since more rows can
only lower t; that answer rests on the solver's optimum, not on a dual
certificate checked here. Rows are added as they are violated; a token the
program does not settle within its rounds or time is undecided, and is
never counted as either. The time budget is checked between tokens, so one
token may run past it by its own rounds. lambda = 0 with s > 0 is the state
h = 0, whose logits are the bias alone: with a bias, the token of the
lowest bias is reachable there.

Rows identical to j's (collapsed rows) are one point with it: they tie at
every h, so none of them is ever the strict argmin, and T -> 0- draws among
them evenly where their shared row is the minimum. Such a token is
unreachable on its own, decided exactly; whether its group is reachable as
a tie is decided by the same program without the group's rows.

The T -> 0+ side (argmax) is the same question on -G.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["ConeReach", "argmin_tokens", "cone_reach", "row_groups"]

_BATCH = 256  # rows added to the linear program per round


@dataclass(frozen=True)
class ConeReach:
    """Per token of `ids`: whether some hidden state in the cone of the observed ones makes it the strict argmin
    (argmax for side "max"), and how that was decided."""

    ids: np.ndarray
    status: np.ndarray  # "reachable", "unreachable", "undecided"
    method: np.ndarray  # "observed" (an observed state), "lp", "shared row", "undecided", "not reached"
    ties: np.ndarray  # int: other tokens whose row is identical
    tie_reachable: np.ndarray  # for a shared row: 1 if the group is reachable as a tie, 0 if not, -1 undecided

    def counts(self) -> dict[str, int]:
        return {s: int((self.status == s).sum()) for s in ("reachable", "unreachable", "undecided")}


def row_groups(u: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Each token's group: tokens with identical output rows (and biases) share one."""
    rows = np.asarray(u) if bias is None else np.hstack([np.asarray(u), np.asarray(bias).reshape(-1, 1)])
    _, group = np.unique(rows, axis=0, return_inverse=True)
    return np.asarray(group).reshape(-1)


def argmin_tokens(u: np.ndarray, h: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(argmin over rows of u . h + b for each column h, whether that argmin is unique) for hidden states h [d, n]."""
    z = u @ h if bias is None else u @ h + bias[:, None]
    low = np.partition(z, 1, axis=0)[:2] if u.shape[0] > 1 else np.vstack([z, z + 1])
    return np.argmin(z, axis=0), low[1] > low[0]


def _generators(z: np.ndarray, bias: np.ndarray | None, side: Literal["min", "max"]) -> np.ndarray:
    """[n_vocab, k] float32: the columns of Z - b (one per observed state), then b when there is a bias."""
    g = np.ascontiguousarray(np.asarray(z, np.float32).T)
    if bias is not None and np.any(bias != 0):
        b = np.asarray(bias, np.float32)
        g = np.hstack([g - b[:, None], b[:, None]])
    return -g if side == "max" else g


def _values(g: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """g . mu for every row, in float64 (a chunk of rows at a time: g stays float32)."""
    out = np.empty(g.shape[0])
    for lo in range(0, g.shape[0], 16384):
        out[lo:lo + 16384] = g[lo:lo + 16384].astype(np.float64) @ mu
    return out


def _lp(g: np.ndarray, j: int, others: np.ndarray, scale: float, rounds: int, seconds: float) -> bool | None:
    """True: some mu makes j the strict argmin over the rows where `others` is set (checked on every one);
    False: none does; None: undecided. `scale` (the largest |g|) sets the tolerances."""
    from scipy.optimize import linprog

    k = g.shape[1]
    gj = g[j].astype(np.float64)

    def margins(mu: np.ndarray) -> np.ndarray:
        m: np.ndarray = _values(g, mu) - gj @ mu
        m[~others] = np.inf
        return m

    active = np.argsort(margins(np.full(k, 1.0 / k)))[:_BATCH]
    active = active[others[active]]
    c = np.zeros(k + 1)
    c[-1] = -1.0  # maximize t
    a_eq = np.hstack([np.ones((1, k)), np.zeros((1, 1))])
    bounds = [(0.0, None)] * k + [(None, None)]
    for _ in range(rounds):
        a_ub = np.hstack([-(g[active].astype(np.float64) - gj), np.ones((active.size, 1))])  # t <= (g_i - g_j).mu
        res = linprog(c, A_ub=a_ub, b_ub=np.zeros(active.size), A_eq=a_eq, b_eq=[1.0], bounds=bounds,
                      method="highs", options={"time_limit": seconds})
        if res.status != 0:
            return None  # the time limit, or a numerical failure: no certificate
        mu, t = np.maximum(res.x[:k], 0.0), float(res.x[-1])
        m = margins(mu)
        if m.min() > 1e-12 * scale:
            return True  # mu is checked on every row: a certificate whatever the solver's tolerances
        if t <= 1e-9 * scale:
            return False
        violated = np.setdiff1d(np.flatnonzero(m < t - 1e-9 * scale), active)
        if violated.size == 0:
            return None  # the rows fail only within the solver's tolerance: another round would not settle it
        active = np.union1d(active, violated[np.argsort(m[violated])[:_BATCH]])
    return None


def cone_reach(z: np.ndarray, ids: np.ndarray, *, groups: np.ndarray, bias: np.ndarray | None = None,
               side: Literal["min", "max"] = "min", lp_rounds: int = 8, lp_seconds: float = 5.0,
               budget_seconds: float = float("inf")) -> ConeReach:
    """Decide cone reachability for the tokens `ids`, given the logits z [positions, n_vocab] at the observed
    states, each token's row group (`row_groups` of the output matrix) and the output bias if the model has one.

    Tokens are taken in the order given until budget_seconds have passed; the rest are "not reached" (give a
    random order, and the decided ones stay a random sample).
    """
    deadline = time.monotonic() + budget_seconds
    z = np.asarray(z, np.float32)
    ids = np.asarray(ids, np.int64)
    g = _generators(z, bias, side)
    scale = max(float(np.abs(g).max()), 1e-30)
    counts = np.bincount(groups)
    ties = counts[groups[ids]] - 1
    zs = -z if side == "max" else z
    low = np.partition(zs, 1, axis=1)[:, :2] if zs.shape[1] > 1 else np.hstack([zs, zs + 1])
    observed = np.unique(np.argmin(zs, axis=1)[low[:, 1] > low[:, 0]])
    status = np.full(ids.size, "undecided", dtype=object)
    method = np.full(ids.size, "undecided", dtype=object)
    tie_reachable = np.full(ids.size, -1, np.int8)
    seen = np.isin(ids, observed)
    status[seen], method[seen] = "reachable", "observed"
    decided: dict[int, bool | None] = {}
    for k in np.flatnonzero(~seen).tolist():
        j = int(ids[k])
        if groups[j] not in decided:
            if time.monotonic() > deadline:
                method[k] = "not reached"
                continue
            decided[groups[j]] = _lp(g, j, groups != groups[j], scale, lp_rounds, lp_seconds)
        answer = decided[groups[j]]
        if ties[k] > 0:
            status[k], method[k] = "unreachable", "shared row"
            tie_reachable[k] = -1 if answer is None else int(answer)
        elif answer is not None:
            status[k], method[k] = ("reachable" if answer else "unreachable"), "lp"
    return ConeReach(ids, status.astype(str), method.astype(str), ties, tie_reachable)
