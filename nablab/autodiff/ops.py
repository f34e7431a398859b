"""The primitives: each NumPy function once, with its VJP and JVP rules.

Rules are written with these same functions, so they can be differentiated
again.  Conventions at kinks (chosen to match PyTorch):

- ``relu``: derivative 0 at 0.  ``abs``: derivative ``sign(x)``, so 0 at 0.
- ``maximum(x, y)`` / ``minimum(x, y)`` at a tie ``x == y``: the gradient is
  split equally, half to each argument.
- ``max`` / ``min`` along axes: the gradient is split equally among all
  entries that attain the extreme value.
- ``clip``: derivative 1 inside ``[lo, hi]`` (bounds included), 0 outside.
- ``where(cond, x, y)``: the condition carries no derivative.
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab.autodiff.core import (
    Primitive,
    Tensor,
    _ops,
    bind,
    primitive,
    shape_of,
    value_of,
)

# --------------------------------------------------------------------------- helpers


def _ndim(x):
    return len(shape_of(x))


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added to reach it from ``shape``."""
    gshape = shape_of(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1
    )
    if axes:
        g = sum(g, axis=axes)
    return reshape(g, shape)


def _zero_if_none(t, like):
    return zeros_like(like) if t is None else t


def nondifferentiable(fn):
    """Wrap a NumPy function whose result has no derivative (sign, comparisons).

    It sees through every box and returns a plain array.
    """

    def wrapped(*args, **kwargs):
        return fn(*[value_of(a) for a in args], **{k: value_of(v) for k, v in kwargs.items()})

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = f"``numpy.{fn.__name__}`` on the plain values: no derivative flows through it."
    return wrapped


sign = nondifferentiable(np.sign)
floor = nondifferentiable(np.floor)
ceil = nondifferentiable(np.ceil)
round = nondifferentiable(np.round)  # noqa: A001  (NumPy's name)
argmax = nondifferentiable(np.argmax)
argmin = nondifferentiable(np.argmin)
isfinite = nondifferentiable(np.isfinite)
equal = nondifferentiable(np.equal)
greater = nondifferentiable(np.greater)
less = nondifferentiable(np.less)


def stop_gradient(x):
    """``x`` as a constant: no derivative flows through it at any level."""
    return value_of(x) if not isinstance(x, Tensor) else Tensor(value_of(x))


def zeros(shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float64):
    return np.ones(shape, dtype=dtype)


def zeros_like(x, dtype=None):
    v = np.asarray(value_of(x))
    return np.zeros(v.shape, dtype=dtype or (v.dtype if v.dtype.kind == "f" else np.float64))


def ones_like(x, dtype=None):
    v = np.asarray(value_of(x))
    return np.ones(v.shape, dtype=dtype or (v.dtype if v.dtype.kind == "f" else np.float64))


def eye(n, m=None, dtype=np.float64):
    return np.eye(n, m, dtype=dtype)


def arange(*args, **kwargs):
    return np.arange(*args, **kwargs)


def linspace(*args, **kwargs):
    return np.linspace(*args, **kwargs)


# --------------------------------------------------------------------------- arithmetic

add = primitive(np.add, name="add")
add.defvjp(
    lambda g, ans, x, y: unbroadcast(g, shape_of(x)),
    lambda g, ans, x, y: unbroadcast(g, shape_of(y)),
)
add.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: t)

subtract = primitive(np.subtract, name="subtract")
subtract.defvjp(
    lambda g, ans, x, y: unbroadcast(g, shape_of(x)),
    lambda g, ans, x, y: unbroadcast(negative(g), shape_of(y)),
)
subtract.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: negative(t))

multiply = primitive(np.multiply, name="multiply")
multiply.defvjp(
    lambda g, ans, x, y: unbroadcast(g * y, shape_of(x)),
    lambda g, ans, x, y: unbroadcast(g * x, shape_of(y)),
)
multiply.defjvp(lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t)

divide = primitive(np.true_divide, name="divide")
divide.defvjp(
    lambda g, ans, x, y: unbroadcast(g / y, shape_of(x)),
    lambda g, ans, x, y: unbroadcast(negative(g) * x / (y * y), shape_of(y)),
)
divide.defjvp(lambda t, ans, x, y: t / y, lambda t, ans, x, y: negative(t) * x / (y * y))

negative = primitive(np.negative, name="negative")
negative.defvjp(lambda g, ans, x: negative(g))
negative.defjvp(lambda t, ans, x: negative(t))


def _log_base(x):
    # d(x**y)/dy = log(x) x**y; at x == 0 the product is taken as 0 (as in PyTorch).
    xv = value_of(x)
    safe = where(xv == 0, 1.0, x)
    return log(safe)


power = primitive(np.power, name="power")


def _power_dx(x, y):
    # y x^(y-1), taken as 0 where y == 0 (as PyTorch does) so x = 0 gives no 0 * inf.
    return where(value_of(y) == 0, 0.0, y * x ** (y - 1))


power.defvjp(
    lambda g, ans, x, y: unbroadcast(g * _power_dx(x, y), shape_of(x)),
    lambda g, ans, x, y: unbroadcast(g * _log_base(x) * ans, shape_of(y)),
)
power.defjvp(
    lambda t, ans, x, y: t * _power_dx(x, y),
    lambda t, ans, x, y: t * _log_base(x) * ans,
)


def square(x):
    return x * x


def reciprocal(x):
    return 1.0 / x


# --------------------------------------------------------------------------- elementwise functions

exp = primitive(np.exp, name="exp")
exp.defvjp(lambda g, ans, x: g * ans)
exp.defjvp(lambda t, ans, x: t * ans)

log = primitive(np.log, name="log")
log.defvjp(lambda g, ans, x: g / x)
log.defjvp(lambda t, ans, x: t / x)

log1p = primitive(np.log1p, name="log1p")
log1p.defvjp(lambda g, ans, x: g / (1.0 + x))
log1p.defjvp(lambda t, ans, x: t / (1.0 + x))

expm1 = primitive(np.expm1, name="expm1")
expm1.defvjp(lambda g, ans, x: g * (ans + 1.0))
expm1.defjvp(lambda t, ans, x: t * (ans + 1.0))

sqrt = primitive(np.sqrt, name="sqrt")
sqrt.defvjp(lambda g, ans, x: g * 0.5 / ans)
sqrt.defjvp(lambda t, ans, x: t * 0.5 / ans)

sin = primitive(np.sin, name="sin")
sin.defvjp(lambda g, ans, x: g * cos(x))
sin.defjvp(lambda t, ans, x: t * cos(x))

cos = primitive(np.cos, name="cos")
cos.defvjp(lambda g, ans, x: negative(g * sin(x)))
cos.defjvp(lambda t, ans, x: negative(t * sin(x)))

tanh = primitive(np.tanh, name="tanh")
tanh.defvjp(lambda g, ans, x: g * (1.0 - ans * ans))
tanh.defjvp(lambda t, ans, x: t * (1.0 - ans * ans))


def _sigmoid(x):
    # exp(-log(1 + exp(-x))) never overflows, for either sign of x.
    return np.exp(-np.logaddexp(0.0, -x))


sigmoid = primitive(_sigmoid, name="sigmoid")
sigmoid.defvjp(lambda g, ans, x: g * ans * (1.0 - ans))
sigmoid.defjvp(lambda t, ans, x: t * ans * (1.0 - ans))


def _softplus(x):
    return np.logaddexp(0.0, x)


softplus = primitive(_softplus, name="softplus")
softplus.defvjp(lambda g, ans, x: g * sigmoid(x))
softplus.defjvp(lambda t, ans, x: t * sigmoid(x))

abs = primitive(np.abs, name="abs")  # noqa: A001
abs.defvjp(lambda g, ans, x: g * sign(x))
abs.defjvp(lambda t, ans, x: t * sign(x))


def _relu(x):
    return np.maximum(x, 0.0)


relu = primitive(_relu, name="relu")
relu.defvjp(lambda g, ans, x: g * (value_of(x) > 0))
relu.defjvp(lambda t, ans, x: t * (value_of(x) > 0))


def _tie_weights(x, y):
    xv, yv = value_of(x), value_of(y)
    return np.where(xv > yv, 1.0, np.where(xv == yv, 0.5, 0.0))


maximum = primitive(np.maximum, name="maximum")
maximum.defvjp(
    lambda g, ans, x, y: unbroadcast(g * _tie_weights(x, y), shape_of(x)),
    lambda g, ans, x, y: unbroadcast(g * _tie_weights(y, x), shape_of(y)),
)
maximum.defjvp(
    lambda t, ans, x, y: t * _tie_weights(x, y),
    lambda t, ans, x, y: t * _tie_weights(y, x),
)

minimum = primitive(np.minimum, name="minimum")
minimum.defvjp(
    lambda g, ans, x, y: unbroadcast(g * _tie_weights(y, x), shape_of(x)),
    lambda g, ans, x, y: unbroadcast(g * _tie_weights(x, y), shape_of(y)),
)
minimum.defjvp(
    lambda t, ans, x, y: t * _tie_weights(y, x),
    lambda t, ans, x, y: t * _tie_weights(x, y),
)


def _clip(x, lo, hi):
    return np.clip(x, lo, hi)


def _inside(x, lo, hi):
    xv = value_of(x)
    return (xv >= value_of(lo)) & (xv <= value_of(hi))


_clip_p = primitive(_clip, name="clip")
_clip_p.defvjp(lambda g, ans, x, lo, hi: g * _inside(x, lo, hi))
_clip_p.defjvp(lambda t, ans, x, lo, hi: t * _inside(x, lo, hi))


def clip(x, lo=None, hi=None):
    """Clamp to ``[lo, hi]``; the bounds are constants."""
    lo = -np.inf if lo is None else value_of(lo)
    hi = np.inf if hi is None else value_of(hi)
    return _clip_p(x, lo, hi)


def _where(cond, x, y):
    return np.where(cond, x, y)


_where_p = primitive(_where, name="where")
_where_p.defvjp(
    None,
    lambda g, ans, c, x, y: unbroadcast(where(c, g, 0.0), shape_of(x)),
    lambda g, ans, c, x, y: unbroadcast(where(c, 0.0, g), shape_of(y)),
)
_where_p.defjvp(
    None,
    lambda t, ans, c, x, y: where(c, t, 0.0),
    lambda t, ans, c, x, y: where(c, 0.0, t),
)


def where(cond, x, y):
    """``x`` where ``cond`` holds, else ``y``; the condition has no derivative."""
    return _where_p(value_of(cond), x, y)


def _astype(x, dtype):
    return np.asarray(x).astype(dtype)


astype = primitive(_astype, name="astype")
astype.defvjp(lambda g, ans, x, dtype: astype(g, np.asarray(value_of(x)).dtype))
astype.defjvp(lambda t, ans, x, dtype: astype(t, dtype))

# --------------------------------------------------------------------------- reductions


def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim if ndim else a for a in axis)


def _expand_reduced(g, shape, axis, keepdims):
    """Reshape a reduced result so it broadcasts against the input of shape ``shape``."""
    if keepdims:
        return g
    axes = _normalize_axis(axis, len(shape))
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    return reshape(g, tuple(kept))


def _sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


sum = primitive(_sum, name="sum")  # noqa: A001
sum.defvjp(
    lambda g, ans, x, axis=None, keepdims=False: broadcast_to(
        _expand_reduced(g, shape_of(x), axis, keepdims), shape_of(x)
    )
)
sum.defjvp(lambda t, ans, x, axis=None, keepdims=False: sum(t, axis=axis, keepdims=keepdims))


def mean(x, axis=None, keepdims=False):
    shape = shape_of(x)
    count = int(np.prod([shape[a] for a in _normalize_axis(axis, len(shape))]))
    return sum(x, axis=axis, keepdims=keepdims) / count


def var(x, axis=None, keepdims=False, ddof=0):
    shape = shape_of(x)
    count = int(np.prod([shape[a] for a in _normalize_axis(axis, len(shape))]))
    centred = x - mean(x, axis=axis, keepdims=True)
    return sum(centred * centred, axis=axis, keepdims=keepdims) / (count - ddof)


def _extreme_mask(x, ans, axis, keepdims):
    xv = np.asarray(value_of(x))
    av = np.asarray(value_of(ans))
    if not keepdims:
        axes = _normalize_axis(axis, xv.ndim)
        av = av.reshape([1 if i in axes else d for i, d in enumerate(xv.shape)])
    mask = (xv == av).astype(xv.dtype if xv.dtype.kind == "f" else np.float64)
    return mask / mask.sum(axis=axis, keepdims=True)


def _max(x, axis=None, keepdims=False):
    return np.max(x, axis=axis, keepdims=keepdims)


max = primitive(_max, name="max")  # noqa: A001
max.defvjp(
    lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, shape_of(x), axis, keepdims)
    * _extreme_mask(x, ans, axis, keepdims)
)
max.defjvp(
    lambda t, ans, x, axis=None, keepdims=False: sum(
        t * _extreme_mask(x, ans, axis, keepdims), axis=axis, keepdims=keepdims
    )
)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return negative(max(negative(x), axis=axis, keepdims=keepdims))


amax, amin = max, min


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` without overflow: the maximum is shifted out first."""
    shift = stop_gradient(max(x, axis=axis, keepdims=True))
    shift = where(np.isfinite(value_of(shift)), shift, 0.0)
    out = log(sum(exp(x - shift), axis=axis, keepdims=True)) + shift
    if keepdims:
        return out
    shape = shape_of(x)
    axes = _normalize_axis(axis, len(shape))
    return reshape(out, tuple(d for i, d in enumerate(shape) if i not in axes))


def softmax(x, axis=-1):
    return exp(x - logsumexp(x, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    return x - logsumexp(x, axis=axis, keepdims=True)


def norm(x, axis=None, keepdims=False):
    """Euclidean norm (the 2-norm of the flattened entries when axis is None)."""
    return sqrt(sum(x * x, axis=axis, keepdims=keepdims))


# --------------------------------------------------------------------------- shapes

_reshape_p = primitive(np.reshape, name="reshape")
_reshape_p.defvjp(lambda g, ans, x, shape: reshape(g, shape_of(x)))
_reshape_p.defjvp(lambda t, ans, x, shape: reshape(t, shape))


def reshape(x, shape):
    if isinstance(shape, int):
        shape = (shape,)
    return _reshape_p(x, tuple(shape))


def ravel(x):
    return reshape(x, (-1,))


def expand_dims(x, axis):
    shape = list(shape_of(x))
    axis = axis % (len(shape) + 1)
    return reshape(x, tuple(shape[:axis] + [1] + shape[axis:]))


def squeeze(x, axis=None):
    shape = shape_of(x)
    if axis is None:
        return reshape(x, tuple(d for d in shape if d != 1))
    axes = _normalize_axis(axis, len(shape))
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has length {shape[a]}, not 1 (shape {shape})")
    return reshape(x, tuple(d for i, d in enumerate(shape) if i not in axes))


def _transpose(x, axes=None):
    return np.transpose(x, axes)


transpose = primitive(_transpose, name="transpose")
transpose.defvjp(
    lambda g, ans, x, axes=None: transpose(g, None if axes is None else tuple(np.argsort(axes)))
)
transpose.defjvp(lambda t, ans, x, axes=None: transpose(t, axes))


def swapaxes(x, a, b):
    axes = list(range(_ndim(x)))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, tuple(axes))


def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape)


broadcast_to = primitive(_broadcast_to, name="broadcast_to")
broadcast_to.defvjp(lambda g, ans, x, shape: unbroadcast(g, shape_of(x)))
broadcast_to.defjvp(lambda t, ans, x, shape: broadcast_to(t, shape))


def _getitem(x, index):
    return x[index]


def _has_integer_array(index):
    items = index if isinstance(index, tuple) else (index,)
    return builtins.any(
        isinstance(i, (list, np.ndarray)) and np.asarray(i).dtype.kind in "iu" for i in items
    )


def _untake(g, index, shape):
    # Scatter g back into zeros of the input's shape; repeated integer indices add up.
    dtype = np.asarray(g).dtype
    out = np.zeros(shape, dtype=dtype if dtype.kind == "f" else np.float64)
    if _has_integer_array(index):
        np.add.at(out, index, g)
    else:
        out[index] = g
    return out


getitem = primitive(_getitem, name="getitem")
getitem.defvjp(lambda g, ans, x, index: untake(g, index, shape_of(x)))
getitem.defjvp(lambda t, ans, x, index: getitem(t, index))

untake = primitive(_untake, name="untake")
untake.defvjp(lambda g, ans, x, index, shape: getitem(g, index))
untake.defjvp(lambda t, ans, x, index, shape: untake(t, index, shape))


def _concatenate(*arrays, axis=0):
    return np.concatenate(arrays, axis=axis)


def _concat_vjp(i):
    def rule(g, ans, *arrays, axis=0):
        sizes = [shape_of(a)[axis] for a in arrays]
        start = int(np.sum(sizes[:i]))
        index = [slice(None)] * len(shape_of(g))
        index[axis] = slice(start, start + sizes[i])
        return getitem(g, tuple(index))

    return rule


class _VariadicVJP(dict):
    """VJP table for ops with any number of arguments (concatenate)."""

    def __init__(self, make):
        super().__init__()
        self._make = make

    def __missing__(self, i):
        self[i] = rule = self._make(i)
        return rule

    def __contains__(self, i):
        return isinstance(i, int) and i >= 0


_concatenate_p = Primitive(_concatenate, name="concatenate")
_concatenate_p.vjps = _VariadicVJP(_concat_vjp)
_concatenate_p.jvp_all = lambda ts, ans, *arrays, axis=0: _concatenate_p(
    *[_zero_if_none(t, a) for t, a in zip(ts, arrays)], axis=axis
)


def concatenate(arrays, axis=0):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate: needs at least one array")
    return _concatenate_p(*arrays, axis=axis)


def stack(arrays, axis=0):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: needs at least one array")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all arrays need the same shape; got {sorted(shapes)}")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


def hstack(arrays):
    return concatenate(arrays, axis=0 if _ndim(arrays[0]) == 1 else 1)


def vstack(arrays):
    return concatenate([reshape(a, (1, -1)) if _ndim(a) == 1 else a for a in arrays], axis=0)


def _pad(x, pad_width, constant=0.0):
    return np.pad(x, pad_width, constant_values=constant)


pad = primitive(_pad, name="pad")
pad.defvjp(lambda g, ans, x, pad_width, constant=0.0: getitem(
    g, tuple(slice(lo, shape_of(g)[i] - hi) for i, (lo, hi) in enumerate(pad_width))
))
pad.defjvp(lambda t, ans, x, pad_width, constant=0.0: pad(t, pad_width, 0.0))

# --------------------------------------------------------------------------- linear algebra


def _matmul_vjp_a(g, ans, a, b):
    a_shape, b_shape = shape_of(a), shape_of(b)
    if len(a_shape) == 1 and len(b_shape) == 1:
        return g * b
    if len(b_shape) == 1:  # (..., n) @ (n,) -> (...,)
        return unbroadcast(expand_dims(g, -1) * b, a_shape)
    if len(a_shape) == 1:  # (n,) @ (..., n, m) -> (..., m)
        return unbroadcast(matmul(b, expand_dims(g, -1))[..., 0], a_shape)
    return unbroadcast(matmul(g, swapaxes(b, -1, -2)), a_shape)


def _matmul_vjp_b(g, ans, a, b):
    a_shape, b_shape = shape_of(a), shape_of(b)
    if len(a_shape) == 1 and len(b_shape) == 1:
        return g * a
    if len(a_shape) == 1:  # (n,) @ (..., n, m): db[..., i, j] = a_i g[..., j]
        return unbroadcast(expand_dims(a, -1) * expand_dims(g, -2), b_shape)
    if len(b_shape) == 1:  # (..., k, n) @ (n,): db = sum over the batch of a^T g, with no (k, n) temporary
        per_batch = matmul(swapaxes(a, -1, -2), expand_dims(g, -1))[..., 0]
        return unbroadcast(per_batch, b_shape)
    return unbroadcast(matmul(swapaxes(a, -1, -2), g), b_shape)


matmul = primitive(np.matmul, name="matmul")
matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)
matmul.defjvp(lambda t, ans, a, b: matmul(t, b), lambda t, ans, a, b: matmul(a, t))


def dot(a, b):
    """``np.dot`` for scalars, vectors and matrices (use ``matmul`` or ``tensordot`` beyond)."""
    if _ndim(a) == 0 or _ndim(b) == 0:
        return a * b
    if _ndim(a) > 2 or _ndim(b) > 2:
        raise ValueError(
            f"dot: supports arrays of up to 2 dimensions; got shapes {shape_of(a)} and "
            f"{shape_of(b)} (use matmul for batches)"
        )
    return matmul(a, b)


def outer(a, b):
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def inner(a, b):
    return sum(a * b, axis=-1)


def matrix_trace(x):
    """Sum of the diagonal over the last two axes (``np.trace`` of a matrix)."""
    n = builtins.min(shape_of(x)[-2:])
    return sum(x[..., np.arange(n), np.arange(n)], axis=-1)


# Let the core (Tensor operators, tangent accumulation) reach the ops.
for _name in (
    "add", "subtract", "multiply", "divide", "negative", "power", "matmul", "abs",
    "getitem", "transpose", "sum", "mean", "max", "min", "reshape", "broadcast_to",
    "astype", "exp", "log", "tanh", "sqrt", "relu", "sigmoid", "dot",
):
    setattr(_ops, _name, globals()[_name])

__all__ = [n for n in dir() if not n.startswith("_") and n not in {
    "annotations", "builtins", "np", "Primitive", "Tensor", "bind", "primitive", "shape_of", "value_of",
}]
