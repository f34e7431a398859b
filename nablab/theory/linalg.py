"""Least squares, minimum-norm solutions and the row space of X, computed stably.

Everything goes through the SVD (``numpy.linalg.lstsq``, ``numpy.linalg.svd``):
an explicit inverse of ``X X^T`` or ``X^T X`` squares the condition number and
is never formed.

>>> import numpy as np
>>> from nablab.theory import min_norm_solution, distance_to_row_space
>>> X, t = np.array([[1.0, 1.0]]), np.array([3.0])
>>> min_norm_solution(X, t)            # X^T (X X^T)^-1 t without the inverse
array([1.5, 1.5])
>>> float(distance_to_row_space(X, np.array([1.0, -1.0])))   # orthogonal to [1, 1]
1.4142135623730951
"""

from __future__ import annotations

import numpy as np

from nablab.theory._checks import as_matrix

__all__ = ["lstsq", "min_norm_solution", "pinv", "rank", "row_space_basis",
           "project_row_space", "distance_to_row_space"]


def _rhs(X: np.ndarray, y, name: str = "y") -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] != X.shape[0]:
        raise ValueError(f"{name} must have shape ({X.shape[0]},) or ({X.shape[0]}, k) to match "
                         f"X of shape {X.shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite entries")
    return arr


def lstsq(X, y, *, rcond: float | None = None) -> np.ndarray:
    """The least-squares solution of smallest norm, ``X^+ y``.

    Among all minimizers of ``||X theta - y||`` it returns the one of least
    Euclidean norm, whether the system is over- or underdetermined or rank
    deficient. Singular values below ``rcond * max(singular value)`` count as
    zero (NumPy's default: machine epsilon times ``max(X.shape)``).

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> lstsq(X, np.array([1.0, 1.0, 3.0]))      # overdetermined: the normal equations' solution
    array([1.33333333, 1.33333333])
    """
    X = as_matrix(X)
    y = _rhs(X, y)
    return np.linalg.lstsq(X, y, rcond=rcond)[0]


def min_norm_solution(X, t, *, rcond: float | None = None) -> np.ndarray:
    """``X^T (X X^T)^-1 t`` for a full-row-rank ``X`` (d > n), computed as ``X^+ t``.

    It is the point of least norm on the solution set ``{w : X w = t}``, and
    the limit of (S)GD on least squares started at zero: every iterate stays in the
    row space of X, and this is the only solution there. For rank-deficient or
    inconsistent systems it is the minimum-norm least-squares point, the
    same as :func:`lstsq`.

    >>> import numpy as np
    >>> min_norm_solution(np.array([[1.0, 2.0]]), np.array([3.0]))
    array([0.6, 1.2])
    """
    return lstsq(X, t, rcond=rcond)


def pinv(X, *, rtol: float | None = None) -> np.ndarray:
    """The Moore-Penrose pseudo-inverse by the SVD (``numpy.linalg.pinv``).

    ``rtol`` is relative to the largest singular value; by default
    ``max(X.shape) * eps``, the same cut-off :func:`rank` uses.

    >>> import numpy as np
    >>> pinv(np.array([[2.0, 0.0]]))
    array([[0.5],
           [0. ]])
    """
    X = as_matrix(X)
    return np.linalg.pinv(X, rcond=_rtol(X, rtol))


def _rtol(X: np.ndarray, rtol: float | None) -> float:
    if rtol is None:
        return max(X.shape) * np.finfo(np.float64).eps
    rtol = float(rtol)
    if not (0 <= rtol < 1):
        raise ValueError(f"rtol must be in [0, 1), got {rtol!r}")
    return rtol


def _svd_rank(s: np.ndarray, X: np.ndarray, rtol: float | None) -> int:
    if s.size == 0 or s[0] == 0:
        return 0
    return int(np.sum(s > _rtol(X, rtol) * s[0]))


def rank(X, *, rtol: float | None = None) -> int:
    """Numerical rank: singular values above ``rtol * max singular value``.

    >>> import numpy as np
    >>> rank(np.array([[1.0, 2.0], [2.0, 4.0]]))
    1
    """
    X = as_matrix(X)
    return _svd_rank(np.linalg.svd(X, compute_uv=False), X, rtol)


def row_space_basis(X, *, rtol: float | None = None) -> np.ndarray:
    """An orthonormal basis of the row space of ``X``: a (p, r) matrix, r = rank.

    The columns are the right singular vectors with non-negligible singular
    values, so ``Q.T @ Q = I`` and ``Q @ Q.T`` projects onto span of the rows.

    >>> import numpy as np
    >>> Q = row_space_basis(np.array([[3.0, 4.0], [6.0, 8.0]]))
    >>> Q.shape, np.allclose(abs(Q[:, 0]), [0.6, 0.8])
    ((2, 1), True)
    """
    X = as_matrix(X)
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    return vt[: _svd_rank(s, X, rtol)].T


def _points(X: np.ndarray, w) -> np.ndarray:
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != X.shape[1]:
        raise ValueError(f"w must have a last axis of length {X.shape[1]} (the columns of X, "
                         f"shape {X.shape}), got shape {arr.shape}")
    return arr


def project_row_space(X, w, *, rtol: float | None = None) -> np.ndarray:
    """Orthogonal projection of ``w`` onto the row space of ``X``.

    ``w`` has shape (p,) or (..., p): each row along the last axis is one
    point (a batch of iterates, say).

    >>> import numpy as np
    >>> project_row_space(np.array([[1.0, 1.0]]), np.array([3.0, 1.0]))
    array([2., 2.])
    """
    X = as_matrix(X)
    w = _points(X, w)
    Q = row_space_basis(X, rtol=rtol)
    return (w @ Q) @ Q.T


def distance_to_row_space(X, w, *, rtol: float | None = None) -> np.ndarray | float:
    """Euclidean distance from ``w`` (shape (p,) or (..., p)) to the row space of ``X``.

    Computed as the norm of the residual ``w - Q Q^T w``; zero (to rounding)
    for every iterate of (S)GD started in the row space.

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> distance_to_row_space(X, np.array([[1.0, 2.0, 0.0], [0.0, 0.0, -2.0]]))
    array([0., 2.])
    """
    X = as_matrix(X)
    w = _points(X, w)
    out = np.linalg.norm(w - project_row_space(X, w, rtol=rtol), axis=-1)
    return float(out) if out.ndim == 0 else out
