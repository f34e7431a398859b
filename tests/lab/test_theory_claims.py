"""The theory claims: fast runs with small sizes, judged against independent derivations."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from nablab import theory
from nablab.lab import registry
from nablab.lab.experiments import theory as exp
from nablab.lab.registry import Context

IDS = ["theory.gd-1d-divergence", "theory.gd-threshold", "theory.wide-minima", "theory.gd-proximal",
       "theory.regret-lemma", "theory.gd-rate", "theory.sgd-not-monotone"]


def run(fn, tmp_path, claim_id, seed=0, **params):
    result = fn(Context(out_dir=tmp_path, quick=True, seed=seed, params=params, claim_id=claim_id))
    for f in result.figures:
        assert (tmp_path / f).is_file()
    assert result.seed_says
    return result


def test_every_theory_claim_is_registered():
    fns = registry.registered()
    for cid in IDS:
        assert cid in fns and fns[cid].__module__ == exp.__name__
        assert registry.title(cid)


def test_gd_1d_divergence(tmp_path):
    # grid 0.5, 1.0, ..., 4.0: converges for 0 < alpha < 2, diverges above, 2-cycle at 2
    r = run(exp.gd_1d_divergence, tmp_path, "theory.gd-1d-divergence", n_lr=9, steps=40, starts=7)
    assert r.status == "agrees"
    c = r.computed
    assert c["step sizes run"] == 8
    assert c["largest step size that converged from every start"] == 1.5
    assert c["smallest step size that diverged from every start"] == 2.5
    assert c["alpha = 2: |theta_k| = |theta_0| and the sign flips every step"] is True
    assert c["max relative error of the measured growth vs |1 - alpha|"] < 1e-12


def test_gd_threshold(tmp_path):
    r = run(exp.gd_threshold, tmp_path, "theory.gd-threshold", problems=5, starts=6, steps=120,
            ratios=[0.5, 0.95, 1.5, 3.0], bisect_steps=300)
    assert r.status == "agrees"
    frac = r.computed["fraction of starts whose error grew, by step size / (2/rho)"]
    # Below 2/rho the iteration matrix I - lr X^T X has norm < 1: no start can move away.
    assert frac["0.5"] == 0.0 and frac["0.95"] == 0.0
    # At 3x the top direction grows by |1 - 6| = 5 per step: every start blows up.
    assert frac["3"] == 1.0
    assert r.computed["observed threshold / (2/rho) - 1 (bisection): max |.|"] < 0.01
    assert r.computed["GD runs vs closed form (I - lr X^T X)^K e0: max relative difference"] < 1e-8


def test_gd_threshold_refuses_the_boundary_ratio(tmp_path):
    with pytest.raises(ValueError, match="ratios != 1"):
        run(exp.gd_threshold, tmp_path, "theory.gd-threshold", ratios=[0.5, 1.0])


def test_wide_minima_fractions_match_the_basins(tmp_path):
    r = run(exp.wide_minima, tmp_path, "theory.wide-minima", sweep_starts=100, n_sweep=4)
    assert r.status == "agrees"
    c = r.computed
    # Independent: the local maximum between the minima splits the basins of small-step GD.
    peak = brentq(theory.sharp_wide_grad, 2.0, 5.0)
    expected_sharp = (peak + 5.0) / 25.0
    f01 = c["fractions by step size"]["0.01"]
    assert f01["sharp"] == pytest.approx(expected_sharp, abs=0.02)   # binomial sd ~ 0.005
    assert f01["sharp"] + f01["wide"] == 1.0
    assert c["fractions by step size"]["0.3"]["wide"] == 1.0
    assert c["fractions by step size"]["4"]["diverged"] >= 0.99
    # Curvatures: about 20 and 1, so thresholds about 0.1 and 2.
    assert c["2/f'' at the sharp minimum"] == pytest.approx(0.0995, abs=5e-4)
    assert c["2/f'' at the wide minimum"] == pytest.approx(2.0, abs=1e-4)
    assert c["starts per step size"] >= 10_000   # the default, quick or not


def test_gd_proximal(tmp_path):
    r = run(exp.gd_proximal, tmp_path, "theory.gd-proximal", trials=6)
    assert r.status == "agrees"
    for err in r.computed["max relative distance, numerical minimizer vs w_t - grad/lambda"].values():
        assert err < 1e-6
    assert r.computed["max |Hessian of the surrogate - lambda I| / lambda"] < 1e-12


def test_regret_lemma(tmp_path):
    r = run(exp.regret_lemma, tmp_path, "theory.regret-lemma", trials=15)
    assert r.status == "agrees"
    c = r.computed
    assert c["max (left side - bound) / bound"] <= 1e-12
    assert c["tight cases (w* = w_{T+1}): max |left side / bound - 1|"] < 1e-12
    lines = c["seed's per-step lines: max relative residual as identities for <w_t - w*, v_t>"]
    assert lines["(11)"] < 1e-12 and lines["(12)"] < 1e-12 and lines["(10)"] > 0.1


def test_gd_rate_finds_the_seeds_constant_wrong(tmp_path):
    r = run(exp.gd_rate, tmp_path, "theory.gd-rate", problems=4, Ts=[10, 100, 1000], hinge_Ts=[4, 16, 64])
    assert r.status == "disagrees"
    c = r.computed
    assert c["gap <= B rho / sqrt(T) in every run"] is True
    assert c["fitted log-log slope: median"] == pytest.approx(-0.5, abs=0.1)
    # Hinge with B = 32, rho = 1: gap = B (sqrt T + 1) / (2T), e.g. 5 at T = 16, while the
    # seed's (B + 1) / (2 sqrt T) is 4.125 there; it is exceeded whenever T < B^2 = 1024.
    assert c["hinge: gap by T"] == pytest.approx([32 * (math.sqrt(T) + 1) / (2 * T) for T in (4, 16, 64)])
    assert c["hinge: T where the gap exceeds the seed's (B rho + rho)/(2 sqrt(T))"] == [4, 16, 64]
    assert "4, 16, 64" in r.summary


def test_gd_rate_verdict_follows_the_runs(tmp_path):
    # B = 1/2: the seed's constant (B + 1)/2 = 0.75 is above B = 0.5, so the hinge never exceeds it.
    r = run(exp.gd_rate, tmp_path, "theory.gd-rate", problems=2, Ts=[10, 100], hinge_B=0.5,
            hinge_Ts=[4, 16])
    assert r.computed["hinge: T where the gap exceeds the seed's (B rho + rho)/(2 sqrt(T))"] == []
    over = r.computed["runs where a random problem's gap exceeds the seed's (B rho + rho)/(2 sqrt(T))"]
    assert r.status == ("disagrees" if over else "agrees")


def test_sgd_not_monotone(tmp_path):
    r = run(exp.sgd_not_monotone, tmp_path, "theory.sgd-not-monotone", trials=500, etas=[0.1, 1.0])
    assert r.status == "agrees"
    c = r.computed
    assert c["w1 after one step on f1 from w0 = 0"] == [-0.05, -0.5]
    # f(w) = softplus(w) + softplus(-w) = |w| + 2 ln(1 + e^-|w|): the rise from w = 0 in closed form
    rise = [abs(w) + 2 * math.log1p(math.exp(-abs(w))) - 2 * math.log(2) for w in (-0.05, -0.5)]
    assert c["f(w1) - f(w0)"] == pytest.approx(rise, rel=1e-10)
    assert c["fraction of points where one of the two SGD steps raises f"] == 1.0


@pytest.mark.parametrize("cid", IDS)
def test_registry_runs_each_claim_quickly(tmp_path, cid):
    small = {"theory.gd-1d-divergence": {"n_lr": 9, "starts": 5},
             "theory.gd-threshold": {"problems": 3, "starts": 4},
             "theory.wide-minima": {"starts": 500, "sweep_starts": 50, "n_sweep": 3},
             "theory.gd-proximal": {"trials": 3},
             "theory.regret-lemma": {"trials": 5},
             "theory.gd-rate": {"problems": 2, "Ts": [10, 100], "hinge_Ts": [4, 16]},
             "theory.sgd-not-monotone": {"trials": 100}}[cid]
    ctx = Context(out_dir=tmp_path, quick=True, seed=3, params=small)
    result = registry.run(cid, ctx)
    assert result.status in ("agrees", "disagrees"), result.details
    assert result.figures
    assert set(small) <= ctx.used_params
    np.testing.assert_equal(result.computed, registry.to_jsonable(result.computed))


def test_wide_minima_without_the_seeds_rates_only_reproduces(tmp_path):
    r = run(exp.wide_minima, tmp_path, "theory.wide-minima", starts=300, lrs=[0.05], sweep_starts=30, n_sweep=2)
    assert r.status == "reproduced"
    assert r.computed["checks"] == {}


def test_bad_parameters_are_refused_with_their_values(tmp_path):
    with pytest.raises(ValueError, match="lrs=\\[-0.1\\]"):
        run(exp.wide_minima, tmp_path, "theory.wide-minima", lrs=[-0.1])
    with pytest.raises(ValueError, match="lr_max=1.5"):
        run(exp.gd_1d_divergence, tmp_path, "theory.gd-1d-divergence", lr_max=1.5)
    with pytest.raises(ValueError, match="hinge_B=-1.0"):
        run(exp.gd_rate, tmp_path, "theory.gd-rate", hinge_B=-1.0)


def test_a_failed_self_check_is_an_error_not_a_verdict(tmp_path, monkeypatch):
    # A wrong hand-written f' is the library's fault: the claim shows "error", never "disagrees".
    monkeypatch.setattr(theory, "sharp_wide_grad", lambda t: 2 * np.asarray(t, dtype=float))
    ctx = Context(out_dir=tmp_path, quick=True, claim_id="theory.wide-minima",
                  params={"starts": 50, "sweep_starts": 10, "n_sweep": 2})
    r = registry.run("theory.wide-minima", ctx)
    assert r.status == "error" and "hand-written f'" in r.summary
