"""llama.cpp's sampler, patched, against the NumPy reference on both paths."""

import math

import numpy as np
import pytest

import negtemp
from negtemp import reference
from stats import g_test_pvalue

PATHS = ["chain", "backend", "fused"]
TEMPS = [-100, -1, -0.5, -0.001, -1e-30, 1e-30, 0.001, 0.5, 1, 100]


def logits_cases():
    rng = np.random.default_rng(0)
    for n in [1, 2, 7, 1000, 49_152, 262_144]:
        yield f"normal-{n}", rng.normal(0, 3, n).astype(np.float32)
    z = rng.normal(0, 3, 5000).astype(np.float32)
    z[rng.random(5000) < 0.3] = -np.inf
    yield "masked", z
    one = np.full(1000, -np.inf, dtype=np.float32)
    one[417] = 2.5
    yield "all-but-one-masked", one
    yield "ties", np.array([1, 3, 3, -2, -2, 0], dtype=np.float32)
    yield "large", (rng.choice([-1, 1], 4000) * rng.uniform(0, 1e4, 4000)).astype(np.float32)


CASES = list(logits_cases())


def check_against_the_reference(path: str, name: str, z: np.ndarray, device: str = "CPU") -> float:
    """The path's probabilities (the backend path's computed on `device`) at every T and beta; the worst error."""
    where = f"{path} path" if device == "CPU" else f"{path} path on {device}"
    worst = 0.0
    for t in TEMPS:
        got = negtemp.sampler_probs(z, t, path=path, device=device)
        want = reference.probs(z.astype(np.float64), t)
        assert np.isfinite(got).all(), f"{where} gave NaN/inf probabilities at T={t} on {name}"
        worst = max(worst, float(np.abs(got - want).max()))
        assert worst <= 1e-6, f"{where} differs from the reference by {worst:.3g} at T={t} on {name}"
    for b in [-math.inf, 0.0, math.inf]:
        got = negtemp.sampler_probs(z, beta=b, path=path, device=device)
        want = reference.probs(z.astype(np.float64), beta=b)
        if b == math.inf and path == "backend":
            # upstream greedy: ggml_argmax may pick another of several tied maxima
            assert got.max() == 1.0 and z[np.argmax(got)] == z[np.isfinite(z)].max(), f"greedy missed the max on {name}"
            continue
        assert np.abs(got - want).max() <= 1e-6, f"{where} differs from the reference at beta={b} on {name}"
    return worst


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name, z", CASES, ids=[c[0] for c in CASES])
def test_sampler_probabilities_equal_the_reference(path, name, z):
    check_against_the_reference(path, name, z)


@pytest.mark.parametrize("temp", [-0.001, -1.0, 0.0, 0.7])
def test_fused_sampler_draws_the_chains_tokens_for_the_same_seed(temp):
    # Both consume one uniform per draw from the same mt19937; the fused exp is
    # within 1.3 ulp of expf, so a draw could differ only where u falls within
    # ~1e-7 of a cumulative boundary, which none of these 2000 do.
    z = np.random.default_rng(2).normal(0, 3, 49_152).astype(np.float32)
    z[::7] = -np.inf
    chain = negtemp.sample_tokens(z, temp, n=2000, seed=99, path="chain")
    fused = negtemp.sample_tokens(z, temp, n=2000, seed=99, path="fused")
    np.testing.assert_array_equal(fused, chain, err_msg=f"fused and chain draws differ at T={temp}")


@pytest.mark.parametrize("temp", [-1.0, 1.0])
def test_fused_draws_never_land_in_masked_blocks_and_follow_the_chain(temp):
    # The fused draw walks sums of 256-token blocks. Blocks [512, 1024) and the
    # last, partial block [1280, 1300) are wholly masked, and block [1024, 1280)
    # has one live token: each must be skipped or hit exactly as llama.cpp's
    # token-by-token walk does.
    z = np.full(1300, -np.inf, dtype=np.float32)
    live = [3, 255, 256, 1100]
    z[live] = [0.5, -1.0, 2.0, 1.5]
    fused = negtemp.sample_tokens(z, temp, n=5000, seed=7, path="fused")
    chain = negtemp.sample_tokens(z, temp, n=5000, seed=7, path="chain")
    assert set(np.unique(fused)) <= set(live), f"fused sampler drew masked tokens {set(np.unique(fused)) - set(live)}"
    np.testing.assert_array_equal(fused, chain, err_msg=f"fused and chain draws differ at T={temp}")
    counts = np.bincount(fused, minlength=z.size)[live]
    p = reference.probs(z, temp)[live]
    assert g_test_pvalue(counts, p) > 1e-3, f"fused draws at T={temp} do not follow the reference: {counts}"


@pytest.mark.parametrize("temp", [-1.0, 2.0])
def test_backend_draws_do_not_depend_on_how_many_are_asked_for(temp):
    # sample_tokens computes the backend graph in batches of copies; the draws must be those of
    # single computations in order, whatever the batch
    z = np.random.default_rng(1).normal(0, 1.5, 12).astype(np.float32)
    many = negtemp.sample_tokens(z, temp, n=200, seed=5, path="backend")
    for n in (1, 10, 64, 65):
        few = negtemp.sample_tokens(z, temp, n=n, seed=5, path="backend")
        np.testing.assert_array_equal(few, many[:n], err_msg=f"the first {n} backend draws depend on the batch size")
