"""nablab: the foundations of deep learning, executable.

The public API on one screen:

- transforms: :func:`grad`, :func:`value_and_grad`, :func:`vjp`, :func:`jvp`,
  :func:`jacrev`, :func:`jacfwd`, :func:`hessian`, :func:`hvp`, :func:`checkpoint`,
  and HIPS autograd's operators by name (:func:`elementwise_grad`, :func:`jacobian`,
  :func:`holomorphic_grad`, :func:`make_vjp`, :func:`make_jvp`, ...);
- checks: :func:`numerical_jacobian`, :func:`gradcheck`;
- graphs: :func:`trace_graph` (render a computation with values and gradients);
  ``nb.trace`` is NumPy's ``trace``, as in :mod:`nablab.numpy`;
- the imperative face: :func:`tensor`, ``Tensor.backward()``, :class:`no_grad`;
- NumPy-like functions to use inside differentiated code (``exp``, ``log``,
  ``sum``, ``matmul``, ``where``, ``maximum``, ``logsumexp``, ...); all of NumPy,
  differentiable, is :mod:`nablab.numpy` (``import nablab.numpy as np``), and
  SciPy's special functions, distributions, linear algebra and convolution are
  :mod:`nablab.scipy`.

The subpackages load on first use, as ``torch.optim`` or ``scipy.linalg`` do:
``nb.optim.adam(...)`` works after ``import nablab as nb`` alone, and
``import nablab`` pays only for the engine.

>>> import numpy as np, nablab as nb
>>> def loss(w):
...     return nb.sum(nb.tanh(w) ** 2)
>>> nb.grad(loss)(np.array([0.0, 1.0]))
array([0.        , 0.63970001])
>>> nb.optim.minimize(loss, np.array([1.0]), nb.optim.adam(0.1), steps=30).params.round(3)
array([0.113])
"""

from __future__ import annotations

import importlib
import inspect
import os as _os
import sys as _sys
import warnings

# Before NumPy loads OpenBLAS (so only when nablab is imported first), and only if the user has not chosen: after
# each threaded call OpenBLAS's idle threads spin for 2**28 cycles (~0.1 s) by default, on the cores that nablab's
# convolution threads (nablab.nn.conv_algorithms.threads) need next; a ConvNet training step at 2 threads ran
# 1.4x slower for it (benchmarks/conv_speed.py). 2**14 cycles (a few microseconds) keeps back-to-back BLAS calls
# as fast. docs/nn.md says how to set it when NumPy is imported first.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")

from nablab.autodiff.core import Tensor, is_grad_enabled, no_grad, primitive
from nablab.autodiff.custom import custom_jvp, custom_vjp, linear_transpose, linearize
from nablab.autodiff.graph import Graph, trace_graph
from nablab.autodiff.imperative import tensor
from nablab.autodiff.numeric import gradcheck, numerical_jacobian
from nablab.autodiff.ops import (
    abs, add, amax, amin, arange, arctan, arctan2, argmax, argmin, array, asarray, astype, broadcast_to, ceil, clip,
    concatenate, conj, cos, cosh, cumsum, diag, diagonal, divide, dot, einsum, equal, exp, expand_dims, expm1, eye,
    flip, floor, full, full_like, greater, hstack, imag, inner, isfinite, less, linspace, log, log1p, log_softmax,
    logsumexp, matmul, matrix_trace, max, maximum, mean, min, minimum, mod, moveaxis, multiply, negative, norm, ones,
    ones_like, outer, pad, power, prod, ravel, real, reciprocal, relu, repeat, reshape, roll, round, sigmoid, sign,
    sin, sinh, softmax, softplus, sort, sqrt, square, squeeze, stack, std, stop_gradient, subtract, sum, swapaxes,
    take, take_along_axis, tan, tanh, tensordot, tile, transpose, tril, triu, var, vstack, where, zeros, zeros_like,
)
from nablab.autodiff.transforms import grad, hessian, hvp, jacfwd, jacrev, jvp, value_and_grad, vjp
from nablab.autodiff.batching import vmap
from nablab.autodiff.tree import tree_flatten, tree_leaves, tree_map, tree_unflatten
from nablab.autodiff.wrappers import (
    checkpoint, deriv, elementwise_grad, grad_and_aux, grad_named, hessian_tensor_product, hessian_vector_product,
    holomorphic_grad, jacobian, make_ggnvp, make_hvp, make_jvp, make_vjp, multigrad_dict, tensor_jacobian_product,
    vector_jacobian_product,
)
from nablab.errors import ShapeError, TracedValueError, UnsupportedFunctionError
from nablab.numpy.indexing import trace as _numpy_trace

__version__ = "0.1.0"

__all__ = [
    # the engine
    "Tensor", "tensor", "no_grad", "is_grad_enabled", "primitive",
    "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "hvp", "vmap",
    "elementwise_grad", "jacobian", "holomorphic_grad", "deriv", "make_vjp", "make_jvp", "make_hvp", "make_ggnvp",
    "hessian_tensor_product", "hessian_vector_product", "tensor_jacobian_product", "vector_jacobian_product",
    "grad_and_aux", "multigrad_dict", "grad_named", "checkpoint", "custom_vjp", "custom_jvp",
    "linearize", "linear_transpose",
    "numerical_jacobian", "gradcheck", "trace_graph", "Graph",
    "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves",
    "ShapeError", "TracedValueError", "UnsupportedFunctionError",
    # NumPy-like functions (all of NumPy is nablab.numpy)
    "sign", "floor", "ceil", "round", "argmax", "argmin", "isfinite", "equal", "greater", "less",
    "zeros", "ones", "zeros_like", "ones_like", "full", "full_like", "eye", "arange", "linspace",
    "add", "subtract", "multiply", "divide", "negative", "power", "square", "reciprocal", "mod",
    "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh",
    "arctan", "arctan2", "abs", "maximum", "minimum", "clip", "where", "astype", "real", "imag", "conj",
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "prod", "cumsum",
    "reshape", "ravel", "expand_dims", "squeeze", "transpose", "swapaxes", "moveaxis",
    "broadcast_to", "concatenate", "stack", "hstack", "vstack", "pad", "array", "asarray",
    "matmul", "dot", "outer", "inner", "tensordot", "einsum", "diag", "diagonal",
    "tril", "triu", "roll", "flip", "repeat", "tile", "take", "take_along_axis", "sort", "trace",
    # nablab's own functions
    "stop_gradient", "relu", "sigmoid", "softplus", "logsumexp", "softmax", "log_softmax", "norm", "matrix_trace",
]

def trace(a, *args, **kwargs):
    """NumPy's ``trace``, the sum along a diagonal: :func:`nablab.numpy.trace`, with NumPy's arguments.

    The computation-graph tracer, which had this name before, is :func:`trace_graph`.

    >>> import numpy as np, nablab as nb
    >>> float(nb.trace(np.arange(9.0).reshape(3, 3))), nb.grad(nb.trace)(np.ones((2, 2))).tolist()
    (12.0, [[1.0, 0.0], [0.0, 1.0]])
    """
    if callable(a):  # the tracer's old call, trace(f, *args): still served, with a warning, until callers move
        warnings.warn("nb.trace is NumPy's trace (the sum of a diagonal); trace a computation graph with "
                      "nb.trace_graph(f, *args)", DeprecationWarning, stacklevel=2)
        return trace_graph(a, *args, **kwargs)
    return _numpy_trace(a, *args, **kwargs)


trace.__signature__ = inspect.signature(_numpy_trace)


#: Subpackages and modules reached as attributes (``nb.optim``), imported on first use (PEP 562).
SUBMODULES = ("numpy", "scipy", "nn", "optim", "hyper", "train", "arch", "theory", "linop", "data", "lab",
              "autodiff", "errors", "checks", "expr", "torch_bridge", "cli")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"nablab.{name}")  # the import also sets nablab.<name>
    raise AttributeError(f"module 'nablab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBMODULES))
