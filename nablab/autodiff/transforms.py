"""Function transforms: grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian, hvp.

Each call opens its own trace level (see :mod:`nablab.autodiff.core`), so the
transforms nest in any order: ``grad(grad(f))``, ``jacfwd(jacrev(f))``,
``jvp`` of ``grad``, ``grad`` of ``jvp``.  They accept NumPy arrays, Python
floats and nested dicts/lists/tuples of arrays, and give back NumPy arrays.

>>> import numpy as np, nablab as nb
>>> f = lambda x: nb.sum(x ** 3)
>>> nb.grad(f)(np.array([1.0, 2.0]))
array([ 3., 12.])
>>> nb.hessian(f)(np.array([1.0, 2.0]))
array([[ 6.,  0.],
       [ 0., 12.]])
"""

from __future__ import annotations

import functools
import math

import numpy as np

from nablab.autodiff import ops
from nablab.autodiff.core import (
    CONSTANT,
    Node,
    ShapeError,
    Tensor,
    backward,
    close_level,
    gc_paused,
    new_level,
    raw_value_of,
    shape_of,
)
from nablab.autodiff.tree import tree_flatten, tree_unflatten


def _as_input(x, who):
    """Check one input leaf of a transform and give it as a float array (or a box)."""
    if isinstance(x, Tensor):
        if x._level == CONSTANT:
            x = x._value
        else:
            return x
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{who} is a bool ({x}); derivatives need a floating-point value")
    if isinstance(x, (int, float)):
        return np.float64(x)
    if isinstance(x, complex):
        return np.complex128(x)
    if isinstance(x, np.generic) and x.dtype.kind in "fc":
        return x
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        raise TypeError(
            f"{who} is an array of dtype {arr.dtype} (shape {arr.shape}); a derivative with "
            "respect to integers is not defined. Pass floats, e.g. x.astype(np.float64)"
        )
    if arr.dtype.kind not in "fc":
        raise TypeError(f"{who} has dtype {arr.dtype}; derivatives need floating-point or complex input")
    # A snapshot: the rules read these values when the VJP runs, perhaps after the caller
    # changed its own array; a read-only copy can't change under them.
    if arr.flags.writeable:
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


def _in_dtype_of(ct, x):
    """A cotangent in its input's floating type (float32 in, float32 gradient out, as PyTorch)."""
    dtype = getattr(raw_value_of(x), "dtype", None)
    ct_dtype = getattr(raw_value_of(ct), "dtype", None)
    if dtype is None or ct_dtype is None or ct_dtype == dtype or dtype.kind != ct_dtype.kind:
        return ct
    return ct.astype(dtype) if not isinstance(ct, Tensor) else ops.astype(ct, dtype)


def _dtype(x):
    """The dtype of a box, an array or a number (without reading a batched value as one array)."""
    return np.asarray(raw_value_of(x)).dtype


def _exit(x):
    """What a transform hands back: constants lose their box."""
    if isinstance(x, Tensor) and x._level == CONSTANT:
        return x._value
    return x


def _pick_argnums(argnums, argnum):
    """``argnums`` (JAX's name) or ``argnum`` (HIPS autograd's); a list means a tuple."""
    if argnum is not None:
        argnums = argnum
    return tuple(argnums) if isinstance(argnums, list) else argnums


def _argnums_tuple(argnums, nargs, who):
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    for n in nums:
        if not -nargs <= n < nargs:
            raise IndexError(f"{who}: argnums={argnums} but the function was called with {nargs} arguments")
    return tuple(n % nargs for n in nums)


def vjp(f, *primals):
    """Evaluate ``f(*primals)`` and return ``(out, vjp_fn)``.

    ``vjp_fn(cotangent)`` gives the tuple of cotangents of the primals (one per
    primal, each shaped like it): the row vector ``cotangent^T J``.

    >>> import numpy as np, nablab as nb
    >>> out, vjp_fn = nb.vjp(lambda x: x * x, np.array([1.0, 3.0]))
    >>> vjp_fn(np.array([1.0, 1.0]))
    (array([2., 6.]),)
    """
    level = new_level()
    leaves_per_primal, specs, leaf_nodes, boxed = [], [], [], []
    for i, primal in enumerate(primals):
        leaves, spec = tree_flatten(primal)
        inputs = [_as_input(leaf, f"vjp: primal {i}") for leaf in leaves]
        nodes = [Node.leaf(v) for v in inputs]
        leaves_per_primal.append(inputs)
        specs.append(spec)
        leaf_nodes.append(nodes)
        boxed.append(tree_unflatten(spec, [Tensor(v, level, n) for v, n in zip(inputs, nodes)]))
    try:
        with gc_paused():
            out = f(*boxed)
    finally:
        close_level(level)
    out_leaves, out_spec = tree_flatten(out)
    watched = [isinstance(o, Tensor) and o._level == level for o in out_leaves]
    out_values = [o._value if w else _exit(o) for o, w in zip(out_leaves, watched)]

    def vjp_fn(cotangent):
        ct_leaves, _ = tree_flatten(cotangent)
        if len(ct_leaves) != len(out_leaves):
            raise ValueError(
                f"vjp_fn: the output has {len(out_leaves)} arrays but the cotangent has {len(ct_leaves)}"
            )
        roots, seeds = [], []
        for k, (o, w, ct, val) in enumerate(zip(out_leaves, watched, ct_leaves, out_values)):
            if shape_of(ct) != shape_of(val):
                raise ShapeError(
                    f"vjp_fn: cotangent {k} has shape {shape_of(ct)} but output {k} has shape {shape_of(val)}"
                )
            if w:
                roots.append(o._node)
                seeds.append(ct if isinstance(ct, Tensor) else np.asarray(ct, dtype=_dtype(val)))
        grads = backward(roots, seeds) if roots else {}
        result = []
        for inputs, nodes, spec in zip(leaves_per_primal, leaf_nodes, specs):
            cts = [_in_dtype_of(_exit(grads[n]), v) if n in grads else ops.zeros_like(v)
                   for v, n in zip(inputs, nodes)]
            result.append(tree_unflatten(spec, cts))
        return tuple(result)

    return tree_unflatten(out_spec, out_values), vjp_fn


def jvp(f, primals, tangents):
    """Forward mode: ``(f(*primals), J @ tangents)`` in one pass.

    >>> import numpy as np, nablab as nb
    >>> nb.jvp(nb.sin, (np.array([0.0, np.pi]),), (np.array([2.0, 1.0]),))
    (array([0.0000000e+00, 1.2246468e-16]), array([ 2., -1.]))
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    level = new_level(forward=True)
    boxed = []
    try:
        for i, (primal, tangent) in enumerate(zip(primals, tangents)):
            p_leaves, spec = tree_flatten(primal)
            t_leaves, _ = tree_flatten(tangent)
            if len(p_leaves) != len(t_leaves):
                raise ValueError(f"jvp: primal {i} has {len(p_leaves)} arrays but its tangent {len(t_leaves)}")
            leaves = []
            for p, t in zip(p_leaves, t_leaves):
                p = _as_input(p, f"jvp: primal {i}")
                if shape_of(t) != shape_of(p):
                    raise ShapeError(f"jvp: tangent {i} has shape {shape_of(t)} but primal {i} has shape {shape_of(p)}")
                if not isinstance(t, Tensor):
                    t = np.asarray(t, dtype=_dtype(p))
                leaves.append(Tensor(p, level, None, t))
            boxed.append(tree_unflatten(spec, leaves))
        out = f(*boxed)
    finally:
        close_level(level)
    out_leaves, out_spec = tree_flatten(out)
    values, tangents_out = [], []
    for o in out_leaves:
        if isinstance(o, Tensor) and o._level == level:
            values.append(o._value)
            tangents_out.append(o._tangent)
        else:
            values.append(_exit(o))
            tangents_out.append(ops.zeros_like(o))
    return tree_unflatten(out_spec, values), tree_unflatten(out_spec, tangents_out)


def _check_scalar_output(out, who, allow_complex=False):
    if isinstance(out, (dict, list, tuple)):
        raise TypeError(
            f"{who}: the function must return a scalar, but it returned a container; "
            "use jacrev / jacfwd / vjp for several outputs, or sum them"
        )
    value = np.asarray(raw_value_of(out))  # inside vmap: every example's value
    shape = shape_of(out)
    if value.dtype.kind == "b":
        raise TypeError(f"{who}: the function returned a boolean ({value}), which has no derivative")
    if math.prod(shape) != 1:
        raise TypeError(
            f"{who}: the function must return a scalar (or one value of any shape), but it "
            f"returned shape {shape}; use jacrev / jacfwd / vjp for vector outputs, or sum the output"
        )
    if value.dtype.kind == "c" and not allow_complex:
        raise TypeError(
            f"{who}: the function returned a complex value; grad needs a real one. Take "
            "nablab.numpy.real or abs of it, or use holomorphic_grad for a holomorphic function"
        )


def _name_after(prefix, f, argnums):
    name = getattr(f, "__name__", type(f).__name__)
    nums = "_".join(str(n) for n in ((argnums,) if isinstance(argnums, int) else argnums))
    return f"{prefix}_of_{name}_wrt_argnum_{nums}"


def _wraps(f, name):
    """Name the transformed function after what it computes, and say so in its docstring."""

    def decorate(wrapper):
        try:
            functools.update_wrapper(wrapper, f)
        except (AttributeError, TypeError):  # functools.partial and other callables
            pass
        wrapper.__name__ = wrapper.__qualname__ = name
        what, _, rest = name.partition("_of_")
        fname, _, nums = rest.rpartition("_wrt_argnum_")
        if fname:
            own = getattr(f, "__doc__", None)
            wrapper.__doc__ = (f"    {what} of function {fname} with respect to argument number "
                               f"{nums.replace('_', ', ')}." + (f" Docstring of {fname}:\n{own}" if own else ""))
        return wrapper

    return decorate


def _value_and_grad(f, argnums, who, allow_complex=False):
    def wrapped(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args), who)

        def restricted(*diff):
            full = list(args)
            for n, d in zip(nums, diff):
                full[n] = d
            return f(*full, **kwargs)

        out, vjp_fn = vjp(restricted, *[args[n] for n in nums])
        _check_scalar_output(out, who, allow_complex)
        grads = vjp_fn(ops.ones_like(out))
        return out, grads[0] if isinstance(argnums, (int, np.integer)) else grads

    return wrapped


def value_and_grad(f, argnums=0, *, argnum=None):
    """``f`` and its gradient in one reverse pass; ``f`` must return one real value.

    ``argnums`` (or ``argnum``) picks the arguments: an int gives one gradient,
    a tuple or list gives a tuple.

    >>> import nablab as nb
    >>> nb.value_and_grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 5.0)
    (np.float64(10.0), (np.float64(5.0), np.float64(2.0)))
    """
    argnums = _pick_argnums(argnums, argnum)
    return _wraps(f, _name_after("value_and_grad", f, argnums))(_value_and_grad(f, argnums, "grad"))


def grad(f, argnums=0, *, argnum=None):
    """
    Returns a function which computes the gradient of ``f`` with respect to the
    argument(s) ``argnums``; ``f`` must return one real value.

    The output may have any shape of size 1; a complex output is refused (use
    :func:`holomorphic_grad`).  For complex inputs the result follows HIPS
    autograd's convention: ``df/dx - i df/dy`` for a real ``f`` of ``z = x + iy``.

    >>> import nablab as nb
    >>> float(nb.grad(nb.grad(nb.tanh))(0.5))  # second derivative
    -0.7268...
    """
    argnums = _pick_argnums(argnums, argnum)
    vg = _value_and_grad(f, argnums, "grad")

    @_wraps(f, _name_after("grad", f, argnums))
    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped


def _flat_basis(n, dtype):
    return np.eye(n, dtype=dtype)


#: jacrev and jacfwd take every row (column) at once through vmap when there are at least this
#: many; below it one VJP (JVP) each is as fast (see benchmarks/transforms.py).
VMAP_FROM = 2


def _batching():
    from nablab.autodiff import batching  # imports this module: bound on first use

    return batching


def jacrev(f, argnums=0, *, argnum=None):
    """The Jacobian by reverse mode, one VJP per output entry.

    The result has shape ``out.shape + x.shape``.

    ``f`` is differentiated with respect to its argument(s) ``argnums`` (``argnum`` is HIPS
    autograd's spelling of the same), and the result is a function of ``f``'s arguments.

    >>> import numpy as np, nablab as nb
    >>> f = lambda x: nb.stack([x[0] * x[1], nb.sin(x[0])])
    >>> nb.jacrev(f)(np.array([0.0, 2.0]))
    array([[2., 0.],
           [1., 0.]])
    """
    argnums = _pick_argnums(argnums, argnum)

    @_wraps(f, _name_after("jacrev", f, argnums))
    def wrapped(*args):
        (num,) = _argnums_tuple(argnums, len(args), "jacrev")

        def restricted(x):
            full = list(args)
            full[num] = x
            return f(*full)

        x = args[num]
        out, vjp_fn = vjp(restricted, x)
        out_shape, x_shape = shape_of(out), shape_of(_as_input(x, "jacrev: argument"))
        n_out = int(np.prod(out_shape))
        basis = _flat_basis(n_out, np.result_type(_dtype(out), np.float64))
        if n_out == 0:
            return np.zeros(out_shape + x_shape)
        if n_out >= VMAP_FROM:  # every row in one batched reverse pass
            rows = _batching().vmap(lambda ct: vjp_fn(ct)[0])(basis.reshape((n_out,) + out_shape))
            return _exit(ops.reshape(rows, out_shape + x_shape))
        rows = [vjp_fn(basis[i].reshape(out_shape))[0] for i in range(n_out)]
        return _exit(ops.reshape(ops.stack(rows), out_shape + x_shape))

    return wrapped


def jacfwd(f, argnums=0, *, argnum=None):
    """The Jacobian by forward mode, one JVP per input entry (shape ``out.shape + x.shape``).

    ``argnums`` (or ``argnum``) as for :func:`jacrev`, with which it agrees.

    >>> import numpy as np, nablab as nb
    >>> f = lambda x: nb.stack([x[0] * x[1], nb.sin(x[0])])
    >>> nb.jacfwd(f)(np.array([0.0, 2.0]))
    array([[2., 0.],
           [1., 0.]])
    """
    argnums = _pick_argnums(argnums, argnum)

    @_wraps(f, _name_after("jacfwd", f, argnums))
    def wrapped(*args):
        (num,) = _argnums_tuple(argnums, len(args), "jacfwd")

        def restricted(x):
            full = list(args)
            full[num] = x
            return f(*full)

        x = _as_input(args[num], "jacfwd: argument")
        x_shape = shape_of(x)
        n_in = int(np.prod(x_shape))
        basis = _flat_basis(n_in, np.result_type(_dtype(x)))
        if n_in >= VMAP_FROM:  # every column in one batched forward pass (the primal computed once)
            cols = _batching().vmap(lambda t: jvp(restricted, (x,), (t,))[1])(basis.reshape((n_in,) + x_shape))
            out_shape = shape_of(cols)[1:]
            cols = ops.moveaxis(cols, 0, -1) if out_shape else cols
            return _exit(ops.reshape(cols, out_shape + x_shape))
        cols, out_shape = [], None
        for j in range(n_in):
            out, col = jvp(restricted, (x,), (basis[j].reshape(x_shape),))
            out_shape = shape_of(out)
            cols.append(col)
        if not cols:
            out_shape = shape_of(restricted(x))
            return np.zeros(out_shape + x_shape)
        return _exit(ops.reshape(ops.stack(cols, axis=-1), out_shape + x_shape))

    return wrapped


_HESSIAN_MODES = {
    "fwd-over-rev": lambda f, a: jacfwd(jacrev(f, a), a),
    "rev-over-rev": lambda f, a: jacrev(jacrev(f, a), a),
    "fwd-over-fwd": lambda f, a: jacfwd(jacfwd(f, a), a),
    "rev-over-fwd": lambda f, a: jacrev(jacfwd(f, a), a),
}


def hessian(f, argnums=0, mode="fwd-over-rev", *, argnum=None):
    """The matrix of second derivatives (shape ``x.shape + x.shape`` for scalar f).

    ``mode`` picks how the two differentiations nest; all four give the same
    matrix, which the tests check.

    >>> import numpy as np, nablab as nb
    >>> f = lambda x: x[0] ** 2 * x[1]
    >>> nb.hessian(f)(np.array([1.0, 3.0]))
    array([[6., 2.],
           [2., 0.]])
    >>> nb.hessian(f, mode="rev-over-rev")(np.array([1.0, 3.0]))[0, 1]
    np.float64(2.0)
    """
    if mode not in _HESSIAN_MODES:
        raise ValueError(f"hessian: mode={mode!r}; choose one of {sorted(_HESSIAN_MODES)}")
    return _HESSIAN_MODES[mode](f, _pick_argnums(argnums, argnum))


def hvp(f, x, v):
    """Hessian-vector product ``H(x) @ v`` by forward-over-reverse, without forming H.

    ``f`` is a scalar function, ``x`` the point and ``v`` a direction shaped like ``x``.

    >>> import numpy as np, nablab as nb
    >>> f = lambda x: x[0] ** 2 * x[1]
    >>> nb.hvp(f, np.array([1.0, 3.0]), np.array([1.0, 0.0]))
    array([6., 2.])
    """
    return jvp(grad(f), (x,), (v,))[1]
