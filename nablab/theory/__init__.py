"""Closed forms and quantities of the theory of gradient descent, computed stably.

- :mod:`~nablab.theory.linalg`: least squares and minimum-norm solutions by
  the SVD, the row space of X, projection onto it and distance to it;
- :mod:`~nablab.theory.stability`: the GD stability threshold ``2/lambda_max``
  (``2/rho(X^T X)`` for least squares), contraction factors, GD on least
  squares in closed form;
- :mod:`~nablab.theory.bounds`: the regret lemma and the ``B rho/sqrt(T)``
  bound for averaged GD on convex Lipschitz functions;
- :mod:`~nablab.theory.prox`: GD as the proximal step on the linearization;
- :mod:`~nablab.theory.functions`: test functions (one with a sharp and a
  wide minimum, two logistic terms), differentiable with nablab.

>>> import numpy as np
>>> from nablab import theory
>>> X = np.array([[1.0, 2.0]])
>>> theory.min_norm_solution(X, np.array([5.0])), round(theory.gd_threshold(X), 12)
(array([1., 2.]), 0.4)
"""

from nablab.theory.bounds import RegretTerms, averaged_gd_bound, averaged_gd_step, regret_terms
from nablab.theory.functions import logistic_f1, logistic_f2, sharp_wide, sharp_wide_grad
from nablab.theory.linalg import (
    distance_to_row_space,
    lstsq,
    min_norm_solution,
    pinv,
    project_row_space,
    rank,
    row_space_basis,
)
from nablab.theory.prox import linearized_proximal_objective, proximal_step
from nablab.theory.stability import (
    gd_contraction,
    gd_threshold,
    lambda_max,
    lsq_gd_closed_form,
    spectral_radius,
    stability_threshold,
)

__all__ = [
    "lstsq", "min_norm_solution", "pinv", "rank", "row_space_basis", "project_row_space",
    "distance_to_row_space",
    "spectral_radius", "lambda_max", "stability_threshold", "gd_threshold", "gd_contraction",
    "lsq_gd_closed_form",
    "averaged_gd_step", "averaged_gd_bound", "RegretTerms", "regret_terms",
    "proximal_step", "linearized_proximal_objective",
    "sharp_wide", "sharp_wide_grad", "logistic_f1", "logistic_f2",
]
