"""Chaos tests of sweeps on the local process pool: the main process killed or interrupted.

`nablab lab run` stops itself right after a sweep saved its first task
(``NABLAB_FAULT=sweep-task-saved:stop``); the test then kills it (SIGKILL) or sends
Ctrl-C to its process group. Its fork server, resource tracker and workers must be
gone within seconds, the saved tasks kept, and nothing but a clean message printed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc")

RUN = [sys.executable, "-m", "nablab", "lab", "run", "theory.wide-minima", "--quick", "--param", "starts=6000",
       "--param", "chunk=500", "--scheduler", "local", "--workers", "2"]


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, T, Z, ...), or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stopped_run(out: Path) -> subprocess.Popen:
    """`lab run` in its own process group, stopped just after its first sweep task was saved."""
    # PYTHONFAULTHANDLER: a run that hangs is sent SIGABRT and prints every thread's stack
    env = {**os.environ, "NABLAB_FAULT": "sweep-task-saved:stop", "COLUMNS": "200", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(RUN + ["--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while _state(proc.pid) != "T":
        assert proc.poll() is None, proc.communicate()
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run never saved a sweep task")
        time.sleep(0.05)
    return proc


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive (not gone, not zombies) after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in pids if _state(p) not in (None, "Z")]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _kill_all(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_main_process_takes_its_workers_with_it(tmp_path):
    out = tmp_path / "run"
    proc = stopped_run(out)
    helpers = descendants(proc.pid)        # fork server, resource tracker, the two workers
    assert len(helpers) >= 3, helpers
    os.kill(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    alive = wait_gone(helpers, 10)
    _kill_all(alive)                       # do not leave them behind if the test fails
    assert not alive, f"still running 10 s after the main process was killed: {alive}"
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    saved = list((out / ".sweeps").rglob("*.npz"))
    assert saved                           # what was finished is kept for the rerun
    r = subprocess.run(RUN + ["--out", str(out)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "result.json").read_text())["status"] == "agrees"
    assert not (out / ".sweeps").exists()


def test_ctrl_c_stops_the_workers_without_their_tracebacks(tmp_path):
    out = tmp_path / "run"
    proc = stopped_run(out)
    helpers = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)     # what Ctrl-C in a terminal does: the whole group
    os.kill(proc.pid, signal.SIGCONT)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGABRT)            # faulthandler prints where each thread waits
        _, stderr = proc.communicate(timeout=30)
        _kill_all(descendants(proc.pid) + helpers)
        raise AssertionError(f"still running 60 s after Ctrl-C; its threads:\n{stderr}") from None
    alive = wait_gone(helpers, 10)
    _kill_all(alive)
    assert proc.returncode == 130
    assert "interrupted; finished sweep tasks are saved in" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert not alive, f"still running 10 s after Ctrl-C: {alive}"


def test_ctrl_c_in_a_worker_stops_its_task_and_an_idle_worker_just_waits(tmp_path, monkeypatch):
    """An idle worker that raised KeyboardInterrupt would print a traceback; it waits instead."""
    from nablab.lab import sweep

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import sweep_tasks

    log = tmp_path / "log"
    log.mkdir()
    with sweep.LocalPool(1) as pool:
        pid = pool.submit(os.getpid).result(timeout=60)
        running = pool.submit(sweep._call, sweep_tasks.logged_task,
                              {"x": 1.0, "log": str(log), "sleep": 60.0})
        deadline = time.monotonic() + 60
        while not sweep_tasks.calls(str(log)) and time.monotonic() < deadline:
            time.sleep(0.05)
        start = time.monotonic()
        os.kill(pid, signal.SIGINT)                            # busy: its task stops
        assert isinstance(running.exception(timeout=30), KeyboardInterrupt)
        assert time.monotonic() - start < 10
        later = pool.submit(sweep._call, sweep_tasks.logged_task, {"x": 2.0, "log": str(log)})
        assert isinstance(later.exception(timeout=30), KeyboardInterrupt)   # no new task starts
        os.kill(pid, signal.SIGINT)                            # idle: it waits for the pool to close
        time.sleep(0.2)
        assert pool.submit(os.getpid).result(timeout=60) == pid
    assert sweep_tasks.calls(str(log)) == [1.0]
