"""Arithmetic, powers, exponentials and logarithms (real and complex).

Conventions at the special points are listed in :mod:`nablab.numpy.ufuncs`.
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import any_entry, plain_value, raw_value_of, value_of
from nablab.numpy.ufuncs_base import UfuncPrimitive, _is_complex, astype, ufunc_binary, ufunc_unary, where

_LN2 = float(np.log(2.0))
_LN10 = float(np.log(10.0))

# --------------------------------------------------------------------------- + - * /

add = ufunc_binary(np.add, lambda g, ans, x, y: g, lambda g, ans, x, y: g,
                   lambda t, ans, x, y: t, lambda t, ans, x, y: t,
                   "x + y, broadcasting.", saves_values=False)
subtract = ufunc_binary(np.subtract, lambda g, ans, x, y: g, lambda g, ans, x, y: negative(g),
                        lambda t, ans, x, y: t, lambda t, ans, x, y: negative(t),
                        "x - y, broadcasting.", saves_values=False)
multiply = ufunc_binary(np.multiply, lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x,
                        lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t,
                        "x * y, broadcasting.")
# d(x/y)/dy = -x/y^2 = -(x/y)/y: the output saves one multiplication.
divide = ufunc_binary(np.divide, lambda g, ans, x, y: g / y, lambda g, ans, x, y: negative(g) * ans / y,
                      lambda t, ans, x, y: t / y, lambda t, ans, x, y: negative(t) * ans / y,
                      "x / y (true division), broadcasting.")
true_divide = divide

negative = UfuncPrimitive(np.negative, "negative", saves_values=False)
negative.defvjp(lambda g, ans, x: negative(g))
negative.defjvp(lambda t, ans, x: negative(t))
negative.__doc__ = "-x."


positive = UfuncPrimitive(np.positive, "positive", saves_values=False)
positive.defvjp(lambda g, ans, x: g)
positive.defjvp(lambda t, ans, x: t)
positive.__doc__ = "+x (a copy of x)."


# --------------------------------------------------------------------------- powers


def _power_dx(x, y):
    # y x^(y-1), taken as 0 where y == 0: x^0 = 1 is constant, also at x == 0.  There the
    # formula runs with y = 1 and is masked, so neither it nor its own derivatives (x^0
    # again) ever multiply 0 by inf: the derivative is 0 to every order.
    zero = plain_value(y) == 0  # batched inside vmap
    if not any_entry(zero):
        d = y * x ** (y - 1)
    else:
        safe_y = where(zero, 1.0, y)
        d = where(zero, 0.0, safe_y * x ** (safe_y - 1))
    # A real x^y with y finite and not an integer is NaN for every finite x < 0, so it has no
    # derivative at x = -inf either, where IEEE's pow gives |x|^y (and PyTorch is arbitrary:
    # pow(x, tensor(0.5)) gives 0 there, x ** 0.5 NaN).  A factor NaN there makes the derivative
    # NaN, and its own derivatives too.
    if not (_is_complex(x) or _is_complex(y)):
        xv, yv = plain_value(x), plain_value(y)
        with np.errstate(invalid="ignore"):
            none = (xv == -np.inf) & np.isfinite(yv) & (np.floor(yv) != yv)
        if any_entry(none):
            dtype = np.asarray(raw_value_of(d)).dtype.type  # float32 stays float32
            d = d * where(none, dtype(np.nan), dtype(1.0))
    return d


def _power_dy(x, y, ans):
    # x^y log x, taken as 0 where x == 0 and y >= 0 (0^y is 0 for every y > 0), as PyTorch; for
    # y < 0 (0^y = inf) it stays inf * -inf.  A real base with a complex result (negative base,
    # complex exponent) needs the complex logarithm.
    if _is_complex(ans) and not _is_complex(x):
        x = x + 0j
    yv = plain_value(y)  # batched inside vmap, as the masks
    y_nonnegative = (np.real(yv) >= 0) & (np.imag(yv) == 0) if _is_complex(y) else yv >= 0
    zero = (plain_value(x) == 0) & y_nonnegative
    if not any_entry(zero):
        return log(x) * ans
    return where(zero, 0.0, log(where(zero, 1.0, x)) * ans)


_POWER_RULES = (
    lambda g, ans, x, y: g * _power_dx(x, y), lambda g, ans, x, y: g * _power_dy(x, y, ans),
    lambda t, ans, x, y: t * _power_dx(x, y), lambda t, ans, x, y: t * _power_dy(x, y, ans),
)
power = ufunc_binary(np.power, *_POWER_RULES, "x ** y, broadcasting; real or complex base and exponent.")
pow = power  # noqa: A001  (NumPy 2's alias)


def _as_type_of(g, x):
    # float_power computes in double precision: a float32 argument still gets a float32
    # cotangent, and the output's tangent is double.
    own = np.asarray(value_of(x)).dtype
    if own.kind in "fc" and own != np.asarray(value_of(g)).dtype:
        return astype(g, own)
    return g


float_power = ufunc_binary(
    np.float_power,
    lambda g, ans, x, y: _as_type_of(g * _power_dx(x, y), x),
    lambda g, ans, x, y: _as_type_of(g * _power_dy(x, y, ans), y),
    lambda t, ans, x, y: _as_type_of(t * _power_dx(x, y), ans),
    lambda t, ans, x, y: _as_type_of(t * _power_dy(x, y, ans), ans),
    "x ** y computed in float64 (complex128 for complex input).",
)

square = ufunc_unary(np.square, lambda ans, x: 2.0 * x, "x * x; derivative 2x.")
reciprocal = ufunc_unary(np.reciprocal, lambda ans, x: negative(ans * ans), "1 / x; derivative -1/x^2.")
sqrt = ufunc_unary(np.sqrt, lambda ans, x: 0.5 / ans, "Square root; derivative 1/(2 sqrt x), inf at 0.")
cbrt = ufunc_unary(np.cbrt, lambda ans, x: (1.0 / 3.0) / (ans * ans),
                   "Real cube root; derivative 1/(3 x^(2/3)), inf at 0.")

# --------------------------------------------------------------------------- exponentials and logs

exp = ufunc_unary(np.exp, lambda ans, x: ans, "e ** x.")
exp2 = ufunc_unary(np.exp2, lambda ans, x: ans * _LN2, "2 ** x; derivative 2^x log 2.")
expm1 = ufunc_unary(np.expm1, lambda ans, x: ans + 1.0, "e ** x - 1, accurate near 0.")
log = ufunc_unary(np.log, lambda ans, x: 1.0 / x, "Natural logarithm (principal branch for complex).")
log2 = ufunc_unary(np.log2, lambda ans, x: (1.0 / _LN2) / x, "Base-2 logarithm.")
log10 = ufunc_unary(np.log10, lambda ans, x: (1.0 / _LN10) / x, "Base-10 logarithm.")
log1p = ufunc_unary(np.log1p, lambda ans, x: 1.0 / (1.0 + x), "log(1 + x), accurate near 0.")

# log(e^x + e^y): the derivatives e^(x - ans) and e^(y - ans) are the softmax weights, in (0, 1].
logaddexp = ufunc_binary(np.logaddexp,
                         lambda g, ans, x, y: g * exp(x - ans), lambda g, ans, x, y: g * exp(y - ans),
                         lambda t, ans, x, y: t * exp(x - ans), lambda t, ans, x, y: t * exp(y - ans),
                         "log(exp(x) + exp(y)) without overflow (real).")
logaddexp2 = ufunc_binary(np.logaddexp2,
                          lambda g, ans, x, y: g * exp2(x - ans), lambda g, ans, x, y: g * exp2(y - ans),
                          lambda t, ans, x, y: t * exp2(x - ans), lambda t, ans, x, y: t * exp2(y - ans),
                          "log2(2**x + 2**y) without overflow (real).")
