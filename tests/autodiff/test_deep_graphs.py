"""Deep graphs need no recursion, and a graph's memory goes once nothing refers to it."""

import gc
import sys
import weakref

import numpy as np

import nablab as nb
from nablab.autodiff.core import toposort


def test_reverse_mode_through_a_chain_of_100000_ops():
    n = 100_000
    assert n > sys.getrecursionlimit() * 10

    def chain(x):
        for _ in range(n):
            x = x * 1.00001
        return x

    g = nb.grad(chain)(1.0)
    assert np.isclose(g, 1.00001**n, rtol=1e-9)
    x = nb.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(n):
        y = nb.sin(y) + 0.5
    y.backward()
    assert np.isfinite(x.grad.item())


def test_graph_memory_is_released_when_unreferenced():
    gc.disable()  # refcounting alone must free it: the graph holds no cycles
    try:
        x = nb.tensor(np.ones(1000), requires_grad=True)
        y = x
        for _ in range(50):
            y = nb.tanh(y) * 1.1
        probe = weakref.ref(y._node)
        first = weakref.ref(toposort([y._node])[-2])  # a node deep inside the graph
        y.sum().backward()
        del y
        assert probe() is None and first() is None
    finally:
        gc.enable()


def test_functional_grad_leaves_nothing_alive():
    captured = []

    def f(x):
        y = nb.exp(x) * 2
        captured.append(weakref.ref(y._node))
        return nb.sum(y)

    gc.disable()
    try:
        nb.grad(f)(np.ones(10))
        assert captured[0]() is None
    finally:
        gc.enable()
