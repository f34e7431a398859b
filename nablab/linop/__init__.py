"""Matrix-free linear operators with ``@``, ``.T``, algebra, SciPy interop and a dot test.

Needs SciPy (the ``linop`` extra: ``pip install nablab[linop]``).

>>> import numpy as np
>>> from nablab.linop import Convolution1d, dottest
>>> A = Convolution1d(np.array([1.0, -1.0]), 6)      # finite differences
>>> A @ np.arange(6.0), A.shape, dottest(A)
(array([-1., -1., -1., -1., -1.]), (5, 6), True)
"""

from .base import (AdjointOperator, Identity, LinearOperator, MatrixOperator, ProductOperator,
                   ScaledOperator, SumOperator, TransposedOperator, aslinearoperator, dottest)
from .conv import Convolution1d, Convolution2d, TransposedConvolution1d, TransposedConvolution2d

__all__ = [
    "LinearOperator", "MatrixOperator", "Identity", "ProductOperator", "SumOperator",
    "ScaledOperator", "TransposedOperator", "AdjointOperator", "aslinearoperator", "dottest",
    "Convolution1d", "TransposedConvolution1d", "Convolution2d", "TransposedConvolution2d",
]
