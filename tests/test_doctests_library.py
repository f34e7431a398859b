"""The examples in the docstrings of every nablab module run: those that other runners leave out
(tests/autodiff, data, train, theory, lab/test_registry.py, lab/test_sweep.py, test_cli.py and
test_expr.py run theirs), so a new module's examples run without being listed anywhere."""

import doctest
import importlib
import pkgutil

import pytest

import nablab

ELSEWHERE = {
    # tests/autodiff/test_doctests.py (with every module of nablab.numpy and nablab.scipy)
    "nablab", "nablab.autodiff.core", "nablab.autodiff.transforms", "nablab.autodiff.wrappers",
    "nablab.autodiff.numeric", "nablab.autodiff.tree", "nablab.autodiff.graph", "nablab.autodiff.ops",
    "nablab.autodiff.imperative", "nablab.autodiff.dispatch", "nablab.misc",
    # tests/data/test_doctests.py
    "nablab.data", "nablab.data.cache", "nablab.data.cifar10", "nablab.data.loader", "nablab.data.mnist_1d",
    "nablab.data.safe_pickle", "nablab.data.text", "nablab.data.transforms",
    # tests/train/test_doctests.py
    "nablab.train", "nablab.train.backends", "nablab.train.checkpoint", "nablab.train.datasets", "nablab.train.loop",
    "nablab.train.metrics", "nablab.train.models", "nablab.train.optimizers", "nablab.train.torch_replica",
    # tests/theory/test_theory_doctests.py
    "nablab.theory", "nablab.theory.linalg", "nablab.theory.stability", "nablab.theory.bounds", "nablab.theory.prox",
    "nablab.theory.functions",
    # tests/lab/test_registry.py, tests/lab/test_sweep.py, tests/test_expr.py
    "nablab.lab.claims", "nablab.lab.registry", "nablab.lab.report", "nablab.lab.slots", "nablab.lab.sheets",
    "nablab.lab.grading", "nablab.lab.sweep", "nablab.expr",
}
SKIPPED = ("nablab.numpy", "nablab.scipy", "nablab.cli", "nablab.__main__")  # their own runners; __main__ runs the CLI
MODULES = [m.name for m in pkgutil.walk_packages(nablab.__path__, "nablab.")
           if m.name not in ELSEWHERE and not m.name.startswith(SKIPPED)]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    if name == "nablab.torch_bridge" or name.endswith("to_torch"):
        pytest.importorskip("torch")
    assert doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS).failed == 0
