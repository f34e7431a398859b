"""``scipy.stats.t`` (Student's t) with derivative rules.

``pdf`` and ``logpdf`` are differentiable in x, df, loc and scale.  The
distribution functions (``cdf``, ``sf``, ``logcdf``, ``logsf``) are
differentiable in x, loc and scale; their derivative in df has no closed form,
so a traced df raises an error naming the function (as HIPS autograd, which
also leaves it out).  ``df = inf`` is the normal distribution, as in SciPy.
"""

from __future__ import annotations

import numpy as np
import scipy.stats as _ss

from nablab.numpy import exp, log, log1p, where
from nablab.autodiff.core import value_of
from nablab.scipy import special as _sp
from nablab.scipy.stats._frame import continuous, fill_distribution, split

_LOG_SQRT_2PI = float(0.5 * np.log(2.0 * np.pi))
_LOG_PI = float(np.log(np.pi))


def _logpdf_kernel(z, df):
    """SciPy's ``log(poch(df/2, 1/2)) - log(df pi) / 2 - (df + 1)/2 log1p(z^2 / df)``; normal at df = inf."""
    def student(d):
        return log(_sp.poch(0.5 * d, 0.5)) - 0.5 * (log(d) + _LOG_PI) - (d + 1) / 2 * log1p(z * z / d)

    finite = np.isfinite(np.asarray(value_of(df)))
    if finite.all():
        return student(df)
    normal = -z * z / 2.0 - _LOG_SQRT_2PI
    return where(finite, student(where(finite, df, 1.0)), normal)


def _cdf(z, df):
    return _sp.stdtr(df, z)


def _sf(z, df):
    return _sp.stdtr(df, -z)


# SciPy's log cdf: log(cdf) below the median (0), log1p(-sf) above it, and the mirror for logsf.
_KERNELS = {
    "pdf": lambda z, df: exp(_logpdf_kernel(z, df)),
    "logpdf": _logpdf_kernel,
    "cdf": _cdf,
    "sf": _sf,
    "logcdf": lambda z, df: split(np.asarray(value_of(z)) < 0, z, 0.0,
                                  lambda u: log(_cdf(u, df)), lambda u: log1p(-_sf(u, df))),
    "logsf": lambda z, df: split(np.asarray(value_of(z)) > 0, z, 0.0,
                                 lambda u: log(_sf(u, df)), lambda u: log1p(-_cdf(u, df))),
}


def _t(kind, x, df, loc, scale):
    return continuous("t", kind, _KERNELS[kind], x, [("df", df)], loc, scale,
                      argcheck=lambda d: d > 0, support=lambda d: (-np.inf, np.inf), inner=0.0,
                      refuse=() if kind in ("pdf", "logpdf") else ("df",))


def pdf(x, df, loc=0.0, scale=1.0):
    """Student t density; differentiable in x, df, loc and scale."""
    return _t("pdf", x, df, loc, scale)


def logpdf(x, df, loc=0.0, scale=1.0):
    """Log of the Student t density; differentiable in x, df, loc and scale."""
    return _t("logpdf", x, df, loc, scale)


def cdf(x, df, loc=0.0, scale=1.0):
    """Distribution function ``stdtr(df, z)``; differentiable in x, loc and scale (df a constant)."""
    return _t("cdf", x, df, loc, scale)


def sf(x, df, loc=0.0, scale=1.0):
    """Survival function ``stdtr(df, -z)``; differentiable in x, loc and scale (df a constant)."""
    return _t("sf", x, df, loc, scale)


def logcdf(x, df, loc=0.0, scale=1.0):
    """Log distribution function; differentiable in x, loc and scale (df a constant)."""
    return _t("logcdf", x, df, loc, scale)


def logsf(x, df, loc=0.0, scale=1.0):
    """Log survival function; differentiable in x, loc and scale (df a constant)."""
    return _t("logsf", x, df, loc, scale)


__all__ = ["pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"]
fill_distribution(globals(), _ss.t, "t")
