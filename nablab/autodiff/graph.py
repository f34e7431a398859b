"""Capture a computation as a graph you can look at: DOT text, SVG, PNG or PDF.

Images are drawn by Graphviz's ``dot`` when it is installed and by matplotlib
otherwise; in a notebook a graph shows itself as SVG.

>>> import nablab as nb
>>> g = nb.trace_graph(lambda x, y: (x + y) * (y + 1), 1.0, 2.0)
>>> g.backward()
>>> [(n["op"], n["value"], n["grad"]) for n in g.nodes]
[('x', 1.0, 3.0), ('y', 2.0, 6.0), ('add', 3.0, 3.0), ('add', 3.0, 3.0), ('multiply', 9.0, 1.0)]
>>> print(g.to_dot().splitlines()[0])
digraph computation {
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from nablab.autodiff.core import Node, Tensor, backward, close_level, new_level, toposort, value_of
from nablab.autodiff.transforms import _as_input

RENDER_FORMATS = ("svg", "png", "pdf")
#: What draws an image: Graphviz's ``dot`` if installed, else matplotlib (``"auto"``), or one of them.
ENGINES = ("auto", "graphviz", "matplotlib")
GRAPHVIZ_HINT = ("Graphviz's `dot` program is not installed (Debian/Ubuntu: `sudo apt-get install graphviz`; "
                 "macOS: `brew install graphviz`; conda: `conda install graphviz`)")
INSTALL_HINT = (
    f"{GRAPHVIZ_HINT}, and neither is matplotlib (`pip install matplotlib`), so the graph cannot be "
    "drawn as an image. Install one of them, or write the DOT text of `.to_dot()`, which needs nothing."
)


def _format_value(v, limit=6):
    arr = np.asarray(value_of(v))
    if arr.size == 1:
        return f"{arr.item():.6g}"
    if arr.size <= limit:
        return np.array2string(arr, precision=4, separator=", ", suppress_small=True).replace("\n", "")
    return f"min {arr.min():.4g}, max {arr.max():.4g}"


class Graph:
    """A traced computation: inputs, primitive applications, constants and the output.

    ``nodes`` is a list of dicts (``id``, ``op``, ``shape``, ``value``,
    ``grad``, ``inputs``) in evaluation order; ``grad`` is filled by
    :meth:`backward`.  ``value`` is the output.

    >>> import nablab as nb
    >>> g = nb.trace_graph(lambda x, y: (x + y) * y, 1.0, 2.0)
    >>> float(g.value), [node["op"] for node in g.nodes]
    (6.0, ['x', 'y', 'add', 'multiply'])
    """

    def __init__(self, output, inputs, names):
        self.value = value_of(output)
        self._output = output
        self._inputs = inputs
        self._names = names
        self._grads = {}
        self._build()

    def _build(self):
        out_node = self._output._node if isinstance(self._output, Tensor) else None
        order = list(reversed(toposort([out_node]))) if out_node is not None else []
        # Inputs first, in argument order, even if unused.
        order = list(self._inputs) + [n for n in order if n.prim is not None]
        ids = {node: i for i, node in enumerate(order)}
        self._order = order
        self.nodes, self.constants, self.edges = [], [], []
        for node in order:
            i = ids[node]
            inputs = []
            if node.prim is not None:
                parent_of = dict(node.parents)
                for argnum, arg in enumerate(node.args):
                    if argnum in parent_of:
                        inputs.append(ids[parent_of[argnum]])
                    elif _is_numeric(arg):
                        c = f"c{len(self.constants)}"
                        self.constants.append({"id": c, "value": _format_value(arg), "shape": np.shape(arg)})
                        inputs.append(c)
                    for src in inputs[-1:]:
                        self.edges.append((src, i, argnum))
            self.nodes.append({
                "id": i,
                "op": self._names[node] if node.prim is None else node.prim.name,
                "shape": tuple(np.shape(value_of(node.ans))),
                "value": _scalar_or_array(node.ans),
                "grad": None,
                "inputs": inputs,
            })

    def backward(self):
        """Reverse pass from the output (a scalar); stores every node's gradient."""
        if not isinstance(self._output, Tensor):
            raise ValueError("the traced function's output does not depend on its inputs")
        out = np.asarray(self.value)
        if out.shape != ():
            raise ValueError(f"backward needs a scalar output; this one has shape {out.shape}")
        self._grads = backward([self._output._node], [np.ones_like(out)], keep_all=True)
        for node, entry in zip(self._order, self.nodes):
            g = self._grads.get(node)
            entry["grad"] = None if g is None else _scalar_or_array(g)
        return None

    def to_dot(self):
        """The graph in Graphviz's DOT language (works without Graphviz installed)."""
        lines = [
            "digraph computation {",
            "  rankdir=LR;",
            '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica", fontsize=11];',
            '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
        ]
        for n in self.nodes:
            parts = [f"<b>{_escape(n['op'])}</b>"]
            if n["shape"]:
                parts.append(f"shape {n['shape']}")
            parts.append(f"value {_escape(_format_value(n['value']))}")
            if n["grad"] is not None:
                parts.append(f'<font color="#b03030">grad {_escape(_format_value(n["grad"]))}</font>')
            fill = "#dbe9f6" if not n["inputs"] else "#f5f5f5"
            lines.append(f'  n{n["id"]} [label=<{"<br/>".join(parts)}>, fillcolor="{fill}"];')
        for c in self.constants:
            lines.append(f'  {c["id"]} [label=<{_escape(c["value"])}>, shape=ellipse, fillcolor="#ffffff"];')
        for src, dst, argnum in self.edges:
            src_name = src if isinstance(src, str) else f"n{src}"
            lines.append(f"  {src_name} -> n{dst};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render(self, path, engine="auto"):
        """Draw to ``path`` (``.svg``, ``.png`` or ``.pdf``); return the path.

        ``engine="auto"`` uses Graphviz's ``dot`` when it is installed and
        matplotlib (:meth:`plot`) otherwise; ``"graphviz"`` or ``"matplotlib"``
        insist on one. The file is written whole or not at all.

        >>> import tempfile, pathlib
        >>> g = trace_graph(lambda x: x * x, 3.0)
        >>> g.render(pathlib.Path(tempfile.mkdtemp()) / "g.svg", engine="matplotlib").read_text()[:5]
        '<?xml'
        """
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower()
        if fmt not in RENDER_FORMATS:
            raise ValueError(f"render: cannot write {path.name!r}; use a name ending in .svg, .png or .pdf")
        if engine not in ENGINES:
            raise ValueError(f"render: engine {engine!r} is not one of {', '.join(ENGINES)}")
        use = self.engine() if engine == "auto" else engine
        if use == "graphviz" and shutil.which("dot") is None:
            raise RuntimeError(GRAPHVIZ_HINT + "; engine='matplotlib' draws the graph without it")
        if use is None:
            raise RuntimeError(INSTALL_HINT)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            if use == "graphviz":
                subprocess.run([shutil.which("dot"), f"-T{fmt}", "-o", tmp], input=self.to_dot().encode(),
                               check=True, capture_output=True, timeout=60)
            else:
                self._figure().savefig(tmp, format=fmt, bbox_inches="tight")
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
            os.replace(tmp, path)
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"dot failed: {err.stderr.decode(errors='replace')}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @staticmethod
    def engine():
        """What :meth:`render` draws with by default: ``"graphviz"``, ``"matplotlib"``, or None for neither."""
        if shutil.which("dot") is not None:
            return "graphviz"
        return "matplotlib" if importlib.util.find_spec("matplotlib") is not None else None

    def plot(self, ax=None, direction="LR"):
        """Draw the graph with matplotlib (no Graphviz needed); returns the figure.

        Layers are depths from the inputs, laid out left to right (``direction="LR"``)
        or top to bottom (``"TB"``, for a long chain on a narrow page); each box shows
        op, value and, after :meth:`backward`, the gradient.

        >>> import nablab as nb
        >>> g = nb.trace_graph(lambda x, y: (x + y) * y, 1.0, 2.0)
        >>> [round(v) for v in g.plot(direction="TB").get_size_inches()]
        [6, 4]
        """
        import matplotlib.pyplot as plt

        if direction not in ("LR", "TB"):
            raise ValueError(f"direction must be 'LR' or 'TB', not {direction!r}")
        columns = self._columns()
        pos = {}
        for d, keys in columns.items():
            for k, key in enumerate(keys):
                across = (len(keys) - 1) / 2 - k
                pos[key] = (d, across) if direction == "LR" else (-across, -d)
        if ax is None:
            _, ax = plt.subplots(figsize=self._figsize(columns, direction))
        for src, dst, _ in self.edges:
            ax.annotate("", xy=pos[dst], xytext=pos[src],
                        arrowprops=dict(arrowstyle="-|>", color="#555555", shrinkA=28, shrinkB=28))
        for n in self.nodes:
            lines = [n["op"]]
            if n["shape"]:
                lines.append(f"shape {n['shape']}")
            lines.append(f"value {_format_value(n['value'])}")
            if n["grad"] is not None:
                lines.append(f"grad {_format_value(n['grad'])}")
            ax.text(*pos[n["id"]], "\n".join(lines), ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="round", fc="#dbe9f6" if not n["inputs"] else "#f5f5f5", ec="#333333"))
        for c in self.constants:
            ax.text(*pos[c["id"]], c["value"], ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="circle", fc="white", ec="#777777"))
        depth, breadth = self._size(columns)
        if direction == "LR":
            ax.set_xlim(-0.6, depth - 0.4)
            ax.set_ylim(-breadth / 2 - 0.2, breadth / 2 + 0.2)
        else:
            ax.set_xlim(-breadth / 2 - 0.1, breadth / 2 + 0.1)
            ax.set_ylim(-depth + 0.6, 0.6)
        ax.axis("off")
        return ax.figure

    def _columns(self):
        """Node and constant ids by depth from the inputs (a constant sits just before its user)."""
        depth = {}
        for n in self.nodes:
            depth[n["id"]] = 1 + max((depth[i] for i in n["inputs"] if not isinstance(i, str)), default=-1)
        for src, dst, _ in self.edges:
            if isinstance(src, str):
                depth[src] = depth[dst] - 1
        columns = {}
        for key in [n["id"] for n in self.nodes] + [c["id"] for c in self.constants]:
            columns.setdefault(depth[key], []).append(key)
        return columns

    @staticmethod
    def _size(columns):
        return max(columns, default=0) + 1, max((len(v) for v in columns.values()), default=1)

    @classmethod
    def _figsize(cls, columns, direction="LR"):
        """Inches for a layout: about 2.3 per box across a layer's boxes, 1.3 (LR) or 1.1 (TB) per layer."""
        depth, breadth = cls._size(columns)
        return (2.3 * depth + 1, 1.3 * breadth + 1) if direction == "LR" else (2.3 * breadth + 1, 1.1 * depth + 0.6)

    def _figure(self):
        """:meth:`plot` on a figure of its own, outside pyplot (so a notebook does not show it twice)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=self._figsize(self._columns()))
        self.plot(ax=fig.subplots())
        return fig

    def __repr__(self):
        ops = ", ".join(n["op"] for n in self.nodes[:8]) + (", ..." if len(self.nodes) > 8 else "")
        grads = "with gradients" if any(n["grad"] is not None for n in self.nodes) else "no gradients yet"
        return f"<Graph of {len(self.nodes)} nodes ({ops}); value {_format_value(self.value)}; {grads}>"

    def _repr_svg_(self):
        """The graph as SVG in a notebook: Graphviz's drawing if it is installed, else matplotlib's."""
        use = self.engine()
        if use == "graphviz":
            return subprocess.run([shutil.which("dot"), "-Tsvg"], input=self.to_dot().encode(),
                                  capture_output=True, check=True, timeout=60).stdout.decode()
        if use == "matplotlib":
            buffer = io.StringIO()
            self._figure().savefig(buffer, format="svg", bbox_inches="tight")
            return buffer.getvalue()
        return None  # neither: the notebook shows __repr__


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current


def _is_numeric(x):
    return isinstance(x, (int, float, np.number, np.ndarray, Tensor)) and not isinstance(x, bool)


def _scalar_or_array(x):
    arr = np.asarray(value_of(x))
    return arr.item() if arr.size == 1 and arr.ndim == 0 else arr


def _escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def trace_graph(f, *args, names=None):
    """Run ``f(*args)`` and capture its computation graph.

    Input nodes are named after ``f``'s parameters (or ``names``).  Call
    ``.backward()`` on the result to add gradients, then ``.to_dot()``,
    ``.render("graph.svg")`` or ``.plot()``; a notebook draws it by itself.
    (``nb.trace`` is NumPy's ``trace``, the sum of a diagonal.)

    >>> import nablab as nb
    >>> g = nb.trace_graph(lambda x, y: (x + y) * y, 1.0, 2.0)
    >>> g
    <Graph of 4 nodes (x, y, add, multiply); value 6; no gradients yet>
    >>> g.backward()
    >>> [(node["op"], float(node["grad"])) for node in g.nodes]
    [('x', 2.0), ('y', 5.0), ('add', 2.0), ('multiply', 1.0)]
    >>> g.to_dot().splitlines()[0]
    'digraph computation {'
    """
    if names is None:
        try:
            params = list(inspect.signature(f).parameters)
        except (TypeError, ValueError):
            params = []
        names = params[: len(args)] if len(params) >= len(args) else [f"x{i}" for i in range(len(args))]
    if len(names) != len(args):
        raise ValueError(f"trace_graph: {len(names)} names for {len(args)} arguments")
    level = new_level()
    inputs = [Node.leaf(_as_input(a, f"trace_graph: argument {i}")) for i, a in enumerate(args)]
    try:
        out = f(*[Tensor(n.ans, level, n) for n in inputs])
    finally:
        close_level(level)
    if isinstance(out, Tensor) and out._level != level:
        out = value_of(out)
    return Graph(out, inputs, dict(zip(inputs, names)))
