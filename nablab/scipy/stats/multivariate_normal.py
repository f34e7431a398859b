"""``scipy.stats.multivariate_normal`` with derivative rules in x, mean and cov.

``pdf`` and ``logpdf`` broadcast over batches of x (the last axis holds the
components) and ``entropy`` takes ``(mean, cov)``, as in SciPy; ``cov`` may be a
scalar, a vector (a diagonal) or a matrix.

cov is used through its symmetric part ``(cov + cov.T) / 2`` (SciPy reads
only its lower triangle; the two agree on every covariance matrix), so the
gradient with respect to cov is symmetric, as HIPS autograd's and JAX's.  A singular cov (``allow_singular=True``) is
differentiable in x and mean but not in cov (the pseudo-determinant has no
derivative across rank changes): a traced singular cov raises an error naming
the function.  ``cdf``, ``logcdf`` and ``rvs`` work on constants only.
"""

from __future__ import annotations

import numpy as np
import scipy.stats as _ss

from nablab.autodiff.dispatch import UnsupportedFunctionError, holds_traced
from nablab.numpy import exp, linalg, matmul, reshape, sum as _sum, where
from nablab.scipy.stats._frame import array_arg, fill_distribution, finish, plain

_LOG_2PI = float(np.log(2.0 * np.pi))


def _parameters(mean, cov):
    """SciPy's checks: (dim, mean as a vector, cov as a matrix), each differentiable."""
    cov = array_arg(1.0 if cov is None else cov)
    cv = plain(cov)
    if mean is None:
        dim = 1 if cv.ndim < 2 else cv.shape[0]
        mean = np.zeros(dim)
    else:
        mean = array_arg(mean)
        dim = plain(mean).size
    if dim == 1:
        mean, cov = reshape(mean, (1,)), reshape(cov, (1, 1))
        cv = plain(cov)
    mv = plain(mean)
    if mv.ndim != 1 or mv.shape[0] != dim:
        raise ValueError(f"multivariate_normal: mean must be a vector of length {dim}, got shape {mv.shape}")
    if cv.ndim == 0:
        cov = cov * np.eye(dim)
    elif cv.ndim == 1:
        if cv.shape[0] != dim:
            raise ValueError(f"multivariate_normal: cov has {cv.shape[0]} diagonal entries but mean has {dim}")
        cov = reshape(cov, (dim, 1)) * np.eye(dim)
    elif cv.ndim == 2 and cv.shape != (dim, dim):
        raise ValueError(f"multivariate_normal: cov has shape {cv.shape} but mean has length {dim}")
    elif cv.ndim > 2:
        raise ValueError(f"multivariate_normal: cov must be at most 2-D, got shape {cv.shape}")
    return dim, mean, cov


def _quantiles(x, dim):
    x = array_arg(x)
    shape = plain(x).shape
    if len(shape) == 0:
        return reshape(x, (1,))
    if len(shape) == 1:
        return reshape(x, (shape[0], 1) if dim == 1 else (1, shape[0]))
    return x


class _Spectrum:
    """SciPy's eigen-analysis of a constant covariance: rank, pseudo-inverse root, null space."""

    def __init__(self, cv, allow_singular):
        s, u = np.linalg.eigh(0.5 * (cv + cv.T))
        eps = 1e6 * np.finfo(np.float64).eps * np.max(np.abs(s))
        if np.min(s) < -eps:
            raise ValueError("multivariate_normal: the covariance must be symmetric positive semidefinite; "
                             f"its smallest eigenvalue is {np.min(s):.3g}")
        kept = s > eps
        if not kept.all() and not allow_singular:
            raise np.linalg.LinAlgError(
                "multivariate_normal: the covariance is singular (rank "
                f"{int(kept.sum())} of {len(s)}); pass allow_singular=True for a degenerate distribution")
        self.rank = int(kept.sum())
        self.log_pdet = float(np.sum(np.log(s[kept])))
        self.root = u * np.sqrt(np.where(kept, 1.0 / np.where(kept, s, 1.0), 0.0))
        self.null = u[:, ~kept]
        self.tol = 1e3 * eps


def _refuse_singular(fname, spectrum, dim):
    raise UnsupportedFunctionError(
        f"scipy.stats.multivariate_normal.{fname}: cov was given a traced value but it is singular "
        f"(rank {spectrum.rank} of {dim}); the pseudo-determinant has no derivative there. "
        "Pass a constant cov (x and mean stay differentiable).")


def _symmetric(cov):
    return 0.5 * (cov + cov.T)


def _logpdf(x, mean, cov, allow_singular, fname):
    dim, mean, cov = _parameters(mean, cov)
    x = _quantiles(x, dim)
    spectrum = _Spectrum(plain(cov), allow_singular)
    dev = x - mean
    batch = plain(dev).shape[:-1]
    if holds_traced(cov):
        if spectrum.rank < dim:
            _refuse_singular(fname, spectrum, dim)
        c = _symmetric(cov)
        rows = reshape(dev, (-1, dim))
        solved = linalg.solve(c, rows.T).T
        maha = reshape(_sum(rows * solved, axis=-1), batch)
        return -0.5 * (dim * _LOG_2PI + linalg.slogdet(c)[1] + maha)
    white = matmul(dev, spectrum.root)
    out = -0.5 * (spectrum.rank * _LOG_2PI + spectrum.log_pdet + _sum(white * white, axis=-1))
    if spectrum.rank < dim:
        inside = np.linalg.norm(plain(dev) @ spectrum.null, axis=-1) < spectrum.tol
        out = where(inside, out, -np.inf)
    return out


def _squeeze(out):
    shape = tuple(d for d in plain(out).shape if d != 1)
    return finish(reshape(out, shape))


def logpdf(x, mean=None, cov=1, allow_singular=False):
    """Log density over the last axis of x; differentiable in x, mean and cov."""
    return _squeeze(_logpdf(x, mean, cov, allow_singular, "logpdf"))


def pdf(x, mean=None, cov=1, allow_singular=False):
    """Density over the last axis of x; differentiable in x, mean and cov."""
    return _squeeze(exp(_logpdf(x, mean, cov, allow_singular, "pdf")))


def entropy(mean=None, cov=1):
    """Differential entropy ``(rank (log 2 pi + 1) + log pdet(cov)) / 2``; differentiable in cov."""
    dim, mean, cov = _parameters(mean, cov)
    spectrum = _Spectrum(plain(cov), allow_singular=True)
    if holds_traced(cov):
        if spectrum.rank < dim:
            _refuse_singular("entropy", spectrum, dim)
        return finish(0.5 * (dim * (_LOG_2PI + 1.0) + linalg.slogdet(_symmetric(cov))[1]))
    return finish(np.float64(0.5 * (spectrum.rank * (_LOG_2PI + 1.0) + spectrum.log_pdet)))


__all__ = ["pdf", "logpdf", "entropy"]
fill_distribution(globals(), _ss.multivariate_normal, "multivariate_normal")
