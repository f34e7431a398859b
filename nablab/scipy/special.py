"""``scipy.special`` with derivative rules (functions without rules refuse traced values by name)."""

from __future__ import annotations

import scipy.special as _scipy_special

from nablab.numpy import _namespace

__all__: list[str] = []

_namespace.fill(globals(), _scipy_special, {n: globals()[n] for n in __all__}, prefix="scipy.special")
