"""Judging a seed's quoted answer against a computed value.

A worked answer states numbers to some number of decimals; it agrees with a
computation when the two differ by at most half a unit in the last decimal it
gives (the rounding error of the quote itself).

>>> from nablab.lab.compare import matches_quote
>>> matches_quote(48.19241653, "48.19")
True
>>> matches_quote(47.30340959, "47.28739")
False
"""

from __future__ import annotations

import numpy as np


def quote_tolerance(quote: str) -> float:
    """Half a unit in the last place of a decimal quote: "4.71" -> 0.005, "12" -> 0.5."""
    text = quote.strip().lower()
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.partition(".")[2])
    scale = 10.0 ** (int(exponent) if exponent else 0)
    return 0.5 * 10.0 ** (-decimals) * scale


def matches_quote(computed: float, quote: str) -> bool:
    """Whether ``computed`` rounds to the quoted decimal ``quote``."""
    return bool(abs(float(computed) - float(quote)) <= quote_tolerance(quote) * (1 + 1e-9))


def compare_quotes(computed, quotes) -> list[dict]:
    """Entry-by-entry comparison of an array with a nested list of quoted strings.

    Returns one dict per entry: index, computed value, quote, and whether they match.
    """
    computed = np.asarray(computed, dtype=float)
    quoted = np.asarray(quotes, dtype=object)
    if computed.shape != quoted.shape:
        raise ValueError(f"compare_quotes: computed shape {computed.shape} vs quoted shape {quoted.shape}")
    rows = []
    for index in np.ndindex(computed.shape):
        rows.append({
            "index": list(index),
            "computed": float(computed[index]),
            "seed": quoted[index],
            "match": matches_quote(computed[index], quoted[index]),
        })
    return rows
