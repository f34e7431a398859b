"""The same models in PyTorch, started from nablab's weights, for side-by-side runs.

:func:`to_torch` rebuilds a :class:`nablab.nn.Sequential` of the layers the
training models use as a ``torch.nn.Sequential`` with the same parameter names
and copies every weight, so both start from the same point; fed the same
batches with the same optimizer, the two runs must agree step by step
(float64: to about 1e-10; the tests hold them to 1e-8 over 100 steps).

>>> import numpy as np, torch
>>> from nablab.train.models import build_model
>>> from nablab.train.torch_replica import to_torch
>>> model = build_model("mlp", (1, 40), 10, seed=0)
>>> replica = to_torch(model)
>>> x = np.random.default_rng(0).standard_normal((5, 1, 40))
>>> bool(np.allclose(model(x).numpy(), replica(torch.from_numpy(x)).detach().numpy(), atol=1e-12))
True
"""

from __future__ import annotations

import numpy as np

from nablab import nn

__all__ = ["to_torch", "copy_weights", "torch_dtype", "require_torch", "SUPPORTED_LAYERS"]

SUPPORTED_LAYERS = ("Linear", "Conv1d", "Conv2d", "ReLU", "MaxPool1d", "MaxPool2d", "Flatten", "Residual")


def require_torch():
    """``import torch``, or a ModuleNotFoundError that says how to install it."""
    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise ModuleNotFoundError("PyTorch is not installed; the torch backend needs it: "
                                  "pip install 'nablab[torch]'", name="torch") from None
    return torch


def _residual_class():
    import torch

    class Residual(torch.nn.Module):
        """``x + body(x)``, the counterpart of :class:`nablab.train.models.Residual`."""

        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return x + self.body(x)

    return Residual


def torch_dtype(dtype):
    """``numpy.float32 -> torch.float32`` and ``float64 -> torch.float64``; others refused."""
    import torch

    table = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
    key = np.dtype(dtype)
    if key not in table:
        raise ValueError(f"dtype {dtype!r} is not supported; use float32 or float64")
    return table[key]


def _layer(module):
    import torch

    kind = type(module).__name__
    if kind == "Linear":
        return torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    if kind in ("Conv1d", "Conv2d"):
        cls = getattr(torch.nn, kind)
        return cls(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                   padding=module.padding, dilation=module.dilation, groups=module.groups,
                   bias=module.bias is not None)
    if kind == "ReLU":
        return torch.nn.ReLU()
    if kind in ("MaxPool1d", "MaxPool2d"):
        return getattr(torch.nn, kind)(module.kernel_size, stride=module.stride, padding=module.padding,
                                       dilation=module.dilation)
    if kind == "Flatten":
        return torch.nn.Flatten(module.start_dim)
    if kind == "Residual":
        return _residual_class()(torch.nn.Sequential(*[_layer(m) for m in module.body]))
    raise TypeError(f"to_torch: no PyTorch counterpart for layer {kind}; supported: {', '.join(SUPPORTED_LAYERS)}")


def to_torch(model: nn.Sequential, dtype=None):
    """A ``torch.nn.Sequential`` with the same layers and a copy of ``model``'s weights.

    ``dtype`` defaults to the dtype of the model's parameters.
    """
    torch = require_torch()

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"to_torch: expected a nablab.nn.Sequential, got {type(model).__name__}")
    params = model.parameters()
    if dtype is None:
        dtype = params[0].dtype if params else np.float64
    replica = torch.nn.Sequential(*[_layer(m) for m in model]).to(torch_dtype(dtype))
    copy_weights(model, replica)
    return replica


def copy_weights(source: nn.Module, replica) -> None:
    """Copy every parameter of ``source`` into the torch module ``replica`` (same names and shapes)."""
    import torch

    theirs = dict(replica.named_parameters())
    ours = dict(source.named_parameters())
    if set(theirs) != set(ours):
        raise KeyError(f"copy_weights: parameter names differ: nablab {sorted(ours)}, torch {sorted(theirs)}")
    with torch.no_grad():
        for name, p in ours.items():
            target = theirs[name]
            value = np.asarray(p.numpy())
            if tuple(target.shape) != value.shape:
                raise ValueError(f"copy_weights: {name} has shape {value.shape} in nablab but "
                                 f"{tuple(target.shape)} in torch")
            # torch.tensor copies: nablab's .numpy() is a read-only view, which torch.from_numpy dislikes
            target.copy_(torch.tensor(value, dtype=target.dtype))
