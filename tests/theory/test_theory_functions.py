"""The seeds' test functions and the proximal step against independent computations."""

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

import nablab as nb
from nablab import theory


def seed_quotient(t):
    """Seed 001 P4 exactly as printed (overflows for large t)."""
    e = np.exp(3 * (t - 3))
    return (10 * t**2 + e * ((t - 10) ** 2 / 2 + 50)) / (1 + e)


def test_sharp_wide_equals_the_seeds_formula_and_never_overflows():
    t = np.linspace(-5, 20, 2001)
    np.testing.assert_allclose(theory.sharp_wide(t), seed_quotient(t), rtol=1e-13, atol=1e-13)
    with np.errstate(over="raise", invalid="raise"):
        big = theory.sharp_wide(np.array([300.0, -300.0]))
    np.testing.assert_allclose(big, [(290.0**2) / 2 + 50, 10 * 300.0**2], rtol=1e-12)


def test_sharp_wide_grad_matches_autodiff_and_central_differences():
    t = np.linspace(-5, 20, 501)
    ad = nb.grad(lambda x: nb.sum(theory.sharp_wide(x)))(t)
    np.testing.assert_allclose(theory.sharp_wide_grad(t), ad, rtol=1e-12, atol=1e-12)
    h = 1e-6
    fd = (seed_quotient(t + h) - seed_quotient(t - h)) / (2 * h)
    np.testing.assert_allclose(theory.sharp_wide_grad(t), fd, rtol=1e-6, atol=1e-5)


def test_sharp_wide_minima_and_curvatures():
    sharp = minimize_scalar(seed_quotient, bracket=(-1, 0, 1), tol=1e-12).x
    wide = minimize_scalar(seed_quotient, bracket=(8, 10, 12), tol=1e-12).x
    assert abs(theory.sharp_wide_grad(sharp)) < 1e-6 and abs(theory.sharp_wide_grad(wide)) < 1e-6
    h = 1e-4
    curv = lambda x: (seed_quotient(x + h) - 2 * seed_quotient(x) + seed_quotient(x - h)) / h**2  # noqa: E731
    assert curv(sharp) == pytest.approx(20.1, abs=0.05)
    assert curv(wide) == pytest.approx(1.0, abs=1e-3)


def test_logistic_terms_equal_the_seeds_formulas():
    w = np.linspace(-20, 20, 401)
    s = 1 / (1 + np.exp(-w))
    np.testing.assert_allclose(theory.logistic_f1(w), -np.log(1 - s), rtol=1e-6)   # seed form loses digits at w >> 0
    np.testing.assert_allclose(theory.logistic_f2(w), -np.log(s), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(nb.grad(lambda x: nb.sum(theory.logistic_f1(x)))(w), s, rtol=1e-12)
    np.testing.assert_allclose(nb.grad(lambda x: nb.sum(theory.logistic_f2(x)))(w), s - 1, rtol=1e-9, atol=1e-15)


def test_proximal_step_is_the_surrogates_minimizer():
    rng = np.random.default_rng(0)
    for _ in range(10):
        d = rng.integers(1, 6)
        w_t, g, lam = rng.standard_normal(d), rng.standard_normal(d), 10 ** rng.uniform(-1, 1)
        q = theory.linearized_proximal_objective(1.7, w_t, g, lam)
        res = minimize(lambda w: float(q(w)), np.zeros(d), method="Nelder-Mead" if d == 1 else "CG",
                       options={"xatol": 1e-10, "fatol": 1e-14} if d == 1 else {"gtol": 1e-10})
        np.testing.assert_allclose(res.x, theory.proximal_step(w_t, g, lam), atol=1e-6)
        assert float(q(theory.proximal_step(w_t, g, lam))) == pytest.approx(1.7 - g @ g / (2 * lam))


def test_proximal_bad_inputs():
    with pytest.raises(ValueError, match="lam must be a finite positive number, got 0"):
        theory.proximal_step(np.ones(2), np.ones(2), 0)
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        theory.proximal_step(np.ones(2), np.ones(3), 1.0)
