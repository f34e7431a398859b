"""nablab.scipy.linalg: values as SciPy's, derivatives against finite differences (both modes,
second order), HIPS autograd's scipy.linalg rules and torch.func."""

import autograd
import autograd.scipy.linalg as aspl
import numpy as onp
import pytest
import scipy.linalg as spl
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
import nablab.scipy.linalg as sl
from nablab import gradcheck
from nablab.autodiff.dispatch import UnsupportedFunctionError

rng = onp.random.default_rng(0)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def spd(n, complex_=False):
    m = C(n, n) if complex_ else R(n, n)
    return m @ m.conj().T + n * onp.eye(n)


def sym(x):
    return (x + np.swapaxes(x, -1, -2)) / 2


L = onp.tril(R(4, 4)) + 4 * onp.eye(4)
LC = onp.tril(C(4, 4)) + 4 * onp.eye(4)

# ----------------------------------------------------------------------------- values

VALUE_CASES = [
    ("solve_triangular", lambda m: lambda a, b: m.solve_triangular(a, b, trans=1, lower=True), [L, R(4, 2)]),
    ("solve_triangular_unit", lambda m: lambda a, b: m.solve_triangular(a, b, unit_diagonal=True), [L.T, R(4)]),
    ("solve_triangular_C", lambda m: lambda a, b: m.solve_triangular(a, b, trans="C", lower=True), [LC, C(4)]),
    ("solve_sylvester", lambda m: m.solve_sylvester, [R(3, 3), R(3, 3), R(3, 2) @ R(2, 3)]),
    ("sqrtm", lambda m: m.sqrtm, [spd(3)]),
    ("sqrtm_complex_result", lambda m: m.sqrtm, [-spd(3)]),
    ("expm", lambda m: m.expm, [R(2, 3, 3)]),
    ("solve_banded", lambda m: lambda ab, b: m.solve_banded((1, 2), ab, b), [R(4, 6) + 5 * (onp.arange(4) == 2)[:, None], R(6, 2)]),
    ("cholesky", lambda m: m.cholesky, [spd(3, True)]),
    ("cholesky_lower", lambda m: lambda a: m.cholesky(a, lower=True), [spd(3)]),
    ("cho_solve", lambda m: lambda a, b: m.cho_solve(m.cho_factor(a), b), [spd(3), R(3, 2)]),
    ("cho_solve_lower", lambda m: lambda a, b: m.cho_solve(m.cho_factor(a, lower=True), b), [spd(3, True), C(3)]),
    ("solve", lambda m: m.solve, [R(3, 3), R(3)]),
    ("solve_pos", lambda m: lambda a, b: m.solve(a, b, assume_a="pos"), [spd(3), R(3)]),
    ("solve_sym_lower", lambda m: lambda a, b: m.solve(a, b, assume_a="sym", lower=True), [onp.tril(R(3, 3)) + 3 * onp.eye(3), R(3)]),
    ("solve_transposed", lambda m: lambda a, b: m.solve(a, b, transposed=True), [R(3, 3), R(3, 2)]),
    ("inv", lambda m: m.inv, [R(3, 3)]),
    ("det", lambda m: m.det, [R(3, 3)]),
    ("pinv", lambda m: m.pinv, [R(4, 3)]),
    ("eigh", lambda m: m.eigh, [spd(3)]),
    ("eigh_upper", lambda m: lambda a: m.eigh(a, lower=False), [C(3, 3)]),
    ("eigh_upper_values_only", lambda m: lambda a: m.eigh(a, lower=False, eigvals_only=True), [R(3, 3)]),
    ("eigvalsh", lambda m: m.eigvalsh, [R(3, 3)]),
    ("eigvals", lambda m: m.eigvals, [R(3, 3)]),
    ("svd", lambda m: m.svd, [R(4, 3)]),
    ("svdvals", lambda m: m.svdvals, [R(4, 3)]),
    ("qr_economic", lambda m: lambda a: m.qr(a, mode="economic"), [R(4, 3)]),
    ("qr_r", lambda m: lambda a: m.qr(a, mode="r"), [R(4, 3)]),
    ("qr_full_wide", lambda m: lambda a: m.qr(a), [R(3, 4)]),
    ("norm", lambda m: lambda a: m.norm(a, 1), [R(4, 3)]),
]


def _close(got, want, tol=1e-11):
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w, tol)
    else:
        assert onp.shape(got) == onp.shape(want)
        onp.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name,fn,args", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_match_scipy(name, fn, args):
    got, want = fn(sl)(*args), fn(spl)(*args)
    if name == "eigvals":
        got, want = onp.sort_complex(got), onp.sort_complex(want)
    _close(got, want)


def test_eig_matches_scipy():
    a = R(3, 3)
    w, v = sl.eig(a)
    sw, sv = spl.eig(a)
    onp.testing.assert_allclose(w, sw, atol=1e-12)
    onp.testing.assert_allclose(onp.abs(v), onp.abs(sv), atol=1e-12)


def test_solve_sylvester_mixed_real_and_complex_is_right():
    # SciPy alone gets this wrong; nablab gives all three operands one dtype first.
    a, b, q = R(3, 3), R(3, 3), C(3, 3)
    x = sl.solve_sylvester(a, b, q)
    onp.testing.assert_allclose(a @ x + x @ b, q, atol=1e-12)


# ----------------------------------------------------------------------------- gradcheck to order 2

GRAD_CASES = {}
for _trans in (0, 1, 2):
    for _lower in (True, False):
        for _unit in (False, True):
            GRAD_CASES[f"solve_triangular_{_trans}_{_lower}_{_unit}"] = (
                lambda a, b, trans=_trans, lower=_lower, unit=_unit: sl.solve_triangular(
                    a, b, trans=trans, lower=lower, unit_diagonal=unit),
                [(L if _lower else L.T) + 0.3 * R(4, 4), R(4, 2)])
            GRAD_CASES[f"solve_triangular_complex_{_trans}_{_lower}_{_unit}"] = (
                lambda a, b, trans=_trans, lower=_lower, unit=_unit: sl.solve_triangular(
                    a, b, trans=trans, lower=lower, unit_diagonal=unit),
                [(LC if _lower else LC.T) + 0.3 * C(4, 4), C(4)])
GRAD_CASES.update({
    "solve_triangular_batched": (lambda a, b: sl.solve_triangular(a, b, lower=True),
                                 [onp.tril(R(2, 3, 3)) + 3 * onp.eye(3), R(2, 3, 2)]),
    "solve_triangular_real_a_complex_b": (lambda a, b: sl.solve_triangular(a, b, trans=2, lower=True), [L, C(4)]),
    "solve_sylvester": (sl.solve_sylvester, [R(3, 3), R(3, 3), R(3, 3)]),
    "solve_sylvester_complex": (sl.solve_sylvester, [C(3, 3), R(3, 3), C(3, 3)]),
    "sqrtm_symmetric": (lambda a: sl.sqrtm(sym(a)), [R(3, 3)]),
    "sqrtm_spd": (lambda a: sl.sqrtm(a @ a.T + onp.eye(3)), [R(3, 3)]),
    "sqrtm_complex": (sl.sqrtm, [C(3, 3)]),
    "expm": (sl.expm, [R(3, 3)]),
    "expm_complex_batched": (sl.expm, [C(2, 3, 3)]),
    "solve_banded": (lambda ab, b: sl.solve_banded((1, 1), ab, b), [R(3, 5) + onp.array([[0], [4], [0]]), R(5)]),
    "solve_banded_wide": (lambda ab, b: sl.solve_banded((2, 1), ab, b), [R(4, 5) + onp.array([[0], [4], [0], [0]]), R(5, 2)]),
    "cholesky": (sl.cholesky, [spd(3)]),
    "cho_solve": (lambda a, b: sl.cho_solve(sl.cho_factor(a), b), [spd(3), R(3)]),
    "cho_solve_lower_complex": (lambda a, b: sl.cho_solve(sl.cho_factor(a, lower=True), b), [spd(3, True), C(3, 2)]),
    "solve_pos": (lambda a, b: sl.solve(a, b, assume_a="pos"), [spd(3), R(3)]),
    "solve_sym": (lambda a, b: sl.solve(a, b, assume_a="sym", lower=True), [R(3, 3) + 3 * onp.eye(3), C(3)]),
    # SciPy's solver may flip an eigenvector's sign between nearby inputs: check sign-free products.
    "eigh": (lambda a: (lambda w, v: (w, v * v[:1]))(*sl.eigh(a, lower=False)), [R(3, 3)]),
    "qr_r": (lambda a: sl.qr(a, mode="r"), [R(4, 3)]),
    "numpy_names": (lambda a: (sl.inv(a), sl.det(a), sl.pinv(a[:, :2]), sl.eigvalsh(a), np.abs(sl.eigvals(a)),
                               sl.svdvals(a), sl.qr(a, mode="economic"), sl.norm(a, 2), sl.solve(a, a[0])),
                    [R(3, 3) + 3 * onp.eye(3)]),
    "solve_lower_triangular": (lambda a, b: sl.solve(a, b, assume_a="lower triangular"), [L, R(4)]),
})


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradcheck_second_order_both_modes(name):
    f, args = GRAD_CASES[name]
    gradcheck(f, *args)


def test_solve_triangular_reads_one_triangle():
    a, b = L + onp.triu(R(4, 4), 1), R(4)  # junk above the diagonal is never read
    onp.testing.assert_allclose(sl.solve_triangular(a, b, lower=True), spl.solve_triangular(onp.tril(a), b, lower=True))
    g = nablab.grad(lambda x: np.sum(sl.solve_triangular(x, b, lower=True, unit_diagonal=True)))(a)
    assert onp.all(onp.triu(g) == 0) and onp.any(g != 0)  # nor, with unit_diagonal, the diagonal


# ----------------------------------------------------------------------------- refusals

def test_unsupported_cases_raise_by_name():
    with pytest.raises(NotImplementedError, match="disp"):
        sl.sqrtm(spd(2), disp=False)
    with pytest.raises(NotImplementedError, match="generalized"):
        sl.eigh(spd(2), spd(2))
    with pytest.raises(NotImplementedError, match="pivoting"):
        sl.qr(R(3, 3), pivoting=True)
    with pytest.raises(NotImplementedError, match="assume_a"):
        sl.solve(R(3, 3), R(3), assume_a="banded")
    with pytest.raises(ValueError, match="trans"):
        sl.solve_triangular(L, R(4), trans=3)
    with pytest.raises(ValueError, match=r"ab must have shape \(3, n\)"):
        sl.solve_banded((1, 1), R(4, 5), R(5))
    with pytest.raises(UnsupportedFunctionError, match="scipy.linalg.logm"):
        nablab.grad(lambda x: np.sum(sl.logm(x)))(spd(2))


def test_constants_pass_through_unsupported_functions():
    a = spd(3)
    onp.testing.assert_allclose(sl.logm(a), spl.logm(a))


# ----------------------------------------------------------------------------- against HIPS autograd


@pytest.mark.parametrize("trans", [0, 1, "T"])
@pytest.mark.parametrize("lower", [True, False])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), vector=st.booleans())
def test_solve_triangular_vjps_match_autograd(trans, lower, seed, vector):
    r = onp.random.default_rng(seed)
    a = r.standard_normal((4, 4)) + 4 * onp.eye(4)
    b = r.standard_normal(4 if vector else (4, 3))
    g = r.standard_normal(b.shape)
    _, nb_vjp = nablab.vjp(lambda x, y: sl.solve_triangular(x, y, trans=trans, lower=lower), a, b)
    got = nb_vjp(g)
    for argnum in (0, 1):
        want = autograd.make_vjp(lambda x, y: aspl.solve_triangular(x, y, trans=trans, lower=lower), argnum)(a, b)[0](g)
        onp.testing.assert_allclose(got[argnum], want, rtol=1e-10, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_sylvester_and_sqrtm_vjps_match_autograd(seed):
    r = onp.random.default_rng(seed)
    a, b, q = (r.standard_normal((3, 3)) for _ in range(3))
    g = r.standard_normal((3, 3))
    _, nb_vjp = nablab.vjp(sl.solve_sylvester, a, b, q)
    got = nb_vjp(g)
    want = autograd.make_vjp(lambda *xs: aspl.solve_sylvester(*xs), (0, 1, 2))(a, b, q)[0](g)
    for x, y in zip(got, want):
        onp.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10)
    s = a @ a.T + 3 * onp.eye(3)
    _, nb_vjp = nablab.vjp(sl.sqrtm, s)
    onp.testing.assert_allclose(nb_vjp(g)[0], autograd.make_vjp(aspl.sqrtm)(s)[0](g), rtol=1e-10, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_solve_banded_vjps_match_autograd(seed):
    r = onp.random.default_rng(seed)
    ab = r.standard_normal((3, 5)) + onp.array([[0.0], [4.0], [0.0]])
    b, g = r.standard_normal(5), r.standard_normal(5)
    _, nb_vjp = nablab.vjp(lambda x, y: sl.solve_banded((1, 1), x, y), ab, b)
    got = nb_vjp(g)
    for argnum in (0, 1):
        want = autograd.make_vjp(lambda x, y: aspl.solve_banded((1, 1), x, y), argnum)(ab, b)[0](g)
        if argnum == 0:  # autograd's gradient also fills the corners of ab that the solver never reads
            mask = onp.ones_like(ab)
            mask[0, 0] = mask[2, -1] = 0
            want = want * mask
        onp.testing.assert_allclose(got[argnum], want, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")

TORCH_CASES = [
    ("solve_triangular", lambda x: sl.solve_triangular(x + 4 * onp.eye(3), x[:, :2], lower=True),
     lambda x: torch.linalg.solve_triangular(torch.tril(x + 4 * torch.eye(3, dtype=x.dtype)), x[:, :2], upper=False)),
    ("solve_triangular_unit_T", lambda x: sl.solve_triangular(x, x[:, 0], trans=1, unit_diagonal=True),
     lambda x: torch.linalg.solve_triangular(torch.triu(x).mT, x[:, :1], upper=False, unitriangular=True)[:, 0]),
    ("expm", sl.expm, torch.linalg.matrix_exp),
    # x x^T + I is positive definite for every x (sym(x) + 4 I is not: hypothesis found one)
    ("cholesky", lambda x: sl.cholesky(x @ x.T + onp.eye(3)),
     lambda x: torch.linalg.cholesky(x @ x.mT + torch.eye(3, dtype=x.dtype)).mT),
    ("cho_solve", lambda x: sl.cho_solve(sl.cho_factor(x @ x.T + onp.eye(3), lower=True), x[0]),
     lambda x: torch.cholesky_solve(x[0][:, None], torch.linalg.cholesky(x @ x.mT + torch.eye(3, dtype=x.dtype)))[:, 0]),
]


@pytest.mark.parametrize("name,nb_f,t_f", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_jacobians_jvps_and_hvps_match_torch(name, nb_f, t_f, seed):
    r = onp.random.default_rng(seed)
    x, v = r.standard_normal((3, 3)), r.standard_normal((3, 3))
    tx, tv = torch.tensor(x), torch.tensor(v)
    onp.testing.assert_allclose(nb_f(x), t_f(tx).numpy(), rtol=1e-10, atol=1e-10)
    onp.testing.assert_allclose(nablab.jacrev(nb_f)(x), tfn.jacrev(t_f)(tx).numpy(), rtol=1e-9, atol=1e-9)
    _, jv = nablab.jvp(nb_f, (x,), (v,))
    onp.testing.assert_allclose(jv, tfn.jvp(t_f, (tx,), (tv,))[1].numpy(), rtol=1e-9, atol=1e-9)
    hv = nablab.jvp(nablab.grad(lambda y: np.sum(np.sin(nb_f(y)))), (x,), (v,))[1]
    t_hv = tfn.jvp(tfn.grad(lambda y: torch.sum(torch.sin(t_f(y)))), (tx,), (tv,))[1].numpy()
    onp.testing.assert_allclose(hv, t_hv, rtol=1e-8, atol=1e-8)
