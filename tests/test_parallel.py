"""Work split over threads (nablab.parallel) gives the same bits as in one piece: ReLU both ways, Adam's update."""

import threading
import warnings

import numpy as np
import pytest

import nablab as nb
from nablab import optim, parallel


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and a record of how many parts each split made."""
    previous = parallel.threads(2)
    splits = []
    real = parallel.map_items

    def spy(fn, items, blas=True):
        splits.append(len(items))
        return real(fn, items, blas)

    monkeypatch.setattr(parallel, "map_items", spy)
    yield splits
    parallel.threads(previous)


def _big(rng, dtype=np.float32):
    x = rng.standard_normal(5 * (parallel.MIN_PARALLEL_SIZE // 5 + 2469)).astype(dtype).reshape(-1, 5)
    x[::7] = 0.0  # the kink, where the derivative is 0
    x[3, 1] = np.nan  # where the value is NaN and the gradient passes
    return x


def test_relu_and_its_derivatives_in_parts_give_the_bits_of_one_piece(two_threads):
    rng = np.random.default_rng(0)
    x, g = _big(rng), rng.standard_normal(_big(rng).shape).astype(np.float32)
    value, vjp = nb.vjp(nb.relu, x)
    grad, = vjp(g)
    _, tangent = nb.jvp(nb.relu, (x,), (g,))
    assert two_threads and max(two_threads) == 2, "nothing was split"
    parallel.threads(1)
    value1, vjp1 = nb.vjp(nb.relu, x)
    for ours, one_piece in ((value, value1), (grad, vjp1(g)[0]), (tangent, nb.jvp(nb.relu, (x,), (g,))[1])):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, one_piece)
    np.testing.assert_array_equal(grad, np.where(~(x <= 0), g, 0 * g))  # and it is ReLU's derivative


def test_adams_update_in_parts_gives_the_bits_of_one_piece(two_threads):
    rng = np.random.default_rng(1)
    params = {"w": _big(rng, np.float64), "b": rng.standard_normal(3)}
    params["w"][3, 1] = 0.5
    grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}

    def run():
        opt = optim.adam(lr=0.01, weight_decay=0.1)
        state = opt.init(params)
        updates, state = opt.update(grads, state, params)
        updates, state = opt.update(grads, state, optim.apply_updates(params, updates))
        return updates["w"], state["v"]["w"]

    split = run()
    assert max(two_threads) == 2, "nothing was split"
    parallel.threads(1)
    for ours, one_piece in zip(split, run()):
        np.testing.assert_array_equal(ours, one_piece)


def test_elementwise_leaves_what_it_cannot_split_to_the_ufunc(two_threads):
    x = np.arange(-6.0, 6.0).reshape(3, 4)
    np.testing.assert_array_equal(parallel.elementwise(np.maximum, x.T, 0.0, min_size=1), np.maximum(x.T, 0.0))
    assert not two_threads  # not C-contiguous: one call
    out = parallel.elementwise(np.less_equal, x, 0.0, min_size=1)
    assert out.dtype == bool and two_threads == [2]
    np.testing.assert_array_equal(out, x <= 0)


def test_threads_refuses_what_is_not_a_positive_int():
    with pytest.raises(ValueError, match="positive int, got 0"):
        parallel.threads(0)


def test_a_split_inside_a_split_runs_in_turn_instead_of_waiting_on_itself(two_threads):
    """Each pool thread runs one outer item; a large ReLU inside it must not wait for the busy pool."""
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(parallel.MIN_PARALLEL_SIZE * 2) for _ in range(2)]
    out = parallel.map_items(nb.relu, xs)
    for x, y in zip(xs, out):
        np.testing.assert_array_equal(y, np.maximum(x, 0.0))


def test_the_callers_errstate_holds_on_every_thread():
    """NumPy keeps errstate in the context: each part runs in a copy of the caller's, so a division by zero
    raises (or stays quiet) whatever the thread count."""
    x = np.ones(parallel.MIN_PARALLEL_SIZE * 2)
    x[-1] = 0.0
    previous = parallel.threads(2)
    try:
        with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
            parallel.elementwise(np.divide, 1.0, x)
        with np.errstate(divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isinf(parallel.elementwise(np.divide, 1.0, x)[-1])
    finally:
        parallel.threads(previous)


def test_elementwise_leaves_subclasses_to_the_ufunc(two_threads):
    x = np.ma.masked_less(np.arange(-3.0, 3.0), -2.0)
    out = parallel.elementwise(np.maximum, x, 0.0, min_size=1)
    assert isinstance(out, np.ma.MaskedArray) and not two_threads


def test_a_forked_child_makes_its_own_pool(two_threads):
    """The parent's pool threads do not exist in a forked child: the child's first split makes a new pool."""
    import multiprocessing

    x = np.arange(-2.0, 2.0).repeat(parallel.MIN_PARALLEL_SIZE)
    np.testing.assert_array_equal(parallel.elementwise(np.maximum, x, 0.0), np.maximum(x, 0.0))  # parent's pool
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_relu_sum_on_two_threads, (x,)) == float(np.maximum(x, 0.0).sum())


def _relu_sum_on_two_threads(x):
    parallel.threads(2)
    return float(parallel.elementwise(np.maximum, x, 0.0).sum())


def test_map_items_keeps_the_order_raises_the_first_error_and_leaves_the_caller_free_to_split_again():
    """The caller's thread takes items too: afterwards (after an error as well) it splits work again."""
    previous = parallel.threads(2)
    try:
        assert parallel.map_items(lambda i: i * i, list(range(50))) == [i * i for i in range(50)]

        def fail_from_ten(i):
            if i >= 10:
                raise ValueError(f"item {i}")
            return i

        with pytest.raises(ValueError, match="item 10$"):
            parallel.map_items(fail_from_ten, list(range(11)))
        assert not parallel._serial.active


        def inner_split_stays_on_this_thread(_):
            here = threading.get_ident()
            return set(parallel.map_items(lambda _: threading.get_ident(), [0, 1, 2])) == {here}

        assert parallel.map_items(inner_split_stays_on_this_thread, [0, 1]) == [True, True]
        assert not parallel._serial.active
    finally:
        parallel.threads(previous)
