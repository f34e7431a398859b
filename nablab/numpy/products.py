"""Products of arrays: matmul, dot, inner, outer.

The rules are themselves products, so they differentiate again.  For complex
arrays no conjugation enters (autograd's convention, see :mod:`nablab.numpy.ufuncs`).
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import primitive, shape_of
from nablab.numpy.reductions import sum
from nablab.numpy.shape import as_array, expand_dims, reshape, swapaxes
from nablab.numpy.ufuncs import unbroadcast


def _ndim(x):
    return len(shape_of(x))


def _matmul_vjp_a(g, ans, a, b):
    a_shape, b_shape = shape_of(a), shape_of(b)
    if len(a_shape) == 1 and len(b_shape) == 1:
        return unbroadcast(g * b, a)
    if len(b_shape) == 1:  # (..., n) @ (n,) -> (...,)
        return unbroadcast(expand_dims(g, -1) * b, a)
    if len(a_shape) == 1:  # (n,) @ (..., n, m) -> (..., m)
        return unbroadcast(matmul(b, expand_dims(g, -1))[..., 0], a)
    return unbroadcast(matmul(g, swapaxes(b, -1, -2)), a)


def _matmul_vjp_b(g, ans, a, b):
    a_shape, b_shape = shape_of(a), shape_of(b)
    if len(a_shape) == 1 and len(b_shape) == 1:
        return unbroadcast(g * a, b)
    if len(a_shape) == 1:  # (n,) @ (..., n, m): db[..., i, j] = a_i g[..., j]
        return unbroadcast(expand_dims(a, -1) * expand_dims(g, -2), b)
    if len(b_shape) == 1:  # (..., k, n) @ (n,): db = sum over the batch of a^T g, with no (k, n) temporary
        per_batch = matmul(swapaxes(a, -1, -2), expand_dims(g, -1))[..., 0]
        return unbroadcast(per_batch, b)
    return unbroadcast(matmul(swapaxes(a, -1, -2), g), b)


_matmul_p = primitive(np.matmul, name="matmul")
_matmul_p.defvjp(_matmul_vjp_a, _matmul_vjp_b)
_matmul_p.defjvp(lambda t, ans, a, b: _matmul_p(t, b), lambda t, ans, a, b: _matmul_p(a, t))


def matmul(x1, x2, out=None, **kwargs):
    if out is not None:
        raise TypeError("matmul(..., out=...) is not supported; use the returned value")
    x1, x2 = as_array(x1), as_array(x2)
    if _ndim(x1) == 0 or _ndim(x2) == 0:
        raise ValueError("matmul: input operand does not have enough dimensions (use * for scalars)")
    return _matmul_p(x1, x2)


def dot(a, b, out=None):
    """``np.dot`` for scalars, vectors and matrices (use ``matmul`` or ``tensordot`` beyond)."""
    a, b = as_array(a), as_array(b)
    if _ndim(a) == 0 or _ndim(b) == 0:
        return a * b
    if _ndim(a) > 2 or _ndim(b) > 2:
        raise ValueError(
            f"dot: supports arrays of up to 2 dimensions; got shapes {shape_of(a)} and "
            f"{shape_of(b)} (use matmul for batches)"
        )
    return matmul(a, b)


def outer(a, b, out=None):
    return reshape(as_array(a), (-1, 1)) * reshape(as_array(b), (1, -1))


def inner(a, b):
    a, b = as_array(a), as_array(b)
    if _ndim(a) == 0 or _ndim(b) == 0:
        return a * b
    if _ndim(a) > 1 and _ndim(b) > 1:
        raise NotImplementedError("inner: N-D by N-D is not supported yet")
    return sum(a * b, axis=-1)


__all__ = ["matmul", "dot", "outer", "inner"]
