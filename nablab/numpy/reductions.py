"""Reductions: sums, products, means, variances, extremes and cumulative sums along axes.

Conventions where the derivative is not unique:

- ``max`` / ``min`` split the gradient equally among the entries that attain
  the extreme (so a tie of two gives each half), as PyTorch's ``amax`` does; a
  NaN is the extreme of its slice and gets the whole gradient.
- ``prod`` and ``cumprod`` are exact at zeros, to every order: the derivative
  with respect to a zero entry is the product of the others, and it vanishes
  when two or more entries are zero.  ``prod``'s derivative is the product of
  the other entries at infinities and NaNs too (``prod([inf, 2])``:
  ``(2, inf)``, where the rule ``prod / x`` would give ``inf / inf``; PyTorch's
  ``prod`` divides when no entry is zero, and gives NaN there): where an entry
  is 0, infinite or NaN it computes the products of the entries before and
  after each one, from multiplications only.  So does ``cumprod``
  (``cumprod([inf, 2])``: ``(3, inf)``, was ``(nan, inf)``; PyTorch's
  ``cumprod`` divides there too): where an entry is 0, infinite or NaN its
  rules run the recurrences of a chain of multiplications, ``s_i = g_i +
  x_{i+1} s_{i+1}`` times ``cumprod(x)_{i-1}`` in reverse mode, as linear scans
  of multiplications and additions.
- ``std`` has derivative 0 where the variance is exactly 0 (a single entry,
  or all entries equal): the subgradient of smallest norm, and the exact
  derivative in the single-entry case, where ``std`` is identically 0.
- ``nanmean`` of an all-NaN slice, and ``nanvar``/``nanstd`` of a slice with
  no more numbers than ``ddof`` (an all-NaN one for any ``ddof >= 0``), are
  NaN, as in NumPy, and so is their derivative, whatever the cotangent: a
  count of 0 divides (PyTorch's ``nanmean`` and ``var`` divide by it too).  It
  goes to the slice's numbers, or to an all-NaN slice's NaNs; the other NaNs
  get 0.

Complex inputs follow :mod:`nablab.numpy.ufuncs` (no conjugation in a VJP).
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab.autodiff.core import Tensor, any_entry, plain_value, primitive, raw_value_of, shape_of, value_of
from nablab.autodiff.dispatch import unbox_all
from nablab.numpy.rearrange import flip
from nablab.numpy.shape import _slice, as_array, broadcast_to, concatenate, ravel, reshape, transpose
from nablab.numpy.ufuncs import (_astype_entry, _is_complex, conj, maximum, minimum, negative,
                                 real, sqrt, where)


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
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate value in axis {tuple(axis)}")
    return tuple(out)


def expand_reduced(g, shape, axis, keepdims):
    """Reshape a reduced result so it broadcasts against the input of shape ``shape``."""
    if keepdims:
        return g
    axes = normalize_axis(axis, len(shape))
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    return reshape(g, tuple(kept))


def _spread(g, x, axis, keepdims):
    """A reduced value broadcast back to the full shape of ``x``."""
    shape = shape_of(x)
    return broadcast_to(expand_reduced(g, shape, axis, keepdims), shape)


def _count(shape, axis):
    return int(np.prod([shape[a] for a in normalize_axis(axis, len(shape))]))


def _dtype(x):
    return np.asarray(raw_value_of(x)).dtype  # the dtype only: raw_value_of also sees through vmap's boxes


def _as_count(count, total):
    """An array of counts in the real dtype of ``total`` (so a float32 mean stays float32)."""
    if type(count) is int:
        return count  # a Python int takes the dtype of what it divides
    kind = _dtype(total).kind
    return np.asarray(count).astype(_dtype(real(total))) if kind in "fc" else count


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"{name}(..., out=...) is not supported; use the returned value")


def _axis_arg(axis, x=None):
    """``axis`` as NumPy's functions take it (a list becomes a tuple), checked against ``x``'s dimensions."""
    if isinstance(axis, list):
        axis = tuple(axis)
    if x is not None and axis is not None:
        normalize_axis(axis, len(shape_of(x)))
    return axis


def _prepare(a, dtype, where_mask, fill):
    """``a`` as an array, cast to ``dtype``, with the entries outside ``where`` set to ``fill``."""
    a = as_array(a)
    if dtype is not None:
        a = _astype_entry(a, dtype)
    if where_mask is not None and where_mask is not True:
        mask = np.asarray(unbox_all(where_mask), dtype=bool)
        a = where(mask, a, fill)
    return a


# --------------------------------------------------------------------------- sum and mean

def _sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


_sum_p = primitive(_sum, name="sum", saves_values=False)
_sum_p.defvjp(lambda g, ans, x, axis=None, keepdims=False: _spread(g, x, axis, keepdims))
_sum_p.defjvp(lambda t, ans, x, axis=None, keepdims=False: _sum_p(t, axis=axis, keepdims=keepdims))


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """``np.sum``; ``dtype`` casts the input first, ``initial`` is added, ``where`` masks entries."""
    if dtype is None and out is None and where is None and initial is None and type(axis) is not list:
        # The common call (every broadcasting VJP makes one): NumPy itself checks the axes.
        return _sum_p(as_array(a), axis=axis, keepdims=bool(keepdims))
    _no_out("sum", out)
    a = _prepare(a, dtype, where, 0)
    result = _sum_p(a, axis=_axis_arg(axis, a), keepdims=bool(keepdims))
    return result if initial is None else result + initial


def _mask_count(shape, axis, where_mask, keepdims):
    if where_mask is None or where_mask is True:
        return _count(shape, axis)
    mask = np.broadcast_to(np.asarray(unbox_all(where_mask), dtype=bool), shape)
    return np.sum(mask, axis=axis, keepdims=keepdims)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """``np.mean``; ``where`` averages over the selected entries only."""
    _no_out("mean", out)
    a = as_array(a)
    axis = _axis_arg(axis)
    count = _mask_count(shape_of(a), axis, where, keepdims)
    total = sum(a, axis=axis, dtype=dtype, keepdims=keepdims, where=where)
    return total / _as_count(count, total)


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """``np.average``: differentiable in ``a`` and in ``weights``; ``returned`` adds the sum of weights."""
    a = as_array(a)
    axis = _axis_arg(axis)
    shape = shape_of(a)
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        scale = np.asarray(_count(shape, axis), dtype=np.result_type(value_of(avg), np.float64))
        return (avg, np.broadcast_to(scale, shape_of(avg))) if returned else avg
    w = as_array(weights)
    wshape = shape_of(w)
    if wshape != shape:
        if axis is None:
            raise TypeError("average: axis must be given when the shapes of a and weights differ")
        axes = normalize_axis(axis, len(shape))
        if wshape != tuple(shape[ax] for ax in axes):
            raise ValueError(f"average: weights of shape {wshape} do not fit a of shape {shape} "
                             f"along axis {axis}")
        # The weights' axes in the order of a's axes, broadcast against a.
        w = transpose(w, tuple(np.argsort(axes))) if len(axes) > 1 else w
        w = reshape(w, tuple(d if i in axes else 1 for i, d in enumerate(shape)))
    scale = sum(broadcast_to(w, shape), axis=axis, keepdims=keepdims)
    if np.any(np.asarray(value_of(scale)) == 0):
        raise ZeroDivisionError("average: weights sum to zero, can't be normalized")
    avg = sum(a * w, axis=axis, keepdims=keepdims) / scale
    if returned:
        return avg, broadcast_to(scale, shape_of(avg)) if shape_of(scale) != shape_of(avg) else scale
    return avg


# --------------------------------------------------------------------------- variance

def _var_ddof(name, out, mean, ddof, correction):
    _no_out(name, out)
    if mean is not None:
        raise NotImplementedError(f"{name}(..., mean=...) is not supported; let {name} compute the mean")
    return ddof if correction is None else correction


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Variance with ``ddof`` (``|x - mean|^2`` for complex input, as NumPy); ``where`` masks entries."""
    ddof = _var_ddof("var", out, mean, ddof, correction)
    a = as_array(a)
    if dtype is not None:
        a = _astype_entry(a, dtype)
    return _var(a, _axis_arg(axis), ddof, keepdims, where)


def _var(a, axis, ddof, keepdims, where_mask, undefined=None):
    """The variance of the entries ``where_mask`` selects; ``undefined`` (a mask of the slices, their
    axes kept) makes a slice's count NaN, so that its variance is NaN and so is its derivative for
    every entry selected, whatever the cotangent."""
    count = _mask_count(shape_of(a), axis, where_mask, True)
    if where_mask is not None and where_mask is not True:
        # Masked entries set to 0 first, so that a NaN there cannot reach the gradient as 0 * NaN.
        a = where_fill(a, where_mask, 0)
    centre = sum(a, axis=axis, keepdims=True, where=where_mask)
    count = _as_count(count, centre)
    if undefined is not None:
        count = np.where(undefined, np.nan, count)
    centre = centre / count
    centred = a - centre
    sq = real(centred * conj(centred)) if _is_complex(centred) else centred * centred
    total = sum(sq, axis=axis, keepdims=keepdims, where=where_mask)
    if not keepdims and not np.isscalar(count):
        count = np.reshape(count, shape_of(total))
    # NumPy's divisor is max(count - ddof, 0): with ddof at or above the count the variance is inf (NaN for
    # equal entries), not the sum divided by a negative number
    divisor = count - ddof
    if isinstance(divisor, np.ndarray):
        return total / np.maximum(divisor, 0, dtype=divisor.dtype)
    return total / (divisor if divisor > 0 else 0)  # a Python number stays one (float32 stays float32)


def _safe_sqrt(v):
    # sqrt with derivative 0 (to every order) where v is exactly 0.
    zero = plain_value(v) == 0  # batched inside vmap
    if not any_entry(zero):
        return sqrt(v)
    return where(zero, 0.0, sqrt(where(zero, 1.0, v)))


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Standard deviation, ``sqrt(var)``; derivative 0 where the variance is exactly 0."""
    return _safe_sqrt(var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                          where=where, mean=mean, correction=correction))


# --------------------------------------------------------------------------- extremes

def _extreme_mask(x, ans, axis, keepdims):
    """Weights sharing the gradient among the entries equal to the extreme (or NaN in a NaN slice)."""
    xv = plain_value(x)  # inside vmap: batched boxes, and the mask below is batched too
    av = plain_value(ans)
    if not keepdims:
        axes = normalize_axis(axis, xv.ndim)
        av = av.reshape([1 if i in axes else d for i, d in enumerate(xv.shape)])
    mask = (xv == av) | (np.isnan(xv) & np.isnan(av))
    mask = mask.astype(xv.dtype if xv.dtype.kind == "f" else np.float64)
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
    """``np.max``; ties share the gradient equally (a tie with ``initial`` gives the entries half)."""
    _no_out("max", out)
    a = as_array(a)
    if where is not None and where is not True:
        if initial is None:
            raise ValueError("max: reduction with where= needs an initial value")
        a = where_fill(a, where, -np.inf)
    result = _max_p(a, axis=_axis_arg(axis, a), keepdims=bool(keepdims))
    return result if initial is None else maximum(result, as_array(initial))


def min(a, axis=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """``np.min``; ties share the gradient equally (a tie with ``initial`` gives the entries half)."""
    _no_out("min", out)
    a = as_array(a)
    if where is not None and where is not True:
        if initial is None:
            raise ValueError("min: reduction with where= needs an initial value")
        a = where_fill(a, where, np.inf)
    result = negative(_max_p(negative(a), axis=_axis_arg(axis, a), keepdims=bool(keepdims)))
    return result if initial is None else minimum(result, as_array(initial))


amax, amin = max, min


def where_fill(a, mask, fill):
    """``a`` with the entries outside the (constant) ``mask`` replaced by ``fill``."""
    return where(np.asarray(unbox_all(mask), dtype=bool), a, fill)


def ptp(a, axis=None, out=None, keepdims=False):
    """``np.ptp``: ``max - min`` along ``axis``."""
    _no_out("ptp", out)
    a = as_array(a)
    return max(a, axis=axis, keepdims=keepdims) - min(a, axis=axis, keepdims=keepdims)


# --------------------------------------------------------------------------- products

def _prod(x, axis=None, keepdims=False):
    return np.prod(x, axis=axis, keepdims=keepdims)


# Used only where every entry is finite and nonzero (see prod): d prod / dx_i = prod / x_i.
_prod_p = primitive(_prod, name="prod")
_prod_p.defvjp(lambda g, ans, x, axis=None, keepdims=False: _spread(g * ans, x, axis, keepdims) / x)
_prod_p.defjvp(lambda t, ans, x, axis=None, keepdims=False:
               ans * _sum_p(t / x, axis=axis, keepdims=keepdims))


def _to_last(x, axis):
    """``x`` with the axes ``axis`` moved to the end and merged into one."""
    shape = shape_of(x)
    axes = normalize_axis(axis, len(shape))
    rest = [i for i in range(len(shape)) if i not in axes]
    x = transpose(x, tuple(rest + list(axes))) if rest + list(axes) != list(range(len(shape))) else x
    return reshape(x, tuple(shape[i] for i in rest) + (_count(shape, axes),))


def _reduced_shape(shape, axis, keepdims):
    axes = normalize_axis(axis, len(shape))
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _others(x, axis):
    """For each entry, the product of the other entries of its slice along ``axis``: the product of
    those before it times that of those after it, from multiplications only (so exact at 0, inf
    and NaN, and to every order)."""
    shape = shape_of(x)
    axes = normalize_axis(axis, len(shape))
    order = [i for i in range(len(shape)) if i not in axes] + list(axes)
    y = _to_last(x, axes)
    last, n = len(shape_of(y)) - 1, shape_of(y)[-1]
    ones = np.ones(shape_of(y)[:-1] + (1,), _dtype(y))
    before = _scan_prod(concatenate([ones, _slice(y, last, 0, n - 1)], axis=last), last)
    after = flip(_scan_prod(flip(concatenate([_slice(y, last, 1, None), ones], axis=last), last), last), last)
    both = reshape(before * after, tuple(shape[i] for i in order))
    return transpose(both, tuple(np.argsort(order))) if order != list(range(len(shape))) else both


# Used where an entry is 0, inf or NaN (see prod): d prod / dx_i is the product of the others.
_exact_prod_p = primitive(_prod, name="prod_exact")
_exact_prod_p.defvjp(lambda g, ans, x, axis=None, keepdims=False: _spread(g, x, axis, keepdims) * _others(x, axis))
_exact_prod_p.defjvp(lambda t, ans, x, axis=None, keepdims=False:
                     _sum_p(t * _others(x, axis), axis=axis, keepdims=keepdims))


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """``np.prod``; exact derivatives at zeros, infinities and NaNs (see the module's notes)."""
    _no_out("prod", out)
    a = _prepare(a, dtype, where, 1)
    axis = _axis_arg(axis, a)
    keepdims = bool(keepdims)
    result = _quotient_or_exact(a, _prod_p, _exact_prod_p, axis=axis, keepdims=keepdims)
    return result if initial is None else result * initial


def _quotient_or_exact(a, quotient, exact, **kwargs):
    """``quotient(a, **kwargs)``, a product whose rules divide by the entries, or ``exact(a, **kwargs)``, whose rules
    only multiply, where dividing would be wrong: when ``a`` is traced and an entry is 0, inf or NaN, or the
    products under- or overflowed (:func:`_out_of_normal_range`)."""
    if not isinstance(a, Tensor):
        return quotient(a, **kwargs)
    value = plain_value(a)  # batched inside vmap
    if any_entry((value == 0) | ~np.isfinite(value)):
        return exact(a, **kwargs)
    result = quotient(a, **kwargs)
    return exact(a, **kwargs) if _out_of_normal_range(result) else result


def _out_of_normal_range(result):
    """Whether a product of finite nonzero entries under- or overflowed (0, inf, or a subnormal with few bits
    left): its derivative ``g * product / x`` would then be wrong (prod([1e-200, 1e-200, 1e200]): 0 / 1e-200 = 0
    for the first entry, where the product of the others is 1), so the exact rules must run."""
    value = np.abs(raw_value_of(result))
    if not np.issubdtype(value.dtype, np.inexact):
        return False
    return bool(np.any((value < np.finfo(value.dtype).tiny) | ~np.isfinite(value)))


# --------------------------------------------------------------------------- cumulative

def _cumsum(x, axis):
    return np.cumsum(x, axis=axis)


def _reverse_cumsum(g, axis):
    return flip(_cumsum_p(flip(g, axis), axis), axis)


_cumsum_p = primitive(_cumsum, name="cumsum", saves_values=False)
_cumsum_p.defvjp(lambda g, ans, x, axis: _reverse_cumsum(g, axis))
_cumsum_p.defjvp(lambda t, ans, x, axis: _cumsum_p(t, axis))


def _cumulative_input(a, axis, dtype, who):
    a = as_array(a)
    if dtype is not None:
        a = _astype_entry(a, dtype)
    if axis is None:
        return ravel(a), 0
    n = len(shape_of(a))
    if n == 0:
        a, n = reshape(a, (1,)), 1
    return a, normalize_axis(axis, n)[0]


def cumsum(a, axis=None, dtype=None, out=None):
    """``np.cumsum`` (of the flattened array when ``axis`` is None)."""
    _no_out("cumsum", out)
    a, axis = _cumulative_input(a, axis, dtype, "cumsum")
    return _cumsum_p(a, axis)


def _cumprod(x, axis):
    return np.cumprod(x, axis=axis)


# Used only where every entry is finite and nonzero (see cumprod): d ans_k / dx_i = ans_k / x_i for i <= k.
_cumprod_p = primitive(_cumprod, name="cumprod")
_cumprod_p.defvjp(lambda g, ans, x, axis: _reverse_cumsum(g * ans, axis) / x)
_cumprod_p.defjvp(lambda t, ans, x, axis: ans * _cumsum_p(t / x, axis))


def _scan_prod(x, axis):
    """Cumulative product along ``axis`` by doubling shifts of multiplications (exact to every order)."""
    n = shape_of(x)[axis]
    shift = 1
    while shift < n:
        ones = np.ones(tuple(shift if i == axis else d for i, d in enumerate(shape_of(x))), _dtype(x))
        x = x * concatenate([ones, _slice(x, axis, 0, n - shift)], axis=axis)
        shift *= 2
    return x


def _linear_scan(c, b, axis):
    """``u`` along ``axis`` with ``u_0 = b_0`` and ``u_k = c_{k-1} u_{k-1} + b_k`` (``c`` is one shorter
    than ``b``), by doubling shifts of multiplications and additions only: no entry is ever divided
    or multiplied by a padding, so it is exact at 0, inf and NaN, and to every order.

    After the step of shift ``s``, ``b_k`` holds the terms of ``b_{k-2s+1}, ..., b_k`` and ``c_{k-1}``
    the product ``c_{k-2s} ... c_{k-1}``, which carries ``u_{k-2s}`` to ``u_k`` (both cut at the start).
    """
    n = shape_of(b)[axis]
    shift = 1
    while shift < n:
        carried = _slice(c, axis, shift - 1, None) * _slice(b, axis, 0, n - shift)
        b = concatenate([_slice(b, axis, 0, shift), _slice(b, axis, shift, None) + carried], axis=axis)
        if 2 * shift < n:
            c = concatenate([_slice(c, axis, 0, shift),
                             _slice(c, axis, shift, None) * _slice(c, axis, 0, n - 1 - shift)], axis=axis)
        shift *= 2
    return b


def _exact_cumprod_vjp(g, ans, x, axis):
    """d/dx_i of sum_k g_k ans_k = ans_{i-1} s_i, where s_i = g_i + x_{i+1} s_{i+1} (from the end)."""
    n = shape_of(x)[axis]
    if n < 2:
        return g
    s = flip(_linear_scan(flip(_slice(x, axis, 1, None), axis), flip(g, axis), axis), axis)
    return concatenate([_slice(s, axis, 0, 1), _slice(ans, axis, 0, n - 1) * _slice(s, axis, 1, None)], axis=axis)


def _exact_cumprod_jvp(t, ans, x, axis):
    """d ans_k = x_k d ans_{k-1} + ans_{k-1} t_k (from the start)."""
    n = shape_of(x)[axis]
    if n < 2:
        return t
    b = concatenate([_slice(t, axis, 0, 1), _slice(t, axis, 1, None) * _slice(ans, axis, 0, n - 1)], axis=axis)
    return _linear_scan(_slice(x, axis, 1, None), b, axis)


# Used where an entry is 0, inf or NaN (see cumprod): d ans_k / dx_i is the product of the entries up
# to k but the i-th, and the rules above reach it by multiplications only.
_exact_cumprod_p = primitive(_cumprod, name="cumprod_exact")
_exact_cumprod_p.defvjp(_exact_cumprod_vjp)
_exact_cumprod_p.defjvp(_exact_cumprod_jvp)


def cumprod(a, axis=None, dtype=None, out=None):
    """``np.cumprod``; exact derivatives at zeros, infinities and NaNs (see the module's notes)."""
    _no_out("cumprod", out)
    a, axis = _cumulative_input(a, axis, dtype, "cumprod")
    return _quotient_or_exact(a, _cumprod_p, _exact_cumprod_p, axis=axis)


def _with_initial(result, axis, value):
    shape = list(shape_of(result))
    shape[axis] = 1
    return concatenate([np.full(shape, value, dtype=np.asarray(value_of(result)).dtype), result], axis=axis)


def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """``np.cumulative_sum``: ``cumsum`` with an optional leading 0."""
    x = as_array(x)
    if axis is None and len(shape_of(x)) > 1:
        raise ValueError("cumulative_sum: axis must be given for arrays of more than one dimension")
    result = cumsum(x, axis=axis, dtype=dtype, out=out)
    if include_initial:
        result = _with_initial(result, 0 if axis is None else normalize_axis(axis, len(shape_of(result)))[0], 0)
    return result


def cumulative_prod(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """``np.cumulative_prod``: ``cumprod`` with an optional leading 1."""
    x = as_array(x)
    if axis is None and len(shape_of(x)) > 1:
        raise ValueError("cumulative_prod: axis must be given for arrays of more than one dimension")
    result = cumprod(x, axis=axis, dtype=dtype, out=out)
    if include_initial:
        result = _with_initial(result, 0 if axis is None else normalize_axis(axis, len(shape_of(result)))[0], 1)
    return result


# --------------------------------------------------------------------------- ignoring NaNs

def _nan_mask(a):
    return np.isnan(np.asarray(value_of(a)))


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """``np.nansum``: NaNs count as 0 (and get no gradient)."""
    a = as_array(a)
    return sum(where_fill(a, ~_nan_mask(a), 0), axis=axis, dtype=dtype, out=out, keepdims=keepdims,
               initial=initial, where=where)


def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """``np.nanprod``: NaNs count as 1 (and get no gradient)."""
    a = as_array(a)
    return prod(where_fill(a, ~_nan_mask(a), 1), axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                initial=initial, where=where)


def nancumsum(a, axis=None, dtype=None, out=None):
    """``np.nancumsum``: NaNs count as 0."""
    a = as_array(a)
    return cumsum(where_fill(a, ~_nan_mask(a), 0), axis=axis, dtype=dtype, out=out)


def nancumprod(a, axis=None, dtype=None, out=None):
    """``np.nancumprod``: NaNs count as 1."""
    a = as_array(a)
    return cumprod(where_fill(a, ~_nan_mask(a), 1), axis=axis, dtype=dtype, out=out)


def _selected_numbers(a, where_mask):
    """The entries ``where_mask`` selects (broadcast to ``a``'s shape), and those of them that are not NaN."""
    selected = np.broadcast_to(True if where_mask is None else np.asarray(unbox_all(where_mask), dtype=bool),
                               shape_of(a))
    return selected, selected & ~_nan_mask(a)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """``np.nanmean``: the mean over the entries that are not NaN (NaN for an all-NaN slice, whose
    NaNs get a NaN derivative, as in PyTorch)."""
    _no_out("nanmean", out)
    a = as_array(a)
    axis = _axis_arg(axis, a)
    selected, keep = _selected_numbers(a, where)
    count = np.sum(keep, axis=axis, keepdims=True)
    if not (count == 0).any():
        return mean(a, axis=axis, dtype=dtype, keepdims=keepdims, where=keep)
    # A slice with nothing to average has the mean 0/0: the sum of its (selected) NaNs over a count
    # of NaN, so that they get NaN, not 0, whatever the cotangent (PyTorch divides its nansum's
    # gradient by the count 0).
    keep = keep | ((count == 0) & selected)
    total = sum(a, axis=axis, dtype=dtype, keepdims=keepdims, where=keep)
    count = np.where(count == 0, np.nan, count)
    return total / _as_count(count if keepdims else np.reshape(count, shape_of(total)), total)


def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
    """``np.nanvar``: the variance over the entries that are not NaN; NaN for a slice with no more of
    them than ``ddof``, as in NumPy, whose entries (an all-NaN slice's NaNs) get a NaN derivative."""
    ddof = _var_ddof("nanvar", out, mean, ddof, correction)
    a = as_array(a)
    axis = _axis_arg(axis, a)
    selected, keep = _selected_numbers(a, where)
    if dtype is not None:
        a = _astype_entry(a, dtype)
    count = np.sum(keep, axis=axis, keepdims=True)
    # NumPy's nanvar is NaN where count - ddof <= 0 (and 0 for an all-NaN slice with ddof < 0, an
    # empty sum of squares over a positive count, left so).  There the count becomes NaN, so that
    # the derivative is NaN whatever the cotangent, for the slice's numbers and, as in nanmean, for
    # an all-NaN slice's (selected) NaNs.  PyTorch, which has no nanvar, divides its var's gradient
    # by a count of 0 there: inf or NaN.
    undefined = count - ddof <= 0
    if not undefined.any():
        return _var(a, axis, ddof, keepdims, keep)
    keep = keep | ((count == 0) & undefined & selected)
    return _var(a, axis, ddof, keepdims, keep, undefined)


def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
    """``np.nanstd``: ``sqrt(nanvar)``."""
    return _safe_sqrt(nanvar(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                             where=where, mean=mean, correction=correction))


def _nan_extreme(fn, fill, a, axis, out, keepdims, initial, where_mask):
    a = as_array(a)
    nan = _nan_mask(a)
    result = fn(where_fill(a, ~nan, fill), axis=axis, out=out, keepdims=keepdims, initial=initial,
                where=where_mask)
    all_nan = np.all(nan, axis=_axis_arg(axis), keepdims=keepdims)
    return where(all_nan, np.nan, result) if np.any(all_nan) else result


def nanmax(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """``np.nanmax``: the maximum over the entries that are not NaN (NaN for an all-NaN slice)."""
    return _nan_extreme(max, -np.inf, a, axis, out, keepdims, initial, where)


def nanmin(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """``np.nanmin``: the minimum over the entries that are not NaN (NaN for an all-NaN slice)."""
    return _nan_extreme(min, np.inf, a, axis, out, keepdims, initial, where)


# --------------------------------------------------------------------------- ufunc methods

def _reduce_method(fn, name):
    def reduce(array, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
        _no_out(name, out)
        kwargs = {} if where is True else {"where": where}
        return fn(array, axis=axis, dtype=dtype, keepdims=keepdims, initial=initial, **kwargs)

    reduce.__name__ = name
    reduce.__doc__ = f"``{name}`` on tensors (``axis=0`` by default, as the ufunc method)."
    return reduce


def _extreme_reduce(fn, name):
    def reduce(array, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
        _no_out(name, out)
        a = as_array(array)
        if dtype is not None:
            a = _astype_entry(a, dtype)
        kwargs = {} if where is True else {"where": where}
        return fn(a, axis=axis, keepdims=keepdims, initial=initial, **kwargs)

    reduce.__name__ = name
    reduce.__doc__ = f"``{name}`` on tensors (``axis=0`` by default, as the ufunc method)."
    return reduce


def _accumulate_method(fn, name):
    def accumulate(array, axis=0, dtype=None, out=None):
        return fn(array, axis=axis, dtype=dtype, out=out)

    accumulate.__name__ = name
    accumulate.__doc__ = f"``{name}`` on tensors (``axis=0`` by default, as the ufunc method)."
    return accumulate


#: ``ufunc.reduce`` / ``.accumulate`` on tensors, with the ufunc methods' signature (note ``axis=0``),
#: for :func:`nablab.numpy._namespace.register_ufunc_method`.
UFUNC_METHODS = {
    (np.add, "reduce"): _reduce_method(sum, "add.reduce"),
    (np.multiply, "reduce"): _reduce_method(prod, "multiply.reduce"),
    (np.maximum, "reduce"): _extreme_reduce(max, "maximum.reduce"),
    (np.minimum, "reduce"): _extreme_reduce(min, "minimum.reduce"),
    (np.add, "accumulate"): _accumulate_method(cumsum, "add.accumulate"),
    (np.multiply, "accumulate"): _accumulate_method(cumprod, "multiply.accumulate"),
}


__all__ = [
    "sum", "mean", "average", "var", "std", "max", "min", "amax", "amin", "ptp", "prod",
    "cumsum", "cumprod", "cumulative_sum", "cumulative_prod", "nansum", "nanprod", "nancumsum",
    "nancumprod", "nanmean", "nanvar", "nanstd", "nanmax", "nanmin",
]
