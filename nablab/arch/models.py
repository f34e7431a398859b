"""Read the layers of a sequential model (nablab.nn or torch.nn) into :class:`~nablab.arch.spec.Layer` objects.

Both libraries use PyTorch's class and attribute names, so one reader serves
both.  Only what the order of the children says can be followed: a
``Sequential`` (nested ones are flattened) or a single layer.  A module with
its own ``forward`` (a residual block, say) cannot be read; write its spec
with ``from(NAME)``/``add(NAME)`` instead.
"""

from __future__ import annotations

from .shapes import same_padding
from .spec import Layer

__all__ = ["layers_from_model"]

SIMPLE = {"ReLU": "relu", "LeakyReLU": "leakyrelu", "Tanh": "tanh", "Sigmoid": "sigmoid",
          "Dropout": "dropout", "Softmax": "softmax", "Flatten": "flatten"}
SKIP = {"Identity"}


def _pair(v, what, where):
    if isinstance(v, (tuple, list)) and len(v) == 2:
        return int(v[0]), int(v[1])
    if isinstance(v, (tuple, list)) and len(v) == 1:
        return int(v[0]), int(v[0])
    try:
        return int(v), int(v)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: cannot read {what}={v!r}") from None


def _padding(m, k, d, where):
    p = getattr(m, "padding", 0)
    if p == "same":
        return tuple(same_padding(ki, di) for ki, di in zip(k, d)), "same"
    if p == "valid":
        return ((0, 0), (0, 0)), "valid"
    return tuple((pi, pi) for pi in _pair(p, "padding", where)), "explicit"


def _children(model):
    if hasattr(model, "_modules") and type(model).__name__ == "Sequential":
        return list(model._modules.items())
    return None


def _walk(model, prefix=""):
    kids = _children(model)
    if kids is None:
        yield prefix or type(model).__name__, model
        return
    for name, child in kids:
        if child is not None:
            yield from _walk(child, f"{prefix}.{name}" if prefix else name)


def _layer(m, path: str, index: int) -> Layer | None:
    cls = type(m).__name__
    where = f"layer {index} '{path}' ({cls})"
    common = dict(text=f"{cls} {path}", index=index, name=path)
    if cls in SKIP:
        return None
    if cls in SIMPLE:
        if cls == "Flatten" and getattr(m, "start_dim", 1) != 1:
            raise TypeError(f"{where}: only Flatten(start_dim=1) can be followed")
        if cls == "Softmax" and getattr(m, "dim", 1) not in (1, -1, None):
            raise TypeError(f"{where}: only softmax over the channels (dim=1) can be followed")
        return Layer(kind=SIMPLE[cls], p=getattr(m, "p", None), **common)
    if cls in ("Conv2d", "ConvTranspose2d"):
        k = _pair(m.kernel_size, "kernel_size", where)
        d = _pair(getattr(m, "dilation", 1), "dilation", where)
        pads, mode = _padding(m, k, d, where)
        transposed = cls == "ConvTranspose2d"
        return Layer(kind="convT" if transposed else "conv", kernel=k, channels=int(m.out_channels),
                     stride=_pair(m.stride, "stride", where), padding=pads, padding_mode=mode, dilation=d,
                     groups=int(getattr(m, "groups", 1)), bias=getattr(m, "bias", None) is not None,
                     output_padding=_pair(getattr(m, "output_padding", 0), "output_padding", where)
                     if transposed else None, expects=int(m.in_channels), **common)
    if cls in ("MaxPool2d", "AvgPool2d"):
        k = _pair(m.kernel_size, "kernel_size", where)
        stride = k if m.stride in (None, ()) else _pair(m.stride, "stride", where)
        d = _pair(getattr(m, "dilation", 1), "dilation", where)
        pads, _ = _padding(m, k, d, where)
        return Layer(kind="maxpool" if cls == "MaxPool2d" else "avgpool", kernel=k, stride=stride,
                     padding=pads, padding_mode="explicit", dilation=d,
                     ceil_mode=bool(getattr(m, "ceil_mode", False)), **common)
    if cls == "Linear":
        return Layer(kind="fc", channels=int(m.out_features), bias=getattr(m, "bias", None) is not None,
                     expects=int(m.in_features), **common)
    if cls in ("BatchNorm1d", "BatchNorm2d"):
        return Layer(kind="bn", expects=int(m.num_features), **common)
    raise TypeError(f"{where}: nablab.arch follows Sequential models of known layers (Conv2d, "
                    f"ConvTranspose2d, MaxPool2d, AvgPool2d, Linear, BatchNorm, activations, Flatten, "
                    f"Dropout, Softmax); write a spec string for other modules")


def layers_from_model(model) -> list[Layer]:
    """The model's layers in order, as :class:`Layer` objects (no input layer).

    >>> from nablab import nn
    >>> [l.kind for l in layers_from_model(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()))]
    ['conv', 'relu', 'flatten']
    """
    layers = []
    for path, m in _walk(model):
        layer = _layer(m, path, len(layers) + 1)
        if layer is not None:
            layers.append(layer)
    if not layers:
        raise ValueError(f"the model {type(model).__name__} has no layers to summarise")
    return layers
