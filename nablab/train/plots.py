"""Tick rules for the plots of training runs and of the lab's experiments.

Two defaults of matplotlib read badly on such plots: an epoch or step axis gets ticks at
0.5, 1.5, ... when it holds few points, and a log axis whose data spans less than a decade (a
loss between 2.1 and 2.4) labels its ticks ``2.2×10⁰``. :func:`integer_ticks` puts ticks on
whole numbers only, and :func:`plain_log_ticks` labels a log axis with plain numbers (``2.2``,
``0.01``, ``100``) whenever all of its view prints that way (between 0.001 and 10,000), keeping
matplotlib's ``10⁻⁶`` for axes that span wider ranges. :func:`tidy_axes` applies both to a whole
figure by its axis labels: the lab calls it on every figure it saves.

>>> from matplotlib.figure import Figure
>>> fig = Figure()
>>> ax = fig.subplots()
>>> _ = ax.plot([1, 2, 3], [2.1, 2.3, 2.4])
>>> ax.set_yscale("log")
>>> _ = ax.set_xlabel("epoch")
>>> tidy_axes(fig)
>>> tick_labels(ax.xaxis)
['1', '2', '3']
>>> tick_labels(ax.yaxis)
['2.1', '2.15', '2.2', '2.25', '2.3', '2.35', '2.4']
"""

from __future__ import annotations

import re

__all__ = ["integer_ticks", "plain_log_ticks", "tidy_axes", "tick_labels"]

#: View limits within which every tick of a log axis prints as a short plain number.
PLAIN_RANGE = (1e-3, 1e4)

#: Axis labels that count something whole: epochs, steps, iterations (not "step size").
_COUNTING = re.compile(r"\b(epochs?|steps?|iterations?)\b(?!\s+size)", re.IGNORECASE)


def integer_ticks(axis) -> None:
    """Put the major ticks of a matplotlib ``axis`` (``ax.xaxis``) on whole numbers only.

    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> _ = ax.plot([1, 2], [0.5, 0.25])
    >>> integer_ticks(ax.xaxis)
    >>> tick_labels(ax.xaxis)
    ['1', '2']
    """
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _plain_number(x: float) -> str:
    """``x`` as a short plain number: ``2.2``, ``0.005``, ``1000``.

    >>> [_plain_number(v) for v in (2.2000000000000006, 0.005, 1000.0, 1.0, 0.00123)]
    ['2.2', '0.005', '1000', '1', '0.00123']
    """
    text = f"{x:.6g}"
    if "e" in text:     # outside %g's plain range: write the digits out
        text = f"{x:.12f}".rstrip("0").rstrip(".")
    return text


def _plain_log_formatter(base: float, label_only_base: bool):
    from matplotlib.ticker import LogFormatterSciNotation

    class PlainLogFormatter(LogFormatterSciNotation):
        """matplotlib's log formatter (it chooses which ticks get a label) writing plain numbers
        while the axis's view lies within :data:`PLAIN_RANGE`."""

        def __call__(self, x, pos=None):
            label = super().__call__(x, pos)
            if not label or self.axis is None:
                return label
            low, high = sorted(self.axis.get_view_interval())
            if not (PLAIN_RANGE[0] <= low and high <= PLAIN_RANGE[1]):
                return label
            return self.fix_minus(_plain_number(x))

    return PlainLogFormatter(base, labelOnlyBase=label_only_base)


def plain_log_ticks(axis) -> None:
    """Label a log-scale ``axis`` with plain numbers (``2.2``, not ``2.2×10⁰``) while its view
    lies between 0.001 and 10,000; call it after ``set_yscale("log")``, which resets the labels.

    An axis that is not on a log scale is left alone.

    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> _ = ax.semilogy([1, 2, 3], [0.005, 0.3, 2.0])
    >>> plain_log_ticks(ax.yaxis)
    >>> [t for t in tick_labels(ax.yaxis) if t]
    ['0.01', '0.1', '1']
    >>> _ = ax.semilogy([4], [1e-9])   # nine decades: matplotlib's powers of ten
    >>> tick_labels(ax.yaxis)[:2]
    ['10^{-8}', '10^{-6}']
    """
    if axis.get_scale() != "log":
        return
    base = getattr(axis._scale, "base", 10)
    axis.set_major_formatter(_plain_log_formatter(base, label_only_base=False))
    axis.set_minor_formatter(_plain_log_formatter(base, label_only_base=False))


def tidy_axes(fig) -> None:
    """Apply the rules to every axes of ``fig``: :func:`integer_ticks` on a linear axis labelled
    with epochs, steps or iterations, :func:`plain_log_ticks` on every log axis. An axis whose
    ticks or labels the figure chose itself (a locator or formatter other than matplotlib's
    default) is left as it is.

    >>> from matplotlib.figure import Figure
    >>> fig = Figure()
    >>> ax = fig.subplots()
    >>> _ = ax.plot([0.1, 0.2], [1, 2])
    >>> _ = ax.set_xlabel("step size $\\\\alpha$")   # a size, not a count: left alone
    >>> tidy_axes(fig)
    >>> tick_labels(ax.xaxis)[:2]
    ['0.10', '0.12']
    """
    from matplotlib.ticker import AutoLocator, LogFormatterSciNotation

    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                if type(axis.get_major_formatter()) is LogFormatterSciNotation \
                        and type(axis.get_minor_formatter()) is LogFormatterSciNotation:
                    plain_log_ticks(axis)
            elif axis.get_scale() == "linear" and _COUNTING.search(axis.get_label_text() or "") \
                    and type(axis.get_major_locator()) is AutoLocator:
                integer_ticks(axis)


def tick_labels(axis) -> list[str]:
    """The labels of ``axis``'s ticks inside its view (major, then the labelled minor ones), as drawn.

    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> _ = ax.plot([1, 3], [1, 2])
    >>> integer_ticks(ax.xaxis)
    >>> tick_labels(ax.xaxis)
    ['1', '2', '3']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = axis.axes.figure
    if fig.canvas is None or not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    low, high = sorted(axis.get_view_interval())
    labels = []
    for minor in (False, True):
        ticks = axis.get_minor_ticks() if minor else axis.get_major_ticks()
        locs = axis.get_minorticklocs() if minor else axis.get_majorticklocs()
        for tick, loc in zip(ticks, locs):
            text = tick.label1.get_text()
            if low - 1e-12 * abs(high - low) <= loc <= high + 1e-12 * abs(high - low) and (text or not minor):
                labels.append(text.replace("$\\mathdefault{", "").replace("}$", ""))
    return labels
