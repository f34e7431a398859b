"""The optimizer contract: pure ``init`` and ``update`` functions over trees of arrays.

As in optax, an optimizer is a pair of functions::

    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)

Both are written with nablab's operations, so any hyperparameter given as a
traced value (a learning rate inside ``nablab.grad``) is differentiated
through the whole run.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from nablab.autodiff.core import value_of
from nablab.autodiff.tree import tree_flatten, tree_map, tree_unflatten


class Optimizer(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params) -> (updates, state)``.

    Any pair of pure functions of this shape is an optimizer: here plain gradient descent.

    >>> import numpy as np
    >>> from nablab import optim
    >>> gd = optim.Optimizer(init=lambda params: None, update=lambda g, state, params: (-0.1 * g, state))
    >>> updates, _ = gd.update(np.array([1.0, 2.0]), gd.init(None), None)
    >>> updates
    array([-0.1, -0.2])
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple]


def apply_updates(params, updates):
    """``params + updates``, leaf by leaf.

    >>> apply_updates({"w": 1.0}, {"w": -0.5})
    {'w': 0.5}
    """
    return tree_map(lambda p, u: p + u, params, updates)


def zeros_like_tree(params):
    return tree_map(lambda p: np.zeros(np.shape(value_of(p)), dtype=_float_dtype(p)), params)


def _float_dtype(p):
    dtype = np.asarray(value_of(p)).dtype
    return dtype if dtype.kind == "f" else np.float64


def learning_rate_at(lr, count):
    """The learning rate of step ``count`` (0-based): a number, or a schedule called with the count."""
    return lr(count) if callable(lr) else lr


def map_leaves(fn, *trees):
    """Apply ``fn`` to matching leaves of several trees; ``fn`` returns a tuple of k leaves.

    Returns k trees.  Optimizers use it to update (param, grad, m, v, ...) together.
    """
    flat = [tree_flatten(t) for t in trees]
    spec = flat[0][1]
    n = len(flat[0][0])
    for i, (leaves, _) in enumerate(flat[1:], start=1):
        if len(leaves) != n:
            raise ValueError(f"tree {i} has {len(leaves)} arrays but the parameters have {n}")
    outs = [fn(*leaves) for leaves in zip(*[f[0] for f in flat])]
    if not outs:
        return ()
    k = len(outs[0])
    return tuple(tree_unflatten(spec, [o[j] for o in outs]) for j in range(k))


def check_grads_match(grads, params, who):
    g_leaves, _ = tree_flatten(grads)
    p_leaves, _ = tree_flatten(params)
    if len(g_leaves) != len(p_leaves):
        raise ValueError(f"{who}: {len(g_leaves)} gradient arrays for {len(p_leaves)} parameter arrays")
    for i, (g, p) in enumerate(zip(g_leaves, p_leaves)):
        if np.shape(value_of(g)) != np.shape(value_of(p)):
            raise ValueError(
                f"{who}: gradient {i} has shape {np.shape(value_of(g))} but parameter {i} has shape "
                f"{np.shape(value_of(p))}"
            )
