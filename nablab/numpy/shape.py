"""Shapes, indexing and assembly: reshape, transpose, getitem, concatenate, stack, array.

Most of these are linear and use only their arguments' shapes, so they are
primitives with ``saves_values=False``: changing an input in place after the
call cannot spoil their backward pass.
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab.autodiff.core import Primitive, Tensor, primitive, shape_of, value_of
from nablab.autodiff.dispatch import unbox_all


def _ndim(x):
    return len(shape_of(x))


def _holds_tensor(obj):
    for o in obj:
        if isinstance(o, Tensor) or (type(o) in (list, tuple) and _holds_tensor(o)):
            return True
    return False


def as_array(x):
    """``x`` itself, unless it is a (nested) list or tuple holding tensors: then one array."""
    if type(x) in (list, tuple) and _holds_tensor(x):
        return array(x)
    return x


def _zeros_for(t, like):
    if t is not None:
        return t
    v = np.asarray(value_of(like))
    return np.zeros(v.shape, dtype=v.dtype if v.dtype.kind in "fc" else np.float64)


class VariadicRules(dict):
    """A rule table for primitives with any number of arguments (concatenate, stack)."""

    def __init__(self, make):
        super().__init__()
        self._make = make

    def __missing__(self, i):
        self[i] = rule = self._make(i)
        return rule

    def __contains__(self, i):
        return isinstance(i, int) and i >= 0


# --------------------------------------------------------------------------- reshape and friends

def _reshape(x, shape, order="C"):
    return np.reshape(x, shape, order=order)


_reshape_p = primitive(_reshape, name="reshape", saves_values=False)
_reshape_p.defvjp(lambda g, ans, x, shape, order="C": _reshape_p(g, shape_of(x), order=order))
_reshape_p.defjvp(lambda t, ans, x, shape, order="C": _reshape_p(t, shape, order=order))


def reshape(a, shape=None, order="C", *, newshape=None):
    """``np.reshape``; one entry of ``shape`` may be -1."""
    if shape is None:
        shape = newshape
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return _reshape_p(as_array(a), tuple(int(d) for d in shape), order=order)


def ravel(a, order="C"):
    return reshape(a, (-1,), order=order)


def expand_dims(a, axis):
    a = as_array(a)
    shape = list(shape_of(a))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = len(shape) + len(axes)
    for ax in sorted(int(x) % ndim for x in axes):
        shape.insert(ax, 1)
    return reshape(a, tuple(shape))


def squeeze(a, axis=None):
    a = as_array(a)
    shape = shape_of(a)
    if axis is None:
        return reshape(a, tuple(d for d in shape if d != 1))
    from nablab.numpy.reductions import normalize_axis
    axes = normalize_axis(axis, len(shape))
    for ax in axes:
        if shape[ax] != 1:
            raise ValueError(f"squeeze: axis {ax} has length {shape[ax]}, not 1 (shape {shape})")
    return reshape(a, tuple(d for i, d in enumerate(shape) if i not in axes))


def _transpose(x, axes=None):
    return np.transpose(x, axes)


transpose_p = primitive(_transpose, name="transpose", saves_values=False)
transpose_p.defvjp(
    lambda g, ans, x, axes=None: transpose_p(g, None if axes is None else tuple(np.argsort(axes)))
)
transpose_p.defjvp(lambda t, ans, x, axes=None: transpose_p(t, axes))


def transpose(a, axes=None):
    a = as_array(a)
    if axes is not None:
        axes = tuple(int(ax) % builtins.max(_ndim(a), 1) for ax in axes)
    return transpose_p(a, axes)


def swapaxes(a, axis1, axis2):
    a = as_array(a)
    axes = list(range(_ndim(a)))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose_p(a, tuple(axes))


def moveaxis(a, source, destination):
    a = as_array(a)
    n = _ndim(a)
    src = [int(s) % n for s in np.atleast_1d(source)]
    dst = [int(d) % n for d in np.atleast_1d(destination)]
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose_p(a, tuple(order))


def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape)


broadcast_to_p = primitive(_broadcast_to, name="broadcast_to", saves_values=False)


def _unbroadcast(g, x):
    from nablab.numpy.ufuncs import unbroadcast
    return unbroadcast(g, x)


broadcast_to_p.defvjp(lambda g, ans, x, shape: _unbroadcast(g, x))
broadcast_to_p.defjvp(lambda t, ans, x, shape: broadcast_to_p(t, shape))


def broadcast_to(array, shape):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return broadcast_to_p(as_array(array), tuple(shape))


# --------------------------------------------------------------------------- indexing

def _getitem(x, index):
    return x[index]


def _has_integer_array(index):
    items = index if isinstance(index, tuple) else (index,)
    return builtins.any(
        isinstance(i, (list, np.ndarray)) and np.asarray(i).dtype.kind in "iub" for i in items
    )


def _untake(g, index, shape):
    # Scatter g back into zeros of the input's shape; repeated integer indices add up.
    dtype = np.asarray(g).dtype
    out = np.zeros(shape, dtype=dtype if dtype.kind in "fc" else np.float64)
    if _has_integer_array(index):
        np.add.at(out, index, g)
    else:
        out[index] = g
    return out


getitem_p = primitive(_getitem, name="getitem", saves_values=False, lists_are_arrays=False)
getitem_p.defvjp(lambda g, ans, x, index: untake(g, index, shape_of(x)))
getitem_p.defjvp(lambda t, ans, x, index: getitem_p(t, index))

untake = primitive(_untake, name="untake", saves_values=False, lists_are_arrays=False)
untake.defvjp(lambda g, ans, x, index, shape: getitem_p(g, index))
untake.defjvp(lambda t, ans, x, index, shape: untake(t, index, shape))


def getitem(x, index):
    """``x[index]``: integer, slice, boolean and integer-array indices (tensors as indices are read as constants)."""
    if isinstance(index, list):
        index = np.asarray(unbox_all(index))
    elif isinstance(index, tuple):
        index = tuple(np.asarray(unbox_all(i)) if isinstance(i, (list, Tensor)) else i for i in index)
    elif isinstance(index, Tensor):
        index = np.asarray(value_of(index))
    return getitem_p(x, index)


# --------------------------------------------------------------------------- assembly

def _concatenate(*arrays, axis=0, offsets=None):
    return np.concatenate(arrays, axis=axis)


def _concat_vjp(i):
    def rule(g, ans, *arrays, axis=0, offsets=None):
        index = [slice(None)] * len(shape_of(g))
        index[axis] = slice(offsets[i], offsets[i + 1])
        return getitem_p(g, tuple(index))

    return rule


_concatenate_p = Primitive(_concatenate, name="concatenate", saves_values=False)
_concatenate_p.vjps = VariadicRules(_concat_vjp)
_concatenate_p.jvp_all = lambda ts, ans, *arrays, axis=0, offsets=None: _concatenate_p(
    *[_zeros_for(t, a) for t, a in zip(ts, arrays)], axis=axis, offsets=offsets
)


def concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    """``np.concatenate``; ``axis=None`` flattens first."""
    if out is not None:
        raise TypeError("concatenate(..., out=...) is not supported; use the returned value")
    arrays = [as_array(a) for a in arrays]
    if not arrays:
        raise ValueError("concatenate: needs at least one array")
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    shapes = [shape_of(a) for a in arrays]
    if builtins.any(len(s) == 0 for s in shapes):
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    axis = int(axis) % len(shapes[0])
    # Offsets along the axis, computed once: each part's VJP is then one slice.
    offsets = tuple(np.concatenate([[0], np.cumsum([s[axis] if len(s) > axis else 0 for s in shapes])]).tolist())
    result = _concatenate_p(*arrays, axis=axis, offsets=offsets)
    return result if dtype is None else result.astype(dtype)


def _stack(*arrays, axis=0):
    return np.stack(arrays, axis=axis)


def _stack_vjp(i):
    def rule(g, ans, *arrays, axis=0):
        return getitem_p(g, (slice(None),) * axis + (i,))

    return rule


_stack_p = Primitive(_stack, name="stack", saves_values=False)
_stack_p.vjps = VariadicRules(_stack_vjp)
_stack_p.jvp_all = lambda ts, ans, *arrays, axis=0: _stack_p(
    *[_zeros_for(t, a) for t, a in zip(ts, arrays)], axis=axis
)


def stack(arrays, axis=0, out=None, dtype=None):
    if out is not None:
        raise TypeError("stack(..., out=...) is not supported; use the returned value")
    arrays = [as_array(a) for a in arrays]
    if not arrays:
        raise ValueError("stack: needs at least one array")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all arrays need the same shape; got {sorted(shapes)}")
    axis = int(axis) % (len(next(iter(shapes))) + 1)
    result = _stack_p(*arrays, axis=axis)
    return result if dtype is None else result.astype(dtype)


def atleast_1d(*arys):
    out = [reshape(a, (1,)) if _ndim(a) == 0 else a for a in (as_array(x) for x in arys)]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    out = []
    for a in (as_array(x) for x in arys):
        n = _ndim(a)
        out.append(reshape(a, (1, 1)) if n == 0 else reshape(a, (1, shape_of(a)[0])) if n == 1 else a)
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    out = []
    for a in (as_array(x) for x in arys):
        s = shape_of(a)
        if len(s) == 0:
            a = reshape(a, (1, 1, 1))
        elif len(s) == 1:
            a = reshape(a, (1, s[0], 1))
        elif len(s) == 2:
            a = reshape(a, s + (1,))
        out.append(a)
    return out[0] if len(out) == 1 else out


def hstack(tup, dtype=None):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if _ndim(arrs[0]) == 1 else 1, dtype=dtype)


def vstack(tup, dtype=None):
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


row_stack = vstack


def dstack(tup):
    return concatenate([atleast_3d(a) for a in tup], axis=2)


def column_stack(tup):
    arrs = []
    for a in tup:
        a = as_array(a)
        arrs.append(reshape(a, (-1, 1)) if _ndim(a) < 2 else a)
    return concatenate(arrs, axis=1)


def array(object, dtype=None, *, copy=True, order="K", subok=False, ndmin=0, like=None):  # noqa: A002
    """``np.array``: nested lists and tuples may hold tensors (the result then carries them)."""
    if isinstance(object, Tensor):
        result = object
    elif type(object) in (list, tuple) and _holds_tensor(object):
        result = _stack_p(*[array(o) if type(o) in (list, tuple) else o for o in _promote(object)], axis=0)
    else:
        return np.array(object, dtype=dtype, copy=copy, order=order, subok=subok, ndmin=ndmin)
    if dtype is not None:
        from nablab.numpy.ufuncs import _astype_entry
        result = _astype_entry(result, dtype)
    if ndmin and _ndim(result) < ndmin:
        result = reshape(result, (1,) * (ndmin - _ndim(result)) + shape_of(result))
    return result


def _promote(items):
    # NumPy puts numbers and 0-d tensors side by side; stack needs equal shapes, which they have.
    return list(items)


def asarray(a, dtype=None, order=None, *, like=None, **kwargs):
    if isinstance(a, Tensor) or (type(a) in (list, tuple) and _holds_tensor(a)):
        return array(a, dtype=dtype)
    return np.asarray(a, dtype=dtype, order=order, **kwargs)


asanyarray = asarray


def copy(a, order="K", subok=False):
    """A copy; a tensor's value is never changed in place by nablab, so the tensor itself will do."""
    if isinstance(a, Tensor):
        return a
    return np.array(unbox_all(a), order=order, copy=True) if not (type(a) in (list, tuple) and _holds_tensor(a)) else array(a)


def _pad(x, pad_width, constant_values=0.0):
    return np.pad(x, pad_width, mode="constant", constant_values=constant_values)


_pad_p = primitive(_pad, name="pad", saves_values=False)
_pad_p.defvjp(lambda g, ans, x, pad_width, constant_values=0.0: getitem_p(
    g, tuple(slice(lo, shape_of(g)[i] - hi) for i, (lo, hi) in enumerate(pad_width))
))
_pad_p.defjvp(lambda t, ans, x, pad_width, constant_values=0.0: _pad_p(t, pad_width, 0.0))


def pad(array, pad_width, mode="constant", **kwargs):
    """``np.pad`` with ``mode="constant"`` (the constants carry no derivative)."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode={mode!r} is not differentiable in nablab; use mode='constant'")
    array = as_array(array)
    n = _ndim(array)
    # An int, (before, after) or one pair per axis, as np.pad reads it.
    widths = np.broadcast_to(np.asarray(unbox_all(pad_width), dtype=np.int64), (n, 2))
    widths = tuple((int(lo), int(hi)) for lo, hi in widths)
    constant = unbox_all(kwargs.pop("constant_values", 0.0))
    if kwargs:
        raise TypeError(f"pad: unexpected arguments {sorted(kwargs)}")
    return _pad_p(array, widths, constant_values=constant)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``np.linspace``; ``start`` and ``stop`` may be traced (the points are affine in them)."""
    from nablab.autodiff.dispatch import holds_traced
    if not (holds_traced([start, stop])):
        return np.linspace(unbox_all(start), unbox_all(stop), num, endpoint, retstep, dtype, axis)
    if axis != 0 or dtype is not None:
        raise NotImplementedError("linspace with traced ends supports axis=0 and dtype=None")
    from nablab.numpy.ufuncs import where
    start, stop = as_array(start), as_array(stop)
    div = (num - 1) if endpoint else num
    index = np.arange(num, dtype=np.float64).reshape((-1,) + (1,) * builtins.max(_ndim(start), _ndim(stop)))
    # As np.linspace computes them: start + i * step, and stop itself at the end.
    step = (stop - start) / div if div > 0 else (stop - start) * np.nan
    points = index * step + start
    if endpoint and num > 1:
        points = where(index == num - 1, stop, points)
    return (points, step) if retstep else points


__all__ = [
    "reshape", "ravel", "expand_dims", "squeeze", "transpose", "swapaxes", "moveaxis",
    "broadcast_to", "concatenate", "stack", "hstack", "vstack", "row_stack", "dstack",
    "column_stack", "atleast_1d", "atleast_2d", "atleast_3d", "array", "asarray", "asanyarray",
    "copy", "pad", "linspace",
]
