"""Online hypergradient descent (Baydin et al., "Online Learning Rate Adaptation with
Hypergradient Descent", ICLR 2018): the learning rate follows its own gradient during training.

The loss after a step depends on the learning rate through that step, so
``d f(w_t) / d lr = grad f(w_t) . u_{t-1}`` where ``u_{t-1}`` is the previous
step's update direction divided by its learning rate.  SGD-HD:
``lr_t = lr_{t-1} + beta grad f(w_t) . grad f(w_{t-1})``; Adam-HD uses Adam's
direction in place of the previous gradient.

Two failure modes are known from the reference implementation: when
consecutive gradients point against each other the learning rate can cross
zero and turn negative (training then ascends), and when they keep agreeing
it grows geometrically.  nablab keeps the learning rate inside
``[min_lr, max_lr]`` (by default ``[0, inf)``: never negative) and, with
``normalize=True``, moves it by ``beta`` times the *cosine* of the two vectors
instead of their dot product, so a single step changes it by at most
``beta``, whatever the gradient scale.  Both are recorded in the state
(``state["lr"]``, ``state["clipped"]``) so a run can show when they acted.

>>> import numpy as np, nablab as nb
>>> from nablab import optim
>>> opt = optim.sgd_hd(lr=0.001, hyper_lr=0.001)
>>> w = np.array([3.0, -2.0]); state = opt.init(w)
>>> for _ in range(100):
...     updates, state = opt.update(nb.grad(lambda w: nb.sum(w ** 2))(w), state, w)
...     w = optim.apply_updates(w, updates)
>>> float(state["lr"]) > 0.001  # it learned to take bigger steps
True
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff import ops
from nablab.autodiff.core import value_of
from nablab.autodiff.tree import tree_leaves, tree_map
from nablab.checks import check_lr, check_number
from nablab.optim.base import Optimizer, zeros_like_tree


def _dot(a, b):
    return sum(ops.sum(x * y) for x, y in zip(tree_leaves(a), tree_leaves(b)))


def _norm(a):
    return ops.sqrt(_dot(a, a))


def _bounded(who, lr, hyper_lr, min_lr, max_lr):
    check_lr(lr, who=who)
    check_number("hyper_lr", hyper_lr, low=0.0, who=who)
    check_number("min_lr", min_lr, low=0.0, who=who)
    if max_lr is not None and max_lr < min_lr:
        raise ValueError(f"{who}: max_lr={max_lr} is below min_lr={min_lr}")


def _move_lr(lr, hyper_lr, grads, direction, normalize, min_lr, max_lr):
    h = _dot(grads, direction)
    if normalize:
        scale = _norm(grads) * _norm(direction)
        h = h / scale if float(value_of(scale)) > 0 else h * 0.0
    new = lr + hyper_lr * h
    raw = float(value_of(new))
    high = np.inf if max_lr is None else max_lr
    clipped = not (min_lr <= raw <= high)
    if clipped:
        new = ops.clip(new, min_lr, high)
    return new, clipped


def sgd_hd(lr, hyper_lr, *, min_lr=0.0, max_lr=None, normalize=False) -> Optimizer:
    """SGD whose learning rate moves by ``hyper_lr * grad_t . grad_{t-1}`` each step (SGD-HD).

    ``lr`` is the first learning rate, ``hyper_lr`` the step of its updates, kept in
    ``[min_lr, max_lr]``; ``normalize=True`` uses the cosine of the two gradients instead of their
    dot product.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> r = optim.minimize(lambda w: nb.sum(w ** 2), np.ones(2), optim.sgd_hd(0.01, hyper_lr=0.01), steps=20)
    >>> bool(np.all(np.abs(r.params) < 0.5))
    True
    """
    _bounded("sgd_hd", lr, hyper_lr, min_lr, max_lr)

    def init(params):
        return {"count": 0, "lr": lr, "previous": zeros_like_tree(params), "clipped": 0}

    def update(grads, state, params=None):
        new_lr, clipped = _move_lr(state["lr"], hyper_lr, grads, state["previous"], normalize, min_lr, max_lr)
        updates = tree_map(lambda g: -new_lr * g, grads)
        return updates, {"count": state["count"] + 1, "lr": new_lr, "previous": grads,
                         "clipped": state["clipped"] + int(clipped)}

    return Optimizer(init, update)


def adam_hd(lr, hyper_lr, betas=(0.9, 0.999), eps=1e-8, *, min_lr=0.0, max_lr=None, normalize=False) -> Optimizer:
    """Adam whose learning rate moves by ``hyper_lr * grad_t . d_{t-1}``, with ``d`` Adam's last direction (Adam-HD).

    ``betas`` and ``eps`` are Adam's; ``hyper_lr``, ``min_lr``, ``max_lr`` and ``normalize`` as for :func:`sgd_hd`.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> r = optim.minimize(lambda w: nb.sum((w - 1.0) ** 2), np.zeros(2), optim.adam_hd(0.01, 1e-3), steps=200)
    >>> r.params.round(2)
    array([1., 1.])
    """
    _bounded("adam_hd", lr, hyper_lr, min_lr, max_lr)
    beta1, beta2 = betas
    check_number("betas[0]", beta1, low=0.0, high=1.0, high_open=True, who="adam_hd")
    check_number("betas[1]", beta2, low=0.0, high=1.0, high_open=True, who="adam_hd")
    check_number("eps", eps, low=0.0, low_open=True, who="adam_hd")

    def init(params):
        z = zeros_like_tree(params)
        return {"count": 0, "lr": lr, "m": z, "v": zeros_like_tree(params), "direction": zeros_like_tree(params),
                "clipped": 0}

    def update(grads, state, params=None):
        t = state["count"] + 1
        new_lr, clipped = _move_lr(state["lr"], hyper_lr, grads, state["direction"], normalize, min_lr, max_lr)
        m = tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, state["m"], grads)
        v = tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, state["v"], grads)
        direction = tree_map(lambda m, v: (m / (1 - beta1**t)) / (ops.sqrt(v / (1 - beta2**t)) + eps), m, v)
        updates = tree_map(lambda d: -new_lr * d, direction)
        return updates, {"count": t, "lr": new_lr, "m": m, "v": v, "direction": direction,
                         "clipped": state["clipped"] + int(clipped)}

    return Optimizer(init, update)
