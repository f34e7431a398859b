"""Answer sheets: a student's (or a worked solution's) answers to the claims' slots, in TOML.

A sheet has an optional ``[sheet]`` table saying whose it is, then one table per
claim id with values for some of its slots; a value may be given with the
answer's own words::

    [sheet]
    course = "Foundations of deep learning"
    problem_set = "004"
    author = "A. Student"

    ["cnn.conv-output-shape"]
    k3_s1_p0 = [32, 128, 26, 26]
    k4_s2_p1 = { value = [32, 128, 14, 14], says = "(28 + 2 - 4)/2 + 1 = 14" }

Reading a sheet checks everything before anything is computed: a claim or slot
that does not exist, a value of the wrong type or shape, NaN, a key given twice
or a file that is not TOML is an :class:`SheetError` naming the file, the line
and the slot.  The worked answers of the problem sets ship as sheets in
``nablab/lab/answers`` (:func:`answer_sets`).

>>> from pathlib import Path
>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "mine.toml"
>>> _ = path.write_text('[sheet]\\nproblem_set = "004"\\n["data.one-hot"]\\nvocabulary_size = 5\\n')
>>> sheet = load_sheet(path)
>>> sheet.problem_set, sheet.answers["data.one-hot"]["vocabulary_size"].value
('004', 5)
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID, Claim
from nablab.lab.mathtext import plain_math
from nablab.lab.slots import AnswerError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

IDENTITY_KEYS = ("course", "problem_set", "author", "title", "date", "notes")


class SheetError(ValueError):
    """A sheet that cannot be graded; the message names the file, the line and the slot.

    >>> from nablab.lab.sheets import parse_sheet
    >>> parse_sheet('["data.one-hot"]\\nvocabulary_size = "five"\\n', "mine.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.lab.sheets.SheetError: mine.toml, line 2: data.one-hot.vocabulary_size: expected a ...
    """


@dataclass(frozen=True)
class Answer:
    """One answer: the ``claim`` and ``slot`` it fills, its ``value``, the answer's own words (``says``)
    and the sheet's ``line`` it came from.

    >>> from nablab.lab.sheets import parse_sheet
    >>> sheet = parse_sheet('["data.one-hot"]\\nvocabulary_size = { value = 5, says = "five words" }\\n')
    >>> sheet.answers["data.one-hot"]["vocabulary_size"]
    Answer(claim='data.one-hot', slot='vocabulary_size', value=5, says='five words', line=2)
    """
    claim: str
    slot: str
    value: object
    says: str = ""
    line: int | None = None


@dataclass
class Sheet:
    """A read and checked answer sheet: who wrote it and the answers, by claim and slot.

    ``path`` names where it came from, ``identity`` holds its ``[sheet]`` table (course,
    problem set, author, ...) and ``answers[claim][slot]`` its :class:`Answer` objects.

    >>> from nablab.lab.sheets import parse_sheet
    >>> sheet = parse_sheet('[sheet]\\nauthor = "A. Student"\\n["data.one-hot"]\\nvocabulary_size = 5\\n', "a.toml")
    >>> sheet.path, sheet.identity, list(sheet.answers)
    ('a.toml', {'author': 'A. Student'}, ['data.one-hot'])
    """

    path: str
    identity: dict = field(default_factory=dict)
    answers: dict = field(default_factory=dict)

    @property
    def problem_set(self) -> str | None:
        return self.identity.get("problem_set")

    @property
    def name(self) -> str:
        return self.identity.get("title") or self.identity.get("author") or Path(self.path).name

    def claims(self) -> list[Claim]:
        """The claims this sheet is graded on: those of its problem set, and any it answers.

        A sheet with neither is graded on every claim (and its slots are all unanswered).
        """
        ids = [c.id for c in CLAIMS if self.problem_set in c.sets or c.id in self.answers]
        if not ids and self.problem_set is None:
            ids = [c.id for c in CLAIMS]
        return [CLAIMS_BY_ID[i] for i in ids]


def _lines(text: str) -> dict:
    """Line numbers of ``(table, key)`` pairs, found by scanning the text (tomllib keeps none)."""
    where, table = {}, None
    header = re.compile(r'^\s*\[\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$')
    key = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)\s*=')
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            table = m.group(1).strip('"')
            where.setdefault((table, None), number)
            continue
        m = key.match(line)
        if m:
            where.setdefault((table, m.group(1).strip('"')), number)
    return where


def _at(path, line) -> str:
    return f"{path}, line {line}" if line else str(path)


def parse_sheet(text: str, path: str = "<sheet>") -> Sheet:
    """A sheet from its TOML text (see :func:`load_sheet`).

    ``path`` is only used in messages.

    >>> from nablab.lab.sheets import parse_sheet
    >>> parse_sheet('["data.one-hot"]\\nvocabulary_size = 5\\n').answers["data.one-hot"]["vocabulary_size"].value
    5
    >>> parse_sheet('["no.such-claim"]\\nx = 1\\n')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.lab.sheets.SheetError: <sheet>, line 1: unknown claim 'no.such-claim' (`nablab ...
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SheetError(f"{path} is not valid TOML: {err}") from None
    lines = _lines(text)
    identity = data.pop("sheet", {})
    if not isinstance(identity, dict):
        raise SheetError(f"{_at(path, lines.get((None, 'sheet')))}: 'sheet' must be a table of "
                         f"{', '.join(IDENTITY_KEYS)}")
    unknown = set(identity) - set(IDENTITY_KEYS)
    if unknown:
        raise SheetError(f"{_at(path, lines.get(('sheet', None)))}: unknown keys {sorted(unknown)} in "
                         f"[sheet]; known: {', '.join(IDENTITY_KEYS)}")
    for key, value in identity.items():
        if not isinstance(value, str):
            raise SheetError(f"{_at(path, lines.get(('sheet', key)))}: sheet.{key} must be a string, "
                             f"got {value!r}")
    sheet = Sheet(str(path), dict(identity), {})
    for claim_id, table in data.items():
        line = lines.get((claim_id, None)) or lines.get((None, claim_id))
        if claim_id not in CLAIMS_BY_ID:
            close = difflib.get_close_matches(claim_id, list(CLAIMS_BY_ID), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SheetError(f"{_at(path, line)}: unknown claim {claim_id!r}{hint} "
                             "(`nablab grade --template` lists them all)")
        if not isinstance(table, dict):
            raise SheetError(f"{_at(path, line)}: claim {claim_id!r} must be a table of slot = value")
        claim = CLAIMS_BY_ID[claim_id]
        answers = {}
        for slot_name, raw in table.items():
            slot_line = lines.get((claim_id, slot_name), line)
            where = f"{_at(path, slot_line)}: {claim_id}.{slot_name}"
            if slot_name not in claim.slots:
                known = ", ".join(claim.slots) or "none: it has no answer slots"
                close = difflib.get_close_matches(slot_name, list(claim.slots), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise SheetError(f"{where}: {claim_id} has no slot {slot_name!r}{hint} (its slots: {known})")
            says = ""
            if isinstance(raw, dict):
                extra = set(raw) - {"value", "says"}
                if "value" not in raw or extra:
                    raise SheetError(f"{where}: an answer table needs 'value' (and may have 'says'); "
                                     f"got keys {sorted(raw)}")
                says, raw = raw.get("says", ""), raw["value"]
                if not isinstance(says, str):
                    raise SheetError(f"{where}: 'says' must be a string")
            try:
                value = claim.slots[slot_name].read(raw, where)
            except AnswerError as err:
                raise SheetError(str(err)) from None
            answers[slot_name] = Answer(claim_id, slot_name, value, says, slot_line)
        sheet.answers[claim_id] = answers
    return sheet


def load_sheet(path) -> Sheet:
    """Read and check the sheet at ``path`` (raises :class:`SheetError`).

    >>> import tempfile, pathlib
    >>> from nablab.lab.sheets import load_sheet
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "mine.toml"
    >>> _ = path.write_text('["data.one-hot"]\\nvocabulary_size = 5\\n')
    >>> load_sheet(path).answers["data.one-hot"]["vocabulary_size"].value
    5
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SheetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SheetError(f"{path} is a folder, not a sheet") from None
    except UnicodeDecodeError:
        raise SheetError(f"{path} is not a text file (TOML is UTF-8 text)") from None
    return parse_sheet(text, str(path))


def answer_sets() -> dict[str, Sheet]:
    """The problem sets' own worked answers, one sheet per answer set, by its id ("000", ...).

    >>> from nablab.lab.sheets import answer_sets
    >>> sets = answer_sets()
    >>> sorted(sets)[:3], sets["004"].problem_set
    (['000', '001', '002'], '004')
    """
    folder = resources.files("nablab.lab").joinpath("answers")
    sheets = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            sheet = parse_sheet(entry.read_text(encoding="utf-8"), f"nablab/lab/answers/{entry.name}")
            sheets[entry.name[:-5]] = sheet
    return sheets


def template(claims=None) -> str:
    """A blank sheet listing every slot of ``claims`` (all by default) with its type, unit and format.

    Every answer line is commented out, so the template itself reads as an empty sheet.

    ``claims`` is a list of :class:`~nablab.lab.claims.Claim` objects.

    >>> from nablab.lab import CLAIMS_BY_ID
    >>> from nablab.lab.sheets import template
    >>> print(template([CLAIMS_BY_ID["data.one-hot"]]).splitlines()[-5:][0])
    # a list of rows, e.g. [[1, 0], [0, 1]]; graded exactly
    """
    claims = list(CLAIMS if claims is None else claims)
    out = ["# An answer sheet for `nablab grade`. Fill in the slots you answer (remove the '#');",
           "# leave the others commented: they count as unanswered.", "",
           "[sheet]", '# course = ""', '# problem_set = ""', '# author = ""', ""]
    for claim in claims:
        out.append(f"# {plain_math(claim.title)} ({claim.source})")   # its math as plain text
        out.append(f'["{claim.id}"]')
        if not claim.slots:
            out.append("# (no answer slots: this claim is shown, not graded)")
        for name, slot in claim.slots.items():
            if slot.help:
                out.append(f"# {plain_math(slot.help)}")
            out.append(f"# {slot.describe()}")
            out.append(f"# {name} = ")
        out.append("")
    return "\n".join(out)
