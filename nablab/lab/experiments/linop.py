"""Claim about matrix-free operators: the seed's GD loop with a Convolution1d object."""

from __future__ import annotations

import time
import tracemalloc

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nablab.lab.registry import Context, Result, experiment  # noqa: E402


def huber(y):
    """l(y) = sum h(y_i), h = y^2/2 for |y| <= 1 and |y| - 1/2 otherwise (seed 001, Problem 5)."""
    a = np.abs(y)
    return float(np.sum(np.where(a <= 1, 0.5 * y * y, a - 0.5)))


def huber_grad(y):
    return np.clip(y, -1.0, 1.0)


def seed_loop(A, b, x, alpha, lam):
    """The seed's 100-step loop, unchanged."""
    for _ in range(100) :
        x = x - alpha*(A.T@(huber_grad(A@x-b))+lam*x)
    return x


def seed_dense_matrix(k, n):
    """The seed's naive construction: circulant(concat(flip(k), zeros(n - r)))[r-1:, :]."""
    from scipy.linalg import circulant

    r = len(k)
    return circulant(np.concatenate((np.flip(k), np.zeros(n - r))))[r - 1:, :]


def _timed(f, repeat: int = 3):
    """(result, best seconds of ``repeat`` runs, tracemalloc peak bytes of one more run)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    f()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, best, peak


@experiment("linop.conv1d-gd", title="Gradient descent with a matrix-free 1-D convolution")
def conv1d_gd(ctx: Context) -> Result:
    try:
        from nablab.linop import Convolution1d, TransposedConvolution1d, dottest
    except ImportError as e:  # SciPy is the linop extra
        raise RuntimeError("nablab.linop needs SciPy: pip install 'nablab[linop]'") from e

    rng = ctx.rng()
    n, r = ctx.param("n", 1000 if ctx.quick else 4000), ctx.param("r", 7)
    lam = ctx.param("lam", 0.1)
    k = rng.standard_normal(r)
    b = 2.0 * rng.standard_normal(n - r + 1)
    alpha = ctx.param("alpha", 1.0 / (np.sum(np.abs(k)) ** 2 + lam))  # ||A||_2 <= ||k||_1
    x0 = np.zeros(n)

    A = Convolution1d(k, n)
    D = seed_dense_matrix(k, n)
    x_op, t_op, peak_op = _timed(lambda: seed_loop(A, b, x0, alpha, lam))
    x_dense, t_dense, peak_dense = _timed(lambda: seed_loop(D, b, x0, alpha, lam), repeat=1)
    max_diff = float(np.max(np.abs(x_op - x_dense)))
    rel_diff = max_diff / float(np.max(np.abs(x_dense)))

    # The objective along the way (the same update, one step at a time), both ways.
    def path(M):
        f = lambda x: huber(M @ x - b) + lam / 2 * float(x @ x)
        values, x = [f(x0)], x0
        for _ in range(100):
            x = x - alpha * (M.T @ huber_grad(M @ x - b) + lam * x)
            values.append(f(x))
        return values

    curve, dense_curve = path(A), path(D)

    # Cost of the 100 steps as n grows: operator always, dense matrix while it is small.
    sizes = [500, 1000] if ctx.quick else [500, 1000, 2000, 4000, 10**4, 10**5, 10**6]
    scaling = []
    for m in sizes:
        km, bm = rng.standard_normal(r), rng.standard_normal(m - r + 1)
        am = 1.0 / (np.sum(np.abs(km)) ** 2 + lam)
        _, t1, p1 = _timed(lambda: seed_loop(Convolution1d(km, m), bm, np.zeros(m), am, lam),
                           repeat=1 if m > 10**5 else 3)
        row = {"n": m, "operator_s": t1, "operator_peak_bytes": p1}
        if m <= 4000:
            Dm = seed_dense_matrix(km, m)
            _, t2, p2 = _timed(lambda: seed_loop(Dm, bm, np.zeros(m), am, lam), repeat=1)
            row.update(dense_s=t2, dense_matrix_bytes=Dm.nbytes, dense_loop_peak_bytes=p2)
        scaling.append(row)

    matches = bool(np.allclose(x_op, x_dense, rtol=1e-10, atol=1e-12))
    ctx.check(matches, f"the loop with Convolution1d and with the dense matrix differ by {max_diff:.3g} "
                       f"(relative {rel_diff:.3g}), beyond rtol 1e-10, atol 1e-12")
    adjoint_ok = dottest(A) and dottest(A.T)
    ctx.check(adjoint_ok, f"Convolution1d(k, n = {n}) or its transpose fails the dot test <Ax, y> = <x, A^T y>")
    shapes_ok = isinstance(A.T, TransposedConvolution1d) and A.shape == D.shape
    ctx.check(shapes_ok, f"A.T is a {type(A.T).__name__} (expected TransposedConvolution1d); "
                         f"A.shape = {A.shape}, the dense matrix's {D.shape}")
    never_dense = peak_op < D.nbytes / 10
    ctx.check(never_dense, f"the matrix-free loop's peak memory, {peak_op} bytes, is not below a tenth "
                           f"of the dense matrix's {D.nbytes} bytes")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(curve, lw=3, alpha=0.6, label="Convolution1d (matrix-free)")
    ax1.plot(dense_curve, "k--", lw=1, label="dense matrix")
    ax1.set_xlabel("step")
    ax1.set_ylabel("Huber(Ax - b) + lam/2 ||x||^2")
    ax1.set_title(f"the seed's loop, n = {n}, r = {r}", fontsize=9)
    ax1.legend(fontsize=8)
    ns = [row["n"] for row in scaling]
    ax2.loglog(ns, [row["operator_s"] for row in scaling], "o-", label="Convolution1d")
    dense_rows = [row for row in scaling if "dense_s" in row]
    ax2.loglog([row["n"] for row in dense_rows], [row["dense_s"] for row in dense_rows], "s-",
               label="dense (n - r + 1) x n matrix")
    ax2.set_xlabel("n")
    ax2.set_ylabel("seconds for 100 steps")
    ax2.legend(fontsize=8)
    ax2.set_title("time of the loop", fontsize=9)
    fig.tight_layout()
    figure = ctx.savefig(fig, "gd")

    return Result(
        status="reproduced",
        computed={
            "n": n, "r": r, "alpha": alpha, "lam": lam,
            "max_abs_difference_operator_vs_dense": max_diff,
            "relative_difference": rel_diff,
            "objective_start_end": [curve[0], curve[-1]],
            "objective_max_difference_operator_vs_dense": float(np.max(np.abs(np.subtract(curve, dense_curve)))),
            "operator_loop_s": t_op, "dense_loop_s": t_dense,
            "operator_loop_peak_bytes": peak_op, "dense_matrix_bytes": int(D.nbytes),
            "dense_loop_peak_bytes": peak_dense,
            "dot_test": bool(adjoint_ok), "scaling": scaling,
        },
        summary=(
            f"The seed's loop runs unchanged with A = Convolution1d(k, n) (n = {n}, r = {r}): after 100 "
            f"steps x differs from the dense computation by at most {max_diff:.1e} (relative "
            f"{rel_diff:.1e}); the objective falls from {curve[0]:.4g} to {curve[-1]:.4g}. A @ x is "
            f"numpy.correlate(x, k, 'valid') and A.T @ y numpy.convolve(y, k, 'full'): the loop's "
            f"peak memory was {peak_op / 2**10:.0f} KiB against {D.nbytes / 2**20:.1f} MiB for the "
            f"matrix, and it took {t_op * 1e3:.1f} ms against {t_dense * 1e3:.1f} ms dense. "
            "A passes the dot test <Ax, y> = <x, A^T y>."),
        seed_says=("Seed 001 asks for __matmul__ methods so that the 100-step loop runs without "
                   "modification and without creating an (n-r+1) x n array; it gives no numbers "
                   "(its solution is a separate file)."),
        figures=[figure],
    )
