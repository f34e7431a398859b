"""Reductions: sums, means, variances, extremes along axes.

``max`` / ``min`` split the gradient equally among all entries that attain the
extreme value (so a tie of two gives each half), as PyTorch's ``amax`` does.
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab.autodiff.core import primitive, shape_of, value_of
from nablab.autodiff.dispatch import unbox_all
from nablab.numpy.shape import as_array, broadcast_to, reshape
from nablab.numpy.ufuncs import negative


def normalize_axis(axis, ndim):
    """``axis`` (None, an int or a tuple; negative allowed) as a tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim if ndim else a)
    return tuple(out)


def expand_reduced(g, shape, axis, keepdims):
    """Reshape a reduced result so it broadcasts against the input of shape ``shape``."""
    if keepdims:
        return g
    axes = normalize_axis(axis, len(shape))
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    return reshape(g, tuple(kept))


def _count(shape, axis):
    return int(np.prod([shape[a] for a in normalize_axis(axis, len(shape))]))


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"{name}(..., out=...) is not supported; use the returned value")


def _sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


_sum_p = primitive(_sum, name="sum", saves_values=False)
_sum_p.defvjp(
    lambda g, ans, x, axis=None, keepdims=False: broadcast_to(
        expand_reduced(g, shape_of(x), axis, keepdims), shape_of(x)
    )
)
_sum_p.defjvp(lambda t, ans, x, axis=None, keepdims=False: _sum_p(t, axis=axis, keepdims=keepdims))


def _axis_arg(axis):
    if isinstance(axis, list):
        return tuple(axis)
    return axis


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """``np.sum``; ``dtype`` casts the input first, ``initial`` is added."""
    _no_out("sum", out)
    if where is not None:
        raise NotImplementedError("sum(..., where=...) is not supported; multiply by the mask")
    a = as_array(a)
    if dtype is not None:
        from nablab.numpy.ufuncs import _astype_entry
        a = _astype_entry(a, dtype)
    result = _sum_p(a, axis=_axis_arg(axis), keepdims=bool(keepdims))
    return result if initial is None else result + initial


def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    _no_out("mean", out)
    a = as_array(a)
    return sum(a, axis=axis, dtype=dtype, keepdims=keepdims, where=where) / _count(shape_of(a), _axis_arg(axis))


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None):
    """Variance with ``ddof`` (``|x - mean|^2`` for complex input, as NumPy)."""
    _no_out("var", out)
    a = as_array(a)
    axis = _axis_arg(axis)
    centred = a - mean(a, axis=axis, dtype=dtype, keepdims=True)
    from nablab.numpy.ufuncs import _is_complex, conj, real
    sq = real(centred * conj(centred)) if _is_complex(centred) else centred * centred
    return sum(sq, axis=axis, keepdims=keepdims, where=where) / (_count(shape_of(a), axis) - ddof)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None):
    from nablab.numpy.ufuncs import sqrt
    return sqrt(var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, where=where))


def _extreme_mask(x, ans, axis, keepdims):
    xv = np.asarray(value_of(x))
    av = np.asarray(value_of(ans))
    if not keepdims:
        axes = normalize_axis(axis, xv.ndim)
        av = av.reshape([1 if i in axes else d for i, d in enumerate(xv.shape)])
    mask = (xv == av).astype(xv.dtype if xv.dtype.kind == "f" else np.float64)
    return mask / mask.sum(axis=axis, keepdims=True)


def _max(x, axis=None, keepdims=False):
    return np.max(x, axis=axis, keepdims=keepdims)


_max_p = primitive(_max, name="max")
_max_p.defvjp(
    lambda g, ans, x, axis=None, keepdims=False: expand_reduced(g, shape_of(x), axis, keepdims)
    * _extreme_mask(x, ans, axis, keepdims)
)
_max_p.defjvp(
    lambda t, ans, x, axis=None, keepdims=False: _sum_p(
        t * _extreme_mask(x, ans, axis, keepdims), axis=axis, keepdims=keepdims
    )
)


def max(a, axis=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """``np.max``; ties share the gradient equally."""
    _no_out("max", out)
    if initial is not None or where is not None:
        raise NotImplementedError("max(..., initial=/where=) is not supported")
    return _max_p(as_array(a), axis=_axis_arg(axis), keepdims=bool(keepdims))


def min(a, axis=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """``np.min``; ties share the gradient equally."""
    _no_out("min", out)
    return negative(max(negative(as_array(a)), axis=axis, keepdims=keepdims, initial=initial, where=where))


amax, amin = max, min

__all__ = ["sum", "mean", "var", "std", "max", "min", "amax", "amin"]
