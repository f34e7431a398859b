"""Claims about which solution an optimizer picks on an underdetermined least-squares problem.

With more unknowns than equations (d > n) every point of an affine set solves
``X w = t``; the optimizer's updates decide which one it reaches. SGD and
momentum from zero stay in the row space of X and end at the minimum-norm
point; per-coordinate scaling (Adagrad, RMSprop, Adam, a diagonal
preconditioner) leaves that subspace and ends elsewhere. Problem set 004 Q7
adds preconditioned SGD on one equation and SGD with non-uniform sampling,
whose Lyapunov bound is measured here against the exact expectation.

Each claim is a compute function returning a result dataclass (one field per
answer slot of the claim in ``nablab/lab/data/claims.toml``, plus the evidence)
and a figure function drawing it; the answer sets are graded against the slots
by the report.

Every run is :func:`nablab.optim.run` with :mod:`nablab.optim`'s optimizers.
Many random problems run as one batch: the parameters are an array of shape
(instances, d), one row per problem, which the element-wise optimizers treat
independently (a learning rate per problem is an array of shape (instances, 1);
a diagonal preconditioner is flattened to match). The runs are unchecked
(``on_divergence="ignore"``): on these small batches a finiteness check costs
more than the step, and the step sizes are stable by construction (Adagrad,
RMSprop and Adam move each coordinate by a bounded amount); the min-norm runs,
whose step size a parameter scales, find a divergence in the distances they
record at every step. The batched gradients are NumPy closed forms, since
tracing a graph every step would dominate the run time; each experiment checks
them once against ``nablab.grad`` of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

import nablab as nb
from nablab import optim, theory
from nablab.lab.registry import Context, ParamError, compute, figure

#: Field metadata of figure data: kept on the result for the figure, left out of claims.json.
FIGURE_DATA = {"report": False}
#: An iterate counts as in the row space when its distance to it is below this, relative to ||w*||.
ROW_SPACE_TOL = 1e-10
#: A claim that an optimizer reaches a point "typically" needs this share of the runs there.
TYPICAL = 0.9


# -- shared machinery -------------------------------------------------------------


def random_problems(rng, count, n, d):
    """``count`` problems ``X w = t`` with X (n, d) and t (n,) standard normal (full row rank a.s.)."""
    return rng.standard_normal((count, n, d)), rng.standard_normal((count, n))


def min_norm_points(X, t):
    """The minimum-norm solution of each problem of a batch, by ``nablab.theory`` (SVD, no inverse)."""
    return np.stack([theory.min_norm_solution(Xb, tb) for Xb, tb in zip(X, t)])


def null_projectors(X):
    """``I - Q Q^T`` per problem, shape (count, d, d): the projection onto the null space of X.

    Q is the orthonormal row-space basis from ``nablab.theory.row_space_basis``.
    """
    bases = [theory.row_space_basis(Xb) for Xb in X]
    d = X.shape[2]
    return np.stack([np.eye(d) - Q @ Q.T for Q in bases])


def row_space_distance(P, W):
    """Distance of each row of W to its problem's row space, given the null projectors P (count, d, d).

    W has ``count * m`` rows, m consecutive rows per problem (m runs of each).
    """
    count, d = P.shape[0], P.shape[1]
    grouped = W.reshape(count, -1, d)
    return np.linalg.norm(np.matmul(grouped, P), axis=2).reshape(-1)  # P is symmetric


def watch_updates(opt, seen):
    """``opt``, calling ``seen(updates)`` with each update it makes: what a run's observer,
    which sees only the iterates, cannot see (the heavy ball's update is its velocity)."""
    def update(grads, state, params=None):
        updates, state = opt.update(grads, state, params)
        seen(updates)
        return updates, state

    return optim.Optimizer(opt.init, update)


def sampled_gradient(X, t, idx, weight=None):
    """Per-step gradients of the sampled loss ``weight (x_i^T w - t_i)^2``, one sample per problem.

    ``idx`` (steps, count) holds the sampled rows. Problem set 000 writes the loss
    with the 1/n of the full objective (the default ``weight = 1/n``), so the
    gradient is ``(2/n) x_i (x_i^T w - t_i)``; problem set 004 uses ``weight = 1``.
    """
    count, n, d = X.shape
    factor = 2.0 * (1.0 / n if weight is None else weight)
    flat_X, flat_t = X.reshape(count * n, d), t.reshape(count * n)
    offset = np.arange(count) * n  # row i of problem b is flat row b n + i

    def grad(W, k):
        pick = offset + idx[k]
        x, target = flat_X[pick], flat_t[pick]
        return factor * x * (np.sum(x * W, axis=1) - target)[:, None]

    return grad


def full_gradient(X, t):
    """Gradient of ``(1/n)||X w - t||^2`` for every problem of a batch."""
    n = X.shape[1]
    return lambda W, k: (2.0 / n) * np.einsum("bnd,bn->bd", X, np.einsum("bnd,bd->bn", X, W) - t)


def engine_gradient_gap(X, t, grad_fn, W, k=0, idx=None, weight=None):
    """Largest gap between ``grad_fn`` and ``nablab.grad`` of the loss, summed over the batch.

    With ``idx`` the loss is the sampled one of step ``k``, ``weight (x_i^T w - t_i)^2``
    (default weight 1/n); without, the full objective ``(1/n)||X w - t||^2``. The
    instances are independent, so the gradient of the sum is every instance's gradient.
    """
    n = X.shape[1]
    weight = 1.0 / n if weight is None else weight
    if idx is None:
        def loss(V):
            return nb.sum((nb.sum(X * nb.reshape(V, (V.shape[0], 1, V.shape[1])), axis=2) - t) ** 2) / n
    else:
        rows = np.arange(X.shape[0])
        x, target = X[rows, idx[k]], t[rows, idx[k]]

        def loss(V):
            return weight * nb.sum((nb.sum(x * V, axis=1) - target) ** 2)
    auto = np.asarray(nb.grad(loss)(W))
    mine = grad_fn(W, k)
    return float(np.abs(auto - mine).max() / (1.0 + np.abs(mine).max()))


def trajectory_2d(loss, w0, opt, steps):
    """A small run (the problem sets' 2-D and 3-D problems) through ``optim.minimize``, gradients by nablab.grad.

    Returns the iterates, the start included, as an array (steps + 1, d).
    """
    run = optim.minimize(loss, np.asarray(w0, dtype=float), opt, steps, keep_trajectory=True)
    return np.array(run.trajectory)


def single_equation_loss(x, t):
    """``(x . w - t)^2``: the loss of one equation (n = 1, so the 1/n of the objective is 1)."""
    x = np.asarray(x, dtype=float)
    return lambda w: (nb.sum(x * w) - t) ** 2


def draw_solution_line(ax, x, t, box=(-1.0, 3.2), label=True):
    """The line ``x . w = t`` in the plane, its minimum-norm point and the row-space line span(x)."""
    x = np.asarray(x, dtype=float)
    s = np.array([-3.0, 3.0]) * (box[1] - box[0])
    along = np.array([-x[1], x[0]]) / np.linalg.norm(x)
    w_star = x * t / (x @ x)
    ax.plot(*(w_star[:, None] + along[:, None] * s), "k-", lw=1.2,
            label=f"solutions of {x[0]:g} w1 + {x[1]:g} w2 = {t:g}" if label else None)
    ax.plot(*(x[:, None] / np.linalg.norm(x) * s), color="0.6", ls=":", lw=1,
            label=r"row space $\operatorname{span}(x)$" if label else None)
    ax.plot(*w_star, "k*", ms=12, label="minimum-norm point" if label else None)
    ax.set_xlim(*box)
    ax.set_ylim(*box)
    ax.set_aspect("equal")
    ax.set_xlabel("w1")
    ax.set_ylabel("w2")


def band(ax, steps, values, color, label):
    """Median line and min-max band of per-instance curves ``values`` (steps, instances)."""
    ax.semilogy(steps, np.median(values, axis=1), color=color, label=label)
    ax.fill_between(steps, values.min(axis=1), values.max(axis=1), color=color, alpha=0.2, lw=0)


def floor(v):
    """Keep exact zeros visible on a log axis."""
    return np.maximum(v, 1e-18)


def spread(values):
    """``[min, median, max]`` of an array, as floats."""
    return [float(np.min(values)), float(np.median(values)), float(np.max(values))]


def vec(v, precision=6):
    """An array as text for a summary, e.g. ``[0.6 1.2]``."""
    return np.array2string(np.asarray(v), precision=precision)


def listed(values):
    """A short list of numbers as text, e.g. ``[1, 0.1, 0.01]``."""
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


# -- SGD and momentum reach the minimum-norm point --------------------------------

#: The 2-D picture of the figure: x = [1, 2], t = 3, three starts.
DEMO_X, DEMO_T = np.array([1.0, 2.0]), 3.0
DEMO_STARTS = ((0.0, 0.0), (-0.5, 0.0), (3.0, 2.5))


@dataclass
class MinNormRun:
    """SGD (or momentum) from 0 and from random starts on random underdetermined problems."""

    method: str
    problems: int
    n: int
    d: int
    steps: int
    lr: float
    alpha: float
    tol: float
    # slots
    iterates_stay_in_row_space: bool  # no iterate from 0 is farther than ROW_SPACE_TOL from the row space
    reaches_min_norm: bool            # at least TYPICAL of the runs from 0 end within tol of w*
    # evidence (distances are relative to ||w*||)
    solved: int                       # runs from 0 ending with relative residual < tol
    ended_at_min_norm: int            # runs from 0 ending within tol of w*
    max_distance_to_min_norm: float   # of the last iterate, from 0
    median_distance_to_min_norm: float
    max_distance_to_row_space: float  # over every iterate from 0
    random_start_distance_to_min_norm: float  # median, from a random w0
    random_start_gap_to_prediction: float     # median distance of that limit to w* + (I - Q Q^T) w0
    random_start_at_prediction: int           # random starts ending within tol of w* + (I - Q Q^T) w0
    gradient_gap: float               # batched sampled gradient against nablab.grad (relative)
    # (steps + 1, 2 problems): from 0, then from random w0
    distance_curves: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    row_space_curves: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    demo_paths: list = field(repr=False, metadata=FIGURE_DATA)               # 2-D runs from DEMO_STARTS

    def summary(self) -> str:
        farther = ("" if self.ended_at_min_norm == self.problems else
                   f" (the farthest, {self.max_distance_to_min_norm:.1e} away, is still approaching it)")
        return (
            f"{self.method} from $w_0 = 0$ on {self.problems} random problems ($n = {self.n}$, $d = {self.d}$, "
            f"{self.steps} sampled steps, lr = {self.lr:.3g}): {self.ended_at_min_norm} of {self.problems} end "
            f"within {self.tol:g} (relative) of the minimum-norm point $X^+ t${farther}, and no iterate was ever "
            f"farther than {self.max_distance_to_row_space:.1e} (relative) from the row space of $X$"
            + self._velocity_text() +
            f". The same problems started at a random $w_0$ end a median {self.random_start_distance_to_min_norm:.2f} "
            f"(relative) away from it, at $w^* + (I - Q Q^\\top) w_0$ (median gap {self.random_start_gap_to_prediction:.1e}): "
            "the start's null-space part is never touched, so it is the zero start that selects the minimum norm."
            + ("" if self.reaches_min_norm and self.iterates_stay_in_row_space else
               " So here the claim fails: see the numbers.")
        )

    def _velocity_text(self) -> str:
        return ""


@dataclass
class MomentumMinNormRun(MinNormRun):
    # slot
    velocity_stays_in_row_space: bool = False  # no velocity delta from 0 leaves the row space
    # evidence
    max_velocity_distance_to_row_space: float = 0.0  # over every step from 0, relative to ||w*||

    def _velocity_text(self) -> str:
        return (f", nor any velocity $\\delta$ farther than {self.max_velocity_distance_to_row_space:.1e}")


def _min_norm_run(run: Context, momentum: bool) -> MinNormRun:
    """SGD or heavy ball on many random problems, from 0 (the claim) and from random starts (the control)."""
    p = run.params
    rng = run.rng()
    count, n, d, steps, tol, scale = p["instances"], p["n"], p["d"], p["steps"], p["tol"], p["lr_scale"]
    if d <= n:
        raise ParamError(f"the claim is about d > n; got n={n}, d={d}")
    X, t = random_problems(rng, count, n, d)
    # Each problem runs twice: from 0 (the claim) and from a random start (the control).
    X2, t2 = np.concatenate([X, X]), np.concatenate([t, t])
    W0 = np.concatenate([np.zeros((count, d)), rng.standard_normal((count, d))])
    w_star = min_norm_points(X2, t2)
    P = null_projectors(X2)
    # Step size in units of the largest per-sample curvature (2/n)||x_i||^2 over all problems.
    lr = scale / ((2.0 / n) * np.max(np.sum(X ** 2, axis=2)))
    if momentum:
        alpha = p["alpha"]
        opt, method = optim.heavy_ball(lr=lr, alpha=alpha), f"SGD with momentum (heavy ball, alpha = {alpha:g})"
        demo = optim.heavy_ball(lr=0.02, alpha=0.8)
    else:
        alpha, opt, method = 0.0, optim.sgd(lr=lr), "SGD"
        demo = optim.sgd(lr=0.05)
    idx = optim.sample_indices(n, steps * 2 * count, seed=int(rng.integers(2 ** 31))).reshape(steps, 2 * count)
    grad_fn = sampled_gradient(X2, t2, idx)
    gap = engine_gradient_gap(X2, t2, grad_fn, W0, idx=idx)
    run.check(gap < 1e-12, f"the batched sampled gradient differs from nablab.grad of the loss by {gap:.3g} "
                           "(relative; limit 1e-12)")

    scale_norm = np.linalg.norm(w_star, axis=1)
    to_star = np.empty((steps + 1, 2 * count))
    to_rows = np.empty((steps + 1, 2 * count))
    zero, other = slice(0, count), slice(count, 2 * count)
    velocity_off = np.zeros(count)

    def observe(k, W):
        to_star[k] = np.linalg.norm(W - w_star, axis=1) / scale_norm
        to_rows[k] = row_space_distance(P, W) / scale_norm

    def observe_velocity(delta):
        # the heavy ball's update is its velocity: w_{k+1} = w_k + delta_{k+1}
        off = row_space_distance(P[zero], delta[zero]) / scale_norm[zero]
        np.maximum(velocity_off, off, out=velocity_off)

    if momentum:
        opt = watch_updates(opt, observe_velocity)
    W = optim.run(opt, W0, grad_fn, steps, observe=observe, on_divergence="ignore").params
    diverged = ~np.all(np.isfinite(to_star), axis=1)  # row k: the iterate after step k - 1
    if diverged.any():
        raise optim.DivergenceError(int(np.argmax(diverged)) - 1, "a parameter")
    residual = np.linalg.norm(np.einsum("bnd,bd->bn", X2, W) - t2, axis=1) / np.linalg.norm(t2, axis=1)
    at_star = to_star[-1, zero] < tol
    worst_rows = float(to_rows[:, zero].max())
    # From w0 the iterates keep w0's null-space part: the limit is w* + (I - Q Q^T) w0.
    predicted = w_star[other] + np.matmul(P[other], W0[other][:, :, None])[..., 0]
    control_error = np.linalg.norm(W[other] - predicted, axis=1) / scale_norm[other]
    control_gap = float(np.median(control_error))
    run.check(np.mean(control_error < tol) >= TYPICAL,
              f"from a random w0 only {int(np.sum(control_error < tol))} of {count} runs end within {tol:g} of the "
              f"predicted limit w* + (I - Q Q^T) w0 (median gap {control_gap:.3g}; at least 90% expected)")
    demo_paths = [trajectory_2d(single_equation_loss(DEMO_X, DEMO_T), start, demo, 60) for start in DEMO_STARTS]

    fields = {
        "method": method, "problems": count, "n": n, "d": d, "steps": steps, "lr": float(lr),
        "alpha": float(alpha), "tol": tol,
        # The row-space invariant must hold at every step; convergence only needs to be typical.
        "iterates_stay_in_row_space": worst_rows <= ROW_SPACE_TOL,
        "reaches_min_norm": bool(at_star.mean() >= TYPICAL),
        "solved": int(np.sum(residual[zero] < tol)), "ended_at_min_norm": int(at_star.sum()),
        "max_distance_to_min_norm": float(to_star[-1, zero].max()),
        "median_distance_to_min_norm": float(np.median(to_star[-1, zero])),
        "max_distance_to_row_space": worst_rows,
        "random_start_distance_to_min_norm": float(np.median(to_star[-1, other])),
        "random_start_gap_to_prediction": control_gap,
        "random_start_at_prediction": int(np.sum(control_error < tol)),
        "gradient_gap": gap, "distance_curves": to_star, "row_space_curves": to_rows, "demo_paths": demo_paths,
    }
    if momentum:
        worst_velocity = float(velocity_off.max())
        return MomentumMinNormRun(**fields, velocity_stays_in_row_space=worst_velocity <= ROW_SPACE_TOL,
                                  max_velocity_distance_to_row_space=worst_velocity)
    return MinNormRun(**fields)


@compute("optim.sgd-min-norm")
def sgd_min_norm(run: Context) -> MinNormRun:
    return _min_norm_run(run, momentum=False)


@compute("optim.momentum-min-norm")
def momentum_min_norm(run: Context) -> MomentumMinNormRun:
    return _min_norm_run(run, momentum=True)


@figure("optim.sgd-min-norm")
@figure("optim.momentum-min-norm")
def min_norm_figure(result: MinNormRun, run: Context) -> None:
    import matplotlib.pyplot as plt

    r = result
    short = r.method.split(" (")[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    draw_solution_line(axes[0], DEMO_X, DEMO_T)
    for path, start, color in zip(r.demo_paths, DEMO_STARTS, ("C0", "C1", "C2")):
        axes[0].plot(path[:, 0], path[:, 1], ".-", color=color, ms=3, lw=0.8,
                     label=f"from ({start[0]:g}, {start[1]:g})")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title(f"{short} in 2-D: only the start at 0\nends at the minimum-norm point")
    zero, other = slice(0, r.problems), slice(r.problems, 2 * r.problems)
    ks = np.arange(r.steps + 1)
    band(axes[1], ks, floor(r.distance_curves[:, zero]), "C0", "from $w_0 = 0$")
    band(axes[1], ks, floor(r.distance_curves[:, other]), "C1", "from a random $w_0$")
    axes[1].axhline(r.tol, color="gray", ls=":", lw=1, label=f"tolerance {r.tol:g}")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(r"$\|w_k - w^*\| / \|w^*\|$")
    axes[1].set_title(f"Distance to the minimum-norm point\n{r.problems} problems, $n = {r.n}$, $d = {r.d}$ "
                      "(median, min-max)")
    axes[1].legend(fontsize=8)
    band(axes[2], ks, floor(r.row_space_curves[:, zero]), "C0", "from $w_0 = 0$")
    band(axes[2], ks, floor(r.row_space_curves[:, other]), "C1", "from a random $w_0$")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel(r"distance to row space / $\|w^*\|$")
    axes[2].set_title("Distance of the iterates to the row space of $X$")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "min-norm", alt=(
        f"Left: {short} on $x = [1, 2]$, $t = 3$ from three starts; only the run from 0 ends at the minimum-norm "
        f"point. Middle: relative distance to the minimum-norm point over {r.steps} steps on {r.problems} random "
        f"problems, falling below {r.tol:g} from 0 and levelling off from random starts. Right: the distance to "
        f"the row space stays at rounding level (at most {r.max_distance_to_row_space:.0e}) from 0."))


# -- Adagrad: where its limit lands ------------------------------------------------


def adagrad_single_equation_limit(x, t):
    """Adagrad's limit from 0 on ``(x . w - t)^2`` as eps -> 0: ``t sign(x) / ||x||_1``.

    Every gradient is ``2 r_k x``, so the accumulator of coordinate i is
    ``4 x_i^2 S_k`` with one common ``S_k = sum r_j^2``, and the step is
    ``-lr r_k x_i / (|x_i| sqrt(S_k)) = -lr r_k sign(x_i) / sqrt(S_k)``: every step
    points along ``sign(x)``, so the limit is the point of the solution line on that ray.
    """
    x = np.asarray(x, dtype=float)
    return t * np.sign(x) / np.sum(np.abs(x), axis=-1, keepdims=True)


@dataclass
class AdagradLimits:
    """Adagrad from 0 on one equation x . w = t: its limit against the minimum-norm point."""

    lr: float
    steps: int
    target: float
    x_equal: list
    x_unequal: list
    first_lr: float
    first_eps: float
    tol: float
    d: int                              # the dimension of the random equations beside the plane
    # slots
    limit_equal: np.ndarray             # Adagrad's limit for x = x_equal
    limit_unequal: np.ndarray           # ... and for x = x_unequal
    min_norm_unequal: np.ndarray        # the minimum-norm solution for x_unequal
    limit_is_min_norm_equal: bool
    limit_is_min_norm_unequal: bool
    always_min_norm: bool               # on every equation tried (both above and the random ones)
    first_gradient: np.ndarray          # at w0 = 0 for x_unequal
    first_accumulator: np.ndarray       # G_1, with first_lr and first_eps
    first_step: np.ndarray              # w_1
    first_step_in_span: bool            # w_1 is a multiple of x_unequal
    # evidence
    min_norm_equal: np.ndarray
    norms: dict                         # case -> [||limit||, ||w*||]
    distances_to_min_norm: dict         # case -> ||limit - w*||
    residuals: dict                     # case -> x . limit - t
    distances_to_closed_form: dict      # case -> ||limit - t sign(x)/||x||_1||
    first_step_off_span: float          # distance of w_1 to span(x), relative to ||w_1||
    worked_steps: int
    worked_iterate: np.ndarray          # after worked_steps steps with first_lr and first_eps
    worked_residual: float
    worked_distance_to_min_norm: float
    random: dict                        # "plane" / "space" (d-D) -> statistics over random single equations
    random_at_min_norm: int             # random equations whose limit is within tol of w*
    paths: dict = field(repr=False, metadata=FIGURE_DATA)         # case -> (x, Adagrad path, GD path)
    angles: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    plane_ratio: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    d_ratio: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    d_predicted: np.ndarray = field(repr=False, metadata=FIGURE_DATA)

    def summary(self) -> str:
        worked = (f"With lr = {self.first_lr:g}, $\\epsilon$ = {self.first_eps:g} the first step from 0 on $x$ = "
                  f"{listed(self.x_unequal)} has gradient {vec(self.first_gradient, 4)}, accumulator "
                  f"{vec(self.first_accumulator, 4)} and lands at {vec(self.first_step)}, "
                  f"{'inside' if self.first_step_in_span else 'outside'} $\\operatorname{{span}}(x)$; after "
                  f"{self.worked_steps} steps the iterate is {vec(self.worked_iterate, 5)} ($x \\cdot w - t$ = "
                  f"{self.worked_residual:.1e}, still "
                  "creeping along the same ray).")
        n_random = sum(r["problems"] for r in self.random.values())
        return (
            f"Adagrad (lr = {self.lr:g}, $\\epsilon = 10^{{-10}}$) from 0 with $t$ = {self.target:g}: for $x$ = "
            f"{listed(self.x_equal)} it ends at {vec(self.limit_equal)}, "
            + ("the minimum-norm point" if self.limit_is_min_norm_equal else
               f"not the minimum-norm point {vec(self.min_norm_equal)}")
            + f" (distance {self.distances_to_min_norm['equal']:.1e}); for $x$ = {listed(self.x_unequal)} it ends at "
            f"{vec(self.limit_unequal)} (norm {self.norms['unequal'][0]:.6f}), while the minimum-norm point is "
            f"{vec(self.min_norm_unequal)} (norm {self.norms['unequal'][1]:.6f}). "
            "Why: on one equation every gradient is a multiple of $x$, so Adagrad divides coordinate $i$ by a "
            "multiple of $|x_i|$ and steps along $\\operatorname{sign}(x)$; that is the direction of $x$ (the "
            "minimum-norm direction) only when all $|x_i|$ are equal. The limit $t \\operatorname{sign}(x)/\\|x\\|_1$ "
            "and the norm ratio "
            f"$\\sqrt{{d}}\\, \\|x\\|_2/\\|x\\|_1 \\geq 1$ match {n_random} random equations ({self.random_at_min_norm} of them "
            f"end at the minimum-norm point). So Adagrad does {'' if self.always_min_norm else 'not '}always "
            f"reach the minimum-norm solution. " + worked
        )


@compute("optim.adagrad-not-min-norm")
def adagrad_not_min_norm(run: Context) -> AdagradLimits:
    p = run.params
    rng = run.rng()
    lr, steps, count, d, tol, t = p["lr"], p["steps"], p["instances"], p["d"], p["tol"], p["target"]
    xs = {"equal": np.array(p["x_equal"], dtype=float), "unequal": np.array(p["x_unequal"], dtype=float)}
    for name, x in xs.items():
        if x.shape != (2,):
            raise ParamError(f"x_{name} must have two entries (the 2-D case), got {p['x_' + name]}")

    # The two equations, run through optim.minimize with gradients by nablab.grad.
    limits, stars, paths, dist, res, closed_dist, norms = {}, {}, {}, {}, {}, {}, {}
    for key, x in xs.items():
        loss = single_equation_loss(x, t)
        path = trajectory_2d(loss, np.zeros(2), optim.adagrad(lr=lr), steps)
        gd_path = trajectory_2d(loss, np.zeros(2), optim.sgd(lr=0.25 / (x @ x)), 40)
        limits[key], stars[key] = path[-1], theory.min_norm_solution(x[None], np.array([t]))
        paths[key] = (x, path, gd_path)
        dist[key] = float(np.linalg.norm(limits[key] - stars[key]))
        res[key] = float(x @ limits[key] - t)
        closed_dist[key] = float(np.linalg.norm(limits[key] - adagrad_single_equation_limit(x, t)))
        norms[key] = [float(np.linalg.norm(limits[key])), float(np.linalg.norm(stars[key]))]
    # The question assumes Adagrad converges: a run that did not is the experiment's failure.
    run.check(all(abs(r) < tol for r in res.values()),
              f"Adagrad did not reach a solution in {steps} steps (x . w - t: {res})")

    # The worked first step: gradient by nablab.grad, accumulator and step from the optimizer's state.
    x = xs["unequal"]
    w0 = np.zeros(2)
    first_gradient = np.asarray(nb.grad(single_equation_loss(x, t))(w0))
    first_opt = optim.adagrad(lr=p["first_lr"], eps=p["first_eps"])
    updates, state = first_opt.update(first_gradient, first_opt.init(w0), w0)
    first_step = optim.apply_updates(w0, updates)
    first_accumulator = np.asarray(state["sum"])
    by_hand = -p["first_lr"] * first_gradient / (np.abs(first_gradient) + p["first_eps"])
    run.check(np.allclose(first_gradient, 2 * x * (x @ w0 - t), rtol=1e-14, atol=0)
              and np.allclose(first_accumulator, first_gradient ** 2, rtol=1e-14, atol=0)
              and np.allclose(first_step, w0 + by_hand, rtol=1e-14, atol=0),
              f"Adagrad's first step {first_step.tolist()} (accumulator {first_accumulator.tolist()}) differs from "
              f"g = 2 x (x . w0 - t), G = g^2, w1 = w0 - lr g / (sqrt(G) + eps) = {(w0 + by_hand).tolist()}")
    along = x / np.linalg.norm(x)
    off_span = float(np.linalg.norm(first_step - (first_step @ along) * along) / np.linalg.norm(first_step))
    worked = optim.run(first_opt, w0, lambda w, k: 2 * x * (x @ w - t), p["worked_steps"],
                       on_divergence="ignore").params

    # Many random single equations: in the plane (by angle) and in d dimensions.
    def batch_limits(X1, t1):
        W = optim.run(optim.adagrad(lr=lr), np.zeros_like(X1),
                      lambda W, k: 2 * X1 * (np.sum(X1 * W, axis=1) - t1)[:, None], steps * 4,
                      on_divergence="ignore").params
        return W, np.abs(np.sum(X1 * W, axis=1) - t1) / np.abs(t1)

    angles = rng.uniform(0, 2 * np.pi, count)
    X_plane = np.stack([np.cos(angles), np.sin(angles)], axis=1) * rng.uniform(0.5, 2, (count, 1))
    t_plane = rng.choice([-1.0, 1.0], count) * rng.uniform(0.5, 3, count)
    X_d = rng.standard_normal((count, d))
    t_d = rng.choice([-1.0, 1.0], count) * rng.uniform(0.5, 3, count)
    report, ratios, close, at_star = {}, {}, [], 0
    for label, X1, t1 in (("plane", X_plane, t_plane), ("space", X_d, t_d)):
        W, residual = batch_limits(X1, t1)
        closed = adagrad_single_equation_limit(X1, t1[:, None])
        w_star = t1[:, None] * X1 / np.sum(X1 ** 2, axis=1, keepdims=True)
        ratio = np.linalg.norm(W, axis=1) / np.linalg.norm(w_star, axis=1)
        predicted = np.sqrt(X1.shape[1]) * np.linalg.norm(X1, axis=1) / np.sum(np.abs(X1), axis=1)
        error = np.linalg.norm(W - closed, axis=1) / np.linalg.norm(closed, axis=1)
        # eps > 0 tilts coordinate i by about eps / (|x_i| sqrt(S)), and sqrt(S) >= |t|.
        eps_unit = 1e-10 / (np.abs(X1).min(axis=1) * np.abs(t1))
        at_star += int(np.sum(np.linalg.norm(W - w_star, axis=1) < tol * np.linalg.norm(w_star, axis=1)))
        close.append(bool(np.all(error <= 10 * eps_unit + 1e-9)) and float(residual.max()) < tol)
        ratios[label] = ratio
        report[label] = {
            "problems": count, "max_residual": float(residual.max()),
            "max_distance_to_closed_form": float(error.max()),
            "max_distance_to_closed_form_in_eps_units": float((error / eps_unit).max()),
            "norm_ratio": spread(ratio),
            "max_gap_to_predicted_ratio": float(np.abs(ratio - predicted).max()),
        }
    run.check(all(close), "Adagrad on random single equations does not end at t sign(x)/||x||_1 with residual < "
                          f"{tol:g}: " + "; ".join(
                              f"{label}: max residual {r['max_residual']:.3g}, max distance "
                              f"{r['max_distance_to_closed_form_in_eps_units']:.3g} eps units (limit about 10)"
                              for label, r in report.items()))

    is_min = {key: dist[key] < tol for key in xs}
    return AdagradLimits(
        lr=lr, steps=steps, target=t, x_equal=list(p["x_equal"]), x_unequal=list(p["x_unequal"]),
        first_lr=p["first_lr"], first_eps=p["first_eps"], tol=tol, d=d,
        limit_equal=limits["equal"], limit_unequal=limits["unequal"], min_norm_unequal=stars["unequal"],
        limit_is_min_norm_equal=is_min["equal"], limit_is_min_norm_unequal=is_min["unequal"],
        always_min_norm=all(is_min.values()) and at_star == 2 * count,
        first_gradient=first_gradient, first_accumulator=first_accumulator, first_step=first_step,
        first_step_in_span=off_span < tol,
        min_norm_equal=stars["equal"], norms=norms, distances_to_min_norm=dist, residuals=res,
        distances_to_closed_form=closed_dist, first_step_off_span=off_span,
        worked_steps=p["worked_steps"], worked_iterate=worked, worked_residual=float(x @ worked - t),
        worked_distance_to_min_norm=float(np.linalg.norm(worked - stars["unequal"])),
        random=report, random_at_min_norm=at_star,
        paths=paths, angles=angles, plane_ratio=ratios["plane"], d_ratio=ratios["space"],
        d_predicted=np.sqrt(d) * np.linalg.norm(X_d, axis=1) / np.sum(np.abs(X_d), axis=1),
    )


@figure("optim.adagrad-not-min-norm")
def adagrad_figure(result: AdagradLimits, run: Context) -> None:
    import matplotlib.pyplot as plt

    r = result
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    for i, (key, (xa, path, gd_path)) in enumerate(r.paths.items()):
        name = f"$x = [{xa[0]:g}, {xa[1]:g}]$"
        draw_solution_line(ax, xa, r.target, box=(-0.3, 2.6), label=False)
        ax.plot(path[:, 0], path[:, 1], "o-", color=f"C{i}", ms=2.5, lw=0.8, label=f"Adagrad, {name}")
        ax.plot(gd_path[:, 0], gd_path[:, 1], "--", color=f"C{i}", lw=0.8, label=f"GD, {name}")
        ax.annotate(f"$w^*$ for {name}", xy=theory.min_norm_solution(xa[None], np.array([r.target])),
                    xytext=(6, -12), textcoords="offset points", fontsize=7)
    ax.plot(*r.limit_equal, "ks", ms=5, mfc="none", label="Adagrad limits")
    ax.plot(*r.limit_unequal, "ks", ms=5, mfc="none")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"$t = {r.target:g}$ from $w_0 = 0$: Adagrad moves along $\\operatorname{{sign}}(x)$,\n"
                 "GD along $x$ (stars: minimum-norm points)")
    ax = axes[1]
    phi = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.degrees(phi), np.sqrt(2) / (np.abs(np.cos(phi)) + np.abs(np.sin(phi))), "k-", lw=1,
            label=r"$\sqrt{2}\, \|x\|_2 / \|x\|_1$")
    ax.plot(np.degrees(r.angles % (2 * np.pi)), r.plane_ratio, "C0.", ms=3, label=f"Adagrad runs ({len(r.angles)})")
    for deg in (45, 135, 225, 315):
        ax.axvline(deg, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel("direction of $x$ (degrees)")
    ax.set_ylabel(r"$\|$Adagrad limit$\|$ / $\|$minimum-norm point$\|$")
    ax.set_title("Random single equations in 2-D: equal only when $|x_1| = |x_2|$")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(r.d_predicted, r.d_ratio, "C1.", ms=3)
    lims = [min(r.d_predicted.min(), r.d_ratio.min()), max(r.d_predicted.max(), r.d_ratio.max())]
    ax.plot(lims, lims, "k-", lw=0.8)
    ax.set_xlabel(r"$\sqrt{d}\, \|x\|_2 / \|x\|_1$")
    ax.set_ylabel(r"$\|$Adagrad limit$\|$ / $\|w^*\|$ (run)")
    ax.set_title(f"Random single equations in {r.d}-D ({len(r.d_ratio)})")
    fig.tight_layout()
    run.savefig(fig, "adagrad", alt=(
        f"Left: Adagrad and GD paths from 0 to the lines $x \\cdot w = {r.target:g}$ for $x$ = {listed(r.x_equal)} and "
        f"{listed(r.x_unequal)}; GD ends at the minimum-norm points, Adagrad at {vec(r.limit_equal, 3)} and "
        f"{vec(r.limit_unequal, 3)}. Middle: the norm ratio of Adagrad's limit to the minimum-norm point against "
        "the direction of $x$, on the curve $\\sqrt{2}\\, \\|x\\|_2/\\|x\\|_1$ and equal to 1 only on the diagonals. "
        "Right: the same ratio in higher dimension against $\\sqrt{d}\\, \\|x\\|_2/\\|x\\|_1$, on the identity line."))


# -- RMSprop and Adam -----------------------------------------------------------------


def adaptive_optimizers(steps, lr_scale=1.0):
    """The optimizers compared, by key: (label, optimizer). RMSprop and Adam decay their rate to 0 (cosine).

    With a constant rate they settle into a small oscillation around a solution
    (their step tends to lr * sign(g)), so there would be no limit to compare;
    the decay removes that without changing the direction the updates take.
    """
    return {
        "adagrad": ("Adagrad (lr 0.1)", optim.adagrad(lr=0.1 * lr_scale)),
        "rmsprop": ("RMSprop (lr 0.01, cosine)", optim.rmsprop(lr=optim.cosine_decay(0.01 * lr_scale, steps))),
        "adam": ("Adam (lr 0.03, cosine)", optim.adam(lr=optim.cosine_decay(0.03 * lr_scale, steps))),
    }


@dataclass
class AdaptiveLimits:
    """GD, Adagrad, RMSprop and Adam, full batch from 0, on random underdetermined problems."""

    problems: int
    n: int
    d: int
    steps: int
    tol: float
    far: float
    # slots
    rmsprop_always_min_norm: bool      # every converged RMSprop run ends within far of w*
    adam_always_min_norm: bool
    adam_limit_depends_on_lr: bool     # Adam's limits at the smallest and largest rate differ by more than far
    # evidence (distances relative to ||w*||)
    labels: dict                       # method key -> label with its settings
    methods: dict                      # method key -> converged, farther, distance, norm_ratio
    adam_lr_sweep: dict                # "lr 0.01" -> converged, median distance to w*, to the base (lr 0.03) limit
    adam_lr_ends_apart: float          # median distance between the limits at the first and last rate
    demo_limits: dict                  # x = [1, 2], t = 3: each method's limit
    demo_min_norm: np.ndarray
    gradient_gap: float
    distances: dict = field(repr=False, metadata=FIGURE_DATA)    # method key -> per-problem distance of the limit to w*
    # method key -> (steps + 1, problems) distance to the row space
    curves: dict = field(repr=False, metadata=FIGURE_DATA)
    demo_paths: dict = field(repr=False, metadata=FIGURE_DATA)
    # lr -> (median distance to w*, median distance to the lr 0.03 limit)
    sweep: dict = field(repr=False, metadata=FIGURE_DATA)

    def summary(self) -> str:
        gd = self.methods["gd"]
        adaptive = [k for k in self.methods if k != "gd"]
        parts = ", ".join(f"{self.labels[k].split(' (')[0]} {self.methods[k]['farther']}/{self.problems} "
                          f"(median distance {self.methods[k]['distance'][1]:.2f})" for k in adaptive)
        lrs = list(self.adam_lr_sweep)
        never = [self.labels[k].split(" (")[0] for k, ok in (("rmsprop", self.rmsprop_always_min_norm),
                                                             ("adam", self.adam_always_min_norm)) if not ok]
        return (
            f"Full-batch runs from 0 on {self.problems} random problems ($n = {self.n}$, $d = {self.d}$, "
            f"{self.steps} steps): GD ends at the minimum-norm point on every problem (max relative distance "
            f"{gd['distance'][2]:.1e}); the adaptive methods reach a solution (residual < {self.tol:g}) but one "
            f"farther than {self.far:g} (relative) from it: {parts}. Their limits are solutions of larger norm, "
            f"and they move with the learning rate: Adam's limits at {lrs[0]} and at {lrs[-1]} are a median "
            f"{self.adam_lr_ends_apart:.2f} apart (relative). "
            + (f"So no: like Adagrad, {' and '.join(never)} do{'es' if len(never) == 1 else ''} not pick the "
               "minimum-norm solution in general; per-coordinate rates leave the row space of $X$." if never else
               "Here both reached the minimum-norm point on every problem.")
        )


@compute("optim.adaptive-not-min-norm")
def adaptive_not_min_norm(run: Context) -> AdaptiveLimits:
    p = run.params
    rng = run.rng()
    count, n, d, steps, tol, far, sweep = p["instances"], p["n"], p["d"], p["steps"], p["tol"], p["far"], p["adam_lrs"]
    X, t = random_problems(rng, count, n, d)
    w_star = min_norm_points(X, t)
    P = null_projectors(X)
    grad_fn = full_gradient(X, t)
    gap = engine_gradient_gap(X, t, grad_fn, rng.standard_normal((count, d)))
    run.check(gap < 1e-12, f"the batched full gradient differs from nablab.grad of the loss by {gap:.3g} "
                           "(relative; limit 1e-12)")
    norm_star = np.linalg.norm(w_star, axis=1)
    curvature = max(np.linalg.eigvalsh((2.0 / n) * Xb.T @ Xb).max() for Xb in X)
    opts = {"gd": ("GD (lr 1/L)", optim.sgd(lr=1.0 / curvature)), **adaptive_optimizers(steps)}

    def residual(W):
        return np.linalg.norm(np.einsum("bnd,bd->bn", X, W) - t, axis=1) / np.linalg.norm(t, axis=1)

    methods, curves, limits, distances = {}, {}, {}, {}
    for key, (label, opt) in opts.items():
        rows = np.empty((steps + 1, count))

        def observe(k, W, rows=rows):
            rows[k] = row_space_distance(P, W) / norm_star

        W = optim.run(opt, np.zeros((count, d)), grad_fn, steps, observe=observe, on_divergence="ignore").params
        dist = np.linalg.norm(W - w_star, axis=1) / norm_star
        done = residual(W) < tol
        curves[key], limits[key], distances[key] = rows, W, dist
        methods[key] = {
            "converged": int(done.sum()), "farther": int(np.sum(done & (dist > far))),
            "distance": spread(dist), "norm_ratio": spread(np.linalg.norm(W, axis=1) / norm_star),
        }
    # The limit moves with the learning rate (GD's does not): Adam at several rates.
    base = limits["adam"]
    lr_runs = {}
    for lr in sweep:
        W = optim.run(optim.adam(lr=optim.cosine_decay(lr, steps)), np.zeros((count, d)), grad_fn, steps,
                      on_divergence="ignore").params
        lr_runs[lr] = (W, residual(W), np.linalg.norm(W - w_star, axis=1) / norm_star,
                       np.linalg.norm(W - base, axis=1) / norm_star)
    ends = float(np.median(np.linalg.norm(lr_runs[sweep[0]][0] - lr_runs[sweep[-1]][0], axis=1) / norm_star))
    gd = methods["gd"]
    run.check(gd["converged"] == count and gd["distance"][2] < tol,
              f"GD, the control, solved {gd['converged']} of {count} problems and ended as far as "
              f"{gd['distance'][2]:.3g} (relative) from the minimum-norm point (expected: all, within {tol:g})")
    adaptive = [k for k in methods if k != "gd"]
    run.check(all(methods[k]["converged"] >= TYPICAL * count for k in adaptive),
              f"the adaptive runs did not converge (residual < {tol:g}) on 90% of the {count} problems: "
              + ", ".join(f"{opts[k][0]} {methods[k]['converged']}" for k in adaptive))

    # The 2-D picture: x = [1, 2], t = 3, every method from 0.
    demo_steps = 400
    demo = {"GD": optim.sgd(lr=0.02), "Adagrad": optim.adagrad(lr=0.3),
            "RMSprop": optim.rmsprop(lr=optim.cosine_decay(0.05, demo_steps)),
            "Adam": optim.adam(lr=optim.cosine_decay(0.1, demo_steps))}
    demo_paths = {name: trajectory_2d(single_equation_loss(DEMO_X, DEMO_T), [0.0, 0.0], opt, demo_steps)
                  for name, opt in demo.items()}
    return AdaptiveLimits(
        problems=count, n=n, d=d, steps=steps, tol=tol, far=far,
        rmsprop_always_min_norm=methods["rmsprop"]["farther"] == 0,
        adam_always_min_norm=methods["adam"]["farther"] == 0,
        adam_limit_depends_on_lr=ends > far,
        labels={k: label for k, (label, _) in opts.items()}, methods=methods,
        adam_lr_sweep={f"lr {lr:g}": {"converged": int(np.sum(res < tol)),
                                      "median_distance_to_min_norm": float(np.median(dist)),
                                      "median_distance_to_base_limit": float(np.median(to_base))}
                       for lr, (W, res, dist, to_base) in lr_runs.items()},
        adam_lr_ends_apart=ends,
        demo_limits={name: path[-1] for name, path in demo_paths.items()},
        demo_min_norm=theory.min_norm_solution(DEMO_X[None], np.array([DEMO_T])),
        gradient_gap=gap, distances=distances, curves=curves, demo_paths=demo_paths,
        sweep={lr: (float(np.median(dist)), float(np.median(to_base)))
               for lr, (_, _, dist, to_base) in lr_runs.items()},
    )


@figure("optim.adaptive-not-min-norm")
def adaptive_figure(result: AdaptiveLimits, run: Context) -> None:
    import matplotlib.pyplot as plt

    r = result
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = axes[0, 0]
    keys = list(r.methods)
    jitter = np.linspace(-0.15, 0.15, r.problems)
    for i, key in enumerate(keys):
        ax.plot(np.full(r.problems, i) + jitter, floor(r.distances[key]), ".", color=f"C{i}", ms=3)
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)), [r.labels[k].replace(" (", "\n(") for k in keys], fontsize=8)
    ax.axhline(r.far, color="gray", ls=":", lw=1)
    ax.set_ylabel(r"$\|\mathrm{limit} - w^*\| / \|w^*\|$")
    ax.set_title(f"Limits on {r.problems} random problems ($n = {r.n}$, $d = {r.d}$), full batch from 0")
    ax = axes[0, 1]
    ks = np.arange(r.steps + 1)
    for i, key in enumerate(keys):
        band(ax, ks, floor(r.curves[key]), f"C{i}", r.labels[key])
    ax.set_xlabel("step")
    ax.set_ylabel(r"distance to the row space / $\|w^*\|$")
    ax.set_title("GD stays in the row space; the adaptive methods leave it at once")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    draw_solution_line(ax, DEMO_X, DEMO_T, box=(-0.3, 2.0))
    for i, (name, path) in enumerate(r.demo_paths.items()):
        ax.plot(path[:, 0], path[:, 1], ".-", color=f"C{i}", ms=2, lw=0.7, label=name)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(r"$x_1 = [1, 2]$, $t = 3$: the adaptive methods all move along $\operatorname{sign}(x) = [1, 1]$")
    ax = axes[1, 1]
    lrs = list(r.sweep)
    ax.semilogx(lrs, [r.sweep[lr][0] for lr in lrs], "o-", color="C3", label="Adam: median distance to $w^*$")
    ax.semilogx(lrs, [r.sweep[lr][1] for lr in lrs], "s--", color="C4",
                label="Adam: median distance to its lr 0.03 limit")
    ax.set_xlabel("Adam's peak learning rate (cosine decay)")
    ax.set_ylabel("relative distance")
    ax.set_title("The adaptive limit depends on the learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "adaptive", alt=(
        f"Top left: relative distance of each method's limit to the minimum-norm point on {r.problems} random "
        f"problems; GD's at rounding level, Adagrad's, RMSprop's and Adam's around "
        f"{np.median([r.methods[k]['distance'][1] for k in keys if k != 'gd']):.1f}. Top right: distance to the "
        "row space over the steps; GD stays at zero, the adaptive methods leave it at the first step. Bottom "
        "left: the paths of the four methods on $x = [1, 2]$, $t = 3$. Bottom right: Adam's distance to the "
        "minimum-norm point and to its own limit at lr 0.03, against its learning rate."))


# -- preconditioned SGD (problem set 004 Q7) ------------------------------------------


def preconditioned_limit(X, t, M):
    """Limit of ``theta -= lr M grad`` from 0 on ``X theta = t``: the solution of least ``theta^T M^-1 theta``.

    With ``M = L L^T`` (Cholesky; ``sqrt`` of a diagonal) and ``theta = L phi`` the
    iteration is SGD on ``X L phi = t`` from 0, whose limit is the minimum-norm
    ``phi``; so the limit is ``L (X L)^+ t`` (= ``M X^T (X M X^T)^-1 t``, never formed).
    """
    M = np.asarray(M, dtype=float)
    L = np.diag(np.sqrt(M)) if M.ndim == 1 else np.linalg.cholesky(M)
    return L @ theory.min_norm_solution(np.atleast_2d(X) @ L, np.atleast_1d(t))


#: The diagonal preconditioners of the claim, by key: (label, M as a function of the row a).
PRECONDITIONERS = {
    "identity": ("M = I", lambda a: np.ones_like(a)),
    "inverse_abs": ("M = diag(1/|a_i|)", lambda a: 1.0 / np.abs(a)),
    "rescaled": ("rescaling, M = diag(1/a_i^2)", lambda a: 1.0 / a ** 2),
}


@dataclass
class PreconditionedLimits:
    """Preconditioned SGD from 0 on one equation a . theta = target, and on random problems."""

    a: list
    target: float
    steps: int
    tol: float
    # slots
    limit_identity: np.ndarray        # M = I
    limit_inverse_abs: np.ndarray     # M = diag(1/|a_i|), the Adagrad-like one
    rescaled_solution: np.ndarray     # SGD's limit on the rescaled equation [1 ... 1] theta_bar = target
    limit_rescaled: np.ndarray        # M = diag(1/a_i^2): theta_i = theta_bar_i / a_i
    # evidence
    labels: dict                      # key -> label
    preconditioned: dict              # key -> M, lr, limit, closed_form, a_dot_limit, norm
    adaptive: dict                    # adagrad / rmsprop -> limit, a_dot_limit, distance_to_inverse_abs
    limit_inverse_sqrt_abs: np.ndarray  # the closed-form limit for M = diag(1/sqrt|a_i|)
    rescaled_mapped_back: np.ndarray  # rescaled_solution / a
    random_diagonal: dict
    random_full: dict
    paths: dict = field(repr=False, metadata=FIGURE_DATA)       # key -> iterates
    random_errors: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    random_shifts: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    directions: dict = field(repr=False, metadata=FIGURE_DATA)  # key -> the ray M a^T the run stays on

    def summary(self) -> str:
        per = "; ".join(f"{self.labels[k]}: {vec(self.preconditioned[k]['limit'])} "
                        f"($a \\cdot \\theta$ = {self.preconditioned[k]['a_dot_limit']:.6g})" for k in PRECONDITIONERS)
        ones = np.ones(len(self.a))
        return (
            f"Preconditioned SGD from 0 on {listed(self.a)} $\\theta$ = {self.target:g} ends at "
            f"$M a^\\top / (a M a^\\top)$, the solution of least $\\theta^\\top M^{{-1}} \\theta$: {per}. Rescaling "
            f"$\\bar{{\\theta}}_i = a_i \\theta_i$ turns the equation into {listed(ones)} $\\bar{{\\theta}}$ = "
            f"{self.target:g}, whose SGD limit is {vec(self.rescaled_solution)}; mapped back through "
            f"$\\theta_i = \\bar{{\\theta}}_i / a_i$ it is {vec(self.rescaled_mapped_back, 4)}, the "
            "$M = \\operatorname{diag}(1/a_i^2)$ limit. Adagrad and RMSprop, which build "
            "$M_t = \\operatorname{diag}(1/\\mathrm{RMS\\ gradient})$ on the fly, "
            f"end at the $\\operatorname{{diag}}(1/|a_i|)$ point too (within "
            f"{max(v['distance_to_inverse_abs'] for v in self.adaptive.values()):.1e}). On "
            f"{self.random_diagonal['problems']} random diagonal and {self.random_full['problems']} full "
            "positive-definite $M$ the runs end at the closed form $M X^\\top (X M X^\\top)^{-1} t$ (median relative "
            f"distance {self.random_diagonal['distance'][0]:.1e}) and never leave $\\operatorname{{range}}(M X^\\top)$."
        )


@compute("optim.preconditioned-sgd")
def preconditioned_sgd_claim(run: Context) -> PreconditionedLimits:
    p = run.params
    rng = run.rng()
    steps, count, count_full, n, d = p["steps"], p["instances"], p["instances_full"], p["n"], p["d"]
    random_steps, tol, target = p["random_steps"], p["tol"], p["target"]
    a = np.array(p["a"], dtype=float)
    if a.ndim != 1 or np.any(a == 0):
        raise ParamError(f"a must be a list of non-zero numbers, got {p['a']}")

    def loss(theta):  # f(theta) = (target - a theta)^2
        return (target - nb.sum(a * theta)) ** 2

    paths, per_m, directions = {}, {}, {}
    for key, (label, make) in PRECONDITIONERS.items():
        M = make(a)
        lr = 0.25 / (a @ (M * a))  # each step halves the residual
        path = trajectory_2d(loss, np.zeros(len(a)), optim.preconditioned_sgd(lr=lr, M=M), steps)
        paths[key], directions[key] = path, M * a
        per_m[key] = {"M": M, "lr": float(lr), "limit": path[-1],
                      "closed_form": preconditioned_limit(a, target, M),
                      "a_dot_limit": float(a @ path[-1]), "norm": float(np.linalg.norm(path[-1]))}
    run.check(all(np.allclose(v["limit"], v["closed_form"], rtol=1e-12, atol=1e-14) for v in per_m.values()),
              "preconditioned SGD's limits differ from the closed form M a^T / (a M a^T): " + "; ".join(
                  f"{k}: run {v['limit'].tolist()}, closed form {v['closed_form'].tolist()}" for k, v in per_m.items()))
    # Rescaling theta_bar_i = a_i theta_i: plain SGD on [1 ... 1] theta_bar = target, then map back.
    ones = np.ones(len(a))
    rescaled_path = trajectory_2d(lambda tb: (target - nb.sum(ones * tb)) ** 2, np.zeros(len(a)),
                                  optim.sgd(lr=0.25 / len(a)), steps)
    rescaled, mapped = rescaled_path[-1], rescaled_path[-1] / a
    run.check(np.allclose(mapped, per_m["rescaled"]["limit"], rtol=1e-12, atol=1e-14),
              f"SGD on the rescaled equation mapped back, {mapped.tolist()}, is not preconditioned SGD's limit with "
              f"M = diag(1/a_i^2), {per_m['rescaled']['limit'].tolist()}")
    # Adaptive optimizers realise M_t = diag(1 / RMS of the gradient) on the fly.
    adaptive_opts = {
        "adagrad": ("Adagrad (lr 0.5)", optim.adagrad(lr=0.5)),
        "rmsprop": ("RMSprop (lr 0.05, cosine)", optim.rmsprop(lr=optim.cosine_decay(0.05, 8 * steps))),
    }
    adaptive, labels = {}, {k: v[0] for k, v in PRECONDITIONERS.items()}
    for key, (label, opt) in adaptive_opts.items():
        path = trajectory_2d(loss, np.zeros(len(a)), opt, 8 * steps)
        paths[key], directions[key], labels[key] = path, np.sign(a), label
        adaptive[key] = {"limit": path[-1], "a_dot_limit": float(a @ path[-1]),
                         "distance_to_inverse_abs": float(np.linalg.norm(path[-1] - per_m["inverse_abs"]["limit"]))}
    # eps (1e-10 Adagrad, 1e-8 RMSprop) is not small next to the smallest coordinate's gradient late in the
    # run, so the adaptive limits match diag(1/|a_i|) only to about eps / (2 min |a_i|) relative to the residuals.
    run.check(all(v["distance_to_inverse_abs"] < 1e-4 for v in adaptive.values()),
              "the adaptive runs do not end at the diag(1/|a_i|) limit (distance limit 1e-4): " + ", ".join(
                  f"{labels[k]} {v['distance_to_inverse_abs']:.3g}" for k, v in adaptive.items()))

    # Random problems: diagonal M (batched) and full SPD M (batched as one block-diagonal matrix).
    def random_batch(X, t, M_batch, full):
        count_b = X.shape[0]
        curv = np.einsum("bnd,bde,bne->bn", X, M_batch, X) if full else np.einsum("bnd,bd->bn", X ** 2, M_batch)
        # Scaling M leaves the limit alone; scaled so max x_i^T M x_i = 1, one lr = n/2 suits every problem.
        M_batch = M_batch / curv.max(axis=1).reshape((-1,) + (1,) * (M_batch.ndim - 1))
        limits = np.stack([preconditioned_limit(Xb, tb, Mb) for Xb, tb, Mb in zip(X, t, M_batch)])
        XM = np.matmul(X, M_batch) if full else X * M_batch[:, None, :]
        P = null_projectors(XM)  # theta stays in range(M X^T), the row space of X M
        big_M = scipy.linalg.block_diag(*M_batch) if full else M_batch.ravel()
        idx = optim.sample_indices(n, random_steps * count_b, seed=int(rng.integers(2 ** 31)))
        idx = idx.reshape(random_steps, count_b)
        grad_fn = sampled_gradient(X, t, idx)
        worst = np.zeros(count_b)

        def observe(k, W):
            np.maximum(worst, row_space_distance(P, W), out=worst)

        W = optim.run(optim.preconditioned_sgd(lr=n / 2.0, M=big_M), np.zeros((count_b, d)), grad_fn,
                      random_steps, observe=observe, on_divergence="ignore").params
        scale = np.linalg.norm(limits, axis=1)
        err = np.linalg.norm(W - limits, axis=1) / scale
        plain = min_norm_points(X, t)
        shift = np.linalg.norm(limits - plain, axis=1) / np.linalg.norm(plain, axis=1)
        return {
            "problems": count_b, "at_limit": int(np.sum(err < tol)),
            "distance": [float(np.median(err)), float(err.max())],
            "max_distance_to_range": float((worst / scale).max()),
            "distance_of_limit_to_min_norm": [float(shift.min()), float(np.median(shift))],
        }, err, shift

    X, t = random_problems(rng, count, n, d)
    diag_M = np.exp(rng.uniform(np.log(0.1), np.log(10), (count, d)))  # log-uniform in [0.1, 10]
    diag_report, diag_err, diag_shift = random_batch(X, t, diag_M, False)
    Xf, tf = random_problems(rng, count_full, n, d)
    A = rng.standard_normal((count_full, d, d))
    full_M = np.matmul(A, A.transpose(0, 2, 1)) / d + 0.1 * np.eye(d)
    full_report, full_err, full_shift = random_batch(Xf, tf, full_M, True)
    run.check(all(r["at_limit"] >= TYPICAL * r["problems"] and r["max_distance_to_range"] < ROW_SPACE_TOL
                  for r in (diag_report, full_report)),
              f"on random problems preconditioned SGD does not end at M X^T (X M X^T)^-1 t (90% within {tol:g}) or "
              "leaves range(M X^T) (limit 1e-10): " + "; ".join(
                  f"{label} M: {r['at_limit']} of {r['problems']} ended there, max distance to the range "
                  f"{r['max_distance_to_range']:.3g}"
                  for label, r in (("diagonal", diag_report), ("full", full_report))))

    return PreconditionedLimits(
        a=list(p["a"]), target=target, steps=steps, tol=tol,
        limit_identity=per_m["identity"]["limit"], limit_inverse_abs=per_m["inverse_abs"]["limit"],
        rescaled_solution=rescaled, limit_rescaled=per_m["rescaled"]["limit"],
        labels=labels, preconditioned=per_m, adaptive=adaptive,
        limit_inverse_sqrt_abs=preconditioned_limit(a, target, 1.0 / np.sqrt(np.abs(a))),
        rescaled_mapped_back=mapped, random_diagonal=diag_report, random_full=full_report,
        paths=paths, random_errors=np.concatenate([diag_err, full_err]),
        random_shifts=np.concatenate([diag_shift, full_shift]), directions=directions,
    )


@figure("optim.preconditioned-sgd")
def preconditioned_figure(result: PreconditionedLimits, run: Context) -> None:
    import matplotlib.pyplot as plt

    r = result
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    styles = ["o-", "s-", "^-", "--", ":"]
    for i, (key, path) in enumerate(r.paths.items()):
        ray = r.directions[key] / np.linalg.norm(r.directions[key])
        moved = path[1:]
        off = np.linalg.norm(moved - np.outer(moved @ ray, ray), axis=1) / np.linalg.norm(moved, axis=1)
        ax.semilogy(np.arange(1, len(path)), floor(off), styles[i % len(styles)], color=f"C{i}", ms=2, lw=1,
                    markevery=max(1, len(off) // 20), label=r.labels[key])
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\sin$(angle between $\theta_k$ and its ray)")
    ax.set_title("Each run stays on the ray along $M a^\\top$\n"
                 r"(adaptive runs: along $\operatorname{sign}(a)$; $\epsilon$ tilts them slightly)")
    ax.legend(fontsize=7)
    ax = axes[1]
    shown = list(PRECONDITIONERS) + list(r.adaptive)
    limits = {**{k: v["limit"] for k, v in r.preconditioned.items()}, **{k: v["limit"] for k, v in r.adaptive.items()}}
    width = 0.8 / len(shown)
    dim = len(r.a)
    for i, key in enumerate(shown):
        ax.bar(np.arange(dim) + (i - len(shown) / 2 + 0.5) * width, limits[key], width, color=f"C{i}",
               label=r.labels[key])
    ax.set_yscale("log")
    ax.set_xticks(range(dim), [f"$\\theta_{i + 1}$" for i in range(dim)])
    ax.set_title("Limits: the preconditioner picks the solution")
    ax.legend(fontsize=7)
    ax = axes[2]
    bins = np.logspace(-17, 1, 37)
    ax.hist(r.random_errors.clip(1e-17), bins=bins, alpha=0.7, label=r"distance to $M X^\top (X M X^\top)^{-1} t$")
    ax.hist(r.random_shifts, bins=bins, alpha=0.7, label="its distance to $X^+ t$")
    ax.set_xscale("log")
    ax.set_xlabel("relative distance")
    ax.set_ylabel("problems")
    ax.set_title(f"{r.random_diagonal['problems']} diagonal and {r.random_full['problems']} full random $M$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "preconditioned", alt=(
        f"Left: each run on {listed(r.a)} $\\theta$ = {r.target:g} stays on its ray (sine of the angle at rounding "
        "level). Middle: the limits' coordinates on a log scale for $M = I$, $\\operatorname{diag}(1/|a_i|)$, "
        "$\\operatorname{diag}(1/a_i^2)$, Adagrad and "
        f"RMSprop; the rescaled limit is {vec(r.limit_rescaled, 3)}. Right: histograms over random problems of "
        "the distance to the closed-form limit (at rounding level) and of that limit's distance to the "
        "minimum-norm point (of order one)."))


# -- SGD with non-uniform sampling (problem set 004 Q7) ------------------------------


def lyapunov_terms(X, p, alpha):
    """The quantities of the Lyapunov argument for ``f_i = (y_i - x_i^T theta)^2`` sampled with ``p``.

    ``H = X~^T X~ = sum p_i x_i x_i^T`` (rows of X~ are ``sqrt(p_i) x_i``); ``lambda_min``
    is its smallest non-zero eigenvalue (that of ``X~ X~^T``), ``R2 = max ||x_i||^2``,
    ``rho = 4 alpha lambda_min - 4 alpha^2 lambda_max R2`` the guaranteed decrease, and
    ``K = E[A_i^T H A_i]`` with ``A_i = I - 2 alpha x_i x_i^T`` the exact one-step map of
    ``E[J]``: ``E[J(theta_{t+1}) | theta_t] = e^T K e`` for ``e = theta_t - theta*``.
    """
    Xt = np.sqrt(p)[:, None] * X
    H = Xt.T @ Xt
    eig = np.linalg.eigvalsh(Xt @ Xt.T)
    lam_min, lam_max = eig[0], eig[-1]
    R2 = float(np.max(np.sum(X ** 2, axis=1)))
    A = np.eye(X.shape[1]) - 2 * alpha * np.einsum("id,ie->ide", X, X)
    K = np.sum(p[:, None, None] * np.matmul(np.matmul(A, H), A), axis=0)  # A_i is symmetric
    return {"H": H, "lambda_min": lam_min, "lambda_max": lam_max, "R2": R2, "A": A, "K": K,
            "rho": 4 * alpha * lam_min - 4 * alpha ** 2 * lam_max * R2}


def worst_one_step_factor(X, H, K):
    """``max e^T K e / e^T H e`` over the row space of X: the exact worst one-step ratio E[J']/J."""
    B = theory.row_space_basis(X)
    return float(scipy.linalg.eigh(B.T @ K @ B, B.T @ H @ B, eigvals_only=True)[-1])


@dataclass
class NonuniformSGD:
    """SGD with non-uniform sampling: its limit, and the Lyapunov function J's decrease against the bound."""

    instances: int
    runs: int
    n: int
    d: int
    steps: int
    tol: float
    # slots
    # at alpha = 1/(2 R^2), TYPICAL of the runs end within tol of theta*, none leaves the row space
    reaches_min_norm: bool
    lyapunov_identity: bool        # sum p_i (y_i - x_i^T theta)^2 = (theta - theta*)^T X~^T X~ (theta - theta*)
    a_term_bound: bool             # E[A | theta] <= -4 alpha lambda_min J
    b_term_bound: bool             # E[B | theta] <= alpha^2 lambda_max R^2 J (no factor 4)
    b_term_bound_with_4: bool      # E[B | theta] <= 4 alpha^2 lambda_max R^2 J
    # E[J_{t+1} | theta_t] <= (1 - rho) J_t, rho = 4 alpha lambda_min - 4 alpha^2 lambda_max R^2
    expected_decrease: bool
    # evidence
    sampling_probabilities: np.ndarray
    runs_at_min_norm: int
    max_distance_to_min_norm: float      # last iterate, relative
    max_distance_to_row_space: float     # over all iterates, relative
    fast_step_q: list                    # exact worst one-step factor at alpha = 1/(2 R^2), per instance
    fast_step_rho: list                  # rho at that alpha (negative: the bound says nothing)
    alpha_star: np.ndarray               # lambda_min / (2 lambda_max R^2), per instance
    rho: np.ndarray
    exact_decrease: np.ndarray           # 1 - q*, per instance
    exact_under_bound: bool              # exact E[J_k] <= (1 - rho)^k J_0 at every step
    runs_under_bound: bool               # run mean <= (1 - rho)^k J_0 + 4 standard errors at every step
    runs_match_exact: float              # share of steps where the run mean is within 4 SE of the exact E[J_k]
    exact_final_ratio: np.ndarray        # E[J_steps] / J_0
    bound_final_ratio: np.ndarray        # (1 - rho)^steps
    identity_gap: float                  # max relative gap of the J identity on random theta
    probes: int
    b_ratio: np.ndarray                  # worst E[B] / (alpha^2 lambda_max R^2 J), per instance
    b_failures: int                      # instances where E[B] <= alpha^2 lambda_max R^2 J fails
    gradient_gap: float
    # (steps + 1, 3): min, median, max over the runs
    distance_band: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    J_mean: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    J_se: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    J_exact: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    q_star: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    # MNIST-1D, softmax regression: per-example gradient norms by vmap(grad), at 0 and after GD
    mnist1d_examples: int
    mnist1d_loss: float                  # mean cross-entropy after the GD steps
    mnist1d_norm_median: float           # median per-example gradient norm after the GD steps
    mnist1d_norm_max_over_median: float
    mnist1d_norms_start: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    mnist1d_norms_end: np.ndarray = field(repr=False, metadata=FIGURE_DATA)
    mnist1d_lipschitz: np.ndarray = field(repr=False, metadata=FIGURE_DATA)

    def summary(self) -> str:
        return (
            f"Constant-step SGD from 0 with random sampling probabilities $p_i$ on {self.instances} random systems "
            f"($n = {self.n}$, $d = {self.d}$), {self.runs} runs each: with $\\alpha = 1/(2 \\max \\|x_i\\|^2)$, "
            f"{self.runs_at_min_norm} of {self.instances * self.runs} runs end within {self.tol:g} (relative) of "
            f"the minimum-norm point $X^+ y$ and no iterate leaves the row space (max "
            f"{self.max_distance_to_row_space:.1e}). $J(\\theta) = \\sum_i p_i (y_i - x_i^\\top \\theta)^2$ "
            f"{'equals' if self.lyapunov_identity else 'differs from'} $\\|\\tilde{{X}} (\\theta - \\theta^*)\\|^2$ with "
            f"rows $\\sqrt{{p_i}}\\, x_i$ (largest gap {self.identity_gap:.1e}). With "
            f"$\\alpha^* = \\lambda_{{\\min}}/(2 \\lambda_{{\\max}} R^2)$, "
            f"$\\rho = 4 \\alpha \\lambda_{{\\min}} - 4 \\alpha^2 \\lambda_{{\\max}} R^2$ is between {self.rho.min():.1e} "
            f"and {self.rho.max():.1e}; the exact $E[J_k]$ and the {self.runs}-run mean "
            + ("stay under $(1 - \\rho)^k J_0$ at every step on every instance, and the exact worst one-step factor "
               "$q^*$ is below $1 - \\rho$. " if self.expected_decrease else "do not stay under $(1 - \\rho)^k J_0$. ")
            + f"$E[A] \\leq -4 \\alpha \\lambda_{{\\min}} J$ {'holds' if self.a_term_bound else 'fails'} on "
            f"{self.probes} random $\\theta$ per instance, and $E[B] \\leq 4 \\alpha^2 \\lambda_{{\\max}} R^2 J$ "
            f"{'holds' if self.b_term_bound_with_4 else 'fails'}; without the factor 4, "
            f"$E[B] \\leq \\alpha^2 \\lambda_{{\\max}} (\\max \\|x_i\\|^2) J$ fails on {self.b_failures} of {self.instances} instances (worst ratio "
            f"{self.b_ratio.max():.2f}). On the {self.mnist1d_examples} MNIST-1D training signals, softmax "
            f"regression's per-example gradient norms (one vmap of grad) have median {self.mnist1d_norm_median:.3g} and "
            f"reach {self.mnist1d_norm_max_over_median:.2f} times it: the spread non-uniform sampling exploits."
        )


def per_example_checks(run, X, y, thetas, two_R2):
    """Per-example gradients and Lipschitz constants of ``f_i(theta) = (y_i - x_i^T theta)^2`` from the engine.

    One ``nb.vmap`` over the rows inside one over the instances: ``grad`` of ``f_i`` at
    ``thetas[b]`` must be ``2 (x_i^T theta - y_i) x_i``, and the largest eigenvalue of the
    ``hessian`` of ``f_i`` (its Lipschitz constant) ``2 ||x_i||^2``, whose maximum over the
    rows is the ``2 R^2`` the step size ``1/(2 R^2)`` is built from.
    """
    def f_i(theta, x, t):
        return (t - nb.dot(x, theta)) ** 2

    per_row = nb.vmap(nb.vmap(nb.grad(f_i), in_axes=(None, 0, 0)))(thetas, X, y)  # (count, n, d)
    exact = 2.0 * (np.einsum("bnd,bd->bn", X, thetas) - y)[..., None] * X
    gap = float(np.max(np.abs(per_row - exact)) / np.max(np.abs(exact)))
    run.check(gap < 1e-12, f"per-example gradients from nb.vmap(nb.grad) differ from 2 (x_i^T theta - y_i) x_i "
                           f"by {gap:.3g} (relative; limit 1e-12)")
    lipschitz = np.linalg.eigvalsh(nb.vmap(nb.vmap(nb.hessian(f_i), in_axes=(None, 0, 0)))(thetas, X, y))[..., -1]
    exact_L = 2.0 * np.sum(X ** 2, axis=2)
    L_gap = float(np.max(np.abs(lipschitz - exact_L) / exact_L))
    run.check(L_gap < 1e-12 and np.allclose(lipschitz.max(axis=1), two_R2, rtol=1e-12, atol=0),
              f"per-example Lipschitz constants from nb.vmap(nb.hessian) differ from 2 ||x_i||^2 by {L_gap:.3g} "
              "(relative; limit 1e-12), or their maximum from 2 R^2")


def mnist1d_gradient_norms(run, steps=100, lr=0.5, check=8):
    """Per-example gradient norms of softmax regression on the MNIST-1D training set, by ``vmap(grad)``.

    The model (40 inputs, 10 classes, a bias) starts at 0 and takes ``steps`` full-batch
    gradient steps of size ``lr`` (deterministic); at the start and at the end every
    example's gradient of its own cross-entropy comes from one ``nb.vmap(nb.grad(...))``,
    and the first ``check`` examples are checked against ``nb.grad`` one at a time. Also
    returns each example's Lipschitz bound ``(||x_i||^2 + 1) / 2`` (the largest eigenvalue of
    ``diag(p) - p p^T`` is at most 1/2), the constants a non-uniform sampler would use.
    """
    from nablab.data import load_mnist1d

    data = load_mnist1d()
    X, y = np.asarray(data["x_train"], dtype=np.float64), np.asarray(data["y_train"])

    def loss_i(params, x, label):
        return -nb.log_softmax(x @ params["W"] + params["b"])[label]

    per_example = nb.vmap(nb.grad(loss_i), in_axes=(None, 0, 0))
    mean_loss = lambda params: nb.mean(nb.vmap(loss_i, in_axes=(None, 0, 0))(params, X, y))  # noqa: E731

    def norms(params):
        g = per_example(params, X, y)
        for i in range(check):
            one = nb.grad(loss_i)(params, X[i], y[i])
            gap = max(float(np.max(np.abs(g[k][i] - one[k]))) for k in one)
            run.check(gap < 1e-12, f"vmap(grad) of example {i} differs from grad by {gap:.3g} (limit 1e-12)")
        return np.sqrt(np.sum(g["W"] ** 2, axis=(1, 2)) + np.sum(g["b"] ** 2, axis=1))

    params = {"W": np.zeros((X.shape[1], 10)), "b": np.zeros(10)}
    at_start = norms(params)
    step = nb.grad(mean_loss)
    for _ in range(steps):
        g = step(params)
        params = {k: params[k] - lr * g[k] for k in params}
    return at_start, norms(params), (np.sum(X ** 2, axis=1) + 1.0) / 2.0, float(mean_loss(params))


@compute("optim.nonuniform-sgd")
def nonuniform_sgd(run: Context) -> NonuniformSGD:
    p = run.params
    rng = run.rng()
    count, runs, n, d, steps, tol, n_probes = (p["instances"], p["runs"], p["n"], p["d"], p["steps"], p["tol"],
                                               p["probes"])
    X = rng.standard_normal((count, n, d)) / np.sqrt(d)
    y = rng.standard_normal((count, n))
    # Non-uniform but bounded below (p_i >= 1/(2n)), so every row is visited often enough to converge.
    P = 0.5 * rng.dirichlet(np.ones(n), size=count) + 0.5 / n
    theta_star = min_norm_points(X, y)
    # One batch of count * runs independent runs: row r belongs to instance r // runs.
    Xr, yr = np.repeat(X, runs, axis=0), np.repeat(y, runs, axis=0)
    idx = np.stack([optim.sample_indices(n, steps * runs, p=P[b], seed=int(rng.integers(2 ** 31)))
                    .reshape(steps, runs) for b in range(count)], axis=1).reshape(steps, count * runs)
    grad_fn = sampled_gradient(Xr, yr, idx, weight=1.0)

    def per_instance_sgd(step_sizes):
        # A step size per instance: one learning rate per row of the batch, alpha_b on instance b's runs.
        return optim.sgd(np.repeat(step_sizes, runs)[:, None])

    R2 = np.max(np.sum(X ** 2, axis=2), axis=1)
    terms_fast = [lyapunov_terms(X[b], P[b], 0.5 / R2[b]) for b in range(count)]
    spectra = [lyapunov_terms(X[b], P[b], 0.0) for b in range(count)]
    alpha_star = np.array([sp["lambda_min"] / (2 * sp["lambda_max"] * sp["R2"]) for sp in spectra])
    terms = [lyapunov_terms(X[b], P[b], alpha_star[b]) for b in range(count)]
    rho = np.array([tm["rho"] for tm in terms])

    # Part 1: a practical step, alpha = 1/(2 max ||x_i||^2): the limit is the minimum-norm point.
    null = null_projectors(X)
    star_r = np.repeat(theta_star, runs, axis=0)
    scale = np.linalg.norm(star_r, axis=1)
    dist = np.empty((steps + 1, 3))  # min, median, max over all runs
    off_rows = np.zeros(count * runs)

    def watch(k, W):
        dist[k] = np.percentile(np.linalg.norm(W - star_r, axis=1) / scale, [0, 50, 100])
        np.maximum(off_rows, row_space_distance(null, W) / scale, out=off_rows)

    W = optim.run(per_instance_sgd(0.5 / R2), np.zeros((count * runs, d)), grad_fn, steps, observe=watch,
                  on_divergence="ignore").params
    at_star = np.linalg.norm(W - star_r, axis=1) / scale < tol

    # Part 2: alpha* = lambda_min / (2 lambda_max R2), where rho > 0: E[J_k] against (1 - rho)^k J_0.
    Xt_T = (np.sqrt(P)[:, :, None] * X).transpose(0, 2, 1)  # X~^T per instance: columns sqrt(p_i) x_i
    J_mean = np.empty((steps + 1, count))
    J_se = np.empty((steps + 1, count))

    def lyapunov(k, W):
        J = np.sum(np.matmul((W - star_r).reshape(count, runs, d), Xt_T) ** 2, axis=2)
        J_mean[k], J_se[k] = J.mean(axis=1), J.std(axis=1) / np.sqrt(runs)

    optim.run(per_instance_sgd(alpha_star), np.zeros((count * runs, d)), grad_fn, steps, observe=lyapunov,
              on_divergence="ignore")
    # The exact expectation: E[e e^T] evolves by Sigma -> sum_i p_i A_i Sigma A_i^T.
    J_exact = np.empty((steps + 1, count))
    H_all = np.stack([tm["H"] for tm in terms])
    A_all = np.stack([tm["A"] for tm in terms])  # (count, n, d, d), symmetric
    pA = P[:, :, None, None] * A_all
    Sigma = np.einsum("bd,be->bde", theta_star, theta_star)  # e_0 = -theta*
    for k in range(steps + 1):
        J_exact[k] = np.sum(H_all * Sigma, axis=(1, 2))
        Sigma = np.sum(np.matmul(np.matmul(pA, Sigma[:, None]), A_all), axis=1)
    J0 = J_exact[0]
    bound = (1 - rho)[None, :] ** np.arange(steps + 1)[:, None] * J0[None, :]
    exact_under = bool(np.all(J_exact <= bound * (1 + 1e-9)))
    mc_under = bool(np.all(J_mean <= bound * (1 + 1e-9) + 4 * J_se))
    within = np.abs(J_mean - J_exact) <= 4 * J_se + 1e-12 * J0
    q_star = np.array([worst_one_step_factor(X[b], tm["H"], tm["K"]) for b, tm in enumerate(terms)])

    # The derivation, line by line, on each instance: exact expectations over the sampled row.
    probes = rng.standard_normal((count, n_probes, d))
    J_identity, A_ok, B_as_written, B_with_4, ratio = [], [], [], [], []
    for b, tm in enumerate(terms):
        Xb, pb, H, a = X[b], P[b], tm["H"], alpha_star[b]
        thetas = theta_star[b] + probes[b]
        e = probes[b]
        J = np.einsum("kd,de,ke->k", e, H, e)
        J_identity.append(float(np.abs(J - ((y[b][None, :] - thetas @ Xb.T) ** 2 @ pb)).max() / J.max()))
        xe, xHe = e @ Xb.T, e @ H @ Xb.T  # x_i^T e and x_i^T H e, per probe and row
        EA = -4 * a * (xe * xHe) @ pb
        c = np.einsum("id,de,ie->i", Xb, H, Xb)  # x_i^T H x_i
        EB = 4 * a ** 2 * (xe ** 2 * c) @ pb
        A_ok.append(bool(np.all(EA <= -4 * a * tm["lambda_min"] * J * (1 - 1e-9))))
        B_with_4.append(bool(np.all(EB <= 4 * a ** 2 * tm["lambda_max"] * tm["R2"] * J * (1 + 1e-9))))
        # Worst direction for B: e with X e = unit vector at the row of largest x_i^T H x_i.
        i = int(np.argmax(c))
        e_w = theory.min_norm_solution(Xb, np.eye(n)[i])
        J_w, EB_w = float(e_w @ H @ e_w), float(4 * a ** 2 * pb[i] * c[i])
        no_4 = a ** 2 * tm["lambda_max"] * tm["R2"] * J_w
        B_as_written.append(bool(EB_w <= no_4 * (1 + 1e-9) and np.all(EB <= a ** 2 * tm["lambda_max"] * tm["R2"] * J)))
        ratio.append(EB_w / no_4)
    gap = engine_gradient_gap(Xr, yr, grad_fn, rng.standard_normal((count * runs, d)), idx=idx, weight=1.0)
    run.check(gap < 1e-12, f"the batched sampled gradient differs from nablab.grad of the loss by {gap:.3g} "
                           "(relative; limit 1e-12)")
    per_example_checks(run, X, y, theta_star + probes[:, 0], 2.0 * R2)
    norms_start, norms_end, lipschitz, mnist_loss = mnist1d_gradient_norms(run)
    # The exact one-step factor is an upper bound for every direction: the exact E[J_k] can never beat q*^k.
    run.check(bool(np.all(J_exact[1:] <= q_star[None, :] ** np.arange(1, steps + 1)[:, None] * J0 * (1 + 1e-6))),
              "the exact E[J_k] exceeds q*^k J_0, the worst one-step factor applied k times")

    return NonuniformSGD(
        instances=count, runs=runs, n=n, d=d, steps=steps, tol=tol,
        reaches_min_norm=bool(at_star.mean() >= TYPICAL and off_rows.max() < ROW_SPACE_TOL),
        lyapunov_identity=max(J_identity) < 1e-10, a_term_bound=all(A_ok),
        b_term_bound=all(B_as_written), b_term_bound_with_4=all(B_with_4),
        expected_decrease=exact_under and mc_under and bool(np.all(q_star <= 1 - rho + 1e-12)),
        sampling_probabilities=P, runs_at_min_norm=int(at_star.sum()), max_distance_to_min_norm=float(dist[-1, 2]),
        max_distance_to_row_space=float(off_rows.max()),
        fast_step_q=[worst_one_step_factor(X[b], tm["H"], tm["K"]) for b, tm in enumerate(terms_fast)],
        fast_step_rho=[float(tm["rho"]) for tm in terms_fast],
        alpha_star=alpha_star, rho=rho, exact_decrease=1 - q_star, exact_under_bound=exact_under,
        runs_under_bound=mc_under, runs_match_exact=float(within.mean()),
        exact_final_ratio=J_exact[-1] / J0, bound_final_ratio=(1 - rho) ** steps,
        identity_gap=max(J_identity), probes=n_probes, b_ratio=np.array(ratio),
        b_failures=int(sum(not v for v in B_as_written)), gradient_gap=gap,
        distance_band=dist, J_mean=J_mean, J_se=J_se, J_exact=J_exact, q_star=q_star,
        mnist1d_examples=len(norms_end), mnist1d_loss=mnist_loss, mnist1d_norm_median=float(np.median(norms_end)),
        mnist1d_norm_max_over_median=float(norms_end.max() / np.median(norms_end)),
        mnist1d_norms_start=norms_start, mnist1d_norms_end=norms_end, mnist1d_lipschitz=lipschitz,
    )


@figure("optim.nonuniform-sgd")
def nonuniform_figure(result: NonuniformSGD, run: Context) -> None:
    import matplotlib.pyplot as plt

    r = result
    ks = np.arange(r.steps + 1)
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = axes[0, 0]
    ax.semilogy(ks, floor(r.distance_band[:, 1]), "C0", label=f"median of {r.instances} instances x {r.runs} runs")
    ax.fill_between(ks, floor(r.distance_band[:, 0]), floor(r.distance_band[:, 2]), color="C0", alpha=0.2, lw=0)
    ax.axhline(r.tol, color="gray", ls=":", lw=1, label=f"tolerance {r.tol:g}")
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\|\theta_k - \theta^*\| / \|\theta^*\|$")
    ax.set_title(r"$\alpha = 1/(2 \max \|x_i\|^2)$: every run ends at the minimum-norm point")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    show = int(np.argmax(r.rho))
    J0 = r.J_exact[0, show]
    ax.semilogy(ks, r.J_mean[:, show], "C0", label=f"mean of $J$ over {r.runs} runs")
    ax.fill_between(ks, np.maximum(r.J_mean[:, show] - 2 * r.J_se[:, show], 1e-300),
                    r.J_mean[:, show] + 2 * r.J_se[:, show], color="C0", alpha=0.2, lw=0)
    ax.semilogy(ks, r.J_exact[:, show], "k--", lw=1, label="exact $E[J_k]$")
    ax.semilogy(ks, (1 - r.rho[show]) ** ks * J0, "C3", label=f"$(1 - \\rho)^k J_0$, $\\rho$ = {r.rho[show]:.2e}")
    ax.semilogy(ks, r.q_star[show] ** ks * J0, "C2:",
                label=f"${{q^*}}^k J_0$, $q^*$ = {r.q_star[show]:.4f} (worst one step)")
    ax.set_xlabel("step")
    ax.set_ylabel(r"$J(\theta_k)$")
    ax.set_title(f"Instance {show}: $\\alpha^* = \\lambda_{{\\min}} / (2 \\lambda_{{\\max}} R^2)$ = "
                 f"{r.alpha_star[show]:.3g}")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.loglog(r.rho, 1 - r.q_star, "C0o", ms=5)
    lo, hi = min(r.rho.min(), (1 - r.q_star).min()), max(r.rho.max(), (1 - r.q_star).max())
    ax.loglog([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel(r"$\rho = 4 \alpha \lambda_{\min} - 4 \alpha^2 \lambda_{\max} R^2$ (the bound)")
    ax.set_ylabel("$1 - q^*$ (exact worst one-step decrease)")
    ax.set_title("Every instance decreases faster than the bound (above the line)")
    ax = axes[1, 1]
    ax.bar(np.arange(r.instances), r.b_ratio, color="C1")
    ax.axhline(1, color="k", lw=0.8)
    ax.axhline(4, color="C3", lw=0.8, ls="--", label="4: the factor of the $E[B]$ bound")
    ax.set_xlabel("instance")
    ax.set_ylabel(r"worst $E[B] / (\alpha^2 \lambda_{\max} R^2 J)$")
    ax.set_title(r"$E[B] \leq \lambda_{\max} R^2 \alpha^2 J$ (no factor 4)" "\nfails above 1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "nonuniform", alt=(
        f"Top left: relative distance to the minimum-norm point over {r.steps} steps for {r.instances * r.runs} "
        f"runs, falling below {r.tol:g}. Top right: on instance {show}, the run mean of $J$, the exact $E[J_k]$, the "
        "bound $(1 - \\rho)^k J_0$ above both, and ${q^*}^k J_0$. Bottom left: $1 - q^*$ against $\\rho$ per "
        "instance, all on or above the identity line. Bottom right: the worst "
        f"$E[B] / (\\alpha^2 \\lambda_{{\\max}} R^2 J)$ per instance, between "
        f"{r.b_ratio.min():.2f} and {r.b_ratio.max():.2f}: above 1 and at most 4."))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    bins = np.geomspace(min(r.mnist1d_norms_start.min(), r.mnist1d_norms_end.min()),
                        max(r.mnist1d_norms_start.max(), r.mnist1d_norms_end.max()), 50)
    ax.hist(r.mnist1d_norms_start, bins=bins, color="C0", alpha=0.6, label="at 0")
    ax.hist(r.mnist1d_norms_end, bins=bins, color="C1", alpha=0.6,
            label=f"after gradient descent (loss {r.mnist1d_loss:.2f})")
    ax.set_xscale("log")
    ax.set_xlabel(r"per-example gradient norm $\|\nabla f_i\|$")
    ax.set_ylabel("examples")
    ax.set_title(f"MNIST-1D, softmax regression: {r.mnist1d_examples} per-example\ngradient norms (vmap of grad)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.hist(r.mnist1d_lipschitz, bins=50, color="C2")
    ax.axvline(np.mean(r.mnist1d_lipschitz), color="k", lw=0.8, ls="--",
               label="mean: the constant of sampling with $p_i \\propto L_i$")
    ax.axvline(np.max(r.mnist1d_lipschitz), color="C3", lw=0.8, label="max: the constant of uniform sampling")
    ax.set_xlabel(r"Lipschitz bound $L_i = (\|x_i\|^2 + 1)/2$")
    ax.set_ylabel("examples")
    ax.set_title("Per-example Lipschitz bounds: sampling with $p_i \\propto L_i$\npays their mean, not their max")
    ax.legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "mnist1d-gradient-norms", alt=(
        f"Left: histograms of the {r.mnist1d_examples} per-example gradient norms of softmax regression on "
        "MNIST-1D, at 0 and after gradient descent, on a log axis; after it the median is "
        f"{r.mnist1d_norm_median:.3g} and the largest {r.mnist1d_norm_max_over_median:.2f} times it. Right: the "
        f"histogram of the per-example Lipschitz bounds $L_i$, mean {np.mean(r.mnist1d_lipschitz):.3g} and "
        f"max {np.max(r.mnist1d_lipschitz):.3g}."))
