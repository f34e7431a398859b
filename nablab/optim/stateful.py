"""PyTorch-style optimizers over ``nablab.tensor(..., requires_grad=True)`` parameters.

They hold one state per parameter (as torch.optim does) and run the same pure
update functions as :mod:`nablab.optim.optimizers`.

>>> import nablab as nb
>>> from nablab.optim import SGD
>>> w = nb.tensor([3.0, -1.0], requires_grad=True)
>>> opt = SGD([w], lr=0.1, momentum=0.9)
>>> for _ in range(300):
...     opt.zero_grad()
...     nb.sum(w ** 2).backward()
...     opt.step()
>>> bool(abs(w.numpy()).max() < 1e-6)
True
"""

from __future__ import annotations

import numpy as np

from nablab import parallel
from nablab.autodiff.core import Tensor, no_grad
from nablab.autodiff.tree import tree_flatten, tree_unflatten
from nablab.optim import optimizers


class StatefulOptimizer:
    """Base class: ``step()``, ``zero_grad()``, ``state_dict()``, ``load_state_dict()``.

    A subclass names its pure optimizer in ``factory``; ``hyperparameters`` are passed to it.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> class Halve(optim.StatefulOptimizer):
    ...     factory = staticmethod(lambda: optim.sgd(lr=0.25))
    >>> w = nb.tensor(np.array([4.0]), requires_grad=True)
    >>> opt = Halve([w])
    >>> nb.sum(w ** 2).backward()
    >>> opt.step()
    >>> w, sorted(opt.state_dict())
    (tensor([2.], requires_grad=True), ['state.0.0'])
    """

    factory = None

    def __init__(self, params, **hyperparameters):
        self.params = _as_parameter_list(params, type(self).__name__)
        self.hyperparameters = hyperparameters
        self._opt = type(self).factory(**hyperparameters)
        self.state = [self._opt.init(p.data) for p in self.params]

    def zero_grad(self):
        """Forget the gradients (sets ``.grad`` to ``None``, like torch's default)."""
        for p in self.params:
            p.grad = None

    def step(self):
        """One update of every parameter that has a gradient; the others are left alone."""
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                updates, self.state[i] = self._opt.update(p.grad.data, self.state[i], p.data)
                # in parts on the threads for large parameters (the same bits as ``p + updates``)
                p._set_value(parallel.elementwise(np.add, p._value, updates), "optimizer step")

    def state_dict(self):
        """A flat dict of NumPy arrays and numbers (safe for ``np.savez``)."""
        out = {f"hyper.{k}": np.asarray(v) for k, v in self.hyperparameters.items() if not callable(v)}
        for i, state in enumerate(self.state):
            leaves, _ = tree_flatten(state)
            for j, leaf in enumerate(leaves):
                out[f"state.{i}.{j}"] = np.array(leaf, copy=True)
        return out

    def load_state_dict(self, saved):
        """Restore the state written by :meth:`state_dict`, checking every shape."""
        new_states = []
        for i, state in enumerate(self.state):
            leaves, spec = tree_flatten(state)
            restored = []
            for j, leaf in enumerate(leaves):
                key = f"state.{i}.{j}"
                if key not in saved:
                    raise KeyError(f"load_state_dict: {key} is missing (does it come from this optimizer?)")
                value = np.asarray(saved[key])
                if value.shape != np.shape(leaf):
                    raise ValueError(f"load_state_dict: {key} has shape {value.shape}, expected {np.shape(leaf)}")
                restored.append(value.item() if isinstance(leaf, int) else value.copy())
            new_states.append(tree_unflatten(spec, restored))
        self.state = new_states

    def __repr__(self):
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


def _as_parameter_list(params, who):
    if isinstance(params, dict):
        params = list(params.values())
    params = list(params)
    if not params:
        raise ValueError(f"{who}: got an empty parameter list")
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
            raise TypeError(f"{who}: parameter {i} must be a leaf nablab.tensor(..., requires_grad=True), "
                            f"got {type(p).__name__}")
    return params


class SGD(StatefulOptimizer):
    """``torch.optim.SGD``-like wrapper of :func:`nablab.optim.sgd`.

    ``params`` are the tensors to train (``requires_grad=True``); the other arguments are those of
    :func:`nablab.optim.sgd`.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> w = nb.tensor(np.array([1.0, -2.0]), requires_grad=True)
    >>> opt = optim.SGD([w], lr=0.25)
    >>> for _ in range(2):
    ...     opt.zero_grad()
    ...     nb.sum(w ** 2).backward()
    ...     opt.step()
    >>> w
    tensor([ 0.25, -0.5 ], requires_grad=True)
    """

    factory = staticmethod(optimizers.sgd)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay)


class HeavyBall(StatefulOptimizer):
    """Wrapper of :func:`nablab.optim.heavy_ball` (the problem sets' delta form).

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> w = nb.tensor(np.array([1.0]), requires_grad=True)
    >>> opt = optim.HeavyBall([w], lr=0.1, alpha=0.5)
    >>> for _ in range(2):
    ...     opt.zero_grad()
    ...     nb.sum(w ** 2).backward()
    ...     opt.step()
    >>> w
    tensor([0.54], requires_grad=True)
    """

    factory = staticmethod(optimizers.heavy_ball)

    def __init__(self, params, lr, alpha):
        super().__init__(params, lr=lr, alpha=alpha)


class Adagrad(StatefulOptimizer):
    """``torch.optim.Adagrad``-like wrapper of :func:`nablab.optim.adagrad`.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> w = nb.tensor(np.array([1.0]), requires_grad=True)
    >>> opt = optim.Adagrad([w], lr=0.5)
    >>> nb.sum(w ** 2).backward()
    >>> opt.step()
    >>> w
    tensor([0.5], requires_grad=True)
    """

    factory = staticmethod(optimizers.adagrad)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)


class RMSprop(StatefulOptimizer):
    """``torch.optim.RMSprop``-like wrapper of :func:`nablab.optim.rmsprop`.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> w = nb.tensor(np.array([1.0]), requires_grad=True)
    >>> opt = optim.RMSprop([w], lr=0.01)
    >>> nb.sum(w ** 2).backward()
    >>> opt.step()
    >>> w
    tensor([0.9], requires_grad=True)
    """

    factory = staticmethod(optimizers.rmsprop)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered)


class Adam(StatefulOptimizer):
    """``torch.optim.Adam``-like wrapper of :func:`nablab.optim.adam`.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> w = nb.tensor(np.array([1.0, -1.0]), requires_grad=True)
    >>> opt = optim.Adam([w], lr=0.1)
    >>> nb.sum(w ** 2).backward()
    >>> opt.step()
    >>> w
    tensor([ 0.9, -0.9], requires_grad=True)
    """

    factory = staticmethod(optimizers.adam)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class AdamW(StatefulOptimizer):
    """``torch.optim.AdamW``-like wrapper of :func:`nablab.optim.adamw`.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> w = nb.tensor(np.array([1.0]), requires_grad=True)
    >>> opt = optim.AdamW([w], lr=0.1, weight_decay=0.1)
    >>> nb.sum(w ** 2).backward()
    >>> opt.step()
    >>> w
    tensor([0.89], requires_grad=True)
    """

    factory = staticmethod(optimizers.adamw)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
