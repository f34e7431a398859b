"""Answer slots: the named quantities a claim asks for, each with a type and a comparison rule.

A slot knows how to read an answer written in a sheet (checking its type and
shape), how to compare it with the computed truth, and how to describe itself
in a blank sheet.

Types: ``number``, ``vector``, ``matrix``, ``shape`` (a tuple of non-negative
integers), ``count`` (a non-negative integer), ``boolean``, ``choice`` (one of
the listed options, or several with ``many = true``).  Rules: ``rtol`` (relative
tolerance ``tol``, with ``atol`` as a floor near zero), ``atol`` (absolute
tolerance), ``exact``, ``set`` (the same options in any order).

>>> slot = Slot("eta_star", "number", rule="rtol", tol=1e-3)
>>> slot.compare(slot.read(0.0833, "sheet"), 1 / 12)
(True, '0.0833 is within 0.1% of 0.08333')
>>> Slot("limit", "vector").compare([1.5, 1.5], [1.5, 1.5000001])[0]
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TYPES = ("number", "vector", "matrix", "shape", "count", "boolean", "choice")
RULES = ("rtol", "atol", "exact", "set")
DEFAULT_RULE = {"number": "rtol", "vector": "rtol", "matrix": "rtol", "shape": "exact",
                "count": "exact", "boolean": "exact", "choice": "exact"}
FORMATS = {
    "number": "a number, e.g. 0.25",
    "vector": "a list of numbers, e.g. [1.0, 0.5]",
    "matrix": "a list of rows, e.g. [[1, 0], [0, 1]]",
    "shape": "a list of non-negative integers, e.g. [8, 3, 16, 16]",
    "count": "a non-negative integer, e.g. 128",
    "boolean": "true or false",
    "choice": "one of the options, as a string",
}


class AnswerError(ValueError):
    """An answer that does not fit its slot (wrong type, shape, NaN, unknown option)."""


@dataclass(frozen=True)
class Slot:
    """One named quantity a claim asks for.

    ``shape`` fixes a vector's or matrix's shape when it is known in advance;
    ``choices`` lists a choice slot's options; ``many`` makes it a set of options
    (compared with the ``set`` rule).
    """

    name: str
    type: str
    rule: str = ""
    tol: float = 1e-6
    atol: float = 1e-12
    unit: str = ""
    help: str = ""
    shape: tuple = ()
    choices: tuple = ()
    many: bool = False

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"slot {self.name!r}: type {self.type!r} is not one of {', '.join(TYPES)}")
        if not self.rule:
            object.__setattr__(self, "rule", "set" if self.many else DEFAULT_RULE[self.type])
        if self.rule not in RULES:
            raise ValueError(f"slot {self.name!r}: rule {self.rule!r} is not one of {', '.join(RULES)}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"slot {self.name!r}: a choice slot needs its choices")
        if self.rule in ("rtol", "atol") and self.type not in ("number", "vector", "matrix"):
            raise ValueError(f"slot {self.name!r}: rule {self.rule} compares numbers, not a {self.type}")
        if not (self.tol >= 0 and self.atol >= 0):
            raise ValueError(f"slot {self.name!r}: tolerances must be non-negative")

    # ------------------------------------------------------------------ reading answers
    def read(self, raw, where: str):
        """The answer ``raw`` (as TOML gives it) as this slot's value; ``where`` names it in errors."""
        kind = self.type
        if kind == "boolean":
            if not isinstance(raw, bool):
                raise AnswerError(f"{where}: expected true or false, got {raw!r}")
            return raw
        if kind == "count":
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                raise AnswerError(f"{where}: expected a non-negative integer, got {raw!r}")
            return raw
        if kind == "choice":
            values = raw if self.many else [raw]
            if self.many and not isinstance(raw, list):
                raise AnswerError(f"{where}: expected a list of options from {list(self.choices)}, got {raw!r}")
            for v in values:
                if v not in self.choices:
                    raise AnswerError(f"{where}: {v!r} is not one of {list(self.choices)}")
            if self.many and len(set(values)) != len(values):
                raise AnswerError(f"{where}: an option is listed twice in {raw!r}")
            return sorted(values) if self.many else raw
        if kind == "shape":
            if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                   for d in raw):
                raise AnswerError(f"{where}: expected a list of non-negative integers, got {raw!r}")
            return tuple(raw)
        return self._read_numbers(raw, where)

    def _read_numbers(self, raw, where):
        ndim = {"number": 0, "vector": 1, "matrix": 2}[self.type]
        if isinstance(raw, bool) or (ndim == 0 and not isinstance(raw, (int, float))):
            raise AnswerError(f"{where}: expected {FORMATS[self.type]}, got {raw!r}")
        try:
            value = np.array(raw, dtype=float)
        except (TypeError, ValueError):
            raise AnswerError(f"{where}: expected {FORMATS[self.type]}, got {raw!r}") from None
        if value.dtype == object or value.ndim != ndim or (ndim and 0 in value.shape and ndim > 1):
            raise AnswerError(f"{where}: expected {FORMATS[self.type]} ({ndim} dimensions), got {raw!r}")
        if self.shape and value.shape != tuple(self.shape):
            raise AnswerError(f"{where}: expected shape {tuple(self.shape)}, got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise AnswerError(f"{where}: NaN or infinite values are not answers ({raw!r})")
        return float(value) if ndim == 0 else value

    # ------------------------------------------------------------------ comparing
    def truth(self, value):
        """A computed value in the slot's form (a NumPy array for vectors and matrices)."""
        if self.type in ("vector", "matrix"):
            return np.asarray(value, dtype=float)
        if self.type == "number":
            return float(value)
        if self.type == "shape":
            return tuple(int(d) for d in value)
        if self.type == "count":
            return int(value)
        if self.type == "boolean":
            return bool(value)
        return sorted(value) if self.many else value

    def compare(self, given, truth) -> tuple[bool, str]:
        """``(correct, explanation)`` of an answer against the truth, by this slot's rule."""
        truth = self.truth(truth)
        if self.rule == "exact" or self.rule == "set":
            same = given == truth if not isinstance(truth, np.ndarray) else np.array_equal(given, truth)
            return bool(same), (f"{show(given)} is {show(truth)}" if same
                                else f"{show(given)} is not {show(truth)}")
        given_a, truth_a = np.asarray(given, dtype=float), np.asarray(truth, dtype=float)
        if given_a.shape != truth_a.shape:
            return False, f"{show(given)} has shape {given_a.shape}, the answer {truth_a.shape}"
        if self.rule == "rtol":
            ok = bool(np.all(np.abs(given_a - truth_a) <= self.tol * np.abs(truth_a) + self.atol))
            how = f"within {_percent(self.tol)} of"
        else:
            ok = bool(np.all(np.abs(given_a - truth_a) <= self.tol))
            how = f"within {self.tol:g} of"
        return ok, f"{show(given)} is {'' if ok else 'not '}{how} {show(truth)}"

    # ------------------------------------------------------------------ describing
    def describe(self) -> str:
        """One line for a blank sheet: type, format, rule, unit."""
        parts = [FORMATS[self.type] if self.type != "choice" else
                 ("a list of options from " if self.many else "one of ") + ", ".join(map(repr, self.choices))]
        if self.shape:
            parts.append(f"shape {tuple(self.shape)}")
        if self.rule == "rtol":
            parts.append(f"graded to a relative tolerance of {self.tol:g}")
        elif self.rule == "atol":
            parts.append(f"graded within {self.tol:g} (absolute)")
        elif self.rule == "set":
            parts.append("graded as a set (any order)")
        else:
            parts.append("graded exactly")
        if self.unit:
            parts.append(f"unit: {self.unit}")
        return "; ".join(parts)


def _percent(tol: float) -> str:
    """A relative tolerance in words: ``0.1%``, or ``1e-06 relative`` when a percentage would be tiny."""
    pct = 100 * tol
    return f"{pct:g}%" if pct >= 1e-3 else f"{tol:g} relative"


def show(value) -> str:
    """A short text of a value for messages (numbers to 4 significant digits)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and np.all(np.isfinite(value)) and np.all(value == np.round(value)):
            value = value.astype(np.int64)  # whole numbers read better without ".0"
        text = np.array2string(value, precision=4, separator=", ", threshold=12, max_line_width=10**6)
        return " ".join(text.split())
    if isinstance(value, tuple):
        return "(" + ", ".join(show(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def slot_from_table(name: str, table: dict, where: str) -> Slot:
    """A slot from its TOML table in the catalogue (``type`` required; the rest optional)."""
    known = {"type", "rule", "tol", "atol", "unit", "help", "shape", "choices", "many"}
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"{where}: unknown slot keys {sorted(unknown)} (known: {sorted(known)})")
    if "type" not in table:
        raise ValueError(f"{where}: a slot needs a type ({', '.join(TYPES)})")
    kwargs = {k: v for k, v in table.items() if k in known}
    for key in ("shape", "choices"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    try:
        return Slot(name, **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
