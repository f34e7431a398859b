"""Transforms: agreement between modes, nesting in every order, trees, and errors."""

import numpy as np
import pytest

import nablab as nb

rng = np.random.default_rng(1)


def f_scalar(x):
    return nb.sum(nb.tanh(x) * nb.exp(0.3 * x)) + nb.sum(x[:-1] * x[1:]) ** 2


def f_vector(x):
    return nb.concatenate([nb.sin(x) * x[0], nb.reshape(nb.sum(x ** 2), (1,))])


def test_jacrev_jacfwd_and_numerical_jacobian_agree():
    x = rng.standard_normal(3)
    jr, jf = nb.jacrev(f_vector)(x), nb.jacfwd(f_vector)(x)
    assert jr.shape == (4, 3)
    np.testing.assert_allclose(jr, jf, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jr, nb.numerical_jacobian(f_vector, x), rtol=1e-7, atol=1e-8)


def test_numerical_jacobian_forward_scheme_has_first_order_error():
    x = np.array([0.4, -1.2])
    exact = nb.jacrev(f_vector)(x)
    err_fwd = np.abs(nb.numerical_jacobian(f_vector, x, eps=1e-3, scheme="forward") - exact).max()
    err_cen = np.abs(nb.numerical_jacobian(f_vector, x, eps=1e-3, scheme="central") - exact).max()
    assert 1e-5 < err_fwd < 1e-2
    assert err_cen < err_fwd / 50


@pytest.mark.parametrize("mode", ["fwd-over-rev", "rev-over-rev", "fwd-over-fwd", "rev-over-fwd"])
def test_hessian_all_four_nestings_agree(mode):
    x = rng.standard_normal(4)
    reference = nb.hessian(f_scalar, mode="rev-over-rev")(x)
    h = nb.hessian(f_scalar, mode=mode)(x)
    np.testing.assert_allclose(h, reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    np.testing.assert_allclose(h, nb.numerical_jacobian(nb.grad(f_scalar), x), rtol=1e-6, atol=1e-7)


def test_hvp_matches_hessian_times_vector():
    x, v = rng.standard_normal(4), rng.standard_normal(4)
    np.testing.assert_allclose(nb.hvp(f_scalar, x, v), nb.hessian(f_scalar)(x) @ v, rtol=1e-12)


def test_third_and_fourth_derivatives_of_a_scalar_function():
    d = nb.grad
    x = 0.7
    # d^k/dx^k of exp(2x) = 2^k exp(2x)
    f = lambda x: nb.exp(2 * x)  # noqa: E731
    for k, fk in enumerate([d(f), d(d(f)), d(d(d(f))), d(d(d(d(f))))], start=1):
        assert np.isclose(fk(x), 2**k * np.exp(2 * x), rtol=1e-13)


def test_jvp_of_grad_and_grad_of_jvp_agree():
    x, v = rng.standard_normal(3), rng.standard_normal(3)
    fwd_over_rev = nb.jvp(nb.grad(f_scalar), (x,), (v,))[1]
    rev_over_fwd = nb.grad(lambda y: nb.jvp(f_scalar, (y,), (v,))[1])(x)
    np.testing.assert_allclose(fwd_over_rev, rev_over_fwd, rtol=1e-12)


def test_nested_transforms_do_not_confuse_perturbations():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1; a tracer that confuses levels gives 2.
    assert nb.grad(lambda x: x * nb.grad(lambda y: x + y)(1.0))(3.0) == 1.0
    # the same in forward mode
    inner = lambda x: nb.jvp(lambda y: x + y, (1.0,), (1.0,))[1]  # noqa: E731
    assert nb.jvp(lambda x: x * inner(x), (3.0,), (1.0,))[1] == 1.0


def test_grad_with_argnums_and_trees():
    params = {"w": rng.standard_normal((2, 3)), "b": [rng.standard_normal(2), 0.5]}
    x = rng.standard_normal(3)

    def loss(p, x):
        return nb.sum((p["w"] @ x + p["b"][0]) ** 2) * p["b"][1]

    g = nb.grad(loss)(params, x)
    assert set(g) == {"w", "b"} and g["w"].shape == (2, 3) and len(g["b"]) == 2
    r = params["w"] @ x + params["b"][0]
    np.testing.assert_allclose(g["w"], 2 * 0.5 * np.outer(r, x), rtol=1e-12)
    np.testing.assert_allclose(g["b"][1], np.sum(r**2), rtol=1e-12)
    gp, gx = nb.grad(loss, argnums=(0, 1))(params, x)
    np.testing.assert_allclose(gx, 2 * 0.5 * params["w"].T @ r, rtol=1e-12)


def test_value_and_grad_and_vjp_with_many_outputs():
    v, g = nb.value_and_grad(lambda x: nb.sum(x ** 2))(np.array([1.0, 2.0]))
    assert v == 5.0 and np.array_equal(g, [2.0, 4.0])
    out, vjp_fn = nb.vjp(lambda x, y: (x * y, x + y), np.array(2.0), np.array(3.0))
    assert out == (6.0, 5.0)
    assert vjp_fn((1.0, 0.0)) == (3.0, 2.0)
    assert vjp_fn((0.0, 1.0)) == (1.0, 1.0)


def test_results_are_numpy_and_constant_functions_give_zero():
    g = nb.grad(lambda x: 3.0)(np.ones(2))
    assert isinstance(g, np.ndarray) and np.array_equal(g, [0.0, 0.0])
    assert isinstance(nb.grad(lambda x: x * x)(2.0), (np.ndarray, np.floating))
    _, t = nb.jvp(lambda x: np.float64(1.0), (1.0,), (1.0,))
    assert t == 0.0


def quadratic_problem(n=6, d=4, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, d)), r.standard_normal(n), r.standard_normal(d)


def unrolled_loss(lr, X, t, w0, steps):
    n = X.shape[0]
    w = w0
    for _ in range(steps):
        w = w - lr * (2.0 / n) * (X.T @ (X @ w - t))
    r = X @ w - t
    return nb.sum(r * r) / n


def closed_form_lr_derivatives(lr, X, t, w0, steps):
    """L_k(lr) = (1/n) sum_i c_i^2 (1 - 2 lr lam_i / n)^(2k) in the eigenbasis of X X^T."""
    n = X.shape[0]
    lam, Q = np.linalg.eigh(X @ X.T)
    c2 = (Q.T @ (X @ w0 - t)) ** 2
    m = 1 - 2 * lr * lam / n
    k = steps
    L = np.sum(c2 * m ** (2 * k)) / n
    dL = np.sum(c2 * 2 * k * m ** (2 * k - 1) * (-2 * lam / n)) / n
    d2L = np.sum(c2 * 2 * k * (2 * k - 1) * m ** (2 * k - 2) * (2 * lam / n) ** 2) / n
    return L, dL, d2L


@pytest.mark.parametrize("steps", [1, 2, 7, 25])
def test_lr_hypergradient_through_gd_steps_matches_closed_form_in_both_modes(steps):
    X, t, w0 = quadratic_problem(seed=steps)
    lr = 0.05
    L, dL, d2L = closed_form_lr_derivatives(lr, X, t, w0, steps)
    loss = lambda lr: unrolled_loss(lr, X, t, w0, steps)  # noqa: E731
    value, reverse = nb.value_and_grad(loss)(lr)
    _, forward = nb.jvp(loss, (lr,), (1.0,))
    assert np.isclose(value, L, rtol=1e-12)
    assert np.isclose(reverse, dL, rtol=1e-10, atol=1e-13)
    assert np.isclose(forward, dL, rtol=1e-10, atol=1e-13)
    assert np.isclose(nb.grad(nb.grad(loss))(lr), d2L, rtol=1e-9)
    assert np.isclose(nb.jvp(nb.grad(loss), (lr,), (1.0,))[1], d2L, rtol=1e-9)
    assert np.isclose(nb.grad(lambda a: nb.jvp(loss, (a,), (1.0,))[1])(lr), d2L, rtol=1e-9)


def test_integer_inputs_are_refused_with_an_explanation():
    with pytest.raises(TypeError, match=r"dtype int64.*shape \(3,\).*floats"):
        nb.grad(nb.sum)(np.arange(3))
    with pytest.raises(TypeError, match="bool"):
        nb.grad(lambda x: x)(True)
    # Python ints are taken as floats.
    assert nb.grad(lambda x: x * x)(3) == 6.0


def test_shape_mismatch_names_the_op_and_both_shapes():
    with pytest.raises(nb.ShapeError, match=r"add.*\(3,\).*\(4,\)"):
        nb.grad(lambda x: nb.sum(x + np.ones(4)))(np.ones(3))
    with pytest.raises(nb.ShapeError, match=r"matmul.*\(2, 3\).*\(2, 3\)"):
        nb.matmul(nb.tensor(np.ones((2, 3))), np.ones((2, 3)))


def test_grad_of_a_vector_function_explains_itself():
    with pytest.raises(TypeError, match=r"scalar.*shape \(2,\).*jacrev"):
        nb.grad(lambda x: x * 2)(np.ones(2))


def test_jvp_tangent_shape_is_checked():
    with pytest.raises(nb.ShapeError, match=r"tangent 0 has shape \(2,\) but primal 0 has shape \(3,\)"):
        nb.jvp(nb.sin, (np.ones(3),), (np.ones(2),))


def test_vjp_cotangent_shape_is_checked():
    _, vjp_fn = nb.vjp(nb.sin, np.ones(3))
    with pytest.raises(nb.ShapeError, match=r"cotangent 0 has shape \(2,\)"):
        vjp_fn(np.ones(2))


def test_bad_arguments_to_transforms():
    with pytest.raises(IndexError, match="argnums=2"):
        nb.grad(lambda x: x, argnums=2)(1.0)
    with pytest.raises(ValueError, match="mode='sideways'"):
        nb.hessian(nb.sin, mode="sideways")
    with pytest.raises(ValueError, match="scheme='left'"):
        nb.numerical_jacobian(nb.sin, 1.0, scheme="left")


def test_float32_stays_float32():
    x = np.array([1.0, 2.0], dtype=np.float32)
    g = nb.grad(lambda x: nb.sum(nb.exp(x) * 2.0))(x)
    assert g.dtype == np.float32
