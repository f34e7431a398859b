"""nablab.numpy shapes, assembly and grids: values as NumPy's on traced inputs, derivatives
against finite differences (both modes, second order, real and complex), HIPS autograd on
random inputs, torch.func, and clear errors."""

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck

rng = onp.random.default_rng(1)


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
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w, tol)
        return
    assert onp.shape(got) == onp.shape(want), (onp.shape(got), onp.shape(want))
    onp.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# name -> (function of (module, *xs), inputs): the same code runs with NumPy and with nablab.numpy.
CASES = {
    "reshape-F": (lambda m, x: m.reshape(x, (4, -1), order="F"), [R(2, 3, 2)]),
    "ravel": (lambda m, x: m.ravel(x), [R(2, 3)]),
    "expand_dims": (lambda m, x: m.expand_dims(x, (0, -1)), [R(3, 2)]),
    "squeeze": (lambda m, x: m.squeeze(x, axis=(0, 2)), [R(1, 3, 1, 2)]),
    "squeeze-all": (lambda m, x: m.squeeze(x), [R(1, 3, 1)]),
    "transpose": (lambda m, x: m.transpose(x, (2, 0, 1)), [R(2, 3, 4)]),
    "permute_dims": (lambda m, x: m.permute_dims(x, (-1, 0, 1)), [R(2, 3, 4)]),
    "swapaxes": (lambda m, x: m.swapaxes(x, -1, 0), [R(2, 3, 4)]),
    "matrix_transpose": (lambda m, x: m.matrix_transpose(x), [R(2, 3, 4)]),
    "moveaxis": (lambda m, x: m.moveaxis(x, [0, 1], [2, 0]), [R(2, 3, 4)]),
    "rollaxis": (lambda m, x: m.rollaxis(x, 2, 1), [R(2, 3, 4)]),
    "rollaxis-end": (lambda m, x: m.rollaxis(x, 0, 3), [R(2, 3, 4)]),
    "broadcast_to": (lambda m, x: m.broadcast_to(x, (2, 3, 4)), [R(3, 1)]),
    "broadcast_arrays": (lambda m, x, y: m.broadcast_arrays(x, y), [R(3, 1), R(4)]),
    "concatenate": (lambda m, x, y: m.concatenate([x, y], axis=1), [R(2, 3), R(2, 1)]),
    "concatenate-flat": (lambda m, x, y: m.concatenate((x, y), axis=None), [R(2, 3), R(4)]),
    "concat": (lambda m, x, y: m.concat([x, y], axis=-1), [R(2, 3), R(2, 1)]),
    "stack": (lambda m, x, y: m.stack([x, y], axis=-1), [R(2, 3), R(2, 3)]),
    "unstack": (lambda m, x: m.unstack(x, axis=1), [R(2, 3)]),
    "hstack": (lambda m, x, y: m.hstack([x, y]), [R(2, 3), R(2, 2)]),
    "hstack-0d": (lambda m, x, y: m.hstack([x, y, 2.0]), [R(), R(3)]),
    "vstack": (lambda m, x, y: m.vstack([x, y]), [R(3), R(2, 3)]),
    "vstack-0d": (lambda m, x, y: m.vstack([x, y]), [R(), R(1)]),
    "row_stack": (lambda m, x, y: m.row_stack((x, y)), [R(3), R(3)]),
    "dstack": (lambda m, x, y: m.dstack([x, y]), [R(2, 3), R(2, 3, 2)]),
    "dstack-0d": (lambda m, x, y: m.dstack([x, y]), [R(), R(1)]),
    "column_stack": (lambda m, x, y: m.column_stack([x, y]), [R(3), R(3, 2)]),
    "column_stack-0d": (lambda m, x, y: m.column_stack([x, y]), [R(), R(1)]),
    "append": (lambda m, x, y: m.append(x, y), [R(2, 2), R(3)]),
    "append-axis": (lambda m, x, y: m.append(x, y, axis=0), [R(2, 2), R(1, 2)]),
    "atleast_1d": (lambda m, x, y: m.atleast_1d(x, y), [R(), R(2, 3)]),
    "atleast_2d": (lambda m, x, y, z: m.atleast_2d(x, y, z), [R(), R(3), R(2, 3, 1)]),
    "atleast_3d": (lambda m, x, y, z: m.atleast_3d(x, y, z), [R(), R(3), R(2, 3)]),
    "split": (lambda m, x: m.split(x, 3, axis=1), [R(2, 6)]),
    "split-indices": (lambda m, x: m.split(x, [1, 5, 2, -1], axis=1), [R(2, 7)]),
    "array_split": (lambda m, x: m.array_split(x, 3, axis=0), [R(7, 2)]),
    "hsplit": (lambda m, x: m.hsplit(x, [1]), [R(2, 3)]),
    "hsplit-1d": (lambda m, x: m.hsplit(x, 2), [R(4)]),
    "vsplit": (lambda m, x: m.vsplit(x, 2), [R(4, 3)]),
    "dsplit": (lambda m, x: m.dsplit(x, [1, 2]), [R(2, 2, 4)]),
    "flip": (lambda m, x: m.flip(x, (0, 2)), [R(2, 3, 4)]),
    "flip-all": (lambda m, x: m.flip(x), [R(2, 3)]),
    "fliplr": (lambda m, x: m.fliplr(x), [R(2, 3, 2)]),
    "flipud": (lambda m, x: m.flipud(x), [R(3)]),
    "roll": (lambda m, x: m.roll(x, (1, -5), (0, 1)), [R(3, 4)]),
    "roll-flat": (lambda m, x: m.roll(x, 5), [R(3, 4)]),
    "roll-same-axis": (lambda m, x: m.roll(x, (1, 2), (1, 1)), [R(2, 4)]),
    "rot90": (lambda m, x: m.rot90(x), [R(2, 3)]),
    "rot90-k2": (lambda m, x: m.rot90(x, 2, (1, 2)), [R(2, 3, 4)]),
    "rot90-k3": (lambda m, x: m.rot90(x, -1, (2, 0)), [R(2, 3, 4)]),
    "repeat": (lambda m, x: m.repeat(x, 3, axis=1), [R(2, 3)]),
    "repeat-flat": (lambda m, x: m.repeat(x, 2), [R(2, 3)]),
    "repeat-counts": (lambda m, x: m.repeat(x, [1, 0, 3], axis=-1), [R(2, 3)]),
    "tile": (lambda m, x: m.tile(x, (2, 1, 3)), [R(2, 3)]),
    "tile-int": (lambda m, x: m.tile(x, 2), [R(2, 3)]),
    "tile-short-reps": (lambda m, x: m.tile(x, (2,)), [R(2, 1, 3)]),
    "pad-constant": (lambda m, x: m.pad(x, ((1, 2), (0, 3)), constant_values=((1.0, 2.0), (3.0, 4.0))), [R(2, 3)]),
    "pad-int": (lambda m, x: m.pad(x, 2), [R(2, 3)]),
    "pad-edge": (lambda m, x: m.pad(x, (2, 1), mode="edge"), [R(2, 3)]),
    "pad-reflect-wide": (lambda m, x: m.pad(x, ((7, 5), (1, 0)), mode="reflect"), [R(3, 2)]),
    "pad-symmetric": (lambda m, x: m.pad(x, 4, mode="symmetric"), [R(2, 3)]),
    "pad-wrap": (lambda m, x: m.pad(x, ((5, 2),), mode="wrap"), [R(3)]),
    "insert": (lambda m, a, v: m.insert(a, 1, v, axis=1), [R(2, 3), R(2)]),
    "insert-many": (lambda m, a, v: m.insert(a, [0, 2, 2], v), [R(2, 3), R()]),
    "insert-broadcast": (lambda m, a, v: m.insert(a, [0, 3], v, axis=1), [R(2, 3), R(2, 1)]),
    "resize": (lambda m, a: m.resize(a, (3, 4)), [R(2, 3)]),
    "block": (lambda m, a, b: m.block([[a, b], [m.ones((1, 4)), 2.0 * b[:1]]]), [R(2, 4), R(2, 1)]),
    "block-flat": (lambda m, a, b: m.block([b[0, 0], a[0], 3.0]), [R(2, 4), R(2, 1)]),
    "array-mixed": (lambda m, x, y: m.array([[x, 1.0], [2.0, y]], ndmin=3), [R(), R()]),
    "array-rows": (lambda m, x: m.array([x, [1.0, 2.0], x * 2]), [R(2)]),
    "array-dtype": (lambda m, x: m.array([x, x], dtype=onp.complex128), [R(2)]),
    "asarray": (lambda m, x: m.asarray([x[0], x[1], 3.0]), [R(2)]),
    "copy": (lambda m, x: m.copy(x), [R(2, 3)]),
    "full": (lambda m, x: m.full((2, 3), x), [R()]),
    "full-row": (lambda m, x: m.full((2, 3), x), [R(3)]),
    "full_like": (lambda m, x: m.full_like(onp.zeros((2, 3)), x), [R(3)]),
    "linspace": (lambda m, a, b: m.linspace(a, b, 5), [R(), R()]),
    "linspace-1": (lambda m, a, b: m.linspace(a, b, 1), [R(), R()]),
    "linspace-0": (lambda m, a, b: m.linspace(a, b, 0), [R(), R()]),
    "linspace-retstep": (lambda m, a, b: m.linspace(a, b, 4, endpoint=False, retstep=True, axis=-1), [R(2), R(2)]),
    "linspace-arrays-axis": (lambda m, a, b: m.linspace(a, b, 6, axis=1), [R(2, 3), R(3)]),
    "logspace": (lambda m, a, b: m.logspace(a, b, 4, base=2.0), [R(), R()]),
    "logspace-bases": (lambda m, a: m.logspace(a, 1.0, 3, base=onp.array([2.0, 3.0])), [R(2)]),
    "geomspace": (lambda m, a, b: m.geomspace(a, b, 5), [onp.array(1.5), onp.array(30.0)]),
    "geomspace-negative": (lambda m, a, b: m.geomspace(a, b, 4, endpoint=False), [onp.array(-1.5), onp.array(-30.0)]),
    "geomspace-arrays-axis": (lambda m, a, b: m.geomspace(a, b, 4, axis=1), [onp.array([1.5, 2.0]), onp.array([30.0, 0.1])]),
    "geomspace-complex": (lambda m, a, b: m.geomspace(a + 1j, b * 1j, 3), [onp.array(1.5), onp.array(3.0)]),
    "unwrap": (lambda m, x: m.unwrap(x * 3.0, axis=0), [R(6, 2)]),
    "asarray_chkfinite": (lambda m, x: m.asarray_chkfinite([x[0], x[1]]), [R(2)]),
    "asfortranarray-require": (lambda m, x: m.require(m.asfortranarray(x), dtype=onp.float64), [R(2, 3)]),
    "meshgrid-xy": (lambda m, x, y, z: m.meshgrid(x, y, z), [R(3), R(2), R(4)]),
    "meshgrid-ij-sparse": (lambda m, x, y: m.meshgrid(x, y, indexing="ij", sparse=True), [R(3), R(2)]),
    "diff": (lambda m, x: m.diff(x), [R(3, 5)]),
    "diff-n-axis-ends": (lambda m, x: m.diff(x, 2, axis=0, prepend=0.5, append=onp.ones((2, 3))), [R(4, 3)]),
    "ediff1d": (lambda m, x: m.ediff1d(x, to_end=[1.0, 2.0], to_begin=-1.0), [R(2, 3)]),
    "gradient": (lambda m, x: m.gradient(x), [R(4, 5)]),
    "gradient-1d": (lambda m, x: m.gradient(x), [R(6)]),
    "gradient-spacing-order2": (lambda m, x: m.gradient(x, 0.5, axis=1, edge_order=2), [R(4, 5)]),
    "gradient-coordinates": (lambda m, x: m.gradient(x, 2.0, onp.array([0.0, 0.5, 1.5, 1.7, 3.0]), edge_order=2), [R(3, 5)]),
    "gradient-coordinates-order1": (lambda m, x: m.gradient(x, onp.array([0.0, 0.5, 1.5, 1.7]), axis=-1), [R(3, 4)]),
    "trapezoid": (lambda m, y: m.trapezoid(y, dx=0.5, axis=0), [R(4, 3)]),
    "interp": (lambda m, x, xp, fp: m.interp(x, xp, fp), [onp.array([0.0, 1.3, 2.7, 4.0, 2.2]), onp.array([1.0, 2.0, 3.0]), R(3)]),
    "interp-left-right": (lambda m, x, fp, v: m.interp(x, onp.array([1.0, 2.0, 3.0]), fp, left=v, right=2.0 * v),
                          [onp.array([0.5, 3.2, 2.5]), R(3), R()]),
    "interp-period": (lambda m, x, fp: m.interp(x, onp.array([1.0, 2.0, 3.0]), fp, period=3.5),
                      [onp.array([-1.0, 3.7, 2.5, 0.2]), R(3)]),
    "interp-complex-fp": (lambda m, x: m.interp(x, [0.0, 1.0, 2.0], onp.array([1.0, 2j, 3.0])), [onp.array([0.3, 1.6])]),
    "apply_along_axis": (lambda m, x: m.apply_along_axis(lambda v: m.stack([m.sum(v), m.max(v)]), 1, x), [R(2, 3)]),
    "apply_along_axis-2d-result": (lambda m, x: m.apply_along_axis(lambda v, w: m.outer(v, v) * w, 0, x, 2.0), [R(2, 3)]),
    "apply_along_axis-scalar-result": (lambda m, x: m.apply_along_axis(m.prod, -1, x), [R(2, 3, 2)]),
    "apply_over_axes": (lambda m, x: m.apply_over_axes(m.sum, x, [0, 2]), [R(2, 3, 4)]),
    "trapezoid-x": (lambda m, y, x: m.trapezoid(y, x), [R(3, 4), onp.sort(R(4))]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_match_numpy(name):
    f, xs = CASES[name]
    assert_same(traced(lambda *ts: f(np, *ts), *xs), f(onp, *xs))


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_second_order_both_modes(name):
    f, xs = CASES[name]
    gradcheck(lambda *ts: f(np, *ts), *xs)


def test_complex_and_mixed_inputs():
    gradcheck(lambda x, y: np.concatenate([x, y]), R(3), C(2))
    gradcheck(lambda x, y: np.stack([x, y]), C(3), R(3))
    gradcheck(lambda x, y: np.array([[x, y], [y, x]]), R(), C())
    gradcheck(lambda x: np.pad(np.roll(np.tile(x, 2), 1), 1, mode="reflect"), C(3))
    gradcheck(lambda x, a: np.linspace(a, x, 4), C(), R())
    gradcheck(lambda x: np.gradient(np.diff(x)), C(6))
    # A real input stacked with a complex one receives the real part of the cotangent.
    g = nablab.grad(lambda x, y: np.real(np.sum(np.stack([x, y]) * (1 + 2j))), argnums=(0, 1))(R(2), C(2))
    assert not onp.iscomplexobj(g[0]) and onp.iscomplexobj(g[1])


def test_traced_scalar_arguments_are_differentiated():
    gradcheck(lambda f, h: np.gradient(f, h, edge_order=2), R(5), 0.7)
    gradcheck(lambda f, h: np.gradient(f, h, onp.array([0.0, 1.0, 3.0]), axis=(0, 1))[0], R(4, 3), 0.7)
    gradcheck(lambda y, d: np.trapezoid(y, dx=d), R(5), 0.3)
    gradcheck(lambda x, b: np.logspace(x, 1.0, 4, base=b), 0.2, 3.0)
    gradcheck(lambda x, a, b: np.diff(x, prepend=a, append=b), R(3), R(), R())
    gradcheck(lambda x, a, b: np.ediff1d(x, to_begin=a, to_end=b), R(3), R(), R(2))
    gradcheck(lambda a, v: np.insert(a, [1, 1], v), R(3), R(2))


def test_traced_pad_constant_and_full_fill_values():
    gradcheck(lambda x, c: np.pad(x, ((1, 0), (2, 1)), constant_values=c), R(2, 2), R())
    grad_c = nablab.grad(lambda c: np.sum(np.pad(onp.ones((2, 2)), 1, constant_values=c)))(0.3)
    assert grad_c == 12.0  # the 16 - 4 padded entries
    onp.testing.assert_allclose(nablab.grad(lambda v: np.sum(np.full_like(onp.zeros((2, 3)), v)))(0.5), 6.0)
    # A fill value cast to an integer dtype is a constant.
    assert np.full_like(onp.zeros(3, dtype=int), nablab.tensor(2.7)).dtype == onp.int64


F32 = onp.array([[1.5, 0.0, 2.0], [0.5, 3.0, -1.0]], dtype=onp.float32)
DTYPE_CASES = {
    "prod-zero": lambda m, t: m.prod(t, axis=1), "cumprod-zero": lambda m, t: m.cumprod(t, axis=1),
    "var": lambda m, t: m.var(t, axis=0), "std": lambda m, t: m.std(t), "nanmean": lambda m, t: m.nanmean(t),
    "mean-where": lambda m, t: m.mean(t, where=onp.array([True, False, True])),
    "average": lambda m, t: m.average(t, axis=1, weights=onp.array([1, 2, 3], onp.float32)),
    "median": lambda m, t: m.median(t, axis=1), "quantile": lambda m, t: m.quantile(t, 0.3),
    "pad-traced-constant": lambda m, t: m.pad(t, 1, constant_values=t[0, 0]), "pad-reflect": lambda m, t: m.pad(t, 1, mode="reflect"),
    "insert": lambda m, t: m.insert(t, 1, 5.0), "block": lambda m, t: m.block([t, t]), "gradient": lambda m, t: m.gradient(t, axis=1),
    "linspace": lambda m, t: m.linspace(t[0, 0], t[0, 2], 3), "r_": lambda m, t: m.r_[t[0], 1.0],
    "array": lambda m, t: m.array([t[0, 0], 2.0]), "cov": lambda m, t: m.cov(t), "sort": lambda m, t: m.sort(t),
    "interp": lambda m, t: m.interp(onp.float32(0.5), onp.array([0, 1], onp.float32), t[0, :2]),
}


@pytest.mark.parametrize("name", list(DTYPE_CASES))
def test_float32_results_keep_numpys_dtype(name):
    f = DTYPE_CASES[name]
    got = nablab.jvp(lambda t: f(np, t), (F32,), (onp.ones_like(F32),))[0]
    assert onp.asarray(got).dtype == onp.asarray(f(onp, F32)).dtype


def test_copy_is_a_new_tensor():
    t = nablab.tensor([1.0, 2.0])
    c = np.copy(t)
    c[0] = 5.0
    assert t.tolist() == [1.0, 2.0] and c.tolist() == [5.0, 2.0]
    a = np.array(t)
    a[1] = 7.0
    assert t.tolist() == [1.0, 2.0]


def test_interp_slope_conventions_at_knots():
    xp, fp = onp.array([1.0, 2.0, 3.0]), onp.array([10.0, 20.0, 40.0])
    g = nablab.grad(lambda x: np.sum(np.interp(x, xp, fp)))(onp.array([1.0, 2.0, 3.0, 0.0, 5.0]))
    onp.testing.assert_array_equal(g, [10.0, 20.0, 20.0, 0.0, 0.0])
    assert onp.isnan(np.interp(nablab.tensor([onp.nan]), xp, fp).item())
    with pytest.raises(NotImplementedError, match="traced period"):
        nablab.grad(lambda p: np.sum(np.interp(onp.array([0.5]), xp, fp, period=p)))(3.0)
    with pytest.raises(ValueError, match="same length|one length"):
        np.interp(nablab.tensor(1.0), xp, fp[:2])


def test_linspace_gradients_are_affine_weights():
    g = nablab.grad(lambda a, b: np.sum(np.linspace(a, b, 5) * onp.arange(5.0)), argnums=(0, 1))(1.0, 3.0)
    onp.testing.assert_allclose(g, [2.5, 7.5])
    onp.testing.assert_allclose(nablab.grad(lambda a: np.sum(np.linspace(a, 2.0, 1)))(1.0), 1.0)


def test_tensor_methods_and_numpy_dispatch():
    x = R(2, 3)
    f = lambda t: (t.repeat(2, axis=1).sum() + t.squeeze().swapaxes(0, 1)[0, 1] + t.copy().sum()
                   + onp.tile(t, 2).sum() + onp.flip(t)[0, 0] + onp.roll(t, 1)[0, 0] + onp.hstack([t, t])[1, 4]
                   + onp.split(t, 3, axis=1)[1].sum() + onp.diff(t)[0, 0] + onp.gradient(t)[1].sum())
    gradcheck(f, x, order=1)


# ----------------------------------------------------------------------------- errors

def test_bad_arguments_raise_clearly():
    t = nablab.tensor(R(2, 3))
    with pytest.raises(onp.exceptions.AxisError):
        np.expand_dims(t, 4)
    with pytest.raises(ValueError, match="repeated"):
        np.expand_dims(t, (0, 0))
    with pytest.raises(ValueError, match="not 1"):
        np.squeeze(t, 0)
    with pytest.raises(onp.exceptions.AxisError):
        np.swapaxes(t, 0, 2)
    with pytest.raises(ValueError, match="same number of axes"):
        np.moveaxis(t, [0, 1], [1])
    with pytest.raises(ValueError, match="do not match"):
        np.transpose(t, (1,))
    with pytest.raises(ValueError, match="equal sections"):
        np.split(t, 2, axis=1)
    with pytest.raises(ValueError, match="2 or more"):
        np.vsplit(nablab.tensor(R(3)), 3)
    with pytest.raises(ValueError, match="at least 2"):
        np.fliplr(nablab.tensor(R(3)))
    with pytest.raises(ValueError, match="negative"):
        np.repeat(t, -1)
    with pytest.raises(ValueError, match="do not fit"):
        np.repeat(t, [1, 2], axis=1)
    with pytest.raises(ValueError, match="same shape"):
        np.stack([t, nablab.tensor(R(3, 2))])
    with pytest.raises(ValueError, match="ragged"):
        np.array([t[0], t[0, :2]])
    with pytest.raises(ValueError, match="zero-dimensional"):
        np.concatenate([t[0, 0], t[0, 1]])
    with pytest.raises(NotImplementedError, match="mode='median'"):
        np.pad(t, 1, mode="median")
    with pytest.raises(NotImplementedError, match="reflect_type"):
        np.pad(t, 1, mode="reflect", reflect_type="odd")
    with pytest.raises(NotImplementedError, match="single number"):
        nablab.grad(lambda c: np.sum(np.pad(t, 1, constant_values=c)))(onp.ones(2))
    with pytest.raises(ValueError, match="does not fit"):
        np.pad(t, ((1, 2), (1, 2), (1, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        nablab.grad(lambda a: np.sum(np.linspace(a, 1.0, -1)))(0.0)
    with pytest.raises(ValueError, match="too small"):
        nablab.grad(lambda x: np.sum(np.gradient(x, edge_order=2)))(R(2))
    with pytest.raises(NotImplementedError, match="coordinate"):
        nablab.grad(lambda h: np.sum(np.gradient(onp.arange(4.0) ** 2, h)))(onp.arange(4.0))
    with pytest.raises(TypeError, match="sequence"):
        np.vstack(3.0)
    with pytest.raises(ValueError, match="infs or NaNs"):
        np.asarray_chkfinite([t[0, 0], onp.nan])
    with pytest.raises(ValueError, match="zero"):
        nablab.grad(lambda a: np.sum(np.geomspace(a, 0.0, 3)))(1.0)


# ----------------------------------------------------------------------------- against HIPS autograd

AUTOGRAD_FNS = {
    "moveaxis": lambda m, x, r: m.moveaxis(x, int(r.integers(3)), int(r.integers(3))),
    "rollaxis": lambda m, x, r: m.rollaxis(x, int(r.integers(3)), int(r.integers(4))),
    "swapaxes": lambda m, x, r: m.swapaxes(x, int(r.integers(3)), int(r.integers(3))),
    "fliplr": lambda m, x, r: m.fliplr(x),
    "flipud": lambda m, x, r: m.flipud(x),
    "rot90": lambda m, x, r: m.rot90(x, int(r.integers(-3, 4))),
    "roll": lambda m, x, r: m.roll(x, int(r.integers(-5, 6)), axis=int(r.integers(3))),
    "repeat": lambda m, x, r: m.repeat(x, int(r.integers(1, 3)), axis=int(r.integers(3))),
    # (autograd mishandles reps shorter than the array's dimensions: those are checked against torch)
    "tile": lambda m, x, r: m.tile(x, tuple(int(k) for k in r.integers(1, 3, size=int(r.integers(3, 5))))),
    "array_split": lambda m, x, r: m.array_split(x, int(r.integers(1, 4)), axis=int(r.integers(3)))[0],
    "column_stack": lambda m, x, r: m.column_stack([x[0], x[1]]),
    "vstack": lambda m, x, r: m.vstack([x[0], x[1, 0]]),
    "hstack": lambda m, x, r: m.hstack([x, x]),
    "append": lambda m, x, r: m.append(x, x[:1], axis=0),
    "pad": lambda m, x, r: m.pad(x, int(r.integers(0, 3)), mode="constant"),
    "squeeze": lambda m, x, r: m.squeeze(x[:1], axis=0),
    "expand_dims": lambda m, x, r: m.expand_dims(x, int(r.integers(-4, 4))),
    "broadcast_to": lambda m, x, r: m.broadcast_to(x[:, :1], x.shape),
    "atleast_3d": lambda m, x, r: m.atleast_3d(x[0, 0]),
    "diff": lambda m, x, r: m.diff(x, int(r.integers(1, 3)), axis=int(r.integers(3))),
    "linspace": lambda m, x, r: m.linspace(x[0, 0, 0], x[1, 1, 1], int(r.integers(0, 6))),
    "full": lambda m, x, r: m.full((2, 2), x[0, 0, 0]),
    "array": lambda m, x, r: m.array([[x[0, 0, 0], 1.0], [x[1, 1, 1], x[0, 1, 0]]]),
}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(AUTOGRAD_FNS)))
def test_values_and_gradients_match_autograd(seed, name):
    r = onp.random.default_rng(seed)
    x = r.standard_normal(tuple(r.integers(2, 4, size=3)))
    f = AUTOGRAD_FNS[name]
    state = r.bit_generator.state  # the same random arguments for each call of f

    def call(m, t):
        r.bit_generator.state = state
        return f(m, t, r)

    want = call(onp, x)
    w = r.standard_normal(onp.shape(want))
    assert_same(traced(lambda t: call(np, t), x), want, tol=1e-10)
    got = nablab.grad(lambda t: np.sum(np.sin(call(np, t)) * w))(x)
    onp.testing.assert_allclose(got, autograd.grad(lambda t: anp.sum(anp.sin(call(anp, t)) * w))(x), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")

TORCH_CASES = {
    "flip": (lambda x: np.flip(x, (0, 2)), lambda x: torch.flip(x, (0, 2))),
    "roll": (lambda x: np.roll(x, (1, -2), (0, 2)), lambda x: torch.roll(x, (1, -2), (0, 2))),
    "rot90": (lambda x: np.rot90(x, 3, (1, 2)), lambda x: torch.rot90(x, 3, (1, 2))),
    "repeat": (lambda x: np.repeat(x, 2, axis=1), lambda x: torch.repeat_interleave(x, 2, dim=1)),
    "tile": (lambda x: np.tile(x, (2, 1, 3)), lambda x: torch.tile(x, (2, 1, 3))),
    "tile-short": (lambda x: np.tile(x, (3, 2)), lambda x: torch.tile(x, (3, 2))),
    "split": (lambda x: np.split(x, [1], axis=2)[1], lambda x: torch.split(x, [1, 3], dim=2)[1]),
    "diff": (lambda x: np.diff(x, 2, axis=2), lambda x: torch.diff(x, n=2, dim=2)),
    "gradient": (lambda x: np.gradient(x, 0.5, axis=2, edge_order=2),
                 lambda x: torch.gradient(x, spacing=0.5, dim=2, edge_order=2)[0]),
    "moveaxis": (lambda x: np.moveaxis(x, 0, -1), lambda x: torch.movedim(x, 0, -1)),
    "dstack": (lambda x: np.dstack([x[0], x[1, :, :, None]]), lambda x: torch.dstack([x[0], x[1, :, :, None]])),
    "pad": (lambda x: np.pad(x, ((0, 0), (1, 2), (2, 1))), lambda x: torch.nn.functional.pad(x, (2, 1, 1, 2))),
    "pad-reflect": (lambda x: np.pad(x, ((0, 0), (1, 2), (2, 1)), mode="reflect"),
                    lambda x: torch.nn.functional.pad(x, (2, 1, 1, 2), mode="reflect")),
    "pad-wrap": (lambda x: np.pad(x, ((0, 0), (1, 2), (2, 1)), mode="wrap"),
                 lambda x: torch.nn.functional.pad(x, (2, 1, 1, 2), mode="circular")),
    "pad-edge": (lambda x: np.pad(x, ((0, 0), (1, 2), (2, 1)), mode="edge"),
                 lambda x: torch.nn.functional.pad(x, (2, 1, 1, 2), mode="replicate")),
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
