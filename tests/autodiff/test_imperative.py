"""The PyTorch-style face: tensor, backward, .grad accumulation, no_grad, in-place rules."""

import numpy as np
import pytest
import torch

import nablab as nb


def test_backward_fills_grad_like_torch():
    data = np.array([[0.5, -1.0], [2.0, 0.3]])
    x = nb.tensor(data, requires_grad=True)
    w = nb.tensor([1.5, -0.5], requires_grad=True)
    loss = nb.sum(nb.tanh(x @ w) ** 2) + nb.mean(x)
    loss.backward()
    xt = torch.tensor(data, requires_grad=True)
    wt = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
    (torch.tanh(xt @ wt).pow(2).sum() + xt.mean()).backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-13)


def test_grad_accumulates_across_backward_calls_until_zeroed():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 3 * np.array([2.0, 4.0]))
    x.grad.zero_()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    x.grad = None
    assert x.grad is None


def test_no_grad_stops_recording_and_allows_sgd_updates_in_place():
    w = nb.tensor([1.0, -2.0], requires_grad=True)
    target = np.array([0.5, 0.5])
    for _ in range(200):
        loss = nb.sum((w - target) ** 2)
        w.grad = None
        loss.backward()
        with nb.no_grad():
            w -= 0.1 * w.grad
            y = w * 2
    assert not y.requires_grad
    assert w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), target, atol=1e-12)
    assert nb.is_grad_enabled()


def test_in_place_update_of_a_recorded_leaf_is_refused():
    w = nb.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1.0


def test_backward_errors_explain_themselves():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar.*shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(nb.ShapeError, match=r"gradient has shape \(3,\)"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="requires_grad=True"):
        nb.tensor([1.0]).backward()
    with pytest.raises(TypeError, match="int64 cannot require grad"):
        nb.tensor(np.arange(3), requires_grad=True)


def test_each_grad_is_its_own_array_even_where_the_pass_shares_one():
    """backward() hands an unshared gradient array on as .grad without a copy; these are the cases where the pass's
    result is shared (the seed itself, one cotangent for two leaves, a view of either) and .grad must be a copy."""
    x = nb.tensor(np.ones(3), requires_grad=True)
    y = nb.tensor(np.ones(3), requires_grad=True)
    z = nb.tensor(np.ones(3), requires_grad=True)
    seed = np.arange(3.0)
    (x + y + z.reshape(3, 1).reshape(3)).backward(seed)
    grads = [t.grad.numpy() for t in (x, y, z)]
    for i, g in enumerate(grads):
        assert not np.shares_memory(g, seed)
        for other in grads[i + 1:]:
            assert not np.shares_memory(g, other)
    for g in grads:
        np.testing.assert_array_equal(g, seed)
    w = nb.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    (w * 2.0).backward(np.ones(3))  # a float64 seed: .grad takes the tensor's dtype
    assert w.grad.numpy().dtype == np.float32


def test_vector_backward_with_a_gradient_argument():
    x = nb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x ** 2).backward(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, 12.0])


def test_functional_transform_inside_imperative_code():
    w = nb.tensor([0.3, 0.7], requires_grad=True)
    # the gradient of an inner function of x, evaluated with the imperative w as a constant of x
    g = nb.grad(lambda x: nb.sum(w * x ** 2))(np.array([1.0, 1.0]))
    np.testing.assert_allclose(g.numpy(), [0.6, 1.4])
    nb.sum(g).backward()  # and it still carries w's graph
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 2.0])


def test_tensor_behaves_like_an_array():
    x = nb.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.shape == (2, 2) and x.ndim == 2 and x.size == 4 and x.dtype == np.float64
    assert (x.T @ x).shape == (2, 2)
    assert float(x.sum()) == 10.0 and x.max().item() == 4.0
    assert np.array_equal(np.asarray(x[1]), [3.0, 4.0])
    assert np.array_equal(x > 2, [[False, False], [True, True]])
    assert "tensor(" in repr(x)
    assert np.array_equal(np.ones(2) + x, x + np.ones(2))
    assert isinstance(np.ones(2) + x, nb.Tensor)
    assert len(list(iter(x))) == 2
