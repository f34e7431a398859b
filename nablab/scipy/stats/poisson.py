"""``scipy.stats.poisson`` with derivative rules in the rate ``mu``.

The count k and the shift loc are constants (a traced value there raises an
error naming the function); every function is differentiable in mu.
"""

from __future__ import annotations

import scipy.stats as _ss

from nablab.numpy import exp, log
from nablab.scipy import special as _sp
from nablab.scipy.stats._frame import discrete, fill_distribution


def _logpmf_kernel(k, mu):
    return _sp.xlogy(k, mu) - _sp.gammaln(k + 1.0) - mu


_KERNELS = {
    "pmf": lambda k, mu: exp(_logpmf_kernel(k, mu)),
    "logpmf": _logpmf_kernel,
    "cdf": lambda k, mu: _sp.pdtr(k, mu),
    "sf": lambda k, mu: _sp.pdtrc(k, mu),
    "logcdf": lambda k, mu: log(_sp.pdtr(k, mu)),
    "logsf": lambda k, mu: log(_sp.pdtrc(k, mu)),
}


def _poisson(kind, k, mu, loc):
    return discrete("poisson", kind, _KERNELS[kind], k, [("mu", mu)], loc,
                    argcheck=lambda mu: mu >= 0, safe=(1.0,))


def pmf(k, mu, loc=0):
    """Probability ``e^-mu mu^k / k!`` of the count k; differentiable in mu."""
    return _poisson("pmf", k, mu, loc)


def logpmf(k, mu, loc=0):
    """Log probability ``k log(mu) - log(k!) - mu``; differentiable in mu."""
    return _poisson("logpmf", k, mu, loc)


def cdf(k, mu, loc=0):
    """Probability of at most floor(k) events, ``pdtr(floor(k), mu)``; differentiable in mu."""
    return _poisson("cdf", k, mu, loc)


def sf(k, mu, loc=0):
    """Probability of more than floor(k) events; differentiable in mu."""
    return _poisson("sf", k, mu, loc)


def logcdf(k, mu, loc=0):
    """Log of ``cdf``; differentiable in mu."""
    return _poisson("logcdf", k, mu, loc)


def logsf(k, mu, loc=0):
    """Log of ``sf``; differentiable in mu."""
    return _poisson("logsf", k, mu, loc)


__all__ = ["pmf", "logpmf", "cdf", "logcdf", "sf", "logsf"]
fill_distribution(globals(), _ss.poisson, "poisson")
