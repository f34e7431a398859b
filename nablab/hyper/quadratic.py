"""Closed forms for gradient descent on least squares, as functions of the learning rate.

For ``L(w) = (1/n) ||X w - t||^2`` gradient descent ``w <- w - lr (2/n) X^T (X w - t)``
moves the residual ``a = X w - t`` by ``a <- (I - (2 lr / n) X X^T) a``.  In the
eigenbasis ``X X^T = Q diag(lam) Q^T`` with ``c = Q^T a_0``:

    L_k(lr) = (1/n) sum_i c_i^2 (1 - 2 lr lam_i / n)^(2k)

a sum of even powers of affine functions of ``lr``: convex in ``lr`` for every
``k``.  Its minimiser lies in ``[n / (2 lam_max), n / (2 lam_min+)]`` (below it
every term decreases, above it every term grows), where the derivative is
monotone, so a bracketed search finds it to machine precision.

>>> import numpy as np
>>> from nablab.hyper import quadratic_lr
>>> q = quadratic_lr(np.array([[1.0, 1.0]]), np.array([3.0]), np.zeros(2), lr=0.1, steps=1)
>>> q.optimal_lr_one_step, q.optimal_lr
(0.25, 0.25)
>>> q.w_at(0.25)
array([1.5, 1.5])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QuadraticLR:
    """Closed forms at one learning rate and step count; the ``*_at`` methods take any lr.

    >>> import numpy as np
    >>> from nablab.hyper import quadratic_lr
    >>> q = quadratic_lr(np.array([[1.0, 1.0]]), np.array([3.0]), np.zeros(2), lr=0.1, steps=1)
    >>> q.eigenvalues.round(6), q.optimal_lr, q.w_at(0.25)
    (array([2.]), 0.25, array([1.5, 1.5]))
    """

    X: np.ndarray
    t: np.ndarray
    w0: np.ndarray
    lr: float
    steps: int
    eigenvalues: np.ndarray
    coefficients: np.ndarray  # c_i^2 = (q_i^T a_0)^2
    eigenvectors: np.ndarray

    @property
    def n(self):
        return self.X.shape[0]

    def _factors(self, lr):
        return 1 - 2 * lr * self.eigenvalues / self.n

    def loss_at(self, lr, steps=None):
        k = self.steps if steps is None else steps
        return float(np.sum(self.coefficients * self._factors(lr) ** (2 * k)) / self.n)

    def dloss_at(self, lr, steps=None):
        k = self.steps if steps is None else steps
        if k == 0:
            return 0.0
        m = self._factors(lr)
        return float(np.sum(self.coefficients * 2 * k * m ** (2 * k - 1) * (-2 * self.eigenvalues / self.n)) / self.n)

    def d2loss_at(self, lr, steps=None):
        k = self.steps if steps is None else steps
        if k == 0:
            return 0.0
        m = self._factors(lr)
        return float(np.sum(self.coefficients * 2 * k * (2 * k - 1) * m ** (2 * k - 2)
                            * (2 * self.eigenvalues / self.n) ** 2) / self.n)

    def w_at(self, lr, steps=None):
        """Weights after ``steps`` steps: ``w0 - X^T Q diag((1 - m^k) / lam) Q^T a_0`` over lam > 0."""
        k = self.steps if steps is None else steps
        m = self._factors(lr)
        a0 = self.X @ self.w0 - self.t
        proj = self.eigenvectors.T @ a0
        keep = self.eigenvalues > _tiny(self.eigenvalues)
        scale = np.zeros_like(self.eigenvalues)
        scale[keep] = (1 - m[keep] ** k) / self.eigenvalues[keep]
        return self.w0 - self.X.T @ (self.eigenvectors @ (scale * proj))

    @property
    def w_steps(self):
        return self.w_at(self.lr)

    @property
    def loss(self):
        return self.loss_at(self.lr)

    @property
    def dloss(self):
        return self.dloss_at(self.lr)

    @property
    def d2loss(self):
        return self.d2loss_at(self.lr)

    @property
    def optimal_lr_one_step(self):
        """``(n / 2) ||X^T a||^2 / ||X X^T a||^2``: the zero of the (linear) derivative of L_1."""
        a0 = self.X @ self.w0 - self.t
        g = self.X.T @ a0
        h = self.X @ g
        denom = float(h @ h)
        if denom == 0.0:
            raise ValueError("optimal_lr_one_step: the gradient is zero at w0 (w0 already minimises L)")
        return self.n / 2 * float(g @ g) / denom

    @property
    def optimal_lr(self):
        """The lr minimising L_steps, by bisection on the increasing derivative (exact to float precision)."""
        return self.optimal_lr_for(self.steps)

    def optimal_lr_for(self, steps):
        if steps < 1:
            raise ValueError(f"optimal_lr_for: steps must be >= 1, got {steps}")
        active = (self.eigenvalues > _tiny(self.eigenvalues)) & (self.coefficients > 0)
        if not np.any(active):
            raise ValueError("optimal_lr_for: the loss does not depend on lr (zero gradient at w0)")
        lam = self.eigenvalues[active]
        lo, hi = self.n / (2 * lam.max()), self.n / (2 * lam.min())
        if steps == 1:
            return self.optimal_lr_one_step
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            if self.dloss_at(mid, steps) > 0:
                hi = mid
            else:
                lo = mid
        return 0.5 * (lo + hi)


def _tiny(eigenvalues):
    return 1e-12 * max(1.0, float(np.max(np.abs(eigenvalues), initial=0.0)))


def quadratic_lr(X, t, w0, lr, steps) -> QuadraticLR:
    """Closed forms for ``steps`` steps of GD at learning rate ``lr`` on ``(1/n)||X w - t||^2``.

    ``X`` (n, d) and ``t`` (n,) define the least-squares loss, ``w0`` is the start; the result is a
    :class:`QuadraticLR`, whose methods evaluate the closed forms at any learning rate.

    >>> import numpy as np
    >>> from nablab.hyper import quadratic_lr
    >>> q = quadratic_lr(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, 1.0]), np.zeros(2), lr=0.1, steps=3)
    >>> round(q.loss_at(0.1), 6), round(q.dloss_at(0.1), 6)
    (0.289049, -2.70459)
    """
    X = np.atleast_2d(np.asarray(X, dtype=float))
    t = np.atleast_1d(np.asarray(t, dtype=float))
    w0 = np.atleast_1d(np.asarray(w0, dtype=float))
    n, d = X.shape
    if t.shape != (n,):
        raise ValueError(f"quadratic_lr: t has shape {t.shape} but X has {n} rows")
    if w0.shape != (d,):
        raise ValueError(f"quadratic_lr: w0 has shape {w0.shape} but X has {d} columns")
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"quadratic_lr: steps must be a non-negative integer, got {steps!r}")
    lam, Q = np.linalg.eigh(X @ X.T)
    lam = np.clip(lam, 0.0, None)  # X X^T is positive semi-definite; remove rounding below zero
    c2 = (Q.T @ (X @ w0 - t)) ** 2
    return QuadraticLR(X, t, w0, float(lr), int(steps), lam, c2, Q)
