"""Derivatives where values are NaN, infinite or zero, against PyTorch: order statistics, nanmean,
nanvar and nanstd of slices with NaNs, x ** y over a grid of special points, prod and cumprod next
to inf and NaN entries, and norms at zero.  The rule: PyTorch's derivative, or NaN where PyTorch's
choice is arbitrary; never a quiet finite number where there is none.  Forward mode is held to the
reverse mode's Jacobian."""

import functools
import itertools
import operator
import warnings

import numpy as onp
import pytest

import nablab
import nablab.numpy as np

torch = pytest.importorskip("torch")
import torch.func  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's all-NaN slices, 0 ** -1, ...

NAN, INF = onp.nan, onp.inf


def close(ours, theirs):
    """Equal, with NaN equal to NaN and infinities of the same sign equal."""
    onp.testing.assert_allclose(onp.asarray(ours), onp.asarray(theirs), rtol=1e-12, atol=1e-300, equal_nan=True)


def torch_grad(tf, x):
    t = torch.tensor(x, requires_grad=True)
    tf(t).sum().backward()
    return t.grad.numpy()


def torch_jvp(tf, x, v):
    return torch.func.jvp(tf, (torch.tensor(x),), (torch.tensor(v),))[1].detach().numpy()


def check_against_torch(f, tf, x, forward_as_torch=True):
    """Reverse mode (the gradient of the sum) as PyTorch's, and forward mode along a dense tangent ``v``
    as PyTorch's, or where that one disagrees with PyTorch's own reverse mode as ``J v`` with the
    reverse mode's Jacobian ``J``."""
    close(nablab.grad(lambda t: np.sum(f(t)))(x), torch_grad(tf, x))
    v = onp.random.default_rng(0).uniform(0.5, 1.5, onp.shape(x))
    ours = nablab.jvp(f, (x,), (v,))[1]
    if forward_as_torch:
        close(ours, torch_jvp(tf, x, v))
    else:
        close(ours, onp.tensordot(nablab.jacrev(f)(x), v, axes=onp.ndim(x)))


# ----------------------------------------------------------------------------- median, quantile, nanmean

# Rows of odd length, so that NumPy's median (the mean of the middle two) and PyTorch's (the lower one)
# agree on the rows without NaN.
ROWS = onp.array([[1.0, NAN, 3.0, NAN, 2.0],
                  [4.0, 1.0, 5.0, 2.0, 3.0],
                  [NAN, NAN, NAN, NAN, NAN],
                  [0.0, 1.0, 2.0, 3.0, NAN]])


def test_median_passes_its_gradient_to_the_nan_it_is():
    # Along an axis PyTorch selects the first NaN of a slice; over the whole array it shares the
    # gradient among the NaNs.
    check_against_torch(lambda x: np.median(x, axis=1), lambda t: torch.median(t, dim=1).values, ROWS)
    check_against_torch(lambda x: np.median(x, axis=0), lambda t: torch.median(t, dim=0).values, ROWS.T.copy())
    check_against_torch(lambda x: np.median(x, axis=1, keepdims=True),
                        lambda t: torch.median(t, dim=1, keepdim=True).values, ROWS)
    # PyTorch's forward mode of a whole-array median reads the entries equal to the result, none
    # when it is NaN (0/0, unlike its reverse mode): nablab's forward mode follows the reverse one.
    check_against_torch(np.median, torch.median, ROWS, forward_as_torch=False)
    check_against_torch(np.median, torch.median, onp.array([2.0, NAN, 1.0]), forward_as_torch=False)
    assert nablab.grad(np.median)(onp.array([2.0, NAN, 1.0, NAN])).tolist() == [0.0, 0.5, 0.0, 0.5]


def test_nanmedian_of_an_all_nan_slice_passes_its_gradient_to_a_nan():
    check_against_torch(np.nanmedian, torch.nanmedian, onp.full(4, NAN), forward_as_torch=False)  # shared
    # Along an axis PyTorch's nanmedian picks the NaN its selection algorithm leaves in the middle
    # (the third of four); nablab takes the first, as PyTorch's median does for that slice.
    rows = onp.array([[1.0, NAN, 3.0, NAN, 2.0], [NAN] * 5, [NAN, 5.0, 1.0, 3.0, NAN]])  # odd counts of numbers
    ours = nablab.grad(lambda x: np.sum(np.nanmedian(x, axis=1)))(rows)
    theirs = torch_grad(lambda t: torch.nanmedian(t, dim=1).values, rows)
    theirs[1] = torch_grad(lambda t: torch.median(t, dim=1).values, rows)[1]
    close(ours, theirs)
    assert ours[1].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    v = onp.arange(1.0, 16.0).reshape(3, 5)
    close(nablab.jvp(lambda x: np.nanmedian(x, axis=1), (rows,), (v,))[1], (ours * v).sum(axis=1))
    assert onp.isnan(torch_jvp(torch.nanmedian, onp.full(4, NAN), onp.ones(4)))  # the 0/0 above


QUANTILE_ROWS = onp.array([[1.0, NAN, 3.0, 2.0], [NAN, NAN, 0.0, 1.0], [4.0, 1.0, 3.0, 2.0], [NAN] * 4])


@pytest.mark.parametrize("method", ["linear", "lower", "higher", "nearest", "midpoint"])
def test_quantile_passes_its_gradient_to_the_last_nan(method):
    # PyTorch's quantile of a slice with a NaN is the last entry of the sorted slice: its last NaN.
    q = [0.0, 0.3, 0.5, 1.0]
    rows = QUANTILE_ROWS if method == "linear" else QUANTILE_ROWS[[0, 1, 3]]  # methods rounding alike
    check_against_torch(lambda x: np.quantile(x, q, axis=1, method=method),
                        lambda t: torch.quantile(t, torch.tensor(q, dtype=torch.float64), dim=1,
                                                 interpolation=method), rows)
    check_against_torch(lambda x: np.percentile(x, 30.0, method=method),
                        lambda t: torch.quantile(t, 0.3, interpolation=method), QUANTILE_ROWS[0])


def test_nanquantile_of_an_all_nan_slice_passes_its_gradient_to_its_first_nan():
    q = [0.0, 0.3, 1.0]
    check_against_torch(lambda x: np.nanquantile(x, q, axis=1),
                        lambda t: torch.nanquantile(t, torch.tensor(q, dtype=torch.float64), dim=1), QUANTILE_ROWS)


def test_a_nan_slice_leaves_the_other_slices_and_a_traced_q_alone():
    # The NaN of one slice reaches neither the derivatives of the others nor that of q.
    defined = lambda x, q: np.quantile(x, q, axis=1)[:, 2]  # noqa: E731  (the row without NaN)
    gx, gq = nablab.grad(lambda x, q: np.sum(defined(x, q)), (0, 1))(QUANTILE_ROWS, onp.array([0.3, 0.6]))
    assert onp.isfinite(gq).all() and (gx[[0, 1, 3]] == 0).all()
    assert nablab.grad(lambda x: np.median(x, axis=1)[1])(ROWS)[[0, 2, 3]].tolist() == [[0.0] * 5] * 3


def test_nanmean_of_an_all_nan_slice_has_a_nan_gradient():
    # 0/0: PyTorch divides its nansum's gradient by a count of 0, so every entry of the slice gets NaN.
    x = onp.array([[NAN, NAN, NAN], [1.0, NAN, 3.0], [1.0, 2.0, 3.0]])
    check_against_torch(lambda a: np.nanmean(a, axis=1), lambda t: torch.nanmean(t, dim=1), x)
    check_against_torch(lambda a: np.nanmean(a, axis=0), lambda t: torch.nanmean(t, dim=0), x.T.copy())
    check_against_torch(np.nanmean, torch.nanmean, x[0])
    ours = nablab.grad(lambda a: np.sum(np.nanmean(a, axis=1)))(x)
    assert onp.isnan(ours[0]).all() and onp.isfinite(ours[1:]).all()
    # Even with a cotangent of 0 on that slice (as PyTorch), and only there.
    masked = nablab.grad(lambda a: np.nanmean(a, axis=1)[1])(x)
    assert onp.isnan(masked[0]).all() and masked[1:].tolist() == [[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]


# ----------------------------------------------------------------------------- nanvar, nanstd

# An all-NaN row, then rows of 3, 4, 1 and 2 numbers.
NANVAR_ROWS = onp.array([[NAN, NAN, NAN, NAN],
                         [1.0, NAN, 3.0, 0.5],
                         [1.0, 2.0, 3.0, -1.5],
                         [NAN, 2.0, NAN, NAN],
                         [0.5, NAN, NAN, -2.0]])


def torch_var_of_the_numbers(s, ddof, std, g, v):
    """torch.var (or torch.std) with correction ddof of the numbers of the 1-D slice ``s`` (PyTorch has
    no nanvar): the value, the gradient for the cotangent ``g`` (0 at the NaNs, which it leaves out)
    and the derivative along the tangent ``v``."""
    numbers = ~onp.isnan(s)
    tf = (lambda t: torch.std(t, correction=ddof)) if std else (lambda t: torch.var(t, correction=ddof))  # noqa: E731
    t = torch.tensor(s[numbers], requires_grad=True)
    value = tf(t)
    grad = onp.zeros_like(s)
    grad[numbers] = torch.autograd.grad(value * g, t)[0].numpy()
    return value.item(), grad, torch_jvp(tf, s[numbers], v[numbers]).item()


def nanvar_reference(s, ddof, std, g, v):
    """nanvar (nanstd) of the 1-D slice ``s``: PyTorch's var of its numbers where NumPy's nanvar is a
    number.  Where NumPy's is NaN (no more numbers than ddof) the derivative is NaN for the slice's
    numbers (PyTorch's is not a number either: it divides by a count of 0) and, for an all-NaN slice,
    for its NaNs (the 0/0 of nanmean)."""
    numbers = ~onp.isnan(s)
    if not numbers.any():
        return NAN, onp.full_like(s, NAN), NAN
    value, grad, tangent = torch_var_of_the_numbers(s, ddof, std, g, v)
    if numbers.sum() - ddof <= 0:
        assert not onp.isfinite(grad[numbers]).any() and not onp.isfinite(tangent)
        return NAN, onp.where(numbers, NAN, 0.0), NAN
    return value, grad, tangent


# PyTorch's var warns where the correction leaves no degrees of freedom, as NumPy's nanvar does.
no_dof_warning = pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")
NANVAR_LAYOUTS = [(1, False, False), (0, False, True), (-1, True, False), ((1,), True, False)]  # axis, keepdims, transposed


@no_dof_warning
@pytest.mark.parametrize("std", [False, True], ids=["nanvar", "nanstd"])
@pytest.mark.parametrize("ddof", [0, 1, 2, 3, 1.5])
def test_nanvar_and_nanstd_of_an_all_nan_slice_have_a_nan_derivative(std, ddof):
    f, nf = (np.nanstd, onp.nanstd) if std else (np.nanvar, onp.nanvar)
    rng = onp.random.default_rng(2)
    g, v = rng.uniform(-1.5, 1.5, len(NANVAR_ROWS)), rng.uniform(0.5, 1.5, NANVAR_ROWS.shape)
    rows = [nanvar_reference(s, ddof, std, gs, vs) for s, gs, vs in zip(NANVAR_ROWS, g, v)]
    value, grad, tangent = (onp.array(w) for w in zip(*rows))
    close(value, nf(NANVAR_ROWS, axis=1, ddof=ddof))  # NumPy's values, NaN where it has no number
    for axis, keepdims, transposed in NANVAR_LAYOUTS:
        x, vx, gx, want_grad = NANVAR_ROWS, v, g, grad
        if transposed:
            x, vx, want_grad = x.T.copy(), vx.T.copy(), want_grad.T
        if keepdims:
            gx = onp.expand_dims(g, axis)
        fn = lambda a: f(a, axis=axis, ddof=ddof, keepdims=keepdims)  # noqa: E731
        ours_value, ours_tangent = nablab.jvp(fn, (x,), (vx,))
        close(onp.ravel(ours_value), value)
        close(onp.ravel(ours_tangent), tangent)
        close(nablab.vjp(fn, x)[1](gx)[0], want_grad)


@pytest.mark.parametrize("std", [False, True], ids=["nanvar", "nanstd"])
@pytest.mark.parametrize("ddof", [0, 1, 2, 3, 1.5])
def test_nanvar_leaves_the_other_slices_bit_for_bit(std, ddof):
    # The rows with more numbers than ddof give what they give without the others (the code path
    # of an array without an undefined slice, unchanged), values and derivatives to the last bit.
    f = np.nanstd if std else np.nanvar
    fn = lambda a: f(a, axis=1, ddof=ddof)  # noqa: E731
    defined = (~onp.isnan(NANVAR_ROWS)).sum(axis=1) - ddof > 0
    alone = NANVAR_ROWS[defined]
    v = onp.random.default_rng(3).uniform(0.5, 1.5, NANVAR_ROWS.shape)
    value, tangent = nablab.jvp(fn, (NANVAR_ROWS,), (v,))
    alone_value, alone_tangent = nablab.jvp(fn, (alone,), (v[defined],))
    assert value[defined].tobytes() == alone_value.tobytes() and tangent[defined].tobytes() == alone_tangent.tobytes()
    g = onp.linspace(-1.0, 1.0, len(NANVAR_ROWS))
    grad = nablab.vjp(fn, NANVAR_ROWS)[1](g)[0]
    assert grad[defined].tobytes() == nablab.vjp(fn, alone)[1](g[defined])[0].tobytes()
    # The undefined rows: NaN for their numbers and an all-NaN row's NaNs, whatever the cotangent
    # (0 here, as PyTorch's 0 times inf), and 0 for the NaNs the others leave out.
    only_row_2 = nablab.grad(lambda a: fn(a)[2])(NANVAR_ROWS)
    numbers = ~onp.isnan(NANVAR_ROWS)
    want = onp.where(numbers | ~numbers.any(axis=1, keepdims=True), NAN, 0.0)[~defined]
    close(only_row_2[~defined], want)
    assert (only_row_2[defined & (onp.arange(5) != 2)] == 0).all()
    close(only_row_2[2], nablab.grad(lambda r: f(r, ddof=ddof))(NANVAR_ROWS[2]))


@no_dof_warning
@pytest.mark.parametrize("std", [False, True], ids=["nanvar", "nanstd"])
@pytest.mark.parametrize("x", [onp.full((2, 3), NAN), NANVAR_ROWS, onp.array([[NAN, 2.0], [NAN, NAN]]),
                               onp.array([[NAN, 2.0], [NAN, -1.0]])], ids=["all-nan", "rows", "one-number", "two"])
def test_nanvar_over_the_whole_array(std, x):
    f = np.nanstd if std else np.nanvar
    v = onp.random.default_rng(4).uniform(0.5, 1.5, x.shape)
    for ddof in (0, 1, 2):
        value, grad, tangent = nanvar_reference(x.ravel(), ddof, std, 0.7, v.ravel())
        for keepdims in (False, True):
            fn = lambda a: f(a, ddof=ddof, keepdims=keepdims)  # noqa: E731
            ours_value, ours_tangent = nablab.jvp(fn, (x,), (v,))
            assert onp.shape(ours_value) == ((1, 1) if keepdims else ())
            close(onp.ravel(ours_value), [value])
            close(onp.ravel(ours_tangent), [tangent])
            close(nablab.vjp(fn, x)[1](onp.full(onp.shape(ours_value), 0.7))[0], grad.reshape(x.shape))


@no_dof_warning
@pytest.mark.parametrize("std", [False, True], ids=["nanvar", "nanstd"])
def test_nanvar_of_no_more_numbers_than_ddof_is_nan_with_a_nan_derivative(std):
    # One number and ddof=1: NumPy's nanvar is NaN ("Degrees of freedom <= 0 for slice"), PyTorch's var
    # of that number NaN (0/0) with a NaN gradient.  With more numbers than 0 but not more than ddof,
    # NumPy's nanvar is NaN still (its var, and PyTorch's, inf, with infinite or NaN derivatives).
    f, nf, tf = (np.nanstd, onp.nanstd, torch.std) if std else (np.nanvar, onp.nanvar, torch.var)
    t = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    tf(t, correction=1).backward()
    assert onp.isnan(t.grad.item())
    for x, ddof in [([NAN, 2.0, NAN], 1), ([NAN, 2.0, NAN], 2), ([1.0, NAN, 3.0], 2), ([1.0, NAN, 3.0], 3)]:
        x = onp.array(x)
        with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
            assert onp.isnan(nf(x, ddof=ddof))
        value, tangent = nablab.jvp(lambda a: f(a, ddof=ddof), (x,), (onp.ones(3),))
        assert onp.isnan(value) and onp.isnan(tangent)
        close(nablab.grad(lambda a: f(a, ddof=ddof))(x), onp.where(onp.isnan(x), 0.0, NAN))
        close(nablab.grad(lambda a: f(a, axis=0, ddof=ddof, keepdims=True)[0])(x), onp.where(onp.isnan(x), 0.0, NAN))


def test_nanvar_with_where_gives_nan_to_the_selected_nans_only():
    x = onp.array([[NAN, 1.0, NAN], [1.0, 2.0, NAN], [NAN, 1.0, 4.0]])
    where = onp.array([[True, False, True], [True, True, True], [False, True, True]])
    close(np.nanvar(nablab.tensor(x, requires_grad=True), axis=1, where=where).numpy(),
          onp.nanvar(x, axis=1, where=where))
    grad = nablab.grad(lambda a: np.sum(np.nanvar(a, axis=1, where=where)))(x)
    close(grad, [[NAN, 0.0, NAN], [-0.5, 0.5, 0.0], [0.0, -1.5, 1.5]])  # d var(1, 4) = (-1.5, 1.5)


def test_nanvar_float32_and_second_order():
    x = NANVAR_ROWS.astype(onp.float32)
    for f in (np.nanvar, np.nanstd):
        grad = nablab.grad(lambda a: np.sum(f(a, axis=1, ddof=1)))(x)
        assert grad.dtype == onp.float32 and onp.isnan(grad[0]).all() and onp.isfinite(grad[1:3]).all()
        assert f(nablab.tensor(x), axis=1, ddof=1).numpy().dtype == onp.float32
        hess = nablab.hessian(lambda a: f(a, ddof=1))(onp.array([NAN, NAN, NAN]))
        assert onp.isnan(hess).all()


def test_nanvar_under_vmap_as_example_by_example():
    for f in (np.nanvar, np.nanstd):
        for ddof in (0, 1):
            one = nablab.grad(lambda r: f(r, ddof=ddof))
            close(nablab.vmap(one)(NANVAR_ROWS), onp.stack([one(r) for r in NANVAR_ROWS]))


# ----------------------------------------------------------------------------- power

SPECIAL = [0.0, -0.0, 1.0, -1.0, INF, -INF, NAN, -2.5, -2.0, 0.5, 1.5, 2.0, 3.0, 0.3, -0.3]
GRID_X, GRID_Y = onp.array(list(itertools.product(SPECIAL, SPECIAL))).T
# x^y is NaN for every finite x < 0 and finite non-integer y: it has no derivative in x at -inf either,
# where IEEE's pow gives |x|^y.  PyTorch is arbitrary there: pow(x, tensor(0.5)) gives 0 but x ** 0.5
# (its sqrt and rsqrt fast paths) NaN.  nablab gives NaN.
NO_DX = (GRID_X == -INF) & onp.isfinite(GRID_Y) & (GRID_Y != onp.floor(GRID_Y))


@pytest.mark.parametrize("name, tname", [("power", "pow"), ("float_power", "float_power")])
def test_power_derivatives_match_torch_on_special_values(name, tname):
    f, tf = getattr(np, name), getattr(torch, tname)
    tx, ty = torch.tensor(GRID_X, requires_grad=True), torch.tensor(GRID_Y, requires_grad=True)
    tf(tx, ty).sum().backward()
    want_x, want_y = tx.grad.numpy().copy(), ty.grad.numpy()
    want_x[NO_DX] = NAN
    gx, gy = nablab.grad(lambda x, y: np.sum(f(x, y)), (0, 1))(GRID_X, GRID_Y)
    close(gx, want_x)
    close(gy, want_y)
    # Forward mode, one argument at a time (the other a constant), gives the same derivatives.
    ones = onp.ones_like(GRID_X)
    close(nablab.jvp(lambda x: f(x, GRID_Y), (GRID_X,), (ones,))[1], want_x)
    close(nablab.jvp(lambda y: f(GRID_X, y), (GRID_Y,), (ones,))[1], want_y)


def test_power_at_the_points_named_in_the_bug():
    # 0 ** y at y = -inf is inf; d/dy = 0^y log 0 = -inf (PyTorch), not 0.
    assert nablab.grad(lambda y: 0.0 ** y)(-INF) == -INF
    assert nablab.grad(lambda y: 0.0 ** y)(-1.0) == -INF
    assert onp.isnan(nablab.grad(lambda y: 0.0 ** y)(NAN))
    assert nablab.grad(lambda y: 0.0 ** y)(2.0) == 0.0 and nablab.grad(lambda y: 0.0 ** y)(0.0) == 0.0
    t = torch.tensor(-INF, dtype=torch.float64, requires_grad=True)
    (t ** 0.5).backward()
    assert onp.isnan(t.grad.item())
    assert onp.isnan(nablab.grad(lambda x: x ** 0.5)(-INF))
    assert onp.isnan(nablab.jvp(lambda x: x ** 0.5, (-INF,), (1.0,))[1])
    # and the second derivative does not turn the NaN back into a number
    assert onp.isnan(nablab.grad(nablab.grad(lambda x: x ** 0.5))(-INF))
    # integer exponents keep their derivatives at -inf, and at 0 (d/dx x**2 = 0, d/dy 0**y = 0 for y > 0)
    assert nablab.grad(lambda x: x ** 3)(-INF) == INF and nablab.grad(lambda x: x ** 2.0)(-INF) == -INF
    assert nablab.grad(lambda x: x ** 2)(0.0) == 0.0


def test_power_float32_stays_float32_at_the_special_points():
    x = onp.array([-INF, 0.0, 2.0], dtype=onp.float32)
    y = onp.array([0.5, -1.0, 1.5], dtype=onp.float32)
    gx, gy = nablab.grad(lambda a, b: np.sum(np.power(a, b)), (0, 1))(x, y)
    assert gx.dtype == gy.dtype == onp.float32
    assert onp.isnan(gx[0]) and gy[1] == -INF


# ----------------------------------------------------------------------------- prod

PROD_CASES = [[INF, 2.0], [2.0, -INF, 3.0], [INF, INF], [INF, 0.0], [NAN, 2.0], [NAN, 0.0], [INF, 0.0, 0.0],
              [0.0, 2.0], [0.0, 0.0, 3.0], [-0.0, 2.0], [2.0, 3.0, 4.0], [INF, NAN], [2.0, NAN, INF, 0.5]]


def others(x):
    """d prod / dx_i: the product of the other entries."""
    return onp.array([onp.prod(onp.delete(x, i)) for i in range(len(x))])


def torch_product_of_others(x):
    # PyTorch's own multiplications: torch.prod's rule divides (inf / inf) where there is no zero.
    t = torch.tensor(x, requires_grad=True)
    functools.reduce(operator.mul, t.unbind()).backward()
    return t.grad.numpy()


@pytest.mark.parametrize("x", PROD_CASES, ids=str)
def test_prod_derivative_is_the_product_of_the_other_entries(x):
    x = onp.array(x)
    want = others(x)
    close(torch_product_of_others(x), want)
    if (x == 0).any():  # PyTorch's prod takes its exact path, as nablab's, where there is a zero
        t = torch.tensor(x, requires_grad=True)
        close(torch.autograd.grad(torch.prod(t), t, create_graph=True)[0].detach().numpy(), want)
    close(nablab.grad(np.prod)(x), want)
    # Forward mode gives J v with that Jacobian, along a dense tangent and along each axis.
    v = onp.linspace(0.5, 1.5, len(x))
    with onp.errstate(invalid="ignore"):
        close(nablab.jvp(np.prod, (x,), (v,))[1], (want * v).sum())
        for e in onp.eye(len(x)):
            close(nablab.jvp(np.prod, (x,), (e,))[1], (want * e).sum())
    assert onp.array_equal(np.prod(nablab.tensor(x, requires_grad=True)).numpy(), onp.prod(x), equal_nan=True)


def test_prod_along_an_axis_next_to_inf_and_nan():
    x = onp.array([[INF, 2.0, 3.0], [1.0, 0.0, 4.0], [NAN, 2.0, -1.0], [1.5, 2.0, 3.0]])
    close(nablab.grad(lambda a: np.sum(np.prod(a, axis=1)))(x), onp.array([others(r) for r in x]))
    close(nablab.grad(lambda a: np.sum(np.prod(a, axis=0, keepdims=True)))(x.T.copy()),
          onp.array([others(r) for r in x]).T)
    # Second order: the products of the entries left out, or NaN where a product meets a tangent
    # of 0 times inf (never a wrong number).
    h = nablab.hessian(np.prod)(onp.array([INF, 2.0, 3.0]))
    close(h[0], [0.0, 3.0, 2.0])
    exact = onp.array([[0.0, 3.0, 2.0], [3.0, 0.0, INF], [2.0, INF, 0.0]])
    assert (onp.isnan(h) | (h == exact)).all()


# ----------------------------------------------------------------------------- norms at zero

VECTOR_ORDS = [None, 2, 1, INF, -INF, 3, 1.5, 0.5, -0.5, -1, -2]
MATRIX_ORDS = [None, "fro", "nuc", 2, -2, 1, -1, INF, -INF]


@pytest.mark.parametrize("ord", VECTOR_ORDS, ids=str)
@pytest.mark.parametrize("x", [onp.zeros(3), onp.array([0.0, 1.0, -2.0])], ids=["zero", "a-zero-entry"])
def test_vector_norms_at_zero_match_torch(ord, x):
    # PyTorch: 0 where the norm is 0, and for p < 1 (where |x|^p has an infinite slope at 0) 0 at a
    # zero entry.
    t_ord = 2 if ord is None else ord
    check_against_torch(lambda a: np.linalg.norm(a, ord=ord),
                        lambda t: torch.linalg.vector_norm(t, ord=t_ord), x)
    rows = onp.stack([x, onp.array([3.0, -4.0, 0.5])])
    check_against_torch(lambda a: np.linalg.norm(a, ord=ord, axis=1, keepdims=True),
                        lambda t: torch.linalg.vector_norm(t, ord=t_ord, dim=1, keepdim=True), rows)


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_matrix_norms_at_zero_match_torch(ord):
    t_ord = "fro" if ord is None else ord
    check_against_torch(lambda a: np.linalg.norm(a, ord=ord),
                        lambda t: torch.linalg.matrix_norm(t, ord=t_ord), onp.zeros((2, 3)))


def test_the_top_level_norm_is_zero_at_zero():
    # nablab.norm, the Euclidean norm of the top-level namespace
    check_against_torch(nablab.norm, torch.linalg.vector_norm, onp.zeros(3))
    check_against_torch(nablab.norm, torch.linalg.vector_norm, onp.zeros((2, 3)))
    check_against_torch(lambda a: nablab.norm(a, axis=1), lambda t: torch.linalg.vector_norm(t, dim=1),
                        onp.array([[0.0, 0.0], [3.0, 4.0]]))
    assert nablab.grad(nablab.grad(nablab.norm))(0.0) == 0.0
    assert nablab.grad(nablab.norm)(onp.zeros(2, complex)).tolist() == [0j, 0j]


# ----------------------------------------------------------------------------- cumprod, cumsum

CUMPROD_CASES = [[INF, 2.0], [2.0, -INF, 3.0], [NAN, 2.0], [2.0, NAN, 3.0], [INF, 0.0], [0.0, INF],
                 [2.0, 3.0, INF], [INF, INF, 2.0], [-INF, 0.5, 3.0, 0.0], [1.0, INF, 0.0, 1.0],
                 [0.5, NAN, INF, 0.0, 2.0], [0.0, 2.0, 3.0], [2.0, 0.0, 0.0, 3.0], [-0.0, 2.0, 0.0],
                 [2.0, 3.0, 4.0]]


def cumprod_vjp_exact(x, g):
    """sum over k >= i of g_k d cumprod(x)_k / dx_i, term by term: d cumprod(x)_k / dx_i is the product
    of the entries up to k but the i-th (NaN where a term holds 0 * inf or a NaN)."""
    n = len(x)
    return onp.array([sum(g[k] * onp.prod(onp.delete(x[:k + 1], i)) for k in range(i, n)) for i in range(n)])


def cumprod_jvp_exact(x, v):
    n = len(x)
    return onp.array([sum(v[i] * onp.prod(onp.delete(x[:k + 1], i)) for i in range(k + 1)) for k in range(n)])


def torch_chain(t):
    """cumprod as PyTorch's own chain of multiplications (torch.cumprod's rule divides where no entry is 0)."""
    ys = [t[0]]
    for e in t[1:]:
        ys.append(ys[-1] * e)
    return torch.stack(ys)


def torch_chain_vjp(x, g):
    t = torch.tensor(x, requires_grad=True)
    (torch_chain(t) * torch.tensor(g)).sum().backward()
    return t.grad.numpy()


def torch_chain_jvp(x, v):
    return torch.func.jvp(torch_chain, (torch.tensor(x),), (torch.tensor(v),))[1].detach().numpy()


def torch_cumprod_vjp(x, g, dim=0):
    t = torch.tensor(x, requires_grad=True)
    (torch.cumprod(t, dim) * torch.tensor(g)).sum().backward()
    return t.grad.numpy()


def exact_where_defined(ours, exact):
    """``exact`` where it is finite; where it is not (an infinity, or NaN from 0 * inf or a NaN entry),
    not a finite number either."""
    ours, exact = onp.asarray(ours), onp.asarray(exact)
    assert ours.shape == exact.shape
    finite = onp.isfinite(exact)
    close(ours[finite], exact[finite])
    assert not onp.isfinite(ours[~finite]).any(), (ours, exact)


def per_slice(ref, x, w, axis):
    """``ref`` (of a 1-D slice and a weight slice) along ``axis`` of ``x``, or of the flattened ``x``."""
    if axis is None:
        return ref(x.ravel(), w.ravel())
    xs, ws = onp.moveaxis(x, axis, -1), onp.moveaxis(w, axis, -1)
    n = xs.shape[-1]
    out = onp.array([ref(a, b) for a, b in zip(xs.reshape(-1, n), ws.reshape(-1, n))])
    return onp.moveaxis(out.reshape(xs.shape), -1, axis)


@pytest.mark.parametrize("x", CUMPROD_CASES, ids=str)
def test_cumprod_derivatives_next_to_zero_inf_and_nan(x):
    x = onp.array(x)
    rng = onp.random.default_rng(0)
    for g in (onp.ones(len(x)), rng.uniform(-1.5, 1.5, len(x))):
        want = cumprod_vjp_exact(x, g)
        exact_where_defined(torch_chain_vjp(x, g), want)  # the oracle agrees with the formula
        theirs = torch_cumprod_vjp(x, g)  # torch.cumprod's own rule: the same where both are finite
        both = onp.isfinite(theirs) & onp.isfinite(want)
        close(theirs[both], want[both])
        if onp.isfinite(x).all():  # with zeros only torch.cumprod's rule is exact
            close(theirs, want)
        exact_where_defined(nablab.vjp(np.cumprod, x)[1](g)[0], want)
    for v in (onp.ones(len(x)), rng.uniform(-1.5, 1.5, len(x))):
        want = cumprod_jvp_exact(x, v)
        exact_where_defined(torch_chain_jvp(x, v), want)
        exact_where_defined(nablab.jvp(np.cumprod, (x,), (v,))[1], want)
    ours = np.cumprod(nablab.tensor(x, requires_grad=True)).numpy()
    assert ours.dtype == onp.cumprod(x).dtype and ours.tobytes() == onp.cumprod(x).tobytes()


def test_cumprod_at_the_points_named_in_the_bug():
    # cumprod([inf, 2]) = [inf, inf]: d/dx0 = 1 + x1 = 3 (PyTorch's cumprod: NaN, from inf / inf)
    assert nablab.grad(lambda a: np.sum(np.cumprod(a)))(onp.array([INF, 2.0])).tolist() == [3.0, INF]
    assert onp.isnan(torch_cumprod_vjp(onp.array([INF, 2.0]), onp.ones(2))[0])
    # [0, inf]: d/dx1 = x0 = 0 (was NaN)
    assert nablab.grad(lambda a: np.sum(np.cumprod(a)))(onp.array([0.0, INF])).tolist() == [INF, 0.0]
    # [2, nan, 3]: d/dx1 = x0 + x0 x2 = 8 (PyTorch's cumprod: NaN)
    assert nablab.grad(lambda a: np.sum(np.cumprod(a)))(onp.array([2.0, NAN, 3.0]))[1] == 8.0
    assert onp.isnan(torch_cumprod_vjp(onp.array([2.0, NAN, 3.0]), onp.ones(3))[1])


MATRIX = onp.array([[INF, 2.0, 3.0, 0.5],
                    [1.0, 0.0, 4.0, 0.0],
                    [NAN, 2.0, -1.0, 3.0],
                    [1.5, -INF, 0.0, 2.0],
                    [0.0, 0.0, 3.0, 0.25]])


@pytest.mark.parametrize("axis", [0, 1, None])
def test_cumprod_of_a_matrix_next_to_zero_inf_and_nan(axis):
    rng = onp.random.default_rng(1)
    out_shape = MATRIX.shape if axis is not None else (MATRIX.size,)
    g = rng.uniform(-1.5, 1.5, out_shape)
    v = rng.uniform(-1.5, 1.5, MATRIX.shape)
    f = lambda a: np.cumprod(a, axis=axis)  # noqa: E731
    g_full = g.reshape(MATRIX.shape)  # the cotangent of each entry's output (axis None: the flat one)
    want = per_slice(cumprod_vjp_exact, MATRIX, g_full, axis).reshape(MATRIX.shape)
    exact_where_defined(per_slice(torch_chain_vjp, MATRIX, g_full, axis).reshape(MATRIX.shape), want)
    exact_where_defined(nablab.vjp(f, MATRIX)[1](g)[0], want)
    want_jv = per_slice(cumprod_jvp_exact, MATRIX, v, axis).reshape(out_shape)
    exact_where_defined(nablab.jvp(f, (MATRIX,), (v,))[1], want_jv)
    ours = f(nablab.tensor(MATRIX, requires_grad=True)).numpy()
    assert ours.tobytes() == onp.cumprod(MATRIX, axis=axis).tobytes()
    # torch.cumprod (dim along the axis, or of the flattened matrix), where it gives a number
    tdim, tx = (0, MATRIX.ravel()) if axis is None else (axis, MATRIX)
    theirs = torch_cumprod_vjp(tx, g, tdim).reshape(MATRIX.shape)
    both = onp.isfinite(theirs) & onp.isfinite(want)
    close(theirs[both], want[both])


SECOND_ORDER_POINTS = {
    "one-zero": onp.array([[0.5, 0.0, 1.5, -2.0], [1.2, -0.7, 0.6, 0.9], [0.9, 1.1, -1.3, 0.8]]),
    # two zeros in the first row, two in the second column, three in the flattened matrix
    "two-zeros": onp.array([[0.5, 0.0, 1.5, 0.0], [1.2, 0.0, 0.6, 0.9], [0.9, 1.1, -1.3, 0.8]]),
    "no-zero": onp.array([[0.5, 0.4, 1.5, -2.0], [1.2, -0.7, 0.6, 0.9], [0.9, 1.1, -1.3, 0.8]]),
}


@pytest.mark.parametrize("axis", [0, 1, None])
@pytest.mark.parametrize("point", list(SECOND_ORDER_POINTS))
def test_cumprod_second_order_at_zeros(axis, point):
    # At a zero the new path runs, and at the central differences around it the fast one (ans / x).
    x = SECOND_ORDER_POINTS[point]
    nablab.gradcheck(lambda a: np.cumprod(a, axis=axis), x, order=2)
    w = onp.random.default_rng(2).uniform(-1.5, 1.5, x.shape if axis is not None else (x.size,))
    ours = nablab.hessian(lambda a: np.sum(np.cumprod(a, axis=axis) * w))(x)
    tf = (lambda t: torch.cumprod(t.reshape(-1), 0)) if axis is None else (lambda t: torch.cumprod(t, axis))
    theirs = torch.func.hessian(lambda t: (tf(t) * torch.tensor(w)).sum())(torch.tensor(x))
    # (the fast path's ans / x leaves rounding errors of 1e-16 where the Hessian is 0)
    onp.testing.assert_allclose(onp.asarray(ours), theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_cumprod_second_order_next_to_an_infinity():
    # The Hessian of sum(cumprod(x)): H_ij = sum over k >= max(i, j) of the product of the entries up
    # to k but the i-th and j-th; or NaN where a product meets a tangent of 0 times inf.
    x = onp.array([INF, 2.0, 3.0])
    h = onp.asarray(nablab.hessian(lambda a: np.sum(np.cumprod(a)))(x))
    exact = onp.array([[0.0, 4.0, 2.0], [4.0, 0.0, INF], [2.0, INF, 0.0]])
    assert (onp.isnan(h) | (h == exact)).all()
    assert h[0, 1] == 4.0 and h[0, 2] == 2.0


def test_nancumprod_and_the_cumulative_sums_next_to_inf_and_nan():
    # nancumprod: NaNs count as 1 (and get 0); an infinity as in cumprod.
    x = onp.array([INF, NAN, 2.0, 0.5])
    g = onp.array([1.0, -0.5, 2.0, 1.5])
    want = onp.where(onp.isnan(x), 0.0, cumprod_vjp_exact(onp.where(onp.isnan(x), 1.0, x), g))
    exact_where_defined(nablab.vjp(np.nancumprod, x)[1](g)[0], want)
    assert nablab.vjp(np.nancumprod, x)[1](g)[0][0] == g[0] + g[1] * 1.0 + g[2] * 2.0 + g[3] * 2.0 * 0.5  # 6
    assert np.nancumprod(nablab.tensor(x, requires_grad=True)).numpy().tobytes() == onp.nancumprod(x).tobytes()
    # cumsum's rules only add: 1 per later output, also at inf and NaN, as torch.cumsum
    y = onp.array([INF, NAN, -INF, 2.0])
    close(nablab.vjp(np.cumsum, y)[1](g)[0], torch_grad(lambda t: torch.cumsum(t, 0) * torch.tensor(g), y))
    close(nablab.jvp(np.cumsum, (y,), (g,))[1], onp.cumsum(g))
    close(nablab.vjp(np.nancumsum, y)[1](g)[0], onp.cumsum(g[::-1])[::-1] * ~onp.isnan(y))
    close(nablab.jvp(np.nancumsum, (y,), (g,))[1], onp.cumsum(g * ~onp.isnan(y)))


@pytest.mark.parametrize("x", [[1e-200, 1e-200, 1e200], [1e200, 1e200, 1e-300], [1e-170, 1e-170, 3.0, 1e-5]])
def test_prod_and_cumprod_whose_products_under_or_overflow_take_the_exact_rules(x):
    """Finite nonzero entries whose product leaves the normal range: the quotient ans / x is then wrong
    (prod([1e-200, 1e-200, 1e200]) gave 0 for the first entry, where the product of the others is 1). A product
    that passes through the subnormals and comes back (1e-160 * 1e-160 * 3 * 1e160) has lost bits in its value
    already, NumPy's as nablab's; that case is not detected."""
    x = onp.array(x)
    others = onp.array([functools.reduce(operator.mul, onp.delete(x, i), 1.0) for i in range(x.size)])
    with onp.errstate(over="ignore", under="ignore"):
        onp.testing.assert_allclose(nablab.grad(np.prod)(x), others, rtol=1e-12)
        # d/dx_i sum_k cumprod(x)_k = sum over k >= i of the product of x_0..x_k without x_i, term by term
        exact = [sum(functools.reduce(operator.mul, onp.delete(x[:k + 1], i), 1.0) for k in range(i, x.size))
                 for i in range(x.size)]
        onp.testing.assert_allclose(nablab.grad(lambda x: np.sum(np.cumprod(x)))(x), exact, rtol=1e-12)
        assert onp.array_equal(np.cumprod(nablab.tensor(x)).numpy(), onp.cumprod(x))


@pytest.mark.parametrize("ddof", [3, 4, 7.5])
def test_var_and_std_with_ddof_at_or_above_the_count_are_numpys_inf_with_no_finite_derivative(ddof):
    """NumPy divides by max(n - ddof, 0): inf (NaN for equal entries), where the sum over a negative count gave
    -2 for var([1, 2, 3], ddof=4), with a finite derivative (2, 0, -2)."""
    x = onp.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    with onp.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for fn, reference in ((np.var, onp.var), (np.std, onp.std)):
            onp.testing.assert_array_equal(fn(x, axis=1, ddof=ddof), reference(x, axis=1, ddof=ddof))
            grad = nablab.grad(lambda x: np.sum(fn(x, axis=1, ddof=ddof)))(x)
            assert not onp.isfinite(grad).any()
        assert onp.array_equal(np.var(x[0], ddof=2), onp.var(x[0], ddof=2))  # n - ddof = 1: unchanged
