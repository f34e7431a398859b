"""The online-gradient-descent lemma and the O(1/sqrt(T)) rate of averaged GD.

Source: S. Shalev-Shwartz and S. Ben-David, *Understanding Machine Learning*
(Cambridge, 2014), Lemma 14.1 and Corollary 14.2.

Lemma (regret). For any vectors ``v_1..v_T`` and the iterates
``w_1 = 0, w_{t+1} = w_t - eta v_t``, and any ``w*``,

    sum_t <w_t - w*, v_t>  =  ||w*||^2 / (2 eta) + eta/2 sum_t ||v_t||^2
                              - ||w_{T+1} - w*||^2 / (2 eta),

so the left side is at most the first two terms, with equality iff
``w* = w_{T+1}``.

Rate. If f is convex, ``||w*|| <= B`` and ``||grad f(w_t)|| <= rho``, then
with ``eta = B / (rho sqrt(T))`` the average ``w_bar = (w_1 + ... + w_T)/T``
satisfies ``f(w_bar) - f(w*) <= B rho / sqrt(T)``.

>>> import numpy as np
>>> from nablab.theory import averaged_gd_step, averaged_gd_bound, regret_terms
>>> averaged_gd_step(B=2.0, rho=1.0, T=100), averaged_gd_bound(B=2.0, rho=1.0, T=100)
(0.2, 0.2)
>>> r = regret_terms(np.ones((4, 2)), w_star=np.zeros(2), eta=0.5)
>>> bool(r.lhs <= r.bound), bool(np.isclose(r.bound - r.lhs, r.slack))
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nablab.theory._checks import as_vector, count, positive

__all__ = ["averaged_gd_step", "averaged_gd_bound", "RegretTerms", "regret_terms"]


def averaged_gd_step(B: float, rho: float, T: int) -> float:
    """The step ``eta = B / (rho sqrt(T))`` that balances the two terms of the regret bound.

    >>> averaged_gd_step(1.0, 2.0, 16)
    0.125
    """
    B = positive(B, "B")
    rho = positive(rho, "rho")
    T = count(T, "T")
    return B / (rho * math.sqrt(T))


def averaged_gd_bound(B: float, rho: float, T: int) -> float:
    """``B rho / sqrt(T)``: the bound on ``f(w_bar) - f(w*)`` after T steps with :func:`averaged_gd_step`.

    Plugging ``eta = B/(rho sqrt T)`` into ``(1/T)(B^2/(2 eta) + eta T rho^2 / 2)``
    gives ``B rho/(2 sqrt T) + B rho/(2 sqrt T)``.

    >>> averaged_gd_bound(3.0, 2.0, 36)
    1.0
    """
    B = positive(B, "B", allow_zero=True)
    rho = positive(rho, "rho", allow_zero=True)
    T = count(T, "T")
    return B * rho / math.sqrt(T)


@dataclass(frozen=True)
class RegretTerms:
    """Both sides of the regret lemma for one sequence.

    ``lhs = sum_t <w_t - w*, v_t>``; ``bound = ||w*||^2/(2 eta) + eta/2 sum ||v_t||^2``;
    ``slack = ||w_{T+1} - w*||^2 / (2 eta)``, which the lemma's telescoping
    identity says equals ``bound - lhs``; ``iterates`` holds ``w_1..w_{T+1}``.

    >>> import numpy as np
    >>> from nablab.theory import regret_terms
    >>> r = regret_terms(np.array([[1.0], [-0.5], [2.0]]), w_star=np.array([-1.0]), eta=0.5)
    >>> r.lhs, r.bound, r.slack, r.iterates.ravel()
    (2.25, 2.3125, 0.0625, array([ 0.  , -0.5 , -0.25, -1.25]))
    """

    lhs: float
    bound: float
    slack: float
    iterates: np.ndarray


def regret_terms(v, w_star, eta: float) -> RegretTerms:
    """Run ``w_{t+1} = w_t - eta v_t`` from ``w_1 = 0`` and evaluate the regret lemma.

    ``v`` has shape (T, d), one vector per row; ``w_star`` has shape (d,).

    >>> import numpy as np
    >>> v = np.array([[1.0], [1.0]])
    >>> r = regret_terms(v, w_star=np.array([-1.0]), eta=0.5)   # w_3 = -1 = w*: tight
    >>> r.lhs, r.bound, r.slack
    (1.5, 1.5, 0.0)
    """
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 1:
        raise ValueError(f"v must have shape (T, d) with T >= 1, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("v has non-finite entries")
    w_star = as_vector(w_star, "w_star")
    if w_star.shape != (v.shape[1],):
        raise ValueError(f"w_star must have shape ({v.shape[1]},) to match v {v.shape}, "
                         f"got {w_star.shape}")
    eta = positive(eta, "eta")
    iterates = np.zeros((v.shape[0] + 1, v.shape[1]))
    iterates[1:] = -eta * np.cumsum(v, axis=0)
    lhs = float(np.sum((iterates[:-1] - w_star) * v))
    bound = float(w_star @ w_star / (2 * eta) + eta / 2 * np.sum(v * v))
    gap = iterates[-1] - w_star
    slack = float(gap @ gap / (2 * eta))
    return RegretTerms(lhs=lhs, bound=bound, slack=slack, iterates=iterates)
