"""vmap against a Python loop and against torch.func, on the two jobs of issue 15.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/transforms.py [--quick]

What is timed (float64 everywhere, torch at one thread like the NumPy it is compared with):

- ``per-example gradients``: the gradient of a cross-entropy loss of an MLP 784-256-10
  (tanh) for each of 256 examples, with respect to all four parameter arrays:
  ``nb.vmap(nb.grad(loss), in_axes=(None, 0, 0))``; a Python loop over ``nb.grad(loss)``;
  ``torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))``.
- ``jacrev R^100 -> R^100``: the Jacobian of ``x -> tanh(A x) * x + sin(x)``: ``nb.jacrev``
  (one batched reverse pass through vmap), ``nb.jacrev`` with one VJP per row (the loop,
  ``transforms.VMAP_FROM`` set above 100), ``torch.func.jacrev``; and the same for
  ``jacfwd`` (vmap over JVPs, the loop, ``torch.func.jacfwd``).
- ``per-example gradients, MLP 64-32-10``: the same with a small network, where a loop's
  per-op overhead, not the arithmetic, is the cost.
- ``hessian R^100 -> R``: ``nb.hessian`` (forward over reverse: vmapped JVPs of the vmapped
  VJPs) against the same with loops, and ``torch.func.hessian``.
- ``checkpoint``: peak memory (tracemalloc) and time of the reverse pass through an MLP of 64
  tanh layers 128 wide, batch 256: plain ``nb.grad``; every layer one ``nb.checkpoint``; every 8
  layers one checkpoint. The gradients are checked against the plain ones.

Every result is checked against the loop (max abs difference printed). Timing: the
minimum over repeats (7, or 3 with --quick) of one call each, after a warm-up call.
JSON goes to stdout, a readable table to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import nablab as nb
from nablab.autodiff import transforms

try:
    import torch
    import torch.func
except ImportError:  # pragma: no cover
    torch = None


def best_of(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def mlp_problem(rng, batch=256, sizes=(784, 256, 10)):
    d, h, c = sizes
    params = {
        "W1": rng.normal(size=(d, h)) / np.sqrt(d), "b1": np.zeros(h),
        "W2": rng.normal(size=(h, c)) / np.sqrt(h), "b2": np.zeros(c),
    }
    x = rng.normal(size=(batch, d))
    y = np.eye(c)[rng.integers(0, c, size=batch)]
    return params, x, y


def loss(p, x, y):
    h = nb.tanh(x @ p["W1"] + p["b1"])
    z = h @ p["W2"] + p["b2"]
    return -nb.sum(y * nb.log_softmax(z))


def torch_loss(p, x, y):
    h = torch.tanh(x @ p["W1"] + p["b1"])
    z = h @ p["W2"] + p["b2"]
    return -torch.sum(y * torch.log_softmax(z, dim=-1))


def per_example(repeats, sizes=(784, 256, 10)):
    rng = np.random.default_rng(0)
    params, x, y = mlp_problem(rng, sizes=sizes)
    g = nb.grad(loss)
    vm = nb.vmap(g, in_axes=(None, 0, 0))
    out = {}
    ref = [g(params, xi, yi) for xi, yi in zip(x, y)]
    got = vm(params, x, y)
    out["max_abs_diff_vmap_vs_loop"] = max(float(np.max(np.abs(got[k] - np.stack([r[k] for r in ref]))))
                                           for k in params)
    out["nablab_vmap_s"] = best_of(lambda: vm(params, x, y), repeats)
    out["nablab_loop_s"] = best_of(lambda: [g(params, xi, yi) for xi, yi in zip(x, y)], max(1, repeats // 2))
    if torch is not None:
        tp = {k: torch.tensor(v) for k, v in params.items()}
        tx, ty = torch.tensor(x), torch.tensor(y)
        tv = torch.func.vmap(torch.func.grad(torch_loss), in_dims=(None, 0, 0))
        tgot = tv(tp, tx, ty)
        out["max_abs_diff_torch_vs_nablab"] = max(float(np.max(np.abs(tgot[k].numpy() - got[k]))) for k in params)
        out["torch_vmap_s"] = best_of(lambda: tv(tp, tx, ty), repeats)
    return out


def jacobian_problem(rng, n=100):
    return rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n)


def jacobians(repeats):
    rng = np.random.default_rng(1)
    A, x = jacobian_problem(rng)
    f = lambda v: nb.tanh(A @ v) * v + nb.sin(v)
    out = {}
    for mode, jac in (("jacrev", nb.jacrev), ("jacfwd", nb.jacfwd)):
        J = jac(f)(x)
        saved = transforms.VMAP_FROM
        transforms.VMAP_FROM = 10 ** 9
        try:
            J_loop = jac(f)(x)
            out[f"{mode}_loop_s"] = best_of(lambda: jac(f)(x), repeats)
        finally:
            transforms.VMAP_FROM = saved
        out[f"{mode}_max_abs_diff_vmap_vs_loop"] = float(np.max(np.abs(J - J_loop)))
        out[f"{mode}_vmap_s"] = best_of(lambda: jac(f)(x), repeats)
        if torch is not None:
            tA, tx = torch.tensor(A), torch.tensor(x)
            tf = lambda v: torch.tanh(tA @ v) * v + torch.sin(v)
            tjac = getattr(torch.func, mode)(tf)
            out[f"{mode}_max_abs_diff_torch_vs_nablab"] = float(np.max(np.abs(tjac(tx).numpy() - J)))
            out[f"{mode}_torch_s"] = best_of(lambda: tjac(tx), repeats)
    return out


# -- nb.checkpoint: memory and time of the reverse pass (the checkpoint part of issue 15) --


def hessians(repeats, n=100):
    """The Hessian of x -> sum(tanh(A x)^2) + sum(x^4) on R^100 (forward over reverse)."""
    rng = np.random.default_rng(2)
    A = rng.normal(size=(n, n)) / np.sqrt(n)
    x = rng.normal(size=n)
    f = lambda v: nb.sum(nb.tanh(A @ v) ** 2) + nb.sum(v ** 4)  # noqa: E731
    out = {}
    H = nb.hessian(f)(x)
    saved = transforms.VMAP_FROM
    transforms.VMAP_FROM = 10 ** 9
    try:
        H_loop = nb.hessian(f)(x)
        out["hessian_loop_s"] = best_of(lambda: nb.hessian(f)(x), max(1, repeats // 2))
    finally:
        transforms.VMAP_FROM = saved
    out["hessian_max_abs_diff_vmap_vs_loop"] = float(np.max(np.abs(H - H_loop)))
    out["hessian_vmap_s"] = best_of(lambda: nb.hessian(f)(x), repeats)
    if torch is not None:
        tA, tx = torch.tensor(A), torch.tensor(x)
        th = torch.func.hessian(lambda v: torch.sum(torch.tanh(tA @ v) ** 2) + torch.sum(v ** 4))
        out["hessian_max_abs_diff_torch_vs_nablab"] = float(np.max(np.abs(th(tx).numpy() - H)))
        out["hessian_torch_s"] = best_of(lambda: th(tx), repeats)
    return out


def print_per_example(pe, title, err):
    print(f"{title} (min over repeats)", file=err)
    print(f"  nablab vmap(grad)      {pe['nablab_vmap_s'] * 1e3:9.2f} ms", file=err)
    print(f"  nablab loop over grad  {pe['nablab_loop_s'] * 1e3:9.2f} ms", file=err)
    if "torch_vmap_s" in pe:
        print(f"  torch.func vmap(grad)  {pe['torch_vmap_s'] * 1e3:9.2f} ms", file=err)
    print(f"  loop / vmap            {pe['nablab_loop_s'] / pe['nablab_vmap_s']:9.2f}x", file=err)
    if "torch_vmap_s" in pe:
        print(f"  nablab vmap / torch    {pe['nablab_vmap_s'] / pe['torch_vmap_s']:9.2f}x", file=err)
    print(f"  max |vmap - loop| {pe['max_abs_diff_vmap_vs_loop']:.1e}"
          + (f", |torch - nablab| {pe['max_abs_diff_torch_vs_nablab']:.1e}" if "torch_vmap_s" in pe else ""),
          file=err)


def checkpoint_mlp(rng, depth=64, width=128, batch=256):
    params = [(rng.normal(size=(width, width)) / np.sqrt(width), np.zeros(width)) for _ in range(depth)]
    return params, rng.normal(size=(batch, width))


def _mlp_layer(W, b, h):
    return nb.tanh(h @ W + b)


def _mlp_segment(layers, h):
    for W, b in layers:
        h = _mlp_layer(W, b, h)
    return h


def checkpoint_memory(repeats, depth=64, width=128, batch=256, every=8):
    """Peak memory (tracemalloc) and time of the reverse pass through a deep MLP, with and without nb.checkpoint.

    ``none``: plain ``nb.grad``; ``each layer``: every layer one ``nb.checkpoint``; ``every k``: each k layers
    one checkpoint (memory O(depth / k + k)). Peak is the traced peak of one ``grad`` call less the memory
    before it (the parameters and input exist already); time is the minimum over repeats without tracemalloc.
    """
    import gc
    import tracemalloc

    params, x = checkpoint_mlp(np.random.default_rng(0), depth, width, batch)
    layer = nb.checkpoint(_mlp_layer)
    segment = nb.checkpoint(_mlp_segment)

    def plain(p):
        h = x
        for W, b in p:
            h = _mlp_layer(W, b, h)
        return nb.sum(h ** 2)

    def each_layer(p):
        h = x
        for W, b in p:
            h = layer(W, b, h)
        return nb.sum(h ** 2)

    def every_k(p):
        h = x
        for i in range(0, len(p), every):
            h = segment(p[i:i + every], h)
        return nb.sum(h ** 2)

    out = {"depth": depth, "width": width, "batch": batch, "every": every,
           "activation_bytes": batch * width * 8, "parameter_bytes": depth * (width * width + width) * 8}
    reference = None
    for name, fn in (("none", plain), ("each layer", each_layer), (f"every {every}", every_k)):
        g = nb.grad(fn)
        result = g(params)
        if reference is None:
            reference = result
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(nb.tree_leaves(result), nb.tree_leaves(reference)))
        del result
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        g(params)
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        out[name] = {"peak_bytes": peak, "seconds": best_of(lambda: g(params), repeats),
                     "max_abs_diff_vs_none": diff}
    return out


def print_checkpoint(ck, err):
    print(f"checkpoint: reverse pass through an MLP of {ck['depth']} layers {ck['width']} wide, batch "
          f"{ck['batch']} (one activation {ck['activation_bytes'] / 2**20:.2f} MiB; every peak holds the gradient "
          f"and grad's read-only copy of the parameters, 2 x {ck['parameter_bytes'] / 2**20:.1f} MiB)", file=err)
    base = ck["none"]
    for name in ("none", "each layer", f"every {ck['every']}"):
        r = ck[name]
        print(f"  {name:<12} peak {r['peak_bytes'] / 2**20:8.1f} MiB ({r['peak_bytes'] / base['peak_bytes']:5.2f}x)"
              f"   time {r['seconds'] * 1e3:8.1f} ms ({r['seconds'] / base['seconds']:5.2f}x)"
              f"   max |g - g_none| {r['max_abs_diff_vs_none']:.1e}", file=err)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    if torch is not None:
        torch.set_num_threads(1)
    result = {"openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "repeats": repeats,
              "load_before": os.getloadavg()}
    result["per_example"] = pe = per_example(repeats)
    result["per_example_small"] = pe_small = per_example(repeats, sizes=(64, 32, 10))
    result["jacobians"] = jc = jacobians(repeats)
    result["hessian"] = hs = hessians(repeats)
    result["checkpoint"] = ck = checkpoint_memory(repeats)
    result["load_after"] = os.getloadavg()
    err = sys.stderr
    print_per_example(pe, "per-example gradients, MLP 784-256-10, batch 256", err)
    print_per_example(pe_small, "per-example gradients, MLP 64-32-10, batch 256 (the loop's overhead shows)", err)
    for mode in ("jacrev", "jacfwd"):
        print(f"{mode} of R^100 -> R^100", file=err)
        print(f"  nablab (vmap)          {jc[f'{mode}_vmap_s'] * 1e3:9.2f} ms", file=err)
        print(f"  nablab (loop)          {jc[f'{mode}_loop_s'] * 1e3:9.2f} ms", file=err)
        if f"{mode}_torch_s" in jc:
            print(f"  torch.func.{mode}      {jc[f'{mode}_torch_s'] * 1e3:9.2f} ms", file=err)
        print(f"  loop / vmap            {jc[f'{mode}_loop_s'] / jc[f'{mode}_vmap_s']:9.2f}x", file=err)
        if f"{mode}_torch_s" in jc:
            print(f"  nablab / torch         {jc[f'{mode}_vmap_s'] / jc[f'{mode}_torch_s']:9.2f}x", file=err)
        print(f"  max |vmap - loop| {jc[f'{mode}_max_abs_diff_vmap_vs_loop']:.1e}"
              + (f", |torch - nablab| {jc[f'{mode}_max_abs_diff_torch_vs_nablab']:.1e}"
                 if f"{mode}_torch_s" in jc else ""), file=err)
    print("hessian of R^100 -> R, forward over reverse", file=err)
    print(f"  nablab (vmap)          {hs['hessian_vmap_s'] * 1e3:9.2f} ms", file=err)
    print(f"  nablab (loop)          {hs['hessian_loop_s'] * 1e3:9.2f} ms", file=err)
    if "hessian_torch_s" in hs:
        print(f"  torch.func.hessian     {hs['hessian_torch_s'] * 1e3:9.2f} ms", file=err)
    print(f"  loop / vmap            {hs['hessian_loop_s'] / hs['hessian_vmap_s']:9.2f}x", file=err)
    if "hessian_torch_s" in hs:
        print(f"  nablab / torch         {hs['hessian_vmap_s'] / hs['hessian_torch_s']:9.2f}x", file=err)
    print(f"  max |vmap - loop| {hs['hessian_max_abs_diff_vmap_vs_loop']:.1e}"
          + (f", |torch - nablab| {hs['hessian_max_abs_diff_torch_vs_nablab']:.1e}" if "hessian_torch_s" in hs
             else ""), file=err)
    print_checkpoint(ck, err)
    json.dump(result, sys.stdout, indent=1)
    print(file=sys.stdout)


if __name__ == "__main__":
    main()
