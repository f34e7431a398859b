"""nb.checkpoint: same derivatives as without it under every transform and nesting, one recomputation
per backward pass, memory that falls as it should (measured), closures refused; hyper's checkpointed mode."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import nablab as nb

RNG = np.random.default_rng(1)


def layer(W, b, x):
    return nb.tanh(x @ W + b)


def mlp(params, x, wrap=lambda f: f):
    f = wrap(layer)
    for W, b in params:
        x = f(W, b, x)
    return nb.sum(x ** 2)


def make_params(depth, width):
    return [(RNG.standard_normal((width, width)) / np.sqrt(width), RNG.standard_normal(width) * 0.1)
            for _ in range(depth)]


def test_gradients_equal_without_checkpoint_to_the_last_bit_or_nearly():
    params, x = make_params(5, 4), RNG.standard_normal((3, 4))
    g_plain = nb.grad(mlp)(params, x)
    g_ckpt = nb.grad(lambda p, x: mlp(p, x, nb.checkpoint))(params, x)
    for a, b in zip(nb.tree_leaves(g_plain), nb.tree_leaves(g_ckpt)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)
    gx = nb.grad(lambda x: mlp(params, x, nb.checkpoint))(x)
    np.testing.assert_allclose(gx, nb.grad(lambda x: mlp(params, x))(x), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("mode", ["fwd-over-rev", "rev-over-rev", "fwd-over-fwd", "rev-over-fwd"])
def test_hessian_in_every_nesting(mode):
    params = make_params(3, 3)
    x = RNG.standard_normal(3)
    ref = nb.hessian(lambda x: mlp(params, x), mode=mode)(x)
    got = nb.hessian(lambda x: mlp(params, x, nb.checkpoint), mode=mode)(x)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, nb.hessian(lambda x: mlp(params, x), mode="fwd-over-rev")(x), rtol=1e-12,
                               atol=1e-14)


def test_forward_mode_jvp_jacfwd_and_third_order():
    f = nb.checkpoint(lambda x, y: nb.sin(x * y) * nb.exp(y))
    plain = lambda x, y: nb.sin(x * y) * nb.exp(y)  # noqa: E731
    x, y = np.array([0.3, -0.8]), np.array([1.1, 0.4])
    np.testing.assert_allclose(nb.jvp(f, (x, y), (np.ones(2), np.zeros(2)))[1],
                               nb.jvp(plain, (x, y), (np.ones(2), np.zeros(2)))[1], rtol=1e-14)
    np.testing.assert_allclose(nb.jacfwd(f, 1)(x, y), nb.jacrev(plain, 1)(x, y), rtol=1e-14)
    third = lambda g: nb.grad(nb.grad(nb.grad(lambda s: nb.sum(g(s * x, y)))))  # noqa: E731
    assert np.isclose(third(f)(0.7), third(plain)(0.7), rtol=1e-12)
    assert nb.gradcheck(lambda x: f(x, y), x)


def test_one_recomputation_per_backward_pass_whatever_the_number_of_arguments():
    calls = []

    def f(a, b, c, d):
        calls.append(1)
        return nb.sum(a * b * c * d)

    g = nb.checkpoint(f)
    args = [RNG.standard_normal(3) for _ in range(4)]
    grads = nb.grad(g, argnums=(0, 1, 2, 3))(*args)
    assert len(calls) == 2  # the forward pass and one recomputation, not one per argument
    np.testing.assert_allclose(grads[0], args[1] * args[2] * args[3])
    calls.clear()
    nb.jacrev(lambda a: nb.stack([g(a, *args[1:]), g(a, *args[1:]) ** 2]))(args[0])
    assert len(calls) >= 2


def test_trees_keywords_several_and_integer_outputs():
    @nb.checkpoint
    def f(p, x, *, power=2):
        return {"y": nb.sum(p["w"] * x ** power), "count": np.int64(3)}, p["w"] * 2

    p, x = {"w": np.array([1.0, 2.0])}, np.array([0.5, -1.5])
    out, twice = f(p, x, power=3)
    assert int(out["count"]) == 3
    g = nb.grad(lambda p: f(p, x, power=3)[0]["y"] + nb.sum(f(p, x, power=3)[1]))(p)
    np.testing.assert_allclose(g["w"], x ** 3 + 2)
    gx = nb.grad(lambda x: f(p, x, power=3)[0]["y"])(x)
    np.testing.assert_allclose(gx, 3 * p["w"] * x ** 2)


def test_imperative_backward():
    W = nb.tensor(RNG.standard_normal((3, 3)), requires_grad=True)
    x = np.ones((2, 3))
    loss = nb.sum(nb.checkpoint(lambda W, x: nb.tanh(x @ W) ** 2)(W, x))
    loss.backward()
    ref = nb.grad(lambda W: nb.sum(nb.tanh(x @ W) ** 2))(W.numpy())
    np.testing.assert_allclose(W.grad.numpy(), ref, rtol=1e-14)


def test_against_torch_checkpoint():
    torch = pytest.importorskip("torch")
    from torch.utils.checkpoint import checkpoint as torch_checkpoint

    params, x = make_params(4, 5), RNG.standard_normal((2, 5))
    ours = nb.grad(lambda p: mlp(p, x, nb.checkpoint))(params)
    tp = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in params]
    h = torch.tensor(x)
    for W, b in tp:
        h = torch_checkpoint(lambda h, W, b: torch.tanh(h @ W + b), h, W, b, use_reentrant=False)
    (h ** 2).sum().backward()
    for (gW, gb), (W, b) in zip(ours, tp):
        np.testing.assert_allclose(gW, W.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(gb, b.grad.numpy(), rtol=1e-12)


def test_a_closed_over_traced_value_is_refused_not_dropped():
    with pytest.raises(TypeError, match=r"checkpoint\(<lambda>\) uses a value traced .* closed over"):
        nb.grad(lambda w: nb.sum(nb.checkpoint(lambda x: x * w)(np.ones(2) * w)))(2.0)
    # with the value an argument, its gradient is there
    assert float(nb.grad(lambda w: nb.sum(nb.checkpoint(lambda x, w: x * w)(np.ones(2) * w, w)))(2.0)) == 8.0
    # a closure over a value no transform differentiates is fine, and so is one with no traced argument
    c = np.array([1.0, 3.0])
    assert float(nb.grad(lambda w: nb.sum(nb.checkpoint(lambda x: x * c)(w)))(np.ones(2)).sum()) == 4.0


def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_memory_falls_as_it_should():
    depth, width, batch = 24, 32, 256
    params, x = make_params(depth, width), RNG.standard_normal((batch, width))
    plain = _peak(lambda: nb.grad(mlp)(params, x))
    ckpt = _peak(lambda: nb.grad(lambda p: mlp(p, x, nb.checkpoint))(params))
    activation = batch * width * 8
    # without: every layer keeps its product, sum and tanh (3 activations); with: its input only
    assert plain > 2.5 * depth * activation
    assert ckpt < 0.6 * plain
    assert ckpt > depth * activation  # the inputs are kept: not a free lunch


def test_hyper_checkpointed_mode_is_built_on_checkpoint_and_agrees(monkeypatch):
    from nablab import hyper, optim
    import nablab.hyper.unrolled as unrolled

    rng = np.random.default_rng(4)
    X, t = rng.standard_normal((8, 5)), rng.standard_normal(8)
    loss = lambda w: nb.sum((X @ w - t) ** 2) / 8  # noqa: E731
    wrapped = []
    real = unrolled.checkpoint
    monkeypatch.setattr(unrolled, "checkpoint", lambda f: wrapped.append(f) or real(f))
    make = lambda h: optim.sgd(h["lr"], momentum=h["momentum"])  # noqa: E731
    h = {"lr": 0.05, "momentum": 0.5}
    value, ck = hyper.hypergradient(loss, np.zeros(5), h, 23, make, checkpoint_every=5)
    assert len(wrapped) == 5  # ceil(23 / 5) segments, each one nb.checkpoint
    ref_value, ref = hyper.hypergradient(loss, np.zeros(5), h, 23, make)
    assert value == ref_value
    for k in ("lr", "momentum", "w0"):
        np.testing.assert_allclose(ck[k], ref[k], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        hyper.hypergradient(loss, np.zeros(5), h, 3, make, checkpoint_every=0)


def test_hyper_checkpointed_memory_grows_slower_than_reverse():
    from nablab import hyper

    rng = np.random.default_rng(5)
    X, t = rng.standard_normal((50, 200)) / 15, rng.standard_normal(50)
    loss = lambda w: nb.sum((X @ w - t) ** 2)  # noqa: E731
    w0 = np.zeros(200)
    peaks = {}
    for every in (None, 10):
        peaks[every] = _peak(lambda: hyper.lr_hypergradient(loss, w0, 0.01, 100, checkpoint_every=every))
    assert peaks[10] < 0.5 * peaks[None]
