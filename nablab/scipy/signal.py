"""``scipy.signal`` with derivative rules (functions without rules refuse traced values by name)."""

from __future__ import annotations

import scipy.signal as _scipy_signal

from nablab.numpy import _namespace

__all__: list[str] = []

_namespace.fill(globals(), _scipy_signal, {n: globals()[n] for n in __all__}, prefix="scipy.signal")
