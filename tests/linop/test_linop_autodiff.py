"""Operators inside nablab's transforms: gradients, forward mode and second order."""

import numpy as np

import nablab as nb
from nablab.linop import Convolution1d, Convolution2d, MatrixOperator

rng = np.random.default_rng(0)
n, r, lam = 40, 5, 0.1
k = rng.standard_normal(r)
b = 2 * rng.standard_normal(n - r + 1)
A = Convolution1d(k, n)
D = A.todense()


def huber(y):
    a = nb.abs(y)
    return nb.sum(nb.where(a <= 1, 0.5 * y * y, a - 0.5))


def objective(x):
    return huber(A @ x - b) + lam / 2 * nb.sum(x * x)


def test_grad_is_the_seeds_update_direction():
    x = rng.standard_normal(n)
    by_hand = A.T @ np.clip(A @ x - b, -1, 1) + lam * x  # the seed's gradient
    np.testing.assert_allclose(nb.grad(objective)(x), by_hand, rtol=1e-12, atol=1e-12)


def test_gd_through_autodiff_matches_the_seed_loop():
    x_seed = x_nb = np.zeros(n)
    alpha = 0.5 / np.sum(np.abs(k)) ** 2
    for _ in range(100):
        x_seed = x_seed - alpha * (A.T @ np.clip(A @ x_seed - b, -1, 1) + lam * x_seed)
        x_nb = x_nb - alpha * nb.grad(objective)(x_nb)
    np.testing.assert_allclose(x_nb, x_seed, rtol=1e-12, atol=1e-13)


def test_forward_mode_and_second_order():
    x, t = rng.standard_normal(n), rng.standard_normal(n)
    y, jt = nb.jvp(lambda v: A @ v, (x,), (t,))
    np.testing.assert_allclose(jt, D @ t)
    quad = lambda v: 0.5 * nb.sum((A.T @ (A @ v)) ** 2)  # Hessian (A^T A)^2
    H = nb.hessian(quad)(x)
    np.testing.assert_allclose(H, (D.T @ D) @ (D.T @ D), rtol=1e-10, atol=1e-10)
    assert nb.gradcheck(objective, x, order=2)


def test_composed_and_2d_operators():
    B = MatrixOperator(rng.standard_normal((3, n - r + 1)))
    C = 2.0 * (B @ A)
    x = rng.standard_normal(n)
    g = nb.grad(lambda v: nb.sum(nb.tanh(C @ v)))(x)
    np.testing.assert_allclose(g, C.todense().T @ (1 - np.tanh(C.todense() @ x) ** 2), rtol=1e-12)
    K = Convolution2d(rng.standard_normal((2, 3)), (5, 6))
    img = rng.standard_normal(30)
    np.testing.assert_allclose(nb.grad(lambda v: 0.5 * nb.sum((K @ v) ** 2))(img),
                               K.todense().T @ (K.todense() @ img), rtol=1e-12)


def test_imperative_backward():
    x = nb.tensor(rng.standard_normal(n), requires_grad=True)
    loss = nb.sum((A @ x) ** 2)
    loss.backward()
    np.testing.assert_allclose(np.asarray(x.grad.numpy() if hasattr(x.grad, "numpy") else x.grad),
                               2 * D.T @ (D @ x.numpy()), rtol=1e-12)

def test_vector_times_operator_inside_differentiated_code_keeps_the_trace():
    import nablab as nb
    from nablab.linop import Convolution1d

    A = Convolution1d(np.array([1.0, 2.0, 3.0]), 10)
    x = np.random.default_rng(0).standard_normal(8)
    left = nb.grad(lambda x: nb.sum((x @ A) ** 2))(x)
    right = nb.grad(lambda x: nb.sum((A.T @ x) ** 2))(x)
    np.testing.assert_allclose(left, right, rtol=1e-14)
    assert np.abs(left).max() > 0
    X = np.random.default_rng(1).standard_normal((2, 8))
    np.testing.assert_allclose(nb.jacrev(lambda X: X @ A)(X), nb.jacrev(lambda X: (A.T @ X.T).T)(X), rtol=1e-14)
