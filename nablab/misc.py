"""HIPS autograd's ``autograd.misc`` helpers by name, for code written for it.

``flatten(tree)`` is :func:`nablab.autodiff.tree.ravel_tree`: one vector of
all the leaves and a function that rebuilds the tree.

>>> from nablab.misc import flatten
>>> vec, unflatten = flatten((1.0, [2.0, 3.0]))
>>> unflatten(vec)
(np.float64(1.0), [np.float64(2.0), np.float64(3.0)])
"""

from nablab.autodiff.tree import ravel_tree as flatten

__all__ = ["flatten"]


def const_graph(fun, *args, **kwargs):
    """``fun`` traced once and then replayed: later calls rerun only the recorded primitives.

    Extra ``args``/``kwargs`` are fixed (as ``functools.partial`` would); the
    returned function takes the remaining positional arguments.  Python code
    between the primitives (control flow included) runs only on the first
    call, so the graph must not depend on the inputs' values.  Replays are
    differentiable like any other call.
    """
    import functools

    from nablab.autodiff.core import Node, Tensor, bind, close_level, new_level, toposort

    fixed = functools.partial(fun, *args, **kwargs)
    graph = {}

    def record(*xs):
        level = new_level()
        leaves = [Node.leaf() for _ in xs]
        try:
            out = fixed(*[Tensor(x, level, n) for x, n in zip(xs, leaves)])
        finally:
            close_level(level)
        if isinstance(out, Tensor) and out._level == level:
            graph["leaves"], graph["out"] = leaves, out._node
            graph["order"] = list(reversed(toposort([out._node])))
            return out._value
        graph["constant"] = out
        return out

    def replay(*xs):
        if "constant" in graph:
            return graph["constant"]
        values = dict(zip(graph["leaves"], xs))
        for node in graph["order"]:
            if node.prim is None:
                continue
            call_args = list(node.args)
            for argnum, parent in node.parents:
                call_args[argnum] = values[parent]
            values[node] = bind(node.prim, tuple(call_args), node.kwargs)
        return values[graph["out"]]

    @functools.wraps(fun)
    def wrapped(*xs):
        return replay(*xs) if graph else record(*xs)

    return wrapped


__all__ = ["flatten", "const_graph"]
