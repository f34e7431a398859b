"""Make PyTorch look uninstalled for one test: ``hide_torch(monkeypatch)``.

``import torch`` then fails and ``importlib.util.find_spec("torch")`` finds nothing, as without the package,
while ``sys.modules`` holds no entry for torch at all. Putting ``None`` there (the usual trick) also stops
``import torch``, but libraries that look torch up in ``sys.modules`` to recognise its arrays (SciPy's array-API
helpers, which scikit-learn reaches) then fail on the ``None``, depending on what they cached in earlier tests.
"""

import importlib.abc
import importlib.util
import sys


def _is_torch(name):
    return name == "torch" or name.startswith("torch.")


class _RefuseTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _is_torch(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def hide_torch(monkeypatch):
    """Until the test ends (monkeypatch undoes it): no torch module loaded, none importable, none found."""
    for name in [name for name in sys.modules if _is_torch(name)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_RefuseTorch(), *sys.meta_path])
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if _is_torch(name) else real_find_spec(name, *args))
