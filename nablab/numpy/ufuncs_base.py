"""The elementwise family's foundations: broadcasting, complex bookkeeping, ufunc primitives.

Everything else in the family (:mod:`~nablab.numpy.ufuncs`) is built from
these: :func:`unbroadcast` and :func:`_match_complex` give each argument a
cotangent of its own shape and kind, :class:`UfuncPrimitive` is a primitive that
behaves like the NumPy ufunc it wraps (keywords, ``.outer``, ``.nin``), and
``where``, the complex parts and ``astype`` are the small linear primitives the
other rules lean on.
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff import dispatch
from nablab.autodiff.core import Primitive, Tensor, bind, primitive, raw_value_of, shape_of, value_of
from nablab.autodiff.dispatch import holds_traced, unbox_all
from nablab.numpy.shape import as_array

# --------------------------------------------------------------------------- complex bookkeeping


def _is_complex(x) -> bool:
    """Whether ``x`` (a box, an array or a number) holds complex values; a dtype look, no scan."""
    v = value_of(x)
    dtype = getattr(v, "dtype", None)
    return dtype.kind == "c" if dtype is not None else isinstance(v, complex)


def _real(x):
    return np.real(x)


real_part = primitive(_real, name="real", saves_values=False)


def _imag(x):
    return np.imag(x)


imag_part = primitive(_imag, name="imag", saves_values=False)


def _conj(x):
    return np.conj(x)


conj = primitive(_conj, name="conj", saves_values=False)
conj.__doc__ = "The complex conjugate (the value itself for real input); its VJP conjugates the cotangent."
conjugate = conj


def _match_complex(g, x):
    """``g`` as the cotangent of ``x``: complex-typed if ``x`` is complex, its real part if not."""
    if _is_complex(x):
        return g if _is_complex(g) else g + 0j
    return real_part(g) if _is_complex(g) else g


# real(z) = (z + conj z)/2 and imag(z) = (z - conj z)/2i are real-linear: under autograd's
# pairing Re(ct * v) their VJPs are g and -i g (as complex numbers), and their JVPs real(t), imag(t).
real_part.defvjp(lambda g, ans, x: _match_complex(g, x))
real_part.defjvp(lambda t, ans, x: real_part(t) if _is_complex(t) else t)
imag_part.defvjp(lambda g, ans, x: _match_complex(-1j * g, x))
imag_part.defjvp(lambda t, ans, x: imag_part(t) if _is_complex(t) else t * 0.0)
conj.defvjp(lambda g, ans, x: conj(g))
conj.defjvp(lambda t, ans, x: conj(t))

# --------------------------------------------------------------------------- broadcasting

_reductions = None


def unbroadcast(g, like):
    """Sum ``g`` over the axes broadcasting added to reach it from ``like``'s shape.

    ``like`` is the argument itself (or a shape).  A real argument gets the real
    part of a complex cotangent, as autograd's convention wants.
    """
    if isinstance(like, tuple):
        shape, real = like, False
    else:
        shape, real = shape_of(like), not _is_complex(like)
    if real and _is_complex(g):
        g = real_part(g)
    gshape = shape_of(g)
    if gshape == shape:
        return g
    global _reductions
    if _reductions is None:  # reductions imports this family: bind it on first use
        from nablab.numpy import reductions as _reductions
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1
    )
    if axes:
        g = _reductions.sum(g, axis=axes)
    return _reductions.reshape(g, shape)


def _zeros_cotangent(g, ans, x, *rest, **kwargs):
    """The VJP (or JVP) of an argument the result is piecewise constant in: zeros shaped like ``x``."""
    v = np.asarray(value_of(x))
    return np.zeros(v.shape, dtype=v.dtype if v.dtype.kind in "fc" else np.float64)


# --------------------------------------------------------------------------- ufunc primitives

#: Keywords of a ufunc call that do not change the values computed.
_HARMLESS_KEYWORDS = frozenset({"casting", "order", "subok"})


class UfuncPrimitive(Primitive):
    """A primitive whose forward function is a NumPy ufunc.

    Called without keywords it is an ordinary primitive (nothing is added to
    the per-op cost).  With keywords, constants go to NumPy unchanged (``out=``,
    ``where=``, ``dtype=``... all work); for traced values ``dtype=`` casts the
    arguments first, ``out=`` and ``where=`` are refused by name.  Attributes
    NumPy's ufunc has (``nin``, ``identity``, ``types``) are its, and
    ``.outer``/``.reduce``/``.accumulate`` are nablab's where it has them.
    """

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        if kwargs:
            return _call_with_keywords(self, args, kwargs)
        return bind(self, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") or name in Primitive.__slots__:
            raise AttributeError(name)
        ufunc = self.fn
        if name in ("reduce", "accumulate", "reduceat", "outer", "at"):
            ours = dispatch.UFUNC_METHODS.get((ufunc, name))
            if ours is not None:
                return ours
            return dispatch.unsupported(getattr(ufunc, name), f"numpy.{ufunc.__name__}.{name}")
        return getattr(ufunc, name)


def _call_with_keywords(prim, args, kwargs):
    if not (holds_traced(args) or holds_traced(kwargs)):
        result = prim.fn(*unbox_all(args), **unbox_all(kwargs))
        wrap = "out" not in kwargs and any(isinstance(a, Tensor) for a in args)
        return Tensor(result) if wrap else result
    kwargs = dict(kwargs)
    if kwargs.pop("out", None) is not None:
        raise TypeError(
            f"{prim.name}(..., out=...) on a traced value: writing the result into an existing "
            "array would lose its derivative; use the returned value instead"
        )
    if "where" in kwargs and kwargs.pop("where") is not True:
        raise NotImplementedError(
            f"{prim.name}(..., where=mask) on a traced value: NumPy leaves the masked-out entries "
            f"uninitialised; write nablab.numpy.where(mask, {prim.name}(x), fallback) instead"
        )
    dtype = kwargs.pop("dtype", None)
    unknown = sorted(set(kwargs) - _HARMLESS_KEYWORDS)
    if unknown:
        raise NotImplementedError(f"{prim.name}: keyword(s) {unknown} are not supported on traced values")
    args = tuple(as_array(a) for a in args)
    if dtype is not None:
        args = tuple(_astype_entry(a, dtype) for a in args)
    return bind(prim, args, {})


def _outer(prim):
    def outer(a, b, **kwargs):
        a, b = as_array(a), as_array(b)
        from nablab.numpy.shape import reshape

        expanded = reshape(a, shape_of(a) + (1,) * len(shape_of(b)))
        return prim(expanded, b, **kwargs)

    outer.__name__ = f"{prim.name}.outer"
    outer.__doc__ = f"``numpy.{prim.name}.outer``: {prim.name} of every entry of ``a`` with every entry of ``b``."
    return outer


def ufunc_unary(np_fn, derivative, doc, name=None):
    """A one-argument ufunc primitive with ``f'(x)`` given as ``derivative(ans, x)``.

    Both rules multiply by the derivative without conjugating (autograd's
    convention, right for holomorphic functions).  No unbroadcasting: the
    output has ``x``'s shape, and a real ``x`` has a real output.
    """
    prim = UfuncPrimitive(np_fn, name or np_fn.__name__)
    prim.defvjp(lambda g, ans, x: g * derivative(ans, x))
    prim.defjvp(lambda t, ans, x: t * derivative(ans, x))
    prim.__doc__ = doc
    return prim


def ufunc_binary(np_fn, vjp_x, vjp_y, jvp_x, jvp_y, doc, name=None, saves_values=True):
    """A broadcasting two-argument ufunc primitive; the rules see ``(g or t, ans, x, y)``.

    The VJPs are unbroadcast to each argument (and made real for a real one).
    ``np_fn.outer`` is registered, so ``np.<name>.outer(t, u)`` works on tensors.
    """
    prim = UfuncPrimitive(np_fn, name or np_fn.__name__, saves_values=saves_values)
    prim.defvjp(
        lambda g, ans, x, y: unbroadcast(vjp_x(g, ans, x, y), x),
        lambda g, ans, x, y: unbroadcast(vjp_y(g, ans, x, y), y),
    )
    prim.defjvp(jvp_x, jvp_y)
    prim.__doc__ = doc
    if isinstance(np_fn, np.ufunc):
        dispatch.UFUNC_METHODS.setdefault((np_fn, "outer"), _outer(prim))
    return prim


# --------------------------------------------------------------------------- where


def _where(cond, x, y):
    return np.where(cond, x, y)


_where_p = primitive(_where, name="where", saves_values=False)
_where_p.defvjp(
    None,
    lambda g, ans, c, x, y: unbroadcast(where(c, g, 0.0), x),
    lambda g, ans, c, x, y: unbroadcast(where(c, 0.0, g), y),
)
_where_p.defjvp(
    None,
    lambda t, ans, c, x, y: where(c, t, 0.0),
    lambda t, ans, c, x, y: where(c, 0.0, t),
)


def where(condition, x=None, y=None):
    """``x`` where ``condition`` holds, else ``y``; the condition has no derivative.

    With only ``condition`` it is ``np.nonzero(condition)`` (no derivative).
    """
    if x is None and y is None:
        return np.nonzero(unbox_all(condition))
    if x is None or y is None:
        raise ValueError("where: give both x and y, or neither")
    condition = unbox_all(condition)
    # inside vmap a condition may be batched (a box without derivative): it stays a box
    return _where_p(condition if isinstance(condition, Tensor) else np.asarray(condition), x, y)


# --------------------------------------------------------------------------- astype


def _astype(x, dtype):
    return np.asarray(x).astype(dtype)


astype = primitive(_astype, name="astype", saves_values=False)


def _astype_vjp(g, ans, x, dtype):
    # Back to the argument's own type: complex -> real keeps the real part (autograd's rule).
    g = _match_complex(g, x)
    own = np.asarray(raw_value_of(x)).dtype  # dtypes only: raw_value_of also sees through vmap's boxes
    if own.kind not in "fc" or own == np.asarray(raw_value_of(g)).dtype:
        return g
    return astype(g, own)


astype.defvjp(_astype_vjp)
astype.defjvp(lambda t, ans, x, dtype: astype(t, dtype))


def _astype_entry(x, dtype, *args, **kwargs):
    """``ndarray.astype``: to an integer or boolean type the result is a constant."""
    if np.dtype(dtype).kind in "iub":
        return np.asarray(value_of(x)).astype(dtype)
    return astype(x, np.dtype(dtype))
