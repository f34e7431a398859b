"""``scipy.linalg`` with derivative rules (functions without rules refuse traced values by name)."""

from __future__ import annotations

import scipy.linalg as _scipy_linalg

from nablab.numpy import _namespace

__all__: list[str] = []

_namespace.fill(globals(), _scipy_linalg, {n: globals()[n] for n in __all__}, prefix="scipy.linalg")
