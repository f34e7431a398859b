"""Input checks shared by the theory helpers: every message names the bad value."""

from __future__ import annotations

import numpy as np

from nablab.checks import check_count, check_number


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
    """A finite positive (or non-negative) number, or an error naming it (:func:`nablab.checks.check_number`)."""
    return check_number(name, x, low=0, low_open=not allow_zero)


def count(x, name: str) -> int:
    """A positive integer (bools refused), or a ValueError naming it."""
    return check_count(name, x, low=1)
