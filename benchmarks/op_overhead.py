"""Per-op overhead of nablab against PyTorch eager and HIPS autograd, on small arrays.

    .venv/bin/python benchmarks/op_overhead.py [--quick]

What is timed, for a scalar, 10 and 1,000 float64 entries:

- ``single op``: one ``x * y`` forward where ``x`` is watched (recorded for a
  later backward) and ``y`` is a constant.  nablab twice: ``traced`` is a box on
  a reverse level, as inside ``nb.grad`` (built with the engine's internal
  ``new_level``/``Node.leaf``, exactly what ``nb.vjp`` does, so the op is timed
  alone); ``imperative`` is ``nb.tensor(..., requires_grad=True)``.  HIPS
  autograd: an ``ArrayBox`` on a fresh trace.  torch: ``requires_grad=True``.
  Plain NumPy ``x * y`` is shown as the floor.
- ``chain``: forward and backward through ``CHAIN`` elementwise ops (a cycle of
  tanh, * 1.5, + 0.25, sin) and a final sum, reported per op
  (total / ``CHAIN``).  nablab: ``nb.grad(f)(x)`` and the imperative
  ``tensor(...).backward()``; torch: eager ``.backward()`` and ``torch.func.grad``;
  autograd: ``autograd.grad``.
- ``deep chain``: forward and reverse pass through 100,000 ops (``h = h * c``)
  on a scalar, checked against the exact derivative ``c ** 100000``; the best of
  3 runs (1 with --quick).  ``nablab grad, gc off`` repeats it with Python's
  cyclic garbage collector paused, to show how much of the time the collector
  takes while the 100,000-node graph is alive.

Timing: ``timeit``, with the number of calls per run chosen so one run lasts at
least 0.2 s (0.05 s with --quick), and 7 runs (3 with --quick) per case,
interleaved across the engines so a burst of load from other processes hits
them alike.  The headline is the **minimum** over runs of the mean time per
call (the least disturbed run); the median is in the JSON too, and so is the
load average before and after.  torch is measured with its default thread count and with
``torch.set_num_threads(1)``; the ratios use the single-thread figures (the
other engines are single-threaded NumPy) and the JSON has both.

JSON goes to stdout, a readable table to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import timeit

import numpy as np

import nablab as nb
from nablab.autodiff.core import Node, Tensor, close_level, new_level

try:
    import torch
    import torch.func
except ImportError:  # pragma: no cover - the test extras bring torch
    torch = None

try:
    import autograd
    import autograd.numpy as anp
    from autograd.core import VJPNode
    from autograd.tracer import new_box, trace_stack
except ImportError:  # pragma: no cover
    autograd = None

SIZES = {"scalar": (), "10": (10,), "1000": (1000,)}
CHAIN = 100
DEEP = 100_000


def _loops_for(fn, min_time):
    """How many calls make one timed run last at least ``min_time`` seconds."""
    timer = timeit.Timer(fn)
    number = 1
    while timer.timeit(number) < min_time:
        number *= 2 if number < 8 else 4
    return timer, number


def measure_all(cases, repeat, min_time):
    """Seconds per call of each case: {name: (min, median)} over ``repeat`` runs.

    The repeats are interleaved (case A, B, C, then A, B, C again, ...), so a
    burst of load from other processes slows every engine alike instead of
    landing on whichever happened to run then.
    """
    timers = {name: _loops_for(fn, min_time) for name, fn in cases.items()}
    runs = {name: [] for name in cases}
    for _ in range(repeat):
        for name, (timer, number) in timers.items():
            if name.startswith("torch"):
                torch.set_num_threads(_threads_for(name))
            runs[name].append(timer.timeit(number) / number)
    if torch is not None:
        torch.set_num_threads(1)
    return {name: (min(r), statistics.median(r)) for name, r in runs.items()}


_DEFAULT_THREADS = torch.get_num_threads() if torch is not None else None


def _threads_for(name):
    return _DEFAULT_THREADS if name.endswith("threads]") else 1


def _data(shape, seed):
    rng = np.random.default_rng(seed)
    return np.asarray(rng.uniform(-1.0, 1.0, size=shape))


# --------------------------------------------------------------------------- single op


def single_op_cases(shape):
    x, y = _data(shape, 0), _data(shape, 1)
    cases = {"numpy": lambda: x * y}

    level = new_level()  # a reverse level, as nb.vjp opens (kept open for the timing)
    xb = Tensor(x, level, Node.leaf(x))
    cases["nablab traced"] = lambda: xb * y

    xi = nb.tensor(x, requires_grad=True)
    cases["nablab imperative"] = lambda: xi * y

    if torch is not None:
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.tensor(y)
        cases["torch"] = lambda: xt * yt
    if autograd is not None:
        ctx = trace_stack.new_trace()
        trace = ctx.__enter__()
        xa = new_box(x, trace, VJPNode.new_root())
        cases["autograd"] = lambda: xa * y
    else:
        ctx = None

    def cleanup():
        close_level(level)
        if ctx is not None:
            ctx.__exit__(None, None, None)

    return cases, cleanup


# --------------------------------------------------------------------------- chain


def _chain(h, tanh, sin, n):
    for i in range(n):
        k = i % 4
        if k == 0:
            h = tanh(h)
        elif k == 1:
            h = h * 1.5
        elif k == 2:
            h = h + 0.25
        else:
            h = sin(h)
    return h


def chain_cases(shape, n=CHAIN):
    x = _data(shape, 2)
    cases = {}

    def f_nb(v):
        return nb.sum(_chain(v, nb.tanh, nb.sin, n))

    grad_nb = nb.grad(f_nb)
    cases["nablab grad"] = lambda: grad_nb(x)

    def imperative():
        xi = nb.tensor(x, requires_grad=True)
        f_nb(xi).backward()
        return xi.grad

    cases["nablab imperative"] = imperative

    if torch is not None:
        xt0 = torch.tensor(x)

        def f_t(v):
            return torch.sum(_chain(v, torch.tanh, torch.sin, n))

        def eager():
            xt = xt0.detach().requires_grad_()
            f_t(xt).backward()
            return xt.grad

        cases["torch"] = eager
        grad_t = torch.func.grad(f_t)
        cases["torch.func.grad"] = lambda: grad_t(xt0)
    if autograd is not None:
        grad_a = autograd.grad(lambda v: anp.sum(_chain(v, anp.tanh, anp.sin, n)))
        cases["autograd"] = lambda: grad_a(x)

    # all of them must agree before any of them is timed
    reference = np.asarray(grad_nb(x))
    for name, fn in cases.items():
        got = fn()
        got = got.detach().numpy() if torch is not None and isinstance(got, torch.Tensor) else np.asarray(got)
        if not np.allclose(got, reference, rtol=1e-9, atol=1e-12):
            raise AssertionError(f"chain: {name} disagrees with nablab grad")
    return cases


# --------------------------------------------------------------------------- deep chain


def deep_chain(n=DEEP, repeat=3):
    c = 1.0 + 1.0 / n
    exact = c**n  # d/dx of x * c**n, about e
    out = {"ops": n, "exact_derivative": exact, "runs": repeat}

    def f(v, mul=lambda a, b: a * b):
        for _ in range(n):
            v = mul(v, c)
        return v

    def run(name, fn):
        try:
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                got = float(fn())
                times.append(time.perf_counter() - t0)
            seconds = min(times)
            ok = math.isclose(got, exact, rel_tol=1e-9)
            out[name] = {"seconds": seconds, "all_seconds": times, "per_op_us": 1e6 * seconds / n,
                         "works": ok, "derivative": got}
        except Exception as err:  # record, do not hide, a failure (e.g. RecursionError)
            out[name] = {"works": False, "error": f"{type(err).__name__}: {err}"[:300]}

    run("nablab grad", lambda: nb.grad(f)(0.5))

    def without_gc():  # diagnostic: how much of the time is Python's cyclic GC
        gc.disable()
        try:
            return nb.grad(f)(0.5)
        finally:
            gc.enable()

    run("nablab grad, gc off", without_gc)

    def imperative():
        x = nb.tensor(0.5, requires_grad=True)
        f(x).backward()
        return x.grad

    run("nablab imperative", imperative)
    if torch is not None:
        def eager():
            x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
            f(x).backward()
            return x.grad

        run("torch", eager)
    if autograd is not None:
        run("autograd", lambda: autograd.grad(f)(0.5))
    return out


# --------------------------------------------------------------------------- driver


def run_group(make_cases, repeat, min_time):
    """Time every case for every size; torch twice (its default threads, and one)."""
    results = {}
    for label, shape in SIZES.items():
        made = make_cases(shape)
        cases, cleanup = made if isinstance(made, tuple) else (made, lambda: None)
        for name in [n for n in cases if n.startswith("torch")]:
            cases[f"{name} [{_DEFAULT_THREADS} threads]"] = cases[name]
        try:
            results[label] = measure_all(cases, repeat, min_time)
        finally:
            cleanup()
    return results


def summarise(results):
    rows = []
    for label, row in results.items():
        entry = {"size": label}
        for name, (best, median) in row.items():
            entry[name] = {"min_s": best, "median_s": median}
        for ours in ("nablab traced", "nablab grad", "nablab imperative"):
            if ours not in row:
                continue
            for peer in ("torch", "autograd"):
                if peer in row:
                    entry[f"ratio {ours} / {peer}"] = row[ours][0] / row[peer][0]
        rows.append(entry)
    return rows


def table(title, rows, per):
    names = [k for k in rows[0] if k != "size" and not k.startswith("ratio")]
    ratios = [k for k in rows[0] if k.startswith("ratio")]
    lines = [f"\n{title} (min over repeats, {per})"]
    width = max(len(n) for n in names + ratios) + 2
    lines.append("".ljust(width) + "".join(f"{r['size']:>12}" for r in rows))
    for n in names:
        lines.append(n.ljust(width) + "".join(f"{1e6 * r[n]['min_s']:>10.2f}us" for r in rows))
    for n in ratios:
        lines.append(n.ljust(width) + "".join(f"{r[n]:>11.2f}x" for r in rows))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter runs (about 40 s instead of a few minutes)")
    args = parser.parse_args(argv)
    repeat, min_time = (3, 0.05) if args.quick else (7, 0.2)

    default_threads = _DEFAULT_THREADS
    if torch is not None:
        torch.set_num_threads(1)
    load_before = os.getloadavg()
    meta = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nablab": nb.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "autograd": getattr(autograd, "__version__", None) if autograd is not None else None,
        "machine": platform.machine(),
        "torch_default_threads": default_threads,
        "torch_threads_for_ratios": 1,
        "timing": f"timeit, {repeat} interleaved repeats of >= {min_time}s each; 'min_s' is the "
                  "minimum over repeats of the mean time per call, 'median_s' the median",
        "chain_ops": CHAIN,
        "quick": args.quick,
    }
    if autograd is not None and meta["autograd"] is None:
        from importlib.metadata import version

        meta["autograd"] = version("autograd")

    single = summarise(run_group(single_op_cases, repeat, min_time))
    chain = run_group(chain_cases, repeat, min_time)
    for row in chain.values():  # per op
        for name, (best, median) in row.items():
            row[name] = (best / CHAIN, median / CHAIN)
    chain = summarise(chain)
    if torch is not None:
        torch.set_num_threads(1)
    deep = deep_chain(repeat=1 if args.quick else 3)
    if torch is not None:
        torch.set_num_threads(default_threads)

    meta["load_average_1min_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    meta["cpus"] = os.cpu_count()
    report = {"meta": meta, "single_op_forward": single, "chain_forward_backward_per_op": chain,
              "deep_chain_reverse": deep}
    json.dump(report, sys.stdout, indent=2)
    print()

    print(f"nablab {meta['nablab']}, torch {meta['torch']} (ratios use 1 thread; default is "
          f"{default_threads}), autograd {meta['autograd']}, numpy {meta['numpy']}; "
          f"{meta['cpus']} CPUs, load average {meta['load_average_1min_before_after']} (before, after)",
          file=sys.stderr)
    print(table("single op x * y, forward with recording", single, "per op"), file=sys.stderr)
    print(table(f"chain of {CHAIN} elementwise ops, forward + backward", chain, "per op"), file=sys.stderr)
    print(f"\nforward + reverse pass through {DEEP:,} ops (h = h * c), best of {deep['runs']}:",
          file=sys.stderr)
    for name, r in deep.items():
        if isinstance(r, dict):
            status = (f"{r['seconds']:.2f}s ({r['per_op_us']:.1f}us/op), derivative ok: {r['works']}"
                      if "seconds" in r else f"FAILED: {r['error']}")
            print(f"  {name:<20} {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
