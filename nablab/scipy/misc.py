"""``logsumexp`` where old SciPy (and HIPS autograd) kept it."""

from nablab.autodiff.ops import logsumexp

__all__ = ["logsumexp"]
