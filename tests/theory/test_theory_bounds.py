"""The regret lemma and the averaged-GD bound against direct computation."""

import math

import numpy as np
import pytest

from nablab import theory


def direct_regret(v, w_star, eta):
    w = np.zeros(v.shape[1])
    lhs = 0.0
    for vt in v:
        lhs += float((w - w_star) @ vt)
        w = w - eta * vt
    return lhs, w


def test_regret_terms_match_a_plain_loop():
    rng = np.random.default_rng(0)
    for _ in range(50):
        T, d = rng.integers(1, 60), rng.integers(1, 6)
        v, w_star, eta = rng.standard_normal((T, d)), rng.standard_normal(d), 10 ** rng.uniform(-2, 1)
        r = theory.regret_terms(v, w_star, eta)
        lhs, w_last = direct_regret(v, w_star, eta)
        assert r.lhs == pytest.approx(lhs, rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(r.iterates[-1], w_last, rtol=1e-12, atol=1e-12)
        bound = w_star @ w_star / (2 * eta) + eta / 2 * sum(vt @ vt for vt in v)
        assert r.bound == pytest.approx(bound, rel=1e-12)
        assert r.lhs <= r.bound * (1 + 1e-12)
        assert r.bound - r.lhs == pytest.approx(r.slack, rel=1e-9, abs=1e-9 * r.bound)


def test_regret_is_tight_at_the_last_iterate():
    rng = np.random.default_rng(1)
    v, eta = rng.standard_normal((30, 4)), 0.3
    r = theory.regret_terms(v, -eta * v.sum(axis=0), eta)
    assert r.slack == 0.0
    assert r.lhs == pytest.approx(r.bound, rel=1e-12)


def test_step_and_bound_formulas():
    assert theory.averaged_gd_step(2.0, 4.0, 25) == pytest.approx(0.1)
    assert theory.averaged_gd_bound(2.0, 4.0, 25) == pytest.approx(1.6)
    # the bound is the regret bound / T at that step, with ||w*|| = B, ||v_t|| = rho
    B, rho, T = 3.0, 2.0, 49
    eta = theory.averaged_gd_step(B, rho, T)
    assert (B**2 / (2 * eta) + eta / 2 * T * rho**2) / T == pytest.approx(theory.averaged_gd_bound(B, rho, T))


def test_averaged_gd_on_absolute_value_stays_under_the_bound():
    # f(w) = |w - c| (rho = 1), w* = c; check f(w_bar) <= |c| / sqrt(T) for many T.
    for c in (-3.0, 0.7, 12.0):
        for T in (1, 2, 5, 17, 100, 1000):
            eta = theory.averaged_gd_step(abs(c), 1.0, T)
            w, total = 0.0, 0.0
            for _ in range(T):
                total += w
                w -= eta * math.copysign(1.0, w - c) if w != c else 0.0
            assert abs(total / T - c) <= theory.averaged_gd_bound(abs(c), 1.0, T) * (1 + 1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="T must be a positive integer, got 0"):
        theory.averaged_gd_bound(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="rho must be a finite positive number, got -1"):
        theory.averaged_gd_step(1.0, -1, 4)
    with pytest.raises(ValueError, match="eta must be a finite positive number, got 0"):
        theory.regret_terms(np.ones((2, 2)), np.zeros(2), 0)
    with pytest.raises(ValueError, match=r"w_star must have shape \(2,\)"):
        theory.regret_terms(np.ones((3, 2)), np.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"v must have shape \(T, d\)"):
        theory.regret_terms(np.ones(3), np.zeros(3), 0.1)
