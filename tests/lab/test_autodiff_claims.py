"""The autodiff claims compute their slots, and grading answer set 003 gives their verdicts."""

import numpy as np
from claim_records import outcomes, record_of

from nablab.lab import registry
from nablab.lab.experiments import autodiff as exp
from nablab.lab.registry import Context


def test_the_two_claims_are_compute_and_figure():
    computed = registry.registered()
    assert computed["autodiff.graph"] is exp.autodiff_graph
    assert computed["autodiff.jacobian-three-ways"] is exp.jacobian_three_ways


def exact_jacobian(w1=1.0, w2=-1.0):
    """By hand: u = e^w1 + e^(2 w2); d f1/d w1 = (e^u + s(u)(1 - s(u))) e^w1; at w1 > w2, df2 = (w2 + 1, w1)."""
    u = np.exp(w1) + np.exp(2 * w2)
    s = 1 / (1 + np.exp(-u))
    d = np.exp(u) + s * (1 - s)
    return np.array([[d * np.exp(w1), d * 2 * np.exp(2 * w2)], [w2 + 1, w1]])


def test_jacobian_claim_computes_the_exact_jacobian(tmp_path):
    record = record_of("autodiff.jacobian-three-ways", tmp_path)
    slots, evidence = record["slots"], record["computed"]
    expected = exact_jacobian()
    np.testing.assert_allclose(slots["jacobian_reverse_mode"], expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(slots["jacobian_forward_mode"], expected, rtol=1e-13, atol=1e-15)
    u = np.exp(1.0) + np.exp(-2.0)
    np.testing.assert_allclose(slots["value"], [np.exp(u) + 1 / (1 + np.exp(-u)), 0.0], rtol=1e-14)
    assert evidence["modes_agree"] is True


def test_forward_differences_are_the_quotients_with_step_001(tmp_path):
    slots = record_of("autodiff.jacobian-three-ways", tmp_path)["slots"]
    f = lambda w: np.asarray(exp.vector_function(np.asarray(w, dtype=float)))
    w, h = np.array([1.0, -1.0]), 0.01
    by_hand = np.stack([(f(w + h * e) - f(w)) / h for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(slots["jacobian_forward_differences"], by_hand, rtol=1e-12, atol=1e-12)
    # off the derivative by the truncation error O(h): about 1.9% for df1/dw1 here
    rel = abs(by_hand[0, 0] - exact_jacobian()[0, 0]) / exact_jacobian()[0, 0]
    assert 0.01 < rel < 0.03


def test_jacobian_claim_disagrees_with_answer_set_003_on_its_autodiff_entry(tmp_path):
    """003's autodiff df1/dw1 = 47.28739 is 47.30341; its forward differences 48.19, 4.76 are right."""
    record = record_of("autodiff.jacobian-three-ways", tmp_path)
    assert record["status"] == "disagrees"
    assert outcomes(record, "003") == {"value": "unanswered", "jacobian_forward_differences": "correct",
                                "jacobian_forward_mode": "wrong", "jacobian_reverse_mode": "wrong"}
    for grade in record["grades"]["003"]:
        if grade["outcome"] == "wrong":
            given, truth = np.array(grade["given"]), np.array(grade["truth"])
            off = ~np.isclose(given, truth, rtol=2e-4, atol=1e-6)
            assert off.tolist() == [[True, False], [False, False]]     # only df1/dw1
            assert given[0, 0] == 47.28739 and abs(truth[0, 0] - 47.30341) < 5e-6


def test_jacobian_slots_grade_a_right_answer_and_a_wrong_forward_difference(tmp_path):
    from nablab.lab.grading import grade_claim, verdict
    from nablab.lab.sheets import parse_sheet

    truths = record_of("autodiff.jacobian-three-ways", tmp_path)["slots"]
    right = parse_sheet('["autodiff.jacobian-three-ways"]\nvalue = [18.2959, 0]\n'
                        'jacobian_forward_differences = [[48.19, 4.76], [0, 1]]\n'
                        'jacobian_forward_mode = [[47.3034, 4.7102], [0, 1]]\n'
                        'jacobian_reverse_mode = [[47.30341, 4.71], [0, 1]]\n')
    grade = grade_claim("autodiff.jacobian-three-ways", right.answers["autodiff.jacobian-three-ways"], truths)
    assert verdict(grade)[0] == "agrees"
    # the derivative itself is not the forward difference the question asks for
    exact = parse_sheet('["autodiff.jacobian-three-ways"]\njacobian_forward_differences = [[47.30, 4.71], [0, 1]]\n')
    grade = grade_claim("autodiff.jacobian-three-ways", exact.answers["autodiff.jacobian-three-ways"], truths)
    assert [s.slot for s in grade.wrong()] == ["jacobian_forward_differences"]


def test_jacobian_at_another_point_is_not_graded(tmp_path):
    record = record_of("autodiff.jacobian-three-ways", tmp_path, w1=-0.5, w2=0.5)
    assert record["status"] == "reproduced" and record["grades"] == {}
    np.testing.assert_allclose(record["slots"]["jacobian_reverse_mode"], exact_jacobian(-0.5, 0.5)[:1].tolist()
                               + [[0.5, 0.5]], rtol=1e-13)   # w2 > w1: df2 = (w2, w1 + 1)


def test_graph_claim_gradients(tmp_path):
    record = record_of("autodiff.graph", tmp_path, x=-2.0, y=5.0)
    slots = record["slots"]
    # a = x + y = 3, b = y + 1 = 6, f = 18; df/dx = b, df/dy = b + a
    assert slots == {"value": 18.0, "df_da": 6.0, "df_db": 3.0, "df_dx": 6.0, "df_dy": 9.0}
    np.testing.assert_allclose(record["computed"]["finite_differences"], [6.0, 9.0], rtol=1e-8)
    assert record["status"] == "reproduced" and record["grades"] == {}  # another point: not graded


def test_graph_claim_at_its_point_is_reproduced_and_writes_its_dot_file(tmp_path):
    record = record_of("autodiff.graph", tmp_path)
    assert record["status"] == "reproduced"
    assert set(outcomes(record, "003").values()) == {"unanswered"}        # answer set 003 gives no values
    assert record["slots"] == {"value": 9.0, "df_da": 3.0, "df_db": 3.0, "df_dx": 3.0, "df_dy": 6.0}
    assert [n["op"] for n in record["computed"]["nodes"]] == ["x", "y", "add", "add", "multiply"]
    assert record["computed"]["graph_files"] == ["autodiff.graph--graph.dot"]
    dot = (tmp_path / "autodiff.graph--graph.dot").read_text()
    assert dot.startswith("digraph") and "multiply" in dot
    assert record["figures"] == ["autodiff.graph--graph.png"]


def test_a_wrong_traced_gradient_is_an_error_not_a_verdict(tmp_path, monkeypatch):
    """The same graph with another constant: its gradients are not the hand derivative of (x + y)(y + 1)."""
    monkeypatch.setattr(exp, "graph_function", lambda x, y: (x + y) * (y + 2))
    ctx = Context(out_dir=tmp_path, quick=True, claim_id="autodiff.graph")
    comp = registry.compute_claim("autodiff.graph", ctx)
    assert comp.error and comp.error.startswith("SelfCheckError")
