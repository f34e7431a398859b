"""How far ``nablab reproduce`` has got: ``[n/N]`` per claim, the time so far and an estimate of what is left.

The lab tells; this module shows. :func:`nablab.lab.report.reproduce` calls back
with each finished claim and with what a running claim says through
``run.progress(done, total, what)``. On a terminal that becomes a Rich bar (with a
second bar inside a long claim); in a pipe or a log, one plain line per claim, and
a line every few seconds from inside a long one.

>>> estimate_left(["a", "b", "c"], done={"a": (1.5, 2.0)}, expected={}, running=0.5)
3.5
>>> duration(75.4)
'1 min 15 s'
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
from rich.table import Column
from rich.text import Text

from nablab.cli._common import STATUS_STYLE

__all__ = ["ReproduceProgress", "ClaimProgress", "estimate_left", "duration", "previous_seconds"]

#: Seconds between two plain lines from inside a claim (a log needs a sign of life, not every step).
PLAIN_EVERY = 10.0


def duration(seconds: float) -> str:
    """Seconds in words for a progress line.

    >>> duration(4.26), duration(59.6), duration(3600)
    ('4 s', '1 min 0 s', '60 min 0 s')
    """
    whole = int(round(seconds))
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


def estimate_left(ids: list[str], done: dict[str, tuple[float, float]], expected: dict[str, float],
                  running: float) -> float | None:
    """Seconds the claims of ``ids`` not in ``done`` still need; None before there is anything to go by.

    ``done`` holds each finished claim's computing time (what the report records) and
    its whole time (with its figures and grading); ``expected`` each claim's computing
    time in an earlier run. A claim the earlier run timed is guessed as that time,
    scaled by how fast this run computes compared with it, plus the mean time spent
    outside computing; any other as the mean whole time. ``running`` is what the
    claim in progress (the first unfinished one) has spent so far.

    >>> estimate_left(["a", "b"], done={}, expected={"a": 10.0, "b": 30.0}, running=4.0)
    36.0
    >>> estimate_left(["a", "b"], done={"a": (20.0, 21.0)}, expected={"a": 10.0, "b": 30.0}, running=0.0)
    61.0
    >>> estimate_left(["a", "b", "c"], done={"a": (1.0, 2.0)}, expected={}, running=0.5)
    3.5
    >>> estimate_left(["a", "b"], done={}, expected={}, running=1.0) is None
    True
    """
    left = [i for i in ids if i not in done]
    if not left:
        return 0.0
    timed = [i for i in done if expected.get(i, 0) > 0]
    scale = sum(done[i][0] for i in timed) / sum(expected[i] for i in timed) if timed else 1.0
    overhead = sum(w - c for c, w in done.values()) / len(done) if done else 0.0
    mean = sum(w for _, w in done.values()) / len(done) if done else None

    def guess(claim_id):
        if expected.get(claim_id, 0) > 0:
            return scale * expected[claim_id] + overhead
        return mean

    guesses = [guess(i) for i in left]
    if any(g is None for g in guesses):
        return None
    # The running claim has spent `running` already; past its guess it counts as nearly done.
    return max(guesses[0] - running, 0.0) + sum(guesses[1:])


def previous_seconds(out: Path, quick: bool) -> dict[str, float]:
    """Each claim's seconds in the report already in ``out``, if it was run with the same ``--quick``.

    Anything missing or unreadable gives ``{}``: the estimate then starts from this run alone.
    """
    try:
        meta = json.loads((Path(out) / "run.json").read_text(encoding="utf-8"))
        claims = json.loads((Path(out) / "claims.json").read_text(encoding="utf-8"))
        if bool(meta.get("quick")) != quick:
            return {}
        return {c["id"]: float(c["seconds"]) for c in claims
                if isinstance(c.get("seconds"), (int, float)) and c.get("status") != "not-implemented"}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


class _Clock(ProgressColumn):
    """The overall bar's right end: time so far and the estimate; nothing on a claim's own bar."""

    def __init__(self, reporter: "ReproduceProgress"):
        super().__init__(table_column=Column(no_wrap=True))
        self.reporter = reporter

    def render(self, task) -> Text:
        if task.fields.get("inner"):
            return Text(task.fields.get("count", ""), style="progress.download")
        return Text(self.reporter.timing(), style="progress.elapsed")


class ReproduceProgress:
    """Shows a ``reproduce`` run on ``console``: use as a context manager, pass
    :meth:`claim_done` and :meth:`claim_step` to :func:`nablab.lab.report.reproduce`.

    >>> import io
    >>> out = io.StringIO()
    >>> with ReproduceProgress(Console(file=out, width=80), ["data.one-hot"]) as shown:
    ...     shown.claim_done({"id": "data.one-hot", "status": "agrees", "seconds": 0.01})
    >>> out.getvalue().split()[:3]
    ['[1/1]', 'agrees', 'data.one-hot']
    """

    def __init__(self, console: Console, ids: list[str], expected: dict[str, float] | None = None):
        self.console, self.ids, self.expected = console, list(ids), dict(expected or {})
        self.done: dict[str, tuple[float, float]] = {}
        self.start = self.claim_start = time.perf_counter()
        self.last_plain = 0.0
        self.live = console.is_terminal
        self.progress = None

    # -- the numbers ------------------------------------------------------------------

    def counter(self, n: int) -> str:
        width = len(str(len(self.ids)))
        return f"[{n:>{width}}/{len(self.ids)}]"

    def timing(self) -> str:
        """``12 s so far, about 40 s left`` (or ``estimating`` before there is anything to go by)."""
        now = time.perf_counter()
        left = estimate_left(self.ids, self.done, self.expected, now - self.claim_start)
        guess = "estimating" if left is None else f"about {duration(left)} left"
        return f"{duration(now - self.start)} so far, {guess}"

    def _running(self) -> str | None:
        left = [i for i in self.ids if i not in self.done]
        return left[0] if left else None

    # -- what reproduce calls -----------------------------------------------------------

    def __enter__(self):
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                BarColumn(bar_width=16), _Clock(self), console=self.console, transient=True)
            self.progress.start()
            self.overall = self.progress.add_task(self._overall_text(), total=len(self.ids))
            self.inner = self.progress.add_task("", total=1, visible=False, inner=True, count="")
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def _overall_text(self) -> str:
        running = self._running()
        return f"{self.counter(len(self.done) + (running is not None))} {running or 'writing the report'}"

    def claim_done(self, record: dict) -> None:
        """A claim finished: one line for it, then on to the next."""
        now = time.perf_counter()
        self.done[record["id"]] = (float(record["seconds"]), now - self.claim_start)
        self.claim_start = now
        style = STATUS_STYLE.get(record["status"], "")
        line = (f"{self.counter(len(self.done))} [{style}]{record['status']:<10}[/]  {record['id']}"
                f"  [dim]{record['seconds']:.2f} s[/]")
        if self.progress is not None:
            self.progress.console.print(line, highlight=False)
            self.progress.update(self.overall, completed=len(self.done), description=self._overall_text())
            self.progress.update(self.inner, visible=False)
        else:  # a log: whole lines, with the timing the bar would show
            self.console.print(f"{line}  [dim]({self.timing()})[/]", highlight=False, soft_wrap=True)

    def claim_step(self, claim_id: str, done: int, total: int, what: str) -> None:
        """A running claim says how far it has got."""
        if self.progress is not None:
            self.progress.update(self.inner, visible=True, completed=done, total=total,
                                 description=f"  {what}", count=f"{done}/{total}")
            return
        now = time.perf_counter()
        if now - self.last_plain >= PLAIN_EVERY and now - self.claim_start >= PLAIN_EVERY:
            self.last_plain = now
            self.console.print(f"{' ' * len(self.counter(0))} {claim_id}: {done}/{total} {what}",
                               markup=False, highlight=False, soft_wrap=True)


class ClaimProgress:
    """One claim's own bar (``nablab lab run``) on a terminal; nothing elsewhere.

    Pass :meth:`step` as ``progress=`` to :func:`nablab.lab.report.run_claim`.
    """

    def __init__(self, console: Console, claim_id: str):
        self.console, self.claim_id, self.progress = console, claim_id, None

    def __enter__(self):
        if self.console.is_terminal:
            from rich.progress import MofNCompleteColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                BarColumn(bar_width=16), MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.claim_id, total=None)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def step(self, done: int, total: int, what: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total, description=f"{self.claim_id}: {what}")
