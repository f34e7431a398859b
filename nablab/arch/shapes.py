"""Output-size rules for one spatial axis.

The formulas are those of Dumoulin and Visin, "A guide to convolution
arithmetic for deep learning" (2016), in the general form PyTorch documents
for ``Conv2d``, ``MaxPool2d``/``AvgPool2d`` and ``ConvTranspose2d``.  With
input size ``n``, kernel ``k``, stride ``s``, padding ``p`` on each side and
dilation ``d`` the dilated kernel covers ``d (k - 1) + 1`` positions and

    conv:            floor((n + 2p - d (k - 1) - 1) / s) + 1
    transposed conv: (n - 1) s - 2p + d (k - 1) + output_padding + 1

Padding may be one number (both sides) or a ``(left, right)`` pair, which is
how PyTorch's ``padding="same"`` pads an even kernel.  Each function raises
:class:`ShapeError` (a ``ValueError``) naming the numbers when the layer
cannot apply.
"""

from __future__ import annotations

from nablab.errors import ShapeError

__all__ = [
    "ShapeError",
    "conv_output_size",
    "pool_output_size",
    "conv_transpose_output_size",
    "same_padding",
]


def _pads(p) -> tuple[int, int]:
    if isinstance(p, (tuple, list)):
        lo, hi = p
        return int(lo), int(hi)
    return int(p), int(p)


def _check_positive(**values) -> None:
    for name, v in values.items():
        if v < 1:
            raise ShapeError(f"{name} must be at least 1, got {v}")


def same_padding(k: int, d: int = 1) -> tuple[int, int]:
    """Padding ``(left, right)`` that keeps the size at stride 1, as PyTorch's ``"same"``.

    The total ``d (k - 1)`` is split with the extra position on the right.

    >>> same_padding(3), same_padding(4), same_padding(3, d=2)
    ((1, 1), (1, 2), (2, 2))
    """
    total = d * (k - 1)
    return total // 2, total - total // 2


def conv_output_size(n: int, k: int, s: int = 1, p=0, d: int = 1) -> int:
    """Output size of a convolution along one axis.

    >>> conv_output_size(28, 3), conv_output_size(28, 4, s=2, p=1)
    (26, 14)
    """
    _check_positive(kernel=k, stride=s, dilation=d)
    lo, hi = _pads(p)
    span = d * (k - 1) + 1
    if n + lo + hi < span:
        raise ShapeError(
            f"kernel {k} (dilation {d}, covering {span}) is larger than the "
            f"padded input {n} + {lo} + {hi} = {n + lo + hi}"
        )
    return (n + lo + hi - span) // s + 1


def pool_output_size(
    n: int, k: int, s: int | None = None, p: int = 0, d: int = 1, ceil_mode: bool = False
) -> int:
    """Output size of max or average pooling along one axis (stride defaults to ``k``).

    With ``ceil_mode`` the division rounds up, but, as in PyTorch, a last window
    that would start in the right padding is dropped.

    >>> pool_output_size(112, 2), pool_output_size(5, 2, ceil_mode=True)
    (56, 3)
    """
    s = k if s is None else s
    _check_positive(kernel=k, stride=s, dilation=d)
    if p > k // 2:
        raise ShapeError(f"padding {p} is more than half the pooling kernel {k}")
    span = d * (k - 1) + 1
    num = n + 2 * p - span
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    if out < 1:
        raise ShapeError(
            f"pooling window {k} (dilation {d}, covering {span}) is larger than "
            f"the padded input {n} + 2*{p} = {n + 2 * p}"
        )
    return out


def conv_transpose_output_size(
    n: int, k: int, s: int = 1, p: int = 0, d: int = 1, output_padding: int = 0
) -> int:
    """Output size of a transposed convolution along one axis.

    ``output_padding`` must be smaller than the stride or the dilation (PyTorch's rule).

    >>> conv_transpose_output_size(8, 4, s=2, p=1), conv_transpose_output_size(16, 2, s=2)
    (16, 32)
    """
    _check_positive(kernel=k, stride=s, dilation=d)
    if output_padding >= max(s, d):
        raise ShapeError(
            f"output padding {output_padding} must be smaller than the stride {s} "
            f"or the dilation {d}"
        )
    out = (n - 1) * s - 2 * p + d * (k - 1) + output_padding + 1
    if out < 1:
        raise ShapeError(
            f"output size (n-1)s - 2p + d(k-1) + op + 1 = ({n}-1)*{s} - 2*{p} + "
            f"{d}*({k}-1) + {output_padding} + 1 = {out} is not positive"
        )
    return out
