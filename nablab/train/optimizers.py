"""Optimizer names of the training command, built the same way in both backends.

Each name maps to a class of :mod:`nablab.optim` and of ``torch.optim`` with
the same hyperparameters (PyTorch's defaults unless listed):

>>> from nablab.train.optimizers import OPTIMIZERS
>>> OPTIMIZERS["momentum"]
('SGD', {'momentum': 0.9})
>>> sorted(OPTIMIZERS)
['adagrad', 'adam', 'adamw', 'momentum', 'nesterov', 'rmsprop', 'sgd']
"""

from __future__ import annotations

import math

from nablab import optim

__all__ = ["OPTIMIZERS", "make_optimizer", "make_torch_optimizer", "check_lr"]

#: name -> (class name in nablab.optim and torch.optim, extra keyword arguments)
OPTIMIZERS = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}),
}


def _lookup(name):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def check_lr(lr) -> float:
    """The learning rate as a float; refused unless finite and positive."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"learning rate {lr!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"learning rate {lr!r} must be a positive finite number")
    return value


def make_optimizer(name: str, params, lr: float):
    """The nablab optimizer ``name`` over ``params`` (a list of parameters)."""
    cls, extra = _lookup(name)
    return getattr(optim, cls)(list(params), lr=check_lr(lr), **extra)


def make_torch_optimizer(name: str, params, lr: float):
    """The ``torch.optim`` optimizer ``name`` with the same hyperparameters."""
    import torch

    cls, extra = _lookup(name)
    return getattr(torch.optim, cls)(list(params), lr=check_lr(lr), **extra)
