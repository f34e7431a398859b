"""Build a drop-in namespace: nablab's functions where they exist, NumPy's names elsewhere.

Every public name of the NumPy module ends up in the target module:

- nablab's implementation, if the family modules define it (registered for
  NumPy's dispatch, so ``np.f(tensor)`` reaches it too);
- a :func:`~nablab.autodiff.dispatch.nondifferentiable` wrapper for functions
  whose result is piecewise constant (``NONDIFFERENTIABLE``);
- an :func:`~nablab.autodiff.dispatch.unsupported` wrapper for every other
  function: NumPy's own for constants, an error naming it for traced values;
- anything else (types, dtypes, constants, submodules) as it is.
"""

from __future__ import annotations

import types

import numpy as np

from nablab.autodiff import dispatch

#: Functions whose result is piecewise constant in their array arguments (HIPS autograd's list, and kin).
NONDIFFERENTIABLE = frozenset("""
    all any alltrue sometrue argmax argmin argpartition argsort argwhere nonzero flatnonzero
    count_nonzero searchsorted sign ndim shape size floor_divide logical_and logical_or
    logical_not logical_xor isfinite isinf isnan isneginf isposinf isnat allclose isclose
    array_equal array_equiv greater greater_equal less less_equal equal not_equal iscomplexobj
    iscomplex isreal isrealobj isscalar zeros_like ones_like empty_like result_type can_cast
    min_scalar_type promote_types may_share_memory shares_memory isfortran ravel_multi_index
    unravel_index diag_indices_from tril_indices_from triu_indices_from nanargmax nanargmin
    floor ceil round around rint fix trunc signbit digitize bincount bitwise_and bitwise_or
    bitwise_xor bitwise_not invert left_shift right_shift gcd lcm spacing
    issubdtype
""".split())


def fill(target: dict, numpy_module, implemented: dict, nondifferentiable=NONDIFFERENTIABLE,
         prefix: str = "numpy", defer_lazy: bool = False) -> list:
    """Fill ``target`` (a module's globals) from ``numpy_module``; register the dispatch tables.

    With ``defer_lazy``, names the module serves lazily (NumPy's submodules ``testing``,
    ``f2py``, ``ma``, ...: listed by ``dir`` but not yet imported) are not touched, since
    reading them would import them; they are returned so the target can serve them lazily too.
    """
    deferred = []
    for name in dir(numpy_module):
        if name.startswith("_"):
            continue
        if defer_lazy and name not in implemented and name not in vars(numpy_module):
            deferred.append(name)
            continue
        obj = getattr(numpy_module, name)
        if name in implemented:
            ours = implemented[name]
            target[name] = ours
            if callable(obj) and not isinstance(obj, type):
                _register(obj, ours)
        elif isinstance(obj, (type, types.ModuleType)) or not callable(obj):
            target.setdefault(name, obj)
        elif name in nondifferentiable:
            ours = dispatch.nondifferentiable(obj, name)
            target[name] = ours
            _register(obj, ours)
        else:
            target[name] = dispatch.unsupported(obj, f"{prefix}.{name}")
    # Names nablab adds beyond NumPy's (none for numpy itself, helpers elsewhere).
    for name, ours in implemented.items():
        target.setdefault(name, ours)
    return deferred


def _register(numpy_obj, ours) -> None:
    if isinstance(numpy_obj, np.ufunc):
        dispatch.UFUNCS[numpy_obj] = ours
    else:
        dispatch.FUNCTIONS[numpy_obj] = ours


def register_ufunc_method(ufunc, method: str, ours) -> None:
    """``ufunc.reduce`` / ``.accumulate`` / ``.outer`` on tensors, e.g. ``np.add.reduce -> sum``."""
    dispatch.UFUNC_METHODS[(ufunc, method)] = ours
