"""nb.vmap against torch.func.vmap on random compositions (the recipes of test_against_torch).

A recipe is a straight-line program of nablab/torch ops on two inputs ``x`` and ``y``;
here a batch of three examples of it is mapped, with ``x`` mapped along its first or last
axis and ``y`` mapped or shared, and nablab's vmap of the values, of ``grad`` and of ``jvp``
is compared with torch.func's to 1e-10. Examples near a kink (relu at 0, ties) in any of
the three examples are discarded, as in test_against_torch.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.func
from hypothesis import assume, given, note
from hypothesis import strategies as st

import nablab as nb


def _load_recipes():
    """test_against_torch.py as a module: its recipes and both interpreters."""
    import importlib.util
    import pathlib
    import sys

    name = "_nablab_recipes_against_torch"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name("test_against_torch.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tt = _load_recipes()

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning",
                                        "ignore:vmap.*Python loop:RuntimeWarning")
B = 3


def _usable_at(recipe, x, y):
    backend = tt.TorchBackend(check=True)
    with torch.no_grad():
        tt.run(recipe, backend, tt.T(x), tt.T(y))
    return backend.margin > tt.KINK_MARGIN and backend.biggest < tt.MAX_ABS


def _batch(recipe, seed, x_axis, map_y):
    x, y, tx, ty = recipe.inputs()
    rng = np.random.default_rng(seed)
    xs = np.stack([x + 0.05 * k * rng.normal(size=np.shape(x)) for k in range(B)])
    ys = np.stack([y + 0.05 * k * rng.normal(size=np.shape(y)) for k in range(B)]) if map_y else np.asarray(y)
    for k in range(B):
        assume(_usable_at(recipe, xs[k], ys[k] if map_y else ys))
    txs = np.stack([tx * (k + 1) for k in range(B)])
    tys = np.stack([ty * (k + 1) for k in range(B)]) if map_y else np.asarray(ty)
    if x_axis == -1:
        xs, txs = np.moveaxis(xs, 0, -1), np.moveaxis(txs, 0, -1)
    return xs, ys, txs, tys


axes = st.tuples(st.sampled_from([0, -1]), st.booleans())


def _in_axes(x_axis, map_y):
    return (x_axis, 0 if map_y else None)


@tt.SETTINGS
@given(tt.recipes(max_ops=8), axes, st.integers(0, 99))
def test_vmap_values_match_torch_func(recipe, ax, seed):
    note(repr(recipe))
    x_axis, map_y = ax
    xs, ys, _, _ = _batch(recipe, seed, x_axis, map_y)
    in_axes = _in_axes(x_axis, map_y)
    ours = nb.vmap(tt.nb_fn(recipe), in_axes=in_axes)(xs, ys)
    theirs = torch.func.vmap(tt.torch_fn(recipe), in_dims=in_axes)(tt.T(xs), tt.T(ys))
    tt.close(ours, theirs, "vmap value")


@tt.SETTINGS
@given(tt.recipes(max_ops=8), axes, st.integers(0, 99))
def test_vmap_of_grad_matches_torch_func(recipe, ax, seed):
    note(repr(recipe))
    x_axis, map_y = ax
    xs, ys, _, _ = _batch(recipe, seed, x_axis, map_y)
    in_axes = _in_axes(x_axis, map_y)
    f, g = tt.nb_fn(recipe), tt.torch_fn(recipe)
    ours = nb.vmap(nb.grad(lambda x, y: nb.sum(nb.sin(f(x, y))), argnums=(0, 1)), in_axes=in_axes)(xs, ys)
    theirs = torch.func.vmap(torch.func.grad(lambda x, y: torch.sum(torch.sin(g(x, y))), argnums=(0, 1)),
                             in_dims=in_axes)(tt.T(xs), tt.T(ys))
    tt.close(ours[0], theirs[0], "vmap(grad) wrt x")
    tt.close(ours[1], theirs[1], "vmap(grad) wrt y")


@tt.SETTINGS
@given(tt.recipes(max_ops=8), axes, st.integers(0, 99))
def test_vmap_of_jvp_matches_torch_func(recipe, ax, seed):
    note(repr(recipe))
    x_axis, map_y = ax
    xs, ys, txs, tys = _batch(recipe, seed, x_axis, map_y)
    in_axes = _in_axes(x_axis, map_y) * 2
    f, g = tt.nb_fn(recipe), tt.torch_fn(recipe)
    ours = nb.vmap(lambda x, y, a, b: nb.jvp(f, (x, y), (a, b))[1], in_axes=in_axes)(xs, ys, txs, tys)
    theirs = torch.func.vmap(lambda x, y, a, b: torch.func.jvp(g, (x, y), (a, b))[1],
                             in_dims=in_axes)(tt.T(xs), tt.T(ys), tt.T(txs), tt.T(tys))
    tt.close(ours, theirs, "vmap(jvp) tangent")


@tt.SETTINGS
@given(tt.recipes(max_ops=6, max_x_size=8), st.integers(0, 99))
def test_jacrev_of_vmap_matches_torch_func(recipe, seed):
    """The batch level inside a reverse level: the Jacobian of the whole vmapped function."""
    note(repr(recipe))
    xs, ys, _, _ = _batch(recipe, seed, 0, True)
    ours = nb.jacrev(nb.vmap(tt.nb_fn(recipe)))(xs, ys)
    theirs = torch.func.jacrev(torch.func.vmap(tt.torch_fn(recipe)))(tt.T(xs), tt.T(ys))
    tt.close(ours, theirs, "jacrev(vmap)")
