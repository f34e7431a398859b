"""The one bridge to PyTorch: nablab's networks as ``torch.nn`` modules, for cross-checks.

:func:`to_torch` takes either

- a :class:`nablab.nn.Sequential` (the layers the training models use): the
  result is a ``torch.nn.Sequential`` with the same parameter names and a copy
  of every weight, so both start from the same point; fed the same batches with
  the same optimizer the two runs agree step by step (float64: to about 1e-10);
- a spec of :mod:`nablab.arch` (text, parsed layers, an object with
  ``arch_spec()``, or a ``torch.nn.Sequential`` that arch can read): the network
  it describes, with PyTorch's own initial weights; ``forward(x, return_all=True)``
  returns every layer's output.

PyTorch is imported only when a function here is called; nablab does not depend on it.

>>> import numpy as np, torch
>>> from nablab import nn
>>> from nablab.torch_bridge import to_torch
>>> model = nn.Sequential(nn.Flatten(), nn.Linear(40, 10, rng=0), nn.ReLU(), nn.Linear(10, 3, rng=1))
>>> replica = to_torch(model)
>>> x = np.random.default_rng(0).standard_normal((5, 1, 40))
>>> bool(np.allclose(model(x).numpy(), replica(torch.from_numpy(x)).detach().numpy(), atol=1e-12))
True
>>> net = to_torch("input 3x32x32, conv3-8, maxpool2, fc-10")
>>> sum(p.numel() for p in net.parameters()), tuple(net(torch.zeros(2, 3, 32, 32)).shape)
(20714, (2, 10))
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_torch", "copy_weights", "torch_dtype", "require_torch", "SUPPORTED_LAYERS"]

#: The nablab layers a model replica can hold.
SUPPORTED_LAYERS = ("Linear", "Conv1d", "Conv2d", "ReLU", "MaxPool1d", "MaxPool2d", "Flatten", "Residual")


def require_torch():
    """``import torch``, or a ModuleNotFoundError that says how to install it.

    >>> from nablab.torch_bridge import require_torch
    >>> require_torch().__name__
    'torch'
    """
    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise ModuleNotFoundError("PyTorch is not installed; the torch backend and the cross-checks need it: "
                                  "pip install 'nablab[torch]'", name="torch") from None
    return torch


def torch_dtype(dtype):
    """``numpy.float32 -> torch.float32`` and ``float64 -> torch.float64``; others refused.

    >>> import numpy as np
    >>> from nablab.torch_bridge import torch_dtype
    >>> torch_dtype(np.float32), torch_dtype("float64")
    (torch.float32, torch.float64)
    >>> torch_dtype(np.int64)
    Traceback (most recent call last):
    ...
    ValueError: dtype <class 'numpy.int64'> is not supported; use float32 or float64
    """
    torch = require_torch()
    table = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
    key = np.dtype(dtype)
    if key not in table:
        raise ValueError(f"dtype {dtype!r} is not supported; use float32 or float64")
    return table[key]


def to_torch(network, input_shape=None, *, dtype=None):
    """``network`` as a ``torch.nn.Module``: a weight-for-weight replica of a nablab model, or a spec's network.

    For a :class:`nablab.nn.Sequential`, ``dtype`` defaults to its parameters'
    and ``input_shape`` is not used. For a spec, ``input_shape`` (a tuple or
    ``"3x32x32"``) supplies or overrides its ``input`` layer.

    >>> import numpy as np, torch
    >>> from nablab import nn
    >>> from nablab.torch_bridge import to_torch
    >>> replica = to_torch(nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU()))
    >>> replica, replica[0].weight.dtype
    (Sequential(
      (0): Linear(in_features=3, out_features=2, bias=True)
      (1): ReLU()
    ), torch.float64)
    """
    from nablab import nn

    if isinstance(network, nn.Module):
        if input_shape is not None:
            raise TypeError("to_torch: input_shape is for specs; a nablab model is copied as it is "
                            "(pass dtype= by keyword to change its dtype)")
        return _replica(network, dtype)
    if dtype is not None:
        raise TypeError("to_torch: dtype is for nablab models; a spec's network has PyTorch's default dtype")
    return _spec_network(network, input_shape)


# -- a nablab model, weight for weight ----------------------------------------------


def _residual_class(torch):
    class Residual(torch.nn.Module):
        """``x + body(x)``, the counterpart of :class:`nablab.train.models.Residual`."""

        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return x + self.body(x)

    return Residual


def _layer(module, torch):
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
        return _residual_class(torch)(torch.nn.Sequential(*[_layer(m, torch) for m in module.body]))
    raise TypeError(f"to_torch: no PyTorch counterpart for layer {kind}; supported: {', '.join(SUPPORTED_LAYERS)}")


def _replica(model, dtype):
    from nablab import nn

    torch = require_torch()
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"to_torch: expected a nablab.nn.Sequential, got {type(model).__name__}")
    params = model.parameters()
    if dtype is None:
        dtype = params[0].dtype if params else np.float64
    replica = torch.nn.Sequential(*[_layer(m, torch) for m in model]).to(torch_dtype(dtype))
    copy_weights(model, replica)
    return replica


def copy_weights(source, replica) -> None:
    """Copy every parameter of the nablab module ``source`` into the torch module ``replica``
    (the same names and shapes).

    >>> import numpy as np, torch
    >>> from nablab import nn
    >>> from nablab.torch_bridge import copy_weights
    >>> ours = nn.Linear(2, 1, rng=0)
    >>> theirs = torch.nn.Linear(2, 1).double()
    >>> copy_weights(ours, theirs)
    >>> bool(np.array_equal(theirs.weight.detach().numpy(), ours.weight.numpy()))
    True
    """
    torch = require_torch()
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


# -- an arch spec ---------------------------------------------------------------------


def _conv_padding(layer):
    pads = layer.padding
    if all(lo == hi for lo, hi in pads):
        return tuple(lo for lo, _ in pads)
    return "same"  # asymmetric pads only come from "same" with an even kernel


def _spec_module(layer, shape, nn):
    kind = layer.kind
    if kind == "conv":
        return nn.Conv2d(shape[0], layer.channels, layer.kernel, layer.stride, _conv_padding(layer),
                         layer.dilation, layer.groups, layer.bias)
    if kind == "convT":
        return nn.ConvTranspose2d(shape[0], layer.channels, layer.kernel, layer.stride,
                                  tuple(lo for lo, _ in layer.padding), layer.output_padding,
                                  layer.groups, layer.bias, layer.dilation)
    if kind == "maxpool":
        return nn.MaxPool2d(layer.kernel, layer.stride, tuple(lo for lo, _ in layer.padding),
                            layer.dilation, ceil_mode=layer.ceil_mode)
    if kind == "avgpool":
        return nn.AvgPool2d(layer.kernel, layer.stride, tuple(lo for lo, _ in layer.padding),
                            ceil_mode=layer.ceil_mode)
    if kind == "fc":
        n_in = 1
        for s in shape:
            n_in *= s
        linear = nn.Linear(n_in, layer.channels, layer.bias)
        return nn.Sequential(nn.Flatten(), linear) if len(shape) > 1 else linear
    if kind == "bn":
        return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])
    simple = {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
              "flatten": nn.Flatten}
    if kind in simple:
        return simple[kind]()
    if kind == "dropout":
        return nn.Dropout(layer.p)
    if kind == "softmax":
        return nn.Softmax(dim=1)
    return nn.Identity()  # input, concat, add, from: handled in forward


def _spec_network(spec_or_model, input_shape):
    from nablab.arch.propagate import input_state, propagate
    from nablab.arch.summary import resolve

    torch = require_torch()
    nn = torch.nn
    layers, input_shape = resolve(spec_or_model, input_shape)
    state, _ = input_state(input_shape)
    shapes = [state.shape]
    shapes += [st.shape for _, st, _ in propagate(layers, input_shape)]
    body = [layer for layer in layers if layer.kind != "input"]
    first = layers[0] if layers[0].kind == "input" else None

    class SpecNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = body
            self.mods = nn.ModuleList(_spec_module(l, s, nn) for l, s in zip(body, shapes))

        def forward(self, x, return_all: bool = False):
            named = {first.name: x} if first is not None and first.name else {}
            outs = []
            for layer, mod in zip(self.layers, self.mods):
                if layer.kind == "concat":
                    x = torch.cat([x, named[layer.ref]], dim=1)
                elif layer.kind == "add":
                    x = x + named[layer.ref]
                elif layer.kind == "from":
                    x = named[layer.ref]
                else:
                    x = mod(x)
                if layer.name:
                    named[layer.name] = x
                outs.append(x)
            return outs if return_all else x

    return SpecNet()
