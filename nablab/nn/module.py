"""Module and Parameter: models as objects, with a functional call for explicit parameters.

>>> import numpy as np, nablab as nb
>>> from nablab import nn
>>> model = nn.Sequential(nn.Linear(3, 4, rng=np.random.default_rng(0)), nn.ReLU(), nn.Linear(4, 2, rng=np.random.default_rng(1)))
>>> [name for name, _ in model.named_parameters()]
['0.weight', '0.bias', '2.weight', '2.bias']
>>> x = np.ones((5, 3))
>>> params = {k: v.numpy() for k, v in model.named_parameters()}
>>> grads = nb.grad(lambda p: nb.sum(nn.functional_call(model, p, x)))(params)
>>> grads["0.weight"].shape
(4, 3)
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from nablab.autodiff.core import IMPERATIVE, Node, Tensor, value_of


class Parameter(Tensor):
    """A tensor that a module trains: a leaf with ``requires_grad=True``.

    ``data`` is copied (as floats; ``dtype`` picks which).

    >>> from nablab import nn
    >>> p = nn.Parameter([1.0, 2.0])
    >>> p.requires_grad, p.shape
    (True, (2,))
    """

    __slots__ = ()

    def __init__(self, data, dtype=None):
        value = np.array(value_of(data), dtype=dtype, copy=True)
        if value.dtype.kind != "f":
            value = value.astype(np.float64)
        super().__init__(value, IMPERATIVE, Node.leaf())

    def __repr__(self):
        return "Parameter(" + super().__repr__()[len("tensor("):]


class Module:
    """Base class of layers and models (PyTorch's shape: ``forward``, ``parameters``, ``state_dict``).

    Assigning a :class:`Parameter` or a :class:`Module` to an attribute
    registers it; ``register_buffer`` keeps non-trained state (running means).

    A subclass sets its parameters and submodules in ``__init__`` (after ``super().__init__()``) and
    computes in ``forward``; calling the module calls ``forward``.

    >>> import numpy as np
    >>> from nablab import nn
    >>> class Scale(nn.Module):
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.s = nn.Parameter(np.ones(n))
    ...     def forward(self, x):
    ...         return self.s * x
    >>> m = Scale(2)
    >>> m(np.array([3.0, 4.0])), [name for name, _ in m.named_parameters()]
    (tensor([3., 4.], requires_grad=True), ['s'])
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        self._buffers[name] = np.asarray(array)
        object.__setattr__(self, name, self._buffers[name])

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----- traversal
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for module_name, module in self.named_modules():
            for name, b in module._buffers.items():
                yield (f"{module_name}.{name}" if module_name else name), b

    def num_parameters(self):
        return int(sum(p.size for p in self.parameters()))

    # ----- modes and gradients
    def train(self, mode=True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # ----- state
    def state_dict(self):
        """Copies of every parameter and buffer as NumPy arrays, keyed by dotted name."""
        state = OrderedDict((k, np.array(p.numpy(), copy=True)) for k, p in self.named_parameters())
        state.update((k, np.array(b, copy=True)) for k, b in self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True):
        """Load arrays by name; shapes must match, and with ``strict`` so must the names."""
        params = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = set(params) | set(buffers)
        if strict:
            missing, unexpected = expected - set(state), set(state) - expected
            if missing or unexpected:
                raise KeyError(f"load_state_dict: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for key, value in state.items():
            value = np.asarray(value)
            target = params.get(key)
            current = target.numpy() if target is not None else buffers.get(key)
            if current is None:
                continue
            if value.shape != current.shape:
                raise ValueError(f"load_state_dict: {key} has shape {value.shape} in the state but {current.shape} in the model")
            if target is not None:
                target._set_value(value.astype(current.dtype, copy=True), "load_state_dict")
            else:
                current[...] = value

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_lines = repr(child).splitlines()
            lines.append(f"  ({name}): " + child_lines[0])
            lines.extend("  " + line for line in child_lines[1:])
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""


def _owner(module, dotted):
    *path, leaf = dotted.split(".")
    for part in path:
        if part not in module._modules:
            raise KeyError(f"functional_call: no submodule {part!r} on the way to {dotted!r}")
        module = module._modules[part]
    if leaf not in module._parameters and leaf not in module._buffers:
        raise KeyError(f"functional_call: {dotted!r} is not a parameter or buffer of the model")
    return module, leaf


@contextmanager
def substituted(module, params):
    """Temporarily replace named parameters (or buffers) of ``module`` by the given values.

    ``params`` maps dotted names (``"0.weight"``) to values; the old ones come back on leaving the block.

    >>> import numpy as np
    >>> from nablab import nn
    >>> lin = nn.Linear(2, 1, rng=0)
    >>> with nn.substituted(lin, {"bias": np.array([10.0])}):
    ...     inside = lin.bias
    >>> float(inside[0]), float(lin.bias.numpy()[0]) != 10.0
    (10.0, True)
    """
    saved = []
    try:
        for name, value in params.items():
            owner, leaf = _owner(module, name)
            saved.append((owner, leaf, owner.__dict__[leaf]))
            object.__setattr__(owner, leaf, value)
        yield module
    finally:
        for owner, leaf, old in reversed(saved):
            object.__setattr__(owner, leaf, old)


def functional_call(module, params, *args, **kwargs):
    """Run ``module(*args)`` with ``params`` (a dict: dotted name -> array) in place of its parameters.

    The values may be traced, so ``nablab.grad`` of a loss with respect to a
    parameter dict works, and so do hypergradients through training steps.

    >>> import numpy as np, nablab as nb
    >>> from nablab import nn
    >>> lin = nn.Linear(2, 1, rng=0)
    >>> params = {"weight": np.array([[1.0, 2.0]]), "bias": np.array([0.5])}
    >>> nn.functional_call(lin, params, np.array([[1.0, 1.0]]))
    array([[3.5]])
    >>> nb.grad(lambda p: nb.sum(nn.functional_call(lin, p, np.array([[1.0, 1.0]]))))(params)["weight"]
    array([[1., 1.]])
    """
    with substituted(module, params):
        return module(*args, **kwargs)
