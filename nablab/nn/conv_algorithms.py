"""The algorithms behind ``conv2d`` and its two adjoints, and the per-shape choice among them.

Each algorithm computes the same three maps (PyTorch's layouts: input ``(N, C, H, W)``,
weight ``(O, C / groups, kh, kw)``):

- ``forward(x, w)``: the cross-correlation ``conv2d(x, w)``;
- ``input_grad(g, w)``: its adjoint in ``x`` (also the transposed convolution);
- ``weight_grad(x, g)``: its adjoint in ``w``.

The algorithms:

``im2col``
    Columns ``(groups, C/groups kh kw, n Ho Wo)`` built from the input laid out
    channels-first, then one GEMM, a cache-sized chunk of ``n`` images at a time (see
    :data:`CHUNK_BYTES`). Any geometry. The deterministic default.
``im2col_per_image``
    The same columns and one GEMM per image (NumPy's batched ``matmul`` over strided blocks
    of them), which writes the output in its ``(N, O, Ho, Wo)`` layout with no transpose. A
    1x1 convolution with stride 1 and no padding needs no columns at all: the input itself,
    reshaped, is the matrix (a view, no copy). Any geometry.
``im2col_blocks``
    The same columns, the forward's and the input gradient's GEMMs over blocks of up to
    :data:`BLOCK_COLUMNS` output positions of one image: each product is then small enough
    for BLAS's kernels that skip packing its operands (OpenBLAS's small-matrix and direct
    SGEMM paths), which is most of a large GEMM's time when the output channels are few
    (the seed ConvNet's 7x7 3->32 layer). The weight gradient stays im2col's.
``im2col_views``
    The input, padded, copied once per kernel column (``kw`` copies where im2col makes ``kh
    kw``); im2col's matrix for each output row (forward) or each kernel row (weight
    gradient) is then a strided view of that copy, and the GEMMs run on the views. The
    forward needs dilation 1 down the rows, the weight gradient stride 1 down the rows; the
    input gradient is ``im2col_blocks``'s. For the seed ConvNet's 7x7 3->32 layer the copy is
    a seventh of im2col's columns.
``winograd2``, ``winograd4``
    Winograd's minimal filtering F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray, "Fast
    Algorithms for Convolutional Neural Networks", CVPR 2016): the input is cut into
    overlapping 4x4 (6x6) tiles, each transformed by ``B^T d B``, the weights by ``G g G^T``;
    then 16 (36) GEMMs over channels, and ``A^T M A`` gives 2x2 (4x4) outputs per tile.
    2.25x (4x) fewer multiplications in the GEMMs than im2col. 3x3 kernels, stride 1,
    dilation 1, one group, floating point. The gradients are the algorithm's adjoints:
    ``B [U^T (A dY A^T)] B^T`` per tile, added back where tiles overlap, for the input, and
    ``G^T [sum over tiles (A dY A^T) * (B^T d B)] G`` for the weight; when the forward kept
    its tiles, both come from one pass over the output gradient
    (:func:`input_grad_with_kept`).
``fft``
    Real FFTs of the padded input, the kernel and the output gradient on one grid of the
    padded input's size (rounded up to a 5-smooth length); products summed over channels
    in the frequency domain. Stride 1, dilation 1, one group, floating point.

Float32 error, measured against the same computation in float64 with inputs from a
standard normal (``tests/nn/test_conv_algorithms.py`` checks it on fixed shapes and on
random ones against PyTorch in float64): for each map, ``max |result32 - exact| <= bound *
scale`` with the scale of :func:`error_scales` (for the forward, max|x| times the largest
sum of |w| over an output channel: the largest value ``|x| conv |w|`` can take) and
``bound`` from :data:`FLOAT32_ERROR_BOUND`: 1e-6 for the im2col family (all three), F(2x2, 3x3) and the
FFT, 1e-5 for F(4x4, 3x3), whose transforms multiply by up to 8 and divide by 24. The
worst ratios measured on the test's shapes were about 5e-8 (im2col, F(2x2, 3x3), FFT) and
6e-7 (F(4x4, 3x3)). In float64 every algorithm agrees with PyTorch to 1e-10 (relative and
absolute).

The choice. With :func:`autotune` on (the default), the first call of each map with a
new shape, dtype and geometry runs every algorithm that applies, once to warm up and
three times timed (interleaved), and keeps the fastest by its best run (CPU time on one thread, where load
from other processes would only add noise; wall-clock time on more); Winograd or the FFT
must beat the fastest of the im2col family by 10%. This is what ``torch.backends.cudnn.benchmark`` does; later calls
reuse the choice (:func:`choices` lists them). When the weight is being trained, each
candidate is timed over the layer's whole training step instead (forward, then the gradients
it leads to), and the winner computes all three maps: timed alone, a forward cannot show
what its kept data (below) saves the backward.
Problems under 20 million multiply-adds (and anything while autotuning is off) use
im2col without measuring; so does any map whose inputs are not all finite (:func:`_finite`). Results of different algorithms differ in the last bits, so
for runs that must repeat bit for bit, turn it off: ``autotune(False)``, or the
environment variable ``NABLAB_CONV_AUTOTUNE=0`` before nablab is imported. :func:`use`
forces one algorithm wherever it applies (elsewhere its fallback, or im2col).

Threads. The chunks of images run on :func:`threads` threads at once (NumPy releases the
GIL in the copies and products they are made of). The chunks, and so the results, do
not depend on the thread count. With more than one thread, autotuning also measures each
algorithm with its chunks in turn (``"im2col (chunks in turn)"``), leaving the threads to
BLAS: that wins where the GEMMs are large (the 7x7 layer of the seed's ConvNet).

Keeping columns. When the weight is being differentiated in reverse mode, the forward
keeps what it computed from the input (the columns, Winograd's transformed tiles or the
input's spectrum) for the weight gradient, tied to the forward's output array, and
drops it with that array; the weight gradient then uses it instead of computing it
again. Only up to :data:`KEEP_MAX_BYTES` (16 MiB): a larger fresh array costs more in
page faults each step than recomputing the columns chunk by chunk in cache (measured:
the 7x7 and 32->64 cases of ``benchmarks/conv_speed.py`` were slower with it). The
engine's version counters make this safe: a tensor changed in place after the forward
makes the backward pass refuse, as before. :func:`save_columns` (``False``) turns it off.

>>> import numpy as np
>>> from nablab.nn import conv_algorithms as ca
>>> rng = np.random.default_rng(0)
>>> x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
>>> geo = ca.geometry(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1)
>>> reference = ca.forward(x, w, geo)[0]
>>> with ca.use("winograd4"):
...     out, _ = ca.forward(x, w, geo)
>>> bool(np.allclose(out, reference, rtol=1e-12, atol=1e-12))
True
>>> sorted(ca.applicable("forward", geo))
['fft', 'im2col', 'im2col_blocks', 'im2col_per_image', 'im2col_views', 'winograd2', 'winograd4']
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from nablab import parallel
from nablab.errors import ShapeError

__all__ = [
    "ALGORITHMS",
    "FLOAT32_ERROR_BOUND",
    "IN_TURN",
    "Geometry",
    "applicable",
    "autotune",
    "bias_grad",
    "bias_grad_for",
    "calls",
    "choices",
    "choose",
    "clear_choices",
    "forward",
    "geometry",
    "in_parts",
    "input_grad",
    "input_grad_with_kept",
    "is_autotuning",
    "kept_bytes",
    "save_columns",
    "threads",
    "use",
    "weight_grad",
]

#: Every algorithm's name, the default first.
ALGORITHMS = ("im2col", "im2col_per_image", "im2col_blocks", "im2col_views", "winograd2", "winograd4", "fft")

#: ``max |float32 result - exact| / scale`` (:func:`error_scales`), per algorithm (see the module's text).
FLOAT32_ERROR_BOUND = {"im2col": 1e-6, "im2col_per_image": 1e-6, "im2col_blocks": 1e-6, "im2col_views": 1e-6,
                       "winograd2": 1e-6, "winograd4": 1e-5, "fft": 1e-6}

#: ``im2col_blocks`` multiplies blocks of at most this many output positions of one image (the largest divisor
#: of Ho Wo up to it), and applies when that divisor is at least ``MIN_BLOCK_COLUMNS``.
BLOCK_COLUMNS = 128
MIN_BLOCK_COLUMNS = 32

#: Problems with fewer multiply-adds than this are not measured: im2col runs them.
AUTOTUNE_MIN_MACS = 20_000_000

#: im2col and Winograd work through the batch in passes whose working set takes about this many bytes: a share
#: of the last-level cache (measured on 2 cores with 1 MiB L2 each and 32 MiB L3: the seed ConvNet's training step
#: ran 5-20% faster with 4 MiB than with 2 MiB, at 1 and at 2 threads).
CHUNK_BYTES = 4 << 20

#: im2col's input gradient works in chunks of at least enough images that each kernel offset's add moves this many
#: bytes.
MIN_COPY_BYTES = 128 << 10

#: The forward keeps its columns for the weight gradient only when they take at most this many bytes: a larger
#: fresh array costs more in page faults (the allocator maps it anew each step) than recomputing the columns
#: chunk by chunk in cache.
KEEP_MAX_BYTES = 16 << 20

#: Timed rounds of measuring each candidate, after one round to warm up (the best timed round counts).
MEASURE_ROUNDS = 3

#: Winograd or the FFT (other rounding, more memory) replaces the fastest of the im2col family only when it is
#: faster by this factor; among the im2col family (the same error bound and memory) the fastest wins.
AUTOTUNE_MARGIN = 0.9

# --------------------------------------------------------------------------- geometry


class Geometry(NamedTuple):
    """The sizes of one convolution: input (N, C, H, W), weight (O, Cg, kh, kw), output (Ho, Wo) and the rest.

    >>> from nablab.nn import conv_algorithms as ca
    >>> geo = ca.geometry((2, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    >>> (geo.Ho, geo.Wo), geo.macs
    ((8, 8), 13824)
    """

    N: int
    C: int
    H: int
    W: int
    O: int
    Cg: int
    kh: int
    kw: int
    Ho: int
    Wo: int
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    @property
    def macs(self):
        """Multiply-adds of the forward by definition: N O Ho Wo (C / groups) kh kw."""
        return self.N * self.O * self.Ho * self.Wo * self.Cg * self.kh * self.kw


def output_size(size, kernel, stride, padding, dilation):
    """PyTorch's formula: floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def geometry(x_shape, w_shape, stride, padding, dilation, groups, who="conv2d"):
    """Check the shapes of a convolution and return its :class:`Geometry`; errors name ``who`` and the shapes.

    >>> geometry((8, 3, 32, 32), (16, 3, 5, 5), (1, 1), (2, 2), (1, 1), 1)[-6:-4]
    (32, 32)
    """
    if len(x_shape) != 4:
        raise ShapeError(f"{who}: input must be (N, C, H, W), got shape {tuple(x_shape)}")
    if len(w_shape) != 4:
        raise ShapeError(f"{who}: weight must be (O, C/groups, kh, kw), got shape {tuple(w_shape)}")
    N, C, H, W = (int(v) for v in x_shape)
    O, Cg, kh, kw = (int(v) for v in w_shape)
    if groups < 1 or C % groups or O % groups:
        raise ShapeError(f"{who}: groups={groups} must divide the input channels ({C}) and output channels ({O})")
    if Cg * groups != C:
        raise ShapeError(
            f"{who}: input has {C} channels but the weight {tuple(w_shape)} expects {Cg} x groups={groups} "
            f"= {Cg * groups}"
        )
    Ho = output_size(H, kh, stride[0], padding[0], dilation[0])
    Wo = output_size(W, kw, stride[1], padding[1], dilation[1])
    if Ho < 1 or Wo < 1:
        raise ShapeError(
            f"{who}: kernel {kh}x{kw} (dilation {dilation}) does not fit the input {H}x{W} padded by {padding}"
        )
    return Geometry(N, C, H, W, O, Cg, kh, kw, Ho, Wo, tuple(stride), tuple(padding), tuple(dilation), int(groups))


def error_scales(x, w, g):
    """The scales of :data:`FLOAT32_ERROR_BOUND`, per map: the largest value the map of absolute values can reach.

    ``forward``: max|x| times the largest sum of |w| over one output channel; ``input_grad``: max|g| times the
    largest sum of |w| over one input channel; ``weight_grad``: max|x| times the largest sum of |g| over one output
    channel. (Bounds of ``|x| conv |w|`` and the like that do not shrink where padding cuts a window: rounding in
    Winograd's and the FFT's transforms involves every tap, even those that fall on padding.)

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> ca.error_scales(np.ones((1, 1, 4, 4)), np.full((2, 1, 3, 3), 0.5), np.ones((1, 2, 4, 4)))
    {'forward': 4.5, 'input_grad': 9.0, 'weight_grad': 16.0}
    """
    x, w, g = (np.abs(np.asarray(a, dtype=np.float64)) for a in (x, w, g))
    return {"forward": float(x.max() * w.sum(axis=(1, 2, 3)).max()),
            "input_grad": float(g.max() * w.sum(axis=(0, 2, 3)).max()),
            "weight_grad": float(x.max() * g.sum(axis=(0, 2, 3)).max())}


def _window(a, b, geo):
    """The slices of the padded input that kernel offset (a, b) meets, for every output position."""
    sh, sw = geo.stride
    r, c = a * geo.dilation[0], b * geo.dilation[1]
    return slice(r, r + sh * (geo.Ho - 1) + 1, sh), slice(c, c + sw * (geo.Wo - 1) + 1, sw)


def _padded(x, geo, channels_first):
    """The input padded with zeros, as (N, C, Hp, Wp) or (C, N, Hp, Wp)."""
    ph, pw = geo.padding
    src = x.transpose(1, 0, 2, 3) if channels_first else x
    if not (ph or pw):
        return src
    xp = np.zeros(src.shape[:2] + (geo.H + 2 * ph, geo.W + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + geo.H, pw:pw + geo.W] = src
    return xp


# --------------------------------------------------------------------------- im2col


def _even_step(N, most):
    """Images per chunk: at most ``most`` (at least 1), as even as the count of chunks allows, so that no thread is
    left with a short last chunk while another works through a full one (128 images at most 18 a chunk: 8 chunks
    of 16, not 7 of 18 and one of 2)."""
    most = int(max(1, min(N, most)))
    count = -(-N // most)
    return -(-N // count) if count else 1  # no images: no chunks, whatever the step


def _chunks(N, per_image_bytes):
    """``(n0, n1)`` ranges of images whose working set takes about ``CHUNK_BYTES`` at most (at least one image)."""
    step = _even_step(N, CHUNK_BYTES // max(per_image_bytes, 1))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


threads = parallel.threads
in_parts = parallel.in_parts
_parallel = parallel.map_items


def _total(arrays):
    """The sum of ``arrays`` in their order (the same bits whatever the thread count)."""
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    return total


def _gemm(a, b, out=None):
    """Batched matmul over groups; with one group a plain 2-D product (NumPy's 3-D path is slower)."""
    if a.shape[0] == 1:
        if out is None:
            return (a[0] @ b[0])[None]
        np.matmul(a[0], b[0], out=out[0])
        return out
    return np.matmul(a, b, out=out)


class Im2col:
    """Columns (groups, Cg kh kw, n Ho Wo) built channels-first and one GEMM, a cache-sized chunk of images at a time.

    The chunk's input is laid out channels-first, then each kernel offset is one strided copy with long
    contiguous rows (far faster than copying a window view whose innermost axis is the kernel). Kept for the
    weight gradient, the columns of all chunks form one array, and the weight gradient is
    ``columns @ g`` with ``g`` as (n Ho Wo, O) (the long axis is the GEMM's inner one), chunk by chunk.
    """

    name = "im2col"

    def applies(self, op, geo, dtype):
        return True

    @staticmethod
    def _rows(geo):
        return geo.Cg * geo.kh * geo.kw

    @staticmethod
    def _fill(x, geo, cols6):
        """Write the columns of the images of ``x`` into ``cols6``, a (C, kh, kw, n, Ho, Wo) array or view.

        One copy from a strided view of the padded input (channels first, so each row copied is contiguous), one
        NumPy call whatever the kernel size: a copy per kernel offset cost a Python call each, which made small
        chunks of images slow for large kernels and few channels.
        """
        xp = _padded(x, geo, channels_first=True)
        s_c, s_n, s_h, s_w = xp.strides
        (dh, dw), (sh, sw) = geo.dilation, geo.stride
        windows = as_strided(xp, (geo.C, geo.kh, geo.kw, x.shape[0], geo.Ho, geo.Wo),
                             (s_c, dh * s_h, dw * s_w, s_n, sh * s_h, sw * s_w), writeable=False)
        np.copyto(cols6, windows)

    def columns(self, x, geo):
        """(groups, Cg kh kw, n Ho Wo) for the n images of ``x``."""
        n = x.shape[0]
        cols = np.empty((geo.C, geo.kh, geo.kw, n, geo.Ho, geo.Wo), dtype=x.dtype)
        self._fill(x, geo, cols)
        return cols.reshape(geo.groups, self._rows(geo), n * geo.Ho * geo.Wo)

    def _chunks(self, geo, itemsize, add_per_offset=False):
        """Cache-sized chunks. With ``add_per_offset`` (the input gradient adds its columns back one kernel offset at
        a time) each of those adds moves at least ``MIN_COPY_BYTES``: few input channels and large kernels would
        otherwise make many tiny adds, and their Python calls, which hold the GIL, dominate."""
        chunks = _chunks(geo.N, (self._rows(geo) * geo.groups + geo.O) * geo.Ho * geo.Wo * itemsize)
        if not add_per_offset:
            return chunks
        least = -(-MIN_COPY_BYTES // (geo.C * geo.Ho * geo.Wo * itemsize))
        if chunks[0][1] - chunks[0][0] >= least:
            return chunks
        step = -(-geo.N // max(1, geo.N // least))  # as many even chunks of at least `least` images as fit
        return [(n0, min(geo.N, n0 + step)) for n0 in range(0, geo.N, step)]

    def _gemm_into(self, wm, cols, out, n0, n1, geo):
        y = _gemm(wm, cols)  # (groups, O/groups, n Ho Wo)
        out[n0:n1] = y.reshape(geo.O, n1 - n0, geo.Ho, geo.Wo).transpose(1, 0, 2, 3)

    def forward(self, x, w, geo, keep=False, bias=None):
        dtype = np.result_type(x, w)
        x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
        wm = w.reshape(geo.groups, geo.O // geo.groups, -1)
        bias = None if bias is None else bias.reshape(1, -1, 1, 1)
        out = np.empty((geo.N, geo.O, geo.Ho, geo.Wo), dtype=dtype)
        keep = keep and geo.C * geo.kh * geo.kw * geo.N * geo.Ho * geo.Wo * dtype.itemsize <= KEEP_MAX_BYTES
        hw = geo.Ho * geo.Wo
        if keep:  # the chunks' columns are views into one array, kept for the weight gradient
            full = np.empty((geo.C, geo.kh, geo.kw, geo.N, geo.Ho, geo.Wo), dtype=dtype)
            flat = full.reshape(geo.groups, self._rows(geo), geo.N * hw)

        def chunk(bounds):
            n0, n1 = bounds
            if keep:
                self._fill(x[n0:n1], geo, full[:, :, :, n0:n1])
                cols = flat[:, :, n0 * hw:n1 * hw]
            else:
                cols = self.columns(x[n0:n1], geo)
            self._gemm_into(wm, cols, out, n0, n1, geo)
            if bias is not None:  # while the chunk's output is in cache, on the chunk's thread
                out[n0:n1] += bias

        _parallel(chunk, self._chunks(geo, dtype.itemsize))
        return out, (flat if keep else None)

    @staticmethod
    def _grad_rows(g, geo):
        """(n, O, Ho, Wo) -> (groups, O / groups, n Ho Wo)."""
        return np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(geo.groups, geo.O // geo.groups, -1)

    @classmethod
    def _grad_columns(cls, g, geo):
        """(n, O, Ho, Wo) -> (groups, n Ho Wo, O / groups): the transpose (a view, which BLAS reads as such) of
        :meth:`_grad_rows`. That copy moves whole rows of Ho Wo values; a contiguous copy of this layout would
        move one value at a time, and took a quarter of the weight gradient's time for 32 channels."""
        return cls._grad_rows(g, geo).transpose(0, 2, 1)

    def input_grad(self, g, w, geo):
        wm = w.reshape(geo.groups, geo.O // geo.groups, -1).transpose(0, 2, 1)
        ph, pw = geo.padding
        dtype = np.result_type(g, w)
        dx = np.empty((geo.N, geo.C, geo.H, geo.W), dtype=dtype)

        def chunk(bounds):
            n0, n1 = bounds
            n = n1 - n0
            dcols = _gemm(wm, self._grad_rows(g[n0:n1], geo)).reshape(geo.C, geo.kh, geo.kw, n, geo.Ho, geo.Wo)
            acc = np.zeros((geo.C, n, geo.H + 2 * ph, geo.W + 2 * pw), dtype=dtype)
            for a in range(geo.kh):
                for b in range(geo.kw):
                    rows, cs = _window(a, b, geo)
                    acc[:, :, rows, cs] += dcols[:, a, b]
            dx[n0:n1] = acc[:, :, ph:ph + geo.H, pw:pw + geo.W].transpose(1, 0, 2, 3)

        _parallel(chunk, self._chunks(geo, dtype.itemsize, add_per_offset=True))
        return dx

    def weight_grad(self, x, g, geo, saved=None):
        """Per chunk ``columns @ g`` with ``g`` as (n Ho Wo, O) (the long axis inner), summed over the chunks;
        from the kept columns when given."""
        dtype = np.result_type(x, g)
        hw = geo.Ho * geo.Wo

        def chunk(bounds):
            n0, n1 = bounds
            cols = self.columns(x[n0:n1], geo) if saved is None else saved[:, :, n0 * hw:n1 * hw]
            return _gemm(cols, self._grad_columns(g[n0:n1], geo))  # (groups, Cg kh kw, O/groups)

        dwt = _total(_parallel(chunk, self._chunks(geo, dtype.itemsize)))
        return np.ascontiguousarray(dwt.transpose(0, 2, 1)).reshape(geo.O, geo.Cg, geo.kh, geo.kw)


class Im2colPerImage(Im2col):
    """im2col's columns, with one GEMM per image (NumPy's batched ``matmul`` over strided blocks of the columns)
    writing (N, O, Ho Wo) with no transpose, and the input gradient's columns image by image; a 1x1 convolution
    with stride 1 and no padding uses the input itself as the matrix (a view, no copy)."""

    name = "im2col_per_image"

    @staticmethod
    def _no_copy(geo):
        return geo.kh == geo.kw == 1 and geo.stride == (1, 1) and geo.padding == (0, 0)

    def _gemm_into(self, wm, cols, out, n0, n1, geo):
        n, G = n1 - n0, geo.groups
        blocks = cols.reshape(G, -1, n, geo.Ho * geo.Wo).transpose(2, 0, 1, 3)  # (n, groups, Cg kh kw, Ho Wo)
        np.matmul(wm, blocks, out=out[n0:n1].reshape(n, G, geo.O // G, -1))

    def forward(self, x, w, geo, keep=False, bias=None):
        if not self._no_copy(geo):
            return super().forward(x, w, geo, keep, bias)
        dtype = np.result_type(x, w)
        G = geo.groups
        out = np.matmul(w.reshape(G, geo.O // G, -1).astype(dtype, copy=False),
                        x.reshape(geo.N, G, geo.Cg, -1).astype(dtype, copy=False))
        out = out.reshape(geo.N, geo.O, geo.Ho, geo.Wo)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        return out, None

    @staticmethod
    def _input_columns(wt, g, geo):
        """The input gradient's columns of the images of ``g``: (n, groups, Cg kh kw, Ho Wo)."""
        return np.matmul(wt, g.reshape(g.shape[0], geo.groups, geo.O // geo.groups, -1))

    def input_grad(self, g, w, geo):
        G = geo.groups
        wt = w.reshape(G, geo.O // G, -1).transpose(0, 2, 1)  # (groups, Cg kh kw, O/groups)
        dtype = np.result_type(g, w)
        if self._no_copy(geo):
            return np.matmul(wt, g.reshape(geo.N, G, geo.O // G, -1)).reshape(geo.N, geo.C, geo.H, geo.W)
        ph, pw = geo.padding
        dx = np.empty((geo.N, geo.C, geo.H, geo.W), dtype=dtype)

        def chunk(bounds):
            n0, n1 = bounds
            n = n1 - n0
            dcols = self._input_columns(wt, g[n0:n1], geo).reshape(n, geo.C, geo.kh, geo.kw, geo.Ho, geo.Wo)
            acc = np.zeros((n, geo.C, geo.H + 2 * ph, geo.W + 2 * pw), dtype=dtype)
            for a in range(geo.kh):
                for b in range(geo.kw):
                    rows, cs = _window(a, b, geo)
                    acc[:, :, rows, cs] += dcols[:, :, a, b]
            dx[n0:n1] = acc[:, :, ph:ph + geo.H, pw:pw + geo.W]

        _parallel(chunk, self._chunks(geo, dtype.itemsize, add_per_offset=True))
        return dx

    def weight_grad(self, x, g, geo, saved=None):
        """Per image ``g[n] @ columns[n]^T`` (batched), summed over the images."""
        G, hw = geo.groups, geo.Ho * geo.Wo
        dtype = np.result_type(x, g)
        if self._no_copy(geo):
            rows = g.reshape(geo.N, G, geo.O // G, hw)
            dw = np.matmul(rows, x.reshape(geo.N, G, geo.Cg, hw).transpose(0, 1, 3, 2)).sum(axis=0)
            return dw.reshape(geo.O, geo.Cg, 1, 1)
        def chunk(bounds):
            n0, n1 = bounds
            n = n1 - n0
            cols = self.columns(x[n0:n1], geo) if saved is None else saved[:, :, n0 * hw:n1 * hw]
            blocks = cols.reshape(G, -1, n, hw).transpose(2, 0, 3, 1)  # (n, groups, Ho Wo, Cg kh kw)
            return np.matmul(g[n0:n1].reshape(n, G, geo.O // G, hw), blocks).sum(axis=0)

        dw = _total(_parallel(chunk, self._chunks(geo, dtype.itemsize)))
        return dw.reshape(geo.O, geo.Cg, geo.kh, geo.kw)


class Im2colBlocks(Im2colPerImage):
    """im2col's columns, with the forward's and the input gradient's GEMMs over blocks of at most
    ``BLOCK_COLUMNS`` output positions of one image (one batched ``matmul`` per chunk, writing in place).

    Each product is then small enough for the BLAS kernels that skip packing the operands (OpenBLAS's
    small-matrix and direct SGEMM paths); with few output channels, packing is what a large GEMM spends its time
    on. Measured on the seed ConvNet's 7x7 3->32 layer at 1 thread: 104 GFLOP/s in blocks of 128 against 60 as one
    GEMM per image. The weight gradient is im2col's (its long inner axis suits one large GEMM), so this algorithm
    is not a candidate for it.
    """

    name = "im2col_blocks"

    @staticmethod
    def _block(geo):
        hw = geo.Ho * geo.Wo
        return max(b for b in range(1, min(hw, BLOCK_COLUMNS) + 1) if hw % b == 0)

    def applies(self, op, geo, dtype):
        return op != "weight_grad" and not self._no_copy(geo) and self._block(geo) >= MIN_BLOCK_COLUMNS

    def _gemm_into(self, wm, cols, out, n0, n1, geo):
        n, G, b = n1 - n0, geo.groups, self._block(geo)
        nb = geo.Ho * geo.Wo // b
        blocks = cols.reshape(G, -1, n, nb, b).transpose(2, 3, 0, 1, 4)  # (n, blocks, groups, Cg kh kw, b)
        target = out[n0:n1].reshape(n, G, geo.O // G, nb, b).transpose(0, 3, 1, 2, 4)
        np.matmul(wm, blocks, out=target)

    def _input_columns(self, wt, g, geo):
        n, G, b = g.shape[0], geo.groups, self._block(geo)
        hw = geo.Ho * geo.Wo
        rows = wt.shape[1]
        out = np.empty((n, G, rows, hw), dtype=np.result_type(wt, g))
        np.matmul(wt, g.reshape(n, G, geo.O // G, hw // b, b).transpose(0, 3, 1, 2, 4),
                  out=out.reshape(n, G, rows, hw // b, b).transpose(0, 3, 1, 2, 4))
        return out


class Im2colViews(Im2col):
    """im2col's matrix as strided views of the input widened only along its rows: the input, padded, is copied
    ``kw`` times (each copy shifted by one kernel column) instead of im2col's ``kh kw`` times, and the rest of
    the columns are views into that copy.

    Laid out (rows, channels, kernel columns, Wo), the widened input holds, for each output row, im2col's columns
    of that row, rows ordered (kernel row, channel, kernel column), as one matrix with a uniform row stride (a
    kernel row down is ``C kw`` rows of Wo further on): the forward is one batched ``matmul`` of the weight with
    these (N Ho) views, written into the output in place. Laid out (channels, kernel columns, rows, Wo), the
    same copy holds for each kernel row a (C kw, Ho Wo) matrix, and the weight gradient is one batched product
    of the output gradient with those per image and kernel row. For the seed ConvNet's 7x7 3->32 layer the copy
    is 7x the input where im2col writes 49x (77 MB for 128 images), and at 1 thread the forward took 14 ms
    against im2col_blocks's 19, the weight gradient 14 against im2col's 22.

    The forward needs dilation 1 down the rows (so that the kernel rows are evenly spaced) and the weight
    gradient stride 1 down the rows (so that the output rows are); the input gradient is ``fallback``'s.
    """

    name = "im2col_views"
    fallback = "im2col_blocks"

    def applies(self, op, geo, dtype):
        if geo.kh == 1 or op == "input_grad":  # one kernel row: im2col's own columns are no larger
            return False
        return geo.dilation[0] == 1 if op == "forward" else geo.stride[0] == 1

    @staticmethod
    def _widened(x, geo, rows_outer):
        """The padded input of ``x`` copied once per kernel column: ``(n, groups, Hp, Cg, kw, Wo)`` with
        ``rows_outer`` (the forward's layout), else ``(n, groups, Cg, kw, Hp, Wo)`` (the weight gradient's)."""
        xp = _padded(x, geo, channels_first=False)
        s_n, s_c, s_h, s_w = xp.strides
        (_, sw), (_, dw) = geo.stride, geo.dilation
        n, G, Cg, Hp = x.shape[0], geo.groups, geo.Cg, xp.shape[2]
        if rows_outer:
            shape, strides = (n, G, Hp, Cg, geo.kw, geo.Wo), (s_n, Cg * s_c, s_h, s_c, dw * s_w, sw * s_w)
        else:
            shape, strides = (n, G, Cg, geo.kw, Hp, geo.Wo), (s_n, Cg * s_c, s_c, dw * s_w, s_h, sw * s_w)
        wide = np.empty(shape, dtype=xp.dtype)
        np.copyto(wide, as_strided(xp, shape, strides, writeable=False))
        return wide

    def input_grad(self, g, w, geo):
        raise NotImplementedError("im2col_views has no input gradient: its fallback, im2col_blocks, computes it")

    def _chunks(self, geo, itemsize, add_per_offset=False):
        wide = geo.C * geo.kw * (geo.H + 2 * geo.padding[0]) * geo.Wo
        return _chunks(geo.N, (wide + geo.O * geo.Ho * geo.Wo) * itemsize)

    def forward(self, x, w, geo, keep=False, bias=None):
        dtype = np.result_type(x, w)
        x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
        G, Og, Cg, kh, kw = geo.groups, geo.O // geo.groups, geo.Cg, geo.kh, geo.kw
        # the weight's columns in the views' row order: (kernel row, channel, kernel column)
        wm = np.ascontiguousarray(w.reshape(G, Og, Cg, kh, kw).transpose(0, 1, 3, 2, 4)).reshape(G, Og, -1)
        out = np.empty((geo.N, geo.O, geo.Ho, geo.Wo), dtype=dtype)
        bias = None if bias is None else bias.reshape(1, -1, 1, 1)

        def chunk(bounds):
            n0, n1 = bounds
            n = n1 - n0
            wide = self._widened(x[n0:n1], geo, rows_outer=True)
            s = wide.strides  # a row of the matrix is one (kernel column, Wo) line: s[4] apart, whatever the axis
            cols = as_strided(wide, (n, geo.Ho, G, kh * Cg * kw, geo.Wo),
                              (s[0], geo.stride[0] * s[2], s[1], s[4], s[5]), writeable=False)
            target = out[n0:n1].reshape(n, G, Og, geo.Ho, geo.Wo).transpose(0, 3, 1, 2, 4)
            np.matmul(wm, cols, out=target)
            if bias is not None:
                out[n0:n1] += bias

        _parallel(chunk, self._chunks(geo, dtype.itemsize))
        return out, None

    def weight_grad(self, x, g, geo, saved=None):
        """Per image and kernel row, ``g[n] @ view^T`` (batched), summed over the images of a chunk, then over the
        chunks in order."""
        dtype = np.result_type(x, g)
        x, g = x.astype(dtype, copy=False), g.astype(dtype, copy=False)
        G, Og, Cg, kh, kw = geo.groups, geo.O // geo.groups, geo.Cg, geo.kh, geo.kw
        hw = geo.Ho * geo.Wo

        def chunk(bounds):
            n0, n1 = bounds
            n = n1 - n0
            wide = self._widened(x[n0:n1], geo, rows_outer=False)
            s = wide.strides  # kernel row a starts a * dilation rows down; (channel, kernel column) planes s[3] apart
            cols = as_strided(wide, (n, G, kh, Cg * kw, hw), (s[0], s[1], geo.dilation[0] * s[4], s[3], s[5]),
                              writeable=False)
            rows = g[n0:n1].reshape(n, G, 1, Og, hw)
            return np.matmul(rows, cols.transpose(0, 1, 2, 4, 3)).sum(axis=0)  # (groups, kh, O/groups, Cg kw)

        dw = _total(_parallel(chunk, self._chunks(geo, dtype.itemsize)))
        return np.ascontiguousarray(dw.reshape(G, kh, Og, Cg, kw).transpose(0, 2, 3, 1, 4)).reshape(
            geo.O, Cg, kh, kw)


# --------------------------------------------------------------------------- Winograd F(m x m, 3 x 3)

# Lavin & Gray (2016), section 4: F(2, 3) and F(4, 3) (interpolation points 0, +-1, +-2 and infinity).
_WINOGRAD = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],  # B^T
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],  # G
        [[1, 1, 1, 0], [0, 1, -1, -1]],  # A^T
    ),
    4: (
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


def _times_transposed(a, b):
    """``a @ b^T`` per leading index, for the weight gradient's long products (a^2, O, P) x (a^2, C, P): b is
    transposed into a copy first, because OpenBLAS's GEMM with a transposed right operand of these shapes took
    1.65 times as long as the plain one (32->64 at 16x16: 4.4 against 2.7 ms a batch, the copy 0.9)."""
    return np.matmul(a, np.ascontiguousarray(b.transpose(0, 2, 1)))


def _is_float(dtype):
    return np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize in (4, 8)


def _common_float(who, arrays):
    dtype = np.result_type(*arrays)
    if not _is_float(dtype):
        raise TypeError(f"{who}: needs float32 or float64 arrays, got {', '.join(str(a.dtype) for a in arrays)}")
    return [a.astype(dtype, copy=False) for a in arrays]


class Winograd:
    """F(m x m, 3 x 3): tiles of (m + 2)^2 inputs give m^2 outputs with (m + 2)^2 products per channel pair.

    Each chunk checks its own images for inf and NaN, while they are in cache and on the chunk's thread, and raises
    :class:`_NotFinite` for the caller to run im2col (a check of the whole input first took 0.25 ms of serial time
    on 32->64)."""

    checks_finite = True

    def __init__(self, m):
        self.m = m
        self.alpha = m + 2
        self.name = f"winograd{m}"
        BT, G, AT = (np.array(a, dtype=np.float64) for a in _WINOGRAD[m])
        self._mats = {np.dtype(t): (BT.astype(t), G.astype(t), AT.astype(t)) for t in (np.float32, np.float64)}
        self._G64 = G

    def applies(self, op, geo, dtype):
        simple = (geo.kh, geo.kw) == (3, 3) and geo.stride == (1, 1) and geo.dilation == (1, 1) and geo.groups == 1
        return simple and _is_float(dtype)

    def _tiles(self, Ho, Wo):
        m = self.m
        return -(-Ho // m), -(-Wo // m)

    def _input_transform(self, x, padding, Ho, Wo, out=None):
        """B^T d B of every tile: (alpha^2, C, N th tw) from x (N, C, H, W) padded by ``padding``; written into
        ``out`` too when given (an array of that shape)."""
        m, a = self.m, self.alpha
        BT = self._mats[x.dtype][0]
        N, C, H, W = x.shape
        th, tw = self._tiles(Ho, Wo)
        ph, pw = padding
        xp = np.zeros((N, C, th * m + 2, tw * m + 2), dtype=x.dtype)  # Ho + 2 <= th m + 2: x fits
        xp[:, :, ph:ph + H, pw:pw + W] = x
        s = xp.strides  # the gather below puts the channels before the images
        tiles = as_strided(xp, (a, a, C, N, th, tw), (s[2], s[3], s[1], s[0], m * s[2], m * s[3]), writeable=False)
        d = np.ascontiguousarray(tiles).reshape(a, -1)
        target = out.reshape(a, a, -1) if out is not None and out.flags.c_contiguous else None
        v = np.matmul(BT, (BT @ d).reshape(a, a, -1), out=target)  # rows, then columns
        if out is not None and target is None:
            out[...] = v.reshape(out.shape)
        return v.reshape(a * a, C, N * th * tw)

    def _weight_transform(self, w):
        """G g G^T per (O, C) pair, computed in float64: (alpha^2, O, C)."""
        G, a = self._G64, self.alpha
        O, C = w.shape[:2]
        # two GEMMs over all pairs at once, the kernel's axes first so that the result comes out in the GEMMs'
        # layout (a matmul per pair, 3x3 each, took five times as long)
        rows = G @ np.ascontiguousarray(w.transpose(2, 3, 0, 1), dtype=np.float64).reshape(3, -1)  # (alpha, 3 O C)
        u = np.matmul(G, rows.reshape(a, 3, O * C))  # (alpha, alpha, O C)
        return u.astype(w.dtype).reshape(a * a, O, C)

    def _output_transform(self, mm, out):
        """A^T M A per tile, the tiles written in place into ``out`` (n, O, Ho, Wo)."""
        m, a = self.m, self.alpha
        AT = self._mats[mm.dtype][2]
        n, O, Ho, Wo = out.shape
        th, tw = self._tiles(Ho, Wo)
        rows = (AT @ mm.reshape(a, -1)).reshape(m, a, -1)  # (m, alpha, O n th tw)
        # the columns' product taken with the tile column last, so that the copy into the output moves rows of
        # tw m values (with the tile column first, the copy moved m values at a time: 2.2 against 0.8 ms on 32->64)
        y = np.matmul(rows.transpose(0, 2, 1), AT.T)  # (m, O n th tw, m)
        tiles = y.reshape(m, O, n, th, tw, m).transpose(2, 1, 3, 0, 4, 5)  # (n, O, th, m, tw, m)
        if (Ho, Wo) == (th * m, tw * m):  # whole tiles: one strided copy into the output
            out.reshape(n, O, th, m, tw, m)[...] = tiles
        else:
            out[...] = tiles.reshape(n, O, th * m, tw * m)[:, :, :Ho, :Wo]

    def _common(self, *arrays):
        """The arrays in their common dtype, which must be float32 or float64."""
        return _common_float(self.name, arrays)

    def _images_per_chunk(self, N, C, O, Ho, Wo, itemsize):
        """Images per pass: each pass's tiles (input and output side) take about ``CHUNK_BYTES``, so they stay
        in cache between the transforms and the GEMMs."""
        th, tw = self._tiles(Ho, Wo)
        per_image = self.alpha ** 2 * th * tw * (C + O) * itemsize
        return _even_step(N, CHUNK_BYTES // per_image)

    def _conv(self, x, w, padding, Ho, Wo, keep=False, bias=None):
        x, w = self._common(x, w)
        _require_finite(w)
        N, C = x.shape[:2]
        O = w.shape[0]
        th, tw = self._tiles(Ho, Wo)
        u = self._weight_transform(w)
        out = np.empty((N, O, Ho, Wo), dtype=x.dtype)
        keep = keep and self.alpha ** 2 * C * N * th * tw * x.dtype.itemsize <= KEEP_MAX_BYTES
        step = self._images_per_chunk(N, C, O, Ho, Wo, x.dtype.itemsize)
        # kept chunk by chunk, each contiguous so that the transform writes it in place (see _kept_chunk)
        v_all = np.empty((-(-N // step), self.alpha ** 2, C, step * th * tw), dtype=x.dtype) if keep else None

        def chunk(n0):
            n1 = min(N, n0 + step)
            _require_finite(x[n0:n1])
            v = self._input_transform(x[n0:n1], padding, Ho, Wo,
                                      out=self._kept_chunk(v_all, n0, n1, step, th * tw) if keep else None)
            self._output_transform(np.matmul(u, v), out[n0:n1])  # M: (alpha^2, O, n th tw)
            if bias is not None:  # while the chunk's output is in cache, on the chunk's thread
                out[n0:n1] += bias.reshape(1, -1, 1, 1)

        _parallel(chunk, list(range(0, N, step)))
        return out, v_all

    def forward(self, x, w, geo, keep=False, bias=None):
        return self._conv(x, w, geo.padding, geo.Ho, geo.Wo, keep, bias)

    @staticmethod
    def _kept_chunk(kept, n0, n1, step, tiles):
        """The kept transformed tiles of images n0..n1 (a chunk of ``step`` images, the last maybe fewer):
        (alpha^2, C, (n1 - n0) tiles)."""
        return kept[n0 // step][:, :, :(n1 - n0) * tiles]

    def _grad_transform(self, g, Ho, Wo):
        """A dY A^T of the output gradient's tiles: (alpha^2, O, n th tw) from g (n, O, Ho, Wo)."""
        m, a = self.m, self.alpha
        AT = self._mats[g.dtype][2]
        n, O = g.shape[:2]
        th, tw = self._tiles(Ho, Wo)
        if (Ho, Wo) == (th * m, tw * m):
            tiles = g.reshape(n, O, th, m, tw, m)
        else:
            padded = np.zeros((n, O, th * m, tw * m), dtype=g.dtype)
            padded[:, :, :Ho, :Wo] = g
            tiles = padded.reshape(n, O, th, m, tw, m)
        gp = np.ascontiguousarray(tiles.transpose(3, 5, 1, 0, 2, 4)).reshape(m, -1)  # (m, m, O, n, th, tw)
        dm = np.matmul(AT.T, (AT.T @ gp).reshape(a, m, -1))  # (a, a, O n th tw)
        return dm.reshape(a * a, O, -1)

    def input_grad(self, g, w, geo, kept=None, bias=False):
        """The adjoint of the forward: U^T dM per tile, then B dV B^T, the tiles added back where they overlap.

        With ``kept`` (the forward's transformed tiles) the weight gradient is computed in the same pass, from the
        same dM while it is in cache: ``(dx, dw)`` is returned, ``dw`` the same bits as :meth:`weight_grad`'s;
        with ``bias`` too, ``(dx, dw, db)``, ``db`` the sum of ``g`` over the images and positions.
        """
        g, w = self._common(g, w)
        _require_finite(w)
        m, a = self.m, self.alpha
        BT = self._mats[g.dtype][0]
        th, tw = self._tiles(geo.Ho, geo.Wo)
        ut = self._weight_transform(w.transpose(1, 0, 2, 3))  # (a^2, C, O): U transposed per position
        ph, pw = geo.padding
        dx = np.empty((geo.N, geo.C, geo.H, geo.W), dtype=g.dtype)
        step = self._images_per_chunk(geo.N, geo.C, geo.O, geo.Ho, geo.Wo, g.dtype.itemsize)

        def chunk(n0):
            n1 = min(geo.N, n0 + step)
            n = n1 - n0
            _require_finite(g[n0:n1])
            dm = self._grad_transform(g[n0:n1], geo.Ho, geo.Wo)
            du = None if kept is None else _times_transposed(dm, self._kept_chunk(kept, n0, n1, step, th * tw))
            db = g[n0:n1].sum(axis=(0, 2, 3)) if bias else None
            dv = np.matmul(ut, dm)  # (a^2, C, n th tw)
            dd = np.matmul(BT.T, (BT.T @ dv.reshape(a, -1)).reshape(a, a, -1))  # B dV B^T: (a, a, C n th tw)
            dd = dd.reshape(a, a, geo.C, n, th, tw)
            # overlap-add: tile row i lands in block row t + i // m, row i % m within it (and so for columns). The
            # first m x m of each tile meet nothing before them in this order, so they are copied in at once and
            # only the overlapping rows and columns are added (the same sums in the same order as adding all)
            dxp = np.empty((geo.C, n, th + 1, m, tw + 1, m), dtype=g.dtype)
            dxp[:, :, th] = 0
            dxp[:, :, :th, :, tw] = 0
            dxp[:, :, :th, :, :tw, :] = dd[:m, :m].transpose(2, 3, 4, 0, 5, 1)
            for i in range(a):
                ti, ri = divmod(i, m)
                for j in range(a):
                    if i < m and j < m:
                        continue
                    tj, rj = divmod(j, m)
                    dxp[:, :, ti:ti + th, ri, tj:tj + tw, rj] += dd[i, j]
            dxp = dxp.reshape(geo.C, n, (th + 1) * m, (tw + 1) * m)
            dx[n0:n1] = dxp[:, :, ph:ph + geo.H, pw:pw + geo.W].transpose(1, 0, 2, 3)
            return du, db

        parts = _parallel(chunk, list(range(0, geo.N, step)))
        if kept is None:
            return dx
        dw = self._weight_from_transform(_total([du for du, _ in parts]), geo, g.dtype)
        return (dx, dw, _total([db for _, db in parts])) if bias else (dx, dw)

    def _weight_from_transform(self, du, geo, dtype):
        """G^T dU G: the weight gradient (O, C, 3, 3) from its Winograd-domain sum ``du`` (alpha^2, O, C)."""
        a, G = self.alpha, self._mats[dtype][1]
        rows = G.T @ du.reshape(a, -1)  # (3, alpha O C): two GEMMs over all pairs, as in _weight_transform
        per_pair = np.ascontiguousarray(rows.reshape(3, a, geo.O * geo.C).transpose(2, 0, 1)).reshape(-1, a)
        return (per_pair @ G).reshape(geo.O, geo.C, 3, 3)

    def weight_grad(self, x, g, geo, saved=None):
        x, g = self._common(x, g)
        th, tw = self._tiles(geo.Ho, geo.Wo)
        step = self._images_per_chunk(geo.N, geo.C, geo.O, geo.Ho, geo.Wo, g.dtype.itemsize)

        def chunk(n0):
            n1 = min(geo.N, n0 + step)
            _require_finite(g[n0:n1])
            if saved is None:
                _require_finite(x[n0:n1])
                v = self._input_transform(x[n0:n1], geo.padding, geo.Ho, geo.Wo)
            else:
                v = self._kept_chunk(saved, n0, n1, step, th * tw)
            dm = self._grad_transform(g[n0:n1], geo.Ho, geo.Wo)
            return _times_transposed(dm, v)  # (a^2, O, C)

        return self._weight_from_transform(_total(_parallel(chunk, list(range(0, geo.N, step)))), geo, g.dtype)


# --------------------------------------------------------------------------- FFT


def _smooth_length(n):
    """The least 2^a 3^b 5^c >= n (lengths the FFT handles fastest)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


class FFT:
    """Products of spectra on the padded input's grid (no wrap-around there: see the module's text)."""

    name = "fft"

    def applies(self, op, geo, dtype):
        return geo.stride == (1, 1) and geo.dilation == (1, 1) and geo.groups == 1 and _is_float(dtype)

    @staticmethod
    def _grid(geo):
        return _smooth_length(geo.H + 2 * geo.padding[0]), _smooth_length(geo.W + 2 * geo.padding[1])

    @staticmethod
    def _contract(a, b, conj_b):
        """Per frequency, the sum over the shared channel axis: a (I, K, F) and b (J, K, F) give (I, J, F)."""
        bf = np.moveaxis(b, -1, 0).transpose(0, 2, 1)  # (F, K, J)
        return np.moveaxis(np.matmul(np.moveaxis(a, -1, 0), np.conj(bf) if conj_b else bf), 0, -1)

    def _spectrum_x(self, x, geo):
        P, Q = self._grid(geo)
        xp = _padded(x, geo, channels_first=False)
        return np.fft.rfft2(xp, s=(P, Q)).reshape(geo.N, geo.C, -1)

    def _spectrum(self, a, geo):
        P, Q = self._grid(geo)
        return np.fft.rfft2(a, s=(P, Q)).reshape(a.shape[0], a.shape[1], -1)

    def _back(self, spectrum, geo, rows, cols):
        P, Q = self._grid(geo)
        n, k = spectrum.shape[:2]
        out = np.fft.irfft2(spectrum.reshape(n, k, P, Q // 2 + 1), s=(P, Q))
        return np.ascontiguousarray(out[:, :, rows, cols])

    def forward(self, x, w, geo, keep=False, bias=None):
        x, w = _common_float(self.name, (x, w))
        dtype = x.dtype
        xf = self._spectrum_x(x, geo)
        yf = self._contract(xf, self._spectrum(w, geo), conj_b=True)  # (N, O, F)
        out = self._back(yf, geo, slice(0, geo.Ho), slice(0, geo.Wo)).astype(dtype, copy=False)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        return out, (xf if keep and xf.nbytes <= KEEP_MAX_BYTES else None)

    def input_grad(self, g, w, geo):
        g, w = _common_float(self.name, (g, w))
        dtype = g.dtype
        wf = np.moveaxis(self._spectrum(w, geo), -1, 0)  # (F, O, C)
        dxf = np.moveaxis(np.matmul(np.moveaxis(self._spectrum(g, geo), -1, 0), wf), 0, -1)  # (N, C, F)
        ph, pw = geo.padding
        return self._back(dxf, geo, slice(ph, ph + geo.H), slice(pw, pw + geo.W)).astype(dtype, copy=False)

    def weight_grad(self, x, g, geo, saved=None):
        x, g = _common_float(self.name, (x, g))
        dtype = x.dtype
        xf = self._spectrum_x(x, geo) if saved is None else saved
        gf = self._spectrum(g, geo)
        # sum over n of conj(G[n, o]) X[n, c]: (F, O, N) @ (F, N, C)
        dwf = np.moveaxis(np.matmul(np.conj(np.moveaxis(gf, -1, 0)).transpose(0, 2, 1), np.moveaxis(xf, -1, 0)), 0, -1)
        return self._back(dwf, geo, slice(0, geo.kh), slice(0, geo.kw)).astype(dtype, copy=False)


# --------------------------------------------------------------------------- the choice

_IMPLEMENTATIONS = {a.name: a for a in (Im2col(), Im2colPerImage(), Im2colBlocks(), Im2colViews(), Winograd(2),
                                          Winograd(4), FFT())}
_OPS = ("forward", "input_grad", "weight_grad")


class _Settings(threading.local):
    forced = None


_settings = _Settings()
_autotune = os.environ.get("NABLAB_CONV_AUTOTUNE", "1").strip().lower() not in ("0", "false", "no", "off")
_save_columns = True
_choices: dict = {}
_calls: dict = {}


def autotune(enabled=None):
    """Turn measuring per shape on or off (``autotune(False)``: always im2col, the same bits every run).

    Returns the previous setting; ``autotune()`` only reads it. Turning it off keeps the choices
    measured so far (:func:`clear_choices` drops them) but stops using them.

    >>> from nablab.nn import conv_algorithms as ca
    >>> previous = ca.autotune(False)
    >>> ca.is_autotuning()
    False
    >>> _ = ca.autotune(previous)
    """
    global _autotune
    previous = _autotune
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise TypeError(f"autotune: expected True or False, got {enabled!r}")
        _autotune = enabled
    return previous


def is_autotuning():
    """Whether convolutions choose their algorithm by measuring (see :func:`autotune`).

    >>> from nablab.nn import conv_algorithms as ca
    >>> isinstance(ca.is_autotuning(), bool)
    True
    """
    return _autotune


def save_columns(enabled=None):
    """Whether the forward keeps its columns (or tiles, or spectrum) for the weight gradient; returns the previous
    setting, and sets it when ``enabled`` is given.

    >>> from nablab.nn import conv_algorithms as ca
    >>> previous = ca.save_columns(False)
    >>> ca.save_columns(previous)
    False
    """
    global _save_columns
    previous = _save_columns
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise TypeError(f"save_columns: expected True or False, got {enabled!r}")
        _save_columns = enabled
    return previous


@contextlib.contextmanager
def use(name):
    """Within the block (this thread), run ``name`` wherever it applies, elsewhere its fallback where it has one
    (im2col_views: im2col_blocks) or im2col; no measuring.

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> from nablab.nn import functional as F
    >>> with ca.use("fft"):
    ...     y = F.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding=1)
    >>> y[0, 0, 0]
    array([4., 6., 6., 4.])
    """
    if name not in _IMPLEMENTATIONS:
        raise ValueError(f"unknown convolution algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    previous = _settings.forced
    _settings.forced = name
    try:
        yield
    finally:
        _settings.forced = previous


def applicable(op, geo, dtype=np.float64):
    """The algorithms that can compute ``op`` (``"forward"``, ``"input_grad"`` or ``"weight_grad"``) for ``geo``.

    >>> from nablab.nn import conv_algorithms as ca
    >>> geo = ca.geometry((1, 2, 9, 9), (2, 2, 3, 3), (2, 2), (0, 0), (1, 1), 1)
    >>> ca.applicable("forward", geo)
    ['im2col', 'im2col_per_image', 'im2col_views']
    """
    if op not in _OPS:
        raise ValueError(f"unknown convolution map {op!r}; choose from {', '.join(_OPS)}")
    return [name for name, impl in _IMPLEMENTATIONS.items() if impl.applies(op, geo, dtype)]


def choices():
    """The measured choices so far: ``{(op, geometry, dtype): {"algorithm": name, "seconds": {name: s}}}``.

    >>> from nablab.nn import conv_algorithms as ca
    >>> isinstance(ca.choices(), dict)
    True
    """
    return {key: {"algorithm": c["algorithm"], "seconds": dict(c["seconds"])} for key, c in _choices.items()}


def clear_choices():
    """Forget every measured choice (the next call of each shape measures again).

    >>> from nablab.nn import conv_algorithms as ca
    >>> ca.clear_choices(); ca.choices()
    {}
    """
    _choices.clear()


def export_choices():
    """The measured choices as JSON-ready rows ``{"op", "geometry", "dtype", "algorithm"}``.

    A training checkpoint keeps them, and the resumed run takes them back with :func:`import_choices`:
    algorithms differ in the last bits of float32 results, so a resumed run must not measure afresh
    (and perhaps choose differently) if it is to continue bit for bit.

    >>> from nablab.nn import conv_algorithms as ca
    >>> rows = ca.export_choices()
    >>> ca.import_choices(rows); ca.export_choices() == rows
    True
    """
    return [{"op": op, "geometry": [list(v) if isinstance(v, tuple) else v for v in geo], "dtype": dtype,
             "algorithm": c["algorithm"]} for (op, geo, dtype), c in _choices.items()]


_KEPT_OP = "weight_grad from kept columns"


def import_choices(rows):
    """Use the algorithms of ``rows`` (from :func:`export_choices`) for their shapes instead of measuring them.

    Every row is checked before any is taken; one that is not a choice raises ``ValueError`` naming its
    position and what is wrong with it.

    >>> from nablab.nn import conv_algorithms as ca
    >>> ca.import_choices([{"op": "forward", "geometry": [1], "dtype": "<f4", "algorithm": "im2col"}])
    Traceback (most recent call last):
    ...
    ValueError: convolution choice 0: geometry [1] is not 14 sizes (N, C, H, W, O, Cg, kh, kw, Ho, Wo, stride, padding, dilation, groups)
    """
    if not isinstance(rows, list):
        raise ValueError(f"convolution choices: expected a list of rows, got {type(rows).__name__}")
    taken = {}
    for i, row in enumerate(rows):
        def refuse(problem):
            raise ValueError(f"convolution choice {i}: {problem}")

        if not isinstance(row, dict) or set(row) != {"op", "geometry", "dtype", "algorithm"}:
            refuse(f"{row!r} is not a mapping of op, geometry, dtype and algorithm")
        op, sizes, dtype, algorithm = row["op"], row["geometry"], row["dtype"], row["algorithm"]
        if op not in _OPS and op != _KEPT_OP:
            refuse(f"unknown map {op!r}")
        if not isinstance(sizes, list) or len(sizes) != len(Geometry._fields):
            refuse(f"geometry {sizes!r} is not {len(Geometry._fields)} sizes ({', '.join(Geometry._fields)})")
        fields = [tuple(v) if isinstance(v, list) else v for v in sizes]
        if not all(isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, tuple) and len(v) == 2
                   and all(isinstance(u, int) and not isinstance(u, bool) for u in v)) for v in fields):
            refuse(f"geometry {sizes!r} holds something other than integers and pairs of integers")
        try:
            dtype = np.dtype(dtype).str
        except TypeError:
            refuse(f"dtype {row['dtype']!r} is not a NumPy dtype")
        if not isinstance(algorithm, str) or _base(algorithm) not in _IMPLEMENTATIONS:
            refuse(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
        geo = Geometry(*fields)
        # a choice that does not apply would compute something else (Winograd ignores a stride) or fail deep down
        fits = _base(algorithm) in _SHARED_COLUMNS if op == _KEPT_OP else \
            _IMPLEMENTATIONS[_base(algorithm)].applies(op, geo, np.dtype(dtype))
        if not fits:
            refuse(f"{algorithm} cannot compute {op} for kernel {geo.kh}x{geo.kw}, stride {geo.stride}, dilation "
                   f"{geo.dilation}, {geo.groups} group(s), dtype {np.dtype(dtype)}")
        taken[(op, geo, dtype)] = {"algorithm": algorithm, "seconds": {}}
    _choices.update(taken)


def calls():
    """How many times each (op, algorithm) ran in this process (tests check that a forced algorithm ran).

    >>> from nablab.nn import conv_algorithms as ca
    >>> isinstance(ca.calls(), dict)
    True
    """
    return dict(_calls)


#: The variant of an algorithm that works through its chunks one after the other, leaving the threads to BLAS.
IN_TURN = " (chunks in turn)"


def _base(name):
    """The algorithm of a variant's name: ``"im2col (chunks in turn)" -> "im2col"``."""
    return name.removesuffix(IN_TURN)


def _variants(candidates):
    """With several threads, each algorithm that works in chunks also as its variant with the chunks in turn:
    small GEMMs gain from chunks in parallel, large ones (a 7x7 kernel's) from BLAS's own threads."""
    if threads() <= 1:
        return list(candidates)
    return list(candidates) + [c + IN_TURN for c in candidates if c != "fft"]


def _candidates(op, geo, dtype):
    """What autotuning measures for ``op``: each algorithm that applies (the FFT only for kernels of 5 or more: it
    is never close for smaller ones), in each variant (:func:`_variants`)."""
    candidates = applicable(op, geo, dtype)
    if max(geo.kh, geo.kw) < 5 and "fft" in candidates:
        candidates.remove("fft")
    return _variants(candidates)


def _run(op, name, args, geo, **kwargs):
    base = _base(name)
    key = (op, base)
    with parallel.serial() if name != base else contextlib.nullcontext():  # its chunks in turn, BLAS threaded
        result = getattr(_IMPLEMENTATIONS[base], op)(*args, geo, **kwargs)
    _calls[key] = _calls.get(key, 0) + 1  # (one that stopped at inf or NaN ran im2col instead)
    return result


def _fastest(candidates, run):
    """``run(name)`` for each candidate in turn, three rounds, and the fastest by its best round (Winograd or the
    FFT only by :data:`AUTOTUNE_MARGIN`), so that a burst of load from other processes during one round does not
    decide: ``(name, seconds per candidate, what run returned for it)``."""
    seconds, results = {}, {}
    # On one thread the process's CPU time is the measure (other processes' load does not count); on more, the
    # wall clock (CPU time would add the threads up and count BLAS threads that spin while they wait).
    clock = time.process_time if threads() == 1 else time.perf_counter
    for round_ in range(MEASURE_ROUNDS + 1):  # the first round warms up (thread pool, first-touch pages): not timed
        for name in candidates:
            start = clock()
            result = run(name)
            elapsed = clock() - start
            if round_ and elapsed < seconds.get(name, np.inf):
                seconds[name] = elapsed
            results[name] = result
    best = min(seconds, key=seconds.get)
    family = [name for name in seconds if _base(name) in _DIRECT]
    if family and _base(best) not in _DIRECT:
        plain = min(family, key=seconds.get)
        if seconds[best] > AUTOTUNE_MARGIN * seconds[plain]:
            best = plain
    return best, seconds, results[best]


def _measure(op, key, candidates, args, geo, kwargs):
    """Measure the candidates for one map (:func:`_fastest`) and keep the choice: ``(name, result)``."""
    best, seconds, result = _fastest(candidates, lambda name: _run(op, name, args, geo, **kwargs))
    _choices[key] = {"algorithm": best, "seconds": seconds}
    return best, result


def _stand_in(name, op, geo, dtype):
    """Algorithm ``name`` where it computes ``op`` for ``geo``, else its ``fallback`` where that does, else im2col."""
    impl = _IMPLEMENTATIONS[name]
    if impl.applies(op, geo, dtype):
        return name
    fallback = getattr(impl, "fallback", "im2col")
    return fallback if _IMPLEMENTATIONS[fallback].applies(op, geo, dtype) else "im2col"


def _for_map(name, op, geo, dtype):
    """:func:`_stand_in` for a variant's name (``"im2col_views (chunks in turn)"``), in the same variant."""
    base = _base(name)
    return _stand_in(base, op, geo, dtype) + name[len(base):]


def _training_step(name, x, w, geo, bias, with_input_grad):
    """What a training step asks of this convolution when ``name`` computes all of it: the forward, keeping what it
    keeps, then the gradients: the input's if wanted (in one pass with the weight's where Winograd kept its tiles),
    the weight's from what was kept, the bias's. The output itself serves as the cotangent: only the time counts.
    Returns the forward's ``(out, kept)``."""
    dtype = np.result_type(x, w)
    out, kept = _run("forward", name, (x, w), geo, keep=True, bias=bias)
    g = out if _finite(out) else np.zeros_like(out)  # (an output that overflowed would stop Winograd's gradients)
    if with_input_grad and kept is not None and _base(name).startswith("winograd"):
        _run("input_grad", name, (g, w), geo, kept=kept, bias=bias is not None)
        return out, kept
    if with_input_grad:
        _run("input_grad", _for_map(name, "input_grad", geo, dtype), (g, w), geo)
    _run("weight_grad", _for_map(name, "weight_grad", geo, dtype), (x, g), geo, saved=kept)
    if bias is not None:
        bias_grad(g)
    return out, kept


def _measure_training(x, w, geo, dtype, bias, with_input_grad):
    """Choose the forward of a convolution whose weight is being trained by timing each candidate with the backward
    it leads to (:func:`_training_step`), and record that algorithm for the gradients too.

    Timed alone, a forward cannot see what it saves its backward: Winograd's kept tiles give the weight gradient in
    the input gradient's pass, and per map the 32->64 case chose im2col's forward and weight gradient with
    Winograd's input gradient, 1.5x slower than Winograd throughout. Returns ``(name, (out, kept))``.
    """
    best, seconds, result = _fastest(_candidates("forward", geo, dtype),
                                     lambda name: _training_step(name, x, w, geo, bias, with_input_grad))
    _stash.entry = _stash.bias = None  # what the timed backward passes left for a cotangent nobody else holds
    dt = np.dtype(dtype).str
    _choices[("forward", geo, dt)] = {"algorithm": best, "seconds": seconds}
    for op in ("input_grad", "weight_grad"):
        _choices[(op, geo, dt)] = {"algorithm": _for_map(best, op, geo, dtype), "seconds": {}}
    if _base(best) in _COLUMN_LAYOUT and result[1] is not None:  # its columns fit KEEP_MAX_BYTES: kept
        _choices[(_KEPT_OP, geo, dt)] = {"algorithm": _for_map(best, "weight_grad", geo, dtype), "seconds": {}}
    return best, result


def choose(op, geo, dtype):
    """The algorithm that runs ``op`` for ``geo`` and ``dtype`` now, or None when it would be measured first.

    >>> from nablab.nn import conv_algorithms as ca
    >>> geo = ca.geometry((1, 2, 9, 9), (2, 2, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    >>> ca.choose("forward", geo, "float32")
    'im2col'
    >>> with ca.use("winograd2"):
    ...     ca.choose("forward", geo, "float32"), ca.choose("forward", geo, "int64")
    ('winograd2', 'im2col')
    """
    forced = _settings.forced
    if forced is not None:
        return _stand_in(forced, op, geo, dtype)
    if not _autotune or geo.macs < AUTOTUNE_MIN_MACS:
        return "im2col"
    chosen = _choices.get((op, geo, np.dtype(dtype).str))
    return None if chosen is None else chosen["algorithm"]


#: Algorithms whose sums mix the values of a whole tile or image (transforms, then products, then transforms back).
_TRANSFORMS = ("winograd2", "winograd4", "fft")


def _finite(*arrays):
    """Whether every value is finite: only then do Winograd and the FFT compute what a direct convolution does.
    Their transforms mix the values of a tile or an image, so one inf or NaN spreads NaN to outputs that should be
    finite (and inf - inf is NaN where the direct sum is inf); im2col adds the products one by one, as PyTorch
    does. The check is one pass over the inputs, about 1% of a convolution."""
    return all(a is None or bool(np.isfinite(a).all()) for a in arrays)


class _NotFinite(Exception):
    """Raised by an algorithm that checks its own inputs (``checks_finite``) on meeting inf or NaN: im2col runs
    instead (see :func:`_finite`)."""


def _require_finite(*arrays):
    if not _finite(*arrays):
        raise _NotFinite


def _checks_finite(name):
    return getattr(_IMPLEMENTATIONS[_base(name)], "checks_finite", False)


def _run_or_im2col(op, name, args, geo, **kwargs):
    """``(name, result)`` by ``name``, an algorithm that checks its own inputs, or ``("im2col", result)`` when
    they are not all finite."""
    try:
        return name, _run(op, name, args, geo, **kwargs)
    except _NotFinite:
        return "im2col", _run(op, "im2col", args, geo, **{k: v for k, v in kwargs.items() if k != "saved"})


def _dispatch(op, args, geo, dtype, **kwargs):
    name = choose(op, geo, dtype)
    if name is not None and _checks_finite(name) and _finite(kwargs.get("bias")):
        return _run_or_im2col(op, name, args, geo, **kwargs)
    if (name is None or _base(name) in _TRANSFORMS) and not _finite(*args, kwargs.get("bias")):
        return "im2col", _run(op, "im2col", args, geo, **kwargs)
    if name is not None:
        return name, _run(op, name, args, geo, **kwargs)
    return _measure(op, (op, geo, np.dtype(dtype).str), _candidates(op, geo, dtype), args, geo, kwargs)


#: Algorithms whose weight gradient reads kept columns in im2col's layout; it chooses among them.
_SHARED_COLUMNS = ("im2col", "im2col_per_image")

#: Algorithms whose forward keeps its columns in that layout.
_COLUMN_LAYOUT = (*_SHARED_COLUMNS, "im2col_blocks")

#: The im2col family: the products of a direct convolution, summed in a GEMM (one error bound, about one memory).
_DIRECT = (*_COLUMN_LAYOUT, "im2col_views")


def _weight_grad_from_kept(x, g, geo, name, columns):
    """The weight gradient from a forward's kept columns: by that algorithm, or, for im2col's columns, by the
    faster of the two GEMM orders (measured once per shape, as every choice)."""
    if _base(name) not in _COLUMN_LAYOUT:
        if _checks_finite(name):
            return _run_or_im2col("weight_grad", name, (x, g), geo, saved=columns)[1]
        if not _finite(x, g):  # a transform's kept data cannot give the direct sums (see _finite)
            return _run("weight_grad", "im2col", (x, g), geo)
        return _run("weight_grad", name, (x, g), geo, saved=columns)
    dtype = np.result_type(x, g)
    forced = _settings.forced
    if forced in _DIRECT and forced not in _COLUMN_LAYOUT and _IMPLEMENTATIONS[forced].applies(
            "weight_grad", geo, dtype):  # forced, but its forward did not apply (im2col_views with a dilation down
        return _run("weight_grad", forced, (x, g), geo)  # the rows): im2col's kept columns go unused
    if forced is not None or not _autotune or geo.macs < AUTOTUNE_MIN_MACS:
        chosen = forced if forced in _SHARED_COLUMNS else "im2col" if _base(name) == "im2col_blocks" else name
        return _run("weight_grad", chosen, (x, g), geo, saved=columns)
    key = (_KEPT_OP, geo, np.dtype(dtype).str)
    entry = _choices.get(key)
    if entry is not None:
        return _run("weight_grad", entry["algorithm"], (x, g), geo, saved=columns)
    return _measure("weight_grad", key, _variants(_SHARED_COLUMNS), (x, g), geo, {"saved": columns})[1]


def forward(x, w, geo, keep=False, bias=None, with_input_grad=False):
    """``conv2d(x, w)`` by the chosen algorithm: ``(out, saved)``; with ``keep``, ``saved`` is
    ``(algorithm, columns)`` for :func:`weight_grad`, else None. ``keep`` says the weight is being trained: a first
    call then chooses by timing a whole training step of the layer (:func:`_measure_training`), with the input's
    gradient if ``with_input_grad``. A ``bias`` of shape (O,) and of the result's
    dtype is added in place (no second output array): chunk by chunk, while each is in cache, where the algorithm
    works in chunks.

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    >>> ca.forward(x, w, ca.geometry(x.shape, w.shape, (1, 1), (0, 0), (1, 1), 1))[0]
    array([[[[4., 4.],
             [4., 4.]]]])
    """
    dtype = np.result_type(x, w)
    if bias is not None and (bias.shape != (geo.O,) or bias.dtype != dtype):
        raise ShapeError(f"conv2d: the bias must have shape ({geo.O},) and dtype {dtype}, got shape {bias.shape} "
                         f"and dtype {bias.dtype}")
    if geo.N == 0:  # an empty batch: nothing to compute, nothing to keep
        return np.zeros((0, geo.O, geo.Ho, geo.Wo), dtype=dtype), None
    if keep and choose("forward", geo, dtype) is None and _finite(x, w, bias):
        name, (out, columns) = _measure_training(x, w, geo, dtype, bias, with_input_grad)
    else:
        name, (out, columns) = _dispatch("forward", (x, w), geo, dtype, keep=keep, bias=bias)
    return out, ((name, columns) if keep and columns is not None else None)


def input_grad(g, w, geo):
    """The adjoint of ``conv2d`` in its input (the transposed convolution of ``g``) by the chosen algorithm.

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> g, w = np.ones((1, 1, 1, 1)), np.arange(4.0).reshape(1, 1, 2, 2)
    >>> ca.input_grad(g, w, ca.geometry((1, 1, 2, 2), w.shape, (1, 1), (0, 0), (1, 1), 1))
    array([[[[0., 1.],
             [2., 3.]]]])
    """
    if geo.N == 0:
        return np.zeros((0, geo.C, geo.H, geo.W), dtype=np.result_type(g, w))
    return _dispatch("input_grad", (g, w), geo, np.result_type(g, w))[1]


class _Stash(threading.local):
    entry = None  # (weakref to g, kept tiles, dw): a weight gradient computed with the input gradient
    bias = None  # (weakref to g, db): a bias gradient computed with the input gradient


_stash = _Stash()


def input_grad_with_kept(g, w, geo, saved, bias=False):
    """The input gradient; when the forward kept Winograd tiles (``saved``) and Winograd is the input gradient's
    algorithm too, the weight gradient for the same ``g`` is computed in the same pass and held until
    :func:`weight_grad` asks for it (by identity of ``g`` and of the tiles; nothing else can match).

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    >>> g = rng.standard_normal((2, 4, 6, 6))
    >>> geo = ca.geometry(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1)
    >>> with ca.use("winograd4"):
    ...     _, saved = ca.forward(x, w, geo, keep=True)
    ...     dx = ca.input_grad_with_kept(g, w, geo, saved)
    ...     dw = ca.weight_grad(x, g, geo, saved=saved)     # computed in the input gradient's pass
    ...     again = ca.weight_grad(x, g, geo, saved=saved)  # asked again: computed anew, the same bits
    >>> bool(np.array_equal(dw, again))
    True
    >>> with ca.use("im2col"):
    ...     bool(np.allclose(dw, ca.weight_grad(x, g, geo), rtol=1e-12, atol=1e-12))
    True
    """
    name, tiles = saved
    _stash.entry = _stash.bias = None  # (what an earlier pass left, maybe for this same g, changed since)
    dtype = np.result_type(g, w)
    chosen = choose("input_grad", geo, dtype)
    if not name.startswith("winograd") or chosen is None or _base(chosen) != _base(name):
        return input_grad(g, w, geo)
    try:  # Winograd checks g and w as it goes (checks_finite)
        results = _run("input_grad", chosen, (g, w), geo, kept=tiles, bias=bias)
    except _NotFinite:
        return _run("input_grad", "im2col", (g, w), geo)
    _stash.entry = (weakref.ref(g), tiles, results[1])
    _stash.bias = (weakref.ref(g), tiles, results[2]) if bias else None
    return results[0]


def bias_grad_for(g, saved=None):
    """The bias gradient (the sum of ``g`` over images and positions) if the input gradient's pass for this very
    ``g`` and the forward that kept ``saved`` (``(algorithm, tiles)``) computed it (:func:`input_grad_with_kept`
    with ``bias``), else None; handed over once.

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> ca.bias_grad_for(np.ones((1, 2, 3, 3))) is None
    True
    """
    entry = _stash.bias
    if entry is None or saved is None or entry[0]() is not g or entry[1] is not saved[1]:
        return None
    _stash.bias = None
    return entry[2]


def bias_grad(g):
    """The bias's gradient: the sum of ``g`` (N, O, Ho, Wo) over images and positions, computed in chunks of images
    on the :func:`threads` and added in order (the same bits for any thread count).

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> ca.bias_grad(np.ones((2, 3, 4, 4)))
    array([32., 32., 32.])
    """
    if g.shape[0] == 0:
        return np.zeros(g.shape[1], dtype=g.dtype)
    parts = _parallel(lambda bounds: g[bounds[0]:bounds[1]].sum(axis=(0, 2, 3)), _chunks(g.shape[0], g[0].nbytes),
                      blas=False)
    return _total(parts)


def weight_grad(x, g, geo, saved=None):
    """The adjoint of ``conv2d`` in its weight. With ``saved`` (``(algorithm, columns)`` from :func:`forward`)
    that algorithm runs on those columns; otherwise the chosen one.

    >>> import numpy as np
    >>> from nablab.nn import conv_algorithms as ca
    >>> x, g = np.arange(4.0).reshape(1, 1, 2, 2), np.ones((1, 1, 1, 1))
    >>> ca.weight_grad(x, g, ca.geometry(x.shape, (1, 1, 2, 2), (1, 1), (0, 0), (1, 1), 1))
    array([[[[0., 1.],
             [2., 3.]]]])
    """
    if geo.N == 0:  # the sum over no images
        return np.zeros((geo.O, geo.Cg, geo.kh, geo.kw), dtype=np.result_type(x, g))
    if saved is not None:
        entry = _stash.entry
        if entry is not None and entry[0]() is g and entry[1] is saved[1]:
            _stash.entry = None
            key = ("weight_grad", _base(saved[0]))
            _calls[key] = _calls.get(key, 0) + 1
            return entry[2]
        return _weight_grad_from_kept(x, g, geo, *saved)
    return _dispatch("weight_grad", (x, g), geo, np.result_type(x, g))[1]


# --------------------------------------------------------------------------- columns kept for the weight gradient

_kept: dict = {}


def keep_for(out, x, name, columns):
    """Tie ``columns`` (computed by algorithm ``name`` from ``x``) to the forward's output array ``out``.

    They live as long as ``out`` does (the graph holds it) and are dropped with it.
    """
    key = id(out)
    _kept[key] = (x, name, columns)
    weakref.finalize(out, _kept.pop, key, None)


def kept_for(out, x):
    """``(name, columns)`` kept for the output ``out`` if they were computed from this very ``x``, else None."""
    if not isinstance(out, np.ndarray):
        return None
    entry = _kept.get(id(out))
    if entry is None or entry[0] is not x:
        return None
    return entry[1], entry[2]


def kept_bytes():
    """Bytes held by kept columns right now (for memory accounting).

    >>> from nablab.nn import conv_algorithms as ca
    >>> ca.kept_bytes() >= 0
    True
    """
    return sum(columns.nbytes for _, _, columns in _kept.values())
