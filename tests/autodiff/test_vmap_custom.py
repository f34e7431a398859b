"""custom_vjp, custom_jvp and checkpoint under vmap, with a derivative taken outside the vmap.

``grad``/``jacrev``/``hessian``/``jvp`` of ``vmap(f)`` where ``f`` holds a custom rule
(or a checkpoint), nested vmaps, unbatched arguments, nondiff_argnums and trees,
each compared with a Python loop over the examples to 1e-12. The rules differ
observably from the derivative of their primal (gradient clipping, a straight-through
estimator), so each test also shows that the rule, not the primal's derivative, was used.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import nablab as nb
from nablab.errors import ShapeError

RNG = np.random.default_rng(15)
X = RNG.standard_normal((5, 3)) * 2.0      # five examples of three features
W = RNG.standard_normal(3)
C = 0.3                                    # the clipping bound


def close(a, b, tol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# -- definitions --------------------------------------------------------------------


@nb.custom_vjp
def clip_mul(x, w):
    """x * w whose backward pass clips each cotangent to [-C, C]."""
    return x * w


clip_mul.defvjp(lambda x, w: (x * w, (x, w)),
                lambda res, g: (nb.clip(g * res[1], -C, C), nb.clip(g * res[0], -C, C)))


def plain_mul(x, w):
    return x * w


@nb.custom_jvp
def ste_sign(x):
    """sign(x) forward; the identity's derivative (a straight-through estimator)."""
    return nb.sign(x)


ste_sign.defjvp(lambda primals, tangents: (ste_sign(primals[0]), tangents[0]))


def loss_vjp(w, x, mul=clip_mul):
    return nb.sum(nb.tanh(mul(x, w)) ** 2) + nb.sum(mul(x, w) * w)


def loss_jvp(w, x):
    return nb.sum(ste_sign(x * w) * nb.sin(x * w)) + nb.sum(ste_sign(w) * x ** 2 * w)


def summed(loss, in_axes=(None, 0)):
    return lambda w, xs: nb.sum(nb.vmap(loss, in_axes=in_axes)(w, xs))


def loop_grad(loss, w, xs, argnums=0):
    return sum(np.asarray(nb.grad(loss, argnums=argnums)(w, x)) for x in xs)


# -- grad, jacrev, hessian of vmap: custom_vjp -------------------------------------------


def test_grad_of_vmap_of_custom_vjp_sums_the_per_example_clipped_cotangents():
    got = nb.grad(summed(loss_vjp))(W, X)
    close(got, loop_grad(loss_vjp, W, X))
    # the rule was used: the true derivative differs, and so does clipping the summed cotangent
    true = nb.grad(summed(functools.partial(loss_vjp, mul=plain_mul)))(W, X)
    assert np.max(np.abs(got - true)) > 0.1
    assert np.max(np.abs(got - loop_grad(functools.partial(loss_vjp, mul=plain_mul), W, X))) > 0.1
    # each per-example cotangent of w is clipped to [-C, C] before the sum, so the sum is at most 5 C
    def only_clip(w, x):
        return nb.sum(clip_mul(x, w) * 10.0)
    g = nb.grad(summed(only_clip))(W, X)
    close(g, np.sum(np.clip(10.0 * X, -C, C), axis=0))
    assert not np.allclose(g, np.clip(10.0 * X.sum(axis=0), -C, C))


def test_grad_with_respect_to_the_batched_argument():
    got = nb.grad(summed(loss_vjp), argnums=1)(W, X)
    close(got, np.stack([nb.grad(loss_vjp, argnums=1)(W, x) for x in X]))


def test_jacrev_of_vmap_of_custom_vjp_is_the_per_example_gradients():
    jac = nb.jacrev(lambda w: nb.vmap(loss_vjp, in_axes=(None, 0))(w, X))(W)
    close(jac, np.stack([nb.grad(loss_vjp)(W, x) for x in X]))
    # jacrev of a vmap whose outputs are vectors (the batched reverse pass of jacrev meets the rule too)
    jac = nb.jacrev(lambda w: nb.vmap(lambda x: nb.tanh(clip_mul(x, w)))(X))(W)
    close(jac, np.stack([nb.jacrev(lambda w, x=x: nb.tanh(clip_mul(x, w)))(W) for x in X]))


def test_hessian_of_vmap_of_custom_vjp():
    h = nb.hessian(lambda w: summed(loss_vjp)(w, X))(W)
    ref = sum(np.asarray(nb.hessian(lambda w, x=x: loss_vjp(w, x))(W)) for x in X)
    close(h, ref)
    # the rule's own derivative: where a cotangent is clipped its derivative with respect to w is 0
    true = nb.hessian(lambda w: summed(functools.partial(loss_vjp, mul=plain_mul))(w, X))(W)
    assert np.max(np.abs(h - true)) > 0.1


def test_forward_mode_of_vmap_of_custom_vjp_refuses_as_without_vmap():
    with pytest.raises(TypeError, match="custom_vjp function clip_mul is differentiated in forward mode"):
        nb.jvp(lambda w: summed(loss_vjp)(w, X), (W,), (np.ones(3),))
    with pytest.raises(TypeError, match="forward mode"):
        nb.hessian(lambda w: summed(loss_vjp)(w, X), mode="rev-over-fwd")(W)


# -- custom_jvp ---------------------------------------------------------------------------


def test_every_mode_of_vmap_of_custom_jvp_uses_the_rule():
    f = summed(loss_jvp)
    got = nb.grad(f)(W, X)
    close(got, loop_grad(loss_jvp, W, X))
    assert np.max(np.abs(got - nb.grad(lambda w: nb.sum(nb.vmap(
        lambda x: nb.sum(nb.sign(x * w) * nb.sin(x * w)) + nb.sum(nb.sign(w) * x ** 2 * w))(X)))(W))) > 0.1
    rows = np.stack([nb.grad(loss_jvp)(W, x) for x in X])
    per = lambda w: nb.vmap(loss_jvp, in_axes=(None, 0))(w, X)
    close(nb.jacrev(per)(W), rows)
    close(nb.jacfwd(per)(W), rows)
    t = RNG.standard_normal(3)
    out, tangent = nb.jvp(per, (W,), (t,))
    close(out, [loss_jvp(W, x) for x in X])
    close(tangent, rows @ t)
    ref = sum(np.asarray(nb.hessian(lambda w, x=x: loss_jvp(w, x))(W)) for x in X)
    for mode in ("fwd-over-rev", "rev-over-fwd"):
        close(nb.hessian(lambda w: f(w, X), mode=mode)(W), ref)


def test_vmap_of_custom_jvp_with_a_stable_rule_has_no_nan():
    @nb.custom_jvp
    def log1pexp(x):
        return nb.maximum(x, 0.0) + nb.log1p(nb.exp(-nb.abs(x)))

    log1pexp.defjvp(lambda p, t: (log1pexp(p[0]), t[0] * nb.sigmoid(p[0])))
    x = np.array([[-800.0, 0.0], [3.0, 800.0]])
    sigmoid = np.exp(-np.logaddexp(0.0, -x))
    close(nb.grad(lambda x: nb.sum(nb.vmap(log1pexp)(x)))(x), sigmoid, 1e-15)
    close(nb.jacfwd(lambda x: nb.vmap(log1pexp, in_axes=1, out_axes=1)(x))(x).reshape(4, 4),
          np.diag(sigmoid.ravel()), 1e-15)

    # a naive body: the chain rule meets exp(800) / (1 + exp(800)) = nan; the rule does not
    @nb.custom_jvp
    def naive(x):
        return nb.log(1.0 + nb.exp(x))

    naive.defjvp(lambda p, t: (naive(p[0]), t[0] * nb.sigmoid(p[0])))
    with np.errstate(over="ignore", invalid="ignore"):
        close(nb.grad(lambda x: nb.sum(nb.vmap(naive)(x)))(x), sigmoid, 1e-15)
        assert np.isnan(nb.grad(lambda x: nb.sum(nb.vmap(naive.fun)(x)))(x)[1, 1])


# -- vmap of grad, nesting, in_axes, trees --------------------------------------------------


def test_vmap_of_grad_and_grad_inside_vmap_inside_grad():
    for loss in (loss_vjp, loss_jvp):
        per = nb.vmap(nb.grad(loss), in_axes=(None, 0))(W, X)
        close(per, np.stack([nb.grad(loss)(W, x) for x in X]))
    xs = X.reshape(5, 1, 3) * np.array([1.0, -0.5]).reshape(1, 2, 1)  # 5 groups of 2 examples
    for loss in (loss_vjp, loss_jvp):
        # vmap over groups of grad of the sum over the group of a vmap over examples
        got = nb.vmap(nb.grad(summed(loss)), in_axes=(None, 0))(W, xs)
        close(got, np.stack([loop_grad(loss, W, group) for group in xs]))


def test_nested_vmap_under_grad():
    xs = RNG.standard_normal((2, 4, 3))
    for loss in (loss_vjp, loss_jvp):
        inner = nb.vmap(loss, in_axes=(None, 0))
        f = lambda w, inner=inner: nb.sum(nb.vmap(inner, in_axes=(None, 0))(w, xs))
        close(nb.grad(f)(W), loop_grad(loss, W, xs.reshape(8, 3)))
        close(nb.jacrev(lambda w, inner=inner: nb.vmap(inner, in_axes=(None, 0))(w, xs))(W),
              np.stack([np.stack([nb.grad(loss)(W, x) for x in group]) for group in xs]))
    # the inner vmap maps the weights, the outer the data: a weight vector per inner example
    ws = RNG.standard_normal((4, 3))
    f = lambda ws: nb.sum(nb.vmap(nb.vmap(loss_vjp, in_axes=(0, None)), in_axes=(None, 0))(ws, X))
    close(nb.grad(f)(ws), np.stack([loop_grad(loss_vjp, w, X) for w in ws]))


def test_in_axes_other_than_zero_and_out_axes():
    xt = X.T.copy()
    f = lambda w: nb.sum(nb.vmap(loss_vjp, in_axes=(None, 1))(w, xt))
    close(nb.grad(f)(W), loop_grad(loss_vjp, W, X))
    g = nb.jacrev(lambda w: nb.vmap(lambda x: clip_mul(x, w), in_axes=1, out_axes=1)(xt))(W)
    ref = np.stack([nb.jacrev(lambda w, x=x: clip_mul(x, w))(W) for x in X], axis=1)
    close(g, ref)


def test_trees_in_and_out_and_the_unbatched_leaf_of_a_dict():
    @nb.custom_vjp
    def pair(d):
        return d["a"] * d["b"], nb.sin(d["a"])

    def pair_fwd(d):
        return pair(d), d

    def pair_bwd(d, g):
        return ({"a": nb.clip(g[0] * d["b"], -C, C) + g[1] * nb.cos(d["a"]), "b": nb.clip(g[0] * d["a"], -C, C)},)

    pair.defvjp(pair_fwd, pair_bwd)

    def loss(d):
        p, q = pair(d)
        return nb.sum(p * 3.0 + q)

    d = {"a": X, "b": W}
    got = nb.grad(lambda d: nb.sum(nb.vmap(loss, in_axes=({"a": 0, "b": None},))(d)))(d)
    per = [nb.grad(loss)({"a": x, "b": W}) for x in X]
    close(got["a"], np.stack([p["a"] for p in per]))
    close(got["b"], sum(np.asarray(p["b"]) for p in per))


# -- what the batched rule must get right ---------------------------------------------------


def test_an_output_the_same_for_every_example_still_gets_each_examples_cotangent():
    # the output w does not depend on the batch, but the rule clips its cotangent per example:
    # bwd must see each example's g (x), not their sum, or the clipped sum would be a wrong number
    @nb.custom_vjp
    def pass_w(x, w):
        return w

    pass_w.defvjp(lambda x, w: (w, None), lambda res, g: (None, nb.clip(g, -C, C)))
    loss = lambda w, x: nb.sum(pass_w(x, w) * x)
    got = nb.grad(summed(loss))(W, X)
    close(got, loop_grad(loss, W, X))
    close(got, np.sum(np.clip(X, -C, C), axis=0))


def test_a_call_with_no_batched_argument_is_one_call_whose_rule_sees_the_summed_cotangent():
    # as in JAX and torch.func: the batch never reaches the custom function, so bwd runs once
    @nb.custom_vjp
    def clip(w):
        return w

    clip.defvjp(lambda w: (w, None), lambda res, g: (nb.clip(g, -C, C),))
    got = nb.grad(summed(lambda w, x: nb.sum(clip(w) * x)))(W, X)
    close(got, np.clip(X.sum(axis=0), -C, C))
    # w + 0 x varies along the batch (as a value): one call per example, the loop's numbers
    got = nb.grad(summed(lambda w, x: nb.sum(clip(w + 0.0 * x) * x)))(W, X)
    close(got, np.sum(np.clip(X, -C, C), axis=0))


def test_a_cotangent_the_same_for_every_example_is_counted_once_per_example():
    @nb.custom_vjp
    def f(x, w):
        return x * w

    f.defvjp(lambda x, w: (x * w, None), lambda res, g: (g, np.ones(3)))  # a constant cotangent for w
    got = nb.grad(summed(lambda w, x: nb.sum(f(x, w))), argnums=(0, 1))(W, X)
    close(got[0], 5 * np.ones(3))
    close(got[1], np.ones((5, 3)))


def test_none_cotangents_and_integer_arguments():
    @nb.custom_vjp
    def scaled(x, w, k):
        return x * w * k

    scaled.defvjp(lambda x, w, k: (x * w * k, (w, k)), lambda res, g: (g * res[0] * res[1], None, None))
    ks = np.arange(1, 6)
    f = lambda w, x, k: nb.sum(scaled(x, w, k))
    gw, gx = nb.grad(lambda w, xs: nb.sum(nb.vmap(f, in_axes=(None, 0, 0))(w, xs, ks)), argnums=(0, 1))(W, X)
    close(gw, np.zeros(3))
    close(gx, np.outer(ks, W))


def test_nondiff_argnums_function_and_batched_array():
    @functools.partial(nb.custom_vjp, nondiff_argnums=(0,))
    def apply(f, x):
        return f(x)

    apply.defvjp(lambda f, x: (f(x), x), lambda f, x, g: (nb.clip(g * nb.grad(lambda x: nb.sum(f(x)))(x), -C, C),))
    loss = lambda w, x: nb.sum(apply(nb.tanh, x * w))
    close(nb.grad(summed(loss))(W, X), loop_grad(loss, W, X))
    close(nb.vmap(nb.grad(loss), in_axes=(None, 0))(W, X), np.stack([nb.grad(loss)(W, x) for x in X]))

    # an array in nondiff_argnums that varies along the batch: bwd is batched over it too
    @functools.partial(nb.custom_vjp, nondiff_argnums=(1,))
    def scale_grad(x, k):
        return x

    scale_grad.defvjp(lambda x, k: (x, None), lambda k, res, g: (g * k,))
    ks = np.arange(1.0, 6.0)
    loss2 = lambda w, k: nb.sum(scale_grad(w, k) ** 2)
    close(nb.grad(summed(loss2))(W, ks), 2 * W * ks.sum())
    # still refused when the nondiff argument is the one being differentiated
    with pytest.raises(TypeError, match="nondiff_argnums but holds a value being differentiated"):
        nb.grad(lambda k: nb.sum(nb.vmap(lambda x, k: scale_grad(x, k))(X, k)))(ks)

    @functools.partial(nb.custom_jvp, nondiff_argnums=(0,))
    def power(n, x):
        return x ** n

    power.defjvp(lambda n, p, t: (power(n, p[0]), t[0] * n * 10.0))  # deliberately not the derivative
    loss3 = lambda w, x: nb.sum(power(3, x * w))
    got = nb.grad(summed(loss3))(W, X)
    close(got, loop_grad(loss3, W, X))
    close(got, 30.0 * X.sum(axis=0))


def test_imperative_backward_through_vmap_of_a_custom_rule():
    w = nb.tensor(W, requires_grad=True)
    nb.sum(nb.vmap(loss_vjp, in_axes=(None, 0))(w, X)).backward()
    close(w.grad, loop_grad(loss_vjp, W, X))


def test_a_rule_that_needs_a_plain_array_runs_example_by_example_and_says_so():
    @nb.custom_vjp
    def f(x):
        return x * 2.0

    def f_fwd(x):
        scale = float(nb.max(nb.abs(x)))  # a plain number per example
        return x * 2.0, scale

    f.defvjp(f_fwd, lambda scale, g: (g * scale,))
    with pytest.warns(RuntimeWarning, match="Python loop"):
        got = nb.grad(lambda x: nb.sum(nb.vmap(f)(x)))(X)
    close(got, np.repeat(np.max(np.abs(X), axis=1, keepdims=True), 3, axis=1))


# -- errors under vmap name each example's shapes ----------------------------------------------


def test_bad_rules_under_vmap_are_named_with_an_examples_shapes():
    @nb.custom_vjp
    def bad(x):
        return x

    bad.defvjp(lambda x: (x, None), lambda res, g: (nb.sum(g),))
    with pytest.raises(ShapeError, match=r"custom_vjp function bad: bwd: the cotangent for argument 0 \(x\) has "
                                         r"shape \(\) but the argument has shape \(3,\)"):
        nb.grad(lambda x: nb.sum(nb.vmap(bad)(x)))(X)
    bad.defvjp(lambda x: (x, None), lambda res, g: (g, g))
    with pytest.raises(TypeError, match="bwd returned 2 cotangents; bad has 1 differentiable"):
        nb.grad(lambda x: nb.sum(nb.vmap(bad)(x)))(X)
    bad.defvjp(lambda x: x, lambda res, g: (g,))
    with pytest.raises(TypeError, match="fwd must return a pair"):
        nb.grad(lambda x: nb.sum(nb.vmap(bad)(x)))(X)

    @nb.custom_jvp
    def bad_jvp(x):
        return x

    bad_jvp.defjvp(lambda p, t: (p[0], nb.sum(t[0])))
    with pytest.raises(ShapeError, match=r"tangent_out has shape \(\) but primal_out has shape \(3,\)"):
        nb.grad(lambda x: nb.sum(nb.vmap(bad_jvp)(x)))(X)


def test_a_rule_closing_over_a_batched_value_is_refused():
    def loss(w, x):
        @nb.custom_vjp
        def f(w):
            return w * x  # x is batched by the vmap around: closed over, not an argument

        f.defvjp(lambda w: (w * x, None), lambda res, g: (g,))
        return nb.sum(f(w))

    with pytest.raises(TypeError, match="custom_vjp function f's fwd uses a value batched by vmap .*closed over it"):
        nb.grad(summed(loss))(W, X)

    def loss_bwd(w, x):  # bwd closes over x, which the backward pass meets after the vmap has returned
        @nb.custom_vjp
        def f(w):
            return w * 2.0

        f.defvjp(lambda w: (w * 2.0, None), lambda res, g: (g * x,))
        return nb.sum(f(w))

    for fun in (loss_bwd, lambda w, x: loss_bwd(w * x, x)):  # w unbatched, then batched
        with pytest.raises(TypeError, match="bwd: the cotangent for argument 0 .* holds a value of a transform that "
                                            "has already returned"):
            nb.grad(summed(fun))(W, X)
    # inside the vmap (vmap of grad) the closure is fine: the batch level is still alive
    close(nb.vmap(nb.grad(loss_bwd), in_axes=(None, 0))(W, X), X)


# -- checkpoint under vmap under grad ---------------------------------------------------------


def test_checkpoint_under_vmap_under_grad_recomputes_and_gives_the_same_numbers():
    calls = []

    def layer(w, x):
        calls.append(1)
        return nb.tanh(x * w) ** 2 + nb.sin(nb.sum(x * w))

    ck = nb.checkpoint(layer)
    f_ck = lambda w: nb.sum(nb.vmap(ck, in_axes=(None, 0))(w, X))
    f = lambda w: nb.sum(nb.vmap(layer, in_axes=(None, 0))(w, X))
    plain = nb.grad(f)(W)
    del calls[:]
    _, vjp_fn = nb.vjp(f_ck, W)
    assert len(calls) == 1  # the forward pass: once, for the whole batch
    (got,) = vjp_fn(1.0)
    assert len(calls) == 2  # the backward pass ran it again
    close(got, plain, 1e-14)
    close(got, loop_grad(lambda w, x: nb.sum(layer(w, x)), W, X))
    close(nb.hessian(f_ck)(W), nb.hessian(f)(W))
    close(nb.jacrev(lambda w: nb.vmap(ck, in_axes=(None, 0))(w, X))(W),
          nb.jacrev(lambda w: nb.vmap(layer, in_axes=(None, 0))(w, X))(W))
    # with keyword arguments, nested
    ck2 = nb.checkpoint(lambda x, *, s: nb.sin(x * s) ** 3)
    xs = RNG.standard_normal((2, 4, 3))
    g = nb.grad(lambda w: nb.sum(nb.vmap(nb.vmap(lambda x: ck2(x * w, s=2.0)))(xs)))(W)
    close(g, nb.grad(lambda w: nb.sum(nb.sin(xs * w * 2.0) ** 3))(W))


def test_checkpoint_under_vmap_keeps_only_its_inputs():
    # the reverse graph of grad(vmap(checkpoint(f))) holds one node for f, not f's operations
    def f(x):
        for _ in range(20):
            x = nb.tanh(x) * 1.1
        return x

    graph = nb.trace_graph(lambda x: nb.sum(nb.vmap(nb.checkpoint(f))(x)), X)
    plain = nb.trace_graph(lambda x: nb.sum(nb.vmap(f)(x)), X)
    assert len(graph.nodes) < 10
    assert len(plain.nodes) > 40


# -- against torch.func ----------------------------------------------------------------------


def test_against_torch_func_with_an_autograd_function_batched_by_generate_vmap_rule():
    torch = pytest.importorskip("torch")
    torch_func = pytest.importorskip("torch.func")

    class ClipMul(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x, w):
            return x * w

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return (g * w).clamp(-C, C), (g * x).clamp(-C, C)

    def t_loss(w, x):
        return (torch.tanh(ClipMul.apply(x, w)) ** 2).sum() + (ClipMul.apply(x, w) * w).sum()

    tw, tx = torch.tensor(W), torch.tensor(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t_grad = torch_func.grad(lambda w: torch_func.vmap(t_loss, in_dims=(None, 0))(w, tx).sum())(tw)
        t_per = torch_func.vmap(torch_func.grad(t_loss), in_dims=(None, 0))(tw, tx)
        t_jac = torch_func.jacrev(lambda w: torch_func.vmap(t_loss, in_dims=(None, 0))(w, tx))(tw)
    close(nb.grad(summed(loss_vjp))(W, X), t_grad.numpy())
    close(nb.vmap(nb.grad(loss_vjp), in_axes=(None, 0))(W, X), t_per.numpy())
    close(nb.jacrev(lambda w: nb.vmap(loss_vjp, in_axes=(None, 0))(w, X))(W), t_jac.numpy())

    class Clip(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(w):
            return w.clone()

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, g):
            return g.clamp(-C, C)

    @nb.custom_vjp
    def clip(w):
        return w

    clip.defvjp(lambda w: (w, None), lambda res, g: (nb.clip(g, -C, C),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for t_f, f in ((lambda w, x: (Clip.apply(w) * x).sum(), lambda w, x: nb.sum(clip(w) * x)),
                       (lambda w, x: (Clip.apply(w * x) * x).sum(), lambda w, x: nb.sum(clip(w * x) * x))):
            t_g = torch_func.grad(lambda w, t_f=t_f: torch_func.vmap(t_f, in_dims=(None, 0))(w, tx).sum())(tw)
            close(nb.grad(summed(f))(W, X), t_g.numpy())
