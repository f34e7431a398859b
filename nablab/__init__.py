"""nablab: the foundations of deep learning, executable.

The public API on one screen:

- transforms: :func:`grad`, :func:`value_and_grad`, :func:`vjp`, :func:`jvp`,
  :func:`jacrev`, :func:`jacfwd`, :func:`hessian`, :func:`hvp`, :func:`checkpoint`,
  and HIPS autograd's operators by name (:func:`elementwise_grad`, :func:`jacobian`,
  :func:`holomorphic_grad`, :func:`make_vjp`, :func:`make_jvp`, ...);
- checks: :func:`numerical_jacobian`, :func:`gradcheck`;
- graphs: :func:`trace` (render a computation with values and gradients);
- the imperative face: :func:`tensor`, ``Tensor.backward()``, :class:`no_grad`;
- NumPy-like functions to use inside differentiated code (``exp``, ``log``,
  ``sum``, ``matmul``, ``where``, ``maximum``, ``logsumexp``, ...); all of NumPy,
  differentiable, is :mod:`nablab.numpy` (``import nablab.numpy as np``), and
  SciPy's special functions, distributions, linear algebra and convolution are
  :mod:`nablab.scipy`.

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
from nablab.autodiff.wrappers import *  # noqa: F401,F403  (autograd's operators by name)
from nablab.autodiff.wrappers import __all__ as _wrappers_all
from nablab.autodiff.numeric import gradcheck, numerical_jacobian
from nablab.autodiff.graph import Graph, trace
from nablab.autodiff.dispatch import TracedValueError, UnsupportedFunctionError
from nablab.autodiff.tree import tree_flatten, tree_leaves, tree_map, tree_unflatten

__version__ = "0.1.0"

__all__ = [
    "Tensor", "ShapeError", "TracedValueError", "UnsupportedFunctionError", "tensor", "no_grad",
    "is_grad_enabled", "primitive",
    "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "hvp", *_wrappers_all,
    "numerical_jacobian", "gradcheck", "trace", "Graph",
    "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves", *_ops_all,
]
