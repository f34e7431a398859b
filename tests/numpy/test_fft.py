"""nablab.numpy.fft: values as NumPy's, derivatives against finite differences (both modes,
second order), HIPS autograd (complex convention) and torch.func (real-to-real maps)."""

import warnings

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck

rng = onp.random.default_rng(0)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


NORMS = [None, "ortho", "forward"]

# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("name", ["fft", "ifft", "irfft", "hfft"])
@pytest.mark.parametrize("n", [None, 3, 4, 9])
@pytest.mark.parametrize("norm", NORMS + ["backward"])
def test_one_axis_values_match_numpy_complex_input(name, n, norm):
    x = C(5, 6)
    got = getattr(np.fft, name)(x, n, 0, norm)
    want = getattr(onp.fft, name)(x, n, 0, norm)
    assert got.shape == want.shape and got.dtype == want.dtype
    onp.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "ihfft"])
@pytest.mark.parametrize("n", [None, 3, 4, 9])
def test_one_axis_values_match_numpy_real_input(name, n):
    x = R(4, 7)
    got = getattr(np.fft, name)(x, n, norm="ortho")
    onp.testing.assert_array_equal(got, getattr(onp.fft, name)(x, n, norm="ortho"))


ND_VALUE_CASES = [
    (name, s, axes)
    for name in ["fftn", "ifftn", "rfftn", "irfftn"]
    for s, axes in [(None, None), ((3, 8), (0, 2)), ((-1, 4), (2, 1)), (None, (1,)), ((7, 3), (0, 0))]
] + [
    (name, s, axes)
    for name in ["fft2", "ifft2", "rfft2", "irfft2"]
    for s, axes in [(None, (-2, -1)), ((3, 8), (0, 2)), ((-1, 4), (2, 1)), ((7, 3), (0, 0))]
]


@pytest.mark.parametrize("name,s,axes", ND_VALUE_CASES)
def test_nd_values_match_numpy(name, s, axes):
    x = R(5, 4, 6) if name.startswith("r") else C(5, 4, 6)
    onp.testing.assert_allclose(getattr(np.fft, name)(x, s, axes), getattr(onp.fft, name)(x, s, axes),
                                rtol=1e-13, atol=1e-13)


def test_s_without_axes_warns_like_numpy_and_agrees():
    x = C(3, 4, 5)
    with pytest.warns(DeprecationWarning):
        got = np.fft.fftn(x, (6, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        want = onp.fft.fftn(x, (6, 2))
    onp.testing.assert_allclose(got, want, atol=1e-13)


@pytest.mark.parametrize("axes", [None, 0, 1, (1, 0), (-1,)])
def test_shifts_and_frequencies_match_numpy(axes):
    x = R(5, 4)
    onp.testing.assert_array_equal(np.fft.fftshift(x, axes), onp.fft.fftshift(x, axes))
    onp.testing.assert_array_equal(np.fft.ifftshift(x, axes), onp.fft.ifftshift(x, axes))
    for n in (1, 6, 7):
        onp.testing.assert_array_equal(np.fft.fftfreq(n, 0.3), onp.fft.fftfreq(n, 0.3))
        onp.testing.assert_array_equal(np.fft.rfftfreq(n, 0.3), onp.fft.rfftfreq(n, 0.3))


def test_out_argument_with_constants_and_refused_with_traced_values():
    x = C(8)
    out = onp.empty(8, complex)
    np.fft.fft(x, out=out)
    onp.testing.assert_allclose(out, onp.fft.fft(x))
    with pytest.raises(TypeError, match="out="):
        nablab.grad(lambda v: np.sum(np.real(np.fft.fft(v, out=onp.empty(8, complex)))))(R(8))


def test_numpy_functions_dispatch_to_nablab_on_traced_values():
    x = R(6)
    g = nablab.grad(lambda v: onp.sum(onp.real(onp.fft.fft(v)) * onp.arange(6)))(x)
    want = onp.real(onp.fft.fft(onp.arange(6.0)))  # the DFT matrix is symmetric
    onp.testing.assert_allclose(g, want, atol=1e-12)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("call,err,match", [
    (lambda: np.fft.fft(R(4), norm="bogus"), ValueError, "norm"),
    (lambda: np.fft.fft(R(4), 0), ValueError, "n=0"),
    (lambda: np.fft.ifft(R(4), -3), ValueError, "n=-3"),
    (lambda: np.fft.fft(R(4, 3), axis=2), ValueError, "axis 2"),
    (lambda: np.fft.rfft(C(4)), TypeError, "real"),
    (lambda: np.fft.ihfft(C(4)), TypeError, "real"),
    (lambda: np.fft.rfftn(C(4, 4)), TypeError, "real"),
    (lambda: np.fft.fftn(R(4, 4), (3, 3, 3), (0, 1)), ValueError, "different lengths"),
    (lambda: np.fft.fft(onp.float64(2.0)), ValueError, "scalar"),
    (lambda: np.fft.fftshift(R(4), axes=1), ValueError, "axis 1"),
])
def test_bad_input_names_the_problem(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_traced_length_of_fftfreq_is_refused():
    with pytest.raises(TypeError, match="fftfreq: n"):
        nablab.grad(lambda n: np.sum(np.fft.fftfreq(n)))(4.0)


# ----------------------------------------------------------------------------- finite differences


def _check(f, *args):
    assert gradcheck(f, *args, modes=("fwd", "rev"), order=2)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n", [None, 3, 4, 7, 8])
@pytest.mark.parametrize("complex_input", [False, True])
def test_gradcheck_fft_ifft_irfft_hfft(norm, n, complex_input):
    x = C(5, 6) if complex_input else R(5, 6)
    _check(lambda v: np.fft.fft(v, n, axis=0, norm=norm), x)
    _check(lambda v: np.fft.ifft(v, n, norm=norm), x)
    _check(lambda v: np.fft.irfft(v, n, axis=0, norm=norm), x)
    _check(lambda v: np.fft.hfft(v, n, norm=norm), x)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n", [None, 1, 2, 3, 4, 7, 8])
def test_gradcheck_rfft_ihfft_odd_and_even(norm, n):
    x = R(5, 6)
    _check(lambda v: np.fft.rfft(v, n, axis=0, norm=norm), x)
    _check(lambda v: np.fft.rfft(v, n, norm=norm), x)
    _check(lambda v: np.fft.ihfft(v, n, norm=norm), x)


@pytest.mark.parametrize("name", ["fftn", "ifftn", "irfftn", "fft2", "ifft2", "irfft2", "rfftn", "rfft2"])
@pytest.mark.parametrize("s", [None, (3, 5), (6, 4), (5, 5)])
@pytest.mark.parametrize("norm", NORMS)
def test_gradcheck_nd(name, s, norm):
    axes = None if s is None else (0, 2)
    if name.endswith("2") and axes is None:
        axes = (-2, -1)
    x = R(5, 4, 6) if name.startswith("r") else C(5, 4, 6)
    _check(lambda v: getattr(np.fft, name)(v, s, axes, norm=norm), x)


def test_gradcheck_repeated_axes_and_shifts():
    # Autograd refuses repeated axes; NumPy transforms twice along the axis, and so do the rules.
    _check(lambda v: np.fft.fftn(v, (7, 3), (0, 0)), C(5, 4))
    _check(lambda v: np.fft.irfftn(v, (4, 6), (1, 1)), C(3, 4))
    _check(lambda v: np.fft.fftshift(v), C(5, 4))
    _check(lambda v: np.fft.ifftshift(v, axes=(1,)), R(5, 4))
    _check(lambda v: np.fft.fftshift(v, axes=0) * np.fft.ifftshift(v, axes=0), R(5, 3))


def test_gradcheck_nonlinear_compositions():
    # Second derivatives of FFTs are zero; put them inside nonlinear functions so order 2 means something.
    _check(lambda v: np.abs(np.fft.rfft(np.tanh(v), 7)) ** 2, R(6))
    _check(lambda v: np.sin(np.fft.irfft(v * v, 9)), C(5))
    _check(lambda v: np.fft.fft2(v) * np.fft.ifft2(v, norm="ortho"), C(3, 4))
    _check(lambda v: np.fft.irfftn(np.fft.rfftn(v) ** 2, v.shape, (0, 1), norm="forward"), R(4, 5))


def test_fftfreq_with_a_traced_spacing():
    d = 0.3
    g = nablab.grad(lambda d: np.sum(np.fft.fftfreq(7, d) * onp.arange(7)))(d)
    onp.testing.assert_allclose(g, -onp.sum(onp.fft.fftfreq(7, d) * onp.arange(7)) / d, rtol=1e-13)
    _check(lambda d: np.fft.rfftfreq(8, d), 0.3)


# ----------------------------------------------------------------------------- conventions


def test_irfft_ignores_the_imaginary_parts_of_dc_and_nyquist():
    # NumPy's irfft reads only Re(c_0) and, for even n, Re(c_{n/2}): their gradients are real.
    c = C(5)
    for n, real_bins in ((8, [0, 4]), (9, [0])):
        g = nablab.grad(lambda c: np.sum(np.fft.irfft(c, n) * onp.arange(n)))(c)
        assert onp.all(g.imag[real_bins] == 0)
        inner = [k for k in range(5) if k not in real_bins]
        assert onp.all(onp.abs(g.imag[inner]) > 1e-8)


def test_rfft_odd_lengths_are_differentiated():
    # Autograd raises NotImplementedError for odd last axes of rfftn; nablab differentiates them.
    x = R(5, 5, 5)
    _check(lambda v: np.fft.rfftn(v), x)
    f = lambda v: np.fft.irfftn(np.fft.rfftn(v), v.shape, (0, 1))  # noqa: E731  the identity
    onp.testing.assert_allclose(nablab.jacobian(f)(R(3, 5)).reshape(15, 15), onp.eye(15), atol=1e-12)


# ----------------------------------------------------------------------------- against HIPS autograd


def _vjp_both(nb_f, ag_f, x, g):
    _, nb_vjp = nablab.vjp(nb_f, x)
    ag_vjp, _ = autograd.make_vjp(ag_f)(x)
    return nb_vjp(g)[0], ag_vjp(g)


AUTOGRAD_CASES = [
    # (name, positional arguments after the array, real input, input shape).  Positional because
    # autograd's rules read a keyword n= as absent (its helper names the parameter d) and get the
    # scale wrong.
    ("fft", (7, 0), False, (5, 4)),
    ("fft", (None, -1, "ortho"), True, (5, 4)),
    ("ifft", (3,), False, (5, 4)),
    ("fft2", ((6, 3),), False, (5, 4)),
    ("ifftn", ((6, 2), (1, 0)), True, (5, 4)),
    ("rfft", (6,), True, (5, 4)),
    ("rfft", (None, 0, "ortho"), True, (4, 5)),
    ("irfft", (8,), False, (5, 4)),
    ("irfft", (4, 0, "ortho"), False, (5, 4)),
    ("rfftn", ((6, 4), (0, 1)), True, (5, 4)),
    ("irfftn", ((3, 6), (0, 1)), False, (5, 4)),
    ("rfft2", (), True, (3, 4)),
    ("irfft2", (), False, (3, 4)),
    ("fftshift", (1,), False, (5, 4)),
    ("ifftshift", (), True, (5, 3)),
]


@pytest.mark.parametrize("name,args,real_input,shape", AUTOGRAD_CASES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_vjp_matches_autograd(name, args, real_input, shape, seed):
    r = onp.random.default_rng(seed)
    x = r.standard_normal(shape) if real_input else r.standard_normal(shape) + 1j * r.standard_normal(shape)
    nb_f = lambda v: getattr(np.fft, name)(v, *args)  # noqa: E731
    ag_f = lambda v: getattr(anp.fft, name)(v, *args)  # noqa: E731
    out = nb_f(x)
    onp.testing.assert_allclose(out, ag_f(x), rtol=1e-12, atol=1e-12)
    g = r.standard_normal(out.shape) + (1j * r.standard_normal(out.shape) if onp.iscomplexobj(out) else 0)
    got, want = _vjp_both(nb_f, ag_f, x, g)
    assert got.dtype.kind == want.dtype.kind
    onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([2, 4, 6, 8]))
def test_hessian_of_a_spectral_loss_matches_autograd(seed, n):
    # Autograd's real transforms need an even length; nablab's take any.
    r = onp.random.default_rng(seed)
    x, w = r.standard_normal(6), r.standard_normal(n // 2 + 1)

    def loss(mod, x):
        spec = mod.fft.rfft(mod.real(mod.fft.fft(x, 5)) * x[:5], n)
        return mod.fft.irfft(spec * w, n)[1] + mod.sum(mod.abs(spec) ** 2 * w)

    got = nablab.hessian(lambda v: loss(np, v))(x)
    want = autograd.hessian(lambda v: loss(anp, v))(x)
    onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- against torch.func

torch = pytest.importorskip("torch")
tfn = pytest.importorskip("torch.func")

TORCH_CASES = [
    # real -> real maps: (nablab function, torch function, input shape)
    (lambda v: np.fft.irfft(np.fft.rfft(v, 7) * np.fft.rfft(v, 7), 9),
     lambda v: torch.fft.irfft(torch.fft.rfft(v, 7) * torch.fft.rfft(v, 7), 9), (6,)),
    (lambda v: np.abs(np.fft.fftn(v, (4, 7), (0, 1), norm="ortho")) ** 2,
     lambda v: torch.abs(torch.fft.fftn(v, (4, 7), (0, 1), norm="ortho")) ** 2, (5, 6)),
    (lambda v: np.real(np.fft.ifft2(v * 1j + v ** 2, norm="forward")),
     lambda v: torch.real(torch.fft.ifft2(v * 1j + v ** 2, norm="forward")), (3, 4)),
    (lambda v: np.fft.hfft(np.fft.ihfft(v ** 3, 5), 8),
     lambda v: torch.fft.hfft(torch.fft.ihfft(v ** 3, 5), 8), (6,)),
    (lambda v: np.fft.irfftn(np.fft.rfftn(v, (5, 3), (0, 1)) ** 2, (4, 4), (0, 1), norm="ortho"),
     lambda v: torch.fft.irfftn(torch.fft.rfftn(v, (5, 3)) ** 2, (4, 4), norm="ortho"), (4, 4)),
    (lambda v: np.fft.fftshift(v, axes=0) * np.fft.ifftshift(v),
     lambda v: torch.fft.fftshift(v, dim=0) * torch.fft.ifftshift(v), (5, 4)),
]


@pytest.mark.parametrize("case", range(len(TORCH_CASES)))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_jacobians_and_hvps_match_torch(case, seed):
    nb_f, t_f, shape = TORCH_CASES[case]
    r = onp.random.default_rng(seed)
    x, v = r.standard_normal(shape), r.standard_normal(shape)
    tx, tv = torch.tensor(x), torch.tensor(v)
    onp.testing.assert_allclose(nb_f(x), t_f(tx).numpy(), rtol=1e-11, atol=1e-11)
    onp.testing.assert_allclose(nablab.jacrev(nb_f)(x), tfn.jacrev(t_f)(tx).numpy(), rtol=1e-10, atol=1e-10)
    _, jv = nablab.jvp(nb_f, (x,), (v,))
    onp.testing.assert_allclose(jv, tfn.jvp(t_f, (tx,), (tv,))[1].numpy(), rtol=1e-10, atol=1e-10)

    def nb_s(y):
        return np.sum(np.sin(nb_f(y)))

    def t_s(y):
        return torch.sum(torch.sin(t_f(y)))

    hv = nablab.jvp(nablab.grad(nb_s), (x,), (v,))[1]
    onp.testing.assert_allclose(hv, tfn.jvp(tfn.grad(t_s), (tx,), (tv,))[1].numpy(), rtol=1e-9, atol=1e-9)


def test_complex_input_gradient_is_the_conjugate_of_torchs():
    # torch's gradient of a real loss of z is df/dx + i df/dy; autograd's (and nablab's) is its conjugate.
    z = C(6)
    w = R(6)
    got = nablab.grad(lambda z: np.sum(np.abs(np.fft.fft(z, 8)[:6]) * w))(z)
    want = tfn.grad(lambda z: torch.sum(torch.abs(torch.fft.fft(z, 8)[:6]) * torch.tensor(w)))(torch.tensor(z))
    onp.testing.assert_allclose(got, onp.conj(want.numpy()), rtol=1e-10, atol=1e-10)
