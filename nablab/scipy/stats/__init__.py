"""``scipy.stats`` distributions with derivative rules: ``norm``, ``t``, ``gamma``, ``beta``,
``chi2``, ``poisson``, ``dirichlet``, ``multivariate_normal``, each a module with the
functions (``pdf``, ``logpdf``, ``cdf``, ``logcdf``, ...) of SciPy's distribution of that name."""

import importlib as _importlib

DISTRIBUTIONS = ["norm", "t", "gamma", "beta", "chi2", "poisson", "dirichlet", "multivariate_normal"]
__all__ = list(DISTRIBUTIONS)


def __getattr__(name):
    if name in DISTRIBUTIONS:
        try:
            return _importlib.import_module(f"nablab.scipy.stats.{name}")
        except ModuleNotFoundError:
            pass
    raise AttributeError(f"module 'nablab.scipy.stats' has no attribute {name!r}")
