"""The hypergradient claims: slots, statuses from grading the answer sets, and values against hand derivations.

For the two-dimensional example (X = [1 1], t = 3, w0 = 0, so n = 1 and X X^T = 2) one GD step maps the
residual a = -3 to (1 - 4 eta) a, hence L_t(eta) = 9 (1 - 4 eta)^(2t): eta* = 1/4, w1 = (3/2, 3/2),
grad L0 = (-6, -6), L1'' = 288, dL2/deta = -144 (1 - 4 eta)^3.

The check instance of hyper.one-step-loss and hyper.t-step-loss is X = [[1, 0], [0, 1], [1, 1]], t = (2, 1, 3),
w0 = (1, -1), eta = 0.1 (n = 3): a = X w0 - t = (-1, -2, -3), X X^T a = (-4, -5, -9), |X^T a|^2 = 41,
|X X^T a|^2 = 122, so L1'' = 8 * 122 / 27 = 976/27 and eta* = (3/2) 41 / 122 = 123/244.
"""

import functools
import inspect
from fractions import Fraction

import claim_records
import numpy as np
import pytest
from claim_records import outcomes

from nablab.lab import registry
from nablab.lab.claims import CLAIMS_BY_ID
from nablab.lab.experiments import hyper as exp
from nablab.lab.sheets import answer_sets

#: Each of these claims draws at least one figure.
record_of = functools.partial(claim_records.record_of, need_figures=True)

IDS = ("hyper.graph-two-steps", "hyper.memory-vs-steps", "hyper.long-horizon", "hyper.one-step-loss",
       "hyper.one-step-2d", "hyper.t-step-loss", "hyper.t-step-2d")


def test_every_claim_is_compute_and_figure_and_quotes_no_answer():
    computed = registry.registered()
    for claim_id in IDS:
        assert claim_id in computed and claim_id in registry._FIGURE
        assert CLAIMS_BY_ID[claim_id].slots
    source = inspect.getsource(exp)
    assert "seed" not in source.lower() and "ctx.quick" not in source and "run.quick" not in source


def test_closed_forms_against_the_hand_derivation():
    X, t, w0 = np.array([[1.0, 1.0]]), np.array([3.0]), np.zeros(2)
    cf = exp.one_step_closed_form(X, t, w0)
    assert cf["eta*"] == 0.25 and cf["d2L1"] == 288.0
    for eta in (0.0, 0.1, 0.3):
        assert np.isclose(cf["L1"](eta), 9 * (1 - 4 * eta) ** 2, rtol=1e-14)
        assert np.isclose(cf["dL1"](eta), -72 * (1 - 4 * eta), rtol=1e-14, atol=1e-13)
        for steps in (1, 3, 7):
            expected = 9 * (1 - 4 * eta) ** (2 * steps)
            assert np.isclose(exp.t_step_closed_form(X, t, w0, eta, steps), expected, rtol=1e-12, atol=1e-300)
            # GD's residual X w - 3 cancels: its rounding is ~1e-16 of L0 = 9, not of L_t
            assert np.isclose(exp.numpy_gd_loss(X, t, w0, eta, steps), expected, rtol=1e-12, atol=1e-13)
            assert np.isclose(float(exp.unrolled_loss(eta, w0, X, t, steps)), expected, rtol=1e-12, atol=1e-13)


def test_grid_recursion_matches_the_matrix_power_on_a_random_problem():
    rng = np.random.default_rng(3)
    X, t, w0 = rng.standard_normal((4, 6)), rng.standard_normal(4), rng.standard_normal(6)
    etas = np.linspace(0, 0.5, 7)
    grid = exp.t_step_on_grid(X, t, w0, etas, 4)
    single = [exp.t_step_closed_form(X, t, w0, e, 4) for e in etas]
    np.testing.assert_allclose(grid, single, rtol=1e-11)


@pytest.mark.parametrize("law, curve", [("O(1)", lambda s: 5e4 + 0 * s), ("O(t)", lambda s: 8e3 + 3e4 * s),
                                        ("O(sqrt t)", lambda s: 1e5 + 4e4 * np.sqrt(s)),
                                        ("O(t^2)", lambda s: 1e4 + 50 * s**2)])
def test_growth_law_classifies_synthetic_memory_curves(law, curve):
    steps = np.array([8, 16, 32, 64, 128], float)
    assert exp.growth_law(steps, curve(steps))[0] == law


def check_instance(claim_id):
    p = CLAIMS_BY_ID[claim_id].param_values(quick=True)
    X = [[Fraction(x) for x in row] for row in p["X"]]
    return X, [Fraction(x) for x in p["t"]], [Fraction(x) for x in p["w0"]], Fraction(str(p["eta"])), p


def mv(A, v):
    return [sum(a * b for a, b in zip(row, v)) for row in A]


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def test_sheets_hold_the_answer_sets_formulas_evaluated_at_the_check_instance():
    """The transcribed numbers are the answer sets' own formulas, in exact fractions, at the claims' parameters."""
    sheets = answer_sets()
    X, t, w0, eta, _ = check_instance("hyper.one-step-loss")
    n = len(X)
    XXT = [[dot(r, s) for s in X] for r in X]
    a = [x - y for x, y in zip(mv(X, w0), t)]
    M = [[-Fraction(2, n) * x for x in row] for row in XXT]       # 000 §2.2.2
    Ma = mv(M, a)
    b = mv(XXT, a)
    formulas = {
        "000": {"L1": (dot(a, a) + eta**2 * dot(Ma, Ma) + 2 * eta * dot(a, Ma)) / n,
                "dL1_deta": (2 * eta * dot(Ma, Ma) + 2 * dot(a, Ma)) / n,
                "L1_second_derivative": Fraction(2, n) * dot(Ma, Ma), "eta_star": -dot(a, Ma) / dot(Ma, Ma)},
        "002": {"L1": sum(r * r for r in [xw - 2 * eta / n * bb - tt for xw, bb, tt in zip(mv(X, w0), b, t)]) / n,
                "L1_second_derivative": Fraction(8, n**3) * dot(b, b),
                "eta_star": Fraction(n, 2) * dot(b, [x - y for x, y in zip(mv(X, w0), t)]) / dot(b, b)},
    }
    assert formulas["000"]["L1_second_derivative"] == Fraction(976, 27) and formulas["000"]["eta_star"] == Fraction(123, 244)
    for answer_set, values in formulas.items():
        answers = sheets[answer_set].answers["hyper.one-step-loss"]
        assert set(answers) == set(values) | {"convex"}
        for slot, value in values.items():
            assert answers[slot].value == pytest.approx(float(value), rel=1e-15), (answer_set, slot)
    # 000 §2.3.1: L_m = ||(I - (2 eta/n) X X^T)^m a0||^2, at the t-step claim's instance
    X, t, w0, eta, p = check_instance("hyper.t-step-loss")
    A = [[(i == j) - 2 * eta / n * XXT[i][j] for j in range(n)] for i in range(n)]
    r = [x - y for x, y in zip(mv(X, w0), t)]
    for _ in range(p["horizon"]):
        r = mv(A, r)
    assert sheets["000"].answers["hyper.t-step-loss"]["L_t"].value == pytest.approx(float(dot(r, r)), rel=1e-15)


def test_graph_two_steps(tmp_path):
    eta = 0.1
    record = record_of("hyper.graph-two-steps", tmp_path, eta=eta, problems=3)
    assert record["status"] == "agrees"
    assert record["slots"] == {"eta_uses": 2, "w1_feeds_grad_L1_and_w2": True, "losses_feed_L2": False}
    assert outcomes(record, "000") == dict.fromkeys(record["slots"], "correct")
    c = record["computed"]
    assert np.isclose(c["dL2_deta"], -144 * (1 - 4 * eta) ** 3, rtol=1e-13)
    assert c["losses"] == pytest.approx([9.0, 9 * 0.6**2, 9 * 0.6**4], rel=1e-13)
    assert set(c["named_nodes"]) == {"grad L0", "w1", "grad L1", "w2", "L2"}
    assert all(c["errors"][k] <= c["limits"][k] for k in c["limits"])
    assert c["graph_files"] == ["hyper.graph-two-steps--graph.dot", "hyper.graph-two-steps--graph-with-nablab-grad.dot"]
    for name in c["graph_files"]:
        assert (tmp_path / name).read_text().startswith("digraph")


def test_memory_vs_steps(tmp_path):
    record = record_of("hyper.memory-vs-steps", tmp_path, n=10, d=300, steps=[4, 8, 16, 32])
    assert record["status"] == "agrees"
    assert record["slots"] == {"forward_pass": "O(1)", "forward_mode": "O(1)", "reverse_mode": "O(t)"}
    for answer_set in ("000", "002"):
        assert outcomes(record, answer_set) == {"forward_pass": "correct", "forward_mode": "unanswered",
                                                "reverse_mode": "correct"}
    c = record["computed"]
    growth = c["growth"]
    # forward mode grows no more than the forward pass (a few KiB of fixed overhead at quick sizes)
    assert growth["reverse mode"] > 4 and growth["forward mode"] < 1.1 * max(1.0, growth["forward pass"])
    assert growth["forward pass"] < 1.3
    assert 0.8 < c["loglog_slope"]["reverse mode"] < 1.2
    # every GD iterate is one float64 per parameter: reverse mode keeps at least 8 bytes per parameter per step
    assert c["reverse_fit"]["c1_per_parameter"] >= 8 and c["reverse_fit"]["r_squared"] >= 0.99
    assert all(v <= 1e-6 for v in c["agreement"].values())


def test_memory_vs_steps_refuses_too_few_step_counts(tmp_path):
    from nablab.lab.report import run_claim

    with pytest.raises(registry.ParamError, match="at least three"):
        run_claim("hyper.memory-vs-steps", tmp_path, True, 0, {"steps": [4, 8]})


def test_long_horizon(tmp_path):
    record = record_of("hyper.long-horizon", tmp_path, steps=150)
    assert record["status"] == "agrees", record["details"]
    assert record["slots"] == {"memory_grows": True, "hypergradient_vanishes": True, "hypergradient_explodes": True}
    assert outcomes(record, "000") == {"memory_grows": "correct", "hypergradient_vanishes": "correct",
                                       "hypergradient_explodes": "unanswered"}
    assert outcomes(record, "002") == {"memory_grows": "correct", "hypergradient_vanishes": "unanswered",
                                       "hypergradient_explodes": "unanswered"}
    quad = record["computed"]["least_squares"]
    # at 1.05 eta_crit the top factor is |1 - 2 * 1.05| = 1.1, squared per step
    assert quad["unstable"]["predicted_factor_per_step"] == pytest.approx(1.21, rel=1e-12)
    assert quad["unstable"]["fitted_factor_per_step"] == pytest.approx(1.21, rel=1e-3)
    chaotic = record["computed"]["double_well"]["chaotic"]
    assert chaotic["largest_loss_after_20_steps"] <= 0.25
    assert chaotic["lyapunov_exponent"] > 0.5
    assert record["computed"]["extrapolation"]["GiB"] == pytest.approx(8 * 10**10 / 2**30)


def test_one_step_loss(tmp_path):
    record = record_of("hyper.one-step-loss", tmp_path, problems=8)
    assert record["status"] == "agrees"
    s = record["slots"]
    # the check instance by hand: L1 = (1/n)|a - (2 eta/n) b|^2, b = X X^T a (see the module docstring)
    a, b, n, eta = np.array([-1.0, -2.0, -3.0]), np.array([-4.0, -5.0, -9.0]), 3, 0.1
    assert s["L1"] == pytest.approx(float(np.sum((a - 2 * eta / n * b) ** 2)) / n, rel=1e-13)
    assert s["dL1_deta"] == pytest.approx(float(-4 / n * (a @ b) + 8 * eta / n**2 * (b @ b)) / n, rel=1e-13)
    assert s["L1_second_derivative"] == pytest.approx(976 / 27, rel=1e-13)
    assert s["eta_star"] == pytest.approx(123 / 244, rel=1e-13)
    assert s["convex"] is True
    assert outcomes(record, "000") == dict.fromkeys(s, "correct")
    assert outcomes(record, "002") == {**dict.fromkeys(s, "correct"), "dL1_deta": "unanswered"}
    c = record["computed"]
    assert c["negative_second_derivatives"] == 0
    assert all(c["errors"][k] <= c["limits"][k] for k in c["limits"])
    assert abs(c["degenerate"]["d2L1_deta2"]) < 1e-20
    assert np.ptp(c["degenerate"]["L1_at_0_1_10"]) < 1e-12


def test_one_step_2d(tmp_path):
    record = record_of("hyper.one-step-2d", tmp_path, problems=5)
    assert record["status"] == "agrees"
    s = record["slots"]
    assert s["eta_star"] == 0.25 and s["w1_is_projection"] is True
    np.testing.assert_allclose(s["w1"], [1.5, 1.5], rtol=1e-15)
    np.testing.assert_allclose(s["grad_L0"], [-6.0, -6.0], rtol=1e-15)
    assert outcomes(record, "000") == dict.fromkeys(s, "correct")
    np.testing.assert_allclose(record["computed"]["min_norm_solution"], [1.5, 1.5], rtol=1e-14)
    assert record["computed"]["L1_at_eta_star"] == 0.0


def test_one_step_2d_with_two_examples_is_another_problem(tmp_path):
    # X X^T = [[2, 3], [3, 5]]: one step at eta* does not reach the (unique) solution, and nothing is graded
    record = record_of("hyper.one-step-2d", tmp_path, problems=3, X=[[1.0, 1.0], [1.0, 2.0]], t=[3.0, 3.0])
    assert record["status"] == "reproduced" and record["grades"] == {}
    assert record["slots"]["w1_is_projection"] is False and record["computed"]["L1_at_eta_star"] > 1e-3


def test_t_step_loss(tmp_path):
    record = record_of("hyper.t-step-loss", tmp_path, problems=6, steps=[1, 2, 5], grid=101)
    assert record["status"] == "disagrees"
    s = record["slots"]
    X, t, w0 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([2.0, 1.0, 3.0]), np.array([1.0, -1.0])
    r = X @ w0 - t
    for _ in range(3):
        r = r - (2 * 0.1 / 3) * (X @ (X.T @ r))
    assert s["L_t"] == pytest.approx(float(r @ r) / 3, rel=1e-13)
    assert s["convex"] is True and s["gram_always_positive_definite"] is False
    grades = {g["slot"]: g for g in record["grades"]["000"]}
    assert {k: g["outcome"] for k, g in grades.items()} == {
        "L_t": "wrong", "convex": "correct", "gram_always_positive_definite": "wrong"}
    # the reason: 000's L_m drops the 1/n of the loss, so it is n = 3 times L_t
    assert grades["L_t"]["given"] / grades["L_t"]["truth"] == pytest.approx(3.0, rel=1e-14)
    c = record["computed"]
    assert all(v <= 1e-8 for v in c["errors"].values())
    assert min(c["instance_gram_eigenvalues"]) == pytest.approx(0.0, abs=1e-12)
    assert abs(c["degenerate"]["d2L3_deta2"]) < 1e-20


def test_t_step_2d(tmp_path):
    record = record_of("hyper.t-step-2d", tmp_path)
    assert record["status"] == "reproduced"  # answer set 000 asks the question and gives no answer
    assert outcomes(record, "000") == {"eta_star": "unanswered", "eta_star_depends_on_t": "unanswered"}
    assert record["slots"]["eta_star"] == [0.25] * 7 and record["slots"]["eta_star_depends_on_t"] is False
    c = record["computed"]
    assert all(r["L_t(eta*)"] == 0.0 for r in c["per_t"])
    # X X^T = [[2, 3], [3, 5]]: lambda_1 + lambda_2 = trace = 7, so the limit is n / 7 = 2 / 7
    assert c["contrast"]["limit_n_over_lambda_sum"] == pytest.approx(2 / 7, rel=1e-14)
    etas = c["contrast"]["eta*"]
    assert np.all(np.diff(etas) > 0) and etas[-1] < 2 / 7
