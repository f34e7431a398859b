"""Elementwise functions with kinks, jumps or selections.

Absolute values and signs, extremes, clipping, remainders, floating-point
decomposition (``modf``, ``frexp``, ``ldexp``, ``copysign``, ``nextafter``),
``heaviside`` and ``nan_to_num``, and the piecewise-constant functions (rounding,
comparisons, logic), which carry no derivative.  The convention at each kink is
listed in :mod:`nablab.numpy.ufuncs`.
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import Tensor, any_entry, plain_value, primitive, raw_value_of, value_of
from nablab.autodiff.dispatch import holds_traced, nondifferentiable, unbox_all
from nablab.numpy.shape import as_array
from nablab.numpy.ufuncs_base import (
    UfuncPrimitive,
    _is_complex,
    _zeros_cotangent,
    conj,
    imag_part,
    real_part,
    ufunc_binary,
    unbroadcast,
    where,
)

# --------------------------------------------------------------------------- no derivative

floor = nondifferentiable(np.floor)
ceil = nondifferentiable(np.ceil)
rint = nondifferentiable(np.rint)
trunc = nondifferentiable(np.trunc)
fix = nondifferentiable(np.fix)
round = nondifferentiable(np.round)  # noqa: A001  (NumPy's name)
around = nondifferentiable(np.around) if hasattr(np, "around") else round
floor_divide = nondifferentiable(np.floor_divide)
isfinite = nondifferentiable(np.isfinite)
isnan = nondifferentiable(np.isnan)
isinf = nondifferentiable(np.isinf)
equal = nondifferentiable(np.equal)
not_equal = nondifferentiable(np.not_equal)
greater = nondifferentiable(np.greater)
greater_equal = nondifferentiable(np.greater_equal)
less = nondifferentiable(np.less)
less_equal = nondifferentiable(np.less_equal)
logical_and = nondifferentiable(np.logical_and)
logical_or = nondifferentiable(np.logical_or)
logical_not = nondifferentiable(np.logical_not)
logical_xor = nondifferentiable(np.logical_xor)
signbit = nondifferentiable(np.signbit)
spacing = nondifferentiable(np.spacing)

# --------------------------------------------------------------------------- absolute value and sign


def _abs_derivative(ans, x):
    # Real x: sign(x), 0 at 0.  Complex x: conj(x)/|x|, 0 at 0 (autograd's convention).
    if not _is_complex(x):
        return np.sign(value_of(x))
    zero = plain_value(ans) == 0  # batched inside vmap
    if not any_entry(zero):
        return conj(x) / ans
    return where(zero, 0.0, conj(x) / where(zero, 1.0, ans))


def _abs_jvp(t, ans, x):
    if not _is_complex(x):
        return t * np.sign(value_of(x))
    return real_part(t * _abs_derivative(ans, x))


abs = UfuncPrimitive(np.absolute, "abs")  # noqa: A001  (NumPy's name)
abs.defvjp(lambda g, ans, x: g * _abs_derivative(ans, x))
abs.defjvp(_abs_jvp)
abs.__doc__ = "|x| (the modulus of complex x); derivative sign(x), 0 at 0."
absolute = abs

fabs = UfuncPrimitive(np.fabs, "fabs")
fabs.defvjp(lambda g, ans, x: g * np.sign(value_of(x)))
fabs.defjvp(lambda t, ans, x: t * np.sign(value_of(x)))
fabs.__doc__ = "|x| for real x; derivative sign(x), 0 at 0."

_sign_real = nondifferentiable(np.sign)


def sign(x, **kwargs):
    """-1, 0 or 1 for real ``x`` (no derivative); ``x/|x|`` for complex ``x`` (0 at 0), differentiable."""
    x = as_array(x)
    if kwargs or not (_is_complex(x) and holds_traced([x])):
        return _sign_real(x, **kwargs)
    zero = plain_value(x) == 0  # batched inside vmap
    if not any_entry(zero):
        return x / abs(x)
    return where(zero, 0j, x / where(zero, 1.0, abs(x)))


# --------------------------------------------------------------------------- extremes


def _real_dtype(v):
    """The real floating type matching ``v``'s (float64 for integers), for masks and weights."""
    dtype = np.asarray(raw_value_of(v)).dtype  # the dtype only (inside vmap v may be batched)
    return np.finfo(dtype).dtype if dtype.kind in "fc" else np.dtype(np.float64)


def _selected(x, ans, y):
    # 1 where x is the result, 1/2 where x and y tie, 0 elsewhere; a nan result is x's when x is nan
    # (both get 1 when both are). The same weights serve maximum, minimum, fmax and fmin.
    xv, yv, av = value_of(x), value_of(y), value_of(ans)
    chosen = (xv == av) | (np.isnan(xv) & np.isnan(av))
    return (chosen / (1.0 + (xv == yv))).astype(_real_dtype(av))


def _extreme(np_fn, doc):
    return ufunc_binary(
        np_fn,
        lambda g, ans, x, y: g * _selected(x, ans, y), lambda g, ans, x, y: g * _selected(y, ans, x),
        lambda t, ans, x, y: t * _selected(x, ans, y), lambda t, ans, x, y: t * _selected(y, ans, x),
        doc,
    )


maximum = _extreme(np.maximum, "The larger of x and y (nan if either is); a tie splits the gradient equally.")
minimum = _extreme(np.minimum, "The smaller of x and y (nan if either is); a tie splits the gradient equally.")
fmax = _extreme(np.fmax, "The larger of x and y, ignoring a nan; a tie splits the gradient equally.")
fmin = _extreme(np.fmin, "The smaller of x and y, ignoring a nan; a tie splits the gradient equally.")

# --------------------------------------------------------------------------- clip


def _clip(x, lo, hi):
    return np.clip(x, lo, hi)


def _clip_masks(x, lo, hi):
    # clip = minimum(maximum(x, lo), hi) (also when lo > hi, as NumPy): which one each entry is.
    xv = plain_value(x)  # inside vmap: a batched box, and the masks are batched too
    lov = -np.inf if lo is None else value_of(lo)
    hiv = np.inf if hi is None else value_of(hi)
    inside = (xv >= lov) & (xv <= hiv)
    below = (xv < lov) & (lov <= hiv)
    above = np.maximum(xv, lov) > hiv
    return inside, below, above


_clip_p = primitive(_clip, name="clip")
_clip_p.defvjp(
    lambda g, ans, x, lo, hi: unbroadcast(g * _clip_masks(x, lo, hi)[0], x),
    lambda g, ans, x, lo, hi: unbroadcast(g * _clip_masks(x, lo, hi)[1], lo),
    lambda g, ans, x, lo, hi: unbroadcast(g * _clip_masks(x, lo, hi)[2], hi),
)
_clip_p.defjvp(
    lambda t, ans, x, lo, hi: t * _clip_masks(x, lo, hi)[0],
    lambda t, ans, x, lo, hi: t * _clip_masks(x, lo, hi)[1],
    lambda t, ans, x, lo, hi: t * _clip_masks(x, lo, hi)[2],
)

_NOT_GIVEN = object()


def clip(a, a_min=_NOT_GIVEN, a_max=_NOT_GIVEN, out=None, *, min=_NOT_GIVEN, max=_NOT_GIVEN, **kwargs):  # noqa: A002
    """Clamp ``a`` to ``[a_min, a_max]`` (``min=``/``max=`` also accepted; ``None`` is no bound).

    The bounds may be traced too: each entry's derivative goes to whichever of
    ``a``, ``a_min``, ``a_max`` it equals (to ``a`` on a tie).
    """
    if min is not _NOT_GIVEN:
        a_min = min
    if max is not _NOT_GIVEN:
        a_max = max
    lo = None if a_min is _NOT_GIVEN else as_array(a_min)
    hi = None if a_max is _NOT_GIVEN else as_array(a_max)
    a = as_array(a)
    if not holds_traced([a, lo, hi]):
        result = np.clip(unbox_all(a), unbox_all(lo), unbox_all(hi), out=out, **kwargs)
        return Tensor(result) if out is None and isinstance(a, Tensor) else result
    if out is not None:
        raise TypeError("clip(..., out=...) on a traced value would lose its derivative; use the result")
    if kwargs:
        raise NotImplementedError(f"clip: keyword(s) {sorted(kwargs)} are not supported on traced values")
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of a_min and a_max")
    return _clip_p(a, lo, hi)


# --------------------------------------------------------------------------- remainders


def _zeros_for_x2(g, ans, x1, x2):
    return _zeros_cotangent(g, ans, x2)



def _quotient(rounder):
    def quotient(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return rounder(value_of(x) / value_of(y))

    return quotient


_floor_q, _trunc_q = _quotient(np.floor), _quotient(np.trunc)

# x mod y = x - floor(x/y) y: derivative 1 in x and -floor(x/y) in y, away from the jumps.
mod = ufunc_binary(np.remainder,
                   lambda g, ans, x, y: g, lambda g, ans, x, y: g * -_floor_q(x, y),
                   lambda t, ans, x, y: t, lambda t, ans, x, y: t * -_floor_q(x, y),
                   "x mod y with the sign of y (Python's %); derivative 1 in x, -floor(x/y) in y.",
                   name="mod")
remainder = mod
# fmod(x, y) = x - trunc(x/y) y (C's fmod, the sign of x).
fmod = ufunc_binary(np.fmod,
                    lambda g, ans, x, y: g, lambda g, ans, x, y: g * -_trunc_q(x, y),
                    lambda t, ans, x, y: t, lambda t, ans, x, y: t * -_trunc_q(x, y),
                    "C's remainder with the sign of x; derivative 1 in x, -trunc(x/y) in y.")


def divmod(x1, x2, **kwargs):  # noqa: A001  (NumPy's name)
    """``(x1 // x2, x1 % x2)``; the quotient has no derivative."""
    return floor_divide(x1, x2, **kwargs), mod(x1, x2, **kwargs)


def _frac(x):
    return np.modf(x)[0]


_frac_p = primitive(_frac, name="modf", saves_values=False)
_frac_p.defvjp(lambda g, ans, x: g)
_frac_p.defjvp(lambda t, ans, x: t)


def modf(x, **kwargs):
    """``(fractional part, integral part)``; the fractional part has derivative 1, the other none."""
    x = as_array(x)
    if kwargs or not holds_traced([x]):
        return np.modf(unbox_all(x), **kwargs)
    return _frac_p(x), np.modf(np.asarray(value_of(x)))[1]


ldexp = UfuncPrimitive(np.ldexp, "ldexp")
ldexp.defvjp(lambda g, ans, x1, x2: unbroadcast(ldexp(g, value_of(x2)), x1))
ldexp.defjvp(lambda t, ans, x1, x2: ldexp(t, value_of(x2)))
ldexp.__doc__ = "x1 * 2**x2 for integer x2 (exact); derivative 2**x2 in x1."


def frexp(x, **kwargs):
    """``(mantissa, exponent)`` with ``x = mantissa * 2**exponent``; the mantissa has derivative 2**-exponent."""
    x = as_array(x)
    if kwargs or not holds_traced([x]):
        return np.frexp(unbox_all(x), **kwargs)
    exponent = np.frexp(np.asarray(value_of(x)))[1]
    return ldexp(x, -exponent), exponent


def _copysign_derivative(x1, x2, ans):
    # |x1| with x2's sign: +-1 by whether the signs agree, 0 at x1 == 0 (the kink of |x1|).
    v1, v2 = value_of(x1), value_of(x2)
    sign = np.where(v1 == 0, 0.0, np.where(np.signbit(v1) == np.signbit(v2), 1.0, -1.0))
    return sign.astype(_real_dtype(value_of(ans)))


copysign = ufunc_binary(
    np.copysign,
    lambda g, ans, x1, x2: g * _copysign_derivative(x1, x2, ans), _zeros_for_x2,
    lambda t, ans, x1, x2: t * _copysign_derivative(x1, x2, ans), _zeros_for_x2,
    "|x1| with the sign of x2; derivative +-1 in x1 (0 at x1 == 0), none in x2.",
)

nextafter = ufunc_binary(
    np.nextafter,
    lambda g, ans, x1, x2: g, _zeros_for_x2,
    lambda t, ans, x1, x2: t, _zeros_for_x2,
    "The float after x1 towards x2; derivative 1 in x1 (a step of one ulp), none in x2.",
)


def heaviside(x1, x2, **kwargs):
    """0 for ``x1 < 0``, ``x2`` where ``x1 == 0``, 1 for ``x1 > 0``: derivative only in ``x2``, where ``x1 == 0``."""
    x1, x2 = as_array(x1), as_array(x2)
    if kwargs or not holds_traced([x2]):
        return np.heaviside(unbox_all(x1), unbox_all(x2), **kwargs)
    v1 = np.asarray(value_of(x1))
    return where(v1 == 0, x2, np.heaviside(v1, np.zeros((), dtype=np.asarray(value_of(x2)).dtype)))


# --------------------------------------------------------------------------- nan_to_num


def _keep_finite(g, x):
    # Where x is finite its value passes through (derivative 1), elsewhere a constant replaces
    # it.  A complex entry's real and imaginary parts are replaced separately.
    xv = np.asarray(value_of(x))
    if xv.dtype.kind != "c":
        return where(np.isfinite(xv), g, 0.0)
    keep_re, keep_im = np.isfinite(xv.real), np.isfinite(xv.imag)
    if np.array_equal(keep_re, keep_im):
        return where(keep_re, g, 0.0)
    return where(keep_re, real_part(g), 0.0) + 1j * where(keep_im, imag_part(g), 0.0)


def _nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


_nan_to_num_p = primitive(_nan_to_num, name="nan_to_num")
_nan_to_num_p.defvjp(lambda g, ans, x, **kw: _keep_finite(g, x))
_nan_to_num_p.defjvp(lambda t, ans, x, **kw: _keep_finite(t, x))


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """nan, inf and -inf replaced by constants; derivative 1 at finite entries, 0 at replaced ones."""
    if holds_traced([nan, posinf, neginf]):
        raise NotImplementedError(
            "nan_to_num: traced replacement values (nan=, posinf=, neginf=) are not supported; "
            "use nablab.numpy.where(nablab.numpy.isnan(x), value, x)"
        )
    x = as_array(x)
    nan, posinf, neginf = unbox_all((nan, posinf, neginf))
    if not holds_traced([x]):
        return np.nan_to_num(unbox_all(x), copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    return _nan_to_num_p(x, nan=nan, posinf=posinf, neginf=neginf)
