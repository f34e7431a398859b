"""Operators inside differentiated nablab code.

``A @ x`` with a nablab tensor ``x`` applies the engine primitive below: its
VJP is ``A.T @ g`` and its JVP ``A @ t``, both written with the same
primitive, so gradients, forward mode and higher orders (Hessians, HVPs)
all pass through the operator without forming its matrix.

>>> import numpy as np, nablab as nb
>>> from nablab.linop import Convolution1d
>>> A = Convolution1d(np.array([1.0, -1.0]), 4)
>>> nb.grad(lambda x: nb.sum((A @ x) ** 2) / 2)(np.array([0.0, 1.0, 3.0, 6.0]))
array([-1., -1., -1.,  3.])
"""

from __future__ import annotations

from nablab.autodiff.core import primitive


def _apply(A, x):
    return A._apply(x)


apply = primitive(_apply, name="linop_apply")
apply.defvjp(None, lambda g, ans, A, x: apply(A.T, g))
apply.defjvp(None, lambda t, ans, A, x: apply(A, t))
