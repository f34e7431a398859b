"""``logsumexp`` where old SciPy (and HIPS autograd) kept it: ``nablab.scipy.special.logsumexp``."""

from nablab.scipy.special import logsumexp

__all__ = ["logsumexp"]
