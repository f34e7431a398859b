"""Gathers: take, sort, select, diagonals, triangles, and the ``r_`` / ``c_`` index tricks.

Each function picks entries of its array arguments by positions that do not
depend on the values' derivatives (integer indices, masks, a permutation), so
its derivative sends every cotangent back to the entry it came from (and adds
them up where an entry was picked twice).  They are built on
:func:`~nablab.numpy.shape.getitem` and two diagonal primitives.

- ``sort`` / ``partition`` apply the permutation of NumPy's ``argsort`` /
  ``argpartition`` of the values; at ties the (stable) permutation decides
  which entry gets which cotangent.
- ``unique`` refuses traced values: which entries it keeps depends on which
  values are equal, which no derivative can follow.
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab.autodiff.core import Tensor, primitive, shape_of, value_of
from nablab.autodiff.dispatch import (UnsupportedFunctionError, caller_location, holds_traced,
                                     nondifferentiable, unbox_all)
from nablab.numpy.reductions import sum
from nablab.numpy.shape import (_along, _axis, _index_int, _ndim, array, as_array, broadcast_to,
                                concatenate, getitem_p, ravel, stack, transpose, untake)
from nablab.numpy.ufuncs import _astype_entry, where


def _indices(x, who):
    """Integer positions given as a list, an array or a tensor, as a constant NumPy array."""
    idx = np.asarray(unbox_all(x))
    if idx.dtype.kind not in "iu" and idx.size:
        raise IndexError(f"{who}: indices must be integers, got dtype {idx.dtype}")
    return idx.astype(np.intp)


def _fix_mode(idx, n, mode, who):
    """Out-of-range indices handled as NumPy's ``mode`` says ('raise', 'wrap' or 'clip')."""
    if mode == "wrap":
        return idx % n if n else idx
    if mode == "clip":
        return np.clip(idx, 0, n - 1)
    if mode != "raise":
        raise ValueError(f"{who}: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"{who}: index {int(idx[bad].flat[0])} is out of bounds for an axis of size {n}")
    return idx


def take(a, indices, axis=None, out=None, mode="raise"):
    """``np.take``: entries at ``indices`` along ``axis`` (of the flattened array when None)."""
    if out is not None:
        raise TypeError("take(..., out=...) is not supported; use the returned value")
    a = as_array(a)
    if axis is None:
        a, axis = ravel(a), 0
    n = _ndim(a)
    axis = _axis(axis, n, "take: axis")
    idx = _fix_mode(_indices(indices, "take"), shape_of(a)[axis], mode, "take")
    return getitem_p(a, _along(n, axis, idx if idx.ndim else int(idx)))


def _grid_index(shape, axis, idx):
    """A fancy index taking ``idx`` along ``axis`` and the matching position along every other axis."""
    return tuple(
        idx if i == axis else np.arange(d).reshape((-1,) + (1,) * (len(shape) - i - 1))
        for i, d in enumerate(shape)
    )


def take_along_axis(arr, indices, axis=-1):
    """``np.take_along_axis``: ``arr`` gathered by ``indices`` of the same number of dimensions."""
    arr = as_array(arr)
    idx = _indices(indices, "take_along_axis")
    if axis is None:
        if idx.ndim != 1:
            raise ValueError("take_along_axis: with axis=None the indices must be 1-D")
        arr, axis = ravel(arr), 0
    n = _ndim(arr)
    if idx.ndim != n:
        raise ValueError(f"take_along_axis: indices of {idx.ndim} dimensions do not fit an array of {n}")
    axis = _axis(axis, n, "take_along_axis: axis")
    shape = shape_of(arr)
    idx = _fix_mode(idx, shape[axis], "raise", "take_along_axis")
    # The other axes broadcast between arr and indices, as in NumPy's own version.
    return getitem_p(arr, _grid_index(shape, axis, idx))


def choose(a, choices, out=None, mode="raise"):
    """``np.choose``: entry ``i`` from ``choices[a[i]]``; differentiable in the choices."""
    if out is not None:
        raise TypeError("choose(..., out=...) is not supported; use the returned value")
    idx = _indices(a, "choose")
    items = list(choices) if isinstance(choices, Tensor) else [as_array(c) for c in choices]
    if not items:
        raise ValueError("choose: needs at least one choice")
    shape = np.broadcast_shapes(idx.shape, *[shape_of(c) for c in items])
    idx = _fix_mode(np.broadcast_to(idx, shape), len(items), mode, "choose")
    stacked = stack([broadcast_to(c, shape) for c in items], axis=0)
    return getitem_p(stacked, (idx,) + _grid_index(shape, None, None))


def select(condlist, choicelist, default=0):
    """``np.select``: for each entry, the choice of the first condition that holds (else ``default``)."""
    conds = [np.asarray(unbox_all(c)) for c in condlist]
    choices = list(choicelist)
    if len(conds) != len(choices):
        raise ValueError(f"select: {len(conds)} conditions but {len(choices)} choices")
    if not conds:
        raise ValueError("select with an empty condition list is not possible")
    for i, c in enumerate(conds):
        if c.dtype != bool:
            raise TypeError(f"select: condition {i} has dtype {c.dtype}, not bool")
    result = as_array(default)
    # The first condition wins, so the earlier ones are applied last.
    for c, choice in zip(conds[::-1], choices[::-1]):
        result = where(c, as_array(choice), result)
    shape = np.broadcast_shapes(*[c.shape for c in conds], *[shape_of(x) for x in choices],
                                shape_of(result))
    return broadcast_to(result, shape) if shape_of(result) != shape else result


def compress(condition, a, axis=None, out=None):
    """``np.compress``: the slices along ``axis`` where ``condition`` holds."""
    if out is not None:
        raise TypeError("compress(..., out=...) is not supported; use the returned value")
    a = as_array(a)
    if axis is None:
        a, axis = ravel(a), 0
    n = _ndim(a)
    axis = _axis(axis, n, "compress: axis")
    keep = np.asarray(unbox_all(condition), dtype=bool).ravel()
    if keep.size > shape_of(a)[axis]:
        raise IndexError(f"compress: condition of length {keep.size} is longer than the axis ({shape_of(a)[axis]})")
    return getitem_p(a, _along(n, axis, np.flatnonzero(keep)))


def extract(condition, arr):
    """``np.extract``: the entries of the flattened ``arr`` where ``condition`` holds."""
    arr = as_array(arr)
    keep = np.asarray(unbox_all(condition)).astype(bool).ravel()
    return getitem_p(ravel(arr), np.flatnonzero(keep))


def delete(arr, obj, axis=None):
    """``np.delete``: ``arr`` without the positions ``obj`` along ``axis``."""
    arr = as_array(arr)
    if axis is None:
        arr, axis = ravel(arr), 0
    n = _ndim(arr)
    axis = _axis(axis, n, "delete: axis")
    size = shape_of(arr)[axis]
    keep = np.ones(size, dtype=bool)
    obj = unbox_all(obj)
    if isinstance(obj, slice):
        keep[obj] = False
    else:
        drop = np.asarray(obj)
        if drop.dtype == bool:
            if drop.shape != (size,):
                raise ValueError(f"delete: a boolean obj needs shape ({size},), got {drop.shape}")
            keep = ~drop
        else:
            keep[_fix_mode(_indices(drop, "delete"), size, "raise", "delete")] = False
    return getitem_p(arr, _along(n, axis, np.flatnonzero(keep)))


def piecewise(x, condlist, funclist, *args, **kw):
    """``np.piecewise``: ``funclist[k]`` (a function or a constant) where ``condlist[k]`` holds, 0 elsewhere.

    As in NumPy a later condition overrides an earlier one, an extra function
    applies where no condition holds, and the result has ``x``'s dtype.
    """
    x = as_array(x)
    xv = np.asarray(value_of(x))
    if not isinstance(x, Tensor) and not holds_traced([args, kw]):
        return np.piecewise(xv, unbox_all(condlist), funclist, *args, **kw)
    condlist = unbox_all(condlist)
    # NumPy's reading: one condition may be given bare (not in a list).
    if np.isscalar(condlist) or (not isinstance(condlist[0], (list, np.ndarray)) and xv.ndim != 0):
        condlist = [condlist]
    conds = [np.asarray(c, dtype=bool) for c in condlist]
    for c in conds:
        if c.shape != xv.shape:
            raise ValueError(f"piecewise: a condition of shape {c.shape} does not match x of shape {xv.shape}")
    if len(funclist) == len(conds) + 1:
        conds.append(~np.any(conds, axis=0) if conds else np.ones(xv.shape, bool))
    elif len(funclist) != len(conds):
        raise ValueError(f"piecewise: {len(conds)} conditions need {len(conds)} or {len(conds) + 1} functions, "
                         f"got {len(funclist)}")
    result = np.zeros(xv.shape, dtype=xv.dtype)
    taken = np.zeros(xv.shape, dtype=bool)
    # From the last condition back: each entry belongs to the last condition that holds there.
    for cond, fn in reversed(list(zip(conds, funclist))):
        mine = cond & ~taken
        taken |= cond
        if not mine.any():
            continue
        piece = fn(getitem_p(x, mine), *args, **kw) if callable(fn) else fn
        piece = broadcast_to(as_array(piece), (int(mine.sum()),))
        result = result + untake(piece, mine, xv.shape)
    return result if np.asarray(value_of(result)).dtype == xv.dtype else _astype_entry(result, xv.dtype)


# --------------------------------------------------------------------------- sorting

def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """``np.sort``: the entries permuted into order; the gradient follows the permutation."""
    if order is not None:
        raise NotImplementedError("sort(..., order=...) sorts structured arrays, which nablab cannot differentiate")
    a = as_array(a)
    if axis is None:
        a, axis = ravel(a), 0
    perm = np.argsort(np.asarray(value_of(a)), axis=axis, kind="stable")
    return take_along_axis(a, perm, axis=axis)


def msort(a):
    """Sort along the first axis (NumPy 1's ``msort``, kept for autograd-style code)."""
    return sort(a, axis=0)


def sort_complex(a):
    """``np.sort_complex``: sorted by real part, then imaginary part; the result is complex."""
    a = as_array(a)
    result = sort(a)
    return result if np.iscomplexobj(value_of(result)) else _astype_entry(result, np.complex128)


def partition(a, kth, axis=-1, kind="introselect", order=None):
    """``np.partition``: the entries permuted as ``np.argpartition`` orders them."""
    if order is not None:
        raise NotImplementedError("partition(..., order=...) is not supported")
    a = as_array(a)
    if axis is None:
        a, axis = ravel(a), 0
    perm = np.argpartition(np.asarray(value_of(a)), unbox_all(kth), axis=axis, kind=kind)
    return take_along_axis(a, perm, axis=axis)


def _refuse_unique(name):
    def refuse(ar, *args, **kwargs):
        if holds_traced([ar, args]):
            raise UnsupportedFunctionError(
                f"numpy.{name} was given a traced value (at {caller_location()}): which entries it "
                "keeps depends on which values are equal, and no derivative can follow that. "
                "Use nablab.numpy.sort for distinct values, or pass x.detach()."
            )
        return getattr(np, name)(unbox_all(ar), *unbox_all(args), **kwargs)

    refuse.__name__ = name
    refuse.__doc__ = f"``np.{name}`` for constants; refuses traced values."
    return refuse


def trim_zeros(filt, trim="fb", axis=None):
    """``np.trim_zeros``: the smallest box (along ``axis``) holding every nonzero entry; a slice of ``filt``."""
    filt = as_array(filt)
    values = np.asarray(value_of(filt))
    if not isinstance(filt, Tensor):
        return np.trim_zeros(filt, trim, axis)
    trim = trim.lower()
    if trim not in ("fb", "bf", "f", "b"):
        raise ValueError(f"trim_zeros: unexpected character(s) in trim: {trim!r}")
    n = values.ndim
    axes = range(n) if axis is None else [_axis(a, n, "trim_zeros: axis") for a in np.atleast_1d(axis)]
    nonzero = np.argwhere(values)
    if nonzero.size == 0:
        start = stop = np.zeros(n, dtype=np.intp)
    else:
        start = nonzero.min(axis=0) if "f" in trim else [None] * n
        stop = nonzero.max(axis=0) + 1 if "b" in trim else [None] * n
    return getitem_p(filt, tuple(slice(start[i], stop[i]) if i in axes else slice(None) for i in range(n)))


def _refuse_in_place(name):
    def refuse(*args, **kwargs):
        if holds_traced([args, kwargs]):
            raise UnsupportedFunctionError(
                f"numpy.{name} writes into its first argument in place (at {caller_location()}); nablab never "
                "changes a traced value in place. Build a new array instead: nablab.numpy.where for masks, "
                "scatters with nablab.untake, or concatenate the pieces."
            )
        if args and isinstance(args[0], Tensor):
            # Its value may be saved by recorded operations: tensors change only by copy-on-write.
            raise TypeError(f"numpy.{name} would write into a tensor's array in place; use item assignment "
                            "(t[index] = value), which copies first")
        return getattr(np, name)(*args, **unbox_all(kwargs))

    refuse.__name__ = name
    refuse.__doc__ = f"``np.{name}`` for constants; refuses traced values (it works in place)."
    return refuse


put = _refuse_in_place("put")
put_along_axis = _refuse_in_place("put_along_axis")
putmask = _refuse_in_place("putmask")
place = _refuse_in_place("place")
copyto = _refuse_in_place("copyto")
fill_diagonal = _refuse_in_place("fill_diagonal")

#: Integer or boolean results: piecewise constant in the values.
lexsort = nondifferentiable(np.lexsort, "lexsort")
isin = nondifferentiable(np.isin, "isin")

unique = _refuse_unique("unique")
unique_values = _refuse_unique("unique_values")
unique_counts = _refuse_unique("unique_counts")
unique_inverse = _refuse_unique("unique_inverse")
unique_all = _refuse_unique("unique_all")
# Set operations sort the unique values of their arguments: the same refusal.
intersect1d = _refuse_unique("intersect1d")
setdiff1d = _refuse_unique("setdiff1d")
setxor1d = _refuse_unique("setxor1d")
union1d = _refuse_unique("union1d")


# --------------------------------------------------------------------------- diagonals

def _diagonal_positions(n, offset):
    """Row and column positions of the ``n`` entries of diagonal ``offset``."""
    rows = np.arange(n) + builtins.max(-offset, 0)
    return rows, rows + offset


def _diagonal(x, offset, axis1, axis2):
    return np.diagonal(x, offset, axis1, axis2).copy()


def _embed_diagonal(d, offset, axis1, axis2, shape):
    dv = np.asarray(d)
    out = np.zeros(shape, dtype=dv.dtype if dv.dtype.kind in "fc" else np.float64)
    rows, cols = _diagonal_positions(dv.shape[-1], offset)
    np.moveaxis(out, (axis1, axis2), (-2, -1))[..., rows, cols] = dv
    return out


diagonal_p = primitive(_diagonal, name="diagonal", saves_values=False)
embed_diagonal_p = primitive(_embed_diagonal, name="embed_diagonal", saves_values=False)
diagonal_p.defvjp(lambda g, ans, x, offset, axis1, axis2:
                  embed_diagonal_p(g, offset, axis1, axis2, shape_of(x)))
diagonal_p.defjvp(lambda t, ans, x, offset, axis1, axis2: diagonal_p(t, offset, axis1, axis2))
embed_diagonal_p.defvjp(lambda g, ans, d, offset, axis1, axis2, shape:
                        diagonal_p(g, offset, axis1, axis2))
embed_diagonal_p.defjvp(lambda t, ans, d, offset, axis1, axis2, shape:
                        embed_diagonal_p(t, offset, axis1, axis2, shape))


def _two_axes(axis1, axis2, ndim, who):
    a1, a2 = _axis(axis1, ndim, f"{who}: axis1"), _axis(axis2, ndim, f"{who}: axis2")
    if a1 == a2:
        raise ValueError(f"{who}: axis1 and axis2 cannot be the same")
    return a1, a2


def diagonal(a, offset=0, axis1=0, axis2=1):
    """``np.diagonal``: diagonal ``offset`` of the planes ``(axis1, axis2)``, as the last axis."""
    a = as_array(a)
    n = _ndim(a)
    if n < 2:
        raise ValueError(f"diagonal: needs at least 2 dimensions, got shape {shape_of(a)}")
    axis1, axis2 = _two_axes(axis1, axis2, n, "diagonal")
    return diagonal_p(a, _index_int(offset, "diagonal: offset"), axis1, axis2)


def make_diagonal(D, offset=0, axis1=0, axis2=1):
    """Arrays with ``D``'s last axis on their diagonal: the inverse of ``diagonal`` (HIPS autograd's helper).

    The result has one more dimension than ``D``; ``axis1`` and ``axis2`` name
    its two new axes, each of length ``D.shape[-1] + |offset|``, and
    ``diagonal(result, offset, axis1, axis2)`` gives ``D`` back.
    """
    D = as_array(D)
    shape = shape_of(D)
    if not shape:
        raise ValueError("make_diagonal: needs at least a 1-D array")
    offset = _index_int(offset, "make_diagonal: offset")
    axis1, axis2 = _two_axes(axis1, axis2, len(shape) + 1, "make_diagonal")
    m = shape[-1] + builtins.abs(offset)
    rest = iter(shape[:-1])
    out_shape = tuple(m if i in (axis1, axis2) else next(rest) for i in range(len(shape) + 1))
    return embed_diagonal_p(D, offset, axis1, axis2, out_shape)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """``np.trace``: the sum of diagonal ``offset`` of the planes ``(axis1, axis2)``."""
    if out is not None:
        raise TypeError("trace(..., out=...) is not supported; use the returned value")
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def diag(v, k=0):
    """``np.diag``: the diagonal ``k`` of a 2-D array, or a 2-D array with a 1-D one on it."""
    v = as_array(v)
    k = _index_int(k, "diag: k")
    n = _ndim(v)
    if n == 1:
        m = shape_of(v)[0] + builtins.abs(k)
        return embed_diagonal_p(v, k, 0, 1, (m, m))
    if n == 2:
        return diagonal_p(v, k, 0, 1)
    raise ValueError(f"diag: input must be 1- or 2-d, got shape {shape_of(v)}")


def diagflat(v, k=0):
    """``np.diagflat``: a 2-D array with the flattened input on diagonal ``k``."""
    return diag(ravel(as_array(v)), k)


def _triangle(m, keep, who):
    m = as_array(m)
    if _ndim(m) == 0:
        raise ValueError(f"{who}: needs at least a 1-D array")
    # NumPy masks the last two axes (a 1-D input is broadcast against the mask).
    return where(keep(*shape_of(m)[-2:]), m, 0)


def tril(m, k=0):
    """``np.tril``: zeros above diagonal ``k`` of the last two axes."""
    k = _index_int(k, "tril: k")
    return _triangle(m, lambda *s: np.tri(*s, k=k, dtype=bool), "tril")


def triu(m, k=0):
    """``np.triu``: zeros below diagonal ``k`` of the last two axes."""
    k = _index_int(k, "triu: k")
    return _triangle(m, lambda *s: ~np.tri(*s, k=k - 1, dtype=bool), "triu")


# --------------------------------------------------------------------------- r_ and c_

class _Concatenator:
    """NumPy's ``r_`` / ``c_`` (``AxisConcatenator``) that also accepts tensors.

    Without traced values it is NumPy's own object; with them, items are
    treated as NumPy does (slices become ranges, numbers 1-D arrays, arrays
    raised to ``ndmin`` dimensions placing their axes as ``trans1d`` says)
    and joined by nablab's ``concatenate``.  The matrix directives ``'r'`` and
    ``'c'`` are not supported with traced values.
    """

    def __init__(self, numpy_obj, axis, ndmin, trans1d):
        self._numpy = numpy_obj
        self._axis, self._ndmin, self._trans1d = axis, ndmin, trans1d

    def __getitem__(self, key):
        if not holds_traced(key if isinstance(key, tuple) else (key,)):
            return self._numpy[unbox_all(key)]
        key = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self._axis, self._ndmin, self._trans1d
        objs, dtypes = [], []
        for k, item in enumerate(key):
            if isinstance(item, str):
                if k != 0:
                    raise ValueError("special directives must be the first entry.")
                axis, ndmin, trans1d = self._directive(item, axis, ndmin, trans1d)
                continue
            if isinstance(item, slice):
                obj = np.r_[item]
                dtypes.append(obj.dtype)
                if ndmin > 1:
                    obj = np.array(obj, ndmin=ndmin)
                    obj = obj.swapaxes(-1, trans1d) if trans1d != -1 else obj
            elif isinstance(item, (int, float, complex, bool, np.generic)):
                dtypes.append(item)
                obj = np.array(item, ndmin=ndmin)
            else:
                obj = as_array(item)
                dtypes.append(np.asarray(value_of(obj)).dtype)
                obj = self._raise(array(obj, copy=False, ndmin=ndmin), _ndim(obj), ndmin, trans1d)
            objs.append(obj)
        if not objs:
            return np.array([])
        final = np.result_type(*dtypes)
        objs = [o if np.asarray(value_of(o)).dtype == final else _astype_entry(o, final) for o in objs]
        return concatenate(objs, axis=axis)

    @staticmethod
    def _directive(item, axis, ndmin, trans1d):
        if item in ("r", "c"):
            raise NotImplementedError(f"the matrix directive {item!r} of r_/c_ is not supported with traced values")
        try:
            parts = [int(p) for p in item.split(",")]
        except ValueError:
            raise ValueError(f"unknown special directive {item!r}") from None
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"unknown special directive {item!r}")
        return tuple(parts) + (axis, ndmin, trans1d)[len(parts):]

    @staticmethod
    def _raise(obj, item_ndim, ndmin, trans1d):
        # As NumPy: the new leading axes of an item raised to ndmin dimensions move so that its
        # own axes start at position trans1d.
        if trans1d == -1 or item_ndim >= ndmin:
            return obj
        k2 = ndmin - item_ndim
        k1 = trans1d + k2 + 1 if trans1d < 0 else trans1d
        axes = list(range(ndmin))
        return transpose(obj, axes[:k1] + axes[k2:] + axes[k1:k2])


r_ = _Concatenator(np.r_, axis=0, ndmin=1, trans1d=-1)
c_ = _Concatenator(np.c_, axis=-1, ndmin=2, trans1d=0)


__all__ = [
    "take", "take_along_axis", "choose", "select", "piecewise", "compress", "extract", "delete", "sort",
    "msort", "sort_complex", "partition", "trim_zeros", "put", "put_along_axis", "putmask", "place",
    "copyto", "fill_diagonal", "lexsort", "isin", "unique", "unique_values", "unique_counts",
    "unique_inverse", "unique_all", "intersect1d", "setdiff1d", "setxor1d", "union1d", "diagonal", "make_diagonal", "trace", "diag", "diagflat", "tril", "triu",
    "r_", "c_",
]
