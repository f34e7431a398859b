"""Random compositions of nablab ops checked against the same compositions in PyTorch.

A *recipe* is a short straight-line program: registers 0 and 1 hold the inputs
``x`` and ``y`` (``y`` has a shape that broadcasts with ``x``'s), and each
instruction appends one register computed from earlier ones.  Two interpreters
run the same recipe, one with nablab functions and one with torch functions,
so both sides compute exactly the same composition.  Everything is float64 and
compared to 1e-10 (relative and absolute): values, ``jacrev``/``jacfwd``
(against ``torch.func``), ``vjp``/``jvp``, the imperative ``.backward()``, and
for scalar recipes the Hessian in all four nesting modes and ``hvp``.

Ops with kinks (relu, abs, maximum/minimum, max/min reductions) are only
compared away from their kinks: the torch interpreter records how close each
such op came to a kink, and examples closer than ``KINK_MARGIN`` are
discarded with ``assume``.

Hypothesis draws a seed and a length; the recipe's structure comes from
``random.Random(seed)``.  A failing example shrinks to its shortest failing
prefix, and the coverage test at the bottom checks that every op shows up.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.func  # noqa: E402

from hypothesis import HealthCheck, assume, given, note, settings, strategies as st  # noqa: E402

import nablab as nb  # noqa: E402
from nablab.autodiff.core import primitive, value_of  # noqa: E402

RTOL = ATOL = 1e-10
KINK_MARGIN = 1e-6  # minimum distance from a kink (relu at 0, ties in max/maximum)
MAX_ABS = 1e3  # discard examples whose intermediate values leave [-MAX_ABS, MAX_ABS]
MAX_SIZE = 24  # no register may hold more entries than this (keeps Jacobians small)
MAX_NDIM = 4

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
HESSIAN_SETTINGS = settings(SETTINGS, max_examples=50)

# torch.func triggers this inside torch itself; it says nothing about nablab.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

UNARY = [
    "exp", "tanh", "sigmoid", "sin", "cos", "log_pos", "sqrt_pos", "square", "relu",
    "abs", "neg", "pow3", "softplus", "rsub_const", "rmul_const", "rdiv_pos",
]
BINARY = ["add", "sub", "mul", "div_safe", "maximum", "minimum", "pow_pos", "where"]
REDUCE = ["sum", "mean", "max", "min", "logsumexp"]
SHAPE = ["reshape", "transpose", "getitem", "concatenate", "stack"]
LINALG = ["matmul", "dot"]
ALL_OPS = UNARY + BINARY + REDUCE + SHAPE + LINALG


# --------------------------------------------------------------------------- recipes


@dataclass
class Recipe:
    x_shape: tuple
    y_shape: tuple
    seed: int  # the input values come from this seed (keeps examples fast to draw)
    instrs: list = field(default_factory=list)  # (op, srcs, params)
    consts: list = field(default_factory=list)  # NumPy arrays referenced by index
    shapes: list = field(default_factory=list)  # shape of each register

    def inputs(self):
        rng = np.random.default_rng(self.seed)
        x = rng.uniform(-1.5, 1.5, size=self.x_shape)
        y = rng.uniform(-1.5, 1.5, size=self.y_shape)
        tx = rng.normal(size=self.x_shape)
        ty = rng.normal(size=self.y_shape)
        return np.asarray(x), np.asarray(y), np.asarray(tx), np.asarray(ty)

    def cotangent(self):
        rng = np.random.default_rng(self.seed + 1)
        return np.asarray(rng.normal(size=self.shapes[-1]))

    @property
    def out_shape(self):
        return self.shapes[-1]

    def __repr__(self):  # what Hypothesis prints for a failing example
        lines = [f"Recipe(x{self.x_shape}, y{self.y_shape}, seed={self.seed})"]
        for k, (op, srcs, params) in enumerate(self.instrs):
            lines.append(f"  r{k + 2} = {op}{tuple(f'r{s}' for s in srcs)} {params}  -> {self.shapes[k + 2]}")
        return "\n".join(lines)


class RandomChooser:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)

    def choice(self, options):
        return self.rng.choice(list(options))

    def boolean(self):
        return self.rng.random() < 0.5


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _broadcast(a, b):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def _draw_shape(ch, max_ndim, max_size):
    while True:
        ndim = ch.integer(0, max_ndim)
        shape = tuple(ch.integer(1, 3) for _ in range(ndim))
        if _size(shape) <= max_size:
            return shape


def _draw_partner_shape(ch, shape):
    """A shape that broadcasts with ``shape``: drop leading axes, set some to 1, or add one."""
    kind = ch.choice(["same", "drop", "ones", "lead"])
    if kind == "drop" and shape:
        return shape[ch.integer(1, len(shape)):]
    if kind == "ones" and shape:
        return tuple(1 if ch.boolean() else d for d in shape)
    if kind == "lead" and len(shape) < 3 and _size(shape) * 2 <= MAX_SIZE:
        return (2,) + tuple(1 if ch.boolean() else d for d in shape)
    return shape


class _Builder:
    def __init__(self, ch, recipe):
        self.ch = ch
        self.r = recipe

    def emit(self, op, srcs, params, shape):
        self.r.instrs.append((op, tuple(srcs), params))
        self.r.shapes.append(tuple(shape))
        return len(self.r.shapes) - 1

    def const(self, shape, kind="float"):
        rng = np.random.default_rng(self.r.seed + 7 * len(self.r.consts) + 11)
        if kind == "bool":
            value = rng.random(shape) < 0.5
        else:
            value = rng.uniform(-1.0, 1.0, size=shape)
        self.r.consts.append(np.asarray(value))
        return len(self.r.consts) - 1

    def pick(self, pred=lambda s: True, prefer_recent=True):
        regs = [i for i, s in enumerate(self.r.shapes) if pred(s)]
        if not regs:
            return None
        if prefer_recent and self.ch.boolean():
            return regs[-1]
        return self.ch.choice(regs)

    # each try_* appends one instruction or returns None when it does not fit
    def try_unary(self, op):
        a = self.pick()
        return self.emit(op, [a], {}, self.r.shapes[a])

    def try_binary(self, op):
        a = self.pick()
        sa = self.r.shapes[a]
        b = self.pick(lambda s: (bs := _broadcast(sa, s)) is not None and _size(bs) <= MAX_SIZE)
        if b is None or (op in ("maximum", "minimum") and a == b):
            return None
        shape = _broadcast(sa, self.r.shapes[b])
        params = {}
        if op == "where":
            params["mask"] = self.const(shape, "bool")
        if self.ch.boolean():
            a, b = b, a
        return self.emit(op, [a, b], params, shape)

    def try_reduce(self, op):
        a = self.pick(lambda s: len(s) >= 1)
        if a is None:
            return None
        shape = self.r.shapes[a]
        ndim = len(shape)
        if self.ch.integer(0, 3) == 0:
            axes = None
        else:
            chosen = [i for i in range(ndim) if self.ch.boolean()] or [self.ch.integer(0, ndim - 1)]
            # sometimes negative, sometimes a bare int rather than a tuple
            chosen = [i - ndim if self.ch.boolean() else i for i in chosen]
            axes = chosen[0] if len(chosen) == 1 and self.ch.boolean() else tuple(chosen)
        keepdims = self.ch.boolean()
        norm = set(range(ndim)) if axes is None else {i % ndim for i in ((axes,) if isinstance(axes, int) else axes)}
        out = tuple(1 if i in norm else d for i, d in enumerate(shape)) if keepdims else tuple(
            d for i, d in enumerate(shape) if i not in norm
        )
        return self.emit(op, [a], {"axes": axes, "keepdims": keepdims}, out)

    def try_reshape(self):
        a = self.pick()
        size = _size(self.r.shapes[a])
        dims = []
        rest = size
        for _ in range(self.ch.integer(0, 3)):
            divisors = [d for d in range(1, rest + 1) if rest % d == 0]
            d = self.ch.choice(divisors)
            dims.append(d)
            rest //= d
        if rest != 1 or not dims:
            dims.append(rest)
        shape = tuple(dims)
        if len(shape) > MAX_NDIM:
            return None
        target = list(shape)
        if target and self.ch.integer(0, 3) == 0:
            target[self.ch.integer(0, len(target) - 1)] = -1
        return self.emit("reshape", [a], {"shape": tuple(target)}, shape)

    def try_transpose(self):
        a = self.pick(lambda s: len(s) >= 2)
        if a is None:
            return None
        shape = self.r.shapes[a]
        if self.ch.boolean():
            perm = None
            out = shape[::-1]
        else:
            perm = list(range(len(shape)))
            for i in range(len(perm) - 1, 0, -1):  # Fisher-Yates with the chooser
                j = self.ch.integer(0, i)
                perm[i], perm[j] = perm[j], perm[i]
            perm = tuple(perm)
            out = tuple(shape[p] for p in perm)
        return self.emit("transpose", [a], {"perm": perm}, out)

    def try_getitem(self):
        a = self.pick(lambda s: len(s) >= 1)
        if a is None:
            return None
        shape = self.r.shapes[a]
        use_array = self.ch.integer(0, 2) == 0
        array_axis = self.ch.integer(0, len(shape) - 1) if use_array else -1
        index, out = [], []
        n_items = self.ch.integer(1, len(shape))
        for axis in range(n_items):
            d = shape[axis]
            if axis == array_axis:
                n = self.ch.integer(1, 4)
                idx = [self.ch.integer(-d, d - 1) for _ in range(n)]  # repeats allowed
                index.append(idx)
                out.append(n)
            elif not use_array and self.ch.integer(0, 2) == 0:
                index.append(self.ch.integer(-d, d - 1))
            else:
                start = self.ch.integer(0, d - 1)
                step = self.ch.integer(1, 2)
                stop = self.ch.integer(start + 1, d)
                index.append(slice(start, stop, step))
                out.append(len(range(start, stop, step)))
        out.extend(shape[n_items:])  # (an array_axis beyond n_items just goes unused)
        index = tuple(index) if len(index) > 1 or self.ch.boolean() else index[0]
        return self.emit("getitem", [a], {"index": index}, tuple(out))

    def try_concatenate(self):
        a = self.pick(lambda s: len(s) >= 1)
        if a is None:
            return None
        sa = self.r.shapes[a]
        axis = self.ch.integer(-len(sa), len(sa) - 1)
        ax = axis % len(sa)

        def fits(s):
            return len(s) == len(sa) and all(d == e for i, (d, e) in enumerate(zip(s, sa)) if i != ax)

        srcs = [a, self.pick(fits, prefer_recent=False)]
        if self.ch.boolean():
            srcs.append(self.pick(fits, prefer_recent=False))
        out = list(sa)
        out[ax] = builtin_sum(self.r.shapes[s][ax] for s in srcs)
        if _size(out) > MAX_SIZE:
            return None
        return self.emit("concatenate", srcs, {"axis": axis}, tuple(out))

    def try_stack(self):
        a = self.pick(lambda s: len(s) < MAX_NDIM and 2 * _size(s) <= MAX_SIZE)
        if a is None:
            return None
        sa = self.r.shapes[a]
        b = self.pick(lambda s: s == sa, prefer_recent=False)
        axis = self.ch.integer(-len(sa) - 1, len(sa))
        out = list(sa)
        out.insert(axis % (len(sa) + 1), 2)
        return self.emit("stack", [a, b], {"axis": axis}, tuple(out))

    def try_matmul(self, op):
        a = self.pick(lambda s: 1 <= len(s) <= (2 if op == "dot" else 3))
        if a is None:
            return None
        sa = self.r.shapes[a]
        # try a register partner first, else a random constant of a fitting shape
        for b in range(len(self.r.shapes)):
            sb = self.r.shapes[b]
            out = _matmul_shape(sa, sb)
            if out is not None and (op != "dot" or len(sb) <= 2) and self.ch.integer(0, 2) == 0:
                if _size(out) <= MAX_SIZE:
                    return self.emit(op, [a, b], {}, out)
        k = sa[-1]
        if self.ch.boolean() or len(sa) == 1:
            b_shape = (k,) if self.ch.boolean() else (k, self.ch.integer(1, 3))
            params = {"const": self.const(b_shape), "side": "right"}
            out = _matmul_shape(sa, b_shape)
        else:
            b_shape = (self.ch.integer(1, 3), sa[-2])
            params = {"const": self.const(b_shape), "side": "left"}
            out = _matmul_shape(b_shape, sa)
        if out is None or _size(out) > MAX_SIZE:
            return None
        return self.emit(op, [a], params, out)

    def finalize_scalar(self):
        a = len(self.r.shapes) - 1
        kind = self.ch.choice(["sum", "mean", "logsumexp", "max", "wsum"])
        if self.r.shapes[a] == ():
            kind = "wsum"
        if kind == "wsum":
            return self.emit("wsum", [a], {"const": self.const(self.r.shapes[a])}, ())
        return self.emit(kind, [a], {"axes": None, "keepdims": False}, ())


builtin_sum = sum


def _matmul_shape(sa, sb):
    if not sa or not sb:
        return None
    if len(sa) == 1 and len(sb) == 1:
        return () if sa == sb else None
    if len(sb) == 1:
        return sa[:-1] if sa[-1] == sb[0] else None
    if len(sa) == 1:
        return sb[:-2] + sb[-1:] if sa[0] == sb[-2] else None
    if sa[-1] != sb[-2]:
        return None
    batch = _broadcast(sa[:-2], sb[:-2])
    return None if batch is None else batch + (sa[-2], sb[-1])


def build_recipe(ch, n_ops, *, max_x_size=MAX_SIZE, scalar=False):
    """A recipe of ``n_ops`` instructions (plus a final reduction when ``scalar``).

    The chooser is consumed in order, so with the same seed a smaller ``n_ops``
    gives a prefix of the longer recipe: shrinking ``n_ops`` finds the shortest
    failing prefix.
    """
    x_shape = _draw_shape(ch, 3, max_x_size)
    y_shape = _draw_partner_shape(ch, x_shape)
    r = Recipe(x_shape, y_shape, seed=ch.integer(0, 2**31 - 1), shapes=[x_shape, y_shape])
    b = _Builder(ch, r)
    attempts = 0
    while len(r.instrs) < n_ops and attempts < 4 * n_ops:
        attempts += 1
        op = ch.choice(ALL_OPS)
        if op in UNARY:
            b.try_unary(op)
        elif op in BINARY:
            b.try_binary(op)
        elif op in REDUCE:
            b.try_reduce(op)
        elif op in LINALG:
            b.try_matmul(op)
        else:
            getattr(b, f"try_{op}")()
    if not r.instrs:
        b.try_unary("tanh")
    if scalar and r.out_shape != ():
        b.finalize_scalar()
    return r


def recipes(max_ops=10, **kwargs):
    """Hypothesis draws the structure's seed and length; the structure comes from
    ``random.Random(seed)``, which spreads examples evenly over the ops (Hypothesis's
    own choices favour the first option of every list)."""
    return st.builds(
        lambda seed, n_ops: build_recipe(RandomChooser(seed), n_ops, **kwargs),
        st.integers(0, 2**32 - 1),
        st.integers(2, max_ops),
    )


# --------------------------------------------------------------------------- interpreters


def _axes_for_torch(axes, ndim):
    if axes is None:
        return tuple(range(ndim))
    return axes if isinstance(axes, tuple) else (axes,)


def _top2_gap(v, axes, ndim):
    """Smallest gap between the largest and second-largest entry of each reduced slice."""
    dims = [a % ndim for a in _axes_for_torch(axes, ndim)]
    kept = [i for i in range(ndim) if i not in dims]
    m = np.transpose(v, kept + dims).reshape(-1, _size([v.shape[d] for d in dims]))
    if m.shape[1] < 2:
        return np.inf
    s = np.sort(m, axis=1)
    return float(np.min(s[:, -1] - s[:, -2]))


class NablabBackend:
    def __init__(self, overrides=None):
        self.fns = dict(overrides or {})

    def const(self, value):
        return value

    def apply(self, op, a, b, params, consts):
        f = self.fns.get(op)
        if f is not None:
            return f(a) if b is None else f(a, b)
        if op == "exp":
            return nb.exp(a)
        if op == "tanh":
            return nb.tanh(a)
        if op == "sigmoid":
            return nb.sigmoid(a)
        if op == "sin":
            return nb.sin(a)
        if op == "cos":
            return nb.cos(a)
        if op == "log_pos":
            return nb.log(a * a + 0.5)
        if op == "sqrt_pos":
            return nb.sqrt(a * a + 0.25)
        if op == "square":
            return nb.square(a)
        if op == "relu":
            return nb.relu(a)
        if op == "abs":
            return nb.abs(a)
        if op == "neg":
            return -a
        if op == "pow3":
            return a ** 3
        if op == "softplus":
            return nb.softplus(a)
        if op == "rsub_const":
            return 0.75 - a
        if op == "rmul_const":
            return 1.5 * a
        if op == "rdiv_pos":
            return 1.0 / (1.0 + a * a)
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op == "div_safe":
            return a / (b * b + 0.5)
        if op == "maximum":
            return nb.maximum(a, b)
        if op == "minimum":
            return nb.minimum(a, b)
        if op == "pow_pos":
            return (a * a + 0.5) ** b
        if op == "where":
            return nb.where(consts[params["mask"]], a, b)
        if op in REDUCE:
            fn = {"sum": nb.sum, "mean": nb.mean, "max": nb.max, "min": nb.min,
                  "logsumexp": nb.logsumexp}[op]
            return fn(a, axis=params["axes"], keepdims=params["keepdims"])
        if op == "wsum":
            return nb.sum(a * consts[params["const"]])
        if op == "reshape":
            return nb.reshape(a, params["shape"])
        if op == "transpose":
            return nb.transpose(a, params["perm"])
        if op == "getitem":
            return a[params["index"]]
        if op == "concatenate":
            return nb.concatenate(a, axis=params["axis"])
        if op == "stack":
            return nb.stack(a, axis=params["axis"])
        if op in ("matmul", "dot"):
            fn = nb.matmul if op == "matmul" else nb.dot
            if b is not None:
                return fn(a, b)
            c = consts[params["const"]]
            return fn(a, c) if params["side"] == "right" else fn(c, a)
        raise KeyError(op)


class TorchBackend:
    """The same ops in torch; with ``check=True`` it also measures kinks and magnitudes."""

    def __init__(self, check=False):
        self.check = check
        self.margin = np.inf
        self.biggest = 0.0

    def const(self, value):
        return torch.as_tensor(value)

    def _near(self, gap):
        self.margin = min(self.margin, float(gap))

    def apply(self, op, a, b, params, consts):
        if self.check and op in ("relu", "abs"):
            self._near(torch.min(torch.abs(a)))
        if self.check and op in ("maximum", "minimum"):
            self._near(torch.min(torch.abs(a - b)))
        if self.check and op in ("max", "min") and a.ndim:
            v = a.detach().numpy()
            self._near(_top2_gap(v if op == "max" else -v, params["axes"], a.ndim))
        out = self._apply(op, a, b, params, consts)
        if self.check:
            self.biggest = max(self.biggest, float(torch.max(torch.abs(out))))
        return out

    def _apply(self, op, a, b, params, consts):
        if op == "exp":
            return torch.exp(a)
        if op == "tanh":
            return torch.tanh(a)
        if op == "sigmoid":
            return torch.sigmoid(a)
        if op == "sin":
            return torch.sin(a)
        if op == "cos":
            return torch.cos(a)
        if op == "log_pos":
            return torch.log(a * a + 0.5)
        if op == "sqrt_pos":
            return torch.sqrt(a * a + 0.25)
        if op == "square":
            return torch.square(a)
        if op == "relu":
            return torch.relu(a)
        if op == "abs":
            return torch.abs(a)
        if op == "neg":
            return -a
        if op == "pow3":
            return a ** 3
        if op == "softplus":
            return torch.logaddexp(torch.zeros_like(a), a)
        if op == "rsub_const":
            return 0.75 - a
        if op == "rmul_const":
            return 1.5 * a
        if op == "rdiv_pos":
            return 1.0 / (1.0 + a * a)
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op == "div_safe":
            return a / (b * b + 0.5)
        if op == "maximum":
            return torch.maximum(a, b)
        if op == "minimum":
            return torch.minimum(a, b)
        if op == "pow_pos":
            return (a * a + 0.5) ** b
        if op == "where":
            return torch.where(consts[params["mask"]], a, b)
        if op in REDUCE:
            fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin,
                  "logsumexp": torch.logsumexp}[op]
            return fn(a, dim=_axes_for_torch(params["axes"], a.ndim), keepdim=params["keepdims"])
        if op == "wsum":
            return torch.sum(a * consts[params["const"]])
        if op == "reshape":
            return torch.reshape(a, params["shape"])
        if op == "transpose":
            perm = params["perm"]
            return a.permute(tuple(range(a.ndim))[::-1] if perm is None else perm)
        if op == "getitem":
            index = params["index"]
            if isinstance(index, list):
                return a[torch.tensor(index)]
            if isinstance(index, tuple):
                index = tuple(torch.tensor(i) if isinstance(i, list) else i for i in index)
            return a[index]
        if op == "concatenate":
            return torch.cat(a, dim=params["axis"])
        if op == "stack":
            return torch.stack(a, dim=params["axis"])
        if op in ("matmul", "dot"):
            if b is not None:
                return torch.matmul(a, b)
            c = consts[params["const"]]
            return torch.matmul(a, c) if params["side"] == "right" else torch.matmul(c, a)
        raise KeyError(op)


def run(recipe, backend, x, y):
    consts = [backend.const(c) for c in recipe.consts]
    regs = [x, y]
    for op, srcs, params in recipe.instrs:
        if op in ("concatenate", "stack"):
            out = backend.apply(op, [regs[s] for s in srcs], None, params, consts)
        elif len(srcs) == 2:
            out = backend.apply(op, regs[srcs[0]], regs[srcs[1]], params, consts)
        else:
            out = backend.apply(op, regs[srcs[0]], None, params, consts)
        regs.append(out)
    return regs[-1]


def nb_fn(recipe, overrides=None):
    backend = NablabBackend(overrides)
    return lambda x, y: run(recipe, backend, x, y)


def torch_fn(recipe):
    backend = TorchBackend()
    return lambda x, y: run(recipe, backend, x, y)


def usable(recipe):
    """Check the recipe in torch first: values bounded, every kink op away from its kink."""
    x, y, _, _ = recipe.inputs()
    backend = TorchBackend(check=True)
    with torch.no_grad():
        out = run(recipe, backend, torch.as_tensor(x), torch.as_tensor(y))
    assert tuple(out.shape) == recipe.out_shape, (tuple(out.shape), recipe)
    return backend.margin > KINK_MARGIN and backend.biggest < MAX_ABS


def close(ours, theirs, what):
    # clone() first: torch.func can return an efficient ZeroTensor (grad of a jvp whose tangent does not depend on
    # x), and torch 2.13's numpy(force=True) of one 0-d ZeroTensor crashed the interpreter (a segmentation fault)
    theirs = theirs.detach().clone().numpy(force=True) if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(value_of(ours))
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)


def T(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# --------------------------------------------------------------------------- the comparisons
# Each check_* raises AssertionError on a mismatch; the sanity tests below call
# them with a deliberately wrong rule to show they do raise.


def check_values(recipe, overrides=None):
    x, y, _, _ = recipe.inputs()
    close(nb_fn(recipe, overrides)(x, y), torch_fn(recipe)(T(x), T(y)), "value")


def check_jacobians(recipe, argnum, overrides=None):
    x, y, _, _ = recipe.inputs()
    f, g = nb_fn(recipe, overrides), torch_fn(recipe)
    expected = torch.func.jacrev(g, argnums=argnum)(T(x), T(y))
    close(nb.jacrev(f, argnums=argnum)(x, y), expected, f"jacrev argnums={argnum}")
    close(nb.jacfwd(f, argnums=argnum)(x, y), torch.func.jacfwd(g, argnums=argnum)(T(x), T(y)),
          f"jacfwd argnums={argnum}")


def check_vjp(recipe, overrides=None):
    x, y, _, _ = recipe.inputs()
    ct = recipe.cotangent()
    out, vjp_fn = nb.vjp(nb_fn(recipe, overrides), x, y)
    t_out, t_vjp_fn = torch.func.vjp(torch_fn(recipe), T(x), T(y))
    close(out, t_out, "vjp value")
    gx, gy = vjp_fn(ct)
    tgx, tgy = t_vjp_fn(T(ct))
    close(gx, tgx, "vjp cotangent of x")
    close(gy, tgy, "vjp cotangent of y")


def check_jvp(recipe, overrides=None):
    x, y, tx, ty = recipe.inputs()
    out, t = nb.jvp(nb_fn(recipe, overrides), (x, y), (tx, ty))
    t_out, tt = torch.func.jvp(torch_fn(recipe), (T(x), T(y)), (T(tx), T(ty)))
    close(out, t_out, "jvp value")
    close(t, tt, "jvp tangent")


def check_imperative(recipe, overrides=None):
    x, y, _, _ = recipe.inputs()
    ct = recipe.cotangent()
    xs, ys = nb.tensor(x, requires_grad=True), nb.tensor(y, requires_grad=True)
    out = nb_fn(recipe, overrides)(xs, ys)
    xt, yt = T(x).requires_grad_(), T(y).requires_grad_()
    t_out = torch_fn(recipe)(xt, yt)
    close(out, t_out, "imperative value")
    if not out.requires_grad:  # the output ignores both inputs (e.g. x[idx] of a constant)
        assert not t_out.requires_grad
        return
    out.backward(ct)
    t_out.backward(T(ct))
    for ours, theirs, name in ((xs, xt, "x"), (ys, yt, "y")):
        if theirs.grad is None:
            assert ours.grad is None or not np.any(ours.grad.numpy()), name
        else:
            close(ours.grad, theirs.grad, f"imperative .grad of {name}")


HESSIAN_MODES = ("fwd-over-rev", "rev-over-rev", "fwd-over-fwd", "rev-over-fwd")


def check_hessians(recipe, overrides=None, modes=HESSIAN_MODES):
    x, y, tx, _ = recipe.inputs()
    f = nb_fn(recipe, overrides)
    g = torch_fn(recipe)
    expected = torch.func.hessian(g, argnums=0)(T(x), T(y))
    for mode in modes:
        close(nb.hessian(f, mode=mode)(x, y), expected, f"hessian mode={mode}")
    hv = nb.hvp(lambda x_: f(x_, y), x, tx)
    expected_hv = torch.tensordot(expected, T(tx), dims=len(recipe.x_shape))
    close(hv, expected_hv, "hvp")


def check_mixed_partials(recipe, overrides=None):
    """d/dy of grad_x f: the inner transform closes over a value the outer one traces."""
    x, y, _, _ = recipe.inputs()
    f = nb_fn(recipe, overrides)
    g = torch_fn(recipe)
    expected = torch.func.jacrev(lambda y_: torch.func.grad(g)(T(x), y_))(T(y))
    close(nb.jacrev(lambda y_: nb.grad(f)(x, y_))(y), expected, "jacrev over grad (mixed)")
    close(nb.jacfwd(lambda y_: nb.grad(f)(x, y_))(y), expected, "jacfwd over grad (mixed)")
    # and the other way round: x's gradient of the y-tangent (grad of jvp)
    ty = np.ones_like(y)
    expected_t = torch.func.grad(lambda x_: torch.func.jvp(lambda y_: g(x_, y_), (T(y),), (T(ty),))[1])(T(x))
    ours_t = nb.grad(lambda x_: nb.jvp(lambda y_: f(x_, y_), (y,), (ty,))[1])(x)
    close(ours_t, expected_t, "grad over jvp (mixed)")


# --------------------------------------------------------------------------- the properties


def keep(recipe):
    """Show the recipe in a failure report and skip examples at kinks or too large."""
    note(repr(recipe))
    assume(usable(recipe))


@SETTINGS
@given(recipes())
def test_values_match_torch(recipe):
    keep(recipe)
    check_values(recipe)


@SETTINGS
@given(recipes(max_x_size=12), st.sampled_from([0, 1]))
def test_jacrev_and_jacfwd_match_torch_func(recipe, argnum):
    keep(recipe)
    check_jacobians(recipe, argnum)


@SETTINGS
@given(recipes())
def test_vjp_matches_torch_func(recipe):
    keep(recipe)
    check_vjp(recipe)


@SETTINGS
@given(recipes())
def test_jvp_matches_torch_func(recipe):
    keep(recipe)
    check_jvp(recipe)


@SETTINGS
@given(recipes())
def test_imperative_backward_matches_torch_autograd(recipe):
    keep(recipe)
    check_imperative(recipe)


@HESSIAN_SETTINGS
@given(recipes(max_ops=8, max_x_size=8, scalar=True))
def test_hessian_all_modes_match_torch_func(recipe):
    keep(recipe)
    check_hessians(recipe)


@HESSIAN_SETTINGS
@given(recipes(max_ops=8, max_x_size=8, scalar=True))
def test_mixed_second_derivatives_match_torch_func(recipe):
    keep(recipe)
    check_mixed_partials(recipe)


# --------------------------------------------------------------------------- the harness itself


def test_generator_covers_every_op_and_tracks_shapes():
    """Every op appears in generated recipes, and the tracked shapes are the real ones."""
    seen = Counter()
    kept = 0
    for seed in range(400):
        recipe = build_recipe(RandomChooser(seed), 1 + seed % 8, scalar=seed % 2 == 0)
        seen.update(op for op, _, _ in recipe.instrs)
        x, y, _, _ = recipe.inputs()
        regs_nb = [x, y]
        backend = NablabBackend()
        consts = recipe.consts
        for (op, srcs, params), shape in zip(recipe.instrs, recipe.shapes[2:]):
            if op in ("concatenate", "stack"):
                out = backend.apply(op, [regs_nb[s] for s in srcs], None, params, consts)
            else:
                args = [regs_nb[s] for s in srcs] + [None] * (2 - len(srcs))
                out = backend.apply(op, args[0], args[1], params, consts)
            assert np.shape(out) == shape, (op, np.shape(out), shape, recipe)
            regs_nb.append(out)
        kept += usable(recipe)
    missing = set(ALL_OPS) - set(seen)
    assert not missing, f"the generator never produced {sorted(missing)}"
    assert kept >= 300, f"only {kept} of 400 recipes pass the kink/magnitude filter"


# Deliberately wrong rules, one per failure the comparisons must catch.


def _sin_with_scaled_vjp(scale):
    p = primitive(np.sin, name="sin_wrong_vjp")
    p.defvjp(lambda g, ans, x: g * nb.cos(x) * scale)
    p.defjvp(lambda t, ans, x: t * nb.cos(x))
    return p


def _sin_with_scaled_jvp(scale):
    p = primitive(np.sin, name="sin_wrong_jvp")
    p.defvjp(lambda g, ans, x: g * nb.cos(x))
    p.defjvp(lambda t, ans, x: t * nb.cos(x) * scale)
    return p


def _sin_with_frozen_rules():
    # First derivatives right, but the rules leave the engine (np.cos of the raw
    # value), so a second differentiation sees a constant and misses -sin(x).
    p = primitive(np.sin, name="sin_frozen")
    p.defvjp(lambda g, ans, x: g * np.cos(value_of(x)))
    p.defjvp(lambda t, ans, x: t * np.cos(value_of(x)))
    return p


def _fixed_recipe(scalar):
    r = Recipe((3,), (1,), seed=1234, shapes=[(3,), (1,)])
    b = _Builder(RandomChooser(0), r)
    r0 = b.emit("mul", [0, 1], {}, (3,))
    r1 = b.emit("sin", [r0], {}, (3,))
    b.emit("tanh", [r1], {}, (3,))
    if scalar:
        b.emit("wsum", [len(r.shapes) - 1], {"const": b.const((3,))}, ())
    return r


def test_fixed_recipe_agrees_with_the_correct_rules():
    for scalar in (False, True):
        r = _fixed_recipe(scalar)
        assert usable(r)
        check_values(r)
        check_jacobians(r, 0)
        check_jacobians(r, 1)
        check_vjp(r)
        check_jvp(r)
        check_imperative(r)
    check_hessians(_fixed_recipe(True))


@pytest.mark.parametrize("scale", [1.0 + 1e-8, -1.0])
def test_a_wrong_vjp_rule_is_caught(scale):
    r = _fixed_recipe(False)
    bad = {"sin": _sin_with_scaled_vjp(scale)}
    check_values(r, bad)  # the forward pass is still right
    check_jvp(r, bad)  # and so is forward mode
    with pytest.raises(AssertionError):
        check_vjp(r, bad)
    with pytest.raises(AssertionError):
        check_imperative(r, bad)
    with pytest.raises(AssertionError):
        check_jacobians(r, 0, bad)


@pytest.mark.parametrize("scale", [1.0 + 1e-8, -1.0])
def test_a_wrong_jvp_rule_is_caught(scale):
    r = _fixed_recipe(False)
    bad = {"sin": _sin_with_scaled_jvp(scale)}
    check_vjp(r, bad)
    with pytest.raises(AssertionError):
        check_jvp(r, bad)
    with pytest.raises(AssertionError):
        check_jacobians(r, 1, bad)


@pytest.mark.parametrize("mode", HESSIAN_MODES)
def test_rules_that_cannot_be_differentiated_again_are_caught_by_every_hessian_mode(mode):
    r = _fixed_recipe(True)
    bad = {"sin": _sin_with_frozen_rules()}
    check_vjp(r, bad)  # first order is fine...
    check_jvp(r, bad)
    with pytest.raises(AssertionError):  # ...second order is not
        check_hessians(r, bad, modes=(mode,))


def test_a_perturbed_torch_composition_is_caught():
    """Change one op on the torch side only: values and derivatives must disagree."""
    r = _fixed_recipe(True)
    perturbed = Recipe(r.x_shape, r.y_shape, r.seed, list(r.instrs), list(r.consts), list(r.shapes))
    perturbed.instrs[1] = ("cos",) + perturbed.instrs[1][1:]  # sin -> cos in torch only
    x, y, _, _ = r.inputs()
    ours = nb_fn(r)(x, y)
    theirs = torch_fn(perturbed)(T(x), T(y))
    with pytest.raises(AssertionError):
        close(ours, theirs, "value")
    with pytest.raises(AssertionError):
        close(nb.grad(nb_fn(r))(x, y), torch.func.grad(torch_fn(perturbed))(T(x), T(y)), "grad")


# --------------------------------------------------------------------------- at the kinks
# The random recipes stay away from kinks; here the documented conventions are
# compared with torch's at exact ties (both split evenly; relu and abs give 0).

_TIE_X = np.array([1.0, 2.0, 2.0, 0.0, -1.0, 3.0])
_TIE_Y = np.array([1.0, 0.5, 2.0, 0.0, 3.0, 3.0])
_W = np.arange(1.0, 7.0)

KINK_CASES = {
    "maximum": (lambda a, b: nb.sum(nb.maximum(a, b) * _W),
                lambda a, b: torch.sum(torch.maximum(a, b) * T(_W))),
    "minimum": (lambda a, b: nb.sum(nb.minimum(a, b) * _W),
                lambda a, b: torch.sum(torch.minimum(a, b) * T(_W))),
    "max-reduction": (lambda a, b: nb.sum(nb.max(nb.reshape(a * b, (2, 3)), axis=1) * _W[:2]) + nb.max(a),
                      lambda a, b: torch.sum(torch.amax((a * b).reshape(2, 3), dim=1) * T(_W[:2])) + torch.amax(a)),
    "min-reduction": (lambda a, b: nb.min(nb.concatenate([a, b])) + nb.sum(nb.min(nb.stack([a, b]), axis=0) * _W),
                      lambda a, b: torch.amin(torch.cat([a, b])) + torch.sum(torch.amin(torch.stack([a, b]), dim=0) * T(_W))),
    "relu-and-abs": (lambda a, b: nb.sum((nb.relu(a) + nb.abs(b)) * _W),
                     lambda a, b: torch.sum((torch.relu(a) + torch.abs(b)) * T(_W))),
}


@pytest.mark.parametrize("case", sorted(KINK_CASES))
def test_gradients_at_kinks_follow_torch(case):
    f, g = KINK_CASES[case]
    x, y = _TIE_X, _TIE_Y
    tx, ty = np.linspace(-1.0, 1.0, 6), np.linspace(2.0, -0.5, 6)
    grads = nb.grad(f, argnums=(0, 1))(x, y)
    t_grads = torch.func.grad(g, argnums=(0, 1))(T(x), T(y))
    close(grads[0], t_grads[0], f"{case}: d/dx")
    close(grads[1], t_grads[1], f"{case}: d/dy")
    close(nb.jvp(f, (x, y), (tx, ty))[1], torch.func.jvp(g, (T(x), T(y)), (T(tx), T(ty)))[1], f"{case}: jvp")
