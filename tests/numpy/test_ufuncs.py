"""nablab.numpy's elementwise family: values as NumPy's, derivatives against finite differences
(both modes, second order), HIPS autograd and torch.func on random points, the documented
convention at every kink, NumPy's ufunc keywords, and that no float ufunc is silently wrong."""

import math
import warnings

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck
from nablab.autodiff.dispatch import UnsupportedFunctionError

torch = pytest.importorskip("torch")
import torch.func  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Output seems independent of input:UserWarning"),  # autograd, on linear maps
]

rng = onp.random.default_rng(0)
HYP = settings(max_examples=15, deadline=None)
TORCH_HYP = settings(max_examples=8, deadline=None)  # torch.func costs milliseconds per call
TOL = dict(rtol=1e-10, atol=1e-10)

# name: (low, high, accepts complex, torch's name or None).  Points are drawn from [low, high],
# away from kinks and branch cuts; complex points add an imaginary part in [-0.5, 0.5].
UNARY = {
    "sin": (-2, 2, True, "sin"), "cos": (-2, 2, True, "cos"), "tan": (-1.1, 1.1, True, "tan"),
    "arcsin": (-0.9, 0.9, True, "asin"), "arccos": (-0.9, 0.9, True, "acos"),
    "arctan": (-2, 2, True, "atan"), "sinh": (-2, 2, True, "sinh"), "cosh": (-2, 2, True, "cosh"),
    "tanh": (-2, 2, True, "tanh"), "arcsinh": (-2, 2, True, "asinh"),
    "arccosh": (1.1, 3, True, "acosh"), "arctanh": (-0.9, 0.9, True, "atanh"),
    "exp": (-2, 2, True, "exp"), "exp2": (-2, 2, True, "exp2"), "expm1": (-2, 2, True, "expm1"),
    "log": (0.2, 2, True, "log"), "log2": (0.2, 2, True, "log2"), "log10": (0.2, 2, True, "log10"),
    "log1p": (0.2, 2, True, "log1p"), "sqrt": (0.2, 2, True, "sqrt"), "cbrt": (0.2, 2, False, None),
    "square": (-2, 2, True, "square"), "reciprocal": (0.3, 2, True, "reciprocal"),
    "sinc": (0.05, 2, True, "sinc"), "deg2rad": (-2, 2, False, "deg2rad"),
    "rad2deg": (-2, 2, False, "rad2deg"), "radians": (-2, 2, False, "deg2rad"),
    "degrees": (-2, 2, False, "rad2deg"), "fabs": (0.1, 2, False, "abs"), "abs": (0.1, 2, True, "abs"),
    "negative": (-2, 2, True, "neg"), "positive": (-2, 2, True, "positive"),
    "conj": (-2, 2, True, None), "real": (-2, 2, True, None), "imag": (-2, 2, True, None),
    "angle": (0.1, 2, True, None), "real_if_close": (-2, 2, True, None),
}
NOT_IN_AUTOGRAD = {"cbrt", "positive"}

# name: (x low, x high, y low, y high, accepts complex, torch's name or None)
BINARY = {
    "add": (-2, 2, -2, 2, True, "add"), "subtract": (-2, 2, -2, 2, True, "sub"),
    "multiply": (-2, 2, -2, 2, True, "mul"), "divide": (-2, 2, 0.5, 2, True, "div"),
    "true_divide": (-2, 2, 0.5, 2, True, "true_divide"), "power": (0.5, 2, -2, 2, True, "pow"),
    "float_power": (0.5, 2, -2, 2, True, "float_power"), "maximum": (-2, 2, -2, 2, False, "maximum"),
    "minimum": (-2, 2, -2, 2, False, "minimum"), "fmax": (-2, 2, -2, 2, False, "fmax"),
    "fmin": (-2, 2, -2, 2, False, "fmin"), "logaddexp": (-2, 2, -2, 2, False, "logaddexp"),
    "logaddexp2": (-2, 2, -2, 2, False, "logaddexp2"), "arctan2": (-2, 2, -2, 2, False, "atan2"),
    "hypot": (-2, 2, -2, 2, False, "hypot"), "mod": (-2, 2, 0.5, 2, False, "remainder"),
    "remainder": (-2, 2, 0.5, 2, False, "remainder"), "fmod": (-2, 2, 0.5, 2, False, "fmod"),
    "copysign": (0.1, 2, -2, 2, False, "copysign"), "nextafter": (-2, 2, -2, 2, False, None),
}
NOT_IN_AUTOGRAD_BINARY = {"float_power", "fmod", "copysign", "nextafter"}
SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((1, 3), (2, 1)), ((), (2,))]


def points(lo, hi, shape, complex_=False):
    """Uniform points in [lo, hi]; both signs for the ranges [0.05 or 0.1, hi] of odd or even functions."""
    x = rng.uniform(lo, hi, shape)
    if 0 < lo < 0.2:
        x = x * rng.choice([-1.0, 1.0], shape)
    if complex_:
        x = x + 1j * rng.uniform(-0.5, 0.5, shape)
    return x


# ----------------------------------------------------------------------------- values and gradcheck


def _with_complex(table, flag):
    return [(n, False) for n in sorted(table)] + [(n, True) for n in sorted(table) if table[n][flag]]


@pytest.mark.parametrize("name, complex_", _with_complex(UNARY, 2))
def test_unary_value_and_gradcheck(name, complex_):
    lo, hi, _, _ = UNARY[name]
    x = points(lo, hi, (2, 3), complex_)
    got = getattr(np, name)(x)
    onp.testing.assert_array_equal(got, getattr(onp, name)(x))
    gradcheck(getattr(np, name), x, order=2)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name, complex_", _with_complex(BINARY, 4))
def test_binary_value_and_gradcheck(name, shapes, complex_):
    xlo, xhi, ylo, yhi, _, _ = BINARY[name]
    x = points(xlo, xhi, shapes[0], complex_)
    y = points(ylo, yhi, shapes[1], complex_)
    onp.testing.assert_array_equal(getattr(np, name)(x, y), getattr(onp, name)(x, y))
    gradcheck(getattr(np, name), x, y, order=2)


# ----------------------------------------------------------------------------- against HIPS autograd


@pytest.mark.parametrize("name", sorted(set(UNARY) - NOT_IN_AUTOGRAD))
@HYP
@given(data=st.data())
def test_unary_matches_autograd(name, data):
    lo, hi, accepts_complex, _ = UNARY[name]
    xs = data.draw(st.lists(st.floats(lo, hi), min_size=1, max_size=4))
    x = onp.array(xs)
    if 0 < lo < 0.2:  # odd or even functions: both signs
        x = x * onp.array(data.draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=len(xs), max_size=len(xs))))
    ours, theirs = getattr(np, name), getattr(anp, name)

    def loss(mod, fn):
        return lambda x: mod.sum(mod.real(fn(x)) + 0.5 * mod.imag(fn(x)))

    onp.testing.assert_allclose(ours(x), theirs(x), **TOL)
    onp.testing.assert_allclose(nablab.grad(loss(np, ours))(x), autograd.grad(loss(anp, theirs))(x), **TOL)
    onp.testing.assert_allclose(
        nablab.elementwise_grad(nablab.elementwise_grad(loss(np, ours)))(x),
        autograd.elementwise_grad(autograd.elementwise_grad(loss(anp, theirs)))(x), **TOL)
    if accepts_complex:
        ys = data.draw(st.lists(st.floats(-0.5, 0.5), min_size=len(xs), max_size=len(xs)))
        z = x + 1j * onp.array(ys)
        onp.testing.assert_allclose(ours(z), theirs(z), **TOL)
        onp.testing.assert_allclose(nablab.grad(loss(np, ours))(z), autograd.grad(loss(anp, theirs))(z), **TOL)


@pytest.mark.parametrize("name", sorted(set(BINARY) - NOT_IN_AUTOGRAD_BINARY))
@HYP
@given(data=st.data(), shapes=st.sampled_from(SHAPES))
def test_binary_matches_autograd(name, data, shapes):
    xlo, xhi, ylo, yhi, accepts_complex, _ = BINARY[name]

    def arr(lo, hi, shape):
        n = int(onp.prod(shape))
        return onp.array(data.draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))).reshape(shape)

    x, y = arr(xlo, xhi, shapes[0]), arr(ylo, yhi, shapes[1])
    if name in ("maximum", "minimum", "fmax", "fmin"):
        y = y + 1e-3 * (x == y)  # ties are a convention of their own, tested below
    if name in ("arctan2", "hypot"):
        x = x + 0.5 * (onp.hypot(x, y) < 1e-3)  # so is the origin
    if accepts_complex:
        x = x + 1j * arr(-0.5, 0.5, shapes[0])
    ours, theirs = getattr(np, name), getattr(anp, name)
    loss = lambda mod, fn: (lambda x, y: mod.sum(mod.real(fn(x, y))))  # noqa: E731
    onp.testing.assert_allclose(ours(x, y), theirs(x, y), **TOL)
    for argnum in (0, 1):
        onp.testing.assert_allclose(nablab.grad(loss(np, ours), argnum)(x, y),
                                    autograd.grad(loss(anp, theirs), argnum)(x, y), **TOL)


# ----------------------------------------------------------------------------- against torch.func


def tn(t):
    """A torch result as NumPy (torch.func returns ZeroTensors for the derivatives of linear maps: cloned first,
    since torch 2.13's numpy(force=True) of a 0-d one from torch.func.grad crashed the interpreter)."""
    return t.detach().clone().numpy(force=True)


@pytest.mark.parametrize("name", sorted(n for n, spec in UNARY.items() if spec[3]))
@TORCH_HYP
@given(data=st.data())
def test_unary_matches_torch(name, data):
    lo, hi, _, tname = UNARY[name]
    x = onp.array(data.draw(st.lists(st.floats(lo, hi), min_size=1, max_size=4)))
    f, tf = getattr(np, name), getattr(torch, tname)
    tx = torch.tensor(x, dtype=torch.float64)
    onp.testing.assert_allclose(f(x), tn(tf(tx)), **TOL)
    g1 = torch.func.grad(lambda t: tf(t).sum())
    g2 = torch.func.grad(lambda t: g1(t).sum())
    onp.testing.assert_allclose(nablab.grad(lambda x: np.sum(f(x)))(x), tn(g1(tx)), **TOL)
    onp.testing.assert_allclose(nablab.elementwise_grad(nablab.elementwise_grad(f))(x), tn(g2(tx)), **TOL)
    v = onp.linspace(-1.0, 1.0, len(x))
    _, ours = nablab.jvp(f, (x,), (v,))
    _, theirs = torch.func.jvp(tf, (tx,), (torch.tensor(v),))
    onp.testing.assert_allclose(ours, tn(theirs), **TOL)


@pytest.mark.parametrize("name", sorted(n for n, spec in BINARY.items() if spec[5]))
@TORCH_HYP
@given(data=st.data(), shapes=st.sampled_from(SHAPES))
def test_binary_matches_torch(name, data, shapes):
    xlo, xhi, ylo, yhi, _, tname = BINARY[name]

    def arr(lo, hi, shape):
        n = int(onp.prod(shape))
        return onp.array(data.draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))).reshape(shape)

    x, y = arr(xlo, xhi, shapes[0]), arr(ylo, yhi, shapes[1])
    if name in ("maximum", "minimum", "fmax", "fmin"):
        y = y + 1e-3 * (x == y)
    if name in ("arctan2", "hypot"):
        x = x + 0.5 * (onp.hypot(x, y) < 1e-3)
    f, tf = getattr(np, name), getattr(torch, tname)
    tx, ty = torch.tensor(x), torch.tensor(y)
    onp.testing.assert_allclose(f(x, y), tn(tf(tx, ty)), **TOL)
    ours = nablab.grad(lambda x, y: np.sum(f(x, y)), (0, 1))(x, y)
    theirs = torch.func.grad(lambda a, b: tf(a, b).sum(), (0, 1))(tx, ty)
    for o, t in zip(ours, theirs):
        onp.testing.assert_allclose(o, tn(t), **TOL)
    # Second order: the Hessian of sum(f) in x, by jacrev of grad, against torch's.
    h = nablab.jacfwd(nablab.grad(lambda x: np.sum(f(x, y))))(x)
    th = torch.func.jacrev(torch.func.grad(lambda a: tf(a, ty).sum()))(tx)
    onp.testing.assert_allclose(h, tn(th), **TOL)


# ----------------------------------------------------------------------------- conventions at kinks


def both_modes_derivative(f, x):
    """d f / d x at a scalar x by reverse and by forward mode (they must agree)."""
    rev = nablab.grad(f)(x)
    fwd = nablab.jvp(f, (x,), (1.0,))[1]
    assert onp.array_equal(rev, fwd, equal_nan=True), (rev, fwd)
    return rev


@pytest.mark.parametrize("name", ["abs", "fabs"])
def test_abs_derivative_is_zero_at_zero(name):
    f = getattr(np, name)
    assert both_modes_derivative(f, 0.0) == 0.0
    assert both_modes_derivative(f, -0.0) == 0.0
    assert both_modes_derivative(f, -2.0) == -1.0
    assert nablab.grad(nablab.grad(f))(0.0) == 0.0


def test_maximum_and_minimum_split_a_tie_equally():
    for f in (np.maximum, np.minimum, np.fmax, np.fmin):
        assert both_modes_derivative(lambda x: f(x, 1.0), 1.0) == 0.5
        assert nablab.grad(lambda y: f(1.0, y))(1.0) == 0.5
        assert nablab.grad(lambda x: f(x, x))(1.0) == 1.0
    # below and above the tie the whole derivative goes to the winner
    assert both_modes_derivative(lambda x: np.maximum(x, 1.0), 1.5) == 1.0
    assert both_modes_derivative(lambda x: np.maximum(x, 1.0), 0.5) == 0.0


def test_fmax_and_fmin_ignore_a_nan_and_maximum_propagates_it():
    for f in (np.fmax, np.fmin):
        assert both_modes_derivative(lambda x: f(x, onp.nan), 2.0) == 1.0
        assert nablab.grad(lambda y: f(2.0, y))(onp.nan) == 0.0
    assert onp.isnan(np.maximum(2.0, onp.nan))
    assert both_modes_derivative(lambda x: np.maximum(x, onp.nan), 2.0) == 0.0


def test_clip_derivative_goes_to_the_value_it_takes():
    x = onp.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    grads = nablab.grad(lambda x, lo, hi: np.sum(np.clip(x, lo, hi) * onp.arange(1.0, 6.0)), (0, 1, 2))
    gx, glo, ghi = grads(x, 0.0, 1.0)
    onp.testing.assert_array_equal(gx, [0.0, 2.0, 3.0, 4.0, 0.0])  # bounds included
    assert glo == 1.0 and ghi == 5.0
    # lo > hi: NumPy gives hi everywhere, so everything goes to hi
    gx, glo, ghi = grads(x, 1.0, 0.0)
    assert not gx.any() and glo == 0.0 and ghi == 15.0
    gradcheck(lambda x, lo, hi: np.clip(x, lo, hi), onp.array([-1.3, 0.4, 2.2]), onp.array([0.1, 0.2, -0.5]), 1.5)
    assert nablab.grad(lambda x: np.sum(np.clip(x, max=0.3)))(x).tolist() == [1, 1, 0, 0, 0]
    assert nablab.grad(lambda x: np.sum(x.clip(0.2, None)))(x).tolist() == [0, 0, 1, 1, 1]
    onp.testing.assert_array_equal(np.clip(onp.arange(4), 1, 2), onp.clip(onp.arange(4), 1, 2))


def test_power_with_exponent_zero_has_derivative_zero_at_zero_to_every_order():
    for y in (0.0, 0):
        f = lambda x, y=y: x ** y  # noqa: E731
        d1 = nablab.grad(f)
        d2 = nablab.grad(d1)
        d3 = nablab.grad(d2)
        assert (d1(0.0), d2(0.0), d3(0.0)) == (0.0, 0.0, 0.0)
        assert nablab.jvp(d2, (0.0,), (1.0,))[1] == 0.0
    # the exponent's derivative x^y log x is 0 at x == 0, and 0**y's derivatives in x are as usual
    assert both_modes_derivative(lambda y: np.power(0.0, y), 2.0) == 0.0
    assert nablab.grad(nablab.grad(lambda x: x ** 2))(0.0) == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert both_modes_derivative(lambda x: x ** 0.5, 0.0) == onp.inf


@pytest.mark.parametrize("name", ["sqrt", "cbrt", "log"])
def test_derivative_at_zero_is_infinite(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        d = both_modes_derivative(getattr(np, name), 0.0)
    assert d == onp.inf


def test_arctan2_hypot_and_angle_have_derivative_zero_at_the_origin():
    for f in (np.arctan2, np.hypot):
        g = nablab.grad(f, (0, 1))(0.0, 0.0)
        assert g == (0.0, 0.0)
        assert nablab.jvp(f, (0.0, 0.0), (1.0, 1.0))[1] == 0.0
        onp.testing.assert_array_equal(nablab.grad(lambda v: np.sum(f(v, onp.zeros(2))))(onp.zeros(2)), 0.0)
    assert nablab.grad(np.angle)(0j) == 0
    assert nablab.jvp(np.angle, (0j,), (1 + 1j,))[1] == 0.0
    # off the origin arctan2's derivative is exact even where x1^2 + x2^2 underflows
    assert math.isclose(nablab.grad(lambda a: np.arctan2(a, 1e-200))(1e-200), 0.5e200)


def test_sinc_is_smooth_at_zero():
    d = [np.sinc]
    for _ in range(4):
        d.append(nablab.grad(d[-1]))
    got = [float(f(0.0)) for f in d[1:]]
    want = [0.0, -math.pi ** 2 / 3, 0.0, math.pi ** 4 / 5]
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the series and the closed form meet where the rule switches (|x| = 0.1)
    for k in (1, 2, 3):
        lo, hi = float(d[k](0.1 - 1e-12)), float(d[k](0.1 + 1e-12))
        assert math.isclose(lo, hi, rel_tol=1e-9), (k, lo, hi)
    gradcheck(np.sinc, onp.array([0.0, 1e-3, -0.0999, 0.1001, 0.5 + 0.05j]), order=2)


def test_remainders_derivatives():
    x, y = onp.array([5.5, -5.5]), 2.0
    assert nablab.grad(lambda y: np.sum(np.mod(x, y)))(y) == -(2.0 - 3.0)
    assert nablab.grad(lambda y: np.sum(np.fmod(x, y)))(y) == -(2.0 - 2.0)
    onp.testing.assert_array_equal(nablab.grad(lambda x: np.sum(x % y))(x), [1.0, 1.0])
    q, r = np.divmod(x, y)
    onp.testing.assert_array_equal(q, onp.floor_divide(x, y))
    assert nablab.grad(lambda y: np.sum(np.divmod(x, y)[1]))(y) == 1.0


def test_copysign_nextafter_heaviside():
    g = nablab.grad(lambda a, b: np.sum(np.copysign(a, b)), (0, 1))
    ga, gb = g(onp.array([2.0, -2.0, 0.0, 3.0]), onp.array([1.0, 1.0, -1.0, -0.0]))
    onp.testing.assert_array_equal(ga, [1.0, -1.0, 0.0, -1.0])
    onp.testing.assert_array_equal(gb, 0.0)
    assert nablab.grad(lambda a: np.nextafter(a, 3.0))(1.0) == 1.0
    x1 = onp.array([-1.0, 0.0, 2.0, 0.0])
    h = lambda x2: np.sum(np.heaviside(x1, x2) * onp.arange(1.0, 5.0))  # noqa: E731
    onp.testing.assert_array_equal(nablab.grad(h)(onp.full(4, 0.5)), [0.0, 2.0, 0.0, 4.0])
    assert nablab.grad(lambda a: np.heaviside(a, 0.5))(1.0) == 0.0
    onp.testing.assert_array_equal(np.heaviside(x1, 0.5), onp.heaviside(x1, 0.5))


def test_floating_point_decompositions():
    x = onp.array([3.0, -0.3, 1e-3])
    m, e = np.frexp(x)
    onp.testing.assert_array_equal(m, onp.frexp(x)[0])
    onp.testing.assert_array_equal(nablab.grad(lambda x: np.sum(np.frexp(x)[0]))(x), 2.0 ** -onp.frexp(x)[1])
    frac, whole = np.modf(x)
    onp.testing.assert_array_equal(nablab.grad(lambda x: np.sum(np.modf(x)[0]))(x), 1.0)
    onp.testing.assert_array_equal(whole, onp.modf(x)[1])
    gradcheck(lambda x: np.ldexp(x, onp.array([1, -2, 3])), x)


def test_nan_to_num_passes_finite_entries_only():
    x = onp.array([1.0, onp.nan, onp.inf, -onp.inf, -2.0])
    onp.testing.assert_array_equal(nablab.grad(lambda x: np.sum(np.nan_to_num(x, posinf=9.0)))(x), [1, 0, 0, 0, 1])
    assert list(nablab.jvp(np.nan_to_num, (x,), (onp.ones(5),))[1]) == [1, 0, 0, 0, 1]
    z = onp.array([1 + 1j, complex(onp.nan, 2.0), complex(3.0, onp.inf)])
    # Re and Im of each entry pass separately: grad of sum(re + 2 im) is 1 - 2i where both stay
    g = nablab.grad(lambda z: np.sum(np.real(np.nan_to_num(z)) + 2 * np.imag(np.nan_to_num(z))))(z)
    onp.testing.assert_array_equal(g, [1 - 2j, -2j, 1])
    gradcheck(lambda z: np.nan_to_num(z * 2.0), onp.array([1 + 1j, 0.5 - 2j]))
    with pytest.raises(NotImplementedError, match="replacement"):
        nablab.grad(lambda v: np.sum(np.nan_to_num(x, nan=v)))(1.0)


def test_piecewise_constant_functions_give_zero_derivative_and_plain_values():
    x = onp.array([-1.5, 0.3, 2.7])
    for name in ("floor", "ceil", "rint", "trunc", "fix", "round", "sign", "signbit"):
        f = getattr(np, name)
        out = nablab.grad(lambda x: np.sum(x * 0.0 + f(x)))(x)
        onp.testing.assert_array_equal(out, 0.0)
    assert nablab.grad(lambda x: np.sum(np.floor_divide(x, 2.0)) + 0.0 * np.sum(x))(x).tolist() == [0, 0, 0]


# ----------------------------------------------------------------------------- NumPy's ufunc keywords


def test_ufunc_keywords_on_constants_are_numpys():
    x = onp.array([0.5, 1.5])
    buf = onp.zeros(2)
    assert np.exp(x, out=buf) is buf
    onp.testing.assert_array_equal(buf, onp.exp(x))
    assert np.exp(x, dtype=onp.float32).dtype == onp.float32
    out = onp.full(2, 7.0)
    np.add(x, 1.0, out=out, where=onp.array([True, False]))
    onp.testing.assert_array_equal(out, [1.5, 7.0])


def test_ufunc_keywords_on_traced_values():
    x = onp.array([0.5, 1.5])
    y, dy = nablab.jvp(lambda x: np.multiply(x, 3.0, dtype=onp.float32), (x,), (onp.ones(2),))
    assert y.dtype == onp.float32 and onp.allclose(dy, 3.0)
    with pytest.raises(TypeError, match="out="):
        nablab.grad(lambda x: np.sum(np.exp(x, out=onp.zeros(2))))(x)
    with pytest.raises(NotImplementedError, match="where="):
        nablab.grad(lambda x: np.sum(np.sin(x, where=x > 1)))(x)
    with pytest.raises(NotImplementedError, match="signature"):
        nablab.grad(lambda x: np.sum(np.sin(x, signature="d->d")))(x)
    with pytest.raises(TypeError, match="out="):  # NumPy's own entry point
        nablab.grad(lambda x: onp.sum(onp.exp(x, out=onp.zeros(2))))(x)


def test_outer_and_ufunc_attributes():
    x, y = onp.array([1.0, 2.0]), onp.array([0.5, 1.0, 3.0])
    onp.testing.assert_array_equal(np.multiply.outer(x, y), onp.multiply.outer(x, y))
    assert nablab.grad(lambda x: np.sum(np.multiply.outer(x, y)))(x).tolist() == [4.5, 4.5]
    assert nablab.grad(lambda x: np.sum(onp.subtract.outer(y, x)))(x).tolist() == [-3.0, -3.0]
    gradcheck(lambda x, y: np.arctan2.outer(x, y), x, y)
    assert np.add.nin == 2 and np.sin.nout == 1 and np.multiply.identity == 1
    with pytest.raises(UnsupportedFunctionError, match="numpy.hypot.reduce"):
        nablab.grad(lambda x: np.hypot.reduce(x))(x)


def test_numpy_2_aliases_are_the_same_functions():
    for short, long in [("acos", "arccos"), ("asin", "arcsin"), ("atan", "arctan"), ("acosh", "arccosh"),
                        ("asinh", "arcsinh"), ("atanh", "arctanh"), ("atan2", "arctan2"), ("pow", "power"),
                        ("absolute", "abs"), ("conjugate", "conj"), ("remainder", "mod"),
                        ("true_divide", "divide")]:
        assert getattr(np, short) is getattr(np, long)
    assert nablab.grad(lambda x: onp.acos(x))(0.5) == pytest.approx(-1 / math.sqrt(0.75), rel=1e-14)


def test_plain_numpy_calls_dispatch_to_nablab():
    x = onp.array([0.3, 0.7])
    for name in ("tan", "arcsinh", "log2", "cbrt", "sinc", "deg2rad", "fabs", "exp2", "square"):
        gradcheck(lambda x, name=name: getattr(onp, name)(x), x)
    gradcheck(lambda x: onp.logaddexp(x, 0.2) + onp.hypot(x, 0.5) + onp.fmod(x, 0.25), x)


# ----------------------------------------------------------------------------- nothing silently wrong

#: Float ufuncs with no derivative anywhere (their results are plain arrays) or, refused.
_NO_DERIVATIVE = {"ceil", "floor", "rint", "trunc", "sign", "signbit", "spacing", "isfinite", "isinf",
                  "isnan", "floor_divide", "equal", "not_equal", "greater", "greater_equal", "less",
                  "less_equal", "logical_and", "logical_or", "logical_not", "logical_xor"}


#: Float ufuncs another family owns (products); until it differentiates them they must refuse by name.
OTHER_FAMILIES = {"matmul", "vecdot", "matvec", "vecmat"}


def _ufuncs_with_loop(code):
    for name in sorted(dir(onp)):
        u = getattr(onp, name)
        if isinstance(u, onp.ufunc) and any(t.startswith(code * u.nin + "->") for t in u.types):
            yield name


def _check_ufunc(name, args, no_derivative):
    u = getattr(onp, name)
    if name in no_derivative:
        out = nablab.grad(lambda x: onp.sum(onp.real(x) * 0.0) + onp.sum(onp.real(u(x, *args[1:]))))(args[0])
        onp.testing.assert_array_equal(out, 0.0)
        return
    diff = args[:1] if name == "ldexp" else args

    def f(*xs):
        out = u(*(list(xs) + args[len(xs):]))
        return out if u.nout == 1 else out[0]

    try:
        gradcheck(f, *diff, order=2)
    except UnsupportedFunctionError as err:
        assert name in OTHER_FAMILIES and name in str(err)


@pytest.mark.parametrize("name", list(_ufuncs_with_loop("d")))
def test_every_float_ufunc_differentiates_or_refuses(name):
    """A traced float value through any NumPy ufunc: a checked derivative, no derivative, or an error."""
    args = [onp.array([0.3, 0.6]), onp.array([0.45, 0.8])][: getattr(onp, name).nin]
    if name == "ldexp":
        args[1] = onp.array([1, 2])
    elif name in ("arccosh", "acosh"):
        args[0] = args[0] + 1.0
    elif name == "matvec":
        args[0] = onp.array([[0.3, 0.6], [0.2, -0.4]])
    elif name == "vecmat":
        args[1] = onp.array([[0.3, 0.6], [0.2, -0.4]])
    _check_ufunc(name, args, _NO_DERIVATIVE)


@pytest.mark.parametrize("name", list(_ufuncs_with_loop("D")))
def test_every_complex_ufunc_differentiates_or_refuses(name):
    """The same for complex values (sign of a complex value is z/|z|, differentiated)."""
    args = [onp.array([0.3 + 0.2j, -0.6 + 0.1j]), onp.array([0.45 - 0.3j, 0.8 + 0.7j])][: getattr(onp, name).nin]
    if name == "matvec":
        args[0] = onp.array([[0.3, 0.6j], [0.2, -0.4]])
    elif name == "vecmat":
        args[1] = onp.array([[0.3, 0.6j], [0.2, -0.4]])
    _check_ufunc(name, args, _NO_DERIVATIVE - {"sign"})


# ----------------------------------------------------------------------------- errors


def test_bad_calls_raise_clear_errors():
    with pytest.raises(ValueError, match="both x and y"):
        np.where(onp.array([True]), 1.0)
    with pytest.raises(ValueError, match="at least one"):
        nablab.grad(lambda x: np.clip(x, None, None))(1.0)
    with pytest.raises(nablab.ShapeError, match=r"\(3,\).*\(2,\)"):
        nablab.grad(lambda x: np.sum(np.arctan2(x, onp.ones(2))))(onp.ones(3))


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(BINARY))
def test_float32_stays_float32(name):
    f = getattr(np, name)
    if name in BINARY:
        xlo, xhi, ylo, yhi = BINARY[name][:4]
        y = points(ylo, yhi, (2,)).astype(onp.float32)
        f = lambda x, f=f: getattr(np, name)(x, y)  # noqa: E731
    else:
        xlo, xhi = UNARY[name][:2]
    x = points(xlo, xhi, (2,)).astype(onp.float32)
    assert f(x).dtype == (onp.float64 if name == "float_power" else onp.float32)
    assert nablab.grad(lambda x: np.sum(f(x)))(x).dtype == onp.float32
    assert nablab.jvp(f, (x,), (onp.ones(2, onp.float32),))[1].dtype == f(x).dtype
    assert nablab.grad(lambda x: np.sum(np.sin(x.astype("float64"))))(x).dtype == onp.float32
