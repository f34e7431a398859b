"""Derivatives where values are NaN, infinite or zero, against PyTorch: order statistics and nanmean
of slices with NaNs, x ** y over a grid of special points, prod next to inf and NaN entries, and
norms at zero.  The rule: PyTorch's derivative, or NaN where PyTorch's choice is arbitrary; never a
quiet finite number where there is none.  Forward mode is held to the reverse mode's Jacobian."""

import functools
import itertools
import operator

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
