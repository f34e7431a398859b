"""Every convolution algorithm against PyTorch: float64 to 1e-10 in reverse, forward and imperative mode and
to second order; float32 within its stated bound; the choice, its switch and the kept columns."""

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nablab as nb
from nablab import parallel
from nablab.nn import conv_algorithms as ca
from nablab.nn import functional as F

TOL = {"rtol": 1e-10, "atol": 1e-10}
settings.register_profile("conv-algorithms", max_examples=25, deadline=None)
ALGORITHMS = list(ca.ALGORITHMS)


def _load_existing_tests():
    path = pathlib.Path(__file__).with_name("test_functional_vs_torch.py")
    spec = importlib.util.spec_from_file_location("_conv_tests_vs_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXISTING = _load_existing_tests()


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("test", ["test_conv2d_matches_torch", "test_conv_transpose2d_matches_torch",
                                  "test_conv1d_matches_torch", "test_conv2d_same_and_valid_padding_match_torch",
                                  "test_max_pool1d_and_avg_pool2d_match_torch",
                                  "test_conv_and_pool_nest_to_second_order",
                                  "test_hessian_vector_product_through_a_convnet_matches_torch"])
def test_the_existing_tests_pass_with_each_algorithm_forced(name, test):
    fn = getattr(EXISTING, test)
    with ca.use(name):
        if test == "test_conv2d_same_and_valid_padding_match_torch":
            for k in [(2, 2), (3, 3), (2, 3), (4, 1)]:
                fn(k)
        else:
            fn()


@st.composite
def fast_configs(draw):
    """Mostly shapes the fast algorithms take (3x3 or larger, stride 1, one group), some they do not."""
    special = draw(st.booleans())
    groups = 1 if special else draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 4))
    k = 3 if special else draw(st.integers(1, 5))
    kh, kw = (k, k) if special else (k, draw(st.integers(1, 5)))
    stride = (1, 1) if special else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (1, 1) if special else (draw(st.integers(1, 2)), 1)
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 11))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 11))
    return {"n": draw(st.integers(1, 3)), "cin": cin, "cout": cout, "k": (kh, kw), "hw": (h, w), "stride": stride,
            "padding": padding, "dilation": dilation, "groups": groups}


def _arrays(cfg, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["cin"]) + cfg["hw"]).astype(dtype)
    w = rng.standard_normal((cfg["cout"], cfg["cin"] // cfg["groups"]) + cfg["k"]).astype(dtype)
    b = rng.standard_normal(cfg["cout"]).astype(dtype)
    return x, w, b


def _options(cfg):
    return {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}


def _geometry(cfg):
    return ca.geometry((cfg["n"], cfg["cin"]) + cfg["hw"], (cfg["cout"], cfg["cin"] // cfg["groups"]) + cfg["k"],
                       cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])


def _ran(before, name, ops):
    after = ca.calls()
    return all(after.get((op, name), 0) > before.get((op, name), 0) for op in ops)


@pytest.mark.parametrize("name", ALGORITHMS)
@settings(settings.get_profile("conv-algorithms"))
@given(cfg=fast_configs(), seed=st.integers(0, 2**31 - 1))
def test_reverse_mode_matches_torch(name, cfg, seed):
    x, w, b = _arrays(cfg, seed)
    kw = _options(cfg)
    before = ca.calls()
    with ca.use(name):
        out, vjp = nb.vjp(lambda x, w, b: F.conv2d(x, w, b, **kw), x, w, b)
        g = np.random.default_rng(seed + 1).standard_normal(out.shape)
        grads = vjp(g)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    ref = torch.nn.functional.conv2d(*ts, **kw)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(out, ref.detach().numpy(), **TOL)
    for ours, t in zip(grads, ts):
        np.testing.assert_allclose(ours, t.grad.numpy(), **TOL)
    geo = _geometry(cfg)
    applies = [op for op in ("forward", "input_grad", "weight_grad") if name in ca.applicable(op, geo)]
    assert _ran(before, name, applies), f"{name} was forced but did not run {applies} for {geo}"


@pytest.mark.parametrize("name", ALGORITHMS)
@settings(settings.get_profile("conv-algorithms"))
@given(cfg=fast_configs(), seed=st.integers(0, 2**31 - 1))
def test_forward_mode_matches_torch(name, cfg, seed):
    x, w, b = _arrays(cfg, seed)
    rng = np.random.default_rng(seed + 2)
    tx, tw, tb = rng.standard_normal(x.shape), rng.standard_normal(w.shape), rng.standard_normal(b.shape)
    kw = _options(cfg)
    with ca.use(name):
        out, tangent = nb.jvp(lambda x, w, b: F.conv2d(x, w, b, **kw), (x, w, b), (tx, tw, tb))
        _, bias_only = nb.jvp(lambda b: F.conv2d(x, w, b, **kw), (b,), (tb,))
    ref, ref_tangent = torch.func.jvp(lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw),
                                      (torch.tensor(x), torch.tensor(w), torch.tensor(b)),
                                      (torch.tensor(tx), torch.tensor(tw), torch.tensor(tb)))
    np.testing.assert_allclose(out, ref.numpy(), **TOL)
    np.testing.assert_allclose(tangent, ref_tangent.numpy(), **TOL)
    np.testing.assert_allclose(bias_only, np.broadcast_to(tb[None, :, None, None], out.shape), **TOL)


@pytest.mark.parametrize("name", ALGORITHMS)
@settings(settings.get_profile("conv-algorithms"))
@given(cfg=fast_configs(), seed=st.integers(0, 2**31 - 1))
def test_imperative_backward_matches_torch_and_uses_the_kept_columns(name, cfg, seed):
    x, w, b = _arrays(cfg, seed)
    kw = _options(cfg)
    g = None
    kept_before = ca.kept_bytes()  # other graphs still alive may hold some
    with ca.use(name):
        xs, ws, bs = (nb.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xs, ws, bs, **kw)
        no_columns = name == "im2col_per_image" and cfg["k"] == (1, 1) and cfg["stride"] == (1, 1) \
            and cfg["padding"] == (0, 0)  # the input itself is the matrix
        # im2col_views keeps nothing (its weight gradient widens the input again); im2col's forward, where it does
        # not apply, keeps columns
        no_columns |= name == "im2col_views" and name in ca.applicable("forward", _geometry(cfg))
        assert (ca.kept_bytes() > kept_before) != no_columns, "the forward kept no columns although w requires grad"
        g = np.random.default_rng(seed + 3).standard_normal(y.shape)
        y.backward(g)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    torch.nn.functional.conv2d(*ts, **kw).backward(torch.tensor(g))
    for ours, t in zip((xs, ws, bs), ts):
        np.testing.assert_allclose(ours.grad.numpy(), t.grad.numpy(), **TOL)
    del y
    assert ca.kept_bytes() == kept_before, "the kept columns outlived the forward's output"


@pytest.mark.parametrize("name", ALGORITHMS)
def test_second_order_matches_torch(name):
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3))
    vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)

    def loss(x, w):
        return nb.sum(nb.tanh(F.conv2d(x, w, padding=1)) ** 2)

    with ca.use(name):
        assert nb.gradcheck(loss, x, w, order=2)
        b = rng.standard_normal(4)  # the bias added inside the convolution, to second order
        assert nb.gradcheck(lambda x, w, b: nb.sum(nb.tanh(F.conv2d(x, w, b, padding=1)) ** 2), x, w, b, order=2)
        hv = nb.jvp(nb.grad(loss, argnums=(0, 1)), (x, w), (vx, vw))[1]
        hh = nb.grad(lambda w: nb.sum(nb.grad(loss, argnums=1)(x, w) ** 2))(w)  # reverse over reverse

    def tloss(x, w):
        return (torch.tanh(torch.nn.functional.conv2d(x, w, padding=1)) ** 2).sum()

    _, thv = torch.autograd.functional.hvp(tloss, (torch.tensor(x), torch.tensor(w)),
                                           (torch.tensor(vx), torch.tensor(vw)))
    for ours, theirs in zip(hv, thv):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOL)
    wt = torch.tensor(w, requires_grad=True)
    (gw,) = torch.autograd.grad(tloss(torch.tensor(x), wt), wt, create_graph=True)
    (thh,) = torch.autograd.grad((gw ** 2).sum(), wt)
    np.testing.assert_allclose(hh, thh.numpy(), **TOL)


FLOAT32_CASES = [  # (N, C, O, size, kernel, padding)
    (4, 16, 8, 14, 3, 1), (2, 64, 32, 8, 3, 1), (8, 3, 32, 32, 3, 1), (32, 32, 16, 16, 3, 0), (4, 3, 16, 20, 7, 3),
    (2, 128, 16, 6, 3, 2),
]


@pytest.mark.parametrize("case", FLOAT32_CASES)
def test_float32_error_is_within_the_stated_bound(case):
    n, c, o, size, k, p = case
    rng = np.random.default_rng(sum(case))
    x, w = rng.standard_normal((n, c, size, size)), rng.standard_normal((o, c, k, k))
    geo = ca.geometry(x.shape, w.shape, (1, 1), (p, p), (1, 1), 1)
    g = rng.standard_normal((n, o, geo.Ho, geo.Wo))
    with ca.use("im2col"):  # float64 im2col as the exact value (its own error is ~1e-16 of the scale)
        exact = {"forward": ca.forward(x, w, geo)[0], "input_grad": ca.input_grad(g, w, geo),
                 "weight_grad": ca.weight_grad(x, g, geo)}
    scale = ca.error_scales(x, w, g)
    x32, w32, g32 = (a.astype(np.float32) for a in (x, w, g))
    checked = 0
    for name in ALGORITHMS:
        with ca.use(name):
            results = {"forward": ca.forward(x32, w32, geo)[0], "input_grad": ca.input_grad(g32, w32, geo),
                       "weight_grad": ca.weight_grad(x32, g32, geo)}
        for op, result in results.items():
            if name not in ca.applicable(op, geo, np.float32):
                continue
            assert result.dtype == np.float32, f"{name} {op} returned {result.dtype} for float32 inputs"
            error = np.max(np.abs(result - exact[op])) / scale[op]
            assert error <= ca.FLOAT32_ERROR_BOUND[name], f"{name} {op} on {case}: error {error:.2e}"
            assert error > 0  # really float32 arithmetic
            checked += 1
    assert checked >= 9


def test_winograd4_is_less_accurate_than_winograd2_as_documented():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((4, 32, 12, 12)), rng.standard_normal((8, 32, 3, 3))
    geo = ca.geometry(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1)
    with ca.use("im2col"):
        exact = ca.forward(x, w, geo)[0]
    errors = {}
    for name in ("winograd2", "winograd4"):
        with ca.use(name):
            errors[name] = np.max(np.abs(ca.forward(x.astype(np.float32), w.astype(np.float32), geo)[0] - exact))
    assert errors["winograd4"] > 2 * errors["winograd2"]


def test_the_kept_columns_are_those_of_the_forward_input_and_an_in_place_change_is_refused():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    for name in ALGORITHMS:
        with ca.use(name):
            xs, ws = nb.tensor(x, requires_grad=True), nb.tensor(w, requires_grad=True)
            y = nb.sum(F.conv2d(xs, ws, padding=1) ** 2)
            xs.data = x + 1.0  # the version counter sees it: backward refuses
            with pytest.raises(RuntimeError, match="changed in place"):
                y.backward()
    # without kept columns the weight gradient is the same
    grads = []
    kept_before = ca.kept_bytes()
    for keep in (True, False):
        previous = ca.save_columns(keep)
        try:
            ws = nb.tensor(w, requires_grad=True)
            y = nb.sum(F.conv2d(x, ws, padding=1) ** 2)
            assert (ca.kept_bytes() > kept_before) == keep
            y.backward()
            grads.append(ws.grad.numpy())
        finally:
            ca.save_columns(previous)
    np.testing.assert_array_equal(grads[0], grads[1])


def test_nothing_is_kept_when_only_the_input_or_nothing_is_differentiated():
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    before = ca.kept_bytes()
    F.conv2d(x, w)
    with nb.no_grad():
        y = F.conv2d(x, nb.tensor(w, requires_grad=True))
        assert ca.kept_bytes() == before
    y = F.conv2d(nb.tensor(x, requires_grad=True), w)
    assert ca.kept_bytes() == before
    nb.jvp(lambda w: F.conv2d(x, w), (w,), (w,))
    assert ca.kept_bytes() == before
    del y


def test_autotuning_measures_once_per_shape_and_can_be_turned_off():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    geo = ca.geometry(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1)
    assert geo.macs > ca.AUTOTUNE_MIN_MACS
    previous = ca.autotune(True)
    try:
        ca.clear_choices()
        assert ca.choose("forward", geo, np.float32) is None  # would measure
        with ca.use("im2col"):
            reference = F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)
            scale = ca.error_scales(x, w, np.ones((1, 32, 1, 1)))["forward"]
        y = F.conv2d(x, w, padding=1)
        (key, choice), = ca.choices().items()
        assert key == ("forward", geo, "<f4")
        measured = {"im2col", "im2col_per_image", "im2col_blocks", "im2col_views", "winograd2", "winograd4"}  # no fft: k < 5
        if ca.threads() > 1:  # each also with its chunks in turn
            measured |= {name + ca.IN_TURN for name in measured}
        assert set(choice["seconds"]) == measured
        assert choice["algorithm"] in choice["seconds"]
        assert ca.choose("forward", geo, np.float32) == choice["algorithm"]
        bound = ca.FLOAT32_ERROR_BOUND[choice["algorithm"].removesuffix(ca.IN_TURN)]
        assert np.max(np.abs(y - reference)) <= bound * scale
        before = ca.calls()
        F.conv2d(x, w, padding=1)  # measured once: the second call runs only the choice
        after = ca.calls()
        assert sum(after.values()) - sum(before.values()) == 1
        ca.autotune(False)
        assert ca.choose("forward", geo, np.float32) == "im2col"
        small = ca.geometry((1, 1, 5, 5), (1, 1, 3, 3), (1, 1), (0, 0), (1, 1), 1)
        ca.autotune(True)
        assert ca.choose("forward", small, np.float32) == "im2col"  # too small to measure
    finally:
        ca.autotune(previous)
        ca.clear_choices()
    with pytest.raises(TypeError, match="True or False"):
        ca.autotune("no")


@pytest.mark.parametrize("input_grad", [False, True])
def test_a_trained_convolution_is_chosen_by_timing_its_whole_training_step(monkeypatch, input_grad):
    """When the weight is trained, the first call times each forward with the backward it leads to (the weight's
    gradient from what was kept, the input's if wanted, the bias's), records the winner for all three maps, and
    keeps; the gradients are then PyTorch's."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    timed = []
    real_run = ca._run

    def spy(op, name, args, geo, **kwargs):
        timed.append((op, name, kwargs.get("keep")))
        return real_run(op, name, args, geo, **kwargs)

    monkeypatch.setattr(ca, "_run", spy)
    previous = ca.autotune(True)
    try:
        ca.clear_choices()
        before = ca.kept_bytes()
        xs, ws = nb.tensor(x, requires_grad=input_grad), nb.tensor(w, requires_grad=True)
        bs = nb.tensor(b, requires_grad=True)
        y = F.conv2d(xs, ws, bs, padding=1)
        ops = {op for op, _, _ in timed}
        assert {keep for op, _, keep in timed if op == "forward"} == {True}
        assert "weight_grad" in ops and ("input_grad" in ops) == input_grad
        chosen = {key[0]: row["algorithm"] for key, row in ca.choices().items()}
        family = chosen["forward"].removesuffix(ca.IN_TURN)
        assert (ca.kept_bytes() > before) == (family != "im2col_views")  # which widens the input again instead
        fallback = getattr(ca._IMPLEMENTATIONS[family], "fallback", "im2col")
        assert chosen["input_grad"].removesuffix(ca.IN_TURN) in (family, fallback, "im2col")
        assert chosen["weight_grad"].removesuffix(ca.IN_TURN) in (family, "im2col")
        timed.clear()
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(g)
        assert not [t for t in timed if t[0] == "forward"]  # the backward measured nothing and ran no forward
    finally:
        ca.autotune(previous)
        ca.clear_choices()
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    torch.nn.functional.conv2d(*ts, padding=1).backward(torch.tensor(g))
    bound = 1e-5 * ca.error_scales(x, w, g)["weight_grad"]
    assert np.max(np.abs(ws.grad.numpy() - ts[1].grad.numpy())) <= bound
    np.testing.assert_allclose(bs.grad.numpy(), ts[2].grad.numpy(), rtol=1e-4, atol=1e-3)
    if input_grad:
        assert np.max(np.abs(xs.grad.numpy() - ts[0].grad.numpy())) <= 1e-5 * ca.error_scales(x, w, g)["input_grad"]


def test_the_environment_variable_turns_autotuning_off():
    code = "from nablab.nn import conv_algorithms as ca; print(ca.is_autotuning())"
    for value, expected in (("0", "False"), ("off", "False"), ("1", "True")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"NABLAB_CONV_AUTOTUNE": value, "PATH": "",
                                  "PYTHONPATH": str(pathlib.Path(__file__).parents[2])})
        assert out.stdout.strip() == expected, (value, out.stdout, out.stderr)


def test_forcing_an_algorithm_that_does_not_apply_runs_im2col_and_unknown_names_are_refused():
    x, w = np.ones((1, 2, 7, 7)), np.ones((3, 2, 3, 3))
    before = ca.calls()
    with ca.use("winograd4"):
        y = F.conv2d(x, w, stride=2)
    assert _ran(before, "im2col", ["forward"]) and not _ran(before, "winograd4", ["forward"])
    np.testing.assert_allclose(y, torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), stride=2).numpy())
    with pytest.raises(ValueError, match="unknown convolution algorithm 'winograd8'; choose from im2col"), \
            ca.use("winograd8"):
        pass
    with pytest.raises(ValueError, match="unknown convolution map 'backward'"):
        ca.applicable("backward", ca.geometry(x.shape, w.shape, (1, 1), (0, 0), (1, 1), 1))


def test_winograd_and_fft_take_mixed_float_dtypes_and_refuse_integers_by_name():
    geo = ca.geometry((1, 1, 4, 4), (1, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    x32, w64 = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3))
    for name in ("winograd2", "winograd4", "fft"):
        out = ca._IMPLEMENTATIONS[name].forward(x32, w64, geo)[0]
        assert out.dtype == np.float64
        np.testing.assert_allclose(out, torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4, dtype=torch.float64),
                                                                   torch.tensor(w64), padding=1).numpy(), **TOL)
    with pytest.raises(TypeError, match="winograd4: needs float32 or float64 arrays, got int64, int64"):
        ca._IMPLEMENTATIONS["winograd4"].forward(np.ones((1, 1, 4, 4), int), np.ones((1, 1, 3, 3), int), geo)
    with pytest.raises(TypeError, match="fft: needs float32 or float64"):
        ca._IMPLEMENTATIONS["fft"].forward(np.ones((1, 1, 4, 4), int), np.ones((1, 1, 3, 3), int), geo)
    with ca.use("winograd4"):  # the dispatcher never sends them there: integers go to im2col
        assert ca.choose("forward", geo, np.int64) == "im2col"


@pytest.mark.parametrize("name", ALGORITHMS)
def test_chunks_on_two_threads_give_the_same_bits_as_one(name, monkeypatch):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((9, 5, 10, 10)).astype(np.float32)
    w = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
    geo = ca.geometry(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1)
    g = rng.standard_normal((9, 6, 10, 10)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    monkeypatch.setattr(ca, "CHUNK_BYTES", 30_000)  # several chunks of a few images, the last one shorter
    results = []
    for n in (1, 2):
        previous = ca.threads(n)
        try:
            with ca.use(name):
                out, kept = ca.forward(x, w, geo, keep=True, bias=b)  # the bias added chunk by chunk
                results.append((out, ca.input_grad(g, w, geo), ca.weight_grad(x, g, geo),
                                ca.weight_grad(x, g, geo, saved=kept) if kept else None, ca.bias_grad(g)))
                if kept:  # the weight gradient from the kept data, also in the input gradient's pass
                    dx_with = ca.input_grad_with_kept(g, w, geo, kept)
                    results[-1] += (dx_with, ca.weight_grad(x, g, geo, saved=kept))
        finally:
            ca.threads(previous)
    for one, two in zip(*results):
        if one is not None:
            np.testing.assert_array_equal(one, two)
    dw = results[0][2]
    from_kept = [results[0][3]] + list(results[0][6:7])  # from the kept data, and in the input gradient's pass
    for dw_kept in from_kept:
        if dw_kept is not None:  # the same numbers as without kept data
            np.testing.assert_allclose(dw_kept, dw, rtol=1e-4, atol=1e-3)
    out, db = results[0][0], results[0][4]
    with ca.use("im2col"):
        reference = ca.forward(x.astype(np.float64), w.astype(np.float64), geo)[0] + b.reshape(1, -1, 1, 1)
    bound = ca.FLOAT32_ERROR_BOUND[name] * ca.error_scales(x, w, g)["forward"]
    assert np.max(np.abs(out - reference)) <= bound + 1e-6 * np.max(np.abs(b))
    np.testing.assert_allclose(db, g.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="threads: expected a positive int, got 0"):
        ca.threads(0)


@pytest.mark.parametrize("name", ALGORITHMS)
@settings(settings.get_profile("conv-algorithms"))
@given(cfg=fast_configs(), seed=st.integers(0, 2**31 - 1))
def test_float32_against_torch_in_float64_is_within_the_bound(name, cfg, seed):
    x, w, _ = _arrays(cfg, seed, np.float32)
    kw = _options(cfg)
    with ca.use(name):
        out, vjp = nb.vjp(lambda x, w: F.conv2d(x, w, **kw), x, w)
        g = np.random.default_rng(seed + 4).standard_normal(out.shape).astype(np.float32)
        dx, dw = vjp(g)
    assert out.dtype == dx.dtype == dw.dtype == np.float32
    t64 = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w)]
    ref = torch.nn.functional.conv2d(*t64, **kw)
    ref.backward(torch.tensor(g, dtype=torch.float64))
    scale = ca.error_scales(x, w, g)
    geo = _geometry(cfg)
    for op, ours, exact in (("forward", out, ref.detach()), ("input_grad", dx, t64[0].grad),
                            ("weight_grad", dw, t64[1].grad)):
        used = name if name in ca.applicable(op, geo, np.float32) else "im2col"
        bound = ca.FLOAT32_ERROR_BOUND[used] * max(scale[op], 1e-30)
        assert np.max(np.abs(ours - exact.numpy())) <= bound, (op, used)


@pytest.mark.parametrize("name", ["winograd2", "winograd4"])
def test_the_weight_gradient_from_the_input_gradients_pass_is_the_same_bits(name):
    rng = np.random.default_rng(13)
    x, w = rng.standard_normal((3, 4, 9, 7)).astype(np.float32), rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    g = rng.standard_normal((3, 5, 9, 7)).astype(np.float32)
    grads = []
    with ca.use(name):
        for x_too in (True, False):  # with the input's gradient the weight's comes from the same pass
            xs, ws = nb.tensor(x, requires_grad=x_too), nb.tensor(w, requires_grad=True)
            before = ca.calls()
            F.conv2d(xs, ws, padding=1).backward(g)
            after = ca.calls()
            assert after[("weight_grad", name)] == before.get(("weight_grad", name), 0) + 1
            grads.append(ws.grad.numpy())
    np.testing.assert_array_equal(grads[0], grads[1])


def test_the_bias_gradient_from_the_input_gradients_pass_matches_torch(monkeypatch):
    rng = np.random.default_rng(14)
    x, w, b = rng.standard_normal((3, 4, 8, 8)), rng.standard_normal((5, 4, 3, 3)), rng.standard_normal(5)
    g = rng.standard_normal((3, 5, 8, 8))
    handed = []
    original = ca.bias_grad_for
    monkeypatch.setattr(ca, "bias_grad_for", lambda g, saved: handed.append((original(g, saved), saved)) or
                        handed[-1][0])
    with ca.use("winograd4"):
        xs, ws, bs = (nb.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xs, ws, bs, padding=1)
        y.backward(g)
        assert len(handed) == 1 and handed[0][0] is not None  # from the input gradient's pass
        assert original(g, handed[0][1]) is None  # handed over once
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    torch.nn.functional.conv2d(*ts, padding=1).backward(torch.tensor(g))
    for ours, t in zip((xs, ws, bs), ts):
        np.testing.assert_allclose(ours.grad.numpy(), t.grad.numpy(), **TOL)


def _assert_as_torch_where_not_finite(x, w, g, y, xs, ws):
    """``y = conv2d(xs, ws, padding=1)`` and its gradients for cotangent ``g``: inf and NaN where PyTorch's are,
    the rest to 1e-10."""
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w)]
    ref = torch.nn.functional.conv2d(*ts, padding=1)
    ref.backward(torch.tensor(g))
    for ours, theirs in ((y.numpy(), ref.detach().numpy()), (xs.grad.numpy(), ts[0].grad.numpy()),
                         (ws.grad.numpy(), ts[1].grad.numpy())):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("where", ["input", "weight", "cotangent"])
def test_inf_and_nan_give_what_a_direct_convolution_gives_whatever_the_algorithm(name, where):
    """Winograd's and the FFT's transforms mix a tile's or an image's values, so one inf or NaN would spread NaN to
    outputs that should be finite; with a value that is not finite, im2col computes instead, as PyTorch does."""
    rng = np.random.default_rng(13)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 9, 8))
    target = {"input": x, "weight": w, "cotangent": g}[where]
    target.flat[5] = np.inf
    target.flat[-7] = np.nan
    target.flat[11] = -np.inf
    with ca.use(name):
        xs, ws = nb.tensor(x, requires_grad=True), nb.tensor(w, requires_grad=True)
        y = F.conv2d(xs, ws, padding=1)  # keeps what the algorithm keeps for the weight gradient
        y.backward(g)
    _assert_as_torch_where_not_finite(x, w, g, y, xs, ws)


def test_a_bias_gradient_left_by_an_earlier_pass_is_not_handed_to_a_later_one():
    """The same cotangent array, changed in place between two backward passes: the second pass meets inf and runs
    im2col; the bias gradient the first pass left (its bias took none) must not come back."""
    rng = np.random.default_rng(23)
    x, w, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    g = rng.standard_normal((2, 4, 8, 8))
    with ca.use("winograd4"):
        xs, ws = nb.tensor(x, requires_grad=True), nb.tensor(w, requires_grad=True)
        F.conv2d(xs, ws, b, padding=1).backward(g)  # the bias is a constant: its sum stays unclaimed
        g[0, 0, 0, 0] = np.inf
        xs, ws, bs = (nb.tensor(a, requires_grad=True) for a in (x, w, b))
        F.conv2d(xs, ws, bs, padding=1).backward(g)
    np.testing.assert_array_equal(bs.grad.numpy(), g.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("where", ["input", "cotangent"])
@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_meeting_inf_in_a_later_chunk_runs_im2col_instead(where, threads, monkeypatch):
    """Winograd checks each chunk of images as it transforms it; inf in the last chunk, after the others have run
    (or while they run, on two threads), still gives im2col's results, and the calls say so."""
    monkeypatch.setattr(ca, "CHUNK_BYTES", 1)  # one image a chunk
    rng = np.random.default_rng(21)
    x, w = rng.standard_normal((6, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((6, 4, 8, 8))
    {"input": x, "cotangent": g}[where][5, 1, 2, 3] = np.inf
    previous = parallel.threads(threads)
    try:
        before = ca.calls()
        with ca.use("winograd4"):
            xs, ws = nb.tensor(x, requires_grad=True), nb.tensor(w, requires_grad=True)
            y = F.conv2d(xs, ws, padding=1)
            y.backward(g)
    finally:
        parallel.threads(previous)
    assert _ran(before, "im2col", ["forward"] if where == "input" else ["input_grad", "weight_grad"])
    _assert_as_torch_where_not_finite(x, w, g, y, xs, ws)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_an_empty_batch_gives_empty_outputs_and_zero_gradients_like_torch(name):
    x, w, b = np.zeros((0, 3, 8, 8)), np.ones((4, 3, 3, 3)), np.ones(4)
    with ca.use(name):
        xs, ws, bs = (nb.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xs, ws, bs, padding=1)
        y.backward(np.zeros(y.shape))
        dw = nb.grad(lambda w: nb.sum(F.conv2d(x, w, padding=1)))(w)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    ref = torch.nn.functional.conv2d(*ts, padding=1)
    ref.backward(torch.zeros(ref.shape, dtype=torch.float64))
    assert y.shape == tuple(ref.shape)
    for ours, theirs in zip((xs, ws, bs), ts):
        np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())
    np.testing.assert_array_equal(dw, np.zeros_like(w))


def test_forcing_im2col_views_runs_its_fallback_for_the_input_gradient():
    """im2col_views has no input gradient; forced, its fallback im2col_blocks computes it where that applies."""
    rng = np.random.default_rng(15)
    x, w = rng.standard_normal((2, 3, 16, 16)), rng.standard_normal((4, 3, 7, 7))
    geo = ca.geometry(x.shape, w.shape, (1, 1), (3, 3), (1, 1), 1)
    assert "im2col_blocks" in ca.applicable("input_grad", geo) and "im2col_views" not in ca.applicable(
        "input_grad", geo)
    before = ca.calls()
    with ca.use("im2col_views"):
        assert ca.choose("input_grad", geo, np.float64) == "im2col_blocks"
        xs, ws = nb.tensor(x, requires_grad=True), nb.tensor(w, requires_grad=True)
        F.conv2d(xs, ws, padding=3).backward(np.ones((2, 4, 16, 16)))
    assert _ran(before, "im2col_views", ["forward", "weight_grad"]) and _ran(before, "im2col_blocks", ["input_grad"])
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w)]
    torch.nn.functional.conv2d(*ts, padding=3).backward(torch.ones(2, 4, 16, 16, dtype=torch.float64))
    for ours, t in zip((xs, ws), ts):
        np.testing.assert_allclose(ours.grad.numpy(), t.grad.numpy(), **TOL)
