"""GD stability thresholds against eigenvalues and against observed divergence."""

import numpy as np
import pytest

from nablab import theory


def run_gd(X, y, theta, lr, steps):
    for _ in range(steps):
        theta = theta - lr * X.T @ (X @ theta - y)
    return theta


def test_threshold_is_two_over_top_eigenvalue():
    rng = np.random.default_rng(0)
    for _ in range(10):
        X = rng.standard_normal((rng.integers(1, 12), rng.integers(1, 12)))
        top = np.linalg.eigvalsh(X.T @ X)[-1]
        assert theory.gd_threshold(X) == pytest.approx(2 / top, rel=1e-10)
        assert theory.stability_threshold(X.T @ X) == pytest.approx(2 / top, rel=1e-10)
        assert theory.gd_threshold(X, scale=2 / X.shape[0]) == pytest.approx(X.shape[0] / top, rel=1e-10)


def test_threshold_separates_observed_convergence_from_divergence():
    rng = np.random.default_rng(1)
    for _ in range(5):
        X, y = rng.standard_normal((15, 6)), rng.standard_normal(15)
        star = np.linalg.lstsq(X, y, rcond=None)[0]
        thr = theory.gd_threshold(X)
        start = star + rng.standard_normal(6)
        e0 = np.linalg.norm(start - star)
        below = run_gd(X, y, start, 0.98 * thr, 2000)
        above = run_gd(X, y, start, 1.02 * thr, 2000)
        assert np.linalg.norm(below - star) <= e0
        assert np.linalg.norm(above - star) > 1e6 * e0


def test_contraction_factor_and_scalar_case():
    assert theory.stability_threshold(1.0) == 2.0
    assert theory.stability_threshold(0.0) == float("inf")
    assert theory.gd_contraction(1.0, 2.5) == 1.5
    H = np.diag([1.0, 4.0])
    assert theory.gd_contraction(H, 0.4) == pytest.approx(0.6)   # max(|1-0.4|, |1-1.6|)
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    assert theory.spectral_radius(A) == pytest.approx(1.0)
    assert theory.spectral_radius(-3.0) == 3.0


@pytest.mark.parametrize("shape", [(8, 3), (3, 8)])  # full column rank, and a null space
def test_closed_form_matches_running_gd(shape):
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal(shape), rng.standard_normal(shape[0])
    theta0 = rng.standard_normal(shape[1])
    for ratio in (0.5, 0.99, 1.05):
        lr = ratio * theory.gd_threshold(X)
        for k in (0, 1, 7, 60):
            ran = run_gd(X, y, theta0, lr, k)
            closed = theory.lsq_gd_closed_form(X, y, theta0, lr, k)
            np.testing.assert_allclose(closed, ran, rtol=1e-9, atol=1e-9 * (1 + np.abs(ran).max()))


def test_bad_inputs():
    with pytest.raises(ValueError, match="symmetric"):
        theory.stability_threshold(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        theory.lambda_max(np.ones((2, 3)))
    with pytest.raises(ValueError, match="lr must be a finite non-negative number, got -0.1"):
        theory.gd_contraction(1.0, -0.1)
    with pytest.raises(ValueError, match="scale must be a finite positive number, got 0"):
        theory.gd_threshold(np.eye(2), scale=0)
    with pytest.raises(ValueError, match="steps must be a non-negative integer, got 1.5"):
        theory.lsq_gd_closed_form(np.eye(2), np.ones(2), np.ones(2), 0.1, 1.5)
    with pytest.raises(ValueError, match=r"theta0 must have shape \(2,\)"):
        theory.lsq_gd_closed_form(np.eye(2), np.ones(2), np.ones(3), 0.1, 1)
