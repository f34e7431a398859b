"""nablab: the foundations of deep learning, executable.

The public API on one screen:

- transforms: :func:`grad`, :func:`value_and_grad`, :func:`vjp`, :func:`jvp`,
  :func:`jacrev`, :func:`jacfwd`, :func:`hessian`, :func:`hvp`;
- checks: :func:`numerical_jacobian`, :func:`gradcheck`;
- graphs: :func:`trace` (render a computation with values and gradients);
- the imperative face: :func:`tensor`, ``Tensor.backward()``, :class:`no_grad`;
- NumPy-like functions to use inside differentiated code (``exp``, ``log``,
  ``sum``, ``matmul``, ``where``, ``maximum``, ``logsumexp``, ...).

>>> import numpy as np, nablab as nb
>>> def loss(w):
...     return nb.sum(nb.tanh(w) ** 2)
>>> nb.grad(loss)(np.array([0.0, 1.0]))
array([0.        , 0.63970001])
"""

from nablab.autodiff.core import ShapeError, Tensor, no_grad, is_grad_enabled, primitive
from nablab.autodiff.imperative import tensor
from nablab.autodiff.ops import *  # noqa: F401,F403  (the NumPy-like functions)
from nablab.autodiff.ops import __all__ as _ops_all
from nablab.autodiff.transforms import grad, hessian, hvp, jacfwd, jacrev, jvp, value_and_grad, vjp
from nablab.autodiff.numeric import gradcheck, numerical_jacobian
from nablab.autodiff.graph import Graph, trace

__version__ = "0.1.0"

__all__ = [
    "Tensor", "ShapeError", "tensor", "no_grad", "is_grad_enabled", "primitive",
    "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "hvp",
    "numerical_jacobian", "gradcheck", "trace", "Graph", *_ops_all,
]
