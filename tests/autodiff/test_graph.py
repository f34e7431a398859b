"""Graph capture: nodes with op, shape, value and gradient; DOT always; SVG when Graphviz is there."""

import shutil

import numpy as np
import pytest

import nablab as nb
from nablab.autodiff import graph as graph_module


def seed_function(x, y):
    return (x + y) * (y + 1)


def test_trace_records_ops_values_and_gradients():
    g = nb.trace(seed_function, 1.0, 2.0)
    assert [n["op"] for n in g.nodes] == ["x", "y", "add", "add", "multiply"]
    assert [n["value"] for n in g.nodes] == [1.0, 2.0, 3.0, 3.0, 9.0]
    assert all(n["grad"] is None for n in g.nodes)
    g.backward()
    # df/dx = y + 1 and df/dy = (y + 1) + (x + y), checked by hand and by grad
    assert g.nodes[0]["grad"] == 3.0 and g.nodes[1]["grad"] == 6.0
    assert (g.nodes[0]["grad"], g.nodes[1]["grad"]) == nb.grad(seed_function, argnums=(0, 1))(1.0, 2.0)
    assert g.nodes[-1]["inputs"] == [2, 3]
    assert g.value == 9.0


def test_to_dot_lists_every_node_edge_and_constant():
    g = nb.trace(seed_function, 1.0, 2.0)
    g.backward()
    dot = g.to_dot()
    assert dot.startswith("digraph computation {") and dot.rstrip().endswith("}")
    assert dot.count("->") == 6  # x->a, y->a, y->b, 1->b, a->f, b->f
    assert "grad 6" in dot and "<b>multiply</b>" in dot and "c0 [label=<1>" in dot


def test_arrays_show_shape_and_names_can_be_given():
    g = nb.trace(lambda w, X: nb.sum((X @ w) ** 2), np.ones(2), np.eye(2), names=["w", "X"])
    assert g.nodes[0]["op"] == "w" and g.nodes[1]["shape"] == (2, 2)
    assert "shape (2, 2)" in g.to_dot()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_render_writes_an_image(tmp_path, suffix):
    g = nb.trace(seed_function, 1.0, 2.0)
    g.backward()
    path = g.render(tmp_path / f"graph.{suffix}")
    data = path.read_bytes()
    assert (b"<svg" in data) if suffix == "svg" else data.startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".*tmp"))


def test_render_without_graphviz_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        nb.trace(seed_function, 1.0, 2.0).render(tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


def test_render_refuses_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="graph.txt"):
        nb.trace(seed_function, 1.0, 2.0).render(tmp_path / "graph.txt")


def test_plot_draws_every_node_without_graphviz():
    import matplotlib

    matplotlib.use("Agg")
    g = nb.trace(seed_function, 1.0, 2.0)
    g.backward()
    fig = g.plot()
    texts = [t.get_text() for t in fig.axes[0].texts if not isinstance(t, matplotlib.text.Annotation)]
    assert len(texts) == len(g.nodes) + len(g.constants)
    assert any("grad 6" in t for t in texts)
