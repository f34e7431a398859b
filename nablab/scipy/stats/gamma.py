"""``scipy.stats.gamma`` with derivative rules.

``pdf`` and ``logpdf`` are differentiable in x, the shape a, loc and scale;
the distribution functions (``cdf``, ``sf``, ``logcdf``, ``logsf``) in x, loc
and scale, with a a constant (their derivative in a has no closed form; a
traced a raises an error naming the function).
"""

from __future__ import annotations

import numpy as np
import scipy.stats as _ss

from nablab.numpy import exp
from nablab.scipy import special as _sp
from nablab.scipy.stats._frame import continuous, fill_distribution, log_tails


def _logpdf_kernel(z, a):
    return _sp.xlogy(a - 1.0, z) - z - _sp.gammaln(a)


def _cdf(z, a):
    return _sp.gammainc(a, z)


def _sf(z, a):
    return _sp.gammaincc(a, z)


_logcdf, _logsf = log_tails(_cdf, _sf, lambda a: _sp.gammaincinv(a, 0.5))
_KERNELS = {"pdf": lambda z, a: exp(_logpdf_kernel(z, a)), "logpdf": _logpdf_kernel,
            "cdf": _cdf, "sf": _sf, "logcdf": _logcdf, "logsf": _logsf}


def _gamma(kind, x, a, loc, scale):
    return continuous("gamma", kind, _KERNELS[kind], x, [("a", a)], loc, scale,
                      argcheck=lambda a: a > 0, support=lambda a: (0.0, np.inf), inner=1.0,
                      refuse=() if kind in ("pdf", "logpdf") else ("a",))


def pdf(x, a, loc=0.0, scale=1.0):
    """Gamma density ``z^(a-1) e^-z / (gamma(a) scale)``; differentiable in x, a, loc and scale."""
    return _gamma("pdf", x, a, loc, scale)


def logpdf(x, a, loc=0.0, scale=1.0):
    """Log of the gamma density; differentiable in x, a, loc and scale."""
    return _gamma("logpdf", x, a, loc, scale)


def cdf(x, a, loc=0.0, scale=1.0):
    """Distribution function ``gammainc(a, z)``; differentiable in x, loc and scale (a a constant)."""
    return _gamma("cdf", x, a, loc, scale)


def sf(x, a, loc=0.0, scale=1.0):
    """Survival function ``gammaincc(a, z)``; differentiable in x, loc and scale (a a constant)."""
    return _gamma("sf", x, a, loc, scale)


def logcdf(x, a, loc=0.0, scale=1.0):
    """Log distribution function; differentiable in x, loc and scale (a a constant)."""
    return _gamma("logcdf", x, a, loc, scale)


def logsf(x, a, loc=0.0, scale=1.0):
    """Log survival function; differentiable in x, loc and scale (a a constant)."""
    return _gamma("logsf", x, a, loc, scale)


__all__ = ["pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"]
fill_distribution(globals(), _ss.gamma, "gamma")
