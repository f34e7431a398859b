"""Gradient descent as a proximal step on the linearization.

Minimizing ``f(w_t) + <w - w_t, g> + lambda/2 ||w - w_t||^2`` (a strictly
convex quadratic in w, Hessian ``lambda I``) sets its gradient
``g + lambda (w - w_t)`` to zero: ``w = w_t - g / lambda``, the GD step with
``eta = 1 / lambda``.

>>> import numpy as np
>>> from nablab.theory import proximal_step
>>> proximal_step(np.array([1.0, 1.0]), np.array([2.0, -4.0]), lam=4.0)
array([0.5, 2. ])
"""

from __future__ import annotations

import numpy as np

import nablab as nb
from nablab.theory._checks import positive

__all__ = ["proximal_step", "linearized_proximal_objective"]


def _pair(w_t, g):
    w_t = np.asarray(w_t, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if w_t.shape != g.shape:
        raise ValueError(f"w_t and the gradient must have the same shape, got {w_t.shape} "
                         f"and {g.shape}")
    return w_t, g


def proximal_step(w_t, g, lam: float) -> np.ndarray:
    """The minimizer ``w_t - g / lam`` of the linearization plus ``lam/2 ||w - w_t||^2``.

    >>> proximal_step(1.0, 0.5, lam=2.0)
    array(0.75)
    """
    w_t, g = _pair(w_t, g)
    lam = positive(lam, "lam")
    return np.asarray(w_t - g / lam)


def linearized_proximal_objective(f_value: float, w_t, g, lam: float):
    """The function ``w -> f(w_t) + <w - w_t, g> + lam/2 ||w - w_t||^2``, in nablab ops.

    It differentiates with ``nb.grad``, so a numerical minimizer can find its
    minimum without being told the closed form.

    >>> import numpy as np, nablab as nb
    >>> q = linearized_proximal_objective(0.0, np.zeros(2), np.array([1.0, 2.0]), lam=2.0)
    >>> nb.grad(q)(np.array([-0.5, -1.0]))      # zero at w_t - g/lam
    array([0., 0.])
    """
    w_t, g = _pair(w_t, g)
    lam = positive(lam, "lam")
    f_value = float(f_value)

    def objective(w):
        d = w - w_t
        return f_value + nb.sum(d * g) + 0.5 * lam * nb.sum(d * d)

    return objective
