"""Time and peak memory of the matrix-free Convolution1d against its peers; prints JSON.

For every signal length n and kernel length r it measures ``A @ x`` and
``A.T @ y`` with ``A = nablab.linop.Convolution1d(k, n)`` against

* ``numpy.correlate(x, k, "valid")`` / ``numpy.convolve(y, k, "full")`` (the reference),
* ``scipy.signal.correlate`` / ``scipy.signal.convolve`` (method "auto": FFT when faster),
* the dense ``(n - r + 1) x n`` matrix (only while it takes at most ``--dense-mb`` MB),

and reports ratios to NumPy and the slope of log(time) against log(n) per r
(1 means linear in n).  Times (``*_s``: CPU seconds, ``*_wall_s``: wall
seconds) are the best of interleaved repeats; peak memory is tracemalloc's
peak during one call (NumPy reports its buffers to tracemalloc).

    python benchmarks/linop_conv1d.py            # n = 1e3 ... 1e7, r = 3, 11, 31, 101
    python benchmarks/linop_conv1d.py --quick    # n up to 1e5
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import tracemalloc

import numpy as np
import scipy
import scipy.signal

from nablab.linop import Convolution1d


def best_times(fns: dict, budget: float) -> dict:
    """Best wall and CPU seconds per call of each function, timed in interleaved rounds.

    Interleaving (a block of each function per round, best block kept) and CPU
    time (``time.process_time``) keep the ratios steady when other processes
    share the machine; the ratios use CPU time.
    """
    number, once = {}, {}
    for name, f in fns.items():
        f()
        t0 = time.perf_counter()
        f()
        once[name] = max(time.perf_counter() - t0, 1e-9)
        number[name] = max(1, int(0.005 / once[name]))
    per_round = sum(once[k] * number[k] for k in fns)
    rounds = max(5, min(400, int(budget * len(fns) / per_round)))
    wall = {name: float("inf") for name in fns}
    cpu = dict(wall)
    for _ in range(rounds):
        for name, f in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number[name]):
                f()
            c1, w1 = time.process_time(), time.perf_counter()
            wall[name] = min(wall[name], (w1 - w0) / number[name])
            cpu[name] = min(cpu[name], (c1 - c0) / number[name])
    return {name: (wall[name], cpu[name]) for name in fns}


def peak_bytes(f) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    f()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def slope(ns, ts) -> float:
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n up to 1e5 only")
    ap.add_argument("--ns", type=int, nargs="*", help="signal lengths")
    ap.add_argument("--rs", type=int, nargs="*", help="kernel lengths")
    ap.add_argument("--dense-mb", type=float, default=200.0, help="largest dense matrix to time")
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per timing")
    args = ap.parse_args(argv)
    ns = args.ns or [10**e for e in range(3, 6 if args.quick else 8)]
    rs = args.rs or [3, 11, 31, 101]
    rng = np.random.default_rng(0)

    rows = []
    for r in rs:
        k = rng.standard_normal(r)
        for n in ns:
            m = n - r + 1
            x, y = rng.standard_normal(n), rng.standard_normal(m)
            A = Convolution1d(k, n)
            At = A.T
            calls = {
                "ours": (lambda: A @ x, lambda: At @ y),
                "numpy": (lambda: np.correlate(x, k, "valid"), lambda: np.convolve(y, k, "full")),
                "scipy": (lambda: scipy.signal.correlate(x, k, "valid"),
                          lambda: scipy.signal.convolve(y, k, "full")),
            }
            row = {"n": n, "r": r}
            dense_mb = m * n * 8 / 2**20
            if dense_mb <= args.dense_mb:
                D = A.todense()
                calls["dense"] = (lambda: D @ x, lambda: D.T @ y)
                row["dense_matrix_mb"] = round(dense_mb, 2)
            t_fwd = best_times({name: fb[0] for name, fb in calls.items()}, args.budget)
            t_bwd = best_times({name: fb[1] for name, fb in calls.items()}, args.budget)
            for name, (fwd, bwd) in calls.items():
                row[name] = {
                    "Ax_s": t_fwd[name][1], "ATy_s": t_bwd[name][1],
                    "Ax_wall_s": t_fwd[name][0], "ATy_wall_s": t_bwd[name][0],
                    "Ax_peak_bytes": peak_bytes(fwd),
                    "ATy_peak_bytes": peak_bytes(bwd),
                }
            np.testing.assert_allclose(A @ x, np.correlate(x, k, "valid"))
            np.testing.assert_allclose(At @ y, np.convolve(y, k, "full"))
            row["ratio_to_numpy"] = {
                "Ax": row["ours"]["Ax_s"] / row["numpy"]["Ax_s"],
                "ATy": row["ours"]["ATy_s"] / row["numpy"]["ATy_s"],
            }
            row["ours_peak_bytes_per_n"] = max(row["ours"]["Ax_peak_bytes"], row["ours"]["ATy_peak_bytes"]) / n
            rows.append(row)
            print(f"n={n:>9} r={r:>3}  ours/numpy Ax {row['ratio_to_numpy']['Ax']:.2f}  "
                  f"ATy {row['ratio_to_numpy']['ATy']:.2f}  ours Ax {row['ours']['Ax_s']:.2e} s",
                  file=sys.stderr)

    slopes = {}
    for r in rs:
        sel = [row for row in rows if row["r"] == r]
        big = [row for row in sel if row["n"] >= 10**5] or sel
        slopes[f"r={r}"] = {
            f"{who}_{op}": {"all_n": slope([s["n"] for s in sel], [s[who][f"{op}_s"] for s in sel]),
                            "n>=1e5": slope([s["n"] for s in big], [s[who][f"{op}_s"] for s in big])
                            if len(big) > 1 else None}
            for who in ("ours", "numpy") for op in ("Ax", "ATy")
        }
    ratios = [row["ratio_to_numpy"][op] for row in rows for op in ("Ax", "ATy")]
    out = {
        "benchmark": "linop_conv1d",
        "command": "python " + " ".join(sys.argv),
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "scipy": scipy.__version__, "processor": platform.processor() or platform.machine()},
        "rows": rows,
        "slope_log_time_vs_log_n": slopes,
        "summary": {
            "max_ratio_to_numpy": max(ratios),
            "median_ratio_to_numpy": float(np.median(ratios)),
            "within_1.5x_of_numpy": all(q <= 1.5 for q in ratios),
            "max_ours_peak_bytes_per_n": max(row["ours_peak_bytes_per_n"] for row in rows),
        },
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
