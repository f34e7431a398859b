"""The examples in the data modules' docstrings run (MNIST-1D's generation example is skipped: it takes seconds)."""

import doctest

import pytest

import nablab.data
import nablab.data.cache
import nablab.data.cifar10
import nablab.data.digits
import nablab.data.loader
import nablab.data.mnist_1d
import nablab.data.safe_pickle
import nablab.data.text
import nablab.data.transforms

MODULES = [nablab.data, nablab.data.cache, nablab.data.cifar10, nablab.data.digits, nablab.data.loader,
           nablab.data.mnist_1d, nablab.data.safe_pickle, nablab.data.text, nablab.data.transforms]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.failed == 0
