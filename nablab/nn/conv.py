"""Convolution and pooling as engine primitives.

Three bilinear primitives close under differentiation, so convolutions nest
like every other op (a Hessian-vector product through a ConvNet works):

- ``conv(x, w)``: the forward cross-correlation (deep-learning convention, no flip);
- ``conv_input_grad(g, w)``: its adjoint in ``x``, which is also the transposed convolution;
- ``conv_weight_grad(x, g)``: its adjoint in ``w``.

The VJP of each is one of the three, with the roles of the arguments exchanged.
Each is computed by one of the algorithms of :mod:`nablab.nn.conv_algorithms`
(im2col and GEMMs, Winograd, FFT), chosen per shape. When the weight is being
differentiated in reverse mode, the forward keeps its columns for the weight gradient.
Layouts follow PyTorch: inputs ``(N, C, H, W)``, weights ``(O, C / groups, kh, kw)``.
Max pooling is a gather of the window maxima and its adjoint a scatter; at ties
the first maximum in the window (row-major) takes the gradient, as in PyTorch.
"""

from __future__ import annotations

import threading

import numpy as np

from nablab import parallel
from nablab.autodiff import core, ops
from nablab.autodiff.core import Primitive, bind, primitive, shape_of, value_of
from nablab.errors import ShapeError
from nablab.nn import conv_algorithms as algorithms

# --------------------------------------------------------------------------- geometry


def pair(value, name):
    """``3 -> (3, 3)``; a pair stays; anything else is refused naming ``name``."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


conv_output_size = algorithms.output_size

# --------------------------------------------------------------------------- the three primitives


class _State(threading.local):
    keep = False  # the forward running now should keep its columns
    with_input_grad = False  # and the input's gradient will be asked for too
    saved = None  # (x, (algorithm, columns)): kept columns, for the weight gradient running now
    fused = None  # (g, (algorithm, tiles), with bias): kept tiles, for the input gradient running now


_state = _State()


def _reverse_recorded(w):
    """Whether some reverse level (a transform's or the imperative tape) records ``w``."""
    while isinstance(w, core.Tensor):
        level = w._level
        if level > core.IMPERATIVE and level not in core._forward_levels:
            return True
        if level == core.IMPERATIVE and w._node is not None and core._grad_mode.enabled:
            return True
        w = w._value
    return False


class _ConvPrimitive(Primitive):
    """``conv``: a primitive that tells its forward whether the weight's gradient will be asked for."""

    def __call__(self, x, w, *bias, **kwargs):
        previous = _state.keep, _state.with_input_grad
        _state.keep = _reverse_recorded(w) and algorithms.save_columns()
        _state.with_input_grad = _reverse_recorded(x)
        try:
            return bind(self, (x, w) + bias, kwargs)
        finally:
            _state.keep, _state.with_input_grad = previous


def _conv(x, w, bias=None, *, stride, padding, dilation, groups):
    """The cross-correlation of ``x`` and ``w``, plus ``bias`` (O,) per channel when given (added in place)."""
    geo = algorithms.geometry(x.shape, w.shape, stride, padding, dilation, groups, "conv2d")
    out, saved = algorithms.forward(x, w, geo, keep=_state.keep, bias=bias, with_input_grad=_state.with_input_grad)
    if saved is not None:
        algorithms.keep_for(out, x, *saved)
    return out


def _conv_input_grad(g, w, x_shape, stride, padding, dilation, groups):
    geo = algorithms.geometry(x_shape, w.shape, stride, padding, dilation, groups, "conv2d")
    if g.shape != (geo.N, geo.O, geo.Ho, geo.Wo):
        raise ShapeError(f"conv_transpose2d: input has shape {g.shape}, expected {(geo.N, geo.O, geo.Ho, geo.Wo)} "
                         f"for output {tuple(x_shape)}")
    fused = _state.fused
    if fused is not None and fused[0] is g:  # the backward of a forward that kept its tiles
        return algorithms.input_grad_with_kept(g, w, geo, fused[1], bias=fused[2])
    return algorithms.input_grad(g, w, geo)


def _conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups):
    geo = algorithms.geometry(x.shape, w_shape, stride, padding, dilation, groups, "conv2d")
    saved = _state.saved
    return algorithms.weight_grad(x, g, geo, saved=saved[1] if saved is not None and saved[0] is x else None)


conv = _ConvPrimitive(_conv, name="conv2d")
conv_input_grad = Primitive(_conv_input_grad, name="conv_transpose2d")
conv_weight_grad = Primitive(_conv_weight_grad, name="conv2d_weight_grad")


def _conv_weight_vjp(g, ans, x, w, *_, **k):
    """The weight's cotangent, from the columns the forward kept for ``ans`` when there are any."""
    saved = algorithms.kept_for(ans, x)
    if saved is None:
        return conv_weight_grad(x, g, shape_of(w), **k)
    previous, _state.saved = _state.saved, (x, saved)
    try:
        return conv_weight_grad(x, g, shape_of(w), **k)
    finally:
        _state.saved = previous


def _conv_input_vjp(g, ans, x, w, *bias, **k):
    """The input's cotangent; with kept Winograd tiles the weight's (and the bias's) come from the same pass
    (see :func:`nablab.nn.conv_algorithms.input_grad_with_kept`)."""
    saved = algorithms.kept_for(ans, x)
    if saved is None or not isinstance(g, np.ndarray):
        return conv_input_grad(g, w, shape_of(x), **k)
    previous, _state.fused = _state.fused, (g, saved, bool(bias) and bias[0] is not None)
    try:
        return conv_input_grad(g, w, shape_of(x), **k)
    finally:
        _state.fused = previous


def _conv_bias_vjp(g, ans, x, w, b, **k):
    """The bias's cotangent: the sum of g over images and positions (computed in the input gradient's pass when
    that pass ran Winograd on kept tiles)."""
    if isinstance(g, np.ndarray):  # a plain cotangent: no derivative of this sum is recorded
        db = algorithms.bias_grad_for(g, algorithms.kept_for(ans, x))
        return db if db is not None else algorithms.bias_grad(g)
    return ops.sum(g, axis=(0, 2, 3))


conv.defvjp(_conv_input_vjp, _conv_weight_vjp, _conv_bias_vjp)
conv.defjvp(
    lambda t, ans, x, w, *_, **k: conv(t, w, **k),
    lambda t, ans, x, w, *_, **k: conv(x, t, **k),
    lambda t, ans, x, w, b, **k: ops.reshape(t, (1, -1, 1, 1)),
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


#: Gathers, scatters and window maxima of at least this many entries per thread run on several threads.
PARALLEL_MIN_ENTRIES = 1 << 18


class _Maxima(threading.local):
    """``(x, index, maxima)``: the window maxima found on the way to ``index``, set by :func:`max_pool2d` just
    before its take of those very indices from that very ``x``, which hands them over instead of gathering them
    again (any take clears it)."""

    entry = None


_maxima = _Maxima()


def _take_flat(x, index, unique=False):
    entry, _maxima.entry = _maxima.entry, None
    if entry is not None and entry[0] is x and entry[1] is index:
        return entry[2]
    flat = x.reshape(-1)
    if index.size < 2 * PARALLEL_MIN_ENTRIES:
        return flat[index]
    out, where = np.empty(index.size, dtype=x.dtype), index.reshape(-1)

    def part(a, b):
        out[a:b] = flat[where[a:b]]

    parallel.in_parts(index.size, part, PARALLEL_MIN_ENTRIES)
    return out.reshape(index.shape)


def _scatter_flat(g, index, shape, unique=False):
    """Add ``g`` into zeros of ``shape`` at flat positions ``index``.

    ``unique`` promises no position repeats (non-overlapping pooling windows):
    then a plain assignment does it, several times faster than accumulating.
    """
    g = np.asarray(g)
    dtype = g.dtype if g.dtype.kind == "f" else np.float64
    if unique:  # no position repeats, so parts of the index write disjoint entries
        out, where, values = np.empty(int(np.prod(shape)), dtype=dtype), index.reshape(-1), g.reshape(-1)
        # the zeros in parts too (np.zeros filled the ConvNet's 16 MB input gradient on one thread: 0.6 ms)
        parallel.in_parts(out.size, lambda a, b: out[a:b].fill(0), PARALLEL_MIN_ENTRIES)

        def part(a, b):
            out[where[a:b]] = values[a:b]

        parallel.in_parts(where.size, part, PARALLEL_MIN_ENTRIES)
        return out.reshape(shape)
    out = np.bincount(index.reshape(-1), weights=g.reshape(-1), minlength=int(np.prod(shape)))
    return out.astype(dtype, copy=False).reshape(shape)


take_flat = primitive(_take_flat, name="take")
scatter_flat = primitive(_scatter_flat, name="scatter_add")
take_flat.defvjp(lambda g, ans, x, index, unique=False: scatter_flat(g, index, shape_of(x), unique=unique))
take_flat.defjvp(lambda t, ans, x, index, unique=False: take_flat(t, index, unique=unique))
scatter_flat.defvjp(lambda h, ans, g, index, shape, unique=False: take_flat(h, index, unique=unique))
scatter_flat.defjvp(lambda t, ans, g, index, shape, unique=False: scatter_flat(t, index, shape, unique=unique))


def _window_argmax(views, maxima):
    """Index (into ``views``) of the first largest value, position by position; a NaN counts as the largest; and
    whether ``maxima`` (an array of the windows' shape) now holds those values, which it does unless a window
    holds NaN (its maximum could be another NaN than the one indexed).

    The windows' offsets are stacked into one contiguous array first (strided
    views make every later pass several times slower), then one comparison
    pass per offset; ``>`` keeps the earliest maximum, as PyTorch does at ties.
    A window holding NaN gives NaN, its last NaN taking the gradient (PyTorch's
    rule, and NumPy's ``max`` gives NaN too): ``>`` alone would skip the NaN and
    return a smaller value. Windows are checked for NaN once, after a first
    pass, so the usual case pays one test of the maxima.
    Index updates are arithmetic, not boolean-mask assignment (far slower).
    """
    stacked = np.empty((len(views),) + views[0].shape, dtype=views[0].dtype)
    for j, view in enumerate(views):
        stacked[j] = view
    index_type = np.int8 if len(views) < 128 else np.int32
    for nan_aware in (False, True):
        if nan_aware:
            best = stacked[0].copy()
        else:
            best = maxima
            best[...] = stacked[0]
        index = np.zeros(best.shape, dtype=index_type)
        for k in range(1, len(views)):
            better = stacked[k] > best
            if nan_aware:
                better |= np.isnan(stacked[k])
            np.maximum(stacked[k], best, out=best)  # NaN stays NaN; at a tie, the earlier (the second argument)
            index += better.astype(index_type) * (index_type(k) - index)
        if nan_aware:
            return index, False
        if stacked.dtype.kind != "f" or not np.isnan(best).any():
            return index, True


_BASE_CACHE = {}


def _window_origins(N, C, H, W, Ho, Wo, stride, padding):
    """Flat index of each window's top-left corner (cached per geometry: pooling repeats shapes).

    NumPy's own index type (intp) even where int32 would do: a gather or scatter with int32 indices converts them
    first, and the max-pool gradient's scatter of 1M entries took 3.7 ms with int32 against 1.7 with intp.
    """
    key = (N, C, H, W, Ho, Wo, stride, padding)
    base = _BASE_CACHE.get(key)
    if base is None:
        rows = (np.arange(Ho, dtype=np.intp) * stride[0] - padding[0]).reshape(-1, 1)
        cols = np.arange(Wo, dtype=np.intp) * stride[1] - padding[1]
        planes = np.arange(N * C, dtype=np.intp).reshape(N, C, 1, 1) * (H * W)
        base = planes + rows * W + cols
        if len(_BASE_CACHE) > 32:
            _BASE_CACHE.clear()
        _BASE_CACHE[key] = base
    return base


def max_pool_indices(x, kernel, stride, padding, dilation):
    """Flat indices (into ``x``) of each window's first maximum; shape (N, C, Ho, Wo)."""
    return _indices_and_maxima(x, kernel, stride, padding, dilation)[0]


def _indices_and_maxima(x, kernel, stride, padding, dilation):
    """:func:`max_pool_indices`, and the window maxima found on the way (None where they cannot stand for the
    indexed entries: under vmap, with padding, or where a window holds NaN)."""
    if core._batch_levels and isinstance(value_of(x), core.Tensor):  # batched by vmap: all examples at once
        from nablab.autodiff.batching import batched_flat_indices

        return batched_flat_indices(lambda v: max_pool_indices(v, kernel, stride, padding, dilation),
                                    value_of(x)), None
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
    base = _window_origins(N, C, H, W, Ho, Wo, tuple(stride), tuple(padding))
    offsets = np.array([a * dilation[0] * W + b * dilation[1] for a in range(kh) for b in range(kw)], dtype=base.dtype)
    index = np.empty(base.shape, dtype=base.dtype)

    maxima = np.empty(base.shape, dtype=x.dtype)

    def part(n0, n1):  # images n0..n1, on several threads when large
        which, found = _window_argmax([v[n0:n1] for v in views], maxima[n0:n1])
        np.take(offsets, which, out=index[n0:n1], mode="clip")  # (in range: clip skips take's buffering)
        index[n0:n1] += base[n0:n1]
        return found

    found = parallel.in_parts(N, part, -(-PARALLEL_MIN_ENTRIES // (C * Ho * Wo * kh * kw)))
    # (padded, a window's maximum may be the padding's -inf)
    return index, (maxima if all(found) and padding == (0, 0) else None)


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
    index, maxima = _indices_and_maxima(x, kernel, stride, padding, dilation)
    # windows that cannot overlap select every input at most once
    disjoint = stride[0] >= dilation[0] * (kernel[0] - 1) + 1 and stride[1] >= dilation[1] * (kernel[1] - 1) + 1
    if maxima is not None:  # the take below hands them over instead of gathering them again
        _maxima.entry = (np.asarray(value_of(x)), index, maxima)
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
    dtype = np.asarray(core.raw_value_of(x)).dtype  # the dtype only (also of a value batched by vmap)
    ones = np.full((1, 1) + kernel, 1.0 / (kernel[0] * kernel[1]), dtype=dtype)
    k = dict(stride=stride, padding=padding, dilation=(1, 1), groups=1)
    out = conv(ops.reshape(x, (N * C, 1, H, W)), ones, **k)
    if not count_include_pad and padding != (0, 0):
        covered = _conv(np.ones((1, 1, H, W), dtype=dtype), ones, **k)
        out = out / covered
    return ops.reshape(out, (N, C) + shape_of(out)[2:])
