"""Least squares, min-norm and row-space helpers against independent computations."""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

from nablab import theory


def kkt_min_norm(X, t):
    """argmin ||w||^2 s.t. X w = t from the KKT system [[I, X^T], [X, 0]] [w; mu] = [0; t]."""
    n, d = X.shape
    K = np.block([[np.eye(d), X.T], [X, np.zeros((n, n))]])
    return np.linalg.solve(K, np.concatenate([np.zeros(d), t]))[:d]


@pytest.mark.parametrize("n,d", [(1, 2), (3, 7), (10, 40)])
def test_min_norm_matches_kkt_lstsq_and_scipy(n, d):
    rng = np.random.default_rng(n * 100 + d)
    X, t = rng.standard_normal((n, d)), rng.standard_normal(n)
    w = theory.min_norm_solution(X, t)
    np.testing.assert_allclose(w, kkt_min_norm(X, t), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w, scipy.linalg.lstsq(X, t)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w, X.T @ np.linalg.solve(X @ X.T, t), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(X @ w, t, atol=1e-10)


def test_seed_examples():
    np.testing.assert_allclose(theory.min_norm_solution([[1.0, 1.0]], [3.0]), [1.5, 1.5])
    np.testing.assert_allclose(theory.min_norm_solution([[1.0, 2.0]], [3.0]), [0.6, 1.2])


def test_overdetermined_lstsq_is_the_normal_equations_solution():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 5)), rng.standard_normal(30)
    np.testing.assert_allclose(theory.lstsq(X, y), np.linalg.solve(X.T @ X, X.T @ y), rtol=1e-10)
    Y = rng.standard_normal((30, 3))  # several right-hand sides at once
    np.testing.assert_allclose(theory.lstsq(X, Y), np.linalg.lstsq(X, Y, rcond=None)[0], rtol=1e-12)


def test_rank_deficient_lstsq_is_min_norm():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 5))  # rank 2
    y = rng.standard_normal(6)
    w = theory.lstsq(X, y)
    np.testing.assert_allclose(w, scipy.linalg.pinv(X) @ y, rtol=1e-8, atol=1e-10)
    # any other minimizer differs by a null-space vector and is longer
    null = scipy.linalg.null_space(X)
    other = w + null @ rng.standard_normal(null.shape[1])
    assert np.linalg.norm(X @ other - y) == pytest.approx(np.linalg.norm(X @ w - y), rel=1e-9)
    assert np.linalg.norm(other) > np.linalg.norm(w)
    assert theory.rank(X) == 2


def test_ill_conditioned_min_norm_beats_the_explicit_inverse():
    # Rows nearly parallel: cond(X X^T) ~ cond(X)^2 ~ 1e12 costs X^T (X X^T)^-1 t
    # about 12 digits of its residual; the SVD route keeps the residual at rounding.
    rng = np.random.default_rng(3)
    base = rng.standard_normal(8)
    X = np.stack([base, base + 1e-6 * rng.standard_normal(8)])
    t = X @ rng.standard_normal(8)
    ours = theory.min_norm_solution(X, t)
    naive = X.T @ np.linalg.inv(X @ X.T) @ t
    assert np.linalg.norm(X @ ours - t) < 1e-13 * np.linalg.norm(t)
    assert np.linalg.norm(X @ naive - t) > 1e3 * np.linalg.norm(X @ ours - t)


def test_pinv_matches_numpy():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4, 9))
    np.testing.assert_allclose(theory.pinv(X), np.linalg.pinv(X), rtol=1e-12, atol=1e-14)


def test_distance_to_row_space_matches_explicit_qr():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 8))
    Q, _ = np.linalg.qr(X.T)  # (8, 3): orthonormal basis of the row space
    W = rng.standard_normal((20, 8))
    explicit = np.linalg.norm(W - (W @ Q) @ Q.T, axis=1)
    np.testing.assert_allclose(theory.distance_to_row_space(X, W), explicit, rtol=1e-12, atol=1e-13)
    # a point built in the row space is at distance 0; a null-space point keeps its norm
    assert theory.distance_to_row_space(X, X.T @ rng.standard_normal(3)) < 1e-13
    z = scipy.linalg.null_space(X)[:, 0]
    assert theory.distance_to_row_space(X, z) == pytest.approx(1.0, rel=1e-12)


def test_row_space_of_rank_deficient_matrix_matches_scipy_orth():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((5, 1)) @ rng.standard_normal((1, 4))  # rank 1
    Q = theory.row_space_basis(X)
    assert Q.shape == (4, 1)
    R = scipy.linalg.orth(X.T)
    np.testing.assert_allclose(Q @ Q.T, R @ R.T, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_projection_properties(n, d, seed):
    rng = np.random.default_rng(seed)
    X, w = rng.standard_normal((n, d)), rng.standard_normal(d)
    P = theory.project_row_space(X, w)
    np.testing.assert_allclose(theory.project_row_space(X, P), P, atol=1e-10)  # idempotent
    np.testing.assert_allclose(X @ (w - P), np.zeros(n), atol=1e-10 * (1 + np.abs(X).max() * np.abs(w).max()))
    assert theory.distance_to_row_space(X, w) <= np.linalg.norm(w) + 1e-12


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"X must be a 2-D matrix, got shape \(3,\)"):
        theory.lstsq(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"y must have shape \(2,\).*got \(3,\)"):
        theory.lstsq(np.ones((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match="last axis of length 4"):
        theory.distance_to_row_space(np.ones((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        theory.min_norm_solution(np.array([[1.0, np.nan]]), [1.0])
    with pytest.raises(ValueError, match=r"rtol must be in \[0, 1\), got 2"):
        theory.rank(np.eye(2), rtol=2)
