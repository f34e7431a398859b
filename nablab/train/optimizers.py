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

from nablab import optim
from nablab.checks import check_number

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
    """The learning rate as a float: finite and >= 0 (the rule of :mod:`nablab.checks`)."""
    return check_number("lr", lr, low=0)


def check_weight_decay(weight_decay) -> float:
    """The weight decay as a float: finite and >= 0."""
    return check_number("weight_decay", weight_decay, low=0)


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
