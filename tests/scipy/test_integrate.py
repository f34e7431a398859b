"""nablab.scipy.integrate.odeint: SciPy's values, derivatives in y0, t and args against the
closed-form solution of a linear system (first and second order, both modes), gradcheck to
order 2, HIPS autograd's adjoint, nested args, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate as si
from hypothesis import given, settings, strategies as st

import nablab as nb
import nablab.numpy as nnp
import nablab.scipy.integrate as nint
from nablab.autodiff.dispatch import UnsupportedFunctionError

TIGHT = dict(rtol=1e-12, atol=1e-12)


def decay(y, t, k):
    return -k * y


def autograd_problem(y, t, arg1, arg2):
    # the system of HIPS autograd's own test: explicit time dependence, two array arguments
    return -nnp.sqrt(t) - y + arg1 - nnp.mean((y + arg2) ** 2)


def _problem(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(3), np.linspace(0.1, 0.2, 4), (rng.standard_normal(3), rng.standard_normal(3))


def test_values_are_scipys():
    y0, t, args = _problem(0)
    want = si.odeint(lambda y, t, a, b: -np.sqrt(t) - y + a - np.mean((y + b) ** 2), y0, t, args)
    np.testing.assert_array_equal(nint.odeint(autograd_problem, y0, t, args), want)
    traced_value, _ = nb.vjp(lambda y0: nint.odeint(autograd_problem, y0, t, args), y0)
    np.testing.assert_array_equal(traced_value, want)


def test_linear_decay_against_the_closed_form():
    y0, k = np.array([1.3, -0.4]), np.array([0.7, 1.9])
    t = np.array([0.2, 0.5, 1.1, 1.6])
    span = (t - t[0])[:, None]
    y = y0 * np.exp(-k * span)

    def solve(y0, t, k):
        return nint.odeint(decay, y0, t, (k,), **TIGHT)

    np.testing.assert_allclose(solve(y0, t, k), y, rtol=1e-10)
    for jac in (nb.jacrev, nb.jacfwd):
        d_y0, d_t, d_k = (jac(solve, i)(y0, t, k) for i in range(3))
        np.testing.assert_allclose(d_y0, np.exp(-k * span)[:, :, None] * np.eye(2), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(d_k, (-span * y)[:, :, None] * np.eye(2), rtol=1e-8, atol=1e-12)
        # an output time moves its output along the flow; t_0 moves every later output
        want_t = np.zeros((4, 2, 4))
        for i in range(1, 4):
            want_t[i, :, i] = -k * y[i]
            want_t[i, :, 0] = k * y[i]
        np.testing.assert_allclose(d_t, want_t, rtol=1e-8, atol=1e-10)
    # second order in the rate, all four nestings
    for mode in ("fwd-over-rev", "rev-over-rev", "fwd-over-fwd", "rev-over-fwd"):
        h = nb.hessian(lambda k: nnp.sum(solve(y0, t, k)[-1]), mode=mode)(k)
        np.testing.assert_allclose(h, np.diag(span[-1] ** 2 * y[-1]), rtol=1e-7, atol=1e-10)


def test_gradcheck_first_order_default_tolerances():
    y0, t, args = _problem(1)
    nb.gradcheck(lambda y0, t, args: nint.odeint(autograd_problem, y0, t, args), y0, t, args,
                 modes=("fwd", "rev"), order=1)


def test_gradcheck_second_order_both_modes():
    y0, t, args = _problem(2)
    nb.gradcheck(lambda y0, t, args: nint.odeint(autograd_problem, y0, t, args, rtol=1e-10, atol=1e-10),
                 y0, t, args, modes=("fwd", "rev"), order=2)


def test_nested_args_static_leaves_and_tfirst():
    def rhs(t, y, params, scale, label):
        assert label == "static"
        return scale * params["w"] * nnp.sin(y + params["b"][0]) + t

    y0 = np.array([0.3, -0.2])
    t = np.array([0.0, 0.4, 0.9])
    params = {"w": np.array([0.8, 1.1]), "b": (np.array([0.1, 0.2]),)}

    def solve(y0, t, params):
        return nint.odeint(rhs, y0, t, (params, 2, "static"), tfirst=True, rtol=1e-10, atol=1e-10)

    want = si.odeint(lambda t, y: 2 * params["w"] * np.sin(y + params["b"][0]) + t, y0, t, tfirst=True,
                     rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(solve(y0, t, params), want, rtol=1e-12)
    nb.gradcheck(solve, y0, t, params, modes=("fwd", "rev"), order=2)


autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402
from autograd.scipy.integrate import odeint as ag_odeint  # noqa: E402


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_against_autograds_adjoint(seed):
    from autograd.builtins import tuple as ag_tuple

    y0, t, args = _problem(seed)

    def ag_rhs(y, t, a, b):
        return -anp.sqrt(t) - y + a - anp.mean((y + b) ** 2)

    def loss_nb(y0, t, args):
        return nnp.sum(nnp.sin(nint.odeint(autograd_problem, y0, t, args, **TIGHT)))

    def loss_ag(y0, t, args):
        return anp.sum(anp.sin(ag_odeint(ag_rhs, y0, t, args, **TIGHT)))

    for i in range(2):
        np.testing.assert_allclose(nb.grad(loss_nb, i)(y0, t, args), autograd.grad(loss_ag, i)(y0, t, ag_tuple(args)),
                                   rtol=1e-8, atol=1e-10)
    for mine, theirs in zip(nb.grad(loss_nb, 2)(y0, t, args), autograd.grad(loss_ag, 2)(y0, t, ag_tuple(args))):
        np.testing.assert_allclose(mine, theirs, rtol=1e-8, atol=1e-10)


def test_refusals_are_clear():
    y0, t, args = _problem(3)
    with pytest.raises(UnsupportedFunctionError, match="full_output"):
        nb.grad(lambda y0: nnp.sum(nint.odeint(autograd_problem, y0, t, args, full_output=True)[0]))(y0)
    with pytest.raises(UnsupportedFunctionError, match="Dfun"):
        nb.grad(lambda y0: nnp.sum(nint.odeint(decay, y0, t, (1.0,), Dfun=lambda y, t, k: -k * np.eye(3))))(y0)
    with pytest.raises(TypeError, match="complex"):
        nb.grad(lambda y0: nnp.sum(nnp.real(nint.odeint(decay, y0 + 0j, t, (1.0,)))))(y0)
    with pytest.raises(UnsupportedFunctionError, match="scipy.integrate.quad"):
        nb.grad(lambda a: nint.quad(lambda x, a: a * x, 0.0, 1.0, args=(a,))[0])(2.0)
    # constants still work through SciPy's own functions
    assert nint.quad(lambda x: x, 0.0, 1.0)[0] == pytest.approx(0.5)
    y, info = nint.odeint(decay, y0, t, (1.0,), full_output=True)
    assert y.shape == (4, 3) and "nst" in info
