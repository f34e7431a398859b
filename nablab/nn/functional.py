"""Layers and losses as functions of explicit arrays (PyTorch's layouts and conventions).

>>> import numpy as np, nablab as nb
>>> from nablab.nn import functional as F
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> F.conv2d(x, np.ones((1, 1, 2, 2)), stride=2)[0, 0]
array([[10., 18.],
       [42., 50.]])
>>> F.max_pool2d(x, 2)[0, 0]
array([[ 5.,  7.],
       [13., 15.]])
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff import ops
from nablab.autodiff.core import shape_of, value_of
from nablab.errors import ShapeError
from nablab.nn.conv import avg_pool2d, conv, conv_input_grad, conv_output_size, max_pool2d, pair

__all__ = [
    "linear", "conv1d", "conv2d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool2d",
    "relu", "leaky_relu", "tanh", "sigmoid", "softmax", "log_softmax", "flatten", "dropout",
    "batch_norm", "cross_entropy", "mse_loss", "huber_loss", "multi_margin_loss", "one_hot", "accuracy",
]

relu, tanh, sigmoid, softmax, log_softmax = ops.relu, ops.tanh, ops.sigmoid, ops.softmax, ops.log_softmax


def leaky_relu(x, negative_slope=0.01):
    """``x`` where positive, ``negative_slope * x`` elsewhere (derivative ``negative_slope`` at 0).

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.leaky_relu(np.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    return ops.where(value_of(x) > 0, x, negative_slope * x)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` with ``weight`` of shape (out, in), as torch.nn.Linear.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.linear(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([0.0, 10.0]))
    array([[ 3., 12.]])
    """
    if shape_of(x)[-1] != shape_of(weight)[1]:
        raise ShapeError(f"linear: input has {shape_of(x)[-1]} features (shape {shape_of(x)}) "
                         f"but the weight {shape_of(weight)} expects {shape_of(weight)[1]}")
    out = ops.matmul(x, ops.transpose(weight))
    return out if bias is None else out + bias


def _resolve_padding(padding, kernel, dilation, stride, who):
    """Symmetric (ph, pw) and, for "same" with an even kernel, the extra pad on the far side."""
    if padding == "valid":
        return (0, 0), None
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{who}: padding='same' needs stride 1, got stride {stride}")
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        low = tuple(t // 2 for t in total)
        extra = tuple(t - 2 * lo for t, lo in zip(total, low))
        return low, (extra if any(extra) else None)
    return pair(padding, "padding"), None


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation (no kernel flip) over (N, C, H, W), as torch.nn.functional.conv2d.

    ``padding`` is an int, a pair, ``"valid"`` or ``"same"`` (stride 1; an even
    kernel pads one more on the bottom/right, as PyTorch does).

    ``x`` is (N, C, H, W), ``weight`` (O, C / groups, kh, kw) and ``bias`` (O,) or None; ``stride``
    and ``dilation`` are ints or pairs; ``groups`` splits the channels into independent groups.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> F.conv2d(x, np.ones((1, 1, 2, 2)), stride=2)
    array([[[[10., 18.],
             [42., 50.]]]])
    >>> F.conv2d(x, np.ones((1, 1, 3, 3)), padding="same").shape
    (1, 1, 4, 4)
    """
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    kernel = shape_of(weight)[2:]
    padding, extra = _resolve_padding(padding, kernel, dilation, stride, "conv2d")
    if extra is not None:
        x = ops.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": int(groups)}
    if bias is not None and _fusable_bias(x, weight, bias):  # added inside the convolution, chunk by chunk
        return conv(x, weight, bias, **options)
    out = conv(x, weight, **options)
    if bias is not None:
        out = out + ops.reshape(bias, (1, -1, 1, 1))
    return out


def _fusable_bias(x, weight, bias):
    """A bias of shape (O,) and the dtype the convolution's result has: it can be added inside the convolution."""
    b, xv, wv = value_of(bias), value_of(x), value_of(weight)
    if not all(isinstance(a, np.ndarray) for a in (b, xv, wv)):
        return False
    return b.shape == (wv.shape[0],) and b.dtype == np.result_type(xv, wv) and b.dtype.kind == "f"


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation over (N, C, L) with weight (O, C/groups, k), as torch's conv1d.

    ``bias``, ``stride``, ``padding``, ``dilation`` and ``groups`` as for :func:`conv2d`, on one axis.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.conv1d(np.array([[[1.0, 2.0, 3.0, 4.0]]]), np.array([[[1.0, -1.0]]]))
    array([[[-1., -1., -1.]]])
    """
    if len(shape_of(x)) != 3 or len(shape_of(weight)) != 3:
        raise ShapeError(f"conv1d: input must be (N, C, L) and weight (O, C/groups, k); got {shape_of(x)} and {shape_of(weight)}")
    N, C, L = shape_of(x)
    O, Cg, k = shape_of(weight)
    pad = padding if isinstance(padding, str) else (0, int(padding))
    out = conv2d(ops.reshape(x, (N, C, 1, L)), ops.reshape(weight, (O, Cg, 1, k)), None,
                 stride=(1, int(stride)), padding=pad, dilation=(1, int(dilation)), groups=groups)
    out = ops.reshape(out, (N, O, shape_of(out)[-1]))
    return out if bias is None else out + ops.reshape(bias, (1, -1, 1))


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution, as torch.nn.functional.conv_transpose2d.

    ``weight`` has shape (C_in, C_out / groups, kh, kw); the output size is
    ``(H - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1``.
    It is the adjoint (the input gradient) of ``conv2d`` with the same weight.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2)
    array([[[[1., 1., 1., 1.],
             [1., 1., 1., 1.],
             [1., 1., 1., 1.],
             [1., 1., 1., 1.]]]])
    """
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    dilation, output_padding = pair(dilation, "dilation"), pair(output_padding, "output_padding")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= max(s, d):
            raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be smaller than stride "
                             f"{stride} or dilation {dilation}")
    N, Cin, H, W = shape_of(x)
    wCin, Cout_g, kh, kw = shape_of(weight)
    if wCin != Cin:
        raise ShapeError(f"conv_transpose2d: input has {Cin} channels but the weight {shape_of(weight)} expects {wCin}")
    Ho = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    Wo = (W - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    if Ho < 1 or Wo < 1:
        raise ShapeError(f"conv_transpose2d: the output would be {Ho}x{Wo} for input {H}x{W}")
    # With output_padding >= stride (allowed when below the dilation), a convolution of the
    # output has more rows than x: the transposed convolution is its adjoint on x padded by zeros.
    back = [conv_output_size(o, k, s, p, d) for o, k, s, p, d in zip((Ho, Wo), (kh, kw), stride, padding, dilation)]
    if back != [H, W]:
        x = ops.pad(x, ((0, 0), (0, 0), (0, back[0] - H), (0, back[1] - W)))
    out = conv_input_grad(x, weight, (N, Cout_g * groups, Ho, Wo), stride=stride, padding=padding,
                          dilation=dilation, groups=int(groups))
    return out if bias is None else out + ops.reshape(bias, (1, -1, 1, 1))


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1):
    """Max pooling over (N, C, L): windows of ``kernel_size`` moved by ``stride`` (the kernel size by
    default), with ``padding`` and ``dilation`` as for :func:`max_pool2d`.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.max_pool1d(np.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]]), 2, stride=1)
    array([[[3., 3., 5., 5.]]])
    """
    N, C, L = shape_of(x)
    out = max_pool2d(ops.reshape(x, (N, C, 1, L)), (1, int(kernel_size)),
                     stride=None if stride is None else (1, int(stride)), padding=(0, int(padding)),
                     dilation=(1, int(dilation)))
    return ops.reshape(out, (N, C, shape_of(out)[-1]))


def flatten(x, start_dim=1):
    """``x`` with every axis from ``start_dim`` on folded into one.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.flatten(np.zeros((2, 3, 4))).shape, F.flatten(np.zeros((2, 3, 4)), 0).shape
    ((2, 12), (24,))
    """
    shape = shape_of(x)
    return ops.reshape(x, shape[:start_dim] + (-1,))


def dropout(x, p, rng, training=True):
    """Zero each entry with probability ``p`` and scale the rest by 1/(1-p) (inverted dropout).

    ``rng`` is a NumPy Generator; with ``training=False`` (or ``p=0``) ``x`` comes back unchanged.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.dropout(np.ones(6), 0.5, np.random.default_rng(0))
    array([2., 0., 0., 0., 2., 2.])
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p={p} must be in [0, 1)")
    if not training or p == 0:
        return x
    keep = rng.random(shape_of(x)) >= p
    return x * (keep.astype(np.asarray(value_of(x)).dtype) / (1 - p))


def batch_norm(x, weight, bias, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5):
    """Batch normalisation over every axis but the channel axis 1 (BatchNorm1d/2d).

    In training it normalises by the batch statistics and updates the running
    ones in place (variance unbiased, as PyTorch); in evaluation it uses them.

    ``weight`` and ``bias`` (per channel, or None) scale and shift the result; ``running_mean`` and
    ``running_var`` are NumPy arrays (or None); ``momentum`` weighs the batch in them; ``eps`` is added
    to the variance.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> x = np.array([[1.0], [3.0]])
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> F.batch_norm(x, None, None, mean, var, training=True)
    array([[-0.999995],
           [ 0.999995]])
    >>> mean, var
    (array([0.2]), array([1.1]))
    """
    shape = shape_of(x)
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, -1) + (1,) * (len(shape) - 2)
    if training:
        mean = ops.mean(x, axis=axes, keepdims=True)
        var = ops.var(x, axis=axes, keepdims=True)
        if running_mean is not None:
            count = int(np.prod([shape[a] for a in axes]))
            m = np.asarray(value_of(mean)).reshape(-1)
            v = np.asarray(value_of(var)).reshape(-1) * count / max(count - 1, 1)
            running_mean *= 1 - momentum
            running_mean += momentum * m
            running_var *= 1 - momentum
            running_var += momentum * v
    else:
        mean = np.reshape(running_mean, bshape)
        var = np.reshape(running_var, bshape)
    out = (x - mean) / ops.sqrt(var + eps)
    if weight is not None:
        out = out * ops.reshape(weight, bshape) + ops.reshape(bias, bshape)
    return out


def one_hot(labels, num_classes, dtype=np.float64):
    """Integer ``labels`` as rows of ``num_classes`` zeros with a one at the label (of type ``dtype``).

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.one_hot(np.array([2, 0]), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    labels = _check_labels(np.asarray(value_of(labels)), num_classes, "one_hot")
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out


def _check_labels(labels, num_classes, who):
    """``labels`` if they are integers in ``[0, num_classes)``; else an error naming the first one that is not."""
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{who}: labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{who}: label {bad} is outside [0, {num_classes})")
    return labels


def _check_logits_labels(logits, labels, who):
    shape = shape_of(logits)
    labels = np.asarray(value_of(labels))
    if len(shape) != 2 or labels.shape != (shape[0],):
        raise ShapeError(f"{who}: logits must be (N, K) and labels (N,); got {shape} and {labels.shape}")
    return labels


def cross_entropy(logits, labels, reduction="mean"):
    """Softmax cross-entropy on logits, stable for any logit size (log-sum-exp).

    ``logits`` is (N, K), ``labels`` N integers in ``[0, K)``; ``reduction`` is ``"mean"`` (the
    default), ``"sum"`` or ``"none"`` (the N losses).

    >>> import numpy as np, nablab as nb
    >>> from nablab.nn import functional as F
    >>> logits = np.array([[2.0, 0.0], [0.0, 0.0]])
    >>> F.cross_entropy(logits, np.array([0, 1]), reduction="none")
    array([0.12692801, 0.69314718])
    >>> nb.grad(lambda z: F.cross_entropy(z, np.array([0, 1])))(logits)
    array([[-0.05960146,  0.05960146],
           [ 0.25      , -0.25      ]])
    """
    labels = _check_labels(_check_logits_labels(logits, labels, "cross_entropy"), shape_of(logits)[1],
                           "cross_entropy")
    # the label's logit picked out, not summed against a one-hot row: a masked logit (-inf) times 0 is NaN
    picked = ops.take_along_axis(logits, np.asarray(labels).reshape(-1, 1), axis=1)
    lse = ops.logsumexp(logits, axis=1)
    losses = ops.nan_where_infinite(lse - ops.reshape(picked, (-1,)), lse)  # a +inf logit: nan, as in PyTorch
    return _reduce(losses, reduction, "cross_entropy")


def mse_loss(pred, target, reduction="mean"):
    """The squared error ``(pred - target) ** 2`` of arrays of one shape, reduced by ``reduction``
    (``"mean"``, ``"sum"`` or ``"none"``).

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> pred = np.array([1.0, 3.0])
    >>> float(F.mse_loss(pred, np.zeros(2))), F.mse_loss(pred, np.zeros(2), "none")
    (5.0, array([1., 9.]))
    """
    if shape_of(pred) != shape_of(target):
        raise ShapeError(f"mse_loss: prediction {shape_of(pred)} and target {shape_of(target)} differ")
    diff = pred - target
    return _reduce(diff * diff, reduction, "mse_loss")


def huber_loss(pred, target, delta=1.0, reduction="mean"):
    """0.5 r^2 where |r| <= delta, delta (|r| - delta / 2) beyond (torch.nn.functional.huber_loss).

    ``r = pred - target``; ``reduction`` as for :func:`mse_loss`.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.huber_loss(np.array([0.5, 3.0]), np.zeros(2), delta=1.0, reduction="none")
    array([0.125, 2.5  ])
    """
    if shape_of(pred) != shape_of(target):
        raise ShapeError(f"huber_loss: prediction {shape_of(pred)} and target {shape_of(target)} differ")
    r = pred - target
    small = np.abs(np.asarray(value_of(r))) <= delta
    # the square sees 0 where it is not taken: an infinite residual there would send 0 * inf = nan back through
    # the branch that where leaves out
    r_small = ops.where(small, r, 0.0)
    losses = ops.where(small, 0.5 * r_small * r_small, delta * (ops.abs(r) - 0.5 * delta))
    return _reduce(losses, reduction, "huber_loss")


def multi_margin_loss(logits, labels, margin=1.0, reduction="mean"):
    """Multiclass SVM hinge: sum over j != y of max(0, margin - s_y + s_j) / K (torch's multi_margin_loss).

    ``logits`` (N, K) are the scores s, ``labels`` the N classes y; ``reduction`` as for :func:`cross_entropy`.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.multi_margin_loss(np.array([[2.0, 1.5, 0.0], [0.0, 1.0, 0.0]]), np.array([0, 0]), reduction="none")
    array([0.16666667, 1.        ])
    """
    labels = _check_logits_labels(logits, labels, "multi_margin_loss")
    n, k = shape_of(logits)
    target = one_hot(labels, k, dtype=np.asarray(value_of(logits)).dtype)
    correct = ops.sum(logits * target, axis=1, keepdims=True)
    margins = ops.relu(margin - correct + logits) * (1 - target)
    return _reduce(ops.sum(margins, axis=1) / k, reduction, "multi_margin_loss")


def _reduce(losses, reduction, who):
    if reduction == "mean":
        return ops.mean(losses)
    if reduction == "sum":
        return ops.sum(losses)
    if reduction == "none":
        return losses
    raise ValueError(f"{who}: reduction={reduction!r}; use 'mean', 'sum' or 'none'")


def accuracy(logits, labels):
    """Fraction of rows whose largest logit is the label.

    ``logits`` is (N, K), ``labels`` the N classes; the result is a float.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> F.accuracy(np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]), np.array([0, 1, 1]))
    0.6666666666666666
    """
    return float(np.mean(np.argmax(np.asarray(value_of(logits)), axis=1) == np.asarray(labels)))
