"""nablab.numpy reductions: values as NumPy's on traced inputs, derivatives against finite
differences (both modes, second order), the conventions at kinks (zeros of prod/cumprod,
ties of max, zero variance), HIPS autograd on random inputs, and torch.func."""

import warnings

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck
from nablab.numpy import reductions

rng = onp.random.default_rng(0)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def traced(f, *args):
    """``f``'s value computed on traced inputs (so nablab's own code runs, not NumPy's)."""
    out = nablab.jvp(f, tuple(args), tuple(onp.zeros_like(a) for a in args))[0]
    return nablab.tree_map(lambda t: onp.asarray(t.numpy() if hasattr(t, "numpy") else t), out)


NAN_ROWS = onp.array([[1.0, onp.nan, 3.0, -2.0], [2.0, 5.0, onp.nan, 0.5]])
ZEROS = onp.array([[1.5, 0.0, 2.0, -3.0], [0.0, 0.0, 1.0, 2.0], [1.0, 2.0, -3.0, 0.5]])

# name -> (function of (module, x), input): the same code runs with NumPy and with nablab.numpy.
CASES = {
    "sum-axes-keepdims": (lambda m, x: m.sum(x, axis=(0, 2), keepdims=True), R(2, 3, 4)),
    "sum-where-initial": (lambda m, x: m.sum(x, axis=1, where=onp.array([True, False, True]), initial=2.0), R(2, 3)),
    "mean-where": (lambda m, x: m.mean(x, axis=0, where=onp.array([[True], [False], [True]])), R(3, 4)),
    "var-ddof": (lambda m, x: m.var(x, axis=1, ddof=1), R(3, 4)),
    "var-axes-keepdims": (lambda m, x: m.var(x, axis=(0, 2), keepdims=True, ddof=2), R(3, 2, 4)),
    "std": (lambda m, x: m.std(x, axis=0), R(3, 4)),
    "std-correction": (lambda m, x: m.std(x, correction=1), R(3, 4)),
    "std-where": (lambda m, x: m.std(x, axis=1, where=onp.array([True, True, False, True])), R(2, 4)),
    "average": (lambda m, x: m.average(x, axis=1, weights=onp.array([1.0, 2.0, 0.5, 3.0])), R(3, 4)),
    "average-axes-returned": (lambda m, x: m.average(x, axis=(2, 0), weights=onp.arange(1.0, 7.0).reshape(2, 3),
                                                     returned=True), R(3, 4, 2)),
    "average-plain-returned": (lambda m, x: m.average(x, axis=0, returned=True), R(3, 4)),
    "average-same-shape-keepdims": (lambda m, x: m.average(x, axis=1, weights=onp.abs(x) + 1.0, keepdims=True), R(2, 3)),
    "ptp": (lambda m, x: m.ptp(x, axis=0), R(3, 4)),
    "max-axes": (lambda m, x: m.max(x, axis=(0, 2)), R(2, 3, 4)),
    "max-initial-where": (lambda m, x: m.max(x, axis=0, initial=-0.2, where=onp.array([True, False, True, True])), R(3, 4)),
    "min-keepdims": (lambda m, x: m.min(x, axis=(0, 1), keepdims=True), R(2, 3, 4)),
    "amax": (lambda m, x: m.amax(x, axis=-1), R(3, 4)),
    "prod": (lambda m, x: m.prod(x), R(3, 4)),
    "prod-axes": (lambda m, x: m.prod(x, axis=(0, 2), keepdims=True), R(2, 3, 4)),
    "prod-where-initial": (lambda m, x: m.prod(x, axis=1, where=onp.array([True, False, True]), initial=2.0), R(2, 3)),
    "prod-zeros": (lambda m, x: m.prod(x, axis=1), ZEROS),
    "prod-zeros-all": (lambda m, x: m.prod(x), ZEROS),
    "cumsum": (lambda m, x: m.cumsum(x, axis=1), R(3, 4)),
    "cumsum-flat": (lambda m, x: m.cumsum(x), R(3, 4)),
    "cumprod": (lambda m, x: m.cumprod(x, axis=0), R(4, 3)),
    "cumprod-zeros": (lambda m, x: m.cumprod(x, axis=1), ZEROS),
    "cumprod-zeros-flat": (lambda m, x: m.cumprod(x), ZEROS),
    "cumulative_sum": (lambda m, x: m.cumulative_sum(x, axis=0, include_initial=True), R(3, 2)),
    "cumulative_prod": (lambda m, x: m.cumulative_prod(x, include_initial=True), R(4)),
    "nansum": (lambda m, x: m.nansum(x + NAN_ROWS, axis=1), R(2, 4)),
    "nanprod": (lambda m, x: m.nanprod(x + NAN_ROWS, axis=0), R(2, 4)),
    "nancumsum": (lambda m, x: m.nancumsum(x + NAN_ROWS, axis=1), R(2, 4)),
    "nancumprod": (lambda m, x: m.nancumprod(x + NAN_ROWS), R(2, 4)),
    "nanmean": (lambda m, x: m.nanmean(x + NAN_ROWS, axis=1), R(2, 4)),
    "nanvar": (lambda m, x: m.nanvar(x + NAN_ROWS, axis=1, ddof=1), R(2, 4)),
    "nanstd": (lambda m, x: m.nanstd(x + NAN_ROWS), R(2, 4)),
    "nanmax": (lambda m, x: m.nanmax(x + NAN_ROWS, axis=1), R(2, 4)),
    "nanmin": (lambda m, x: m.nanmin(x + NAN_ROWS, axis=0), R(2, 4)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_match_numpy(name):
    f, x = CASES[name]
    want = f(onp, x)
    got = traced(lambda t: f(np, t), x)
    for g, w in zip(got, want) if isinstance(want, tuple) else [(got, want)]:
        assert onp.shape(g) == onp.shape(w)
        onp.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_second_order_both_modes(name):
    f, x = CASES[name]
    gradcheck(lambda t: f(np, t), x)


COMPLEX_CASES = {
    "sum": lambda x: np.sum(x, axis=0),
    "mean": lambda x: np.mean(x, axis=1, keepdims=True),
    "var": lambda x: np.var(x, axis=0, ddof=1),
    "std": lambda x: np.std(x),
    "prod": lambda x: np.prod(x, axis=1),
    "prod-zeros": lambda x: np.prod(x * onp.array([[1, 0, 1], [0, 1, 0]]), axis=1),
    "cumsum": lambda x: np.cumsum(x, axis=1),
    "cumprod": lambda x: np.cumprod(x),
    "cumprod-zeros": lambda x: np.cumprod(x * onp.array([[1, 0, 1], [0, 1, 1]]), axis=1),
    "average-complex-weights": lambda x: np.average(x, axis=1, weights=onp.array([1.0 + 1j, 2.0, 0.5j])),
}


@pytest.mark.parametrize("name", list(COMPLEX_CASES))
def test_complex_inputs_gradcheck(name):
    gradcheck(COMPLEX_CASES[name], C(2, 3))


def test_max_and_min_differentiate_a_traced_initial():
    x = onp.array([[1.0, -2.0], [0.5, -1.0]])
    g = nablab.grad(lambda t, i: np.sum(np.max(t, axis=0, initial=i)), argnums=(0, 1))(x, 0.0)
    onp.testing.assert_array_equal(g[0], [[1.0, 0.0], [0.0, 0.0]])
    assert g[1] == 1.0
    gradcheck(lambda t, i: np.min(t, axis=1, initial=i), x, 0.2)


def test_traced_initial_values_are_differentiated():
    gradcheck(lambda x, i: np.sum(x, axis=0, initial=i), R(2, 3), 0.4)
    gradcheck(lambda x, i: np.prod(x, axis=1, initial=i), R(2, 3), 0.4)
    gradcheck(lambda x, i: np.nansum(x, initial=i), R(3), 0.4)


def test_average_differentiates_the_weights():
    gradcheck(lambda x, w: np.average(x, axis=0, weights=w), R(4, 3), onp.abs(R(4)) + 0.5)
    gradcheck(lambda x, w: np.average(x, weights=w, returned=True), R(2, 3), onp.abs(R(2, 3)) + 0.5)


# ----------------------------------------------------------------------------- kinks and conventions

def test_prod_at_one_zero_is_the_product_of_the_others():
    x = onp.array([2.0, 0.0, -3.0, 0.5])
    onp.testing.assert_allclose(nablab.grad(np.prod)(x), [0.0, -3.0, 0.0, 0.0])
    # Second derivatives: d2/dx_i dx_j = product of the entries other than i and j.
    h = onp.asarray(nablab.hessian(np.prod)(x))
    want = onp.array([[0 if i == j else onp.prod(onp.delete(x, [i, j])) for j in range(4)] for i in range(4)])
    onp.testing.assert_allclose(h, want, atol=1e-14)


def test_prod_at_two_zeros_has_zero_gradient_and_the_right_hessian():
    x = onp.array([0.0, 2.0, 0.0, 3.0])
    g = nablab.grad(np.prod)(x)
    assert onp.all(onp.asarray(g) == 0)
    h = onp.asarray(nablab.hessian(np.prod)(x))
    want = onp.zeros((4, 4))
    want[0, 2] = want[2, 0] = 6.0
    onp.testing.assert_allclose(h, want, atol=1e-14)
    # Third order: d3/dx0 dx2 dx1 = 3.
    third = nablab.grad(lambda y: nablab.grad(lambda z: nablab.grad(np.prod)(z)[0])(y)[2])(x)
    onp.testing.assert_allclose(third, [0.0, 3.0, 0.0, 2.0], atol=1e-14)


def test_prod_with_zeros_in_forward_mode_and_nan_free():
    x = onp.array([[0.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    with onp.errstate(all="raise"):
        _, t = nablab.jvp(lambda y: np.prod(y, axis=1), (x,), (onp.ones_like(x),))
    onp.testing.assert_allclose(t, [6.0, 11.0])


def test_cumprod_at_zeros():
    x = onp.array([2.0, 0.0, 3.0, 0.0, 5.0])
    jac = onp.asarray(nablab.jacrev(np.cumprod)(x))
    want = onp.zeros((5, 5))
    for k in range(5):
        for i in range(k + 1):
            want[k, i] = onp.prod(onp.delete(x[:k + 1], i))
    onp.testing.assert_allclose(jac, want, atol=1e-14)
    onp.testing.assert_allclose(nablab.jacfwd(np.cumprod)(x), want, atol=1e-14)


def test_max_ties_share_the_gradient_and_nan_takes_it():
    onp.testing.assert_allclose(nablab.grad(np.max)(onp.array([1.0, 3.0, 3.0, 2.0])), [0, 0.5, 0.5, 0])
    onp.testing.assert_allclose(nablab.grad(lambda x: np.sum(np.min(x, axis=0)))(onp.array([[1.0, 2.0], [1.0, 0.0]])),
                                [[0.5, 0.0], [0.5, 1.0]])
    with onp.errstate(invalid="ignore"):
        g = nablab.grad(np.max)(onp.array([1.0, onp.nan, 3.0]))
    onp.testing.assert_array_equal(g, [0.0, 1.0, 0.0])


def test_std_has_zero_derivative_at_zero_variance():
    assert nablab.grad(np.std)(onp.array(3.5)) == 0.0
    onp.testing.assert_array_equal(nablab.grad(np.std)(onp.full(4, 2.0)), onp.zeros(4))
    onp.testing.assert_array_equal(nablab.grad(lambda x: np.sum(np.std(x, axis=1)))(onp.ones((2, 1))), onp.zeros((2, 1)))
    h = nablab.hessian(np.std)(onp.full(3, 2.0))
    assert onp.all(onp.isfinite(onp.asarray(h)))


def test_nanmax_of_an_all_nan_slice_is_nan_without_gradient():
    x = onp.array([[onp.nan, onp.nan], [1.0, 2.0]])
    with onp.errstate(invalid="ignore"):
        onp.testing.assert_array_equal(nablab.grad(lambda y: np.nansum(np.nanmax(y, axis=1)))(x), [[0, 0], [0, 1]])


def test_nan_entries_get_no_gradient_from_nan_reductions():
    x = onp.array([1.0, onp.nan, 2.0])
    for f in (np.nansum, np.nanmean, np.nanvar, np.nanprod, np.nanmax):
        g = onp.asarray(nablab.grad(f)(x))
        assert g[1] == 0 and onp.all(onp.isfinite(g)), f.__name__


def test_numpy_functions_and_array_methods_dispatch_here():
    x = R(3, 4)
    by_numpy = lambda t: (onp.prod(t, axis=0).sum() + onp.cumsum(t)[5] + t.cumprod(axis=1).sum() + t.ptp()
                          + onp.ptp(t, axis=1).sum() + onp.average(t, axis=0, weights=[1.0, 2.0, 3.0]).sum())
    by_nablab = lambda t: (np.prod(t, axis=0).sum() + np.cumsum(t)[5] + np.cumprod(t, axis=1).sum() + np.ptp(t)
                           + np.ptp(t, axis=1).sum() + np.average(t, axis=0, weights=[1.0, 2.0, 3.0]).sum())
    g = onp.asarray(nablab.grad(by_numpy)(x))
    assert onp.all(g != 0)
    onp.testing.assert_allclose(g, nablab.grad(by_nablab)(x), rtol=1e-14)


def test_ufunc_methods_have_axis_zero_default():
    x = R(3, 4)
    m = reductions.UFUNC_METHODS
    for (ufunc, method), fn in m.items():
        want = getattr(ufunc, method)(x)
        onp.testing.assert_allclose(traced(fn, x), want, rtol=1e-12)
        gradcheck(fn, x, order=1)


# ----------------------------------------------------------------------------- errors

def test_bad_arguments_raise_clearly():
    x = R(2, 3)
    with pytest.raises(TypeError, match="out="):
        nablab.grad(lambda t: np.sum(np.prod(t, out=onp.empty(3))))(x)
    with pytest.raises(onp.exceptions.AxisError):
        np.prod(nablab.tensor(x), axis=2)
    with pytest.raises(ValueError, match="duplicate"):
        nablab.grad(lambda t: np.sum(np.max(t, axis=(0, 0))))(x)
    with pytest.raises(ValueError, match="weights of shape"):
        nablab.grad(lambda t: np.sum(np.average(t, axis=1, weights=onp.ones(2))))(x)
    with pytest.raises(TypeError, match="axis must be given"):
        nablab.grad(lambda t: np.average(t, weights=onp.ones(3)))(x)
    with pytest.raises(ZeroDivisionError, match="sum to zero"):
        nablab.grad(lambda t: np.sum(np.average(t, axis=1, weights=onp.array([1.0, -1.0, 0.0]))))(x)
    with pytest.raises(ValueError, match="initial"):
        nablab.grad(lambda t: np.sum(np.max(t, axis=0, where=onp.ones((2, 3), bool))))(x)
    with pytest.raises(NotImplementedError, match="mean="):
        nablab.grad(lambda t: np.var(t, mean=onp.zeros((1, 3))))(x)
    with pytest.raises(ValueError, match="axis must be given"):
        np.cumulative_sum(nablab.tensor(x))


# ----------------------------------------------------------------------------- against HIPS autograd

AUTOGRAD_FNS = {
    "sum": lambda m, x, axis, keep, ddof: m.sum(x, axis=axis, keepdims=keep),
    "mean": lambda m, x, axis, keep, ddof: m.mean(x, axis=axis, keepdims=keep),
    "var": lambda m, x, axis, keep, ddof: m.var(x, axis=axis, keepdims=keep, ddof=ddof),
    "std": lambda m, x, axis, keep, ddof: m.std(x, axis=axis, keepdims=keep, ddof=ddof),
    "max": lambda m, x, axis, keep, ddof: m.max(x, axis=axis, keepdims=keep),
    "min": lambda m, x, axis, keep, ddof: m.min(x, axis=axis, keepdims=keep),
    "prod": lambda m, x, axis, keep, ddof: m.prod(x, axis=axis, keepdims=keep),
    "cumsum": lambda m, x, axis, keep, ddof: m.cumsum(x, axis=axis),
}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(AUTOGRAD_FNS)),
       ndim=st.integers(1, 3), keep=st.booleans(), ddof=st.integers(0, 1), is_complex=st.booleans())
def test_values_and_gradients_match_autograd(seed, name, ndim, keep, ddof, is_complex):
    r = onp.random.default_rng(seed)
    shape = tuple(r.integers(2, 4, size=ndim))
    x = r.standard_normal(shape)
    if is_complex and name not in ("max", "min"):
        x = x + 1j * r.standard_normal(shape)
    axis = None if r.random() < 0.3 else int(r.integers(-ndim, ndim))
    f = AUTOGRAD_FNS[name]
    w = r.standard_normal(onp.shape(f(onp, x, axis, keep, ddof)))

    def loss(m, t):
        y = f(m, t, axis, keep, ddof)
        return m.sum(m.real(y * w)) if onp.iscomplexobj(y) else m.sum(m.sin(y) * w)

    onp.testing.assert_allclose(traced(lambda t: f(np, t, axis, keep, ddof), x), f(onp, x, axis, keep, ddof),
                                rtol=1e-10, atol=1e-10)
    onp.testing.assert_allclose(nablab.grad(lambda t: loss(np, t))(x), autograd.grad(lambda t: loss(anp, t))(x),
                                rtol=1e-10, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(["var", "std", "prod", "max", "cumsum"]))
def test_hessians_match_autograd(seed, name):
    r = onp.random.default_rng(seed)
    x = r.standard_normal((3, 4))
    f = AUTOGRAD_FNS[name]
    loss = lambda m, t: m.sum(m.tanh(f(m, t, 1, False, 1)))
    onp.testing.assert_allclose(nablab.hessian(lambda t: loss(np, t))(x), autograd.hessian(lambda t: loss(anp, t))(x),
                                rtol=1e-9, atol=1e-10)


# ----------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")

TORCH_CASES = {
    "prod": (lambda x: np.prod(x, axis=1), lambda x: torch.prod(x, dim=1)),
    "cumsum": (lambda x: np.cumsum(x, axis=0), lambda x: torch.cumsum(x, dim=0)),
    "cumprod": (lambda x: np.cumprod(x, axis=1), lambda x: torch.cumprod(x, dim=1)),
    "var": (lambda x: np.var(x, axis=1, ddof=1), lambda x: torch.var(x, dim=1, correction=1)),
    "std": (lambda x: np.std(x, axis=0), lambda x: torch.std(x, dim=0, correction=0)),
    "amax": (lambda x: np.max(x, axis=(0, 1)), lambda x: torch.amax(x, dim=(0, 1))),
    "nansum": (lambda x: np.nansum(x, axis=1), lambda x: torch.nansum(x, dim=1)),
    "nanmean": (lambda x: np.nanmean(x, axis=0), lambda x: torch.nanmean(x, dim=0)),
    "mean": (lambda x: np.mean(x, axis=1), lambda x: torch.mean(x, dim=1)),
}


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(TORCH_CASES)), zeros=st.integers(0, 3))
def test_jacobians_and_hessians_match_torch(seed, name, zeros):
    r = onp.random.default_rng(seed)
    x = r.standard_normal((3, 4))
    if name in ("prod", "cumprod"):
        # Put zeros (sometimes several in one row) where torch's own rules are exact too.
        x.flat[r.choice(12, size=zeros, replace=False)] = 0.0
    if name in ("nansum", "nanmean"):
        x[0, 1] = onp.nan
    if name == "amax":
        x[1, 2] = x.max()  # a tie
    nb_f, t_f = TORCH_CASES[name]
    v = r.standard_normal(x.shape)
    tx = torch.tensor(x)
    onp.testing.assert_allclose(nablab.jacrev(nb_f)(x), tfn.jacrev(t_f)(tx).numpy(), rtol=1e-10, atol=1e-12)
    onp.testing.assert_allclose(nablab.jvp(nb_f, (x,), (v,))[1], tfn.jvp(t_f, (tx,), (torch.tensor(v),))[1].numpy(),
                                rtol=1e-10, atol=1e-12)
    if name in ("nansum", "nanmean"):
        return
    loss_nb = lambda y: np.sum(np.sin(nb_f(y)))
    loss_t = lambda y: torch.sum(torch.sin(t_f(y)))
    onp.testing.assert_allclose(nablab.hessian(loss_nb)(x), tfn.hessian(loss_t)(tx).numpy(), rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- order statistics and covariances

NAN_GRID = onp.array([[0.0, onp.nan, 0.0, 0.0, 0.0], [onp.nan] * 5, [0.0, 0.0, 0.0, onp.nan, onp.nan]])

STAT_CASES = {
    "median": (lambda m, x: m.median(x), [R(5)]),
    "median-even-keepdims": (lambda m, x: m.median(x, axis=1, keepdims=True), [R(3, 4)]),
    "median-axes": (lambda m, x: m.median(x, axis=(0, 2)), [R(3, 4, 2)]),
    "median-nan": (lambda m, x: m.median(x + NAN_GRID, axis=1), [R(3, 5)]),
    "nanmedian": (lambda m, x: m.nanmedian(x + NAN_GRID, axis=1), [R(3, 5)]),
    "quantile-traced-q": (lambda m, x, q: m.quantile(x, q, axis=0, keepdims=True), [R(4, 3), onp.array([[0.3], [0.75]])]),
    "percentile": (lambda m, x, q: m.percentile(x, q), [R(4, 3), onp.array(37.0)]),
    "nanquantile": (lambda m, x, q: m.nanquantile(x + NAN_GRID, q, axis=1), [R(3, 5), onp.array([0.2, 0.8])]),
    "nanpercentile-midpoint": (lambda m, x: m.nanpercentile(x + NAN_GRID, [20.0, 80.0], axis=1, method="midpoint"), [R(3, 5)]),
    "cov": (lambda m, x: m.cov(x), [R(3, 5)]),
    "cov-y-columns": (lambda m, x, y: m.cov(x, y, rowvar=False), [R(5, 2), R(5)]),
    "cov-bias-1d": (lambda m, x: m.cov(x, bias=True), [R(5)]),
    "cov-fweights-ddof": (lambda m, x: m.cov(x, ddof=2, fweights=onp.array([1, 2, 0, 3, 1])), [R(2, 5)]),
    "cov-aweights": (lambda m, x, a: m.cov(x, aweights=a), [R(2, 5), onp.array([0.5, 1.0, 0.7, 0.9, 0.6])]),
    "cov-both-weights": (lambda m, x, a: m.cov(x, aweights=a, fweights=[1, 2, 1, 1, 3], ddof=0), [R(2, 5), onp.array([0.5, 1.0, 0.7, 0.9, 0.6])]),
    "corrcoef": (lambda m, x: m.corrcoef(x), [R(3, 5)]),
    "corrcoef-pair": (lambda m, x, y: m.corrcoef(x, y), [R(5), R(5)]),
}
for _method in ("linear", "lower", "higher", "nearest", "midpoint"):
    STAT_CASES[f"quantile-{_method}"] = (
        lambda m, x, _method=_method: m.quantile(x, [0.1, 0.5, 0.25, 0.9, 1.0, 0.0], axis=1, method=_method), [R(3, 4)])


@pytest.mark.parametrize("name", list(STAT_CASES))
def test_statistics_values_and_gradcheck(name):
    f, xs = STAT_CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "All-NaN slice encountered"
        want = f(onp, *xs)
    got = onp.asarray(nablab.jvp(lambda *ts: f(np, *ts), tuple(xs), tuple(onp.zeros_like(x) for x in xs))[0])
    assert got.shape == onp.shape(want)
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, equal_nan=True)
    defined = ~onp.isnan(want)
    gradcheck(lambda *ts: f(np, *ts)[defined] if not defined.all() else f(np, *ts), *xs)


def test_statistics_complex_and_conventions():
    gradcheck(lambda x: np.cov(x), C(2, 4))
    gradcheck(lambda x: np.corrcoef(x), C(2, 4))
    # The median of an even count is the mean of the middle two: half the gradient to each.
    onp.testing.assert_allclose(nablab.grad(np.median)(onp.array([4.0, 1.0, 3.0, 2.0])), [0, 0, 0.5, 0.5])
    # A tie goes to the first of the tied entries (stable sort), whole.
    onp.testing.assert_allclose(nablab.grad(np.median)(onp.array([2.0, 1.0, 2.0])), [1.0, 0.0, 0.0])
    # d quantile / d q is the slope between the neighbours times (n - 1).
    x = onp.array([0.0, 1.0, 4.0])
    onp.testing.assert_allclose(nablab.grad(lambda q: np.quantile(x, q))(0.75), 6.0)
    with pytest.raises(ValueError, match="range"):
        np.quantile(nablab.tensor(x), 1.5)
    with pytest.raises(NotImplementedError, match="method='weibull'"):
        np.quantile(nablab.tensor(x), 0.5, method="weibull")
    with pytest.raises(ValueError, match="fweights"):
        np.cov(nablab.tensor(R(2, 3)), fweights=[1.5, 1, 1])
    with pytest.raises(TypeError, match="aweights"):
        nablab.grad(lambda f: np.sum(np.cov(R(2, 3), fweights=f)))(onp.ones(3))


TORCH_STATS = {
    "quantile-linear": (lambda x: np.quantile(x, [0.2, 0.5, 0.9], axis=1),
                        lambda x: torch.quantile(x, torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), dim=1)),
    "quantile-midpoint": (lambda x: np.quantile(x, [0.2, 0.7], axis=0, method="midpoint"),
                          lambda x: torch.quantile(x, torch.tensor([0.2, 0.7], dtype=torch.float64), dim=0,
                                                   interpolation="midpoint")),
    "nanquantile": (lambda x: np.nanquantile(x, 0.3, axis=1), lambda x: torch.nanquantile(x, 0.3, dim=1)),
    "cov": (lambda x: np.cov(x, aweights=onp.arange(1.0, 5.0)),
            lambda x: torch.cov(x, aweights=torch.arange(1.0, 5.0, dtype=torch.float64))),
    "corrcoef": (lambda x: np.corrcoef(x), torch.corrcoef),
}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(TORCH_STATS)))
def test_statistics_match_torch(seed, name):
    r = onp.random.default_rng(seed)
    x = r.standard_normal((3, 4))
    if name == "nanquantile":
        x[1, 2] = onp.nan
    nb_f, t_f = TORCH_STATS[name]
    tx = torch.tensor(x)
    onp.testing.assert_allclose(nablab.jacrev(nb_f)(x), tfn.jacrev(t_f)(tx).numpy(), rtol=1e-10, atol=1e-12)
    if name != "nanquantile":
        loss_nb = lambda y: np.sum(np.sin(nb_f(y)))
        loss_t = lambda y: torch.sum(torch.sin(t_f(y)))
        onp.testing.assert_allclose(nablab.hessian(loss_nb)(x), tfn.hessian(loss_t)(tx).numpy(), rtol=1e-9, atol=1e-11)
