"""Parallel efficiency of a lab sweep on 1 vs 2 local workers; prints JSON.

The sweep is theory.wide-minima's at ``--scale`` times the report's size (by
default 10: 100,000 starts for each of the seed's three step sizes and 20,000
for each of the 30 step sizes of the outcome plot, in tasks of ``--chunk``
starts; the report's own sweep uses 2500). It is CPU-bound NumPy with no
shared state. For each executor kind
(nablab's process pool, a Dask LocalCluster) it times the whole sweep, results
saved to a fresh store as in a report run, on 1 and on 2 workers, and reports

    efficiency = T1 / (2 T2)        (1.0: two workers are exactly twice as fast)

Worker processes are started and warmed up (modules imported) before timing;
each figure is the best of ``--rounds`` interleaved runs, since other
processes may share the machine. The peer figure is the standard library's
ProcessPoolExecutor.map over the same tasks on 2 workers, results kept in
memory, and the in-process time (no executor) is shown for reference.

    python benchmarks/sweep_efficiency.py               # scale 10, both executors
    python benchmarks/sweep_efficiency.py --quick       # scale 2, one round
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # this process too: it runs the in-process figure

import numpy as np  # noqa: E402

from nablab.lab.experiments.theory import settle_task  # noqa: E402
from nablab.lab.sweep import WORKER_ENV, open_executor, run_sweep  # noqa: E402


def wide_minima_tasks(scale: int, chunk: int, seed: int = 0) -> list[dict]:
    """The experiment's tasks at ``scale`` times its report size (same ranges and step sizes)."""
    rng = np.random.default_rng(seed)
    jobs = [(a, rng.uniform(-5.0, 20.0, 10_000 * scale), 5000) for a in (0.01, 0.3, 4.0)]
    jobs += [(float(a), rng.uniform(-5.0, 20.0, 2000 * scale), 3000) for a in np.geomspace(0.01, 5.0, 30)]
    return [{"theta0": theta0[i:i + chunk], "lr": float(lr), "max_steps": steps}
            for lr, theta0, steps in jobs for i in range(0, len(theta0), chunk)]


def idle_share(seconds: float = 1.0) -> float | None:
    """Share of all cores' time spent idle over ``seconds`` (Linux's /proc/stat), or None."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)            # idle + iowait, total
    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except OSError:
        return None
    return (idle1 - idle0) / max(total1 - total0, 1)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sweep_time(executor, tasks) -> float:
    store = Path(tempfile.mkdtemp(prefix="nablab-bench-"))
    try:
        return timed(lambda: run_sweep(settle_task, tasks, executor=executor, store=store))
    finally:
        shutil.rmtree(store, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10, help="times the report's sweep size (default 10)")
    ap.add_argument("--chunk", type=int, default=20_000,
                    help="starts per task (default 20000: 45 tasks, about 0.1 s each)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats, best kept (default 3)")
    ap.add_argument("--kinds", default="local,local-dask", help="executors to measure")
    ap.add_argument("--quick", action="store_true", help="scale 2, one round")
    args = ap.parse_args(argv)
    if args.quick:
        args.scale, args.rounds = 2, 1
    tasks = wide_minima_tasks(args.scale, args.chunk)
    warm = tasks[-4:]
    idle_before = idle_share()

    figures = {}
    for kind in args.kinds.split(","):
        with ExitStack() as stack:
            ex = {n: stack.enter_context(open_executor(kind, workers=n)) for n in (1, 2)}
            for n in (1, 2):
                run_sweep(settle_task, warm, executor=ex[n])     # start and warm up the workers
            best = {1: float("inf"), 2: float("inf")}
            for _ in range(args.rounds):
                for n in (1, 2):
                    best[n] = min(best[n], sweep_time(ex[n], tasks))
        figures[kind] = {"T1_s": round(best[1], 3), "T2_s": round(best[2], 3),
                         "efficiency": round(best[1] / (2 * best[2]), 3)}

    # Reference: in this process, no executor; peer: the standard library's pool.map.
    serial = timed(lambda: [settle_task(**t) for t in tasks])
    ctx = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
    os.environ.update({k: v for k, v in WORKER_ENV.items() if k not in os.environ})
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        list(pool.map(settle_task, *zip(*[(t["theta0"], t["lr"], t["max_steps"]) for t in warm])))
        peer = min(timed(lambda: list(pool.map(settle_task, *zip(*[(t["theta0"], t["lr"], t["max_steps"])
                                                                for t in tasks]))))
                   for _ in range(args.rounds))

    print(json.dumps({
        "benchmark": "sweep_efficiency",
        "sweep": f"theory.wide-minima x{args.scale}: {sum(len(t['theta0']) for t in tasks)} GD starts "
                 f"in {len(tasks)} tasks of up to {args.chunk}",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "idle_share_before": None if idle_before is None else round(idle_before, 3)},
        **({"warning": "other processes kept the cores busy before the start (idle share below "
                       "0.9): the 2-worker times, and so the efficiencies, are not meaningful"}
           if idle_before is not None and idle_before < 0.9 else {}),
        "rounds": args.rounds,
        "in_process_s": round(serial, 3),
        "nablab": figures,
        "peer_stdlib_ProcessPoolExecutor_map_2_workers_s": round(peer, 3),
        "target": "efficiency >= 0.85 with 2 workers on 2 cores",
    }, indent=2))


if __name__ == "__main__":
    main()
