"""Receptive-field arithmetic along one spatial axis.

Following Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill (2019), every layer's units are described, in input
coordinates (input positions 0, 1, 2, ...), by

* ``size``: how many input positions one unit sees, padding included,
* ``jump``: the distance in the input between neighbouring units (effective stride),
* ``start``: the centre of the first unit's receptive field.

A layer with kernel ``k``, stride ``s``, left padding ``p`` and dilation ``d``
(effective kernel ``k' = d (k - 1) + 1``) maps ``(r, j, c)`` to

    r' = r + (k' - 1) j,     j' = j s,     c' = c + ((k' - 1) / 2 - p) j,

which unrolls to Araujo et al.'s closed form
``r = 1 + sum_l (k'_l - 1) prod_{i<l} s_i``.  Unit ``u`` of a layer sees the
input positions ``c + u j - (r - 1) / 2`` to ``c + u j + (r - 1) / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["AxisRF", "conv_rf", "conv_transpose_rf", "whole_rf", "merge_rf"]


def _num(x):
    """Show integral floats as ints."""
    return int(x) if float(x).is_integer() else float(x)


@dataclass(frozen=True)
class AxisRF:
    """Receptive field of a layer's units along one axis; ``count`` is the number of units.

    ``size`` is the width of the field in input positions, ``jump`` the distance between the fields
    of neighbouring units, ``start`` the centre of the first unit's field.

    >>> from nablab.arch import AxisRF, conv_rf
    >>> rf = conv_rf(conv_rf(AxisRF(count=32), k=3, count=32, p=1), k=2, s=2, count=16)
    >>> rf, rf.interval(0)
    (AxisRF(size=4, jump=2, start=0.5, count=16), (-1, 2))
    """

    size: float = 1
    jump: float = 1
    start: float = 0
    count: int = 1

    def interval(self, unit: int) -> tuple[float, float]:
        """Input positions (first, last) seen by unit ``unit``, padding included.

        >>> conv_rf(AxisRF(count=8), k=3, s=2, p=1, count=4).interval(1)
        (1, 3)
        """
        centre = self.start + unit * self.jump
        half = (self.size - 1) / 2
        return _num(centre - half), _num(centre + half)


def conv_rf(a: AxisRF, k: int, s: int = 1, p: int = 0, d: int = 1, count: int = 1) -> AxisRF:
    """Receptive field after a convolution or pooling layer (``p`` = left padding).

    Three 3-wide stride-2 layers give 3, 7, 15:

    >>> r = AxisRF()
    >>> [(r := conv_rf(r, 3, 2)).size for _ in range(3)]
    [3, 7, 15]
    """
    span = d * (k - 1)
    return AxisRF(
        size=_num(a.size + span * a.jump),
        jump=_num(a.jump * s),
        start=_num(a.start + (span / 2 - p) * a.jump),
        count=count,
    )


def conv_transpose_rf(a: AxisRF, k: int, s: int = 1, p: int = 0, d: int = 1, count: int = 1) -> AxisRF:
    """Receptive field after a transposed convolution.

    Output unit ``o`` gets input unit ``i`` through kernel tap ``m`` when
    ``o = i s - p + m d``.  How many inputs a unit spans depends on ``o mod s``;
    ``size`` is the largest span (an upper bound for every unit), the jump is
    ``j / s`` (fractional) and ``start`` is the centre of the taps of unit 0.

    >>> conv_transpose_rf(AxisRF(), k=4, s=2, p=1, count=16).size
    2
    """
    # Taps m reach unit o when m d = o + p (mod s): every s/g-th m, g = gcd(d, s). The widest
    # span is for the units with m = 0 among them: floor((k - 1) / (s/g)) steps of d/g inputs.
    # (A closed form: a loop over o and m takes forever for absurd strides and kernels.)
    g = math.gcd(d, s)
    widest = (k - 1) // (s // g) * (d // g)
    span = d * (k - 1)
    return AxisRF(
        size=_num(a.size + widest * a.jump),
        jump=_num(a.jump / s),
        start=_num(a.start + (p - span / 2) / s * a.jump),
        count=count,
    )


def whole_rf(a: AxisRF) -> AxisRF:
    """Receptive field of a unit that sees every unit of the layer (fully connected).

    >>> whole_rf(AxisRF(size=3, jump=2, start=0, count=4))
    AxisRF(size=9, jump=8, start=3, count=1)
    """
    n = a.count
    return AxisRF(
        size=_num(a.size + (n - 1) * a.jump),
        jump=_num(a.jump * n),
        start=_num(a.start + (n - 1) * a.jump / 2),
        count=1,
    )


def merge_rf(a: AxisRF, b: AxisRF) -> AxisRF:
    """Receptive field of units that combine two paths (concatenation, addition).

    The unions of the two paths' fields for unit 0 and for the last unit are
    taken and the larger kept; the jump is path ``a``'s (the two agree when the
    paths have the same geometry).

    >>> merge_rf(AxisRF(3, 1, 1, 8), AxisRF(5, 1, 2, 8)).size
    5
    """
    sizes, starts = [], []
    for unit in (0, a.count - 1):
        lo = min(a.interval(unit)[0], b.interval(unit)[0])
        hi = max(a.interval(unit)[1], b.interval(unit)[1])
        sizes.append(hi - lo + 1)
        starts.append((lo + hi) / 2 - unit * a.jump)
    return replace(a, size=_num(max(sizes)), start=_num(starts[0]))
