"""Test functions for gradient descent, written so they differentiate with nablab.

Each ``f`` is built from nablab ops: called on NumPy arrays it returns NumPy
arrays (elementwise, so a whole batch of starting points at once), and
``nb.grad`` differentiates it. Hand-written derivatives (``*_grad``) are plain
vectorized NumPy for speed in long GD runs; tests check them against autodiff.

>>> import numpy as np, nablab as nb
>>> from nablab.theory import sharp_wide, sharp_wide_grad
>>> float(sharp_wide(10.0)) < 50.1 < float(sharp_wide(5.0))
True
>>> bool(np.isclose(nb.grad(sharp_wide)(1.0), sharp_wide_grad(1.0)))
True
"""

from __future__ import annotations

import numpy as np

import nablab as nb

__all__ = ["sharp_wide", "sharp_wide_grad", "logistic_f1", "logistic_f2"]


def sharp_wide(theta):
    """A function with a sharp and a wide minimum.

    ``f(theta) = (10 theta^2 + e^{3(theta-3)} ((theta-10)^2/2 + 50)) / (1 + e^{3(theta-3)})``
    has a sharp global minimum near 0 (curvature about 20) and a wide local
    minimum near 10 (curvature about 1), blended by a logistic switch at 3.
    Written as ``(1 - s) 10 theta^2 + s ((theta-10)^2/2 + 50)`` with
    ``s = sigmoid(3(theta - 3))``, which equals the quotient but
    never overflows for large theta.

    >>> round(float(sharp_wide(0.0)), 5), round(float(sharp_wide(10.0)), 5)   # 100 sigmoid(-9), 50
    (0.01234, 50.0)
    """
    z = 3.0 * (theta - 3.0)
    s = nb.sigmoid(z)
    return nb.sigmoid(-z) * (10.0 * theta ** 2) + s * ((theta - 10.0) ** 2 / 2.0 + 50.0)


def sharp_wide_grad(theta):
    """The derivative of :func:`sharp_wide`, vectorized NumPy (for fast GD on many starts).

    ``f' = (1 - s) 20 theta + s (theta - 10) + 3 s (1 - s) (g2 - g1)`` with
    ``g1 = 10 theta^2``, ``g2 = (theta - 10)^2/2 + 50``.

    >>> round(float(sharp_wide_grad(0.0)), 4)     # > 0: the sharp minimum sits just left of 0
    0.0358
    """
    theta = np.asarray(theta, dtype=np.float64)
    # e = exp(-z) with z clipped so e stays finite; then s = 1/(1+e) and 1 - s = e s
    # are both accurate (no cancellation) on either side of the switch.
    e = np.exp(np.clip(9.0 - 3.0 * theta, -700.0, 700.0))
    s = 1.0 / (1.0 + e)
    sc = e * s
    d = theta - 10.0
    gap = 0.5 * d * d + 50.0 - 10.0 * theta * theta
    return sc * (20.0 * theta) + s * d + (3.0 * s * sc) * gap


def logistic_f1(w):
    """The logistic loss of a negative example: ``f1(w) = -ln(1 - sigmoid(w)) = softplus(w)``.

    With ``sigmoid(w) = 1/(1 + e^{-w})``; the derivative is ``f1' = sigmoid(w) > 0``.

    >>> round(float(logistic_f1(0.0)), 6)   # ln 2
    0.693147
    """
    return nb.softplus(w)


def logistic_f2(w):
    """The logistic loss of a positive example: ``f2(w) = -ln(sigmoid(w)) = softplus(-w)``.

    Its derivative is ``f2' = sigmoid(w) - 1 < 0``; ``f1 + f2`` is convex, with its minimum at 0.

    >>> round(float(logistic_f2(0.0)), 6)
    0.693147
    """
    return nb.softplus(-w)
