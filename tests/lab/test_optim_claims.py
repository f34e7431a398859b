"""The optimizer claims: statuses, and their key numbers against values derived independently."""

import numpy as np
import pytest

from nablab import optim
from nablab.lab.experiments import optim as exp
from nablab.lab.registry import Context


def run(fn, tmp_path, claim_id, **params):
    ctx = Context(out_dir=tmp_path, quick=True, seed=0, params=params, claim_id=claim_id)
    result = fn(ctx)
    assert result.figures and all((tmp_path / f).exists() for f in result.figures)
    return result


def test_sgd_claim_agrees_and_stays_in_the_row_space(tmp_path):
    r = run(exp.sgd_min_norm, tmp_path, "optim.sgd-min-norm", instances=8, n=3, d=9, steps=1500)
    assert r.status == "agrees"
    c = r.computed
    assert c["problems"] == 8 and c["ended within tol of w*"] >= 7
    assert c["max relative distance to the row space over all iterates (from 0)"] < 1e-13
    # the control: a random start keeps its null-space part, so it ends far from w*
    assert c["median relative distance of the limit to w* (from a random w0)"] > 0.1


def test_momentum_claim_agrees(tmp_path):
    r = run(exp.momentum_min_norm, tmp_path, "optim.momentum-min-norm", instances=8, n=3, d=9, steps=1500)
    assert r.status == "agrees"
    assert r.computed["alpha"] == 0.9
    assert r.computed["max relative distance to the row space over all iterates (from 0)"] < 1e-13


def test_sgd_from_zero_matches_lstsq_min_norm():
    # Independent of the experiment's bookkeeping: the batch machinery against np.linalg.lstsq.
    rng = np.random.default_rng(1)
    X, t = exp.random_problems(rng, 5, 3, 7)
    idx = rng.integers(3, size=(3000, 5))
    lr = 3 / (2 * np.max(np.sum(X ** 2, axis=2)))
    W = exp.run_optimizer(optim.sgd(lr=lr), np.zeros((5, 7)), exp.sampled_gradient(X, t, idx), 3000)
    expected = np.stack([np.linalg.lstsq(Xb, tb, rcond=None)[0] for Xb, tb in zip(X, t)])
    np.testing.assert_allclose(W, expected, atol=1e-9)


def test_adagrad_claim_limits(tmp_path):
    r = run(exp.adagrad_not_min_norm, tmp_path, "optim.adagrad-not-min-norm", instances=40, seed_steps=50)
    assert r.status == "agrees"
    c = r.computed
    # x1 = [1, 1]: both coordinates scaled alike, so the limit is the minimum-norm point [1.5, 1.5]
    np.testing.assert_allclose(c["x1 = [1, 1]"]["Adagrad limit"], [1.5, 1.5], atol=1e-9)
    # x1 = [1, 2]: steps along sign(x) = [1, 1] to the line w1 + 2 w2 = 3, i.e. [1, 1]; w* = 3 x / 5
    np.testing.assert_allclose(c["x1 = [1, 2]"]["Adagrad limit"], [1.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(c["x1 = [1, 2]"]["minimum-norm point"], [0.6, 1.2], atol=1e-12)
    assert c["x1 = [1, 2]"]["norm of the limit"] == pytest.approx(np.sqrt(2), abs=1e-9)
    # the seed's first step by hand: g = [-6, -12], G = g^2, step 0.01 g / (|g| + 0.1)
    np.testing.assert_allclose(c["seed setting (lr 0.01, eps 0.1), first step"], [0.06 / 6.1, 0.12 / 12.1], rtol=1e-12)
    assert all(row["match"] for row in c["first step against the seed"])


def test_adagrad_limit_against_torch():
    torch = pytest.importorskip("torch")
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    opt = torch.optim.Adagrad([w], lr=0.5, eps=1e-10)
    for _ in range(300):
        opt.zero_grad()
        ((x @ w - 3) ** 2).backward()
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), exp.adagrad_single_equation_limit([1.0, 2.0], 3.0), atol=1e-9)


def test_adaptive_claim_is_reproduced(tmp_path):
    r = run(exp.adaptive_not_min_norm, tmp_path, "optim.adaptive-not-min-norm", instances=10, steps=800,
            adam_lrs=[0.01, 0.1])
    assert r.status == "reproduced"
    c = r.computed
    assert c["GD (lr 1/L)"]["relative distance of the limit to w*: min, median, max"][2] < 1e-10
    for name in ("Adagrad (lr 0.1)", "RMSprop (lr 0.01, cosine)", "Adam (lr 0.03, cosine)"):
        assert c[name]["converged (residual < tol)"] == 10
        assert c[name]["converged and farther than 0.001"] == 10
        assert c[name]["norm ratio ||limit|| / ||w*||: min, median, max"][0] > 1  # w* has the least norm


def test_preconditioned_claim(tmp_path):
    r = run(exp.preconditioned_sgd_claim, tmp_path, "optim.preconditioned-sgd", instances=10,
            instances_full=3, random_steps=1500)
    assert r.status == "disagrees"  # the seed's (c) answer does not solve the equation
    c = r.computed
    a = np.array([1.0, 0.1, 0.01])
    np.testing.assert_allclose(c["(a) M = I"]["limit"], np.linalg.lstsq(a[None], [1.0], rcond=None)[0], atol=1e-14)
    np.testing.assert_allclose(c["(b) M = diag(1/|a_i|)"]["limit"], np.ones(3) / 1.11, atol=1e-14)
    # rescaling theta_bar_i = a_i theta_i: theta_bar = [1, 1, 1]/3, so theta = [1, 10, 100]/3
    np.testing.assert_allclose(c["(c) rescaling, M = diag(1/a_i^2)"]["limit"], [1 / 3, 10 / 3, 100 / 3], rtol=1e-12)
    assert [c[k]["agrees with the seed"] for k in ("(a) M = I", "(b) M = diag(1/|a_i|)",
                                                    "(c) rescaling, M = diag(1/a_i^2)")] == [True, True, False]
    assert c["(c) rescaling, M = diag(1/a_i^2)"]["a . (the seed's answer)"] == pytest.approx(7.0)
    np.testing.assert_allclose(c["Adagrad (lr 0.5)"]["limit"], np.ones(3) / 1.11, atol=1e-7)
    for key in ("random diagonal M", "random full M"):
        assert c[key]["max relative distance to range(M X^T) over all iterates"] < 1e-12


def test_preconditioned_limit_closed_form():
    rng = np.random.default_rng(2)
    X, t = rng.standard_normal((2, 5)), rng.standard_normal(2)
    A = rng.standard_normal((5, 5))
    for M in (np.exp(rng.standard_normal(5)), A @ A.T + np.eye(5)):
        Mm = np.diag(M) if M.ndim == 1 else M
        expected = Mm @ X.T @ np.linalg.solve(X @ Mm @ X.T, t)  # fine for a tiny test problem
        np.testing.assert_allclose(exp.preconditioned_limit(X, t, M), expected, rtol=1e-10)


def test_nonuniform_claim(tmp_path):
    r = run(exp.nonuniform_sgd, tmp_path, "optim.nonuniform-sgd", instances=3, runs=20, steps=1200)
    assert r.status == "disagrees"  # the seed's last line drops a factor 4
    c = r.computed
    part1 = c["part 1 (alpha = 1/(2 max ||x_i||^2))"]
    part2 = c["part 2 (alpha* = lambda_min / (2 lambda_max R^2))"]
    steps = c["the seed's steps"]
    assert part1["runs ending within tol of theta*"] >= 54
    assert part1["max relative distance to the row space over all iterates"] < 1e-12
    assert part2["exact E[J_k] <= (1 - rho)^k J_0 at every step"]
    assert all(r > 0 for r in part2["rho"])
    assert all(q >= r for q, r in zip(part2["1 - q* (exact worst one-step decrease)"], part2["rho"]))
    assert steps["E[A] <= -4 alpha lambda_min J on 200 random theta per instance"]
    assert steps["E[B] <= 4 alpha^2 lambda_max R^2 J (with the factor 4)"]
    assert all(1 < w <= 4 for w in steps["worst E[B] / (alpha^2 lambda_max R^2 J) per instance"])


def test_lyapunov_terms_one_row():
    # n = 1, p = [1]: H = x x^T, lambda_min = lambda_max = R2 = ||x||^2, and the worst E[B]/J
    # is 4 alpha^2 x^T H x = 4 alpha^2 ||x||^4, exactly 4 times the seed's last line.
    x = np.array([[3.0, 4.0]])
    tm = exp.lyapunov_terms(x, np.array([1.0]), alpha=0.01)
    assert tm["lambda_min"] == pytest.approx(25) and tm["lambda_max"] == pytest.approx(25) and tm["R2"] == 25
    assert tm["rho"] == pytest.approx(4 * 0.01 * 25 - 4 * 0.01 ** 2 * 25 * 25)
    # one row: e' = (1 - 2 alpha ||x||^2) e along x, so E[J'] / J = (1 - 2 alpha 25)^2
    assert exp.worst_one_step_factor(x, tm["H"], tm["K"]) == pytest.approx((1 - 0.5) ** 2)


def test_worst_one_step_factor_bounds_random_directions():
    rng = np.random.default_rng(3)
    X, p = rng.standard_normal((3, 6)), np.array([0.5, 0.3, 0.2])
    tm = exp.lyapunov_terms(X, p, alpha=0.02)
    q = exp.worst_one_step_factor(X, tm["H"], tm["K"])
    e = rng.standard_normal((500, 6)) @ np.linalg.pinv(X) @ X  # directions in the row space
    ratios = []
    for v in e:
        after = sum(pi * (Ai @ v) @ tm["H"] @ (Ai @ v) for pi, Ai in zip(p, tm["A"]))  # E[J'] by enumeration
        ratios.append(after / (v @ tm["H"] @ v))
    assert max(ratios) <= q * (1 + 1e-12) and max(ratios) > q - 0.05
