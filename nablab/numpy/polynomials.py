"""1-D convolution and correlation, vector products of NumPy 2, and polynomials.

``convolve`` is one primitive, the full linear convolution of two vectors; its
VJPs are full convolutions of the cotangent with the other operand reversed,
cut to the operand's length, so they differentiate again.  ``same`` and
``valid`` are slices of the full result, and ``correlate`` is a convolution
with the second operand reversed and conjugated, as NumPy defines it.  The
polynomial functions are compositions (Horner's rule, convolutions, slices),
so they are differentiable in the coefficients and in ``x``.

>>> import nablab, nablab.numpy as np
>>> np.convolve(np.array([1.0, 2.0]), np.array([0.0, 1.0, 0.5]))
array([0. , 1. , 2.5, 1. ])
>>> float(nablab.grad(lambda x: np.polyval([3.0, 0.0, 1.0], x))(2.0))   # d/dx (3x^2 + 1)
12.0
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import primitive, shape_of
from nablab.autodiff.dispatch import holds_traced, unbox_all
from nablab.numpy.products import einsum
from nablab.numpy.shape import as_array, getitem_p
from nablab.numpy.ufuncs import conj, unbroadcast


def _full(a, v):
    return np.convolve(a, v, mode="full")


def _flip(x):
    return getitem_p(x, (slice(None, None, -1),))


def _cut(full, start, length):
    return getitem_p(full, (slice(start, start + length),))


_full_p = primitive(_full, name="convolve")
# out[k] = sum_j a[j] v[k - j]  =>  da[j] = sum_k g[k] v[k - j], a slice of the full convolution of g
# with v reversed (no conjugation: autograd's convention for complex values).
_full_p.defvjp(
    lambda g, ans, a, v: unbroadcast(_cut(_full_p(g, _flip(v)), shape_of(v)[0] - 1, shape_of(a)[0]), a),
    lambda g, ans, a, v: unbroadcast(_cut(_full_p(g, _flip(a)), shape_of(a)[0] - 1, shape_of(v)[0]), v),
)
_full_p.defjvp(lambda t, ans, a, v: _full_p(t, v), lambda t, ans, a, v: _full_p(a, t))


def _check_vectors(name, a, v):
    for label, x in (("a", a), ("v", v)):
        shape = shape_of(x)
        if len(shape) != 1:
            raise ValueError(f"{name}: {label} must be a 1-D array, got shape {shape}")
        if shape[0] == 0:
            raise ValueError(f"{name}: {label} cannot be empty")


def convolve(a, v, mode="full"):
    """``np.convolve``: the discrete linear convolution of two vectors (full, same or valid)."""
    a, v = as_array(a), as_array(v)
    _check_vectors("convolve", a, v)
    n, m = shape_of(a)[0], shape_of(v)[0]
    full = _full_p(a, v)
    if mode == "full":
        return full
    if mode == "same":
        size = max(n, m)
        return _cut(full, (n + m - 1 - size) // 2, size)
    if mode == "valid":
        size = max(n, m) - min(n, m) + 1
        return _cut(full, min(n, m) - 1, size)
    raise ValueError(f"convolve: mode={mode!r}; use 'full', 'same' or 'valid'")


def correlate(a, v, mode="valid"):
    """``np.correlate``: ``c[k] = sum_n a[n + k] conj(v[n])``, as a convolution with ``conj(v)`` reversed."""
    a, v = as_array(a), as_array(v)
    _check_vectors("correlate", a, v)
    return convolve(a, _flip(conj(v)) if np.iscomplexobj(unbox_all(v)) else _flip(v), mode)


def vecdot(x1, x2, /, *, axis=-1):
    """``np.vecdot``: the dot product of vectors along ``axis``, the first one conjugated."""
    x1, x2 = as_array(x1), as_array(x2)
    n1, n2 = len(shape_of(x1)), len(shape_of(x2))
    x1 = _move_to_end(x1, axis, n1)
    x2 = _move_to_end(x2, axis, n2)
    return einsum("...i,...i->...", conj(x1), x2)


def matvec(x1, x2, /):
    """``np.matvec``: matrix-vector products over the last axes (broadcast over the rest)."""
    return einsum("...ij,...j->...i", as_array(x1), as_array(x2))


def vecmat(x1, x2, /):
    """``np.vecmat``: vector-matrix products with the vector conjugated."""
    return einsum("...i,...ij->...j", conj(as_array(x1)), as_array(x2))


def _move_to_end(x, axis, ndim):
    from nablab.numpy.shape import moveaxis

    axis = axis % ndim
    return x if axis == ndim - 1 else moveaxis(x, axis, -1)


# --------------------------------------------------------------------------- polynomials


def polyval(p, x):
    """``np.polyval`` by Horner's rule: differentiable in the coefficients ``p`` and in ``x``."""
    p, x = as_array(p), as_array(x)
    if len(shape_of(p)) != 1:
        raise ValueError(f"polyval: the coefficients must be 1-D, got shape {shape_of(p)}")
    y = 0.0 * x
    for k in range(shape_of(p)[0]):
        y = y * x + p[k]
    return y


def _pad_front(p, length):
    from nablab.numpy.shape import pad

    return pad(p, ((length - shape_of(p)[0], 0),))


def polyadd(a1, a2):
    """``np.polyadd``: the coefficients of the sum (highest power first)."""
    a1, a2 = as_array(a1), as_array(a2)
    n = max(shape_of(a1)[0], shape_of(a2)[0])
    return _pad_front(a1, n) + _pad_front(a2, n)


def polysub(a1, a2):
    """``np.polysub``: the coefficients of the difference."""
    a1, a2 = as_array(a1), as_array(a2)
    n = max(shape_of(a1)[0], shape_of(a2)[0])
    return _pad_front(a1, n) - _pad_front(a2, n)


def polymul(a1, a2):
    """``np.polymul``: the coefficients of the product (a convolution)."""
    return convolve(a1, a2)


def polyder(p, m=1):
    """``np.polyder``: the coefficients of the ``m``-th derivative."""
    p = as_array(p)
    if holds_traced([m]):
        raise TypeError("polyder: the order m is an integer, not something to differentiate")
    for _ in range(int(m)):
        n = shape_of(p)[0] - 1
        if n <= 0:
            return 0.0 * p[:1]
        p = p[:-1] * np.arange(n, 0, -1, dtype=float)
    return p


def polyint(p, m=1, k=None):
    """``np.polyint``: the coefficients of the ``m``-th antiderivative (constants ``k``, default 0)."""
    from nablab.numpy.shape import asarray, concatenate

    p = as_array(p)
    ks = np.zeros(int(m)) if k is None else k
    ks = [ks] * int(m) if np.ndim(unbox_all(ks)) == 0 else list(ks)
    for j in range(int(m)):
        n = shape_of(p)[0]
        p = concatenate([p / np.arange(n, 0, -1, dtype=float), asarray([ks[j]]) * 1.0])
    return p


def vander(x, N=None, increasing=False):
    """``np.vander``: columns of powers of ``x``."""
    from nablab.numpy.shape import stack

    x = as_array(x)
    N = shape_of(x)[0] if N is None else int(N)
    powers = range(N) if increasing else range(N - 1, -1, -1)
    return stack([x ** float(k) if k else 0.0 * x + 1.0 for k in powers], axis=1)


__all__ = ["convolve", "correlate", "vecdot", "matvec", "vecmat", "polyval", "polyadd", "polysub",
           "polymul", "polyder", "polyint", "vander"]
