"""Order statistics and covariances: median, quantile, percentile (and their NaN-ignoring kin), cov, corrcoef.

A quantile is a gather from the sorted entries, interpolated between two
neighbours: its derivative sends the cotangent to the entries that sit at
those sorted positions (through the permutation of a stable sort, so ties go
to the first of the tied entries), weighted by the interpolation; a traced
``q`` gets the slope between the two neighbours.  The interpolation methods
are NumPy's ``linear`` (the default), ``lower``, ``higher``, ``nearest`` and
``midpoint``; the others raise ``NotImplementedError``.

A slice with a NaN (for the ``nan`` functions, a slice of NaNs only) has a NaN
result, as in NumPy, and its derivative goes to its NaNs, as PyTorch's does:
``quantile`` to the last NaN of the slice, ``nanquantile`` to the first,
``median`` along an axis to the first, and over the whole array shared equally
among them.
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import Tensor, shape_of, value_of
from nablab.autodiff.dispatch import holds_traced, unbox_all
from nablab.numpy.indexing import diag, sort, take_along_axis
from nablab.numpy.reductions import _reduced_shape, _to_last, average, normalize_axis, sum as sum_
from nablab.numpy.shape import _ndim, array, as_array, concatenate, reshape, squeeze, transpose
from nablab.numpy.ufuncs import _astype_entry, _is_complex, clip, conj, real, sqrt, where

_METHODS = ("linear", "lower", "higher", "nearest", "midpoint")


def _sorted_slices(a, axis):
    """The entries of each slice along ``axis`` sorted, as the last axis (NaNs at the end)."""
    a = as_array(a)
    if np.asarray(value_of(a)).dtype.kind not in "fc":
        a = _astype_entry(a, np.float64)
    y = _to_last(a, axis)
    return sort(y, axis=-1), shape_of(a)


def _gather(s, index):
    """``s[..., index]`` for ``index`` of shape ``q_shape + s.shape[:-1]`` (a constant)."""
    lead = index.ndim - (_ndim(s) - 1)
    s = reshape(s, (1,) * lead + shape_of(s))
    return take_along_axis(s, index[..., None], axis=-1)[..., 0]


def _lerp(a, b, t):
    # NumPy's form: exact at both ends and monotone in t.
    diff = b - a
    upper = np.asarray(value_of(t)) >= 0.5
    return where(upper, b - diff * (1 - t), a + diff * t)


def _quantile(a, q, axis, method, keepdims, ignore_nan, who):
    if method not in _METHODS:
        raise NotImplementedError(f"{who}: method={method!r} is not supported; use one of {_METHODS}")
    q = as_array(q)
    qv = np.asarray(value_of(q))
    if qv.dtype.kind not in "fiu" or not ((qv >= 0) & (qv <= 1)).all():
        raise ValueError(f"{who}: quantiles must be in the range [0, 1], got {qv}")
    s, shape = _sorted_slices(a, axis)
    sv = np.asarray(value_of(s))
    size = sv.shape[-1]
    if size == 0:
        raise ValueError(f"{who}: cannot take a quantile of an empty slice")
    nan = np.isnan(sv)
    sorted_s = s
    if nan.any():
        # NaNs become 0 (their slices' results are set to NaN below, or never reach them): a NaN
        # gathered into an interpolation would otherwise poison the derivatives as 0 * NaN.
        s = where(nan, 0.0, s)
    # The number of entries that count in each slice (all of them, unless NaNs are ignored).
    n = (~nan).sum(axis=-1) if ignore_nan else np.full(sv.shape[:-1], size)
    q_b = reshape(q, qv.shape + (1,) * (sv.ndim - 1)) if isinstance(q, Tensor) else qv.reshape(qv.shape + (1,) * (sv.ndim - 1))
    top = np.maximum(n - 1, 0)
    virtual = q_b * top
    vv = np.asarray(value_of(virtual))
    lo = np.clip(np.floor(vv), 0, top).astype(np.intp)
    hi = np.clip(np.ceil(vv), 0, top).astype(np.intp)
    if method == "lower":
        result = _gather(s, lo)
    elif method == "higher":
        result = _gather(s, hi)
    elif method == "nearest":
        result = _gather(s, np.clip(np.around(vv), 0, top).astype(np.intp))
    elif method == "midpoint":
        result = _lerp(_gather(s, lo), _gather(s, hi), np.where(lo == hi, 0.0, 0.5))
    else:
        gamma = virtual - lo
        if not isinstance(gamma, Tensor):
            gamma = gamma.astype(np.asarray(value_of(real(s))).dtype)  # NumPy interpolates in a's dtype
        result = _lerp(_gather(s, lo), _gather(s, hi), gamma)
    # A slice with a NaN (or, ignoring NaNs, with nothing else) has a NaN quantile, as in NumPy: one
    # of its NaNs, which gets the derivative, as in PyTorch (the last of the sorted slice, or with
    # nothing but NaNs its first).
    undefined = (n == 0) if ignore_nan else nan[..., -1]
    if undefined.any():
        nan_entry = _gather(sorted_s, np.full(vv.shape, 0 if ignore_nan else size - 1))
        result = where(np.broadcast_to(undefined, shape_of(result)), nan_entry, result)
    out_shape = qv.shape + _reduced_shape(shape, axis, keepdims)
    return reshape(result, out_shape) if shape_of(result) != out_shape else result


def _hundredths(q):
    q = as_array(q)
    return q / 100 if isinstance(q, Tensor) else np.true_divide(unbox_all(q), 100)


def _no_extras(who, out, weights=None, interpolation=None):
    if out is not None:
        raise TypeError(f"{who}(..., out=...) is not supported; use the returned value")
    if weights is not None:
        raise NotImplementedError(f"{who}(..., weights=...) is not supported")
    if interpolation is not None:
        raise TypeError(f"{who}: interpolation= was renamed method= in NumPy")


def _axis(axis, a):
    if isinstance(axis, list):
        axis = tuple(axis)
    if axis is not None:
        normalize_axis(axis, len(shape_of(as_array(a))))
    return axis


def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
             weights=None, interpolation=None):
    """``np.quantile``; differentiable in ``a`` and in ``q``."""
    _no_extras("quantile", out, weights, interpolation)
    return _quantile(a, q, _axis(axis, a), method, keepdims, False, "quantile")


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
               weights=None, interpolation=None):
    """``np.percentile``: ``quantile(a, q / 100)``."""
    _no_extras("percentile", out, weights, interpolation)
    return _quantile(a, _hundredths(q), _axis(axis, a), method, keepdims, False, "percentile")


def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
                weights=None, interpolation=None):
    """``np.nanquantile``: quantiles of the entries that are not NaN."""
    _no_extras("nanquantile", out, weights, interpolation)
    return _quantile(a, q, _axis(axis, a), method, bool(keepdims), True, "nanquantile")


def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
                  weights=None, interpolation=None):
    """``np.nanpercentile``: ``nanquantile(a, q / 100)``."""
    _no_extras("nanpercentile", out, weights, interpolation)
    return _quantile(a, _hundredths(q), _axis(axis, a), method, bool(keepdims), True, "nanpercentile")


def _median(a, axis, keepdims, ignore_nan):
    s, shape = _sorted_slices(a, axis)
    sv = np.asarray(value_of(s))
    if sv.shape[-1] == 0:
        raise ValueError("median: cannot take the median of an empty slice")
    nan = np.isnan(sv)
    sorted_s = s
    if nan.any():
        s = where(nan, 0.0, s)  # as in _quantile
    n = (~nan).sum(axis=-1) if ignore_nan else np.full(sv.shape[:-1], sv.shape[-1])
    low, high = np.maximum((n - 1) // 2, 0), np.maximum(n // 2, 0)
    result = (_gather(s, low) + _gather(s, high)) / 2
    undefined = (n == 0) if ignore_nan else nan[..., -1]
    if undefined.any():
        # The median of a slice with a NaN is NaN, and its derivative goes to the NaNs, as in PyTorch:
        # over the whole array shared among them, along an axis to the first (sorted NaNs keep their order).
        if axis is None:
            count = int(nan.sum())  # a Python int keeps float32 float32
            nan_entry = sum_(where(nan, sorted_s, 0.0), axis=-1) / count
        else:
            nan_entry = _gather(sorted_s, np.minimum((~nan).sum(axis=-1), sv.shape[-1] - 1))
        result = where(undefined, nan_entry, result)
    out_shape = _reduced_shape(shape, axis, keepdims)
    return reshape(result, out_shape) if shape_of(result) != out_shape else result


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """``np.median``: the middle entry, or the mean of the two middle entries."""
    _no_extras("median", out)
    return _median(a, _axis(axis, a), keepdims, False)


def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """``np.nanmedian``: the median of the entries that are not NaN."""
    _no_extras("nanmedian", out)
    return _median(a, _axis(axis, a), bool(keepdims), True)


# --------------------------------------------------------------------------- covariance

def _rows(x, rowvar, dtype):
    x = array(as_array(x), ndmin=2, dtype=dtype, copy=False)
    if _ndim(x) > 2:
        raise ValueError(f"cov: m has more than 2 dimensions (shape {shape_of(x)})")
    if not rowvar and shape_of(x)[0] != 1:
        x = transpose(x)
    return x


def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    """``np.cov``: differentiable in ``m``, ``y`` and ``aweights`` (``fweights`` are integer counts)."""
    from nablab.numpy.products import matmul
    if ddof is not None and ddof != int(ddof):
        raise ValueError("cov: ddof must be an integer")
    x = _rows(m, rowvar, dtype)
    if y is not None:
        x = concatenate([x, _rows(y, rowvar, dtype)], axis=0)
    # As NumPy: at least float64 (complex128 for complex input).
    x = _astype_entry(x, np.result_type(np.asarray(value_of(x)).dtype, np.float64))
    if ddof is None:
        ddof = 0 if bias else 1
    n = shape_of(x)[1]
    w = None
    if fweights is not None:
        if holds_traced([fweights]):
            raise TypeError("cov: fweights are integer counts and cannot be traced; use aweights for "
                            "weights to differentiate")
        f = np.asarray(unbox_all(fweights))
        if f.ndim != 1 or f.shape[0] != n or not np.all(f == np.around(f)) or np.any(f < 0):
            raise ValueError(f"cov: fweights must be {n} non-negative integers")
        w = f.astype(np.float64)
    if aweights is not None:
        aw = as_array(aweights)
        awv = np.asarray(value_of(aw))
        if awv.ndim != 1 or awv.shape[0] != n or np.any(awv < 0):
            raise ValueError(f"cov: aweights must be {n} non-negative numbers")
        w = aw if w is None else w * aw
    avg, w_sum = average(x, axis=1, weights=w, returned=True)
    w_sum = w_sum[0]
    if w is None:
        fact = n - ddof
    elif ddof == 0:
        fact = w_sum
    elif aweights is None:
        fact = w_sum - ddof
    else:
        fact = w_sum - ddof * (w * as_array(aweights)).sum() / w_sum
    if np.asarray(value_of(fact)) <= 0:
        fact = 0.0  # NumPy warns and divides by zero (inf/nan entries)
    centred = x - reshape(avg, (-1, 1))
    weighted = centred if w is None else centred * w
    c = matmul(centred, transpose(conj(weighted) if _is_complex(weighted) else weighted))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = c / fact
    return squeeze(c)


def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """``np.corrcoef``: ``cov`` divided by the outer product of the standard deviations, clipped to [-1, 1]."""
    c = cov(x, y, rowvar, dtype=dtype)
    if _ndim(c) == 0:
        return c / c
    d = real(diag(c))
    std = sqrt(d)
    c = c / reshape(std, (-1, 1)) / reshape(std, (1, -1))
    if _is_complex(c):
        from nablab.numpy.ufuncs import imag
        return clip(real(c), -1, 1) + 1j * clip(imag(c), -1, 1)
    return clip(c, -1, 1)


__all__ = ["quantile", "percentile", "nanquantile", "nanpercentile", "median", "nanmedian", "cov",
           "corrcoef"]
