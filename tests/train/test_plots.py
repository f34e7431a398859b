"""Plot ticks: epoch and step axes on whole numbers, log-scale losses with plain labels
(``2.2``, not ``2.2×10⁰``), in the training plots and in every figure the lab saves."""

import matplotlib
import pytest
from matplotlib.figure import Figure

from nablab.train import plot_run
from nablab.train.plots import integer_ticks, plain_log_ticks, tick_labels, tidy_axes


def is_integer_label(text):
    return text.lstrip("−-").isdigit()


def test_an_epoch_axis_gets_integer_labels():
    ax = Figure().subplots()
    ax.plot([1, 2, 3], [0.5, 0.6, 0.7])
    assert not all(map(is_integer_label, tick_labels(ax.xaxis)))   # matplotlib's own: 1.00, 1.25, ...
    integer_ticks(ax.xaxis)
    labels = tick_labels(ax.xaxis)
    assert labels == ["1", "2", "3"]


def test_a_narrow_log_loss_gets_plain_labels():
    ax = Figure().subplots()
    ax.plot([1, 2, 3], [2.1, 2.25, 2.4])
    ax.set_yscale("log")
    assert any("times" in t for t in tick_labels(ax.yaxis))        # matplotlib's own: 2.2\times10^{0}
    plain_log_ticks(ax.yaxis)
    labels = [t for t in tick_labels(ax.yaxis) if t]
    assert "2.2" in labels and "2.4" in labels
    for text in labels:
        assert float(text) == pytest.approx(round(float(text), 2)) and 2.0 <= float(text) <= 2.5, labels


def test_wide_log_axes_keep_powers_of_ten_and_linear_axes_are_left_alone():
    ax = Figure().subplots()
    ax.semilogy([1, 2], [1e-12, 1.0])
    plain_log_ticks(ax.xaxis)                  # linear: nothing to do
    plain_log_ticks(ax.yaxis)
    assert any("10^{" in t for t in tick_labels(ax.yaxis))


def test_tidy_axes_goes_by_the_labels():
    fig = Figure()
    a, b, c = fig.subplots(1, 3)
    for ax in (a, b):
        ax.plot([1, 2, 3], [2.1, 2.2, 2.4])
    c.plot([0.1, 0.2, 0.3], [2.1, 2.2, 2.4])
    a.set_xlabel("epoch")
    b.set_xlabel("step $k$")
    c.set_xlabel(r"step size $\alpha$")
    c.set_yscale("log")
    tidy_axes(fig)
    assert tick_labels(a.xaxis) == ["1", "2", "3"] and tick_labels(b.xaxis) == ["1", "2", "3"]
    assert "0.2" in tick_labels(c.xaxis)       # a step size, not a count: not rounded to integers
    assert all("times" not in t and "10^" not in t for t in tick_labels(c.yaxis))


def test_the_training_plots(tmp_path, monkeypatch):
    saved = []
    original = Figure.savefig

    def keep(fig, *args, **kwargs):
        saved.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    rows = [{"epoch": e, "step": 4 * e, "train_loss": 2.4 - 0.1 * e, "train_acc": 0.1 * e,
             "test_loss": 2.35 - 0.1 * e, "test_acc": 0.1 * e} for e in (1, 2, 3)]
    plot_run(rows, [2.4, 2.38, 2.35, 2.33, 2.3, 2.28, 2.25, 2.2, 2.2, 2.18, 2.15, 2.1], tmp_path)
    loss, accuracy = (fig.get_axes()[0] for fig in saved)
    assert all(map(is_integer_label, tick_labels(loss.xaxis)))
    labels = [t for t in tick_labels(loss.yaxis) if t]
    assert labels and all(2.0 <= float(t) <= 2.5 for t in labels), labels
    assert tick_labels(accuracy.xaxis) == ["1", "2", "3"]


def test_the_lab_tidies_every_figure_it_saves(tmp_path, monkeypatch):
    from nablab.lab.registry import Context

    seen = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: seen.append(
        (tick_labels(fig.get_axes()[0].xaxis), tick_labels(fig.get_axes()[0].yaxis))))
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.semilogy([1, 2, 3, 4], [2.4, 2.3, 2.2, 2.1])
    ax.set_xlabel("epoch")
    Context(out_dir=tmp_path, claim_id="data.one-hot").savefig(fig, "loss")
    (x_labels, y_labels), = seen
    assert x_labels == ["1", "2", "3", "4"]
    assert [t for t in y_labels if t] and all("10^" not in t and "times" not in t for t in y_labels)


def test_tidy_axes_keeps_what_a_figure_chose_itself():
    from matplotlib.ticker import FixedLocator, NullFormatter

    fig = Figure()
    a, b = fig.subplots(1, 2)
    a.plot([1, 2, 3], [1, 2, 3])
    a.set_xlabel("epoch")
    a.xaxis.set_major_locator(FixedLocator([1.5, 2.5]))
    b.semilogy([1, 2, 3], [2.1, 2.2, 2.4])
    b.yaxis.set_minor_formatter(NullFormatter())
    tidy_axes(fig)
    assert tick_labels(a.xaxis) == ["1.5", "2.5"]
    assert isinstance(b.yaxis.get_minor_formatter(), NullFormatter)
