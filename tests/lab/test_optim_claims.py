"""The optimizer claims: slots, evidence and statuses (by grading the answer sets), against values derived
independently (closed forms, np.linalg.lstsq, torch, enumeration)."""

import dataclasses
import functools

import claim_records
import numpy as np
import pytest
from claim_records import outcomes

from nablab import optim
from nablab.lab import registry
from nablab.lab.claims import CLAIMS_BY_ID
from nablab.lab.experiments import optim as exp

#: Each of these claims draws at least one figure.
record_of = functools.partial(claim_records.record_of, need_figures=True)

IDS = ("optim.sgd-min-norm", "optim.momentum-min-norm", "optim.adagrad-not-min-norm",
       "optim.adaptive-not-min-norm", "optim.preconditioned-sgd", "optim.nonuniform-sgd")


def test_the_claims_are_computations_with_a_field_per_slot():
    computations = registry.registered()
    results = {"optim.sgd-min-norm": exp.MinNormRun, "optim.momentum-min-norm": exp.MomentumMinNormRun,
               "optim.adagrad-not-min-norm": exp.AdagradLimits, "optim.adaptive-not-min-norm": exp.AdaptiveLimits,
               "optim.preconditioned-sgd": exp.PreconditionedLimits, "optim.nonuniform-sgd": exp.NonuniformSGD}
    for claim_id in IDS:
        assert registry.registered()[claim_id] is computations[claim_id]
        fields = {f.name for f in dataclasses.fields(results[claim_id])}
        assert set(CLAIMS_BY_ID[claim_id].slots) <= fields, claim_id


def test_sgd_claim_agrees_and_stays_in_the_row_space(tmp_path):
    r = record_of("optim.sgd-min-norm", tmp_path, instances=8, n=3, d=9, steps=1500)
    assert r["status"] == "agrees"
    assert r["slots"] == {"iterates_stay_in_row_space": True, "reaches_min_norm": True}
    assert outcomes(r, "000") == outcomes(r, "002") == {"iterates_stay_in_row_space": "correct",
                                                         "reaches_min_norm": "correct"}
    c = r["computed"]
    assert c["problems"] == 8 and c["ended_at_min_norm"] >= 7
    assert c["max_distance_to_row_space"] < 1e-13
    # the control: a random start keeps its null-space part, so it ends far from w*, at w* + (I - Q Q^T) w0
    assert c["random_start_distance_to_min_norm"] > 0.1
    assert c["random_start_gap_to_prediction"] < 1e-10
    assert "distance_curves" not in c  # figure data stays out of claims.json


def test_sgd_claim_refuses_d_not_above_n(tmp_path):
    from nablab.lab.report import run_claim

    with pytest.raises(registry.ParamError, match="d > n"):
        run_claim("optim.sgd-min-norm", tmp_path, True, 0, {"n": 5, "d": 5})


def test_sgd_claim_reports_a_diverging_run_with_its_step(tmp_path):
    # The runs are unchecked for speed; the distances recorded at every step still name the step that diverged.
    from nablab.lab.registry import Context

    ctx = Context(out_dir=tmp_path, quick=True, seed=0, params={"lr_scale": 50.0, "instances": 4, "steps": 400},
                  claim_id="optim.sgd-min-norm")
    with np.errstate(over="ignore", invalid="ignore"):
        error = registry.compute_claim("optim.sgd-min-norm", ctx).error
    assert error is not None and "DivergenceError: step" in error and "a parameter is no longer finite" in error


def test_momentum_claim_agrees(tmp_path):
    r = record_of("optim.momentum-min-norm", tmp_path, instances=8, n=3, d=9, steps=1500)
    assert r["status"] == "agrees"
    assert set(outcomes(r, "000").values()) == {"correct"}
    assert r["computed"]["alpha"] == 0.9
    assert r["computed"]["max_distance_to_row_space"] < 1e-13
    assert r["slots"]["velocity_stays_in_row_space"]
    assert r["computed"]["max_velocity_distance_to_row_space"] < 1e-13


def test_sgd_from_zero_matches_lstsq_min_norm():
    # Independent of the experiment's bookkeeping: the batch machinery against np.linalg.lstsq.
    rng = np.random.default_rng(1)
    X, t = exp.random_problems(rng, 5, 3, 7)
    idx = rng.integers(3, size=(3000, 5))
    lr = 3 / (2 * np.max(np.sum(X ** 2, axis=2)))
    W = optim.run(optim.sgd(lr=lr), np.zeros((5, 7)), exp.sampled_gradient(X, t, idx), 3000).params
    expected = np.stack([np.linalg.lstsq(Xb, tb, rcond=None)[0] for Xb, tb in zip(X, t)])
    np.testing.assert_allclose(W, expected, atol=1e-9)


def test_a_learning_rate_per_row_is_the_diagonal_preconditioner_it_replaced():
    # optim.nonuniform-sgd runs a step size per instance as sgd(lr of shape (rows, 1)); it used to be
    # preconditioned_sgd(1, M) with that step size repeated along each row: the same iterates, bit for bit.
    rng = np.random.default_rng(2)
    X, t = exp.random_problems(rng, 6, 3, 5)
    grad_fn = exp.sampled_gradient(X, t, rng.integers(3, size=(200, 6)), weight=1.0)
    rates = 0.5 / np.max(np.sum(X ** 2, axis=2), axis=1)
    by_row = optim.run(optim.sgd(rates[:, None]), np.zeros((6, 5)), grad_fn, 200).params
    by_diagonal = optim.run(optim.preconditioned_sgd(1.0, np.repeat(rates, 5)), np.zeros((6, 5)), grad_fn, 200)
    np.testing.assert_array_equal(by_row, by_diagonal.params)


def test_watched_updates_are_the_heavy_balls_velocities():
    seen = []
    opt = exp.watch_updates(optim.heavy_ball(lr=0.1, alpha=0.5), lambda delta: seen.append(delta.copy()))
    run = optim.run(opt, np.array([1.0, -2.0]), lambda w, k: 2 * w, 5, keep_trajectory=True)
    assert len(seen) == 5
    np.testing.assert_allclose(np.diff(run.trajectory, axis=0), seen, rtol=1e-14)


def test_adagrad_claim_limits(tmp_path):
    r = record_of("optim.adagrad-not-min-norm", tmp_path, instances=40, worked_steps=50)
    assert r["status"] == "agrees"
    s, c = r["slots"], r["computed"]
    # x1 = [1, 1]: both coordinates scaled alike, so the limit is the minimum-norm point [1.5, 1.5]
    np.testing.assert_allclose(s["limit_equal"], [1.5, 1.5], atol=1e-9)
    assert s["limit_is_min_norm_equal"]
    # x1 = [1, 2]: steps along sign(x) = [1, 1] to the line w1 + 2 w2 = 3, i.e. [1, 1]; w* = 3 x / 5
    np.testing.assert_allclose(s["limit_unequal"], [1.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(s["min_norm_unequal"], [0.6, 1.2], atol=1e-12)
    assert not s["limit_is_min_norm_unequal"] and not s["always_min_norm"]
    assert c["norms"]["unequal"][0] == pytest.approx(np.sqrt(2), abs=1e-9)
    # the worked first step by hand: g = 2 x (0 - 3) = [-6, -12], G = g^2, step 0.01 g / (|g| + 0.1)
    np.testing.assert_allclose(s["first_gradient"], [-6, -12], rtol=1e-14)
    np.testing.assert_allclose(s["first_accumulator"], [36, 144], rtol=1e-14)
    np.testing.assert_allclose(s["first_step"], [0.06 / 6.1, 0.12 / 12.1], rtol=1e-12)
    assert not s["first_step_in_span"]
    # answer set 000 answers the worked step and the conclusion, not the limits
    assert outcomes(r, "000") == {
        "first_gradient": "correct", "first_accumulator": "correct", "first_step": "correct",
        "first_step_in_span": "correct", "limit_equal": "unanswered", "limit_unequal": "unanswered",
        "min_norm_unequal": "unanswered", "limit_is_min_norm_equal": "unanswered",
        "limit_is_min_norm_unequal": "correct", "always_min_norm": "correct"}


def test_adagrad_first_step_is_graded_to_six_decimals():
    slot = CLAIMS_BY_ID["optim.adagrad-not-min-norm"].slots["first_step"]
    truth = [0.06 / 6.1, 0.12 / 12.1]  # 0.0098360..., 0.0099173...
    assert slot.compare(np.array([0.009836, 0.009917]), truth)[0]
    assert not slot.compare(np.array([0.009836, 0.009918]), truth)[0]


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
    r = record_of("optim.adaptive-not-min-norm", tmp_path, instances=10, steps=800, adam_lrs=[0.01, 0.1])
    assert r["status"] == "reproduced"  # answer set 000 leaves the question unanswered
    assert set(outcomes(r, "000").values()) == {"unanswered"}
    assert r["slots"] == {"rmsprop_always_min_norm": False, "adam_always_min_norm": False,
                          "adam_limit_depends_on_lr": True}
    c = r["computed"]
    assert c["methods"]["gd"]["distance"][2] < 1e-10
    for key in ("adagrad", "rmsprop", "adam"):
        assert c["methods"][key]["converged"] == 10
        assert c["methods"][key]["farther"] == 10
        assert c["methods"][key]["norm_ratio"][0] > 1  # w* has the least norm
    assert list(c["adam_lr_sweep"]) == ["lr 0.01", "lr 0.1"]


def test_preconditioned_claim(tmp_path):
    r = record_of("optim.preconditioned-sgd", tmp_path, instances=10, instances_full=3, random_steps=1500)
    assert r["status"] == "disagrees"  # answer set 004's rescaling limit does not solve the equation
    a = np.array([1.0, 0.1, 0.01])
    s, c = r["slots"], r["computed"]
    np.testing.assert_allclose(s["limit_identity"], np.linalg.lstsq(a[None], [1.0], rcond=None)[0], atol=1e-14)
    np.testing.assert_allclose(s["limit_inverse_abs"], np.ones(3) / 1.11, atol=1e-14)
    # rescaling theta_bar_i = a_i theta_i: theta_bar = [1, 1, 1]/3, so theta = [1, 10, 100]/3
    np.testing.assert_allclose(s["rescaled_solution"], np.ones(3) / 3, rtol=1e-12)
    np.testing.assert_allclose(s["limit_rescaled"], [1 / 3, 10 / 3, 100 / 3], rtol=1e-12)
    assert outcomes(r, "004") == {"limit_identity": "correct", "limit_inverse_abs": "correct",
                                  "rescaled_solution": "correct", "limit_rescaled": "wrong"}
    given = next(g["given"] for g in r["grades"]["004"] if g["slot"] == "limit_rescaled")
    assert a @ np.array(given) == pytest.approx(7.0)  # the answer set's (c) is not a solution
    np.testing.assert_allclose(c["adaptive"]["adagrad"]["limit"], np.ones(3) / 1.11, atol=1e-7)
    for key in ("random_diagonal", "random_full"):
        assert c[key]["max_distance_to_range"] < 1e-12
    # diag(1/sqrt|a_i|), the M of the answer's second line: M a^T = sqrt|a| is not along [1, 1, 1]
    np.testing.assert_allclose(c["limit_inverse_sqrt_abs"], np.sqrt(a) / np.sum(a ** 1.5), rtol=1e-12)


def test_preconditioned_claim_agrees_with_a_right_answer(tmp_path):
    from nablab.lab.grading import grade_claim, verdict
    from nablab.lab.sheets import parse_sheet

    sheet = parse_sheet('["optim.preconditioned-sgd"]\nlimit_identity = [0.990001, 0.0990001, 0.00990001]\n'
                        "limit_inverse_abs = [0.9009, 0.9009, 0.9009]\nrescaled_solution = [0.3333, 0.3333, 0.3333]\n"
                        "limit_rescaled = [0.3333, 3.333, 33.33]\n")
    truths = record_of("optim.preconditioned-sgd", tmp_path, instances=4, instances_full=2)["slots"]
    assert verdict(grade_claim("optim.preconditioned-sgd", sheet.answers["optim.preconditioned-sgd"],
                               truths))[0] == "agrees"


def test_preconditioned_claim_on_another_equation_is_only_reproduced(tmp_path):
    r = record_of("optim.preconditioned-sgd", tmp_path, a=[1.0, 0.5, 0.25], instances=4, instances_full=2)
    assert r["status"] == "reproduced" and r["grades"] == {}
    a = np.array([1.0, 0.5, 0.25])
    np.testing.assert_allclose(r["slots"]["limit_rescaled"], (1 / a) / 3, rtol=1e-12)


def test_preconditioned_limit_closed_form():
    rng = np.random.default_rng(2)
    X, t = rng.standard_normal((2, 5)), rng.standard_normal(2)
    A = rng.standard_normal((5, 5))
    for M in (np.exp(rng.standard_normal(5)), A @ A.T + np.eye(5)):
        Mm = np.diag(M) if M.ndim == 1 else M
        expected = Mm @ X.T @ np.linalg.solve(X @ Mm @ X.T, t)  # fine for a tiny test problem
        np.testing.assert_allclose(exp.preconditioned_limit(X, t, M), expected, rtol=1e-10)


def test_nonuniform_claim(tmp_path):
    r = record_of("optim.nonuniform-sgd", tmp_path, instances=3, runs=20, steps=1200)
    assert r["status"] == "disagrees"  # answer set 004's last line drops a factor 4
    assert outcomes(r, "004") == {"reaches_min_norm": "correct", "lyapunov_identity": "correct",
                                  "a_term_bound": "correct", "b_term_bound": "wrong",
                                  "b_term_bound_with_4": "unanswered", "expected_decrease": "unanswered"}
    s, c = r["slots"], r["computed"]
    assert s == {"reaches_min_norm": True, "lyapunov_identity": True, "a_term_bound": True,
                 "b_term_bound": False, "b_term_bound_with_4": True, "expected_decrease": True}
    assert c["runs_at_min_norm"] >= 54
    assert c["max_distance_to_row_space"] < 1e-12
    assert c["exact_under_bound"]
    assert all(rho > 0 for rho in c["rho"])
    assert all(q >= rho for q, rho in zip(c["exact_decrease"], c["rho"]))
    assert c["b_failures"] == 3
    assert all(1 < w <= 4 for w in c["b_ratio"])


def test_lyapunov_terms_one_row():
    # n = 1, p = [1]: H = x x^T, lambda_min = lambda_max = R2 = ||x||^2, and the worst E[B]/J
    # is 4 alpha^2 x^T H x = 4 alpha^2 ||x||^4, exactly 4 times the bound without its factor 4.
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
