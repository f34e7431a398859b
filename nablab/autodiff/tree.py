"""Nested containers of arrays ("trees"): dicts, lists and tuples, with arrays at the leaves.

Parameters of a model are often a dict of arrays; transforms and optimizers
accept them by flattening to a list of leaves and building the same structure
back.

>>> from nablab.autodiff.tree import tree_flatten, tree_unflatten
>>> leaves, spec = tree_flatten({"w": 1.0, "b": [2.0, 3.0]})
>>> leaves
[2.0, 3.0, 1.0]
>>> tree_unflatten(spec, [x * 10 for x in leaves])
{'b': [20.0, 30.0], 'w': 10.0}
"""

from __future__ import annotations


def tree_flatten(tree):
    """Leaves in a fixed order (dict keys sorted) and a spec to rebuild the tree."""
    leaves = []
    return leaves, _walk(tree, leaves)


def _walk(node, leaves):
    # A module-level function, not a recursive closure: a closure that refers to
    # itself is a reference cycle, which would keep the leaves (and their graphs) alive.
    if isinstance(node, dict):
        keys = sorted(node)
        return ("dict", keys, [_walk(node[k], leaves) for k in keys])
    if isinstance(node, (list, tuple)) and not _is_namedtuple(node):
        return (type(node).__name__, None, [_walk(v, leaves) for v in node])
    if node is None:
        return ("none", None, None)
    leaves.append(node)
    return ("leaf", None, None)


def tree_unflatten(spec, leaves):
    return _build(spec, iter(leaves))


def _build(spec, leaves):
    kind, keys, children = spec
    if kind == "leaf":
        return next(leaves)
    if kind == "none":
        return None
    built = [_build(c, leaves) for c in children]
    if kind == "dict":
        return dict(zip(keys, built))
    return tuple(built) if kind == "tuple" else built


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf by leaf to trees of the same structure."""
    leaves, spec = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    for i, other in enumerate(others):
        if len(other) != len(leaves):
            raise ValueError(
                f"tree_map: tree {i + 1} has {len(other)} leaves but the first has {len(leaves)}"
            )
    return tree_unflatten(spec, [fn(*xs) for xs in zip(leaves, *others)])


def tree_leaves(tree):
    return tree_flatten(tree)[0]


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(x, "_fields")
