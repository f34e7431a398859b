"""``nablab jacobian``, ``nablab graph`` and ``nablab arch``: tools on expressions and layer specs.

>>> from nablab.expr import parse
>>> import numpy as np
>>> jacobians(parse("x * y", ["x", "y"]), np.array([2.0, 3.0]), 1e-3)["central_difference"].round(9).tolist()
[[3.0, 2.0]]
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from nablab.cli._common import console, err_console, fail, os_reason
from nablab.expr import ExpressionError, nonfinite_cause, parse


def _parse_vars(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",")]
    if not all(names):
        fail(f"--vars {text!r}: empty variable name; give names like w1,w2")
    return names


def _parse_point(text: str, names: list[str]) -> np.ndarray:
    values = []
    for i, item in enumerate(text.split(",")):
        try:
            values.append(float(item))
        except ValueError:
            fail(f"--at {text!r}: item {i + 1} ({item.strip()!r}) is not a number")
    if len(values) != len(names):
        fail(f"--at gives {len(values)} value(s) but --vars names {len(names)} "
              f"({', '.join(names)})")
    return np.array(values, dtype=np.float64)


def _parse_or_fail(text: str, names: list[str]):
    try:
        return parse(text, names)
    except ExpressionError as exc:
        fail(str(exc))


def jacobians(expression, at: np.ndarray, eps: float) -> dict:
    """Value and Jacobian of the stacked expressions at ``at``, four ways.

    Returns ``value`` and ``forward_difference``, ``central_difference`` (both
    :func:`nablab.numerical_jacobian`), ``forward_mode``, ``reverse_mode`` (each m x n).

    >>> import numpy as np
    >>> from nablab.expr import parse
    >>> j = jacobians(parse("x * y", ["x", "y"]), np.array([2.0, 3.0]), 1e-3)
    >>> j["reverse_mode"].tolist()
    [[3.0, 2.0]]
    """
    import nablab as nb

    names = expression.variables

    def f(w):  # one vector in, one vector out: what jacfwd/jacrev expect
        outs = expression.evaluate({name: w[i] for i, name in enumerate(names)})
        for k, o in enumerate(outs):
            if np.ndim(o) != 0:
                raise ExpressionError(f"expression {k + 1} ({expression.sources[k]}) gives "
                                      f"shape {np.shape(o)}, not a scalar", expression.text, None)
        return nb.stack(outs)

    def value(w):
        return np.asarray(f(w), dtype=np.float64)

    f0 = value(at)
    n = len(at)
    return {
        "value": f0,
        "forward_difference": nb.numerical_jacobian(value, at, eps=eps, scheme="forward").reshape(len(f0), n),
        "central_difference": nb.numerical_jacobian(value, at, eps=eps, scheme="central").reshape(len(f0), n),
        "forward_mode": np.asarray(nb.jacfwd(f)(at)).reshape(len(f0), n),
        "reverse_mode": _reverse_rows(expression, at),
    }


def _reverse_rows(expression, at: np.ndarray) -> np.ndarray:
    """The Jacobian by reverse mode, one VJP per output through that output's own graph.

    A VJP of the stacked outputs would walk every output's graph for each row:
    time quadratic in the number of outputs.  Row by row it is linear.
    """
    import nablab as nb

    names = expression.variables
    rows = []
    for k in range(len(expression)):
        def output_k(w, k=k):
            return expression.evaluate_one(k, {name: w[i] for i, name in enumerate(names)})

        rows.append(np.asarray(nb.grad(output_k)(at), dtype=np.float64))
    return np.stack(rows) if rows else np.zeros((0, len(at)))


def _num(x: float) -> str:
    return f"{x:.10g}"


def jacobian(
    expressions: str = typer.Argument(..., help="Expressions separated by ';'."),
    vars: str = typer.Option(..., "--vars", help="Comma-separated variable names."),
    at: str = typer.Option(..., "--at", help="Comma-separated point, one value per variable."),
    eps: float = typer.Option(0.01, "--eps", help="Step of the finite differences."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Value and Jacobian by finite differences, forward mode and reverse mode.

    Example: nablab jacobian "exp(w1) + exp(2*w2); w1*w2 + max(w1, w2)" --vars w1,w2 --at 1,-1

    Allowed: numbers, the variables, + - * / ** @, and exp log sqrt abs tanh
    sigmoid relu sin cos max min sum mean logsumexp.
    """
    names = _parse_vars(vars)
    point = _parse_point(at, names)
    if not (math.isfinite(eps) and eps > 0):
        fail(f"--eps {eps}: the step must be a positive finite number")
    expr = _parse_or_fail(expressions, names)
    try:
        with np.errstate(all="ignore"):   # NaN and infinity are named in words below instead
            res = jacobians(expr, point, eps)
    except ExpressionError as exc:
        fail(str(exc))
    notes = _nonfinite_notes(expr, names, point, res)

    if as_json:
        from nablab.lab.registry import to_jsonable

        doc = {"expressions": list(expr.sources), "variables": names, "at": point, "eps": eps,
               **res}
        typer.echo(json.dumps(to_jsonable(doc, "jacobian"), indent=2))
        _print_notes(notes)
        return

    where = ", ".join(f"{n} = {_num(v)}" for n, v in zip(names, point))
    vt = Table(title=f"Value at {where}")
    vt.add_column("f")
    vt.add_column("expression", overflow="fold")
    vt.add_column("value", justify="right")
    for i, (src, v) in enumerate(zip(expr.sources, res["value"])):
        vt.add_row(f"f{i + 1}", src, _num(v))
    console.print(vt)

    methods = [("forward_difference", f"forward diff (eps={eps:g})"),
               ("central_difference", "central diff"), ("forward_mode", "forward mode"),
               ("reverse_mode", "reverse mode")]
    jt = Table(title="Jacobian")
    jt.add_column("entry")
    for _, label in methods:
        jt.add_column(label, justify="right")
    m, n = res["reverse_mode"].shape
    for i in range(m):
        for j in range(n):
            jt.add_row(f"d f{i + 1} / d {names[j]}", *(_num(res[k][i, j]) for k, _ in methods))
    console.print(jt)
    ref = res["reverse_mode"]
    gaps = ", ".join(f"{label}: {np.max(np.abs(res[k] - ref)):.3g}" for k, label in methods[:3])
    console.print(f"max |difference| from reverse mode: {gaps}", highlight=False)
    _print_notes(notes)


def _word(x: float) -> str:
    return "NaN" if math.isnan(x) else "+infinity" if x > 0 else "-infinity"


def _nonfinite_notes(expr, names: list[str], point: np.ndarray, res: dict) -> list[str]:
    """Which values and derivatives are NaN or infinite, and the operation that made a value so."""
    where = ", ".join(f"{n} = {_num(v)}" for n, v in zip(names, point))
    values = dict(zip(names, point))
    notes = []
    for i, (src, v) in enumerate(zip(expr.sources, res["value"])):
        if not math.isfinite(v):
            cause = nonfinite_cause(expr, i, values)
            notes.append(f"f{i + 1} = {src} is {_word(v)} at {where}" + (f": {cause}" if cause else ""))
    labels = {"forward_difference": "forward difference", "central_difference": "central difference",
              "forward_mode": "forward mode", "reverse_mode": "reverse mode"}
    m, n = res["reverse_mode"].shape
    for i in range(m):
        for j in range(n):
            bad: dict[str, list[str]] = {}
            for key, label in labels.items():
                if not math.isfinite(res[key][i, j]):
                    bad.setdefault(_word(res[key][i, j]), []).append(label)
            if bad:
                notes.append(f"d f{i + 1} / d {names[j]} is " + "; ".join(
                    f"{word} by {', '.join(how)}" for word, how in bad.items()))
    return notes


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)



def graph(
    expression: str = typer.Argument(..., help="One expression."),
    vars: str = typer.Option(..., "--vars", help="Comma-separated variable names."),
    at: str = typer.Option(..., "--at", help="Comma-separated point, one value per variable."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .svg, .png, .pdf or .dot."),
    engine: str = typer.Option("auto", "--engine",
                               help="What draws SVG, PNG and PDF: graphviz, matplotlib, or auto (Graphviz's "
                                    "dot when installed, else matplotlib)."),
) -> None:
    """Draw the computation graph of EXPRESSION with values and gradients.

    Example: nablab graph "(x + y) * (y + 1)" --vars x,y --at 1,2 --out graph.svg

    SVG, PNG and PDF are drawn by Graphviz's `dot` when it is installed, else by matplotlib; a .dot file needs neither.
    """
    import nablab as nb
    from nablab.autodiff.graph import ENGINES, Graph

    names = _parse_vars(vars)
    point = _parse_point(at, names)
    if engine not in ENGINES:
        fail(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    suffix = out.suffix.lower()
    if out.is_dir():
        fail(f"--out {out} is a folder; give a file name such as {out / ('graph' + (suffix or '.svg'))}")
    if suffix not in (".svg", ".png", ".pdf", ".dot"):
        fail(f"--out {str(out)!r}: use a name ending in .svg, .png, .pdf or .dot")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"--out {out}: {parent} is a file, not a folder")
            break
    expr = _parse_or_fail(expression, names)
    if len(expr) != 1:
        fail(f"graph draws one expression; got {len(expr)} separated by ';'")
    try:
        with np.errstate(all="ignore"):   # NaN and infinity are named in words below instead
            g = nb.trace_graph(lambda *args: expr(*args)[0], *point, names=names)
            g.backward()
    except ExpressionError as exc:
        fail(str(exc))
    except ValueError as exc:  # e.g. the expression does not depend on the variables
        fail(f"cannot draw {expr.sources[0]!r}: {exc}")

    table = Table(title="Graph nodes")
    for col in ("node", "op", "value", "gradient"):
        table.add_column(col, justify="right" if col in ("value", "gradient") else "left")
    for node in g.nodes:
        grad = node["grad"]
        table.add_row(str(node["id"]), node["op"], _fmt(node["value"]),
                      "" if grad is None else _fmt(grad))
    console.print(table)
    notes = []
    for node in g.nodes:
        for what in ("value", "grad"):
            v = node[what]
            if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=float))):
                word = "NaN" if np.any(np.isnan(np.asarray(v, dtype=float))) else "infinite"
                notes.append(f"node {node['id']} ({node['op']}): its {'gradient' if what == 'grad' else what} "
                             f"is {word}")
    cause = nonfinite_cause(expr, 0, dict(zip(names, point)))
    _print_notes(notes + ([f"{expr.sources[0]}: {cause}"] if cause else []))

    drawn_by = None if suffix == ".dot" else (Graph.engine() if engine == "auto" else engine)
    if suffix != ".dot" and (drawn_by is None or (drawn_by == "graphviz" and shutil.which("dot") is None)):
        _write_dot_instead(g, out, "Graphviz's dot is not installed (apt-get install graphviz, brew install "
                           "graphviz or conda install graphviz; --engine matplotlib draws without it)"
                           if drawn_by else "neither Graphviz's dot nor matplotlib is installed (apt-get "
                           "install graphviz, or pip install 'nablab[report]')")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".dot":
            out.write_text(g.to_dot(), encoding="utf-8")
        else:
            g.render(out, engine=drawn_by)
    except OSError as exc:
        fail(f"cannot write {out}: {os_reason(exc)}", code=1)
    except RuntimeError as exc:  # dot itself failed
        fail(f"cannot draw {out}: {exc}", code=1)
    console.print(f"wrote {out}" + (" (drawn with matplotlib; Graphviz's dot, if installed, lays graphs out "
                                    "more compactly)" if drawn_by == "matplotlib" and engine == "auto" else ""),
                  highlight=False, soft_wrap=True)


def _write_dot_instead(g, out: Path, why: str) -> None:
    """Write the graph's DOT text beside ``out`` and fail, saying why the image could not be drawn."""
    dot_file = out.with_suffix(".dot")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        dot_file.write_text(g.to_dot(), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot draw {out}: {why}; and cannot write {dot_file}: {os_reason(exc)}", code=1)
    fail(f"cannot draw {out}: {why}. The graph's DOT text is in {dot_file} (--out NAME.dot writes only that).",
         code=1)


def _fmt(v) -> str:
    arr = np.asarray(v)
    return _num(float(arr)) if arr.size == 1 else np.array2string(arr, precision=4)




# -- arch --------------------------------------------------------------------------


def arch_command(
    spec: str = typer.Argument(..., help="Layers in VGG notation, e.g. "
                               "'input 3x112x112, conv3-64, maxpool2, fc-100'."),
    input: str | None = typer.Option(None, "--input", help="Input shape such as 3x112x112 "
                                     "(NxCxHxW adds a batch); overrides the spec's 'input'."),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    csv: bool = typer.Option(False, "--csv", help="Print one CSV line per layer."),
) -> None:
    """Shapes, parameters, neurons, connections, MACs and receptive fields, layer by layer.

    Example: nablab arch "input 3x112x112, conv3-64, maxpool2, conv3-128, maxpool2, fc-100, softmax"
    """
    from nablab.arch import parse_shape, summary
    from nablab.arch.summary import NoInputShapeError
    from nablab.errors import ShapeError, SpecError

    if json_ and csv:
        fail("choose one of --json and --csv")
    shape = None
    if input is not None:
        try:
            shape = parse_shape(input)
        except SpecError as e:   # its own words, without the caret under a "spec" it is not
            fail(f"--input {input!r}: {e.message.replace(f'the shape {input!r}', 'the shape')}")
    try:
        s = summary(spec, input_shape=shape)
    except NoInputShapeError as e:   # the library says input_shape=; here it is an option
        fail(e.remedy("--input CxHxW"))
    except (SpecError, ShapeError, ValueError) as e:
        fail(str(e))
    if json_:
        typer.echo(json.dumps(s.to_dict(), indent=2))
    elif csv:
        sys.stdout.write(s.to_csv())
    else:
        typer.echo(str(s))
