"""The examples in the engine's docstrings run."""

import doctest
import importlib

import pytest

MODULES = [
    "nablab", "nablab.autodiff.core", "nablab.autodiff.transforms", "nablab.autodiff.wrappers",
    "nablab.autodiff.numeric", "nablab.autodiff.tree", "nablab.autodiff.graph", "nablab.autodiff.ops",
    "nablab.autodiff.imperative", "nablab.misc", "nablab.numpy", "nablab.numpy.random",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
