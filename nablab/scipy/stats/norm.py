"""``scipy.stats.norm`` with derivative rules in x, loc and scale.

The functions are SciPy's (same arguments, same values, ``nan`` for
``scale <= 0``); every one is differentiable in all three arguments.  SciPy's
other methods (``rvs``, ``fit``, ...) work on constants and refuse traced values.
"""

from __future__ import annotations

import numpy as np
import scipy.stats as _ss

from nablab.numpy import exp
from nablab.scipy import special as _sp
from nablab.scipy.stats._frame import continuous, fill_distribution

_LOG_SQRT_2PI = float(0.5 * np.log(2.0 * np.pi))
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))

_KERNELS = {
    "pdf": lambda z: exp(-z * z / 2.0) / _SQRT_2PI,
    "logpdf": lambda z: -z * z / 2.0 - _LOG_SQRT_2PI,
    "cdf": lambda z: _sp.ndtr(z),
    "sf": lambda z: _sp.ndtr(-z),
    "logcdf": lambda z: _sp.log_ndtr(z),
    "logsf": lambda z: _sp.log_ndtr(-z),
}


def _norm(kind, x, loc, scale):
    return continuous("norm", kind, _KERNELS[kind], x, [], loc, scale,
                      argcheck=lambda: np.bool_(True), support=lambda: (-np.inf, np.inf), inner=0.0)


def pdf(x, loc=0.0, scale=1.0):
    """Normal density ``exp(-z^2 / 2) / (sqrt(2 pi) scale)`` with ``z = (x - loc) / scale``."""
    return _norm("pdf", x, loc, scale)


def logpdf(x, loc=0.0, scale=1.0):
    """Log of the normal density."""
    return _norm("logpdf", x, loc, scale)


def cdf(x, loc=0.0, scale=1.0):
    """Normal distribution function ``ndtr(z)``."""
    return _norm("cdf", x, loc, scale)


def logcdf(x, loc=0.0, scale=1.0):
    """``log_ndtr(z)``, accurate far in the lower tail."""
    return _norm("logcdf", x, loc, scale)


def sf(x, loc=0.0, scale=1.0):
    """Survival function ``ndtr(-z)``."""
    return _norm("sf", x, loc, scale)


def logsf(x, loc=0.0, scale=1.0):
    """``log_ndtr(-z)``, accurate far in the upper tail."""
    return _norm("logsf", x, loc, scale)


__all__ = ["pdf", "logpdf", "cdf", "logcdf", "sf", "logsf"]
fill_distribution(globals(), _ss.norm, "norm")
