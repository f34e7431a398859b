"""Grading: answer sheets against the computed truths of the claims' slots, and the verdicts.

:func:`grade_sheet` compares every slot of the claims a sheet is graded on:
``correct`` or ``wrong`` (with both values and the rule), or ``unanswered``.
:func:`verdict` turns the grade of a claim's main answer set into its status in
the report: ``agrees`` when every slot the answer set answers is right,
``disagrees`` when one is wrong, ``reproduced`` when it answers none.

>>> from nablab.lab.sheets import parse_sheet
>>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 4\\nrepeats_share_a_row = true\\n')
>>> truths = {"vocabulary_size": 5, "one_hot": [[1, 0], [0, 1]], "repeats_share_a_row": True}
>>> grade = grade_claim("data.one-hot", sheet.answers["data.one-hot"], truths)
>>> [(s.slot, s.outcome) for s in grade.slots]
[('vocabulary_size', 'wrong'), ('one_hot', 'unanswered'), ('repeats_share_a_row', 'correct')]
>>> verdict(grade)[0]
'disagrees'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nablab.lab.claims import CLAIMS_BY_ID
from nablab.lab.slots import show

OUTCOMES = ("correct", "wrong", "unanswered")


@dataclass(frozen=True)
class SlotGrade:
    """The grade of one slot: its ``outcome`` (``correct``, ``wrong`` or ``unanswered``), the value
    ``given`` and the computed ``truth``, the rule that compared them (``explanation``), and the
    answer's words and line.

    >>> from nablab.lab.sheets import parse_sheet
    >>> from nablab.lab.grading import grade_claim
    >>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 4\\n')
    >>> truths = {"vocabulary_size": 5, "one_hot": [[1, 0], [0, 1]], "repeats_share_a_row": True}
    >>> grade = grade_claim("data.one-hot", sheet.answers["data.one-hot"], truths)
    >>> slot = grade.slots[0]
    >>> slot.outcome, slot.given, slot.truth
    ('wrong', 4, 5)
    """
    claim: str
    slot: str
    outcome: str
    given: object = None
    truth: object = None
    explanation: str = ""
    says: str = ""
    line: int | None = None

    def text(self) -> str:
        """One line: the outcome with both values and the rule."""
        if self.outcome == "unanswered":
            return f"{self.slot}: unanswered (the answer is {show(self.truth)})"
        return f"{self.slot}: {self.outcome}: {self.explanation}"

    def as_json(self) -> dict:
        from nablab.lab.registry import to_jsonable

        return to_jsonable({"slot": self.slot, "outcome": self.outcome, "given": self.given,
                            "truth": self.truth, "explanation": self.explanation, "says": self.says,
                            "line": self.line})


@dataclass
class ClaimGrade:
    """The grades of one claim's slots, or the ``error`` that kept it from being computed.

    >>> from nablab.lab.sheets import parse_sheet
    >>> from nablab.lab.grading import grade_claim
    >>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 5\\n')
    >>> truths = {"vocabulary_size": 5, "one_hot": [[1, 0], [0, 1]], "repeats_share_a_row": True}
    >>> grade = grade_claim("data.one-hot", sheet.answers["data.one-hot"], truths)
    >>> grade.count("correct"), grade.count("unanswered"), grade.answered
    (1, 2, 1)
    """
    claim: str
    slots: list = field(default_factory=list)
    error: str | None = None  # the claim could not be computed: nothing is graded

    def count(self, outcome: str) -> int:
        return sum(s.outcome == outcome for s in self.slots)

    @property
    def answered(self) -> int:
        return self.count("correct") + self.count("wrong")

    def wrong(self) -> list:
        return [s for s in self.slots if s.outcome == "wrong"]


@dataclass
class SheetGrade:
    """One sheet's grades, by claim; ``score`` is ``(correct, slots)``.

    >>> from nablab.lab.sheets import parse_sheet
    >>> from nablab.lab.grading import grade_sheet
    >>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 5\\n')
    >>> truths = {"vocabulary_size": 5, "one_hot": [[1, 0], [0, 1]], "repeats_share_a_row": True}
    >>> graded = grade_sheet(sheet, {"data.one-hot": truths})
    >>> graded.score, graded.counts()
    ((1, 3), {'correct': 1, 'wrong': 0, 'unanswered': 2})
    """
    sheet: object
    claims: dict = field(default_factory=dict)

    @property
    def score(self) -> tuple[int, int]:
        """``(correct, slots)`` over every slot of the claims graded."""
        graded = [c for c in self.claims.values() if c.error is None]
        return sum(c.count("correct") for c in graded), sum(len(c.slots) for c in graded)

    def counts(self) -> dict:
        graded = [c for c in self.claims.values() if c.error is None]
        return {o: sum(c.count(o) for c in graded) for o in OUTCOMES}

    def as_json(self) -> dict:
        correct, total = self.score
        return {
            "sheet": self.sheet.path, "identity": self.sheet.identity,
            "score": {"correct": correct, "slots": total}, "counts": self.counts(),
            "claims": {cid: ({"error": g.error} if g.error else [s.as_json() for s in g.slots])
                       for cid, g in self.claims.items()},
        }


def grade_claim(claim_id: str, answers: dict, truths: dict) -> ClaimGrade:
    """Grade one claim's answers (slot -> :class:`~nablab.lab.sheets.Answer`) against its truths.

    ``truths`` maps each slot to its computed value; a slot without an answer is ``unanswered``.

    >>> from nablab.lab.sheets import parse_sheet
    >>> from nablab.lab.grading import grade_claim
    >>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 4\\n')
    >>> truths = {"vocabulary_size": 5, "one_hot": [[1, 0], [0, 1]], "repeats_share_a_row": True}
    >>> grade_claim("data.one-hot", sheet.answers["data.one-hot"], truths).slots[0].text()
    'vocabulary_size: wrong: 4 is not 5'
    """
    claim = CLAIMS_BY_ID[claim_id]
    grade = ClaimGrade(claim_id)
    for name, slot in claim.slots.items():
        if name not in truths:
            raise KeyError(f"{claim_id}: the experiment computed no value for slot {name!r}")
        truth = slot.truth(truths[name])
        answer = answers.get(name)
        if answer is None:
            grade.slots.append(SlotGrade(claim_id, name, "unanswered", None, truth))
            continue
        ok, explanation = slot.compare(answer.value, truth)
        grade.slots.append(SlotGrade(claim_id, name, "correct" if ok else "wrong", answer.value, truth,
                                     explanation, answer.says, answer.line))
    return grade


def grade_sheet(sheet, truths: dict, errors: dict | None = None) -> SheetGrade:
    """Grade ``sheet`` on its claims; ``truths[claim][slot]`` are the computed values.

    ``errors[claim]`` says why a claim has no truths (its computation failed):
    such a claim is reported, not graded.

    >>> from nablab.lab.sheets import parse_sheet
    >>> from nablab.lab.grading import grade_sheet
    >>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 5\\n')
    >>> grade_sheet(sheet, {}, errors={"data.one-hot": "it raised"}).claims["data.one-hot"].error
    'it raised'
    """
    errors = errors or {}
    result = SheetGrade(sheet)
    for claim in sheet.claims():
        if claim.id in errors:
            result.claims[claim.id] = ClaimGrade(claim.id, error=errors[claim.id])
            continue
        result.claims[claim.id] = grade_claim(claim.id, sheet.answers.get(claim.id, {}), truths[claim.id])
    return result


def verdict(grade: ClaimGrade | None) -> tuple[str, str]:
    """``(status, reason)`` of a claim from the grade of its main answer set.

    ``grade`` is None when the main answer set does not answer the claim.

    >>> from nablab.lab.sheets import parse_sheet
    >>> from nablab.lab.grading import grade_claim, verdict
    >>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 5\\n')
    >>> truths = {"vocabulary_size": 5, "one_hot": [[1, 0], [0, 1]], "repeats_share_a_row": True}
    >>> verdict(grade_claim("data.one-hot", sheet.answers["data.one-hot"], truths))
    ('agrees', '1 of 1 answered slots are right.')
    >>> verdict(None)
    ('reproduced', "The answer set gives no value for this claim's slots to check.")
    """
    if grade is None or grade.answered == 0:
        return "reproduced", "The answer set gives no value for this claim's slots to check."
    wrong = grade.wrong()
    if wrong:
        return "disagrees", "; ".join(s.text() for s in wrong)
    return "agrees", f"{grade.answered} of {grade.answered} answered slots are right."
