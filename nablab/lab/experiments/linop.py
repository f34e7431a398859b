"""linop.conv1d-gd: the 100-step gradient loop of Huber(Ax - b) + lam/2 ||x||^2 with a matrix-free A."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from nablab.lab.registry import Context, compute, figure


def huber(y):
    """l(y) = sum h(y_i), h = y^2/2 for |y| <= 1 and |y| - 1/2 otherwise."""
    a = np.abs(y)
    return float(np.sum(np.where(a <= 1, 0.5 * y * y, a - 0.5)))


def huber_grad(y):
    return np.clip(y, -1.0, 1.0)


def gd_loop(A, b, x, alpha, lam):
    """The problem's 100-step loop, written exactly as the problem set gives it."""
    for _ in range(100) :
        x = x - alpha*(A.T@(huber_grad(A@x-b))+lam*x)
    return x


def dense_matrix(k, n):
    """The naive construction the problem set starts from: circulant(concat(flip(k), zeros(n - r)))[r-1:, :]."""
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


@dataclass
class Conv1dGD:
    n: int
    r: int
    lam: float
    alpha: float
    operator_shape: tuple          # slot: (n - r + 1, n)
    matches_dense: bool            # slot: the loop gives the dense computation's x (rtol 1e-10, atol 1e-12)
    matrix_free: bool              # slot: the loop never forms the (n - r + 1) x n matrix
    max_abs_difference: float      # operator loop against the dense loop, after 100 steps
    relative_difference: float
    objective_start_end: list
    objective_max_difference: float
    operator_loop_s: float
    dense_loop_s: float
    operator_loop_peak_bytes: int
    dense_matrix_bytes: int
    dense_loop_peak_bytes: int
    dot_test: bool
    scaling: list                  # per n: seconds (and bytes) of the loop, operator and dense
    objective: list = field(default_factory=list, repr=False, metadata={"report": False})
    dense_objective: list = field(default_factory=list, repr=False, metadata={"report": False})

    def summary(self) -> str:
        start, end = self.objective_start_end
        return (
            f"The problem's loop runs unchanged with A = Convolution1d(k, n) ($n = {self.n}$, $r = {self.r}$): after "
            f"100 steps $x$ differs from the dense computation by at most {self.max_abs_difference:.1e} (relative "
            f"{self.relative_difference:.1e}); the objective falls from {start:.4g} to {end:.4g}. A @ x is "
            "numpy.correlate(x, k, 'valid') and A.T @ y numpy.convolve(y, k, 'full'): the loop's peak memory "
            f"was {self.operator_loop_peak_bytes / 2**10:.0f} KiB against {self.dense_matrix_bytes / 2**20:.1f} "
            f"MiB for the matrix, and it took {self.operator_loop_s * 1e3:.1f} ms against "
            f"{self.dense_loop_s * 1e3:.1f} ms dense. $A$ passes the dot test "
            "$\\langle Ax, y \\rangle = \\langle x, A^\\top y \\rangle$.")


@compute("linop.conv1d-gd")
def conv1d_gd(run: Context) -> Conv1dGD:
    try:
        from nablab.linop import Convolution1d, TransposedConvolution1d, dottest
    except ImportError as e:  # SciPy is the linop extra
        raise RuntimeError("nablab.linop needs SciPy: pip install 'nablab[linop]'") from e

    rng = run.rng()
    n, r, lam = run.params["n"], run.params["r"], run.params["lam"]
    k = rng.standard_normal(r)
    b = 2.0 * rng.standard_normal(n - r + 1)
    alpha = run.params["alpha"] or 1.0 / (np.sum(np.abs(k)) ** 2 + lam)  # ||A||_2 <= ||k||_1
    x0 = np.zeros(n)

    A = Convolution1d(k, n)
    D = dense_matrix(k, n)
    parts = 3 + len(run.params["sizes"])
    run.progress(0, parts, f"the loop with Convolution1d, n = {n}")
    x_op, t_op, peak_op = _timed(lambda: gd_loop(A, b, x0, alpha, lam))
    run.progress(1, parts, f"the loop with the dense matrix, n = {n}")
    x_dense, t_dense, peak_dense = _timed(lambda: gd_loop(D, b, x0, alpha, lam), repeat=1)
    run.progress(2, parts, "the objective along the way")
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

    # Cost of the 100 steps as n grows: operator always, dense matrix while it is small
    # (at n itself, the loops above were just timed).
    scaling = []
    for i, m in enumerate(run.params["sizes"]):
        run.progress(3 + i, parts, f"the loop's time at n = {m}")
        if m == n:
            row = {"n": n, "operator_s": t_op, "operator_peak_bytes": peak_op}
            if n <= run.params["dense_up_to"]:
                row.update(dense_s=t_dense, dense_matrix_bytes=D.nbytes, dense_loop_peak_bytes=peak_dense)
            scaling.append(row)
            continue
        km, bm = rng.standard_normal(r), rng.standard_normal(m - r + 1)
        am = 1.0 / (np.sum(np.abs(km)) ** 2 + lam)
        _, t1, p1 = _timed(lambda km=km, m=m, bm=bm, am=am: gd_loop(Convolution1d(km, m), bm, np.zeros(m), am, lam),
                           repeat=1 if m > 10**5 else 3)
        row = {"n": m, "operator_s": t1, "operator_peak_bytes": p1}
        if m <= run.params["dense_up_to"]:
            Dm = dense_matrix(km, m)
            _, t2, p2 = _timed(lambda Dm=Dm, m=m, bm=bm, am=am: gd_loop(Dm, bm, np.zeros(m), am, lam), repeat=1)
            row.update(dense_s=t2, dense_matrix_bytes=Dm.nbytes, dense_loop_peak_bytes=p2)
        scaling.append(row)
    run.progress(parts, parts, "checks")

    matches = bool(np.allclose(x_op, x_dense, rtol=1e-10, atol=1e-12))
    run.check(matches, f"the loop with Convolution1d and with the dense matrix differ by {max_diff:.3g} "
                       f"(relative {rel_diff:.3g}), beyond rtol 1e-10, atol 1e-12")
    adjoint_ok = bool(dottest(A) and dottest(A.T))
    run.check(adjoint_ok, f"Convolution1d(k, n = {n}) or its transpose fails the dot test <Ax, y> = <x, A^T y>")
    shapes_ok = isinstance(A.T, TransposedConvolution1d) and A.shape == D.shape
    run.check(shapes_ok, f"A.T is a {type(A.T).__name__} (expected TransposedConvolution1d); "
                         f"A.shape = {A.shape}, the dense matrix's {D.shape}")
    never_dense = bool(peak_op < D.nbytes / 10)
    run.check(never_dense, f"the matrix-free loop's peak memory, {peak_op} bytes, is not below a tenth "
                           f"of the dense matrix's {D.nbytes} bytes")

    return Conv1dGD(
        n=n, r=r, lam=lam, alpha=float(alpha), operator_shape=tuple(A.shape), matches_dense=matches,
        matrix_free=never_dense, max_abs_difference=max_diff, relative_difference=rel_diff,
        objective_start_end=[curve[0], curve[-1]],
        objective_max_difference=float(np.max(np.abs(np.subtract(curve, dense_curve)))),
        operator_loop_s=t_op, dense_loop_s=t_dense, operator_loop_peak_bytes=peak_op,
        dense_matrix_bytes=int(D.nbytes), dense_loop_peak_bytes=peak_dense, dot_test=adjoint_ok,
        scaling=scaling, objective=curve, dense_objective=dense_curve,
    )


@figure("linop.conv1d-gd")
def conv1d_gd_figure(result: Conv1dGD, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(result.objective, lw=3, alpha=0.6, label="Convolution1d (matrix-free)")
    ax1.plot(result.dense_objective, "k--", lw=1, label="dense matrix")
    ax1.set_xlabel("step")
    ax1.set_ylabel(r"$\mathrm{Huber}(Ax - b) + (\lambda/2) \|x\|^2$")
    ax1.set_title(f"the problem's loop, $n = {result.n}$, $r = {result.r}$", fontsize=9)
    ax1.legend(fontsize=8)
    rows = result.scaling
    ax2.loglog([row["n"] for row in rows], [row["operator_s"] for row in rows], "o-", label="Convolution1d")
    dense_rows = [row for row in rows if "dense_s" in row]
    ax2.loglog([row["n"] for row in dense_rows], [row["dense_s"] for row in dense_rows], "s-",
               label=r"dense $(n - r + 1) \times n$ matrix")
    ax2.set_xlabel("$n$")
    ax2.set_ylabel("seconds for 100 steps")
    ax2.legend(fontsize=8)
    ax2.set_title("time of the loop", fontsize=9)
    fig.tight_layout()
    start, end = result.objective_start_end
    sizes = ", ".join(str(row["n"]) for row in rows)
    run.savefig(fig, "gd", alt=(
        f"Left: the objective over the 100 steps for $n = {result.n}$, falling from {start:.4g} to {end:.4g}, the "
        "matrix-free and the dense curves on top of each other. Right: seconds for the 100 steps against $n$ "
        f"({sizes}) on log-log axes, for Convolution1d and, up to $n = {dense_rows[-1]['n'] if dense_rows else 0}$, "
        "for the dense matrix."))
