"""The report's HTML: math, numbers, values as tables, figures and the page itself.

Text written for the report (claim statements and notes, the experiments'
summaries, figure captions) may hold math between dollar signs, LaTeX inside:
``$X^\\top (X X^\\top)^{-1} t$``. It becomes MathML when the page is built, so the
page needs no script and no network to show it; everything else is escaped.
A literal dollar is written ``\\$``.

>>> str(math_html(r"the rate $\\eta$ & more"))
'the rate <math alttext="\\\\eta"><mrow><mi>η</mi></mrow></math> &amp; more'
>>> plain_math(r"$\\lambda_{\\min}$ of $X^\\top X$")
'λ_min of Xᵀ X'
>>> format_number(52444644), format_number(0.07771798749001915), format_number(2.0080164420311967e-11)
('52,444,644', '0.07772', '2.008e-11')
"""

from __future__ import annotations

import functools
import html
import inspect
import json
import math
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

from markupsafe import Markup, escape

from nablab.lab.mathtext import MATH, plain_math

__all__ = ["math_html", "plain_math", "format_number", "number_html", "value_html", "grade_tables",
           "one_line_reason", "figure_size", "render_page", "CSS_DPI"]

#: CSS pixels per inch of a figure as the page shows it (matplotlib's default dpi);
#: Context.savefig writes PNGs at twice this, for sharp high-density screens.
CSS_DPI = 100

# -- math ----------------------------------------------------------------------------

_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
_TAGS = {"math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac",
         "msqrt", "mroot", "mover", "munder", "munderover", "mstyle", "mtable", "mtr", "mtd",
         "mpadded", "mphantom", "menclose", "merror"}
_ATTRS = {"display", "mathvariant", "stretchy", "fence", "separator", "displaystyle", "scriptlevel",
          "accent", "accentunder", "lspace", "rspace", "minsize", "maxsize", "movablelimits",
          "linethickness", "columnalign", "rowspacing", "columnspacing", "width", "height", "depth",
          "notation", "form", "symmetric", "largeop"}


@functools.lru_cache(maxsize=2048)
def _mathml(tex: str) -> str | None:
    """MathML for ``tex``, rebuilt from a whitelist of elements; None if it cannot be converted."""
    try:
        from latex2mathml.converter import convert
    except ImportError:     # the report extra installs it; without it the TeX is shown as it is
        return None
    try:
        root = ET.fromstring(convert(tex))
    except Exception:       # latex2mathml raises many kinds; any of them means: show the TeX
        return None
    out = []

    def emit(node):
        tag = node.tag.removeprefix(_MATHML_NS)
        if tag not in _TAGS:
            raise ValueError(tag)
        attrs = {k: v for k, v in node.attrib.items() if k in _ATTRS}
        if tag == "math":
            attrs = {"alttext": tex}          # the source, for copying and screen readers
        out.append(f"<{tag}" + "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items()) + ">")
        out.append(html.escape(node.text or "", quote=False))
        for child in node:
            emit(child)
            out.append(html.escape(child.tail or "", quote=False))
        out.append(f"</{tag}>")

    try:
        emit(root)
    except ValueError:
        return None
    return "".join(out)


def math_html(text) -> Markup:
    """``text`` escaped, with each ``$...$`` as MathML (or as its TeX, marked, if it cannot be)."""
    text = "" if text is None else str(text)
    parts, last = [], 0
    for m in MATH.finditer(text):
        parts.append(escape(text[last:m.start()].replace("\\$", "$")))
        tex = m.group(1).strip()
        mathml = _mathml(tex)
        parts.append(Markup(mathml) if mathml else Markup('<code class="tex">%s</code>') % tex)
        last = m.end()
    parts.append(escape(text[last:].replace("\\$", "$")))
    return Markup("").join(parts)


# -- numbers ---------------------------------------------------------------------------

def format_number(x, digits: int = 4) -> str:
    """A number to ``digits`` significant digits, thousands separated, as plain text.

    >>> [format_number(v) for v in (3, 12345, 2.0, 1.2899, 0.000123456, 1e20, -36.148)]
    ['3', '12,345', '2', '1.29', '0.0001235', '1e+20', '-36.15']
    """
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return f"{x:,}" if abs(x) >= 10_000 else str(x)
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    a = abs(x)
    if x == 0:
        return "0"
    if x.is_integer() and a < 1e15:
        return format_number(int(x))
    if 1e-4 <= a < 1e15:
        decimals = max(0, digits - 1 - math.floor(math.log10(a)))
        text = f"{x:,.{decimals}f}" if a >= 10_000 else f"{x:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent):+03d}" if int(exponent) >= 0 else f"{mantissa}e-{-int(exponent):02d}"


def number_html(x) -> Markup:
    """A number for the page: short, with its full value on hover (and in claims.json)."""
    text = format_number(x)
    full = json.dumps(x)
    if "e" in text:    # 2.008e-11 as 2.008 × 10^-11
        mantissa, exponent = text.split("e")
        shown = Markup("%s&#8201;&#215;&#8201;10<sup>%s</sup>") % (
            mantissa.replace("-", "\u2212"), str(int(exponent)).replace("-", "\u2212"))
    else:
        shown = escape(text.replace("-", "\u2212"))
    if full == text:
        return Markup('<span class="n">%s</span>') % shown
    return Markup('<span class="n" title="%s">%s</span>') % (full, shown)


# -- values ----------------------------------------------------------------------------

_LIST_SHOWN = 12         # numbers of a list shown inline before it is folded
_ROWS_SHOWN = 12         # rows of a table shown before it is folded
_MATRIX_MAX = (20, 12)   # the largest matrix drawn as a table


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _scalar_html(v) -> Markup:
    if v is None:
        return Markup('<span class="none">none</span>')
    if isinstance(v, bool):
        return Markup('<span class="b b-%s">%s</span>') % (str(v).lower(), str(v).lower())
    if _is_num(v):
        return number_html(v)
    return escape(v)


def _fold(summary: str, body: Markup, fold: bool) -> Markup:
    if not fold:
        return body
    return Markup('<details class="fold"><summary>%s</summary>%s</details>') % (summary, body)


def _numbers_inline(values: list) -> Markup:
    return Markup('<span class="vec">[%s]</span>') % Markup(", ").join(number_html(v) for v in values)


def _matrix(rows: list) -> bool:
    return (bool(rows) and all(isinstance(r, list) and r and all(_is_num(v) for v in r) for r in rows)
            and len({len(r) for r in rows}) == 1)


def _row_class(row: dict) -> str:
    """A row that says it does not match (``"match": false``) is marked."""
    return ' class="mismatch"' if any(row.get(k) is False for k in ("match", "matches", "agrees")) else ""


def _label(key) -> Markup:
    key = str(key)
    return Markup("<code>%s</code>") % key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else escape(key)


def _table(head: list, rows: list, cls: str = "data") -> Markup:
    """A table in a box that scrolls sideways on a narrow screen rather than widening the page."""
    thead = Markup("").join(Markup("<th>%s</th>") % h for h in head) if head else Markup("")
    body = Markup("").join(
        Markup("<tr%s>%s</tr>") % (Markup(attrs), Markup("").join(Markup("<td>%s</td>") % c for c in cells))
        for attrs, cells in rows)
    return (Markup('<div class="scroll"><table class="%s">%s<tbody>%s</tbody></table></div>')
            % (cls, Markup("<thead><tr>%s</tr></thead>") % thead if head else "", body))


def value_html(value, depth: int = 0) -> Markup:
    """A computed value as HTML: scalars formatted, lists of numbers inline, matrices and dicts as tables."""
    if _is_scalar(value):
        return _scalar_html(value)
    if depth > 4:       # deeper than any evidence so far: the JSON, folded
        return Markup('<details class="fold"><summary>JSON</summary><pre>%s</pre></details>') % json.dumps(
            value, indent=1)
    if isinstance(value, list):
        if not value:
            return Markup('<span class="none">[]</span>')
        if all(_is_num(v) for v in value):
            if len(value) <= _LIST_SHOWN:
                return _numbers_inline(value)
            head = Markup('<span class="vec">[%s, &#8230;]</span>') % Markup(", ").join(
                number_html(v) for v in value[:6])
            return Markup('<details class="fold"><summary>%s <span class="count">(%d values)</span></summary>'
                          '%s</details>') % (head, len(value), _numbers_inline(value))
        if _matrix(value) and len(value) <= _MATRIX_MAX[0] and len(value[0]) <= _MATRIX_MAX[1]:
            rows = [("", [number_html(v) for v in r]) for r in value]
            return _table([], rows, "matrix")
        if _matrix(value):
            rows = [("", [number_html(v) for v in r]) for r in value]
            return _fold(f"{len(value)} × {len(value[0])} matrix", _table([], rows, "matrix"), True)
        if all(isinstance(v, dict) for v in value) and len({tuple(v) for v in value}) == 1:
            keys = list(value[0])
            rows = [(_row_class(v), [value_html(v[k], depth + 1) for k in keys]) for v in value]
            return _fold(f"{len(value)} rows", _table([_label(k) for k in keys], rows),
                         len(value) > _ROWS_SHOWN)
        if all(isinstance(v, str) for v in value):
            return Markup(", ").join(Markup("<span class=\"s\">%s</span>") % v for v in value)
        items = Markup("").join(Markup("<li>%s</li>") % value_html(v, depth + 1) for v in value)
        return _fold(f"{len(value)} items", Markup('<ol class="items" start="0">%s</ol>') % items,
                     len(value) > _ROWS_SHOWN)
    if isinstance(value, dict):
        if not value:
            return Markup('<span class="none">{}</span>')
        inner = list(value.values())
        if (len(value) > 1 and all(isinstance(v, dict) and v for v in inner)
                and len({tuple(v) for v in inner}) == 1 and len(inner[0]) <= 8
                and all(not isinstance(x, dict) for v in inner for x in v.values())):
            keys = list(inner[0])     # a dict of like records: one row each
            rows = [(_row_class(v), [_label(name)] + [value_html(v[k], depth + 1) for k in keys])
                    for name, v in value.items()]
            return _fold(f"{len(value)} rows", _table([""] + [_label(k) for k in keys], rows),
                         len(value) > _ROWS_SHOWN)
        rows = [("", [_label(k), value_html(v, depth + 1)]) for k, v in value.items()]
        return _fold(f"{len(value)} entries", _table([], rows, "kv"), len(value) > _ROWS_SHOWN)
    return escape(json.dumps(value))


# -- grades ----------------------------------------------------------------------------

def _rule(slot) -> str:
    if slot is None:
        return ""
    if slot.rule == "rtol":
        pct = 100 * slot.tol
        text = f"within {pct:g}%" if pct >= 1e-3 else f"within {slot.tol:g} relative"
        return text + (f" (or {slot.atol:g})" if slot.atol != 1e-12 else "")
    if slot.rule == "atol":
        return f"within ±{slot.tol:g}"
    return "same set" if slot.rule == "set" else "exact"


def grade_tables(record: dict) -> list[dict]:
    """Each answer set's grade of the claim: its rows (slot, given, computed, rule, outcome) and counts."""
    from nablab.lab.claims import CLAIMS_BY_ID

    claim = CLAIMS_BY_ID.get(record["id"])
    slots = claim.slots if claim else {}
    tables = []
    for answer_set, graded in (record.get("grades") or {}).items():
        rows = []
        for g in graded:
            slot = slots.get(g["slot"])
            rows.append({
                "slot": g["slot"], "help": (slot.help if slot else ""), "unit": (slot.unit if slot else ""),
                "given": None if g["outcome"] == "unanswered" else value_html(g["given"]),
                "says": g.get("says") or "", "truth": value_html(g["truth"]), "rule": _rule(slot),
                "outcome": g["outcome"],
            })
        counts = {o: sum(r["outcome"] == o for r in rows) for o in ("correct", "wrong", "unanswered")}
        tables.append({"set": answer_set, "main": bool(claim) and answer_set == claim.sets[0],
                       "rows": rows, "counts": counts})
    return tables


def _short(value, width: int = 28) -> str | None:
    text = format_number(value) if _is_scalar(value) and not isinstance(value, str) else (
        value if isinstance(value, str) else
        "[" + ", ".join(format_number(v) for v in value) + "]"
        if isinstance(value, list) and all(_is_num(v) for v in value) else None)
    return text if text is not None and len(text) <= width else None


def one_line_reason(answer_set: str, graded: list[dict], most: int = 3) -> str:
    """Why an answer set is wrong, in one line: each wrong slot with both values when they are short.

    >>> one_line_reason("004", [{"slot": "size", "outcome": "wrong", "given": 4, "truth": 5},
    ...                         {"slot": "codes", "outcome": "wrong", "given": [[1]], "truth": [[0]]}])
    'Answer set 004: size = 4, computed 5; codes differs'
    """
    wrong = [g for g in graded if g["outcome"] == "wrong"]
    parts = []
    for g in wrong[:most]:
        given, truth = _short(g["given"]), _short(g["truth"])
        parts.append(f"{g['slot']} = {given}, computed {truth}" if given and truth else f"{g['slot']} differs")
    more = f"; and {len(wrong) - most} more" if len(wrong) > most else ""
    return f"Answer set {answer_set}: " + "; ".join(parts) + more


def _reason(record: dict) -> str:
    """The one line the claims table shows under a claim that is not fine."""
    from nablab.lab.claims import CLAIMS_BY_ID

    if record.get("reason"):
        return str(record["reason"]).strip().splitlines()[0]
    status, claim = record["status"], CLAIMS_BY_ID.get(record["id"])
    if status == "disagrees" and claim and claim.sets[0] in (record.get("grades") or {}):
        return one_line_reason(claim.sets[0], record["grades"][claim.sets[0]])
    if status == "error":
        return (record.get("summary") or "").strip().splitlines()[0] if record.get("summary") else ""
    return ""


# -- figures, files and code -------------------------------------------------------------

def figure_size(path: Path) -> tuple[int, int] | None:
    """The CSS size of a PNG: its pixels scaled by its pHYs density (2x PNGs show at half their pixels)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    scale = 1.0
    at = head.find(b"pHYs")
    if at > 0:
        ppx, _, unit = struct.unpack(">IIB", head[at + 4:at + 13])
        if unit == 1 and ppx:
            scale = CSS_DPI / (ppx * 0.0254)
    scale = min(scale, 1.0)     # never drawn larger than its pixels
    return round(width * scale), round(height * scale)


_FILE_KINDS = {".dot": "Graphviz DOT", ".svg": "SVG", ".csv": "CSV", ".json": "JSON", ".npz": "NumPy",
               ".pdf": "PDF"}


def claim_files(folder: Path, record: dict) -> list[dict]:
    """Files a claim wrote beside its figures (``ID--*``), such as Graphviz sources, to link to."""
    prefix, figures = f"{record['id']}--", set(record.get("figures") or [])
    found = sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(prefix)
                   and p.name not in figures and p.is_file()) if Path(folder).is_dir() else []
    return [{"file": name, "kind": _FILE_KINDS.get(Path(name).suffix.lower(), Path(name).suffix[1:].upper())}
            for name in found]


def code_location(claim_id: str) -> list[dict]:
    """Where the claim's compute and figure functions are: ``path:line`` and the function's name."""
    from nablab.lab import registry

    root = Path(__file__).resolve().parents[2]
    where = []
    for kind, fn in (("compute", registry.registered().get(claim_id)),
                     ("figure", registry._FIGURE.get(claim_id))):
        if fn is None:
            continue
        try:
            path = Path(inspect.getsourcefile(fn)).resolve()
            line = inspect.getsourcelines(fn)[1]
        except (TypeError, OSError):
            where.append({"kind": kind, "path": fn.__module__, "line": None, "name": fn.__qualname__})
            continue
        shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        where.append({"kind": kind, "path": shown, "line": line, "name": fn.__qualname__})
    return where


# -- the page --------------------------------------------------------------------------

def _paragraphs(text: str) -> list[Markup]:
    """Details text as paragraphs with math; tracebacks and other code stay preformatted."""
    out = []
    for block in (text or "").split("\n\n"):
        if not block.strip():
            continue
        if "Traceback (most recent call last)" in block or "\n  File " in block:
            out.append(Markup("<pre>%s</pre>") % block)
        else:
            out.append(Markup("<p>%s</p>") % math_html(block))
    return out


def _claim_view(record: dict, folder: Path) -> dict:
    from nablab.lab.claims import CLAIMS_BY_ID

    claim = CLAIMS_BY_ID.get(record["id"])
    source = record.get("source") or (claim.source if claim else f"Problem set {record.get('seed', '?')}")
    figures = []
    for i, file in enumerate(record.get("figures") or []):
        alt = (record.get("alts") or {}).get(file, "")
        size = figure_size(Path(folder) / file)
        figures.append({"file": file, "alt": plain_math(alt) or f"Figure {i + 1} of {record['id']}: "
                        + plain_math(record.get("title") or record.get("statement") or ""),
                        "caption": math_html(alt) if alt else None,
                        "width": size[0] if size else None, "height": size[1] if size else None})
    statement, summary = record.get("statement") or "", record.get("summary") or ""
    search = " ".join([record["id"], source, record["status"], plain_math(record.get("title") or ""),
                       plain_math(statement), plain_math(summary)])
    return {
        "id": record["id"], "status": record["status"], "source": source,
        "where": claim.seed if claim else source,
        "group": claim.sets[0] if claim else str(record.get("seed", "")).split(" ")[0],
        "title": math_html(record.get("title") or ""), "statement": math_html(statement),
        "summary": math_html(summary), "reason": _reason(record),
        "search": " ".join(search.lower().split()),
        "cross_checks": {k: v for k, v in (record.get("cross_checks") or {}).items() if v != "ran"},
        "grades": grade_tables(record),
        "computed": [(k, value_html(v)) for k, v in (record.get("computed") or {}).items()],
        "figures": figures, "files": claim_files(folder, record),
        "details": _paragraphs(record.get("details") or ""),
        "code": code_location(record["id"]) if record["status"] != "not-implemented" else [],
        "command": record.get("command"), "seconds": record.get("seconds") or 0.0,
    }


def render_page(folder: Path, records: list[dict], meta: dict, counts: dict) -> str:
    """The report's ``index.html`` for ``records`` whose figures are in ``folder``."""
    import jinja2

    from nablab.lab.registry import STATUSES

    claims = [_claim_view(r, folder) for r in records]
    groups = {}
    for c in claims:
        groups.setdefault(c["group"], []).append(c)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["number"] = number_html
    env.filters["math"] = math_html
    return env.get_template("index.html.j2").render(
        claims=claims, groups=groups, meta=meta, counts=counts, statuses=STATUSES,
        load_errors=meta.get("load_errors") or {}, legend=LEGEND)


#: What each status means, for the page's legend.
LEGEND = {
    "agrees": "The claim's main answer set gives values for some of its answer slots, and every one "
              "of them matches what nablab computes, by the slot's rule.",
    "disagrees": "At least one value the main answer set gives does not match the computation; "
                 "the table and the claim's section say which, with both values and the rule.",
    "reproduced": "The answer sets give nothing that can be checked here (no value for any slot), "
                  "so the computation stands on its own.",
    "needs-data": "The claim needs a data set that is not on this machine; what could run without it "
                  "did, and the section says how to supply the data.",
    "error": "The experiment or one of its own consistency checks failed: a fault in nablab, "
             "not a verdict on the answer sets. The traceback is in the claim's section.",
    "not-implemented": "No experiment computes this claim yet.",
}
