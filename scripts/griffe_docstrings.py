"""A Griffe extension for the documentation site (mkdocs.yml loads it): nablab's docstrings are
plain text with Sphinx roles and doctest examples; Markdown would read ``>>>`` as nested quotes
and show the roles verbatim.

- a run of lines starting with ``>>>`` (with its ``...`` continuations and printed output, up to
  a blank line) becomes a fenced ``pycon`` block;
- ``:func:`~a.b.c``` (and ``:mod:``, ``:class:``, ``:meth:``, ``:attr:``, ``:data:``,
  ``:exc:``) becomes inline code: ``c`` with a leading ``~``, ``a.b.c`` without.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|exc|obj):`(~?)([^`]+)`")


def _role(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown(text: str) -> str:
    """A docstring's text with its doctest blocks fenced and its roles as code."""
    out, block, fence = [], [], False
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            fence = not fence
        if not fence and not block and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            block = [indent + "```pycon"]
        if block:
            if stripped:
                block.append(line)
                continue
            out += block + [indent + "```"]
            block = []
        out.append(line if fence else ROLE.sub(_role, line))
    if block:
        out += block + [indent + "```"]
    return "\n".join(out)


class NablabDocstrings(griffe.Extension):
    """Rewrite each object's docstring as Markdown when Griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
