"""Layers with PyTorch's names, arguments, parameter layouts and default initialisation.

There is no global random state: a layer with weights (or a ``Dropout``) takes
``rng=``, a ``numpy.random.Generator`` (share one across the layers of a model)
or an int seed. Without one it draws from a fresh ``np.random.default_rng()``,
as NumPy does: different weights each time.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = Linear(3, 2, rng=rng); b = Linear(3, 2, rng=rng)           # one generator, drawn in turn
>>> bool(np.array_equal(Linear(3, 2, rng=7).weight.numpy(), Linear(3, 2, rng=7).weight.numpy()))
True
"""

from __future__ import annotations

import numpy as np

from nablab.nn import functional as F
from nablab.nn import init
from nablab.nn.conv import pair
from nablab.nn.module import Module, Parameter


def _rng(rng):
    """The generator a layer draws from: ``rng`` itself, one seeded by it, or a fresh one for None."""
    if rng is not None and not isinstance(rng, (np.random.Generator, int, np.integer)):
        raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")
    return np.random.default_rng(rng)


class Linear(Module):
    """``y = x W^T + b`` with W of shape (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float64, rng=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        w, b = init.torch_default((out_features, in_features), _rng(rng), dtype)
        self.weight = Parameter(w)
        self.bias = Parameter(b) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class _ConvNd(Module):
    def _init_params(self, weight_shape, bias, dtype, rng, bias_size=None):
        w, b = init.torch_default(weight_shape, _rng(rng), dtype, bias_size=bias_size)
        self.weight = Parameter(w)
        self.bias = Parameter(b) if bias else None


class Conv2d(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, dtype=np.float64, rng=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.padding = stride, padding
        self.dilation, self.groups = dilation, groups
        self.in_channels, self.out_channels = in_channels, out_channels
        self._init_params((out_channels, in_channels // groups) + self.kernel_size, bias, dtype, rng)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class Conv1d(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, dtype=np.float64, rng=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv1d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.kernel_size, self.stride, self.padding = int(kernel_size), stride, padding
        self.dilation, self.groups = dilation, groups
        self.in_channels, self.out_channels = in_channels, out_channels
        self._init_params((out_channels, in_channels // groups, self.kernel_size), bias, dtype, rng)

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


class ConvTranspose2d(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, dtype=np.float64, rng=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.groups, self.dilation = groups, dilation
        self.in_channels, self.out_channels = in_channels, out_channels
        # weight (in, out / groups, kh, kw); PyTorch takes the fan from its dimension 1 here too
        shape = (in_channels, out_channels // groups) + self.kernel_size
        self._init_params(shape, bias, dtype, rng, bias_size=out_channels)

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class MaxPool1d(MaxPool2d):
    def forward(self, x):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation)


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)


class _Elementwise(Module):
    fn = None

    def forward(self, x):
        return type(self).fn(x)


class ReLU(_Elementwise):
    fn = staticmethod(F.relu)


class Tanh(_Elementwise):
    fn = staticmethod(F.tanh)


class Sigmoid(_Elementwise):
    fn = staticmethod(F.sigmoid)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class Flatten(Module):
    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)


class Dropout(Module):
    """Inverted dropout in training mode; the identity in evaluation mode."""

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p={p} must be in [0, 1)")
        self.p = p
        self.rng = _rng(rng)

    def forward(self, x):
        return F.dropout(x, self.p, self.rng, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class _BatchNorm(Module):
    expected_dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float64):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x):
        ndim = len(np.shape(x))
        if ndim not in self.expected_dims or np.shape(x)[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): got input of shape {np.shape(x)}")
        return F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                            self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    expected_dims = (4,)


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class CrossEntropyLoss(Module):
    def forward(self, logits, labels):
        return F.cross_entropy(logits, labels)


class MSELoss(Module):
    def forward(self, pred, target):
        return F.mse_loss(pred, target)


class HuberLoss(Module):
    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = delta

    def forward(self, pred, target):
        return F.huber_loss(pred, target, self.delta)


class MultiMarginLoss(Module):
    def __init__(self, margin=1.0):
        super().__init__()
        self.margin = margin

    def forward(self, logits, labels):
        return F.multi_margin_loss(logits, labels, self.margin)
