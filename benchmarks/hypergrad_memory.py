"""Peak memory and time of the hypergradient modes against the number of unrolled steps; prints a table and JSON.

The problem: heavy-ball SGD (lr 0.05, momentum 0.9) on the separable nonlinear loss

    L(w) = sum_i softplus(a_i w_i) + b_i w_i^2 / 2,        w in R^d, d = 100,000

for 10, 100, 1,000 and 10,000 steps; the quantity is ``d L(w_steps) / d lr``.
Modes: ``plain`` (training only, the baseline), ``reverse`` (backpropagation
through the unrolled steps), ``checkpointed`` (reverse with a checkpoint every
k = round(sqrt(steps)) steps), ``forward`` (one JVP carried along the steps)
and ``reversible`` (fixed-point momentum run backwards, Maclaurin et al. 2015).

Every measurement runs in a fresh subprocess, twice:

* with ``tracemalloc`` started after the problem is built: the traced peak is
  the memory the call itself allocated (NumPy reports its buffers);
* without it: wall time per step, and the resident set -- ``VmHWM`` (peak RSS)
  from ``/proc/self/status`` after the call, less ``VmRSS`` before it -- so the
  peaks of different measurements never mix.  Plain training is timed in the
  same subprocess right after (up to 200 steps), so "x plain" compares runs
  made under the same machine load.

A measurement whose memory, extrapolated linearly from the smaller step
counts of the same mode, would exceed ``--limit-gib`` (12 GiB) is skipped and
listed as skipped.  Targets: forward and reversible grow by less than 10%
from 100 to 10,000 steps; reverse grows linearly.

    python benchmarks/hypergrad_memory.py                 # the full run (about an hour on 2 busy cores)
    python benchmarks/hypergrad_memory.py --quick         # d = 10^4, steps 10, 100, 1000
    python benchmarks/hypergrad_memory.py --steps 10 100 --modes forward reverse
    python benchmarks/hypergrad_memory.py --from-json run.json   # the table of a saved run

"agreement" is |dL/dlr of a mode - reverse mode's| / (the largest |dL/dlr| of the run): the
hypergradient dies out with the horizon (to ~1e-27 at 1,000 steps), below every mode's rounding floor.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import tracemalloc

import numpy as np

MODES = ("plain", "reverse", "checkpointed", "forward", "reversible")
LR, MOMENTUM = 0.05, 0.9


# -- the worker: one mode, one step count, one way of measuring ------------------------------------

def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def problem(d: int, seed: int = 0):
    """The separable loss, its start point: ``(loss_fn, w0)``."""
    import nablab as nb

    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(d), rng.uniform(0.5, 1.5, d)
    w0 = rng.standard_normal(d)

    def loss(w):
        return nb.sum(nb.softplus(a * w) + b * w ** 2 / 2)

    return loss, w0


def run_mode(mode: str, loss, w0, steps: int) -> dict:
    """Run one mode; return the loss, the hypergradient and mode-specific facts."""
    from nablab.hyper import lr_hypergradient, reversible_hypergradient
    from nablab.hyper.unrolled import Unrolled
    from nablab.optim import heavy_ball

    if mode == "plain":
        run = Unrolled(loss, steps, lambda h: heavy_ball(h["lr"], MOMENTUM))
        w, _ = run.run({"lr": np.float64(LR)}, w0)
        return {"loss": float(loss(w)), "d_lr": None}
    if mode == "reversible":
        r = reversible_hypergradient(loss, w0, LR, MOMENTUM, steps)
        return {"loss": r.loss, "d_lr": r.d_lr, "stored_bytes": r.stored_bytes,
                "bits_per_parameter_step": r.bits_per_parameter_step,
                "reconstructed_exactly": r.reconstructed_exactly}
    options = {}
    if mode == "checkpointed":
        options["checkpoint_every"] = max(1, round(math.sqrt(steps)))
    value, d_lr = lr_hypergradient(loss, w0, LR, steps, momentum=MOMENTUM,
                                   mode="forward" if mode == "forward" else "reverse", **options)
    return {"loss": float(value), "d_lr": float(d_lr), **options}


def worker(mode: str, steps: int, d: int, how: str) -> dict:
    loss, w0 = problem(d)
    run_mode(mode, loss, w0, 1)  # one step first: imports and first-call costs stay out of the measurement
    out = {"mode": mode, "steps": steps, "d": d, "how": how}
    if how == "tracemalloc":
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        facts = run_mode(mode, loss, w0, steps)
        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    else:
        try:  # reset the peak-RSS counter where the kernel allows it (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        rss_before = _status_kib("VmRSS")
        t0 = time.perf_counter()
        facts = run_mode(mode, loss, w0, steps)
        seconds = time.perf_counter() - t0
        hwm = _status_kib("VmHWM")
        out.update(rss_before_kib=rss_before, vmhwm_kib=hwm, rss_extra_bytes=max(0, hwm - rss_before) * 1024,
                   seconds=seconds, ms_per_step=1e3 * seconds / max(steps, 1))
        plain_steps = min(steps, 200)
        t0 = time.perf_counter()
        run_mode("plain", loss, w0, plain_steps)
        out["plain_ms_per_step"] = 1e3 * (time.perf_counter() - t0) / plain_steps
    out.update(facts)
    return out


# -- the driver --------------------------------------------------------------------------------------

def measure(mode: str, steps: int, d: int, how: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, str(steps), str(d), how]
    # A fixed mmap threshold: arrays above 128 KiB always get their own pages and give them back when
    # freed (glibc otherwise raises the threshold and recycles them from the heap), so VmHWM sees each
    # measurement's own peak.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {mode} steps={steps} ({how}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def extrapolate(points: list[tuple[int, float]], steps: int) -> float | None:
    """Linear fit of memory against steps through the two largest measured points."""
    if not points:
        return None
    if len(points) == 1:
        s, m = points[0]
        return m * steps / s  # proportional: the pessimistic guess
    (s1, m1), (s2, m2) = sorted(points)[-2:]
    slope = (m2 - m1) / (s2 - s1)
    return m2 + slope * (steps - s2)


def mib(x):
    return "-" if x is None else f"{x / 2**20:,.1f}"


def summarise(rows: list[dict]) -> tuple[dict, dict]:
    """Agreement of dL/dlr across modes, and the targets (growth 100 -> 10,000 steps; reverse slope)."""
    # dL/dlr dies out with the horizon (to ~1e-27 here), so differences are scaled by the largest
    # |dL/dlr| of the series (the 10-step value), not by the value at that horizon
    scale = max((abs(r["d_lr"]) for r in rows if r["d_lr"] is not None), default=1.0)
    agreement = {}
    for steps in sorted({r["steps"] for r in rows}):
        vals = {r["mode"]: r["d_lr"] for r in rows if r["steps"] == steps and r["d_lr"] is not None}
        ref = vals.get("reverse", vals.get("forward"))
        if ref is not None:
            agreement[steps] = {m: abs(v - ref) / scale for m, v in vals.items()}

    def growth(mode, key):
        by = {r["steps"]: r[key] for r in rows if r["mode"] == mode}
        return by[10000] / by[100] - 1 if 100 in by and 10000 in by else None

    targets = {}
    for mode in ("forward", "reversible"):
        g = {k: growth(mode, k) for k in ("tracemalloc_peak_bytes", "vmhwm_kib")}
        targets[mode] = {"growth 100 -> 10000, tracemalloc": g["tracemalloc_peak_bytes"],
                         "growth 100 -> 10000, peak RSS (VmHWM)": g["vmhwm_kib"],
                         "target": "< 10%",
                         "met": None if None in g.values() else bool(max(g.values()) < 0.10)}
    rev = sorted((r["steps"], r["tracemalloc_peak_bytes"]) for r in rows if r["mode"] == "reverse")
    if len(rev) >= 2:
        (s1, m1), (s2, m2) = rev[0], rev[-1]
        slope = math.log(m2 / m1) / math.log(s2 / s1)
        per_step = (rev[-1][1] - rev[-2][1]) / (rev[-1][0] - rev[-2][0])
        targets["reverse"] = {"log-log slope of tracemalloc peak vs steps": slope,
                              "bytes per step (largest two points)": per_step,
                              "target": "linear (slope about 1)", "met": bool(0.8 < slope < 1.2)}
    return agreement, targets


def render(report: dict) -> None:
    """The table, the skipped measurements and the targets, for people."""
    print(f"d = {report['d']:,} parameters; heavy-ball SGD lr {report['lr']}, momentum {report['momentum']}; "
          f"{report.get('cpus')} CPUs")
    header = (f"{'mode':12s} {'steps':>6s} {'traced MiB':>11s} {'RSS+ MiB':>10s} {'VmHWM MiB':>10s} "
              f"{'ms/step':>8s} {'x plain':>8s} {'dL/dlr':>13s}  {'stored bits/param/step':>22s}")
    print(header)
    print("-" * len(header))
    for r in report["rows"]:
        dl = "-" if r["d_lr"] is None else f"{r['d_lr']:.6g}"
        bits = f"{r['bits_per_parameter_step']:.3f}" if "bits_per_parameter_step" in r else ""
        print(f"{r['mode']:12s} {r['steps']:>6d} {mib(r['tracemalloc_peak_bytes']):>11s} "
              f"{mib(r['rss_extra_bytes']):>10s} {r['vmhwm_kib'] / 1024:>10,.1f} {r['ms_per_step']:>8.1f} "
              f"{r['x_plain']:>8.2f} {dl:>13s}  {bits:>22s}")
    for s in report["skipped"]:
        print(f"{s['mode']:12s} {s['steps']:>6d} skipped: estimated {s['estimated_bytes'] / 2**30:,.1f} GiB "
              f"> {report['limit_gib']:g} GiB")
    for mode, t in report["targets"].items():
        print(f"target {mode}: " + ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                                             for k, v in t.items()))
    worst = max((v for per in report["agreement"].values() for v in per.values()), default=0.0)
    print(f"dL/dlr: modes agree to {worst:.1e} of the largest |dL/dlr| (the 10-step value)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--d", type=int, default=100_000, help="number of parameters")
    parser.add_argument("--limit-gib", type=float, default=12.0)
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="d = 10^4, steps 10, 100, 1000")
    parser.add_argument("--json", help="also write the JSON to this file")
    parser.add_argument("--from-json", help="print the table of a saved run instead of measuring")
    parser.add_argument("--worker", nargs=4, metavar=("MODE", "STEPS", "D", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, steps, d, how = args.worker
        print(json.dumps(worker(mode, int(steps), int(d), how)))
        return 0
    if args.from_json:
        with open(args.from_json) as f:
            report = json.load(f)
        report.setdefault("limit_gib", args.limit_gib)
        report["agreement"], report["targets"] = summarise(report["rows"])
        render(report)
        return 0
    if args.quick:
        args.d, args.steps = 10_000, [10, 100, 1000]
    for s in args.steps:
        if s < 1:
            raise SystemExit(f"--steps: every step count must be >= 1, got {s}")
    limit = args.limit_gib * 2**30
    rows, skipped = [], []
    for mode in args.modes:
        seen: list[tuple[int, float]] = []
        for steps in sorted(args.steps):
            guess = extrapolate(seen, steps)
            if guess is not None and guess > limit:
                skipped.append({"mode": mode, "steps": steps, "estimated_bytes": guess})
                print(f"skip {mode:12s} steps={steps:>6}: estimated {guess / 2**30:.1f} GiB > "
                      f"{args.limit_gib:g} GiB", file=sys.stderr, flush=True)
                continue
            t = measure(mode, steps, args.d, "tracemalloc", args.timeout)
            r = measure(mode, steps, args.d, "rss", args.timeout)
            row = {**r, "tracemalloc_peak_bytes": t["tracemalloc_peak_bytes"]}
            row["x_plain"] = row["ms_per_step"] / row["plain_ms_per_step"]
            rows.append(row)
            seen.append((steps, max(row["tracemalloc_peak_bytes"], row["rss_extra_bytes"])))
            print(f"done {mode:12s} steps={steps:>6}: traced {mib(row['tracemalloc_peak_bytes'])} MiB, "
                  f"RSS +{mib(row['rss_extra_bytes'])} MiB, {row['ms_per_step']:.1f} ms/step",
                  file=sys.stderr, flush=True)
    agreement, targets = summarise(rows)
    report = {"benchmark": "hypergrad_memory", "d": args.d, "lr": LR, "momentum": MOMENTUM,
              "limit_gib": args.limit_gib, "python": platform.python_version(), "numpy": np.__version__,
              "cpus": os.cpu_count(), "load average at the end": os.getloadavg()[0], "rows": rows,
              "skipped": skipped, "agreement": agreement, "targets": targets}
    render(report)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
