"""Nothing silent: traced values never become plain arrays unasked, lists of them work,
NumPy's own functions are recorded or refused by name, and the size-1 / complex rules of grad."""

import numpy as np
import pytest

import nablab as nb
import nablab.numpy as nnp
from nablab import TracedValueError, UnsupportedFunctionError


# --------------------------------------------------------------------------- lists of traced values

@pytest.mark.parametrize("f, x, expected", [
    (lambda x: nb.sum([x, x]), 1.0, 2.0),
    (lambda x: nb.max([x, 0.5]), 1.0, 1.0),
    (lambda x: nb.max([x, 0.5]), 0.0, 0.0),
    (lambda x: nb.logsumexp([x, 0.0]), 1.0, np.exp(1.0) / (np.exp(1.0) + 1.0)),
    (lambda x: nb.sum(nnp.array([x, x])), 1.0, 2.0),
    (lambda x: nb.sum(nnp.array([[x, 1.0], [2.0, x * x]])), 3.0, 7.0),
    (lambda a: nb.sum(nb.linspace(a, 1.0, 5)), 0.0, 2.5),
    (lambda x: nb.norm([x, x + 2]), 1.0, (1.0 + 3.0) / np.sqrt(10.0)),
    (lambda x: nb.mean([x, 2 * x, 3 * x]), 1.0, 2.0),
    (lambda x: nb.sum(nb.stack([x, -x])), 1.0, 0.0),
    (lambda x: nb.sum(nb.concatenate([[x], [x, x]])), 1.0, 3.0),
    (lambda x: nb.dot([x, 1.0], [2.0, x]), 1.0, 3.0),
])
def test_lists_of_traced_values_keep_their_derivative(f, x, expected):
    assert nb.grad(f)(x) == pytest.approx(expected, rel=1e-12)
    # forward mode sees the same list handling
    assert nb.jvp(f, (x,), (1.0,))[1] == pytest.approx(expected, rel=1e-12)


def test_numpy_array_of_traced_values_is_refused_by_name():
    with pytest.raises(TracedValueError, match=r"conversion to a NumPy array.*test_nothing_silent.py"):
        nb.grad(lambda x: nb.sum(np.array([x, x])))(1.0)


def test_implicit_float_is_refused_but_explicit_requests_are_allowed():
    with pytest.raises(TracedValueError, match="float"):
        nb.grad(lambda x: float(x) * x)(1.0)
    # int() and .item() are explicit: no derivative is expected through them
    assert nb.grad(lambda x: x * int(x))(2.0) == 2.0
    assert nb.grad(lambda x: x * x.item())(3.0) == 3.0
    assert nb.grad(lambda x: x * nb.stop_gradient(x))(3.0) == 3.0


def test_imperative_tensor_that_requires_grad_is_not_converted_implicitly():
    w = nb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TracedValueError, match="requires grad"):
        np.asarray(w * 2)
    np.testing.assert_array_equal((w * 2).numpy(), [2.0, 4.0])
    with nb.no_grad():
        np.testing.assert_array_equal(np.asarray(w * 2), [2.0, 4.0])


# --------------------------------------------------------------------------- NumPy's own functions on tensors

def test_numpy_functions_and_ufuncs_on_tensors_are_recorded():
    f = lambda x: np.sum(np.exp(x) * np.concatenate([x, x])[:2])  # noqa: E731
    x = np.array([0.3, -0.2])
    np.testing.assert_allclose(nb.grad(f)(x), np.exp(x) * (x + 1), rtol=1e-12)
    assert nb.gradcheck(f, x, order=2)
    t = nb.tensor([1.0, 2.0])
    assert isinstance(np.sum(t), nb.Tensor) and np.sum(t).item() == 3.0
    # ndarray on the left of an operator gives the tensor's operation too
    g = nb.grad(lambda x: nb.sum(np.array([2.0, 3.0]) * x))(np.ones(2))
    np.testing.assert_array_equal(g, [2.0, 3.0])


def test_unsupported_numpy_function_names_itself():
    with pytest.raises(UnsupportedFunctionError, match=r"numpy\.histogram"):
        nb.grad(lambda x: nb.sum(np.histogram(x)[1]))(np.array([0.1, 0.5]))
    with pytest.raises(UnsupportedFunctionError, match=r"numpy\.histogram"):
        nb.grad(lambda x: nb.sum(nnp.histogram(x)[1]))(np.array([0.1, 0.5]))
    # with constants it is NumPy's own function
    counts, _ = nnp.histogram(np.array([0.1, 0.5]), bins=2)
    np.testing.assert_array_equal(counts, [1, 1])


def test_ufunc_with_out_on_a_traced_value_is_refused():
    buf = np.zeros(2)
    with pytest.raises(TypeError, match="out="):
        nb.grad(lambda x: nb.sum(np.exp(x, out=buf)))(np.ones(2))


def test_tensor_has_numpy_array_methods():
    x = np.arange(6.0).reshape(2, 3)
    t = nb.tensor(x)
    assert t.ndim == 2 and t.size == 6 and t.T.shape == (3, 2) and t.itemsize == 8
    np.testing.assert_array_equal(t.ravel().numpy(), x.ravel())
    np.testing.assert_array_equal(t.flatten().numpy(), x.flatten())
    np.testing.assert_array_equal(nb.tensor(x[None]).squeeze().numpy(), x)
    np.testing.assert_allclose(t.sum(axis=1, keepdims=True).numpy(), x.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(t.std(axis=0, ddof=1).numpy(), x.std(axis=0, ddof=1))
    np.testing.assert_allclose(t.var().numpy(), x.var())
    np.testing.assert_allclose(t.mean(axis=0).numpy(), x.mean(axis=0))
    np.testing.assert_allclose(t.dot(x.T).numpy(), x @ x.T)
    np.testing.assert_allclose(t.clip(1, 4).numpy(), x.clip(1, 4))
    assert t.max().item() == 5.0 and t.min().item() == 0.0
    assert t.astype(int).dtype.kind == "i"
    assert np.sum(t, axis=0).shape == (3,)


# --------------------------------------------------------------------------- grad's output rules

def test_grad_accepts_one_value_of_any_shape_and_refuses_more():
    assert nb.grad(lambda x: nb.reshape(x * x, (1, 1)))(3.0) == 6.0
    np.testing.assert_allclose(nb.grad(lambda x: x[None, :1] * 2)(np.array([1.0, 2.0])), [2.0, 0.0])
    with pytest.raises(TypeError, match=r"shape \(2,\)"):
        nb.grad(lambda x: x * 2)(np.ones(2))


def test_grad_refuses_complex_and_boolean_outputs():
    with pytest.raises(TypeError, match="complex"):
        nb.grad(lambda x: x * (1.0 + 0.2j))(1.0)
    with pytest.raises(TypeError, match="boolean"):
        nb.grad(lambda x: nnp.allclose(x, x * 3.0 / 3.0))(np.ones(3))
    g = nb.holomorphic_grad(lambda z: z * (1.0 + 0.2j))(1.0 + 0.0j)
    assert g == pytest.approx(1.0 + 0.2j)


def test_real_function_of_a_complex_input_follows_autograds_convention():
    # f(z) = |z|^2 = x^2 + y^2: df/dx - i df/dy = 2x - 2iy = 2 conj(z)
    z = 0.3 + 0.4j
    assert nb.grad(lambda z: nnp.real(z * nnp.conj(z)))(z) == pytest.approx(2 * np.conj(z))


# --------------------------------------------------------------------------- the bugs of the issue, kept fixed

def test_second_derivative_of_power_zero_at_zero_is_zero():
    d2 = nb.grad(nb.grad(lambda x: x ** 0.0))
    assert d2(0.0) == 0.0
    assert nb.grad(nb.grad(lambda x: x ** 2.0))(0.0) == 2.0


def test_pad_with_an_int_width_differentiates():
    g = nb.grad(lambda x: nb.sum(nb.pad(x, 1) ** 2))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [2.0, 4.0])
    assert nb.gradcheck(lambda x: nb.pad(x, ((1, 0), (2, 1))), np.ones((2, 2)), order=2)


def test_stacking_zero_dimensional_items_promotes_as_numpy_does():
    assert nb.grad(lambda x: nb.sum(nb.vstack([x, 2 * x])))(1.0) == 3.0
    assert nb.grad(lambda x: nb.sum(nb.hstack([x, 2 * x])))(1.0) == 3.0
    assert nb.vstack([1.0, 2.0]).shape == np.vstack([1.0, 2.0]).shape


def test_scipys_own_ufuncs_on_traced_values_reach_nablab_or_name_themselves():
    special = pytest.importorskip("scipy.special")
    # scipy.special.gamma is a NumPy ufunc: called on a tensor it dispatches to nablab.scipy.special
    assert nb.grad(lambda x: special.gamma(x))(1.5) == pytest.approx(special.digamma(1.5) * special.gamma(1.5))
    with pytest.raises(UnsupportedFunctionError, match=r"scipy\.special\.zeta"):
        nb.grad(lambda x: special.zeta(x, 1.0))(1.5)


@pytest.mark.parametrize("f", [
    lambda x: __import__("math").exp(x),
    lambda x: np.float64(x) * x,
    lambda x: nnp.sum(np.asarray([x])),
    lambda x: np.vectorize(lambda v: v * 2)(x),
])
def test_python_and_numpy_conversions_of_traced_values_raise(f):
    with pytest.raises(TracedValueError):
        nb.grad(f)(1.5)


def test_round_and_int_are_explicit_and_piecewise_constant():
    assert nb.grad(lambda x: round(x) * x)(1.5) == 2.0
    assert nb.grad(lambda x: int(x) * x)(2.5) == 2.0
