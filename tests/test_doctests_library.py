"""The examples in the docstrings of the library packages run (the engine's, data's, train's and theory's
have their own runners)."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("optim", "hyper", "nn", "arch", "linop")
MODULES = ["nablab.errors", "nablab.checks", "nablab.torch_bridge", "nablab.expr"] + [
    name for package in PACKAGES
    for name in [f"nablab.{package}"] + [m.name for m in pkgutil.walk_packages(
        importlib.import_module(f"nablab.{package}").__path__, f"nablab.{package}.")]]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    if name == "nablab.torch_bridge" or name.endswith("to_torch"):
        pytest.importorskip("torch")
    assert doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS).failed == 0
