"""Architecture arithmetic: shapes, parameters, neurons, connections, MACs and receptive fields.

>>> from nablab.arch import summary
>>> s = summary("input 3x112x112, conv3-64, maxpool2, fc-100")
>>> s.totals["params"], s.rows[-1]["rf"]
(20072292, (114, 114))

NumPy-free pure Python; :func:`nablab.torch_bridge.to_torch` builds the same
network in PyTorch for cross-checks.
"""

from .propagate import propagate
from .rf import AxisRF, conv_rf, conv_transpose_rf, merge_rf, whole_rf
from .shapes import (ShapeError, conv_output_size, conv_transpose_output_size,
                     pool_output_size, same_padding)
from .spec import Layer, SpecError, parse_shape, parse_spec
from .summary import Summary, summary

__all__ = [
    "summary", "Summary", "parse_spec", "parse_shape", "Layer", "SpecError", "ShapeError",
    "conv_output_size", "pool_output_size", "conv_transpose_output_size", "same_padding",
    "AxisRF", "conv_rf", "conv_transpose_rf", "whole_rf", "merge_rf", "propagate",
]
