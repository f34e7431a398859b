"""The claims cnn.filter-output, cnn.filter-design and data.one-hot compute their answers and judge the seeds."""

import numpy as np
import pytest

from nablab.lab import registry
from nablab.lab.experiments import cnn
from nablab.lab.experiments import data as data_exp
from nablab.lab.registry import Context


def run(fn, tmp_path, claim_id, **params):
    result = fn(Context(out_dir=tmp_path, quick=True, seed=0, params=params, claim_id=claim_id))
    for figure in result.figures:
        assert (tmp_path / figure).is_file()
    return result


def laplacian_by_hand(image):
    """4 x centre minus the four neighbours, zero outside: an independent evaluation of I * J."""
    p = np.pad(image, 1)
    return 4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]


def test_the_three_claims_are_registered():
    fns = registry.registered()
    assert fns["cnn.filter-output"] is cnn.filter_output
    assert fns["cnn.filter-design"] is cnn.filter_design
    assert fns["data.one-hot"] is data_exp.one_hot  # its compute function


def test_filter_output_matches_a_hand_laplacian_and_both_answer_sets(tmp_path):
    result = run(cnn.filter_output, tmp_path, "cnn.filter-output")
    expected = laplacian_by_hand(cnn.INPUT_I)
    np.testing.assert_array_equal(result.computed["I * J (cross-correlation, zero padding)"], expected)
    np.testing.assert_array_equal(result.computed["with the flipped filter (true convolution)"], expected)
    assert result.status == "agrees"
    assert all(r["match"] for s in ("000", "002") for r in result.computed["entry-by-entry against the seed"][s])
    assert result.computed["max |response| inside a linear ramp"] < 1e-12
    assert "25 of 25" in result.summary and "cross-correlation" in result.summary


def test_filter_output_reports_a_wrong_entry(tmp_path, monkeypatch):
    wrong = [row[:] for row in cnn.SEED_002_OUTPUT]
    wrong[2][0] = "2"
    monkeypatch.setattr(cnn, "SEED_002_OUTPUT", wrong)
    result = run(cnn.filter_output, tmp_path, "cnn.filter-output")
    assert result.status == "disagrees"
    assert "seed 002 entry (3, 1) says 2, computed 3" in result.summary


def test_conv2d_is_cross_correlation_on_an_asymmetric_kernel():
    from scipy import signal

    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((6, 7)), rng.standard_normal((3, 3))
    np.testing.assert_allclose(cnn.correlate(x, k, padding=1), signal.correlate2d(x, k, mode="same"), atol=1e-13)
    assert not np.allclose(cnn.correlate(x, k, padding=1), signal.convolve2d(x, k, mode="same"))


def test_filter_design_behaviours(tmp_path):
    result = run(cnn.filter_design, tmp_path, "cnn.filter-design")
    assert result.status == "agrees"
    peak = result.computed["max |response| on step edges (valid)"]
    assert peak["b"]["horizontal edge"] == 3 and peak["b"]["vertical edge"] == 0
    assert peak["c"]["diagonal edge /"] == 0 and peak["c"]["diagonal edge \\"] == 1
    assert result.computed["ramp tuning: angle of peak (degrees)"] == {"b": 0, "c": 135}
    assert result.computed["(d) cross-correlation shifts left by one"]
    assert result.computed["(d) flipped convolution shifts right by one"]
    assert result.computed["a dot comes out as the kernel rotated 180 degrees"]
    assert len(result.figures) == 2


@pytest.mark.parametrize("angle", [0, 20, 45, 90, 110, 135, 170])
def test_ramp_responses_follow_the_closed_forms(angle):
    """On a unit-slope ramp at edge angle phi: (b) gives 6 cos(phi), (c) gives sqrt(2) cos(phi + 45 deg)."""
    phi = np.deg2rad(angle)
    b = cnn.quoted_matrix(cnn.SEED_FILTERS["b"])
    c = cnn.quoted_matrix(cnn.SEED_FILTERS["c"])
    np.testing.assert_allclose(cnn.correlate(cnn.ramp(angle), b), 6 * np.cos(phi), atol=1e-12)
    np.testing.assert_allclose(cnn.correlate(cnn.ramp(angle), c), np.sqrt(2) * np.cos(phi + np.pi / 4), atol=1e-12)


def test_filter_design_notices_a_filter_that_does_not_do_the_job(tmp_path, monkeypatch):
    swapped = dict(cnn.SEED_FILTERS, b=[["1", "0", "-1"], ["1", "0", "-1"], ["1", "0", "-1"]])  # vertical edges
    monkeypatch.setattr(cnn, "SEED_FILTERS", swapped)
    result = run(cnn.filter_design, tmp_path, "cnn.filter-design")
    assert result.status == "disagrees"
    assert result.computed["max |response| on step edges (valid)"]["b"]["horizontal edge"] == 0


def record_of(claim_id, tmp_path, **params):
    """The report's record of a claim written as compute and figure (figures checked on disk)."""
    from nablab.lab.report import run_claim

    record, _ = run_claim(claim_id, tmp_path, True, 0, params)
    assert record["status"] != "error", record["details"]
    for figure in record["figures"]:
        assert (tmp_path / figure).is_file()
    return record


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
