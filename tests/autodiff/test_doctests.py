"""The examples in the engine's docstrings run (nablab.numpy and nablab.scipy included)."""

import doctest
import importlib
import pkgutil

import pytest

import nablab.numpy
import nablab.scipy

ENGINE = [
    "nablab", "nablab.autodiff.core", "nablab.autodiff.transforms", "nablab.autodiff.wrappers",
    "nablab.autodiff.numeric", "nablab.autodiff.tree", "nablab.autodiff.graph", "nablab.autodiff.ops",
    "nablab.autodiff.imperative", "nablab.autodiff.dispatch", "nablab.misc",
    "nablab.numpy", "nablab.scipy",
]
NAMESPACES = [m.name for package in (nablab.numpy, nablab.scipy)
              for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


@pytest.mark.parametrize("name", ENGINE + NAMESPACES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
