"""``numpy.fft`` with derivative rules.

Three one-axis primitives carry all the calculus: the complex transform
(``fft``/``ifft``), the real-to-half-spectrum transform (``rfft``) and its
inverse (``irfft``).  The 2-D and n-D transforms are sequences of them along
each axis, in NumPy's own order, so repeated axes work too; ``hfft``/``ihfft``
are ``irfft``/``rfft`` with a conjugate and the opposite normalisation, as in
NumPy.

Every transform is linear, so a JVP is the transform of the tangent and a VJP
is the transpose applied to the cotangent, without conjugation (HIPS
autograd's convention, see :mod:`nablab.numpy.ufuncs`):

- the DFT matrix is symmetric, so ``fft``'s VJP is ``fft`` itself (same
  ``n`` and ``norm``), then cropped or zero-padded back to the input length;
- ``rfft`` keeps only the first ``n // 2 + 1`` outputs of a real input; its
  VJP is ``Re(F^T h)`` for the zero-extended cotangent ``h``, which equals
  ``irfft`` of ``conj(h)`` with every bin but DC and Nyquist halved
  (``irfft`` counts those twice) under the opposite normalisation;
- ``irfft`` reads only the real part of the DC bin (and of the Nyquist bin for
  even ``n``); its VJP is ``conj(rfft(g))`` with every other bin doubled, so
  under the pairing ``Re sum(u * J v)`` the imaginary parts it ignores get
  exactly zero.

Each rule is written with these primitives, so derivatives nest to any order.
``fftfreq`` and ``rfftfreq`` are constants in ``n`` (and ``1 / d`` times a
constant in ``d``, which may be traced).
"""

from __future__ import annotations

import warnings

import numpy as np

from nablab.autodiff.core import primitive, raw_value_of, shape_of, value_of
from nablab.autodiff.dispatch import holds_traced, unbox_all
from nablab.numpy.shape import as_array, getitem, pad
from nablab.numpy.ufuncs import _is_complex, _match_complex, conj, real_part

_NORMS = (None, "backward", "ortho", "forward")
_SWAP = {None: "forward", "backward": "forward", "ortho": "ortho", "forward": "backward"}


def _check_norm(norm):
    if norm not in _NORMS:
        raise ValueError(f'fft: invalid norm {norm!r}; use "backward", "ortho" or "forward"')
    return norm


def _axis_index(axis, ndim, name):
    try:
        axis = int(axis)
    except TypeError:
        raise TypeError(f"{name}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim


def _resize(x, length, axis):
    """``x`` cropped or zero-padded at the end of ``axis`` to ``length`` (differentiably)."""
    shape = shape_of(x)
    have = shape[axis]
    if have == length:
        return x
    if have > length:
        return getitem(x, (slice(None),) * axis + (slice(0, length),))
    widths = [(0, 0)] * len(shape)
    widths[axis] = (0, length - have)
    return pad(x, widths)


def _half_weights(n, axis, ndim, dtype, inner):
    """Weights along ``axis`` for the ``n // 2 + 1`` bins of a real transform of length ``n``.

    DC and (for even ``n``) Nyquist get 1; every other bin gets ``inner``.
    """
    w = np.full(n // 2 + 1, inner, dtype=dtype)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w.reshape((-1,) + (1,) * (ndim - axis - 1))


def _real_dtype(x):
    return np.empty(0, dtype=np.asarray(raw_value_of(x)).dtype).real.dtype


# --------------------------------------------------------------------------- one-axis primitives


def _c2c_value(a, n, axis, norm, forward):
    return (np.fft.fft if forward else np.fft.ifft)(a, n, axis, norm)


def _c2c_vjp(g, ans, a, n, axis, norm, forward):
    # F_n is symmetric; the transpose of cropping/padding the input is padding/cropping back.
    back = _resize(_c2c(g, n, axis, norm, forward), shape_of(a)[axis], axis)
    return _match_complex(back, a)


_c2c = primitive(_c2c_value, name="fft", saves_values=False)
_c2c.defvjp(_c2c_vjp)
_c2c.defjvp(lambda t, ans, a, n, axis, norm, forward: _c2c(t, n, axis, norm, forward))


def _r2c_value(a, n, axis, norm):
    return np.fft.rfft(a, n, axis, norm)


def _r2c_vjp(g, ans, a, n, axis, norm):
    # Re(F^T h) with h = g zero-extended to n bins: irfft of conj(g), the inner bins halved.
    ndim = len(shape_of(g))
    weights = _half_weights(n, axis, ndim, _real_dtype(g), 0.5)
    back = _c2r(conj(g) * weights, n, axis, _SWAP[norm])
    return _resize(back, shape_of(a)[axis], axis)


_r2c = primitive(_r2c_value, name="rfft", saves_values=False)
_r2c.defvjp(_r2c_vjp)
_r2c.defjvp(lambda t, ans, a, n, axis, norm: _r2c(t, n, axis, norm))


def _c2r_value(a, n, axis, norm):
    return np.fft.irfft(a, n, axis, norm)


def _c2r_vjp(g, ans, a, n, axis, norm):
    # The output is real: only Re(g) pairs with it.  The bins irfft counts twice get twice the
    # weight; conj turns rfft's e^{-i..} into the e^{+i..} of df/dRe - i df/dIm.
    if _is_complex(g):
        g = real_part(g)
    ndim = len(shape_of(g))
    weights = _half_weights(n, axis, ndim, _real_dtype(g), 2.0)
    back = conj(_r2c(g, n, axis, _SWAP[norm])) * weights
    return _match_complex(_resize(back, shape_of(a)[axis], axis), a)


_c2r = primitive(_c2r_value, name="irfft", saves_values=False)
_c2r.defvjp(_c2r_vjp)
_c2r.defjvp(lambda t, ans, a, n, axis, norm: _c2r(t, n, axis, norm))


# --------------------------------------------------------------------------- public 1-D transforms


def _no_out(name, out, *arrays):
    if out is not None and holds_traced(list(arrays)):
        raise TypeError(f"{name}(..., out=...) is not supported on traced values; use the result")


def _prepare(name, a, axis, norm):
    a = as_array(a)
    if np.asarray(raw_value_of(a)).dtype.kind not in "biufc":
        raise TypeError(f"{name}: expected a numeric array, got dtype {np.asarray(raw_value_of(a)).dtype}")
    ndim = len(shape_of(a))
    if ndim == 0:
        raise ValueError(f"{name}: needs an array of at least one dimension, got a scalar")
    return a, _axis_index(axis, ndim, name), _check_norm(norm)


def _length(name, n, default):
    n = default if n is None else n
    if int(n) != n or n < 1:
        raise ValueError(f"{name}: invalid number of data points n={n!r}; it must be a positive integer")
    return int(n)


def fft(a, n=None, axis=-1, norm=None, out=None):
    """One-dimensional discrete Fourier transform (``np.fft.fft``)."""
    _no_out("fft", out, a)
    if out is not None:
        return np.fft.fft(unbox_all(a), n, axis, norm, out=out)
    a, axis, norm = _prepare("fft", a, axis, norm)
    return _c2c(a, _length("fft", n, shape_of(a)[axis]), axis, norm, True)


def ifft(a, n=None, axis=-1, norm=None, out=None):
    """One-dimensional inverse discrete Fourier transform (``np.fft.ifft``)."""
    _no_out("ifft", out, a)
    if out is not None:
        return np.fft.ifft(unbox_all(a), n, axis, norm, out=out)
    a, axis, norm = _prepare("ifft", a, axis, norm)
    return _c2c(a, _length("ifft", n, shape_of(a)[axis]), axis, norm, False)


def rfft(a, n=None, axis=-1, norm=None, out=None):
    """Transform of a real input, the ``n // 2 + 1`` non-negative frequencies (``np.fft.rfft``)."""
    _no_out("rfft", out, a)
    if out is not None:
        return np.fft.rfft(unbox_all(a), n, axis, norm, out=out)
    a, axis, norm = _prepare("rfft", a, axis, norm)
    if _is_complex(a):
        raise TypeError("rfft: the input must be real; got a complex array (use fft)")
    return _r2c(a, _length("rfft", n, shape_of(a)[axis]), axis, norm)


def irfft(a, n=None, axis=-1, norm=None, out=None):
    """Inverse of ``rfft``: a real signal of length ``n`` (default ``2 (m - 1)``) (``np.fft.irfft``)."""
    _no_out("irfft", out, a)
    if out is not None:
        return np.fft.irfft(unbox_all(a), n, axis, norm, out=out)
    a, axis, norm = _prepare("irfft", a, axis, norm)
    return _c2r(a, _length("irfft", n, 2 * (shape_of(a)[axis] - 1)), axis, norm)


def hfft(a, n=None, axis=-1, norm=None, out=None):
    """Transform of a Hermitian-symmetric signal given by its first half: a real spectrum (``np.fft.hfft``)."""
    _no_out("hfft", out, a)
    if out is not None:
        return np.fft.hfft(unbox_all(a), n, axis, norm, out=out)
    a, axis, norm = _prepare("hfft", a, axis, norm)
    n = _length("hfft", n, 2 * (shape_of(a)[axis] - 1))
    return _c2r(conj(a), n, axis, _SWAP[norm])


def ihfft(a, n=None, axis=-1, norm=None, out=None):
    """Inverse of ``hfft``: the first half of a Hermitian spectrum from a real signal (``np.fft.ihfft``)."""
    _no_out("ihfft", out, a)
    if out is not None:
        return np.fft.ihfft(unbox_all(a), n, axis, norm, out=out)
    a, axis, norm = _prepare("ihfft", a, axis, norm)
    if _is_complex(a):
        raise TypeError("ihfft: the input must be real; got a complex array")
    return conj(_r2c(a, _length("ihfft", n, shape_of(a)[axis]), axis, _SWAP[norm]))


# --------------------------------------------------------------------------- n-D transforms


def _nd_args(name, a, s, axes, inverse_real=False):
    """Lengths and non-negative axes for an n-D transform, read as NumPy reads them."""
    shape = shape_of(a)
    ndim = len(shape)
    if axes is not None:
        axes = [_axis_index(ax, ndim, name) for ax in np.atleast_1d(np.asarray(axes, dtype=object))]
    if s is None:
        if axes is None:
            axes = list(range(ndim))
        s = [shape[ax] for ax in axes]
        if inverse_real and axes:
            s[-1] = 2 * (shape[axes[-1]] - 1)
    else:
        s = list(np.atleast_1d(np.asarray(s, dtype=object)))
        if axes is None:
            warnings.warn(
                f"{name}: `axes` should not be None when `s` is given (deprecated in NumPy 2.0); "
                "pass axes=[0, ..., k-1] to keep the current behaviour",
                DeprecationWarning, stacklevel=3,
            )
            if len(s) > ndim:
                raise ValueError(f"{name}: s={s} has more entries than the array has dimensions ({ndim})")
            axes = list(range(ndim - len(s), ndim))
        if len(s) != len(axes):
            raise ValueError(f"{name}: s={s} and axes={axes} have different lengths")
        if None in s:
            warnings.warn(f"{name}: None in `s` is deprecated in NumPy 2.0", DeprecationWarning, stacklevel=3)
            defaults = [shape[ax] for ax in axes]
            if inverse_real:
                defaults[-1] = 2 * (shape[axes[-1]] - 1)
            s = [d if v is None else v for v, d in zip(s, defaults)]
        s = [shape[ax] if v == -1 else v for v, ax in zip(s, axes)]
    return [_length(name, v, None) for v in s], axes


def _fftn_generic(name, inverse, a, s, axes, norm, out):
    _no_out(name, out, a)
    if out is not None:
        return getattr(np.fft, name)(unbox_all(a), s, axes, norm, out=out)
    a = as_array(a)
    _check_norm(norm)
    s, axes = _nd_args(name, a, s, axes)
    for length, axis in reversed(list(zip(s, axes))):  # NumPy's order (it matters for repeated axes)
        a = _c2c(a, length, axis, norm, not inverse)
    return a


def fftn(a, s=None, axes=None, norm=None, out=None):
    """N-dimensional discrete Fourier transform (``np.fft.fftn``)."""
    return _fftn_generic("fftn", False, a, s, axes, norm, out)


def ifftn(a, s=None, axes=None, norm=None, out=None):
    """N-dimensional inverse discrete Fourier transform (``np.fft.ifftn``)."""
    return _fftn_generic("ifftn", True, a, s, axes, norm, out)


def fft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    """Two-dimensional discrete Fourier transform (``np.fft.fft2``)."""
    return _fftn_generic("fft2", False, a, s, axes, norm, out)


def ifft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    """Two-dimensional inverse discrete Fourier transform (``np.fft.ifft2``)."""
    return _fftn_generic("ifft2", True, a, s, axes, norm, out)


def rfftn(a, s=None, axes=None, norm=None, out=None):
    """N-dimensional transform of a real input, halved along the last axis (``np.fft.rfftn``)."""
    _no_out("rfftn", out, a)
    if out is not None:
        return np.fft.rfftn(unbox_all(a), s, axes, norm, out=out)
    a = as_array(a)
    if _is_complex(a):
        raise TypeError("rfftn: the input must be real; got a complex array (use fftn)")
    _check_norm(norm)
    s, axes = _nd_args("rfftn", a, s, axes)
    if not axes:
        raise ValueError("rfftn: needs at least one axis to transform")
    a = _r2c(a, s[-1], axes[-1], norm)
    for length, axis in reversed(list(zip(s[:-1], axes[:-1]))):
        a = _c2c(a, length, axis, norm, True)
    return a


def irfftn(a, s=None, axes=None, norm=None, out=None):
    """Inverse of ``rfftn``: a real array (``np.fft.irfftn``)."""
    _no_out("irfftn", out, a)
    if out is not None:
        return np.fft.irfftn(unbox_all(a), s, axes, norm, out=out)
    a = as_array(a)
    _check_norm(norm)
    s, axes = _nd_args("irfftn", a, s, axes, inverse_real=True)
    if not axes:
        raise ValueError("irfftn: needs at least one axis to transform")
    for length, axis in zip(s[:-1], axes[:-1]):
        a = _c2c(a, length, axis, norm, False)
    return _c2r(a, s[-1], axes[-1], norm)


def rfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    """Two-dimensional ``rfftn`` (``np.fft.rfft2``)."""
    return rfftn(a, s, axes, norm, out)


def irfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    """Two-dimensional ``irfftn`` (``np.fft.irfft2``)."""
    return irfftn(a, s, axes, norm, out)


# --------------------------------------------------------------------------- shifts and frequencies


def _shift_value(x, axes, inverse):
    return (np.fft.ifftshift if inverse else np.fft.fftshift)(x, axes)


# A shift is a permutation: its transpose is the opposite shift.
_shift = primitive(_shift_value, name="fftshift", saves_values=False, lists_are_arrays=False)
_shift.defvjp(lambda g, ans, x, axes, inverse: _match_complex(_shift(g, axes, not inverse), x))
_shift.defjvp(lambda t, ans, x, axes, inverse: _shift(t, axes, inverse))


def _shift_axes(name, x, axes):
    ndim = len(shape_of(x))
    if axes is None:
        return None
    if isinstance(axes, (int, np.integer)):
        return _axis_index(axes, ndim, name)
    return tuple(_axis_index(ax, ndim, name) for ax in axes)


def fftshift(x, axes=None):
    """Move the zero frequency to the centre (``np.fft.fftshift``)."""
    x = as_array(x)
    return _shift(x, _shift_axes("fftshift", x, axes), False)


def ifftshift(x, axes=None):
    """Inverse of ``fftshift`` (``np.fft.ifftshift``)."""
    x = as_array(x)
    return _shift(x, _shift_axes("ifftshift", x, axes), True)


def _frequencies(name, numpy_fn, n, d, device):
    if holds_traced([n]):
        raise TypeError(f"{name}: n is an integer count and cannot be traced; pass n.item()")
    if not holds_traced([d]):
        return numpy_fn(n, unbox_all(d), device=device)
    # numpy_fn(n, d) is (integers) * (1 / (n d)): only the scale depends on d.
    n = int(value_of(n))
    k = np.arange(n // 2 + 1, dtype=np.float64)
    if numpy_fn is np.fft.fftfreq:
        k = np.concatenate([np.arange((n - 1) // 2 + 1), np.arange(-(n // 2), 0)]).astype(np.float64)
    return k * (1.0 / (n * d))


def fftfreq(n, d=1.0, device=None):
    """Sample frequencies of ``fft`` (``np.fft.fftfreq``); a traced spacing ``d`` is differentiated."""
    return _frequencies("fftfreq", np.fft.fftfreq, n, d, device)


def rfftfreq(n, d=1.0, device=None):
    """Sample frequencies of ``rfft`` (``np.fft.rfftfreq``); a traced spacing ``d`` is differentiated."""
    return _frequencies("rfftfreq", np.fft.rfftfreq, n, d, device)


__all__ = [
    "fft", "ifft", "rfft", "irfft", "hfft", "ihfft",
    "fftn", "ifftn", "fft2", "ifft2", "rfftn", "irfftn", "rfft2", "irfft2",
    "fftshift", "ifftshift", "fftfreq", "rfftfreq",
]
