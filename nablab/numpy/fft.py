"""``numpy.fft`` with derivative rules.

Functions without rules yet are NumPy's own; given a traced value they raise
an error naming themselves (see :mod:`nablab.autodiff.dispatch`).
"""

from __future__ import annotations

__all__: list[str] = []
