"""nablab.scipy.special: values as SciPy's, derivatives to second order in both modes
(gradcheck), against HIPS autograd and torch.func to 1e-10, conventions where formulas
break down, and clear refusals of what has no derivative."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sc
from hypothesis import given, settings, strategies as st

import nablab as nb
import nablab.numpy as nnp
import nablab.scipy.special as sp
from nablab.autodiff.dispatch import UnsupportedFunctionError

RTOL = 1e-10

# name -> (low, high) of the random points (away from poles, branch cuts and kinks)
UNARY = {
    "gamma": (0.3, 4.0), "gammaln": (0.3, 6.0), "loggamma": (0.3, 6.0), "rgamma": (0.3, 4.0),
    "digamma": (0.3, 6.0), "psi": (0.3, 6.0),
    "erf": (-2.0, 2.0), "erfc": (-2.0, 2.0), "erfcx": (-2.0, 3.0), "erfi": (-1.5, 1.5),
    "erfinv": (-0.9, 0.9), "erfcinv": (0.1, 1.9), "ndtr": (-3.0, 3.0), "log_ndtr": (-8.0, 3.0),
    "ndtri": (0.05, 0.95), "expit": (-4.0, 4.0), "logit": (0.1, 0.9), "log_expit": (-5.0, 5.0),
    "softplus": (-5.0, 5.0), "entr": (0.1, 3.0),
    "j0": (0.2, 10.0), "j1": (0.2, 10.0), "y0": (0.5, 10.0), "y1": (0.5, 10.0),
    "i0": (-3.0, 3.0), "i1": (-3.0, 3.0), "i0e": (0.2, 5.0), "i1e": (0.2, 5.0),
    "k0": (0.2, 5.0), "k1": (0.2, 5.0), "k0e": (0.2, 5.0), "k1e": (0.2, 5.0),
}
# (name, constant leading arguments, (low, high) of the differentiable last argument)
IN_LAST = [
    ("polygamma", (0,), (0.3, 4.0)), ("polygamma", (2,), (0.3, 4.0)),
    ("jv", (1.5,), (0.2, 10.0)), ("jn", (2,), (0.2, 10.0)), ("yv", (1.5,), (0.5, 10.0)),
    ("yn", (2,), (0.5, 10.0)), ("iv", (0.5,), (0.2, 5.0)), ("ive", (1.5,), (0.2, 5.0)),
    ("ive", (2,), (-5.0, -0.2)), ("kv", (1.5,), (0.2, 5.0)), ("kve", (1.5,), (0.2, 5.0)),
    ("gammainc", (2.5,), (0.1, 5.0)), ("gammaincc", (2.5,), (0.1, 5.0)),
    ("gammaincinv", (2.5,), (0.05, 0.95)), ("gammainccinv", (2.5,), (0.05, 0.95)),
    ("pdtr", (3,), (0.1, 5.0)), ("pdtrc", (3,), (0.1, 5.0)),
    ("chdtr", (3.0,), (0.1, 6.0)), ("chdtrc", (3.0,), (0.1, 6.0)),
    ("stdtr", (3.5,), (-3.0, 3.0)), ("stdtr", (np.inf,), (-3.0, 3.0)),
    ("betainc", (1.5, 2.5), (0.05, 0.95)), ("betaincc", (1.5, 2.5), (0.05, 0.95)),
    ("betaincinv", (1.5, 2.5), (0.05, 0.95)), ("betainccinv", (1.5, 2.5), (0.05, 0.95)),
]
BINARY = {
    "beta": ((0.3, 4.0), (0.3, 4.0)), "betaln": ((0.3, 4.0), (0.3, 4.0)),
    "poch": ((0.5, 3.0), (-0.4, 2.0)), "xlogy": ((-2.0, 2.0), (0.1, 3.0)),
    "xlog1py": ((-2.0, 2.0), (-0.9, 2.0)), "rel_entr": ((0.1, 2.0), (0.1, 2.0)),
    "kl_div": ((0.1, 2.0), (0.1, 2.0)),
}


def _points(lo, hi, shape, seed):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def _scipy(name):
    return getattr(sc, name)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values_are_scipys(name):
    x = _points(*UNARY[name], (2, 3), 0)
    np.testing.assert_array_equal(getattr(sp, name)(x), _scipy(name)(x))
    np.testing.assert_array_equal(getattr(sp, name)(float(x[0, 0])), _scipy(name)(float(x[0, 0])))


@pytest.mark.parametrize("name,consts,dom", IN_LAST, ids=[f"{n}{c}" for n, c, _ in IN_LAST])
def test_in_last_values_are_scipys(name, consts, dom):
    x = _points(*dom, (4,), 1)
    np.testing.assert_array_equal(getattr(sp, name)(*consts, x), _scipy(name)(*consts, x))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_values_are_scipys(name):
    a, b = _points(*BINARY[name][0], (3, 1), 2), _points(*BINARY[name][1], (4,), 3)
    np.testing.assert_array_equal(getattr(sp, name)(a, b), _scipy(name)(a, b))


def test_composite_values_match_scipy():
    rng = np.random.default_rng(4)
    a = rng.uniform(4.0, 5.0, (2, 3))
    for d in (1, 2, 3):
        np.testing.assert_allclose(sp.multigammaln(a, d), sc.multigammaln(a, d), rtol=1e-14)
    x = rng.standard_normal((3, 4))
    for axis in (None, 0, 1, (0, 1)):
        np.testing.assert_allclose(sp.softmax(x, axis=axis), sc.softmax(x, axis=axis), rtol=1e-14)
        np.testing.assert_allclose(sp.log_softmax(x, axis=axis), sc.log_softmax(x, axis=axis), rtol=1e-14)
        np.testing.assert_allclose(sp.logsumexp(x, axis=axis), sc.logsumexp(x, axis=axis), rtol=1e-14)
    b = rng.standard_normal((3, 4))
    for keepdims in (True, False):
        got = sp.logsumexp(x, axis=1, b=b, keepdims=keepdims, return_sign=True)
        want = sc.logsumexp(x, axis=1, b=b, keepdims=keepdims, return_sign=True)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
        np.testing.assert_array_equal(got[1], want[1])
    assert sp.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    assert isinstance(sp.logsumexp(x), np.float64)
    assert sp.logsumexp(np.zeros(0)) == -np.inf
    # weights with more axes than a: both broadcast first, as in SciPy
    a, w = x[0], np.exp(rng.standard_normal((2, 4)))
    for axis in (None, 1, -1):
        np.testing.assert_allclose(sp.logsumexp(a, axis=axis, b=w), sc.logsumexp(a, axis=axis, b=w), rtol=1e-14)
        nb.gradcheck(lambda a, w: sp.logsumexp(a, axis=axis, b=w), a, w)


# --------------------------------------------------------------------------- gradcheck, order 2, both modes


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradcheck(name):
    x = _points(*UNARY[name], (3,), 5)
    nb.gradcheck(getattr(sp, name), x, modes=("fwd", "rev"), order=2)


@pytest.mark.parametrize("name,consts,dom", IN_LAST, ids=[f"{n}{c}" for n, c, _ in IN_LAST])
def test_in_last_gradcheck(name, consts, dom):
    x = _points(*dom, (3,), 6)
    nb.gradcheck(lambda x: getattr(sp, name)(*consts, x), x, modes=("fwd", "rev"), order=2)


def test_in_last_gradcheck_broadcasts_the_constant():
    x = _points(0.2, 4.0, (3,), 7)
    nb.gradcheck(lambda x: sp.gammainc(np.array([[1.5], [3.0]]), x), x)
    nb.gradcheck(lambda x: sp.jv(np.array([[0.5], [2.0]]), x), x)
    nb.gradcheck(lambda x: sp.polygamma(np.array([0, 1, 2]), x), x[:1])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradcheck_with_broadcasting(name):
    a, b = _points(*BINARY[name][0], (2, 1), 8), _points(*BINARY[name][1], (3,), 9)
    nb.gradcheck(getattr(sp, name), a, b, modes=("fwd", "rev"), order=2)


def test_composite_gradchecks():
    rng = np.random.default_rng(10)
    nb.gradcheck(lambda a: sp.multigammaln(a, 3), rng.uniform(4.0, 5.0, (2, 2)))
    x, b = rng.standard_normal((3, 4)), np.exp(rng.standard_normal((3, 4)))
    for axis in (None, 0, 1):
        for keepdims in (True, False):
            nb.gradcheck(lambda x, b: sp.logsumexp(x, axis=axis, b=b, keepdims=keepdims), x, b)
        nb.gradcheck(lambda x: sp.softmax(x, axis=axis), x)
        nb.gradcheck(lambda x: sp.log_softmax(x, axis=axis), x)
    nb.gradcheck(lambda x: sp.logsumexp(x, b=np.array([1.0, -0.5, 0.2]), return_sign=True)[0],
                 np.array([0.3, 0.1, -0.4]))


HOLOMORPHIC_ORDER2 = ["erf", "erfc", "erfcx", "erfi"]


@pytest.mark.parametrize("name", HOLOMORPHIC_ORDER2)
def test_holomorphic_complex_gradcheck(name):
    z = np.array([0.3 + 0.2j, -0.6 - 0.1j])
    nb.gradcheck(getattr(sp, name), z, modes=("fwd", "rev"), order=2)
    # autograd's convention: grad of a holomorphic f is f'(z), not its conjugate
    got = nb.holomorphic_grad(lambda z: getattr(sp, name)(z))(z[0])
    h = 1e-7
    want = (getattr(sc, name)(z[0] + h) - getattr(sc, name)(z[0] - h)) / (2 * h)
    assert abs(got - want) < 1e-6


def test_complex_first_order_and_clear_second_order_refusal():
    z = np.array([1.3 + 0.2j, 0.6 - 0.4j])
    for name in ("gamma", "loggamma"):
        nb.gradcheck(getattr(sp, name), z, order=1)
        with pytest.raises(UnsupportedFunctionError, match="complex"):
            nb.holomorphic_grad(nb.holomorphic_grad(getattr(sp, name)))(z[0])
    nb.gradcheck(lambda z: sp.jv(1.5, z), z)
    nb.gradcheck(lambda z: sp.iv(0.5, z), z)


# --------------------------------------------------------------------------- against HIPS autograd

autograd = pytest.importorskip("autograd")
import autograd.scipy.special as asp  # noqa: E402

AG_UNARY = ["gamma", "gammaln", "digamma", "psi", "rgamma", "erf", "erfc", "erfinv", "erfcinv",
            "expit", "logit", "j0", "j1", "y0", "y1", "i0", "i1"]
AG_IN_LAST = [("polygamma", (1,), (0.3, 4.0)), ("jn", (2,), (0.2, 10.0)), ("yn", (2,), (0.5, 10.0)),
              ("iv", (1.5,), (0.2, 5.0)), ("ive", (1.5,), (0.2, 5.0)),
              ("gammainc", (2.5,), (0.1, 5.0)), ("gammaincc", (2.5,), (0.1, 5.0)),
              ("betainc", (1.5, 2.5), (0.05, 0.95))]


def _nb_derivatives(f, x):
    d1 = nb.grad(lambda x: nnp.sum(f(x)))
    d2 = nb.grad(lambda x: nnp.sum(d1(x)))
    return d1(x), d2(x)


def _ag_derivatives(f, x):
    d1 = autograd.elementwise_grad(f)
    return d1(x), autograd.elementwise_grad(d1)(x)


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", AG_UNARY)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_unary_against_autograd(name, data):
    lo, hi = UNARY[name]
    x = np.array(data.draw(st.lists(st.floats(lo, hi), min_size=1, max_size=3)))
    f_nb, f_ag = getattr(sp, name), getattr(asp, name)
    _close(f_nb(x), f_ag(x))
    for mine, theirs in zip(_nb_derivatives(f_nb, x), _ag_derivatives(f_ag, x)):
        _close(mine, theirs)


@pytest.mark.parametrize("name,consts,dom", AG_IN_LAST, ids=[n for n, _, _ in AG_IN_LAST])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_in_last_against_autograd(name, consts, dom, data):
    x = np.array(data.draw(st.lists(st.floats(*dom), min_size=1, max_size=3)))
    f_nb = lambda x: getattr(sp, name)(*consts, x)  # noqa: E731
    f_ag = lambda x: getattr(asp, name)(*consts, x)  # noqa: E731
    _close(f_nb(x), f_ag(x))
    d1_nb, d2_nb = _nb_derivatives(f_nb, x)
    d1_ag = autograd.elementwise_grad(f_ag)(x)
    _close(d1_nb, d1_ag)
    if name not in ("gammainc", "gammaincc", "betainc"):  # autograd's rules there use np.power, fine too
        _close(d2_nb, autograd.elementwise_grad(autograd.elementwise_grad(f_ag))(x), rtol=1e-8)


@pytest.mark.parametrize("name", ["beta", "betaln"])
@settings(max_examples=10, deadline=None)
@given(a=st.floats(0.3, 4.0), b=st.floats(0.3, 4.0))
def test_beta_against_autograd(name, a, b):
    f_nb, f_ag = getattr(sp, name), getattr(asp, name)
    _close(f_nb(a, b), f_ag(a, b))
    for argnum in (0, 1):
        _close(nb.grad(f_nb, argnum)(a, b), autograd.grad(f_ag, argnum)(a, b))
        _close(nb.grad(nb.grad(f_nb, argnum), argnum)(a, b),
               autograd.grad(autograd.grad(f_ag, argnum), argnum)(a, b))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), axis=st.sampled_from([None, 0, 1]), keepdims=st.booleans(),
       weighted=st.booleans())
def test_logsumexp_and_multigammaln_against_autograd(seed, axis, keepdims, weighted):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4))
    b = np.exp(rng.standard_normal((3, 4))) if weighted else None

    def f_nb(x):
        return nnp.sum(nnp.sin(sp.logsumexp(x, axis=axis, b=b, keepdims=keepdims)))

    def f_ag(x):
        import autograd.numpy as anp
        return anp.sum(anp.sin(asp.logsumexp(x, axis=axis, b=1.0 if b is None else b, keepdims=keepdims)))

    _close(nb.grad(f_nb)(x), autograd.grad(f_ag)(x))
    v = rng.standard_normal((3, 4))
    _close(nb.hvp(f_nb, x, v), autograd.hessian_vector_product(f_ag)(x, v))
    a = rng.uniform(4.0, 5.0, (2,))
    _close(nb.grad(lambda a: nnp.sum(sp.multigammaln(a, 3)))(a),
           autograd.grad(lambda a: autograd.numpy.sum(asp.multigammaln(a, 3)))(a))


# --------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
import torch.func  # noqa: E402

TORCH_UNARY = {
    "erf": torch.special.erf, "erfc": torch.special.erfc, "erfinv": torch.special.erfinv,
    "erfcx": torch.special.erfcx, "expit": torch.special.expit, "logit": torch.special.logit,
    "digamma": torch.special.digamma, "gammaln": torch.special.gammaln, "i0": torch.special.i0,
    "i0e": torch.special.i0e, "i1": torch.special.i1, "i1e": torch.special.i1e,
    "ndtr": torch.special.ndtr, "ndtri": torch.special.ndtri, "log_ndtr": torch.special.log_ndtr,
    "entr": torch.special.entr, "softplus": torch.nn.functional.softplus,
}
# torch's trigamma is good to about 1e-10 only (SciPy's agrees with mpmath to 1e-16), and its
# second derivative of i0/i1 cancels badly near 0: looser tolerance and points away from 0.
TORCH_RTOL = {"digamma": 1e-8}
TORCH_DOMAIN = {"i0": (0.1, 3.0), "i1": (0.1, 3.0)}


def _torch_checks(f_nb, f_t, x, v, rtol=RTOL, forward=True):
    """Values, gradient of the sum, its gradient (second derivative) and a JVP against torch.func."""
    xt, vt = torch.tensor(x), torch.tensor(v)
    _close(f_nb(x), f_t(xt).numpy(), rtol)
    g_t = torch.func.grad(lambda x: f_t(x).sum())
    h_t = torch.func.grad(lambda x: g_t(x).sum())
    g_nb = nb.grad(lambda x: nnp.sum(f_nb(x)))
    h_nb = nb.grad(lambda x: nnp.sum(g_nb(x)))
    _close(g_nb(x), g_t(xt).numpy(), rtol)
    _close(h_nb(x), h_t(xt).numpy(), max(rtol, 1e-9))
    if forward:
        _close(nb.jvp(f_nb, (x,), (v,))[1], torch.func.jvp(f_t, (xt,), (vt,))[1].numpy(), rtol)


@pytest.mark.parametrize("name", sorted(TORCH_UNARY))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_unary_against_torch(name, data):
    lo, hi = TORCH_DOMAIN.get(name, UNARY[name])
    x = np.array(data.draw(st.lists(st.floats(lo, hi), min_size=1, max_size=3)))
    v = np.linspace(-1.0, 1.0, len(x))
    _torch_checks(getattr(sp, name), TORCH_UNARY[name], x, v, TORCH_RTOL.get(name, RTOL))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_binary_and_reductions_against_torch(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-2.0, 2.0, 3), rng.uniform(0.1, 3.0, 3)
    v = rng.standard_normal(3)
    for f_nb, f_t in ((sp.xlogy, torch.special.xlogy), (sp.xlog1py, torch.special.xlog1py)):
        _torch_checks(lambda x: f_nb(x, y), lambda x: f_t(x, torch.tensor(y)), x, v)
        _torch_checks(lambda y: f_nb(x, y), lambda y: f_t(torch.tensor(x), y), y, v)
    _torch_checks(lambda x: sp.polygamma(1, x), lambda x: torch.special.polygamma(1, x), y + 0.2, v,
                  rtol=1e-8)
    # torch's derivative of gammainc is off by ~5e-10 (ours agrees with mpmath to 1e-15) and it
    # has no forward mode
    _torch_checks(lambda x: sp.gammainc(2.5, x), lambda x: torch.special.gammainc(torch.tensor(2.5), x),
                  y, v, rtol=1e-8, forward=False)
    _torch_checks(lambda a: sp.multigammaln(a, 3), lambda a: torch.special.multigammaln(a, 3), y + 4.0, v)
    m = rng.standard_normal((2, 3))
    w = rng.standard_normal((2, 3))
    for axis in (0, 1):
        for f_nb, f_t in ((sp.softmax, torch.softmax), (sp.log_softmax, torch.log_softmax)):
            _torch_checks(lambda m: f_nb(m, axis=axis), lambda m: f_t(m, axis), m, w)
        _torch_checks(lambda m: sp.logsumexp(m, axis=axis), lambda m: torch.logsumexp(m, axis), m,
                      w)


# --------------------------------------------------------------------------- conventions


def test_xlogy_conventions_at_zero():
    # x log y is identically 0 in y when x == 0: d/dy = 0 there, even at y == 0
    for f in (sp.xlogy, sp.xlog1py):
        for y in (0.5, 0.0):
            assert nb.grad(f, 1)(0.0, y) == 0.0
            assert nb.jvp(lambda y: f(0.0, y), (y,), (1.0,))[1] == 0.0
            assert nb.grad(nb.grad(f, 1), 1)(0.0, y) == 0.0
    assert nb.grad(sp.xlogy, 0)(0.0, 2.0) == np.log(2.0)
    assert nb.grad(sp.xlogy, 0)(0.0, 0.0) == -np.inf
    assert nb.grad(sp.xlog1py, 0)(0.0, 1.0) == np.log1p(1.0)


def test_entropy_conventions():
    assert nb.grad(sp.rel_entr, 0)(0.0, 1.0) == -np.inf
    assert nb.grad(sp.rel_entr, 1)(0.0, 1.0) == 0.0
    assert nb.grad(sp.kl_div, 1)(0.0, 1.0) == 1.0
    # outside the domain the value is inf and the derivatives nan, never a number
    assert sp.rel_entr(-1.0, 1.0) == np.inf
    assert np.isnan(nb.grad(sp.rel_entr, 0)(-1.0, 1.0))
    assert np.isnan(nb.grad(sp.kl_div, 1)(1.0, -1.0))
    assert nb.grad(sp.entr)(0.0) == np.inf


def test_scaled_bessel_at_zero_uses_sign_zero():
    # exp(-|x|) i0(x) has one-sided slopes -1 and +1 at 0: the derivative reports their mean
    assert nb.grad(sp.i0e)(0.0) == 0.0
    assert nb.grad(sp.i1e)(0.0) == pytest.approx(0.5)
    assert nb.grad(lambda x: sp.ive(1.0, x))(0.0) == pytest.approx(0.5)
    assert nb.grad(lambda x: sp.ive(1.0, x))(1e-3) == pytest.approx(0.5 - 1e-3, abs=1e-5)


def test_poles_give_nan_not_numbers():
    for f in (sp.rgamma, sp.gamma, sp.digamma):
        d = nb.grad(f)(-1.0)
        assert not np.isfinite(d)


def test_gammasgn_is_piecewise_constant():
    assert nb.grad(sp.gammasgn)(0.5) == 0.0
    nb.gradcheck(sp.gammasgn, np.array([0.3, 2.0]), modes=("rev",))


# --------------------------------------------------------------------------- refusals and dispatch


@pytest.mark.parametrize("call,arg", [
    (lambda n: sp.polygamma(n, 1.5), "n"), (lambda v: sp.jv(v, 1.5), "v"),
    (lambda n: sp.yn(n, 1.5), "n"), (lambda v: sp.iv(v, 1.5), "v"), (lambda v: sp.kv(v, 1.5), "v"),
    (lambda a: sp.gammainc(a, 1.5), "a"), (lambda a: sp.gammaincc(a, 1.5), "a"),
    (lambda a: sp.betainc(a, 2.0, 0.5), "a"), (lambda b: sp.betainc(2.0, b, 0.5), "b"),
    (lambda df: sp.stdtr(df, 0.5), "df"), (lambda k: sp.pdtr(k, 1.5), "k"),
    (lambda d: sp.multigammaln(4.0, d), "d"),
])
def test_constant_arguments_refuse_traced_values(call, arg):
    for transform in (nb.grad(call), lambda x: nb.jvp(call, (x,), (1.0,))):
        with pytest.raises(UnsupportedFunctionError, match=rf"\b{arg}\b"):
            transform(2.0)


def test_non_holomorphic_scaled_bessels_refuse_complex():
    for call in (lambda z: sp.ive(1.0, z), sp.i0e):
        with pytest.raises(UnsupportedFunctionError, match="not holomorphic"):
            nb.grad(call)(0.5 + 0.1j)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="d must be a positive integer"):
        sp.multigammaln(4.0, 1.5)
    with pytest.raises(ValueError, match=r"\(d - 1\) / 2"):
        sp.multigammaln(np.array([0.4, 3.0]), 3)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        sp.jv(1.0)


def test_scipys_own_functions_dispatch_here_or_refuse():
    x = np.array([1.5, 2.5])
    got = nb.grad(lambda x: nnp.sum(sc.gamma(x) + sc.erf(x)))(x)
    _close(got, sc.gamma(x) * sc.digamma(x) + 2 / np.sqrt(np.pi) * np.exp(-x * x))
    with pytest.raises(UnsupportedFunctionError):
        nb.grad(lambda x: nnp.sum(sc.struve(1.0, x)))(x)
    with pytest.raises(UnsupportedFunctionError, match="scipy.special.struve"):
        nb.grad(lambda x: nnp.sum(sp.struve(1.0, x)))(x)
    # constants still work through the unsupported wrappers
    np.testing.assert_array_equal(sp.struve(1.0, x), sc.struve(1.0, x))
    assert sp.errstate is sc.errstate
