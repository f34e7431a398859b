"""In-place changes are caught: version counters, copy-on-write, read-only views, snapshots."""

import numpy as np
import pytest

import nablab as nb
from nablab.autodiff.core import InPlaceError
from nablab.optim import SGD


def test_item_assignment_after_the_forward_pass_makes_backward_raise():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    with nb.no_grad():
        x[0] = 10.0
    with pytest.raises(RuntimeError, match=r"backward of multiply: its argument 0, a tensor of shape \(2,\).*item assignment"):
        y.backward()
    assert x.grad is None
    # a new forward pass sees the new value
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [20.0, 4.0])


@pytest.mark.parametrize("change", [
    lambda x: x.__isub__(1.0),
    lambda x: x.__imul__(2.0),
    lambda x: x.zero_(),
    lambda x: x.copy_(np.array([5.0, 6.0])),
    lambda x: setattr(x, "data", np.array([5.0, 6.0])),
])
def test_every_in_place_change_counts(change):
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = nb.sum(nb.exp(x))
    with nb.no_grad():
        change(x)
    with pytest.raises(RuntimeError, match="backward of exp"):
        y.backward()


def test_optimizer_step_then_backward_of_the_old_graph_raises():
    w = nb.tensor([1.0, -1.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    loss = nb.sum(w * w)
    loss.backward()
    opt.step()
    with pytest.raises(RuntimeError, match="optimizer step"):
        loss.backward()


def test_ops_that_keep_only_shapes_do_not_care():
    # add and sum need no values for their backward pass, as in PyTorch
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = nb.sum(x + 1.0)
    with nb.no_grad():
        x[1] = 7.0
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_changing_the_output_of_a_recorded_op_is_caught():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    with nb.no_grad():
        y[0] = 0.0
    with pytest.raises(RuntimeError, match="its output .* was changed in place"):
        nb.sum(y).backward()


def test_copy_on_write_keeps_values_a_graph_saved():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    with nb.no_grad():
        c = x * 1.0  # a constant the next op saves
    y = nb.sum(x * c)
    saved = y._node.parents  # the graph holds c's array itself
    c[0] = 100.0
    assert c.numpy()[0] == 100.0
    # the array the multiply recorded is untouched, and the changed constant is refused
    with pytest.raises(RuntimeError, match="changed in place"):
        y.backward()
    assert saved


def test_data_and_numpy_are_read_only_views():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="read-only"):
        x.data[0] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        x.numpy()[0] = 5.0
    writable = np.array(x.numpy())
    writable[0] = 5.0
    assert x.numpy()[0] == 1.0


def test_in_place_on_a_traced_value_is_refused():
    def f(a, b):
        a[1] = b
        return a

    with pytest.raises(TypeError, match="item assignment"):
        nb.grad(lambda a: nb.sum(f(a, 3.0)))(np.ones(3))
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(InPlaceError, match="no_grad"):
        x += 1.0


def test_writing_a_traced_value_into_a_constant_is_refused():
    c = nb.tensor(np.zeros(2))

    def f(x):
        c[0] = x
        return nb.sum(c)

    with pytest.raises(InPlaceError, match="traced value"):
        nb.grad(f)(1.0)


def test_transform_inputs_are_snapshots():
    # The VJP runs after f returns; changing the caller's array in between does not change it.
    a = np.array([1.0, 2.0])
    out, vjp_fn = nb.vjp(lambda x: x * x, a)
    a[0] = 100.0
    np.testing.assert_array_equal(vjp_fn(np.ones(2))[0], [2.0, 4.0])
    np.testing.assert_array_equal(out, [1.0, 4.0])
