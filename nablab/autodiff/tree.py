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
    """Leaves in a fixed order (dict keys sorted) and a spec to rebuild the tree.

    >>> import nablab as nb
    >>> leaves, spec = nb.tree_flatten({"b": [1, 2], "a": 3})
    >>> leaves
    [3, 1, 2]
    >>> nb.tree_unflatten(spec, [10, 20, 30])
    {'a': 10, 'b': [20, 30]}
    """
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
    """The tree that ``spec`` (from :func:`tree_flatten`) describes, with ``leaves`` in order.

    >>> import nablab as nb
    >>> leaves, spec = nb.tree_flatten((1.0, {"w": 2.0}))
    >>> nb.tree_unflatten(spec, [x * 10 for x in leaves])
    (10.0, {'w': 20.0})
    """
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
    """Apply ``fn`` leaf by leaf to trees of the same structure.

    >>> import nablab as nb
    >>> nb.tree_map(lambda p, g: p - 0.1 * g, {"w": 1.0, "b": [2.0]}, {"w": 1.0, "b": [5.0]})
    {'b': [1.5], 'w': 0.9}
    """
    leaves, spec = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    for i, other in enumerate(others):
        if len(other) != len(leaves):
            raise ValueError(
                f"tree_map: tree {i + 1} has {len(other)} leaves but the first has {len(leaves)}"
            )
    return tree_unflatten(spec, [fn(*xs) for xs in zip(leaves, *others)])


def tree_leaves(tree):
    """The leaves of ``tree`` in :func:`tree_flatten`'s order (dict keys sorted).

    >>> import nablab as nb
    >>> nb.tree_leaves({"w": [1.0, 2.0], "b": 0.5})
    [0.5, 1.0, 2.0]
    """
    return tree_flatten(tree)[0]


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(x, "_fields")


def ravel_tree(tree):
    """One flat vector of every leaf, and the function that rebuilds the tree from such a vector.

    Differentiable both ways (traced leaves give a traced vector), so an
    optimizer written for vectors can train a dict of parameters.

    >>> import numpy as np
    >>> vec, unravel = ravel_tree({"w": np.array([[1.0, 2.0]]), "b": 3.0})
    >>> vec
    array([3., 1., 2.])
    >>> unravel(vec * 10)
    {'b': np.float64(30.0), 'w': array([[10., 20.]])}
    """
    import numpy as np

    from nablab.numpy import concatenate, ravel, reshape
    from nablab.autodiff.core import shape_of

    leaves, spec = tree_flatten(tree)
    shapes = [shape_of(leaf) for leaf in leaves]
    sizes = [int(np.prod(s)) for s in shapes]
    if leaves:
        flat = concatenate([ravel(leaf) for leaf in leaves])
    else:
        flat = np.zeros(0)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    def unravel(vector):
        parts = [reshape(vector[offsets[i]:offsets[i + 1]], shape) if shape else vector[offsets[i]]
                 for i, shape in enumerate(shapes)]
        return tree_unflatten(spec, parts)

    return flat, unravel
