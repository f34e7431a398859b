"""Custom derivative rules (:class:`custom_vjp`, :class:`custom_jvp`) and :func:`checkpoint`.

A function decorated with :class:`custom_jvp` or :class:`custom_vjp` runs as written
when nothing differentiates it; under a transform its rule replaces the derivative
of its body (JAX's semantics). :func:`checkpoint` keeps only a function's inputs
for the backward pass and runs the function again there.

How they meet the engine (see :mod:`nablab.autodiff.core`): a call finds the
highest trace level among its arguments, as a primitive does, and

- on a *reverse* level (``grad``, ``vjp``, ``jacrev``, the imperative tape) it runs
  the forward part on the arguments unboxed at that level (so lower levels record
  it as ordinary operations) and records one node whose VJP is the rule: ``bwd``
  for ``custom_vjp``; for ``custom_jvp`` the transpose of the tangent map, which
  the JVP rule recorded once, on a level of its own, when the primal was computed;
  for ``checkpoint`` a VJP of the function run again;
- on a *forward* level (``jvp``, ``jacfwd``) it applies the JVP rule to the
  tangents (``custom_jvp``), or the JVP of the function inside a checkpoint
  (``checkpoint``: lower reverse levels still store only the inputs), and refuses
  ``custom_vjp``, whose rule gives no Jacobian-vector product (as JAX does);
- on a *batch* level of ``vmap`` it runs as written if no level below
  differentiates; otherwise the rule registered for batch levels
  (:func:`register_level_rule`, in :mod:`nablab.autodiff.batching`) calls the same
  decorator applied to the batched function and rules on the values unboxed at
  the batch level, so the level below records the rule of the whole batch.

The rules are ordinary nablab functions: recorded by the lower levels while they
run, so custom rules nest to any order (``grad`` of ``grad``, ``hessian``).

>>> import numpy as np, nablab as nb
>>> @nb.custom_jvp
... def log1pexp(x):
...     return nb.maximum(x, 0.0) + nb.log1p(nb.exp(-nb.abs(x)))
>>> @log1pexp.defjvp
... def log1pexp_jvp(primals, tangents):
...     (x,), (t,) = primals, tangents
...     return log1pexp(x), t * nb.sigmoid(x)
>>> [float(nb.grad(log1pexp)(x)) for x in (-800.0, 0.0, 800.0)]
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from nablab.autodiff import ops
from nablab.autodiff.core import (
    _NO_KWARGS,
    CONSTANT,
    IMPERATIVE,
    Node,
    Primitive,
    ShapeError,
    Tensor,
    _batch_levels,
    _forward_levels,
    _grad_mode,
    _live_levels,
    close_level,
    new_level,
    shape_of,
)
from nablab.autodiff.core import backward as _backward
from nablab.autodiff.tree import tree_flatten, tree_map, tree_unflatten

__all__ = ["custom_vjp", "custom_jvp", "checkpoint", "linearize", "linear_transpose", "register_level_rule"]


# -- levels ------------------------------------------------------------------------


def _level(x):
    """The trace level a leaf is watched at, or None for a constant."""
    if not isinstance(x, Tensor):
        return None
    level = x._level
    if level == CONSTANT or (level == IMPERATIVE and (x._node is None or not _grad_mode.enabled)):
        return None
    return level


def _levels(leaves):
    """Every differentiation level (forward or reverse) boxed anywhere in ``leaves``, boxes of boxes included."""
    found = set()
    for x in leaves:
        while isinstance(x, Tensor):
            level = _level(x)
            if level is not None and (level in _forward_levels or x._node is not None):
                found.add(level)
            x = x._value
    return found


def _refuse_hidden_tensors(leaves, who):
    # tree_flatten keeps a namedtuple whole; a traced value inside one would escape the scan.
    for x in leaves:
        if isinstance(x, tuple) and not isinstance(x, Tensor) and _holds_traced(x):
            raise TypeError(f"{who}: an argument holds traced values inside a {type(x).__name__} (a named "
                            "tuple); pass its fields as a tuple or dict so their derivatives are followed")


def _holds_traced(x):
    for v in x:
        if _level(v) is not None or (isinstance(v, (list, tuple, dict)) and
                                     _holds_traced(v.values() if isinstance(v, dict) else v)):
            return True
    return False


def _top(leaves):
    """The highest level among ``leaves`` and a box at that level (or ``(None, None)``)."""
    top, box = None, None
    for x in leaves:
        level = _level(x)
        if level is not None and (top is None or level > top):
            top, box = level, x
    return top, box


def _kind(level, box):
    if level in _forward_levels:
        return "forward"
    if box._node is not None:
        return "reverse"
    return "other"


def _unbox(x, level):
    return x._value if isinstance(x, Tensor) and x._level == level else x


#: Rules for levels that are neither forward nor reverse (a batching level of vmap):
#: ``(predicate(level) -> bool, handler(kind, obj, args, kwargs, level) -> output)``.
_LEVEL_RULES: list = []


def register_level_rule(predicate, handler):
    """Teach custom rules and :func:`checkpoint` a new kind of trace level.

    ``handler(kind, obj, args, kwargs, level)`` is called when the highest level
    among the arguments satisfies ``predicate(level)`` and some level below it
    differentiates (otherwise the function runs as written); ``kind`` is
    ``"custom_vjp"``, ``"custom_jvp"`` or ``"checkpoint"``, and ``obj`` carries
    ``.fun`` (and ``.fwd``/``.bwd``, ``.jvp``, ``.nondiff_argnums``): a batching
    level answers with the same decorator applied to the batched functions.

    >>> from nablab.autodiff.custom import register_level_rule, _LEVEL_RULES
    >>> register_level_rule(lambda level: False, lambda *a: None); len(_LEVEL_RULES) >= 1
    True
    >>> _ = _LEVEL_RULES.pop()
    """
    _LEVEL_RULES.append((predicate, handler))


def _other_level(kind, obj, args, kwargs, level, name, leaves):
    """A call whose highest level is neither forward nor reverse (a batching level of ``vmap``).

    If no level in the arguments differentiates (no forward or reverse level
    anywhere in them), the function runs as written, as JAX runs it when nothing
    differentiates it. Otherwise a rule registered for the level answers (``vmap``
    registers one: the same decorator applied to the batched functions). Without
    one a checkpoint runs as written (same numbers; reverse levels below keep its
    inside), and a custom rule raises, since running the function as written
    would bypass it.
    """
    differentiating = set()
    for x in leaves:
        while isinstance(x, Tensor):
            lv = _level(x)
            if lv is not None and _kind(lv, x) != "other":
                differentiating.add(lv)
            x = x._value
    if not differentiating:
        return obj.fun(*args, **kwargs)
    for predicate, handler in _LEVEL_RULES:
        if predicate(level):
            return handler(kind, obj, args, kwargs, level)
    if kind == "checkpoint":
        return obj.fun(*args, **kwargs)
    raise NotImplementedError(
        f"{name}: its argument is traced at level {level}, which is neither a forward nor a reverse level, "
        f"above differentiation level {max(differentiating)}; no rule for {kind} is registered for that kind "
        "of level (nablab.autodiff.custom.register_level_rule), and running the function as written would "
        "bypass its rule")


# -- recording one node for a custom rule ------------------------------------------


class _Cotangents:
    """The cotangents of a multi-output node's outputs, by position (None: no cotangent).

    The backward pass adds the contributions of the outputs with ``nablab.add``,
    whose primitive calls ``np.add``; NumPy hands that to :meth:`__array_ufunc__`.
    """

    __slots__ = ("items",)
    __array_priority__ = 2000.0

    def __init__(self, items):
        self.items = items

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.add and method == "__call__" and len(inputs) == 2 and not kwargs \
                and all(isinstance(i, _Cotangents) for i in inputs):
            a, b = inputs
            return _Cotangents([y if x is None else x if y is None else ops.add(x, y)
                                for x, y in zip(a.items, b.items)])
        return NotImplemented

    def __format__(self, spec):  # a drawn graph (nb.trace_graph) shows the parts
        return "(" + ", ".join("0" if v is None else np.array2string(np.asarray(_raw(v)), precision=4)
                               for v in self.items) + ")"

    __repr__ = __str__ = lambda self: f"parts{self.__format__('')}"


def _not_replayable(*args, **kwargs):
    raise RuntimeError("a custom rule's node cannot be run as a primitive")


class _Pullback:
    """One VJP for all inputs of a node: computed at the first input's turn, reused for the others."""

    def __init__(self, fn, n):
        self.fn, self.n = fn, n
        self.g = self.cts = None

    def rule(self, i):
        def vjp_rule(g, ans, *args):
            if self.cts is None or self.g is not g:
                self.cts, self.g = self.fn(g), g
            ct = self.cts[i]
            if i == self.n - 1:
                self.g = self.cts = None
            return ct

        return vjp_rule


def _is_inexact(v):
    return _dtype(v).kind in "fc"


def _record(level, name, inputs, out_leaves, pullback, replay=None):
    """Box ``out_leaves`` at ``level`` behind one node whose parents are ``inputs`` (boxes at ``level``).

    ``pullback(gs)`` gets one cotangent per output leaf (None where none arrived)
    and returns one per input. Outputs that are not floating point stay unboxed.
    ``replay(*input_values)``, if given, computes the output leaves again from new
    inputs (``linearize`` runs a recorded tangent map forward with it).
    """
    boxed = [k for k, v in enumerate(out_leaves) if _is_inexact(v)]
    if not boxed:
        return list(out_leaves)
    n_out = len(out_leaves)
    prim = Primitive(_not_replayable, name=name)
    parents = tuple((i, x._node) for i, x in enumerate(inputs))
    args = tuple(x._value for x in inputs) if replay is not None else ()
    result = list(out_leaves)
    if len(boxed) == 1:
        (k,) = boxed
        shared = _Pullback(_single_output(pullback, k, n_out), len(inputs))
        prim.vjps = {i: shared.rule(i) for i in range(len(inputs))}
        if replay is not None:
            prim.replay = lambda *xs: replay(*xs)[k]
        node = Node(prim, args, _NO_KWARGS, out_leaves[k], parents, tuple(inputs))
        result[k] = Tensor(out_leaves[k], level, node)
        return result
    shared = _Pullback(lambda g: pullback(list(g.items)), len(inputs))
    prim.vjps = {i: shared.rule(i) for i in range(len(inputs))}
    if replay is not None:
        prim.replay = lambda *xs: tuple(replay(*xs))
    joint = Node(prim, args, _NO_KWARGS, _Cotangents(list(out_leaves)), parents, tuple(inputs))
    for k in boxed:
        select = Primitive(_not_replayable, name=f"{name}[{k}]", saves_values=False)
        select.vjps = {0: _selector(k, n_out)}
        select.replay = functools.partial(_pick, k)
        result[k] = Tensor(out_leaves[k], level,
                           Node(select, (tuple(out_leaves),), _NO_KWARGS, out_leaves[k], ((0, joint),)))
    return result


def _pick(k, outs):
    return outs[k]


def _single_output(pullback, k, n_out):
    def fn(g):
        gs = [None] * n_out
        gs[k] = g
        return pullback(gs)

    return fn


def _selector(k, n_out):
    def rule(g, ans, *args):
        items = [None] * n_out
        items[k] = g
        return _Cotangents(items)

    return rule


# -- checks shared by the decorators ------------------------------------------------


def _name(f):
    return getattr(f, "__name__", type(f).__name__)


def _signature(f):
    try:
        return inspect.signature(f)
    except (TypeError, ValueError):
        return None


def _describe_arg(signature, i):
    if signature is not None:
        params = list(signature.parameters)
        if i < len(params):
            return f"argument {i} ({params[i]})"
    return f"argument {i}"


def _refuse_closure(who, out_levels, arg_levels, level=None):
    """Levels in what a rule returned that its arguments did not carry: it closed over traced values."""
    extra = {lv for lv in out_levels if lv not in arg_levels or (level is not None and lv >= level)}
    if extra:
        raise TypeError(
            f"{who} uses a value traced at level {max(extra)} that is not among its arguments (it closed over "
            "it): its derivative would be lost. Pass that value as an argument")


def _refuse_batched_closure(who, leaves, level):
    """Refuse outputs holding a box of a vmap level above ``level`` (a batched value the rule closed over)."""
    if not _batch_levels:
        return
    for x in leaves:
        while isinstance(x, Tensor):
            if x._level > level and x._level in _batch_levels:
                raise TypeError(f"{who} uses a value batched by vmap that is not among its arguments (it closed over "
                                "it): its derivative would be recorded in the wrong order. Pass that value as an "
                                "argument")
            x = x._value


def _zeros_like_leaf(v):
    return np.zeros(shape_of(v), _dtype(v))


def _dtype(x):
    """The dtype of a box, an array or a number (the array beneath every box: never a batched value as one)."""
    while isinstance(x, Tensor):
        x = x._value
    return np.asarray(x).dtype


def _raw(x):
    while isinstance(x, Tensor):
        x = x._value
    return x


def _cast_cotangent(ct, x, who):
    """A cotangent in its input's floating type; a complex one for a real input is refused."""
    x_dtype = _dtype(x)
    ct_dtype = _dtype(ct)
    if x_dtype.kind == "f" and ct_dtype.kind == "c":
        raise TypeError(f"{who} is complex ({ct_dtype}) but the argument is real ({x_dtype})")
    if x_dtype.kind in "fc" and ct_dtype != x_dtype and ct_dtype.kind in "fciub":
        return ops.astype(ct, x_dtype) if isinstance(ct, Tensor) else np.asarray(ct, dtype=x_dtype)
    return ct


def _plain_spec(spec):
    """A spec with lists and tuples alike (a bwd may return either for a tuple argument)."""
    kind, keys, children = spec
    if kind == "list":
        kind = "tuple"
    return (kind, keys, None if children is None else [_plain_spec(c) for c in children])


# -- what custom_vjp and custom_jvp share --------------------------------------------


class _CustomRule:
    """A function with a rule of its own: the wrapped function, its nondiff arguments and a call's first steps."""

    what = ""  # "custom_vjp" or "custom_jvp", for messages

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(sorted(set(int(i) for i in nondiff_argnums)))
        self._signature = _signature(fun)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    def _prepare(self, args, kwargs, has_rule, how):
        """Arguments bound and checked: ``(name, args, flat, all_leaves, top, box)``; ``top`` is None when
        nothing differentiates or batches them."""
        name = _name(self.fun)
        if not has_rule:
            raise TypeError(f"{self.what} function {name} has no rule: call {name}.{how} first")
        args = _positional(self, args, kwargs, self.what)
        _check_nondiff_argnums(self, len(args), self.what)
        flat = [tree_flatten(a) for a in args]
        all_leaves = [x for leaves, _ in flat for x in leaves]
        _refuse_hidden_tensors(all_leaves, f"{self.what} function {name}")
        top, box = _top(all_leaves)
        return name, args, flat, all_leaves, top, box

    def _run_plain(self, name, args):
        """The function as written (no transform sees its arguments); a traced value it closed over is refused."""
        out = self.fun(*args)
        _refuse_closure(f"{self.what} function {name}", _levels(tree_flatten(out)[0]), set())
        return out


# -- custom_vjp ---------------------------------------------------------------------


class custom_vjp(_CustomRule):
    """A function with its own reverse-mode rule (JAX's ``custom_vjp``).

    ``f.defvjp(fwd, bwd)`` sets the rule: ``fwd(*args) -> (out, residuals)`` runs
    in the forward pass, ``bwd(*nondiff_args, residuals, g) -> cotangents`` in the
    backward pass, with ``g`` shaped like ``out`` and one cotangent (shaped like the
    argument, or None for zero) per argument not in ``nondiff_argnums``.
    Undifferentiated, ``f`` runs as written. ``fwd`` and ``bwd`` are nablab
    functions, so ``grad`` of ``grad`` (and ``hessian``, forward over reverse)
    differentiates through them. Forward mode (``jvp``, ``jacfwd``) cannot use
    the rule and raises; ``nondiff_argnums`` are for non-array arguments
    (functions, shapes) and refuse a value being differentiated (one batched by
    ``vmap`` is fine: the rule is batched over it).

    >>> import numpy as np, nablab as nb
    >>> @nb.custom_vjp
    ... def clip_gradient(x, bound):
    ...     return x
    >>> def clip_fwd(x, bound):
    ...     return x, bound
    >>> def clip_bwd(bound, g):
    ...     return nb.clip(g, -bound, bound), None
    >>> clip_gradient.defvjp(clip_fwd, clip_bwd)
    >>> nb.grad(lambda x: nb.sum(3.0 * clip_gradient(x, 1.0)))(np.array([0.5, 2.0]))
    array([1., 1.])
    """

    what = "custom_vjp"

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd):
        """Set the rule: ``fwd`` for the forward pass, ``bwd`` for the backward pass (see the class)."""
        for what, rule in (("fwd", fwd), ("bwd", bwd)):
            if not callable(rule):
                raise TypeError(f"custom_vjp {_name(self.fun)}.defvjp: {what} must be a function, "
                                f"got {type(rule).__name__}")
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args, **kwargs):
        name, args, flat, all_leaves, top, box = self._prepare(args, kwargs, self.fwd is not None,
                                                               "defvjp(fwd, bwd)")
        if top is None:
            return self._run_plain(name, args)
        kind = _kind(top, box)
        if kind != "other":  # a batched nondiff argument is no derivative lost: vmap batches bwd over it
            _refuse_traced_nondiff(self, flat, top, "custom_vjp")
        if kind == "forward":
            raise TypeError(
                f"custom_vjp function {name} is differentiated in forward mode (jvp, jacfwd, ...), but its rule "
                "gives only vector-Jacobian products. Use reverse mode (grad, vjp, jacrev; hessian's default "
                "'fwd-over-rev' works), or define the rule with custom_jvp, which serves both modes")
        if kind == "other":
            return _other_level("custom_vjp", self, args, {}, top, f"custom_vjp function {name}", all_leaves)
        vals = [tree_unflatten(spec, [_unbox(x, top) for x in leaves]) for leaves, spec in flat]
        pair = self.fwd(*vals)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"custom_vjp function {name}: fwd must return a pair (output, residuals), "
                            f"got {type(pair).__name__}")
        out, res = pair
        out_leaves, out_spec = tree_flatten(out)
        res_leaves = tree_flatten(res)[0]
        arg_levels = _levels([_unbox(x, top) for x in all_leaves])
        _refuse_closure(f"custom_vjp function {name}'s fwd", _levels(out_leaves + res_leaves), arg_levels, top)
        _refuse_batched_closure(f"custom_vjp function {name}'s fwd", out_leaves + res_leaves, top)
        inputs = [(i, j, x) for i, (leaves, _) in enumerate(flat) if i not in self.nondiff_argnums
                  for j, x in enumerate(leaves) if _level(x) == top]
        nondiff_vals = [vals[i] for i in self.nondiff_argnums]
        bwd, who = self.bwd, f"custom_vjp function {name}: bwd"

        def pullback(gs):
            g = tree_unflatten(out_spec, [_zeros_like_leaf(o) if gi is None else gi
                                          for gi, o in zip(gs, out_leaves)])
            cts = bwd(*nondiff_vals, res, g)
            per_arg = _check_bwd_output(self, who, cts, flat, top)
            return [per_arg[i][j] if per_arg[i] is not None and per_arg[i][j] is not None
                    else _zeros_like_leaf(x._value) for i, j, x in inputs]

        return tree_unflatten(out_spec, _record(top, f"custom_vjp({name})", [x for _, _, x in inputs],
                                                out_leaves, pullback))


def _positional(obj, args, kwargs, what):
    """The arguments by position, defaults filled in (so fwd and bwd always see the same count)."""
    if obj._signature is None:
        if not kwargs:
            return args
        raise TypeError(f"{what} function {_name(obj.fun)}: keyword arguments need a function with a signature")
    bound = obj._signature.bind(*args, **kwargs)
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(f"{what} function {_name(obj.fun)}: keyword-only arguments ({', '.join(bound.kwargs)}) "
                        "are not supported; make them positional")
    return bound.args


def _check_nondiff_argnums(obj, n, what):
    for i in obj.nondiff_argnums:
        if not 0 <= i < n:
            raise IndexError(f"{what} function {_name(obj.fun)}: nondiff_argnums has {i} but it was called "
                             f"with {n} arguments")


def _refuse_traced_nondiff(obj, flat, top, what):
    for i in obj.nondiff_argnums:
        if any(_level(x) == top for x in flat[i][0]):
            raise TypeError(
                f"{what} function {_name(obj.fun)}: {_describe_arg(obj._signature, i)} is in nondiff_argnums but "
                "holds a value being differentiated; its derivative would be lost. Make it an ordinary argument "
                "(its cotangent may be None)")


def _check_bwd_output(obj, who, cts, flat, level):
    """Per differentiable argument, its cotangent leaves (None for a zero cotangent), checked."""
    name = _name(obj.fun)
    diff = [i for i in range(len(flat)) if i not in obj.nondiff_argnums]
    if not isinstance(cts, (tuple, list)):
        raise TypeError(f"{who} returned {type(cts).__name__}; it must return a tuple with one cotangent per "
                        f"differentiable argument of {name} ({len(diff)}), e.g. (g_x,) for one")
    if len(cts) != len(diff):
        raise TypeError(f"{who} returned {len(cts)} cotangents; {name} has {len(diff)} differentiable "
                        f"arguments ({', '.join(_describe_arg(obj._signature, i) for i in diff)})")
    per_arg = {}
    for i, ct in zip(diff, cts):
        what = _describe_arg(obj._signature, i)
        arg_leaves, arg_spec = flat[i]
        if ct is None:
            per_arg[i] = None
            continue
        ct_leaves, ct_spec = tree_flatten(ct)
        if _plain_spec(ct_spec) != _plain_spec(arg_spec):
            raise TypeError(f"{who}: the cotangent for {what} has the structure {_spec_text(ct_spec)} but "
                            f"the argument has {_spec_text(arg_spec)}")
        checked = []
        for j, (c, x) in enumerate(zip(ct_leaves, arg_leaves)):
            where = what if len(arg_leaves) == 1 else f"{what}, leaf {j}"
            if c is None:
                checked.append(None)
                continue
            _refuse_dead_levels(c, f"{who}: the cotangent for {where}")
            if shape_of(c) != shape_of(x):
                raise ShapeError(f"{who}: the cotangent for {where} has shape {shape_of(c)} but the argument "
                                 f"has shape {shape_of(x)}")
            stale = [lv for lv in _levels([c]) if lv >= level]
            if stale:
                raise TypeError(f"{who}: the cotangent for {where} is traced at level {max(stale)}, the level being "
                                "differentiated: bwd used a value of the forward pass that was not a residual")
            checked.append(_cast_cotangent(c, x, f"{who}: the cotangent for {where}"))
        per_arg[i] = checked
    return per_arg


def _refuse_dead_levels(c, who):
    """A value boxed at a level that has closed came from a closure (a value batched by a vmap that returned)."""
    while isinstance(c, Tensor):
        if c._level > IMPERATIVE and c._level not in _live_levels:
            raise TypeError(f"{who} holds a value of a transform that has already returned (bwd closed over a value "
                            "traced or batched by vmap in the forward pass); pass it as an argument, or through "
                            "the residuals")
        c = c._value


def _spec_text(spec):
    kind, keys, children = spec
    if kind == "leaf":
        return "an array"
    if kind == "none":
        return "None"
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {_spec_text(c)}" for k, c in zip(keys, children)) + "}"
    inner = ", ".join(_spec_text(c) for c in children)
    return f"({inner}{',' if len(children) == 1 else ''})" if kind == "tuple" else f"[{inner}]"


# -- custom_jvp ---------------------------------------------------------------------


class custom_jvp(_CustomRule):
    """A function with its own forward-mode rule (JAX's ``custom_jvp``), used by every transform.

    ``f.defjvp(rule)`` (also a decorator) sets ``rule(*nondiff_args, primals,
    tangents) -> (out, tangent_out)``, with ``primals`` and ``tangents`` tuples of
    the other arguments; ``tangent_out`` must be linear in ``tangents``.
    ``f.defjvps(*rules)`` gives one rule per argument instead, each
    ``rule_i(t_i, out, *args)``. Reverse mode transposes the tangent map: the rule
    runs once, with the primal, and the tangent part is recorded on a level of its
    own and run backwards. Undifferentiated, ``f`` runs as written.

    >>> import numpy as np, nablab as nb
    >>> @nb.custom_jvp
    ... def straight_through_round(x):
    ...     return nb.round(x)
    >>> _ = straight_through_round.defjvp(lambda p, t: (straight_through_round(*p), t[0]))
    >>> x = np.array([0.2, 1.7])
    >>> straight_through_round(x), nb.grad(lambda x: nb.sum(straight_through_round(x) ** 2))(x)
    (array([0., 2.]), array([0., 4.]))
    """

    what = "custom_jvp"

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.jvp = None

    def defjvp(self, jvp):
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (out, tangent_out)``; returns it."""
        if not callable(jvp):
            raise TypeError(f"custom_jvp {_name(self.fun)}.defjvp: the rule must be a function, "
                            f"got {type(jvp).__name__}")
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps):
        """One rule per argument, ``jvp_i(t_i, out, *args)`` (None: no dependence); their sum is the tangent."""
        if self.nondiff_argnums:
            raise TypeError(f"custom_jvp {_name(self.fun)}.defjvps cannot be used with nondiff_argnums; "
                            "use defjvp")
        fun = self.fun

        def jvp(primals, tangents):
            if len(jvps) != len(primals):
                raise TypeError(f"custom_jvp {_name(fun)}.defjvps: {len(jvps)} rules for {len(primals)} arguments")
            out = fun(*primals)
            total = None
            for rule, t in zip(jvps, tangents):
                if rule is None:
                    continue
                term = rule(t, out, *primals)
                total = term if total is None else tree_map(ops.add, total, term)
            return out, (tree_map(_zeros_like_leaf, out) if total is None else total)

        self.jvp = jvp

    def __call__(self, *args, **kwargs):
        name, args, flat, all_leaves, top, box = self._prepare(args, kwargs, self.jvp is not None, "defjvp(rule)")
        if top is None:
            return self._run_plain(name, args)
        kind = _kind(top, box)
        if kind != "other":  # a batched nondiff argument is no derivative lost: vmap batches the rule over it
            _refuse_traced_nondiff(self, flat, top, "custom_jvp")
        if kind == "other":
            return _other_level("custom_jvp", self, args, {}, top, f"custom_jvp function {name}", all_leaves)
        vals = [tree_unflatten(spec, [_unbox(x, top) for x in leaves]) for leaves, spec in flat]
        arg_levels = _levels([_unbox(x, top) for x in all_leaves])
        diff = [i for i in range(len(args)) if i not in self.nondiff_argnums]
        nondiff_vals = [vals[i] for i in self.nondiff_argnums]
        if kind == "forward":
            tangents = [tree_unflatten(flat[i][1], [x._tangent if _level(x) == top else _zeros_like_leaf(x)
                                                    for x in flat[i][0]]) for i in diff]
            out_leaves, out_spec, t_leaves = self._apply_rule(nondiff_vals, [vals[i] for i in diff], tangents)
            tangent_levels = _levels([x._tangent for x in all_leaves if _level(x) == top])
            _refuse_closure(f"custom_jvp function {name}'s rule", _levels(out_leaves), arg_levels, top)
            _refuse_closure(f"custom_jvp function {name}'s rule", _levels(t_leaves), arg_levels | tangent_levels, top)
            _refuse_batched_closure(f"custom_jvp function {name}'s rule", out_leaves + t_leaves, top)
            return tree_unflatten(out_spec, [Tensor(o, top, None, _tangent_in_dtype(t, o)) if _is_inexact(o) else o
                                             for o, t in zip(out_leaves, t_leaves)])
        # Reverse: run the rule once with tangents boxed on a level of its own; that records the tangent map,
        # which the backward pass runs backwards (the transpose of a linear map).
        inputs = [(i, j, x) for i in diff for j, x in enumerate(flat[i][0]) if _level(x) == top]
        own = new_level()
        try:
            seeds = {}
            tangents = []
            for i in diff:
                leaves = []
                for j, x in enumerate(flat[i][0]):
                    if _level(x) == top:
                        node = Node.leaf()
                        seeds[(i, j)] = node
                        leaves.append(Tensor(_zeros_like_leaf(x), own, node))
                    else:
                        leaves.append(_zeros_like_leaf(x))
                tangents.append(tree_unflatten(flat[i][1], leaves))
            out_leaves, out_spec, t_leaves = self._apply_rule(nondiff_vals, [vals[i] for i in diff], tangents)
        finally:
            close_level(own)
        who = f"custom_jvp function {name}'s rule"
        if own in _levels(out_leaves):
            raise TypeError(f"{who}: the primal output depends on the tangents; compute it from the primals alone")
        _refuse_closure(who, _levels(out_leaves), arg_levels, top)
        _refuse_closure(who, _levels(t_leaves) - {own}, arg_levels, top)
        _refuse_batched_closure(who, out_leaves + t_leaves, top)
        roots = [(k, t._node) for k, t in enumerate(t_leaves) if isinstance(t, Tensor) and t._level == own]
        _check_linear([node for _, node in roots], who)

        def pullback(gs):
            pairs = [(node, gs[k]) for k, node in roots if gs[k] is not None]
            grads = _backward([n for n, _ in pairs], [g for _, g in pairs]) if pairs else {}
            result = []
            for i, j, x in inputs:
                node = seeds[(i, j)]
                ct = grads[node] if node in grads else _zeros_like_leaf(x._value)
                result.append(_cast_cotangent(ct, x, f"{who}: the cotangent of {_describe_arg(self._signature, i)}"))
            return result

        return tree_unflatten(out_spec, _record(top, f"custom_jvp({name})", [x for _, _, x in inputs],
                                                out_leaves, pullback))

    def _apply_rule(self, nondiff_vals, primals, tangents):
        name = _name(self.fun)
        who = f"custom_jvp function {name}'s rule"
        pair = self.jvp(*nondiff_vals, tuple(primals), tuple(tangents))
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{who} must return a pair (primal_out, tangent_out), got {type(pair).__name__}")
        out, t_out = pair
        out_leaves, out_spec = tree_flatten(out)
        t_leaves, t_spec = tree_flatten(t_out)
        if _plain_spec(t_spec) != _plain_spec(out_spec):
            raise TypeError(f"{who}: tangent_out has the structure {_spec_text(t_spec)} but primal_out has "
                            f"{_spec_text(out_spec)}")
        for k, (o, t) in enumerate(zip(out_leaves, t_leaves)):
            where = "" if len(out_leaves) == 1 else f" (output leaf {k})"
            if t is None:
                raise TypeError(f"{who}: tangent_out{where} is None; give zeros shaped like the output")
            if shape_of(t) != shape_of(o):
                raise ShapeError(f"{who}: tangent_out{where} has shape {shape_of(t)} but primal_out has "
                                 f"shape {shape_of(o)}")
        return out_leaves, out_spec, t_leaves


def _tangent_in_dtype(t, o):
    o_dtype = _dtype(o)
    t_dtype = _dtype(t)
    if o_dtype.kind in "fc" and t_dtype != o_dtype and not (o_dtype.kind == "f" and t_dtype.kind == "c"):
        return ops.astype(t, o_dtype) if isinstance(t, Tensor) else np.asarray(t, dtype=o_dtype)
    return t


#: Primitives linear in each argument they are traced in (any number of traced arguments).
_LINEAR = frozenset({
    "add", "subtract", "negative", "positive", "reshape", "ravel", "transpose", "swapaxes", "moveaxis",
    "broadcast_to", "expand_dims", "squeeze", "getitem", "untake", "sum", "mean", "cumsum", "concatenate",
    "stack", "array", "real", "imag", "conj", "conjugate", "astype", "where", "take", "take_along_axis",
    "diagonal", "diag", "trace", "tril", "triu", "roll", "flip", "pad", "repeat", "tile", "copy", "fft",
    "ifft", "rfft", "irfft", "fft2", "ifft2", "fftn", "ifftn", "rfftn", "irfftn", "hfft", "ihfft",
    "unbroadcast", "select", "compress", "embed_diagonal", "gather", "scatter",
})
#: Products: linear in each argument when only one of them is traced at the level.
_BILINEAR = frozenset({"multiply", "matmul", "dot", "tensordot", "einsum", "inner", "outer", "vdot", "kron",
                       "cross", "convolve", "correlate"})


def _check_linear(roots, who, what="the tangents"):
    """Refuse a map that applies a nonlinear primitive to its input (its transpose would be wrong)."""
    from nablab.autodiff.core import toposort

    for node in toposort(roots):
        prim = node.prim
        if prim is None:
            continue
        name = prim.name
        if name in _LINEAR:
            continue
        if name in _BILINEAR and len(node.parents) == 1:
            continue
        if name == "divide" and [a for a, _ in node.parents] == [0]:
            continue
        if name == "solve" and [a for a, _ in node.parents] == [1]:
            continue
        several = (" (more than one operand traced)" if name in _BILINEAR else
                   " (in an operand it is not linear in)" if name in ("divide", "solve") else "")
        raise TypeError(
            f"{who} applies {name} to {what}{several}; it must be linear in {what} (sums, products with "
            "constants, reshapes, indexing...) to be transposed")


# -- checkpoint ---------------------------------------------------------------------


class _Checkpointed:
    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.__name__ = f"checkpointed_{_name(fun)}"

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        fun, name = self.fun, f"checkpoint({_name(self.fun)})"
        leaves, spec = tree_flatten((args, kwargs))
        _refuse_hidden_tensors(leaves, name)
        top, box = _top(leaves)
        if top is None:
            return fun(*args, **kwargs)
        kind = _kind(top, box)
        if kind == "other":
            return _other_level("checkpoint", self, args, kwargs, top, name, leaves)
        vals = [_unbox(x, top) for x in leaves]
        diff = [k for k, x in enumerate(leaves) if _level(x) == top]
        if kind == "forward":
            # jvp(checkpoint(f)) = checkpoint(jvp(f)): lower reverse levels keep the inputs and tangents only.
            out, tangent = checkpoint(functools.partial(_jvp_of, fun, spec, tuple(diff)))(
                vals, [leaves[k]._tangent for k in diff])
            out_leaves, out_spec = tree_flatten(out)
            t_leaves = tree_flatten(tangent)[0]
            allowed = _levels(vals) | _levels([leaves[k]._tangent for k in diff])
            _refuse_closure(name, _levels(out_leaves) | _levels(t_leaves), allowed, top)
            _refuse_batched_closure(name, out_leaves + t_leaves, top)
            return tree_unflatten(out_spec, [Tensor(o, top, None, t) if _is_inexact(o) else o
                                             for o, t in zip(out_leaves, t_leaves)])
        a_vals, kw_vals = tree_unflatten(spec, vals)
        out = self(*a_vals, **kw_vals)  # lower levels (if any) checkpoint it too; none records its inside
        out_leaves, out_spec = tree_flatten(out)
        _refuse_closure(name, _levels(out_leaves), _levels(vals), top)
        _refuse_batched_closure(name, out_leaves, top)
        zeros = [(shape_of(o), _dtype(o)) for o in out_leaves]
        del out, a_vals, kw_vals

        def pullback(gs):
            from nablab.autodiff.transforms import vjp

            _, vjp_fn = vjp(functools.partial(_call_with, fun, spec, vals, tuple(diff)), *[vals[k] for k in diff])
            g = tree_unflatten(out_spec, [np.zeros(s, d) if gi is None else gi for gi, (s, d) in zip(gs, zeros)])
            return list(vjp_fn(g))

        def replay(*diff_vals):
            return tree_flatten(_call_with(self, spec, vals, tuple(diff), *diff_vals))[0]

        return tree_unflatten(out_spec, _record(top, name, [leaves[k] for k in diff], out_leaves, pullback, replay))


def _call_with(fun, spec, vals, diff, *diff_vals):
    full = list(vals)
    for k, v in zip(diff, diff_vals):
        full[k] = v
    args, kwargs = tree_unflatten(spec, full)
    return fun(*args, **kwargs)


def _jvp_of(fun, spec, diff, vals, tangents):
    from nablab.autodiff.transforms import jvp

    return jvp(functools.partial(_call_with, fun, spec, vals, diff), tuple(vals[k] for k in diff), tuple(tangents))


def checkpoint(fun):
    """``fun`` that keeps only its inputs for the backward pass and runs again there (rematerialisation).

    Memory falls from everything ``fun`` computes to its inputs and outputs; time
    rises by one more forward pass of ``fun`` per backward pass. It nests with
    every transform: under ``grad`` of ``grad`` the forward pass keeps only the
    inputs on every reverse level (the outer level then records the inner
    backward pass, recomputation included, since it differentiates it); under
    forward mode (``jvp``, ``jacfwd``) it is the JVP of ``fun`` inside a
    checkpoint, so reverse levels below it still keep only inputs and tangents. Values ``fun`` is differentiated with respect to must be its
    arguments (keyword arguments too): a traced value it closes over is refused,
    since its derivative would be lost.

    >>> import numpy as np, nablab as nb
    >>> layer = nb.checkpoint(lambda x: nb.tanh(x) ** 2)
    >>> nb.grad(lambda x: nb.sum(layer(x)))(np.array([0.0, 1.0]))
    array([0.        , 0.63970001])
    """
    if not callable(fun):
        raise TypeError(f"checkpoint: expected a function, got {type(fun).__name__}")
    return _Checkpointed(fun)


# -- linearize and linear_transpose ---------------------------------------------------


def linearize(fun, *primals):
    """``(fun(*primals), f_jvp)``: the value and the Jacobian-vector product at ``primals``, primal computed once.

    ``f_jvp(*tangents)`` (one tangent per primal, shaped like it) gives ``J @ t``
    as ``nb.jvp(fun, primals, tangents)[1]`` does, without running ``fun``
    again: the forward-mode pass runs once with the tangents standing on a level
    of their own, which records the tangent map (the linear part only, with the
    values it needs); each call runs that recording forward on new tangents.

    >>> import numpy as np, nablab as nb
    >>> calls = []
    >>> def f(x):
    ...     calls.append(1)
    ...     return nb.sin(x) * x
    >>> y, f_jvp = nb.linearize(f, np.array([0.0, 1.0]))
    >>> f_jvp(np.array([1.0, 0.0])), f_jvp(np.array([0.0, 2.0])), len(calls)
    (array([0., 0.]), array([0.        , 2.76354658]), 1)
    """
    from nablab.autodiff.transforms import _as_input, jvp

    own = new_level()
    try:
        specs, leaf_nodes, shapes, placeholders = [], [], [], []
        for i, primal in enumerate(primals):
            leaves, spec = tree_flatten(primal)
            inputs = [_as_input(x, f"linearize: primal {i}") for x in leaves]
            nodes = [Node.leaf() for _ in inputs]
            specs.append(spec)
            leaf_nodes.append(nodes)
            shapes.append([(shape_of(v), _dtype(v)) for v in inputs])
            placeholders.append(tree_unflatten(spec, [Tensor(np.zeros(shape_of(v), _dtype(v)),
                                                             own, n) for v, n in zip(inputs, nodes)]))
        out, tangent_out = jvp(fun, primals, tuple(placeholders))
    finally:
        close_level(own)
    t_leaves, t_spec = tree_flatten(tangent_out)
    roots = [t._node for t in t_leaves if isinstance(t, Tensor) and t._level == own]
    order = list(reversed(_toposort(roots)))
    for node in order:
        prim = node.prim
        if prim is not None and prim.fn is _not_replayable and getattr(prim, "replay", None) is None:
            raise NotImplementedError(f"linearize: the tangent map holds {prim.name}, which cannot be run again")

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise TypeError(f"f_jvp: {len(tangents)} tangents for {len(primals)} primals")
        values = {}
        for i, (tangent, spec, nodes, expected) in enumerate(zip(tangents, specs, leaf_nodes, shapes)):
            leaves, t_spec_in = tree_flatten(tangent)
            if len(leaves) != len(nodes):
                raise TypeError(f"f_jvp: tangent {i} has {len(leaves)} arrays but primal {i} has {len(nodes)}")
            for leaf, node, (shape, dtype) in zip(leaves, nodes, expected):
                if shape_of(leaf) != shape:
                    raise ShapeError(f"f_jvp: tangent {i} has shape {shape_of(leaf)} but primal {i} has shape {shape}")
                values[node] = leaf if isinstance(leaf, Tensor) else np.asarray(leaf, dtype=dtype)
        for node in order:
            prim = node.prim
            if prim is None:
                continue
            args = list(node.args)
            for argnum, parent in node.parents:
                args[argnum] = values[parent]
            replay = getattr(prim, "replay", None)
            values[node] = replay(*args) if replay is not None else prim(*args, **node.kwargs)
        result = [values[t._node] if isinstance(t, Tensor) and t._level == own else t for t in t_leaves]
        return tree_unflatten(t_spec, [_exit(v) for v in result])

    return out, f_jvp


def _exit(x):
    return x._value if isinstance(x, Tensor) and x._level == CONSTANT else x


def _toposort(roots):
    from nablab.autodiff.core import toposort

    return toposort(roots)


def linear_transpose(fun, *primals):
    """The transpose of a linear ``fun``: ``ft(ct)`` gives the tuple ``(J^T ct, ...)``, one per primal.

    ``primals`` give the shapes and dtypes of ``fun``'s arguments (their values
    are not used: a linear map is the same everywhere). ``fun`` is recorded once
    by reverse mode at zero; a ``fun`` that is not linear there (a constant
    offset, or a nonlinear operation such as ``sin`` or a product of two
    arguments) is refused, since its transpose would be a wrong number.

    >>> import numpy as np, nablab as nb
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> ft = nb.linear_transpose(lambda x: A @ x, np.zeros(2))
    >>> ft(np.array([1.0, 0.0, 0.0]))
    (array([1., 2.]),)
    >>> nb.linear_transpose(nb.sin, 0.0)
    Traceback (most recent call last):
      ...
    TypeError: linear_transpose of sin: fun applies sin to its input; it must be linear in its input ...
    """
    from nablab.autodiff.transforms import _as_input, vjp

    zeros = []
    for i, primal in enumerate(primals):
        leaves, spec = tree_flatten(primal)
        zeros.append(tree_unflatten(spec, [np.zeros(shape_of(v), _dtype(v)) for v in
                                           (_as_input(x, f"linear_transpose: primal {i}") for x in leaves)]))
    level_before = new_level()  # every level the vjp below opens is above this one
    close_level(level_before)
    seen = {}

    def watched(*xs):
        out = fun(*xs)
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, Tensor) and leaf._level > level_before and leaf._node is not None:
                seen.setdefault("roots", []).append(leaf._node)
        return out

    out, vjp_fn = vjp(watched, *zeros)
    who = f"linear_transpose of {_name(fun)}"
    _check_linear(seen.get("roots", []), f"{who}: fun", what="its input")
    for k, leaf in enumerate(tree_flatten(out)[0]):
        if np.any(np.asarray(_raw(leaf)) != 0):
            raise TypeError(f"{who}: fun is not linear: at zero its output {k} is not zero (an offset)")

    def transpose(ct):
        return vjp_fn(ct)

    return transpose
