"""Rearrangements composed of the shape primitives: split, flip, roll, rot90, repeat, tile, insert, block.

Each is a composition of :mod:`nablab.numpy.shape`'s linear primitives
(slices, reshapes, broadcasts, gathers), so its derivative is the reverse
rearrangement and nests to any order with no rules of its own.  ``insert``,
``resize`` and ``block`` let NumPy itself arrange integer ids of the entries
and gather by them, so they follow NumPy's placement rules exactly.
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab.autodiff.core import Tensor, shape_of, value_of
from nablab.autodiff.dispatch import holds_traced, unbox_all
from nablab.numpy.shape import (_along, _axes, _axis, _index_int, _ndim, _slice, _ufuncs, as_array,
                                broadcast_to, concatenate, expand_dims, getitem_p, moveaxis, ravel,
                                reshape, stack, transpose)


# --------------------------------------------------------------------------- rearranged by NumPy itself

def _rearranged(fn, arrays):
    """``fn(*arrays)`` for a NumPy function that only moves and copies entries.

    ``fn`` runs on integer ids standing for the entries (so NumPy's own rules
    of broadcasting and placement decide where each goes), and the result is a
    gather of the flattened arrays by those ids: linear, differentiable, and
    exactly NumPy's arrangement.
    """
    ids, offset = [], 0
    for a in arrays:
        shape = np.shape(value_of(a))
        size = int(np.prod(shape))
        ids.append(np.arange(offset, offset + size).reshape(shape))
        offset += size
    positions = np.asarray(fn(*ids))
    source = concatenate([ravel(a) for a in arrays], axis=0) if len(arrays) > 1 else ravel(arrays[0])
    return getitem_p(source, positions)


def insert(arr, obj, values, axis=None):
    """``np.insert``: ``values`` placed before the positions ``obj``; the result has ``arr``'s dtype."""
    arr, values = as_array(arr), as_array(values)
    obj = unbox_all(obj)
    if not isinstance(arr, Tensor) and not isinstance(values, Tensor):
        return np.insert(arr, obj, values, axis=axis)
    result = _rearranged(lambda a, v: np.insert(a, obj, v, axis=axis), [arr, values])
    dtype = np.asarray(value_of(arr)).dtype
    return result if np.asarray(value_of(result)).dtype == dtype else _ufuncs()._astype_entry(result, dtype)


def resize(a, new_shape):
    """``np.resize``: the entries repeated (in order) to fill ``new_shape``."""
    a = as_array(a)
    if not isinstance(a, Tensor):
        return np.resize(a, new_shape)
    return _rearranged(lambda i: np.resize(i, new_shape), [a])


def block(arrays):
    """``np.block``: an array assembled from nested lists of blocks."""
    leaves = []

    def ids_of(item):
        if type(item) is list:
            return [ids_of(i) for i in item]
        if type(item) is tuple:
            raise TypeError(f"block: tuples are not allowed in the nested lists (got {item!r})")
        leaves.append(as_array(item))
        return len(leaves) - 1

    structure = ids_of(arrays)
    if not builtins.any(isinstance(a, Tensor) for a in leaves):
        return np.block(arrays)

    def assemble(*ids):
        def fill(item):
            return [fill(i) for i in item] if type(item) is list else ids[item]
        return np.block(fill(structure))

    return _rearranged(assemble, leaves)


def apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """``np.apply_along_axis``: ``func1d`` on every 1-D slice along ``axis``, the results assembled."""
    arr = as_array(arr)
    if not isinstance(arr, Tensor) and not holds_traced([args, kwargs]):
        return np.apply_along_axis(func1d, axis, arr, *args, **kwargs)
    n = _ndim(arr)
    axis = _axis(axis, n, "apply_along_axis: axis")
    moved = moveaxis(arr, axis, -1)
    outer = shape_of(moved)[:-1]
    if 0 in outer:
        raise ValueError("apply_along_axis: cannot apply to an array with an empty dimension")
    results = [as_array(func1d(getitem_p(moved, index), *args, **kwargs)) for index in np.ndindex(*outer)]
    result_shape = shape_of(results[0])
    if builtins.any(shape_of(r) != result_shape for r in results):
        raise ValueError("apply_along_axis: func1d returned results of different shapes")
    out = reshape(stack(results), outer + result_shape)
    # The result's own axes stand where ``axis`` was.
    k = len(result_shape)
    order = list(range(axis)) + list(range(len(outer), len(outer) + k)) + list(range(axis, len(outer)))
    return transpose(out, order) if order != list(range(len(order))) else out


def apply_over_axes(func, a, axes):
    """``np.apply_over_axes``: ``func(a, axis)`` for each axis in turn, keeping the dimensions."""
    a = as_array(a)
    if not isinstance(a, Tensor):
        return np.apply_over_axes(func, a, axes)
    for axis in np.atleast_1d(axes):
        n = _ndim(a)
        axis = int(axis) % n if -n <= int(axis) < n else _axis(axis, n, "apply_over_axes: axes")
        res = as_array(func(a, axis))
        if _ndim(res) == n:
            a = res
        elif _ndim(res) == n - 1:
            a = expand_dims(res, axis)
        else:
            raise ValueError("apply_over_axes: function is not returning an array of the correct shape")
    return a


# --------------------------------------------------------------------------- splitting

def _split_bounds(n, indices_or_sections, even, who):
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(f"{who}: the number of sections must be positive, got {sections}")
        if even and n % sections:
            raise ValueError(f"{who}: an axis of length {n} does not split into {sections} equal sections "
                             "(use array_split)")
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = np.cumsum([0] + sizes).tolist()
        return list(zip(bounds[:-1], bounds[1:]))
    cuts = [_index_int(i, f"{who}: a split index") for i in unbox_all(list(indices_or_sections))]
    # Python slices, as NumPy uses them: out-of-range or decreasing indices give empty pieces.
    return list(zip([0] + cuts, cuts + [None]))


def _split(ary, indices_or_sections, axis, even, who):
    ary = as_array(ary)
    n = _ndim(ary)
    axis = _axis(axis, n, f"{who}: axis")
    bounds = _split_bounds(shape_of(ary)[axis], unbox_all(indices_or_sections), even, who)
    return [getitem_p(ary, _along(n, axis, slice(lo, hi))) for lo, hi in bounds]


def split(ary, indices_or_sections, axis=0):
    """``np.split``: equal sections, or pieces between the given indices."""
    return _split(ary, indices_or_sections, axis, True, "split")


def array_split(ary, indices_or_sections, axis=0):
    """``np.array_split``: like ``split``, but sections may differ in length by one."""
    return _split(ary, indices_or_sections, axis, False, "array_split")


def hsplit(ary, indices_or_sections):
    """``np.hsplit``: split along the second axis (the first for 1-D arrays)."""
    ary = as_array(ary)
    if _ndim(ary) == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if _ndim(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    """``np.vsplit``: split along the first axis of an array of at least 2 dimensions."""
    ary = as_array(ary)
    if _ndim(ary) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    """``np.dsplit``: split along the third axis of an array of at least 3 dimensions."""
    ary = as_array(ary)
    if _ndim(ary) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, 2)


# --------------------------------------------------------------------------- reordering

def flip(m, axis=None):
    """``np.flip``: reverse the order along ``axis`` (every axis when None)."""
    m = as_array(m)
    n = _ndim(m)
    axes = range(n) if axis is None else _axes(axis, n, "flip: axis")
    return getitem_p(m, tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(n)))


def fliplr(m):
    """``np.fliplr``: reverse the second axis."""
    m = as_array(m)
    if _ndim(m) < 2:
        raise ValueError(f"fliplr: needs at least 2 dimensions, got shape {shape_of(m)}")
    return flip(m, 1)


def flipud(m):
    """``np.flipud``: reverse the first axis."""
    m = as_array(m)
    if _ndim(m) < 1:
        raise ValueError("flipud: needs at least 1 dimension, got a 0-d array")
    return flip(m, 0)


def roll(a, shift, axis=None):
    """``np.roll``: shift entries cyclically along ``axis`` (the flattened array when None)."""
    a = as_array(a)
    shift = unbox_all(shift)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape_of(a))
    n = _ndim(a)
    pairs = np.broadcast(np.asarray(shift), np.asarray(axis))
    if pairs.ndim > 1:
        raise ValueError("roll: shift and axis must be integers or 1-D sequences")
    total = {}
    for s, ax in pairs:
        ax = _axis(ax, n, "roll: axis")
        total[ax] = total.get(ax, 0) + _index_int(s, "roll: shift")
    out = a
    for ax, s in total.items():
        length = shape_of(a)[ax]
        s = s % length if length else 0
        if s:
            out = concatenate([_slice(out, ax, length - s), _slice(out, ax, 0, length - s)], axis=ax)
    return out


def rot90(m, k=1, axes=(0, 1)):
    """``np.rot90``: rotate by 90 degrees ``k`` times in the plane of ``axes``."""
    m = as_array(m)
    n = _ndim(m)
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("rot90: len(axes) must be 2")
    a0, a1 = _axis(axes[0], n, "rot90: axes"), _axis(axes[1], n, "rot90: axes")
    if a0 == a1:
        raise ValueError("rot90: the two axes must differ")
    k = _index_int(k, "rot90: k") % 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(n))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return transpose(flip(m, a1), perm)
    return flip(transpose(m, perm), a1)


def repeat(a, repeats, axis=None):
    """``np.repeat``: each entry ``repeats`` times along ``axis`` (the flattened array when None)."""
    a = as_array(a)
    if axis is None:
        a, axis = ravel(a), 0
    n = _ndim(a)
    axis = _axis(axis, builtins.max(n, 1), "repeat: axis")
    if n == 0:
        a, n = reshape(a, (1,)), 1
    counts = np.asarray(unbox_all(repeats))
    if counts.dtype.kind not in "iub":
        raise TypeError(f"repeat: repeats must be integers, got {repeats!r}")
    if (counts < 0).any():
        raise ValueError(f"repeat: repeats may not be negative, got {repeats!r}")
    shape = shape_of(a)
    if counts.size == 1:
        # Each entry once more along a new axis after `axis`, then merge the two: no index arrays.
        r = int(counts.reshape(()))
        wide = broadcast_to(expand_dims(a, axis + 1), shape[:axis + 1] + (r,) + shape[axis + 1:])
        return reshape(wide, shape[:axis] + (shape[axis] * r,) + shape[axis + 1:])
    if counts.shape != (shape[axis],):
        raise ValueError(f"repeat: repeats of shape {counts.shape} do not fit an axis of length {shape[axis]}")
    return getitem_p(a, _along(n, axis, np.repeat(np.arange(shape[axis]), counts)))


def tile(A, reps):
    """``np.tile``: ``A`` repeated ``reps`` times along each axis."""
    A = as_array(A)
    reps = tuple(unbox_all(reps)) if np.ndim(unbox_all(reps)) else (unbox_all(reps),)
    reps = tuple(_index_int(r, "tile: reps") for r in reps)
    if builtins.any(r < 0 for r in reps):
        raise ValueError(f"tile: reps may not be negative, got {reps}")
    shape = shape_of(A)
    ndim = builtins.max(len(shape), len(reps))
    shape = (1,) * (ndim - len(shape)) + shape
    reps = (1,) * (ndim - len(reps)) + reps
    # (r0, s0, r1, s1, ...) broadcast from (1, s0, 1, s1, ...), then the pairs merged.
    inter = reshape(A, tuple(d for s in shape for d in (1, s)))
    wide = broadcast_to(inter, tuple(d for r, s in zip(reps, shape) for d in (r, s)))
    return reshape(wide, tuple(r * s for r, s in zip(reps, shape)))


__all__ = [
    "insert", "resize", "block", "apply_along_axis", "apply_over_axes", "split", "array_split",
    "hsplit", "vsplit", "dsplit", "flip", "fliplr", "flipud", "roll", "rot90", "repeat", "tile",
]
