"""The engine's core: boxed values, trace levels, primitives and the backward pass.

Every differentiable value that a transform watches is a :class:`Tensor` *box*
holding a value and a trace level.  Each call of a transform (``grad``, ``jvp``,
``vjp``, ...) opens a fresh level with a larger number than any level alive, so
nested transforms never confuse their perturbations (the scheme of HIPS
autograd and JAX).  A primitive applied to boxes

1. finds the highest level among its arguments,
2. unboxes the arguments at that level and applies itself again to the
   unboxed values (which may still be boxes of lower levels), and
3. boxes the result at that level: a reverse level records a :class:`Node`
   (for the VJP later), a forward level carries a tangent computed now by the
   primitive's JVP rules.

VJP and JVP rules are written with the same primitives, so on the way back they
are themselves recorded by the lower levels: that is what makes grad-of-grad,
forward-over-reverse and reverse-over-forward work to any order.

Level ``0`` is the imperative tape of ``tensor(..., requires_grad=True)`` and
``.backward()``; level ``-1`` marks a constant tensor that no transform watches.
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading

import numpy as np

from nablab.errors import BatchedValueError, InPlaceError, ShapeError, TracedValueError  # noqa: F401  (raised here; importable from here)

CONSTANT = -1
IMPERATIVE = 0

_level_counter = itertools.count(1)
_forward_levels: set[int] = set()
_live_levels: set[int] = set()
#: Batch levels of ``vmap`` alive now: level -> batch size (see :mod:`nablab.autodiff.batching`).
#: Empty outside vmap, so each hook below costs one truth test when vmap is not in use.
_batch_levels: dict[int, int] = {}
#: Forward and batch levels: the levels whose ops do not record a Node (one set, one test in bind).
_special_levels: set[int] = set()


class _BatchHooks:
    """Filled in by :mod:`nablab.autodiff.batching`: how a batch level binds and unboxes."""

    bind = None  # bind(prim, args, kwargs, level)
    value_of = None  # value_of(x) keeping batch boxes
    shape_of = None  # shape_of(x) per example
    rule_per_example = None  # rule_per_example(rule, prim, args, kwargs, err): a rule run in a loop


_batch = _BatchHooks()


#: Counts in-place changes to tensors (see ``Tensor._set_value``).  A node remembers
#: the count when it is recorded; a tensor remembers the count of its last in-place
#: change.  A tensor changed after a node saved it has the larger number, so the
#: backward pass can refuse to use it.
_epoch = 0


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def new_level(forward: bool = False) -> int:
    """Open a trace level above every level alive."""
    level = next(_level_counter)
    _live_levels.add(level)
    if forward:
        _forward_levels.add(level)
        _special_levels.add(level)
    return level


def close_level(level: int) -> None:
    _live_levels.discard(level)
    _forward_levels.discard(level)
    _batch_levels.pop(level, None)
    _special_levels.discard(level)


def new_batch_level(size: int) -> int:
    """Open a batch level (``vmap``) of ``size`` examples above every level alive."""
    level = new_level()
    _batch_levels[level] = size
    _special_levels.add(level)
    return level


class Node:
    """One recorded primitive application on a reverse level.

    ``parents`` holds ``(argnum, parent_node)`` pairs for the arguments that
    were boxed at this level; ``args`` holds the unboxed argument values the
    VJP rules need.  A leaf node (``prim is None``) stands for an input.
    ``inputs`` are the arguments as given (tensors included) and ``epoch`` the
    in-place count when the node was recorded: the backward pass uses them to
    refuse values that were changed in place since (see :func:`check_versions`).
    ``changed`` names the in-place change made to the node's own output, if any.
    """

    __slots__ = ("prim", "args", "kwargs", "ans", "parents", "grad", "inputs", "epoch",
                 "changed", "__weakref__")

    def __init__(self, prim, args, kwargs, ans, parents, inputs=()):
        # ``grad`` (leaves) and ``changed`` (rare) are set only when needed: read them with getattr.
        self.prim = prim
        self.args = args
        self.kwargs = kwargs
        self.ans = ans
        self.parents = parents
        self.inputs = inputs
        self.epoch = _epoch

    @classmethod
    def leaf(cls, value=None):
        node = cls(None, (), None, value, ())
        node.grad = None
        return node


class Primitive:
    """An operation the engine knows: a NumPy function plus its derivative rules.

    ``vjps[i](g, ans, *args, **kwargs)`` returns the cotangent of argument ``i``
    given the output cotangent ``g``; ``jvps[i](t, ans, *args, **kwargs)``
    returns the output tangent caused by the tangent ``t`` of argument ``i``.
    A linear primitive with many inputs may instead set ``jvp_all(tangents,
    ans, *args, **kwargs)`` with ``None`` for arguments without a tangent.

    ``saves_values`` is False for primitives whose rules use only the shapes of
    their arguments (add, sum, reshape, indexing): changing such an argument in
    place after the call cannot spoil their backward pass.  With
    ``lists_are_arrays`` (the default) a list or tuple argument that holds
    traced values is turned into one array first, as NumPy turns a list of
    numbers into an array; primitives whose tuple arguments are not arrays
    (an index) turn it off.
    """

    __slots__ = ("name", "fn", "vjps", "jvps", "jvp_all", "saves_values", "lists_are_arrays",
                 "__wrapped__", "__dict__")

    def __init__(self, fn, name=None, saves_values=True, lists_are_arrays=True):
        self.fn = fn
        self.name = name or fn.__name__
        self.vjps = {}
        self.jvps = {}
        self.jvp_all = None
        self.saves_values = saves_values
        self.lists_are_arrays = lists_are_arrays
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self.__name__ = self.name

    def defvjp(self, *rules, argnums=None):
        for i, rule in zip(argnums or range(len(rules)), rules):
            if rule is not None:
                self.vjps[i] = rule
        return self

    def defjvp(self, *rules, argnums=None):
        for i, rule in zip(argnums or range(len(rules)), rules):
            if rule is not None:
                self.jvps[i] = rule
        return self

    def __call__(self, *args, **kwargs):
        return bind(self, args, kwargs)

    def __repr__(self):
        return f"<primitive {self.name}>"


class RulesForAnyArgument(dict):
    """A rule table for primitives that take any number of arguments (concatenate, einsum).

    ``make(i)`` builds the rule of argument ``i`` the first time it is needed;
    every non-negative index has one.

    >>> table = RulesForAnyArgument(lambda i: f"rule {i}")
    >>> 7 in table, table[7], table.get(-1)
    (True, 'rule 7', None)
    """

    def __init__(self, make):
        super().__init__()
        self._make = make

    def __missing__(self, i):
        self[i] = rule = self._make(i)
        return rule

    def get(self, i, default=None):  # dict.get would skip __missing__
        return self[i] if i in self else default

    def __contains__(self, i):
        return isinstance(i, int) and i >= 0


def primitive(fn=None, *, name=None, saves_values=True, lists_are_arrays=True):
    """Decorator turning a NumPy function into a :class:`Primitive`.

    >>> import numpy as np
    >>> from nablab.autodiff.core import primitive
    >>> @primitive
    ... def cube(x):
    ...     return x ** 3
    >>> _ = cube.defvjp(lambda g, ans, x: g * 3 * x ** 2)
    >>> _ = cube.defjvp(lambda t, ans, x: t * 3 * x ** 2)
    >>> import nablab
    >>> float(nablab.grad(cube)(2.0))
    12.0
    """
    if fn is None:
        return lambda f: Primitive(f, name, saves_values, lists_are_arrays)
    return Primitive(fn, name, saves_values, lists_are_arrays)


def shape_of(x):
    """The shape of a box, an array or a Python number (per example inside ``vmap``)."""
    if _batch_levels and isinstance(x, Tensor):
        return _batch.shape_of(x)
    while isinstance(x, Tensor):
        x = x._value
    try:
        return x.shape
    except AttributeError:
        return np.shape(x)


def value_of(x):
    """Strip every box: the plain NumPy value underneath.

    Inside ``vmap`` the boxes of batch levels stay (the value has no derivative, but
    it is still one value per example): what is stripped is every derivative level.
    """
    if _batch_levels and isinstance(x, Tensor):
        return _batch.value_of(x)
    while isinstance(x, Tensor):
        x = x._value
    return x


def plain_value(x):
    """``value_of(x)`` as an array: a NumPy array, or inside ``vmap`` a batched box without derivative.

    For rules that compute with the values (masks, weights) through NumPy's array API:
    on a batched box those operations are batched too.
    """
    v = value_of(x)
    return v if isinstance(v, Tensor) else np.asarray(v)


def any_entry(mask) -> bool:
    """Whether any entry of ``mask`` holds; inside ``vmap``, of any example (for a branch every example can take).

    >>> import numpy as np
    >>> any_entry(np.array([False, True]))
    True
    """
    return bool(np.any(raw_value_of(mask)))


def raw_value_of(x):
    """Strip every box, batch levels too: the NumPy array underneath (for dtype and storage)."""
    while isinstance(x, Tensor):
        x = x._value
    return x


def _describe_args(args):
    parts = []
    for a in args:
        v = value_of(a)
        if isinstance(v, np.ndarray) or np.isscalar(v):
            parts.append(f"shape {np.shape(v)}")
    return " and ".join(parts)


def _apply_numpy(prim, args, kwargs):
    try:
        return prim.fn(*args, **kwargs)
    except ValueError as err:
        _raise_shape_error(prim, args, err)


def _raise_shape_error(prim, args, err):
    text = str(err)
    if not isinstance(err, np.exceptions.AxisError) and (
        "shape" in text or "broadcast" in text or "dimension" in text
    ):
        raise ShapeError(
            f"{prim.name}: operands do not fit: {_describe_args(args)} ({err})"
        ) from None
    raise err


def _holds_tensor(obj):
    for o in obj:
        if isinstance(o, Tensor) or (type(o) in (list, tuple) and _holds_tensor(o)):
            return True
    return False


def _lists_to_arrays(args):
    """Turn each list/tuple argument that holds tensors into one array (as NumPy would)."""
    return tuple(
        _ops.array(a) if type(a) in (list, tuple) and _holds_tensor(a) else a for a in args
    )


def bind(prim, args, kwargs):
    """Apply ``prim`` to ``args``, recording it on the highest trace level present."""
    top = -2
    for a in args:
        if isinstance(a, Tensor):
            level = a._level
            if level > top:
                top = level
        elif type(a) in (list, tuple) and prim.lists_are_arrays and _holds_tensor(a):
            return bind(prim, _lists_to_arrays(args), kwargs)
    if top <= IMPERATIVE:
        if top == -2:
            return _apply_numpy(prim, args, kwargs)
        if top == CONSTANT or not _grad_mode.enabled:
            vals = [value_of(a) if isinstance(a, Tensor) else a for a in args]
            return Tensor(_apply_numpy(prim, vals, kwargs))
    forward = False
    if top in _special_levels:
        if top in _batch_levels:
            return _batch.bind(prim, args, kwargs, top)
        forward = True

    # The hot path of every recorded op: plain loops, no helper calls.
    vals = list(args)
    parents = []  # (argnum, node) of the arguments boxed at this level
    lower = False
    i = 0
    for a in args:
        if isinstance(a, Tensor):
            level = a._level
            if level == top:
                v = vals[i] = a._value
                parents.append((i, a._node))
                if isinstance(v, Tensor):
                    lower = True
            elif level == CONSTANT or (level == IMPERATIVE and not _grad_mode.enabled):
                vals[i] = value_of(a)
            else:
                lower = True
        i += 1
    if lower:
        ans = bind(prim, vals, kwargs)
    else:
        try:
            ans = prim.fn(*vals, **kwargs)
        except ValueError as err:
            _raise_shape_error(prim, vals, err)

    if forward:
        boxed = [argnum for argnum, _ in parents]
        return Tensor(ans, top, None, _forward_tangent(prim, args, boxed, ans, vals, kwargs))
    # A missing VJP rule is reported by the backward pass, which is the first to need it.
    return Tensor(ans, top, Node(prim, vals, kwargs, ans, tuple(parents), args))


def _forward_tangent(prim, args, boxed, ans, vals, kwargs):
    if prim.jvp_all is not None:
        tangents = [None] * len(args)
        for i in boxed:
            tangents[i] = args[i]._tangent
        try:
            tangent = prim.jvp_all(tangents, ans, *vals, **kwargs)
        except BatchedValueError as err:
            tangent = _batch.rule_per_example(lambda *a, **k: prim.jvp_all(a[0], *a[1:], **k), prim,
                                              (tangents, ans, *vals), kwargs, err)
    else:
        tangent = None
        for i in boxed:
            rule = prim.jvps.get(i)
            if rule is None:
                raise NotImplementedError(
                    f"{prim.name}: no JVP rule for argument {i}; forward mode cannot pass it"
                )
            try:
                term = rule(args[i]._tangent, ans, *vals, **kwargs)
            except BatchedValueError as err:
                term = _batch.rule_per_example(rule, prim, (args[i]._tangent, ans, *vals), kwargs, err)
            tangent = term if tangent is None else _ops.add(tangent, term)
    ans_shape = shape_of(ans)
    if shape_of(tangent) != ans_shape:
        tangent = _ops.broadcast_to(tangent, ans_shape)
    return tangent


class gc_paused:
    """Pause Python's cycle collector while a graph is built or walked.

    A traced computation creates several tracked objects per op and no cycles;
    the collector would rescan the growing graph again and again (on a chain of
    100,000 ops that is most of the time).  Reference counting still frees
    everything; collection resumes, if it was on, when the block ends.
    """

    def __enter__(self):
        self._was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        if self._was_enabled:
            gc.enable()
        return False


def toposort(roots):
    """Nodes reachable from ``roots``, each after every node that consumes it.

    Iterative (no recursion limit): a chain of a million ops is fine.
    """
    consumers = {}
    stack = list(roots)
    seen = set(stack)
    while stack:
        node = stack.pop()
        for _, parent in node.parents:
            consumers[parent] = consumers.get(parent, 0) + 1
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    ready = [n for n in dict.fromkeys(roots) if consumers.get(n, 0) == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for _, parent in node.parents:
            consumers[parent] -= 1
            if consumers[parent] == 0:
                ready.append(parent)
    return order


#: Whether sys.getrefcount counts every holder, as CPython does up to 3.13; 3.14's interpreter may borrow references
#: to locals (gh-130704), so there ``.grad`` is always a copy.
_COUNTS_EVERY_REFERENCE = sys.implementation.name == "cpython" and sys.version_info < (3, 14)


def _held_only_by_caller(a):
    """Whether ``a`` is a NumPy array that no one holds but the caller's one variable, and whose memory is its own
    or that of an array only it holds and covers whole (a reshaped result): it may then be handed on without a
    copy. The counts are CPython's: the caller's variable (or the view's base), this call's argument or the local
    ``owner``, and getrefcount's own argument."""
    if not _COUNTS_EVERY_REFERENCE or type(a) is not np.ndarray or not a.flags.writeable or sys.getrefcount(a) > 3:
        return False
    owner = a.base
    if owner is None:
        return a.flags.owndata
    return (type(owner) is np.ndarray and owner.base is None and owner.flags.owndata and a.flags.c_contiguous
            and owner.nbytes == a.nbytes and sys.getrefcount(owner) <= 3)


def backward(roots, cotangents, keep_all=False):
    """Reverse pass from ``roots`` seeded with ``cotangents``.

    Returns a dict mapping leaf nodes (and every node when ``keep_all``) to
    their accumulated cotangent.  Cotangents of inner nodes are dropped as soon
    as they have been passed on, so memory falls while the pass runs.
    """
    grads = {}
    for node, g in zip(roots, cotangents):
        grads[node] = g if node not in grads else _ops.add(grads[node], g)
    kept = {}
    add = _ops.add
    with gc_paused():
        _backward_pass(roots, grads, kept, keep_all, add)
    return kept


def _backward_pass(roots, grads, kept, keep_all, add):
    for node in toposort(roots):
        g = grads.pop(node, None)
        if g is None:
            continue
        if keep_all or node.prim is None:
            kept[node] = g
        prim = node.prim
        if prim is None:
            continue
        if node.epoch != _epoch:
            check_versions(node)
        args = node.args
        kwargs = node.kwargs
        for argnum, parent in node.parents:
            try:
                rule = prim.vjps[argnum]
            except KeyError:
                raise NotImplementedError(
                    f"{prim.name}: no VJP rule for argument {argnum}; it cannot be differentiated "
                    "in reverse mode"
                ) from None
            try:
                contribution = rule(g, node.ans, *args, **kwargs)
            except BatchedValueError as err:
                contribution = _batch.rule_per_example(rule, prim, (g, node.ans, *args), kwargs, err)
            previous = grads.get(parent)
            grads[parent] = contribution if previous is None else add(previous, contribution)


def check_versions(node):
    """Refuse to run a node's VJP with values changed in place since it was recorded.

    nablab's own in-place operations copy before writing, so a recorded value
    is never overwritten; but the derivative of a computation whose inputs or
    output were changed afterwards is not the derivative of anything the user
    now holds, so (as PyTorch does) the backward pass stops with the names.
    """
    prim = node.prim
    if getattr(node, "changed", None) is not None:
        raise RuntimeError(
            f"backward of {prim.name}: its output (shape {shape_of(node.ans)}) was changed in "
            f"place ({node.changed}) after it was computed, so its gradient would ignore the "
            "change. Change a copy, or compute again from the changed value."
        )
    if not prim.saves_values:
        return
    for i, a in enumerate(node.inputs):
        version = getattr(a, "_version", None) if isinstance(a, Tensor) else None
        if version is not None and version[0] > node.epoch:
            raise RuntimeError(
                f"backward of {prim.name}: its argument {i}, a tensor of shape {a.shape}, was "
                f"changed in place ({version[1]}) after {prim.name} used "
                "it, and its derivative needs the value it had. Compute the forward pass again "
                "after changing it (or change a copy)."
            )


class no_grad:
    """Context manager (and decorator) that stops recording on the imperative tape.

    Inside it, operations on ``tensor(..., requires_grad=True)`` give plain
    tensors, as in PyTorch; functional transforms (``grad``, ``jvp``, ...) still
    work, since they open their own levels.

    >>> import nablab
    >>> w = nablab.tensor([1.0, 2.0], requires_grad=True)
    >>> with nablab.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self):
        self._previous = _grad_mode.enabled
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self._previous
        return False

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        wrapped.__name__ = getattr(fn, "__name__", "wrapped")
        wrapped.__doc__ = getattr(fn, "__doc__", None)
        return wrapped


def is_grad_enabled() -> bool:
    """Whether operations on tensors with ``requires_grad=True`` are being recorded (False inside :class:`no_grad`).

    >>> import nablab as nb
    >>> with nb.no_grad():
    ...     inside = nb.is_grad_enabled()
    >>> inside, nb.is_grad_enabled()
    (False, True)
    """
    return _grad_mode.enabled


#: The keyword arguments of an operator call: none, shared (primitives never change them).
_NO_KWARGS: dict = {}


class _Ops:
    """The op namespace, filled in by :mod:`nablab.autodiff.ops` at import.

    The core and the box need ``add``, ``broadcast_to`` and the operators, but
    the ops are defined on top of the core: this late binding breaks the cycle.
    """


_ops = _Ops()


def _float_array(data, dtype=None):
    arr = np.asarray(data, dtype=dtype)
    if dtype is None and arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    return arr


class Tensor:
    """A value the engine can differentiate.

    Inside a function given to a transform (``grad``, ``jvp``, ...) the
    arguments arrive as tensors; use the operators, ``nablab``'s functions or
    ``nablab.numpy`` on them (NumPy's own functions dispatch to
    ``nablab.numpy`` too, and refuse what nablab cannot differentiate).  Built
    by hand with :func:`nablab.tensor`, a tensor with ``requires_grad=True``
    records the operations applied to it, and :meth:`backward` fills ``.grad``
    of such leaves, as in PyTorch.

    ``.grad`` accumulates across ``backward`` calls (as in PyTorch): set it
    to ``None`` or call ``.grad.zero_()`` between steps.

    A traced tensor never becomes a plain array unasked: ``np.asarray(t)`` raises
    :class:`~nablab.autodiff.dispatch.TracedValueError`, and so does ``float(t)``
    inside a transform (on the imperative tape it is how a loop logs a loss);
    ``t.detach()``, ``t.item()``, ``t.numpy()`` and ``t.data`` are the ways to
    ask (the last two give read-only views).  In-place changes (``t[i] = v``,
    ``t -= u`` under ``no_grad``, ``t.data = a``) never overwrite a value that
    a recorded operation saved; a backward pass that would need the old value
    raises instead (PyTorch's version counters).

    >>> import numpy as np, nablab as nb
    >>> w = nb.tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> loss = nb.sum(w ** 3)
    >>> loss.backward()
    >>> w.grad
    tensor([ 3., 12.])
    """

    __slots__ = ("_value", "_level", "_node", "_tangent", "_version", "__weakref__")
    __array_priority__ = 1000.0

    def __init__(self, value, level=CONSTANT, node=None, tangent=None):
        self._value = value
        self._level = level
        self._node = node
        self._tangent = tangent

    # ----- NumPy's protocols (NEP 13, NEP 18): see nablab.autodiff.dispatch
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _ops.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _ops.array_function(func, types, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        if dtype is None or np.dtype(dtype).kind in "fc":
            if _ops.is_traced(self):
                raise _ops.traced_value_error(self, "conversion to a NumPy array")
        arr = self._readonly()
        if dtype is not None and arr.dtype != dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def _readonly(self):
        arr = np.asarray(value_of(self))
        view = arr.view()
        view.flags.writeable = False
        return view

    # ----- what it holds
    @property
    def shape(self):
        return shape_of(self._value)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def dtype(self):
        return np.asarray(raw_value_of(self._value)).dtype

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    @property
    def data(self):
        """The NumPy array underneath, without the graph, as a read-only view.

        Assign to it (``t.data = new``) to replace the value outside the graph;
        write into a copy (``np.array(t.data)``) otherwise.
        """
        return self._readonly()

    @data.setter
    def data(self, value):
        if self._level > IMPERATIVE:
            raise RuntimeError("t.data = ... on a tensor traced by a transform; compute a new value instead")
        self._set_value(np.array(value_of(value), dtype=self.dtype, copy=True), "t.data = ...")

    def numpy(self):
        """The value as a read-only NumPy array (``np.array(t.numpy())`` for a writable copy)."""
        return self._readonly()

    def item(self):
        return np.asarray(value_of(self)).item()

    def tolist(self):
        return np.asarray(value_of(self)).tolist()

    def detach(self):
        """The same value as a constant: gradients do not flow through it."""
        value = value_of(self)
        return value if isinstance(value, Tensor) else Tensor(value)  # batched by vmap: stays batched

    def __len__(self):
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # float() of a loss is how a training loop logs it, as in PyTorch, so the imperative tape
    # allows it; inside a transform the number is part of the function being differentiated.
    def __float__(self):
        if self._level > IMPERATIVE and _ops.is_traced(self):
            raise _ops.traced_value_error(self, "float()")
        return float(value_of(self))

    def __complex__(self):
        if self._level > IMPERATIVE and _ops.is_traced(self):
            raise _ops.traced_value_error(self, "complex()")
        return complex(value_of(self))

    def __int__(self):
        # An integer has no derivative to lose: int(t) is an explicit request.
        return int(value_of(self))

    def __bool__(self):
        return bool(value_of(self))

    def __round__(self, ndigits=None):
        # round() is piecewise constant: its result is a plain number or array, as int() is
        value = value_of(self)
        return round(value) if ndigits is None and np.ndim(value) == 0 else np.round(value, ndigits or 0)

    def __repr__(self):
        body = np.array2string(np.asarray(raw_value_of(self)), separator=", ", prefix="tensor(")
        extra = ""
        if self._level == IMPERATIVE and self._node is not None:
            extra = ", requires_grad=True"
        elif self._level > IMPERATIVE:
            kind = "forward" if self._level in _forward_levels else "reverse"
            extra = f", traced at {kind} level {self._level}"
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__

    # ----- the imperative face
    @property
    def requires_grad(self):
        return self._node is not None

    @property
    def is_leaf(self):
        return self._node is None or self._node.prim is None

    @property
    def grad(self):
        """Accumulated gradient of a leaf after ``backward()`` (``None`` before)."""
        node = self._node
        return None if node is None else getattr(node, "grad", None)

    @grad.setter
    def grad(self, value):
        if self._node is None:
            raise RuntimeError("this tensor does not require grad; it has no .grad to set")
        self._node.grad = None if value is None else Tensor(_float_array(value_of(value)))

    def backward(self, gradient=None):
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        ``gradient`` is the output cotangent; it may be omitted for a scalar.
        The graph is kept, so calling it again accumulates again.
        """
        if self._level != IMPERATIVE or self._node is None:
            raise RuntimeError(
                "backward() needs a tensor computed from tensor(..., requires_grad=True); "
                "this one does not depend on any such tensor"
            )
        if gradient is None:
            if self.shape != ():
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar; this tensor has shape "
                    f"{self.shape}: pass gradient= of that shape"
                )
            gradient = np.ones_like(np.asarray(value_of(self)))
        else:
            gradient = np.asarray(value_of(gradient), dtype=self.dtype)
            if gradient.shape != self.shape:
                raise ShapeError(
                    f"backward(): gradient has shape {gradient.shape} but the tensor has "
                    f"shape {self.shape}"
                )
        gradients = backward([self._node], [gradient])
        del gradient  # (held here, the seed would count as a second owner of a leaf's gradient that is the seed)
        for leaf in list(gradients):
            g = value_of(gradients.pop(leaf))
            if getattr(leaf, "grad", None) is None:
                # an array nothing else holds becomes .grad as it is (a copy of a 4 MB gradient took 0.4 ms);
                # one that may be shared (the seed, another leaf's, a view) is copied
                owned = _held_only_by_caller(g) and g.dtype == self.dtype
                leaf.grad = Tensor(g if owned else np.array(g, dtype=self.dtype, copy=True))
            else:
                leaf.grad._value = leaf.grad._value + g

    # ----- in-place changes: copy, then write, then count (see check_versions)
    def _check_inplace(self, what):
        if self._level > IMPERATIVE or (
            self._level == IMPERATIVE and self._node is not None and _grad_mode.enabled
        ):
            raise InPlaceError(
                f"in-place {what} on a tensor that is being differentiated; update "
                "parameters inside `with nablab.no_grad():`, or write y = x + ... instead"
            )

    def _set_value(self, new, what):
        """Replace the value and count the change, so a graph that saved the old one can tell."""
        global _epoch
        self._value = new
        _epoch += 1
        self._version = (_epoch, what)
        node = self._node
        if node is not None and node.prim is not None:
            node.changed = what

    def _inplace_operand(self, other, what):
        if _ops.holds_traced(other if isinstance(other, (list, tuple)) else [other]):
            raise InPlaceError(
                f"in-place {what} with a traced value: writing it into this tensor would lose "
                "its derivative; build a new tensor instead (nablab.where, nablab.concatenate)"
            )
        return _ops.unbox_all(other)

    def _inplace(self, op, other, name):
        self._check_inplace(name)
        other = self._inplace_operand(other, name)
        dtype = np.asarray(self._value).dtype
        self._set_value(np.asarray(op(self._value, other), dtype=dtype), name)
        return self

    def __iadd__(self, other):
        return self._inplace(np.add, other, "+=")

    def __isub__(self, other):
        return self._inplace(np.subtract, other, "-=")

    def __imul__(self, other):
        return self._inplace(np.multiply, other, "*=")

    def __itruediv__(self, other):
        return self._inplace(np.true_divide, other, "/=")

    def __ipow__(self, other):
        return self._inplace(np.power, other, "**=")

    def __setitem__(self, index, value):
        self._check_inplace("item assignment")
        value = self._inplace_operand(value, "item assignment")
        new = np.array(self._value, copy=True)  # copy-on-write: saved values stay as recorded
        new[_ops.unbox_all(index)] = value
        self._set_value(new, "item assignment")

    def zero_(self):
        """Fill with zeros in place (for ``.grad.zero_()``)."""
        self._check_inplace("zero_")
        self._set_value(np.zeros_like(self._value), "zero_")
        return self

    def copy_(self, other):
        """Overwrite the value with ``other``'s (broadcast to this shape), in place."""
        self._check_inplace("copy_")
        other = self._inplace_operand(other, "copy_")
        new = np.empty_like(np.asarray(self._value))
        new[...] = other
        self._set_value(new, "copy_")
        return self

    # ----- operators
    def __add__(self, other):
        return bind(_ops.add_p, (self, other), _NO_KWARGS)

    def __radd__(self, other):
        return bind(_ops.add_p, (other, self), _NO_KWARGS)

    def __sub__(self, other):
        return bind(_ops.subtract_p, (self, other), _NO_KWARGS)

    def __rsub__(self, other):
        return bind(_ops.subtract_p, (other, self), _NO_KWARGS)

    def __mul__(self, other):
        return bind(_ops.multiply_p, (self, other), _NO_KWARGS)

    def __rmul__(self, other):
        return bind(_ops.multiply_p, (other, self), _NO_KWARGS)

    def __truediv__(self, other):
        return bind(_ops.divide_p, (self, other), _NO_KWARGS)

    def __rtruediv__(self, other):
        return bind(_ops.divide_p, (other, self), _NO_KWARGS)

    def __floordiv__(self, other):
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops.floor_divide(other, self)

    def __mod__(self, other):
        return _ops.mod(self, other)

    def __rmod__(self, other):
        return _ops.mod(other, self)

    def __divmod__(self, other):
        return _ops.floor_divide(self, other), _ops.mod(self, other)

    def __pow__(self, other):
        return bind(_ops.power_p, (self, other), _NO_KWARGS)

    def __rpow__(self, other):
        return bind(_ops.power_p, (other, self), _NO_KWARGS)

    def __matmul__(self, other):
        if not isinstance(other, (Tensor, np.ndarray, np.generic, int, float, complex, list, tuple)):
            return NotImplemented  # let operators of other libraries (a LinearOperator) take x @ A
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return bind(_ops.negative_p, (self,), _NO_KWARGS)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    # Comparisons and logic give plain boolean arrays: they have no derivative.
    def __lt__(self, other):
        return value_of(self) < _ops.unbox_all(other)

    def __le__(self, other):
        return value_of(self) <= _ops.unbox_all(other)

    def __gt__(self, other):
        return value_of(self) > _ops.unbox_all(other)

    def __ge__(self, other):
        return value_of(self) >= _ops.unbox_all(other)

    def __eq__(self, other):
        return value_of(self) == _ops.unbox_all(other)

    def __ne__(self, other):
        return value_of(self) != _ops.unbox_all(other)

    def __and__(self, other):
        return value_of(self) & _ops.unbox_all(other)

    def __rand__(self, other):
        return _ops.unbox_all(other) & value_of(self)

    def __or__(self, other):
        return value_of(self) | _ops.unbox_all(other)

    def __ror__(self, other):
        return _ops.unbox_all(other) | value_of(self)

    def __xor__(self, other):
        return value_of(self) ^ _ops.unbox_all(other)

    def __invert__(self):
        return ~value_of(self)

    # ----- NumPy's array methods and properties (filled below from nablab.numpy)
    @property
    def T(self):
        return _ops.transpose(self)

    @property
    def mT(self):
        return _ops.swapaxes(self, -1, -2)

    @property
    def real(self):
        return _ops.real(self)

    @property
    def imag(self):
        return _ops.imag(self)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def flatten(self, order="C"):
        return _ops.ravel(self, order=order)

    def compress(self, condition, axis=None):
        # ndarray.compress takes the condition first, np.compress the condition before the array
        return _ops.compress(condition, self, axis=axis)

    def relu(self):
        return _ops.relu(self)

    def sigmoid(self):
        return _ops.sigmoid(self)


def _array_method(name):
    def method(self, *args, **kwargs):
        return getattr(_ops, name)(self, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = f"``nablab.numpy.{name}(self, ...)``, as ``ndarray.{name}``."
    return method


#: ndarray methods that are the NumPy function of the same name with the array first.
ARRAY_METHODS = (
    "all", "any", "argmax", "argmin", "argsort", "astype", "choose", "clip", "conj",
    "conjugate", "copy",
    "cumprod", "cumsum", "diagonal", "dot", "max", "mean", "min", "nonzero", "prod", "ptp",
    "ravel", "repeat", "round", "squeeze", "std", "sum", "swapaxes", "take", "trace", "var",
    "exp", "log", "tanh", "sqrt",
)
for _name in ARRAY_METHODS:
    setattr(Tensor, _name, _array_method(_name))
