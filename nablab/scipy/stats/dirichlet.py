"""``scipy.stats.dirichlet`` with derivative rules in x and alpha.

As in SciPy, the first axis of x holds the K components (x may have K - 1 of
them: the last is then ``1 - sum(x)``, and differentiated as such), and x must
lie on the simplex to within 1e-9 (perturb it along the simplex, e.g. through
``x / sum(x)``).  ``pdf``, ``logpdf``, ``mean``, ``var`` and ``entropy`` are
differentiable; ``rvs`` and ``cov`` work on constants.
"""

from __future__ import annotations

import numpy as np
import scipy.stats as _ss

from nablab.numpy import concatenate, exp, expand_dims, squeeze, sum as _sum
from nablab.scipy import special as _sp
from nablab.scipy.stats._frame import array_arg, fill_distribution, finish, plain


def _check_alpha(alpha):
    av = plain(alpha)
    if av.ndim != 1:
        raise ValueError(f"scipy.stats.dirichlet: alpha must be one-dimensional, got shape {av.shape}")
    if av.size == 0 or np.min(av) <= 0:
        raise ValueError(f"scipy.stats.dirichlet: every alpha must be > 0, got {av}")
    return av


def _complete(x, av):
    """x with its K components along axis 0, the last one filled in as 1 - sum when missing."""
    xv = plain(x)
    k = av.shape[0]
    if xv.ndim == 0 or xv.shape[0] not in (k, k - 1):
        raise ValueError(f"scipy.stats.dirichlet: x must have {k} or {k - 1} entries along its first "
                         f"axis (alpha has {k}), got shape {xv.shape}")
    if xv.ndim > 2:
        raise ValueError(f"scipy.stats.dirichlet: x must be 1-D or 2-D, got shape {xv.shape}")
    if xv.shape[0] == k - 1:
        x = concatenate([x, expand_dims(1.0 - _sum(x, axis=0), 0)], axis=0)
        xv = plain(x)
    if np.min(xv) < 0 or np.max(xv) > 1:
        raise ValueError(f"scipy.stats.dirichlet: every entry of x must be in [0, 1], got {xv}")
    small = av < 1 if xv.ndim == 1 else (av < 1)[:, None]
    if np.any((xv == 0) & small):
        raise ValueError("scipy.stats.dirichlet: an entry of x is 0 where its alpha is < 1 (density infinite)")
    total = np.sum(xv, axis=0)
    if np.any(np.abs(total - 1.0) > 10e-10):
        raise ValueError(f"scipy.stats.dirichlet: x must lie on the simplex; its sums are {total}")
    return x


def _log_b(alpha):
    return _sum(_sp.gammaln(alpha)) - _sp.gammaln(_sum(alpha))


def _logpdf(x, alpha):
    alpha = array_arg(alpha)
    av = _check_alpha(alpha)
    x = _complete(array_arg(x), av)
    terms = _sp.xlogy(alpha - 1.0, x.T).T
    return _sum(terms, axis=0) - _log_b(alpha)


def _squeeze(out):
    return finish(squeeze(out))


def logpdf(x, alpha):
    """Log density ``sum((alpha - 1) log x) - log B(alpha)``; differentiable in x and alpha."""
    return _squeeze(_logpdf(x, alpha))


def pdf(x, alpha):
    """Density ``prod(x^(alpha - 1)) / B(alpha)``; differentiable in x and alpha."""
    return _squeeze(exp(_logpdf(x, alpha)))


def mean(alpha):
    """``alpha / sum(alpha)``; differentiable in alpha."""
    alpha = array_arg(alpha)
    _check_alpha(alpha)
    return alpha / _sum(alpha)


def var(alpha):
    """Variances of the components; differentiable in alpha."""
    alpha = array_arg(alpha)
    _check_alpha(alpha)
    a0 = _sum(alpha)
    return (alpha * (a0 - alpha)) / ((a0 * a0) * (a0 + 1))


def entropy(alpha):
    """Differential entropy ``log B + (a0 - K) psi(a0) - sum((a - 1) psi(a))``; differentiable in alpha."""
    alpha = array_arg(alpha)
    av = _check_alpha(alpha)
    a0 = _sum(alpha)
    out = _log_b(alpha) + (a0 - av.shape[0]) * _sp.digamma(a0) - _sum((alpha - 1.0) * _sp.digamma(alpha))
    return finish(out)


__all__ = ["pdf", "logpdf", "mean", "var", "entropy"]
fill_distribution(globals(), _ss.dirichlet, "dirichlet")
