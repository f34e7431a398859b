"""Answer slots, sheets and grading: reading answers, refusing bad sheets by file, line and slot,
comparing by each rule, the template, and the problem sets' own answer sheets."""

import numpy as np
import pytest

from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID
from nablab.lab.grading import grade_claim, grade_sheet, verdict
from nablab.lab.sheets import SheetError, answer_sets, load_sheet, parse_sheet, template
from nablab.lab.slots import AnswerError, Slot

# --------------------------------------------------------------------------- slots


@pytest.mark.parametrize("slot, raw, value", [
    (Slot("x", "number"), 2, 2.0),
    (Slot("v", "vector"), [1, 2.5], np.array([1.0, 2.5])),
    (Slot("m", "matrix"), [[1, 0], [0, 1]], np.eye(2)),
    (Slot("s", "shape"), [32, 128, 26, 26], (32, 128, 26, 26)),
    (Slot("n", "count"), 52444644, 52444644),
    (Slot("b", "boolean"), False, False),
    (Slot("c", "choice", choices=("wide", "sharp")), "wide", "wide"),
    (Slot("cs", "choice", choices=("depth", "stride", "pooling"), many=True), ["stride", "depth"],
     ["depth", "stride"]),
])
def test_slots_read_their_type(slot, raw, value):
    got = slot.read(raw, "here")
    np.testing.assert_array_equal(got, value)


@pytest.mark.parametrize("slot, raw, message", [
    (Slot("x", "number"), "0.5", "expected a number"),
    (Slot("x", "number"), True, "expected a number"),
    (Slot("x", "number"), float("nan"), "NaN or infinite"),
    (Slot("v", "vector"), [[1, 2]], "1 dimensions"),
    (Slot("v", "vector", shape=(3,)), [1, 2], r"expected shape \(3,\)"),
    (Slot("m", "matrix"), [[1, 2], [3]], "expected a list of rows"),
    (Slot("s", "shape"), [32, -1], "non-negative integers"),
    (Slot("n", "count"), 2.5, "non-negative integer"),
    (Slot("b", "boolean"), 1, "true or false"),
    (Slot("c", "choice", choices=("wide", "sharp")), "flat", "not one of"),
    (Slot("cs", "choice", choices=("a", "b"), many=True), ["a", "a"], "listed twice"),
])
def test_slots_refuse_answers_that_do_not_fit(slot, raw, message):
    with pytest.raises(AnswerError, match=message):
        slot.read(raw, "here")


def test_rules_compare_as_stated():
    assert Slot("x", "number", tol=1e-3).compare(1.0005, 1.0)[0]
    assert not Slot("x", "number", tol=1e-4).compare(1.0005, 1.0)[0]
    assert Slot("x", "number", rule="atol", tol=0.01).compare(0.005, 0.0)[0]
    assert not Slot("m", "matrix", rule="exact").compare(np.eye(2), np.eye(2) * 1.0001)[0]
    ok, text = Slot("v", "vector").compare(np.array([1.0, 2.0]), [1.0, 2.0, 3.0])
    assert not ok and "shape" in text
    assert Slot("cs", "choice", choices=("a", "b", "c"), many=True).compare(["a", "c"], ["c", "a"])[0]
    assert not Slot("n", "count").compare(295168, 296168)[0]


def test_a_slot_declaration_is_checked():
    with pytest.raises(ValueError, match="type 'tensor'"):
        Slot("x", "tensor")
    with pytest.raises(ValueError, match="compares numbers"):
        Slot("b", "boolean", rule="rtol")
    with pytest.raises(ValueError, match="needs its choices"):
        Slot("c", "choice")


# --------------------------------------------------------------------------- sheets


def write(tmp_path, text, name="sheet.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ('["data.one-hot"\n', "is not valid TOML"),
    ('["data.on-hot"]\nvocabulary_size = 5\n', r"line 1: unknown claim 'data.on-hot'; did you mean 'data.one-hot'"),
    ('["data.one-hot"]\nvocab = 5\n', r"line 2: data.one-hot.vocab: data.one-hot has no slot 'vocab'"),
    ('["data.one-hot"]\n\nvocabulary_size = 5.5\n', r"line 3: data.one-hot.vocabulary_size: expected a non-negative"),
    ('["data.one-hot"]\none_hot = [[1, 0], [0]]\n', r"line 2: data.one-hot.one_hot: expected a list of rows"),
    ('["data.one-hot"]\nvocabulary_size = 5\nvocabulary_size = 6\n', "is not valid TOML"),
    ('[sheet]\nwho = "me"\n', r"line 1: unknown keys \['who'\] in \[sheet\]"),
    ('["data.one-hot"]\nvocabulary_size = { value = 5, said = "five" }\n', "needs 'value'"),
])
def test_bad_sheets_are_refused_naming_file_line_and_slot(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SheetError, match=message) as err:
        load_sheet(path)
    assert str(path) in str(err.value)


def test_files_that_are_not_sheets(tmp_path):
    with pytest.raises(SheetError, match="no such file"):
        load_sheet(tmp_path / "missing.toml")
    with pytest.raises(SheetError, match="is a folder"):
        load_sheet(tmp_path)
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(SheetError, match="not a text file"):
        load_sheet(path)


def test_an_empty_sheet_grades_as_all_unanswered(tmp_path):
    sheet = load_sheet(write(tmp_path, '[sheet]\nproblem_set = "004"\n'))
    truths = {"data.one-hot": {"vocabulary_size": 5, "one_hot": np.eye(5)[[0, 1, 2, 3, 4, 1]],
                               "repeats_share_a_row": True}}
    claims = [c for c in sheet.claims() if c.id == "data.one-hot"]
    assert claims and all("004" in c.sets for c in sheet.claims())
    grade = grade_claim("data.one-hot", sheet.answers.get("data.one-hot", {}), truths["data.one-hot"])
    assert [s.outcome for s in grade.slots] == ["unanswered"] * 3
    assert verdict(grade)[0] == "reproduced"


def test_a_wrong_answer_is_graded_wrong_slot_by_slot():
    sheet = parse_sheet('["data.one-hot"]\nvocabulary_size = 5\nrepeats_share_a_row = false\n')
    truths = {"vocabulary_size": 5, "one_hot": np.eye(5)[[0, 1, 2, 3, 4, 1]], "repeats_share_a_row": True}
    grade = grade_claim("data.one-hot", sheet.answers["data.one-hot"], truths)
    assert {s.slot: s.outcome for s in grade.slots} == {
        "vocabulary_size": "correct", "one_hot": "unanswered", "repeats_share_a_row": "wrong"}
    status, reason = verdict(grade)
    assert status == "disagrees" and "repeats_share_a_row: wrong: false is not true" in reason


def test_grading_a_sheet_scores_it_and_reports_claims_that_failed():
    sheet = parse_sheet('[sheet]\nproblem_set = "004"\n["data.one-hot"]\nvocabulary_size = 5\n')
    truths = {c.id: {s: None for s in c.slots} for c in sheet.claims()}
    truths["data.one-hot"] = {"vocabulary_size": 5, "one_hot": np.eye(2), "repeats_share_a_row": True}
    errors = {c.id: "not computed here" for c in sheet.claims() if c.id != "data.one-hot"}
    grade = grade_sheet(sheet, truths, errors)
    assert grade.score == (1, 3)
    assert grade.as_json()["counts"] == {"correct": 1, "wrong": 0, "unanswered": 2}


def test_the_template_lists_every_slot_and_reads_back_as_an_empty_sheet(tmp_path):
    text = template()
    for claim in CLAIMS:
        assert f'["{claim.id}"]' in text
        for name, slot in claim.slots.items():
            assert f"# {name} = " in text and slot.describe() in text
    sheet = load_sheet(write(tmp_path, text))
    assert all(answers == {} for answers in sheet.answers.values())
    assert set(sheet.answers) == {c.id for c in CLAIMS}


def test_the_problem_sets_answer_sheets_read_cleanly():
    sheets = answer_sets()
    assert sorted(sheets) == ["000", "001", "002", "003", "004"]
    for set_id, sheet in sheets.items():
        assert sheet.problem_set == set_id
        for claim_id in sheet.answers:
            assert set_id in CLAIMS_BY_ID[claim_id].sets, (set_id, claim_id)
