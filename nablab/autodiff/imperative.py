"""The PyTorch-style face of the engine: ``tensor(..., requires_grad=True)`` and ``.backward()``."""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import CONSTANT, IMPERATIVE, Node, Tensor, value_of


def tensor(data, requires_grad=False, dtype=None):
    """Make a tensor; with ``requires_grad=True`` it records what is done with it.

    Lists and Python numbers become float64 unless ``dtype`` says otherwise.
    ``.grad`` accumulates over ``backward()`` calls, as in PyTorch.

    >>> import nablab
    >>> x = nablab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """
    value = np.array(value_of(data), dtype=dtype, copy=True)
    if dtype is None and value.dtype.kind in "iub":
        if requires_grad:
            raise TypeError(
                f"tensor: data of dtype {value.dtype} cannot require grad; derivatives need "
                "floats (pass floats or dtype=np.float64)"
            )
    if requires_grad:
        if value.dtype.kind != "f":
            raise TypeError(f"tensor: dtype {value.dtype} cannot require grad; use a float dtype")
        return Tensor(value, IMPERATIVE, Node.leaf())
    return Tensor(value, CONSTANT)
