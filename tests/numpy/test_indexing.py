"""nablab.numpy gathers (getitem, take, sort, select, diagonals, triangles, r_/c_): values as
NumPy's on traced inputs, derivatives against finite differences (both modes, second order,
real and complex), repeated indices adding up, HIPS autograd on random inputs, torch.func,
and clear errors."""

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck

rng = onp.random.default_rng(2)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def traced(f, *args):
    """``f``'s value computed on traced inputs (so nablab's own code runs, not NumPy's)."""
    out = nablab.jvp(f, tuple(args), tuple(onp.zeros_like(a) for a in args))[0]
    return nablab.tree_map(lambda t: onp.asarray(t.numpy() if hasattr(t, "numpy") else t), out)


def assert_same(got, want, tol=1e-12):
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w, tol)
        return
    assert onp.shape(got) == onp.shape(want), (onp.shape(got), onp.shape(want))
    onp.testing.assert_allclose(got, want, rtol=tol, atol=tol)


I2 = onp.array([[0, 2], [2, 2]])

# name -> (function of (module, *xs), inputs): the same code runs with NumPy and with nablab.numpy.
CASES = {
    "getitem-basic": (lambda m, x: x[1, ::-2, None, ...], [R(3, 4, 2)]),
    "getitem-fancy-repeated": (lambda m, x: x[[0, 2, 0], 1:], [R(3, 4)]),
    "getitem-bool": (lambda m, x: x[x > 0.1], [R(3, 4)]),
    "getitem-mixed": (lambda m, x: x[:, [1, 1], [0, 2]], [R(2, 3, 4)]),
    "take": (lambda m, x: m.take(x, I2, axis=1), [R(2, 3)]),
    "take-flat": (lambda m, x: m.take(x, [5, 0, 5]), [R(2, 3)]),
    "take-scalar": (lambda m, x: m.take(x, 4), [R(2, 3)]),
    "take-wrap": (lambda m, x: m.take(x, [5, -7], axis=1, mode="wrap"), [R(2, 3)]),
    "take-clip": (lambda m, x: m.take(x, [7, -7], mode="clip"), [R(2, 3)]),
    "take_along_axis": (lambda m, x: m.take_along_axis(x, onp.array([[0, 2, 2], [1, 1, 0]]), axis=1), [R(2, 3)]),
    "take_along_axis-broadcast": (lambda m, x: m.take_along_axis(x, onp.array([[[1], [0], [1]]]), axis=2), [R(2, 3, 2)]),
    "take_along_axis-flat": (lambda m, x: m.take_along_axis(x, onp.array([4, 1, 1]), axis=None), [R(2, 3)]),
    "choose": (lambda m, x, y: m.choose(onp.array([[0, 1, 1], [1, 0, 1]]), [x, y]), [R(2, 3), R(3)]),
    "choose-clip": (lambda m, x: m.choose(onp.array([2, 4, -1]), x, mode="clip"), [R(3, 3)]),
    "choose-wrap": (lambda m, x: m.choose(onp.array([2, 4, -1]), x, mode="wrap"), [R(3, 3)]),
    "select": (lambda m, x, y: m.select([x > 0, y > 0], [x, y], default=x * 2.0), [R(2, 3), R(3)]),
    "select-default": (lambda m, x: m.select([x > 0.5], [x]), [R(4)]),
    "piecewise": (lambda m, x: m.piecewise(x, [x < 0, x >= 0], [lambda t: -t, lambda t: t ** 2]), [R(5)]),
    "piecewise-overlap-otherwise": (lambda m, x: m.piecewise(x, [x < 0, x < 0.5], [lambda t: -t, 7.0, lambda t: t * 3]),
                                    [R(2, 4)]),
    "piecewise-bare-scalars": (lambda m, x: m.piecewise(x, [x[0] < 0, x[1] > 0], [lambda t: -t, lambda t: t * 3]), [R(2)]),
    "compress": (lambda m, x: m.compress([True, False, True], x, axis=1), [R(2, 3)]),
    "compress-flat": (lambda m, x: m.compress([False, True], x), [R(2, 3)]),
    "extract": (lambda m, x: m.extract(onp.array([[1, 0, 1], [0, 0, 1]]), x), [R(2, 3)]),
    "delete": (lambda m, x: m.delete(x, [0, 2], axis=1), [R(2, 4)]),
    "delete-slice": (lambda m, x: m.delete(x, slice(1, None, 2)), [R(2, 3)]),
    "sort": (lambda m, x: m.sort(x), [R(3, 4)]),
    "sort-axis0": (lambda m, x: m.sort(x, axis=0), [R(4, 3)]),
    "sort-flat": (lambda m, x: m.sort(x, axis=None), [R(2, 3)]),
    "sort-complex": (lambda m, x: m.sort(x), [C(5)]),
    "msort": (lambda m, x: (m.msort if m is np else lambda y: onp.sort(y, axis=0))(x), [R(4, 3)]),
    "sort_complex": (lambda m, x: m.sort_complex(x), [R(5)]),
    "partition": (lambda m, x: m.partition(x, 2), [R(3, 6)]),
    "partition-kths": (lambda m, x: m.partition(x, (1, 4), axis=0), [R(7, 2)]),
    "trim_zeros": (lambda m, x: m.trim_zeros(x * onp.array([0.0, 0.0, 1.0, 1.0, 0.0]), "b"), [R(5)]),
    "trim_zeros-2d": (lambda m, x: m.trim_zeros(x * onp.array([[0, 0, 1.0], [0, 1.0, 0], [0, 0, 0]])), [R(3, 3)]),
    "diagonal": (lambda m, x: m.diagonal(x), [R(3, 4)]),
    "diagonal-offset-axes": (lambda m, x: m.diagonal(x, 1, 2, 0), [R(3, 2, 4)]),
    "diagonal-beyond": (lambda m, x: m.diagonal(x, -5), [R(3, 4)]),
    "trace": (lambda m, x: m.trace(x), [R(3, 4)]),
    "trace-offset-axes": (lambda m, x: m.trace(x, -1, 0, 2), [R(3, 2, 4)]),
    "diag-vector": (lambda m, x: m.diag(x, 1), [R(4)]),
    "diag-matrix": (lambda m, x: m.diag(x, -1), [R(4, 3)]),
    "diagflat": (lambda m, x: m.diagflat(x, 2), [R(2, 2)]),
    "tril": (lambda m, x: m.tril(x), [R(4, 3)]),
    "tril-k-batch": (lambda m, x: m.tril(x, -1), [R(2, 3, 4)]),
    "triu": (lambda m, x: m.triu(x, 1), [R(4, 3)]),
    "triu-1d": (lambda m, x: m.triu(x), [R(3)]),
    "r_": (lambda m, x, y: m.r_[x, 0.5, y, 1:4], [R(3), R(2)]),
    "r_-linspace": (lambda m, x: m.r_[x, 0:1:3j, 7], [R(2)]),
    "r_-axis": (lambda m, x, y: m.r_["-1", x, y], [R(2, 3), R(2, 2)]),
    "r_-ndmin": (lambda m, x: m.r_["0,2", x, x], [R(3)]),
    "r_-trans1d": (lambda m, x: m.r_["0,3,-1", x, x], [R(2)]),
    "r_-trans1d-0": (lambda m, x: m.r_["0,3,0", x, x], [R(2)]),
    "r_-2d": (lambda m, x: m.r_["1,3", x, x], [R(2, 2)]),
    "c_": (lambda m, x, y: m.c_[x, y, x], [R(3), R(3, 2)]),
    "c_-slice": (lambda m, x: m.c_[x, 1:4], [R(3)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_match_numpy(name):
    f, xs = CASES[name]
    assert_same(traced(lambda *ts: f(np, *ts), *xs), f(onp, *xs))


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_second_order_both_modes(name):
    f, xs = CASES[name]
    gradcheck(lambda *ts: f(np, *ts), *xs)


@pytest.mark.parametrize("f", [
    lambda x: np.take(x, [1, 1, 0]),
    lambda x: np.sort(x),
    lambda x: np.diag(np.diag(x)),
    lambda x: np.trace(x),
    lambda x: np.triu(x),
    lambda x: np.make_diagonal(x[0], 0, -1, -2),
    lambda x: np.select([np.real(x) > 0], [x], default=1j),
    lambda x: np.r_[x[0], 1.0, x[1]],
])
def test_complex_inputs(f):
    gradcheck(f, C(3, 3))


def test_make_diagonal_is_the_adjoint_of_diagonal():
    D = R(2, 3)
    A = np.make_diagonal(D, 0, -1, -2)
    assert A.shape == (2, 3, 3)
    onp.testing.assert_array_equal(onp.diagonal(A, 0, -1, -2), D)
    A = np.make_diagonal(D, offset=-1, axis1=0, axis2=2)
    assert A.shape == (4, 2, 4)
    onp.testing.assert_array_equal(onp.diagonal(A, -1, 0, 2), D)
    assert onp.count_nonzero(A) == D.size
    gradcheck(lambda d: np.make_diagonal(d, 2, 1, 0), D)
    # <diagonal(x), d> = <x, make_diagonal(d)>
    x = R(4, 2, 4)
    assert onp.isclose(onp.sum(onp.diagonal(x, -1, 0, 2) * D), onp.sum(x * A))


def test_repeated_indices_add_up():
    g = nablab.grad(lambda x: np.sum(x[[0, 0, 2, 0]] * onp.arange(1.0, 5.0)))(onp.zeros(3))
    onp.testing.assert_array_equal(g, [7.0, 0.0, 3.0])
    g = nablab.grad(lambda x: np.sum(np.take_along_axis(x, onp.array([[1, 1, 1]]), axis=1)))(onp.zeros((1, 3)))
    onp.testing.assert_array_equal(g, [[0.0, 3.0, 0.0]])


def test_sort_gradient_follows_the_permutation_and_ties_are_stable():
    x = onp.array([3.0, 1.0, 2.0])
    onp.testing.assert_array_equal(nablab.grad(lambda t: np.sort(t)[0])(x), [0.0, 1.0, 0.0])
    tie = onp.array([2.0, 1.0, 2.0])
    # A stable order: the first of the tied entries is the first of their slots.
    onp.testing.assert_array_equal(nablab.grad(lambda t: np.sort(t)[1])(tie), [1.0, 0.0, 0.0])
    onp.testing.assert_array_equal(nablab.grad(lambda t: np.sort(t)[2])(tie), [0.0, 0.0, 1.0])


def test_numpy_functions_and_methods_dispatch_here():
    x = R(3, 3)
    by_numpy = lambda t: (onp.trace(t) + t.trace(1) + t.diagonal(-1).sum() + t.take([0, 4]).sum()
                          + onp.sort(t, axis=0)[0].sum() + onp.tril(t).sum() * 2 + onp.diag(t).sum()
                          + onp.select([t.numpy() > 0], [t]).sum() + onp.partition(t, 1)[:, 0].sum())
    by_nablab = lambda t: (np.trace(t) + np.trace(t, 1) + np.diagonal(t, -1).sum() + np.take(t, [0, 4]).sum()
                           + np.sort(t, axis=0)[0].sum() + np.tril(t).sum() * 2 + np.diag(t).sum()
                           + np.select([t.numpy() > 0], [t]).sum() + np.partition(t, 1)[:, 0].sum())
    g = onp.asarray(nablab.grad(by_numpy)(x))
    assert onp.count_nonzero(g) > 5
    onp.testing.assert_allclose(g, nablab.grad(by_nablab)(x), rtol=1e-14)


def test_index_tricks_without_tensors_are_numpys():
    assert np.r_[1:3, 5] .tolist() == onp.r_[1:3, 5].tolist()
    assert np.c_[[1, 2], [3, 4]].tolist() == onp.c_[[1, 2], [3, 4]].tolist()
    assert np.r_["r", [1, 2]].shape == (1, 2)


# ----------------------------------------------------------------------------- errors

def test_bad_arguments_raise_clearly():
    t = nablab.tensor(R(2, 3))
    with pytest.raises(IndexError, match="out of bounds"):
        np.take(t, [3], axis=1)
    with pytest.raises(IndexError, match="integers"):
        np.take(t, [0.5])
    with pytest.raises(ValueError, match="mode"):
        np.take(t, [0], mode="nearest")
    with pytest.raises(ValueError, match="dimensions"):
        np.take_along_axis(t, onp.array([0, 1]), axis=1)
    with pytest.raises(ValueError, match="2 conditions but 1"):
        np.select([True, False], [t])
    with pytest.raises(ValueError, match="empty condition"):
        np.select([], [])
    with pytest.raises(TypeError, match="not bool"):
        np.select([onp.array([1, 0, 1])], [t])
    with pytest.raises(ValueError, match="at least 2"):
        np.diagonal(t[0])
    with pytest.raises(ValueError, match="cannot be the same"):
        np.trace(t, axis1=1, axis2=-1)
    with pytest.raises(ValueError, match="1- or 2-d"):
        np.diag(nablab.tensor(R(2, 2, 2)))
    with pytest.raises(NotImplementedError, match="structured"):
        np.sort(t, order="x")
    with pytest.raises(ValueError, match="first entry"):
        nablab.grad(lambda x: np.sum(np.r_[x, "0"]))(R(2))
    with pytest.raises(NotImplementedError, match="matrix directive"):
        nablab.grad(lambda x: np.sum(np.r_["r", x]))(R(2))
    with pytest.raises(nablab.UnsupportedFunctionError, match="numpy.unique.*equal"):
        nablab.grad(lambda x: np.sum(np.unique(x)))(R(3))
    assert np.unique(onp.array([2, 1, 2])).tolist() == [1, 2]
    with pytest.raises(nablab.UnsupportedFunctionError, match="numpy.union1d"):
        nablab.grad(lambda x: np.sum(np.union1d(onp.ones(2), x)))(R(3))


def test_in_place_functions_refuse_tensors_and_work_on_arrays():
    for call in (lambda x: onp.put(onp.zeros(3), [0], x), lambda x: np.copyto(onp.zeros(2), x),
                 lambda x: np.place(onp.zeros(2), [True, False], x)):
        with pytest.raises(nablab.UnsupportedFunctionError, match="in place"):
            nablab.grad(lambda x: call(x) or 0.0)(1.0)
    with pytest.raises(TypeError, match="item assignment"):
        np.put(nablab.tensor([1.0, 2.0]), [0], 3.0)
    a = onp.zeros(3)
    np.put(a, [1], 5.0)
    assert a.tolist() == [0.0, 5.0, 0.0]
    # isin and lexsort give integers and booleans: constants, even for traced inputs.
    g = nablab.grad(lambda x: np.sum(x * np.isin(x, [2.0])) + np.sum(x[np.lexsort((x,))][:1]))(onp.array([1.0, 2.0, 3.0]))
    onp.testing.assert_array_equal(g, [1.0, 1.0, 0.0])


# ----------------------------------------------------------------------------- against HIPS autograd

# Within what autograd's own rules handle: square matrices for diag, no axes for trace, the last
# two axes, offset 0 and real values for diagonal / make_diagonal (its make_diagonal writes into a
# real array, dropping imaginary parts).
AUTOGRAD_FNS = {
    "diag": lambda m, x, r: m.diag(x[0, :2, :2], int(r.integers(-1, 2))),
    "diagflat": lambda m, x, r: m.diag(x[0, 0], int(r.integers(-2, 3))),
    "diagonal": lambda m, x, r: m.diagonal(x[:, :2, :2], 0, -1, -2),
    "trace": lambda m, x, r: m.trace(x[0], int(r.integers(-2, 3))),
    "tril": lambda m, x, r: m.tril(x, int(r.integers(-2, 3))),
    "triu": lambda m, x, r: m.triu(x, int(r.integers(-2, 3))),
    "sort": lambda m, x, r: m.sort(x[0, 0]),
    "partition": lambda m, x, r: m.partition(x[0, 0], int(r.integers(0, x.shape[2]))),
    "select": lambda m, x, r: m.select([x > 0.5, x < -0.5], [x, x * 2.0], default=0.5),
    "getitem": lambda m, x, r: x[r.integers(0, x.shape[0], size=4)][:, ::-1],
    "r_": lambda m, x, r: m.r_[x[0], x[1]],
    "c_": lambda m, x, r: m.c_[x[0], x[1]],
    "make_diagonal": lambda m, x, r: (anp if m is onp else m).make_diagonal(x, 0, -1, -2),
}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(AUTOGRAD_FNS)), is_complex=st.booleans())
def test_values_and_gradients_match_autograd(seed, name, is_complex):
    r = onp.random.default_rng(seed)
    shape = tuple(r.integers(2, 5, size=3))
    x = r.standard_normal(shape)
    if is_complex and name not in ("sort", "partition", "select", "diagonal", "make_diagonal"):
        x = x + 1j * r.standard_normal(shape)
    f = AUTOGRAD_FNS[name]
    state = r.bit_generator.state

    def call(m, t):
        r.bit_generator.state = state
        return f(m, t, r)

    want = call(onp, x)
    w = r.standard_normal(onp.shape(want))
    assert_same(traced(lambda t: call(np, t), x), want, tol=1e-10)
    got = nablab.grad(lambda t: np.sum(np.real(np.sin(call(np, t)) * w)))(x)
    onp.testing.assert_allclose(got, autograd.grad(lambda t: anp.sum(anp.real(anp.sin(call(anp, t)) * w)))(x),
                                rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")

IDX = onp.array([[[2, 0, 1, 1]], [[0, 0, 3, 1]]])
TORCH_CASES = {
    "sort": (lambda x: np.sort(x, axis=1), lambda x: torch.sort(x, dim=1, stable=True)[0]),
    "take_along_axis": (lambda x: np.take_along_axis(x, IDX, axis=2),
                        lambda x: torch.take_along_dim(x, torch.tensor(IDX), dim=2)),
    "diagonal": (lambda x: np.diagonal(x, 1, 1, 2), lambda x: torch.diagonal(x, 1, 1, 2)),
    "trace": (lambda x: np.trace(x[0]), lambda x: torch.trace(x[0])),
    "diag": (lambda x: np.diag(x[0, 0], -1), lambda x: torch.diag(x[0, 0], -1)),
    "tril": (lambda x: np.tril(x, 1), lambda x: torch.tril(x, 1)),
    "triu": (lambda x: np.triu(x, -1), lambda x: torch.triu(x, -1)),
    "take": (lambda x: np.take(x, [5, 2, 5]), lambda x: torch.take(x, torch.tensor([5, 2, 5]))),
    "getitem": (lambda x: x[:, [2, 0, 2], 1:], lambda x: x[:, [2, 0, 2], 1:]),
}


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(TORCH_CASES)))
def test_jacobians_and_hessians_match_torch(seed, name):
    r = onp.random.default_rng(seed)
    x = r.standard_normal((2, 3, 4))
    nb_f, t_f = TORCH_CASES[name]
    tx = torch.tensor(x)
    onp.testing.assert_allclose(nablab.jacrev(nb_f)(x), tfn.jacrev(t_f)(tx).numpy(), rtol=1e-12, atol=1e-12)
    v = r.standard_normal(x.shape)
    onp.testing.assert_allclose(nablab.jvp(nb_f, (x,), (v,))[1], tfn.jvp(t_f, (tx,), (torch.tensor(v),))[1].numpy(),
                                rtol=1e-12, atol=1e-12)
    loss_nb = lambda y: np.sum(np.sin(nb_f(y)) * np.sum(y))
    loss_t = lambda y: torch.sum(torch.sin(t_f(y)) * torch.sum(y))
    onp.testing.assert_allclose(nablab.hessian(loss_nb)(x), tfn.hessian(loss_t)(tx).numpy(), rtol=1e-10, atol=1e-11)
