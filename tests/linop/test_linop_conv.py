"""Matrix-free convolutions: against dense matrices, the adjoint test, the seed's GD loop, SciPy solvers."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.linalg import circulant
from scipy.sparse.linalg import cg, eigsh, lsqr

from nablab.linop import (Convolution1d, Convolution2d, Identity, LinearOperator, MatrixOperator,
                          TransposedConvolution1d, TransposedConvolution2d, dottest)


def seed_dense(k, n):
    """The seed's naive matrix: circulant(concat(flip(k), zeros(n - r)))[r-1:, :]."""
    r = len(k)
    return circulant(np.concatenate((np.flip(k), np.zeros(n - r))))[r - 1:, :]


def huber(x):
    return np.sum(np.where(np.abs(x) <= 1, 0.5 * x**2, np.abs(x) - 0.5))


def huber_grad(x):
    return np.clip(x, -1.0, 1.0)


def seed_gd(A, b, x, alpha, lam):
    # The seed's loop, character for character.
    for _ in range(100) :
        x = x - alpha*(A.T@(huber_grad(A@x-b))+lam*x)
    return x


kernels = st.integers(1, 9).flatmap(lambda r: st.tuples(
    st.lists(st.floats(-3, 3), min_size=r, max_size=r), st.integers(r, r + 30)))


@settings(max_examples=40, deadline=None)
@given(kernels)
def test_matches_seed_dense_matrix(kn):
    k, n = np.array(kn[0]), kn[1]
    A, D = Convolution1d(k, n), seed_dense(k, n)
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal(n), rng.standard_normal(n - len(k) + 1)
    X = rng.standard_normal((n, 3))
    assert A.shape == D.shape == (n - len(k) + 1, n)
    np.testing.assert_allclose(A @ x, D @ x, atol=1e-12)
    np.testing.assert_allclose(A.T @ y, D.T @ y, atol=1e-12)
    np.testing.assert_allclose(A @ X, D @ X, atol=1e-12)
    np.testing.assert_allclose(A.T @ (A @ X), D.T @ D @ X, atol=1e-10)
    np.testing.assert_allclose(A.todense(), D)
    np.testing.assert_allclose(A.T.todense(), D.T)
    assert isinstance(A.T, TransposedConvolution1d) and isinstance(A.T.T, Convolution1d)
    assert dottest(A) and dottest(A.T)


def test_seed_gd_loop_runs_unmodified_and_matches_dense():
    rng = np.random.default_rng(0)
    n, r = 300, 7
    k = rng.standard_normal(r)
    b = 3 * rng.standard_normal(n - r + 1)  # large residuals: both Huber branches are used
    x0 = np.zeros(n)
    A = Convolution1d(k, n)
    alpha, lam = 0.5 / np.sum(np.abs(k)) ** 2, 0.1
    x_op = seed_gd(A, b, x0, alpha, lam)
    x_dense = seed_gd(seed_dense(k, n), b, x0, alpha, lam)
    np.testing.assert_allclose(x_op, x_dense, rtol=1e-12, atol=1e-12)
    f = lambda x: huber(A @ x - b) + lam / 2 * x @ x
    assert f(x_op) < f(x0)
    assert np.any(np.abs(A @ x_op - b) > 1)


def test_complex_kernel_adjoint_and_transpose():
    rng = np.random.default_rng(1)
    k = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    A = Convolution1d(k, 20)
    D = A.todense()
    np.testing.assert_allclose(D[0, :4], k)  # row 0 holds k, not conj(k) nor flip(k)
    x = rng.standard_normal(20) + 1j * rng.standard_normal(20)
    y = rng.standard_normal(17) + 1j * rng.standard_normal(17)
    np.testing.assert_allclose(A @ x, D @ x)
    np.testing.assert_allclose(A.T @ y, D.T @ y)
    np.testing.assert_allclose(A.H @ y, D.conj().T @ y)
    np.testing.assert_allclose(A.rmatvec(y), D.conj().T @ y)
    np.testing.assert_allclose(A.T.rmatvec(x), D.conj() @ x)
    assert dottest(A) and dottest(A.T) and dottest(A.H)


def test_never_allocates_the_matrix():
    n, r = 200_000, 11
    A = Convolution1d(np.ones(r), n)
    x = np.ones(n)
    tracemalloc.start()
    y = A @ x
    z = A.T @ y
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 8 * n  # a few vectors, nowhere near (n - r + 1) * n * 8 bytes
    assert z.shape == (n,)


def test_2d_against_dense_and_dot_test():
    rng = np.random.default_rng(2)
    k = rng.standard_normal((3, 4))
    A = Convolution2d(k, (9, 8))
    img = rng.standard_normal((9, 8))
    expected = np.array([[np.sum(k * img[i:i + 3, j:j + 4]) for j in range(5)] for i in range(7)])
    np.testing.assert_allclose(A @ img.ravel(), expected.ravel())
    D = A.todense()
    Y = rng.standard_normal((35, 2))
    np.testing.assert_allclose(A.T @ Y, D.T @ Y)
    assert isinstance(A.T, TransposedConvolution2d)
    np.testing.assert_allclose(A.T.T @ img.ravel(), expected.ravel())
    assert dottest(A) and dottest(A.T)


def test_scipy_solvers_accept_operators():
    rng = np.random.default_rng(3)
    n = 120
    A = Convolution1d(rng.standard_normal(5), n)
    D = A.todense()
    N = A.T @ A + 0.5 * Identity(n)
    b = rng.standard_normal(n)
    x, info = cg(N, b, rtol=1e-12, maxiter=2000)
    assert info == 0
    np.testing.assert_allclose(x, np.linalg.solve(D.T @ D + 0.5 * np.eye(n), b), atol=1e-8)
    c = rng.standard_normal(n - 4)
    x = lsqr(A, c, atol=1e-14, btol=1e-14, iter_lim=5000)[0]
    np.testing.assert_allclose(x, np.linalg.lstsq(D, c, rcond=None)[0], atol=1e-6)
    top = eigsh(A.T @ A, k=1)[0]
    np.testing.assert_allclose(top, np.linalg.eigvalsh(D.T @ D)[-1:], rtol=1e-8)


def test_algebra_returns_our_operators():
    rng = np.random.default_rng(4)
    A = Convolution1d(rng.standard_normal(3), 10)
    B = MatrixOperator(rng.standard_normal((8, 8)))
    D = A.todense()
    for op, M in [(B @ A, B.M @ D), (A.T @ B.T, D.T @ B.M.T), (B @ A - 2 * A, B.M @ D - 2 * D),
                  (-A / 4 + A * 3, D * (3 - 0.25)), ((B @ A).T, (B.M @ D).T), ((B @ A).H, (B.M @ D).T)]:
        assert isinstance(op, LinearOperator)
        np.testing.assert_allclose(op.todense(), M, atol=1e-12)
        assert dottest(op)
    x = rng.standard_normal(8)
    np.testing.assert_allclose(x @ A, x @ D)  # row vector on the left
    np.testing.assert_allclose(np.float64(2.0) * A @ np.ones(10), 2 * D @ np.ones(10))


def test_errors_name_the_shapes():
    A = Convolution1d([1.0, 2.0], 10)
    with pytest.raises(ValueError, match=r"\(9, 10\).*\(11,\)"):
        A @ np.ones(11)
    with pytest.raises(ValueError, match="n=2 must be .* at least the kernel length r=3"):
        Convolution1d([1.0, 2.0, 3.0], 2)
    with pytest.raises(ValueError, match=r"cannot compose .*\(9, 10\).*\(9, 10\)"):
        A @ A
    with pytest.raises(ValueError, match="2-d kernel, got shape"):
        Convolution2d([1.0, 2.0], (4, 4))


def test_dot_test_catches_a_wrong_adjoint():
    class Broken(Convolution1d):
        def _rmatvec(self, y):  # forgets the flip: not the adjoint
            return np.correlate(np.pad(y, len(self.k) - 1), self.k, "valid")

    with pytest.raises(AssertionError, match="dot test failed"):
        dottest(Broken([1.0, 2.0, 5.0], 30))
    assert dottest(Broken([1.0, 2.0, 5.0], 30), raise_error=False) is False
