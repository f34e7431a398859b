"""Every primitive against finite differences, forward and reverse mode, to order 2 (float64)."""

import numpy as np
import pytest

import nablab as nb
from nablab.autodiff.numeric import GradcheckError

rng = np.random.default_rng(0)


def positive(*shape):
    return rng.uniform(0.5, 2.0, size=shape)


def anywhere(*shape):
    return rng.standard_normal(size=shape)


def away_from_zero(*shape):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 2.0, size=shape)


# name -> (function, arguments): every primitive and every composite op appears at least once.
CASES = {
    "add-broadcast": (lambda x, y: x + y, [anywhere(3, 4), anywhere(4)]),
    "subtract-broadcast": (lambda x, y: x - y, [anywhere(3, 1), anywhere(1, 4)]),
    "multiply-broadcast": (lambda x, y: x * y, [anywhere(2, 3), anywhere(3)]),
    "divide": (lambda x, y: x / y, [anywhere(3), away_from_zero(3)]),
    "divide-scalar-by-array": (lambda y: 2.0 / y, [away_from_zero(4)]),
    "negative": (lambda x: -x, [anywhere(3)]),
    "power-both": (lambda x, y: x ** y, [positive(3), anywhere(3)]),
    "power-int-exponent": (lambda x: x ** 3, [anywhere(4)]),
    "rpow": (lambda y: 2.0 ** y, [anywhere(3)]),
    "exp": (nb.exp, [anywhere(3)]),
    "log": (nb.log, [positive(3)]),
    "log1p": (nb.log1p, [positive(3)]),
    "expm1": (nb.expm1, [anywhere(3)]),
    "sqrt": (nb.sqrt, [positive(3)]),
    "sin": (nb.sin, [anywhere(3)]),
    "cos": (nb.cos, [anywhere(3)]),
    "tanh": (nb.tanh, [anywhere(3)]),
    "sigmoid": (nb.sigmoid, [anywhere(3)]),
    "softplus": (nb.softplus, [anywhere(3)]),
    "abs": (nb.abs, [away_from_zero(3)]),
    "relu": (nb.relu, [away_from_zero(5)]),
    "maximum": (nb.maximum, [anywhere(4), anywhere(4) + 0.5]),
    "minimum-broadcast": (nb.minimum, [anywhere(3, 4), anywhere(4) + 0.5]),
    "clip": (lambda x: nb.clip(x, -0.5, 0.5), [np.array([-1.0, -0.2, 0.1, 0.9])]),
    "where": (lambda x, y: nb.where(x > 0, x * y, y), [away_from_zero(4), anywhere(4)]),
    "astype-roundtrip": (lambda x: nb.astype(x, np.float64) * 2, [anywhere(3)]),
    "sum-all": (nb.sum, [anywhere(3, 4)]),
    "sum-axis": (lambda x: nb.sum(x, axis=1), [anywhere(3, 4)]),
    "sum-axes-keepdims": (lambda x: nb.sum(x, axis=(0, 2), keepdims=True), [anywhere(2, 3, 4)]),
    "mean-axis": (lambda x: nb.mean(x, axis=-1), [anywhere(3, 4)]),
    "var": (lambda x: nb.var(x, axis=0), [anywhere(5, 2)]),
    "max-all": (nb.max, [anywhere(3, 4)]),
    "max-axis-keepdims": (lambda x: nb.max(x, axis=0, keepdims=True), [anywhere(3, 4)]),
    "min-axis": (lambda x: nb.min(x, axis=1), [anywhere(3, 4)]),
    "logsumexp": (lambda x: nb.logsumexp(x, axis=1), [anywhere(3, 4)]),
    "logsumexp-all": (nb.logsumexp, [anywhere(3, 4)]),
    "softmax": (lambda x: nb.softmax(x, axis=-1), [anywhere(2, 3)]),
    "log_softmax": (lambda x: nb.log_softmax(x, axis=0), [anywhere(3, 2)]),
    "norm": (nb.norm, [anywhere(4)]),
    "reshape": (lambda x: nb.reshape(x, (4, 3)) * np.arange(12).reshape(4, 3), [anywhere(3, 4)]),
    "transpose": (lambda x: nb.transpose(x) @ np.ones((3, 2)), [anywhere(3, 4)]),
    "transpose-axes": (lambda x: nb.transpose(x, (2, 0, 1)) * np.arange(24).reshape(4, 2, 3), [anywhere(2, 3, 4)]),
    "broadcast_to": (lambda x: nb.broadcast_to(x, (3, 4)) * np.arange(12).reshape(3, 4), [anywhere(4)]),
    "getitem-slice": (lambda x: x[1:, ::2], [anywhere(3, 4)]),
    "getitem-int-array-repeats": (lambda x: x[np.array([0, 2, 2, 1])], [anywhere(3)]),
    "getitem-bool-mask": (lambda x: x[np.array([True, False, True])], [anywhere(3)]),
    "expand-squeeze": (lambda x: nb.squeeze(nb.expand_dims(x, 0), 0) * 2, [anywhere(3)]),
    "concatenate": (lambda x, y: nb.concatenate([x, y, x], axis=1), [anywhere(2, 2), anywhere(2, 3)]),
    "stack": (lambda x, y: nb.stack([x, y], axis=1), [anywhere(3), anywhere(3)]),
    "pad": (lambda x: nb.pad(x, ((1, 0), (2, 1))) * np.arange(24).reshape(4, 6), [anywhere(3, 3)]),
    "matmul-2d": (nb.matmul, [anywhere(2, 3), anywhere(3, 4)]),
    "matmul-vec-vec": (nb.matmul, [anywhere(3), anywhere(3)]),
    "matmul-mat-vec": (nb.matmul, [anywhere(2, 3), anywhere(3)]),
    "matmul-vec-batch": (nb.matmul, [anywhere(3), anywhere(2, 3, 4)]),
    "matmul-batch-vec": (nb.matmul, [anywhere(2, 4, 3), anywhere(3)]),
    "matmul-batch-broadcast": (nb.matmul, [anywhere(2, 1, 2, 3), anywhere(3, 3, 2)]),
    "dot": (nb.dot, [anywhere(3), anywhere(3, 2)]),
    "outer": (nb.outer, [anywhere(3), anywhere(2)]),
    "matrix_trace": (nb.matrix_trace, [anywhere(3, 3)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_every_primitive_to_order_two(name):
    f, args = CASES[name]
    assert nb.gradcheck(f, *args, modes=("fwd", "rev"), order=2, rtol=1e-5, atol=1e-6)


def test_gradcheck_catches_a_wrong_rule():
    wrong = nb.primitive(np.sin, name="wrong_sin")
    wrong.defvjp(lambda g, ans, x: g * nb.sin(x))  # should be cos
    wrong.defjvp(lambda t, ans, x: t * nb.cos(x))
    with pytest.raises(GradcheckError, match=r"\(VJP\) check of wrong_sin failed"):
        nb.gradcheck(wrong, np.array([0.3, 1.0]), modes=("rev",), order=1)
    assert nb.gradcheck(wrong, np.array([0.3, 1.0]), modes=("fwd",), order=1)


def test_maximum_and_max_split_the_gradient_at_ties():
    gx, gy = nb.grad(lambda x, y: nb.maximum(x, y), argnums=(0, 1))(1.0, 1.0)
    assert (gx, gy) == (0.5, 0.5)
    g = nb.grad(lambda x: nb.max(x))(np.array([2.0, 0.0, 2.0, 2.0]))
    np.testing.assert_allclose(g, [1 / 3, 0, 1 / 3, 1 / 3])
    gx, gy = nb.grad(lambda x, y: nb.minimum(x, y), argnums=(0, 1))(-1.0, -1.0)
    assert (gx, gy) == (0.5, 0.5)


def test_relu_and_abs_have_zero_derivative_at_zero():
    assert nb.grad(nb.relu)(0.0) == 0.0
    assert nb.grad(nb.abs)(0.0) == 0.0
    assert nb.grad(nb.relu)(1e-12) == 1.0


def test_logsumexp_is_stable_for_huge_inputs():
    x = np.array([1000.0, 1000.0])
    assert np.isclose(nb.logsumexp(x), 1000.0 + np.log(2.0))
    np.testing.assert_allclose(nb.grad(nb.logsumexp)(x), [0.5, 0.5])
    assert np.all(np.isfinite(nb.sigmoid(np.array([-800.0, 800.0]))))


def test_power_with_zero_base_has_finite_gradients():
    np.testing.assert_array_equal(nb.grad(lambda x: nb.sum(x ** 2.0))(np.array([0.0, 1.0])), [0.0, 2.0])
    assert nb.grad(lambda y: 0.0 ** y)(2.0) == 0.0
