"""``scipy.stats.chi2`` with derivative rules.

``pdf`` and ``logpdf`` are differentiable in x, df, loc and scale (HIPS
autograd differentiates them in x only); the distribution functions (``cdf``,
``sf``, ``logcdf``, ``logsf``) in x, loc and scale, with df a constant (a
traced df raises an error naming the function).
"""

from __future__ import annotations

import numpy as np
import scipy.stats as _ss

from nablab.numpy import exp
from nablab.scipy import special as _sp
from nablab.scipy.stats._frame import continuous, fill_distribution, log_tails

_LOG2 = float(np.log(2.0))


def _logpdf_kernel(z, df):
    return _sp.xlogy(df / 2.0 - 1.0, z) - z / 2.0 - _sp.gammaln(df / 2.0) - (_LOG2 * df) / 2.0


def _cdf(z, df):
    return _sp.chdtr(df, z)


def _sf(z, df):
    return _sp.chdtrc(df, z)


_logcdf, _logsf = log_tails(_cdf, _sf, lambda df: 2.0 * _sp.gammaincinv(df / 2.0, 0.5))
_KERNELS = {"pdf": lambda z, df: exp(_logpdf_kernel(z, df)), "logpdf": _logpdf_kernel,
            "cdf": _cdf, "sf": _sf, "logcdf": _logcdf, "logsf": _logsf}


def _chi2(kind, x, df, loc, scale):
    return continuous("chi2", kind, _KERNELS[kind], x, [("df", df)], loc, scale,
                      argcheck=lambda df: df > 0, support=lambda df: (0.0, np.inf), inner=1.0,
                      refuse=() if kind in ("pdf", "logpdf") else ("df",))


def pdf(x, df, loc=0.0, scale=1.0):
    """Chi-square density; differentiable in x, df, loc and scale."""
    return _chi2("pdf", x, df, loc, scale)


def logpdf(x, df, loc=0.0, scale=1.0):
    """Log of the chi-square density; differentiable in x, df, loc and scale."""
    return _chi2("logpdf", x, df, loc, scale)


def cdf(x, df, loc=0.0, scale=1.0):
    """Distribution function ``chdtr(df, z)``; differentiable in x, loc and scale (df a constant)."""
    return _chi2("cdf", x, df, loc, scale)


def sf(x, df, loc=0.0, scale=1.0):
    """Survival function ``chdtrc(df, z)``; differentiable in x, loc and scale (df a constant)."""
    return _chi2("sf", x, df, loc, scale)


def logcdf(x, df, loc=0.0, scale=1.0):
    """Log distribution function; differentiable in x, loc and scale (df a constant)."""
    return _chi2("logcdf", x, df, loc, scale)


def logsf(x, df, loc=0.0, scale=1.0):
    """Log survival function; differentiable in x, loc and scale (df a constant)."""
    return _chi2("logsf", x, df, loc, scale)


__all__ = ["pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"]
fill_distribution(globals(), _ss.chi2, "chi2")
