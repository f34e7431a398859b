"""Differentiable NumPy: ``import nablab.numpy as np`` and write ordinary NumPy code.

Inside a function given to ``nablab.grad`` (or any transform) the arrays are
traced; every function here records itself with its derivative rules, or, if
nablab cannot differentiate it, raises an error naming it.  Nothing returns a
number silently stripped of its derivative.  Constants, dtypes and
``nablab.numpy.random`` are NumPy's own.

>>> import nablab, nablab.numpy as np
>>> nablab.grad(lambda x: np.sum(np.tanh(x) ** 2))(np.array([0.0, 1.0]))
array([0.        , 0.63970001])
>>> nablab.grad(lambda a: np.sum(np.linspace(a, 1.0, 5)))(0.0)
np.float64(2.5)

The families, each with its rules beside its primitives: :mod:`~nablab.numpy.ufuncs`
(elementwise, complex parts), :mod:`~nablab.numpy.reductions` (sums, products,
extremes, nan-reductions), :mod:`~nablab.numpy.statistics` (median, quantiles,
cov), :mod:`~nablab.numpy.shape` (reshaping, assembly, ``array``),
:mod:`~nablab.numpy.rearrange` (split, flip, roll, repeat, tile),
:mod:`~nablab.numpy.indexing` (take, sort, diagonals, triangles, ``r_``),
:mod:`~nablab.numpy.grids` (full, linspace, meshgrid, diff, gradient, interp),
:mod:`~nablab.numpy.products` (einsum, tensordot, kron, cross),
:mod:`~nablab.numpy.polynomials` (convolve, correlate, polyval, vecdot),
:mod:`~nablab.numpy.linalg`, :mod:`~nablab.numpy.fft`.
"""

from __future__ import annotations

import numpy as _np

from nablab.autodiff import core as _core
from nablab.autodiff import dispatch as _dispatch
from nablab.numpy import _namespace
from nablab.numpy import fft, linalg  # noqa: F401
from nablab.numpy import grids as _grids
from nablab.numpy import indexing as _indexing
from nablab.numpy import statistics as _statistics
from nablab.numpy import polynomials as _polynomials
from nablab.numpy import products as _products
from nablab.numpy import rearrange as _rearrange
from nablab.numpy import reductions as _reductions
from nablab.numpy import shape as _shape
from nablab.numpy import ufuncs as _ufuncs

__version__ = _np.__version__

_FAMILIES = (_ufuncs, _reductions, _shape, _rearrange, _products, _indexing, _grids, _statistics,
             _polynomials)
_implemented = {}
for _family in _FAMILIES:
    for _name in _family.__all__:
        _implemented[_name] = getattr(_family, _name)

# NumPy's lazily loaded submodules (testing, f2py, ma, ...) stay unloaded until asked for:
# importing them all cost more than the rest of ``import nablab`` together.
_LAZY = set(_namespace.fill(globals(), _np, _implemented, defer_lazy=True)) | {"random"}
_namespace.fill(vars(linalg), _np.linalg, {n: getattr(linalg, n) for n in linalg.__all__},
                prefix="numpy.linalg")
_namespace.fill(vars(fft), _np.fft, {n: getattr(fft, n) for n in fft.__all__}, prefix="numpy.fft")
linalg = linalg  # the module, not numpy.linalg (fill left it alone: it was already ours)
fft = fft
# ufunc.reduce / .accumulate with NumPy's signatures (axis=0 by default, unlike np.sum).
for (_ufunc, _method), _ours in _reductions.UFUNC_METHODS.items():
    _namespace.register_ufunc_method(_ufunc, _method, _ours)


def _astype_method(self, dtype, *args, **kwargs):
    return _ufuncs._astype_entry(self, dtype)


# What the engine's core and the Tensor methods reach through late binding.
for _name in _core.ARRAY_METHODS + (
    "add", "subtract", "multiply", "divide", "floor_divide", "mod", "power", "matmul",
    "negative", "abs", "getitem", "transpose", "swapaxes", "real", "imag", "reshape", "ravel",
    "broadcast_to", "array", "compress",
):
    if _name in globals() and not _name.startswith("_"):
        setattr(_core._ops, _name, globals()[_name])
_core._ops.getitem = _shape.getitem
# The operators bind these primitives directly (one call less per operator on the hot path).
for _name in ("add", "subtract", "multiply", "divide", "power", "negative"):
    _prim = getattr(_ufuncs, _name)
    if not isinstance(_prim, _core.Primitive):
        raise TypeError(f"nablab.numpy.ufuncs.{_name} must be a primitive: Tensor's operators bind it")
    setattr(_core._ops, f"{_name}_p", _prim)
_core._ops.astype = _astype_method
for _name in ("array_ufunc", "array_function", "is_traced", "traced_value_error",
              "holds_traced", "unbox_all"):
    setattr(_core._ops, _name, getattr(_dispatch, _name))


def __getattr__(name):
    """NumPy's lazily loaded submodules (and ``random``, NumPy's own), imported on first use."""
    if name == "random":
        import importlib

        return importlib.import_module("nablab.numpy.random")
    if name in _LAZY:
        value = getattr(_np, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nablab.numpy' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)
