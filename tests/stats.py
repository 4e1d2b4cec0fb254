"""Goodness-of-fit statistics for the draw tests (scipy-free)."""

import math

import numpy as np


def g_test_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """G-test of observed counts against expected probabilities (Wilson-Hilferty chi-square tail)."""
    n = counts.sum()
    expected = probs * n
    keep = expected > 0
    if (counts[~keep] > 0).any():
        return 0.0
    c, e = counts[keep], expected[keep]
    nz = c > 0
    g = 2.0 * float((c[nz] * np.log(c[nz] / e[nz])).sum())
    dof = keep.sum() - 1
    if dof < 1:
        return 1.0
    x = ((g / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(x / math.sqrt(2))
