"""Parts of complex numbers: real, imag, conj, angle, real_if_close.

HIPS autograd's convention throughout: for a real-valued ``f`` of ``z = x + iy``
the gradient is ``df/dx - i df/dy``, so ``grad(real)(z) = 1``,
``grad(imag)(z) = -i`` and ``grad(angle)(z) = -i / z``; a real argument's
cotangent is the real part of what reaches it.
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import Tensor, any_entry, plain_value, primitive, value_of
from nablab.autodiff.dispatch import holds_traced, unbox_all
from nablab.numpy.shape import as_array
from nablab.numpy.ufuncs_base import _is_complex, imag_part, real_part, where


def real(val):
    """The real part; for real input the value itself (as ``np.real``)."""
    val = as_array(val)
    if isinstance(val, Tensor):
        return real_part(val) if _is_complex(val) else val
    return np.real(val)


def imag(val):
    """The imaginary part; for real input zeros, a constant (as ``np.imag``)."""
    val = as_array(val)
    if not isinstance(val, Tensor):
        return np.imag(val)
    if _is_complex(val):
        return imag_part(val)
    return np.zeros_like(np.asarray(value_of(val)))


def real_if_close(a, tol=100):
    """The real part if every imaginary part is within ``tol`` machine epsilons of 0, else ``a``."""
    a = as_array(a)
    if not holds_traced([a]):
        return np.real_if_close(unbox_all(a), tol=tol)
    if not _is_complex(a) or np.iscomplexobj(np.real_if_close(np.asarray(value_of(a)), tol=tol)):
        return a
    return real_part(a)


def _angle(z, deg=False):
    return np.angle(z, deg=deg)


def _angle_derivative(z, deg):
    # angle = atan2(y, x): df/dx - i df/dy = (-y - i x)/|z|^2 = -i/z; 0 at z == 0 (as abs).
    zero = plain_value(z) == 0  # batched inside vmap
    d = -1j / z if not any_entry(zero) else where(zero, 0j, -1j / where(zero, 1.0, z))
    return d * (180.0 / np.pi) if deg else d


_angle_p = primitive(_angle, name="angle")
_angle_p.defvjp(lambda g, ans, z, deg=False: g * _angle_derivative(z, deg))
_angle_p.defjvp(lambda t, ans, z, deg=False: real_part(t * _angle_derivative(z, deg)))


def angle(z, deg=False):
    """The argument of complex ``z`` in (-pi, pi] (degrees with ``deg=True``); derivative 0 at 0.

    For real ``z`` it is 0 or pi, piecewise constant: no derivative.
    """
    z = as_array(z)
    if not (_is_complex(z) and holds_traced([z])):
        return np.angle(np.asarray(unbox_all(z)), deg=deg)
    return _angle_p(z, deg=bool(deg))
