"""Hypergradients: learning rates (and other hyperparameters) found by gradients.

- :func:`quadratic_lr`: closed forms for GD on least squares (the oracle);
- :func:`lr_hypergradient` / :func:`hypergradient`: through unrolled training
  (:func:`nablab.optim.run`), in reverse (optionally checkpointed), forward,
  reversible or finite-difference mode, for what ``wrt`` names;
- :func:`reversible_hypergradient`: SGD with momentum run backwards exactly;
- online hypergradient descent lives in :mod:`nablab.optim` (``sgd_hd``, ``adam_hd``);
- :func:`tune_lr`: gradient-based learning-rate search for a whole run.
"""

from nablab.hyper.quadratic import QuadraticLR, quadratic_lr
from nablab.hyper.reversible import ReversibleResult, reversible_hypergradient
from nablab.hyper.tune import TuneResult, tune_lr
from nablab.hyper.unrolled import MODES, Unrolled, hypergradient, lr_hypergradient, reversible_optimizer

__all__ = ["quadratic_lr", "QuadraticLR", "lr_hypergradient", "hypergradient", "Unrolled", "MODES",
           "reversible_optimizer",
           "reversible_hypergradient", "ReversibleResult", "tune_lr", "TuneResult"]
