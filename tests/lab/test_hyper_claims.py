"""The hypergradient claims: statuses, and key values against numbers derived by hand.

For the seeds' 2-D example (X = [1 1], t = 3, w0 = 0, so n = 1 and X X^T = 2) one GD step maps the
residual a = -3 to (1 - 4 eta) a, hence L_t(eta) = 9 (1 - 4 eta)^(2t): eta* = 1/4, w1 = (3/2, 3/2),
L1'' = 288, dL2/deta = -144 (1 - 4 eta)^3.
"""

import numpy as np
import pytest

from nablab.lab.experiments import hyper as exp
from nablab.lab.registry import Context


def run(fn, tmp_path, claim_id, **params):
    return fn(Context(out_dir=tmp_path, quick=True, seed=0, params=params, claim_id=claim_id))


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


def test_seed_formulas_and_grid_recursion_on_a_random_problem():
    rng = np.random.default_rng(3)
    X, t, w0 = rng.standard_normal((4, 6)), rng.standard_normal(4), rng.standard_normal(6)
    cf = exp.one_step_closed_form(X, t, w0)
    for seed in (exp.seed000_one_step(X, t, w0), exp.seed002_one_step(X, t, w0)):
        assert np.isclose(seed["d2L1"], cf["d2L1"], rtol=1e-12)
        assert np.isclose(seed["eta*"], cf["eta*"], rtol=1e-12)
    etas = np.linspace(0, 0.5, 7)
    grid = exp.t_step_on_grid(X, t, w0, etas, 4)
    single = [exp.t_step_closed_form(X, t, w0, e, 4) for e in etas]
    np.testing.assert_allclose(grid, single, rtol=1e-11)
    assert np.isclose(exp.seed000_t_step(X, t, w0, 0.1, 3), 4 * exp.t_step_closed_form(X, t, w0, 0.1, 3))


def test_seed_quotes_are_parsed_as_written():
    assert exp._matches(0.25, "1/4") and not exp._matches(0.2500001, "1/4")
    assert exp._matches(1.5, "1.5") and exp._matches(1.54, "1.5") and not exp._matches(1.56, "1.5")


def test_graph_two_steps(tmp_path):
    eta = 0.1
    result = run(exp.graph_two_steps, tmp_path, "hyper.graph-two-steps", eta=eta, problems=3)
    assert result.status == "agrees"
    assert np.isclose(result.computed["dL2/deta (graph)"], -144 * (1 - 4 * eta) ** 3, rtol=1e-13)
    assert result.computed["L0, L1, L2"] == pytest.approx([9.0, 9 * 0.6**2, 9 * 0.6**4], rel=1e-13)
    assert len(result.computed["nodes that use eta"]) == 2 and result.computed["w1 feeds grad L1 and w2"] is True
    assert set(result.computed["named nodes (id)"]) == {"grad L0", "w1", "grad L1", "w2", "L2"}
    assert result.computed["L0 or L1 among the ancestors of L2"] is False
    assert (tmp_path / result.figures[0]).exists()
    assert (tmp_path / "hyper.graph-two-steps--graph.dot").read_text().startswith("digraph")


def test_memory_vs_steps(tmp_path):
    result = run(exp.memory_vs_steps, tmp_path, "hyper.memory-vs-steps", n=10, d=300, steps=[4, 8, 16, 32])
    assert result.status == "agrees"
    growth = result.computed["growth from the first to the last t"]
    # forward mode grows no more than plain training (a few KiB of fixed overhead at quick sizes)
    assert growth["reverse"] > 4 and growth["forward"] < 1.1 * max(1.0, growth["plain training"])
    assert growth["plain training"] < 1.3
    assert 0.8 < result.computed["log-log slope of memory vs t"]["reverse"] < 1.2
    # every GD iterate is one float64 per parameter: reverse mode keeps at least 8 bytes per parameter per step
    assert result.computed["reverse: linear fit bytes = c0 + c1 t"]["bytes per step per parameter"] >= 8
    assert all(v <= 1e-6 for v in result.computed["dL_t/deta agreement (max rel)"].values())


def test_long_horizon(tmp_path):
    result = run(exp.long_horizon, tmp_path, "hyper.long-horizon", steps=150)
    assert result.status == "agrees", result.summary
    quad = result.computed["least squares"]
    # at 1.05 eta_crit the top factor is |1 - 2 * 1.05| = 1.1, squared per step
    assert quad["unstable"]["predicted factor per step"] == pytest.approx(1.21, rel=1e-12)
    assert quad["unstable"]["factor per step fitted to forward mode"] == pytest.approx(1.21, rel=1e-3)
    chaotic = result.computed["double well"]["chaotic"]
    assert chaotic["largest loss after 20 steps"] <= 0.25
    assert chaotic["Lyapunov exponent (mean log|1 - eta f''(w_k)|)"] > 0.5


def test_one_step_loss(tmp_path):
    result = run(exp.one_step_loss, tmp_path, "hyper.one-step-loss", problems=8)
    assert result.status == "agrees"
    assert result.computed["negative autodiff second derivatives"] == 0
    degenerate = result.computed["degenerate case (w0 minimises L)"]
    assert abs(degenerate["d2L1/deta2 (autodiff)"]) < 1e-20
    assert np.ptp(degenerate["L1(0), L1(1), L1(10)"]) < 1e-12


def test_one_step_2d(tmp_path):
    result = run(exp.one_step_2d, tmp_path, "hyper.one-step-2d", problems=5)
    assert result.status == "agrees"
    assert result.computed["eta* (closed form)"] == 0.25
    np.testing.assert_allclose(result.computed["w1"], [1.5, 1.5], rtol=1e-15)
    np.testing.assert_allclose(result.computed["min-norm solution X^T (X X^T)^-1 t"], [1.5, 1.5], rtol=1e-14)


def test_t_step_loss(tmp_path):
    result = run(exp.t_step_loss, tmp_path, "hyper.t-step-loss", problems=6, steps=[1, 2, 5], grid=101)
    assert result.status == "disagrees"  # the seed's L_m drops the 1/n of the loss
    c = result.computed
    assert c["convex on every problem"] is True and c["seed's closed form equals L_t"] is False
    assert c["seed's L_m / true L_t, divided by n (min, max)"] == pytest.approx([1.0, 1.0], rel=1e-12)
    assert all(v <= 1e-8 for v in c["worst relative errors"].values())
    assert abs(c["degenerate case (a0 orthogonal to the range of X)"]["d2L_3/deta2 (autodiff)"]) < 1e-20


def test_t_step_2d(tmp_path):
    result = run(exp.t_step_2d, tmp_path, "hyper.t-step-2d", steps=[1, 2, 4, 8])
    assert result.status == "reproduced"
    assert all(r["eta* library"] == 0.25 and r["L_t(eta*)"] == 0.0 for r in result.computed["per t"])
    # X X^T = [[2, 3], [3, 5]]: lambda_1 + lambda_2 = trace = 7, so the limit is n / 7 = 2 / 7
    assert result.computed["contrast limit n / (lambda_1 + lambda_2)"] == pytest.approx(2 / 7, rel=1e-14)
    etas = [c["eta* library"] for c in result.computed["contrast, X = [[1, 1], [1, 2]], t = [3, 3]"]]
    assert all(a < b for a, b in zip(etas, etas[1:])) and etas[-1] < 2 / 7
