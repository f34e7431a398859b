"""A process pool that breaks while some of its pending futures are cancelled still stops its workers."""

import threading
import time
from concurrent.futures import wait
from pathlib import Path

import pytest

from nablab.lab import sweep


def test_a_worker_dying_after_pending_tasks_were_cancelled_breaks_the_pool_cleanly(monkeypatch):
    """CPython 3.11's pool sets BrokenProcessPool on every pending future, cancelled ones too; the
    InvalidStateError that raised ended its manager thread before it stopped the workers, and the interpreter then
    hung at exit (Ctrl-C on a sweep, under load)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import sweep_tasks

    crashed = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    pool = sweep.LocalPool(1)
    try:
        dying = pool.submit(sweep_tasks.die_after, 1.0)
        queued = [pool.submit(sweep_tasks.die_after, 0.0) for _ in range(6)]
        time.sleep(0.3)  # the pool's manager thread has queued what it will and waits: a cancel does not wake it
        cancelled = [f for f in queued if f.cancel()]
        assert cancelled, "no pending task could be cancelled (all were already handed to the worker)"
        wait([dying], timeout=60)
        with pytest.raises(sweep.BrokenProcessPool):
            dying.result(timeout=0)
        deadline = time.monotonic() + 30
        manager = pool._pool._executor_manager_thread
        while time.monotonic() < deadline and manager.is_alive() and not crashed:
            time.sleep(0.05)
        assert not crashed, f"the pool's manager thread died: {crashed!r}"
        assert not manager.is_alive(), "the broken pool did not finish stopping"
        assert all(f.cancelled() for f in cancelled)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
