"""``nablab.arch.to_torch.to_torch``: kept for existing imports; the bridge is :mod:`nablab.torch_bridge`.

>>> from nablab.arch.to_torch import to_torch
>>> import nablab.torch_bridge
>>> to_torch is nablab.torch_bridge.to_torch
True
"""

from nablab.torch_bridge import to_torch

__all__ = ["to_torch"]
