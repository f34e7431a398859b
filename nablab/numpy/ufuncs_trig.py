"""Trigonometric and hyperbolic functions, their inverses, sinc, angle units, arctan2, hypot.

Every one-argument function here is holomorphic where NumPy accepts complex
input, so its rules multiply by the complex derivative.  Derivatives of the
inverse functions are written so the principal branches NumPy uses line up
(``arccosh``: ``1/(sqrt(z-1) sqrt(z+1))``, which differs from
``1/sqrt(z^2-1)`` in the left half-plane).
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import any_entry, plain_value, value_of
from nablab.numpy.ufuncs_arith import negative, sqrt
from nablab.numpy.ufuncs_base import ufunc_binary, ufunc_unary, where

_DEG_PER_RAD = 180.0 / np.pi
_RAD_PER_DEG = np.pi / 180.0

# --------------------------------------------------------------------------- circular

sin = ufunc_unary(np.sin, lambda ans, x: cos(x), "Sine; derivative cos x.")
cos = ufunc_unary(np.cos, lambda ans, x: negative(sin(x)), "Cosine; derivative -sin x.")
tan = ufunc_unary(np.tan, lambda ans, x: 1.0 + ans * ans, "Tangent; derivative 1 + tan^2 x.")
arcsin = ufunc_unary(np.arcsin, lambda ans, x: 1.0 / sqrt(1.0 - x * x), "Inverse sine; derivative 1/sqrt(1 - x^2).")
arccos = ufunc_unary(np.arccos, lambda ans, x: -1.0 / sqrt(1.0 - x * x),
                     "Inverse cosine; derivative -1/sqrt(1 - x^2).")
arctan = ufunc_unary(np.arctan, lambda ans, x: 1.0 / (1.0 + x * x), "Inverse tangent; derivative 1/(1 + x^2).")

# --------------------------------------------------------------------------- hyperbolic

sinh = ufunc_unary(np.sinh, lambda ans, x: cosh(x), "Hyperbolic sine; derivative cosh x.")
cosh = ufunc_unary(np.cosh, lambda ans, x: sinh(x), "Hyperbolic cosine; derivative sinh x.")
tanh = ufunc_unary(np.tanh, lambda ans, x: 1.0 - ans * ans, "Hyperbolic tangent; derivative 1 - tanh^2 x.")
arcsinh = ufunc_unary(np.arcsinh, lambda ans, x: 1.0 / sqrt(x * x + 1.0),
                      "Inverse hyperbolic sine; derivative 1/sqrt(x^2 + 1).")
arccosh = ufunc_unary(np.arccosh, lambda ans, x: 1.0 / (sqrt(x - 1.0) * sqrt(x + 1.0)),
                      "Inverse hyperbolic cosine; derivative 1/sqrt(x^2 - 1) (as sqrt(x-1) sqrt(x+1)).")
arctanh = ufunc_unary(np.arctanh, lambda ans, x: 1.0 / (1.0 - x * x),
                      "Inverse hyperbolic tangent; derivative 1/(1 - x^2).")

# NumPy 2's short names are the same ufuncs.
asin, acos, atan = arcsin, arccos, arctan
asinh, acosh, atanh = arcsinh, arccosh, arctanh

# --------------------------------------------------------------------------- angle units

deg2rad = ufunc_unary(np.deg2rad, lambda ans, x: _RAD_PER_DEG, "Degrees to radians (x pi/180).")
radians = ufunc_unary(np.radians, lambda ans, x: _RAD_PER_DEG, "Degrees to radians (x pi/180).")
rad2deg = ufunc_unary(np.rad2deg, lambda ans, x: _DEG_PER_RAD, "Radians to degrees (x 180/pi).")
degrees = ufunc_unary(np.degrees, lambda ans, x: _DEG_PER_RAD, "Radians to degrees (x 180/pi).")

# --------------------------------------------------------------------------- sinc

# sinc'(x) = (cos(pi x) - sinc x) / x cancels near 0; there its Taylor series is used,
# sum_k (-1)^k pi^(2k) 2k x^(2k-1) / (2k+1)!, a polynomial that differentiates again.
_SINC_SMALL = 0.1
_SINC_SERIES = []
_fact = 1.0
for _k in range(1, 10):
    _fact *= (2 * _k) * (2 * _k + 1)
    _SINC_SERIES.append((-1.0) ** _k * np.pi ** (2 * _k) * 2 * _k / _fact)


def _sinc_series_derivative(x):
    u = x * x
    acc = _SINC_SERIES[-1]
    for c in reversed(_SINC_SERIES[:-1]):
        acc = acc * u + c
    return acc * x


def _sinc_derivative(ans, x):
    small = np.abs(plain_value(x)) < _SINC_SMALL  # batched inside vmap
    if not any_entry(small):
        return (cos(np.pi * x) - ans) / x
    far = where(small, 1.0, x)
    return where(small, _sinc_series_derivative(x), (cos(np.pi * far) - sinc(far)) / far)


def _sinc(x):
    return np.sinc(x)


sinc = ufunc_unary(_sinc, _sinc_derivative, "sin(pi x)/(pi x), 1 at 0; smooth at 0 to every order.",
                   name="sinc")

# --------------------------------------------------------------------------- arctan2, hypot


def _arctan2_derivative(x1, x2, wrt):
    # d/dx1 atan2(x1, x2) = x2 / r^2, d/dx2 = -x1 / r^2 with r = hypot(x1, x2) (no underflow
    # of x1^2 + x2^2); 0 at the origin, where the angle jumps (as abs'(0) = 0).
    r = hypot(x1, x2)
    num = x2 if wrt == 0 else negative(x1)
    zero = plain_value(r) == 0  # batched inside vmap
    if not any_entry(zero):
        return num / r / r
    safe = where(zero, 1.0, r)
    return where(zero, 0.0, num / safe / safe)


arctan2 = ufunc_binary(
    np.arctan2,
    lambda g, ans, x1, x2: g * _arctan2_derivative(x1, x2, 0),
    lambda g, ans, x1, x2: g * _arctan2_derivative(x1, x2, 1),
    lambda t, ans, x1, x2: t * _arctan2_derivative(x1, x2, 0),
    lambda t, ans, x1, x2: t * _arctan2_derivative(x1, x2, 1),
    "The angle of the point (x2, x1), in (-pi, pi]; derivative 0 at the origin.",
)
atan2 = arctan2


def _hypot_derivative(ans, x):
    # x / hypot, 0 at the origin (the kink of sqrt(x1^2 + x2^2), as abs'(0) = 0).
    zero = plain_value(ans) == 0  # batched inside vmap
    if not any_entry(zero):
        return x / ans
    return where(zero, 0.0, x / where(zero, 1.0, ans))


hypot = ufunc_binary(
    np.hypot,
    lambda g, ans, x1, x2: g * _hypot_derivative(ans, x1),
    lambda g, ans, x1, x2: g * _hypot_derivative(ans, x2),
    lambda t, ans, x1, x2: t * _hypot_derivative(ans, x1),
    lambda t, ans, x1, x2: t * _hypot_derivative(ans, x2),
    "sqrt(x1^2 + x2^2) without overflow; derivative 0 at the origin.",
)
