"""When gradient descent on a quadratic converges: thresholds, rates, closed forms.

For a quadratic with Hessian ``H`` (symmetric), GD with step ``lr`` maps the
error ``e = theta - theta*`` to ``(I - lr H) e``. It contracts every direction
iff ``|1 - lr lambda| < 1`` for every eigenvalue ``lambda > 0``, i.e.
``lr < 2 / lambda_max``; above that the top eigendirection grows like
``|1 - lr lambda_max|^k`` from every start with a non-zero component along it
(e.g. Nesterov, *Lectures on Convex Optimization*, 2018, §1.2.3).

>>> import numpy as np
>>> from nablab.theory import gd_threshold, stability_threshold
>>> stability_threshold(1.0)               # f = theta^2 / 2: diverges iff lr > 2
2.0
>>> X = np.array([[3.0, 0.0], [0.0, 1.0]])
>>> gd_threshold(X)                        # f = 1/2 ||X theta - y||^2: 2 / rho(X^T X) = 2/9
0.2222222222222222
"""

from __future__ import annotations

import numpy as np

from nablab.checks import check_count
from nablab.theory._checks import as_matrix, positive

__all__ = ["spectral_radius", "lambda_max", "stability_threshold", "gd_threshold",
           "gd_contraction", "lsq_gd_closed_form"]


def spectral_radius(A) -> float:
    """``max |eigenvalue|`` of a square matrix (or ``|a|`` for a scalar).

    >>> import numpy as np
    >>> round(spectral_radius(np.array([[0.0, 2.0], [-2.0, 0.0]])), 12)   # eigenvalues +-2i
    2.0
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim == 0:
        return float(abs(A))
    A = as_matrix(A, "A")
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got shape {A.shape}")
    return float(np.abs(np.linalg.eigvals(A)).max())


def lambda_max(H) -> float:
    """The largest eigenvalue of a symmetric matrix (``eigvalsh``), or the scalar itself.

    >>> import numpy as np
    >>> lambda_max(np.array([[2.0, 1.0], [1.0, 2.0]]))
    3.0
    """
    H = np.asarray(H, dtype=np.float64)
    if H.ndim == 0:
        if not np.isfinite(H):
            raise ValueError(f"the curvature must be finite, got {float(H)!r}")
        return float(H)
    H = as_matrix(H, "H")
    if H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be square, got shape {H.shape}")
    asym = np.abs(H - H.T).max()
    if asym > 1e-10 * max(1.0, np.abs(H).max()):
        raise ValueError(f"H must be symmetric (a Hessian); max |H - H^T| = {asym:.3g}")
    return float(np.linalg.eigvalsh((H + H.T) / 2)[-1])


def stability_threshold(H) -> float:
    """The GD step size above which GD on the quadratic with Hessian ``H`` diverges: ``2 / lambda_max``.

    ``H`` is a symmetric matrix or a scalar curvature (``f''`` at a minimum,
    for the local question of whether GD can settle there). Returns ``inf``
    when ``lambda_max <= 0`` (no positive curvature: no step is too large for
    the stable directions).

    >>> stability_threshold(20.0)      # a sharp minimum with f'' = 20: GD must use lr < 0.1
    0.1
    """
    top = lambda_max(H)
    return float("inf") if top <= 0 else 2.0 / top


def gd_threshold(X, *, scale: float = 1.0) -> float:
    """``2 / rho(scale X^T X)``: the largest stable GD step for ``f = scale/2 ||X theta - y||^2``.

    The default ``scale = 1`` is ``f = 1/2 ||X theta - Y||^2``; for
    the mean squared error ``(1/n) ||X w - t||^2`` (Hessian ``(2/n) X^T X``)
    pass ``scale = 2 / n``. ``rho(X^T X)`` is the squared largest singular
    value of X, taken from the SVD so ``X^T X`` is never formed.

    >>> import numpy as np
    >>> X = np.array([[1.0, 1.0]])
    >>> round(gd_threshold(X), 12), round(gd_threshold(X, scale=2.0), 12)
    (1.0, 0.5)
    """
    X = as_matrix(X)
    scale = positive(scale, "scale")
    sigma = np.linalg.norm(X, 2)
    if sigma == 0:
        return float("inf")
    return float(2.0 / (scale * sigma * sigma))


def gd_contraction(H, lr: float) -> float:
    """``max_i |1 - lr lambda_i|``: the factor by which GD shrinks (or grows) the error per step.

    The spectral radius of ``I - lr H``; below 1 exactly when
    ``0 < lr < stability_threshold(H)`` (and ``H`` is positive definite).

    >>> gd_contraction(1.0, 2.5)     # theta^2/2 with lr = 2.5: |1 - 2.5| = 1.5 per step
    1.5
    """
    lr = positive(lr, "lr", allow_zero=True)
    H = np.asarray(H, dtype=np.float64)
    if H.ndim == 0:
        return float(abs(1.0 - lr * float(H)))
    lambda_max(H)  # validates shape and symmetry
    lam = np.linalg.eigvalsh((H + H.T) / 2)
    return float(np.abs(1.0 - lr * lam).max())


def lsq_gd_closed_form(X, y, theta0, lr: float, steps: int) -> np.ndarray:
    """The GD iterate ``theta_k`` on ``f = 1/2 ||X theta - y||^2`` without running GD.

    With ``theta* = X^+ y`` the normal equations give
    ``theta_k - theta* = (I - lr X^T X)^k (theta_0 - theta*)``; in the SVD
    ``X = U S V^T`` this is ``V diag((1 - lr s^2)^k) V^T e_0`` plus the part
    of ``e_0`` outside the row space, which GD never changes. Returns
    ``theta_steps`` for ``steps`` = 0, 1, ... (overflow gives ``inf``: divergence).

    >>> import numpy as np
    >>> lsq_gd_closed_form(np.array([[1.0]]), np.array([0.0]), np.array([1.0]), 2.5, 3)
    array([-3.375])
    """
    X = as_matrix(X)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X {X.shape}, got {y.shape}")
    theta0 = np.asarray(theta0, dtype=np.float64)
    if theta0.shape != (X.shape[1],):
        raise ValueError(f"theta0 must have shape ({X.shape[1]},) to match X {X.shape}, "
                         f"got {theta0.shape}")
    lr = positive(lr, "lr", allow_zero=True)
    if check_count("steps", steps) == 0:
        return theta0.copy()
    theta_star = np.linalg.lstsq(X, y, rcond=None)[0]
    _, s, vt = np.linalg.svd(X, full_matrices=True)
    lam = np.zeros(X.shape[1])
    lam[: s.size] = s * s
    e0 = vt @ (theta0 - theta_star)  # coordinates in the eigenbasis of X^T X
    with np.errstate(over="ignore", invalid="ignore"):
        ek = (1.0 - lr * lam) ** steps * e0
        return theta_star + vt.T @ ek
