"""The autodiff claims compute their answers and judge the seed's quotes."""

import numpy as np

from nablab.lab.compare import compare_quotes, matches_quote, quote_tolerance
from nablab.lab.experiments import autodiff as exp
from nablab.lab.registry import Context


def run(fn, tmp_path, claim_id, **params):
    return fn(Context(out_dir=tmp_path, quick=True, seed=0, params=params, claim_id=claim_id))


def test_quote_tolerance_is_half_a_unit_in_the_last_place():
    assert quote_tolerance("4.71") == 0.005
    assert quote_tolerance("12") == 0.5
    assert np.isclose(quote_tolerance("1.5e-3"), 5e-5)
    assert matches_quote(4.7149, "4.71") and not matches_quote(4.7151, "4.71")
    assert [r["match"] for r in compare_quotes([[1.0, 2.0]], [["1.0", "2.1"]])] == [True, False]


def test_jacobian_claim_computes_the_exact_jacobian(tmp_path):
    result = run(exp.jacobian_three_ways, tmp_path, "autodiff.jacobian-three-ways")
    # exact derivative by hand: u = e^w1 + e^(2 w2); d f1/d w1 = (e^u + s(u)(1 - s(u))) e^w1
    u = np.exp(1.0) + np.exp(-2.0)
    s = 1 / (1 + np.exp(-u))
    d = np.exp(u) + s * (1 - s)
    expected = np.array([[d * np.exp(1.0), d * 2 * np.exp(-2.0)], [0.0, 1.0]])
    np.testing.assert_allclose(result.computed["reverse mode"], expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result.computed["forward mode"], expected, rtol=1e-13, atol=1e-15)
    assert result.status == "disagrees"  # the seed's 47.28739 is not d f1/d w1 = 47.3034...
    assert "47.28739" in result.summary
    assert (tmp_path / result.figures[0]).exists()


def test_graph_claim_gradients(tmp_path):
    result = run(exp.autodiff_graph, tmp_path, "autodiff.graph", x=-2.0, y=5.0)
    assert result.status == "reproduced"
    assert result.computed["df/dx"] == 6.0 and result.computed["df/dy"] == 9.0


def test_lsq_claim(tmp_path):
    result = run(exp.lsq_gradients, tmp_path, "theory.lsq-gradients", trials=5)
    assert result.status == "agrees"
    assert result.computed["random problems"] == 5
