"""The examples in the training modules' docstrings run."""

import doctest
import importlib

import pytest

MODULES = ["nablab.train", "nablab.train.backends", "nablab.train.checkpoint", "nablab.train.datasets",
           "nablab.train.loop", "nablab.train.metrics", "nablab.train.models", "nablab.train.optimizers",
           "nablab.train.torch_replica"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
