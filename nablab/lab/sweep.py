"""Sweeps: many independent tasks on a ``concurrent.futures.Executor``, results on disk.

An experiment that loops over seeds, step sizes or problem sizes hands the loop
to :func:`run_sweep`: one call ``fn(**kwargs)`` per task, on whatever executor
the run was given (a local process pool by default, a Dask cluster with
``--scheduler``, or in-process when there is none). Each result is a dict of
arrays, saved as ``<key>.npz`` the moment it arrives, written atomically; the
key hashes the function, its module's source and the task's arguments. A sweep
that was interrupted, or lost a worker, is run again with the same inputs and
only computes what is missing.

>>> import tempfile
>>> from pathlib import Path
>>> store = Path(tempfile.mkdtemp())
>>> out = run_sweep(square_task, [{"x": 1.0}, {"x": 3.0}], store=store)
>>> [float(r["y"]) for r in out]
[1.0, 9.0]
>>> len(list(store.glob("*.npz")))
2
>>> with open_executor("local", workers=2) as ex:          # doctest: +SKIP
...     out = run_sweep(square_task, [{"x": float(i)} for i in range(8)], executor=ex)

Functions must be importable by name on the workers (module level, no
lambdas), take keyword arguments that are numbers, strings, lists, dicts or
NumPy arrays, and return ``{name: array-like}`` with numeric, boolean or
string dtype (never objects: results are never pickled to disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, InvalidStateError, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from nablab.lab.registry import fault_point

__all__ = ["run_sweep", "sweep", "task_key", "open_executor", "LocalPool", "SweepError",
           "WORKER_ENV", "square_task"]

#: Set in every worker process we start (where not set already): one BLAS thread per
#: worker, so two workers on two cores do not fight over them; and glibc malloc
#: settings that keep NumPy temporaries of up to 32 MiB on the heap. With glibc's
#: defaults a fresh worker maps and unmaps every temporary of a few hundred KB, and
#: the wide-minima sweep ran 3-4 times slower in a worker than in a warmed-up process
#: (7 times with Dask's default MALLOC_TRIM_THRESHOLD_ of 64 KiB).
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
              "MALLOC_TOP_PAD_": str(64 << 20)}


class SweepError(RuntimeError):
    """Some tasks of a sweep failed; the finished ones are saved and a rerun resumes."""


def square_task(x: float) -> dict:
    """A tiny task for examples and tests: ``{"y": x * x}``."""
    return {"y": np.float64(x) * x}


# -- keys and files ----------------------------------------------------------------


def _canonical(value: Any, h) -> None:
    """Feed a canonical byte form of a task argument into the hash ``h``."""
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        arr = np.ascontiguousarray(value)
        if arr.dtype.kind not in "biufcU":
            raise TypeError(f"task argument of dtype {arr.dtype} cannot be hashed")
        h.update(b"A" + arr.dtype.str.encode() + repr(arr.shape).encode())
        h.update(arr.tobytes())
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(b"J" + json.dumps(value).encode())
    elif isinstance(value, (list, tuple)):
        h.update(b"L%d[" % len(value))
        for v in value:
            _canonical(v, h)
        h.update(b"]")
    elif isinstance(value, dict):
        h.update(b"D%d{" % len(value))
        for k in sorted(value, key=str):
            h.update(json.dumps(str(k)).encode() + b":")
            _canonical(value[k], h)
        h.update(b"}")
    else:
        raise TypeError(f"task argument of type {type(value).__name__} cannot be hashed; use "
                        "numbers, strings, lists, dicts or NumPy arrays")


_SOURCE_HASHES: dict[str, str] = {}


def _source_hash(fn: Callable) -> str:
    """Hash of the file that defines ``fn``: editing it invalidates saved results."""
    module = sys.modules.get(fn.__module__)
    path = getattr(module, "__file__", None)
    if not path:
        return ""
    if path not in _SOURCE_HASHES:
        _SOURCE_HASHES[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return _SOURCE_HASHES[path]


def task_key(fn: Callable, kwargs: dict) -> str:
    """A stable name for one task: its function, that function's source file, its arguments.

    >>> task_key(square_task, {"x": 2.0}) == task_key(square_task, {"x": 2.0})
    True
    >>> task_key(square_task, {"x": 2.0}) == task_key(square_task, {"x": 3.0})
    False
    """
    h = hashlib.sha256()
    h.update(f"{fn.__module__}:{fn.__qualname__}:{_source_hash(fn)}".encode())
    _canonical(dict(kwargs), h)
    return h.hexdigest()[:24]


def _as_arrays(result: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(result, dict):
        raise TypeError(f"{where} returned {type(result).__name__}; a task returns a dict of arrays")
    out = {}
    for name, value in result.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "biufcU":
            raise TypeError(f"{where} returned {name!r} of dtype {arr.dtype}; results are saved as "
                            ".npz without pickle, so use numeric, boolean or string arrays")
        out[str(name)] = arr
    return out


def _save(store: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``store/key.npz`` atomically: a temporary file, then a rename.

    No fsync: a killed process never leaves a partial file under the final name,
    and a file cut short by a power cut fails to load and is computed again.
    """
    fd, tmp = tempfile.mkstemp(dir=store, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, store / f"{key}.npz")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _load(path: Path) -> dict[str, np.ndarray] | None:
    """A saved result, or None if the file is missing or unreadable (then it is recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        path.unlink(missing_ok=True)
        return None


# -- running -----------------------------------------------------------------------


#: In a LocalPool worker: whether a task is running, and whether Ctrl-C stopped the sweep.
_worker = {"in_task": False, "stopping": False}


def _call(fn: Callable, kwargs: dict) -> Any:
    # Keyword arguments travel as one dict: Dask's executor would read some names
    # (key, pure, workers, ...) as its own options.
    if _worker["stopping"]:
        raise KeyboardInterrupt("the sweep was interrupted")
    _worker["in_task"] = True
    try:
        return fn(**kwargs)
    finally:
        _worker["in_task"] = False


def run_sweep(fn: Callable[..., dict], tasks: Sequence[dict], *, executor: Executor | None = None,
              store: Path | str | None = None, retries: int = 2,
              progress: Callable[[int, int], None] | None = None) -> list[dict[str, np.ndarray]]:
    """Run ``fn(**task)`` for every task; return the results in task order.

    With ``store``, results already saved there are loaded instead of computed,
    and each new one is saved as it finishes. With ``executor=None`` tasks run
    here, one after another. Tasks whose worker process died are submitted
    again up to ``retries`` times (a :class:`LocalPool` replaces its broken
    pool; Dask reschedules by itself). If tasks fail, the others still finish
    and are saved, then :class:`SweepError` says how many are missing.
    ``progress(done, total)`` is called as distinct tasks finish (saved ones count as done).
    """
    tasks = [dict(t) for t in tasks]
    keys = [task_key(fn, t) for t in tasks] if store is not None else [str(i) for i in range(len(tasks))]
    results: dict[str, dict[str, np.ndarray]] = {}
    if store is not None:
        store = Path(store)
        store.mkdir(parents=True, exist_ok=True)
        for key in set(keys):
            found = _load(store / f"{key}.npz")
            if found is not None:
                results[key] = found
    todo = {}                                   # key -> task, each distinct task once
    for key, task in zip(keys, tasks):
        if key not in results:
            todo.setdefault(key, task)
    name = f"{fn.__module__}.{fn.__qualname__}"

    total = len(set(keys))

    def finish(key, value):
        arrays = _as_arrays(value, name)
        if store is not None:
            _save(store, key, arrays)
        results[key] = arrays
        if progress is not None:
            progress(len(results), total)

    if progress is not None and total:
        progress(len(results), total)

    if executor is None:
        for key, task in todo.items():
            finish(key, fn(**task))
    else:
        _run_on(executor, fn, todo, finish, retries, name, store)
    return [results[key] for key in keys]


def _run_on(executor, fn, todo: dict, finish, retries: int, name: str, store) -> None:
    pending: dict[Future, str] = {}
    attempts = dict.fromkeys(todo, 0)
    errors: list[tuple[str, BaseException]] = []

    def submit(key):
        attempts[key] += 1
        pending[executor.submit(_call, fn, todo[key])] = key

    try:
        for key in todo:
            submit(key)
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                key = pending.pop(fut)
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is None:
                    finish(key, fut.result())
                    fault_point("sweep-task-saved")
                elif isinstance(exc, BrokenProcessPool) and attempts[key] <= retries and not errors:
                    try:
                        submit(key)          # the worker died, not the task: once more
                    except BrokenProcessPool as again:
                        errors.append((key, again))
                else:
                    if not errors:       # stop starting new tasks; running ones still finish
                        for other in pending:
                            other.cancel()
                    errors.append((key, exc))
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    if errors:
        where = f"; the {len(todo) - len(errors)} others are saved in {store} and a rerun " \
                "computes only the missing ones" if store is not None else ""
        key, first = errors[0]
        raise SweepError(f"{len(errors)} of {len(todo)} tasks of {name} failed{where}. "
                         f"First: {type(first).__name__}: {first}") from first


def sweep(ctx, name: str, fn: Callable[..., dict], tasks: Sequence[dict]) -> list[dict[str, np.ndarray]]:
    """:func:`run_sweep` with an experiment's executor and store.

    The store is ``ctx.sweep_dir / claim id / name`` when the run has a sweep
    folder (``nablab reproduce`` and ``nablab lab run`` do), else results stay
    in memory. Each finished task is told to ``ctx.progress`` (a bar in the CLI).
    """
    sweep_dir = getattr(ctx, "sweep_dir", None)
    store = Path(sweep_dir) / (ctx.claim_id or "_") / name if sweep_dir is not None else None
    told = getattr(ctx, "progress", None)
    return run_sweep(fn, tasks, executor=getattr(ctx, "executor", None), store=store,
                     progress=None if told is None else lambda done, total: told(done, total, f"sweep {name}"))


# -- executors ---------------------------------------------------------------------


#: Also set while a pool or cluster starts its processes: after a SIGKILL of the main
#: process, the resource tracker started with them warns about the semaphores it cleans up.
_QUIET_TRACKER = {"PYTHONWARNINGS": "ignore::UserWarning:multiprocessing.resource_tracker"}


@contextlib.contextmanager
def _environ(values: dict) -> Iterator[None]:
    """Set ``values`` in the environment (where unset) while processes are started."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _on_interrupt(signum, frame) -> None:
    """Ctrl-C in a worker: stop the running task and refuse later ones; an idle worker waits.

    The pool is then shut down by the main process as usual (an idle worker that
    raised KeyboardInterrupt would print a traceback; one that died at once would
    break the pool, which Python 3.11 reports with a traceback of its own).
    """
    _worker["stopping"] = True
    if _worker["in_task"]:
        raise KeyboardInterrupt


def _worker_start(alive) -> None:
    """Run in each worker as it starts: quiet Ctrl-C handling, and death with the main process.

    ``alive`` is the read end of a pipe whose only writer is the main process: the
    read returns (end of file) the moment that process is gone, however it died,
    and the worker exits. Without this a worker forked by the fork server outlives
    a killed main process (and keeps the fork server and resource tracker alive).
    """
    signal.signal(signal.SIGINT, _on_interrupt)

    def watch():
        with contextlib.suppress(EOFError, OSError):
            alive.recv()
        os._exit(1)

    threading.Thread(target=watch, name="nablab-main-watch", daemon=True).start()


class LocalPool(Executor):
    """A process pool on this machine that starts a new pool when a worker dies.

    Workers start on first use (a run that sweeps nothing starts none), from a
    fork server where there is one, with one BLAS thread each. On Ctrl-C their
    running tasks stop (quietly) and the pool closes; they exit as soon as the
    main process is gone, even after a SIGKILL.

    >>> with LocalPool(2) as pool:                        # doctest: +SKIP
    ...     pool.submit(pow, 2, 10).result()
    1024
    """

    def __init__(self, workers: int | None = None):
        self.workers = max(1, int(workers or _cpu_count()))
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._mp = multiprocessing.get_context(method)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._alive = None              # (read end for the workers, write end kept here)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a LocalPool after shutdown")
            # Worker processes start inside submit (lazily), so the environment holds for them.
            with _environ({**WORKER_ENV, **_QUIET_TRACKER}):
                for attempt in (0, 1):
                    if self._pool is None:
                        if self._alive is None:
                            self._alive = self._mp.Pipe(duplex=False)
                        self._pool = ProcessPoolExecutor(self.workers, mp_context=self._mp,
                                                         initializer=_worker_start,
                                                         initargs=(self._alive[0],))
                    try:
                        return _tolerant_of_cancel(self._pool.submit(fn, *args, **kwargs))
                    except BrokenProcessPool:
                        self._pool.shutdown(wait=False, cancel_futures=True)
                        self._pool = None
                        if attempt:
                            raise
        raise AssertionError("unreachable")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Close the pool; without ``wait`` (an interrupted run) the workers' tasks are stopped too."""
        pids = self.worker_pids()
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            alive, self._alive = self._alive, None
        if pool is not None:
            _tolerate_closed_wakeup(pool)
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if not wait:
            # As Ctrl-C in a terminal does (when only this process got it): tasks stop, the
            # pool winds down. The pipe stays open until this process ends, so the workers
            # are not killed while it still has a pool to close.
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
            _KEEP_OPEN.append(alive)
        elif alive is not None:
            for end in alive:
                end.close()

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for tests and diagnostics)."""
        pool = self._pool
        return [p.pid for p in (getattr(pool, "_processes", None) or {}).values()] if pool else []


_KEEP_OPEN: list = []


def _tolerant_of_cancel(future: Future) -> Future:
    """``future``, whose ``set_exception`` now ignores a cancel that came first.

    When a worker dies, CPython 3.11's process pool marks every pending future failed, and one of them may have
    been cancelled a moment before (Ctrl-C cancels a sweep's pending tasks): the ``InvalidStateError`` then ends
    the pool's manager thread before it stops the workers, and the interpreter hangs at exit joining them (seen in
    tests/lab/test_chaos_sweep.py under load). CPython 3.12 ignores that error itself.
    """
    future.set_exception = _ignoring(InvalidStateError, future.set_exception)
    return future


def _tolerate_closed_wakeup(pool: ProcessPoolExecutor) -> None:
    """Let the interpreter's exit hook wake a pool whose manager thread is closing its wake-up pipe.

    At exit, concurrent.futures wakes every pool's manager thread; after an interrupted shutdown
    that thread may close the pipe between the hook's ``_closed`` check and its write, and the
    write's ``OSError: [Errno 9] Bad file descriptor`` is printed as a traceback after the clean
    Ctrl-C message (seen on CPython 3.11 under load). A closed pipe needs no waking.
    """
    wakeup = getattr(pool, "_executor_manager_thread_wakeup", None)
    send = getattr(wakeup, "wakeup", None)
    if send is not None:
        wakeup.wakeup = _ignoring(OSError, send)


def _ignoring(error: type[BaseException], method: Callable) -> Callable:
    """``method``, with ``error`` raised in it ignored (for the pool's internals patched above)."""
    def call(*args, **kwargs):
        with contextlib.suppress(error):
            method(*args, **kwargs)

    return call


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: ``--scheduler`` values besides a ``tcp://HOST:PORT`` address.
SCHEDULERS = ("local", "local-dask", "serial")


@contextlib.contextmanager
def open_executor(scheduler: str | None = "local", workers: int | None = None) -> Iterator[Executor | None]:
    """The executor a ``--scheduler`` value names, closed on exit.

    - ``local`` (default): a :class:`LocalPool` of ``workers`` processes (default: one per core);
    - ``local-dask``: a Dask ``LocalCluster`` of ``workers`` single-threaded processes;
    - ``tcp://HOST:PORT`` (any ``scheme://``): an existing Dask scheduler, through ``Client``;
    - ``serial``: no executor; tasks run in this process.
    """
    scheduler = scheduler or "local"
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers}: need at least 1")
    if scheduler == "serial":
        yield None
    elif scheduler == "local":
        pool = LocalPool(workers)
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)   # interrupted: do not wait for running tasks
            raise
        pool.shutdown(cancel_futures=True)
    elif scheduler == "local-dask" or "://" in scheduler:
        with _dask_client(scheduler, workers) as client:
            yield client.get_executor()
    else:
        raise ValueError(f"--scheduler {scheduler!r}: use local, local-dask, serial or a Dask "
                         "scheduler address like tcp://HOST:8786")


@contextlib.contextmanager
def _dask_client(scheduler: str, workers: int | None):
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ValueError(f"--scheduler {scheduler}: Dask is not installed ({exc}); install it with "
                         "pip install 'nablab[dask]'") from exc
    if scheduler == "local-dask":
        import dask

        # The nanny sets these in the environment before it starts a worker (and again when
        # it restarts one): the only way to reach malloc and BLAS, which read them at start.
        # The workers' statistical profiler (a sample every 10 ms) cost about 5% of efficiency.
        spawn_env = {**dask.config.get("distributed.nanny.pre-spawn-environ", default={}), **WORKER_ENV}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env,
                              "distributed.worker.profile.enabled": False}), _environ(_QUIET_TRACKER):
            cluster = LocalCluster(n_workers=workers or _cpu_count(), threads_per_worker=1,
                                   processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    else:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise ValueError(f"--scheduler {scheduler}: no Dask scheduler answered ({exc}); start "
                             "one with `dask scheduler` and workers with `dask worker ADDRESS`") from exc
        with client:
            yield client
