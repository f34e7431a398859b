"""One validation of numbers for the whole library: hyperparameters, counts, learning rates.

Every check names the value it refuses and the range it wanted. A traced value
(a learning rate inside ``nablab.grad``) is checked through its plain value and
passes through unchanged, so checking never cuts a derivative.

The rule for learning rates, everywhere in nablab (optimizers, schedules,
hypergradients, training): **finite and >= 0**, as ``torch.optim`` has it. A
rate of 0 is a valid run that does not move: the left end of a sweep, a
baseline, the point where a hypergradient says which way to go. Only a search
in log space (``hyper.tune_lr``) needs ``lr > 0``, and says so.

>>> from nablab.checks import check_count, check_lr, check_number
>>> check_lr(0.0, who="sgd")
0.0
>>> check_lr(-0.1, who="sgd")
Traceback (most recent call last):
ValueError: sgd: lr must be a finite non-negative number, got -0.1
>>> check_number("momentum", 1.5, low=0, high=1, high_open=True)
Traceback (most recent call last):
ValueError: momentum must be a finite number in [0, 1), got 1.5
>>> check_count("steps", 3)
3
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from nablab.autodiff.core import value_of

__all__ = ["check_number", "check_lr", "check_count"]


def _shown(value, plain) -> str:
    """A Python number as typed; anything else (NumPy scalars, traced values) as its float."""
    plain_number = isinstance(value, numbers.Number) and not isinstance(value, np.generic)
    return repr(value) if plain_number else repr(float(plain))


def _range(low, high, low_open, high_open) -> str:
    if high is None and low == 0:
        return "a finite positive number" if low_open else "a finite non-negative number"
    if high is None and low is None:
        return "a finite number"
    lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    return f"a finite number in {lo}, {hi}"


def check_number(name: str, value, *, low=None, high=None, low_open=False, high_open=False,
                 who: str | None = None) -> float:
    """Refuse ``value`` unless it is one finite real number in the given range; return it as a float.

    ``low``/``high`` bound it (closed unless ``low_open``/``high_open``); ``who``
    prefixes the message (the function that was called). Booleans, strings and
    arrays with more than one entry are refused as not being numbers.

    >>> check_number("eps", 1e-8, low=0, low_open=True, who="adam")
    1e-08
    >>> check_number("eps", 0, low=0, low_open=True, who="adam")
    Traceback (most recent call last):
    ValueError: adam: eps must be a finite positive number, got 0
    """
    where = f"{who}: " if who else ""
    plain = value_of(value)
    if isinstance(plain, (bool, np.bool_, str, bytes)) or plain is None:
        raise TypeError(f"{where}{name} must be a number, got {value!r}")
    arr = np.asarray(plain)
    if arr.ndim != 0:
        raise ValueError(f"{where}{name} must be a number, got an array of shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{where}{name} must be a real number, got {value!r}")
    number = float(arr)
    bad = not math.isfinite(number)
    bad = bad or (low is not None and (number <= low if low_open else number < low))
    bad = bad or (high is not None and (number >= high if high_open else number > high))
    if bad:
        raise ValueError(f"{where}{name} must be {_range(low, high, low_open, high_open)}, "
                         f"got {_shown(value, number)}")
    return number


def check_lr(lr, who: str | None = None, name: str = "lr"):
    """A learning rate: a number, an array of them (one per problem of a batch run at once),
    or a schedule (a function of the step count); finite and >= 0.

    Returns ``lr`` unchanged (a traced rate stays traced); a schedule is checked at step 0.

    >>> check_lr(lambda t: 0.1 / (1 + t), who="sgd")(1)
    0.05
    >>> check_lr(np.array([[0.1], [0.0], [-2.0]]), who="sgd")
    Traceback (most recent call last):
    ValueError: sgd: lr must be finite and non-negative, got -2.0 at index (2, 0)
    """
    checked = lr(0) if callable(lr) else lr
    if np.ndim(value_of(checked)) == 0:
        check_number(name, checked, low=0, who=who)
        return lr
    arr = np.asarray(value_of(checked))
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{f'{who}: ' if who else ''}{name} must be a number or an array of numbers, "
                        f"got dtype {arr.dtype}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{f'{who}: ' if who else ''}{name} must be finite and non-negative, "
                         f"got {float(arr[index])!r} at index {index}")
    return lr


def check_count(name: str, value, *, low: int = 0, who: str | None = None) -> int:
    """An integer ``>= low`` (booleans and floats refused); returned as an ``int``.

    >>> check_count("steps", -1)
    Traceback (most recent call last):
    ValueError: steps must be a non-negative integer, got -1
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        raise ValueError(f"{f'{who}: ' if who else ''}{name} must be {what}, got {value!r}")
    return int(value)
