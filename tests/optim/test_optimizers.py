"""Optimizers: trajectories equal torch.optim's, hyperparameters are differentiable, bad input is refused."""

import numpy as np
import pytest
import torch

import nablab as nb
from nablab import optim

rng = np.random.default_rng(0)
X = rng.standard_normal((8, 4))
Y = rng.integers(0, 3, size=8)
W0 = 0.5 * rng.standard_normal((3, 4))
B0 = 0.1 * rng.standard_normal(3)
STEPS = 100


def nablab_loss(p):
    logits = X @ p["W"].T + p["b"]
    picked = logits[np.arange(8), Y]
    return nb.mean(nb.logsumexp(logits, axis=1) - picked) + 0.01 * nb.sum(p["W"] ** 4)


def torch_loss(W, b):
    logits = torch.tensor(X) @ W.T + b
    return torch.nn.functional.cross_entropy(logits, torch.tensor(Y)) + 0.01 * (W**4).sum()


def run_nablab(opt, steps=STEPS):
    params = {"W": W0.copy(), "b": B0.copy()}
    state = opt.init(params)
    trajectory = []
    for _ in range(steps):
        grads = nb.grad(nablab_loss)(params)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        trajectory.append(np.concatenate([params["W"].ravel(), params["b"]]))
    return np.array(trajectory)


def run_torch(opt_cls, kwargs, schedule=None, steps=STEPS):
    W = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    opt = opt_cls([W, b], **kwargs)
    sched = schedule(opt) if schedule else None
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        torch_loss(W, b).backward()
        opt.step()
        if sched:
            sched.step()
        trajectory.append(np.concatenate([W.detach().numpy().ravel(), b.detach().numpy()]))
    return np.array(trajectory)


CONFIGS = {
    "sgd": (optim.sgd, torch.optim.SGD, dict(lr=0.1)),
    "sgd-momentum": (optim.sgd, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    "sgd-dampening": (optim.sgd, torch.optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3)),
    "sgd-nesterov-wd": (optim.sgd, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adagrad": (optim.adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    "adagrad-options": (optim.adagrad, torch.optim.Adagrad,
                        dict(lr=0.1, lr_decay=0.01, weight_decay=0.02, initial_accumulator_value=0.1, eps=1e-6)),
    "rmsprop": (optim.rmsprop, torch.optim.RMSprop, dict(lr=0.01)),
    # (with alpha=0.9 this run is chaotic: torch differs from itself by 1e-9 when W0 moves by 1e-15)
    "rmsprop-centered-momentum-wd": (optim.rmsprop, torch.optim.RMSprop,
                                     dict(lr=0.005, alpha=0.99, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.01)),
    "adam": (optim.adam, torch.optim.Adam, dict(lr=0.01)),
    "adam-amsgrad-wd-betas": (optim.adam, torch.optim.Adam,
                              dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, amsgrad=True)),
    "adamw": (optim.adamw, torch.optim.AdamW, dict(lr=0.01)),
    "adamw-amsgrad": (optim.adamw, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_trajectory_equals_torch_optim(name):
    ours, theirs, kwargs = CONFIGS[name]
    ref = run_torch(theirs, kwargs)
    np.testing.assert_allclose(run_nablab(ours(**kwargs)), ref, rtol=1e-10, atol=1e-10)
    assert np.abs(ref[-1] - ref[0]).max() > 1e-3  # the run really moved


def test_heavy_ball_equals_torch_sgd_with_momentum():
    ref = run_torch(torch.optim.SGD, dict(lr=0.05, momentum=0.7))
    np.testing.assert_allclose(run_nablab(optim.heavy_ball(lr=0.05, alpha=0.7)), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("schedule", ["step", "cosine", "warmup"])
def test_schedules_equal_torch_schedulers(schedule):
    if schedule == "step":
        ours = optim.sgd(lr=optim.step_decay(0.2, step_size=30, gamma=0.5))
        sched = lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.5)  # noqa: E731
        kwargs, cls = dict(lr=0.2), torch.optim.SGD
    elif schedule == "cosine":
        ours = optim.adam(lr=optim.cosine_decay(0.05, total_steps=STEPS, min_lr=0.001))
        sched = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.001)  # noqa: E731
        kwargs, cls = dict(lr=0.05), torch.optim.Adam
    else:
        ours = optim.sgd(lr=optim.linear_warmup(0.1, warmup_steps=20, start_factor=0.1), momentum=0.9)
        sched = lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=20)  # noqa: E731
        kwargs, cls = dict(lr=0.1, momentum=0.9), torch.optim.SGD
    np.testing.assert_allclose(run_nablab(ours), run_torch(cls, kwargs, sched), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["sgd-momentum", "adam-amsgrad-wd-betas", "rmsprop-centered-momentum-wd", "adagrad"])
def test_stateful_wrappers_equal_torch(name):
    _, theirs, kwargs = CONFIGS[name]
    wrapper = {torch.optim.SGD: optim.SGD, torch.optim.Adam: optim.Adam, torch.optim.RMSprop: optim.RMSprop,
               torch.optim.Adagrad: optim.Adagrad}[theirs]
    W, b = nb.tensor(W0, requires_grad=True), nb.tensor(B0, requires_grad=True)
    opt = wrapper([W, b], **kwargs)
    for _ in range(STEPS):
        opt.zero_grad()
        nablab_loss({"W": W, "b": b}).backward()
        opt.step()
    ref = run_torch(theirs, kwargs)[-1]
    np.testing.assert_allclose(np.concatenate([W.numpy().ravel(), b.numpy()]), ref, rtol=1e-10, atol=1e-10)


def test_state_dict_round_trip_continues_identically(tmp_path):
    def make():
        return nb.tensor(W0, requires_grad=True), nb.tensor(B0, requires_grad=True)

    def steps(opt, W, b, k):
        for _ in range(k):
            opt.zero_grad()
            nablab_loss({"W": W, "b": b}).backward()
            opt.step()

    W, b = make()
    straight = optim.Adam([W, b], lr=0.01, amsgrad=True)
    steps(straight, W, b, 20)
    W2, b2 = make()
    first = optim.Adam([W2, b2], lr=0.01, amsgrad=True)
    steps(first, W2, b2, 10)
    np.savez(tmp_path / "opt.npz", **first.state_dict())
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as saved:
        second = optim.Adam([W2, b2], lr=0.01, amsgrad=True)
        second.load_state_dict(dict(saved))
    steps(second, W2, b2, 10)
    np.testing.assert_array_equal(W.numpy(), W2.numpy())
    bad = first.state_dict()
    bad["state.0.1"] = np.zeros(7)
    with pytest.raises(ValueError, match=r"state.0.1 has shape \(7,\)"):
        second.load_state_dict(bad)


ALL_OPTIMIZERS = {
    "sgd": lambda lr: optim.sgd(lr),
    "sgd-nesterov": lambda lr: optim.sgd(lr, momentum=0.9, nesterov=True, weight_decay=0.01),
    "heavy_ball": lambda lr: optim.heavy_ball(lr, alpha=0.5),
    "adagrad": lambda lr: optim.adagrad(lr),
    "rmsprop": lambda lr: optim.rmsprop(lr, centered=True, momentum=0.3),
    "adam": lambda lr: optim.adam(lr),
    "adamw-amsgrad": lambda lr: optim.adamw(lr, amsgrad=True),
    "preconditioned": lambda lr: optim.preconditioned_sgd(lr, np.linspace(0.5, 2.0, 15)),
}


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_loss_after_k_steps_is_differentiable_in_lr_both_modes(name):
    def final_loss(lr):
        opt = ALL_OPTIMIZERS[name](lr)
        params = {"W": W0, "b": B0}
        state = opt.init(params)
        for _ in range(8):
            grads = nb.grad(nablab_loss)(params)
            updates, state = opt.update(grads, state, params)
            params = optim.apply_updates(params, updates)
        return nablab_loss(params)

    lr = 0.03
    reverse = nb.grad(final_loss)(lr)
    forward = nb.jvp(final_loss, (lr,), (1.0,))[1]
    h = 1e-6
    numeric = (final_loss(lr + h) - final_loss(lr - h)) / (2 * h)
    assert abs(reverse - forward) <= 1e-10 * (1 + abs(reverse))
    assert abs(reverse - numeric) <= 1e-6 * (1 + abs(numeric))
    assert abs(reverse) > 1e-6


def test_momentum_and_betas_are_differentiable_too():
    def after(momentum, beta1):
        params = {"W": W0, "b": B0}
        for opt in (optim.sgd(0.05, momentum=momentum), optim.adam(0.01, betas=(beta1, 0.999))):
            state = opt.init(params)
            for _ in range(5):
                updates, state = opt.update(nb.grad(nablab_loss)(params), state, params)
                params = optim.apply_updates(params, updates)
        return nablab_loss(params)

    g = nb.grad(after, argnums=(0, 1))(0.5, 0.9)
    h = 1e-6
    assert np.isclose(g[0], (after(0.5 + h, 0.9) - after(0.5 - h, 0.9)) / (2 * h), rtol=1e-5)
    assert np.isclose(g[1], (after(0.5, 0.9 + h) - after(0.5, 0.9 - h)) / (2 * h), rtol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda: optim.sgd(lr=-0.1), r"sgd: lr must be a finite non-negative number, got -0.1"),
    (lambda: optim.adam(betas=(0.9, 1.0)), r"adam: betas\[1\] must be a finite number in \[0, 1\), got 1.0"),
    (lambda: optim.adam(betas=(-0.1, 0.9)), r"betas\[0\] must be .* got -0.1"),
    (lambda: optim.adam(eps=0.0), r"adam: eps must be a finite positive number, got 0.0"),
    (lambda: optim.rmsprop(eps=-1e-8), r"rmsprop: eps must be a finite positive number, got -1e-08"),
    (lambda: optim.sgd(lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0"),
    (lambda: optim.adagrad(lr=float("nan")), r"adagrad: lr must be a finite non-negative number, got nan"),
    (lambda: optim.preconditioned_sgd(0.1, np.ones((2, 3))), r"square matrix.*\(2, 3\)"),
    (lambda: optim.preconditioned_sgd(0.1, np.eye(3)).init(np.ones(4)), r"M has shape \(3, 3\) but the parameters have 4"),
    (lambda: optim.adam(betas=0.9), r"betas must be a pair"),
])
def test_invalid_hyperparameters_are_refused_naming_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_gradient_shape_mismatch_is_refused():
    opt = optim.adam()
    state = opt.init({"w": np.ones(3)})
    with pytest.raises(ValueError, match=r"gradient 0 has shape \(2,\) but parameter 0 has shape \(3,\)"):
        opt.update({"w": np.ones(2)}, state, {"w": np.ones(3)})


def test_minimize_stops_on_divergence_naming_the_step():
    with pytest.raises(optim.DivergenceError, match=r"step \d+: .* no longer finite"):
        optim.minimize(lambda w: nb.sum(w ** 4), np.array([3.0]), optim.sgd(lr=1.0), steps=100)
    run = optim.minimize(lambda w: nb.sum(w ** 2) / 2, np.array([1.0]), optim.sgd(lr=2.5), steps=5000,
                         on_divergence="record")
    assert run.diverged_at is not None and run.diverged_at > 100
    # at lr = 2.5, w grows by |1 - 2.5| = 1.5 a step; w^2 / 2 overflows once w > sqrt(2 max float)
    assert abs(run.diverged_at - (np.log(2) + np.log(np.finfo(float).max)) / 2 / np.log(1.5)) < 3


def test_sample_indices_is_seeded_and_follows_p():
    a = optim.sample_indices(4, 20000, p=[0.1, 0.2, 0.3, 0.4], seed=3)
    b = optim.sample_indices(4, 20000, p=[0.1, 0.2, 0.3, 0.4], seed=3)
    assert np.array_equal(a, b)
    np.testing.assert_allclose(np.bincount(a) / 20000, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    with pytest.raises(ValueError, match="sum to 1"):
        optim.sample_indices(2, 5, p=[0.5, 0.6])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda: optim.adam(lr=0.01), lambda: optim.adam(lr=0.3, betas=(0.2, 0.9)),
                                  lambda: optim.adam(lr=0.01, weight_decay=0.1, amsgrad=True),
                                  lambda: optim.adamw(lr=0.01, weight_decay=0.1)])
def test_adams_in_place_update_gives_the_bits_of_its_expressions(monkeypatch, make, dtype):
    """On plain arrays Adam runs NumPy's in-place operations; traced values (and NumPy scalars) take the
    expressions. Both must give the same bits, step after step."""
    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((7, optim.optimizers._PIECE // 5)).astype(dtype),  # in more than one piece
              "b": rng.standard_normal(7).astype(dtype)}
    grads = [{k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()} for _ in range(4)]

    def run():
        opt = make()
        p, state, trail = dict(params), opt.init(params), []
        for g in grads:
            updates, state = opt.update(g, state, p)
            p = optim.apply_updates(p, updates)
            trail += [p["w"], p["b"], state["m"]["w"], state["v"]["b"]]
        return trail

    calls = []
    real = optim.optimizers._plain
    monkeypatch.setattr(optim.optimizers, "_plain", lambda arrays, numbers: calls.append(real(arrays, numbers))
                        or calls[-1])
    fast = run()
    assert any(calls), "the in-place update did not run"
    monkeypatch.setattr(optim.optimizers, "_plain", lambda arrays, numbers: False)
    for ours, expressions in zip(fast, run()):
        assert ours.dtype == expressions.dtype == dtype
        np.testing.assert_array_equal(ours, expressions)
