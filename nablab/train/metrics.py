"""Per-epoch metrics as CSV, and the loss and accuracy plots of a run.

Floats are written with ``repr`` so a file read back gives the very same
numbers (a resumed run can be compared with an uninterrupted one byte for byte).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
>>> write_csv(path, [{"epoch": 1, "step": 40, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.6, "test_acc": 0.75}])
>>> read_csv(path)[0]["test_acc"]
0.75
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

__all__ = ["METRIC_COLUMNS", "write_csv", "read_csv", "plot_run"]

METRIC_COLUMNS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc")


def _text(value):
    return repr(float(value)) if isinstance(value, float) else str(value)


def write_csv(path, rows, columns=METRIC_COLUMNS) -> None:
    """Write ``rows`` (dicts) with a header, replacing the file atomically."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_text(row[c]) for c in columns])
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def read_csv(path):
    """Rows of a metrics file as dicts of ints and floats.

    >>> import tempfile, pathlib
    >>> from nablab.train import read_csv
    >>> from nablab.train.metrics import write_csv
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> write_csv(path, [{"epoch": 1, "step": 10, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.6,
    ...                   "test_acc": 0.7}])
    >>> read_csv(path)[0]["test_acc"]
    0.7
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in row.items()} for row in rows]


def plot_run(history, step_losses, out_dir, title="", steps_per_epoch=None):
    """Write ``loss.png`` (per-step and per-epoch loss) and ``accuracy.png`` into ``out_dir``.

    Returns the two paths.

    ``history`` holds the per-epoch rows and ``step_losses`` the per-step losses (as :func:`train`
    records them); ``title`` heads the plots and ``steps_per_epoch`` places the epochs on the step axis.

    >>> import tempfile
    >>> from nablab.train import plot_run
    >>> rows = [{"epoch": e, "step": 2 * e, "train_loss": 1 / e, "train_acc": 0.5, "test_loss": 1 / e, "test_acc": 0.5}
    ...         for e in (1, 2)]
    >>> [p.name for p in plot_run(rows, [1.0, 0.8, 0.6, 0.5], tempfile.mkdtemp(), steps_per_epoch=2)]
    ['loss.png', 'accuracy.png']
    """
    from matplotlib.figure import Figure  # no pyplot: works headless and leaves the user's backend alone

    from nablab.train.plots import integer_ticks, plain_log_ticks

    out_dir = Path(out_dir)
    epochs = [r["epoch"] for r in history]
    ends = [r["step"] for r in history]

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    if step_losses:
        ax.plot(range(1, len(step_losses) + 1), step_losses, lw=0.6, alpha=0.45, color="C0", label="batch loss")
    if history:
        ax.plot(ends, [r["train_loss"] for r in history], "o-", color="C0", label="train (epoch mean)")
        ax.plot(ends, [r["test_loss"] for r in history], "s-", color="C1", label="test")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)   # a loss from 2.1 to 2.4 reads 2.2, not 2.2×10⁰
    integer_ticks(ax.xaxis)
    ax.set_title(f"Loss {title}".strip())
    ax.legend()
    loss_path = out_dir / "loss.png"
    fig.savefig(loss_path, dpi=110, bbox_inches="tight")

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    if history:
        ax.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train (during the epoch)")
        ax.plot(epochs, [100 * r["test_acc"] for r in history], "s-", label="test")
    ax.set_xlabel("epoch")
    integer_ticks(ax.xaxis)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy {title}".strip())
    if history:
        ax.legend()
    acc_path = out_dir / "accuracy.png"
    fig.savefig(acc_path, dpi=110, bbox_inches="tight")
    return loss_path, acc_path
