"""``scipy.stats.beta`` with derivative rules.

``pdf`` and ``logpdf`` are differentiable in x, a, b, loc and scale; the
distribution functions (``cdf``, ``sf``, ``logcdf``, ``logsf``) in x, loc and
scale, with a and b constants (their derivatives in the shapes have no closed
form; a traced shape raises an error naming the function).
"""

from __future__ import annotations

import scipy.stats as _ss

from nablab.numpy import exp
from nablab.scipy import special as _sp
from nablab.scipy.stats._frame import continuous, fill_distribution, log_tails


def _logpdf_kernel(z, a, b):
    return _sp.xlog1py(b - 1.0, -z) + _sp.xlogy(a - 1.0, z) - _sp.betaln(a, b)


def _cdf(z, a, b):
    return _sp.betainc(a, b, z)


def _sf(z, a, b):
    return _sp.betaincc(a, b, z)


_logcdf, _logsf = log_tails(_cdf, _sf, lambda a, b: _sp.betaincinv(a, b, 0.5))
_KERNELS = {"pdf": lambda z, a, b: exp(_logpdf_kernel(z, a, b)), "logpdf": _logpdf_kernel,
            "cdf": _cdf, "sf": _sf, "logcdf": _logcdf, "logsf": _logsf}


def _beta(kind, x, a, b, loc, scale):
    return continuous("beta", kind, _KERNELS[kind], x, [("a", a), ("b", b)], loc, scale,
                      argcheck=lambda a, b: (a > 0) & (b > 0), support=lambda a, b: (0.0, 1.0),
                      inner=0.5, refuse=() if kind in ("pdf", "logpdf") else ("a", "b"))


def pdf(x, a, b, loc=0.0, scale=1.0):
    """Beta density ``z^(a-1) (1-z)^(b-1) / (B(a, b) scale)``; differentiable in x, a, b, loc and scale."""
    return _beta("pdf", x, a, b, loc, scale)


def logpdf(x, a, b, loc=0.0, scale=1.0):
    """Log of the beta density; differentiable in x, a, b, loc and scale."""
    return _beta("logpdf", x, a, b, loc, scale)


def cdf(x, a, b, loc=0.0, scale=1.0):
    """Distribution function ``betainc(a, b, z)``; differentiable in x, loc and scale (a, b constants)."""
    return _beta("cdf", x, a, b, loc, scale)


def sf(x, a, b, loc=0.0, scale=1.0):
    """Survival function ``betaincc(a, b, z)``; differentiable in x, loc and scale (a, b constants)."""
    return _beta("sf", x, a, b, loc, scale)


def logcdf(x, a, b, loc=0.0, scale=1.0):
    """Log distribution function; differentiable in x, loc and scale (a, b constants)."""
    return _beta("logcdf", x, a, b, loc, scale)


def logsf(x, a, b, loc=0.0, scale=1.0):
    """Log survival function; differentiable in x, loc and scale (a, b constants)."""
    return _beta("logsf", x, a, b, loc, scale)


__all__ = ["pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"]
fill_distribution(globals(), _ss.beta, "beta")
