"""Differentiable SciPy: ``import nablab.scipy.special`` (and ``.stats``, ``.linalg``, ``.signal``).

Like :mod:`nablab.numpy`, each module holds SciPy's names: nablab's version
with derivative rules where there is one, and otherwise SciPy's own function,
which raises an error naming itself when given a traced value.  SciPy is an
optional dependency (``pip install nablab[linop]`` or ``[all]``); these modules
import it.
"""

import importlib as _importlib

__all__ = ["special", "stats", "linalg", "signal", "misc", "integrate"]


def __getattr__(name):
    if name in __all__:
        return _importlib.import_module(f"nablab.scipy.{name}")
    raise AttributeError(f"module 'nablab.scipy' has no attribute {name!r}")
