"""Grids and differences: full, linspace, logspace, meshgrid, diff, ediff1d, gradient, trapezoid.

The grids are affine in their traced ends or fill values, the differences
linear in their array; all are compositions of nablab's primitives, so they
nest to any order.  Without tensors among the arguments each is NumPy's own
function.
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab.autodiff.core import Tensor, shape_of, value_of
from nablab.autodiff.dispatch import holds_traced, unbox_all
from nablab.numpy.reductions import sum
from nablab.numpy.shape import (_axis, _index_int, _ndim, _slice, as_array, broadcast_arrays,
                                broadcast_to, concatenate, moveaxis, ravel, reshape)
from nablab.numpy.ufuncs import _astype_entry, power, where


def _has_tensor(*args):
    return builtins.any(isinstance(as_array(a), Tensor) for a in args)


# --------------------------------------------------------------------------- filled arrays

def full(shape, fill_value, dtype=None, order="C", *, device=None, like=None):
    """``np.full``; a traced ``fill_value`` (a number or an array broadcast to ``shape``) stays traced."""
    if not _has_tensor(fill_value):
        return np.full(shape, unbox_all(fill_value), dtype=dtype, order=order)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    result = broadcast_to(as_array(fill_value), shape)
    return result if dtype is None else _astype_entry(result, dtype)


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    """``np.full_like``: ``a``'s shape and dtype (unless given), filled with ``fill_value``."""
    if shape is None:
        shape = shape_of(a)
    if dtype is None:
        dtype = np.asarray(value_of(as_array(a))).dtype
    if not _has_tensor(fill_value):
        return np.full(shape, unbox_all(fill_value), dtype=dtype)
    return full(shape, fill_value, dtype=dtype)


# --------------------------------------------------------------------------- ranges

def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """``np.linspace``; ``start`` and ``stop`` may be traced (the points are affine in them)."""
    num = _index_int(num, "linspace: num")
    if num < 0:
        raise ValueError(f"linspace: number of samples, {num}, must be non-negative")
    if not _has_tensor(start, stop):
        return np.linspace(unbox_all(start), unbox_all(stop), num, endpoint, retstep, dtype, axis)
    start, stop = as_array(start), as_array(stop)
    start, stop = broadcast_arrays(start * 1.0, stop * 1.0)
    div = num - 1 if endpoint else num
    delta = stop - start
    # NumPy's dtype: that of the ends and a Python float (so float32 ends give float32 points).
    dt = np.result_type(np.asarray(value_of(start)).dtype, np.asarray(value_of(stop)).dtype, float(num))
    index = np.arange(num, dtype=dt if dt.kind == "f" else np.float64).reshape((-1,) + (1,) * _ndim(delta))
    # As NumPy computes them: start + i * step, and stop itself as the last point.
    if div > 0:
        step = delta / div
        zero_step = np.asarray(value_of(step)) == 0
        points = (index / div) * delta if zero_step.any() else index * step
    else:
        step = np.nan
        points = index * delta
    points = points + start
    if endpoint and num > 1:
        last = np.arange(num).reshape(index.shape) == num - 1
        points = where(last, stop, points)
    if axis != 0:
        points = moveaxis(points, 0, axis)
    if dtype is not None:
        if np.dtype(dtype).kind in "iu":
            points = np.floor(value_of(points)).astype(dtype)
        else:
            points = _astype_entry(points, dtype)
    return (points, step) if retstep else points


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """``np.logspace``: ``base ** linspace(start, stop)``; ends and base may be traced."""
    if not _has_tensor(start, stop, base):
        return np.logspace(unbox_all(start), unbox_all(stop), num, endpoint, unbox_all(base), dtype, axis)
    exponents = linspace(start, stop, num=num, endpoint=endpoint, axis=0)
    base = as_array(base)
    if _ndim(base):
        base = reshape(base, (1,) + shape_of(base))
    result = power(base, exponents)
    if axis != 0:
        result = moveaxis(result, 0, axis)
    return result if dtype is None else _astype_entry(result, dtype)


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """``np.geomspace``; ``start`` and ``stop`` may be traced (negative and complex ends as NumPy allows)."""
    if not _has_tensor(start, stop):
        return np.geomspace(unbox_all(start), unbox_all(stop), num, endpoint, dtype, axis)
    import nablab.numpy as _n
    start, stop = broadcast_arrays(as_array(start) * 1.0, as_array(stop) * 1.0)
    sv, ev = np.asarray(value_of(start)), np.asarray(value_of(stop))
    if (sv == 0).any() or (ev == 0).any():
        raise ValueError("Geometric sequence cannot include zero")
    complex_ = sv.dtype.kind == "c" or ev.dtype.kind == "c"
    if complex_:
        start, stop = _astype_entry(start, np.complex128), _astype_entry(stop, np.complex128)
        sign = start / _n.abs(start)  # start's direction in the plane: traced, like NumPy's sign(start)
    else:
        sign = np.sign(sv)
    # NumPy's route: the sequence of |start| .. stop / sign, through logspace, then the ends exact.
    base_start, base_stop = start / sign, stop / sign
    result = logspace(_n.log10(base_start), _n.log10(base_stop), num=num, endpoint=endpoint, base=10.0)
    index = np.arange(num).reshape((-1,) + (1,) * _ndim(start))
    if num > 0:
        result = where(index == 0, base_start, result)
    if num > 1 and endpoint:
        result = where(index == num - 1, base_stop, result)
    result = sign * result
    if axis != 0:
        result = moveaxis(result, 0, axis)
    return result if dtype is None else _astype_entry(result, dtype)


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """``np.meshgrid``: coordinate arrays from 1-D coordinate vectors (a tuple)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    if not _has_tensor(*xi):
        return np.meshgrid(*unbox_all(list(xi)), copy=copy, sparse=sparse, indexing=indexing)
    n = len(xi)
    out = [reshape(as_array(x), (1,) * i + (-1,) + (1,) * (n - i - 1)) for i, x in enumerate(xi)]
    if indexing == "xy" and n > 1:
        out[0] = reshape(out[0], (1, -1) + (1,) * (n - 2))
        out[1] = reshape(out[1], (-1, 1) + (1,) * (n - 2))
    return tuple(out) if sparse else broadcast_arrays(*out)


# --------------------------------------------------------------------------- differences

def unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
    """``np.unwrap``: ``p`` plus the multiples of ``period`` NumPy adds at its jumps (constants, so the derivative is 1)."""
    if not _has_tensor(p):
        return np.unwrap(unbox_all(p), discont, axis, period=period)
    p = as_array(p)
    values = np.asarray(value_of(p))
    return p + (np.unwrap(values, discont, axis, period=period) - values)


def _with_border(value, a, axis):
    """``prepend``/``append`` as an array fitting ``a`` along ``axis`` (a number becomes one slice)."""
    value = as_array(value)
    if _ndim(value) == 0:
        shape = list(shape_of(a))
        shape[axis] = 1
        value = broadcast_to(value, tuple(shape))
    return value


def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    """``np.diff``: the ``n``-th differences along ``axis``."""
    n = _index_int(n, "diff: n")
    if n < 0:
        raise ValueError(f"diff: order must be non-negative but got {n}")
    if not _has_tensor(a, *(v for v in (prepend, append) if v is not np._NoValue)):
        return np.diff(unbox_all(a), n, axis, unbox_all(prepend), unbox_all(append))
    a = as_array(a)
    nd = _ndim(a)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = _axis(axis, nd, "diff: axis")
    parts = [a]
    if prepend is not np._NoValue:
        parts.insert(0, _with_border(prepend, a, axis))
    if append is not np._NoValue:
        parts.append(_with_border(append, a, axis))
    if len(parts) > 1:
        a = concatenate(parts, axis=axis)
    for _ in range(n):
        if np.asarray(value_of(a)).dtype == bool:
            raise TypeError("diff: boolean arrays have no differentiable difference")
        a = _slice(a, axis, 1) - _slice(a, axis, None, -1)
    return a


def ediff1d(ary, to_end=None, to_begin=None):
    """``np.ediff1d``: differences of the flattened array, with optional ends."""
    if not _has_tensor(ary, to_end, to_begin):
        return np.ediff1d(unbox_all(ary), unbox_all(to_end), unbox_all(to_begin))
    ary = ravel(as_array(ary))
    parts = [_slice(ary, 0, 1) - _slice(ary, 0, None, -1)]
    if to_begin is not None:
        parts.insert(0, ravel(as_array(to_begin)))
    if to_end is not None:
        parts.append(ravel(as_array(to_end)))
    return concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def _spacings(varargs, axes, shape):
    """One spacing per axis: a number (possibly traced) or a 1-D array of coordinates (constant)."""
    if not varargs:
        return [1.0] * len(axes)
    if len(varargs) == 1 and _ndim(as_array(varargs[0])) == 0:
        return [as_array(varargs[0])] * len(axes)
    if len(varargs) != len(axes):
        raise TypeError(f"gradient: {len(varargs)} spacings given for {len(axes)} axes")
    out = []
    for h, ax in zip(varargs, axes):
        h = as_array(h)
        if _ndim(h) == 0:
            out.append(h)
            continue
        if isinstance(h, Tensor):
            raise NotImplementedError("gradient: traced coordinate arrays are not supported (a traced scalar spacing is)")
        h = np.asarray(h, dtype=np.float64)
        if h.ndim != 1:
            raise ValueError("gradient: distances must be either scalars or 1d")
        if len(h) != shape[ax]:
            raise ValueError(f"gradient: {len(h)} coordinates given for an axis of length {shape[ax]}")
        dx = np.diff(h)
        out.append(dx[0] if np.all(dx == dx[0]) else dx)
    return out


def _shaped(c, axis, ndim):
    """A 1-D coefficient along ``axis``, shaped to broadcast against the array."""
    return np.reshape(c, tuple(-1 if i == axis else 1 for i in range(ndim)))


def _gradient_axis(f, axis, h, edge_order):
    nd = _ndim(f)
    n = shape_of(f)[axis]
    if n < edge_order + 1:
        raise ValueError("Shape of array too small to calculate a numerical gradient, "
                         "at least (edge_order + 1) elements are required.")

    def s(start, stop=None):
        return _slice(f, axis, start, stop)

    if np.ndim(value_of(h)) == 0:
        interior = (s(2) - s(None, -2)) / (2.0 * h)
        if edge_order == 1:
            first = (s(1, 2) - s(0, 1)) / h
            last = (s(-1) - s(-2, -1)) / h
        else:
            first = (-1.5 * s(0, 1) + 2.0 * s(1, 2) - 0.5 * s(2, 3)) / h
            last = (0.5 * s(-3, -2) - 2.0 * s(-2, -1) + 1.5 * s(-1)) / h
    else:
        # Second-order differences on an uneven grid: the quadratic through three neighbours.
        dx1, dx2 = h[:-1], h[1:]
        a = -dx2 / (dx1 * (dx1 + dx2))
        b = (dx2 - dx1) / (dx1 * dx2)
        c = dx1 / (dx2 * (dx1 + dx2))
        interior = (_shaped(a, axis, nd) * s(None, -2) + _shaped(b, axis, nd) * s(1, -1)
                    + _shaped(c, axis, nd) * s(2))
        if edge_order == 1:
            first = (s(1, 2) - s(0, 1)) / h[0]
            last = (s(-1) - s(-2, -1)) / h[-1]
        else:
            d1, d2 = h[0], h[1]
            first = (-(2.0 * d1 + d2) / (d1 * (d1 + d2)) * s(0, 1) + (d1 + d2) / (d1 * d2) * s(1, 2)
                     - d1 / (d2 * (d1 + d2)) * s(2, 3))
            d1, d2 = h[-2], h[-1]
            last = (d2 / (d1 * (d1 + d2)) * s(-3, -2) - (d2 + d1) / (d1 * d2) * s(-2, -1)
                    + (2.0 * d2 + d1) / (d2 * (d1 + d2)) * s(-1))
    return concatenate([first, interior, last], axis=axis)


def gradient(f, *varargs, axis=None, edge_order=1):
    """``np.gradient``: central differences inside, one-sided at the ends (``edge_order`` 1 or 2)."""
    if not _has_tensor(f, *varargs):
        return np.gradient(unbox_all(f), *unbox_all(list(varargs)), axis=axis, edge_order=edge_order)
    f = as_array(f)
    if np.asarray(value_of(f)).dtype.kind not in "fc":
        f = _astype_entry(f, np.float64)
    nd = _ndim(f)
    if axis is None:
        axes = tuple(range(nd))
    else:
        items = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        axes = tuple(_axis(ax, nd, "gradient: axis") for ax in items)
        if len(set(axes)) != len(axes):
            raise ValueError(f"gradient: repeated axis in {axis!r}")
    if edge_order not in (1, 2):
        raise ValueError("'edge_order' greater than 2 not supported")
    spacings = _spacings(varargs, axes, shape_of(f))
    out = tuple(_gradient_axis(f, ax, h, edge_order) for ax, h in zip(axes, spacings))
    return out[0] if len(out) == 1 else out


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """``np.trapezoid``: the trapezoidal rule along ``axis``; ``y``, ``x`` and ``dx`` may be traced."""
    if not _has_tensor(y, x, dx):
        return np.trapezoid(unbox_all(y), unbox_all(x), unbox_all(dx), axis)
    y = as_array(y)
    nd = _ndim(y)
    axis = _axis(axis, nd, "trapezoid: axis")
    if x is None:
        d = as_array(dx)
    else:
        x = as_array(x)
        if _ndim(x) == 1:
            d = reshape(_slice(x, 0, 1) - _slice(x, 0, None, -1),
                        tuple(-1 if i == axis else 1 for i in range(nd)))
        else:
            d = _slice(x, axis, 1) - _slice(x, axis, None, -1)
    return sum(d * (_slice(y, axis, 1) + _slice(y, axis, None, -1)) / 2.0, axis=axis)


# --------------------------------------------------------------------------- interpolation

def interp(x, xp, fp, left=None, right=None, period=None):
    """``np.interp``: piecewise-linear interpolation, differentiable in ``x``, ``xp``, ``fp``, ``left``, ``right``.

    At a knot the derivative in ``x`` is the slope of the interval to its right
    (of the last interval at the last knot); outside ``[xp[0], xp[-1]]`` it is 0.
    """
    if holds_traced([period]):
        raise NotImplementedError("interp: a traced period is not supported (the knots wrap at it)")
    if not _has_tensor(x, xp, fp, left, right):
        return np.interp(unbox_all(x), unbox_all(xp), unbox_all(fp), unbox_all(left), unbox_all(right),
                         unbox_all(period))
    x, xp, fp = (a if isinstance(a, Tensor) else np.asarray(a) for a in map(as_array, (x, xp, fp)))
    if _ndim(xp) != 1 or _ndim(fp) != 1 or shape_of(xp) != shape_of(fp):
        raise ValueError(f"interp: xp and fp must be 1-D of one length, got shapes {shape_of(xp)} and {shape_of(fp)}")
    if shape_of(xp)[0] == 0:
        raise ValueError("interp: array of sample points is empty")
    if period is not None:
        period = unbox_all(period)
        if period == 0:
            raise ValueError("interp: period must be a non-zero value")
        period = builtins.abs(period)
        left = right = None
        x = x % period
        xp = xp % period
        order = np.argsort(np.asarray(value_of(xp)), kind="stable")
        xp, fp = xp[order], fp[order]
        # One knot beyond each end, as NumPy wraps them.
        xp = concatenate([xp[-1:] - period, xp, xp[:1] + period])
        fp = concatenate([fp[-1:], fp, fp[:1]])
    xv, xpv = np.asarray(value_of(x)), np.asarray(value_of(xp))
    n = xpv.shape[0]
    if n == 1:
        inside = fp[0] + 0.0 * x
    else:
        i = np.clip(np.searchsorted(xpv, xv, side="right") - 1, 0, n - 2)
        at_end = xv == xpv[-1]
        # Anchored at the left knot, as NumPy computes it; at the last knot at that knot itself.
        anchor = np.where(at_end, i + 1, i)
        slope = (fp[i + 1] - fp[i]) / (xp[i + 1] - xp[i])
        inside = fp[anchor] + (x - xp[anchor]) * slope
    below = xv < xpv[0]
    above = xv > xpv[-1]
    result = where(below, fp[0] if left is None else as_array(left), inside)
    result = where(above, fp[-1] if right is None else as_array(right), result)
    # NumPy's result is float64, or complex128 for complex fp.
    dtype = np.complex128 if np.asarray(value_of(result)).dtype.kind == "c" else np.float64
    return result if np.asarray(value_of(result)).dtype == dtype else _astype_entry(result, dtype)


__all__ = ["full", "full_like", "linspace", "logspace", "geomspace", "meshgrid", "unwrap", "diff", "ediff1d", "gradient",
           "trapezoid", "interp"]
