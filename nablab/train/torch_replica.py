"""``nablab.train.torch_replica``: kept for existing imports; the bridge is :mod:`nablab.torch_bridge`.

>>> from nablab.train.torch_replica import to_torch
>>> import nablab.torch_bridge
>>> to_torch is nablab.torch_bridge.to_torch
True
"""

from nablab.torch_bridge import SUPPORTED_LAYERS, copy_weights, require_torch, to_torch, torch_dtype

__all__ = ["to_torch", "copy_weights", "torch_dtype", "require_torch", "SUPPORTED_LAYERS"]
