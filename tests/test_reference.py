import math

import numpy as np
import pytest

from negtemp import reference


def test_negative_temperature_inverts_the_order_of_probabilities():
    z = np.log([0.1, 0.2, 0.3, 0.4])
    p = reference.probs(z, -1.0)
    np.testing.assert_allclose(p, np.array([10, 5, 10 / 3, 2.5]) / (10 + 5 + 10 / 3 + 2.5))


def test_masked_tokens_stay_impossible_at_every_temperature():
    z = np.array([-np.inf, 1.0, 2.0, -np.inf, 3.0])
    for t in [-100, -1, -1e-30, 1e-30, 1, 100]:
        p = reference.probs(z, t)
        assert p[0] == 0 and p[3] == 0, f"masked token got probability at T={t}"
        assert math.isclose(p.sum(), 1.0)


def test_tiny_temperatures_do_not_overflow_and_pick_the_extreme_logit():
    z = np.array([1e4, -1e4, 0.0, 5.0])
    assert reference.probs(z, 1e-30).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert reference.probs(z, -1e-30).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_beta_limits_are_greedy_uniform_and_anti_greedy():
    z = np.array([2.0, 0.0, 2.0, -np.inf, 0.0])
    np.testing.assert_array_equal(reference.probs(z, beta=math.inf), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(reference.probs(z, beta=-math.inf), [0, 0.5, 0, 0, 0.5])
    np.testing.assert_array_equal(reference.probs(z, beta=0.0), [0.25, 0.25, 0.25, 0, 0.25])
    np.testing.assert_array_equal(reference.probs(z, 0.0), reference.probs(z, beta=math.inf))


def test_temp_and_beta_are_exclusive_and_nan_is_rejected():
    with pytest.raises(TypeError, match="exactly one"):
        reference.probs([1.0], 1.0, beta=1.0)
    with pytest.raises(ValueError, match="NaN"):
        reference.probs([1.0], math.nan)
    with pytest.raises(ValueError, match="masked"):
        reference.probs([-np.inf], 1.0)
