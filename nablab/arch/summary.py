"""A per-layer summary of a network: the table a student fills in by hand, computed."""

from __future__ import annotations

import csv
import html
import io
import textwrap

from nablab.errors import NoInputShapeError

from .propagate import input_state, propagate
from .spec import Layer, parse_shape, parse_spec

__all__ = ["Summary", "summary"]

COLUMNS = ("index", "name", "type", "output_shape", "params", "non_trainable", "neurons",
           "connections_per_neuron", "connections", "macs", "rf", "jump", "start")
TOTALS = ("params", "non_trainable", "neurons", "connections", "macs")
NOTE = ("params: trainable weights and biases (non_trainable: batch-norm running statistics). "
        "neurons: units computed by conv, transposed conv, pooling, fc and softmax layers. "
        "connections: inputs per unit incl. padding, excl. bias (a transposed conv counted on its input). "
        "MACs: weight multiply-accumulates; bias additions not counted; FLOP = 2 MAC. "
        "neurons, connections and MACs are per sample. "
        "rf/jump/start per axis (height, width) in input positions, padding included "
        "(Araujo, Norris and Sim 2019).")


def _axes(values):
    if values is None:
        return None
    return tuple(values)


def _show_axes(v) -> str:
    if v is None:
        return "-"
    v = [int(x) if float(x).is_integer() else round(float(x), 3) for x in v]
    return str(v[0]) if all(x == v[0] for x in v) else "x".join(str(x) for x in v)


def _show_num(v) -> str:
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}"
    return f"{int(v):,}"


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


class Summary:
    """Per-layer table of a network.

    ``rows`` is a list of dicts with keys ``index, name, type, output_shape,
    params, non_trainable, neurons, connections_per_neuron, connections, macs,
    rf, jump, start``; ``totals`` sums the counts.  ``str()`` gives a text
    table, ``to_dict()`` / ``to_csv()`` give data, and notebooks show
    ``_repr_html_()``.

    >>> s = summary("input 3x32x32, conv3-8, maxpool2, fc-10")
    >>> s.totals["params"], s.rows[-1]["output_shape"], s.rows[2]["rf"]
    (20714, (10,), (4, 4))
    """

    def __init__(self, rows: list[dict], input_shape: tuple[int, ...], layers: list[Layer]):
        self.rows = rows
        self.input_shape = input_shape
        self.layers = layers
        self.totals = {key: sum(r[key] for r in rows) for key in TOTALS}
        self.totals["flops"] = 2 * self.totals["macs"]
        self.totals["output_shape"] = rows[-1]["output_shape"]
        self.totals["rf"] = rows[-1]["rf"]
        self.notes = NOTE

    def __getitem__(self, key) -> dict:
        """A row by position or by layer name."""
        if isinstance(key, int):
            return self.rows[key]
        for row in self.rows:
            if row["name"] == key:
                return row
        raise KeyError(f"no layer named {key!r}; names: {[r['name'] for r in self.rows]}")

    def __len__(self) -> int:
        return len(self.rows)

    def rf_interval(self, layer, unit) -> tuple[tuple[float, float], ...]:
        """Input positions (first, last) per axis seen by unit ``unit`` = (h, w) of ``layer``.

        >>> summary("input 1x9x9, conv3-1/p0, conv3-1/p0").rf_interval(-1, (0, 2))
        ((0, 4), (2, 6))
        """
        row = self[layer]
        if row["rf"] is None:
            raise ValueError(f"layer {row['name']!r} has no spatial receptive field")
        out = []
        for r, j, c, u in zip(row["rf"], row["jump"], row["start"], unit):
            centre, half = c + u * j, (r - 1) / 2
            lo, hi = centre - half, centre + half
            out.append(tuple(int(x) if float(x).is_integer() else x for x in (lo, hi)))
        return tuple(out)

    # ----- output formats -------------------------------------------------
    def _table(self):
        head = ["#", "layer", "type", "output", "params", "neurons", "conn/unit",
                "connections", "MACs", "RF", "jump", "start"]
        body = []
        for r in self.rows:
            body.append([
                str(r["index"]), r["name"], r["type"], "x".join(map(str, r["output_shape"])),
                _show_num(r["params"]) + (f" (+{r['non_trainable']:,})" if r["non_trainable"] else ""),
                _show_num(r["neurons"]), _show_num(r["connections_per_neuron"]),
                _show_num(r["connections"]), _show_num(r["macs"]),
                _show_axes(r["rf"]), _show_axes(r["jump"]), _show_axes(r["start"]),
            ])
        t = self.totals
        foot = ["", "total", "", "x".join(map(str, t["output_shape"])),
                _show_num(t["params"]) + (f" (+{t['non_trainable']:,})" if t["non_trainable"] else ""),
                _show_num(t["neurons"]), "", _show_num(t["connections"]), _show_num(t["macs"]),
                _show_axes(t["rf"]), "", ""]
        return head, body, foot

    def __str__(self) -> str:
        head, body, foot = self._table()
        widths = [max(len(row[i]) for row in [head, *body, foot]) for i in range(len(head))]
        left = {1, 2}

        def line(cells):
            return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(head))
        t = self.totals
        lines = [line(head), rule, *map(line, body), rule, line(foot),
                 f"FLOPs = 2 x MACs = {t['flops']:,} (bias not counted); "
                 f"parameters {t['params']:,} trainable + {t['non_trainable']:,} non-trainable.",
                 textwrap.fill(f"Notes: {self.notes}", width=max(80, len(rule)))]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Summary: {len(self.rows)} rows, {self.totals['params']:,} params, "
                f"{self.totals['macs']:,} MACs, output {self.totals['output_shape']}>")

    def to_dict(self) -> dict:
        """Rows, totals and notes as plain JSON-ready data (tuples become lists)."""
        return {
            "input_shape": list(self.input_shape),
            "rows": [{k: _jsonable(v) for k, v in r.items()} for r in self.rows],
            "totals": {k: _jsonable(v) for k, v in self.totals.items()},
            "notes": self.notes,
        }

    def to_csv(self) -> str:
        """One line per layer; axis-wise values written as ``3x3``."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in self.rows:
            w.writerow(["x".join(map(str, r[k])) if isinstance(r[k], tuple) else
                        ("" if r[k] is None else r[k]) for k in COLUMNS])
        return buf.getvalue()

    def _repr_html_(self) -> str:
        head, body, foot = self._table()
        esc = html.escape

        def tr(cells, tag="td"):
            return "<tr>" + "".join(f"<{tag}>{esc(c)}</{tag}>" for c in cells) + "</tr>"

        return ("<table>" + "<thead>" + tr(head, "th") + "</thead><tbody>"
                + "".join(tr(r) for r in body) + "</tbody><tfoot>" + tr(foot, "th")
                + "</tfoot></table>" + f"<p><small>{esc(self.notes)}</small></p>")


def resolve(spec_or_model, input_shape=None) -> tuple[list[Layer], tuple[int, ...]]:
    """Parse a spec, or read a Sequential model's layers, and settle the input shape."""
    spec = spec_or_model
    if isinstance(spec, str):
        layers = parse_spec(spec)
    elif hasattr(spec, "arch_spec"):
        layers = parse_spec(spec.arch_spec())
    else:
        from .models import layers_from_model

        layers = layers_from_model(spec)
    if input_shape is None:
        if layers[0].kind != "input":
            raise NoInputShapeError(from_spec=isinstance(spec, str))
        input_shape = layers[0].shape
    elif isinstance(input_shape, str):
        input_shape = parse_shape(input_shape)
    return layers, tuple(int(s) for s in input_shape)


def summary(spec_or_model, input_shape=None) -> Summary:
    """Summarise a network given as a spec string (see :mod:`nablab.arch.spec`) or a model.

    ``input_shape`` (a tuple or ``"3x112x112"``) supplies or overrides the
    spec's ``input`` layer.  A model is a ``nablab.nn`` or ``torch.nn``
    ``Sequential`` (see :mod:`nablab.arch.models`; ``input_shape`` is then
    required) or any object with an ``arch_spec()`` method returning a spec.

    >>> s = summary("conv3-64, maxpool2, fc-10", input_shape="3x112x112")
    >>> s.totals["params"], s["conv3-64"]["output_shape"]
    (2008842, (64, 112, 112))
    >>> from nablab import nn
    >>> summary(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10)), (3, 32, 32)).totals["params"]
    72234
    >>> print(summary("input 1x28x28, conv3-4/p0").to_csv().splitlines()[2].split(",")[:5])
    ['2', 'conv3-4/p0', 'conv', '4x26x26', '40']
    """
    layers, input_shape = resolve(spec_or_model, input_shape)
    state, batch = input_state(input_shape)
    lead = (batch,) if batch is not None else ()

    def rf_cols(st):
        if st.rf is None:
            return dict(rf=None, jump=None, start=None)
        return dict(rf=_axes(a.size for a in st.rf), jump=_axes(a.jump for a in st.rf),
                    start=_axes(a.start for a in st.rf))

    first = layers[0] if layers[0].kind == "input" else None
    rows = [dict(index=1 if first else 0, name=first.label if first else "input", type="input",
                 output_shape=lead + state.shape, params=0, non_trainable=0, neurons=0,
                 connections_per_neuron=0, connections=0, macs=0, **rf_cols(state))]
    for layer, st, counts in propagate(layers, input_shape):
        rows.append(dict(index=layer.index, name=layer.label, type=layer.kind,
                         output_shape=lead + st.shape, **counts, **rf_cols(st)))
    return Summary(rows, lead + state.shape, layers)
