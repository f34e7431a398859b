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
    """``y = x W^T + b`` with W of shape (out_features, in_features).

    ``in_features`` and ``out_features`` size the weight; ``bias=False`` drops b; ``dtype`` is the
    parameters' type; ``rng`` (a Generator or an int seed) draws PyTorch's default initialisation.

    >>> import numpy as np
    >>> from nablab import nn
    >>> lin = nn.Linear(3, 2, rng=0)
    >>> lin.weight.shape, lin(np.ones((4, 3))).shape
    ((2, 3), (4, 2))
    """

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
    """2-D convolution (cross-correlation) over (N, C, H, W), as ``torch.nn.Conv2d``: ``kernel_size``,
    ``stride``, ``padding`` (an int, a pair, ``"valid"`` or ``"same"``) and ``dilation`` as in
    :func:`nablab.nn.functional.conv2d`; ``groups`` splits the channels; ``bias``, ``dtype`` and
    ``rng`` as for :class:`Linear`.

    >>> import numpy as np
    >>> from nablab import nn
    >>> conv = nn.Conv2d(3, 8, 3, padding=1, rng=0)
    >>> conv.weight.shape, conv(np.zeros((2, 3, 16, 16))).shape
    ((8, 3, 3, 3), (2, 8, 16, 16))
    """
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
    """1-D convolution over (N, C, L), as ``torch.nn.Conv1d``; the arguments are :class:`Conv2d`'s with
    one spatial axis.

    >>> import numpy as np
    >>> from nablab import nn
    >>> conv = nn.Conv1d(1, 4, 5, stride=2, rng=0)
    >>> conv(np.zeros((2, 1, 40))).shape
    (2, 4, 18)
    """
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
    """Transposed 2-D convolution, as ``torch.nn.ConvTranspose2d`` (see
    :func:`nablab.nn.functional.conv_transpose2d`; ``output_padding`` adds rows and columns at the far side).

    >>> import numpy as np
    >>> from nablab import nn
    >>> up = nn.ConvTranspose2d(4, 2, 2, stride=2, rng=0)
    >>> up(np.zeros((1, 4, 5, 5))).shape
    (1, 2, 10, 10)
    """
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
    """Max pooling over (N, C, H, W): windows of ``kernel_size``, moved by ``stride`` (the kernel size
    by default), on an input padded by ``padding`` (with -inf) and spread by ``dilation``.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class MaxPool1d(MaxPool2d):
    """Max pooling over (N, C, L), with :class:`MaxPool2d`'s arguments on one axis.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.MaxPool1d(2)(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
    array([[[3., 2.]]])
    """
    def forward(self, x):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation)


class AvgPool2d(Module):
    """Average pooling over (N, C, H, W); ``count_include_pad`` counts the zero padding in the average.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
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
    """:func:`nablab.relu` as a layer.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """
    fn = staticmethod(F.relu)


class Tanh(_Elementwise):
    """``tanh`` as a layer.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.Tanh()(np.array([0.0]))
    array([0.])
    """
    fn = staticmethod(F.tanh)


class Sigmoid(_Elementwise):
    """:func:`nablab.sigmoid` as a layer.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.Sigmoid()(np.array([0.0]))
    array([0.5])
    """
    fn = staticmethod(F.sigmoid)


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.LeakyReLU(0.1)(np.array([-2.0, 3.0]))
    array([-0.2,  3. ])
    """
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class Flatten(Module):
    """Every axis from ``start_dim`` on folded into one.

    >>> import numpy as np
    >>> from nablab import nn
    >>> nn.Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """
    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)


class Dropout(Module):
    """Inverted dropout in training mode; the identity in evaluation mode.

    ``p`` is the probability of zeroing an entry; ``rng`` (a Generator or an int seed) draws the masks.

    >>> import numpy as np
    >>> from nablab import nn
    >>> drop = nn.Dropout(0.5, rng=0)
    >>> drop(np.ones(6))
    array([2., 0., 0., 0., 2., 2.])
    >>> _ = drop.eval()
    >>> drop(np.ones(6))
    array([1., 1., 1., 1., 1., 1.])
    """

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
    """Batch normalisation of (N, C) or (N, C, L) over all axes but the channels, as
    ``torch.nn.BatchNorm1d``: ``num_features`` is C, ``eps`` is added to the variance, ``momentum``
    weighs the new batch in the running statistics, ``affine`` adds a scale and a shift per channel.

    >>> import numpy as np
    >>> from nablab import nn
    >>> bn = nn.BatchNorm1d(2)
    >>> bn(np.array([[1.0, 10.0], [3.0, 30.0]]))
    tensor([[-0.999995  , -0.99999995],
            [ 0.999995  ,  0.99999995]], requires_grad=True)
    >>> bn.running_mean
    array([0.2, 2. ])
    """
    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W), with :class:`BatchNorm1d`'s arguments.

    >>> import numpy as np
    >>> from nablab import nn
    >>> bn = nn.BatchNorm2d(3)
    >>> y = bn(np.random.default_rng(0).normal(5.0, 2.0, (4, 3, 8, 8)))
    >>> np.round(y.numpy().mean(), 6), np.round(y.numpy().std(), 3)
    (np.float64(0.0), np.float64(1.0))
    """
    expected_dims = (4,)


def _commute(relu, pool):
    """Whether ``pool(relu(x))`` may run as ``relu(pool(x))``: a :class:`ReLU` followed by max pooling without
    padding. ReLU never decreases, so a window's largest value is the largest after ReLU too (a NaN, the largest to
    max pooling, stays NaN), and every window holds a value of the input. The gradients are the same values too:
    where a window's largest value is at most 0, its gradient is 0 either way, even for an inf or NaN cotangent
    (ReLU's derivative rule gives 0 there, not g * 0), only sent to the window's largest entry rather than to its
    first. Only these classes themselves: a subclass may compute something else. ReLU's two passes then run on a
    quarter of the values (2x2 pooling): the seed ConvNet's training step at batch 128 went from 56.1 to 52.3 ms
    at 1 thread and from 35.2 to 30.5 ms at 2."""
    return type(relu) is ReLU and type(pool) in (MaxPool2d, MaxPool1d) and pool.padding in (0, (0, 0))


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ... as in PyTorch.

    ``modules`` are the layers, applied first to last; ``model[i]`` is the i-th.

    >>> import numpy as np
    >>> from nablab import nn
    >>> model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.ReLU(), nn.Linear(8, 3, rng=1))
    >>> model(np.ones((5, 4))).shape, len(model), type(model[1]).__name__
    ((5, 3), 3, 'ReLU')
    """

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def forward(self, x):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            if i + 1 < len(modules) and _commute(modules[i], modules[i + 1]):
                x = modules[i](modules[i + 1](x))  # pool, then ReLU: the same values (see _commute)
                i += 2
            else:
                x = modules[i](x)
                i += 1
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class CrossEntropyLoss(Module):
    """:func:`nablab.nn.functional.cross_entropy` as a module: ``loss(logits, labels)``.

    >>> import numpy as np
    >>> from nablab import nn
    >>> float(nn.CrossEntropyLoss()(np.zeros((2, 4)), np.array([0, 3])))
    1.3862943611198906
    """
    def forward(self, logits, labels):
        return F.cross_entropy(logits, labels)


class MSELoss(Module):
    """The mean squared error ``mean((pred - target) ** 2)`` as a module.

    >>> import numpy as np
    >>> from nablab import nn
    >>> float(nn.MSELoss()(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
    """
    def forward(self, pred, target):
        return F.mse_loss(pred, target)


class HuberLoss(Module):
    """:func:`nablab.nn.functional.huber_loss` as a module, with its ``delta``.

    >>> import numpy as np
    >>> from nablab import nn
    >>> float(nn.HuberLoss(delta=1.0)(np.array([0.5, 3.0]), np.zeros(2)))
    1.3125
    """
    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = delta

    def forward(self, pred, target):
        return F.huber_loss(pred, target, self.delta)


class MultiMarginLoss(Module):
    """:func:`nablab.nn.functional.multi_margin_loss` as a module, with its ``margin``.

    >>> import numpy as np
    >>> from nablab import nn
    >>> float(nn.MultiMarginLoss()(np.array([[2.0, 1.5, 0.0]]), np.array([0])))
    0.16666666666666666
    """
    def __init__(self, margin=1.0):
        super().__init__()
        self.margin = margin

    def forward(self, logits, labels):
        return F.multi_margin_loss(logits, labels, self.margin)
