"""The claims cnn.filter-output, cnn.filter-design and data.one-hot compute their slots; grading the answer sets gives the verdicts."""

import numpy as np
import pytest
from claim_records import outcomes, record_of

from nablab.lab import registry
from nablab.lab.experiments import cnn
from nablab.lab.experiments import data as data_exp
from nablab.lab.grading import grade_claim, verdict
from nablab.lab.sheets import answer_sets, parse_sheet

#: The problem's input and filter (problem set 000, section 3.1), and answer set 004's three filters.
INPUT_I = np.array([[0, 1, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], float)
FILTER_B = np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], float)
FILTER_C = np.array([[0, 1], [-1, 0]], float)


def laplacian_by_hand(image):
    """4 x centre minus the four neighbours, zero outside: an independent evaluation of I * J."""
    p = np.pad(image, 1)
    return 4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]


def test_the_three_claims_are_registered():
    fns = registry.registered()
    assert fns["cnn.filter-output"] is cnn.filter_output      # compute functions
    assert fns["cnn.filter-design"] is cnn.filter_design
    assert fns["data.one-hot"] is data_exp.one_hot
    assert set(registry.registered()) >= {"cnn.filter-output", "cnn.filter-design", "data.one-hot"}


def test_filter_output_matches_a_hand_laplacian_and_both_answer_sets(tmp_path):
    record = record_of("cnn.filter-output", tmp_path)
    expected = laplacian_by_hand(INPUT_I)
    np.testing.assert_array_equal(record["slots"]["output"], expected)
    np.testing.assert_array_equal(record["computed"]["flipped_output"], expected)
    assert record["status"] == "agrees"
    for answer_set in ("000", "002"):
        assert outcomes(record, answer_set) == {"output": "correct", "detects_edges": "correct"}
    assert "Answer set 002: all 2 answered slots are right" in record["details"]
    c = record["computed"]
    assert record["slots"]["detects_edges"] is True
    assert c["max_response_in_ramp"] < 1e-12 and c["kernel_sum"] == 0 and c["rotation_invariant"]
    assert c["kernel_symmetric"] and c["silent_exactly_on_flat"]
    assert (c["flat_pixels"], c["edge_pixels"]) == (7, 18)


def test_filter_output_grades_a_wrong_entry_wrong(tmp_path):
    truths = record_of("cnn.filter-output", tmp_path)["slots"]
    given = laplacian_by_hand(INPUT_I).astype(int)
    given[2, 0] = 2
    sheet = parse_sheet(f'["cnn.filter-output"]\noutput = {given.tolist()}\ndetects_edges = true\n')
    grade = grade_claim("cnn.filter-output", sheet.answers["cnn.filter-output"], truths)
    status, reason = verdict(grade)
    assert status == "disagrees" and [s.slot for s in grade.wrong()] == ["output"]
    assert "output: wrong" in reason


def test_filter_output_with_an_asymmetric_filter_is_computed_not_graded(tmp_path):
    kernel = [[0, 1, 0], [0, -1, 0], [0, 0, 0]]
    record = record_of("cnn.filter-output", tmp_path, kernel=kernel)
    assert record["status"] == "reproduced" and record["grades"] == {}
    np.testing.assert_array_equal(record["slots"]["output"],
                                  np.pad(INPUT_I, 1)[:-2, 1:-1] - INPUT_I)   # the pixel above minus the pixel
    assert not record["computed"]["kernel_symmetric"]
    assert record["slots"]["detects_edges"] is False


def test_conv2d_is_cross_correlation_on_an_asymmetric_kernel():
    from scipy import signal

    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((6, 7)), rng.standard_normal((3, 3))
    np.testing.assert_allclose(cnn.correlate(x, k, padding=1), signal.correlate2d(x, k, mode="same"), atol=1e-13)
    assert not np.allclose(cnn.correlate(x, k, padding=1), signal.convolve2d(x, k, mode="same"))


def test_filter_design_behaviours(tmp_path):
    record = record_of("cnn.filter-design", tmp_path)
    assert record["status"] == "agrees"
    assert outcomes(record, "004") == {"filter_b": "correct", "filter_c": "correct", "filter_d": "correct"}
    assert record["slots"] == {"filter_b": "horizontal-edge detector", "filter_c": "diagonal-edge detector",
                               "filter_d": "one-pixel shift"}
    c = record["computed"]
    peak = c["step_peaks"]
    assert peak["b"]["horizontal edge"] == 3 and peak["b"]["vertical edge"] == 0
    assert peak["c"]["diagonal edge /"] == 0 and peak["c"]["diagonal edge \\"] == 1
    assert {k: c["ramp_peak_angle"][k] for k in "bc"} == {"b": 0, "c": 135}
    assert c["ramp_null_angles"]["b"] == [90] and c["ramp_null_angles"]["c"] == [45]
    assert c["shift"] == {"b": None, "c": None, "d": "left"}
    assert c["shift_flipped"]["d"] == "right"
    assert c["impulse_is_rotated_kernel"]
    assert len(record["figures"]) == 2


@pytest.mark.parametrize("angle", [0, 20, 45, 90, 110, 135, 170])
def test_ramp_responses_follow_the_closed_forms(angle):
    """On a unit-slope ramp at edge angle phi: (b) gives 6 cos(phi), (c) gives sqrt(2) cos(phi + 45 deg)."""
    phi = np.deg2rad(angle)
    np.testing.assert_allclose(cnn.correlate(cnn.ramp(angle), FILTER_B), 6 * np.cos(phi), atol=1e-12)
    np.testing.assert_allclose(cnn.correlate(cnn.ramp(angle), FILTER_C), np.sqrt(2) * np.cos(phi + np.pi / 4),
                               atol=1e-12)


def test_filter_design_notices_a_filter_that_does_not_do_the_job(tmp_path):
    vertical = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]
    record = record_of("cnn.filter-design", tmp_path, kernel_b=vertical)
    assert record["status"] == "reproduced" and record["grades"] == {}  # another problem: not graded
    assert record["slots"]["filter_b"] == "vertical-edge detector"
    assert record["computed"]["step_peaks"]["b"]["horizontal edge"] == 0
    grade = grade_claim("cnn.filter-design", answer_sets()["004"].answers["cnn.filter-design"], record["slots"])
    assert verdict(grade)[0] == "disagrees" and [s.slot for s in grade.wrong()] == ["filter_b"]
    blur = record_of("cnn.filter-design", tmp_path / "blur", kernel_d=[[1, 1, 1], [1, 1, 1], [1, 1, 1]])
    assert blur["slots"]["filter_d"] == "other"


def test_one_hot_claim_finds_answer_set_004_incomplete(tmp_path):
    record = record_of("data.one-hot", tmp_path)
    assert record["status"] == "disagrees"
    assert record["computed"]["vocabulary"] == ["This", "exam", "is", "a", "midterm"]
    assert record["slots"]["vocabulary_size"] == 5
    one_hot_rows = np.eye(5, dtype=int)[[0, 1, 2, 3, 4, 1]]  # columns This, exam, is, a, midterm
    np.testing.assert_array_equal(record["slots"]["one_hot"], one_hot_rows)
    outcomes = {g["slot"]: g["outcome"] for g in record["grades"]["004"]}
    assert outcomes == {"vocabulary_size": "wrong", "one_hot": "wrong", "repeats_share_a_row": "wrong"}


def test_one_hot_claim_agrees_with_a_complete_answer(tmp_path):
    from nablab.lab.grading import grade_claim, verdict
    from nablab.lab.sheets import parse_sheet

    rows = np.eye(5, dtype=int)[[0, 1, 2, 3, 4, 1]].tolist()
    sheet = parse_sheet(f'["data.one-hot"]\nvocabulary_size = 5\none_hot = {rows}\n'
                        'repeats_share_a_row = true\n')
    truths = record_of("data.one-hot", tmp_path)["slots"]
    assert verdict(grade_claim("data.one-hot", sheet.answers["data.one-hot"], truths))[0] == "agrees"


def test_one_hot_claim_on_another_sentence_is_only_reproduced(tmp_path):
    record = record_of("data.one-hot", tmp_path, sentence="to be or not to be")
    assert record["status"] == "reproduced"
    assert record["computed"]["vocabulary"] == ["to", "be", "or", "not"]
    assert record["grades"] == {}
