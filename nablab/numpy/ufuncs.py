"""Elementwise functions: arithmetic, exponentials, powers, trigonometry, complex parts.

Each primitive is the NumPy function plus a VJP and a JVP rule written in
nablab's own functions, so the rules differentiate again to any order.

Conventions at kinks (chosen to match PyTorch):

- ``abs``: derivative ``sign(x)``, so 0 at 0.
- ``maximum(x, y)`` / ``minimum(x, y)`` at a tie ``x == y``: the gradient is
  split equally, half to each argument.
- ``clip``: derivative 1 inside ``[lo, hi]`` (bounds included), 0 outside.
- ``where(cond, x, y)``: the condition carries no derivative.
- ``x ** y``: ``d/dx`` is taken as 0 where ``y == 0`` (also at ``x == 0``), and
  ``d/dy`` as 0 where ``x == 0``.

Complex numbers follow HIPS autograd's convention: a VJP multiplies the
cotangent by the derivative without conjugating, so for a holomorphic function
``grad`` gives the complex derivative, and for a real function ``f`` of
``z = x + iy`` it gives ``df/dx - i df/dy``.  A real input's cotangent is the
real part of what reaches it (see :func:`unbroadcast`).
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import Primitive, Tensor, primitive, shape_of, value_of
from nablab.autodiff.dispatch import nondifferentiable, unbox_all

# --------------------------------------------------------------------------- helpers


def _is_complex(x) -> bool:
    v = value_of(x)
    dtype = getattr(v, "dtype", None)
    return dtype.kind == "c" if dtype is not None else isinstance(v, complex)


def unbroadcast(g, like):
    """Sum ``g`` over the axes broadcasting added to reach it from ``like``'s shape.

    ``like`` is the argument itself (or a shape).  A real argument gets the real
    part of a complex cotangent, as autograd's convention wants.
    """
    if isinstance(like, tuple):
        shape, real = like, False
    else:
        shape, real = shape_of(like), not _is_complex(like)
    if real and _is_complex(g):
        g = real_part(g)
    gshape = shape_of(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1
    )
    from nablab.numpy.reductions import sum as _sum
    from nablab.numpy.shape import reshape

    if axes:
        g = _sum(g, axis=axes)
    return reshape(g, shape)


def _binary(np_fn, name, vjp_x, vjp_y, jvp_x, jvp_y, saves_values=True):
    """A broadcasting two-argument primitive; the rules see (g or t, ans, x, y)."""
    prim = primitive(np_fn, name=name, saves_values=saves_values)
    prim.defvjp(
        lambda g, ans, x, y: unbroadcast(vjp_x(g, ans, x, y), x),
        lambda g, ans, x, y: unbroadcast(vjp_y(g, ans, x, y), y),
    )
    prim.defjvp(jvp_x, jvp_y)
    return prim


def _unary(np_fn, name, derivative):
    """A one-argument primitive with ``f'(x)`` given as ``derivative(ans, x)``.

    No unbroadcasting and no complex matching: the output has ``x``'s shape, and
    a real ``x`` has a real output whose cotangent is real.
    """
    prim = primitive(np_fn, name=name)
    prim.defvjp(lambda g, ans, x: g * derivative(ans, x))
    prim.defjvp(lambda t, ans, x: t * derivative(ans, x))
    return prim


# --------------------------------------------------------------------------- no derivative

sign = nondifferentiable(np.sign)
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

# --------------------------------------------------------------------------- arithmetic

add = _binary(np.add, "add",
              lambda g, ans, x, y: g, lambda g, ans, x, y: g,
              lambda t, ans, x, y: t, lambda t, ans, x, y: t, saves_values=False)
subtract = _binary(np.subtract, "subtract",
                   lambda g, ans, x, y: g, lambda g, ans, x, y: negative(g),
                   lambda t, ans, x, y: t, lambda t, ans, x, y: negative(t), saves_values=False)
multiply = _binary(np.multiply, "multiply",
                   lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x,
                   lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t)
divide = _binary(np.true_divide, "divide",
                 lambda g, ans, x, y: g / y, lambda g, ans, x, y: negative(g) * x / (y * y),
                 lambda t, ans, x, y: t / y, lambda t, ans, x, y: negative(t) * x / (y * y))
true_divide = divide

negative = primitive(np.negative, name="negative", saves_values=False)
negative.defvjp(lambda g, ans, x: negative(g))
negative.defjvp(lambda t, ans, x: negative(t))


def positive(x):
    return x


def _power_dx(x, y):
    # y x^(y-1), taken as 0 where y == 0 (as PyTorch does).  Where y == 0 the
    # formula runs with y = 1 (x^0) and is then masked, so neither this value nor
    # its own derivative ever multiplies 0 by inf.
    zero = np.asarray(value_of(y)) == 0
    if not zero.any():
        return y * x ** (y - 1)
    safe_y = where(zero, 1.0, y)
    return where(zero, 0.0, safe_y * x ** (safe_y - 1))


def _power_dy(x, ans):
    # x^y log x, taken as 0 where x == 0 (the limit from the right for y > 0).
    zero = np.asarray(value_of(x)) == 0
    return log(where(zero, 1.0, x)) * ans if zero.any() else log(x) * ans


power = _binary(np.power, "power",
                lambda g, ans, x, y: g * _power_dx(x, y), lambda g, ans, x, y: g * _power_dy(x, ans),
                lambda t, ans, x, y: t * _power_dx(x, y), lambda t, ans, x, y: t * _power_dy(x, ans))


def square(x):
    return x * x


def reciprocal(x):
    return 1.0 / x


def _tie_weights(x, y):
    xv, yv = value_of(x), value_of(y)
    return np.where(xv > yv, 1.0, np.where(xv == yv, 0.5, 0.0))


maximum = _binary(np.maximum, "maximum",
                  lambda g, ans, x, y: g * _tie_weights(x, y), lambda g, ans, x, y: g * _tie_weights(y, x),
                  lambda t, ans, x, y: t * _tie_weights(x, y), lambda t, ans, x, y: t * _tie_weights(y, x))
minimum = _binary(np.minimum, "minimum",
                  lambda g, ans, x, y: g * _tie_weights(y, x), lambda g, ans, x, y: g * _tie_weights(x, y),
                  lambda t, ans, x, y: t * _tie_weights(y, x), lambda t, ans, x, y: t * _tie_weights(x, y))
fmax, fmin = maximum, minimum

# --------------------------------------------------------------------------- exponentials and logs

exp = _unary(np.exp, "exp", lambda ans, x: ans)
log = _unary(np.log, "log", lambda ans, x: 1.0 / x)
log1p = _unary(np.log1p, "log1p", lambda ans, x: 1.0 / (1.0 + x))
expm1 = _unary(np.expm1, "expm1", lambda ans, x: ans + 1.0)
sqrt = _unary(np.sqrt, "sqrt", lambda ans, x: 0.5 / ans)

# --------------------------------------------------------------------------- trigonometric

sin = _unary(np.sin, "sin", lambda ans, x: cos(x))
cos = _unary(np.cos, "cos", lambda ans, x: negative(sin(x)))
tanh = _unary(np.tanh, "tanh", lambda ans, x: 1.0 - ans * ans)

# --------------------------------------------------------------------------- complex parts and absolute value


def _real(x):
    return np.real(x)


real_part = primitive(_real, name="real", saves_values=False)
real_part.defvjp(lambda g, ans, x: _match_complex(g, x))
real_part.defjvp(lambda t, ans, x: real_part(t))


def _match_complex(g, x):
    """``g`` as the cotangent of ``x``: complex-typed if ``x`` is complex, real if not."""
    if _is_complex(x):
        return g if _is_complex(g) else g + 0j
    return real_part(g) if _is_complex(g) else g


def _abs_derivative(ans, x):
    # sign(x) for real x (0 at 0); conj(x)/|x| for complex x (0 at 0), autograd's convention.
    if not _is_complex(x):
        return sign(x)
    av = np.asarray(value_of(ans))
    zero = av == 0
    return conj(x) / where(zero, 1.0, ans) * (~zero)


abs = primitive(np.abs, name="abs")  # noqa: A001
abs.defvjp(lambda g, ans, x: _match_complex(g * _abs_derivative(ans, x), x))
abs.defjvp(lambda t, ans, x: real_part(t * _abs_derivative(ans, x)) if _is_complex(x) else t * sign(x))
absolute = abs


def _conj(x):
    return np.conj(x)


conj = primitive(_conj, name="conj", saves_values=False)
conj.defvjp(lambda g, ans, x: conj(g))
conj.defjvp(lambda t, ans, x: conj(t))
conjugate = conj


def real(val):
    """The real part; for a real array the array itself (as ``np.real``)."""
    return real_part(val) if _is_complex(val) else val


def _imag(x):
    return np.imag(x)


imag_part = primitive(_imag, name="imag", saves_values=False)
imag_part.defvjp(lambda g, ans, x: _match_complex(-1j * g, x))
imag_part.defjvp(lambda t, ans, x: imag_part(t))


def imag(val):
    """The imaginary part; zeros (a constant) for a real array, as ``np.imag``."""
    if _is_complex(val):
        return imag_part(val)
    return np.zeros_like(np.asarray(value_of(val)))


# x mod y = x - floor(x / y) y: derivative 1 in x and -floor(x / y) in y, away from the jumps.
mod = _binary(np.mod, "mod",
              lambda g, ans, x, y: g, lambda g, ans, x, y: negative(g) * floor(value_of(x) / value_of(y)),
              lambda t, ans, x, y: t, lambda t, ans, x, y: negative(t) * floor(value_of(x) / value_of(y)))
remainder = mod


# --------------------------------------------------------------------------- selection


def _clip(x, lo, hi):
    return np.clip(x, lo, hi)


def _inside(x, lo, hi):
    xv = value_of(x)
    return (xv >= value_of(lo)) & (xv <= value_of(hi))


_clip_p = primitive(_clip, name="clip")
_clip_p.defvjp(lambda g, ans, x, lo, hi: g * _inside(x, lo, hi))
_clip_p.defjvp(lambda t, ans, x, lo, hi: t * _inside(x, lo, hi))


def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    """Clamp to ``[a_min, a_max]``; the bounds are constants (``min=``/``max=`` also accepted)."""
    if out is not None:
        raise TypeError("clip(..., out=...) is not supported on traced values; use the result")
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if kwargs:
        raise TypeError(f"clip: unexpected arguments {sorted(kwargs)}")
    lo = -np.inf if a_min is None else unbox_all(a_min)
    hi = np.inf if a_max is None else unbox_all(a_max)
    return _clip_p(a, lo, hi)


def _where(cond, x, y):
    return np.where(cond, x, y)


_where_p = primitive(_where, name="where", saves_values=False)
_where_p.defvjp(
    None,
    lambda g, ans, c, x, y: unbroadcast(where(c, g, 0.0), x),
    lambda g, ans, c, x, y: unbroadcast(where(c, 0.0, g), y),
)
_where_p.defjvp(
    None,
    lambda t, ans, c, x, y: where(c, t, 0.0),
    lambda t, ans, c, x, y: where(c, 0.0, t),
)


def where(condition, x=None, y=None):
    """``x`` where ``condition`` holds, else ``y``; the condition has no derivative.

    With only ``condition`` it is ``np.nonzero(condition)`` (no derivative).
    """
    if x is None and y is None:
        return np.nonzero(unbox_all(condition))
    return _where_p(np.asarray(unbox_all(condition)), x, y)


def _astype(x, dtype):
    return np.asarray(x).astype(dtype)


astype = primitive(_astype, name="astype", saves_values=False)
astype.defvjp(lambda g, ans, x, dtype: _match_complex(astype(g, np.result_type(value_of(x), value_of(g))), x))
astype.defjvp(lambda t, ans, x, dtype: astype(t, dtype))


def _astype_entry(x, dtype, *args, **kwargs):
    """``ndarray.astype``: to an integer or boolean type the result is a constant."""
    if np.dtype(dtype).kind in "iub":
        return np.asarray(value_of(x)).astype(dtype)
    return astype(x, np.dtype(dtype))


__all__ = [n for n in dir() if not n.startswith("_") and n not in {
    "annotations", "np", "Primitive", "Tensor", "primitive", "shape_of", "value_of",
    "nondifferentiable", "unbox_all",
}]
