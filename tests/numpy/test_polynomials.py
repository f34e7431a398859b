"""convolve/correlate, NumPy 2's vector products and the polynomial functions: values as NumPy's
and derivatives to second order in both modes."""

import numpy as np
import pytest

import nablab as nb
import nablab.numpy as nnp

rng = np.random.default_rng(3)


def cplx(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("n, m", [(5, 3), (3, 5), (4, 4), (1, 3), (6, 1)])
@pytest.mark.parametrize("fn", ["convolve", "correlate"])
def test_convolution_values_and_derivatives(fn, n, m, mode):
    a, v = rng.standard_normal(n), rng.standard_normal(m)
    f = lambda a, v: getattr(nnp, fn)(a, v, mode)  # noqa: E731
    np.testing.assert_allclose(f(a, v), getattr(np, fn)(a, v, mode), rtol=1e-13, atol=1e-14)
    assert nb.gradcheck(lambda a, v: nnp.sin(f(a, v)), a, v, order=2)


@pytest.mark.parametrize("fn", ["convolve", "correlate"])
def test_complex_convolution_follows_numpy_and_autograds_convention(fn):
    a, v = cplx(4), cplx(3)
    np.testing.assert_allclose(getattr(nnp, fn)(a, v, "full"), getattr(np, fn)(a, v, "full"), rtol=1e-13)
    assert nb.gradcheck(lambda a, v: getattr(nnp, fn)(a, v, "same"), a, v, order=2)


def test_convolution_refuses_what_numpy_refuses():
    with pytest.raises(ValueError, match="1-D"):
        nnp.convolve(np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="empty"):
        nnp.convolve(np.ones(0), np.ones(2))
    with pytest.raises(ValueError, match="mode"):
        nnp.convolve(np.ones(3), np.ones(2), "circular")


def test_plain_numpy_convolve_on_tensors_dispatches_here():
    g = nb.grad(lambda a: nnp.sum(np.convolve(a, np.array([1.0, -1.0])) ** 2))(np.array([1.0, 2.0, 4.0]))
    # out = (a0, a1 - a0, a2 - a1, -a2): d/da of the squares
    np.testing.assert_allclose(g, [2 * 1 - 2 * 1, 2 * 1 - 2 * 2, 2 * 2 + 2 * 4])


def test_vector_products_match_numpy_and_differentiate():
    x, y, A = cplx(3, 4), cplx(3, 4), cplx(2, 3, 4)
    np.testing.assert_allclose(nnp.vecdot(x, y), np.vecdot(x, y), rtol=1e-13)
    np.testing.assert_allclose(nnp.vecdot(x, y, axis=0), np.vecdot(x, y, axis=0), rtol=1e-13)
    np.testing.assert_allclose(nnp.matvec(A, y[0]), np.matvec(A, y[0]), rtol=1e-13)
    np.testing.assert_allclose(nnp.vecmat(x[0, :2], A[0, :2]), np.vecmat(x[0, :2], A[0, :2]), rtol=1e-13)
    assert nb.gradcheck(lambda x, y: nnp.vecdot(x, y), x, y, order=2)
    assert nb.gradcheck(lambda A, v: nnp.matvec(A, v), A.real, y[0].real, order=2)


def test_polynomials_match_numpy_and_differentiate():
    p, q, x = rng.standard_normal(4), rng.standard_normal(2), rng.standard_normal(5)
    np.testing.assert_allclose(nnp.polyval(p, x), np.polyval(p, x), rtol=1e-13)
    np.testing.assert_allclose(nnp.polyadd(p, q), np.polyadd(p, q), rtol=1e-13)
    np.testing.assert_allclose(nnp.polysub(q, p), np.polysub(q, p), rtol=1e-13)
    np.testing.assert_allclose(nnp.polymul(p, q), np.polymul(p, q), rtol=1e-13)
    np.testing.assert_allclose(nnp.polyder(p, 2), np.polyder(p, 2), rtol=1e-13)
    np.testing.assert_allclose(nnp.polyint(p, 2, k=[1.0, 2.0]), np.polyint(p, 2, k=[1.0, 2.0]), rtol=1e-13)
    np.testing.assert_allclose(nnp.vander(x, 3), np.vander(x, 3), rtol=1e-13)
    np.testing.assert_allclose(nnp.vander(x, increasing=True), np.vander(x, increasing=True), rtol=1e-13)
    assert nb.gradcheck(lambda p, x: nnp.polyval(p, x), p, x, order=2)
    assert nb.gradcheck(lambda p, q: nnp.polymul(nnp.polyder(p), nnp.polyint(q)), p, q, order=2)
    assert nb.gradcheck(lambda x: nnp.vander(x, 4), x, order=2)
    # d/dx of a polynomial is the polynomial of its derivative's coefficients
    np.testing.assert_allclose(nb.elementwise_grad(lambda x: nnp.polyval(p, x))(x), np.polyval(np.polyder(p), x))
