"""Optimizers as pure ``(init, update)`` pairs, differentiable, plus PyTorch-style wrappers,
and :func:`run`, the one loop that runs them (every other training loop in nablab is a layer over it).

>>> import numpy as np, nablab as nb
>>> from nablab import optim
>>> opt = optim.sgd(lr=0.1, momentum=0.9)
>>> params = np.array([1.0, -1.0])
>>> state = opt.init(params)
>>> grads = nb.grad(lambda w: nb.sum(w ** 2))(params)
>>> updates, state = opt.update(grads, state, params)
>>> optim.apply_updates(params, updates)
array([ 0.8, -0.8])
"""

from nablab.errors import DivergenceError
from nablab.optim.base import Optimizer, apply_updates
from nablab.optim.hd import adam_hd, sgd_hd
from nablab.optim.loop import Run, Step, iterate, minimize, run, sample_indices
from nablab.optim.optimizers import adagrad, adam, adamw, heavy_ball, preconditioned_sgd, rmsprop, sgd
from nablab.optim.schedules import constant, cosine_decay, linear_warmup, step_decay
from nablab.optim.stateful import SGD, Adagrad, Adam, AdamW, HeavyBall, RMSprop, StatefulOptimizer

__all__ = [
    "Optimizer", "apply_updates", "run", "iterate", "Step", "Run", "DivergenceError", "minimize", "sample_indices",
    "sgd", "heavy_ball", "sgd_hd", "adam_hd", "adagrad", "rmsprop", "adam", "adamw", "preconditioned_sgd",
    "constant", "step_decay", "cosine_decay", "linear_warmup",
    "SGD", "HeavyBall", "Adagrad", "RMSprop", "Adam", "AdamW", "StatefulOptimizer",
]
