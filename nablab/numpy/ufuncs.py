"""The elementwise family: arithmetic, powers, exponentials, trigonometry, kinks, complex parts.

Each function is a primitive (the NumPy ufunc plus VJP and JVP rules written
in nablab's own functions, so they differentiate again to any order) or a
composition of primitives.  They live in a few modules:
:mod:`~nablab.numpy.ufuncs_base` (broadcasting, complex bookkeeping, ``where``,
``astype``), :mod:`~nablab.numpy.ufuncs_arith`, :mod:`~nablab.numpy.ufuncs_trig`,
:mod:`~nablab.numpy.ufuncs_piecewise` and :mod:`~nablab.numpy.ufuncs_complex`.

Conventions at kinks and other special points (PyTorch's where it defines one, except
``hypot``, whose derivative PyTorch leaves nan at the origin):

- ``abs``, ``fabs``: derivative ``sign(x)``, so 0 at 0; for complex ``z``,
  ``conj(z)/|z|``, 0 at 0.  ``hypot``: 0 at the origin.  ``copysign``: 0 where
  ``x1 == 0``, none in ``x2``.
- ``sign`` of real input, rounding (``floor``, ``ceil``, ``round``, ``rint``,
  ``trunc``, ``fix``), ``floor_divide``, comparisons and logic are piecewise
  constant: no derivative, their results are plain arrays.  ``sign`` of complex
  ``z`` is ``z/|z|`` (0 at 0) and is differentiated.
- ``maximum``/``minimum``/``fmax``/``fmin``: the argument that is the result
  gets the derivative; a tie ``x == y`` splits it equally, half to each.  A
  nan result (``maximum``) gives both 0; ``fmax(x, nan)`` gives all to ``x``.
- ``clip``: each entry's derivative goes to whichever of ``a``, ``a_min``,
  ``a_max`` it equals, to ``a`` at a bound (1 on ``[lo, hi]``, bounds included).
- ``where(cond, x, y)``: the condition carries no derivative.
- ``x ** y``: ``d/dx`` is 0 where ``y == 0``, also at ``x == 0`` and to every
  order (``x ** 0`` is the constant 1), and NaN at ``x = -inf`` for a finite
  non-integer ``y`` (NaN for every finite ``x < 0``; PyTorch's two paths differ
  there); ``d/dy`` is 0 where ``x == 0`` and ``y >= 0``, and ``x^y log x`` (an
  infinity, NaN for a NaN ``y``) where ``x == 0`` and ``y < 0``, as PyTorch's.
- ``sqrt``, ``cbrt`` at 0, ``log`` at 0: the derivative is ``inf``, as it is.
- ``arctan2`` and ``angle``: 0 at the origin, where the angle jumps.
- ``mod``/``remainder``/``fmod``: 1 in ``x`` and ``-floor(x/y)`` (``-trunc`` for
  ``fmod``) in ``y``; the jumps themselves are not differentiable.
- ``nan_to_num``: 1 at finite entries, 0 at replaced ones (a complex entry's
  parts separately).  ``heaviside``: only in ``x2``, where ``x1 == 0``.
- ``sinc``: smooth at 0 to every order (a Taylor series there).

Complex numbers follow HIPS autograd's convention: a VJP multiplies the
cotangent by the derivative without conjugating, so for a holomorphic function
``grad`` gives the complex derivative, and for a real function ``f`` of
``z = x + iy`` it gives ``df/dx - i df/dy``.  A real input's cotangent is the
real part of what reaches it (see :func:`unbroadcast`).  The forward tangent
of a real function of ``z`` is ``Re(grad * t)``.

Called with NumPy's ufunc keywords, constants get NumPy's own behaviour
(``out=``, ``where=``, ``dtype=``); on traced values ``dtype=`` casts first and
``out=``/``where=`` are refused by name.
"""

from __future__ import annotations

from nablab.numpy.ufuncs_arith import (  # noqa: F401
    add, cbrt, divide, exp, exp2, expm1, float_power, log, log1p, log2, log10, logaddexp,
    logaddexp2, multiply, negative, positive, pow, power, reciprocal, sqrt, square, subtract,
    true_divide,
)
from nablab.numpy.ufuncs_base import (  # noqa: F401
    UfuncPrimitive, _astype_entry, _is_complex, _match_complex, _where_p, astype, conj, conjugate,
    imag_part, real_part, unbroadcast, where,
)
from nablab.numpy.ufuncs_complex import angle, imag, real, real_if_close  # noqa: F401
from nablab.numpy.ufuncs_piecewise import (  # noqa: F401
    abs, absolute, around, ceil, clip, copysign, divmod, equal, fabs, fix, floor, floor_divide, fmax,
    fmin, fmod, frexp, greater, greater_equal, heaviside, isfinite, isinf, isnan, ldexp, less,
    less_equal, logical_and, logical_not, logical_or, logical_xor, maximum, minimum, mod, modf,
    nan_to_num, nextafter, not_equal, remainder, rint, round, sign, signbit, spacing, trunc,
)
from nablab.numpy.ufuncs_trig import (  # noqa: F401
    acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, asin, asinh, atan,
    atan2, atanh, cos, cosh, deg2rad, degrees, hypot, rad2deg, radians, sin, sinc, sinh, tan, tanh,
)

__all__ = [
    # arithmetic, powers, exponentials
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "positive", "power", "pow",
    "float_power", "square", "reciprocal", "sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "logaddexp", "logaddexp2",
    # trigonometric and hyperbolic
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh",
    "arccosh", "arctanh", "asin", "acos", "atan", "asinh", "acosh", "atanh", "arctan2", "atan2",
    "hypot", "sinc", "deg2rad", "radians", "rad2deg", "degrees",
    # kinks, selections, remainders, floating-point pieces
    "abs", "absolute", "fabs", "sign", "maximum", "minimum", "fmax", "fmin", "clip", "mod",
    "remainder", "fmod", "divmod", "modf", "frexp", "ldexp", "copysign", "nextafter", "heaviside",
    "nan_to_num", "where",
    # no derivative
    "floor", "ceil", "rint", "trunc", "fix", "round", "around", "floor_divide", "isfinite", "isnan",
    "isinf", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
    "logical_or", "logical_not", "logical_xor", "signbit", "spacing",
    # complex numbers and types
    "real", "imag", "conj", "conjugate", "angle", "real_if_close", "astype",
]
