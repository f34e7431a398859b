"""What the tests of the lab's claims share: a claim's record as the report makes it, and its grades.

``tests`` is on pytest's ``pythonpath`` (pyproject.toml), so test modules import this by name.
"""

from nablab.lab.report import run_claim


def record_of(claim_id, tmp_path, seed=0, *, need_figures=False, **params):
    """The report's record of ``claim_id`` at quick sizes: never an error, every figure on disk with its alt
    text (and at least one figure with ``need_figures``)."""
    record, _ = run_claim(claim_id, tmp_path, True, seed, params)
    assert record["status"] != "error", record["details"]
    assert record["figures"] or not need_figures
    for figure in record["figures"]:
        assert (tmp_path / figure).is_file()
        assert record["alts"].get(figure)
    return record


def outcomes(record, answer_set):
    """``{slot: outcome}`` of one answer set's grades in ``record``."""
    return {g["slot"]: g["outcome"] for g in record["grades"][answer_set]}
