"""nablab.numpy.linalg: values as NumPy's, derivatives against finite differences (both modes,
second order), the conventions at degeneracies and triangles, HIPS autograd and torch.func."""

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck

rng = onp.random.default_rng(0)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def spd(n, complex_=False, batch=()):
    m = C(*batch, n, n) if complex_ else R(*batch, n, n)
    return m @ onp.conj(onp.swapaxes(m, -1, -2)) + n * onp.eye(n)


def well(*shape):
    return R(*shape) + 3 * onp.eye(shape[-1])


def sym(x):
    return (x + np.swapaxes(x, -1, -2)) / 2


# ----------------------------------------------------------------------------- values

VALUE_CASES = [
    ("inv", lambda m: m.linalg.inv, [well(2, 3, 3)]),
    ("solve_vec", lambda m: m.linalg.solve, [well(3, 3), R(3)]),
    ("solve_batched", lambda m: m.linalg.solve, [well(2, 3, 3), R(3, 2)]),
    ("det", lambda m: m.linalg.det, [C(2, 3, 3)]),
    ("slogdet", lambda m: m.linalg.slogdet, [R(3, 3)]),
    ("slogdet_complex", lambda m: m.linalg.slogdet, [C(3, 3)]),
    ("cholesky", lambda m: m.linalg.cholesky, [spd(3, True)]),
    ("cholesky_upper", lambda m: lambda a: m.linalg.cholesky(a, upper=True), [spd(3)]),
    ("eigh", lambda m: m.linalg.eigh, [R(2, 4, 4)]),
    ("eigh_U", lambda m: lambda a: m.linalg.eigh(a, "U"), [C(4, 4)]),
    ("eigvalsh", lambda m: lambda a: m.linalg.eigvalsh(a, "U"), [R(4, 4)]),
    ("eig", lambda m: m.linalg.eig, [R(4, 4)]),
    ("eigvals", lambda m: m.linalg.eigvals, [C(4, 4)]),
    ("svd_full", lambda m: m.linalg.svd, [R(4, 2)]),
    ("svd_thin", lambda m: lambda a: m.linalg.svd(a, full_matrices=False), [C(2, 3, 5)]),
    ("svd_s", lambda m: lambda a: m.linalg.svd(a, compute_uv=False), [R(3, 5)]),
    ("svdvals", lambda m: m.linalg.svdvals, [R(3, 5)]),
    ("pinv", lambda m: m.linalg.pinv, [R(2, 4, 3)]),
    ("pinv_rcond", lambda m: lambda a: m.linalg.pinv(a, rcond=0.5), [R(4, 3)]),
    ("lstsq", lambda m: lambda a, b: m.linalg.lstsq(a, b), [R(5, 3), R(5, 2)]),
    ("lstsq_underdetermined", lambda m: lambda a, b: m.linalg.lstsq(a, b), [R(2, 4), R(2)]),
    ("qr", lambda m: m.linalg.qr, [R(5, 3)]),
    ("qr_wide", lambda m: m.linalg.qr, [R(3, 5)]),
    ("qr_r", lambda m: lambda a: m.linalg.qr(a, mode="r"), [R(5, 3)]),
    ("qr_complete_square", lambda m: lambda a: m.linalg.qr(a, mode="complete"), [C(3, 3)]),
    ("cond", lambda m: m.linalg.cond, [R(3, 3)]),
    ("cond_fro", lambda m: lambda a: m.linalg.cond(a, "fro"), [R(3, 3)]),
    ("matrix_power", lambda m: lambda a: m.linalg.matrix_power(a, 5), [R(3, 3)]),
    ("matrix_power_neg", lambda m: lambda a: m.linalg.matrix_power(a, -3), [well(3, 3)]),
    ("matrix_power_0", lambda m: lambda a: m.linalg.matrix_power(a, 0), [R(2, 3, 3)]),
    ("multi_dot", lambda m: lambda a, b, c, d: m.linalg.multi_dot([a, b, c, d]), [R(5), R(5, 2), R(2, 6), R(6)]),
    ("tensorinv", lambda m: lambda a: m.linalg.tensorinv(a, 1), [R(6, 2, 3)]),
    ("tensorsolve", lambda m: m.linalg.tensorsolve, [R(2, 3, 6), R(2, 3)]),
    ("matrix_transpose", lambda m: m.linalg.matrix_transpose, [R(2, 3, 4)]),
    ("diagonal", lambda m: lambda a: m.linalg.diagonal(a, offset=1), [R(2, 3, 4)]),
    ("trace", lambda m: lambda a: m.linalg.trace(a, offset=-1), [R(2, 4, 3)]),
    ("vecdot", lambda m: m.linalg.vecdot, [C(2, 3), C(3)]),
    ("linalg_outer", lambda m: m.linalg.outer, [R(3), R(2)]),
    ("linalg_cross", lambda m: m.linalg.cross, [R(2, 3), R(3)]),
    ("vector_norm", lambda m: lambda a: m.linalg.vector_norm(a, axis=(0, 2), ord=3), [R(2, 3, 4)]),
    ("matrix_norm", lambda m: lambda a: m.linalg.matrix_norm(a, ord="nuc", keepdims=True), [R(2, 3, 4)]),
]


def _assert_tree_close(got, want, rtol=1e-12, atol=1e-12):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_tree_close(g, w, rtol, atol)
    else:
        assert onp.shape(got) == onp.shape(want)
        onp.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,fn,args", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_match_numpy(name, fn, args):
    _assert_tree_close(fn(np)(*args), fn(onp)(*args))


def test_results_keep_numpys_named_fields():
    a = R(3, 3)
    assert np.linalg.eigh(a).eigenvalues.shape == (3,)
    assert np.linalg.svd(a).Vh.shape == (3, 3)
    assert np.linalg.qr(a).R.shape == (3, 3)
    assert np.linalg.slogdet(a).logabsdet == onp.linalg.slogdet(a).logabsdet


NORM_CASES = [
    (None, None, (5,)), (2, None, (5,)), (1, None, (5,)), (onp.inf, None, (5,)), (-onp.inf, None, (5,)),
    (0, None, (5,)), (3, None, (5,)), (0.5, None, (5,)), (-1, None, (5,)),
    (None, None, (3, 4, 2)), ("fro", None, (3, 4)), ("nuc", None, (3, 4)), (2, None, (3, 4)),
    (-2, None, (3, 4)), (1, None, (3, 4)), (-1, None, (3, 4)), (onp.inf, None, (3, 4)),
    (-onp.inf, None, (3, 4)), (None, 1, (3, 4, 2)), (3, -1, (3, 4, 2)), ("nuc", (2, 0), (3, 4, 2)),
    (onp.inf, (0, 2), (3, 4, 2)), (1, (-1, 0), (3, 4, 2)), ("fro", (1, 2), (3, 4, 2)), (None, (0,), (3, 4)),
]


@pytest.mark.parametrize("ord,axis,shape", NORM_CASES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_values_match_numpy(ord, axis, shape, keepdims):
    x = R(*shape)
    got = np.linalg.norm(x, ord, axis, keepdims)
    want = onp.linalg.norm(x, ord, axis, keepdims)
    assert onp.shape(got) == onp.shape(want)
    onp.testing.assert_allclose(got, want, rtol=1e-12)
    xc = C(*shape)
    onp.testing.assert_allclose(np.linalg.norm(xc, ord, axis, keepdims), onp.linalg.norm(xc, ord, axis, keepdims),
                                rtol=1e-12)


@pytest.mark.parametrize("ord,axis,shape", [c for c in NORM_CASES if c[0] != 0])
def test_norm_gradcheck(ord, axis, shape):
    gradcheck(lambda x: np.linalg.norm(x, ord, axis), R(*shape))
    gradcheck(lambda x: np.linalg.norm(x, ord, axis), C(*shape), modes=("rev",), order=1)


def test_norm_of_a_list_of_traced_values():
    assert nablab.grad(lambda x: np.linalg.norm([x, x + 2]))(0.0) == 1.0


# ----------------------------------------------------------------------------- gradcheck to order 2

GRAD_CASES = {
    "inv": (lambda x: np.linalg.inv(x), [well(3, 3)]),
    "inv_complex_batched": (lambda x: np.linalg.inv(x), [C(2, 3, 3) + 3 * onp.eye(3)]),
    "solve_vector": (np.linalg.solve, [well(3, 3), R(3)]),
    "solve_batched_a_vector_b": (np.linalg.solve, [well(2, 3, 3), R(3)]),
    "solve_broadcast_b": (np.linalg.solve, [well(3, 3), R(2, 3, 2)]),
    "solve_complex": (np.linalg.solve, [C(3, 3) + 3 * onp.eye(3), C(3, 2)]),
    "det": (lambda x: np.linalg.det(x), [R(2, 3, 3)]),
    "det_complex": (lambda x: np.linalg.det(x), [C(3, 3)]),
    "slogdet": (lambda x: np.linalg.slogdet(x)[1], [R(3, 3)]),
    "slogdet_complex": (lambda x: tuple(np.linalg.slogdet(x)), [C(3, 3)]),
    "cholesky": (lambda x: np.linalg.cholesky(x), [spd(3)]),
    "cholesky_upper_batched": (lambda x: np.linalg.cholesky(x, upper=True), [spd(3, batch=(2,))]),
    "cholesky_complex": (lambda x: np.linalg.cholesky(x), [spd(3, True)]),
    "eigh": (lambda x: tuple(np.linalg.eigh(x)), [R(4, 4)]),
    "eigh_U_batched": (lambda x: tuple(np.linalg.eigh(x, "U")), [R(2, 4, 4)]),
    "eigh_complex": (lambda x: (lambda w, v: (w, np.abs(v)))(*np.linalg.eigh(x)), [C(3, 3)]),
    "eigvalsh": (lambda x: np.linalg.eigvalsh(x), [R(4, 4)]),
    "eigvalsh_complex": (lambda x: np.linalg.eigvalsh(x, "U"), [C(4, 4)]),
    "eig": (lambda x: (lambda w, v: (np.abs(w), np.abs(v)))(*np.linalg.eig(x)), [R(4, 4)]),
    "eig_real_spectrum": (lambda x: tuple(np.linalg.eig(x)), [0.3 * R(4, 4) + onp.diag([0, 3, 6, 9])]),
    "eig_complex_batched": (lambda x: (lambda w, v: (w, np.abs(v)))(*np.linalg.eig(x)), [C(2, 3, 3)]),
    "eigvals": (lambda x: np.linalg.eigvals(x), [C(3, 3)]),
    "svd_tall": (lambda x: tuple(np.linalg.svd(x, full_matrices=False)), [R(5, 3)]),
    "svd_wide_batched": (lambda x: tuple(np.linalg.svd(x, full_matrices=False)), [R(2, 3, 5)]),
    "svd_square": (lambda x: tuple(np.linalg.svd(x)), [R(3, 3)]),
    "svd_complex_tall": (lambda x: (lambda u, s, v: (np.abs(u), s, np.abs(v)))(*np.linalg.svd(x, False)), [C(4, 3)]),
    "svd_complex_wide": (lambda x: (lambda u, s, v: (np.abs(u), s, np.abs(v)))(*np.linalg.svd(x, False)), [C(3, 4)]),
    "svd_values": (lambda x: np.linalg.svd(x, compute_uv=False), [C(4, 3)]),
    # full_matrices=True of a non-square matrix: everything that does not depend on the basis of the complement.
    "svd_full_tall": (lambda x: (lambda u, s, v: (u[:, :3], s, v, u[:, 3:] @ u[:, 3:].T))(*np.linalg.svd(x)), [R(5, 3)]),
    "svd_full_wide": (lambda x: (lambda u, s, v: (u, s, v[:2], v[2:].T @ v[2:]))(*np.linalg.svd(x)), [R(2, 5)]),
    "svd_full_complex": (lambda x: (lambda u, s, v: (s, u[:, 3:] @ np.conj(u[:, 3:].T)))(*np.linalg.svd(x)), [C(5, 3)]),
    "pinv": (lambda x: np.linalg.pinv(x), [R(4, 3)]),
    # hermitian=True reads the lower triangle; singular vectors checked through sign-free products.
    "svd_hermitian": (lambda x: (lambda u, s, vh: (u * u[:1], s, vh * vh[:, :1]))(*np.linalg.svd(x, hermitian=True)),
                      [spd(3) - 5 * onp.eye(3) + onp.triu(R(3, 3), 1)]),
    "svd_values_hermitian": (lambda x: np.linalg.svd(x, compute_uv=False, hermitian=True), [spd(3) + onp.triu(R(3, 3), 1)]),
    "pinv_hermitian": (lambda x: np.linalg.pinv(x, hermitian=True), [spd(3) + onp.triu(R(3, 3), 1)]),
    "pinv_complex_batched": (lambda x: np.linalg.pinv(x), [C(2, 3, 4)]),
    "pinv_low_rank": (lambda x: np.linalg.pinv(x.T @ x), [R(3, 5)]),
    "lstsq": (lambda a, b: np.linalg.lstsq(a, b)[0], [R(5, 3), R(5, 2)]),
    "lstsq_residuals": (lambda a, b: np.linalg.lstsq(a, b)[:2], [R(5, 3), R(5)]),
    "lstsq_underdetermined": (lambda a, b: np.linalg.lstsq(a, b)[0], [R(2, 4), R(2)]),
    "qr_tall": (lambda x: tuple(np.linalg.qr(x)), [R(5, 3)]),
    "qr_square_batched": (lambda x: tuple(np.linalg.qr(x)), [R(2, 3, 3)]),
    "qr_complex": (lambda x: tuple(np.linalg.qr(x)), [C(4, 3)]),
    "qr_wide": (lambda x: tuple(np.linalg.qr(x)), [R(3, 5)]),
    "matrix_power": (lambda x: np.linalg.matrix_power(x, 5), [R(3, 3)]),
    "matrix_power_negative": (lambda x: np.linalg.matrix_power(x, -2), [well(3, 3)]),
    "multi_dot": (lambda a, b, c: np.linalg.multi_dot([a, b, c]), [R(3), R(3, 4), R(4, 2)]),
    "cond": (lambda x: np.linalg.cond(x), [R(3, 3)]),
    "cond_1": (lambda x: np.linalg.cond(x, 1), [R(3, 3)]),
    "tensorinv": (lambda x: np.linalg.tensorinv(x), [R(2, 3, 6) + 3 * onp.eye(6).reshape(2, 3, 6)]),
    "tensorsolve": (np.linalg.tensorsolve, [R(2, 3, 6) + 3 * onp.eye(6).reshape(2, 3, 6), R(2, 3)]),
    "array_api_names": (lambda a, b: (np.linalg.vector_norm(a, axis=0, ord=3), np.linalg.matrix_norm(a, ord=2),
                                       np.linalg.outer(b, b), np.linalg.cross(a, b), np.linalg.matrix_transpose(a),
                                       np.linalg.svdvals(a), np.linalg.tensordot(a, b, axes=1), np.linalg.matmul(a, b)),
                        [R(3, 3), R(3)]),
    "diagonal_trace_vecdot": (lambda a, b: (np.linalg.diagonal(a, offset=-1), np.linalg.trace(a),
                                            np.linalg.vecdot(a, b)), [C(3, 3), C(3)]),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradcheck_second_order_both_modes(name):
    f, args = GRAD_CASES[name]
    gradcheck(f, *args)


# ----------------------------------------------------------------------------- conventions


def test_eigh_and_cholesky_read_one_triangle():
    a = spd(4) + onp.triu(R(4, 4), 1)  # junk above the diagonal: LAPACK never reads it
    for f in (lambda x: np.sum(np.linalg.eigh(x)[1] ** 3), lambda x: np.sum(np.linalg.eigvalsh(x) ** 2),
              lambda x: np.sum(np.sin(np.linalg.cholesky(x)))):
        g = nablab.grad(f)(a)
        assert onp.all(onp.triu(g, 1) == 0) and onp.any(onp.tril(g) != 0)
    for f in (lambda x: np.sum(np.linalg.eigh(x, "U")[0] ** 3), lambda x: np.sum(np.linalg.cholesky(x, upper=True))):
        g = nablab.grad(f)(a.T)
        assert onp.all(onp.tril(g, -1) == 0)


def test_complex_hermitian_input_ignores_the_imaginary_part_of_the_diagonal():
    a = spd(3, True) + 1j * onp.diag(R(3))
    onp.testing.assert_allclose(np.linalg.eigvalsh(a), onp.linalg.eigvalsh(a))
    g = nablab.grad(lambda x: np.sum(np.linalg.eigvalsh(x) ** 2))(a)
    # d/d(imaginary part of the diagonal) is 0, so autograd's gradient (df/dx - i df/dy) has a real diagonal.
    assert onp.all(onp.diag(g).imag == 0)


def test_eigenvalues_alone_are_fine_at_a_degeneracy():
    a = onp.eye(3)  # one eigenvalue, three times
    onp.testing.assert_allclose(nablab.grad(lambda x: np.sum(np.linalg.eigh(x)[0]))(a), onp.eye(3))
    onp.testing.assert_allclose(nablab.grad(lambda x: np.sum(np.linalg.eigvalsh(x) ** 2))(2 * a), 4 * onp.eye(3))
    onp.testing.assert_allclose(nablab.grad(lambda x: np.sum(np.linalg.svd(x, compute_uv=False)))(a), onp.eye(3))
    _, t = nablab.jvp(np.linalg.eigvalsh, (a,), (onp.diag([1.0, 2.0, 3.0]),))
    onp.testing.assert_allclose(onp.sort(t), [1.0, 2.0, 3.0])


def test_eigenvector_phase_does_not_turn():
    # Complex eigenvectors: the derivative chosen has a real diagonal of V^H dV.
    a, t = C(3, 3), C(3, 3)
    h, th = a + a.conj().T, t + t.conj().T
    (w, v), (dw, dv) = nablab.jvp(lambda x: tuple(np.linalg.eigh(x)), (h,), (th,))
    onp.testing.assert_allclose(onp.diag(v.conj().T @ dv).imag, 0, atol=1e-12)
    (u, s, vh), (du, ds, dvh) = nablab.jvp(lambda x: tuple(np.linalg.svd(x, False)), (a,), (t,))
    onp.testing.assert_allclose(onp.diag(vh @ dvh.conj().T).imag, 0, atol=1e-12)


def test_svd_full_matrices_complement_does_not_turn():
    a, t = R(5, 2), R(5, 2)
    (u, s, vh), (du, ds, dvh) = nablab.jvp(lambda x: tuple(np.linalg.svd(x)), (a,), (t,))
    assert u.shape == (5, 5)
    onp.testing.assert_allclose(u[:, 2:].T @ du[:, 2:], 0, atol=1e-12)
    onp.testing.assert_allclose(du.T @ u + u.T @ du, 0, atol=1e-12)  # U stays orthogonal


@pytest.mark.parametrize("ord,shape", [(None, (3,)), (2, (3,)), (3, (3,)), ("fro", (2, 2)), (None, (2, 2))])
def test_norm_of_zero_has_zero_derivative(ord, shape):
    z = onp.zeros(shape)
    g = nablab.grad(lambda x: np.linalg.norm(x, ord))(z)
    assert onp.all(g == 0)
    _, t = nablab.jvp(lambda x: np.linalg.norm(x, ord), (z,), (onp.ones(shape),))
    assert t == 0


def test_max_norm_shares_ties():
    g = nablab.grad(lambda x: np.linalg.norm(x, onp.inf))(onp.array([1.0, -3.0, 3.0]))
    onp.testing.assert_allclose(g, [0.0, -0.5, 0.5])


def test_slogdet_sign_is_a_constant_for_real_input():
    sign, _ = np.linalg.slogdet(-onp.eye(3))
    assert not isinstance(sign, nablab.Tensor) and sign == -1.0
    g = nablab.grad(lambda x: np.linalg.slogdet(x)[1])(-2 * onp.eye(3))
    onp.testing.assert_allclose(g, -0.5 * onp.eye(3))


def test_singular_det_derivative_is_refused_by_name():
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        nablab.grad(np.linalg.det)(onp.ones((2, 2)))


def test_unsupported_cases_raise_by_name():
    with pytest.raises(NotImplementedError, match="complete"):
        np.linalg.qr(R(4, 2), mode="complete")
    with pytest.raises(np.linalg.LinAlgError, match=r"\(2, 3\)"):
        np.linalg.inv(R(2, 3))
    with pytest.raises(ValueError, match="UPLO"):
        np.linalg.eigh(R(2, 2), "X")
    with pytest.raises(ValueError, match="order"):
        np.linalg.norm(R(3), "fro")
    with pytest.raises(ValueError, match="dimensions"):
        np.linalg.norm(R(2, 2, 2), 2)
    with pytest.raises(TypeError, match="integer"):
        np.linalg.matrix_power(R(2, 2), 1.5)


def test_plain_numpy_dispatches_to_nablab():
    x = well(3, 3)
    got = nablab.grad(lambda a: onp.linalg.slogdet(a)[1] + onp.trace(onp.linalg.inv(a)))(x)
    want = autograd.grad(lambda a: anp.linalg.slogdet(a)[1] + anp.trace(anp.linalg.inv(a)))(x)
    onp.testing.assert_allclose(got, want, rtol=1e-12)
    # matrix_rank is piecewise constant: no derivative, and no error.
    onp.testing.assert_array_equal(nablab.grad(lambda a: onp.linalg.matrix_rank(a) * 0.0 + onp.sum(a))(x), onp.ones((3, 3)))


# ----------------------------------------------------------------------------- against HIPS autograd

def _vjp_pair(nb_f, ag_f, args, g, argnum):
    _, nb_vjp = nablab.vjp(nb_f, *args)
    got = nb_vjp(g)[argnum]
    want = autograd.make_vjp(ag_f, argnum)(*args)[0](g)
    return got, want


AUTOGRAD_CASES = [
    ("inv", lambda m, a: m.linalg.inv(a), "well"),
    ("det", lambda m, a: m.linalg.det(a), "any"),
    ("slogdet", lambda m, a: m.linalg.slogdet(a)[1], "any"),
    ("pinv", lambda m, a: m.linalg.pinv(a[:, :3]), "any"),
    ("eigh", lambda m, a: m.linalg.eigh(a)[1] * m.linalg.eigh(a)[0], "any"),
    ("eigh_U", lambda m, a: m.linalg.eigh(a, "U")[1], "any"),
    ("cholesky", lambda m, a: m.linalg.cholesky(0.5 * (a + m.swapaxes(a, -1, -2))), "spd"),
    # Complex singular vectors carry a free phase: compare phase-free functions of them.
    ("svd", lambda m, a: m.abs(m.linalg.svd(a[:3], full_matrices=False)[0]) * m.linalg.svd(a[:3], full_matrices=False)[1], "any"),
    ("svd_vh", lambda m, a: m.abs(m.linalg.svd(a[:, :3], full_matrices=False)[2]), "any"),
    ("svd_s", lambda m, a: m.linalg.svd(a, compute_uv=False), "any"),
    ("norm_3", lambda m, a: m.linalg.norm(a[0], 3), "any"),
    ("norm_nuc", lambda m, a: m.linalg.norm(a, "nuc"), "any"),
    ("norm_axis", lambda m, a: m.linalg.norm(a, axis=1), "any"),
]


def _input(r, kind, complex_):
    n = 4
    a = r.standard_normal((n, n)) + (1j * r.standard_normal((n, n)) if complex_ else 0)
    if kind == "well":
        a = a + 4 * onp.eye(n)
    if kind == "spd":
        a = a @ a.conj().T + n * onp.eye(n)
    return a


@pytest.mark.parametrize("name,f,kind", AUTOGRAD_CASES, ids=[c[0] for c in AUTOGRAD_CASES])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), complex_=st.booleans())
def test_vjps_match_autograd(name, f, kind, seed, complex_):
    if complex_ and name in ("cholesky", "pinv"):
        complex_ = False  # autograd's rules for these are real-only: its own check_grads fails on complex input
    r = onp.random.default_rng(seed)
    a = _input(r, kind, complex_)
    out = f(np, a)
    onp.testing.assert_allclose(out, f(anp, a), rtol=1e-10, atol=1e-10)
    g = r.standard_normal(onp.shape(out)) + (1j * r.standard_normal(onp.shape(out)) if onp.iscomplexobj(out) else 0)
    got, want = _vjp_pair(lambda x: f(np, x), lambda x: f(anp, x), (a,), g, 0)
    if not complex_:
        assert not onp.iscomplexobj(got)
        want = onp.real(want)
    onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), vector=st.booleans())
def test_solve_vjps_match_autograd(seed, vector):
    r = onp.random.default_rng(seed)
    a, b = r.standard_normal((2, 3, 3)) + 3 * onp.eye(3), r.standard_normal((2, 3) if vector else (2, 3, 2))
    nb_f = (lambda x, y: np.linalg.solve(x, y[..., None])[..., 0]) if vector else np.linalg.solve
    ag_f = (lambda x, y: anp.linalg.solve(x, y[..., None])[..., 0]) if vector else anp.linalg.solve
    g = r.standard_normal(b.shape)
    for argnum in (0, 1):
        got, want = _vjp_pair(nb_f, ag_f, (a, b), g, argnum)
        onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_eig_vjp_matches_autograd(seed):
    r = onp.random.default_rng(seed)
    a = r.standard_normal((4, 4)) + 1j * r.standard_normal((4, 4))
    ge, gv = r.standard_normal(4) + 1j * r.standard_normal(4), r.standard_normal((4, 4)) + 1j * r.standard_normal((4, 4))

    def loss(m, x):
        w, v = m.linalg.eig(x)
        return m.real(m.sum(ge * w) + m.sum(m.abs(v) ** 2 * m.abs(gv)))

    onp.testing.assert_allclose(nablab.grad(lambda x: loss(np, x))(a), autograd.grad(lambda x: loss(anp, x))(a),
                                rtol=1e-10, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_hessians_match_autograd(seed):
    r = onp.random.default_rng(seed)
    x = r.standard_normal((3, 3))
    b = r.standard_normal(3)

    def loss(m, a):
        s = m.dot(a, m.transpose(a)) + 3 * m.eye(3)
        return (m.linalg.slogdet(s)[1] + m.sum(m.linalg.solve(s, b) ** 2) + m.linalg.norm(m.linalg.inv(s))
                + m.sum(m.linalg.eigh(s)[0] ** 3) + m.sum(m.linalg.cholesky(s)))

    onp.testing.assert_allclose(nablab.hessian(lambda a: loss(np, a))(x), autograd.hessian(lambda a: loss(anp, a))(x),
                                rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")


def _sym_t(x):
    return (x + x.mT) / 2


TORCH_CASES = [
    ("inv", lambda x: np.linalg.inv(x + 4 * onp.eye(3)), lambda x: torch.linalg.inv(x + 4 * torch.eye(3, dtype=x.dtype))),
    ("solve", lambda x: np.linalg.solve(x + 4 * onp.eye(3), x[:, :2]),
     lambda x: torch.linalg.solve(x + 4 * torch.eye(3, dtype=x.dtype), x[:, :2])),
    ("det", np.linalg.det, torch.linalg.det),
    ("slogdet", lambda x: np.linalg.slogdet(x)[1], lambda x: torch.linalg.slogdet(x)[1]),
    ("cholesky", lambda x: np.linalg.cholesky(sym(x) + 4 * onp.eye(3)),
     lambda x: torch.linalg.cholesky(_sym_t(x) + 4 * torch.eye(3, dtype=x.dtype))),
    ("eigh", lambda x: (lambda w, v: w * np.abs(v))(*np.linalg.eigh(sym(x))),
     lambda x: (lambda w, v: w * torch.abs(v))(*torch.linalg.eigh(_sym_t(x)))),
    ("eigvalsh", lambda x: np.linalg.eigvalsh(sym(x)), lambda x: torch.linalg.eigvalsh(_sym_t(x))),
    ("svd", lambda x: (lambda u, s, vh: np.abs(u) * s + np.abs(vh))(*np.linalg.svd(x)),
     lambda x: (lambda u, s, vh: torch.abs(u) * s + torch.abs(vh))(*torch.linalg.svd(x))),
    ("svdvals", lambda x: np.linalg.svd(x[:2], compute_uv=False), lambda x: torch.linalg.svdvals(x[:2])),
    ("pinv", lambda x: np.linalg.pinv(x[:, :2]), lambda x: torch.linalg.pinv(x[:, :2])),
    ("qr", lambda x: (lambda q, r: q * np.sum(r))(*np.linalg.qr(x[:, :2])),
     lambda x: (lambda q, r: q * torch.sum(r))(*torch.linalg.qr(x[:, :2]))),
    ("lstsq", lambda x: np.linalg.lstsq(x, x[:, 0] ** 2)[0], lambda x: torch.linalg.lstsq(x, x[:, 0] ** 2).solution),
    ("norm_nuc", lambda x: np.linalg.norm(x, "nuc"), lambda x: torch.linalg.matrix_norm(x, "nuc")),
    ("norm_2", lambda x: np.linalg.norm(x, 2), lambda x: torch.linalg.matrix_norm(x, 2)),
    ("norm_p", lambda x: np.linalg.norm(x, 3, axis=0), lambda x: torch.linalg.vector_norm(x, 3, dim=0)),
    ("matrix_power", lambda x: np.linalg.matrix_power(x, 4), lambda x: torch.linalg.matrix_power(x, 4)),
    ("multi_dot", lambda x: np.linalg.multi_dot([x, x.T, x]), lambda x: torch.linalg.multi_dot([x, x.T, x])),
    ("eigvals", lambda x: np.abs(np.linalg.eigvals(x)), lambda x: torch.abs(torch.linalg.eigvals(x))),
    ("cond", np.linalg.cond, torch.linalg.cond),
]


@pytest.mark.parametrize("name,nb_f,t_f", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_jacobians_jvps_and_hvps_match_torch(name, nb_f, t_f, seed):
    r = onp.random.default_rng(seed)
    x, v = r.standard_normal((3, 3)), r.standard_normal((3, 3))
    tx, tv = torch.tensor(x), torch.tensor(v)
    onp.testing.assert_allclose(nb_f(x), t_f(tx).numpy(), rtol=1e-9, atol=1e-9)
    onp.testing.assert_allclose(nablab.jacrev(nb_f)(x), tfn.jacrev(t_f)(tx).numpy(), rtol=1e-8, atol=1e-8)
    _, jv = nablab.jvp(nb_f, (x,), (v,))
    onp.testing.assert_allclose(jv, tfn.jvp(t_f, (tx,), (tv,))[1].numpy(), rtol=1e-8, atol=1e-8)
    hv = nablab.jvp(nablab.grad(lambda y: np.sum(np.sin(nb_f(y)))), (x,), (v,))[1]
    t_hv = tfn.jvp(tfn.grad(lambda y: torch.sum(torch.sin(t_f(y)))), (tx,), (tv,))[1].numpy()
    onp.testing.assert_allclose(hv, t_hv, rtol=1e-7, atol=1e-7)


def test_complex_input_gradient_is_the_conjugate_of_torchs():
    # torch's gradient of a real loss of z is df/dx + i df/dy; autograd's (and nablab's) is its conjugate.
    z = C(3, 3) + 3 * onp.eye(3)

    def loss(m, x, la, mT):
        h = x + m.conj(mT(x))
        return (m.sum(m.abs(la.inv(x)) ** 2) + la.matrix_norm(x, ord="nuc") + m.abs(la.det(x)) ** 2
                + m.sum(la.eigvalsh(h) ** 3) + m.sum(la.svdvals(x[:2]) ** 3)
                + m.sum(m.abs(la.cholesky(h @ m.conj(mT(h)) + 3 * m.eye(3)))))

    got = nablab.grad(lambda x: loss(np, x, np.linalg, np.linalg.matrix_transpose))(z)
    want = tfn.grad(lambda x: loss(torch, x, torch.linalg, lambda y: y.mT))(torch.tensor(z)).numpy()
    onp.testing.assert_allclose(got, onp.conj(want), rtol=1e-10, atol=1e-10)
