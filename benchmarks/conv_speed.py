"""Convolution, pooling and a training step: nablab against PyTorch on the CPU, in one run.

    .venv/bin/python benchmarks/conv_speed.py [--threads N] [--quick]

What is timed (float32, both libraries given the same arrays, same thread count):

- ``conv2d 3->32 @32x32`` and ``conv2d 32->64 @16x16``: batch 128, kernel 3,
  padding 1, forward then backward with a fixed output cotangent, giving the
  input, weight and bias gradients (nablab: ``nablab.tensor(...,
  requires_grad=True)`` and ``.backward(g)``; PyTorch: the same in eager mode).
  FLOPs counted: forward ``2 N O Ho Wo C k k``; backward twice that (input and
  weight gradients), so 3x the forward in all.  nablab's GFLOP/s is shown as a
  fraction of NumPy's float32 GEMM GFLOP/s on 1024 x 1024 x 1024, measured in
  this run (and of a GEMM with the convolution's own shape, for context).
- ``max_pool2d 2x2``: forward and backward on (128, 32, 32, 32).
- ``mnist1d cnn step``: one training step (batch 100, Adam) of the MNIST-1D CNN:
  zero_grad, forward, cross-entropy, backward, optimizer step
  (:class:`nablab.train.NablabBackend` against its PyTorch replica).

The thread count of NumPy's BLAS is fixed through the environment before NumPy
is imported (``--threads``, default 1), and PyTorch's with ``torch.set_num_threads``.
Every case runs ``--repeat`` times (interleaved between the libraries so a burst
of load from other processes hits both); the headline is the minimum over runs,
the median is in the JSON too, with the load average before and after.

JSON goes to stdout, a readable table to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads for NumPy's BLAS and for PyTorch (default 1)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per case (default 7)")
    p.add_argument("--quick", action="store_true", help="3 runs per case")
    return p.parse_args()


ARGS = _args() if __name__ == "__main__" else None
if ARGS is not None:  # must happen before NumPy is imported
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nablab as nb  # noqa: E402
from nablab.nn import functional as F  # noqa: E402

TARGET = 1.5


def _time(fn, min_time=0.05):
    """Mean seconds per call over enough calls to last ``min_time``."""
    fn()
    n, total = 0, 0.0
    while total < min_time:
        start = time.perf_counter()
        fn()
        total += time.perf_counter() - start
        n += 1
    return total / n


def measure(pairs, repeat):
    """``pairs``: name -> (nablab_fn, torch_fn). Interleaved runs; min and median per side."""
    runs = {name: ([], []) for name in pairs}
    for _ in range(repeat):
        for name, (ours, theirs) in pairs.items():
            runs[name][0].append(_time(ours))
            runs[name][1].append(_time(theirs))
    return {name: {"nablab_s": min(a), "torch_s": min(b), "nablab_median_s": statistics.median(a),
                   "torch_median_s": statistics.median(b)} for name, (a, b) in runs.items()}


def conv_case(n, c, o, size, rng):
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

    # same numbers first
    ours()
    theirs()
    for mine, ref in ((xn, xt), (wn, wt), (bn, bt)):
        ref_grad = ref.grad.numpy()
        err = np.max(np.abs(mine.grad.numpy() - ref_grad)) / (np.max(np.abs(ref_grad)) + 1e-30)
        assert err < 1e-4, f"conv gradients differ from PyTorch by {err:.2e} (relative)"
    flops = 3 * 2 * n * o * size * size * c * 9
    gemm_shape = (o, c * 9, n * size * size)
    return (ours, theirs), flops, gemm_shape


def pool_case(rng):
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


def cnn_step_case(rng):
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


def main():
    repeat = 3 if ARGS.quick else ARGS.repeat
    torch.set_num_threads(ARGS.threads)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()

    conv_pairs, conv_meta = {}, {}
    for name, (c, o, size) in {"conv2d 3->32 @32x32": (3, 32, 32), "conv2d 32->64 @16x16": (32, 64, 16)}.items():
        fns, flops, gemm_shape = conv_case(128, c, o, size, rng)
        conv_pairs[name], conv_meta[name] = fns, (flops, gemm_shape)
    pairs = dict(conv_pairs)
    pairs["max_pool2d 2x2 (128,32,32,32)"] = pool_case(rng)
    pairs["mnist1d cnn step (batch 100)"] = cnn_step_case(rng)
    results = measure(pairs, repeat)

    peak = gemm_gflops(1024, 1024, 1024, rng, repeat)
    for name, (flops, (m, k, n)) in conv_meta.items():
        r = results[name]
        r["gflops_nablab"] = flops / r["nablab_s"] / 1e9
        r["gflops_torch"] = flops / r["torch_s"] / 1e9
        r["fraction_of_numpy_gemm_1024"] = r["gflops_nablab"] / peak
        shaped = gemm_gflops(m, k, n, rng, repeat)
        r["numpy_gemm_gflops_at_conv_shape"] = {"shape (M, K, N)": [m, k, n], "gflops": shaped}
    for r in results.values():
        r["ratio"] = r["nablab_s"] / r["torch_s"]
        r["target"] = TARGET
        r["meets_target"] = r["ratio"] <= TARGET

    doc = {
        "benchmark": "conv_speed", "dtype": "float32", "threads": ARGS.threads,
        "torch_num_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "numpy_version": np.__version__, "numpy_gemm_gflops_1024": peak, "repeat": repeat,
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cases": results,
    }
    print(json.dumps(doc, indent=2))
    print(f"threads: numpy BLAS {ARGS.threads}, torch {torch.get_num_threads()}; NumPy float32 GEMM 1024^3: "
          f"{peak:.1f} GFLOP/s; load {load_before[0]:.1f} -> {doc['load_average_after'][0]:.1f}", file=sys.stderr)
    print(f"{'case':34} {'nablab ms':>10} {'torch ms':>10} {'ratio':>6}  {'GFLOP/s':>8} {'of GEMM':>8}", file=sys.stderr)
    for name, r in results.items():
        extra = (f"  {r['gflops_nablab']:8.1f} {100 * r['fraction_of_numpy_gemm_1024']:7.0f}%"
                 if "gflops_nablab" in r else "")
        flag = "" if r["meets_target"] else "  > target"
        print(f"{name:34} {1e3 * r['nablab_s']:10.2f} {1e3 * r['torch_s']:10.2f} {r['ratio']:6.2f}{extra}{flag}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
