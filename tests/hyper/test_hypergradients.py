"""Hypergradients: every mode against the closed form and each other; reversibility; online HD; tuning."""

import numpy as np
import pytest

import nablab as nb
from nablab import optim
from nablab.hyper import hypergradient, lr_hypergradient, quadratic_lr, reversible_hypergradient, tune_lr


def problem(n=6, d=9, seed=0):
    rng = np.random.default_rng(seed)
    X, t, w0 = rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal(d)
    return X, t, w0, (lambda w: nb.sum((X @ w - t) ** 2) / n)


def test_closed_form_matches_brute_force_gradient_descent():
    X, t, w0, loss = problem()
    q = quadratic_lr(X, t, w0, lr=0.07, steps=13)
    w = w0.copy()
    for _ in range(13):
        w = w - 0.07 * (2 / 6) * X.T @ (X @ w - t)
    np.testing.assert_allclose(q.w_steps, w, rtol=1e-11, atol=1e-12)
    assert np.isclose(q.loss, np.sum((X @ w - t) ** 2) / 6, rtol=1e-12)
    h = 1e-5
    assert np.isclose(q.dloss, (q.loss_at(0.07 + h) - q.loss_at(0.07 - h)) / (2 * h), rtol=1e-6)
    assert np.isclose(q.d2loss, (q.dloss_at(0.07 + h) - q.dloss_at(0.07 - h)) / (2 * h), rtol=1e-6)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_optimal_lr_minimises_the_closed_form(steps):
    X, t, w0, _ = problem(seed=steps)
    q = quadratic_lr(X, t, w0, lr=0.01, steps=steps)
    best = q.optimal_lr
    grid = np.linspace(0.0, 3 * best, 3001)
    losses = [q.loss_at(lr) for lr in grid]
    assert q.loss_at(best) <= min(losses) + 1e-14
    assert abs(q.dloss_at(best)) < 1e-8 * (1 + q.loss_at(0.0))
    if steps == 1:  # the one-step formula (n/2) |X^T a|^2 / |X X^T a|^2
        a = X @ w0 - t
        assert np.isclose(best, 6 / 2 * np.sum((X.T @ a) ** 2) / np.sum((X @ X.T @ a) ** 2), rtol=1e-12)


@pytest.mark.parametrize("momentum", [None, 0.9])
def test_all_modes_agree_with_each_other_and_the_closed_form(momentum):
    X, t, w0, loss = problem()
    lr, steps = 0.05, 25
    results = {mode: lr_hypergradient(loss, w0, lr, steps, mode=mode, momentum=momentum)
               for mode in ("reverse", "forward", "finite-difference")}
    results["checkpointed"] = lr_hypergradient(loss, w0, lr, steps, momentum=momentum, checkpoint_every=4)
    if momentum:
        results["reversible"] = lr_hypergradient(loss, w0, lr, steps, mode="reversible", momentum=momentum)
    else:
        q = quadratic_lr(X, t, w0, lr, steps)
        results["closed form"] = (q.loss, q.dloss)
    ref_value, ref = results["reverse"]
    for name, (value, d) in results.items():
        tol = 1e-6 if name == "finite-difference" else 1e-8
        assert abs(d - ref) <= tol * max(1.0, abs(ref)), name
        assert abs(value - ref_value) <= 1e-8 * max(1.0, abs(ref_value)), name


def test_richer_form_momentum_schedule_w0_and_minibatches():
    X, t, w0, _ = problem(n=12)
    batches = [np.arange(i % 3 * 4, i % 3 * 4 + 4) for i in range(9)]
    train = lambda w, idx: nb.mean((X[idx] @ w - t[idx]) ** 2)  # noqa: E731
    val = lambda w: nb.mean((X @ w - t) ** 2)  # noqa: E731
    hyper = {"lr": 0.05 * np.ones(9), "momentum": 0.5}
    make = lambda h: optim.sgd(lambda count: h["lr"][count], momentum=h["momentum"])  # noqa: E731
    value, rev = hypergradient(train, w0, hyper, 9, make, val_loss=val, batches=batches)
    _, fwd = hypergradient(train, w0, hyper, 9, make, val_loss=val, batches=batches, mode="forward")
    _, ckpt = hypergradient(train, w0, hyper, 9, make, val_loss=val, batches=batches, checkpoint_every=2)
    _, fd = hypergradient(train, w0, hyper, 9, make, val_loss=val, batches=batches, mode="finite-difference")
    assert rev["lr"].shape == (9,) and rev["w0"].shape == w0.shape
    for other, tol in ((fwd, 1e-9), (ckpt, 1e-9), (fd, 1e-5)):
        for key in ("lr", "momentum", "w0"):
            np.testing.assert_allclose(other[key], rev[key], rtol=tol, atol=tol)


def test_reversible_run_reproduces_initial_weights_bit_for_bit_and_stores_few_bits():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((50, 200)) / 10
    loss = lambda w: nb.sum(nb.tanh(A @ w) ** 2) + 0.01 * nb.sum(w ** 2)  # noqa: E731
    w0 = rng.standard_normal(200)
    result = reversible_hypergradient(loss, w0, lr=0.05, momentum=0.9, steps=60)
    assert result.reconstructed_exactly
    assert np.array_equal(result.w0_reversed_fixed, result.w0_fixed)
    # about log2(1/0.9) = 0.15 bits per parameter and step; the byte-packed store needs a bit more
    assert 0.1 < result.bits_per_parameter_step < 0.35
    ref = lr_hypergradient(loss, w0, 0.05, 60, momentum=0.9)[1]
    assert abs(result.d_lr - ref) <= 1e-8 * abs(ref)
    h = 1e-6
    fd = (lr_hypergradient(loss, w0, 0.05, 60, momentum=0.9 + h)[0] - lr_hypergradient(loss, w0, 0.05, 60, momentum=0.9 - h)[0]) / (2 * h)
    assert abs(result.d_momentum - fd) <= 1e-5 * abs(fd)


def test_reversible_refuses_what_it_cannot_reverse():
    loss = lambda w: nb.sum(w ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="momentum=0.0 must be in"):
        reversible_hypergradient(loss, np.ones(2), 0.1, 0.0, 3)
    with pytest.raises(OverflowError, match="fixed-point range"):
        reversible_hypergradient(loss, np.ones(2), 3.0, 0.9, 200)
    with pytest.raises(ValueError, match="give momentum"):
        lr_hypergradient(loss, np.ones(2), 0.1, 3, mode="reversible")
    with pytest.raises(ValueError, match="mode='sideways'"):
        lr_hypergradient(loss, np.ones(2), 0.1, 3, mode="sideways")


def test_sgd_hd_follows_the_dot_product_rule_and_never_goes_negative():
    grads = [np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([-3.0, -4.0])]
    opt = optim.sgd_hd(lr=0.1, hyper_lr=0.01)
    state = opt.init(np.zeros(2))
    lrs = []
    for g in grads:
        _, state = opt.update(g, state)
        lrs.append(float(state["lr"]))
    # lr_t = lr_{t-1} + beta g_t . g_{t-1}
    assert np.isclose(lrs[0], 0.1)
    assert np.isclose(lrs[1], 0.1 + 0.01 * (0.5 - 2.0))
    assert np.isclose(lrs[2], lrs[1] + 0.01 * (-1.5 + 4.0))
    opt = optim.sgd_hd(lr=0.01, hyper_lr=1.0)
    state = opt.init(np.zeros(2))
    for g in grads:
        _, state = opt.update(g, state)
    assert float(state["lr"]) >= 0.0 and state["clipped"] >= 1
    opt = optim.sgd_hd(lr=0.1, hyper_lr=0.05, normalize=True)
    state = opt.init(np.zeros(2))
    _, state = opt.update(grads[0], state)
    _, state = opt.update(100 * grads[0], state)
    assert np.isclose(float(state["lr"]), 0.15)  # cosine 1: moves by exactly hyper_lr


def test_adam_hd_and_sgd_hd_train_and_lr_is_differentiable():
    X, t, w0, loss = problem()
    for opt in (optim.sgd_hd(0.01, 1e-3), optim.adam_hd(0.01, 1e-4)):
        run = optim.minimize(loss, w0, opt, steps=300)
        assert run.losses[-1] < 0.05 * run.losses[0]

    def final(lr):
        opt = optim.adam_hd(lr, 1e-4)
        state, w = opt.init(w0), w0
        for _ in range(5):
            updates, state = opt.update(nb.grad(loss)(w), state, w)
            w = optim.apply_updates(w, updates)
        return loss(w)

    h = 1e-6
    assert np.isclose(nb.grad(final)(0.01), (final(0.01 + h) - final(0.01 - h)) / (2 * h), rtol=1e-5)


def test_tune_lr_reaches_the_optimal_lr_of_the_closed_form():
    X, t, w0, loss = problem(n=8, d=5, seed=4)
    q = quadratic_lr(X, t, w0, lr=0.01, steps=5)
    result = tune_lr(loss, w0, lr=0.01, steps=5, meta_steps=120, meta_lr=0.1, progress=False)
    assert abs(result.lr / q.optimal_lr - 1) < 0.05
    assert len(result.history) == 120 and result.history[-1]["loss"] < result.history[0]["loss"]


def counting(loss):
    """``loss`` and a list that grows by one each time it is called (one call per training run)."""
    calls = []
    return (lambda w: calls.append(1) or loss(w)), calls


@pytest.mark.parametrize("mode", ["finite-difference", "forward", "reverse"])
def test_wrt_differentiates_only_what_is_asked(mode):
    X, t, _, loss = problem(n=10, d=50)
    w0 = np.zeros(50)
    val, calls = counting(loss)
    value, only_lr = hypergradient(loss, w0, {"lr": 0.05}, 8, lambda h: optim.sgd(h["lr"]), val_loss=val,
                                   mode=mode, wrt="lr")
    assert list(only_lr) == ["lr"]
    # a scalar lr: 1 + 2 trainings by finite differences (not 103 with w0's 50 entries), one JVP forward
    assert len(calls) == {"finite-difference": 3, "forward": 1, "reverse": 1}[mode]
    _, everything = hypergradient(loss, w0, {"lr": 0.05}, 8, lambda h: optim.sgd(h["lr"]), mode=mode)
    assert sorted(everything) == ["lr", "w0"]
    tol = 1e-6 if mode == "finite-difference" else 1e-12
    assert abs(only_lr["lr"] - everything["lr"]) <= tol * abs(everything["lr"])
    q = quadratic_lr(X, t, w0, 0.05, 8)
    assert abs(only_lr["lr"] - q.dloss) <= (1e-6 if mode == "finite-difference" else 1e-9) * abs(q.dloss)
    _, w_only = hypergradient(loss, w0, {"lr": 0.05}, 8, lambda h: optim.sgd(h["lr"]), mode=mode, wrt=["w0"])
    np.testing.assert_allclose(w_only["w0"], everything["w0"], rtol=1e-6 if mode == "finite-difference" else 1e-12,
                               atol=1e-9)


def test_wrt_picks_among_several_hyperparameters_and_bad_names_are_named():
    X, t, w0, loss = problem()
    make = lambda h: optim.sgd(h["lr"], momentum=h["momentum"])  # noqa: E731
    hyper = {"lr": 0.05, "momentum": 0.5}
    _, all_grads = hypergradient(loss, w0, hyper, 6, make)
    for mode in ("reverse", "forward", "finite-difference"):
        _, g = hypergradient(loss, w0, hyper, 6, make, mode=mode, wrt="momentum")
        assert list(g) == ["momentum"]
        assert np.isclose(g["momentum"], all_grads["momentum"], rtol=1e-6)
    with pytest.raises(ValueError, match=r"wrt='lrr' names 'lrr'; choose from 'lr', 'momentum', 'w0'"):
        hypergradient(loss, w0, hyper, 6, make, wrt="lrr")
    with pytest.raises(ValueError, match=r"wrt=\(\) names nothing"):
        hypergradient(loss, w0, hyper, 6, make, wrt=())


def test_one_table_of_modes_and_reversible_through_hypergradient():
    from nablab import hyper

    assert hyper.MODES == ("reverse", "forward", "reversible", "finite-difference")
    X, t, w0, loss = problem()
    value, g = hypergradient(loss, w0, {"lr": 0.05, "momentum": 0.9}, 20, hyper.reversible_optimizer,
                             mode="reversible")
    _, ref = hypergradient(loss, w0, {"lr": 0.05, "momentum": 0.9}, 20, hyper.reversible_optimizer)
    for key in ("lr", "momentum", "w0"):
        np.testing.assert_allclose(g[key], ref[key], rtol=1e-7, atol=1e-10)
    with pytest.raises(ValueError, match="mode='reversible' runs SGD with momentum"):
        hypergradient(loss, w0, {"lr": 0.05}, 3, lambda h: optim.sgd(h["lr"]), mode="reversible")
    for bad in ("sideways", "Forward"):
        with pytest.raises(ValueError, match=f"hypergradient: mode='{bad}'; choose one of"):
            hypergradient(loss, w0, {"lr": 0.05}, 3, lambda h: optim.sgd(h["lr"]), mode=bad)


def test_learning_rates_follow_one_rule():
    loss = lambda w: nb.sum(w ** 2)  # noqa: E731
    for call in (lambda lr: lr_hypergradient(loss, np.ones(2), lr, 3),
                 lambda lr: reversible_hypergradient(loss, np.ones(2), lr, 0.9, 3),
                 lambda lr: tune_lr(loss, np.ones(2), lr, 3, meta_steps=1, log_space=False),
                 lambda lr: optim.sgd(lr), lambda lr: optim.cosine_decay(lr, 10)):
        call(0.0)  # zero is a run that does not move
        with pytest.raises(ValueError, match="lr must be a finite non-negative number, got -0.1"):
            call(-0.1)
        with pytest.raises(ValueError, match="lr must be a finite non-negative number, got nan"):
            call(float("nan"))
    assert lr_hypergradient(loss, np.ones(2), 0.0, 3)[0] == 2.0
    with pytest.raises(ValueError, match="lr=0 cannot start a search in log space"):
        tune_lr(loss, np.ones(2), 0.0, 3)


def test_tune_lr_reports_through_its_callback_and_draws_nothing(capsys):
    X, t, w0, loss = problem()
    seen = []
    tune_lr(loss, w0, lr=0.01, steps=3, meta_steps=4, progress=seen.append)
    assert [e["step"] for e in seen] == [0, 1, 2, 3]
    assert capsys.readouterr() == ("", "")
    with pytest.raises(TypeError, match="progress must be a function"):
        tune_lr(loss, w0, lr=0.01, steps=3, meta_steps=1, progress="bar")
    with pytest.raises(optim.DivergenceError, match="meta-step 0: the run at lr=1e\\+06 diverged"):
        with np.errstate(all="ignore"):
            tune_lr(loss, w0, lr=1e6, steps=30, meta_steps=2)
