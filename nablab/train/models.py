"""The four classifiers the training command knows, built from :mod:`nablab.nn` layers.

Every model is an :class:`nablab.nn.Sequential`, so its parameter names
(``"1.weight"``, ...) are the ones a ``torch.nn.Sequential`` of the same layers
would have; :func:`nablab.torch_bridge.to_torch` relies on that.

- ``logistic``: a softmax classifier, flatten - affine.
- ``mlp``: a two-layer network, flatten - affine - ReLU - affine (``hidden`` units).
- ``resmlp``: the MNIST-1D paper's reference MLP (its ``MLPBase``): affine - ReLU,
  then a residual block ``h + ReLU(affine(h))``, then affine (``hidden`` units); the
  model behind the dataset's published MLP accuracy.
- ``convnet``: the shallow ConvNet of CS231n's ``ThreeLayerConvNet``:
  conv (32 filters, 7 wide, size-preserving padding) - ReLU - 2x2 max pool -
  affine (``hidden`` units) - ReLU - affine.  On 1-D signals it is the same net
  with 1-D convolution and pooling.
- ``cnn1d``: the MNIST-1D paper's reference CNN (its ``ConvBase``): three
  convolutions of 25 channels (kernel 5 then 3 and 3, stride 2, padding 1),
  each followed by ReLU, then one affine layer on the flattened features.

Weights use PyTorch's default initialisation, drawn from ``seed``.

>>> from nablab.train.models import build_model
>>> model = build_model("cnn1d", (1, 40), 10, seed=0)
>>> [(name, p.shape) for name, p in model.named_parameters()][-2:]
[('7.weight', (10, 125)), ('7.bias', (10,))]
>>> build_model("convnet", (3, 32, 32), 10).num_parameters()
825046
"""

from __future__ import annotations

import numpy as np

from nablab import nn
from nablab.nn.conv import conv_output_size

__all__ = ["MODELS", "build_model", "Residual"]

#: Model names, with a one-line description each.
MODELS = {
    "logistic": "softmax classifier: affine layer on the flattened input",
    "mlp": "two-layer MLP: affine - ReLU - affine",
    "resmlp": "MNIST-1D reference MLP: affine - ReLU, h + ReLU(affine(h)), affine",
    "convnet": "shallow ConvNet: conv7x7(32) - ReLU - 2x2 max pool - affine(100) - ReLU - affine",
    "cnn1d": "MNIST-1D reference CNN: 3 x (conv, stride 2, 25 channels) - ReLU, then affine",
}


def build_model(name: str, input_shape, num_classes: int = 10, *, seed: int = 0, dtype=np.float64,
                hidden: int = 100) -> nn.Sequential:
    """The model ``name`` for inputs of shape ``input_shape`` (without the batch axis).

    ``input_shape`` is ``(C, L)`` for signals or ``(C, H, W)`` for images.

    ``name`` is one of :data:`MODELS`; ``num_classes`` sizes the output, ``seed`` draws the weights,
    ``dtype`` is their type and ``hidden`` the width of the hidden layers of ``mlp`` and ``resmlp``.

    >>> from nablab.train import build_model
    >>> model = build_model("mlp", (1, 40), 10, seed=0, hidden=32)
    >>> [(name, p.shape) for name, p in model.named_parameters()][:2]
    [('1.weight', (32, 40)), ('1.bias', (32,))]
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{name}: input_shape must be (C, L) or (C, H, W) with positive sizes, got {input_shape!r}")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"{name}: num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(hidden, (int, np.integer)) or hidden < 1:
        raise ValueError(f"{name}: hidden must be a positive integer, got {hidden!r}")
    rng = np.random.default_rng(seed)
    kw = dict(dtype=dtype, rng=rng)
    features = int(np.prod(shape))
    if name == "logistic":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes, **kw))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden, **kw), nn.ReLU(),
                             nn.Linear(hidden, num_classes, **kw))
    if name == "resmlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden, **kw), nn.ReLU(),
                             Residual(nn.Linear(hidden, hidden, **kw), nn.ReLU()), nn.Linear(hidden, num_classes, **kw))
    if name == "convnet":
        return _convnet(shape, num_classes, hidden, kw)
    return _cnn1d(shape, num_classes, kw)


class Residual(nn.Module):
    """``x + body(x)`` with ``body`` a :class:`nablab.nn.Sequential` of ``layers``.

    >>> import numpy as np
    >>> block = Residual(nn.Linear(2, 2, rng=np.random.default_rng(0)))
    >>> [name for name, _ in block.named_parameters()]
    ['body.0.weight', 'body.0.bias']
    """

    def __init__(self, *layers):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x)


def _convnet(shape, num_classes, hidden, kw, filters=32, kernel=7):
    channels, *spatial = shape
    if min(spatial) < 2:
        raise ValueError(f"convnet: the input {shape} is too small for 2x2 max pooling")
    pooled = int(np.prod([s // 2 for s in spatial]))
    if len(spatial) == 1:
        conv, pool = nn.Conv1d(channels, filters, kernel, padding=kernel // 2, **kw), nn.MaxPool1d(2)
    else:
        conv, pool = nn.Conv2d(channels, filters, kernel, padding=kernel // 2, **kw), nn.MaxPool2d(2)
    return nn.Sequential(conv, nn.ReLU(), pool, nn.Flatten(), nn.Linear(filters * pooled, hidden, **kw), nn.ReLU(),
                         nn.Linear(hidden, num_classes, **kw))


def _cnn1d(shape, num_classes, kw, channels=25):
    if len(shape) != 2:
        raise ValueError(f"cnn1d is the MNIST-1D CNN for 1-D signals (C, L); got input shape {shape} "
                         "(use --model convnet for images)")
    in_channels, length = shape
    layers = []
    for i, k in enumerate((5, 3, 3)):
        new_length = conv_output_size(length, k, 2, 1, 1)
        if new_length < 1:
            raise ValueError(f"cnn1d: a signal of length {shape[1]} is too short for three stride-2 convolutions")
        layers += [nn.Conv1d(in_channels if i == 0 else channels, channels, k, stride=2, padding=1, **kw), nn.ReLU()]
        length = new_length
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * length, num_classes, **kw))
