"""The examples in nablab.theory's docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = ["nablab.theory", "nablab.theory.linalg", "nablab.theory.stability", "nablab.theory.bounds",
           "nablab.theory.prox", "nablab.theory.functions"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
