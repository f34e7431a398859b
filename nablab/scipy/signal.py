"""``scipy.signal`` with derivative rules (functions without rules refuse traced values by name).

``convolve`` (and ``correlate``, a convolution with the second input reversed
and conjugated) are bilinear, so both inputs are differentiable:

- the JVP is ``convolve(tA, B) + convolve(A, tB)``;
- the VJP of ``A`` places the output cotangent ``g`` in the "full" output
  (zeros where the mode cropped it) and correlates it with ``B``, which is a
  "valid" convolution with ``B`` reversed; likewise for ``B``.  No
  conjugation enters (HIPS autograd's convention).

Since the VJP is again a convolution, derivatives nest to any order.

Beyond SciPy's signature, ``convolve`` takes HIPS autograd's ``axes`` and
``dot_axes`` keywords: ``axes=(axes_of_A, axes_of_B)`` pairs the axes to
convolve, ``dot_axes`` pairs axes to sum over (a tensor product), and every
other axis is kept; the output axes are A's kept axes, then B's, then the
convolved ones.  That general form is computed directly (one ``tensordot`` per
window offset or per output position, whatever ``method`` says); SciPy's own form uses SciPy.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as _scipy_signal

from nablab.autodiff.core import primitive, shape_of, value_of
from nablab.numpy import _namespace
from nablab.numpy.shape import as_array, getitem, pad, transpose
from nablab.numpy.ufuncs import _is_complex, _match_complex, conj

_MODES = ("full", "valid", "same")
_METHODS = ("auto", "direct", "fft")


class _Spec(tuple):
    """How two arrays are convolved: ``(conv_a, conv_b, dot_a, dot_b, mode, method)``.

    Axes are non-negative; ``ignore_a``/``ignore_b`` are the remaining axes in order.
    """

    __slots__ = ()

    def __new__(cls, conv_a, conv_b, dot_a, dot_b, mode, method):
        return super().__new__(cls, (tuple(conv_a), tuple(conv_b), tuple(dot_a), tuple(dot_b), mode, method))

    conv_a = property(lambda self: self[0])
    conv_b = property(lambda self: self[1])
    dot_a = property(lambda self: self[2])
    dot_b = property(lambda self: self[3])
    mode = property(lambda self: self[4])
    method = property(lambda self: self[5])


def _ignored(ndim, *used):
    taken = set().union(*used)
    return tuple(ax for ax in range(ndim) if ax not in taken)


def _geometry(shape_a, shape_b, spec):
    """Per convolved axis: the output length and its offset in the "full" output."""
    lengths, offsets = [], []
    for ax_a, ax_b in zip(spec.conv_a, spec.conv_b):
        na, nb = shape_a[ax_a], shape_b[ax_b]
        if spec.mode == "full":
            lengths.append(na + nb - 1)
            offsets.append(0)
        elif spec.mode == "same":
            lengths.append(na)
            offsets.append((nb - 1) // 2)
        else:  # valid: where one input lies wholly inside the other
            lengths.append(abs(na - nb) + 1)
            offsets.append(min(na, nb) - 1)
    return lengths, offsets


def _is_plain(nd_a, nd_b, spec):
    everything = tuple(range(nd_a))
    return (nd_a == nd_b and not spec.dot_a and spec.conv_a == everything
            and spec.conv_b == everything)


def _direct(a, b, spec):
    """The general convolution, summed directly: ``out[k] = sum_j x[k + j] w_reversed[j]``.

    ``w`` is the input with the smaller convolved extent, ``x`` the other one cut (or
    zero-padded) to the region the output reads.  One loop runs over the window offsets ``j``
    or over the output positions ``k``, whichever is shorter, each step one ``tensordot`` over
    the dot axes (and, looping over ``k``, the window), so no windowed copy of ``x`` is built.
    """
    a, b = np.asarray(a), np.asarray(b)
    lengths, offsets = _geometry(a.shape, b.shape, spec)
    a_is_window = np.prod([a.shape[i] for i in spec.conv_a]) < np.prod([b.shape[i] for i in spec.conv_b])
    # Each axis is labelled ("a" or "b", axis) for kept axes and ("c", i) for convolved pair i.
    if a_is_window:
        x, w, names = b, a, ("b", "a")
        conv_x, conv_w, dot_x, dot_w = spec.conv_b, spec.conv_a, spec.dot_b, spec.dot_a
    else:
        x, w, names = a, b, ("a", "b")
        conv_x, conv_w, dot_x, dot_w = spec.conv_a, spec.conv_b, spec.dot_a, spec.dot_b
    windows = [w.shape[ax] for ax in conv_w]

    # x[o - (n_w - 1) : o + L] along each convolved axis, zeros outside x.
    widths, crop = [(0, 0)] * x.ndim, [slice(None)] * x.ndim
    for ax, n, length, offset in zip(conv_x, windows, lengths, offsets):
        start, stop = offset - (n - 1), offset + length
        lo, hi = max(0, -start), max(0, stop - x.shape[ax])
        widths[ax], crop[ax] = (lo, hi), slice(start + lo, stop + lo)
    x = np.pad(x, widths)[tuple(crop)]
    w = w[tuple(slice(None, None, -1) if ax in conv_w else slice(None) for ax in range(w.ndim))]

    def label(name, ax, convs):
        return ("c", convs.index(ax)) if ax in convs else (name, ax)

    if np.prod(windows) <= np.prod(lengths):
        kept_w = [ax for ax in range(w.ndim) if ax not in conv_w]
        dots_in_wj = [kept_w.index(ax) for ax in dot_w]
        acc = None
        for j in np.ndindex(*windows):
            xs = [slice(None)] * x.ndim
            wj = [slice(None)] * w.ndim
            for i, (ax_x, ax_w) in enumerate(zip(conv_x, conv_w)):
                xs[ax_x] = slice(j[i], j[i] + lengths[i])
                wj[ax_w] = j[i]
            term = np.tensordot(x[tuple(xs)], w[tuple(wj)], axes=(list(dot_x), dots_in_wj))
            if acc is None:
                acc = np.array(term, copy=True)
            else:
                acc += term
        have = [label(names[0], ax, conv_x) for ax in range(x.ndim) if ax not in dot_x]
        have += [(names[1], ax) for ax in kept_w if ax not in dot_w]
    else:
        kept_x = [ax for ax in range(x.ndim) if ax not in conv_x and ax not in dot_x]
        kept_w = [ax for ax in range(w.ndim) if ax not in conv_w and ax not in dot_w]
        acc = np.empty([x.shape[ax] for ax in kept_x] + [w.shape[ax] for ax in kept_w] + lengths,
                       dtype=np.result_type(x, w))
        for k in np.ndindex(*lengths):
            xs = [slice(None)] * x.ndim
            for i, ax in enumerate(conv_x):
                xs[ax] = slice(k[i], k[i] + windows[i])
            acc[(Ellipsis,) + k] = np.tensordot(x[tuple(xs)], w, axes=(list(dot_x) + list(conv_x),
                                                                       list(dot_w) + list(conv_w)))
        have = [(names[0], ax) for ax in kept_x] + [(names[1], ax) for ax in kept_w]
        have += [("c", i) for i in range(len(lengths))]
    want = [("a", ax) for ax in _ignored(a.ndim, spec.conv_a, spec.dot_a)]
    want += [("b", ax) for ax in _ignored(b.ndim, spec.conv_b, spec.dot_b)]
    want += [("c", i) for i in range(len(lengths))]
    return np.transpose(acc, [have.index(lab) for lab in want])


def _convolve_value(a, b, spec):
    if _is_plain(np.ndim(a), np.ndim(b), spec):
        return _scipy_signal.convolve(a, b, spec.mode, spec.method)
    return _direct(a, b, spec)


def _flip(x, axes):
    ndim = len(shape_of(x))
    return getitem(x, tuple(slice(None, None, -1) if ax in axes else slice(None) for ax in range(ndim)))


def _vjp(which):
    """The cotangent of argument ``which`` (0 for A, 1 for B): a valid convolution of ``g``."""

    def rule(g, ans, a, b, spec):
        shape_a, shape_b = shape_of(a), shape_of(b)
        me, other = (a, b) if which == 0 else (b, a)
        nd_a, nd_b = len(shape_a), len(shape_b)
        ignore_a = _ignored(nd_a, spec.conv_a, spec.dot_a)
        ignore_b = _ignored(nd_b, spec.conv_b, spec.dot_b)
        lengths, offsets = _geometry(shape_a, shape_b, spec)
        n_ia, n_ib, k = len(ignore_a), len(ignore_b), len(spec.conv_a)
        g_conv = tuple(range(n_ia + n_ib, n_ia + n_ib + k))
        # g sits at `offset` inside the full output; the rest of the full output got no cotangent.
        widths = [(0, 0)] * (n_ia + n_ib + k)
        for i, pos in enumerate(g_conv):
            full = shape_a[spec.conv_a[i]] + shape_b[spec.conv_b[i]] - 1
            widths[pos] = (offsets[i], full - lengths[i] - offsets[i])
        g_full = pad(g, widths) if any(w != (0, 0) for w in widths) else g
        if which == 0:
            my_ignore, my_dot, my_conv = ignore_a, spec.dot_a, spec.conv_a
            o_ignore, o_dot, o_conv = ignore_b, spec.dot_b, spec.conv_b
            g_other = tuple(range(n_ia, n_ia + n_ib))
        else:
            my_ignore, my_dot, my_conv = ignore_b, spec.dot_b, spec.conv_b
            o_ignore, o_dot, o_conv = ignore_a, spec.dot_a, spec.conv_a
            g_other = tuple(range(n_ia))
        # Sum over the other input's kept axes (in g and in it) and over the convolved offsets.
        inner = _Spec(g_conv, o_conv, g_other, o_ignore, "valid", spec.method)
        result = _convolve_p(g_full, _flip(other, o_conv), inner)
        # result axes: my kept axes, then the other's dot axes (ascending), then my convolved ones.
        mine = list(my_ignore) + [my_dot[o_dot.index(ax)] for ax in sorted(o_dot)] + list(my_conv)
        order = tuple(int(i) for i in np.argsort(mine))
        if order != tuple(range(len(order))):
            result = transpose(result, order)
        return _match_complex(result, me)

    return rule


_convolve_p = primitive(_convolve_value, name="convolve")
_convolve_p.defvjp(_vjp(0), _vjp(1))
_convolve_p.defjvp(
    lambda t, ans, a, b, spec: _convolve_p(t, b, spec),
    lambda t, ans, a, b, spec: _convolve_p(a, t, spec),
)


def _axis_list(name, what, axes, ndim):
    try:
        axes = [int(ax) for ax in axes]
    except TypeError:
        raise TypeError(f"{name}: {what} must be a sequence of integers, got {axes!r}") from None
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{name}: axis {ax} in {what} is out of bounds for an array of dimension {ndim}")
    return [ax % ndim for ax in axes]


def _pair(name, what, value):
    try:
        first, second = value
    except (TypeError, ValueError):
        raise TypeError(f"{name}: {what} must be a pair (axes of in1, axes of in2), got {value!r}") from None
    return first, second


def _make_spec(name, a, b, mode, method, axes, dot_axes):
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"{name}: mode must be 'full', 'valid' or 'same', got {mode!r} "
                         "(pass axes=... and dot_axes=... by keyword)")
    if method not in _METHODS:
        raise ValueError(f"{name}: method must be 'auto', 'direct' or 'fft', got {method!r}")
    shape_a, shape_b = shape_of(a), shape_of(b)
    nd_a, nd_b = len(shape_a), len(shape_b)
    for arr, shape in ((a, shape_a), (b, shape_b)):
        if np.asarray(value_of(arr)).dtype.kind not in "biufc":
            raise TypeError(f"{name}: expected numeric arrays, got dtype {np.asarray(value_of(arr)).dtype}")
        if 0 in shape:
            raise ValueError(f"{name}: inputs must not be empty; got shapes {shape_a} and {shape_b}")
    if axes is None and dot_axes is None:
        if nd_a != nd_b:
            raise ValueError(f"{name}: in1 and in2 must have the same number of dimensions; "
                             f"got shapes {shape_a} and {shape_b} (or pass axes=...)")
        conv_a = conv_b = list(range(nd_a))
        dot_a = dot_b = []
    else:
        dot_a, dot_b = _pair(name, "dot_axes", dot_axes if dot_axes is not None else ((), ()))
        dot_a = _axis_list(name, "dot_axes[0]", dot_a, nd_a)
        dot_b = _axis_list(name, "dot_axes[1]", dot_b, nd_b)
        if axes is None:
            # autograd's default (every axis of in1) would overlap the dot axes: ask instead.
            raise ValueError(f"{name}: dot_axes needs axes=(axes of in1, axes of in2) to convolve along")
        conv_a, conv_b = _pair(name, "axes", axes)
        conv_a = _axis_list(name, "axes[0]", conv_a, nd_a)
        conv_b = _axis_list(name, "axes[1]", conv_b, nd_b)
        if len(conv_a) != len(conv_b):
            raise ValueError(f"{name}: axes pairs {len(conv_a)} axes of in1 with {len(conv_b)} of in2")
        if len(dot_a) != len(dot_b):
            raise ValueError(f"{name}: dot_axes pairs {len(dot_a)} axes of in1 with {len(dot_b)} of in2")
        for label, used in (("in1", conv_a + dot_a), ("in2", conv_b + dot_b)):
            if len(set(used)) != len(used):
                raise ValueError(f"{name}: an axis of {label} appears twice in axes/dot_axes ({used})")
        for i, j in zip(dot_a, dot_b):
            if shape_a[i] != shape_b[j]:
                raise ValueError(f"{name}: dot axis {i} of in1 (length {shape_a[i]}) does not match "
                                 f"axis {j} of in2 (length {shape_b[j]})")
    if mode == "valid":
        a_bigger = all(shape_a[i] >= shape_b[j] for i, j in zip(conv_a, conv_b))
        b_bigger = all(shape_a[i] <= shape_b[j] for i, j in zip(conv_a, conv_b))
        if not (a_bigger or b_bigger):
            raise ValueError(f"{name}: for 'valid' mode one input must be at least as large as the "
                             f"other along every convolved axis; got shapes {shape_a} and {shape_b}")
    return _Spec(conv_a, conv_b, dot_a, dot_b, mode, method)


def convolve(in1, in2, mode="full", method="auto", *, axes=None, dot_axes=None):
    """N-D convolution of ``in1`` and ``in2`` (``scipy.signal.convolve``), both differentiable.

    ``mode``: "full", "valid" (one input inside the other, either may be the
    larger) or "same" (the size of ``in1``, centred).  ``axes`` and
    ``dot_axes`` are HIPS autograd's extension (see the module docstring).
    """
    in1, in2 = as_array(in1), as_array(in2)
    spec = _make_spec("convolve", in1, in2, mode, method, axes, dot_axes)
    return _convolve_p(in1, in2, spec)


def correlate(in1, in2, mode="full", method="auto"):
    """N-D cross-correlation (``scipy.signal.correlate``): ``convolve`` with ``in2`` reversed and conjugated."""
    in1, in2 = as_array(in1), as_array(in2)
    spec = _make_spec("correlate", in1, in2, mode, method, None, None)
    reversed2 = _flip(in2, spec.conv_b)
    return _convolve_p(in1, conj(reversed2) if _is_complex(in2) else reversed2, spec)


__all__: list[str] = ["convolve", "correlate"]

_namespace.fill(globals(), _scipy_signal, {n: globals()[n] for n in __all__}, prefix="scipy.signal")
