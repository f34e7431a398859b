"""``vmap``: a batch level in the engine, with a batching rule per primitive.

A call of ``vmap(f)`` opens a *batch level*, as ``grad`` opens a reverse level
and ``jvp`` a forward level (see :mod:`nablab.autodiff.core`).  Each mapped
argument enters ``f`` as a :class:`BatchTensor` at that level: a box whose value
holds every example, the batch along axis 0 of the value beneath it.  Inside
``f`` the box looks like one example (its ``shape`` leaves the batch axis out).
A primitive applied to such boxes is not run once per example: its *batching
rule* gets the unboxed values (the batch first on the batched ones) and computes
every example at once with the same primitives, so the lower levels record it
and ``grad``, ``jvp`` and ``vmap`` itself nest around and inside ``vmap`` in any
order.  This is the design of JAX's batching interpreter; nablab keeps the batch
axis always first (JAX lets it sit anywhere), which keeps each rule short at the
price of an occasional ``moveaxis`` (a view).

Values without a derivative (comparisons, ``argmax``, ``floor``, masks a
derivative rule computes) stay batched too: stripping a value of its derivative
levels (``value_of``) keeps its batch boxes, and the functions nablab marks
``nondifferentiable`` have batching of their own.  A batched value never turns
into a single NumPy array unasked: ``np.asarray``, ``float`` and ``bool`` of one
raise :class:`~nablab.autodiff.core.BatchedValueError`.

:func:`nablab.custom_vjp`, :func:`nablab.custom_jvp` and :func:`nablab.checkpoint`
called on batched values with a derivative taken outside the ``vmap`` become the
same decorator of the batched function and rules (see the end of this module).

A primitive without a rule falls back to a Python loop over the batch (correct,
slow), and says so once with a warning naming it; :func:`missing_rules` lists
the primitives without a rule.  A derivative rule that needs a plain array of a
batched value is run example by example the same way.

>>> import numpy as np, nablab as nb
>>> x = np.arange(6.0).reshape(3, 2)
>>> nb.vmap(lambda row: nb.sum(row ** 2))(x)
array([ 1., 13., 41.])
>>> nb.vmap(nb.grad(lambda w, xi: nb.sum(nb.tanh(xi @ w))), in_axes=(None, 0))(np.ones(2), x).shape
(3, 2)
"""

from __future__ import annotations

import builtins
import math
import warnings

import numpy as np

from nablab.autodiff import core
from nablab.autodiff.core import (
    BatchedValueError,
    Primitive,
    Tensor,
    _batch,
    _batch_levels,
    close_level,
    raw_value_of,
)
from nablab.autodiff.tree import tree_flatten, tree_unflatten
from nablab.errors import ShapeError

# --------------------------------------------------------------------------- the box


class BatchTensor(Tensor):
    """A value batched by ``vmap``: one example per entry of axis 0 of ``_value``.

    It behaves as one example: ``shape`` and ``ndim`` are an example's, and every
    operation on it is batched.  Asking for its single NumPy value raises.

    >>> import numpy as np, nablab as nb
    >>> seen = []
    >>> _ = nb.vmap(lambda x: seen.append((type(x).__name__, x.shape)) or x)(np.zeros((5, 2, 3)))
    >>> seen
    [('BatchTensor', (2, 3))]
    """

    __slots__ = ()

    def __init__(self, value, level):
        self._value = value
        self._level = level
        self._node = None
        self._tangent = None

    @property
    def shape(self):
        return _shape_of(self)

    def _refuse(self, what):
        size = _batch_levels.get(self._level)
        err = BatchedValueError(
            f"{what} of a value batched by vmap (batch size {size}, example shape "
            f"{self.shape}): inside vmap it is one value per example and has no single NumPy "
            "value. Compute with nablab's functions on it, use nablab.where instead of an "
            "if on it, or return it from the vmapped function."
        )
        err.level = self._level
        raise err

    def __array__(self, dtype=None, copy=None):
        self._refuse("conversion to a NumPy array")

    def __bool__(self):
        self._refuse("bool()")

    def __float__(self):
        self._refuse("float()")

    def __int__(self):
        self._refuse("int()")

    def __complex__(self):
        self._refuse("complex()")

    def __index__(self):
        self._refuse("use as an index")

    def item(self):
        self._refuse("item()")

    def tolist(self):
        self._refuse("tolist()")

    def numpy(self):
        self._refuse("numpy()")

    def _readonly(self):
        self._refuse("reading the NumPy value")

    def __round__(self, ndigits=None):
        return apply_nondiff(np.round, (self,), {} if ndigits is None else {"decimals": ndigits})

    def __repr__(self):
        body = np.array2string(np.asarray(raw_value_of(self)), separator=", ", prefix="tensor(")
        return (f"tensor({body}, batched by vmap at level {self._level}: "
                f"{_batch_levels.get(self._level, '?')} examples of shape {self.shape})")

    # comparisons and logic: no derivative, but one result per example
    def __lt__(self, other):
        return apply_nondiff(np.less, (self, other), {})

    def __le__(self, other):
        return apply_nondiff(np.less_equal, (self, other), {})

    def __gt__(self, other):
        return apply_nondiff(np.greater, (self, other), {})

    def __ge__(self, other):
        return apply_nondiff(np.greater_equal, (self, other), {})

    def __eq__(self, other):
        return apply_nondiff(np.equal, (self, other), {})

    def __ne__(self, other):
        return apply_nondiff(np.not_equal, (self, other), {})

    def __and__(self, other):
        return apply_nondiff(np.bitwise_and, (self, other), {})

    def __rand__(self, other):
        return apply_nondiff(np.bitwise_and, (other, self), {})

    def __or__(self, other):
        return apply_nondiff(np.bitwise_or, (self, other), {})

    def __ror__(self, other):
        return apply_nondiff(np.bitwise_or, (other, self), {})

    def __xor__(self, other):
        return apply_nondiff(np.bitwise_xor, (self, other), {})

    def __invert__(self):
        return apply_nondiff(np.invert, (self,), {})

    __hash__ = Tensor.__hash__


# --------------------------------------------------------------------------- hooks in the core


def _value_of(x):
    """``value_of`` inside vmap: strip the derivative boxes, keep the batch boxes."""
    levels = []
    while isinstance(x, Tensor):
        if x._level in _batch_levels:
            if not levels and not isinstance(x._value, Tensor):
                return x  # the usual case: a batch box straight on an array
            levels.append(x._level)
        x = x._value
    for level in reversed(levels):
        x = BatchTensor(x, level)
    return x


def _shape_of(x):
    """An example's shape: the array's shape less one leading axis per batch box."""
    count = 0
    while isinstance(x, Tensor):
        if x._level in _batch_levels:
            count += 1
        x = x._value
    try:
        shape = x.shape
    except AttributeError:
        shape = np.shape(x)
    return shape[count:]


def _bind(prim, args, kwargs, level):
    """Apply ``prim`` at batch level ``level``: unbox, run its batching rule, box."""
    size = _batch_levels[level]
    vals = list(args)
    batched = [False] * len(args)
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a._level == level:
            vals[i] = a._value
            batched[i] = True
    rule = _RULES.get(prim)
    if rule is None:
        rule = _generic_rule(prim)
    out = rule(prim, vals, batched, kwargs, size)
    shape = core.shape_of(out)
    if not shape or shape[0] != size:  # a rule that lost the batch would give wrong numbers
        raise RuntimeError(f"vmap: the batching rule of {prim.name} returned shape {tuple(shape)}, which does "
                           f"not start with the batch of {size}")
    return BatchTensor(out, level)


_batch.bind = _bind
_batch.value_of = _value_of
_batch.shape_of = _shape_of


# --------------------------------------------------------------------------- helpers for rules


def _shape(x):
    return core.shape_of(x)


def _ndim(x):
    return len(core.shape_of(x))


def _np():
    import nablab.numpy as nnp

    return nnp


def _with_rank(v, rank, size):
    """A batched value ``v`` (batch first) with axes of length 1 inserted after the batch up to ``rank`` example axes."""
    shape = _shape(v)
    missing = rank - (len(shape) - 1)
    if missing <= 0:
        return v
    return _reshape_p()(v, (size,) + (1,) * missing + tuple(shape[1:]))


def _materialize(v, b, size):
    """``v`` with a batch axis first: batched values as they are, others broadcast."""
    if b:
        return v
    shape = _shape(v)
    return _np().broadcast_to(v, (size,) + tuple(shape))


def _norm_axis(axis, ndim, who):
    if not -ndim <= axis < builtins.max(ndim, 1):
        raise np.exceptions.AxisError(f"{who}: axis {axis} is out of bounds for an example of {ndim} dimensions")
    return axis % ndim if ndim else 0


_prims = {}


def _reshape_p():
    return _prims["reshape"]


# --------------------------------------------------------------------------- rules


#: primitive -> batching rule ``rule(prim, vals, batched, kwargs, size)`` returning the
#: result with the batch axis first.  ``vals`` are the arguments unboxed at the batch level;
#: ``batched[i]`` says whether argument ``i`` carries the batch (first axis).
_RULES: dict = {}


def register(prim, rule):
    """Give ``prim`` a batching rule (see :data:`_RULES`); returns ``prim``.

    >>> import numpy as np, nablab as nb
    >>> from nablab.autodiff.core import primitive
    >>> @primitive
    ... def row_norms(x):                       # the norm of each row of a matrix
    ...     return np.sqrt(np.sum(x * x, axis=-1))
    >>> _ = nb.vmap.register(row_norms, lambda prim, vals, batched, kwargs, size: prim(vals[0]))
    >>> nb.vmap(row_norms)(np.ones((2, 3, 4)))  # acts on the last axis: batched as it is
    array([[2., 2., 2.],
           [2., 2., 2.]])
    """
    _RULES[prim] = rule
    return prim


def elementwise_rule(prim, vals, batched, kwargs, size):
    """Broadcasting primitives: align each batched argument's example axes with the others' and apply once."""
    ranks = []
    for v in vals:
        try:
            ranks.append(_ndim(v))
        except Exception:  # a dtype or another non-array argument
            ranks.append(0)
    rank = builtins.max(r - (1 if b else 0) for r, b in zip(ranks, batched))
    new = [(_with_rank(v, rank, size) if b else v) for v, b in zip(vals, batched)]
    return prim(*new, **kwargs)


_warned: set = set()
_fallbacks_used: dict = {}


def _warn_loop(name, what="primitive", why=None):
    """Count a fall back to the Python loop, and say so the first time for ``name``."""
    key = name if what == "primitive" else f"{name} ({what})"
    _fallbacks_used[key] = _fallbacks_used.get(key, 0) + 1
    why = why or "has no batching rule"
    if (key, why) not in _warned:
        _warned.add((key, why))
        warnings.warn(
            f"vmap: the {what} {name} {why}; it runs in a Python loop over the batch (correct, "
            "but slow). nablab.vmap.missing_rules() lists the primitives without a rule.",
            RuntimeWarning, stacklevel=4,
        )


def _slice(v, i):
    """Example ``i`` of a batched value (a differentiable slice)."""
    return _prims["getitem"](v, i)


def _stack(parts):
    if isinstance(parts[0], tuple):
        return tuple(_stack([p[k] for p in parts]) for k in range(len(parts[0])))
    return _prims["stack"](*parts, axis=0)


def loop_rule(prim, vals, batched, kwargs, size):
    """The fallback: apply ``prim`` example by example and stack the results."""
    _warn_loop(prim.name)
    if size == 0:
        raise ShapeError(f"vmap: {prim.name} has no batching rule and the batch is empty")
    parts = [prim(*[_slice(v, i) if b else v for v, b in zip(vals, batched)], **kwargs) for i in range(size)]
    return _stack(parts)


def _generic_rule(prim):
    """The rule of a primitive not in the table: by kind, by module and name, or the loop."""
    if isinstance(prim.fn, np.ufunc) or prim.name.startswith("scipy.special."):
        return elementwise_rule
    rule = _RULES_BY_NAME.get((getattr(prim.fn, "__module__", None), prim.name))
    if rule is not None:
        _RULES[prim] = rule
        return rule
    return loop_rule


def missing_rules():
    """Names of the primitives known to nablab that have no batching rule (they run in a loop under vmap).

    >>> import nablab as nb
    >>> "add" in nb.vmap.missing_rules(), "matmul" in nb.vmap.missing_rules()
    (False, False)
    """
    _load_families()
    import gc

    names = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance on some libraries' deprecated objects warns
        for obj in gc.get_objects():
            if isinstance(obj, Primitive) and obj not in _RULES and _generic_rule(obj) is loop_rule:
                names.add(obj.name)
    return sorted(names)


def fallbacks_used():
    """The primitives (and derivative rules) that ran in a loop under vmap so far, with how often.

    >>> import nablab as nb
    >>> isinstance(nb.vmap.fallbacks_used(), dict)
    True
    """
    return dict(_fallbacks_used)


def _load_families():
    import importlib

    for name in ("nablab.numpy", "nablab.scipy.special", "nablab.scipy.linalg", "nablab.scipy.signal",
                 "nablab.nn"):
        try:
            importlib.import_module(name)
        except Exception:  # pragma: no cover - a family that fails to import has no primitives to list
            pass


# --------------------------------------------------------------------------- values without a derivative


def _top_batch_level(obj):
    top = None
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, Tensor):
            if o._level in _batch_levels and (top is None or o._level > top):
                top = o._level
        elif type(o) in (list, tuple):
            stack.extend(o)
        elif type(o) is dict:
            stack.extend(o.values())
    return top


def _unbox_level(obj, level):
    """(values with ``level``'s box removed, whether anything was)."""
    if isinstance(obj, Tensor) and obj._level == level:
        return obj._value, True
    if type(obj) in (list, tuple):
        parts = [_unbox_level(o, level) for o in obj]
        return type(obj)(p for p, _ in parts), builtins.any(b for _, b in parts)
    if type(obj) is dict:
        parts = {k: _unbox_level(v, level) for k, v in obj.items()}
        return {k: p for k, (p, _) in parts.items()}, builtins.any(b for _, b in parts.values())
    return obj, False


#: NumPy functions without a derivative whose ``axis`` is at this position (and its default).
_AXIS_FUNCTIONS = {}


def _fill_axis_functions():
    for fn, pos, default in ((np.argmax, 1, None), (np.argmin, 1, None), (np.any, 1, None),
                             (np.all, 1, None), (np.argsort, 1, -1), (np.count_nonzero, 1, None),
                             (np.sort, 1, -1)):
        _AXIS_FUNCTIONS[fn] = (pos, default)


_fill_axis_functions()

#: NumPy functions of their arguments' shapes and dtypes only, and those making an array like one.
_SHAPE_ONLY = {np.result_type, np.shape, np.ndim, np.size, np.iscomplexobj, np.isrealobj, np.min_scalar_type,
               np.can_cast}
_LIKE = {np.ones_like, np.zeros_like, np.empty_like, np.full_like}


def _wrap(result, level):
    if isinstance(result, tuple):
        return tuple(BatchTensor(r, level) for r in result)
    return BatchTensor(result, level)


def apply_nondiff(fn, args, kwargs):
    """``fn(*args, **kwargs)`` for a NumPy function without a derivative, example by example in effect.

    Derivative boxes are stripped; batch boxes are kept: a ufunc broadcasts the
    examples against each other, ``argmax``-like functions move their axis past
    the batch, anything else runs in a loop (with a warning naming it).
    """
    from nablab.autodiff.dispatch import unbox_all

    args, kwargs = unbox_all(tuple(args)), unbox_all(dict(kwargs))
    level = _top_batch_level((args, kwargs))
    if level is None:
        return fn(*args, **kwargs)
    size = _batch_levels[level]
    if isinstance(fn, np.ufunc) and args and not kwargs.get("out"):
        vals, batched = zip(*[_unbox_level(a, level) for a in args])
        if any(batched) and not any(_unbox_level(v, level)[1] for v in kwargs.values()):
            ranks = [_ndim(v) - (1 if b else 0) for v, b in zip(vals, batched)]
            rank = builtins.max(ranks)
            new = [_with_rank_plain(v, rank, size) if b else v for v, b in zip(vals, batched)]
            return _wrap(apply_nondiff(fn, new, kwargs), level)
    if fn in _AXIS_FUNCTIONS and len(args) >= 1 and isinstance(args[0], Tensor) and args[0]._level == level \
            and _top_batch_level((args[1:], kwargs)) is None:
        pos, default = _AXIS_FUNCTIONS[fn]
        kwargs = dict(kwargs)
        rest = list(args[1:])
        axis = rest.pop(0) if len(rest) >= pos else kwargs.pop("axis", default)
        x = args[0]._value
        rank = _ndim(x) - 1
        if axis is None:
            if fn in (np.any, np.all, np.count_nonzero):
                axis = tuple(range(1, rank + 1))
            else:
                x = _reshape_plain(x, (size, -1))
                axis = 1
        elif isinstance(axis, (tuple, list)):
            axis = tuple(_norm_axis(a, rank, fn.__name__) + 1 for a in axis)
        else:
            axis = _norm_axis(int(axis), rank, fn.__name__) + 1
        return _wrap(apply_nondiff(fn, (x, *rest), {**kwargs, "axis": axis}), level)
    if fn in _SHAPE_ONLY or fn in _LIKE:
        # what these give depends on an example's shape and dtype only: the same for every example
        def example(obj):
            if isinstance(obj, Tensor):
                return np.empty(_shape(obj), np.asarray(raw_value_of(obj)).dtype)
            if type(obj) in (list, tuple):
                return type(obj)(example(o) for o in obj)
            return obj

        if fn in _SHAPE_ONLY or _top_batch_level((args[1:], kwargs)) is None:
            return fn(*example(args), **kwargs)
    # Anything else: one example at a time.
    _warn_loop(f"{getattr(fn, '__module__', 'numpy') or 'numpy'}.{getattr(fn, '__name__', fn)}",
               "function without a derivative")
    def example(obj, i):
        if isinstance(obj, Tensor) and obj._level == level:
            return obj._value[i]
        if type(obj) in (list, tuple):
            return type(obj)(example(o, i) for o in obj)
        if type(obj) is dict:
            return {k: example(v, i) for k, v in obj.items()}
        return obj

    parts = [apply_nondiff(fn, example(args, i), example(kwargs, i)) for i in range(size)]
    if isinstance(parts[0], tuple):
        return tuple(_wrap(_stack_plain([p[k] for p in parts]), level) for k in range(len(parts[0])))
    return _wrap(_stack_plain(parts), level)


def _reshape_plain(v, shape):
    return v.reshape(shape) if not isinstance(v, Tensor) else _reshape_p()(v, shape)


def _with_rank_plain(v, rank, size):
    shape = _shape(v)
    missing = rank - (len(shape) - 1)
    if missing <= 0:
        return v
    return _reshape_plain(v, (size,) + (1,) * missing + tuple(shape[1:]))


def _stack_plain(parts):
    if any(isinstance(p, Tensor) for p in parts):
        return _prims["stack"](*parts, axis=0)
    return np.stack([np.asarray(p) for p in parts])


# --------------------------------------------------------------------------- derivative rules, example by example


def _example_of(obj, level, i):
    if isinstance(obj, Tensor) and obj._level == level:
        return _slice(obj._value, i)
    if type(obj) in (list, tuple):
        return type(obj)(_example_of(o, level, i) for o in obj)
    return obj


def rule_per_example(rule, prim, args, kwargs, err):
    """Run a derivative rule that needs plain arrays example by example (the batch outermost only).

    Otherwise ``err`` goes on to the ``vmap`` of its level, which then runs its whole
    function example by example.
    """
    level = _top_batch_level(list(args))
    if level is None or getattr(err, "level", None) != level or not _outermost(args, level):
        raise err
    _warn_loop(f"{prim.name}", "derivative rule of", "needs a plain array of a batched argument")
    size = _batch_levels[level]
    parts = [rule(*_example_of(args, level, i), **kwargs) for i in range(size)]
    return BatchTensor(_stack(parts), level)


def _outermost(args, level):
    """Whether no argument has a box above ``level`` (so slicing at ``level`` reaches every batch)."""
    stack = list(args)
    while stack:
        o = stack.pop()
        if isinstance(o, Tensor):
            if o._level > level and o._level in core._live_levels:
                return False
        elif type(o) in (list, tuple):
            stack.extend(o)
    return True


_batch.rule_per_example = rule_per_example


# --------------------------------------------------------------------------- vmap itself


def _axes_per_leaf(tree, axes, where, who):
    """The axis of each leaf of ``tree``: ``axes`` is a prefix of the tree (an int or None applies to a whole subtree)."""
    if axes is None or isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        leaves, _ = tree_flatten(tree)
        return [None if axes is None else int(axes)] * len(leaves)
    if isinstance(axes, dict):
        if not isinstance(tree, dict) or set(axes) != set(tree):
            raise ValueError(f"vmap: {who} at {where} is a dict with keys {sorted(axes)}, but the value there is "
                             f"{_describe_node(tree)}")
        out = []
        for k in sorted(tree):
            out += _axes_per_leaf(tree[k], axes[k], f"{where}[{k!r}]", who)
        return out
    if isinstance(axes, (list, tuple)):
        if not isinstance(tree, (list, tuple)) or len(tree) != len(axes):
            raise ValueError(f"vmap: {who} at {where} has {len(axes)} entries, but the value there is "
                             f"{_describe_node(tree)}")
        out = []
        for i, (t, a) in enumerate(zip(tree, axes)):
            out += _axes_per_leaf(t, a, f"{where}[{i}]", who)
        return out
    raise TypeError(f"vmap: {who} at {where} is {axes!r}; use an int, None, or a tuple/list/dict of them")


def _describe_node(tree):
    if isinstance(tree, dict):
        return f"a dict with keys {sorted(tree)}"
    if isinstance(tree, (list, tuple)):
        return f"a {type(tree).__name__} of {len(tree)}"
    return f"a single value of shape {core.shape_of(tree)}"


def _leaf_shape(x):
    if isinstance(x, Tensor):
        return core.shape_of(x)
    return np.shape(x)


def _move_to_front(x, axis):
    if axis == 0:
        return x if isinstance(x, Tensor) or isinstance(x, np.ndarray) else np.asarray(x)
    if isinstance(x, Tensor):
        return _np().moveaxis(x, axis, 0)
    return np.moveaxis(np.asarray(x), axis, 0)


def _move_from_front(x, axis):
    if axis == 0:
        return x
    if isinstance(x, Tensor):
        return _np().moveaxis(x, 0, axis)
    return np.moveaxis(x, 0, axis)


def _vmap_call(f, in_axes, out_axes, axis_size, args, kwargs, name):
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple):
        if len(in_axes) != len(args):
            raise ValueError(f"vmap of {name}: in_axes has {len(in_axes)} entries but the function was called "
                             f"with {len(args)} positional arguments")
        per_arg = in_axes
    else:
        per_arg = (in_axes,) * len(args)
    leaves, spec = tree_flatten(tuple(args))
    axes = []
    for i, (a, ax) in enumerate(zip(args, per_arg)):
        axes += _axes_per_leaf(a, ax, f"argument {i}", "in_axes")
    size = axis_size
    sizes = {}
    moved = []
    for k, (leaf, ax) in enumerate(zip(leaves, axes)):
        if ax is None:
            moved.append(leaf)
            continue
        shape = _leaf_shape(leaf)
        if not -len(shape) <= ax < len(shape):
            raise ValueError(f"vmap of {name}: in_axes={ax} for {_leaf_name(spec, args, k)}, which has shape "
                             f"{tuple(shape)} (it needs at least {ax + 1 if ax >= 0 else -ax} dimensions)")
        ax %= len(shape)
        sizes[_leaf_name(spec, args, k)] = (shape[ax], ax)
        moved.append((leaf, ax))
    lengths = {n for n, _ in sizes.values()}
    if axis_size is not None:
        lengths.add(int(axis_size))
    if len(lengths) > 1:
        detail = "; ".join(f"{who} has size {n} along axis {ax}" for who, (n, ax) in sizes.items())
        extra = f"; axis_size={axis_size}" if axis_size is not None else ""
        raise ValueError(f"vmap of {name}: the mapped axes have different sizes: {detail}{extra}")
    if not lengths:
        raise ValueError(f"vmap of {name}: no argument is mapped (every in_axes is None); give axis_size "
                         "or map at least one argument")
    (size,) = lengths
    level = core.new_batch_level(size)
    needs_loop = None
    try:
        boxed = [m if not isinstance(m, tuple) else BatchTensor(_move_to_front(*m), level) for m in moved]
        try:
            out = f(*tree_unflatten(spec, boxed), **kwargs)
        except BatchedValueError as err:
            if getattr(err, "level", None) != level:
                raise
            needs_loop = err
            out = None
        out_leaves, out_spec = tree_flatten(out)
        out_axes_list = _axes_per_leaf(out, out_axes, "the output", "out_axes") if needs_loop is None else []
        results = []
        for k, (o, ax) in enumerate(zip(out_leaves, out_axes_list)):
            _check_not_leaked(o, name, k)
            is_batched = isinstance(o, Tensor) and o._level == level
            if ax is None:
                if is_batched:
                    raise ValueError(f"vmap of {name}: out_axes is None for output leaf {k}, but it varies "
                                     "along the batch; give it an axis")
                results.append(o)
                continue
            if is_batched:
                v = o._value
            else:
                v = _materialize(o if isinstance(o, Tensor) else np.asarray(o), False, size)
            rank = len(core.shape_of(v))
            if not -rank <= ax < rank:
                raise ValueError(f"vmap of {name}: out_axes={ax} for output leaf {k}, which has "
                                 f"{rank - 1} dimensions per example")
            results.append(_move_from_front(v, ax % rank))
    finally:
        close_level(level)
    if needs_loop is not None:
        return _vmap_by_loop(f, spec, moved, size, out_axes, kwargs, name, needs_loop)
    return tree_unflatten(out_spec, [r._value if isinstance(r, Tensor) and r._level == core.CONSTANT else r
                                     for r in results])


def _origin(err):
    """``file:line in function`` where a batched value was refused (the innermost frame outside vmap)."""
    import os
    import traceback

    here = os.path.abspath(__file__)
    frames = [fr for fr in traceback.extract_tb(err.__traceback__) if os.path.abspath(fr.filename) != here]
    if not frames:
        return "?"
    fr = frames[-1]
    return f"{fr.filename}:{fr.lineno} in {fr.name}"


def _take(leaf, i, axis):
    if isinstance(leaf, Tensor):
        return _np().take(leaf, i, axis=axis)
    return np.take(np.asarray(leaf), i, axis=axis)


def _vmap_by_loop(f, spec, moved, size, out_axes, kwargs, name, err):
    """The last resort: ``f`` needed a plain array of a batched value, so run it example by example."""
    where = _origin(err)
    _warn_loop(name, "function", f"needs a plain array of a batched value (at {where})")
    outs = []
    for i in range(size):
        leaves = [m if not isinstance(m, tuple) else _take(m[0], i, m[1]) for m in moved]
        outs.append(f(*tree_unflatten(spec, leaves), **kwargs))
    if not outs:
        raise ShapeError(f"vmap of {name}: the batch is empty and {name} cannot be batched without a loop")
    per_example = [tree_flatten(o)[0] for o in outs]
    out_spec = tree_flatten(outs[0])[1]
    out_axes_list = _axes_per_leaf(outs[0], out_axes, "the output", "out_axes")
    results = []
    for k, ax in enumerate(out_axes_list):
        vals = [leaves[k] for leaves in per_example]
        if ax is None:
            first = vals[0]
            if any(v is not first and not np.array_equal(raw_value_of(v), raw_value_of(first)) for v in vals[1:]):
                raise ValueError(f"vmap of {name}: out_axes is None for output leaf {k}, but it varies "
                                 "along the batch; give it an axis")
            results.append(first)
            continue
        if any(isinstance(v, Tensor) for v in vals):
            stacked = _np().stack(vals)
        else:
            stacked = np.stack([np.asarray(v) for v in vals])
        rank = len(core.shape_of(stacked))
        if not -rank <= ax < rank:
            raise ValueError(f"vmap of {name}: out_axes={ax} for output leaf {k}, which has "
                             f"{rank - 1} dimensions per example")
        results.append(_move_from_front(stacked, ax % rank))
    return tree_unflatten(out_spec, results)


def _check_not_leaked(x, name, k):
    """Refuse an output holding a box of a level that has closed (a value that escaped its transform)."""
    while isinstance(x, Tensor):
        if x._level > core.IMPERATIVE and x._level not in core._live_levels:
            raise ValueError(
                f"vmap of {name}: output leaf {k} holds a value traced by a transform that has already "
                "returned (it escaped through a closure or a global); return it from that transform instead"
            )
        x = x._value


def _leaf_name(spec, args, k):
    # leaf k of the flattened arguments: say which positional argument it belongs to
    count = 0
    for i, a in enumerate(args):
        n = len(tree_flatten(a)[0])
        if k < count + n:
            return f"argument {i}" + (f" (leaf {k - count})" if n > 1 else "")
        count += n
    return f"leaf {k}"


def vmap(f, in_axes=0, out_axes=0, *, axis_size=None):
    name = getattr(f, "__name__", type(f).__name__)

    def batched(*args, **kwargs):
        return _vmap_call(f, in_axes, out_axes, axis_size, args, kwargs, name)

    batched.__name__ = batched.__qualname__ = f"vmap_of_{name}"
    own = getattr(f, "__doc__", None)
    batched.__doc__ = f"    vmap of function {name}." + (f" Docstring of {name}:\n{own}" if own else "")
    batched.__wrapped__ = f
    return batched


# the helpers, as attributes: nb.vmap.missing_rules()
vmap.missing_rules = missing_rules
vmap.fallbacks_used = fallbacks_used
vmap.register = register
vmap.__doc__ = """Vectorize ``f`` over an axis of its arguments: ``vmap(f)(xs)[i] == f(xs[i])``, in one pass.

``in_axes`` says which axis of each argument is the batch: an int for all, or a
tuple with one entry per positional argument, each an int, ``None`` (not mapped:
the same value for every example) or a tree (dict/list/tuple) of them matching
that argument's structure.  ``out_axes`` places the batch axis in the outputs the
same way (``None`` for an output that does not depend on the batch; an output
that does not depend on it but has an axis is repeated along it).  Keyword
arguments are passed unmapped, as in ``torch.func.vmap`` (JAX maps them along
axis 0).  Every mapped axis must have the same length (``axis_size`` gives it when
no argument is mapped).

No Python loop runs over the batch: each primitive has a batching rule.  Where
one is missing (``vmap.missing_rules()`` lists those primitives), or a function
needs a plain array of a batched value, ``vmap`` runs that part example by
example, correctly, and warns once naming it (``vmap.fallbacks_used()`` counts
them); ``vmap.register(prim, rule)`` adds a rule.  ``vmap`` nests with ``grad``,
``jvp``, ``vjp``, ``jacrev``, ``jacfwd``, ``hessian`` and itself in any order.

>>> import numpy as np, nablab as nb
>>> w = np.array([1.0, -1.0])
>>> xs = np.array([[1.0, 2.0], [3.0, 5.0], [0.0, 1.0]])
>>> nb.vmap(lambda x: nb.dot(w, x))(xs)
array([-1., -2., -1.])
>>> per_example = nb.vmap(nb.grad(lambda w, x: nb.tanh(nb.dot(w, x))), in_axes=(None, 0))
>>> per_example(w, xs).shape
(3, 2)
>>> nb.vmap(nb.outer, in_axes=(0, None))(xs, w).shape
(3, 2, 2)
>>> nb.vmap(lambda x: x.sum(), in_axes=1)(xs)
array([4., 8.])
"""


# --------------------------------------------------------------------------- the rules of nablab.numpy's primitives


def _axis_shift(axis, rank, who):
    """Per-example ``axis`` (int, tuple or None) -> the same axes of the batched value."""
    if axis is None:
        return tuple(range(1, rank + 1))
    if isinstance(axis, (tuple, list)):
        return tuple(_norm_axis(int(a), rank, who) + 1 for a in axis)
    return _norm_axis(int(axis), rank, who) + 1


def _reduction_rule(prim, vals, batched, kwargs, size):
    (x,) = vals[:1]
    rank = _ndim(x) - 1
    rest = list(vals[1:])
    kwargs = dict(kwargs)
    axis = rest.pop(0) if rest else kwargs.pop("axis", None)
    kwargs["axis"] = _axis_shift(axis, rank, prim.name)
    return prim(x, *rest, **kwargs)


def _cumulative_rule(prim, vals, batched, kwargs, size):
    x = vals[0]
    rank = _ndim(x) - 1
    rest = list(vals[1:])
    kwargs = dict(kwargs)
    axis = rest.pop(0) if rest else kwargs.pop("axis")
    if axis is None:
        x = _reshape_p()(x, (size, -1))
        axis = 0
        rank = 1
    return prim(x, _norm_axis(int(axis), rank, prim.name) + 1, *rest, **kwargs)


def _reshape_rule(prim, vals, batched, kwargs, size):
    x, shape = vals[0], tuple(vals[1])
    order = vals[2] if len(vals) > 2 else kwargs.get("order", "C")
    if order == "F":
        moved = _np().moveaxis(x, 0, -1)
        out = prim(moved, shape + (size,), order="F")
        return _np().moveaxis(out, -1, 0)
    return prim(x, (size,) + shape, order=order)


def _transpose_rule(prim, vals, batched, kwargs, size):
    x = vals[0]
    axes = vals[1] if len(vals) > 1 else kwargs.get("axes")
    rank = _ndim(x) - 1
    if axes is None:
        axes = tuple(reversed(range(rank)))
    new = (0,) + tuple(_norm_axis(int(a), rank, "transpose") + 1 for a in axes)
    return prim(x, new)


def _broadcast_to_rule(prim, vals, batched, kwargs, size):
    x, shape = vals[0], tuple(vals[1])
    return prim(_with_rank(x, len(shape), size), (size,) + shape)


def _is_advanced(item):
    return isinstance(item, (list, np.ndarray)) or (isinstance(item, np.generic) and item.dtype.kind == "b")


def _index_plan(index):
    """(the index with the batch kept whole, where numpy puts the batch axis in the result)."""
    items = index if isinstance(index, tuple) else (index,)
    arrays = [i for i, it in enumerate(items) if _is_advanced(it)]
    new = (slice(None),) + items
    if not arrays:
        return new, 0
    # integers count as advanced indices next to arrays; separated advanced indices go first
    positions = [i for i, it in enumerate(items)
                 if _is_advanced(it) or (isinstance(it, (int, np.integer)) and not isinstance(it, bool))]
    if positions[-1] - positions[0] + 1 == len(positions):
        return new, 0
    adv_ndim = len(np.broadcast_shapes(*[np.shape(items[i]) if not (isinstance(items[i], np.ndarray)
                                                                     and items[i].dtype == bool)
                                         else (int(np.count_nonzero(items[i])),) for i in positions]))
    return new, adv_ndim


def _getitem_rule(prim, vals, batched, kwargs, size):
    x, index = vals[0], vals[1]
    if isinstance(index, Tensor):
        raise BatchedValueError("vmap: an index that varies along the batch is not supported by getitem; "
                                "use nablab.numpy.take_along_axis or a one-hot product")
    new, at = _index_plan(index)
    out = prim(x, new)
    return _np().moveaxis(out, at, 0) if at else out


def _untake_rule(prim, vals, batched, kwargs, size):
    g, index, shape = vals
    if batched[1]:
        raise BatchedValueError("vmap: a scatter whose index varies along the batch is not supported")
    new, at = _index_plan(index)
    g = _materialize(g, batched[0], size)
    if at:
        g = _np().moveaxis(g, 0, at)
    return prim(g, new, (size,) + tuple(shape))


def _join_rule(prim, vals, batched, kwargs, size):
    kwargs = dict(kwargs)
    arrays = [_materialize(v, b, size) for v, b in zip(vals, batched)]
    kwargs["axis"] = int(kwargs.get("axis", 0)) + 1  # normalized by concatenate/stack before the primitive
    return prim(*arrays, **kwargs)


def _pad_rule(prim, vals, batched, kwargs, size):
    x, pad_width = vals[0], vals[1]
    rest = vals[2:]
    if any(batched[1:]):
        return loop_rule(prim, vals, batched, kwargs, size)
    return prim(x, ((0, 0),) + tuple(tuple(p) for p in pad_width), *rest, **kwargs)


def _diagonal_rule(prim, vals, batched, kwargs, size):
    x, offset, axis1, axis2 = vals
    rank = _ndim(x) - 1
    return prim(x, offset, _norm_axis(axis1, rank, "diagonal") + 1, _norm_axis(axis2, rank, "diagonal") + 1)


def _embed_diagonal_rule(prim, vals, batched, kwargs, size):
    d, offset, axis1, axis2, shape = vals
    rank = len(shape)
    return prim(d, offset, _norm_axis(axis1, rank, "diagonal") + 1, _norm_axis(axis2, rank, "diagonal") + 1,
                (size,) + tuple(shape))


def _matmul_rule(prim, vals, batched, kwargs, size):
    a, b = vals
    ba, bb = batched
    ra, rb = _ndim(a) - ba, _ndim(b) - bb
    reshape = _reshape_p()
    squeeze = []
    if ra == 0 or rb == 0:
        raise ValueError("matmul: input operand does not have enough dimensions")
    if ra == 1:  # a row vector (1, k); the -2 axis of the result goes
        sa = _shape(a)
        a = reshape(a, tuple(sa[:-1]) + (1, sa[-1]))
        ra = 2
        squeeze.append(-2)
    if rb == 1:  # a column vector (k, 1); the -1 axis of the result goes
        sb = _shape(b)
        b = reshape(b, tuple(sb) + (1,))
        rb = 2
        squeeze.append(-1)
    rank = builtins.max(ra, rb)
    if ba:
        a = _with_rank(a, rank, size)
    if bb:
        b = _with_rank(b, rank, size)
    out = prim(a, b, **kwargs)
    if squeeze:
        shape = list(_shape(out))
        keep = [d for i, d in enumerate(shape) if i - len(shape) not in squeeze]
        out = reshape(out, tuple(keep))
    return out


def _einsum_rule(prim, vals, batched, kwargs, size):
    ins, out = kwargs["spec"]
    used = set("".join(ins)) | set(out)
    letter = next(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
    new_ins = tuple(letter + s if b else s for s, b in zip(ins, batched))
    return prim(*vals, spec=(new_ins, letter + out))


def _last_two_rule(prim, vals, batched, kwargs, size):
    """Primitives of one square (or rectangular) matrix that NumPy already maps over leading axes."""
    if len(vals) != 1:
        return loop_rule(prim, vals, batched, kwargs, size)
    return prim(vals[0], **kwargs)


def _solve_rule(prim, vals, batched, kwargs, size):
    a, b = vals
    ba, bb = batched
    ra, rb = _ndim(a) - ba, _ndim(b) - bb
    reshape = _reshape_p()
    if rb == 1:  # a vector right-hand side: as a column, so NumPy does not take the batch for columns
        b = reshape(b, tuple(_shape(b)) + (1,))
        rb = 2
        vector = True
    else:
        vector = False
    rank = builtins.max(ra, rb)
    if ba:
        a = _with_rank(a, rank, size)
    if bb:
        b = _with_rank(b, rank, size)
    out = prim(a, b, **kwargs)
    if vector:
        out = reshape(out, tuple(_shape(out)[:-1]))
    return out


def _axis_at(position):
    """A rule for a one-array primitive whose argument ``position`` is an axis (or a tuple of axes, or None)."""
    def rule(prim, vals, batched, kwargs, size):
        if any(batched[1:]):
            return loop_rule(prim, vals, batched, kwargs, size)
        vals = list(vals)
        rank = _ndim(vals[0]) - 1
        axis = vals[position]
        if axis is None:
            return loop_rule(prim, vals, batched, kwargs, size)
        vals[position] = _axis_shift(axis, rank, prim.name)
        return prim(*vals, **kwargs)

    return rule


def _install_rules():
    import importlib

    import nablab.numpy  # noqa: F401  (the families register their primitives on import)
    from nablab.autodiff import ops

    def family(name):
        return importlib.import_module(f"nablab.numpy.{name}")

    indexing, linalg, products, reductions, shape, ufuncs_base, ufuncs_complex, ufuncs_piecewise = (
        family(n) for n in ("indexing", "linalg", "products", "reductions", "shape", "ufuncs_base",
                            "ufuncs_complex", "ufuncs_piecewise"))

    _prims["reshape"] = shape._reshape_p
    _prims["getitem"] = shape.getitem_p
    _prims["stack"] = shape._stack_p
    _prims["untake"] = shape.untake
    for prim in (ufuncs_base._where_p, ufuncs_base.astype, ufuncs_base.real_part, ufuncs_base.imag_part,
                 ufuncs_base.conj, ufuncs_complex._angle_p, ufuncs_piecewise._clip_p, ufuncs_piecewise._frac_p,
                 ufuncs_piecewise._nan_to_num_p, ops.relu, ops.sigmoid, ops.softplus, shape._copy_p):
        register(prim, elementwise_rule)
    for prim in (reductions._sum_p, reductions._max_p, reductions._prod_p, reductions._exact_prod_p):
        register(prim, _reduction_rule)
    for prim in (reductions._cumsum_p, reductions._cumprod_p, reductions._exact_cumprod_p):
        register(prim, _cumulative_rule)
    register(shape._reshape_p, _reshape_rule)
    register(shape.transpose_p, _transpose_rule)
    register(shape.broadcast_to_p, _broadcast_to_rule)
    register(shape.getitem_p, _getitem_rule)
    register(shape.untake, _untake_rule)
    register(shape._concatenate_p, _join_rule)
    register(shape._stack_p, _join_rule)
    register(shape._pad_p, _pad_rule)
    register(indexing.diagonal_p, _diagonal_rule)
    register(indexing.embed_diagonal_p, _embed_diagonal_rule)
    register(products._matmul_p, _matmul_rule)
    register(products._einsum_p, _einsum_rule)
    for prim in (linalg._inv_p, linalg._det_p, linalg._logdet_p, linalg._cholesky_p, linalg._eigvalsh_p):
        register(prim, _last_two_rule)
    register(linalg._solve_p, _solve_rule)
    register(linalg._svdvals_p, _last_two_rule)
    register(linalg._pinv_p, _last_two_rule)
    trig = family("ufuncs_trig")
    register(trig.sinc, elementwise_rule)
    fft = family("fft")
    register(fft._c2c, _axis_at(2))
    register(fft._r2c, _axis_at(2))
    register(fft._c2r, _axis_at(2))
    register(fft._shift, _axis_at(1))
    # eigh, eig, svd and qr are packed primitives made inside linalg: NumPy maps them over leading axes
    for packed in (linalg._eigh_packed, linalg._eig_packed, linalg._svd_packed, linalg._qr_packed):
        for cell in packed.__closure__ or ():
            if isinstance(cell.cell_contents, Primitive):
                register(cell.cell_contents, _last_two_rule)


_install_rules()


# --------------------------------------------------------------------------- an index that varies along the batch

_SLOT = type("_Slot", (), {"__repr__": lambda self: "<index array>"})()


def _fill(template, arrays):
    it = iter(arrays)
    return tuple(next(it) if t is _SLOT else t for t in template)


def _gather(x, *arrays, template):
    return x[_fill(template, arrays)]


def _scatter(g, *arrays, template, shape):
    dtype = np.asarray(g).dtype
    out = np.zeros(shape, dtype=dtype if dtype.kind in "fc" else np.float64)
    np.add.at(out, _fill(template, arrays), g)
    return out


gather_p = Primitive(_gather, name="gather", saves_values=False, lists_are_arrays=False)
scatter_p = Primitive(_scatter, name="scatter", saves_values=False, lists_are_arrays=False)
gather_p.defvjp(lambda g, ans, x, *arrays, template: scatter_p(g, *arrays, template=template, shape=_shape(x)))
gather_p.defjvp(lambda t, ans, x, *arrays, template: gather_p(t, *arrays, template=template))
scatter_p.defvjp(lambda g, ans, h, *arrays, template, shape: gather_p(g, *arrays, template=template))
scatter_p.defjvp(lambda t, ans, h, *arrays, template, shape: scatter_p(t, *arrays, template=template, shape=shape))


def index_is_batched(index):
    """Whether an index holds a value batched by vmap (an integer array per example)."""
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, Tensor) and isinstance(core.value_of(i), Tensor) for i in items)


def batched_getitem(x, index):
    """``x[index]`` inside vmap when the index varies along the batch (one integer index per example)."""
    from nablab.autodiff.dispatch import unbox_all

    items = index if isinstance(index, tuple) else (index,)
    arrays, template = [], []
    for item in items:
        item = unbox_all(item) if isinstance(item, (Tensor, list)) else item
        if isinstance(item, Tensor):  # batched: no derivative, one array per example
            if item.dtype.kind not in "iu":
                raise IndexError(f"vmap: an index that varies along the batch must hold integers, not "
                                 f"{item.dtype} (a boolean mask per example has a different length per example)")
            arrays.append(item)
            template.append(_SLOT)
        else:
            template.append(np.asarray(item) if isinstance(item, list) else item)
    return gather_p(x, *arrays, template=tuple(template))


def _advanced_layout(items, x_rank):
    """(ndim of the broadcast advanced indices, where NumPy puts them in an example's result)."""
    def advanced(it):
        return it is _SLOT or isinstance(it, np.ndarray) or (
            isinstance(it, (int, np.integer)) and not isinstance(it, (bool, np.bool_)))

    positions = [k for k, it in enumerate(items) if advanced(it)]
    if positions[-1] - positions[0] + 1 != len(positions):
        return 0
    consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
    before = 0
    for it in items[:positions[0]]:
        before += (x_rank - consumed) if it is Ellipsis else 1
    return before


def _gather_plan(vals, batched, template, size, x_rank):
    """The index of the batched gather, and the permutation putting its result in an example's order."""
    arrays = list(vals)
    filled = _fill(template, [(a, b) for a, b in zip(arrays, batched)])
    shapes = []
    for it in filled:
        if isinstance(it, tuple):
            a, b = it
            shapes.append(tuple(_shape(a))[1:] if b else np.shape(a))
        elif isinstance(it, np.ndarray) or isinstance(it, (int, np.integer)) and not isinstance(it, bool):
            shapes.append(np.shape(it))
    adv = len(np.broadcast_shapes(*shapes)) if shapes else 0
    full = [np.arange(size).reshape((size,) + (1,) * adv)]
    for it in filled:
        if isinstance(it, tuple):
            a, b = it
            a = raw_value_of(a)
            if b:
                a = a.reshape((size,) + (1,) * (adv - (a.ndim - 1)) + a.shape[1:])
            full.append(a)
        else:
            full.append(it)
    at = _advanced_layout(tuple(_SLOT if isinstance(it, tuple) else it for it in filled), x_rank)
    return tuple(full), adv, at


def _gather_rule(prim, vals, batched, kwargs, size):
    x, arrays = vals[0], vals[1:]
    if any(isinstance(a, Tensor) for a in arrays):  # the index is batched at a lower level too
        return loop_rule(prim, vals, batched, kwargs, size)
    template = kwargs["template"]
    if not any(batched[1:]):
        return _getitem_rule(_prims["getitem"], [x, _fill(template, arrays)], [True, False], {}, size)
    x = _materialize(x, batched[0], size)
    x_rank = _ndim(x) - 1
    full, adv, at = _gather_plan(arrays, batched[1:], template, size, x_rank)
    out = _prims["getitem"](x, full)  # (batch, advanced..., the rest...)
    if at:
        rank = _ndim(out)
        order = (0,) + tuple(range(1 + adv, 1 + adv + at)) + tuple(range(1, 1 + adv)) + \
            tuple(range(1 + adv + at, rank))
        out = _np().transpose(out, order)
    return out


def _scatter_rule(prim, vals, batched, kwargs, size):
    g, arrays = vals[0], vals[1:]
    if any(isinstance(a, Tensor) for a in arrays):
        return loop_rule(prim, vals, batched, kwargs, size)
    template, shape = kwargs["template"], tuple(kwargs["shape"])
    g = _materialize(g, batched[0], size)
    full, adv, at = _gather_plan(arrays, batched[1:], template, size, len(shape))
    if at:  # back to (batch, advanced..., the rest...)
        rank = _ndim(g)
        order = (0,) + tuple(range(1 + at, 1 + at + adv)) + tuple(range(1, 1 + at)) + \
            tuple(range(1 + at + adv, rank))
        g = _np().transpose(g, order)
    return _prims["untake"](g, full, (size,) + shape)


register(gather_p, _gather_rule)
register(scatter_p, _scatter_rule)


# --------------------------------------------------------------------------- nablab.nn's convolution primitives
# (registered when first met: nablab.nn loads on first use, and import nablab should not load it)


def _fold(v, size):
    s = _shape(v)
    return _reshape_p()(v, (size * s[1],) + tuple(s[2:]))


def _unfold(v, size):
    s = _shape(v)
    return _reshape_p()(v, (size, s[0] // size) + tuple(s[1:]))


def _into_channels(v, size):
    """(batch, N, C, H, W) -> (N, batch * C, H, W): the examples side by side as channel groups."""
    s = _shape(v)
    return _reshape_p()(_np().moveaxis(v, 0, 1), (s[1], size * s[2]) + tuple(s[3:]))


def _from_channels(v, size):
    """(N, batch * C, H, W) -> (batch, N, C, H, W)."""
    s = _shape(v)
    return _np().moveaxis(_reshape_p()(v, (s[0], size, s[1] // size) + tuple(s[2:])), 1, 0)


def _conv_rule(prim, vals, batched, kwargs, size):
    x, w = vals
    if not batched[1]:  # one weight for every example: the batch joins the images
        return _unfold(prim(_fold(x, size), w, **kwargs), size)
    # a weight per example: grouped convolution, each example its own groups of channels
    x = _materialize(x, batched[0], size)
    sw = _shape(w)
    groups = kwargs.get("groups", 1) * size
    out = prim(_into_channels(x, size), _reshape_p()(w, (size * sw[1],) + tuple(sw[2:])),
               **{**kwargs, "groups": groups})
    return _from_channels(out, size)


def _conv_input_grad_rule(prim, vals, batched, kwargs, size):
    g, w, x_shape = vals
    x_shape = tuple(x_shape)
    if not batched[1]:
        return _unfold(prim(_fold(g, size), w, (size * x_shape[0],) + x_shape[1:], **kwargs), size)
    g = _materialize(g, batched[0], size)
    sw = _shape(w)
    groups = kwargs.get("groups", 1) * size
    out = prim(_into_channels(g, size), _reshape_p()(w, (size * sw[1],) + tuple(sw[2:])),
               (x_shape[0], size * x_shape[1]) + x_shape[2:], **{**kwargs, "groups": groups})
    return _from_channels(out, size)


def _conv_weight_grad_rule(prim, vals, batched, kwargs, size):
    x, g, w_shape = vals
    w_shape = tuple(w_shape)
    x, g = _materialize(x, batched[0], size), _materialize(g, batched[1], size)
    groups = kwargs.get("groups", 1) * size
    out = prim(_into_channels(x, size), _into_channels(g, size), (size * w_shape[0],) + w_shape[1:],
               **{**kwargs, "groups": groups})
    return _reshape_p()(out, (size,) + w_shape)


def _global_index(index, batched, size, per_example_size, index_shape):
    idx = np.asarray(raw_value_of(index))
    if not batched:
        idx = np.broadcast_to(idx, (size,) + idx.shape)
    offsets = (np.arange(size) * per_example_size).reshape((size,) + (1,) * (idx.ndim - 1))
    return idx + offsets


def _take_flat_rule(prim, vals, batched, kwargs, size):
    x, index, *rest = vals
    if isinstance(index, Tensor):  # batched at a lower level as well
        return loop_rule(prim, vals, batched, kwargs, size)
    x = _materialize(x, batched[0], size)
    per = math.prod(_shape(x)[1:])
    return prim(x, _global_index(index, batched[1], size, per, None), *rest, **kwargs)


def _scatter_flat_rule(prim, vals, batched, kwargs, size):
    g, index, shape, *rest = vals
    if isinstance(index, Tensor) or batched[2]:
        return loop_rule(prim, vals, batched, kwargs, size)
    shape = tuple(shape)
    g = _materialize(g, batched[0], size)
    return prim(g, _global_index(index, batched[1], size, math.prod(shape), None), (size,) + shape, *rest,
                **kwargs)


#: Rules for primitives of modules that load on first use: (module, name) -> rule.
#: SciPy's expm, sqrtm and solve_triangular map over leading axes as NumPy's linalg does.
_RULES_BY_NAME = {
    ("scipy.linalg._matfuncs", "expm"): _last_two_rule,
    ("nablab.scipy.linalg", "sqrtm"): _last_two_rule,
    ("nablab.scipy.linalg", "solve_triangular"): _solve_rule,
    ("nablab.nn.conv", "conv2d"): _conv_rule,
    ("nablab.nn.conv", "conv_transpose2d"): _conv_input_grad_rule,
    ("nablab.nn.conv", "conv2d_weight_grad"): _conv_weight_grad_rule,
    ("nablab.nn.conv", "take"): _take_flat_rule,
    ("nablab.nn.conv", "scatter_add"): _scatter_flat_rule,
}


def batched_flat_indices(fn, x):
    """``fn(x)`` for a NumPy function of images (N, C, H, W) giving flat indices into them, on a batched ``x``.

    The examples are folded into N, ``fn`` runs once, and its indices become each
    example's own again (a batched integer array). Only a value batched at one level is
    folded; otherwise this raises :class:`BatchedValueError` and ``vmap`` loops.
    """
    if not (isinstance(x, Tensor) and x._level in _batch_levels and not isinstance(x._value, Tensor)):
        err = BatchedValueError("flat indices of a value batched at several levels")
        err.level = _top_batch_level([x])
        raise err
    raw = np.asarray(x._value)
    size = raw.shape[0]
    per = math.prod(raw.shape[1:])
    idx = np.asarray(fn(raw.reshape((size * raw.shape[1],) + raw.shape[2:])))
    idx = idx.reshape((size, raw.shape[1]) + idx.shape[1:])
    local = idx - (np.arange(size, dtype=np.int64) * per).reshape((size,) + (1,) * (idx.ndim - 1))
    return BatchTensor(local.astype(idx.dtype if per * size < 2 ** 31 else np.int64, copy=False), x._level)


# --------------------------------------------------------------------------- custom rules and checkpoint under vmap
#
# nb.custom_vjp, nb.custom_jvp and nb.checkpoint called on values batched at a level of vmap,
# with a differentiating level below it (grad, jacrev, hessian, jvp of a vmap): the call is
# answered by the same decorator applied to the batched functions, called on the values
# unboxed at the batch level, so the level below records the custom rule (or the checkpoint)
# of the whole batch:
#
# - custom_vjp: a custom_vjp of vmap(fun) with vmap(fwd) and vmap(bwd); the cotangent of an
#   argument that is the same for every example (in_axes None) is the sum over the batch of
#   the per-example cotangents;
# - custom_jvp: a custom_jvp of vmap(fun) with vmap(rule);
# - checkpoint: a checkpoint of vmap(fun).
#
# Each batched function opens a batch level of its own when it runs (the backward pass runs
# after the vmap has returned). Every output of the batched function carries the batch, even
# one the same for every example: the cotangent a rule gets must be its example's own (the sum
# over the batch would give a rule that uses it per example, such as gradient clipping, a
# wrong number). A call whose arguments do not vary along the batch never reaches this: it is
# one call, whose rule sees the cotangent summed over the batch (as in JAX and torch.func).


class _Layout:
    """Which residual leaves carry the batch, and their tree: a leaf of the residuals (no array)."""

    __slots__ = ("flags", "spec")

    def __init__(self, flags, spec):
        self.flags, self.spec = flags, spec


#: A cotangent bwd gave as None (a zero): a leaf that is no array, so no batching touches it.
_ZERO = type("_Zero", (), {"__repr__": lambda self: "<zero cotangent>"})()


def _unbox_leaves(leaves, level):
    """(the leaves unboxed at ``level``, whether each carried the batch)."""
    flags = [isinstance(x, Tensor) and x._level == level for x in leaves]
    return [x._value if b else x for x, b in zip(leaves, flags)], flags


def _refuse_level(x, level, who):
    """A value holding a box of the vmap's own level (or of a closed level) escaped through a closure."""
    while isinstance(x, Tensor):
        if x._level == level or (x._level > core.IMPERATIVE and x._level not in core._live_levels):
            raise TypeError(f"{who} uses a value batched by the enclosing vmap (or traced by a transform that has "
                            "returned) that is not among its arguments (it closed over it); pass it as an argument")
        x = x._value


def _run_batched(call, leaves, flags, spec, size, who, outer):
    """``call(tree)`` with the leaves flagged batched boxed at a batch level of their own.

    Returns (output leaves with that level unboxed, whether each carries the batch, the
    output's spec). A ``call`` that needs a plain array of a batched value runs example by
    example (with vmap's warning).
    """
    if len(leaves) != len(flags):  # pragma: no cover - the structure is the one the flags were read from
        raise RuntimeError(f"{who}: {len(leaves)} argument leaves but {len(flags)} batch flags")
    level = core.new_batch_level(size)
    needs_loop = None
    try:
        boxed = [BatchTensor(v, level) if b else v for v, b in zip(leaves, flags)]
        try:
            out = call(tree_unflatten(spec, boxed))
        except BatchedValueError as err:
            if getattr(err, "level", None) != level:
                raise
            needs_loop = err
        if needs_loop is None:
            out_leaves, out_spec = tree_flatten(out)
            vals, out_flags = [], []
            for o in out_leaves:
                batched = isinstance(o, Tensor) and o._level == level
                v = o._value if batched else o
                _refuse_level(v, outer, who)
                vals.append(v)
                out_flags.append(batched)
    finally:
        close_level(level)
    if needs_loop is not None:
        return _run_by_loop(call, leaves, flags, spec, size, who, outer, needs_loop)
    return vals, out_flags, out_spec


def _run_by_loop(call, leaves, flags, spec, size, who, outer, err):
    _warn_loop(who, "function", f"needs a plain array of a batched value (at {_origin(err)})")
    if size == 0:
        raise ShapeError(f"{who}: the batch is empty and the function cannot be batched without a loop")
    outs = []
    for i in range(size):
        out_leaves, out_spec = tree_flatten(call(tree_unflatten(
            spec, [_take(v, i, 0) if b else v for v, b in zip(leaves, flags)])))
        outs.append(out_leaves)
    vals, out_flags = [], []
    for k, first in enumerate(outs[0]):
        column = [o[k] for o in outs]
        for v in column:
            _refuse_level(v, outer, who)
        if all(v is first for v in column[1:]):  # the same object for every example: not batched
            vals.append(first)
            out_flags.append(False)
        else:
            vals.append(_np().stack(column) if any(isinstance(v, Tensor) for v in column)
                        else np.stack([np.asarray(v) for v in column]))
            out_flags.append(True)
    return vals, out_flags, out_spec


def _with_batch(v, batched, size):
    """``v`` with the batch axis first: broadcast along it if it does not carry the batch."""
    if batched:
        return v
    return _materialize(v if isinstance(v, Tensor) else np.asarray(v), False, size)


def _stand_in(x):
    """An array (of no memory) with an example's shape and dtype of the leaf ``x``: for the checks of bwd's output."""
    return np.broadcast_to(np.empty((), dtype=np.asarray(raw_value_of(x)).dtype), tuple(core.shape_of(x)))


def _count(spec):
    kind, _, children = spec
    if kind == "leaf":
        return 1
    if kind == "none":
        return 0
    return builtins.sum(_count(c) for c in children)


def _batched_fun(obj, flags, size, name, outer):
    """``fun`` of ``obj`` batched over the leaves ``flags`` marks, every output carrying the batch."""
    def batched(*args, **kwargs):
        leaves, spec = tree_flatten((args, kwargs))
        vals, out_flags, out_spec = _run_batched(lambda tree: obj.fun(*tree[0], **tree[1]), leaves, flags, spec,
                                                 size, name, outer)
        return tree_unflatten(out_spec, [_with_batch(v, b, size) for v, b in zip(vals, out_flags)])

    batched.__name__ = batched.__qualname__ = name
    signature = getattr(obj, "_signature", None)
    if signature is not None:
        batched.__signature__ = signature
    return batched


def _rule_under_vmap(kind, obj, args, kwargs, level):
    """The handler of batch levels for :mod:`nablab.autodiff.custom` (see the comment above).

    ``kind`` is ``"custom_vjp"``, ``"custom_jvp"`` or ``"checkpoint"``; ``obj`` the
    decorated function, called on ``args`` batched at ``level`` with a differentiating
    level below. The gradient of a sum over a batch goes through ``bwd`` once per example:

    >>> import numpy as np, nablab as nb
    >>> @nb.custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (nb.clip(g, -1.0, 1.0),))
    >>> w, xs = np.array([1.0]), np.array([[3.0], [-0.5]])
    >>> nb.grad(lambda w: nb.sum(nb.vmap(lambda x: clip_gradient(w * x) * x)(xs)))(w)  # 3 clip(3) - 0.5 clip(-0.5)
    array([3.25])
    """
    from nablab.autodiff import custom

    size = _batch_levels[level]
    name = getattr(obj.fun, "__name__", type(obj.fun).__name__)
    if kind == "checkpoint":
        leaves, spec = tree_flatten((tuple(args), dict(kwargs)))
        vals, flags = _unbox_leaves(leaves, level)
        batched = _batched_fun(obj, flags, size, name, level)
        u_args, u_kwargs = tree_unflatten(spec, vals)
        out = custom.checkpoint(batched)(*u_args, **u_kwargs)
        return _box_batch(out, level)

    flat = [tree_flatten(a) for a in args]
    per_arg = [_unbox_leaves(leaves, level) for leaves, _ in flat]
    u_args = [tree_unflatten(spec, vals) for (vals, _), (_, spec) in zip(per_arg, flat)]
    flags = [b for _, fl in per_arg for b in fl]
    nondiff = obj.nondiff_argnums
    diff = [i for i in range(len(args)) if i not in nondiff]
    nondiff_flags = [b for i in nondiff for b in per_arg[i][1]]
    fun = _batched_fun(obj, flags, size, name, level)

    if kind == "custom_jvp":
        diff_flags = [b for i in diff for b in per_arg[i][1]]

        def batched_rule(*rule_args):
            nd, primals, tangents = rule_args[:-2], rule_args[-2], rule_args[-1]
            leaves, spec = tree_flatten((tuple(nd), tuple(primals), tuple(tangents)))

            def call(tree):
                out_leaves, out_spec, t_leaves = obj._apply_rule(list(tree[0]), list(tree[1]), list(tree[2]))
                return tree_unflatten(out_spec, out_leaves), tree_unflatten(out_spec, t_leaves)

            vals, out_flags, out_spec = _run_batched(call, leaves, nondiff_flags + diff_flags + diff_flags, spec,
                                                     size, f"custom_jvp function {name}'s rule", level)
            n = len(vals) // 2
            both = [a or b for a, b in zip(out_flags[:n], out_flags[n:])]
            pair_spec = out_spec[2][0]
            return (tree_unflatten(pair_spec, [_with_batch(v, b, size) for v, b in zip(vals[:n], both)]),
                    tree_unflatten(pair_spec, [_with_batch(v, b, size) for v, b in zip(vals[n:], both)]))

        batched_obj = custom.custom_jvp(fun, nondiff_argnums=nondiff)
        batched_obj.defjvp(batched_rule)
        return _box_batch(batched_obj(*u_args), level)

    # custom_vjp
    who = f"custom_vjp function {name}: bwd"
    examples = [([_stand_in(x) for x in leaves], spec) for leaves, spec in flat]  # read now: the level closes

    def batched_fwd(*fwd_args):
        leaves, spec = tree_flatten(tuple(fwd_args))

        def call(tree):
            pair = obj.fwd(*tree)
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"custom_vjp function {name}: fwd must return a pair (output, residuals), "
                                f"got {type(pair).__name__}")
            return tuple(pair)

        vals, out_flags, out_spec = _run_batched(call, leaves, flags, spec, size, f"custom_vjp function {name}'s fwd",
                                                 level)
        o_spec, r_spec = out_spec[2]
        n = _count(o_spec)
        out = tree_unflatten(o_spec, [_with_batch(v, b, size) for v, b in zip(vals[:n], out_flags[:n])])
        return out, (list(vals[n:]), _Layout(out_flags[n:], r_spec))

    def batched_bwd(*bwd_args):
        nd, (res_vals, layout), g = bwd_args[:-2], bwd_args[-2], bwd_args[-1]
        g_leaves = tree_flatten(g)[0]
        leaves, spec = tree_flatten((tuple(nd), tree_unflatten(layout.spec, res_vals), g))

        def call(tree):
            cts = obj.bwd(*tree[0], tree[1], tree[2])
            checked = custom._check_bwd_output(obj, who, cts, examples, math.inf)
            return [_ZERO if checked[i] is None or c is None else c
                    for i in diff for c in (checked[i] or [None] * len(examples[i][0]))]

        vals, ct_flags, _ = _run_batched(call, leaves, nondiff_flags + list(layout.flags) + [True] * len(g_leaves),
                                         spec, size, who, None)
        cts, k = [], 0
        for i in diff:
            arg_spec = flat[i][1]
            parts = []
            for in_batch in per_arg[i][1]:
                c, c_batch = vals[k], ct_flags[k]
                k += 1
                if c is _ZERO:
                    parts.append(None)
                elif in_batch:  # one cotangent per example
                    parts.append(_with_batch(c, c_batch, size))
                elif c_batch:  # the same argument for every example: the sum of their cotangents
                    parts.append(_np().sum(c, axis=0))
                else:  # the same cotangent from every example
                    parts.append(c * size)
            if all(p is None for p in parts):
                cts.append(None)
                continue
            cts.append(tree_unflatten(arg_spec, [np.zeros(((size,) if b else ()) + e.shape, e.dtype) if p is None
                                                 else p for p, e, b in zip(parts, examples[i][0], per_arg[i][1])]))
        return tuple(cts)

    batched_obj = custom.custom_vjp(fun, nondiff_argnums=nondiff)
    batched_obj.defvjp(batched_fwd, batched_bwd)
    return _box_batch(batched_obj(*u_args), level)


def _box_batch(out, level):
    leaves, spec = tree_flatten(out)
    return tree_unflatten(spec, [BatchTensor(v, level) for v in leaves])


def _register_custom_rules():
    from nablab.autodiff import custom

    custom.register_level_rule(lambda level: level in _batch_levels, _rule_under_vmap)


_register_custom_rules()
