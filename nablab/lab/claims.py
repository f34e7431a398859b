"""The catalogue of claims, read from ``nablab/lab/data/claims.toml``.

A claim is data: its id (the key experiments register under), a title, the
answer sets (problem-set documents) that answer it and the section they answer
it in, a statement, the parameters of its experiment with their quick and full
sizes, and its answer slots (:mod:`nablab.lab.slots`).

>>> claim = CLAIMS_BY_ID["autodiff.graph"]
>>> claim.sets, claim.section, claim.source
(('003',), 'Q5', 'Problem set 003 Q5')
>>> len(CLAIMS)
34
"""

from __future__ import annotations

import difflib
import fnmatch
import html
import sys
from dataclasses import dataclass, field
from importlib import resources

from nablab.lab.slots import slot_from_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CATALOGUE = "claims.toml"


@dataclass(frozen=True)
class Param:
    """A parameter of a claim's experiment: one value, or a quick and a full one.

    ``quick`` and ``full`` are its values for a ``--quick`` and a full run (the same for one value),
    ``help`` says what it is.

    >>> from nablab.lab import get_claim
    >>> param = get_claim("data.one-hot").params["sentence"]
    >>> param.name, param.problem, param.value(quick=True)
    ('sentence', True, 'This exam is a midterm exam')
    """

    name: str
    quick: object
    full: object
    help: str = ""
    #: True when the parameter states the problem itself (a sentence, a matrix): with another
    #: value the answer sets answer a different question, so they are not graded.
    problem: bool = False

    def value(self, quick: bool):
        return self.quick if quick else self.full


@dataclass(frozen=True)
class Claim:
    """One claim of the catalogue: its ``id``, ``title``, the answer ``sets`` and ``section`` it comes
    from, its ``statement`` and ``notes``, the ``params`` of its experiment and its answer ``slots``.

    >>> from nablab.lab import get_claim
    >>> claim = get_claim("data.one-hot")
    >>> claim.seed, list(claim.slots)
    ('004 Q4', ['vocabulary_size', 'one_hot', 'repeats_share_a_row'])
    >>> claim.param_values(quick=True)
    {'sentence': 'This exam is a midterm exam'}
    """
    id: str
    title: str
    sets: tuple
    section: str
    statement: str
    notes: str = ""
    params: dict = field(default_factory=dict)
    slots: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        """Where the claim comes from, in words: ``Problem sets 000, 002 §1.1.1``."""
        word = "Problem set" if len(self.sets) == 1 else "Problem sets"
        return f"{word} {', '.join(self.sets)} {self.section}"

    @property
    def seed(self) -> str:
        """The answer sets and section as one string, ``000, 002 §1.1.1``."""
        return f"{', '.join(self.sets)} {self.section}"

    def param_values(self, quick: bool) -> dict:
        """The parameters' values for a quick or a full run."""
        return {name: p.value(quick) for name, p in self.params.items()}

    def _repr_html_(self) -> str:
        """The claim in a notebook: id, title, source, statement and a table of its answer slots.

        Math between dollar signs is MathML when the report's extra (markupsafe, latex2mathml) is
        installed, else plain text; everything else is escaped.

        >>> from nablab.lab import get_claim
        >>> page = get_claim("data.one-hot")._repr_html_()
        >>> page.startswith('<div class="nablab-claim">'), "<th>slot</th>" in page, "vocabulary_size" in page
        (True, True, True)
        """
        text = _html_text()
        rows = "".join(f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(slot.describe())}</td>"
                       f"<td>{text(slot.help)}</td></tr>" for name, slot in self.slots.items())
        slots = (f"<table><thead><tr><th>slot</th><th>type and rule</th><th>what it is</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>" if self.slots
                 else "<p><em>No answer slots: this claim is shown, not graded.</em></p>")
        notes = f"<p>{text(self.notes)}</p>" if self.notes else ""
        return (f'<div class="nablab-claim"><p><strong><code>{html.escape(self.id)}</code></strong>: '
                f"{text(self.title)}</p><p><small>{html.escape(self.source)}</small></p>"
                f"<p>{text(self.statement)}</p>{notes}{slots}</div>")


def _html_text():
    """A function from text with ``$...$`` math to HTML: MathML (the report's), else escaped plain text."""
    try:
        from nablab.lab.render import math_html
    except ImportError:     # markupsafe is in the report extra
        from nablab.lab.mathtext import plain_math

        return lambda text: html.escape(plain_math(text or ""), quote=False)
    return lambda text: str(math_html(text or ""))


class CatalogueError(ValueError):
    """The claims catalogue is malformed (a bug in nablab's package data, named precisely).

    >>> from nablab.lab.claims import CatalogueError
    >>> issubclass(CatalogueError, ValueError)
    True
    """


def _param(claim_id: str, name: str, table) -> Param:
    where = f"{CATALOGUE}: claim {claim_id!r}, parameter {name!r}"
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}: expected a table such as {{value = 10}} or {{quick = 10, full = 100}}")
    unknown = set(table) - {"value", "quick", "full", "help", "problem"}
    if unknown:
        raise CatalogueError(f"{where}: unknown keys {sorted(unknown)}")
    if "value" in table:
        if "quick" in table or "full" in table:
            raise CatalogueError(f"{where}: give either value or quick and full")
        quick = full = table["value"]
    elif "quick" in table and "full" in table:
        quick, full = table["quick"], table["full"]
        if type(quick) is not type(full):
            raise CatalogueError(f"{where}: quick ({quick!r}) and full ({full!r}) differ in type")
    else:
        raise CatalogueError(f"{where}: needs value, or both quick and full")
    return Param(name, quick, full, table.get("help", ""), bool(table.get("problem", False)))


def _claim(claim_id: str, table: dict) -> Claim:
    where = f"{CATALOGUE}: claim {claim_id!r}"
    required = {"title", "sets", "section", "statement"}
    known = required | {"notes", "params", "slots"}
    missing, unknown = required - set(table), set(table) - known
    if missing or unknown:
        raise CatalogueError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    try:
        slots = {name: slot_from_table(name, t, f"{where}, slot {name!r}")
                 for name, t in table.get("slots", {}).items()}
    except ValueError as err:
        raise CatalogueError(str(err)) from None
    params = {name: _param(claim_id, name, t) for name, t in table.get("params", {}).items()}
    return Claim(claim_id, table["title"], tuple(table["sets"]), table["section"], table["statement"],
                 table.get("notes", ""), params, slots)


def load_catalogue() -> tuple[Claim, ...]:
    """Every claim of the package's catalogue, in report order.

    >>> from nablab.lab import CLAIMS
    >>> from nablab.lab.claims import load_catalogue
    >>> claims = load_catalogue()
    >>> [c.id for c in claims] == [c.id for c in CLAIMS], claims[0].source.startswith("Problem set")
    (True, True)
    """
    text = resources.files("nablab.lab").joinpath("data", CATALOGUE).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CatalogueError(f"{CATALOGUE}: {err}") from None
    return tuple(_claim(claim_id, table) for claim_id, table in data.items())


CLAIMS: tuple[Claim, ...] = load_catalogue()
CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}


class UnknownClaimError(ValueError):
    """Claim ids (or patterns) that name no claim; the message suggests the nearest ids.

    >>> str(UnknownClaimError(["data.one-hto"]))
    "unknown claim id 'data.one-hto'; did you mean 'data.one-hot'?"
    """

    def __init__(self, ids):
        self.ids = list(ids)
        hints = {given: nearest_ids(given) for given in self.ids}
        if len(self.ids) == 1:
            [(given, close)] = hints.items()
            text = f"unknown claim id {given!r}" + (f"; did you mean {_either(close)}?" if close else "")
        else:
            text = "unknown claim ids " + ", ".join(
                f"{given!r}" + (f" (did you mean {_either(close)}?)" if close else "")
                for given, close in hints.items())
        if not all(hints.values()):
            text += f"; `nablab lab list` lists the {len(CLAIMS_BY_ID)} claims"
        super().__init__(text)


def _either(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _groups() -> list[str]:
    return list(dict.fromkeys(claim_id.split(".")[0] for claim_id in CLAIMS_BY_ID))


def nearest_ids(given: str, n: int = 3) -> list[str]:
    """Up to ``n`` claim ids (or groups such as ``optim.*``) that look like ``given``, nearest first.

    Ids that ``given`` begins come first; then those that read alike (difflib's
    ratio at least 0.6 and close to the best one's), so one typo suggests one id.

    >>> nearest_ids("optim.sgd-min-nrom")
    ['optim.sgd-min-norm']
    >>> nearest_ids("hyperr.*")
    ['hyper.*']
    >>> nearest_ids("hyper.one")
    ['hyper.one-step-loss', 'hyper.one-step-2d']
    """
    begun = [i for i in CLAIMS_BY_ID if i.startswith(given)]
    if begun:
        return begun[:n]
    candidates = list(CLAIMS_BY_ID) + [f"{g}.*" for g in _groups()]
    scored = sorted(((difflib.SequenceMatcher(None, given, c).ratio(), c) for c in candidates), reverse=True)
    best = scored[0][0]
    return [c for ratio, c in scored if ratio >= max(0.6, best - 0.08)][:n]


def select_ids(patterns) -> list[str]:
    """The claim ids that ``patterns`` name, in catalogue order.

    A pattern is an id, a glob (``optim.*``, ``*shape*``), a prefix ending in a dot
    (``hyper.``) or a group (``theory``). A pattern that names no claim raises
    :class:`UnknownClaimError`, which suggests the nearest ids.

    >>> select_ids(["hyper.", "data.one-hot"])[:2], len(select_ids(["hyper."]))
    (['hyper.graph-two-steps', 'hyper.memory-vs-steps'], 7)
    >>> select_ids(["*rf*"])
    ['arch.rf-factors', 'arch.rf-recursion']
    """
    wanted, unknown = set(), []
    for raw in patterns:
        pattern = raw.strip()
        if not pattern:
            continue
        found = _matching(pattern)
        if found:
            wanted.update(found)
        else:
            unknown.append(pattern)
    if unknown:
        raise UnknownClaimError(unknown)
    return [claim_id for claim_id in CLAIMS_BY_ID if claim_id in wanted]


def _matching(pattern: str) -> list[str]:
    if pattern in CLAIMS_BY_ID:
        return [pattern]
    if any(ch in pattern for ch in "*?["):
        return [i for i in CLAIMS_BY_ID if fnmatch.fnmatchcase(i, pattern)]
    prefix = pattern if pattern.endswith(".") else pattern + "." if pattern in _groups() else None
    return [i for i in CLAIMS_BY_ID if i.startswith(prefix)] if prefix else []


def get_claim(claim_id: str) -> Claim:
    """Look up a claim, with an error that lists the valid ids.

    >>> get_claim("data.one-hot").source
    'Problem set 004 Q4'
    """
    if claim_id not in CLAIMS_BY_ID:
        raise UnknownClaimError([claim_id])
    return CLAIMS_BY_ID[claim_id]
