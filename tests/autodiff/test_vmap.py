"""vmap: every batching rule against a Python loop of the unbatched function (to 1e-12),
also under grad and jvp, with hypothesis over shapes and in_axes; nesting with every transform;
the errors and the loop fallback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nablab as nb
import nablab.numpy as nnp
from nablab.autodiff import batching
from nablab.autodiff.core import BatchedValueError

TOL = 1e-12


def loop(f, in_axes, args):
    """The reference: f on each example, stacked (the batch first)."""
    sizes = {np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None}
    (n,) = sizes
    outs = []
    for i in range(n):
        ex = [a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, in_axes)]
        outs.append(f(*ex))
    return nb.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *outs)


def close(a, b, tol=TOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"max error {err}"


rng = np.random.default_rng(0)


def R(*shape):
    return rng.normal(size=shape)


def P(*shape):  # positive entries
    return rng.uniform(0.5, 2.0, size=shape)


def SPD(b, n):
    a = rng.normal(size=(b, n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _sl():
    import nablab.scipy.linalg

    return nablab.scipy.linalg


B = 4
#: name -> (per-example function, batched arguments, in_axes). Each covers one primitive's rule
#: (the elementwise ones through a representative set; every UfuncPrimitive shares one rule).
CASES = {
    "add_bcast": (lambda x, y: x + y, (R(B, 3), R(2, 1)), (0, None)),
    "sub_both": (lambda x, y: x - y, (R(B, 2, 3), R(B, 3)), (0, 0)),
    "mul_axis1": (lambda x, y: x * y, (R(3, B), R(3)), (1, None)),
    "div": (lambda x, y: x / y, (R(B, 3), P(B, 1)), (0, 0)),
    "power": (lambda x: x ** 3, (R(B, 3),), (0,)),
    "power_xy": (lambda x, y: x ** y, (P(B, 3), R(B, 3)), (0, 0)),
    "exp_log": (lambda x: nb.exp(x) + nb.log(x), (P(B, 2, 2),), (0,)),
    "trig": (lambda x: nb.sin(x) * nb.cos(x) + nb.tanh(x) + nb.arctan(x), (R(B, 3),), (0,)),
    "sqrt_square": (lambda x: nb.sqrt(x) + nb.square(x) + nb.reciprocal(x), (P(B, 3),), (0,)),
    "abs_sign": (lambda x: nb.abs(x) * nb.sign(x), (R(B, 3),), (0,)),
    "maximum": (lambda x, y: nb.maximum(x, y) + nb.minimum(x, 0.1), (R(B, 3), R(3)), (0, None)),
    "arctan2": (lambda x, y: nb.arctan2(x, y), (R(B, 3), R(B, 3)), (0, 0)),
    "relu_sigmoid": (lambda x: nb.relu(x) + nb.sigmoid(x) + nb.softplus(x), (R(B, 5),), (0,)),
    "where": (lambda x: nb.where(x > 0, x ** 2, -x), (R(B, 5),), (0,)),
    "where_batched_y": (lambda x, y: nb.where(x > y, x, y), (R(B, 5), R(B, 1)), (0, 0)),
    "clip": (lambda x: nb.clip(x, -0.5, 0.5), (R(B, 5),), (0,)),
    "astype": (lambda x: nb.astype(x, np.float32).astype(np.float64) * 2, (R(B, 3),), (0,)),
    "complex_parts": (lambda x: nb.real(x * (1 + 2j)) + nb.imag(x * 1j), (R(B, 3),), (0,)),
    "sum_all": (lambda x: nb.sum(x), (R(B, 2, 3),), (0,)),
    "sum_axis": (lambda x: nb.sum(x, axis=-1), (R(2, B, 3),), (1,)),
    "sum_keep": (lambda x: nb.sum(x, axis=(0,), keepdims=True), (R(B, 2, 3),), (0,)),
    "mean_var": (lambda x: nb.mean(x, axis=0) + nb.var(x), (R(B, 4, 2),), (0,)),
    "max": (lambda x: nb.max(x, axis=1), (R(B, 3, 4),), (0,)),
    "prod": (lambda x: nb.prod(x, axis=0), (P(B, 3, 2),), (0,)),
    "cumsum": (lambda x: nb.cumsum(x, axis=-1), (R(B, 2, 3),), (0,)),
    "cumprod": (lambda x: nnp.cumprod(x, axis=0), (P(B, 3),), (0,)),
    "logsumexp": (lambda x: nb.logsumexp(x, axis=-1), (R(B, 2, 5),), (0,)),
    "softmax": (lambda x: nb.softmax(x), (R(B, 5),), (0,)),
    "reshape": (lambda x: nb.reshape(x, (3, -1)), (R(B, 2, 3),), (0,)),
    "reshape_F": (lambda x: nnp.reshape(x, (3, 2), order="F"), (R(B, 2, 3),), (0,)),
    "ravel": (lambda x: nb.ravel(x) * 2, (R(2, B, 3),), (1,)),
    "transpose": (lambda x: nb.transpose(x), (R(B, 2, 3, 4),), (0,)),
    "transpose_axes": (lambda x: nb.transpose(x, (1, 0, 2)), (R(B, 2, 3, 4),), (0,)),
    "swap_moveaxis": (lambda x: nb.moveaxis(nb.swapaxes(x, 0, 1), -1, 0), (R(B, 2, 3, 4),), (0,)),
    "expand_squeeze": (lambda x: nb.squeeze(nb.expand_dims(x, 1), 1) * 2, (R(B, 3),), (0,)),
    "broadcast_to": (lambda x: nb.broadcast_to(x, (2, 3)), (R(B, 3),), (0,)),
    "getitem_int": (lambda x: x[1], (R(B, 3, 2),), (0,)),
    "getitem_slice": (lambda x: x[:, ::2], (R(B, 3, 4),), (0,)),
    "getitem_neg": (lambda x: x[..., -1], (R(B, 3, 4),), (0,)),
    "getitem_array": (lambda x: x[np.array([2, 0, 2])], (R(B, 3, 4),), (0,)),
    "getitem_bool": (lambda x: x[np.array([True, False, True])], (R(B, 3),), (0,)),
    "getitem_adv_split": (lambda x: x[np.array([0, 1]), :, np.array([1, 2])], (R(B, 2, 3, 4),), (0,)),
    "getitem_newaxis": (lambda x: x[None, :, 0], (R(B, 3, 2),), (0,)),
    "concatenate": (lambda x, y: nb.concatenate([x, y, x], axis=-1), (R(B, 2, 3), R(2, 1)), (0, None)),
    "stack": (lambda x, y: nb.stack([x, y], axis=1), (R(B, 3), R(B, 3)), (0, 0)),
    "array_of_list": (lambda x: nb.array([x[0], x[1] * 2]), (R(B, 2),), (0,)),
    "pad": (lambda x: nb.pad(x, ((1, 0), (0, 2))), (R(B, 2, 3),), (0,)),
    "diagonal": (lambda x: nb.diagonal(x, 1), (R(B, 3, 4),), (0,)),
    "diag_embed": (lambda x: nb.diag(x), (R(B, 3),), (0,)),
    "tril": (lambda x: nb.tril(x), (R(B, 3, 3),), (0,)),
    "trace": (lambda x: nb.matrix_trace(x), (R(B, 3, 3),), (0,)),
    "flip_roll": (lambda x: nb.roll(nb.flip(x, 0), 1, axis=1), (R(B, 3, 4),), (0,)),
    "matmul_vm": (lambda x, w: x @ w, (R(B, 3), R(3, 2)), (0, None)),
    "matmul_mv": (lambda w, x: w @ x, (R(2, 3), R(B, 3)), (None, 0)),
    "matmul_mm_both": (lambda a, b: a @ b, (R(B, 2, 3), R(B, 3, 4)), (0, 0)),
    "matmul_vv": (lambda a, b: a @ b, (R(B, 3), R(B, 3)), (0, 0)),
    "matmul_v_batchmat": (lambda a, b: a @ b, (R(B, 3), R(5, 3, 2)), (0, None)),
    "matmul_batchmat_v": (lambda a, b: a @ b, (R(5, 2, 3), R(B, 3)), (None, 0)),
    "matmul_rank_mismatch": (lambda a, b: a @ b, (R(B, 2, 3), R(5, 3, 2)), (0, None)),
    "dot": (lambda a, b: nb.dot(a, b), (R(B, 3), R(B, 3)), (0, 0)),
    "outer_inner": (lambda a, b: nb.outer(a, b) + nb.inner(a, b), (R(B, 3), R(3)), (0, None)),
    "tensordot": (lambda a, b: nb.tensordot(a, b, axes=1), (R(B, 2, 3), R(3, 4)), (0, None)),
    "einsum": (lambda a, b: nb.einsum("ij,jk->ik", a, b), (R(B, 2, 3), R(B, 3, 4)), (0, 0)),
    "einsum_one": (lambda a, b: nb.einsum("ij,j->i", a, b), (R(2, 3), R(B, 3)), (None, 0)),
    "einsum_ellipsis": (lambda a: nb.einsum("...ii->...", a), (R(B, 2, 3, 3),), (0,)),
    "inv": (lambda a: nnp.linalg.inv(a), (SPD(B, 3),), (0,)),
    "det": (lambda a: nnp.linalg.det(a), (SPD(B, 3),), (0,)),
    "slogdet": (lambda a: nnp.linalg.slogdet(a)[1], (SPD(B, 3),), (0,)),
    "solve_vec": (lambda a, b: nnp.linalg.solve(a, b), (SPD(B, 3), R(B, 3)), (0, 0)),
    "solve_mat_unbatched_a": (lambda a, b: nnp.linalg.solve(a, b), (SPD(1, 3)[0], R(B, 3, 2)), (None, 0)),
    "solve_vec_unbatched_b": (lambda a, b: nnp.linalg.solve(a, b), (SPD(B, 3), R(3)), (0, None)),
    "cholesky": (lambda a: nnp.linalg.cholesky(a), (SPD(B, 3),), (0,)),
    "eigvalsh": (lambda a: nnp.linalg.eigvalsh(a), (SPD(B, 3),), (0,)),
    "eigh_values": (lambda a: nnp.linalg.eigh(a)[0], (SPD(B, 3),), (0,)),
    "svdvals": (lambda a: nnp.linalg.svd(a, compute_uv=False), (R(B, 3, 2),), (0,)),
    "qr_r_diag": (lambda a: nb.abs(nb.diagonal(nnp.linalg.qr(a)[1])), (R(B, 3, 3),), (0,)),
    "pinv": (lambda a: nnp.linalg.pinv(a), (R(B, 3, 2),), (0,)),
    "norm": (lambda x: nb.norm(x) + nnp.linalg.norm(x, axis=-1).sum(), (R(B, 2, 3),), (0,)),
    "fft": (lambda x: nb.real(nnp.fft.fft(x)) + nnp.fft.irfft(nnp.fft.rfft(x), n=4), (R(B, 4),), (0,)),
    "sinc": (lambda x: nnp.sinc(x), (R(B, 3),), (0,)),
    "expm": (lambda a: _sl().expm(a * 0.3), (R(B, 3, 3),), (0,)),
    "sqrtm": (lambda a: _sl().sqrtm(a), (SPD(B, 3),), (0,)),
    "solve_triangular_vec": (lambda a, b: _sl().solve_triangular(a, b, lower=True),
                             (np.tril(SPD(B, 3)), R(B, 3)), (0, 0)),
    "solve_triangular_shared_a": (lambda a, b: _sl().solve_triangular(a, b),
                                  (np.triu(SPD(1, 3)[0]), R(B, 3, 2)), (None, 0)),
    "scipy_special": (lambda x: __import__("nablab.scipy.special", fromlist=["x"]).erf(x), (R(B, 3),), (0,)),
}


def _scalarize(f):
    """A scalar function of the same arguments (for grad): a weighted sum of the output."""
    def g(*args):
        out = f(*args)
        w = np.linspace(0.5, 1.5, int(np.prod(nb.asarray(out).shape)) or 1).reshape(nb.asarray(out).shape)
        return nb.sum(nb.real(out) * w)
    return g


def _float_args(args, in_axes):
    return [i for i, (a, ax) in enumerate(zip(args, in_axes)) if ax is not None]


#: Cases that must run example by example (none: every case here has a rule; see
#: test_python_control_flow_on_a_batched_value_runs_example_by_example for one that loops).
LOOPED = set()


def _loops_used():
    return sum(nb.vmap.fallbacks_used().values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_against_loop(name):
    f, args, in_axes = CASES[name]
    before = _loops_used()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = nb.vmap(f, in_axes=in_axes)(*args)
    # a rule of its own, not the loop (except the known cases, which must loop)
    assert (_loops_used() > before) == (name in LOOPED)
    close(got, loop(f, in_axes, args))


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_under_grad(name):
    f, args, in_axes = CASES[name]
    g = nb.grad(_scalarize(f), argnums=tuple(_float_args(args, in_axes)))
    got = nb.vmap(g, in_axes=in_axes)(*args)
    close_tree(got, loop(g, in_axes, args), 1e-10)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_under_jvp(name):
    f, args, in_axes = CASES[name]
    tangents = [np.cos(np.arange(np.size(a))).reshape(np.shape(a)) for a in args]

    def tangent_of(*xs_and_ts):
        n = len(args)
        return nb.jvp(f, xs_and_ts[:n], xs_and_ts[n:])[1]

    axes = tuple(in_axes) * 2
    got = nb.vmap(tangent_of, in_axes=axes)(*args, *tangents)
    close(got, loop(tangent_of, axes, list(args) + tangents), 1e-10)


@pytest.mark.parametrize("name", ["matmul_vm", "sum_axis", "getitem_adv_split", "logsumexp", "einsum",
                                  "concatenate", "solve_vec", "where_batched_y"])
def test_grad_of_vmap(name):
    """The batch level under a reverse level: grad of the summed vmapped function."""
    f, args, in_axes = CASES[name]
    nums = _float_args(args, in_axes)
    total = lambda *a: nb.sum(_scalarize(nb.vmap(f, in_axes=in_axes))(*a))
    got = nb.grad(total, argnums=tuple(nums))(*args)
    # reference: the gradient of the same sum written as a loop
    def looped(*a):
        n = {np.shape(a[i])[in_axes[i]] for i in nums}.pop()
        outs = []
        for k in range(n):
            ex = [x if ax is None else nnp.take(x, k, axis=ax) for x, ax in zip(a, in_axes)]
            outs.append(f(*ex))
        return nb.sum(_scalarize(lambda *_: nb.stack(outs))(*a))
    want = nb.grad(looped, argnums=tuple(nums))(*args)
    close_tree(got, want, 1e-10)


def close_tree(a, b, tol=TOL):
    la, lb = nb.tree_leaves(a), nb.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        close(x, y, tol)


# --------------------------------------------------------------------------- hypothesis over shapes and in_axes


@st.composite
def mapped(draw, max_rank=3):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=max_rank)))
    size = draw(st.integers(1, 4))
    axis = draw(st.integers(-(len(shape) + 1), len(shape)))
    return shape, size, axis


def _batched(rng_, shape, size, axis):
    x = rng_.normal(size=(size,) + shape)
    return np.moveaxis(x, 0, axis)


UNARY = {
    "tanh": nb.tanh, "exp": nb.exp, "square": lambda x: x * x, "sum": nb.sum,
    "sum_last": lambda x: nb.sum(x, axis=-1) if x.ndim else x, "max0": lambda x: nb.max(x, axis=0) if x.ndim else x,
    "T": lambda x: x.T, "flip_rows": lambda x: x[::-1] if x.ndim else x, "cumsum": lambda x: nb.cumsum(x),
    "relu": nb.relu, "logsumexp": nb.logsumexp, "ravel": nb.ravel, "outer_self": lambda x: nb.outer(x, x),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=mapped(), fname=st.sampled_from(sorted(UNARY)), out_axis=st.integers(-1, 0), seed=st.integers(0, 99))
def test_hypothesis_unary(spec, fname, out_axis, seed):
    shape, size, axis = spec
    f = UNARY[fname]
    x = _batched(np.random.default_rng(seed), shape, size, axis)
    got = nb.vmap(f, in_axes=axis, out_axes=out_axis)(x)
    want = np.moveaxis(loop(f, (axis,), [x]), 0, out_axis)
    close(got, want)
    g = nb.grad(lambda v: nb.sum(nb.sin(f(v))))
    close(nb.vmap(g, in_axes=axis)(x), loop(g, (axis,), [x]), 1e-10)
    t = np.cos(x)
    jv = lambda v, dv: nb.jvp(f, (v,), (dv,))[1]
    close(nb.vmap(jv, in_axes=(axis, axis))(x, t), loop(jv, (axis, axis), [x, t]), 1e-10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a_shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       b_extra=st.lists(st.integers(1, 3), min_size=0, max_size=2),
       axes=st.tuples(st.sampled_from([0, -1, None]), st.sampled_from([0, 1, None])),
       op=st.sampled_from(["add", "mul", "matmul", "where", "maximum"]), seed=st.integers(0, 99))
def test_hypothesis_binary(a_shape, b_extra, axes, op, seed):
    r = np.random.default_rng(seed)
    size = 3
    a_shape = tuple(a_shape)
    if op == "matmul":  # b's stacking axes: a suffix of a's (or, if a is a vector, any)
        lead = a_shape[:-2]
        b_lead = lead[len(lead) - min(len(lead), len(b_extra)):] if len(a_shape) > 1 else tuple(b_extra)
        b_shape = b_lead + (a_shape[-1], 2)
    else:
        b_shape = a_shape[len(a_shape) - min(len(a_shape), len(b_extra)):]  # a suffix: broadcasts
    ax_a, ax_b = axes
    if ax_a is None and ax_b is None:
        ax_a = 0
    a = _batched(r, a_shape, size, ax_a) if ax_a is not None else r.normal(size=a_shape)
    ax_b_ok = None if ax_b is None else min(ax_b, len(b_shape))
    b = _batched(r, b_shape, size, ax_b_ok) if ax_b is not None else r.normal(size=b_shape)
    f = {"add": lambda x, y: x + y, "mul": lambda x, y: x * y, "matmul": lambda x, y: x @ y,
         "where": lambda x, y: nb.where(x > 0, x, y), "maximum": nb.maximum}[op]
    in_axes = (ax_a, ax_b_ok)
    close(nb.vmap(f, in_axes=in_axes)(a, b), loop(f, in_axes, [a, b]))
    nums = tuple(i for i, ax in enumerate(in_axes) if ax is not None)
    g = nb.grad(lambda x, y: nb.sum(nb.tanh(f(x, y))), argnums=nums)
    close_tree(nb.vmap(g, in_axes=in_axes)(a, b), loop(g, in_axes, [a, b]), 1e-10)


# --------------------------------------------------------------------------- nesting


X = R(5, 3)
W = R(3, 4)


def mlp_loss(w, x):
    return nb.sum(nb.tanh(x @ w) ** 2)


def test_vmap_of_vmap_and_axes():
    f = lambda a, b: nb.sum(a * b)
    a, b = R(2, 3, 4), R(4, 3)
    got = nb.vmap(nb.vmap(f, in_axes=(0, None)), in_axes=(2, 0))(a, b)  # outer maps a's axis 2 with b's rows
    want = np.array([[float(np.sum(a[i, :, j] * b[j])) for i in range(2)] for j in range(4)])
    close(got, want)


def test_per_example_gradients_and_hessians():
    pe = nb.vmap(nb.grad(mlp_loss), in_axes=(None, 0))(W, X)
    close(pe, np.stack([nb.grad(mlp_loss)(W, x) for x in X]))
    close(nb.grad(lambda w: nb.sum(nb.vmap(mlp_loss, in_axes=(None, 0))(w, X)))(W), pe.sum(0))
    h = lambda x: nb.sum(nb.sin(x) ** 3)
    for mode in ("fwd-over-rev", "rev-over-rev", "fwd-over-fwd", "rev-over-fwd"):
        close(nb.vmap(nb.hessian(h, mode=mode))(X), np.stack([nb.hessian(h, mode=mode)(x) for x in X]))
    close(nb.hessian(lambda x: nb.sum(nb.vmap(h)(x)))(X), nb.hessian(lambda x: nb.sum(nb.sin(x) ** 3))(X))


def test_jacobians_of_and_inside_vmap():
    f = lambda x: nb.stack([x[0] * x[1], nb.sin(x[2]), nb.sum(x ** 2)])
    want = np.stack([nb.jacrev(f)(x) for x in X])
    close(nb.vmap(nb.jacrev(f))(X), want)
    close(nb.vmap(nb.jacfwd(f))(X), want)
    batched = nb.vmap(f)
    J = nb.jacfwd(batched)(X)  # (5, 3, 5, 3): block diagonal in the batch
    close(np.stack([J[i, :, i] for i in range(5)]), want)
    close(nb.jacrev(batched)(X), J)


def test_vjp_and_jvp_around_vmap():
    f = nb.vmap(lambda x: nb.tanh(x) * x)
    out, vjp_fn = nb.vjp(f, X)
    ct = R(*X.shape)
    close(vjp_fn(ct)[0], ct * (1 - np.tanh(X) ** 2) * X + ct * np.tanh(X))
    close(nb.jvp(f, (X,), (ct,))[1], ct * (1 - np.tanh(X) ** 2) * X + ct * np.tanh(X))
    # vmap over a vjp_fn: rows of the Jacobian at once
    _, vjp_one = nb.vjp(lambda x: nb.tanh(x @ W), X[0])
    rows = nb.vmap(lambda c: vjp_one(c)[0])(np.eye(4))
    close(rows, nb.jacrev(lambda x: nb.tanh(x @ W))(X[0]))


def test_grad_of_vmap_of_grad():
    inner = nb.vmap(nb.grad(mlp_loss), in_axes=(None, 0))
    got = nb.grad(lambda w: nb.sum(inner(w, X) ** 2))(W)
    want = nb.grad(lambda w: sum(nb.sum(nb.grad(mlp_loss)(w, x) ** 2) for x in X))(W)
    close(got, want, 1e-10)


def test_trees_in_and_out():
    params = {"w": W, "b": R(4)}
    xs = {"x": X, "scale": R(5)}

    def f(p, d):
        return {"y": nb.tanh(d["x"] @ p["w"] + p["b"]) * d["scale"], "n": nb.sum(p["b"])}

    out = nb.vmap(f, in_axes=(None, {"x": 0, "scale": 0}), out_axes={"y": 1, "n": None})(params, xs)
    close(out["y"], np.stack([np.tanh(x @ W + params["b"]) * s for x, s in zip(X, xs["scale"])], axis=1))
    close(out["n"], np.sum(params["b"]))
    # an unbatched output with an axis is broadcast along the batch
    close(nb.vmap(lambda x: nb.sum(W))(X), np.full(5, np.sum(W)))


def test_keywords_and_closures_are_unmapped():
    close(nb.vmap(lambda x, scale=1.0: x * scale)(X, scale=3.0), X * 3.0)
    close(nb.vmap(lambda x: x @ W)(X), X @ W)


def test_integer_and_boolean_values_per_example():
    labels = np.array([0, 2, 1, 3, 1])
    onehot = nb.vmap(lambda y: nb.astype(y == np.arange(4), np.float64))(labels)
    close(onehot, np.eye(4)[labels])
    logits = R(5, 4)
    nll = nb.vmap(lambda z, y: -nb.sum(nb.where(y == np.arange(4), nb.log_softmax(z), 0.0)))(logits, labels)
    want = [-(logits[i] - np.log(np.sum(np.exp(logits[i]))))[labels[i]] for i in range(5)]
    close(nll, want)
    close(nb.vmap(lambda z: nb.argmax(z))(logits), np.argmax(logits, axis=1))


# --------------------------------------------------------------------------- errors and the fallback


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"argument 0 has size 5 along axis 0; argument 1 has size 4"):
        nb.vmap(lambda a, b: a + b)(X, R(4, 3))
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function was called with 2"):
        nb.vmap(lambda a, b: a + b, in_axes=(0,))(X, X)
    with pytest.raises(ValueError, match=r"in_axes=2 for argument 0, which has shape \(5, 3\)"):
        nb.vmap(nb.sin, in_axes=2)(X)
    with pytest.raises(ValueError, match="no argument is mapped"):
        nb.vmap(nb.sin, in_axes=None)(X)
    with pytest.raises(ValueError, match="out_axes is None for output leaf 0, but it varies"):
        nb.vmap(nb.sin, out_axes=None)(X)
    with pytest.raises(ValueError, match=r"in_axes at argument 0 is a dict with keys \['a'\]"):
        nb.vmap(lambda d: d["b"], in_axes=({"a": 0},))({"b": X})
    with pytest.raises(BatchedValueError, match="conversion to a NumPy array of a value batched by vmap"):
        np.asarray(batching.BatchTensor(X, 10 ** 9))


def test_python_control_flow_on_a_batched_value_runs_example_by_example():
    """bool()/float()/np.asarray of a batched value has no single answer: vmap warns and loops (exactly)."""
    def branchy(x):
        return x * 2 if float(nb.sum(x)) > 0 else -x

    batching._warned.clear()
    with pytest.warns(RuntimeWarning, match=r"function branchy needs a plain array of a batched value \(at .*test_vmap.py"):
        got = nb.vmap(branchy)(X)
    close(got, np.stack([branchy(x) for x in X]))
    close(nb.vmap(lambda x: np.asarray(x) * 3)(X), X * 3)
    # under grad the value is traced as well: that error is not the batch's, and it propagates
    with pytest.raises(nb.TracedValueError):
        nb.vmap(nb.grad(lambda x: float(x[0]) * x[0]))(X)


def test_axis_size_maps_nothing():
    close(nb.vmap(lambda: nb.ones(2), axis_size=3)(), np.ones((3, 2)))


def test_fallback_loop_warns_once_and_is_listed():
    from nablab.autodiff.core import primitive

    @primitive
    def odd_one(x):
        return np.sort(x)[::-1] * 1.0

    odd_one.defvjp(lambda g, ans, x: g)  # not the true VJP; only batching is tested here
    assert "odd_one" in nb.vmap.missing_rules()
    batching._warned.clear()
    with pytest.warns(RuntimeWarning, match="primitive odd_one has no batching rule"):
        got = nb.vmap(odd_one)(X)
    close(got, np.stack([np.sort(x)[::-1] for x in X]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nb.vmap(odd_one)(X)  # said once
    assert nb.vmap.fallbacks_used()["odd_one"] >= 2
    # a rule of its own: sort each row (axis -1 of the batched value), then reverse it
    nb.vmap.register(odd_one, lambda prim, vals, batched, kwargs, size: nb.flip(nb.sort(vals[0], axis=-1), axis=-1))
    assert "odd_one" not in nb.vmap.missing_rules()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        close(nb.vmap(odd_one)(X), got)


def test_missing_rules_are_few_and_named():
    missing = nb.vmap.missing_rules()
    for name in ("add", "matmul", "einsum", "sum", "getitem", "reshape", "concatenate", "stack", "where",
                 "inv", "solve", "cholesky", "tanh", "scipy.special.erf"):
        assert name not in missing
    assert "lstsq" in missing  # no rule: runs in the loop


def test_no_leaked_batch_value():
    keep = []

    def f(x):
        keep.append(x)
        return x

    nb.vmap(f)(X)
    with pytest.raises(ValueError, match="escaped"):
        nb.vmap(lambda x: keep[0])(X)


def test_doctests_of_the_batching_module():
    import doctest

    result = doctest.testmod(batching, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0


def test_a_wrong_rule_is_caught(monkeypatch):
    """The loop comparison does catch a rule that forgets to move an axis past the batch."""
    from nablab.numpy import reductions

    def wrong(prim, vals, batched, kwargs, size):
        return prim(vals[0], axis=-1, keepdims=True)  # keeps the batch, sums the wrong axis

    def loses_the_batch(prim, vals, batched, kwargs, size):
        return prim(vals[0], **kwargs)  # axis=(0,) now sums over the batch

    f, args, in_axes = CASES["sum_keep"]
    monkeypatch.setitem(batching._RULES, reductions._sum_p, wrong)
    with pytest.raises(AssertionError):
        close(nb.vmap(f, in_axes=in_axes)(*args), loop(f, in_axes, args))
    # a rule whose result does not start with the batch is refused by name at once
    monkeypatch.setitem(batching._RULES, reductions._sum_p, loses_the_batch)
    with pytest.raises(RuntimeError, match=r"batching rule of sum returned shape \(1, 2, 3\)"):
        nb.vmap(f, in_axes=in_axes)(*args)


#: x[index] with an integer index per example (a gather): (function of x and the index, x, index).
GATHERS = {
    "scalar_label": (lambda z, i: z[i], R(B, 5), np.array([0, 4, 2, 2])),
    "array_after_slice": (lambda x, i: x[:, i], R(B, 3, 4), np.array([[0, 3], [1, 1], [2, 0], [3, 3]])),
    "int_and_array_apart": (lambda x, i: x[0, :, i], R(B, 2, 3, 4), np.array([[0, 3], [1, 1], [2, 0], [3, 3]])),
    "two_arrays": (lambda x, i: x[i, i], R(B, 3, 3), np.array([[0, 1], [2, 2], [1, 0], [0, 0]])),
    "repeated": (lambda x, i: x[i] * 2.0, R(B, 3), np.array([[0, 0, 1], [2, 2, 2], [1, 0, 1], [0, 2, 0]])),
}


@pytest.mark.parametrize("name", sorted(GATHERS))
def test_gather_with_an_index_per_example(name):
    f, x, idx = GATHERS[name]
    before = _loops_used()
    close(nb.vmap(f)(x, idx), loop(f, (0, 0), [x, idx]))
    g = nb.grad(lambda x, i: nb.sum(nb.sin(f(x, i)) * 1.5))
    close(nb.vmap(g)(x, idx), loop(g, (0, 0), [x, idx]))
    jv = lambda x, t, i: nb.jvp(lambda v: f(v, i), (x,), (t,))[1]
    t = np.cos(x)
    close(nb.vmap(jv)(x, t, idx), loop(jv, (0, 0, 0), [x, t, idx]))
    total = nb.grad(lambda x: nb.sum(nb.sin(nb.vmap(f)(x, idx))))(x)
    close(total, np.stack([nb.grad(lambda v: nb.sum(nb.sin(f(v, i))))(v) for v, i in zip(x, idx)]))
    assert _loops_used() == before  # batched, not looped


def test_per_example_cross_entropy_with_integer_labels():
    w, xs, labels = R(3, 4), R(6, 3), np.array([0, 3, 1, 1, 2, 0])
    nll = lambda w, x, y: -nb.log_softmax(x @ w)[y]
    got = nb.vmap(nb.grad(nll), in_axes=(None, 0, 0))(w, xs, labels)
    close(got, np.stack([nb.grad(nll)(w, x, y) for x, y in zip(xs, labels)]))
    with pytest.raises(IndexError, match="must hold integers"):
        nb.vmap(lambda x, m: x[m])(R(2, 3), np.array([[True, False, True], [False, True, True]]))


def test_lab_per_example_checks_pass_and_can_fail():
    """optim.nonuniform-sgd's per-example gradients and Lipschitz constants come from vmap(grad) and
    vmap(hessian); its checks hold on the true constants and fail on a wrong 2 R^2."""
    from nablab.lab.experiments.optim import per_example_checks

    class Run:
        def check(self, condition, message):
            if not condition:
                raise AssertionError(message)

    rng = np.random.default_rng(3)
    X, y, thetas = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 3))
    two_R2 = 2.0 * np.max(np.sum(X ** 2, axis=2), axis=1)
    per_example_checks(Run(), X, y, thetas, two_R2)
    with pytest.raises(AssertionError, match="Lipschitz"):
        per_example_checks(Run(), X, y, thetas, two_R2 * 1.01)


CONV_SETTINGS = [
    {"padding": 1}, {"stride": 2}, {"dilation": 2, "padding": 2}, {"groups": 2, "padding": 1},
]


@pytest.mark.parametrize("kw", CONV_SETTINGS)
@pytest.mark.parametrize("pool", ["max", "max_overlap", "avg", "none"])
def test_convolutions_and_pooling_per_example(kw, pool):
    """conv2d, its two adjoints and max pooling's gather/scatter have rules: per-example weight
    gradients (one weight for all, or one per example) match the loop and nothing loops."""
    from nablab.nn import functional as F

    r = np.random.default_rng(5)
    X, W = r.normal(size=(3, 2, 4, 7, 7)), r.normal(size=(4, 4 // kw.get("groups", 1), 3, 3))

    def f(w, x):
        h = nb.tanh(F.conv2d(x, w, **kw))
        if pool == "max":
            h = F.max_pool2d(h, 2)
        elif pool == "max_overlap":
            h = F.max_pool2d(h, 2, stride=1)
        elif pool == "avg":
            h = F.avg_pool2d(h, 2)
        return nb.sum(h ** 2)

    before = _loops_used()
    close(nb.vmap(f, in_axes=(None, 0))(W, X), np.stack([f(W, x) for x in X]))
    g = nb.grad(f, argnums=(0, 1))
    close_tree(nb.vmap(g, in_axes=(None, 0))(W, X), loop(g, (None, 0), [W, X]), 1e-10)
    Ws = r.normal(size=(3,) + W.shape)
    close_tree(nb.vmap(g)(Ws, X), loop(g, (0, 0), [Ws, X]), 1e-10)
    jv = lambda w, x, t: nb.jvp(lambda v: f(v, x), (w,), (t,))[1]  # noqa: E731
    close(nb.vmap(jv, in_axes=(None, 0, 0))(W, X, Ws), loop(jv, (None, 0, 0), [W, X, Ws]), 1e-10)
    assert _loops_used() == before


@pytest.mark.parametrize("axis", [0, None, (0, 1), -1])
def test_exact_path_of_prod_is_batched(axis):
    """prod's exact path (an entry 0, inf or NaN in some example) is a primitive with a batching rule
    whose derivative rules (the products of the entries before and after each one) are built from
    batched operations: no loop, and the numbers of the loop of per-example derivatives, NaNs and
    infinities included, to second order."""
    x = P(B, 3, 2)
    x[1, 1, 0], x[2, 0, 1], x[3, 2, 1], x[0, 0, 0] = 0.0, np.inf, np.nan, 0.0
    x[0, 1, 0] = x[0, 0, 1] = 0.0  # two zeros or more in a slice: derivatives of 0 there
    t = P(B, 3, 2)
    f = lambda v: nb.prod(v, axis=axis)  # noqa: E731
    shape = np.shape(np.prod(x[0], axis=axis))
    w = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    g = nb.grad(lambda v: nb.sum(f(v) * w))
    jv = lambda v, d: nb.jvp(f, (v,), (d,))[1]  # noqa: E731
    hv = lambda v, d: nb.jvp(g, (v,), (d,))[1]  # noqa: E731
    before = _loops_used()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pairs = [(nb.vmap(f)(x), loop(f, (0,), [x])), (nb.vmap(g)(x), loop(g, (0,), [x])),
                 (nb.vmap(jv)(x, t), loop(jv, (0, 0), [x, t])), (nb.vmap(hv)(x, t), loop(hv, (0, 0), [x, t]))]
    assert _loops_used() == before
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)
    assert np.isnan(pairs[1][1]).any() and np.isinf(pairs[1][1]).any() and (pairs[1][1] == 0).any()
    x_nonzero = P(B, 3, 2)  # no zero anywhere: the dividing rule, batched too
    close(nb.vmap(g)(x_nonzero), loop(g, (0,), [x_nonzero]))
    assert _loops_used() == before


def test_masked_mean_var_and_std_are_batched():
    """mean, var and std with a constant where mask (whose counts are converted to the input's
    dtype) batch as they are, bit for bit the loop's numbers, float32 staying float32."""
    x = P(B, 3, 5).astype(np.float32)
    mask = np.random.default_rng(5).random((3, 5)) < 0.6
    fs = [lambda v: nnp.mean(v, axis=1, where=mask), lambda v: nnp.var(v, axis=(0, 1), ddof=1, where=mask),
          lambda v: nnp.std(v, where=mask, keepdims=True),
          nb.grad(lambda v: nb.sum(nnp.var(v, axis=0, where=mask)) + nb.sum(nnp.mean(v, axis=1, where=mask) ** 2))]
    before = _loops_used()
    for f in fs:
        got, want = np.asarray(nb.vmap(f)(x)), loop(f, (0,), [x])
        assert got.dtype == np.float32 and got.tobytes() == np.asarray(want).tobytes()
    assert _loops_used() == before


@pytest.mark.parametrize("axis", [0, None])
def test_exact_path_of_cumprod_is_batched(axis):
    """cumprod's exact path (an entry 0, inf or NaN in some example) is a primitive whose rules are
    built from batched operations: no loop, and the numbers of the loop, NaNs and infinities included."""
    x = P(B, 3, 2)
    x[1, 1, 0], x[2, 0, 1], x[3, 2, 1], x[0, 0, 0] = 0.0, np.inf, np.nan, 0.0
    t = P(B, 3, 2)
    f = lambda v: nnp.cumprod(v, axis=axis)  # noqa: E731
    g = nb.grad(lambda v: nb.sum(f(v) * np.arange(1.0, 7.0).reshape(f(v).shape)))
    jv = lambda v, d: nb.jvp(f, (v,), (d,))[1]  # noqa: E731
    before = _loops_used()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for got, want in [(nb.vmap(f)(x), loop(f, (0,), [x])), (nb.vmap(g)(x), loop(g, (0,), [x])),
                          (nb.vmap(jv)(x, t), loop(jv, (0, 0), [x, t]))]:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)
    assert _loops_used() == before


def test_vmap_on_the_imperative_tape():
    """Tensors with requires_grad=True go through vmap and .backward() reaches them."""
    w = nb.tensor(np.ones(3), requires_grad=True)
    out = nb.vmap(lambda x: nb.sum(nb.tanh(x * w)))(X)
    assert out.requires_grad
    nb.sum(out).backward()
    close(w.grad, np.sum(X * (1 - np.tanh(X) ** 2), axis=0))
    xt = nb.tensor(X, requires_grad=True)
    nb.sum(nb.vmap(lambda col: nb.sum(col ** 2), in_axes=1)(xt)).backward()
    close(xt.grad, 2 * X)


def test_lab_mnist1d_per_example_gradient_norms():
    """The nonuniform-sgd claim's MNIST-1D figure: at W = 0 every example's gradient of softmax
    regression is (p - e_y) x^T with p uniform, so its norm is sqrt((||x||^2 + 1) 0.9) exactly."""
    from nablab.data import load_mnist1d
    from nablab.lab.experiments.optim import mnist1d_gradient_norms

    class Run:
        def check(self, condition, message):
            assert condition, message

    start, end, lipschitz, loss = mnist1d_gradient_norms(Run(), steps=5)
    x = np.asarray(load_mnist1d()["x_train"], dtype=np.float64)
    close(start, np.sqrt((np.sum(x ** 2, axis=1) + 1.0) * 0.9))
    close(lipschitz, (np.sum(x ** 2, axis=1) + 1.0) / 2.0)
    assert end.shape == start.shape and not np.allclose(end, start) and loss < np.log(10.0)


@pytest.mark.parametrize("name,f", [
    ("lstsq", lambda v: nnp.linalg.lstsq(np.arange(15.0).reshape(5, 3) % 4 + np.eye(5, 3), v, rcond=None)[0]),
    ("real_if_close", lambda v: nnp.real_if_close(v + 0j)),
    ("modf", lambda v: nnp.modf(v)[1]),
    ("frexp", lambda v: nnp.frexp(v)[1]),
    ("angle", lambda v: nnp.angle(v)),
])
def test_functions_that_read_a_plain_array_loop_instead_of_recursing(name, f):
    """These read NumPy's answer on the plain values (a rank, an integer part, a realness test); under vmap
    that is a per-example question: they run example by example, with vmap's warning, and match the loop."""
    x = np.random.default_rng(3).standard_normal((4, 5)) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # vmap says once that it loops
        got = nb.vmap(f)(x)
    np.testing.assert_allclose(np.asarray(got), np.stack([np.asarray(f(v)) for v in x]), rtol=0, atol=0)
