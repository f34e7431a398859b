"""Complex numbers in nablab.numpy: HIPS autograd's convention (grad of a real f(x + iy) is
df/dx - i df/dy; a VJP multiplies by the holomorphic derivative without conjugating), checked
by finite differences in both modes to second order, against HIPS autograd and against
torch (whose gradient of a real loss is the conjugate of autograd's)."""

import cmath

import autograd
import autograd.numpy as anp
import numpy as onp
import pytest
from hypothesis import assume, given, settings, strategies as st

import nablab
import nablab.numpy as np
from nablab import gradcheck

torch = pytest.importorskip("torch")
import torch.func  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

rng = onp.random.default_rng(1)
HYP = settings(max_examples=20, deadline=None)
TOL = dict(rtol=1e-10, atol=1e-10)


def C(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


complexes = st.builds(complex, st.floats(-2, 2), st.floats(-2, 2))


# ----------------------------------------------------------------------------- the convention


def test_parts_follow_autograds_convention():
    z = 1.5 - 0.5j
    assert nablab.grad(np.real)(z) == 1 and nablab.grad(np.imag)(z) == -1j
    assert nablab.grad(np.abs)(z) == pytest.approx(onp.conj(z) / abs(z), rel=1e-15)
    assert nablab.grad(np.angle)(z) == pytest.approx(-1j / z, rel=1e-15)
    assert nablab.grad(lambda z: np.abs(z) ** 2)(z) == pytest.approx(2 * onp.conj(z), rel=1e-15)
    assert nablab.grad(lambda z: np.real(np.conj(z) * 1j))(z) == -1j  # Re(i conj z) = y: 0 - i * 1
    # deg=True scales the angle and its derivative
    assert nablab.grad(lambda z: np.angle(z, deg=True))(z) == pytest.approx(-1j / z * 180 / onp.pi, rel=1e-14)


def test_types_of_gradients_follow_the_input():
    for f in (np.real, np.abs, lambda x: np.real(np.exp(1j * x)), lambda x: np.abs(x * (1 + 2j))):
        g = nablab.grad(f)
        assert onp.isrealobj(g(0.7)) and onp.iscomplexobj(g(0.7 + 0.1j))
    # a real input reached only through complex arithmetic still gets a real cotangent
    x, w = onp.array([0.3, -1.2]), onp.array([1 + 2j, -0.5j])
    g = nablab.grad(lambda x: np.sum(np.abs(x * w + np.exp(1j * x)) ** 2))(x)
    assert g.dtype == onp.float64
    onp.testing.assert_allclose(g, autograd.grad(lambda x: anp.sum(anp.abs(x * w + anp.exp(1j * x)) ** 2))(x), **TOL)


def test_jvp_of_a_real_function_of_z_is_re_of_grad_times_t():
    z, t = C(4), C(4)
    for f in (np.abs, np.angle, np.real, np.imag, lambda z: np.abs(np.sin(z)) ** 2):
        grad = nablab.elementwise_grad(f)(z)
        _, jv = nablab.jvp(f, (z,), (t,))
        assert jv.dtype == onp.float64
        onp.testing.assert_allclose(jv, onp.real(grad * t), **TOL)


HOLOMORPHIC = {
    "exp": cmath.exp, "log": lambda z: 1 / z, "sqrt": lambda z: 0.5 / cmath.sqrt(z),
    "sin": cmath.cos, "cos": lambda z: -cmath.sin(z), "tan": lambda z: 1 / cmath.cos(z) ** 2,
    "sinh": cmath.cosh, "cosh": cmath.sinh, "tanh": lambda z: 1 / cmath.cosh(z) ** 2,
    "arcsin": lambda z: 1 / cmath.sqrt(1 - z * z), "arccos": lambda z: -1 / cmath.sqrt(1 - z * z),
    "arctan": lambda z: 1 / (1 + z * z), "arcsinh": lambda z: 1 / cmath.sqrt(1 + z * z),
    "arccosh": lambda z: 1 / (cmath.sqrt(z - 1) * cmath.sqrt(z + 1)), "arctanh": lambda z: 1 / (1 - z * z),
    "log2": lambda z: 1 / (z * cmath.log(2)), "log10": lambda z: 1 / (z * cmath.log(10)),
    "log1p": lambda z: 1 / (1 + z), "expm1": cmath.exp, "exp2": lambda z: 2 ** z * cmath.log(2),
    "square": lambda z: 2 * z, "reciprocal": lambda z: -1 / z ** 2,
    "sinc": lambda z: (cmath.cos(cmath.pi * z) - cmath.sin(cmath.pi * z) / (cmath.pi * z)) / z,
}


@pytest.mark.parametrize("name", sorted(HOLOMORPHIC))
def test_holomorphic_functions_give_the_complex_derivative_in_all_quadrants(name):
    # points in all four quadrants, some left of the origin where arccosh's cut matters
    for z in (0.7 + 0.4j, -0.6 + 0.3j, -1.7 - 0.8j, 1.2 - 1.1j, 0.3 + 1.9j):
        want = HOLOMORPHIC[name](z)
        assert nablab.holomorphic_grad(getattr(np, name))(z) == pytest.approx(want, rel=1e-12)
        u = 0.3 - 0.9j
        (ct,) = nablab.vjp(getattr(np, name), z)[1](u)
        assert ct == pytest.approx(u * want, rel=1e-12)  # no conjugation
        assert nablab.jvp(getattr(np, name), (z,), (u,))[1] == pytest.approx(u * want, rel=1e-12)
    gradcheck(getattr(np, name), onp.array([0.7 + 0.4j, -0.6 + 0.3j, -1.7 - 0.8j, 1.2 - 1.1j]), order=2)


# ----------------------------------------------------------------------------- arithmetic


def test_arithmetic_to_second_order_with_mixed_real_and_complex_broadcasting():
    x, z, w = onp.array([0.5, 1.3, -0.7]), C(2, 3), C(2, 1)
    gradcheck(lambda x, z, w: (x * z - w / z + x) ** 2 / (w + 3.0), x, z, w, order=2)
    gradcheck(lambda z, w: z ** w, C(3) + 2.0, C(3), order=2)  # complex base and exponent
    gradcheck(lambda x, w: x ** w, onp.array([-2.0, -0.5, 1.5]), C(3), order=2)  # negative real base
    gradcheck(lambda z: z ** 3 + z ** 0.5 + 2.0 ** z, C(4) + 1.5, order=2)
    gradcheck(lambda z: np.exp(z) * np.log(z) / np.sqrt(z), C(4) + 2.5, order=2)
    gradcheck(lambda z: np.logaddexp(np.real(z), np.imag(z)) * np.abs(z), C(4), order=2)


def test_power_of_a_negative_real_base_with_a_complex_exponent():
    w = 0.5 + 0.25j
    ours = nablab.holomorphic_grad(lambda w: np.power(-2.0, w))(w)
    assert ours == pytest.approx(cmath.log(-2.0) * (-2.0 + 0j) ** w, rel=1e-14)
    assert nablab.grad(lambda x: np.real(np.power(x, w)))(-2.0) == pytest.approx(((w * (-2.0 + 0j) ** (w - 1))).real)


def test_sign_of_complex_values_is_differentiated_and_real_sign_is_not():
    z = C(3)
    onp.testing.assert_allclose(np.sign(z), onp.sign(z), **TOL)
    gradcheck(np.sign, z, order=2)
    assert nablab.grad(lambda z: np.real(np.sign(z)))(0j) == 0
    assert nablab.grad(lambda x: np.sign(x) * 1.0 + 0.0 * x)(0.4) == 0


def test_real_if_close_and_astype():
    z = onp.array([1.0 + 1e-16j, 2.0 - 1e-17j])
    assert onp.isrealobj(np.real_if_close(z))
    g = nablab.grad(lambda z: np.sum(np.real_if_close(z)))(z)
    assert g.dtype == onp.complex128 and onp.all(g == 1)
    far = onp.array([1.0 + 0.5j])
    assert onp.iscomplexobj(np.real_if_close(far))
    assert nablab.grad(lambda z: np.sum(np.imag(np.real_if_close(z))))(far) == -1j
    # real -> complex -> real: the imaginary direction of the complex cotangent is dropped
    x = onp.array([0.5, -1.0])
    assert nablab.grad(lambda x: np.sum(np.imag(x.astype(complex) * 1j)))(x).tolist() == [1.0, 1.0]
    gradcheck(lambda x: x.astype(complex) * (1 + 2j), x, order=2)
    gradcheck(lambda z: np.real(z).astype(complex) * z, C(2), order=2)


# ----------------------------------------------------------------------------- against autograd


def _parts(m, z, w):
    a = m.sin(z) * w + m.exp(z / (w + 3.0)) - m.sqrt(z + 4.0) ** w
    b = m.conj(a) * m.tanh(z) + m.arcsinh(w) / (1.5 + m.abs(z))
    return a, b


def _program(m, z, w):
    """A real-valued mix of every complex-capable kind of op, in the library ``m``."""
    a, b = _parts(m, z, w)
    return m.sum(m.abs(b) ** 2 + m.angle(a) + m.real(a * b) - m.imag(m.log(w + 5.0)))


def _away_from_kinks(z, w):
    """abs and angle have kinks at 0 (nablab's convention there is 0; autograd's is nan); arcsinh's
    derivative 1/sqrt(1 + w^2) is infinite at its branch points w = ±i (nan here, -inf+infj in autograd).
    On a branch cut (angle's negative real axis, arcsinh's imaginary axis beyond ±i) the value depends on the
    sign of a zero, which NumPy and PyTorch can reach differently: angle(-0.11 - 0j) is -pi where PyTorch's
    program had +pi (found by hypothesis with z = [1j, 1j, 1 - 0j], w = [0j, 0j, 1 - 0j])."""
    a, b = _parts(onp, z, w)
    on_angle_cut = onp.min(onp.abs(onp.imag(a))[onp.real(a) < 0], initial=1.0) <= 1e-3
    on_arcsinh_cut = onp.min(onp.abs(onp.real(w))[onp.abs(onp.imag(w)) > 1], initial=1.0) <= 1e-3
    return (onp.min(onp.abs(a)) > 1e-3 and onp.min(onp.abs(b)) > 1e-3 and onp.min(onp.abs(z)) > 1e-3
            and onp.min(onp.abs(1 + w * w)) > 1e-3 and not on_angle_cut and not on_arcsinh_cut)


@HYP
@given(st.lists(complexes, min_size=2, max_size=2), st.lists(complexes, min_size=2, max_size=2))
def test_gradients_match_autograd(zs, ws):
    z, w = onp.array(zs), onp.array(ws)
    assume(_away_from_kinks(z, w))
    onp.testing.assert_allclose(_program(np, z, w), _program(anp, z, w), **TOL)
    for argnum in (0, 1):
        ours = nablab.grad(lambda z, w: _program(np, z, w), argnum)(z, w)
        theirs = autograd.grad(lambda z, w: _program(anp, z, w), argnum)(z, w)
        onp.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)
    # second order: the gradient of Re <grad, v>
    v = onp.array([0.4 - 1j, -0.2 + 0.3j])
    ours = nablab.grad(lambda z: np.real(np.sum(nablab.grad(lambda z: _program(np, z, w))(z) * v)))(z)
    theirs = autograd.grad(lambda z: anp.real(anp.sum(autograd.grad(lambda z: _program(anp, z, w))(z) * v)))(z)
    onp.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


@HYP
@given(complexes, complexes)
def test_pairwise_ops_match_autograd(z, w):
    for name in ("add", "subtract", "multiply", "divide", "power"):
        if name in ("divide", "power") and abs(w) < 1e-3 or name == "power" and abs(z) < 1e-3:
            continue
        if abs(getattr(onp, name)(z, w)) < 1e-6:  # abs has its kink at 0: no derivative to compare
            continue
        for argnum in (0, 1):
            def loss(m, name=name):
                return lambda z, w: m.abs(getattr(m, name)(z, w)) + m.real(getattr(m, name)(z, w))

            ours = nablab.grad(loss(np), argnum)(z, w)
            theirs = autograd.grad(loss(anp), argnum)(z, w)
            assert ours == pytest.approx(theirs, rel=1e-10, abs=1e-10), (name, argnum)


# ----------------------------------------------------------------------------- against torch


def _torch_program(z, w):
    a = torch.sin(z) * w + torch.exp(z / (w + 3.0)) - torch.sqrt(z + 4.0) ** w
    b = torch.conj(a) * torch.tanh(z) + torch.asinh(w) / (1.5 + torch.abs(z))
    return torch.sum(torch.abs(b) ** 2 + torch.angle(a) + torch.real(a * b) - torch.imag(torch.log(w + 5.0)))


@HYP
@given(st.lists(complexes, min_size=3, max_size=3), st.lists(complexes, min_size=3, max_size=3))
def test_gradients_are_the_conjugates_of_torchs(zs, ws):
    z, w = onp.array(zs), onp.array(ws)
    assume(_away_from_kinks(z, w))
    tz, tw = torch.tensor(z), torch.tensor(w)
    assert float(_program(np, z, w)) == pytest.approx(float(_torch_program(tz, tw)), rel=1e-10, abs=1e-10)
    ours = nablab.grad(lambda z, w: _program(np, z, w), (0, 1))(z, w)
    theirs = torch.func.grad(_torch_program, (0, 1))(tz, tw)
    for o, t in zip(ours, theirs):
        onp.testing.assert_allclose(o, onp.conj(t.numpy()), rtol=1e-9, atol=1e-9)
