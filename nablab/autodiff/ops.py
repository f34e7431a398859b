"""nablab's own functions, and the curated NumPy-like subset the top-level ``nablab`` offers.

The primitives live in :mod:`nablab.numpy` (one module per family, each with its
rules); this module re-exports the common ones and adds the functions deep
learning needs that NumPy lacks: ``relu``, ``sigmoid``, ``softplus``,
``logsumexp``, ``softmax``, ``log_softmax``, ``stop_gradient``, ``norm`` and
``matrix_trace``.

Conventions at kinks (chosen to match PyTorch): ``relu`` has derivative 0 at 0;
the others are listed in :mod:`nablab.numpy.ufuncs` and
:mod:`nablab.numpy.reductions`.
"""

from __future__ import annotations

import builtins

import numpy as np

from nablab import parallel
from nablab.autodiff.core import Tensor, primitive, raw_value_of, shape_of, value_of
from nablab.autodiff.dispatch import nondifferentiable  # noqa: F401  (public helper)
import nablab.numpy as _nnp
from nablab.numpy.reductions import normalize_axis as _normalize_axis
from nablab.numpy.shape import as_array, getitem, untake  # noqa: F401
from nablab.numpy.ufuncs import unbroadcast  # noqa: F401

#: The NumPy functions the top level re-exports (all of them are in nablab.numpy).
CURATED = (
    "sign", "floor", "ceil", "round", "argmax", "argmin", "isfinite", "equal", "greater", "less",
    "zeros", "ones", "zeros_like", "ones_like", "full", "full_like", "eye", "arange", "linspace",
    "add", "subtract", "multiply", "divide", "negative", "power", "square", "reciprocal", "mod",
    "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh",
    "arctan", "arctan2", "abs", "maximum", "minimum", "clip", "where", "astype",
    "real", "imag", "conj",
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "prod", "cumsum",
    "reshape", "ravel", "expand_dims", "squeeze", "transpose", "swapaxes", "moveaxis",
    "broadcast_to", "concatenate", "stack", "hstack", "vstack", "pad", "array", "asarray",
    "matmul", "dot", "outer", "inner", "tensordot", "einsum", "trace", "diag", "diagonal",
    "tril", "triu", "roll", "flip", "repeat", "tile", "take", "take_along_axis", "sort",
)
for _name in CURATED:
    globals()[_name] = getattr(_nnp, _name)  # every one is in nablab.numpy (a test holds it to that)


def stop_gradient(x):
    """``x`` as a constant: no derivative flows through it at any level.

    >>> import nablab as nb
    >>> float(nb.grad(lambda x: x * nb.stop_gradient(x))(3.0))
    3.0
    """
    x = as_array(x)
    value = value_of(x)
    # a value batched by vmap stays batched (value_of kept its batch boxes, which carry no derivative)
    return value if not isinstance(x, Tensor) or isinstance(value, Tensor) else Tensor(value)


def _relu(x):
    """``max(x, 0)`` entrywise; its derivative at 0 is 0, as in PyTorch.

    >>> import numpy as np, nablab as nb
    >>> nb.relu(np.array([-1.0, 0.0, 2.0])), nb.grad(lambda x: nb.sum(nb.relu(x)))(np.array([-1.0, 0.0, 2.0]))
    (array([0., 0., 2.]), array([0., 0., 1.]))
    """
    return parallel.elementwise(np.maximum, x, 0.0)  # large arrays in parts on the threads


def _relu_slope(x):
    """1 where x > 0, 0 where x <= 0, and 1 at nan (its value is nan, and PyTorch passes the gradient there)."""
    return ~(value_of(x) <= 0)


def _times_relu_slope(g, x):
    """``g`` where ReLU's slope is 1, else 0: ReLU's derivative rules. Where x <= 0 the result is 0 even for an inf
    or NaN in ``g`` (``g * 0`` would be NaN), as in PyTorch's and JAX's rules; so ReLU and max pooling commute in
    their derivatives as in their values (see ``nablab.nn.layers._commute``). Plain arrays go through
    :func:`nablab.parallel.elementwise` (large ones in parts on the threads: the same bits)."""
    if type(g) is np.ndarray and type(x) is np.ndarray:
        return parallel.elementwise(_multiply_by_slope, g, x)
    return _nnp.where(_relu_slope(x), g, 0.0)


def _multiply_by_slope(g, x, out=None):
    slope = _relu_slope(x)
    with np.errstate(invalid="ignore"):  # inf * 0, set to 0 below
        out = np.multiply(g, slope, out=out)  # (np.where with a random mask took six times as long)
    lost = np.isnan(out)  # g * 0 for an inf or NaN g: set to 0 where the slope is 0 (rare: a second pass only then)
    if lost.any():
        lost &= ~slope
        out[lost] = 0
    return out


relu = primitive(_relu, name="relu")
relu.defvjp(lambda g, ans, x: _times_relu_slope(g, x))
relu.defjvp(lambda t, ans, x: _times_relu_slope(t, x))


def _sigmoid(x):
    """The logistic function ``1 / (1 + exp(-x))`` entrywise, without overflow for large ``|x|``.

    >>> import numpy as np, nablab as nb
    >>> nb.sigmoid(np.array([-800.0, 0.0, 800.0])), float(nb.grad(nb.sigmoid)(0.0))
    (array([0. , 0.5, 1. ]), 0.25)
    """
    # exp(-log(1 + exp(-x))) never overflows, for either sign of x.
    return np.exp(-np.logaddexp(0.0, -x))


sigmoid = primitive(_sigmoid, name="sigmoid")
sigmoid.defvjp(lambda g, ans, x: g * ans * (1.0 - ans))
sigmoid.defjvp(lambda t, ans, x: t * ans * (1.0 - ans))


def _softplus(x):
    """``log(1 + exp(x))`` entrywise, without overflow; its derivative is :func:`sigmoid`.

    >>> import numpy as np, nablab as nb
    >>> nb.softplus(np.array([0.0, 1000.0])), float(nb.grad(nb.softplus)(0.0))
    (array([6.93147181e-01, 1.00000000e+03]), 0.5)
    """
    return np.logaddexp(0.0, x)


softplus = primitive(_softplus, name="softplus")
softplus.defvjp(lambda g, ans, x: g * sigmoid(x))
softplus.defjvp(lambda t, ans, x: t * sigmoid(x))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """``log(sum(b * exp(a)))`` without overflow (``scipy.special.logsumexp``).

    The maximum is shifted out first.  With ``b`` (weights, which may be
    negative) and ``return_sign=True`` it returns ``(log|s|, sign(s))``.

    >>> import numpy as np, nablab as nb
    >>> float(nb.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    >>> nb.grad(nb.logsumexp)(np.array([0.0, 0.0]))
    array([0.5, 0.5])
    """
    a = as_array(a)
    if b is not None:
        # b may broadcast a to a larger shape: reduce over that shape, as SciPy does
        a, b = _nnp.broadcast_arrays(a, as_array(b))
        # a term weighted 0 at a = +inf is left out, as SciPy does: 0 * exp(inf) would make the whole sum nan
        # (only there: elsewhere a zero weight's term is 0 already, and the derivative in b needs exp(a))
        a = _nnp.where((value_of(b) == 0) & (value_of(a) == np.inf), -np.inf, a)
    axis = tuple(axis) if isinstance(axis, list) else axis
    if _nnp.size(a) == 0:
        out = _nnp.log(_nnp.sum(_nnp.exp(a), axis=axis, keepdims=keepdims))  # log(0) = -inf, SciPy's value
        return (out, np.ones(np.shape(value_of(out)))) if return_sign else out
    shift = stop_gradient(_nnp.max(a, axis=axis, keepdims=True))
    shift = _nnp.where(np.isfinite(value_of(shift)), shift, 0.0)
    terms = _nnp.exp(a - shift)
    if b is not None:
        terms = as_array(b) * terms
    total = _nnp.sum(terms, axis=axis, keepdims=True)
    sign = None
    if return_sign:
        sign = np.sign(value_of(total))
        total = total * _nnp.where(sign == 0, 1.0, sign)
    out = _nnp.log(total) + shift
    if not keepdims:
        axes = _normalize_axis(axis, len(shape_of(a)))
        keep = tuple(d for i, d in enumerate(shape_of(out)) if i not in axes)
        out = _nnp.reshape(out, keep)
        if sign is not None:
            sign = sign.reshape(keep)
    return (out, sign) if return_sign else out


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (the last by default), computed through :func:`logsumexp`.

    >>> import numpy as np, nablab as nb
    >>> nb.softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]]))
    array([[0.5 , 0.5 ],
           [0.25, 0.75]])
    """
    x = as_array(x)
    lse = logsumexp(x, axis=axis, keepdims=True)
    # exp(x - inf) is 0 for a +inf row's finite entries and nan for the inf: nan throughout instead (SciPy, PyTorch)
    return nan_where_infinite(_nnp.exp(x - lse), lse)


def nan_where_infinite(value, lse):
    """``value`` with nan (value and derivatives) wherever ``lse``, the log-sum-exp it derives from, is +inf: a row
    holding a +inf logit has no probabilities. Elsewhere the factor ``lse - lse + 1`` is exactly 1, and it is
    applied only when some ``lse`` is +inf (read over every example at once, so vmap keeps its batched rule).

    >>> import numpy as np
    >>> from nablab.autodiff import ops
    >>> ops.nan_where_infinite(np.array([0.5, 2.0]), np.array([1.0, np.inf]))
    array([0.5, nan])
    """
    if np.isposinf(raw_value_of(lse)).any():
        return value * (lse - lse + 1.0)
    return value


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis`` (the last by default): log-probabilities without overflow.

    >>> import numpy as np, nablab as nb
    >>> nb.log_softmax(np.array([0.0, 1000.0]))
    array([-1000.,     0.])
    """
    x = as_array(x)
    return x - logsumexp(x, axis=axis, keepdims=True)


def norm(x, axis=None, keepdims=False):
    """Euclidean norm (the 2-norm of the flattened entries when axis is None).

    For other orders use ``nablab.numpy.linalg.norm``.  Its derivative at 0 is 0, as PyTorch's.

    >>> import numpy as np, nablab as nb
    >>> float(nb.norm(np.array([3.0, 4.0]))), nb.grad(nb.norm)(np.array([3.0, 4.0]))
    (5.0, array([0.6, 0.8]))
    """
    # nablab.numpy.linalg's: derivative 0 at 0 (a subgradient, as PyTorch), not sqrt's 0 * inf.
    return _nnp.linalg.vector_norm(x, axis=axis, keepdims=keepdims)


def matrix_trace(x):
    """Sum of the diagonal over the last two axes (``np.trace`` of a matrix).

    >>> import numpy as np, nablab as nb
    >>> float(nb.matrix_trace(np.arange(9.0).reshape(3, 3))), nb.grad(nb.matrix_trace)(np.ones((2, 2)))
    (12.0, array([[1., 0.],
           [0., 1.]]))
    """
    x = as_array(x)
    n = builtins.min(shape_of(x)[-2:])
    return _nnp.sum(x[..., np.arange(n), np.arange(n)], axis=-1)


#: The public functions: the curated NumPy ones and nablab's own. Helpers the families use
#: (``unbroadcast``, ``untake``, ``getitem``, ``nondifferentiable``) stay importable from here
#: and from their modules, but are not part of this list.
__all__ = [*CURATED, "stop_gradient", "relu", "sigmoid", "softplus", "logsumexp", "softmax", "log_softmax",
           "norm", "matrix_trace"]
