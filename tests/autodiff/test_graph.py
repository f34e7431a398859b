"""Graph capture: nodes with op, shape, value and gradient; DOT always; SVG when Graphviz is there."""

import shutil

import numpy as np
import pytest

import nablab as nb
from nablab.autodiff import graph as graph_module


def seed_function(x, y):
    return (x + y) * (y + 1)


def test_trace_records_ops_values_and_gradients():
    g = nb.trace_graph(seed_function, 1.0, 2.0)
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
    g = nb.trace_graph(seed_function, 1.0, 2.0)
    g.backward()
    dot = g.to_dot()
    assert dot.startswith("digraph computation {") and dot.rstrip().endswith("}")
    assert dot.count("->") == 6  # x->a, y->a, y->b, 1->b, a->f, b->f
    assert "grad 6" in dot and "<b>multiply</b>" in dot and "c0 [label=<1>" in dot


def test_arrays_show_shape_and_names_can_be_given():
    g = nb.trace_graph(lambda w, X: nb.sum((X @ w) ** 2), np.ones(2), np.eye(2), names=["w", "X"])
    assert g.nodes[0]["op"] == "w" and g.nodes[1]["shape"] == (2, 2)
    assert "shape (2, 2)" in g.to_dot()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_render_writes_an_image(tmp_path, suffix):
    g = nb.trace_graph(seed_function, 1.0, 2.0)
    g.backward()
    path = g.render(tmp_path / f"graph.{suffix}")
    data = path.read_bytes()
    assert (b"<svg" in data) if suffix == "svg" else data.startswith(b"\x89PNG")
    assert not list(tmp_path.glob(".*tmp"))


def test_render_without_graphviz_draws_with_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    g = nb.trace_graph(seed_function, 1.0, 2.0)
    g.backward()
    assert g.engine() == "matplotlib"
    svg = g.render(tmp_path / "g.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    assert g.render(tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    assert g.render(tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(RuntimeError, match="apt-get install graphviz.*engine='matplotlib'"):
        g.render(tmp_path / "h.svg", engine="graphviz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pdf", "g.png", "g.svg"]   # no half-written file


def test_render_with_neither_graphviz_nor_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(graph_module.Graph, "engine", staticmethod(lambda: None))
    g = nb.trace_graph(seed_function, 1.0, 2.0)
    with pytest.raises(RuntimeError, match="apt-get install graphviz.*pip install matplotlib.*to_dot"):
        g.render(tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    assert g._repr_svg_() is None     # a notebook then shows the text form
    with pytest.raises(ValueError, match="engine 'dot' is not one of auto, graphviz, matplotlib"):
        g.render(tmp_path / "g.svg", engine="dot")


def test_render_refuses_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="graph.txt"):
        nb.trace_graph(seed_function, 1.0, 2.0).render(tmp_path / "graph.txt")


def test_plot_draws_every_node_without_graphviz():
    import matplotlib

    matplotlib.use("Agg")
    g = nb.trace_graph(seed_function, 1.0, 2.0)
    g.backward()
    fig = g.plot()
    texts = [t.get_text() for t in fig.axes[0].texts if not isinstance(t, matplotlib.text.Annotation)]
    assert len(texts) == len(g.nodes) + len(g.constants)
    assert any("grad 6" in t for t in texts)


def test_a_notebook_shows_the_graph_as_svg_and_its_text_form_says_what_it_is(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    g = nb.trace_graph(seed_function, 1.0, 2.0)
    assert repr(g) == "<Graph of 5 nodes (x, y, add, add, multiply); value 9; no gradients yet>"
    g.backward()
    assert repr(g).endswith("with gradients>")
    open_figures = plt.get_fignums()
    svg = g._repr_svg_()
    assert "<svg" in svg and "multiply" in svg
    assert plt.get_fignums() == open_figures   # drawn off pyplot: nothing left to show twice


def test_nb_trace_is_numpys_trace_and_the_tracer_is_trace_graph():
    import nablab.numpy as nnp

    a = np.arange(24.0).reshape(2, 3, 4)
    assert nb.trace(np.eye(3)) == 3.0
    np.testing.assert_array_equal(nb.trace(a, 1, 1, 2), np.trace(a, 1, 1, 2))
    np.testing.assert_array_equal(nb.grad(lambda m: nb.trace(m))(np.ones((2, 3))), np.eye(2, 3))
    assert nb.trace(np.eye(2)) == nnp.trace(np.eye(2))
    assert "trace_graph" in nb.__all__ and "trace" in nb.__all__
    assert graph_module.trace_graph is nb.trace_graph and not hasattr(graph_module, "trace")
    with pytest.warns(DeprecationWarning, match=r"nb.trace_graph\(f, \*args\)"):
        g = nb.trace(seed_function, 1.0, 2.0)      # the tracer's old call, while callers move
    assert isinstance(g, nb.Graph) and g.value == 9.0
