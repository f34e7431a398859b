"""``numpy.linalg`` with derivative rules.

Functions without rules yet are NumPy's own; given a traced value they raise
an error naming themselves (see :mod:`nablab.autodiff.dispatch`).
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import shape_of, value_of
from nablab.numpy.shape import as_array
from nablab.numpy import ufuncs as _u
from nablab.numpy import reductions as _r


def norm(x, ord=None, axis=None, keepdims=False):
    """``np.linalg.norm`` for ``ord=None`` (2-norm of vectors, Frobenius of matrices) and ``'fro'``."""
    x = as_array(x)
    if ord not in (None, "fro") and not (ord == 2 and (axis is None and len(shape_of(x)) == 1 or isinstance(axis, int))):
        raise NotImplementedError(f"linalg.norm: ord={ord!r} has no derivative rule yet")
    sq = _u.real(x * _u.conj(x)) if np.iscomplexobj(value_of(x)) else x * x
    return _u.sqrt(_r.sum(sq, axis=axis, keepdims=keepdims))


__all__ = ["norm"]
