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

__all__ = ["OPTIMIZERS", "make_optimizer", "make_torch_optimizer", "check_lr", "check_weight_decay"]

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


def check_weight_decay(weight_decay) -> float:
    """The weight decay as a float; refused unless finite and non-negative."""
    try:
        value = float(weight_decay)
    except (TypeError, ValueError):
        raise ValueError(f"weight decay {weight_decay!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"weight decay {weight_decay!r} must be a non-negative finite number")
    return value


def _hyper(name, lr, weight_decay):
    cls, extra = _lookup(name)
    kw = dict(extra, lr=check_lr(lr))
    if weight_decay is not None:  # None keeps the optimizer's default (0, or 1e-2 for AdamW)
        kw["weight_decay"] = check_weight_decay(weight_decay)
    return cls, kw


def make_optimizer(name: str, params, lr: float, weight_decay: float | None = None):
    """The nablab optimizer ``name`` over ``params`` (a list of parameters)."""
    cls, kw = _hyper(name, lr, weight_decay)
    return getattr(optim, cls)(list(params), **kw)


def make_torch_optimizer(name: str, params, lr: float, weight_decay: float | None = None):
    """The ``torch.optim`` optimizer ``name`` with the same hyperparameters."""
    import torch

    cls, kw = _hyper(name, lr, weight_decay)
    return getattr(torch.optim, cls)(list(params), **kw)
