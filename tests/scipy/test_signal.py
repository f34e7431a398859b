"""nablab.scipy.signal.convolve/correlate: values as SciPy's, derivatives against finite
differences (both modes, second order), HIPS autograd (its axes/dot_axes form too) and torch."""

import autograd
import autograd.scipy.signal as ag_signal
import numpy as onp
import pytest
import scipy.signal as sp_signal
from hypothesis import assume, given, settings, strategies as st

import nablab
import nablab.numpy as np
import nablab.scipy.signal as signal
from nablab import gradcheck

rng = onp.random.default_rng(1)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


MODES = ["full", "valid", "same"]
# Pairs of shapes: in1 larger, in2 larger, equal, mixed (not for "valid"), 0-d.
SHAPES = [((5,), (2,)), ((2,), (6,)), ((4,), (4,)), ((1,), (3,)), ((5, 3), (2, 2)), ((2, 3), (4, 5)),
          ((6, 2), (3, 4)), ((3, 4, 2), (2, 2, 2)), ((), ())]


def _fits_valid(sa, sb):
    return all(a >= b for a, b in zip(sa, sb)) or all(a <= b for a, b in zip(sa, sb))


CASES = [(sa, sb, mode) for sa, sb in SHAPES for mode in MODES if mode != "valid" or _fits_valid(sa, sb)]

# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("sa,sb,mode", CASES)
@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_values_match_scipy(sa, sb, mode, method):
    for a, b in ((R(*sa), R(*sb)), (C(*sa), R(*sb)), (R(*sa), C(*sb))):
        want = sp_signal.convolve(a, b, mode, method)
        got = signal.convolve(a, b, mode, method)
        assert got.shape == want.shape
        onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        onp.testing.assert_allclose(signal.correlate(a, b, mode, method), sp_signal.correlate(a, b, mode, method),
                                    rtol=1e-12, atol=1e-12)


def test_integer_inputs_give_scipys_integers():
    a, b = onp.arange(5), onp.array([1, -2, 3])
    for mode in MODES:
        got = signal.convolve(a, b, mode)
        assert got.dtype == sp_signal.convolve(a, b, mode).dtype
        onp.testing.assert_array_equal(got, sp_signal.convolve(a, b, mode))


def test_lists_holding_tensors_are_arrays():
    g = nablab.grad(lambda s: np.sum(signal.convolve([s, 2.0 * s, 1.0], [1.0, s]) ** 2))(0.5)
    h = 1e-6
    f = lambda s: onp.sum(sp_signal.convolve([s, 2 * s, 1.0], [1.0, s]) ** 2)  # noqa: E731
    onp.testing.assert_allclose(g, (f(0.5 + h) - f(0.5 - h)) / (2 * h), rtol=1e-7)


# ----------------------------------------------------------------------------- finite differences


def _check(f, *args):
    assert gradcheck(f, *args, modes=("fwd", "rev"), order=2)


@pytest.mark.parametrize("sa,sb,mode", CASES)
def test_gradcheck_both_inputs(sa, sb, mode):
    for a, b in ((R(*sa), R(*sb)), (C(*sa), C(*sb)), (R(*sa), C(*sb))):
        _check(lambda x, y: signal.convolve(x, y, mode), a, b)
        _check(lambda x, y: signal.correlate(x, y, mode), a, b)


def test_gradcheck_inside_nonlinear_functions():
    # convolve is bilinear: order 2 is exercised through products and nonlinearities.
    _check(lambda x: np.tanh(signal.convolve(x, x * x, "same")), R(5))
    _check(lambda x, y: signal.convolve(np.sin(x), y, "valid") ** 2, R(3, 4), R(5, 6))
    _check(lambda x: signal.correlate(x, np.fft.ifft(x), "full"), C(4))


GENERAL = [
    ((4, 3), (3, 2), dict(axes=([0], [0]))),
    ((4, 3), (3, 2), dict(axes=([0], [1]))),
    ((4, 3), (3, 2), dict(axes=([1, 0], [1, 0]))),
    ((3, 3, 2), (3, 2, 3), dict(axes=([1], [1]), dot_axes=([0], [2]))),
    ((2, 5, 4, 3), (2, 4, 2, 3, 2), dict(axes=([1, 2], [2, 4]), dot_axes=([0, 3], [0, 3]))),
    ((2, 5, 4, 3), (3, 2, 3, 2, 2), dict(axes=([2, 1], [4, 2]), dot_axes=([3, 0], [0, 3]))),
    ((3, 5), (3, 4), dict(axes=([], []), dot_axes=([0], [0]))),
    ((2, 2, 6, 5), (3, 2, 3, 3), dict(axes=([2, 3], [2, 3]), dot_axes=([1], [1]))),  # a conv layer
]


@pytest.mark.parametrize("sa,sb,kw", GENERAL)
@pytest.mark.parametrize("mode", MODES)
def test_general_form_matches_autograd_and_gradchecks(sa, sb, kw, mode):
    a, b = R(*sa), R(*sb)
    got = signal.convolve(a, b, mode=mode, **kw)
    want = ag_signal.convolve(a, b, mode=mode, **{"axes": None, **kw})
    assert got.shape == want.shape
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    _check(lambda x, y: signal.convolve(x, y, mode=mode, **kw), a, b)


def test_general_form_reduces_to_scipy_per_slice():
    # autograd's own check: each output slice is a sum of SciPy convolutions.
    a, b = R(2, 5, 4, 3), R(2, 4, 2, 3, 2)
    for mode in ("full", "valid"):
        got = signal.convolve(a, b, axes=([1, 2], [2, 4]), dot_axes=([0, 3], [0, 3]), mode=mode)[2]
        want = sum(sp_signal.convolve(a[i, :, :, j], b[i, 2, :, j, :], mode) for i in range(2) for j in range(3))
        onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- against HIPS autograd


@st.composite
def shape_pairs(draw):
    ndim = draw(st.integers(1, 2))
    mode = draw(st.sampled_from(MODES))
    sa = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    sb = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    if mode == "valid" and not _fits_valid(sa, sb):
        sb = sa if draw(st.booleans()) else tuple(max(x, y) for x, y in zip(sa, sb))
    return sa, sb, mode


@settings(max_examples=25, deadline=None)
@given(case=shape_pairs(), seed=st.integers(0, 2**31 - 1), complex_inputs=st.booleans())
def test_vjps_match_autograd(case, seed, complex_inputs):
    sa, sb, mode = case
    # Autograd's VJP fails when only one input is complex: both are real or both complex.
    r = onp.random.default_rng(seed)
    a, b = r.standard_normal(sa), r.standard_normal(sb)
    if complex_inputs:
        a, b = a + 1j * r.standard_normal(sa), b + 1j * r.standard_normal(sb)
    out, nb_vjp = nablab.vjp(lambda x, y: signal.convolve(x, y, mode), a, b)
    g = r.standard_normal(out.shape) + (1j * r.standard_normal(out.shape) if complex_inputs else 0)
    try:
        ag_vjp, ag_out = autograd.make_vjp(lambda x, y: ag_signal.convolve(x, y, mode=mode), argnum=(0, 1))(a, b)
        ag_grads = ag_vjp(g)
    except RecursionError:
        # autograd swaps the inputs back and forth forever when each is longer along some axis
        # ("full" with equal sizes, "valid" with a tie): nothing to compare with.
        assume(False)
    onp.testing.assert_allclose(out, ag_out, rtol=1e-12, atol=1e-12)
    for got, want in zip(nb_vjp(g), ag_grads):
        assert got.dtype.kind == onp.asarray(want).dtype.kind
        onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(MODES), k=st.integers(1, 4))
def test_conv_layer_gradients_match_autograd(seed, mode, k):
    # autograd's convnet example: images (batch, channels, h, w) by filters (channels, out, kh, kw).
    r = onp.random.default_rng(seed)
    x, w = r.standard_normal((2, 3, 6, 5)), r.standard_normal((3, 2, k, 3))
    spec = dict(axes=([2, 3], [2, 3]), dot_axes=([1], [0]), mode=mode)

    def loss(conv, mod, x, w):
        return mod.sum(mod.tanh(conv(x, w, **spec)) ** 2)

    nb = nablab.grad(lambda x, w: loss(signal.convolve, np, x, w), argnums=(0, 1))(x, w)
    ag = autograd.grad(lambda x, w: loss(ag_signal.convolve, autograd.numpy, x, w), argnum=(0, 1))(x, w)
    for got, want in zip(nb, ag):
        onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- against torch

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")


def torch_convolve(a, b, mode):
    """SciPy's convolve in torch: the full convolution (a padded, b reversed), then SciPy's crop."""
    nd = a.dim()
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[nd]
    pads = []
    for n in reversed(b.shape):
        pads += [n - 1, n - 1]
    full = conv(torch.nn.functional.pad(a, pads)[None, None], torch.flip(b, list(range(nd)))[None, None])[0, 0]
    index = []
    for na, nb in zip(a.shape, b.shape):
        start, length = {"full": (0, na + nb - 1), "same": ((nb - 1) // 2, na),
                         "valid": (min(na, nb) - 1, abs(na - nb) + 1)}[mode]
        index.append(slice(start, start + length))
    return full[tuple(index)]


@settings(max_examples=12, deadline=None)
@given(case=shape_pairs(), seed=st.integers(0, 2**31 - 1))
def test_gradients_jvps_and_hvps_match_torch(case, seed):
    sa, sb, mode = case
    r = onp.random.default_rng(seed)
    a, b, ta_, tb_ = (r.standard_normal(s) for s in (sa, sb, sa, sb))
    w = None

    def nb_loss(x, y):
        return np.sum(np.sin(signal.convolve(x, y, mode)) * w)

    def t_loss(x, y):
        return torch.sum(torch.sin(torch_convolve(x, y, mode)) * torch.tensor(w))

    out = signal.convolve(a, b, mode)
    w = r.standard_normal(out.shape)
    ta, tb = torch.tensor(a), torch.tensor(b)
    onp.testing.assert_allclose(out, torch_convolve(ta, tb, mode).numpy(), rtol=1e-11, atol=1e-11)
    grads = nablab.grad(nb_loss, argnums=(0, 1))(a, b)
    tgrads = tfn.grad(t_loss, argnums=(0, 1))(ta, tb)
    for got, want in zip(grads, tgrads):
        onp.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)
    _, jv = nablab.jvp(lambda x, y: signal.convolve(x, y, mode), (a, b), (ta_, tb_))
    _, tjv = tfn.jvp(lambda x, y: torch_convolve(x, y, mode), (ta, tb), (torch.tensor(ta_), torch.tensor(tb_)))
    onp.testing.assert_allclose(jv, tjv.numpy(), rtol=1e-10, atol=1e-10)
    hv = nablab.jvp(nablab.grad(nb_loss, argnums=(0, 1)), (a, b), (ta_, tb_))[1]
    thv = tfn.jvp(tfn.grad(t_loss, argnums=(0, 1)), (ta, tb), (torch.tensor(ta_), torch.tensor(tb_)))[1]
    for got, want in zip(hv, thv):
        onp.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("call,err,match", [
    (lambda: signal.convolve(R(3), R(2), "bogus"), ValueError, "mode"),
    (lambda: signal.convolve(R(3), R(2), "full", "bogus"), ValueError, "method"),
    (lambda: signal.convolve(R(3), R(2), ([0], [0])), ValueError, "by keyword"),
    (lambda: signal.convolve(R(3, 2), R(2)), ValueError, r"\(3, 2\) and \(2,\)"),
    (lambda: signal.convolve(R(3, 2), R(2, 3), "valid"), ValueError, "at least as large"),
    (lambda: signal.convolve(R(0), R(2)), ValueError, "empty"),
    (lambda: signal.convolve(R(3, 2), R(2, 3), axes=([0], [0]), dot_axes=([1], [1])), ValueError, "length 2"),
    (lambda: signal.convolve(R(3, 2), R(2, 3), axes=([0, 0], [0, 1])), ValueError, "twice"),
    (lambda: signal.convolve(R(3, 2), R(2, 3), axes=([0], [0, 1])), ValueError, "pairs 1 axes"),
    (lambda: signal.convolve(R(3, 2), R(2, 3), axes=([2], [0])), ValueError, "axis 2"),
    (lambda: signal.convolve(R(3, 2), R(2, 3), axes=[0]), TypeError, "pair"),
    (lambda: signal.convolve(onp.array(["a"]), R(1)), TypeError, "numeric"),
    (lambda: signal.convolve(R(3, 2), R(3, 3), dot_axes=([0], [0])), ValueError, "dot_axes needs axes"),
])
def test_bad_input_names_the_problem(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_functions_without_rules_refuse_traced_values_by_name():
    with pytest.raises(nablab.UnsupportedFunctionError, match="scipy.signal.fftconvolve"):
        nablab.grad(lambda x: np.sum(signal.fftconvolve(x, onp.ones(2))))(R(4))
    onp.testing.assert_allclose(signal.fftconvolve(onp.ones(3), onp.ones(2)), [1, 2, 2, 1])
