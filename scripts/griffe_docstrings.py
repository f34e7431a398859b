"""A Griffe extension for the documentation site (mkdocs.yml loads it): nablab's docstrings are
plain text in reStructuredText's habits, with doctest examples; Markdown would read ``>>>`` as
nested quotes, show the roles verbatim and run literal blocks and tables together.

- a run of lines starting with ``>>>`` (with its ``...`` continuations and printed output, up to
  a blank line) becomes a fenced ``pycon`` block;
- a paragraph ending in ``::`` keeps one colon, and the indented block after it becomes a fenced
  ``text`` block; so does a simple table (between lines of ``=====  =====``);
- ``:func:`~a.b.c``` (and ``:mod:``, ``:class:``, ``:meth:``, ``:attr:``, ``:data:``,
  ``:exc:``) becomes inline code: ``c`` with a leading ``~``, ``a.b.c`` without.
"""

from __future__ import annotations

import re
import textwrap

import griffe

ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|exc|obj):`(~?)([^`]+)`")
BORDER = re.compile(r"^\s*=+( +=+)+\s*$")


def _role(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _fenced(lines: list[str], lang: str) -> list[str]:
    return [f"```{lang}", *textwrap.dedent("\n".join(lines)).splitlines(), "```"]


def markdown(text: str) -> str:
    """A docstring's text with its examples, literal blocks and tables fenced and its roles as code."""
    lines = text.splitlines()
    out: list[str] = []
    i, fence = 0, False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = not fence
        if fence or stripped.startswith("```"):
            out.append(line)
            i += 1
        elif stripped.startswith(">>>"):  # a doctest block, up to a blank line
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            out += [" " * _indent(line) + row for row in _fenced(lines[i:j], "pycon")]
            i = j
        elif BORDER.match(line):  # a simple table, up to its last border
            j = i + 1
            while j < len(lines) and not (BORDER.match(lines[j]) and (j + 1 == len(lines) or not lines[j + 1].strip())):
                j += 1
            out += _fenced(lines[i:j + 1], "text")
            i = j + 1
        elif stripped.endswith("::"):  # a literal block follows, indented
            out.append(ROLE.sub(_role, line.rstrip()[:-1]) if stripped != "::" else "")
            base, j = _indent(line), i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) > base):
                k += 1
            while k > j and not lines[k - 1].strip():
                k -= 1
            if k > j:
                out += ["", *_fenced(lines[j:k], "text")]
            i = k
        else:
            out.append(ROLE.sub(_role, line))
            i += 1
    return "\n".join(out)


class NablabDocstrings(griffe.Extension):
    """Rewrite each object's docstring as Markdown when Griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
