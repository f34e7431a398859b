"""Build the network of a spec as a PyTorch module, for cross-checks.

PyTorch is imported only when :func:`to_torch` is called; nablab itself does
not depend on it.
"""

from __future__ import annotations

from .propagate import input_state, propagate
from .summary import resolve

__all__ = ["to_torch"]


def _conv_padding(layer):
    pads = layer.padding
    if all(lo == hi for lo, hi in pads):
        return tuple(lo for lo, _ in pads)
    return "same"  # asymmetric pads only come from "same" with an even kernel


def _module(layer, shape, nn):
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


def to_torch(spec_or_model, input_shape=None):
    """A ``torch.nn.Module`` computing the spec's network (inputs carry a batch axis).

    ``forward(x, return_all=True)`` returns the list of every layer's output.

    >>> import torch
    >>> net = to_torch("input 3x32x32, conv3-8, maxpool2, fc-10")
    >>> sum(p.numel() for p in net.parameters()), tuple(net(torch.zeros(2, 3, 32, 32)).shape)
    (20714, (2, 10))
    """
    import torch
    from torch import nn

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
            self.mods = nn.ModuleList(_module(l, s, nn) for l, s in zip(body, shapes))

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
