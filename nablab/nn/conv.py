"""Convolution and pooling as engine primitives (im2col + one batched GEMM).

Three bilinear primitives close under differentiation, so convolutions nest
like every other op (a Hessian-vector product through a ConvNet works):

- ``conv(x, w)``: the forward cross-correlation (deep-learning convention, no flip);
- ``conv_input_grad(g, w)``: its adjoint in ``x``, which is also the transposed convolution;
- ``conv_weight_grad(x, g)``: its adjoint in ``w``.

The VJP of each is one of the three, with the roles of the arguments exchanged.
Layouts follow PyTorch: inputs ``(N, C, H, W)``, weights ``(O, C / groups, kh, kw)``.
Max pooling is a gather of the window maxima and its adjoint a scatter; at ties
the first maximum in the window (row-major) takes the gradient, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff import ops
from nablab.autodiff.core import primitive, shape_of, value_of
from nablab.errors import ShapeError

# --------------------------------------------------------------------------- geometry


def pair(value, name):
    """``3 -> (3, 3)``; a pair stays; anything else is refused naming ``name``."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def conv_output_size(size, kernel, stride, padding, dilation):
    """PyTorch's formula: floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _geometry(x_shape, w_shape, stride, padding, dilation, groups, who):
    if len(x_shape) != 4:
        raise ShapeError(f"{who}: input must be (N, C, H, W), got shape {x_shape}")
    if len(w_shape) != 4:
        raise ShapeError(f"{who}: weight must be (O, C/groups, kh, kw), got shape {w_shape}")
    N, C, H, W = x_shape
    O, Cg, kh, kw = w_shape
    if groups < 1 or C % groups or O % groups:
        raise ShapeError(f"{who}: groups={groups} must divide the input channels ({C}) and output channels ({O})")
    if Cg * groups != C:
        raise ShapeError(
            f"{who}: input has {C} channels but the weight {w_shape} expects {Cg} x groups={groups} = {Cg * groups}"
        )
    Ho = conv_output_size(H, kh, stride[0], padding[0], dilation[0])
    Wo = conv_output_size(W, kw, stride[1], padding[1], dilation[1])
    if Ho < 1 or Wo < 1:
        raise ShapeError(
            f"{who}: kernel {kh}x{kw} (dilation {dilation}) does not fit the input {H}x{W} padded by {padding}"
        )
    return N, C, H, W, O, Cg, kh, kw, Ho, Wo


def _columns(x, kh, kw, Ho, Wo, stride, padding, dilation, groups):
    """im2col as (groups, C/groups * kh * kw, N * Ho * Wo).

    The input is laid out channels-first (C, N, H, W) once, then each of the
    kh * kw kernel offsets is one strided copy with long contiguous rows: far
    faster than copying a window view whose innermost axis is the kernel.
    """
    N, C, H, W = x.shape
    ph, pw = padding
    xt = x.transpose(1, 0, 2, 3)
    if ph or pw:
        xp = np.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
        xp[:, :, ph : ph + H, pw : pw + W] = xt
    else:
        xp = xt
    cols = np.empty((C, kh, kw, N, Ho, Wo), dtype=x.dtype)
    sh, sw = stride
    for a in range(kh):
        r = a * dilation[0]
        for b in range(kw):
            c = b * dilation[1]
            cols[:, a, b] = xp[:, :, r : r + sh * (Ho - 1) + 1 : sh, c : c + sw * (Wo - 1) + 1 : sw]
    return cols.reshape(groups, (C // groups) * kh * kw, N * Ho * Wo)


def _gemm(a, b):
    """Batched matmul over groups; with one group a plain 2-D product (NumPy's 3-D path is slower)."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return np.matmul(a, b)


def _grad_rows(g, groups):
    """(N, O, Ho, Wo) -> (groups, O / groups, N * Ho * Wo)."""
    N, O, Ho, Wo = g.shape
    return np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(groups, O // groups, N * Ho * Wo)


# --------------------------------------------------------------------------- the three primitives


def _conv(x, w, stride, padding, dilation, groups):
    N, C, H, W, O, Cg, kh, kw, Ho, Wo = _geometry(x.shape, w.shape, stride, padding, dilation, groups, "conv2d")
    cols = _columns(x, kh, kw, Ho, Wo, stride, padding, dilation, groups)
    out = _gemm(w.reshape(groups, O // groups, Cg * kh * kw), cols)  # (groups, O/groups, N*Ho*Wo)
    return np.ascontiguousarray(out.reshape(O, N, Ho, Wo).transpose(1, 0, 2, 3))


def _conv_input_grad(g, w, x_shape, stride, padding, dilation, groups):
    N, C, H, W, O, Cg, kh, kw, Ho, Wo = _geometry(x_shape, w.shape, stride, padding, dilation, groups, "conv2d")
    if g.shape != (N, O, Ho, Wo):
        raise ShapeError(f"conv_transpose2d: input has shape {g.shape}, expected {(N, O, Ho, Wo)} for output {x_shape}")
    wm = w.reshape(groups, O // groups, Cg * kh * kw).transpose(0, 2, 1)
    dcols = _gemm(wm, _grad_rows(g, groups)).reshape(C, kh, kw, N, Ho, Wo)
    ph, pw = padding
    dx = np.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=np.result_type(g, w))
    sh, sw = stride
    for a in range(kh):
        r = a * dilation[0]
        for b in range(kw):
            c = b * dilation[1]
            dx[:, :, r : r + sh * (Ho - 1) + 1 : sh, c : c + sw * (Wo - 1) + 1 : sw] += dcols[:, a, b]
    return np.ascontiguousarray(dx[:, :, ph : ph + H, pw : pw + W].transpose(1, 0, 2, 3))


def _conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups):
    N, C, H, W, O, Cg, kh, kw, Ho, Wo = _geometry(x.shape, w_shape, stride, padding, dilation, groups, "conv2d")
    cols = _columns(x, kh, kw, Ho, Wo, stride, padding, dilation, groups)
    dw = _gemm(_grad_rows(g, groups), cols.transpose(0, 2, 1))  # (groups, O/groups, Cg*kh*kw)
    return dw.reshape(O, Cg, kh, kw)


conv = primitive(_conv, name="conv2d")
conv_input_grad = primitive(_conv_input_grad, name="conv_transpose2d")
conv_weight_grad = primitive(_conv_weight_grad, name="conv2d_weight_grad")

conv.defvjp(
    lambda g, ans, x, w, **k: conv_input_grad(g, w, shape_of(x), **k),
    lambda g, ans, x, w, **k: conv_weight_grad(x, g, shape_of(w), **k),
)
conv.defjvp(
    lambda t, ans, x, w, **k: conv(t, w, **k),
    lambda t, ans, x, w, **k: conv(x, t, **k),
)
conv_input_grad.defvjp(
    lambda h, ans, g, w, x_shape, **k: conv(h, w, **k),
    lambda h, ans, g, w, x_shape, **k: conv_weight_grad(h, g, shape_of(w), **k),
)
conv_input_grad.defjvp(
    lambda t, ans, g, w, x_shape, **k: conv_input_grad(t, w, x_shape, **k),
    lambda t, ans, g, w, x_shape, **k: conv_input_grad(g, t, x_shape, **k),
)
conv_weight_grad.defvjp(
    lambda h, ans, x, g, w_shape, **k: conv_input_grad(g, h, shape_of(x), **k),
    lambda h, ans, x, g, w_shape, **k: conv(x, h, **k),
)
conv_weight_grad.defjvp(
    lambda t, ans, x, g, w_shape, **k: conv_weight_grad(t, g, w_shape, **k),
    lambda t, ans, x, g, w_shape, **k: conv_weight_grad(x, t, w_shape, **k),
)

# --------------------------------------------------------------------------- gather / scatter (max pooling)


def _take_flat(x, index, unique=False):
    return x.reshape(-1)[index]


def _scatter_flat(g, index, shape, unique=False):
    """Add ``g`` into zeros of ``shape`` at flat positions ``index``.

    ``unique`` promises no position repeats (non-overlapping pooling windows):
    then a plain assignment does it, several times faster than accumulating.
    """
    g = np.asarray(g)
    dtype = g.dtype if g.dtype.kind == "f" else np.float64
    if unique:
        out = np.zeros(int(np.prod(shape)), dtype=dtype)
        out[index.reshape(-1)] = g.reshape(-1)
        return out.reshape(shape)
    out = np.bincount(index.reshape(-1), weights=g.reshape(-1), minlength=int(np.prod(shape)))
    return out.astype(dtype, copy=False).reshape(shape)


take_flat = primitive(_take_flat, name="take")
scatter_flat = primitive(_scatter_flat, name="scatter_add")
take_flat.defvjp(lambda g, ans, x, index, unique=False: scatter_flat(g, index, shape_of(x), unique=unique))
take_flat.defjvp(lambda t, ans, x, index, unique=False: take_flat(t, index, unique=unique))
scatter_flat.defvjp(lambda h, ans, g, index, shape, unique=False: take_flat(h, index, unique=unique))
scatter_flat.defjvp(lambda t, ans, g, index, shape, unique=False: scatter_flat(t, index, shape, unique=unique))


def _window_argmax(views):
    """Index (into ``views``) of the first largest value, position by position.

    The windows' offsets are stacked into one contiguous array first (strided
    views make every later pass several times slower), then one comparison
    pass per offset; ``>`` keeps the earliest maximum, as PyTorch does at ties.
    Index updates are arithmetic, not boolean-mask assignment (far slower).
    """
    stacked = np.empty((len(views),) + views[0].shape, dtype=views[0].dtype)
    for j, view in enumerate(views):
        stacked[j] = view
    best = stacked[0].copy()
    index_type = np.int8 if len(views) < 128 else np.int32
    index = np.zeros(best.shape, dtype=index_type)
    for k in range(1, len(views)):
        better = stacked[k] > best
        np.maximum(best, stacked[k], out=best)
        index += better.astype(index_type) * (index_type(k) - index)
    return index


_BASE_CACHE = {}


def _window_origins(N, C, H, W, Ho, Wo, stride, padding):
    """Flat index of each window's top-left corner (cached per geometry: pooling repeats shapes)."""
    key = (N, C, H, W, Ho, Wo, stride, padding)
    base = _BASE_CACHE.get(key)
    if base is None:
        index_type = np.int32 if N * C * H * W < 2**31 else np.int64
        rows = (np.arange(Ho) * stride[0] - padding[0]).reshape(-1, 1)
        cols = np.arange(Wo) * stride[1] - padding[1]
        planes = np.arange(N * C, dtype=np.int64).reshape(N, C, 1, 1) * (H * W)
        base = (planes + rows * W + cols).astype(index_type)
        if len(_BASE_CACHE) > 32:
            _BASE_CACHE.clear()
        _BASE_CACHE[key] = base
    return base


def max_pool_indices(x, kernel, stride, padding, dilation):
    """Flat indices (into ``x``) of each window's first maximum; shape (N, C, Ho, Wo)."""
    x = np.asarray(value_of(x))
    N, C, H, W = x.shape
    kh, kw = kernel
    if padding[0] * 2 > kh or padding[1] * 2 > kw:
        raise ShapeError(f"max_pool2d: padding {padding} must be at most half the kernel {kernel}")
    Ho = conv_output_size(H, kh, stride[0], padding[0], dilation[0])
    Wo = conv_output_size(W, kw, stride[1], padding[1], dilation[1])
    if Ho < 1 or Wo < 1:
        raise ShapeError(f"max_pool2d: kernel {kernel} does not fit the input {H}x{W} padded by {padding}")
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=-np.inf) \
        if padding != (0, 0) else x
    sh, sw = stride
    views = [xp[:, :, a * dilation[0] : a * dilation[0] + sh * (Ho - 1) + 1 : sh,
                b * dilation[1] : b * dilation[1] + sw * (Wo - 1) + 1 : sw]
             for a in range(kh) for b in range(kw)]
    k = _window_argmax(views)
    base = _window_origins(N, C, H, W, Ho, Wo, tuple(stride), tuple(padding))
    offsets = np.array([a * dilation[0] * W + b * dilation[1] for a in range(kh) for b in range(kw)], dtype=base.dtype)
    return base + np.take(offsets, k)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1):
    """Max pooling over (N, C, H, W); windows may overlap.

    ``kernel_size``, ``stride`` (the kernel size by default), ``padding`` (with -inf) and ``dilation``
    are ints or pairs. The gradient goes to the largest entry of each window (the first, at a tie).

    >>> import numpy as np, nablab as nb
    >>> from nablab.nn import functional as F
    >>> x = np.array([[[[1.0, 2.0], [4.0, 3.0]]]])
    >>> F.max_pool2d(x, 2), nb.grad(lambda x: nb.sum(F.max_pool2d(x, 2)))(x)
    (array([[[[4.]]]]), array([[[[0., 0.],
             [1., 0.]]]]))
    """
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    index = max_pool_indices(x, kernel, stride, padding, dilation)
    # windows that cannot overlap select every input at most once
    disjoint = stride[0] >= dilation[0] * (kernel[0] - 1) + 1 and stride[1] >= dilation[1] * (kernel[1] - 1) + 1
    return take_flat(x, index, unique=disjoint)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Average pooling over (N, C, H, W) as a convolution with a constant kernel per channel.

    ``kernel_size``, ``stride`` and ``padding`` as for :func:`max_pool2d`; with
    ``count_include_pad=False`` the zero padding is left out of each window's count.

    >>> import numpy as np
    >>> from nablab.nn import functional as F
    >>> x = np.ones((1, 1, 2, 2))
    >>> F.avg_pool2d(x, 2, stride=1, padding=1)
    array([[[[0.25, 0.5 , 0.25],
             [0.5 , 1.  , 0.5 ],
             [0.25, 0.5 , 0.25]]]])
    >>> F.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False)
    array([[[[1., 1., 1.],
             [1., 1., 1.],
             [1., 1., 1.]]]])
    """
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pair(padding, "padding")
    N, C, H, W = shape_of(x)
    dtype = np.asarray(value_of(x)).dtype
    ones = np.full((1, 1) + kernel, 1.0 / (kernel[0] * kernel[1]), dtype=dtype)
    k = dict(stride=stride, padding=padding, dilation=(1, 1), groups=1)
    out = conv(ops.reshape(x, (N * C, 1, H, W)), ones, **k)
    if not count_include_pad and padding != (0, 0):
        covered = _conv(np.ones((1, 1, H, W), dtype=dtype), ones, **k)
        out = out / covered
    return ops.reshape(out, (N, C) + shape_of(out)[2:])
