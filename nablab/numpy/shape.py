"""Shapes and assembly: reshape, transpose, broadcast, getitem, concatenate, stack, array, pad.

Every function here moves or copies entries without combining them, so each is
linear and the derivative of a rearrangement is the reverse rearrangement.
They are built on a handful of primitives (``reshape``, ``transpose``,
``broadcast_to``, ``getitem``/``untake``, ``concatenate``, ``stack``, ``pad``)
whose rules use only their arguments' shapes (``saves_values=False``): changing
an input in place after the call cannot spoil their backward pass.  The
rearrangements composed from them (``flip``, ``roll``, ``tile``, ``split``,
...) are in :mod:`nablab.numpy.rearrange`.

A real argument of a primitive whose output is complex (stacking a real and a
complex array) receives the real part of the cotangent, as in
:mod:`nablab.numpy.ufuncs`.
"""

from __future__ import annotations

import builtins
import operator

import numpy as np

from nablab.autodiff import core
from nablab.autodiff.core import Primitive, RulesForAnyArgument, Tensor, primitive, shape_of, value_of
from nablab.autodiff.dispatch import holds_traced, unbox_all


def _ufuncs():
    # Imported late: nablab.numpy.ufuncs uses this module's functions in its rules.
    from nablab.numpy import ufuncs
    return ufuncs


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


def _index_int(value, what):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None


def _axis(axis, ndim, what="axis"):
    """One axis as a non-negative int; NumPy's AxisError when it is out of range."""
    axis = _index_int(axis, what)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _axes(axis, ndim, what="axis"):
    """An int or a sequence of ints as a tuple of distinct non-negative axes."""
    items = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = tuple(_axis(a, ndim, what) for a in items)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {what}={axis!r}")
    return out


def _zeros_for(t, like):
    if t is not None:
        return t
    v = np.asarray(value_of(like))
    return np.zeros(v.shape, dtype=v.dtype if v.dtype.kind in "fc" else np.float64)


def _as_cotangent(g, x):
    """``g`` as the cotangent of ``x``: its real part when ``x`` is real and ``g`` complex."""
    return _ufuncs()._match_complex(g, x)


# --------------------------------------------------------------------------- reshape and friends

def _reshape(x, shape, order="C"):
    return np.reshape(x, shape, order=order)


_reshape_p = primitive(_reshape, name="reshape", saves_values=False)
_reshape_p.defvjp(lambda g, ans, x, shape, order="C": _reshape_p(g, shape_of(x), order=order))
_reshape_p.defjvp(lambda t, ans, x, shape, order="C": _reshape_p(t, shape, order=order))


def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    """``np.reshape``; one entry of ``shape`` may be -1."""
    if shape is None:
        if newshape is None:
            raise TypeError("reshape: missing the new shape")
        shape = newshape
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    if order not in ("C", "F", "A"):
        raise ValueError(f"reshape: order must be 'C', 'F' or 'A', got {order!r}")
    return _reshape_p(as_array(a), tuple(_index_int(d, "reshape: a dimension") for d in shape),
                      order="C" if order == "A" else order)


def ravel(a, order="C"):
    """``np.ravel``: the entries as a 1-D array."""
    return reshape(a, (-1,), order="C" if order == "K" else order)


def expand_dims(a, axis):
    """``np.expand_dims``: insert axes of length 1 at the positions ``axis`` of the result."""
    a = as_array(a)
    shape = shape_of(a)
    count = 1 if isinstance(axis, (int, np.integer)) else len(tuple(axis))
    new = _axes(axis, len(shape) + count, "expand_dims: axis")
    rest = iter(shape)
    return reshape(a, tuple(1 if i in new else next(rest) for i in range(len(shape) + count)))


def squeeze(a, axis=None):
    """``np.squeeze``: drop axes of length 1 (all of them, or those named by ``axis``)."""
    a = as_array(a)
    shape = shape_of(a)
    if axis is None:
        return reshape(a, tuple(d for d in shape if d != 1))
    axes = _axes(axis, builtins.max(len(shape), 1), "squeeze: axis") if shape else ()
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
    """``np.transpose``: reverse the axes, or order them as ``axes`` says."""
    a = as_array(a)
    if axes is None:
        return transpose_p(a, None)
    n = _ndim(a)
    axes = _axes(axes, n, "transpose: axes")
    if len(axes) != n:
        raise ValueError(f"transpose: axes {axes} do not match an array of {n} dimensions")
    return transpose_p(a, axes)


permute_dims = transpose


def swapaxes(a, axis1, axis2):
    """``np.swapaxes``: exchange two axes."""
    a = as_array(a)
    n = _ndim(a)
    axes = list(range(n))
    i, j = _axis(axis1, n, "swapaxes: axis1"), _axis(axis2, n, "swapaxes: axis2")
    axes[i], axes[j] = axes[j], axes[i]
    return transpose_p(a, tuple(axes))


def matrix_transpose(x):
    """``np.matrix_transpose``: swap the last two axes."""
    x = as_array(x)
    if _ndim(x) < 2:
        raise ValueError(f"matrix_transpose: needs at least 2 dimensions, got shape {shape_of(x)}")
    return swapaxes(x, -1, -2)


def moveaxis(a, source, destination):
    """``np.moveaxis``: move axes to new positions, the others keeping their order."""
    a = as_array(a)
    n = _ndim(a)
    src = _axes(source, n, "moveaxis: source")
    dst = _axes(destination, n, "moveaxis: destination")
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source!r} and destination {destination!r} need the "
                         "same number of axes")
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose_p(a, tuple(order))


def rollaxis(a, axis, start=0):
    """``np.rollaxis``: move ``axis`` to stand before position ``start``."""
    a = as_array(a)
    n = _ndim(a)
    axis = _axis(axis, n, "rollaxis: axis")
    start = _index_int(start, "rollaxis: start")
    if start < 0:
        start += n
    if not 0 <= start <= n:
        raise np.exceptions.AxisError(f"rollaxis: start={start} must be in [{-n}, {n}]")
    if axis < start:
        start -= 1
    if axis == start:
        return a
    order = [i for i in range(n) if i != axis]
    order.insert(start, axis)
    return transpose_p(a, tuple(order))


def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape)


broadcast_to_p = primitive(_broadcast_to, name="broadcast_to", saves_values=False)
broadcast_to_p.defvjp(lambda g, ans, x, shape: _ufuncs().unbroadcast(g, x))
broadcast_to_p.defjvp(lambda t, ans, x, shape: broadcast_to_p(t, shape))


def broadcast_to(array, shape, subok=False):
    """``np.broadcast_to``: a read-only broadcast of ``array`` to ``shape``."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    array = as_array(array)
    shape = tuple(_index_int(d, "broadcast_to: a dimension") for d in shape)
    if shape_of(array) == shape and isinstance(array, Tensor):
        return array
    return broadcast_to_p(array, shape)


def broadcast_arrays(*args, subok=False):
    """``np.broadcast_arrays``: the arguments broadcast against each other (a tuple)."""
    args = [as_array(a) for a in args]
    shape = np.broadcast_shapes(*[shape_of(a) for a in args])
    return tuple(broadcast_to(a, shape) for a in args)


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
    if core._batch_levels:  # inside vmap an index may vary along the batch: a gather per example
        from nablab.autodiff import batching

        if batching.index_is_batched(index):
            return batching.batched_getitem(as_array(x), index)
    if isinstance(index, list):
        index = np.asarray(unbox_all(index))
    elif isinstance(index, tuple):
        index = tuple(np.asarray(unbox_all(i)) if isinstance(i, (list, Tensor)) else i for i in index)
    elif isinstance(index, Tensor):
        index = np.asarray(value_of(index))
    return getitem_p(as_array(x), index)


def _along(ndim, axis, item):
    """The index tuple that applies ``item`` to ``axis`` and keeps every other axis whole."""
    return (slice(None),) * axis + (item,) + (slice(None),) * (ndim - axis - 1)


def _slice(x, axis, start=None, stop=None, step=None):
    """``x`` sliced along one axis (a view, differentiable)."""
    return getitem_p(x, _along(_ndim(x), axis, slice(start, stop, step)))


# --------------------------------------------------------------------------- assembly

def _concatenate(*arrays, axis=0, offsets=None):
    return np.concatenate(arrays, axis=axis)


def _concat_vjp(i):
    def rule(g, ans, *arrays, axis=0, offsets=None):
        part = getitem_p(g, _along(_ndim(g), axis, slice(offsets[i], offsets[i + 1])))
        return _as_cotangent(part, arrays[i])

    return rule


_concatenate_p = Primitive(_concatenate, name="concatenate", saves_values=False)
_concatenate_p.vjps = RulesForAnyArgument(_concat_vjp)
_concatenate_p.jvp_all = lambda ts, ans, *arrays, axis=0, offsets=None: _concatenate_p(
    *[_zeros_for(t, a) for t, a in zip(ts, arrays)], axis=axis, offsets=offsets
)


def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """``np.concatenate``; ``axis=None`` flattens first."""
    if out is not None:
        raise TypeError("concatenate(..., out=...) is not supported; use the returned value")
    arrays = [as_array(a) for a in arrays]
    if not arrays:
        raise ValueError("concatenate: needs at least one array")
    if not builtins.any(isinstance(a, Tensor) for a in arrays):
        return np.concatenate(arrays, axis=axis, dtype=dtype, casting=casting)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    shapes = [shape_of(a) for a in arrays]
    for s in shapes:
        if len(s) == 0:
            raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
        if len(s) != len(shapes[0]):
            raise ValueError(f"concatenate: all arrays need the same number of dimensions; got shapes {shapes}")
    axis = _axis(axis, len(shapes[0]), "concatenate: axis")
    # Offsets along the axis, computed once: each part's VJP is then one slice.
    offsets = tuple(int(o) for o in np.cumsum([0] + [s[axis] for s in shapes]))
    result = _concatenate_p(*arrays, axis=axis, offsets=offsets)
    return result if dtype is None else _ufuncs()._astype_entry(result, dtype)


concat = concatenate


def _stack(*arrays, axis=0):
    return np.stack(arrays, axis=axis)


def _stack_vjp(i):
    def rule(g, ans, *arrays, axis=0):
        return _as_cotangent(getitem_p(g, (slice(None),) * axis + (i,)), arrays[i])

    return rule


_stack_p = Primitive(_stack, name="stack", saves_values=False)
_stack_p.vjps = RulesForAnyArgument(_stack_vjp)
_stack_p.jvp_all = lambda ts, ans, *arrays, axis=0: _stack_p(
    *[_zeros_for(t, a) for t, a in zip(ts, arrays)], axis=axis
)


def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """``np.stack``: join arrays of one shape along a new axis."""
    if out is not None:
        raise TypeError("stack(..., out=...) is not supported; use the returned value")
    arrays = [as_array(a) for a in arrays]
    if not arrays:
        raise ValueError("stack: needs at least one array")
    if not builtins.any(isinstance(a, Tensor) for a in arrays):
        return np.stack(arrays, axis=axis, dtype=dtype, casting=casting)
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all arrays need the same shape; got {sorted(shapes)}")
    axis = _axis(axis, len(next(iter(shapes))) + 1, "stack: axis")
    result = _stack_p(*arrays, axis=axis)
    return result if dtype is None else _ufuncs()._astype_entry(result, dtype)


def unstack(x, /, *, axis=0):
    """``np.unstack``: the slices along ``axis``, as a tuple."""
    x = as_array(x)
    n = _ndim(x)
    if n == 0:
        raise ValueError("unstack: needs an array of at least one dimension")
    axis = _axis(axis, n, "unstack: axis")
    return tuple(getitem_p(x, _along(n, axis, i)) for i in range(shape_of(x)[axis]))


def _at_least(arys, fn):
    out = tuple(fn(as_array(a)) for a in arys)
    return out[0] if len(out) == 1 else out


def _atleast_1d(a):
    return reshape(a, (1,)) if _ndim(a) == 0 else a


def _atleast_2d(a):
    n = _ndim(a)
    return reshape(a, (1, 1)) if n == 0 else reshape(a, (1,) + shape_of(a)) if n == 1 else a


def _atleast_3d(a):
    s = shape_of(a)
    if len(s) == 0:
        return reshape(a, (1, 1, 1))
    if len(s) == 1:
        return reshape(a, (1, s[0], 1))
    if len(s) == 2:
        return reshape(a, s + (1,))
    return a


def atleast_1d(*arys):
    """``np.atleast_1d`` (a tuple for several arguments)."""
    return _at_least(arys, _atleast_1d)


def atleast_2d(*arys):
    """``np.atleast_2d``: 1-D arrays become rows."""
    return _at_least(arys, _atleast_2d)


def atleast_3d(*arys):
    """``np.atleast_3d``: ``(n,)`` becomes ``(1, n, 1)``, ``(m, n)`` becomes ``(m, n, 1)``."""
    return _at_least(arys, _atleast_3d)


def _items(tup, who):
    if isinstance(tup, (Tensor, np.ndarray)):
        return list(tup)
    if not isinstance(tup, (list, tuple)):
        raise TypeError(f"{who}: expects a sequence of arrays, got {type(tup).__name__}")
    return [as_array(a) for a in tup]


def hstack(tup, *, dtype=None, casting="same_kind"):
    """``np.hstack``: along the second axis (the first for 1-D arrays); 0-d items become 1-D."""
    arrs = [_atleast_1d(a) for a in _items(tup, "hstack")]
    if not arrs:
        raise ValueError("hstack: needs at least one array")
    return concatenate(arrs, axis=0 if _ndim(arrs[0]) == 1 else 1, dtype=dtype, casting=casting)


def vstack(tup, *, dtype=None, casting="same_kind"):
    """``np.vstack``: along the first axis, after ``atleast_2d``."""
    return concatenate([_atleast_2d(a) for a in _items(tup, "vstack")], axis=0, dtype=dtype,
                       casting=casting)


row_stack = vstack


def dstack(tup):
    """``np.dstack``: along the third axis, after ``atleast_3d``."""
    return concatenate([_atleast_3d(a) for a in _items(tup, "dstack")], axis=2)


def column_stack(tup):
    """``np.column_stack``: 0-d and 1-D items become columns, then join along the second axis."""
    arrs = [reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in _items(tup, "column_stack")]
    return concatenate(arrs, axis=1)


def append(arr, values, axis=None):
    """``np.append``: ``values`` after ``arr`` (both flattened when ``axis`` is None)."""
    arr, values = as_array(arr), as_array(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def _copy(x):
    return np.array(x, copy=True)


_copy_p = primitive(_copy, name="copy", saves_values=False)
_copy_p.defvjp(lambda g, ans, x: g)
_copy_p.defjvp(lambda t, ans, x: t)


def array(object, dtype=None, *, copy=True, order="K", subok=False, ndmin=0, like=None):  # noqa: A002
    """``np.array``: nested lists and tuples may hold tensors and numbers mixed (the result carries the tensors)."""
    if isinstance(object, Tensor):
        result = _copy_p(object) if copy else object
    elif type(object) in (list, tuple) and _holds_tensor(object):
        items = [array(o) if type(o) in (list, tuple) else o for o in object]
        shapes = {np.shape(value_of(o)) for o in items}
        if len(shapes) > 1:
            raise ValueError(
                f"array: the nested sequences are ragged (items of shapes {sorted(shapes)}); "
                "NumPy needs them of one shape"
            )
        result = _stack_p(*items, axis=0)
    else:
        return np.array(unbox_all(object), dtype=dtype, copy=copy, order=order, subok=subok,
                        ndmin=ndmin)
    if dtype is not None:
        result = _ufuncs()._astype_entry(result, dtype)
    if ndmin and _ndim(result) < ndmin:
        result = reshape(result, (1,) * (ndmin - _ndim(result)) + shape_of(result))
    return result


def asarray(a, dtype=None, order=None, *, device=None, copy=None, like=None):
    """``np.asarray``: a tensor stays itself; lists holding tensors become one tensor."""
    if isinstance(a, Tensor) or (type(a) in (list, tuple) and _holds_tensor(a)):
        return array(a, dtype=dtype, copy=bool(copy))
    return np.asarray(unbox_all(a), dtype=dtype, order=order, copy=copy)


asanyarray = asarray


def ascontiguousarray(a, dtype=None, *, like=None):
    """``np.ascontiguousarray``: at least 1-D (values are never shared in place, so no copy)."""
    return atleast_1d(asarray(a, dtype=dtype))


def asfortranarray(a, dtype=None, *, like=None):
    """``np.asfortranarray``: memory order is NumPy's business; the values (at least 1-D) are as given."""
    return atleast_1d(asarray(a, dtype=dtype))


def asarray_chkfinite(a, dtype=None, order=None):
    """``np.asarray_chkfinite``: ``asarray``, refusing NaN and infinite entries."""
    result = asarray(a, dtype=dtype)
    values = np.asarray(value_of(result))
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        raise ValueError("array must not contain infs or NaNs")
    return result


def require(a, dtype=None, requirements=None, *, like=None):
    """``np.require``: ``asarray`` with ``dtype`` (layout requirements do not apply to tensors)."""
    if not isinstance(as_array(a), Tensor):
        return np.require(a, dtype, requirements)
    return asarray(a, dtype=dtype)


def copy(a, order="K", subok=False):
    """``np.copy``: a new tensor (changing it in place leaves ``a`` alone)."""
    if isinstance(a, Tensor) or (type(a) in (list, tuple) and _holds_tensor(a)):
        return array(a, copy=True)
    return np.array(unbox_all(a), order=order, copy=True, subok=subok)


# --------------------------------------------------------------------------- padding

def _pad(x, pad_width, constant_values=0.0):
    return np.pad(x, pad_width, mode="constant", constant_values=constant_values)


_pad_p = primitive(_pad, name="pad", saves_values=False)
_pad_p.defvjp(lambda g, ans, x, pad_width, constant_values=0.0: getitem_p(
    g, tuple(slice(lo, shape_of(g)[i] - hi) for i, (lo, hi) in enumerate(pad_width))
))
_pad_p.defjvp(lambda t, ans, x, pad_width, constant_values=0.0: _pad_p(t, pad_width, 0.0))

#: Modes in which every padded entry is a copy of an entry of the array: a gather along each axis.
_GATHER_MODES = ("edge", "reflect", "symmetric", "wrap")


def pad(array, pad_width, mode="constant", **kwargs):
    """``np.pad`` in modes ``constant`` (the default), ``edge``, ``reflect``, ``symmetric`` and ``wrap``.

    A traced ``constant_values`` must be one number.  Other modes (and
    ``reflect_type='odd'``) raise ``NotImplementedError``.
    """
    array = as_array(array)
    n = _ndim(array)
    # An int, (before, after) or one pair per axis, as np.pad reads it.
    widths = np.asarray(unbox_all(pad_width))
    if widths.dtype.kind not in "iu":
        raise TypeError(f"pad: pad_width must be integers, got {pad_width!r}")
    try:
        widths = np.broadcast_to(widths, (n, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit an array of {n} dimensions") from None
    if (widths < 0).any():
        raise ValueError(f"pad: pad_width may not be negative, got {pad_width!r}")
    widths = tuple((int(lo), int(hi)) for lo, hi in widths)
    if mode == "constant":
        constant = kwargs.pop("constant_values", 0)
        if kwargs:
            raise TypeError(f"pad: unexpected arguments {sorted(kwargs)} for mode 'constant'")
        if holds_traced([constant]):
            # pad(x, c) = pad(x, 0) + c * (1 - pad(ones, 0)): differentiable in a scalar c.
            constant = as_array(constant)
            if _ndim(constant) != 0:
                raise NotImplementedError("pad: a traced constant_values must be a single number")
            border = 1 - np.pad(np.ones(shape_of(array), np.asarray(value_of(array)).dtype), widths)
            return _pad_p(array, widths, constant_values=0) + constant * border
        return _pad_p(array, widths, constant_values=unbox_all(constant))
    if mode in _GATHER_MODES:
        reflect_type = kwargs.pop("reflect_type", "even")
        if kwargs:
            raise TypeError(f"pad: unexpected arguments {sorted(kwargs)} for mode {mode!r}")
        if reflect_type != "even":
            raise NotImplementedError(f"pad: reflect_type={reflect_type!r} is not differentiable in nablab; "
                                      "use the default 'even'")
        extra = {} if mode in ("edge", "wrap") else {"reflect_type": "even"}
        out = array
        for ax, (lo, hi) in enumerate(widths):
            if lo or hi:
                # NumPy pads the positions 0..n-1 exactly as it pads the values: a gather.
                size = shape_of(out)[ax]
                if size == 0:
                    raise ValueError(f"pad: can't extend the empty axis {ax} in mode {mode!r}")
                index = np.pad(np.arange(size), (lo, hi), mode=mode, **extra)
                out = getitem_p(out, _along(n, ax, index))
        return out
    if callable(mode):
        raise NotImplementedError("pad: a function as mode is not differentiable in nablab")
    raise NotImplementedError(
        f"pad: mode={mode!r} is not differentiable in nablab; use one of "
        f"{('constant',) + _GATHER_MODES}"
    )


__all__ = [
    "reshape", "ravel", "expand_dims", "squeeze", "transpose", "permute_dims", "swapaxes",
    "matrix_transpose", "moveaxis", "rollaxis", "broadcast_to", "broadcast_arrays",
    "concatenate", "concat", "stack", "unstack", "hstack", "vstack", "row_stack", "dstack",
    "column_stack", "append", "atleast_1d", "atleast_2d", "atleast_3d", "array", "asarray",
    "asanyarray", "ascontiguousarray", "asfortranarray", "asarray_chkfinite", "require", "copy",
    "pad",
]
