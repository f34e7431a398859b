"""Input checks shared by the theory helpers: every message names the bad value."""

from __future__ import annotations

import math

import numpy as np


def as_matrix(X, name: str = "X") -> np.ndarray:
    """``X`` as a finite 2-D float64 array, or a ValueError naming its shape."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite entries (first at index "
                         f"{tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])})")
    return arr


def as_vector(v, name: str) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite entries")
    return arr


def positive(x, name: str, *, allow_zero: bool = False) -> float:
    """A finite positive (or non-negative) number, or a ValueError naming it."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {x!r}") from None
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        need = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {need} number, got {x!r}")
    return value


def count(x, name: str) -> int:
    """A positive integer (bools refused), or a ValueError naming it."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name} must be a positive integer, got {x!r}")
    return int(x)
