"""optim.run, the one loop: observation, divergence policies, continuation, and derivatives through it."""

import pickle

import numpy as np
import pytest

import nablab as nb
from nablab import optim
from nablab.errors import DivergenceError
from nablab.hyper import quadratic_lr


def lsq(seed=0, n=6, d=4):
    rng = np.random.default_rng(seed)
    X, t = rng.standard_normal((n, d)), rng.standard_normal(n)
    return X, t, (lambda w, k=None: (2.0 / n) * X.T @ (X @ w - t))


def test_observe_sees_the_start_and_every_step_as_a_hand_written_loop_does():
    X, t, grad_fn = lsq()
    opt = optim.adam(0.05)
    seen = []
    run = optim.run(opt, np.zeros(4), grad_fn, 20, observe=lambda k, w: seen.append((k, w.copy())))
    w, state, expected = np.zeros(4), opt.init(np.zeros(4)), [(0, np.zeros(4))]
    for k in range(20):
        updates, state = opt.update(grad_fn(w, k), state, w)
        w = optim.apply_updates(w, updates)
        expected.append((k + 1, w))
    assert [k for k, _ in seen] == list(range(21))
    for (_, a), (_, b) in zip(seen, expected):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(run.params, w)
    assert run.state["count"] == 20 and run.losses == [] and run.diverged_at is None


def test_a_run_continued_from_its_state_and_step_is_the_same_run():
    X, t, grad_fn = lsq(1)
    opt = optim.sgd(optim.cosine_decay(0.1, 30), momentum=0.9)
    steps_seen = []
    whole = optim.run(opt, np.zeros(4), lambda w, k: steps_seen.append(k) or grad_fn(w), 30)
    first = optim.run(opt, np.zeros(4), grad_fn, 12)
    rest = optim.run(opt, first.params, lambda w, k: steps_seen.append(k) or grad_fn(w), 18, start=12,
                     state=first.state)
    np.testing.assert_array_equal(whole.params, rest.params)
    assert steps_seen == list(range(30)) + list(range(12, 30))


@pytest.mark.parametrize("grad_fn, what, step", [
    (lambda w, k: 1e300 * w, "the gradient", 1),
    (lambda w, k: np.array([np.nan]) if k == 3 else w, "the gradient", 3),
    (lambda w, k: -1e308 * np.ones(1), "a parameter", 1),
])
def test_divergence_names_the_step_and_what_in_every_policy(grad_fn, what, step):
    opt = optim.sgd(1.0)
    with pytest.raises(DivergenceError, match=f"step {step}: {what} is no longer finite") as info:
        optim.run(opt, np.ones(1), grad_fn, 10)
    assert (info.value.step, info.value.what) == (step, what)
    recorded = optim.run(opt, np.ones(1), grad_fn, 10, on_divergence="record", keep_trajectory=True)
    assert recorded.diverged_at == step and len(recorded.trajectory) == step + 2
    with np.errstate(all="ignore"):  # "ignore" does not look, so NumPy's own warnings are all there is
        ignored = optim.run(opt, np.ones(1), grad_fn, 10, on_divergence="ignore")
    assert ignored.diverged_at is None and ignored.state["count"] == 10


def test_the_loss_is_checked_before_the_update_and_a_limit_adds_a_rule():
    def grad_fn(w, k):
        return (np.inf if k == 2 else float(w @ w), 2 * w)

    run = optim.run(optim.sgd(0.1), np.ones(2), grad_fn, 5, has_loss=True, on_divergence="record")
    assert run.diverged_at == 2 and len(run.losses) == 3 and np.isinf(run.losses[-1])
    np.testing.assert_allclose(run.params, 0.8 ** 2 * np.ones(2))  # two steps taken, the third refused
    with pytest.raises(DivergenceError, match="step 1: the loss is above 1.5") as info:
        optim.run(optim.sgd(0.0), np.ones(2), grad_fn, 5, has_loss=True,
                  limit=lambda k, loss: "above 1.5" if k == 1 and loss > 1.5 else None)
    assert info.value.value == 2.0 and info.value.why == "above 1.5"


def test_bad_arguments_are_named():
    opt, grad_fn = optim.sgd(0.1), (lambda w, k: w)
    with pytest.raises(ValueError, match="on_divergence='warn'"):
        optim.run(opt, np.ones(1), grad_fn, 3, on_divergence="warn")
    with pytest.raises(ValueError, match="steps must be a non-negative integer, got -1"):
        optim.run(opt, np.ones(1), grad_fn, -1)
    with pytest.raises(ValueError, match="steps must be a non-negative integer, got 2.0"):
        optim.run(opt, np.ones(1), grad_fn, 2.0)


def test_divergence_error_survives_pickling():
    error = DivergenceError(4, "the loss", "above 3", 7.5)
    again = pickle.loads(pickle.dumps(error))
    assert (again.step, again.what, again.why, again.value, str(again)) == (4, "the loss", "above 3", 7.5, str(error))


@pytest.mark.parametrize("policy", ["ignore", "raise"])
def test_reverse_and_forward_mode_through_the_loop_match_the_closed_form(policy):
    X, t, _ = lsq(2)
    n, w0, steps = X.shape[0], np.random.default_rng(3).standard_normal(4), 15

    def final(lr):
        w = optim.run(optim.sgd(lr), w0, lambda w, k: (2.0 / n) * X.T @ (X @ w - t), steps,
                      on_divergence=policy).params
        return nb.sum((X @ w - t) ** 2) / n

    q = quadratic_lr(X, t, w0, 0.07, steps)
    assert np.isclose(final(0.07), q.loss, rtol=1e-12)
    assert np.isclose(nb.grad(final)(0.07), q.dloss, rtol=1e-10)
    assert np.isclose(nb.jvp(final, (0.07,), (1.0,))[1], q.dloss, rtol=1e-10)
    assert np.isclose(nb.grad(nb.grad(final))(0.07), q.d2loss, rtol=1e-8)


def test_minimize_is_run_with_value_and_grad():
    loss = lambda w: nb.sum((w - 2.0) ** 2)  # noqa: E731
    a = optim.minimize(loss, np.zeros(3), optim.adam(0.1), 40, keep_trajectory=True)
    b = optim.run(optim.adam(0.1), np.zeros(3), lambda w, k: nb.value_and_grad(loss)(w), 40, has_loss=True,
                  keep_trajectory=True)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.losses == b.losses and len(a.trajectory) == 41


def test_iterate_runs_any_step():
    def step(w, state, k):
        return optim.Step(w + 1, state + [k], loss=float(w))

    run = optim.iterate(step, 0, 4, state=[], start=10)
    assert (run.params, run.state, run.losses) == (4, [10, 11, 12, 13], [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(DivergenceError, match="step 12: a parameter is no longer finite"):
        optim.iterate(lambda w, s, k: optim.Step(w, s, problem="a parameter" if k == 12 else None), 0, 4, start=10)


def test_a_batch_of_problems_runs_at_once_with_one_learning_rate_each():
    # The lab's sweeps run many problems in one array; the learning rate broadcasts, one per problem.
    H = np.array([[[2.0]], [[1.0]], [[0.5]]])
    lr = np.array([[[0.1]], [[1.5]], [[0.0]]])
    run = optim.run(optim.sgd(lr), np.ones((3, 1, 1)), lambda th, t: H @ th, 10)
    expected = np.ones((3, 1, 1))
    for _ in range(10):
        expected = expected - lr * (H @ expected)
    np.testing.assert_array_equal(run.params, expected)
    with pytest.raises(ValueError, match=r"sgd: lr must be finite and non-negative, got -0.5 at index \(1,\)"):
        optim.sgd(np.array([0.1, -0.5]))
