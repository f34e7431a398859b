"""Convolutions, pooling and losses against PyTorch in float64 (values and all gradients)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import nablab as nb
from nablab.nn import functional as F

TOL = dict(rtol=1e-10, atol=1e-10)
settings.register_profile("nn", max_examples=40, deadline=None)


def grads_nablab(fn, *arrays):
    out = fn(*arrays)
    g_out = np.random.default_rng(1).standard_normal(np.shape(out))
    _, vjp_fn = nb.vjp(fn, *arrays)
    return np.asarray(out), vjp_fn(g_out), g_out


def grads_torch(fn, *arrays, g_out):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(torch.tensor(g_out))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1 - 2 * padding[0], 9).filter(lambda v: v >= 1))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1 - 2 * padding[1], 9).filter(lambda v: v >= 1))
    n = draw(st.integers(1, 3))
    return dict(n=n, cin=cin, cout=cout, k=(kh, kw), hw=(h, w), stride=stride, padding=padding,
                dilation=dilation, groups=groups)


@settings(settings.get_profile("nn"))
@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_conv2d_matches_torch(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["cin"]) + cfg["hw"])
    w = rng.standard_normal((cfg["cout"], cfg["cin"] // cfg["groups"]) + cfg["k"])
    b = rng.standard_normal(cfg["cout"])
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}
    out, grads, g = grads_nablab(lambda x, w, b: F.conv2d(x, w, b, **kw), x, w, b)
    ref, ref_grads = grads_torch(lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw), x, w, b, g_out=g)
    np.testing.assert_allclose(out, ref, **TOL)
    for ours, theirs in zip(grads, ref_grads):
        np.testing.assert_allclose(ours, theirs, **TOL)


@settings(settings.get_profile("nn"))
@given(conv_configs(), st.integers(0, 2**31 - 1), st.data())
def test_conv_transpose2d_matches_torch(cfg, seed, data):
    rng = np.random.default_rng(seed)
    stride, dilation = cfg["stride"], cfg["dilation"]
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    x = rng.standard_normal((cfg["n"], cfg["cin"]) + cfg["hw"])
    w = rng.standard_normal((cfg["cin"], cfg["cout"] // cfg["groups"]) + cfg["k"])
    b = rng.standard_normal(cfg["cout"])
    kw = dict(stride=stride, padding=cfg["padding"], output_padding=output_padding, groups=cfg["groups"],
              dilation=dilation)
    size = [(cfg["hw"][i] - 1) * stride[i] - 2 * cfg["padding"][i] + dilation[i] * (cfg["k"][i] - 1)
            + output_padding[i] + 1 for i in (0, 1)]
    if min(size) < 1:
        return
    out, grads, g = grads_nablab(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), x, w, b)
    ref, ref_grads = grads_torch(lambda x, w, b: torch.nn.functional.conv_transpose2d(x, w, b, **kw), x, w, b, g_out=g)
    np.testing.assert_allclose(out, ref, **TOL)
    for ours, theirs in zip(grads, ref_grads):
        np.testing.assert_allclose(ours, theirs, **TOL)


@settings(settings.get_profile("nn"))
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 4), st.integers(1, 3),
       st.integers(0, 2), st.integers(1, 2), st.integers(0, 2**31 - 1))
def test_conv1d_matches_torch(n, c, length, k, stride, padding, dilation, seed):
    if length + 2 * padding < dilation * (k - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, c, length)), rng.standard_normal((2, c, k)), rng.standard_normal(2)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    out, grads, g = grads_nablab(lambda x, w, b: F.conv1d(x, w, b, **kw), x, w, b)
    ref, ref_grads = grads_torch(lambda x, w, b: torch.nn.functional.conv1d(x, w, b, **kw), x, w, b, g_out=g)
    np.testing.assert_allclose(out, ref, **TOL)
    for ours, theirs in zip(grads, ref_grads):
        np.testing.assert_allclose(ours, theirs, **TOL)


@pytest.mark.parametrize("k", [(2, 2), (3, 3), (2, 3), (4, 1)])
def test_conv2d_same_and_valid_padding_match_torch(k):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3) + k)
    for padding in ("same", "valid"):
        out, grads, g = grads_nablab(lambda x, w: F.conv2d(x, w, padding=padding), x, w)
        ref, ref_grads = grads_torch(lambda x, w: torch.nn.functional.conv2d(x, w, padding=padding), x, w, g_out=g)
        np.testing.assert_allclose(out, ref, **TOL)
        for ours, theirs in zip(grads, ref_grads):
            np.testing.assert_allclose(ours, theirs, **TOL)


@settings(settings.get_profile("nn"))
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 1),
       st.integers(1, 2), st.integers(0, 2**31 - 1))
def test_max_pool2d_matches_torch(n, kh, kw, stride, padding, dilation, seed):
    if 2 * padding > min(kh, kw):
        padding = 0
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2, 8, 7))
    kwargs = dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation)
    out, grads, g = grads_nablab(lambda x: F.max_pool2d(x, **kwargs), x)
    ref, ref_grads = grads_torch(lambda x: torch.nn.functional.max_pool2d(x, **kwargs), x, g_out=g)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(grads[0], ref_grads[0], **TOL)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum_like_torch():
    x = np.zeros((1, 1, 2, 2))
    g = nb.grad(lambda x: nb.sum(F.max_pool2d(x, 2)))(x)
    xt = torch.zeros((1, 1, 2, 2), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(g, xt.grad.numpy())
    assert g.sum() == 1.0 and g[0, 0, 0, 0] == 1.0


def test_max_pool1d_and_avg_pool2d_match_torch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 11))
    out, grads, g = grads_nablab(lambda x: F.max_pool1d(x, 3, stride=2, padding=1), x)
    ref, ref_grads = grads_torch(lambda x: torch.nn.functional.max_pool1d(x, 3, stride=2, padding=1), x, g_out=g)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(grads[0], ref_grads[0], **TOL)
    x = rng.standard_normal((2, 3, 7, 8))
    for kwargs in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                   dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)):
        out, grads, g = grads_nablab(lambda x: F.avg_pool2d(x, **kwargs), x)
        ref, ref_grads = grads_torch(lambda x: torch.nn.functional.avg_pool2d(x, **kwargs), x, g_out=g)
        np.testing.assert_allclose(out, ref, **TOL)
        np.testing.assert_allclose(grads[0], ref_grads[0], **TOL)


def test_losses_match_torch():
    rng = np.random.default_rng(4)
    logits, labels = 30 * rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    pairs = [
        (lambda z: F.cross_entropy(z, labels), lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(labels))),
        (lambda z: F.multi_margin_loss(z, labels), lambda z: torch.nn.functional.multi_margin_loss(z, torch.tensor(labels))),
    ]
    target = rng.standard_normal((6, 5)) * 20
    pairs += [
        (lambda z: F.mse_loss(z, target), lambda z: torch.nn.functional.mse_loss(z, torch.tensor(target))),
        (lambda z: F.huber_loss(z, target, delta=5.0), lambda z: torch.nn.functional.huber_loss(z, torch.tensor(target), delta=5.0)),
    ]
    for ours, theirs in pairs:
        out, grads, g = grads_nablab(ours, logits)
        ref, ref_grads = grads_torch(theirs, logits, g_out=g)
        np.testing.assert_allclose(out, ref, **TOL)
        np.testing.assert_allclose(grads[0], ref_grads[0], **TOL)


def test_batch_norm_training_and_running_stats_match_torch():
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((8, 3, 4, 4)), rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = np.zeros(3), np.ones(3)
    out, grads, g = grads_nablab(lambda x, w, b: F.batch_norm(x, w, b, training=True), x, w, b)
    ref, ref_grads = grads_torch(lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True),
                                 x, w, b, g_out=g)
    np.testing.assert_allclose(out, ref, **TOL)
    for ours, theirs in zip(grads, ref_grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-10)
    F.batch_norm(x, w, b, rm, rv, training=True)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b), training=True)
    np.testing.assert_allclose(rm, trm.numpy(), **TOL)
    np.testing.assert_allclose(rv, trv.numpy(), **TOL)


def test_conv_and_pool_nest_to_second_order():
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((2, 2, 3, 3))
    f = lambda x, w: nb.sum(nb.tanh(F.max_pool2d(F.conv2d(x, w, padding=1, stride=1), 2)) ** 2)  # noqa: E731
    assert nb.gradcheck(f, x, w, order=2)
    g = lambda x, w: nb.sum(F.conv_transpose2d(x, w, stride=2) ** 3)  # noqa: E731
    assert nb.gradcheck(g, x, w, order=2)


def test_hessian_vector_product_through_a_convnet_matches_torch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 1, 6, 6))
    labels = np.array([0, 2])
    w1, w2 = rng.standard_normal((3, 1, 3, 3)), rng.standard_normal((3, 27))
    v1, v2 = rng.standard_normal(w1.shape), rng.standard_normal(w2.shape)

    def loss(w1, w2):
        h = F.max_pool2d(nb.tanh(F.conv2d(x, w1, padding=1)), 2)
        return F.cross_entropy(F.linear(F.flatten(h), w2), labels)

    hv = nb.jvp(nb.grad(loss, argnums=(0, 1)), (w1, w2), (v1, v2))[1]

    def tloss(w1, w2):
        h = torch.nn.functional.max_pool2d(torch.tanh(torch.nn.functional.conv2d(torch.tensor(x), w1, padding=1)), 2)
        return torch.nn.functional.cross_entropy(h.flatten(1) @ w2.T, torch.tensor(labels))

    _, thv = torch.autograd.functional.hvp(tloss, (torch.tensor(w1), torch.tensor(w2)), (torch.tensor(v1), torch.tensor(v2)))
    for ours, theirs in zip(hv, thv):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOL)


def test_bad_shapes_name_the_layer_and_shapes():
    with pytest.raises(nb.ShapeError, match=r"input has 3 channels but the weight \(4, 2, 3, 3\)"):
        F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 2, 3, 3)))
    with pytest.raises(nb.ShapeError, match=r"kernel 7x7.*does not fit the input 5x5"):
        F.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 7, 7)))
    with pytest.raises(nb.ShapeError, match=r"linear: input has 4 features"):
        F.linear(np.ones((2, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="label 7 is outside"):
        F.cross_entropy(np.ones((2, 3)), np.array([0, 7]))


@settings(settings.get_profile("nn"))
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 1), st.integers(1, 2),
       st.floats(0.05, 0.6), st.integers(0, 2**31 - 1))
def test_max_pool2d_gives_nan_where_a_window_holds_nan_like_torch(kh, kw, stride, padding, dilation, share, seed):
    """A window with NaN gives NaN and its last NaN takes the gradient (PyTorch's rule); windows without NaN are
    untouched. Before, a NaN after the first position was skipped and a smaller value came out."""
    if 2 * padding > min(kh, kw):
        padding = 0
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 8, 7))
    x[rng.random(x.shape) < share] = np.nan
    kwargs = dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation)
    out, grads, g = grads_nablab(lambda x: F.max_pool2d(x, **kwargs), x)
    ref, ref_grads = grads_torch(lambda x: torch.nn.functional.max_pool2d(x, **kwargs), x, g_out=g)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(grads[0], ref_grads[0], **TOL)


def test_max_pool2d_with_nan_in_float32_too():
    x = np.array([[[[1.0, np.nan], [4.0, 3.0]]]], dtype=np.float32)
    out = F.max_pool2d(x, 2)
    assert out.dtype == np.float32 and np.isnan(out).all()


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2)])
def test_max_pool2d_on_several_threads_gives_the_same_bits_as_on_one_and_as_torch(kernel, stride):
    """Large enough that the window maxima, the gather and the scatter run in parts on two threads."""
    from nablab.nn import conv, conv_algorithms as ca

    rng = np.random.default_rng(5)
    x = np.maximum(rng.standard_normal((64, 32, 32, 32)).astype(np.float32), 0)  # ReLU'd: many ties at 0
    x[rng.random(x.shape) < 1e-4] = np.nan
    assert 64 * 32 * 16 * 16 >= 2 * conv.PARALLEL_MIN_ENTRIES  # the 2x2 pool's gather and scatter run in parts
    results = []
    for threads in (1, 2):
        previous = ca.threads(threads)
        try:
            out, vjp_fn = nb.vjp(lambda x: F.max_pool2d(x, kernel, stride), x)
            g = np.random.default_rng(6).standard_normal(out.shape).astype(np.float32)
            results.append((np.asarray(out), vjp_fn(g)[0]))
        finally:
            ca.threads(previous)
    (out1, dx1), (out2, dx2) = results
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(dx1, dx2)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(xt, kernel, stride)
    ref.backward(torch.tensor(g))
    np.testing.assert_array_equal(out2, ref.detach().numpy())
    np.testing.assert_allclose(dx2, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_cross_entropy_with_masked_logits_matches_torch():
    """-inf logits (masked classes) give finite losses and gradients, and a label on a masked class an infinite
    loss, as in PyTorch; a one-hot row times -inf had made the losses NaN while the gradients stayed finite."""
    z = np.array([[1.0, 2.0, -np.inf], [-np.inf, 3.0, -np.inf], [0.5, -np.inf, -1.0]])
    y = np.array([0, 1, 2])
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(y), reduction="none")
    ref.sum().backward()
    np.testing.assert_allclose(F.cross_entropy(z, y, reduction="none"), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nb.grad(lambda q: F.cross_entropy(q, y, reduction="sum"))(z), zt.grad.numpy(),
                               rtol=1e-12, atol=1e-12)
    assert F.cross_entropy(np.array([[1.0, -np.inf]]), np.array([1]), reduction="none")[0] == np.inf
    # a +inf logit: the row has no probabilities, nan (loss and gradient) as in PyTorch; the other rows unchanged
    z2 = np.array([[1.0, np.inf, 0.0], [0.5, 2.0, -1.0]])
    zt2 = torch.tensor(z2, requires_grad=True)
    ref2 = torch.nn.functional.cross_entropy(zt2, torch.tensor([0, 1]), reduction="none")
    ref2.sum().backward()
    with np.errstate(invalid="ignore"):
        ours2 = F.cross_entropy(z2, np.array([0, 1]), reduction="none")
        grad2 = nb.grad(lambda q: F.cross_entropy(q, np.array([0, 1]), reduction="sum"))(z2)
    np.testing.assert_allclose(ours2, ref2.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad2, zt2.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert np.isnan(ours2[0]) and np.isnan(grad2[0]).all() and np.isfinite(grad2[1]).all()


def test_nan_takes_the_gradient_of_maximum_minimum_and_relu():
    """A nan result comes from the nan argument (NumPy), so that argument's gradient passes, as it does for
    nb.max; before, maximum and minimum gave neither argument any, and relu gave 0 where PyTorch passes it."""
    nan = np.nan
    x, y = np.array([nan, 1.0, 2.0, nan, 3.0]), np.array([1.0, nan, 2.0, nan, 0.0])
    for fn in (nb.maximum, nb.minimum):
        gx, gy = nb.vjp(fn, x, y)[1](np.ones(5))
        np.testing.assert_array_equal(gx, [1.0, 0.0, 0.5, 1.0, 1.0 if fn is nb.maximum else 0.0])
        np.testing.assert_array_equal(gy, [0.0, 1.0, 0.5, 1.0, 0.0 if fn is nb.maximum else 1.0])
    z = np.array([nan, -1.0, 0.0, 2.0])
    zt = torch.tensor(z, requires_grad=True)
    torch.relu(zt).sum().backward()
    np.testing.assert_array_equal(nb.grad(lambda q: nb.sum(nb.relu(q)))(z), zt.grad.numpy())
    np.testing.assert_array_equal(nb.jvp(nb.relu, (z,), (np.ones(4),))[1], zt.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_passes_no_inf_or_nan_cotangent_where_its_slope_is_zero_as_torch(dtype):
    """ReLU's derivative is 0 where x <= 0 whatever the cotangent (g * 0 would make an inf or NaN there NaN)."""
    z = np.array([-1.0, 0.0, 2.0, np.nan, -3.0, 4.0], dtype=dtype)
    g = np.array([np.inf, np.nan, np.inf, 1.0, -np.inf, np.nan], dtype=dtype)
    zt = torch.tensor(z, requires_grad=True)
    torch.relu(zt).backward(torch.tensor(g))
    with np.errstate(all="raise"):  # no warning or error from the inf * 0 inside
        np.testing.assert_array_equal(nb.vjp(nb.relu, z)[1](g)[0], zt.grad.numpy())
        np.testing.assert_array_equal(nb.jvp(nb.relu, (z,), (g,))[1], zt.grad.numpy())
    from nablab import parallel

    big, reps = np.tile(z, 200_000), 200_000  # in parts on two threads
    previous = parallel.threads(2)
    try:
        np.testing.assert_array_equal(nb.vjp(nb.relu, big)[1](np.tile(g, reps))[0], np.tile(zt.grad.numpy(), reps))
    finally:
        parallel.threads(previous)


def test_softmax_of_a_row_holding_inf_is_nan_throughout_as_in_scipy_and_torch():
    """Before, the row's finite entries came out 0 (and their gradients finite) beside one nan."""
    import scipy.special

    x = np.array([[3.0, np.inf, 0.0, -np.inf], [1.0, 2.0, 3.0, 4.0], [-np.inf, 0.0, 1.0, -np.inf]])
    with np.errstate(invalid="ignore"):
        expected = scipy.special.softmax(x, axis=-1)
        ours = nb.softmax(x)
        grad = nb.grad(lambda q: nb.sum(nb.softmax(q)[:, 0] * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)
    assert np.isnan(ours[0]).all() and np.isfinite(ours[1:]).all()
    xt = torch.tensor(x, requires_grad=True)
    (torch.softmax(xt, -1)[:, 0] * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_huber_loss_gradient_at_an_infinite_residual_is_plus_or_minus_delta_as_in_torch():
    pred = np.array([np.inf, -np.inf, 0.5, 3.0])
    pt = torch.tensor(pred, requires_grad=True)
    ref = torch.nn.functional.huber_loss(pt, torch.zeros(4, dtype=torch.float64), reduction="sum", delta=1.5)
    ref.backward()
    ours = nb.grad(lambda q: F.huber_loss(q, np.zeros(4), 1.5, "sum"))(pred)
    np.testing.assert_array_equal(ours, pt.grad.numpy())
    assert F.huber_loss(pred, np.zeros(4), 1.5, "sum") == ref.item() == np.inf


def test_logsumexp_leaves_out_a_zero_weighted_infinite_term_as_scipy_does():
    import scipy.special

    a, b = np.array([1.0, np.inf, 2.0]), np.array([1.0, 0.0, 1.0])
    assert float(nb.logsumexp(a, b=b)) == scipy.special.logsumexp(a, b=b)
    np.testing.assert_allclose(nb.grad(lambda q: nb.logsumexp(q, b=b))(a), [np.exp(1) / (np.e + np.e**2), 0.0,
                                                                            np.exp(2) / (np.e + np.e**2)])
    # a zero weight on a finite term keeps its derivative in b: exp(a_i) / sum(b exp(a))
    finite = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(nb.grad(lambda w: nb.logsumexp(finite, b=w))(b), np.exp(finite) / (np.e + np.e**3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("threads", [1, 2])
def test_max_pool2d_hands_over_the_window_maxima_with_the_bits_of_the_inputs_they_index(dtype, threads):
    """The forward's values are the maxima found while indexing (no second gather): they must be the very entries
    indexed, the sign of a zero included (-0 and +0 tie; the first is PyTorch's value), as the gather gave."""
    from nablab.nn import conv, conv_algorithms as ca

    rng = np.random.default_rng(7)
    shape = (64, 16, 32, 32)  # large enough for two parts on two threads
    zeros = np.where(rng.random(shape) < 0.5, -0.0, 0.0)
    x = np.where(rng.random(shape) < 0.3, rng.integers(-3, 3, size=shape), zeros).astype(dtype)
    previous = ca.threads(threads)
    try:
        out = np.asarray(F.max_pool2d(x, 2))
        indexed = x.reshape(-1)[conv.max_pool_indices(x, (2, 2), (2, 2), (0, 0), (1, 1))]
    finally:
        ca.threads(previous)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, indexed)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(indexed))
    if dtype != np.int64:
        np.testing.assert_array_equal(np.signbit(out), np.signbit(torch.nn.functional.max_pool2d(
            torch.tensor(x), 2).numpy()))
