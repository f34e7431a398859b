"""The theory claims: fast runs with small sizes, checked against independent derivations, and
graded on answer sets 001 and 003."""

import math

import numpy as np
import pytest
from claim_records import outcomes, record_of
from scipy.optimize import brentq

from nablab import theory
from nablab.lab import registry
from nablab.lab.experiments import theory as exp
from nablab.lab.grading import grade_claim, verdict
from nablab.lab.registry import ParamError
from nablab.lab.report import run_claim
from nablab.lab.sheets import answer_sets, parse_sheet

IDS = ["theory.lsq-gradients", "theory.gd-1d-divergence", "theory.gd-threshold", "theory.wide-minima",
       "theory.gd-proximal", "theory.regret-lemma", "theory.gd-rate", "theory.sgd-not-monotone"]


def graded(claim_id, sheet_text, truths):
    sheet = parse_sheet(f'["{claim_id}"]\n{sheet_text}')
    return verdict(grade_claim(claim_id, sheet.answers[claim_id], truths))


def test_every_theory_claim_is_written_as_compute_and_figure():
    computations = registry.registered()
    for cid in IDS:
        assert computations[cid].__module__ == exp.__name__
        assert cid in registry._FIGURE or cid == "theory.lsq-gradients"


def test_no_answer_is_quoted_in_the_experiments():
    import inspect

    source = inspect.getsource(exp)
    assert "seed" not in source.replace("run.seed", "").lower()
    for quoted in ("16.5", "(B rho + rho)", "-eta/2", "wideMinima"):
        assert quoted not in source


def test_lsq_gradients(tmp_path):
    r = record_of("theory.lsq-gradients", tmp_path, trials=5)
    assert r["status"] == "agrees"
    assert r["slots"] == {"per_example_formula": True, "full_formula": True}
    c = r["computed"]
    assert c["trials"] == 5
    assert c["per_example_error"] < 1e-12 and c["full_error"] < 1e-12
    assert c["finite_difference_error"] < 1e-6
    assert outcomes(r, "001") == {"per_example_formula": "correct", "full_formula": "correct"}


def test_gd_1d_divergence(tmp_path):
    # grid 0.5, 1.0, ..., 4.0: converges for 0 < alpha < 2, diverges above, 2-cycle at 2
    r = record_of("theory.gd-1d-divergence", tmp_path, n_lr=9, steps=40, starts=7)
    assert r["status"] == "agrees"
    c = r["computed"]
    assert c["step_sizes"] == 8
    assert c["largest_converging"] == 1.5
    assert c["smallest_diverging"] == 2.5
    assert c["growth_error"] < 1e-12
    s = r["slots"]
    assert s["threshold"] == pytest.approx(2.0, rel=1e-9)   # |1 - alpha| = 1 at alpha = 2
    assert s["at_threshold"] == "2-cycle" and s["diverges_above"] and s["converges_below"] and s["closed_form"]
    # Answer set 001 proves the 'if' direction only: the rest is unanswered.
    assert outcomes(r, "001") == {"threshold": "correct", "diverges_above": "correct", "converges_below":
                                  "unanswered", "at_threshold": "unanswered", "closed_form": "correct"}
    assert graded("theory.gd-1d-divergence", "threshold = 1.0\n", s)[0] == "disagrees"
    assert graded("theory.gd-1d-divergence", 'at_threshold = "diverges"\n', s)[0] == "disagrees"


def test_gd_1d_threshold_by_multisection_is_the_closed_form():
    grad_f = lambda t: t  # noqa: E731  f = theta^2/2
    theta0 = np.array([1.0, -3.0, 0.5, 7.0])
    assert exp._threshold_1d(grad_f, 1.9, 2.3, theta0, 50) == pytest.approx(2.0, rel=1e-9)


def test_gd_threshold(tmp_path):
    r = record_of("theory.gd-threshold", tmp_path, problems=5, starts=6, steps=120,
                  ratios=[0.5, 0.95, 1.5, 3.0], bisect_steps=300)
    assert r["status"] == "agrees"
    c = r["computed"]
    frac = dict(zip(c["ratios"], c["growing_fraction"]))
    # Below 2/rho the iteration matrix I - lr X^T X has norm < 1: no start can move away.
    assert frac[0.5] == 0.0 and frac[0.95] == 0.0
    # At 3x the top direction grows by |1 - 6| = 5 per step: every start blows up.
    assert frac[3.0] == 1.0
    assert c["contraction_below"] < 1
    assert c["threshold_ratio_max_deviation"] < 0.01
    assert c["closed_form_error"] < 1e-8
    s = r["slots"]
    assert abs(s["threshold_ratio"] - 1) == pytest.approx(c["threshold_ratio_max_deviation"])
    assert s["diverges_above"] and s["converges_below"] and s["error_recursion"]
    assert outcomes(r, "001") == {"threshold_ratio": "correct", "diverges_above": "correct",
                                  "converges_below": "unanswered", "error_recursion": "correct"}
    assert graded("theory.gd-threshold", "threshold_ratio = 0.5\n", s)[0] == "disagrees"


def test_gd_threshold_refuses_the_boundary_ratio(tmp_path):
    with pytest.raises(ParamError, match="ratios != 1"):
        run_claim("theory.gd-threshold", tmp_path, True, 0, {"ratios": [0.5, 1.0]})
    with pytest.raises(ParamError, match="both sides"):
        run_claim("theory.gd-threshold", tmp_path, True, 0, {"ratios": [0.5, 0.9]})


def test_wide_minima_fractions_match_the_basins(tmp_path):
    r = record_of("theory.wide-minima", tmp_path, sweep_starts=100, n_sweep=4)
    assert r["status"] == "agrees"
    c = r["computed"]
    # Independent: the local maximum between the minima splits the basins of small-step GD.
    peak = brentq(theory.sharp_wide_grad, 2.0, 5.0)
    expected_sharp = (peak + 5.0) / 25.0
    f01 = c["fractions"]["0.01"]
    assert f01["sharp"] == pytest.approx(expected_sharp, abs=0.02)   # binomial sd ~ 0.005
    assert f01["sharp"] + f01["wide"] == 1.0
    assert c["fractions"]["0.3"]["wide"] == 1.0
    assert c["fractions"]["4"]["diverged"] >= 0.99
    # Curvatures: about 20 and 1, so thresholds about 0.1 and 2.
    assert c["stability_sharp"] == pytest.approx(0.0995, abs=5e-4)
    assert c["stability_wide"] == pytest.approx(2.0, abs=1e-4)
    assert c["starts"] >= 10_000   # the default, quick or not
    assert r["slots"] == {"lr_0_01": "either minimum", "lr_0_3": "the wide minimum",
                          "lr_4": "mostly no convergence"}
    assert set(outcomes(r, "001").values()) == {"correct"}
    assert graded("theory.wide-minima", 'lr_0_3 = "either minimum"\n', r["slots"])[0] == "disagrees"


def test_wide_minima_outcome_words_are_the_slots_choices():
    base = {"sharp": 0.0, "wide": 0.0, "other stationary point": 0.0}
    words = [exp._outcome({**base, "sharp": 0.3, "wide": 0.7}), exp._outcome({**base, "wide": 1.0}),
             exp._outcome({**base, "sharp": 0.995, "wide": 0.005}), exp._outcome({**base, "wide": 0.2}),
             exp._outcome({**base, "wide": 0.7})]
    assert words == ["either minimum", "the wide minimum", "the sharp minimum", "mostly no convergence", "mixed"]
    slots = registry.CLAIMS_BY_ID["theory.wide-minima"].slots
    assert {name: exp._slot_step_size(name) for name in slots} == {"lr_0_01": 0.01, "lr_0_3": 0.3, "lr_4": 4.0}
    for slot in slots.values():
        assert set(slot.choices) == set(words)


def test_wide_minima_without_the_problems_step_sizes_is_only_reproduced(tmp_path):
    r = record_of("theory.wide-minima", tmp_path, starts=300, lrs=[0.05], sweep_starts=30, n_sweep=2)
    assert r["status"] == "reproduced"
    assert r["slots"] == {"lr_0_01": None, "lr_0_3": None, "lr_4": None}
    assert r["grades"] == {} and "lrs changed" in r["details"]
    assert list(r["computed"]["fractions"]) == ["0.05"]


def test_gd_proximal(tmp_path):
    r = record_of("theory.gd-proximal", tmp_path, trials=6)
    assert r["status"] == "agrees"
    c = r["computed"]
    for err in c["minimizer_error"].values():
        assert err < 1e-6
    assert c["hessian_error"] < 1e-12 and c["stationarity_error"] < 1e-12
    assert r["slots"]["minimizer_is_gd_step"] is True
    assert r["slots"]["eta_times_lambda"] == pytest.approx(1.0, rel=1e-6)
    assert outcomes(r, "003") == {"minimizer_is_gd_step": "correct", "eta_times_lambda": "correct"}
    assert graded("theory.gd-proximal", "eta_times_lambda = 2.0\n", r["slots"])[0] == "disagrees"


def test_regret_lemma(tmp_path):
    r = record_of("theory.regret-lemma", tmp_path, trials=15)
    assert r["status"] == "agrees"
    c = r["computed"]
    assert c["max_excess"] <= 1e-12
    assert c["tight_error"] < 1e-12
    assert c["polarization_residual"] < 1e-12 and c["step_identity_residual"] < 1e-12
    assert c["largest_ratio_other_kinds"] <= 1 + 1e-12
    assert r["slots"] == {"inequality_holds": True, "slack_is_final_distance": True}
    assert outcomes(r, "003") == {"inequality_holds": "correct", "slack_is_final_distance": "correct"}


def test_answer_set_003s_line_10_is_not_an_identity():
    """The claim's notes say so: ||a||^2 + ||eta v||^2 + ||a - eta v||^2 is not <a, v> (it is >= 0)."""
    rng = np.random.default_rng(0)
    a, v, eta = rng.standard_normal(5), rng.standard_normal(5), 0.3
    line_10 = a @ a + (eta * v) @ (eta * v) + (a - eta * v) @ (a - eta * v)
    assert abs(line_10 - a @ v) > 0.1 * abs(line_10)
    assert "(10)" in registry.CLAIMS_BY_ID["theory.regret-lemma"].notes


def test_gd_rate_finds_answer_set_003s_constant_wrong(tmp_path):
    r = record_of("theory.gd-rate", tmp_path, problems=4, Ts=[10, 100, 1000], hinge_Ts=[4, 16, 64])
    assert r["status"] == "disagrees"
    c, s = r["computed"], r["slots"]
    assert c["max_gap_over_bound"] <= 1.0
    assert s["rate_exponent"] == pytest.approx(-0.5, abs=0.1)
    # Hinge with B = 32, rho = 1: gap = B (sqrt T + 1) / (2T), e.g. 5 at T = 16.
    assert c["hinge_gap"] == pytest.approx([32 * (math.sqrt(T) + 1) / (2 * T) for T in (4, 16, 64)])
    assert c["hinge_exact"] is True
    assert s["bound_constant"] == 32.0                 # B rho
    assert outcomes(r, "003") == {"rate_exponent": "correct", "bound_constant": "wrong"}
    # Why the answer set's constant is refuted: the hinge's gap exceeds C/sqrt(T) for it at every T run.
    given = answer_sets()["003"].answers["theory.gd-rate"]["bound_constant"].value
    assert all(gap * math.sqrt(T) > given for gap, T in zip(c["hinge_gap"], (4, 16, 64)))
    assert "bound_constant: wrong" in r["details"]
    assert graded("theory.gd-rate", "rate_exponent = -0.5\nbound_constant = 32.0\n", s)[0] == "agrees"


def test_gd_rate_constant_is_attained_at_one_step(tmp_path):
    r = record_of("theory.gd-rate", tmp_path, problems=2, Ts=[10, 100])
    assert r["computed"]["hinge_T"][0] == 1
    assert r["computed"]["hinge_constant_measured"] == r["slots"]["bound_constant"] == 32.0


def test_gd_rate_on_another_hinge_is_not_graded(tmp_path):
    r = record_of("theory.gd-rate", tmp_path, problems=2, Ts=[10, 100], hinge_B=0.5, hinge_Ts=[1, 4, 16])
    assert r["status"] == "reproduced" and r["grades"] == {}
    assert r["slots"]["bound_constant"] == 0.5


def test_sgd_not_monotone(tmp_path):
    r = record_of("theory.sgd-not-monotone", tmp_path, trials=500, etas=[0.1, 1.0])
    assert r["status"] == "agrees"
    c = r["computed"]
    assert c["w1"] == [-0.05, -0.5]
    # f(w) = softplus(w) + softplus(-w) = |w| + 2 ln(1 + e^-|w|): the rise from w = 0 in closed form
    rise = [abs(w) + 2 * math.log1p(math.exp(-abs(w))) - 2 * math.log(2) for w in (-0.05, -0.5)]
    assert c["rise"] == pytest.approx(rise, rel=1e-10)
    assert c["fraction_points_with_uphill_step"] == 1.0 and c["uphill_side_rule"] is True
    assert r["slots"] == {"always_decreases": False, "w1_over_eta": -0.5, "counterexample_raises_f": True,
                          "uphill_step_everywhere": True}
    assert outcomes(r, "003") == {"always_decreases": "correct", "w1_over_eta": "correct",
                                  "counterexample_raises_f": "correct", "uphill_step_everywhere": "unanswered"}


SMALL = {"theory.lsq-gradients": {"trials": 3},
         "theory.gd-1d-divergence": {"n_lr": 9, "starts": 5},
         "theory.gd-threshold": {"problems": 3, "starts": 4},
         "theory.wide-minima": {"starts": 500, "sweep_starts": 50, "n_sweep": 3},
         "theory.gd-proximal": {"trials": 3},
         "theory.regret-lemma": {"trials": 5},
         "theory.gd-rate": {"problems": 2, "Ts": [10, 100], "hinge_Ts": [1, 4, 16]},
         "theory.sgd-not-monotone": {"trials": 100}}


@pytest.mark.parametrize("cid", IDS)
def test_each_claim_runs_with_another_seed_and_keeps_its_verdict(tmp_path, cid):
    r = record_of(cid, tmp_path, seed=3, **SMALL[cid])
    assert r["status"] == ("disagrees" if cid == "theory.gd-rate" else "agrees"), r["details"]
    assert set(r["slots"]) == set(registry.CLAIMS_BY_ID[cid].slots)
    assert r["figures"] or cid == "theory.lsq-gradients"
    np.testing.assert_equal(r["computed"], registry.to_jsonable(r["computed"]))


def test_bad_parameters_are_refused_with_their_values(tmp_path):
    with pytest.raises(ParamError, match=r"lrs=\[-0.1\]"):
        run_claim("theory.wide-minima", tmp_path, True, 0, {"lrs": [-0.1]})
    with pytest.raises(ParamError, match="lr_max=1.5"):
        run_claim("theory.gd-1d-divergence", tmp_path, True, 0, {"lr_max": 1.5})
    with pytest.raises(ParamError, match="hinge_B=-1.0"):
        run_claim("theory.gd-rate", tmp_path, True, 0, {"hinge_B": -1.0})
    with pytest.raises(ParamError, match="no parameter 'threshold_tol'"):
        run_claim("theory.gd-threshold", tmp_path, True, 0, {"threshold_tol": 0.1})


def test_a_failed_self_check_is_an_error_not_a_verdict(tmp_path, monkeypatch):
    # A wrong hand-written f' is the library's fault: the claim shows "error", never "disagrees".
    monkeypatch.setattr(theory, "sharp_wide_grad", lambda t: 2 * np.asarray(t, dtype=float))
    record, _ = run_claim("theory.wide-minima", tmp_path, True, 0,
                          {"starts": 50, "sweep_starts": 10, "n_sweep": 2})
    assert record["status"] == "error" and "hand-written f'" in record["summary"]
    assert record["grades"] == {}
