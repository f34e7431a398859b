"""Where NumPy meets traced values: nothing crosses silently.

A traced value (a :class:`~nablab.autodiff.core.Tensor` that a transform or the
imperative tape is watching) must never turn into a plain array unasked, or its
derivative is lost without a word.  This module holds the three gates:

- :func:`array_ufunc` and :func:`array_function` implement NumPy's dispatch
  protocols (NEP 13 and NEP 18) for tensors: ``np.exp(t)``, ``np.sum(t)`` or
  ``np.concatenate([t, u])`` run nablab's differentiable version when there is
  one, and raise :class:`UnsupportedFunctionError` naming the function when a
  traced value reaches one that nablab cannot differentiate;
- :class:`TracedValueError` is what ``np.asarray(t)`` and ``float(t)`` raise
  for a traced ``t`` (see ``Tensor.__array__``);
- :func:`nondifferentiable` and :func:`unsupported` wrap NumPy functions for
  :mod:`nablab.numpy`: the first for functions whose result is piecewise
  constant (``sign``, ``argmax``, comparisons), the second for everything nablab
  has no rules for.

The tables are filled by :mod:`nablab.numpy` when it is imported.
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

from nablab.autodiff import core
from nablab.errors import TracedValueError, UnsupportedFunctionError  # noqa: F401
from nablab.autodiff.core import IMPERATIVE, Tensor, _grad_mode, _live_levels, value_of

#: numpy ufunc -> nablab function, for ``ufunc(tensor, ...)``.
UFUNCS: dict = {}
#: numpy function (``np.sum``, ``np.linalg.inv``) -> nablab function.
FUNCTIONS: dict = {}
#: ufunc reductions and accumulations: (ufunc, method) -> nablab function.
UFUNC_METHODS: dict = {}


def is_traced(x) -> bool:
    """Whether ``x`` is a tensor some transform (or the imperative tape) is watching now."""
    if not isinstance(x, Tensor):
        return False
    level = x._level
    if level > IMPERATIVE:
        return level in _live_levels
    return level == IMPERATIVE and x._node is not None and _grad_mode.enabled


def holds_traced(obj) -> bool:
    """Whether a (nested) list, tuple or dict holds a traced tensor."""
    if isinstance(obj, Tensor):
        return is_traced(obj)
    if type(obj) in (list, tuple):
        return any(holds_traced(o) for o in obj)
    if type(obj) is dict:
        return any(holds_traced(o) for o in obj.values())
    return False


def unbox_all(obj):
    """The plain values of every tensor in a (nested) list, tuple or dict."""
    if isinstance(obj, Tensor):
        return value_of(obj)
    if type(obj) in (list, tuple):
        return type(obj)(unbox_all(o) for o in obj)
    if type(obj) is dict:
        return {k: unbox_all(v) for k, v in obj.items()}
    return obj


def unbox_readonly(obj):
    """As :func:`unbox_all`, but a tensor's array comes as a read-only view.

    For NumPy functions nablab hands constants to: one that writes into its
    argument (``np.put``, ``np.copyto``) then fails loudly instead of changing a
    tensor behind the version counters' back.
    """
    if isinstance(obj, Tensor):
        value = value_of(obj)
        if isinstance(value, np.ndarray):
            value = value.view()
            value.flags.writeable = False
        return value
    if type(obj) in (list, tuple):
        return type(obj)(unbox_readonly(o) for o in obj)
    if type(obj) is dict:
        return {k: unbox_readonly(v) for k, v in obj.items()}
    return obj


_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


def caller_location() -> str:
    """``file:line`` of the innermost frame outside nablab's engine and NumPy (for messages)."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(_HERE) or path.startswith(_NUMPY_DIR)):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def describe(x) -> str:
    """A short description of a tensor for error messages: shape, dtype and who traces it."""
    v = np.asarray(core.raw_value_of(x))
    if x._level in core._batch_levels:
        return f"a value batched by vmap (example shape {x.shape})"
    if x._level == IMPERATIVE:
        who = "requires grad"
    elif x._level in core._forward_levels:
        who = "is traced by a forward-mode transform"
    else:
        who = "is traced by a reverse-mode transform"
    return f"a tensor of shape {v.shape} and dtype {v.dtype} that {who}"


def traced_value_error(x, what: str) -> TracedValueError:
    return TracedValueError(
        f"{what} on {describe(x)} (at {caller_location()}) would turn it into a plain NumPy "
        "value and lose its derivative. Use nablab's functions on it (import nablab.numpy as np), "
        "or say so: x.detach() or nablab.stop_gradient(x) for a constant, x.item() for a "
        "Python number."
    )


def _function_name(func) -> str:
    module = getattr(func, "__module__", None) or "numpy"
    if module.startswith("numpy"):
        # numpy.core.fromnumeric.sum -> numpy.sum; numpy.linalg._linalg.inv -> numpy.linalg.inv
        parts = [p for p in module.split(".") if not p.startswith("_") and p not in ("core", "lib")]
        module = ".".join(parts) if parts else "numpy"
    return f"{module}.{getattr(func, '__name__', repr(func))}"


def unsupported_error(name: str) -> UnsupportedFunctionError:
    return UnsupportedFunctionError(
        f"{name} was given a traced value, but nablab has no derivative rule for it, so its "
        f"result would silently carry no gradient (at {caller_location()}). Use a function "
        "nablab differentiates (see nablab.numpy), define one with nablab.primitive, or pass "
        "x.detach() if you want no gradient."
    )


def _scipy_special_ufunc(ufunc) -> bool:
    """Whether ``ufunc`` is one of scipy.special's (only if SciPy is already imported)."""
    for module in ("scipy.special", "scipy.special._ufuncs"):
        special = sys.modules.get(module)
        if special is not None and getattr(special, ufunc.__name__, None) is ufunc:
            return True
    return False


def _ufunc_name(ufunc) -> str:
    if _scipy_special_ufunc(ufunc):  # scipy.special.zeta calls the ufunc _zeta
        return f"scipy.special.{ufunc.__name__.lstrip('_')}"
    return f"numpy.{ufunc.__name__}"


def array_ufunc(ufunc, method, inputs, kwargs):
    """``Tensor.__array_ufunc__``: route a NumPy ufunc call to nablab's version."""
    out = kwargs.pop("out", None)
    if method == "__call__":
        impl = UFUNCS.get(ufunc)
        if impl is None and _scipy_special_ufunc(ufunc):
            import nablab.scipy.special  # noqa: F401  (registers its ufuncs on import)
            impl = UFUNCS.get(ufunc)
    else:
        impl = UFUNC_METHODS.get((ufunc, method))
    traced = holds_traced(inputs) or holds_traced(kwargs)
    if impl is None:
        if traced:
            suffix = "" if method == "__call__" else f".{method}"
            raise unsupported_error(f"{_ufunc_name(ufunc)}{suffix}")
        result = getattr(ufunc, method)(*unbox_all(inputs), **unbox_all(kwargs),
                                        **({"out": out} if out is not None else {}))
        return result
    if out is not None:
        if traced:
            raise TypeError(
                f"{_ufunc_name(ufunc)}(..., out=...) on a traced value: writing the result "
                "into an existing array would lose its derivative; use the returned value instead"
            )
        result = getattr(ufunc, method)(*unbox_all(inputs), **unbox_all(kwargs), out=out)
        return result
    return impl(*inputs, **kwargs)


def array_function(func, types, args, kwargs):
    """``Tensor.__array_function__``: route ``np.f(tensor, ...)`` to ``nablab.numpy.f``."""
    impl = FUNCTIONS.get(func)
    if impl is not None:
        return impl(*args, **kwargs)
    if holds_traced(args) or holds_traced(kwargs):
        raise unsupported_error(_function_name(func))
    # Only constants: plain NumPy on their values is exactly right.
    return func(*unbox_readonly(args), **unbox_readonly(kwargs))


def nondifferentiable(fn, name=None):
    """Wrap a NumPy function whose result is piecewise constant in its array arguments.

    Its derivative is zero wherever it exists, so it sees through every box
    (lists of tensors included) and returns a plain result.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if core._batch_levels:  # inside vmap: one result per example
            from nablab.autodiff.batching import apply_nondiff

            return apply_nondiff(fn, args, kwargs)
        return fn(*unbox_all(args), **unbox_all(kwargs))

    wrapped.__name__ = name or getattr(fn, "__name__", "nondifferentiable")
    wrapped.__doc__ = (f"``numpy.{wrapped.__name__}`` on the plain values: its result is piecewise "
                       "constant, so no derivative flows through it.")
    wrapped.nondifferentiable = True
    return wrapped


def unsupported(fn, name):
    """Wrap a NumPy function nablab has no derivative rules for.

    With constants it is NumPy's function; given a traced value it raises
    :class:`UnsupportedFunctionError` naming the function.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if holds_traced(args) or holds_traced(kwargs):
            raise unsupported_error(name)
        return fn(*unbox_readonly(args), **unbox_readonly(kwargs))

    wrapped.unsupported = True
    return wrapped
