"""Convolution and a ConvNet training step: nablab against PyTorch on the CPU, at 1 and 2 threads.

    .venv/bin/python benchmarks/conv_speed.py [--threads 1,2] [--quick] [--repeat 7]

Without ``--threads`` both thread counts run, each in a fresh subprocess (the
thread count of NumPy's BLAS is fixed through the environment before NumPy is
imported; PyTorch's with ``torch.set_num_threads``); ``--threads 2`` runs one.

What is timed (float32, both libraries given the same arrays):

- ``conv2d 32->64 @16x16`` and ``conv2d 3->32 @32x32``: batch 128, kernel 3,
  padding 1, forward then backward with a fixed output cotangent, giving the
  input, weight and bias gradients (nablab: ``nablab.tensor(...,
  requires_grad=True)`` and ``.backward(g)``; PyTorch: the same in eager mode).
  FLOPs counted: forward ``2 N O Ho Wo C k k``; backward twice that.
- ``convnet step``: one training step of the seed's CIFAR-10 ConvNet
  (``build_model("convnet", (3, 32, 32), 10)``: conv7x7(32), ReLU, 2x2 max pool,
  affine(100), ReLU, affine) at batch 128 with Adam: zero_grad, forward,
  cross-entropy, backward, optimizer step (:class:`nablab.train.NablabBackend`
  against its PyTorch replica :class:`nablab.train.TorchBackend`). FLOPs counted:
  the convolution's forward and weight gradient (no input gradient: the images
  are data) and the two affine layers' forward and both gradients.
  nablab's ``Sequential`` runs the ReLU after the pooling (the same values and
  gradients, ReLU on a quarter of the values); ``the same, ReLU before pool``
  times nablab's step in the written order, as context.
- ``max_pool2d 2x2`` and the MNIST-1D CNN step, as context.

OpenBLAS's idle-thread spinning is shortened as ``import nablab`` does it
(``OPENBLAS_THREAD_TIMEOUT=14``, unless the environment sets another value:
``OPENBLAS_THREAD_TIMEOUT=28`` gives OpenBLAS's default); both libraries run
in that same process.

Every case runs ``--repeat`` times, interleaved between the libraries so a burst
of load from other processes hits both; the headline is the minimum over runs
(the median is in the JSON, with the load average before and after). The CPU-time
ratio (``CPU r.``, the process's CPU time per call, minimum over runs) is shown
beside it: on one thread it is the better estimate of the wall-clock ratio on a
quiet machine when other processes load this one (on two threads it adds the
threads up, and counts BLAS and OpenMP threads that spin while they wait). nablab
chooses each convolution's algorithm by measuring once per shape
(:mod:`nablab.nn.conv_algorithms`); the warm-up call does that, and the chosen
algorithm per map (forward, input gradient, weight gradient) is reported. Each
case's GFLOP/s is shown as a fraction of NumPy's float32 GEMM on 1024^3 measured
in the same run. Then, per algorithm forced on each convolution case, the time
of one forward+backward and its peak memory (``tracemalloc``: NumPy's buffers
allocated during the step, beyond what existed before; the kept columns
included), and the ratio of that peak to im2col's.

JSON goes to stdout, a readable table to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2: one subprocess each)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per case (default 7)")
    p.add_argument("--quick", action="store_true", help="3 runs per case")
    return p.parse_args()


ARGS = _args() if __name__ == "__main__" else None
SINGLE = ARGS is not None and "," not in ARGS.threads
if SINGLE:  # must happen before NumPy is imported
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(int(ARGS.threads))
    # what ``import nablab`` sets when it comes before NumPy (see docs/nn.md); a value in the environment wins
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")

import platform
import statistics
import time
import tracemalloc

import numpy as np

TARGET = 1.0
CONV_CASES = {"conv2d 32->64 @16x16": (32, 64, 16), "conv2d 3->32 @32x32": (3, 32, 32)}
STEP = "convnet step (batch 128)"


def _time(fn, min_time=0.05, cpu=False):
    """Mean seconds per call over enough calls to last ``min_time``; with ``cpu``, (wall, CPU) seconds."""
    fn()
    n, total, total_cpu = 0, 0.0, 0.0
    while total < min_time:
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        total += time.perf_counter() - start
        total_cpu += time.process_time() - start_cpu
        n += 1
    return (total / n, total_cpu / n) if cpu else total / n


def measure(pairs, repeat):
    """``pairs``: name -> (nablab_fn, torch_fn). Interleaved runs; min and median per side, wall and CPU time."""
    runs = {name: ([], [], [], []) for name in pairs}
    for _ in range(repeat):
        for name, (ours, theirs) in pairs.items():
            for side, fn in ((0, ours), (1, theirs)):
                wall, cpu = _time(fn, cpu=True)
                runs[name][side].append(wall)
                runs[name][side + 2].append(cpu)
    return {name: {"nablab_s": min(a), "torch_s": min(b), "nablab_median_s": statistics.median(a),
                   "torch_median_s": statistics.median(b), "nablab_cpu_s": min(ac), "torch_cpu_s": min(bc)}
            for name, (a, b, ac, bc) in runs.items()}


def conv_case(n, c, o, size, rng):
    import torch

    import nablab as nb
    from nablab.nn import functional as F

    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((o, c, 3, 3)) * 0.1).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    g = rng.standard_normal((n, o, size, size)).astype(np.float32)

    xn, wn, bn = (nb.tensor(a, requires_grad=True) for a in (x, w, b))

    def ours():
        for t in (xn, wn, bn):
            t.grad = None
        F.conv2d(xn, wn, bn, padding=1).backward(g)

    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    gt = torch.from_numpy(g)

    def theirs():
        for t in (xt, wt, bt):
            t.grad = None
        torch.nn.functional.conv2d(xt, wt, bt, padding=1).backward(gt)

    def check():
        ours()
        theirs()
        for mine, ref in ((xn, xt), (wn, wt), (bn, bt)):
            ref_grad = ref.grad.numpy()
            err = np.max(np.abs(mine.grad.numpy() - ref_grad)) / (np.max(np.abs(ref_grad)) + 1e-30)
            assert err < 1e-4, f"conv gradients differ from PyTorch by {err:.2e} (relative)"

    check()  # the first call measures the algorithms (autotuning), then the same numbers as PyTorch
    flops = 3 * 2 * n * o * size * size * c * 9
    return (ours, theirs), flops, check


def convnet_case(rng):
    from nablab.train import NablabBackend, TorchBackend, build_model

    x = rng.standard_normal((128, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    model = build_model("convnet", (3, 32, 32), 10, seed=0, dtype=np.float32)
    ours_b, theirs_b = NablabBackend(model, "adam", 1e-3), TorchBackend(model, "adam", 1e-3)
    loss_ours, loss_theirs = ours_b.train_step(x, y)[0], theirs_b.train_step(x, y)[0]
    assert abs(loss_ours - loss_theirs) < 1e-4 * max(1.0, abs(loss_theirs)), (loss_ours, loss_theirs)
    n, o, c, k, hw, hidden = 128, 32, 3, 7, 32 * 32, 100
    flops = 2 * (2 * n * o * hw * c * k * k) + 3 * 2 * n * (o * hw // 4) * hidden + 3 * 2 * n * hidden * 10
    def check():
        loss = ours_b.train_step(x, y)[0]
        assert np.isfinite(loss), loss

    return ((lambda: ours_b.train_step(x, y)), (lambda: theirs_b.train_step(x, y))), flops, check


def convnet_written_order_case(rng):
    """The step of :func:`convnet_case` with nablab's ReLU run before the pooling, as written (``Sequential``
    otherwise pools first, see ``nablab.nn.layers._commute``): the same layers split over two Sequentials."""
    from nablab import nn
    from nablab.train import NablabBackend, TorchBackend, build_model

    x = rng.standard_normal((128, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    model = build_model("convnet", (3, 32, 32), 10, seed=0, dtype=np.float32)
    layers = list(model)
    written = nn.Sequential(nn.Sequential(*layers[:2]), nn.Sequential(*layers[2:]))
    ours_b, theirs_b = NablabBackend(written, "adam", 1e-3), TorchBackend(model, "adam", 1e-3)
    loss_ours, loss_theirs = ours_b.train_step(x, y)[0], theirs_b.train_step(x, y)[0]
    assert abs(loss_ours - loss_theirs) < 1e-4 * max(1.0, abs(loss_theirs)), (loss_ours, loss_theirs)
    return (lambda: ours_b.train_step(x, y)), (lambda: theirs_b.train_step(x, y))


def pool_case(rng):
    import torch

    import nablab as nb
    from nablab.nn import functional as F

    x = rng.standard_normal((128, 32, 32, 32)).astype(np.float32)
    g = rng.standard_normal((128, 32, 16, 16)).astype(np.float32)
    xn = nb.tensor(x, requires_grad=True)

    def ours():
        xn.grad = None
        F.max_pool2d(xn, 2).backward(g)

    xt = torch.tensor(x, requires_grad=True)
    gt = torch.from_numpy(g)

    def theirs():
        xt.grad = None
        torch.nn.functional.max_pool2d(xt, 2).backward(gt)

    ours()
    theirs()
    assert np.array_equal(xn.grad.numpy(), xt.grad.numpy()), "max-pool gradients differ from PyTorch"
    return ours, theirs


def cnn1d_case():
    from nablab.data import load_mnist1d
    from nablab.train import NablabBackend, TorchBackend, build_model

    d = load_mnist1d()
    x = d["x_train"][:100, None, :].astype(np.float32)
    y = d["y_train"][:100]
    model = build_model("cnn1d", (1, 40), 10, seed=0, dtype=np.float32)
    ours_b, theirs_b = NablabBackend(model, "adam", 1e-3), TorchBackend(model, "adam", 1e-3)
    return (lambda: ours_b.train_step(x, y)), (lambda: theirs_b.train_step(x, y))


def gemm_gflops(m, k, n, rng, repeat):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    best = min(_time(lambda: a @ b, 0.1) for _ in range(repeat))
    return 2 * m * k * n / best / 1e9


def _peak_bytes(fn):
    """Peak of NumPy's traced allocations during ``fn()`` above what was allocated before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def per_algorithm(fn, check, geo, repeat, ops):
    """Each algorithm that applies to ``geo`` forced on ``fn`` (after ``check()`` under it): best time, peak memory."""
    from nablab.nn import conv_algorithms as ca

    out = {}
    for name in ca.ALGORITHMS:
        if not any(name in ca.applicable(op, geo, np.float32) for op in ops):
            continue
        with ca.use(name):
            check()
            seconds = min(_time(fn, 0.05) for _ in range(max(2, repeat // 2)))
            peak = _peak_bytes(fn)
        out[name] = {"seconds": seconds, "peak_bytes": peak}
    base = out["im2col"]["peak_bytes"]
    for r in out.values():
        r["peak_vs_im2col"] = r["peak_bytes"] / base
    return out


def chosen(geo):
    from nablab.nn import conv_algorithms as ca

    out = {op: ca.choose(op, geo, np.float32) for op in ("forward", "input_grad", "weight_grad")}
    kept = ca.choices().get(("weight_grad from kept columns", geo, "<f4"))
    if kept:  # im2col's columns kept by the forward
        out["weight_grad"] = kept["algorithm"] + " (kept)"
    elif out["weight_grad"] is None:  # never dispatched: it ran on the forward's kept data
        out["weight_grad"] = out["forward"] + " (kept)"
    return out


def run_one(threads, repeat):
    import torch

    from nablab.nn import conv_algorithms as ca

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()

    pairs, meta = {}, {}
    for name, (c, o, size) in CONV_CASES.items():
        fns, flops, check = conv_case(128, c, o, size, rng)
        geo = ca.geometry((128, c, size, size), (o, c, 3, 3), (1, 1), (1, 1), (1, 1), 1)
        pairs[name], meta[name] = fns, (flops, geo, ("forward", "input_grad", "weight_grad"), fns[0], check)
    fns, flops, step = convnet_case(rng)
    pairs[STEP] = fns
    meta[STEP] = (flops, ca.geometry((128, 3, 32, 32), (32, 3, 7, 7), (1, 1), (3, 3), (1, 1), 1),
                  ("forward", "weight_grad"), fns[0], step)
    pairs["  the same, ReLU before pool"] = convnet_written_order_case(rng)
    pairs["max_pool2d 2x2 (128,32,32,32)"] = pool_case(rng)
    pairs["mnist1d cnn step (batch 100)"] = cnn1d_case()
    results = measure(pairs, repeat)

    peak = gemm_gflops(1024, 1024, 1024, rng, repeat)
    for name, (flops, geo, ops, _, _) in meta.items():
        r = results[name]
        r["gflops_nablab"] = flops / r["nablab_s"] / 1e9
        r["gflops_torch"] = flops / r["torch_s"] / 1e9
        r["fraction_of_numpy_gemm_1024"] = r["gflops_nablab"] / peak
        r["torch_fraction_of_numpy_gemm_1024"] = r["gflops_torch"] / peak
        r["algorithm"] = {op: a for op, a in chosen(geo).items() if op in ops}
        r["algorithms_measured_s"] = {c[0]: v["seconds"] for c, v in ca.choices().items() if c[1] == geo}
    for name, (flops, geo, ops, fn, check) in meta.items():
        results[name]["per_algorithm"] = per_algorithm(fn, check, geo, repeat, ops)
    for r in results.values():
        r["ratio"] = r["nablab_s"] / r["torch_s"]
        r["cpu_ratio"] = r["nablab_cpu_s"] / r["torch_cpu_s"]
        r["target"] = TARGET
        r["meets_target"] = r["ratio"] <= TARGET
    return {
        "benchmark": "conv_speed", "dtype": "float32", "threads": threads,
        "torch_num_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "numpy_version": np.__version__, "numpy_gemm_gflops_1024": peak, "repeat": repeat,
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cases": results,
    }


def table(doc, file=sys.stderr):
    print(f"threads: numpy BLAS {doc['threads']} (OPENBLAS_THREAD_TIMEOUT={doc['openblas_thread_timeout']}), "
          f"torch {doc['torch_num_threads']}; NumPy float32 GEMM 1024^3: "
          f"{doc['numpy_gemm_gflops_1024']:.1f} GFLOP/s; load {doc['load_average_before'][0]:.1f} -> "
          f"{doc['load_average_after'][0]:.1f}", file=file)
    print(f"{'case':32} {'nablab ms':>10} {'torch ms':>9} {'ratio':>6} {'CPU r.':>6} {'GFLOP/s':>8} {'of GEMM':>8} "
          f"{'torch':>6}  algorithm (fwd/dx/dw)", file=file)
    for name, r in doc["cases"].items():
        extra = ""
        if "gflops_nablab" in r:
            algos = "/".join(r["algorithm"].get(op) or "-" for op in ("forward", "input_grad", "weight_grad"))
            extra = (f" {r['gflops_nablab']:8.1f} {100 * r['fraction_of_numpy_gemm_1024']:7.0f}% "
                     f"{100 * r['torch_fraction_of_numpy_gemm_1024']:5.0f}%  {algos}")
        flag = "" if r["meets_target"] else "  > target"
        print(f"{name:32} {1e3 * r['nablab_s']:10.2f} {1e3 * r['torch_s']:9.2f} {r['ratio']:6.2f} "
              f"{r['cpu_ratio']:6.2f}{extra}{flag}", file=file)
    print("per algorithm forced (one forward+backward, or one training step): ms, peak MB, peak / im2col's", file=file)
    for name, r in doc["cases"].items():
        for algo, a in r.get("per_algorithm", {}).items():
            print(f"  {name:32} {algo:17} {1e3 * a['seconds']:8.2f} ms {a['peak_bytes'] / 2**20:8.1f} MB "
                  f"{a['peak_vs_im2col']:5.2f}x", file=file)


def main():
    repeat = 3 if ARGS.quick else ARGS.repeat
    if SINGLE:
        doc = run_one(int(ARGS.threads), repeat)
        print(json.dumps(doc, indent=2))
        table(doc)
        return
    docs = []
    for threads in (int(t) for t in ARGS.threads.split(",")):
        cmd = [sys.executable, __file__, "--threads", str(threads), "--repeat", str(repeat)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"conv_speed: the run with {threads} thread(s) failed (status {done.returncode})")
        doc = json.loads(done.stdout)
        docs.append(doc)
        table(doc)
        print(file=sys.stderr)
    print(json.dumps({"benchmark": "conv_speed", "runs": docs}, indent=2))


if __name__ == "__main__":
    main()
