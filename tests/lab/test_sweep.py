"""Sweeps: results on disk as they finish, resumed after an interruption or a killed worker."""

import doctest
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nablab.lab import sweep
from nablab.lab.sweep import LocalPool, SweepError, open_executor, run_sweep, task_key


@pytest.fixture
def tasks(monkeypatch):
    """The tests' task module, importable by name here and in every worker started afterwards."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import sweep_tasks

    return sweep_tasks


def xs(n, log, sleep=0.0):
    return [{"x": float(i), "log": str(log), "sleep": sleep} for i in range(n)]


def same(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) and x[k].dtype == y[k].dtype for k in x)
        for x, y in zip(a, b))


def npz_files(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir())


def test_doctests():
    assert doctest.testmod(sweep).failed == 0


def test_results_are_saved_once_each_and_reloaded_without_computing(tmp_path, tasks):
    log, store = tmp_path / "log", tmp_path / "store"
    log.mkdir()
    first = run_sweep(tasks.logged_task, xs(5, log), store=store)
    assert [float(r["y"]) for r in first] == [0, 1, 4, 9, 16]
    assert tasks.calls(log) == [0, 1, 2, 3, 4]
    assert len(npz_files(store)) == 5 and all(n.endswith(".npz") for n in npz_files(store))
    again = run_sweep(tasks.logged_task, xs(5, log), store=store)
    assert tasks.calls(log) == [0, 1, 2, 3, 4]          # nothing recomputed
    assert same(first, again)
    assert same(first, run_sweep(tasks.logged_task, xs(5, log)))   # no store: same values


def test_a_corrupt_result_file_is_recomputed(tmp_path, tasks):
    log, store = tmp_path / "log", tmp_path / "store"
    log.mkdir()
    clean = run_sweep(tasks.logged_task, xs(3, log), store=store)
    victim = store / f"{task_key(tasks.logged_task, xs(3, log)[1])}.npz"
    victim.write_bytes(b"not a zip file")
    assert same(clean, run_sweep(tasks.logged_task, xs(3, log), store=store))
    assert tasks.calls(log) == [0, 1, 1, 2]


def test_keys_follow_the_arguments():
    a = {"x": np.arange(3.0), "n": 2}
    assert task_key(sweep.square_task, a) == task_key(sweep.square_task, {"n": 2, "x": np.arange(3.0)})
    assert task_key(sweep.square_task, a) != task_key(sweep.square_task, {"x": np.arange(3), "n": 2})
    with pytest.raises(TypeError, match="object"):
        task_key(sweep.square_task, {"x": object()})


def test_object_results_are_refused(tmp_path, tasks):
    with pytest.raises(TypeError, match="dtype object"):
        run_sweep(tasks.object_task, [{}], store=tmp_path)


def test_an_interrupted_sweep_resumes_with_only_the_missing_tasks(tmp_path, tasks):
    log, store = tmp_path / "log", tmp_path / "store"
    log.mkdir()
    (log / "fail-3").touch()
    with LocalPool(2) as pool:
        with pytest.raises(SweepError, match=r"1 of 6 tasks .* failed.*rerun"):
            run_sweep(tasks.logged_task, xs(6, log), executor=pool, store=store)
        assert len(npz_files(store)) == 5
        (log / "fail-3").unlink()
        before = len(tasks.calls(log))
        out = run_sweep(tasks.logged_task, xs(6, log), executor=pool, store=store)
    assert len(tasks.calls(log)) == before + 1 and tasks.calls(log).count(3.0) == 2
    assert same(out, run_sweep(tasks.logged_task, xs(6, log)))


def kill_after(store: Path, results: int, pids, done: threading.Event):
    """Kill one worker (SIGKILL) once ``results`` files are in ``store``."""
    def watch():
        while not done.is_set():
            if store.exists() and len(list(store.glob("*.npz"))) >= results:
                os.kill(pids()[0], signal.SIGKILL)
                return
            time.sleep(0.01)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_local_pool_replaces_a_killed_worker(tmp_path, tasks):
    log, store = tmp_path / "log", tmp_path / "store"
    log.mkdir()
    todo = xs(12, log, sleep=0.1)
    done = threading.Event()
    with LocalPool(2) as pool:
        killer = kill_after(store, 3, pool.worker_pids, done)
        out = run_sweep(tasks.logged_task, todo, executor=pool, store=store)
        done.set()
        killer.join()
    assert len(npz_files(store)) == 12
    assert same(out, run_sweep(tasks.logged_task, todo))


def test_a_killed_dask_worker_loses_nothing(tmp_path, tasks):
    pytest.importorskip("distributed")
    log, store = tmp_path / "log", tmp_path / "store"
    log.mkdir()
    todo = xs(16, log, sleep=0.15)
    done = threading.Event()
    with open_executor("local-dask", workers=2) as executor:
        client = executor._client
        pids = lambda: sorted(client.run(os.getpid).values())  # noqa: E731
        killer = kill_after(store, 3, pids, done)
        out = run_sweep(tasks.logged_task, todo, executor=executor, store=store)
        done.set()
        killer.join()
    # Every task's result present exactly once (one file per task, none half-written) ...
    assert npz_files(store) == sorted(f"{task_key(tasks.logged_task, t)}.npz" for t in todo)
    # ... equal to a clean run's, and the kill really happened mid-sweep.
    assert same(out, run_sweep(tasks.logged_task, todo))
    assert len(tasks.calls(log)) > 16


def test_workers_get_one_blas_thread(tasks):
    with LocalPool(1) as pool:
        (r,) = run_sweep(tasks.getenv_task, [{"name": "OPENBLAS_NUM_THREADS"}], executor=pool)
    assert str(r["value"]) == "1"
    assert os.environ.get("OPENBLAS_NUM_THREADS") != "1" or "OPENBLAS_NUM_THREADS" in sweep.WORKER_ENV


def test_unknown_scheduler_is_named():
    with pytest.raises(ValueError, match="--scheduler 'nope'"):
        with open_executor("nope"):
            pass


def test_theory_sweeps_give_the_same_result_on_a_pool(tmp_path):
    from nablab.lab.report import run_claim

    params = {"theory.wide-minima": {"starts": 400, "sweep_starts": 40, "n_sweep": 2, "chunk": 150},
              "theory.gd-threshold": {"problems": 3, "starts": 3, "steps": 60, "bisect_steps": 300,
                                      "ratios": [0.5, 3.0], "chunk": 2}}
    with LocalPool(2) as pool:
        for claim_id, p in params.items():
            def record(claim_id, p, executor, name):
                rec, _ = run_claim(claim_id, tmp_path / name, True, 0, p, executor=executor,
                                   sweep_dir=tmp_path / f"{name}-sweeps")
                return rec
            here, there = record(claim_id, p, None, "here"), record(claim_id, p, pool, "pool")
            assert here["status"] == there["status"] == "agrees"
            assert here["slots"] == there["slots"] and here["computed"] == there["computed"]
            assert len(list((tmp_path / "pool-sweeps" / claim_id).rglob("*.npz"))) >= 2
