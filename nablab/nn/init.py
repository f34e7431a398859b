"""Weight initialisers (Kaiming / He, Xavier / Glorot) with the fan conventions of torch.nn.init.

Every function takes a ``numpy.random.Generator`` so results are reproducible.

>>> import numpy as np
>>> from nablab.nn import init
>>> w = init.kaiming_normal((256, 128), np.random.default_rng(0))
>>> round(float(w.std() * np.sqrt(128 / 2)), 1)  # std = sqrt(2 / fan_in)
1.0
"""

from __future__ import annotations

import math

import numpy as np


def fans(shape):
    """(fan_in, fan_out): dims 1 and 0 times the receptive field size, as PyTorch counts them.

    >>> import nablab.nn.init as init
    >>> init.fans((64, 3, 3, 3)), init.fans((10, 784))
    ((27, 576), (784, 10))
    """
    if len(shape) < 2:
        raise ValueError(f"fans: need at least 2 dimensions, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def gain(nonlinearity="relu", param=None):
    """Recommended gain: relu sqrt(2), tanh 5/3, linear/sigmoid 1, leaky_relu sqrt(2 / (1 + a^2)).

    ``param`` is leaky_relu's negative slope (0.01 by default).

    >>> import nablab.nn.init as init
    >>> round(init.gain("relu"), 6), round(init.gain("tanh"), 6), round(init.gain("leaky_relu", 0.2), 6)
    (1.414214, 1.666667, 1.38675)
    """
    if nonlinearity in ("linear", "sigmoid", "conv2d", "conv1d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + a * a))
    raise ValueError(f"gain: unknown nonlinearity {nonlinearity!r}")


def uniform(shape, rng, low, high, dtype=np.float64):
    """An array of ``shape`` drawn uniformly from ``[low, high)`` by the Generator ``rng``, as ``dtype``.

    >>> import numpy as np
    >>> import nablab.nn.init as init
    >>> w = init.uniform((3, 4), np.random.default_rng(0), -0.5, 0.5)
    >>> w.shape, bool(np.all(np.abs(w) <= 0.5))
    ((3, 4), True)
    """
    return rng.uniform(low, high, size=shape).astype(dtype)


def kaiming_uniform(shape, rng, a=0.0, nonlinearity="leaky_relu", mode="fan_in", dtype=np.float64):
    """He initialisation, uniform: ``U(-b, b)`` with ``b = gain(nonlinearity, a) * sqrt(3 / fan)``, the
    fan of ``mode`` (``"fan_in"`` or ``"fan_out"``) as :func:`fans` counts it (``torch.nn.init.kaiming_uniform_``).

    >>> import numpy as np
    >>> import nablab.nn.init as init
    >>> w = init.kaiming_uniform((256, 128), np.random.default_rng(0), nonlinearity="relu")
    >>> round(float(w.std() * np.sqrt(128 / 2)), 1)
    1.0
    """
    fan = fans(shape)[0 if mode == "fan_in" else 1]
    bound = gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform(shape, rng, -bound, bound, dtype)


def kaiming_normal(shape, rng, a=0.0, nonlinearity="relu", mode="fan_in", dtype=np.float64):
    """He initialisation, normal: standard deviation ``gain(nonlinearity, a) / sqrt(fan)``, the fan of
    ``mode`` (``torch.nn.init.kaiming_normal_``).

    >>> import numpy as np
    >>> import nablab.nn.init as init
    >>> w = init.kaiming_normal((256, 128), np.random.default_rng(0))
    >>> round(float(w.std() * np.sqrt(128 / 2)), 1)
    1.0
    """
    fan = fans(shape)[0 if mode == "fan_in" else 1]
    return (rng.standard_normal(shape) * gain(nonlinearity, a) / math.sqrt(fan)).astype(dtype)


def xavier_uniform(shape, rng, gain_=1.0, dtype=np.float64):
    """Glorot initialisation, uniform: ``U(-b, b)`` with ``b = gain_ * sqrt(6 / (fan_in + fan_out))``
    (``torch.nn.init.xavier_uniform_``).

    >>> import numpy as np
    >>> import nablab.nn.init as init
    >>> w = init.xavier_uniform((100, 100), np.random.default_rng(0))
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 200))
    True
    """
    fan_in, fan_out = fans(shape)
    bound = gain_ * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, rng, -bound, bound, dtype)


def xavier_normal(shape, rng, gain_=1.0, dtype=np.float64):
    """Glorot initialisation, normal: standard deviation ``gain_ * sqrt(2 / (fan_in + fan_out))``
    (``torch.nn.init.xavier_normal_``).

    >>> import numpy as np
    >>> import nablab.nn.init as init
    >>> w = init.xavier_normal((200, 200), np.random.default_rng(0))
    >>> round(float(w.std() * 10), 1)
    0.7
    """
    fan_in, fan_out = fans(shape)
    return (rng.standard_normal(shape) * gain_ * math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def torch_default(weight_shape, rng, dtype=np.float64, bias_size=None):
    """PyTorch's default for Linear and Conv layers: kaiming_uniform(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)).

    The bias (of ``bias_size`` entries, by default ``weight_shape[0]``) uses the same bound.

    >>> import numpy as np
    >>> import nablab.nn.init as init
    >>> w, b = init.torch_default((8, 4), np.random.default_rng(0))
    >>> w.shape, b.shape, bool(np.abs(w).max() <= 0.5)
    ((8, 4), (8,), True)
    """
    fan_in = fans(weight_shape)[0]
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    weight = uniform(weight_shape, rng, -bound, bound, dtype)
    bias = uniform((weight_shape[0] if bias_size is None else bias_size,), rng, -bound, bound, dtype)
    return weight, bias
