"""Grade answer sheets: compute each claim a sheet answers once, then grade every sheet.

>>> from nablab.lab.sheets import parse_sheet
>>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = 5\\n')
>>> [grade] = grade_sheets([sheet], quick=True)
>>> grade.claims["data.one-hot"].slots[0].outcome, grade.score
('correct', (1, 3))
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path

from nablab.lab import registry
from nablab.lab.claims import CLAIMS
from nablab.lab.grading import grade_sheet
from nablab.lab.registry import Context
from nablab.lab.sheets import Sheet, load_sheet

#: A file in every folder `nablab grade` wrote; it writes into no other non-empty folder.
GRADE_MARKER = ".nablab-grade"


def compute_truths(claim_ids, *, quick=False, seed=0, executor=None, progress=None) -> tuple[dict, dict]:
    """``(truths, errors)``: each claim's slot values, computed once, or why it has none."""
    truths, errors = {}, {}
    computed = registry.registered()
    with tempfile.TemporaryDirectory(prefix="nablab-grade-") as scratch:
        for claim_id in claim_ids:
            if progress is not None:
                progress(claim_id)
            if claim_id not in computed:
                errors[claim_id] = "this claim is not written as compute and figure yet, so it has no slot values"
                continue
            ctx = Context(out_dir=Path(scratch), quick=quick, seed=seed, executor=executor)
            comp = registry.compute_claim(claim_id, ctx)
            if comp.error:
                errors[claim_id] = f"its computation failed: {comp.error}"
            else:
                truths[claim_id] = comp.truths
    return truths, errors


def grade_sheets(sheets, *, quick=False, seed=0, executor=None, progress=None) -> list:
    """Grade sheets (paths or :class:`Sheet` objects, all read before anything is computed)."""
    sheets = [s if isinstance(s, Sheet) else load_sheet(s) for s in sheets]
    wanted = {c.id for s in sheets for c in s.claims()}
    ids = [c.id for c in CLAIMS if c.id in wanted]
    truths, errors = compute_truths(ids, quick=quick, seed=seed, executor=executor, progress=progress)
    return [grade_sheet(s, truths, errors) for s in sheets]


def write_grades(folder: Path, grades: list) -> None:
    """``grades.json`` and ``index.html`` into ``folder`` (new, empty, or written by an earlier grade)."""
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise FileExistsError(f"--out {folder} exists and is not a folder")
        if any(folder.iterdir()) and not (folder / GRADE_MARKER).is_file():
            raise FileExistsError(f"--out {folder} exists and was not written by nablab grade (no "
                                  f"{GRADE_MARKER} file); choose another folder or remove it first")
    folder.mkdir(parents=True, exist_ok=True)
    data = [g.as_json() for g in grades]
    _write(folder / "grades.json", json.dumps(data, indent=2, allow_nan=False) + "\n")
    _write(folder / "index.html", render_html(grades))
    _write(folder / GRADE_MARKER, "written by nablab grade\n")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_html(grades: list) -> str:
    """A self-contained page: one table per sheet, a row per slot, wrong answers marked."""
    esc = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<title>nablab grade</title><style>",
             "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}",
             "table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}",
             "td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}",
             "td{overflow-wrap:anywhere}.wrong{background:#fde8e8}.correct{background:#e8f6ec}",
             ".unanswered{color:#777}</style></head><body><h1>Grades</h1>"]
    for grade in grades:
        correct, total = grade.score
        name = grade.sheet.name
        parts.append(f"<h2>{esc(name)}: {correct} of {total} slots correct</h2>")
        parts.append(f"<p>{esc(grade.sheet.path)}</p><table><tr><th>claim</th><th>slot</th>"
                     "<th>outcome</th><th>detail</th></tr>")
        for claim_id, claim_grade in grade.claims.items():
            if claim_grade.error:
                parts.append(f"<tr><td>{esc(claim_id)}</td><td></td><td>not graded</td>"
                             f"<td>{esc(claim_grade.error)}</td></tr>")
                continue
            for s in claim_grade.slots:
                detail = s.text().split(": ", 2)[-1] if s.outcome != "unanswered" else s.text()
                parts.append(f"<tr class='{s.outcome}'><td>{esc(claim_id)}</td><td>{esc(s.slot)}</td>"
                             f"<td>{s.outcome}</td><td>{esc(detail)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
