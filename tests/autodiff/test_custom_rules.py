"""custom_vjp and custom_jvp: every transform, nesting, the imperative tape, torch, finite differences,
and the errors bad definitions get; linearize and linear_transpose."""

from __future__ import annotations

import doctest
import functools

import numpy as np
import pytest

import nablab as nb
import nablab.autodiff.custom as custom
from nablab.errors import ShapeError

RNG = np.random.default_rng(0)


# -- definitions used below ---------------------------------------------------------


@nb.custom_jvp
def log1pexp(x):
    return nb.maximum(x, 0.0) + nb.log1p(nb.exp(-nb.abs(x)))


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * nb.sigmoid(x)


def softplus_ref(x):
    return nb.softplus(x)  # a primitive with its own rules: the reference


@nb.custom_vjp
def sin_times(x, y):
    return nb.sin(x) * y


def _sin_times_fwd(x, y):
    return nb.sin(x) * y, (nb.cos(x), nb.sin(x), y)


def _sin_times_bwd(res, g):
    c, s, y = res
    return c * g * y, s * g


sin_times.defvjp(_sin_times_fwd, _sin_times_bwd)


def sin_times_ref(x, y):
    return nb.sin(x) * y


@nb.custom_vjp
def clip_gradient(x, lo, hi):
    return x


clip_gradient.defvjp(lambda x, lo, hi: (x, (lo, hi)), lambda res, g: (nb.clip(g, res[0], res[1]), None, None))


# -- custom_vjp -----------------------------------------------------------------------


def test_custom_vjp_runs_the_function_as_written_when_not_differentiated():
    calls = []

    @nb.custom_vjp
    def f(x):
        calls.append("f")
        return 2 * x

    f.defvjp(lambda x: (calls.append("fwd") or 2 * x, None), lambda res, g: (2 * g,))
    assert f(3.0) == 6.0 and calls == ["f"]
    nb.grad(f)(3.0)
    assert calls == ["f", "fwd"]


@pytest.mark.parametrize("x, y", [(0.4, 1.3), (2.0, -0.7)])
def test_custom_vjp_under_reverse_transforms_and_nesting(x, y):
    w = np.array([x, y])
    mine = lambda w: sin_times(w[0], w[1])  # noqa: E731
    ref = lambda w: sin_times_ref(w[0], w[1])  # noqa: E731
    np.testing.assert_allclose(nb.grad(mine)(w), nb.grad(ref)(w), rtol=1e-14)
    np.testing.assert_allclose(nb.grad(sin_times, argnums=(0, 1))(x, y), nb.grad(sin_times_ref, argnums=(0, 1))(x, y))
    np.testing.assert_allclose(nb.grad(nb.grad(sin_times))(x, y), -np.sin(x) * y, rtol=1e-14)
    np.testing.assert_allclose(nb.grad(nb.grad(nb.grad(sin_times)))(x, y), -np.cos(x) * y, rtol=1e-14)
    for mode in ("fwd-over-rev", "rev-over-rev"):
        np.testing.assert_allclose(nb.hessian(mine, mode=mode)(w), nb.hessian(ref)(w), rtol=1e-13, atol=1e-15)
    vec = lambda w: nb.stack([sin_times(w[0], w[1]), sin_times(w[1], w[0])])  # noqa: E731
    np.testing.assert_allclose(nb.jacrev(vec)(w), nb.numerical_jacobian(vec, w), rtol=1e-6)


def test_custom_vjp_under_forward_mode_raises_and_says_what_to_use():
    for transform in (lambda: nb.jvp(sin_times, (1.0, 2.0), (1.0, 0.0)),
                      lambda: nb.jacfwd(lambda w: sin_times(w[0], w[1]))(np.ones(2)),
                      lambda: nb.hessian(lambda w: sin_times(w[0], w[1]), mode="rev-over-fwd")(np.ones(2))):
        with pytest.raises(TypeError, match=r"custom_vjp function sin_times .*forward mode.*custom_jvp"):
            transform()


def test_custom_vjp_imperative_backward_accumulates():
    x = nb.tensor(np.array([0.3, 1.1]), requires_grad=True)
    y = nb.tensor(np.array([2.0, -1.0]), requires_grad=True)
    nb.sum(sin_times(x, y)).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos([0.3, 1.1]) * [2.0, -1.0])
    np.testing.assert_allclose(y.grad.numpy(), np.sin([0.3, 1.1]))
    nb.sum(sin_times(x, y)).backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * np.sin([0.3, 1.1]))
    with nb.no_grad():
        assert not sin_times(x, y).requires_grad


def test_gradient_clipping_in_the_backward_pass_against_torch():
    torch = pytest.importorskip("torch")

    class Clip(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g.clamp(-1.0, 1.0)

    x = RNG.standard_normal(6)
    ours = nb.grad(lambda x: nb.sum(clip_gradient(x, -1.0, 1.0) ** 3))(x)
    xt = torch.tensor(x, requires_grad=True)
    (Clip.apply(xt) ** 3).sum().backward()
    np.testing.assert_allclose(ours, xt.grad.numpy(), rtol=1e-14)
    assert np.all(np.abs(ours) <= 1.0) and np.any(np.abs(3 * x ** 2) > 1.0)


def test_custom_vjp_with_trees_several_outputs_and_none_cotangents():
    @nb.custom_vjp
    def f(params, x):
        return {"a": params["w"] * x, "b": params["w"] ** 2}, x * 3

    def fwd(params, x):
        return f(params, x), (params["w"], x)

    def bwd(res, g):
        w, x = res
        (ga, gb), gx = (g[0]["a"], g[0]["b"]), g[1]
        return {"w": nb.sum(ga * x) + 2 * w * gb}, ga * w + 3 * gx

    f.defvjp(fwd, bwd)

    def plain(params, x):
        return {"a": params["w"] * x, "b": params["w"] ** 2}, x * 3

    def loss(g):
        return lambda p, x: nb.sum(g(p, x)[0]["a"] ** 2) + g(p, x)[0]["b"] + nb.sum(nb.sin(g(p, x)[1]))

    p, x = {"w": 1.5}, np.array([0.2, -0.4])
    for argnums in (0, 1):
        np.testing.assert_allclose(
            nb.tree_leaves(nb.grad(loss(f), argnums)(p, x)), nb.tree_leaves(nb.grad(loss(plain), argnums)(p, x)))
    # an output that receives no cotangent gets zeros in bwd
    np.testing.assert_allclose(nb.grad(lambda x: nb.sum(f(p, x)[1]))(x), [3.0, 3.0])


def test_nondiff_argnums_pass_a_function_and_refuse_a_traced_value():
    @functools.partial(nb.custom_vjp, nondiff_argnums=(0,))
    def apply(fn, x):
        return fn(x)

    apply.defvjp(lambda fn, x: (fn(x), x), lambda fn, x, g: (g * nb.grad(lambda t: nb.sum(fn(t)))(x),))
    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(nb.grad(lambda x: nb.sum(apply(nb.tanh, x)))(x), 1 - np.tanh(x) ** 2)

    @functools.partial(nb.custom_jvp, nondiff_argnums=(0,))
    def scale(s, x):
        return s * x

    scale.defjvp(lambda s, p, t: (s * p[0], s * t[0]))
    assert float(nb.grad(lambda x: scale(3.0, x))(1.0)) == 3.0
    assert float(nb.jvp(lambda x: scale(3.0, x), (1.0,), (2.0,))[1]) == 6.0
    with pytest.raises(TypeError, match=r"scale: argument 0 \(s\) is in nondiff_argnums but holds a value"):
        nb.grad(lambda s: scale(s, 2.0))(1.0)
    with pytest.raises(TypeError, match=r"apply: argument 0 \(fn\) is in nondiff_argnums but holds a value"):
        nb.grad(lambda s: apply(s, 2.0))(1.0)


def test_keyword_arguments_are_bound_to_positions():
    @nb.custom_vjp
    def f(x, scale=2.0):
        return scale * x

    f.defvjp(lambda x, scale=2.0: (scale * x, scale), lambda scale, g: (scale * g, None))
    assert float(nb.grad(lambda x: f(x, scale=5.0))(1.0)) == 5.0
    assert float(nb.grad(lambda x: f(x))(1.0)) == 2.0


# -- custom_jvp -----------------------------------------------------------------------


@pytest.mark.parametrize("x", [-30.0, -1.2, 0.0, 0.7, 40.0])
def test_log1pexp_in_every_mode_and_nesting(x):
    for transform in (nb.grad, nb.jacfwd, nb.jacrev, nb.elementwise_grad, nb.deriv):
        assert np.isclose(transform(log1pexp)(x), transform(softplus_ref)(x), rtol=1e-14, atol=0)
    second = nb.grad(nb.sigmoid)(x)
    for mode in ("fwd-over-rev", "rev-over-rev", "fwd-over-fwd", "rev-over-fwd"):
        assert np.isclose(nb.hessian(log1pexp, mode=mode)(x), second, rtol=1e-13, atol=1e-300)
    assert np.isclose(nb.grad(nb.grad(nb.grad(log1pexp)))(x), nb.grad(nb.grad(nb.sigmoid))(x), rtol=1e-12,
                      atol=1e-300)
    value, tangent = nb.jvp(log1pexp, (x,), (2.0,))
    assert np.isclose(value, np.logaddexp(0.0, x), rtol=1e-15) and np.isclose(tangent, 2 / (1 + np.exp(-x)))


def test_log1pexp_is_stable_where_the_formula_is_not():
    with np.errstate(over="ignore", invalid="ignore"):
        naive = float(nb.grad(lambda x: nb.log1p(nb.exp(x)))(800.0))
    assert np.isnan(naive)
    assert float(nb.grad(log1pexp)(800.0)) == 1.0 and float(log1pexp(800.0)) == 800.0


def test_custom_jvp_against_torch_func_and_autograd():
    torch = pytest.importorskip("torch")
    import torch.func

    x = RNG.standard_normal(5) * 4
    f = lambda x: nb.sum(log1pexp(x) ** 2)  # noqa: E731
    ft = lambda x: (torch.nn.functional.softplus(x) ** 2).sum()  # noqa: E731
    xt = torch.tensor(x)
    np.testing.assert_allclose(nb.grad(f)(x), torch.func.grad(ft)(xt).numpy(), rtol=1e-12)
    np.testing.assert_allclose(nb.hessian(f)(x), torch.func.hessian(ft)(xt).numpy(), rtol=1e-12, atol=1e-14)
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    ref = autograd.elementwise_grad(autograd.elementwise_grad(lambda x: anp.logaddexp(0.0, x)))(x)
    np.testing.assert_allclose(nb.elementwise_grad(nb.elementwise_grad(log1pexp))(x), ref, rtol=1e-12)


def test_custom_jvp_gradcheck_by_finite_differences():
    @nb.custom_jvp
    def f(x, y):
        return nb.sin(x) * y, x * y ** 2

    f.defjvps(lambda tx, out, x, y: (nb.cos(x) * y * tx, y ** 2 * tx),
              lambda ty, out, x, y: (nb.sin(x) * ty, 2 * x * y * ty))
    g = lambda w: nb.stack([f(w[0], w[1])[0], f(w[0], w[1])[1], f(w[1], w[0])[0]])  # noqa: E731
    w = np.array([0.3, -1.4])
    assert nb.gradcheck(g, w)
    np.testing.assert_allclose(nb.jacrev(g)(w), nb.numerical_jacobian(g, w), rtol=1e-6)
    np.testing.assert_allclose(nb.jacfwd(g)(w), nb.jacrev(g)(w), rtol=1e-14)


def test_straight_through_estimator_in_both_modes_and_the_tape():
    @nb.custom_jvp
    def ste_round(x):
        return nb.round(x)

    ste_round.defjvp(lambda p, t: (ste_round(p[0]), t[0]))
    x = np.array([0.2, 1.6, -2.7])
    np.testing.assert_array_equal(nb.grad(lambda x: nb.sum(ste_round(x)))(x), np.ones(3))
    np.testing.assert_array_equal(nb.jacfwd(ste_round)(x), np.eye(3))
    assert not np.any(nb.grad(lambda x: nb.sum(nb.round(x)))(x))  # what it replaces: zero gradient
    t = nb.tensor(x, requires_grad=True)
    nb.sum(ste_round(t) * t).backward()
    np.testing.assert_allclose(t.grad.numpy(), np.round(x) + x)


def test_custom_jvp_reverse_mode_runs_the_rule_once():
    calls = []

    @nb.custom_jvp
    def f(x):
        return nb.exp(x)

    @f.defjvp
    def _(p, t):
        calls.append(1)
        return nb.exp(p[0]), nb.exp(p[0]) * t[0]

    x = np.array([0.0, 1.0, 2.0])
    nb.jacrev(f)(x)  # three backward passes through one recording
    assert len(calls) == 1


# -- bad definitions --------------------------------------------------------------------


def test_bwd_with_the_wrong_shape_names_function_argument_and_shapes():
    @nb.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1], nb.sum(g * res[0], keepdims=True)))
    with pytest.raises(ShapeError, match=r"custom_vjp function f: bwd: the cotangent for argument 1 \(y\) has "
                                         r"shape \(1,\) but the argument has shape \(\)"):
        nb.grad(lambda x: nb.sum(f(x, 2.0)), argnums=0)(np.ones(3))


def test_bwd_with_the_wrong_structure_raises():
    @nb.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: g * res[1])
    with pytest.raises(TypeError, match=r"bwd returned (ndarray|float64|Tensor); it must return a tuple with one "
                                        r"cotangent per differentiable argument of f \(2\)"):
        nb.grad(f)(1.0, 2.0)
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with pytest.raises(TypeError, match=r"bwd returned 1 cotangents; f has 2 differentiable arguments"):
        nb.grad(f)(1.0, 2.0)

    @nb.custom_vjp
    def h(p):
        return p["a"] * p["b"]

    h.defvjp(lambda p: (h(p), p), lambda p, g: ([g * p["b"], g * p["a"]],))
    with pytest.raises(TypeError, match=r"the cotangent for argument 0 \(p\) has the structure \[an array, an "
                                        r"array\] but the argument has \{'a': an array, 'b': an array\}"):
        nb.grad(h)({"a": 1.0, "b": 2.0})


def test_bad_rules_and_missing_rules_raise():
    @nb.custom_vjp
    def f(x):
        return x

    with pytest.raises(TypeError, match="no rule: call f.defvjp"):
        f(1.0)
    f.defvjp(lambda x: x, lambda r, g: (g,))
    with pytest.raises(TypeError, match="fwd must return a pair"):
        nb.grad(lambda x: nb.sum(f(x)))(np.ones(2))
    with pytest.raises(TypeError, match="bwd must be a function"):
        f.defvjp(lambda x: (x, None), 3)

    @nb.custom_jvp
    def g(x):
        return x * 2

    g.defjvp(lambda p, t: (p[0] * 2, t[0][:1] * 2))
    with pytest.raises(ShapeError, match=r"custom_jvp function g's rule: tangent_out has shape \(1,\) but "
                                         r"primal_out has shape \(3,\)"):
        nb.jvp(g, (np.ones(3),), (np.ones(3),))
    g.defjvp(lambda p, t: (p[0] * 2, t[0] ** 2))
    with pytest.raises(TypeError, match=r"g's rule applies power to the tangents; it must be linear"):
        nb.grad(lambda x: nb.sum(g(x)))(np.ones(3))
    g.defjvp(lambda p, t: (p[0] * 2 + t[0], 2 * t[0]))
    with pytest.raises(TypeError, match="primal output depends on the tangents"):
        nb.grad(lambda x: nb.sum(g(x)))(np.ones(3))


def test_closing_over_a_traced_value_is_refused_not_a_lost_gradient():
    def make(w):
        @nb.custom_vjp
        def f(x):
            return x * w

        f.defvjp(lambda x: (x * w, None), lambda r, g: (g * w,))
        return f

    with pytest.raises(TypeError, match="closed over"):
        nb.grad(lambda w: make(w)(2.0))(3.0)
    with pytest.raises(TypeError, match="closed over"):
        nb.grad(lambda w: make(w)(nb.sin(w)))(3.0)
    # differentiating x only, with w a constant, is fine
    assert float(nb.grad(lambda x: make(3.0)(x))(2.0)) == 3.0


# -- implicit differentiation of an argmin (the docs' example, checked further) ------------------


def _fixed_point():
    def iterate(step, x, tol=1e-13):
        for _ in range(100_000):
            x_next = step(x)
            if np.max(np.abs(nb.stop_gradient(x_next - x))) < tol:
                return x_next
            x = x_next
        raise RuntimeError("no convergence")

    @nb.custom_vjp
    def fixed_point(f, lam, w0):
        return iterate(lambda w: f(w, lam), w0)

    fixed_point = nb.custom_vjp(fixed_point.fun, nondiff_argnums=(0,))

    def fwd(f, lam, w0):
        w_star = fixed_point(f, lam, w0)
        return w_star, (w_star, lam)

    def bwd(f, res, g):
        w_star, lam = res
        _, pull = nb.vjp(f, w_star, lam)
        u = iterate(lambda u: g + pull(u)[0], g)
        return pull(u)[1], None

    fixed_point.defvjp(fwd, bwd)
    return fixed_point


def test_implicit_argmin_against_unrolled_differentiation_and_the_closed_form():
    from nablab import hyper, optim

    fixed_point = _fixed_point()
    rng = np.random.default_rng(3)
    n, d = 30, 6
    X, t = rng.standard_normal((n, d)), rng.standard_normal(n)
    Xv, tv = rng.standard_normal((12, d)), rng.standard_normal(12)
    train = lambda w: nb.sum((X @ w - t) ** 2) / n  # noqa: E731
    val = lambda w: nb.sum((Xv @ w - tv) ** 2) / 12  # noqa: E731
    eta = 0.5 / np.linalg.eigvalsh(2 * X.T @ X / n).max()
    step = lambda w, lam: w - eta * (nb.grad(train)(w) + lam * w)  # noqa: E731
    implicit_loss = lambda lam: val(fixed_point(step, lam, np.zeros(d)))  # noqa: E731

    def closed(lam):
        return val(nb.numpy.linalg.solve(2 * X.T @ X / n + lam * np.eye(d), 2 * X.T @ t / n))

    lam = 0.2
    implicit = float(nb.grad(implicit_loss)(lam))
    assert np.isclose(implicit, float(nb.grad(closed)(lam)), rtol=1e-9)
    # unrolled: the truncated run's hypergradient approaches the implicit one as the run converges
    errors = []
    for steps in (20, 100, 2000):
        _, g = hyper.hypergradient(train, np.zeros(d), {"lam": lam}, steps,
                                   lambda h: optim.sgd(eta, weight_decay=h["lam"]), val_loss=val, wrt="lam")
        errors.append(abs(float(g["lam"]) - implicit))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-9 * abs(implicit) and errors[0] > 1e-6
    # second derivative through the implicit rule (bwd is differentiated) against the closed form
    assert np.isclose(float(nb.grad(nb.grad(implicit_loss))(lam)), float(nb.grad(nb.grad(closed))(lam)), rtol=1e-7)


# -- linearize and linear_transpose ----------------------------------------------------


def test_linearize_matches_jvp_and_computes_the_primal_once():
    calls = []

    def f(x, y):
        calls.append(1)
        return {"u": nb.tanh(x) * y, "v": nb.sum(nb.exp(x) @ np.ones((3, 2)))}

    x, y = RNG.standard_normal(3), RNG.standard_normal(3)
    out, f_jvp = nb.linearize(f, x, y)
    assert len(calls) == 1
    for _ in range(3):
        tx, ty = RNG.standard_normal(3), RNG.standard_normal(3)
        got = f_jvp(tx, ty)
        assert len(calls) == 1  # f_jvp does not run f
        ref_out, ref = nb.jvp(f, (x, y), (tx, ty))
        calls.clear()
        calls.append(1)
        np.testing.assert_allclose(got["u"], ref["u"], rtol=1e-14)
        np.testing.assert_allclose(got["v"], ref["v"], rtol=1e-14)
    np.testing.assert_allclose(out["u"], ref_out["u"])
    # f_jvp is itself differentiable (linear: its Jacobian is f's)
    np.testing.assert_allclose(nb.jacrev(lambda t: f_jvp(t, np.zeros(3))["u"])(np.zeros(3)),
                               nb.jacfwd(lambda x: f(x, y)["u"])(x), rtol=1e-13)
    with pytest.raises(ShapeError, match=r"tangent 1 has shape \(2,\) but primal 1 has shape \(3,\)"):
        f_jvp(tx, np.ones(2))


def test_linearize_through_checkpoint_and_custom_jvp():
    ck = nb.checkpoint(lambda x: nb.sin(x) ** 2)
    f = lambda x: log1pexp(ck(x) * 3.0)  # noqa: E731
    x = np.array([0.3, -1.0])
    _, f_jvp = nb.linearize(f, x)
    t = np.array([1.0, -2.0])
    np.testing.assert_allclose(f_jvp(t), nb.jvp(f, (x,), (t,))[1], rtol=1e-14)


def test_linear_transpose_against_the_matrix_and_refusals():
    A = RNG.standard_normal((4, 3))
    ft = nb.linear_transpose(lambda x: (A @ x, 2 * x[0]), np.zeros(3))
    ct = RNG.standard_normal(4)
    (got,) = ft((ct, 1.5))
    np.testing.assert_allclose(got, A.T @ ct + np.array([3.0, 0.0, 0.0]), rtol=1e-14)
    for bad, what in ((lambda x: x * x, "multiply"), (lambda x: nb.tanh(x), "tanh"),
                      (lambda x: 1.0 / x, "divide"), (lambda x: x + 1.0, "offset")):
        with pytest.raises(TypeError, match=what), np.errstate(divide="ignore"):
            nb.linear_transpose(bad, np.zeros(3))


def test_docstrings_run():
    assert doctest.testmod(custom, optionflags=doctest.ELLIPSIS).failed == 0


# -- with vmap and checkpoint -----------------------------------------------------------


def test_custom_rules_inside_vmap_and_vmap_of_their_derivatives():
    x = np.array([-3.0, 0.0, 2.5, 700.0])
    np.testing.assert_allclose(nb.vmap(log1pexp)(x), np.logaddexp(0.0, x), rtol=1e-15)
    np.testing.assert_allclose(nb.vmap(nb.grad(log1pexp))(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(nb.vmap(nb.grad(lambda x: clip_gradient(x, -1.0, 1.0) ** 3))(x[:3]),
                               np.clip(3 * x[:3] ** 2, -1.0, 1.0))
    y = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(nb.vmap(nb.grad(sin_times, argnums=(0, 1)))(x, y)[1], np.sin(x), rtol=1e-15)


def test_differentiating_a_vmapped_custom_rule_uses_the_rule_and_raises_without_a_level_rule(monkeypatch):
    x = np.array([0.3, 1.2, 800.0])
    # vmap registers a rule for its levels: grad of vmap uses the custom rule (no nan at 800)
    np.testing.assert_allclose(nb.grad(lambda x: nb.sum(nb.vmap(log1pexp)(x)))(x), 1 / (1 + np.exp(-x)),
                               rtol=1e-15)
    # a kind of level with no rule registered: a custom rule refuses, a checkpoint runs as written
    monkeypatch.setattr(custom, "_LEVEL_RULES", [])
    with pytest.raises(NotImplementedError, match=r"custom_jvp function log1pexp: .*neither a forward nor a "
                                                  r"reverse level.*register_level_rule.*would bypass its rule"):
        nb.grad(lambda x: nb.sum(nb.vmap(log1pexp)(x)))(x)
    ck = nb.checkpoint(lambda x: nb.sin(x) ** 2)
    np.testing.assert_allclose(nb.grad(lambda x: nb.sum(nb.vmap(ck)(x)))(x), np.sin(2 * x), rtol=1e-15)


def test_custom_rules_inside_checkpoint_and_checkpoint_inside_custom_rules():
    ck = nb.checkpoint(lambda x: nb.sum(clip_gradient(x, -1.0, 1.0) ** 3))
    x = np.array([0.2, -2.0])
    np.testing.assert_allclose(nb.grad(ck)(x), np.clip(3 * x ** 2, -1.0, 1.0))
    ck2 = nb.checkpoint(lambda x: log1pexp(x) * x)
    for mode in ("fwd-over-rev", "rev-over-fwd"):
        np.testing.assert_allclose(nb.hessian(lambda x: nb.sum(ck2(x)), mode=mode)(x),
                                   nb.hessian(lambda x: nb.sum(nb.softplus(x) * x))(x), rtol=1e-13)

    @nb.custom_vjp
    def f(x):
        return nb.sin(x)

    f.defvjp(lambda x: (nb.sin(x), x), nb.checkpoint(lambda x, g: (nb.cos(x) * g,)))
    assert np.isclose(nb.grad(nb.grad(f))(0.4), -np.sin(0.4), rtol=1e-15)


def test_a_drawn_graph_shows_custom_nodes_with_several_outputs():
    @nb.custom_vjp
    def two(x):
        return x * 2, nb.stack([x, x])

    two.defvjp(lambda x: ((x * 2, nb.stack([x, x])), None), lambda r, g: (2 * g[0] + nb.sum(g[1]),))
    graph = nb.trace_graph(lambda x: two(x)[0] + nb.sum(two(x)[1]), 1.0)
    graph.backward()
    ops = [n["op"] for n in graph.nodes]
    assert "custom_vjp(two)[0]" in ops and "custom_vjp(two)[1]" in ops
    assert graph.nodes[0]["grad"] == 4.0
    assert "custom_vjp(two)" in graph.to_dot()
