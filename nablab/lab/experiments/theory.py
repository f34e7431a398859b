"""The theory claims: least-squares gradients, divergence thresholds, wide minima, the proximal
view of GD, the regret lemma, the O(1/sqrt(T)) rate, and non-monotone SGD.

Each claim is ``compute(run) -> result`` and ``figure(result, run)``. The results hold one
field per answer slot of the claim (its true value, computed here) beside the evidence;
grading the answer sets against them gives the verdicts. The experiments draw many random
instances from ``run.rng()``; checks of the library itself (hand-written derivatives against
autodiff, runs against closed forms, proven identities) go through ``run.check``, so a
failure there is an error, never a verdict. The many-start loops of theory.wide-minima and
theory.gd-threshold run as sweeps (:mod:`nablab.lab.sweep`) on the run's executor, with the
same results on any. Gradient descent runs through :func:`nablab.optim.iterate`, the loop
every optimizer in nablab runs in, with the step written out (:func:`_gd`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import nablab as nb
from nablab import optim, theory
from nablab.lab.claims import CLAIMS_BY_ID
from nablab.lab.registry import Context, ParamError, compute, figure
from nablab.lab.sweep import sweep

#: Evidence the figure needs but the report does not list.
_FOR_FIGURE = {"report": False}


def _hidden():
    return field(default=None, repr=False, metadata=_FOR_FIGURE)


def _gd(grad, lr):
    """The step ``theta <- theta - lr grad(theta)`` for :func:`nablab.optim.iterate`, the one loop.

    Written out rather than run as ``optim.run(optim.sgd(lr), ...)``: these runs are
    batches of small problems (an array of step sizes ``lr`` broadcast against theta),
    where ``optim.sgd``'s per-step handling of parameter trees costs more than the
    step itself (through it theory.gd-threshold took 2.4 times as long and
    theory.wide-minima 1.4 times); the loop costs a fraction of a microsecond per step.
    """
    def step(theta, state, k):
        return optim.Step(theta - lr * grad(theta), state)

    return step


# --------------------------------------------------------------------------- theory.lsq-gradients

#: Reverse mode and the closed forms are the same arithmetic up to rounding.
_FORMULA_TOL = 1e-12


@dataclass
class LsqGradients:
    per_example_formula: bool   # slot: (x_i^T theta - y_i) x_i is the gradient of l_i
    full_formula: bool          # slot: X^T (X theta - Y) is the gradient of L
    trials: int
    per_example_error: float    # max relative difference, reverse mode vs (x_i^T theta - y_i) x_i
    full_error: float           # max relative difference, reverse mode vs X^T (X theta - Y)
    finite_difference_error: float  # max relative difference, central differences vs reverse mode

    def summary(self) -> str:
        def verb(ok):
            return "equals" if ok else "differs from"
        return (f"On {self.trials} random least-squares problems ($N$ and $p$ from 1 to 29), the reverse-mode "
                f"gradient of $l_i$ {verb(self.per_example_formula)} $(x_i^\\top \\theta - y_i) x_i$ (largest "
                f"relative difference {self.per_example_error:.1e}) and that of $L$ {verb(self.full_formula)} "
                f"$X^\\top (X \\theta - Y)$ ({self.full_error:.1e}); central differences agree with reverse mode to "
                f"{self.finite_difference_error:.1e}.")


@compute("theory.lsq-gradients")
def lsq_gradients(run: Context) -> LsqGradients:
    rng = run.rng()
    trials = run.params["trials"]
    if trials < 1:
        raise ParamError(f"trials={trials}: need at least one problem")
    worst_single, worst_total, worst_fd = 0.0, 0.0, 0.0
    for _ in range(trials):
        n, p = rng.integers(1, 30), rng.integers(1, 30)
        X, Y, theta = rng.standard_normal((n, p)), rng.standard_normal(n), rng.standard_normal(p)
        i = rng.integers(n)
        single = nb.grad(lambda th: 0.5 * (X[i] @ th - Y[i]) ** 2)(theta)
        total = nb.grad(lambda th: 0.5 * nb.sum((X @ th - Y) ** 2))(theta)
        formula_single = (X[i] @ theta - Y[i]) * X[i]
        formula_total = X.T @ (X @ theta - Y)
        scale = 1 + np.abs(total).max()
        worst_single = max(worst_single, np.abs(single - formula_single).max() / (1 + np.abs(single).max()))
        worst_total = max(worst_total, np.abs(total - formula_total).max() / scale)
        fd = nb.numerical_jacobian(lambda th: 0.5 * np.sum((X @ th - Y) ** 2), theta)
        worst_fd = max(worst_fd, np.abs(fd - total).max() / scale)
    run.check(worst_fd < 1e-6, f"central differences differ from nablab's reverse mode by {worst_fd:.3g} "
                               "(relative; tolerance 1e-6)")
    return LsqGradients(bool(worst_single < _FORMULA_TOL), bool(worst_total < _FORMULA_TOL), trials,
                        float(worst_single), float(worst_total), float(worst_fd))


# --------------------------------------------------------------------------- theory.gd-1d-divergence

_AT_THRESHOLD = ("converges", "diverges", "2-cycle")


def _growth_1d(grad_f, lrs, theta0, steps: int, observe=None):
    """GD on theta^2/2 for every step size in ``lrs`` (rows) from every start in ``theta0`` (columns).

    Returns the iterates ``theta_K`` and the measured growth per step ``(|theta_K|/|theta_0|)^(1/K)``
    (overflow counts as growth: ``inf``). ``observe(k, theta)`` sees every iterate, as in ``optim.run``.
    """
    # Unchecked: the diverging step sizes are half of what is measured.
    with np.errstate(over="ignore", invalid="ignore"):
        theta = optim.iterate(_gd(grad_f, lrs[:, None]), np.tile(theta0, (lrs.size, 1)), steps, observe=observe,
                              on_divergence="ignore").params
        ratio = np.abs(theta) / np.abs(theta0)
        factor = np.where(np.isfinite(ratio), ratio ** (1.0 / steps), np.inf)
    return theta, factor


def _threshold_1d(grad_f, lo: float, hi: float, theta0, steps: int, points: int = 256, rounds: int = 8):
    """The step size between converging from every start and diverging from every start.

    Multisection of ``[lo, hi]`` (``lo`` converges, ``hi`` diverges): each round runs GD at
    ``points`` step sizes inside the bracket and keeps the part between the largest that
    converged and the smallest that diverged, until it is 1e-10 (relative) wide. Returns
    the bracket's midpoint.
    """
    for _ in range(rounds):
        if hi - lo <= 1e-10 * hi:
            break
        lrs = np.linspace(lo, hi, points + 2)[1:-1]
        _, factor = _growth_1d(grad_f, lrs, theta0, steps)
        down, up = (factor < 1.0).all(axis=1), (factor > 1.0).all(axis=1)
        if up.any():
            hi = float(lrs[up].min())
        if (down & (lrs < hi)).any():
            lo = float(lrs[down & (lrs < hi)].max())
    return (lo + hi) / 2


@dataclass
class Divergence1D:
    threshold: float          # slot: the step size between convergence and divergence
    diverges_above: bool      # slot: every step size above it diverges from every start
    converges_below: bool     # slot: every step size in (0, threshold) converges from every start
    at_threshold: str         # slot: what GD does at the threshold itself
    closed_form: bool         # slot: theta_k = (1 - alpha)^k theta_0
    step_sizes: int
    starts: int
    steps: int
    lr_max: float
    largest_converging: float   # on the grid: the largest step size that converged from every start
    smallest_diverging: float   # on the grid: the smallest step size that diverged from every start
    growth_error: float         # max relative difference, measured growth per step vs |1 - alpha|
    lrs: np.ndarray = _hidden()
    median_growth: np.ndarray = _hidden()
    converging: np.ndarray = _hidden()
    diverging: np.ndarray = _hidden()
    shown: list = _hidden()
    paths: np.ndarray = _hidden()   # |theta_k / theta_0| for the step sizes in ``shown``, one start

    def summary(self) -> str:
        below = ("converged from every start for every $\\alpha$ below it" if self.converges_below
                 else "did not converge from every start for every $\\alpha$ below it")
        above = ("grew from every start for every $\\alpha$ above it" if self.diverges_above
                 else "did not grow from every start for every $\\alpha$ above it")
        at = {"2-cycle": "neither converges nor diverges: $\\theta_k = (-1)^k \\theta_0$, a 2-cycle",
              "converges": "converges", "diverges": "diverges"}[self.at_threshold]
        return (f"Over {self.step_sizes} step sizes in (0, {self.lr_max:g}] and {self.starts} random starts "
                f"each, GD on $\\theta^2/2$ changes from converging to diverging at $\\alpha$ = {self.threshold:.9g} "
                f"(found by multisection between {self.largest_converging:g} and {self.smallest_diverging:g}); "
                f"it {below} and {above}. The measured growth per step equals $|1 - \\alpha|$ to "
                f"{self.growth_error:.1e}, as $\\theta_k = (1 - \\alpha)^k \\theta_0$ says. At the threshold it {at}.")


@compute("theory.gd-1d-divergence")
def gd_1d_divergence(run: Context) -> Divergence1D:
    rng = run.rng()
    steps, starts, n_lr, lr_max = (run.params[k] for k in ("steps", "starts", "n_lr", "lr_max"))
    if steps < 2 or starts < 1 or n_lr < 3 or not lr_max > 2:
        raise ParamError(f"need steps >= 2, starts >= 1, n_lr >= 3 and lr_max > 2; got steps={steps}, "
                         f"starts={starts}, n_lr={n_lr}, lr_max={lr_max}")
    # A grid through 2 exactly (so the boundary case is run as such), without 0.
    lrs = np.unique(np.concatenate([np.linspace(0.0, lr_max, n_lr)[1:], [2.0]]))
    signs = rng.choice([-1.0, 1.0], size=starts)
    theta0 = signs * rng.uniform(0.1, 10.0, size=starts)       # theta0 != 0

    grad_f = nb.grad(lambda t: nb.sum(t * t / 2))                # f(theta) = theta^2/2, summed over the batch
    shown = [0.5, 1.9, 2.0, 2.1, 3.0]
    shown_idx = [int(np.argmin(np.abs(lrs - a))) for a in shown]
    history = []  # |theta_k / theta_0| of the shown step sizes, for the figure
    theta, factor = _growth_1d(grad_f, lrs, theta0, steps,
                               observe=lambda k, th: history.append(th[shown_idx] / theta0))
    closed = np.abs(1.0 - lrs)[:, None]                             # |1 - alpha| per step
    finite = np.isfinite(factor)
    # Compare where theta_K is a normal float: overflow is divergence, and
    # underflow (|1 - alpha|^K below 1e-290, e.g. alpha near 1) is convergence.
    comparable = finite & (np.abs(theta) > 1e-290)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = float((np.abs(factor - closed) / closed)[comparable].max())
    run.check(rel_err < 1e-10, f"GD's measured growth per step differs from |1 - alpha| by {rel_err:.3g} "
                               "(relative; tolerance 1e-10)")

    diverges = (factor > 1.0).all(axis=1)
    converges = (factor < 1.0).all(axis=1)
    run.check(converges.any() and diverges.any(), "no step size on the grid converged, or none diverged")
    last_conv, first_div = float(lrs[converges].max()), float(lrs[diverges].min())
    lo = float(lrs[converges & (lrs < first_div)].max())
    threshold = _threshold_1d(grad_f, lo, first_div, theta0[:4], steps)
    diverges_above = bool(np.all(diverges[lrs > threshold]))
    converges_below = bool(np.all(converges[lrs < threshold]))

    at = int(np.argmin(np.abs(lrs - threshold)))       # the grid point at the threshold (2 is on the grid)
    run.check(abs(lrs[at] - threshold) <= 1e-9 * threshold,
              f"no step size on the grid is at the threshold {threshold:.12g} (nearest: {lrs[at]:.12g})")
    path_at = np.array([h[shown_idx.index(at)] for h in history]) if at in shown_idx else None
    if converges[at]:
        at_threshold = "converges"
    elif diverges[at]:
        at_threshold = "diverges"
    else:
        cycle = theta[at] / theta0
        run.check(np.all(np.abs(cycle) == 1.0) and (path_at is None or np.all(path_at[1:] == -path_at[:-1])),
                  f"at alpha = {lrs[at]:g} GD neither converged, diverged nor cycled")
        at_threshold = "2-cycle"
    return Divergence1D(
        threshold=threshold, diverges_above=diverges_above, converges_below=converges_below,
        at_threshold=at_threshold, closed_form=bool(rel_err < 1e-10), step_sizes=int(lrs.size),
        starts=starts, steps=steps, lr_max=float(lr_max), largest_converging=last_conv,
        smallest_diverging=first_div, growth_error=rel_err, lrs=lrs,
        median_growth=np.median(np.where(finite, factor, np.nan), axis=1), converging=converges,
        diverging=diverges, shown=[float(lrs[i]) for i in shown_idx],
        paths=np.abs(np.array(history)[:, :, 0]))


@figure("theory.gd-1d-divergence")
def gd_1d_divergence_figure(r: Divergence1D, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    lrs, med = r.lrs, r.median_growth
    at = int(np.argmin(np.abs(lrs - r.threshold)))
    ax.plot(lrs, np.abs(1.0 - lrs), "k-", lw=1, label=r"$|1-\alpha|$ (closed form)")
    ax.plot(lrs[r.converging], med[r.converging], "o", ms=2.5, color="tab:green", label="measured: converges")
    ax.plot(lrs[r.diverging], med[r.diverging], "o", ms=2.5, color="tab:red", label="measured: diverges")
    ax.plot([lrs[at]], [med[at]], "s", ms=7, color="tab:orange",
            label=f"$\\alpha={lrs[at]:g}$: {r.at_threshold}")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.axvline(r.threshold, color="gray", lw=0.8, ls="--")
    ax.set_xlabel(r"step size $\alpha$")
    ax.set_ylabel(r"growth per step $(|\theta_K|/|\theta_0|)^{1/K}$")
    ax.set_title(f"GD on $\\theta^2/2$: {r.starts} starts per $\\alpha$, $K = {r.steps}$")
    ax.legend(fontsize=8)
    ax = axes[1]
    ks = np.arange(min(r.steps, 40) + 1)
    for j, a in enumerate(r.shown):
        ax.semilogy(ks, r.paths[ks, j], "o-", ms=2.5, lw=1, label=f"$\\alpha$ = {a:g}: factor {abs(1 - a):g}")
    ax.set_xlabel("step $k$")
    ax.set_ylabel(r"$|\theta_k / \theta_0|$ (the sign flips each step when $\alpha > 1$)")
    ax.set_title(r"$\theta_k = (1-\alpha)^k \theta_0$, one start")
    ax.legend(fontsize=8)
    run.savefig(fig, "divergence", alt=(
        f"Left: the measured growth per step of GD on $\\theta^2/2$ against the step size, on the line "
        f"$|1 - \\alpha|$: below 1 (converging, green) left of $\\alpha$ = {r.threshold:.4g}, above 1 (diverging, "
        f"red) right of it. Right: $|\\theta_k/\\theta_0|$ over the steps for $\\alpha$ = "
        f"{', '.join(f'{a:g}' for a in r.shown)}, flat at $\\alpha = 2$."))


# --------------------------------------------------------------------------- theory.gd-threshold


def _random_lsq(rng, problems: int, n: int, p: int):
    """Random least-squares problems with varied conditioning: X (P, n, p), Y (P, n)."""
    scales = 10.0 ** rng.uniform(-1.0, 1.0, size=(problems, 1, p))
    X = rng.standard_normal((problems, n, p)) * scales
    Y = rng.standard_normal((problems, n)) * 3.0
    return X, Y


def _lsq_gd(H, b, theta, lr, steps: int, observe=None):
    """``steps`` of GD on f = 1/2 ||X theta - Y||^2, batched.

    ``H = X^T X`` and ``b = X^T Y`` (shapes (P, p, p), (P, p, 1)) make the
    gradient ``X^T (X theta - Y) = H theta - b`` cheaper for many columns of
    theta (one start per column); ``lr`` broadcasts against theta (P, p, S).
    ``observe(k, theta)`` sees every iterate, as in ``optim.run``.
    """
    # Unchecked: the runs above the threshold diverge on purpose.
    with np.errstate(over="ignore", invalid="ignore"):
        return optim.iterate(_gd(lambda th: H @ th - b, lr), theta, steps, observe=observe,
                             on_divergence="ignore").params


def threshold_task(H, b, theta_star, theta0, lr, steps: int, start, bisect_steps: int) -> dict:
    """One sweep task of theory.gd-threshold, for a batch of problems (leading axis).

    ``theta``: GD from every start in ``theta0`` with step sizes ``lr`` after
    ``steps`` steps. ``threshold``: each problem's observed divergence threshold,
    by bisection on the step size from ``start``; the bracket comes from the
    diagonal (rho >= max_i H_ii), not from the eigenvalues.
    """
    thetaK = _lsq_gd(H, b, theta0, lr, steps)
    lo = np.zeros(H.shape[0])
    hi = 4.0 / np.einsum("kii->ki", H).max(axis=1)
    e_start = np.linalg.norm(start - theta_star, axis=(1, 2))
    for _ in range(25):  # the bracket shrinks to 2^-25 of its width: far below the tolerance
        mid = (lo + hi) / 2
        end = _lsq_gd(H, b, start, mid[:, None, None], bisect_steps)
        with np.errstate(over="ignore", invalid="ignore"):
            e_end = np.linalg.norm(end - theta_star, axis=(1, 2))
        up = ~np.isfinite(e_end) | (e_end > e_start)
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return {"theta": thetaK, "threshold": (lo + hi) / 2}


#: Just above the threshold the growth |1 - 2 ratio|^K is slow, so a finite run misses some
#: starts; from this ratio on, at least _MOST of them must have grown.
_CLEAR_RATIO, _MOST = 1.05, 0.99


@dataclass
class ThresholdLsq:
    threshold_ratio: float    # slot: observed threshold / (2/rho), the problem farthest from 1
    diverges_above: bool      # slot: almost every start diverges above the threshold
    converges_below: bool     # slot: every start converges below it
    error_recursion: bool     # slot: theta_k - theta* = (I - alpha X^T X)^k (theta_0 - theta*)
    problems: int
    x_shape: list
    starts: int
    steps: int
    ratios: list
    growing_fraction: list    # per ratio: the fraction of starts whose error grew after K steps
    contraction_below: float  # largest max_i |1 - alpha lambda_i| below the threshold
    median_shrink_below: float  # median ||theta_K - theta*|| / ||theta_0 - theta*|| below the threshold
    threshold_ratio_median: float
    threshold_ratio_max_deviation: float
    closed_form_error: float  # max relative difference, GD runs vs (I - alpha X^T X)^K e_0
    orthogonal_ratio: float   # the step size (x threshold) of the run from the exceptional set
    orthogonal_smallest_error: float  # smallest ||e_k|| / ||e_0|| that run reaches
    orthogonal_escape_step: int | None  # first step where its error exceeds the start's
    bisect_steps: int
    observed_ratios: np.ndarray = _hidden()
    trajectories: dict = _hidden()

    def summary(self) -> str:
        ratios = np.array(self.ratios)
        frac = np.array(self.growing_fraction)
        below, clear = ratios < 1, ratios >= _CLEAR_RATIO
        parts = [f"On {self.problems} random ${self.x_shape[0]} \\times {self.x_shape[1]}$ least-squares problems, "]
        if below.any():
            parts.append(
                ("no start ever moved away from $\\theta^*$ below the threshold $2/\\rho(X^\\top X)$"
                 if frac[below].max() == 0
                 else f"up to {frac[below].max():.1%} of the starts moved away from $\\theta^*$ below the threshold")
                + f" (ratios {', '.join(f'{r:g}' for r in ratios[below])}; the per-step contraction is at most "
                f"1 - {1 - self.contraction_below:.1e} and the median error after {self.steps} steps is "
                f"{self.median_shrink_below:.2g} of the start's); ")
        if clear.any():
            least = frac[clear].min()
            parts.append((f"from {_CLEAR_RATIO:g} x the threshold up, every random start diverged within "
                          if least == 1.0 else f"from {_CLEAR_RATIO:g} x the threshold up, at least {least:.1%} "
                          "of the random starts diverged within ") + f"{self.steps} steps. ")
        parts.append(f"Bisection on the step size finds each problem's divergence threshold within "
                     f"{self.threshold_ratio_max_deviation:.1e} (relative) of $2/\\rho(X^\\top X)$. At "
                     f"{self.orthogonal_ratio:g} x the threshold a start with no component along the amplified "
                     f"eigenvectors shrinks its error to {self.orthogonal_smallest_error:.1e} of the start's ")
        parts.append(f"until rounding errors along those eigenvectors, amplified every step, take over at step "
                     f"{self.orthogonal_escape_step}: the exceptional set has measure zero and is numerically "
                     "unstable." if self.orthogonal_escape_step is not None else
                     "and stays there for every step run.")
        return "".join(parts)


@compute("theory.gd-threshold")
def gd_threshold(run: Context) -> ThresholdLsq:
    rng = run.rng()
    problems, n, p, starts, steps = (run.params[k] for k in ("problems", "n", "p", "starts", "steps"))
    ratios = np.array(run.params["ratios"], dtype=float)
    bis_steps, chunk = run.params["bisect_steps"], run.params["chunk"]
    if min(problems, n, p, starts, steps, bis_steps) < 1 or np.any(ratios <= 0) or np.any(ratios == 1):
        raise ParamError(f"need positive problems, n, p, starts, steps, bisect_steps and ratios != 1 (the "
                         f"boundary); got problems={problems}, n={n}, p={p}, starts={starts}, steps={steps}, "
                         f"bisect_steps={bis_steps}, ratios={ratios.tolist()}")
    if chunk < 1:
        raise ParamError(f"chunk={chunk}: need at least one problem per task")
    if not (np.any(ratios < 1) and np.any(ratios >= _CLEAR_RATIO)):
        raise ParamError(f"ratios={','.join(f'{r:g}' for r in ratios)}: need ratios below 1 and at or above "
                         f"{_CLEAR_RATIO:g}, to see both sides of the threshold")
    X, Y = _random_lsq(rng, problems, n, p)
    H = np.einsum("kni,knj->kij", X, X)
    b = np.einsum("kni,kn->ki", X, Y)[:, :, None]
    theta_star = np.stack([theory.lstsq(X[k], Y[k]) for k in range(problems)])[:, :, None]
    threshold = np.array([theory.gd_threshold(X[k]) for k in range(problems)])

    # (a) fraction of random starts whose error grew, for lr = ratio * 2/rho.
    C = ratios.size
    theta0 = rng.uniform(-10.0, 10.0, size=(problems, p, C * starts))
    lr = (threshold[:, None] * np.repeat(ratios, starts)[None, :])[:, None, :]
    # (b) below draws its starts now, so the draws do not depend on how the sweep is cut.
    start = rng.uniform(-10.0, 10.0, size=(problems, p, 1))
    parts = sweep(run, "problems", threshold_task, [
        {"H": H[i:i + chunk], "b": b[i:i + chunk], "theta_star": theta_star[i:i + chunk],
         "theta0": theta0[i:i + chunk], "lr": lr[i:i + chunk], "steps": steps,
         "start": start[i:i + chunk], "bisect_steps": bis_steps}
        for i in range(0, problems, chunk)])
    thetaK = np.concatenate([r["theta"] for r in parts])
    observed = np.concatenate([r["threshold"] for r in parts])
    with np.errstate(over="ignore", invalid="ignore"):
        e0 = np.linalg.norm(theta0 - theta_star, axis=1)
        eK = np.linalg.norm(thetaK - theta_star, axis=1)
    grew = ~np.isfinite(eK) | (eK > e0)                         # (P, C*S)
    frac = grew.reshape(problems, C, starts).mean(axis=(0, 2))
    below = ratios < 1
    # Below the threshold every start converges: the per-step factor max_i |1 - lr lambda_i|
    # is < 1 (X^T X is invertible here), and the runs shrink the error accordingly.
    contraction = max((theory.gd_contraction(H[k], r * threshold[k]) for k in range(problems)
                       for r in ratios[below]), default=float("nan"))
    shrink = (eK / e0).reshape(problems, C, starts)
    shrink_below = float(np.median(shrink[:, below])) if below.any() else float("nan")
    # The closed form (I - lr X^T X)^K e0 predicts the same iterates (a check on the runs).
    k0 = 0
    closed = np.stack([theory.lsq_gd_closed_form(X[k0], Y[k0], theta0[k0, :, j], lr[k0, 0, j], steps)
                       for j in range(C * starts)], axis=1)
    fin = np.isfinite(closed).all(axis=0) & np.isfinite(thetaK[k0]).all(axis=0)
    scale = np.maximum(np.abs(closed[:, fin]).max(axis=0), 1.0)
    closed_err = float((np.abs(closed[:, fin] - thetaK[k0][:, fin]).max(axis=0) / scale).max())
    run.check(closed_err < 1e-8, f"the GD runs differ from the closed form (I - lr X^T X)^K e0 by "
                                 f"{closed_err:.3g} (relative; tolerance 1e-8)")

    # (b) the observed threshold of each problem (bisection, in threshold_task).
    thr_ratio = observed / threshold
    farthest = float(thr_ratio[np.argmax(np.abs(thr_ratio - 1.0))])

    # (c) "almost every start": above the threshold, the starts that converge are those
    # with no component along the eigenvectors that lr amplifies (lambda > 2/lr).
    k1, plane_ratio, traj_steps = 0, 1.2, 300
    lam, vecs = np.linalg.eigh(H[k1])
    unstable = vecs[:, lam > 2.0 / (plane_ratio * threshold[k1])]
    e_plane = rng.standard_normal((p, 1))
    e_plane -= unstable @ (unstable.T @ e_plane)
    plane_name = f"start orthogonal to the amplified eigenvectors, {plane_ratio:g} x threshold"
    traj = {}
    for name, ratio, e_init in (("random start, 0.9 x threshold", 0.9, rng.standard_normal((p, 1))),
                                ("random start, 1.1 x threshold", 1.1, rng.standard_normal((p, 1))),
                                (plane_name, plane_ratio, e_plane)):
        norms = [1.0]  # ||e_k|| / ||e_0||: 1 at the start by definition

        def record(k, th, norms=norms, e_init=e_init):
            if k:
                norms.append(float(np.linalg.norm(th - theta_star[k1]) / np.linalg.norm(e_init)))

        _lsq_gd(H[k1], b[k1], theta_star[k1] + e_init, ratio * threshold[k1], traj_steps, observe=record)
        traj[name] = np.array(norms)
    plane = traj[plane_name]

    clear = ratios >= _CLEAR_RATIO
    return ThresholdLsq(
        threshold_ratio=farthest,
        diverges_above=bool(frac[clear].min() >= _MOST),
        converges_below=bool(frac[below].max() == 0.0 and contraction < 1),
        error_recursion=bool(closed_err < 1e-8),
        problems=problems, x_shape=[n, p], starts=starts, steps=steps, ratios=ratios.tolist(),
        growing_fraction=frac.tolist(), contraction_below=contraction, median_shrink_below=shrink_below,
        threshold_ratio_median=float(np.median(thr_ratio)),
        threshold_ratio_max_deviation=float(np.abs(thr_ratio - 1).max()), closed_form_error=closed_err,
        orthogonal_ratio=plane_ratio, orthogonal_smallest_error=float(plane.min()),
        orthogonal_escape_step=int(np.argmax(plane > 1.0)) if np.any(plane > 1.0) else None,
        bisect_steps=bis_steps, observed_ratios=thr_ratio, trajectories=traj)


@figure("theory.gd-threshold")
def gd_threshold_figure(r: ThresholdLsq, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    ax.plot(r.ratios, r.growing_fraction, "o-", color="tab:red")
    ax.axvline(1.0, color="gray", ls="--", lw=0.8)
    ax.set_xlabel(r"step size / threshold, $\alpha \rho(X^TX)/2$")
    ax.set_ylabel(r"fraction of starts with $\|\theta_K - \theta^*\| > \|\theta_0 - \theta^*\|$")
    ax.set_title(f"{r.problems} problems $\\times$ {r.starts} starts, $K = {r.steps}$")
    ax = axes[1]
    ax.hist(r.observed_ratios - 1.0, bins=20, color="tab:blue")
    ax.set_xlabel(r"observed threshold / $(2/\rho(X^TX))$ - 1")
    ax.set_ylabel("problems")
    ax.set_title(f"Bisection on $\\alpha$ ({r.bisect_steps} GD steps per test)")
    ax = axes[2]
    for name, norms in r.trajectories.items():
        ax.semilogy(norms, lw=1.2, label=name)
    ax.set_ylim(1e-2, 1e8)
    ax.set_xlabel("step $k$")
    ax.set_ylabel(r"$\|\theta_k - \theta^*\| / \|\theta_0 - \theta^*\|$")
    ax.set_title("One problem: below, above, and the exceptional set")
    ax.legend(fontsize=7)
    run.savefig(fig, "threshold", alt=(
        "Left: the fraction of random starts whose error grew, against the step size in units of "
        "$2/\\rho(X^\\top X)$: zero below 1, near one above. Middle: a histogram of each problem's observed "
        f"threshold relative to $2/\\rho(X^\\top X)$, all within {r.threshold_ratio_max_deviation:.1e}. Right: the "
        "error of one problem's GD run below the threshold (falling), above it (growing), and from a start "
        "with no component along the amplified eigenvectors (falling until rounding errors grow)."))


# --------------------------------------------------------------------------- theory.wide-minima

CONVERGED, DIVERGED, UNSETTLED = 0, 1, 2

def _slot_step_size(slot: str) -> float:
    """The step size an answer slot of theory.wide-minima asks about: ``lr_0_01`` is 0.01.

    >>> _slot_step_size("lr_0_3"), _slot_step_size("lr_4")
    (0.3, 4.0)
    """
    return float(slot.removeprefix("lr_").replace("_", ".", 1))


def _gd_until_settled(grad, theta0, lr, max_steps, *, grad_tol=1e-7, blowup=1e8, check_every=25):
    """Vectorized GD from many starts; each start stops once it converges or diverges.

    Returns (theta, outcome, steps): the final points, CONVERGED (|f'| < grad_tol),
    DIVERGED (non-finite or |theta| > blowup: recorded, not an error) or
    UNSETTLED after ``max_steps``, and the step at which each was decided
    (to the nearest ``check_every``). Settled starts drop out of the batch.
    """
    theta = np.array(theta0, dtype=np.float64)
    outcome = np.full(theta.shape, UNSETTLED, dtype=np.int8)
    decided = np.full(theta.shape, max_steps)
    active = np.arange(theta.size)
    step = _gd(grad, lr)
    k = 0
    # Unchecked: a start that diverges is recorded below, not an error.
    with np.errstate(over="ignore", invalid="ignore"):
        while k < max_steps and active.size:
            block = min(check_every, max_steps - k)
            th = optim.iterate(step, theta[active], block, on_divergence="ignore").params
            k += block
            theta[active] = th
            bad = ~np.isfinite(th) | (np.abs(th) > blowup)
            done = bad | (np.abs(grad(th)) < grad_tol)
            outcome[active[bad]] = DIVERGED
            outcome[active[done & ~bad]] = CONVERGED
            decided[active[done]] = k
            active = active[~done]
    return theta, outcome, decided


def _newton_1d(f, x, iters=50):
    """A stationary point of scalar f near x, by Newton's method on nablab derivatives."""
    d1, d2 = nb.grad(f), nb.grad(nb.grad(f))
    for _ in range(iters):
        step = float(d1(x)) / float(d2(x))
        x -= step
        if abs(step) < 1e-15 * max(1.0, abs(x)):
            break
    return x


def settle_task(theta0, lr: float, max_steps: int) -> dict:
    """One sweep task of theory.wide-minima: GD on the sharp/wide function from each start."""
    theta, outcome, decided = _gd_until_settled(theory.sharp_wide_grad, theta0, lr, max_steps)
    return {"theta": theta, "outcome": outcome, "decided": decided}


def _settle_many(run: Context, jobs, chunk: int):
    """Run ``(lr, theta0, max_steps)`` jobs as a sweep of ``chunk``-start tasks; reassemble each."""
    tasks, owner = [], []
    for j, (lr, theta0, steps) in enumerate(jobs):
        for i in range(0, len(theta0), chunk):
            tasks.append({"theta0": theta0[i:i + chunk], "lr": float(lr), "max_steps": int(steps)})
            owner.append(j)
    done = sweep(run, "settle", settle_task, tasks)
    out = []
    for j in range(len(jobs)):
        parts = [r for r, o in zip(done, owner) if o == j]
        out.append(tuple(np.concatenate([p[k] for p in parts]) for k in ("theta", "outcome", "decided")))
    return out


def _outcome(c: dict) -> str:
    """Where GD ends from most starts, in the words of the slots, from the fractions ``c``."""
    if c["sharp"] >= 0.01 and c["wide"] >= 0.01 and c["sharp"] + c["wide"] >= 0.99:
        return "either minimum"
    if c["wide"] >= 0.99:
        return "the wide minimum"
    if c["sharp"] >= 0.99:
        return "the sharp minimum"
    if c["sharp"] + c["wide"] + c["other stationary point"] < 0.5:
        return "mostly no convergence"
    return "mixed"


@dataclass
class WideMinima:
    lr_0_01: str | None     # slot: where GD with alpha = 0.01 ends
    lr_0_3: str | None      # slot: ... with alpha = 0.3
    lr_4: str | None        # slot: ... with alpha = 4
    starts: int
    low: float
    high: float
    sharp_minimum: float
    wide_minimum: float
    curvature_sharp: float      # f'' at the sharp minimum
    curvature_wide: float
    stability_sharp: float      # 2/f'' there: the largest step size that can settle there
    stability_wide: float
    fractions: dict             # step size -> fraction of starts: sharp, wide, other, diverged, not settled
    outcomes: dict              # step size -> where GD ends from most starts
    grad_error: float           # max relative difference, hand-written f' vs autodiff
    max_steps: int
    tol: float
    sweep_lrs: np.ndarray = _hidden()
    sweep_fractions: list = _hidden()
    sweep_starts: int = _hidden()
    runs: dict = _hidden()      # step size -> (theta0, theta, outcome, decided)

    def summary(self) -> str:
        parts = []
        for a, c in self.fractions.items():
            parts.append(f"$\\alpha$ = {a}: sharp {c['sharp']:.1%}, wide {c['wide']:.1%}, diverged {c['diverged']:.1%}"
                         + (f", not settled {c['not settled']:.1%}" if c["not settled"] else "")
                         + f" ({self.outcomes[a]})")
        return (f"{self.starts} starts per step size, uniform in [{self.low:g}, {self.high:g}]. " + "; ".join(parts)
                + f". Why: a minimum can hold GD only if $\\alpha < 2/f''$ there, i.e. $\\alpha$ < "
                f"{self.stability_sharp:.3g} at the sharp minimum ($f''$ = {self.curvature_sharp:.3g}) and $\\alpha$ < "
                f"{self.stability_wide:.3g} at the wide one ($f''$ = {self.curvature_wide:.3g}).")


@compute("theory.wide-minima")
def wide_minima(run: Context) -> WideMinima:
    rng = run.rng()
    starts, max_steps, sweep_starts, n_sweep, tol, chunk = (
        run.params[k] for k in ("starts", "max_steps", "sweep_starts", "n_sweep", "tol", "chunk"))
    lrs = [float(a) for a in run.params["lrs"]]
    lo, hi = run.params["low"], run.params["high"]
    if starts < 1 or sweep_starts < 1 or max_steps < 1 or not lo < hi or not lrs or min(lrs) <= 0:
        raise ParamError(f"need starts >= 1, sweep_starts >= 1, max_steps >= 1, low < high and positive "
                         f"lrs; got starts={starts}, sweep_starts={sweep_starts}, max_steps={max_steps}, "
                         f"low={lo}, high={hi}, lrs={lrs}")
    if chunk < 1:
        raise ParamError(f"chunk={chunk}: need at least one start per task")

    # The two minima and their curvatures, by Newton's method on autodiff derivatives.
    f2 = nb.grad(nb.grad(theory.sharp_wide))
    sharp = _newton_1d(theory.sharp_wide, 0.0)
    wide = _newton_1d(theory.sharp_wide, 10.0)
    curv = {"sharp": float(f2(sharp)), "wide": float(f2(wide))}
    thr = {k: theory.stability_threshold(v) for k, v in curv.items()}
    # The hand-written derivative used in the fast loop, checked against autodiff on the range.
    grid = np.linspace(lo, hi, 501)
    ad = nb.grad(lambda t: nb.sum(theory.sharp_wide(t)))(grid)
    grad_err = float(np.abs(ad - theory.sharp_wide_grad(grid)).max() / np.abs(ad).max())
    run.check(grad_err < 1e-10, f"the hand-written f' differs from autodiff by {grad_err:.3g} "
                                "(relative; tolerance 1e-10)")

    def classify(theta, outcome):
        conv = outcome == CONVERGED
        near_s = conv & (np.abs(theta - sharp) < tol)
        near_w = conv & (np.abs(theta - wide) < tol)
        return {"sharp": float(near_s.mean()), "wide": float(near_w.mean()),
                "other stationary point": float((conv & ~near_s & ~near_w).mean()),
                "diverged": float((outcome == DIVERGED).mean()),
                "not settled": float((outcome == UNSETTLED).mean())}

    # Every start runs alone (GD here is elementwise), so the starts are drawn here, cut
    # into chunks and swept on the run's executor: the outcome never depends on the chunking.
    theta0s = {a: rng.uniform(lo, hi, size=starts) for a in lrs}
    sweep_lrs = np.geomspace(0.01, 5.0, n_sweep)
    sweep0 = [rng.uniform(lo, hi, sweep_starts) for _ in sweep_lrs]
    jobs = [(a, theta0s[a], max_steps) for a in lrs] + \
           [(float(a), t0, min(max_steps, 3000)) for a, t0 in zip(sweep_lrs, sweep0)]
    settled = _settle_many(run, jobs, chunk)
    runs, fractions, outcomes = {}, {}, {}
    for a, (theta, outcome, decided) in zip(lrs, settled[:len(lrs)]):
        runs[a] = (theta0s[a], theta, outcome, decided)
        fractions[f"{a:g}"] = classify(theta, outcome)
        outcomes[f"{a:g}"] = _outcome(fractions[f"{a:g}"])
    sweep_frac = [classify(theta, outcome) for theta, outcome, _ in settled[len(lrs):]]
    slots = {name: outcomes.get(f"{_slot_step_size(name):g}")
             for name in CLAIMS_BY_ID["theory.wide-minima"].slots}
    return WideMinima(
        **slots, starts=starts, low=float(lo), high=float(hi), sharp_minimum=sharp, wide_minimum=wide,
        curvature_sharp=curv["sharp"], curvature_wide=curv["wide"], stability_sharp=thr["sharp"],
        stability_wide=thr["wide"], fractions=fractions, outcomes=outcomes, grad_error=grad_err,
        max_steps=max_steps, tol=tol, sweep_lrs=sweep_lrs, sweep_fractions=sweep_frac,
        sweep_starts=sweep_starts, runs=runs)


@figure("theory.wide-minima")
def wide_minima_figure(r: WideMinima, run: Context) -> None:
    import matplotlib.pyplot as plt

    lo, hi = r.low, r.high
    curv = {"sharp": r.curvature_sharp, "wide": r.curvature_wide}
    thr = {"sharp": r.stability_sharp, "wide": r.stability_wide}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    xs = np.linspace(lo, hi, 800)
    ax.plot(xs, theory.sharp_wide(xs), "k-")
    for name, x in (("sharp", r.sharp_minimum), ("wide", r.wide_minimum)):
        ax.plot([x], [theory.sharp_wide(x)], "o",
                label=f"{name}: $\\theta$ = {x:.4g}, $f''$ = {curv[name]:.3g}, $2/f''$ = {thr[name]:.3g}")
    ax.set_xlabel(r"$\theta$")
    ax.set_ylabel(r"$f(\theta)$")
    ax.set_title("A sharp and a wide minimum")
    ax.legend(fontsize=8)
    ax = axes[1]
    keys = ["sharp", "wide", "diverged", "not settled", "other stationary point"]
    colors = ["tab:blue", "tab:green", "tab:red", "tab:gray", "tab:purple"]
    bottom = np.zeros(r.sweep_lrs.size)
    for key, col in zip(keys, colors):
        vals = np.array([fr[key] for fr in r.sweep_fractions])
        if vals.any():
            ax.fill_between(r.sweep_lrs, bottom, bottom + vals, step="mid", color=col, alpha=0.7, label=key)
        bottom += vals
    for name, ls in (("sharp", "--"), ("wide", ":")):
        ax.axvline(thr[name], color="k", ls=ls, lw=1, label=f"$2/f''$ at the {name} minimum")
    for a in r.runs:
        ax.axvline(a, color="orange", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(r"step size $\alpha$ (orange: the step sizes of the problem)")
    ax.set_ylabel("fraction of starts")
    ax.set_title(f"Where GD ends, {r.sweep_starts} starts per step size")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    run.savefig(fig, "outcomes", alt=(
        f"Left: $f$ with its sharp minimum at {r.sharp_minimum:.3g} ($f''$ = {curv['sharp']:.3g}) and its wide "
        f"minimum at {r.wide_minimum:.4g} ($f''$ = {curv['wide']:.3g}). Right: the fraction of starts ending at "
        f"each minimum, diverging or unsettled against the step size, switching at $2/f''$ = "
        f"{thr['sharp']:.3g} and {thr['wide']:.3g}."))

    lrs = list(r.runs)
    fig, axes = plt.subplots(2, len(lrs), figsize=(4.2 * len(lrs), 6.4), squeeze=False)
    cats = ["sharp", "wide", "diverged", "not settled"]
    cat_colors = ["tab:blue", "tab:green", "tab:red", "tab:gray"]
    bins = np.linspace(lo, hi, 76)
    for j, a in enumerate(lrs):
        theta0, theta, outcome, decided = r.runs[a]
        c = r.fractions[f"{a:g}"]
        ax = axes[0][j]
        counts = [int(round(c[k] * r.starts)) for k in cats]
        bars = ax.bar(range(len(cats)), counts, color=cat_colors)
        ax.bar_label(bars, fontsize=8)
        ax.set_xticks(range(len(cats)), [f"sharp\n{r.sharp_minimum:.3g}", f"wide\n{r.wide_minimum:.4g}",
                                         "diverged", "not\nsettled"], fontsize=8)
        n_div = int((outcome == DIVERGED).sum())
        ax.set_title(f"$\\alpha = {a:g}$: where {r.starts} starts end"
                     + (f"\n(diverged: by step {int(np.median(decided[outcome == DIVERGED]))}, median)"
                        if n_div else ""), fontsize=9)
        ax = axes[1][j]
        conv = outcome == CONVERGED
        groups = [theta0[conv & (np.abs(theta - r.sharp_minimum) < r.tol)],
                  theta0[conv & (np.abs(theta - r.wide_minimum) < r.tol)],
                  theta0[outcome == DIVERGED], theta0[outcome == UNSETTLED]]
        ax.hist(groups, bins=bins, stacked=True, color=cat_colors, label=cats)
        ax.set_xlabel(r"start $\theta_0$, coloured by where GD ends")
    axes[0][0].set_ylabel("starts")
    axes[1][0].set_ylabel("starts per bin")
    axes[1][-1].legend(fontsize=7)
    fig.tight_layout()
    run.savefig(fig, "limits", alt=(
        "For each step size (" + ", ".join(f"$\\alpha = {a:g}$: {r.outcomes[f'{a:g}']}" for a in lrs)
        + "): bars counting the starts that end at the sharp minimum, the wide one, diverge or do not "
        "settle, and below them a histogram of the starts coloured by where they end."))


# --------------------------------------------------------------------------- theory.gd-proximal


def _armijo_descent(fun, x0, *, gtol=1e-13, max_iter=500):
    """Minimize ``fun`` by gradient descent with backtracking, gradients from ``nb.grad``.

    It knows nothing about the objective's curvature: each trial step is
    twice the last accepted one, halved until the Armijo condition holds.
    It stops when the gradient is tiny or when no step decreases ``fun``
    any more (rounding in the function values: accuracy about sqrt(eps)).
    """
    value_and_grad = nb.value_and_grad(fun)
    x = np.array(x0, dtype=np.float64)
    fx, g = value_and_grad(x)
    step = 1.0
    for it in range(max_iter):
        gg = float(g @ g)
        if gg <= gtol * gtol:
            return x, it
        step *= 2.0
        while True:
            x_new = x - step * g
            f_new = float(fun(x_new))           # values only in the line search: cheaper
            if f_new <= fx - 0.5 * step * gg:
                break
            step /= 2
            if step * math.sqrt(gg) <= 1e-16 * (1.0 + float(np.linalg.norm(x))):
                return x, it                    # no representable step decreases fun
        x = x_new
        fx, g = value_and_grad(x)
    return x, max_iter


def _smooth_convex(A, c, mu):
    """f(w) = logsumexp(A w + c) + mu/2 ||w||^2: smooth and convex, any dimension."""
    return lambda w: nb.logsumexp(A @ w + c) + 0.5 * mu * nb.sum(w * w)


_PICTURE_LAMBDAS = (1.0, 2.0, 4.0, 10.0)


@dataclass
class Proximal:
    minimizer_is_gd_step: bool   # slot: the argmin is w_t - grad f(w_t)/lambda
    eta_times_lambda: float      # slot: eta * lambda for the GD step the argmin is (the trial farthest from 1)
    trials: int
    tol: float
    minimizer_error: dict        # per numerical minimizer: max relative distance to w_t - grad/lambda
    hessian_error: float         # max |Hessian of the surrogate - lambda I| / lambda
    stationarity_error: float    # max |grad of the surrogate at w_t - grad/lambda| / (1 + |grad f|)
    eta_error: float             # max |eta lambda - 1| |grad f| / (1 + |w_t - grad/lambda|)
    lambdas: np.ndarray = _hidden()
    etas: np.ndarray = _hidden()
    picture: dict = _hidden()

    def summary(self) -> str:
        err = max(self.minimizer_error.values())
        return (f"On {self.trials} random smooth convex problems (logsumexp plus a quadratic, "
                f"$d = 1, \\ldots, 10$, $\\lambda$ from 0.01 to 100), minimizing "
                f"$f(w_t) + \\langle w - w_t, \\nabla f(w_t) \\rangle + (\\lambda/2) \\|w - w_t\\|^2$ "
                f"numerically ({', '.join(self.minimizer_error)}) lands on $w_t - \\nabla f(w_t)/\\lambda$ to "
                f"{err:.1e} relative; the surrogate's Hessian is $\\lambda I$ (so that minimizer is unique), and the "
                f"step the minimizer took is a GD step with $\\eta \\lambda$ = {self.eta_times_lambda:.9g} (farthest "
                f"from 1 over the problems; {self.eta_error:.1e} relative to the step). A GD step with "
                "$\\eta = 1/\\lambda$ is the minimizer of this local model.")


@compute("theory.gd-proximal")
def gd_proximal(run: Context) -> Proximal:
    rng = run.rng()
    trials, tol = run.params["trials"], run.params["tol"]
    if trials < 1 or not tol > 0:
        raise ParamError(f"need trials >= 1 and tol > 0; got trials={trials}, tol={tol}")
    try:
        from scipy.optimize import minimize
    except ImportError:  # scipy is optional: the autodiff-driven minimizer still runs
        minimize = None
    worst = {"backtracking descent on nb.grad": 0.0, "scipy BFGS with nb.grad": 0.0}
    worst_hess, worst_eta, worst_stationary = 0.0, 0.0, 0.0
    lam_all, eta_all = [], []
    for _ in range(trials):
        d = int(rng.integers(1, 11))
        A, c = rng.standard_normal((int(rng.integers(2, 12)), d)), rng.standard_normal(1)
        f = _smooth_convex(A, c, mu=float(rng.uniform(0.0, 1.0)))
        w_t = rng.standard_normal(d) * 3
        f_t, g = nb.value_and_grad(f)(w_t)
        lam = float(10.0 ** rng.uniform(-2, 2))
        q = theory.linearized_proximal_objective(f_t, w_t, g, lam)
        closed = theory.proximal_step(w_t, g, lam)
        scale = 1.0 + np.linalg.norm(closed)
        x0 = w_t + rng.standard_normal(d) * 5
        w_num, _ = _armijo_descent(q, x0, gtol=1e-10 * (1.0 + float(np.linalg.norm(g))))
        worst["backtracking descent on nb.grad"] = max(worst["backtracking descent on nb.grad"],
                                                       float(np.linalg.norm(w_num - closed) / scale))
        if minimize is not None:
            res = minimize(lambda w: float(q(w)), x0, jac=lambda w: np.asarray(nb.grad(q)(w)),
                           method="BFGS", options={"gtol": 1e-10, "maxiter": 1000})
            worst["scipy BFGS with nb.grad"] = max(worst["scipy BFGS with nb.grad"],
                                                   float(np.linalg.norm(res.x - closed) / scale))
        # Hessian lambda I (unique minimizer) and a zero gradient at the closed form.
        worst_hess = max(worst_hess, float(np.abs(nb.hessian(q)(closed) - lam * np.eye(d)).max() / lam))
        worst_stationary = max(worst_stationary,
                               float(np.linalg.norm(nb.grad(q)(closed)) / (1 + np.linalg.norm(g))))
        # The step the numerical minimizer took, as a multiple of -g: the effective eta.
        if np.linalg.norm(g) > 1e-8:
            eta = float((w_t - w_num) @ g / (g @ g))
            lam_all.append(lam)
            eta_all.append(eta)
            worst_eta = max(worst_eta, abs(eta * lam - 1.0) * float(np.linalg.norm(g)) / scale)
    if minimize is None:
        del worst["scipy BFGS with nb.grad"]
    run.check(worst_hess < 1e-12 and worst_stationary < 1e-12,
              f"nablab's derivatives of the surrogate are off: |Hessian - lambda I| / lambda up to "
              f"{worst_hess:.3g}, |gradient| at the closed form up to {worst_stationary:.3g} (tolerance 1e-12)")
    run.check(lam_all, "every random problem had a zero gradient at w_t: no step to measure")
    products = np.array(eta_all) * np.array(lam_all)

    # A picture in 2-D: f's contours, w_t, and the numerical minimizers for several lambda.
    A2, c2 = rng.standard_normal((5, 2)), rng.standard_normal(1)
    f2 = _smooth_convex(A2, c2, mu=0.3)
    w2 = np.array([1.5, -1.0])
    f2_t, g2 = nb.value_and_grad(f2)(w2)
    span = float(np.linalg.norm(g2)) * 1.3 + 1.0
    argmins = [_armijo_descent(theory.linearized_proximal_objective(f2_t, w2, g2, lam),
                               w2 + np.array([span, span]) * 0.5)[0] for lam in _PICTURE_LAMBDAS]
    picture = {"A": A2, "c": c2, "mu": 0.3, "w_t": w2, "grad": np.asarray(g2), "span": span,
               "argmins": np.array(argmins)}
    return Proximal(
        minimizer_is_gd_step=bool(max(worst.values()) < tol),
        eta_times_lambda=float(products[np.argmax(np.abs(products - 1.0))]), trials=trials, tol=tol,
        minimizer_error=worst, hessian_error=worst_hess, stationarity_error=worst_stationary,
        eta_error=worst_eta, lambdas=np.array(lam_all), etas=np.array(eta_all), picture=picture)


@figure("theory.gd-proximal")
def gd_proximal_figure(r: Proximal, run: Context) -> None:
    import matplotlib.pyplot as plt

    p = r.picture
    w2, g2, span = p["w_t"], p["grad"], p["span"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    ax = axes[0]
    gx, gy = np.meshgrid(np.linspace(w2[0] - span, w2[0] + span, 120),
                         np.linspace(w2[1] - span, w2[1] + span, 120))
    pts = np.stack([gx.ravel(), gy.ravel()])                 # (2, m): f on all grid points at once
    z = p["A"] @ pts + p["c"][:, None]
    fz = (np.log(np.exp(z - z.max(0)).sum(0)) + z.max(0) + 0.5 * p["mu"] * (pts * pts).sum(0)).reshape(gx.shape)
    ax.contour(gx, gy, fz, levels=20, cmap="Greys", linewidths=0.7)
    ax.plot(*w2, "ko", label=r"$w_t$")
    for lam, w_num in zip(_PICTURE_LAMBDAS, p["argmins"]):
        ax.plot(*w_num, "o", ms=7, label=f"numerical argmin, $\\lambda = {lam:g}$ ($\\eta = {1 / lam:g}$)")
    ts = np.linspace(0, 1.05, 2)
    ax.plot(w2[0] - ts * g2[0], w2[1] - ts * g2[1], "k--", lw=0.8, label=r"$w_t - \eta \nabla f(w_t)$")
    ax.set_aspect("equal")
    ax.legend(fontsize=7)
    ax.set_title("Minimizers of the linearization + proximity term")
    ax = axes[1]
    inv = 1 / r.lambdas
    ax.loglog(inv, r.etas, "o", ms=3, label="numerical minimizer's step / gradient")
    line = np.array([inv.min(), inv.max()])
    ax.loglog(line, line, "k-", lw=0.8, label=r"$\eta = 1/\lambda$")
    ax.set_xlabel(r"$1/\lambda$")
    ax.set_ylabel(r"effective $\eta$ = $\langle w_t - w^\star, g\rangle / \|g\|^2$")
    ax.set_title(f"{len(r.lambdas)} random problems ($d = 1, \\ldots, 10$)")
    ax.legend(fontsize=8)
    run.savefig(fig, "proximal", alt=(
        "Left: contours of a 2-D smooth convex $f$, the point $w_t$, and the numerical minimizers of the "
        "linearization plus $(\\lambda/2) \\|w - w_t\\|^2$ for $\\lambda$ = "
        f"{', '.join(f'{lam:g}' for lam in _PICTURE_LAMBDAS)}, all on the line $w_t - \\eta \\nabla f(w_t)$ at "
        f"$\\eta = 1/\\lambda$. Right: the step each of {len(r.lambdas)} random problems' minimizer took against "
        "$1/\\lambda$, on the diagonal $\\eta = 1/\\lambda$."))


# --------------------------------------------------------------------------- theory.regret-lemma

_SEQUENCES = ("gaussian", "heavy-tailed", "constant direction", "adversarial", "tight")


def _regret_instance(rng, kind: str):
    """One random instance (v, w_star, eta) of the regret lemma, of the given kind."""
    T, d = int(rng.integers(1, 201)), int(rng.integers(1, 21))
    eta = float(10.0 ** rng.uniform(-3, 1))
    w_star = rng.standard_normal(d) * float(10.0 ** rng.uniform(-1, 1))
    if kind == "gaussian":
        v = rng.standard_normal((T, d))
    elif kind == "heavy-tailed":
        v = rng.standard_t(1.5, size=(T, d))
    elif kind == "constant direction":
        v = np.outer(rng.uniform(0.1, 2.0, T), rng.standard_normal(d))
    elif kind == "adversarial":
        # Each v_t pushes w_t away from w* (maximizes <w_t - w*, v_t> for its norm). A plain loop: it makes
        # an input, whose iterates theory.regret_terms computes on its own (optim.iterate cost 7% here).
        v = np.empty((T, d))
        w = np.zeros(d)
        for t in range(T):
            away = w - w_star
            n_away = np.linalg.norm(away)
            v[t] = away / n_away if n_away > 0 else rng.standard_normal(d)
            w = w - eta * v[t]
    else:  # "tight": w* = w_{T+1}, where the lemma holds with equality
        v = rng.standard_normal((T, d))
        w_star = -eta * v.sum(axis=0)
    return v, w_star, eta


@dataclass
class Regret:
    inequality_holds: bool       # slot: sum <w_t - w*, v_t> <= ||w*||^2/(2 eta) + eta/2 sum ||v_t||^2
    slack_is_final_distance: bool  # slot: bound - left side = ||w_(T+1) - w*||^2 / (2 eta)
    sequences: int
    kinds: list
    max_excess: float            # max (left side - bound) / bound
    slack_error: float           # max |(bound - left side) - ||w_(T+1) - w*||^2/(2 eta)| / bound
    tight_error: float           # tight kind (w* = w_(T+1)): max |left side / bound - 1|
    largest_ratio_other_kinds: float  # largest left side / bound among the other kinds
    polarization_residual: float  # per step: <a, eta v> vs (||a + eta v||^2 - ||a - eta v||^2)/4, relative
    step_identity_residual: float  # per step: <a, v> vs (||a||^2 - ||a - eta v||^2)/(2 eta) + eta/2 ||v||^2
    ratios: dict = _hidden()     # kind -> [(left side / bound, slack / bound)]

    def summary(self) -> str:
        return (f"Over {self.sequences} random sequences ($T$ up to 200, $d$ up to 20, $\\eta$ from $10^{{-3}}$ to "
                f"10; {', '.join(self.kinds[:-1])} $v_t$, and sequences with $w^* = w_{{T+1}}$) the left side "
                + ("never exceeded the bound" if self.inequality_holds else "exceeded the bound")
                + f" (largest excess {self.max_excess:.1e} of the bound). The gap equals "
                f"$\\|w_{{T+1}} - w^*\\|^2/(2\\eta)$ to {self.slack_error:.1e}, so the bound is attained exactly when "
                f"$w^* = w_{{T+1}}$ (there the ratio is 1 to {self.tight_error:.0e}; elsewhere at most "
                f"{self.largest_ratio_other_kinds:.3g}). Per step, $\\langle w_t - w^*, v_t \\rangle$ "
                f"$= (\\|w_t - w^*\\|^2 - \\|w_{{t+1}} - w^*\\|^2)/(2\\eta)$ $+ (\\eta/2) \\|v_t\\|^2$ holds to {self.step_identity_residual:.0e}, and "
                f"the polarization identity behind it to {self.polarization_residual:.0e}.")


@compute("theory.regret-lemma")
def regret_lemma(run: Context) -> Regret:
    rng = run.rng()
    per_kind = run.params["trials"]
    if per_kind < 1:
        raise ParamError(f"trials={per_kind}: need at least one sequence of each kind")
    rows = {k: [] for k in _SEQUENCES}
    worst_violation, worst_identity, polar, step = -np.inf, 0.0, 0.0, 0.0
    for kind in _SEQUENCES:
        for _ in range(per_kind):
            v, w_star, eta = _regret_instance(rng, kind)
            r = theory.regret_terms(v, w_star, eta)
            scale = max(r.bound, 1e-300)
            worst_violation = max(worst_violation, (r.lhs - r.bound) / scale)
            worst_identity = max(worst_identity, abs((r.bound - r.lhs) - r.slack) / scale)
            rows[kind].append((r.lhs / scale, r.slack / scale))
            # The per-step identities the telescoping rests on, with a_t = w_t - w*.
            a = r.iterates[:-1] - w_star
            ev = eta * v
            lhs_t = np.sum(a * v, axis=1)
            sq = lambda x: np.sum(x * x, axis=1)  # noqa: E731
            nxt = r.iterates[1:] - w_star
            unit = np.maximum(np.abs(lhs_t), sq(a) / eta + eta * sq(v))  # the size of the terms involved
            polar = max(polar, float(np.max(np.abs((sq(a + ev) - sq(a - ev)) / (4 * eta) - lhs_t) / unit)))
            step = max(step, float(np.max(np.abs((sq(a) - sq(nxt)) / (2 * eta) + eta / 2 * sq(v) - lhs_t)
                                          / unit)))
    run.check(worst_identity <= 1e-9, f"bound - left side differs from ||w_(T+1) - w*||^2/(2 eta) by "
                                      f"{worst_identity:.3g} of the bound (tolerance 1e-9)")
    run.check(polar <= 1e-9 and step <= 1e-9, f"a per-step identity fails: polarization residual {polar:.3g}, "
                                              f"one-step identity residual {step:.3g} (tolerance 1e-9)")
    tight = np.array([x[0] for x in rows["tight"]])
    return Regret(
        inequality_holds=bool(worst_violation <= 1e-12), slack_is_final_distance=bool(worst_identity <= 1e-9),
        sequences=per_kind * len(_SEQUENCES), kinds=list(_SEQUENCES), max_excess=float(worst_violation),
        slack_error=float(worst_identity), tight_error=float(np.abs(tight - 1).max()),
        largest_ratio_other_kinds=float(max(x[0] for k in _SEQUENCES[:-1] for x in rows[k])),
        polarization_residual=polar, step_identity_residual=step, ratios=rows)


@figure("theory.regret-lemma")
def regret_lemma_figure(r: Regret, run: Context) -> None:
    import matplotlib.pyplot as plt

    per_kind = r.sequences // len(r.kinds)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    bins = np.linspace(-1.5, 1.05, 60)
    for kind in r.kinds:
        vals = np.clip([x[0] for x in r.ratios[kind]], bins[0], bins[-1])
        ax.hist(vals, bins=bins, histtype="step", lw=1.4, label=kind)
    ax.axvline(1.0, color="k", ls="--", lw=0.8)
    ax.set_xlabel(r"$\sum_t \langle w_t - w^*, v_t\rangle$ / bound (clipped at -1.5)")
    ax.set_ylabel("sequences")
    ax.set_title(f"{per_kind} random sequences of each kind: never above 1")
    ax.legend(fontsize=8)
    ax = axes[1]
    for kind in r.kinds[:-1]:
        ax.plot([1 - x[0] for x in r.ratios[kind]], [x[1] for x in r.ratios[kind]], "o", ms=2.5, label=kind)
    lim = [1e-6, 1e3]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("(bound - left side) / bound")
    ax.set_ylabel(r"$\|w_{T+1} - w^*\|^2 / (2\eta)$ / bound")
    ax.set_title("The slack is exactly the last distance term")
    ax.legend(fontsize=8)
    run.savefig(fig, "regret", alt=(
        f"Left: histograms, one per kind of sequence ({', '.join(r.kinds)}), of the left side over the bound: "
        "all at or below 1, the tight kind exactly at 1. Right: for the other kinds, the gap to the bound "
        "against $\\|w_{T+1} - w^*\\|^2/(2\\eta)$, both over the bound: every point on the diagonal."))


# --------------------------------------------------------------------------- theory.gd-rate


def _l1_problems(rng, problems: int, n: int, d: int):
    """f(w) = (1/n) ||A w - b||_1 with b = A w*: convex, Lipschitz, minimized (f = 0) at w*."""
    A = rng.standard_normal((problems, n, d))
    w_star = rng.standard_normal((problems, d)) * rng.uniform(0.5, 5.0, size=(problems, 1))
    b = np.einsum("pni,pi->pn", A, w_star)
    rho = np.linalg.norm(A, axis=2).mean(axis=1)        # every subgradient has norm <= this
    return A, b, w_star, rho


def _l1_value(A, b, W):
    return np.abs(np.einsum("pni,pi->pn", A, W) - b).mean(axis=1)


def _l1_subgrad(A, b, W):
    return np.einsum("pni,pn->pi", A, np.sign(np.einsum("pni,pi->pn", A, W) - b)) / A.shape[1]


def _hinge_gaps(B: float, rho: float, Ts) -> np.ndarray:
    """Averaged GD on f(w) = rho max(B - w, 0) from w_1 = 0, with eta = B/(rho sqrt T): the gap, per T."""
    gaps = []
    for T in Ts:
        eta = theory.averaged_gd_step(B, rho, T)

        def step(w, total, t, eta=eta):  # averaged GD: the state sums the iterates, w_1 + ... + w_T at the end
            return optim.Step(w - eta * (-rho if w < B else 0.0), total + w)

        total = optim.iterate(step, 0.0, T, state=0.0).state
        gaps.append(rho * max(B - total / T, 0.0))
    return np.array(gaps)


@dataclass
class Rate:
    rate_exponent: float      # slot: the log-log slope of the gap against T (median over the problems)
    bound_constant: float     # slot: C in f(w_bar) - f(w*) <= C/sqrt(T), at B = hinge_B, rho = 1
    problems: int
    T: list
    max_gap_over_bound: float   # max gap / (B rho / sqrt(T)) over the random problems
    slope_range: list
    hinge_B: float
    hinge_T: list
    hinge_gap: list
    hinge_exact: bool           # the hinge's gap is exactly rho B (sqrt(T) + 1)/(2T)
    hinge_gap_over_bound: list
    hinge_slope: float
    hinge_constant_measured: float  # max over the hinge runs of gap * sqrt(T): no smaller C bounds them
    subgradient_error: float    # max difference, hand-written subgradient vs nb.grad
    gaps: np.ndarray = _hidden()       # (problems, T) of the random problems, over B rho
    hinge_bound: np.ndarray = _hidden()

    def summary(self) -> str:
        at = self.hinge_T[int(np.argmax(np.array(self.hinge_gap) * np.sqrt(self.hinge_T)))]
        return (f"On {self.problems} random convex Lipschitz problems ($f = \\|Aw - b\\|_1 / n$) and $T$ from "
                f"{self.T[0]} to {self.T[-1]}, averaged GD with $\\eta = B/(\\rho \\sqrt{{T}})$ stayed under "
                f"$B \\rho/\\sqrt{{T}}$ in every run "
                f"(at most {self.max_gap_over_bound:.2f} of it), with log-log slope {self.rate_exponent:.2f} "
                f"(median; range {self.slope_range[0]:.2f} to {self.slope_range[1]:.2f}): the $O(1/\\sqrt{{T}})$ rate "
                f"holds. With that $\\eta$ the bound $B^2/(2\\eta T) + \\eta \\rho^2/2$ is $C/\\sqrt{{T}}$ with "
                f"$C = B \\rho$ = {self.bound_constant:g} for $B = {self.hinge_B:g}$, $\\rho = 1$, and no smaller "
                f"constant holds: on $f(w) = \\max({self.hinge_B:g} - w, 0)$ averaged GD's gap is exactly "
                f"$B \\rho (\\sqrt{{T}} + 1)/(2T)$, so gap $\\times \\sqrt{{T}}$ reaches {self.hinge_constant_measured:g} "
                f"(at $T = {at}$).")


@compute("theory.gd-rate")
def gd_rate(run: Context) -> Rate:
    rng = run.rng()
    problems, n, d = run.params["problems"], run.params["n"], run.params["d"]
    Ts = [int(T) for T in run.params["Ts"]]
    # The hinge uses B = 2^j and T = 4^k so that every iterate is exact in binary and
    # lands on the kink (any other T overshoots it, which only lowers the gap).
    hinge_B = run.params["hinge_B"]
    hinge_Ts = [int(T) for T in run.params["hinge_Ts"]]
    if problems < 1 or n < d or len(Ts) < 2 or min(Ts) < 1 or hinge_B <= 0 or len(hinge_Ts) < 2 \
            or min(hinge_Ts) < 1:
        raise ParamError(f"need problems >= 1, n >= d, at least two T >= 1, hinge_B > 0 and two "
                         f"hinge_Ts >= 1; got problems={problems}, n={n}, d={d}, Ts={Ts}, "
                         f"hinge_B={hinge_B}, hinge_Ts={hinge_Ts}")
    A, b, w_star, rho = _l1_problems(rng, problems, n, d)
    B = np.linalg.norm(w_star, axis=1)
    # The hand-written subgradient is the one nablab's autodiff gives (sign(0) = 0 at kinks).
    W_test = rng.standard_normal((problems, d))
    f_batch = lambda W: nb.sum(nb.mean(nb.abs(A @ W[:, :, None] - b[:, :, None]), axis=(1, 2)))  # noqa: E731
    subgrad_err = float(np.abs(nb.grad(f_batch)(W_test) - _l1_subgrad(A, b, W_test)).max())
    run.check(subgrad_err < 1e-12, f"the hand-written subgradient differs from nb.grad by {subgrad_err:.3g}")

    gaps = np.empty((problems, len(Ts)))
    lemma_ok, grad_ok = True, True
    for j, T in enumerate(Ts):
        eta = np.array([theory.averaged_gd_step(B[k], rho[k], T) for k in range(problems)])[:, None]

        # A plain loop: through optim.iterate the call per step cost about 5% of the claim, and the body
        # (the lemma's sums over w_t and g_t) would read no clearer as a step with those sums as its state.
        W = np.zeros((problems, d))
        total = np.zeros((problems, d))
        inner = np.zeros(problems)            # sum_t <w_t - w*, g_t>
        for _ in range(T):
            G = _l1_subgrad(A, b, W)
            grad_ok &= bool(np.all(np.linalg.norm(G, axis=1) <= rho * (1 + 1e-12)))
            total += W
            inner += np.sum((W - w_star) * G, axis=1)
            W = W - eta * G
        gaps[:, j] = _l1_value(A, b, total / T)   # f(w*) = 0
        lemma_ok &= bool(np.all(gaps[:, j] <= inner / T * (1 + 1e-12) + 1e-15))
    # These follow from convexity, the choice of rho and Corollary 14.2: a failure is a bug here.
    run.check(grad_ok, "a subgradient along the runs is longer than rho")
    run.check(lemma_ok, "f(w_bar) - f(w*) <= (1/T) sum <w_t - w*, g_t> failed in a run")
    bound = B[:, None] * rho[:, None] / np.sqrt(np.array(Ts))[None, :]
    run.check(np.all(gaps <= bound), "a run's gap exceeds the proven bound B rho / sqrt(T)")
    slopes = np.polyfit(np.log(Ts), np.log(gaps).T, 1)[0]

    # The hinge f(w) = rho max(B - w, 0) from w_1 = 0, minimum-norm minimizer w* = B:
    # GD climbs by B/sqrt(T) per step and stops on the kink after sqrt(T) steps, so
    # the gap is exactly rho B (sqrt(T) + 1) / (2 T): B rho at T = 1, about half the bound later.
    rho_h = 1.0
    hinge_gap = _hinge_gaps(hinge_B, rho_h, hinge_Ts)
    hT = np.array(hinge_Ts, dtype=float)
    hinge_exact = rho_h * hinge_B * (np.sqrt(hT) + 1) / (2 * hT)
    exact_ok = all(math.isqrt(T) ** 2 == T for T in hinge_Ts) and \
        bool(np.allclose(hinge_gap, hinge_exact, rtol=1e-12, atol=0))
    hinge_bound = np.array([theory.averaged_gd_bound(hinge_B, rho_h, T) for T in hinge_Ts])
    run.check(np.all(hinge_gap <= hinge_bound * (1 + 1e-12)), "the hinge's gap exceeds the proven bound")
    # The bound's constant: B^2/(2 eta T) + eta rho^2/2 at eta = B/(rho sqrt T), times sqrt(T).
    constants = [(hinge_B ** 2 / (2 * e * T) + e * rho_h ** 2 / 2) * math.sqrt(T)
                 for T in hinge_Ts for e in [theory.averaged_gd_step(hinge_B, rho_h, T)]]
    run.check(np.allclose(constants, constants[0], rtol=1e-12) and
              np.allclose(constants, hinge_bound * np.sqrt(hT), rtol=1e-12),
              "the bound at eta = B/(rho sqrt T) is not C/sqrt(T) with one constant C")
    return Rate(
        rate_exponent=float(np.median(slopes)), bound_constant=float(constants[0]), problems=problems, T=Ts,
        max_gap_over_bound=float((gaps / bound).max()), slope_range=[float(slopes.min()), float(slopes.max())],
        hinge_B=float(hinge_B), hinge_T=hinge_Ts, hinge_gap=hinge_gap.tolist(), hinge_exact=exact_ok,
        hinge_gap_over_bound=(hinge_gap / hinge_bound).tolist(),
        hinge_slope=float(np.polyfit(np.log(hT), np.log(hinge_gap), 1)[0]),
        hinge_constant_measured=float((hinge_gap * np.sqrt(hT)).max()), subgradient_error=subgrad_err,
        gaps=gaps / (B * rho)[:, None], hinge_bound=hinge_bound)


@figure("theory.gd-rate")
def gd_rate_figure(r: Rate, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2))
    ax = axes[0]
    for k in range(r.problems):
        ax.loglog(r.T, r.gaps[k], "-", color="tab:blue", alpha=0.25, lw=0.8)
    ax.loglog(r.T, np.median(r.gaps, axis=0), "o-", color="tab:blue",
              label=f"median (fitted slope {r.rate_exponent:.2f})")
    ax.loglog(r.T, 1 / np.sqrt(r.T), "k--", label=r"bound $B\rho/\sqrt{T}$")
    ax.set_xlabel("$T$")
    ax.set_ylabel(r"$(f(\bar w) - f(w^*)) / (B\rho)$")
    ax.set_title(f"{r.problems} random problems $f = \\|Aw - b\\|_1 / n$")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.loglog(r.hinge_T, r.hinge_gap, "o-", label=f"gap (fitted slope {r.hinge_slope:.2f})")
    ax.loglog(r.hinge_T, r.hinge_bound, "k--", label=r"$B\rho/\sqrt{T}$")
    ax.set_xlabel("$T$ (powers of 4: GD lands exactly on the kink)")
    ax.set_ylabel(r"$f(\bar w) - f(w^*)$")
    ax.set_title(f"$f(w) = \\max({r.hinge_B:g} - w, 0)$ from $w = 0$ ($B = {r.hinge_B:g}$, $\\rho = 1$)")
    ax.legend(fontsize=8)
    run.savefig(fig, "rate", alt=(
        f"Left, log-log: the gap of averaged GD over $B \\rho$ against $T$ for {r.problems} random problems, under "
        f"the line $1/\\sqrt{{T}}$ and parallel to it (median slope {r.rate_exponent:.2f}). Right: the gap on the "
        f"hinge $\\max({r.hinge_B:g} - w, 0)$ against $T$ beside $B \\rho/\\sqrt{{T}}$, touching it at "
        f"$T = {r.hinge_T[0]}$."))


# --------------------------------------------------------------------------- theory.sgd-not-monotone


def _logistic_total(w):
    return theory.logistic_f1(w) + theory.logistic_f2(w)


@dataclass
class SgdNotMonotone:
    always_decreases: bool        # slot: is SGD guaranteed to decrease f at every step?
    w1_over_eta: float            # slot: w1 / eta after one step on f1 from w0 = 0
    counterexample_raises_f: bool  # slot: that step raises f (for every eta tried) while lowering f1
    uphill_step_everywhere: bool  # slot: at every w one of the two SGD steps raises f
    etas: list
    w1: list                      # w1 after one step on f1 from w0 = 0, per eta
    rise: list                    # f(w1) - f(w0), per eta
    f1_drop: list                 # f1(w1) - f1(w0), per eta
    trials: int                   # random (w, eta) pairs
    sampled_term_decreases: bool  # every step lowered the term it was taken on
    fraction_points_with_uphill_step: float
    fraction_steps_uphill: float
    uphill_side_rule: bool        # the uphill step is the f2-step for w > 0 and the f1-step for w < 0
    run_eta: float
    run_steps: int
    run_steps_uphill: int         # steps that raised f in one SGD run from w = 3
    path: np.ndarray = _hidden()

    def summary(self) -> str:
        etas = ", ".join(f"{e:g}" for e in self.etas)
        return ((f"{'Yes' if self.always_decreases else 'No'}: from $w_0 = 0$ an SGD step on $f_1$ gives "
                 f"$w_1 = {self.w1_over_eta:g}\\, \\eta$ (computed with nb.grad, for $\\eta$ = {etas}) and changes $f$ "
                 f"by {min(self.rise):.3g} to {max(self.rise):.3g}, while changing $f_1$ by {min(self.f1_drop):.3g} to "
                 f"{max(self.f1_drop):.3g}. ")
                + (f"This is not special to $w = 0$: at {self.fraction_points_with_uphill_step:.1%} of {self.trials} "
                   f"random $(w, \\eta)$ pairs one of the two possible steps raised $f$ ({self.fraction_steps_uphill:.1%} "
                   "of all steps), although every step lowered its own term"
                   + (", because $f' = 2 \\operatorname{sigmoid}(w) - 1$ has the sign of $w$ while $f_1' > 0 > f_2'$"
                      if self.uphill_side_rule else "") + ". ")
                + f"A {self.run_steps}-step SGD run from $w = 3$ with $\\eta$ = {self.run_eta:g} raised $f$ on "
                f"{self.run_steps_uphill} steps.")


@compute("theory.sgd-not-monotone")
def sgd_not_monotone(run: Context) -> SgdNotMonotone:
    rng = run.rng()
    trials, run_steps, run_eta = run.params["trials"], run.params["run_steps"], run.params["run_eta"]
    etas = np.array(run.params["etas"], dtype=float)
    if trials < 1 or etas.size < 1 or np.any(etas <= 0) or run_eta <= 0 or run_steps < 1:
        raise ParamError(f"need trials >= 1, positive etas and run_eta, run_steps >= 1; got "
                         f"trials={trials}, etas={etas.tolist()}, run_eta={run_eta}, run_steps={run_steps}")
    # Elementwise functions: the gradient of the sum is the vector of derivatives.
    d1 = nb.grad(lambda w: nb.sum(theory.logistic_f1(w)))
    d2 = nb.grad(lambda w: nb.sum(theory.logistic_f2(w)))
    f, f1, f2 = _logistic_total, theory.logistic_f1, theory.logistic_f2

    # One SGD step on f1 from w0 = 0.
    w0 = np.zeros_like(etas)
    w1 = w0 - etas * d1(w0)
    rise = f(w1) - f(w0)
    f1_drop = f1(w1) - f1(w0)
    per_eta = w1 / etas
    run.check(np.allclose(per_eta, per_eta[0], rtol=1e-15, atol=0), "w1 is not proportional to eta")

    # Random points and step sizes: try both terms at each.
    W = rng.uniform(-5.0, 5.0, trials)
    E = 10.0 ** rng.uniform(-3.0, np.log10(2.0), trials)
    step1, step2 = W - E * d1(W), W - E * d2(W)
    sampled_descent = bool(np.all(f1(step1) < f1(W)) and np.all(f2(step2) < f2(W)))
    # Each term is convex and 1/4-smooth, so every step with eta < 8 lowers its own term.
    run.check(sampled_descent, "an SGD step with eta <= 2 did not lower the term it was taken on")
    up1, up2 = f(step1) > f(W), f(step2) > f(W)
    frac_some_up = float(np.mean(up1 | up2))
    # Why: f' = 2 sigmoid(w) - 1 has the sign of w, while f1' > 0 > f2'; so at w > 0 the
    # f2-step moves right (uphill for f), at w < 0 the f1-step moves left (uphill too).
    side_ok = bool(np.all(up2[W > 0]) and np.all(up1[W < 0]))

    # One SGD run, uniform sampling: f along the way.
    def sampled(w):  # the derivative of one of the two terms, each with probability 1/2
        return float((d1 if rng.random() < 0.5 else d2)(np.array([w]))[0])

    path = []
    optim.iterate(_gd(sampled, run_eta), 3.0, run_steps, observe=lambda t, w: path.append(float(f(w))))
    path = np.array(path)
    counter = bool(np.all(rise > 0) and np.all(f1_drop < 0))
    return SgdNotMonotone(
        always_decreases=not (counter or bool(np.any(up1 | up2))), w1_over_eta=float(per_eta[0]),
        counterexample_raises_f=counter, uphill_step_everywhere=frac_some_up == 1.0, etas=etas.tolist(),
        w1=w1.tolist(), rise=rise.tolist(), f1_drop=f1_drop.tolist(), trials=trials,
        sampled_term_decreases=sampled_descent, fraction_points_with_uphill_step=frac_some_up,
        fraction_steps_uphill=float(np.mean(np.concatenate([up1, up2]))), uphill_side_rule=side_ok,
        run_eta=float(run_eta), run_steps=run_steps, run_steps_uphill=int(np.sum(np.diff(path) > 0)), path=path)


@figure("theory.sgd-not-monotone")
def sgd_not_monotone_figure(r: SgdNotMonotone, run: Context) -> None:
    import matplotlib.pyplot as plt

    f, f1, f2 = _logistic_total, theory.logistic_f1, theory.logistic_f2
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    xs = np.linspace(-3, 3, 400)
    ax.plot(xs, f(xs), "k-", label="$f = f_1 + f_2$")
    ax.plot(xs, f1(xs), "--", label=r"$f_1 = \mathrm{softplus}(w)$")
    ax.plot(xs, f2(xs), ":", label=r"$f_2 = \mathrm{softplus}(-w)$")
    e_show = 1.0
    w_show = r.w1_over_eta * e_show
    ax.annotate("", xy=(w_show, float(f(w_show))), xytext=(0.0, float(f(0.0))),
                arrowprops=dict(arrowstyle="->", color="tab:red", lw=1.5))
    ax.plot([0.0, w_show], [float(f(0.0)), float(f(w_show))], "o", color="tab:red",
            label=f"SGD step on $f_1$ from $w = 0$, $\\eta = {e_show:g}$")
    ax.set_xlabel("$w$")
    ax.legend(fontsize=8)
    ax.set_title("The two logistic terms and their sum")
    ax = axes[1]
    path = r.path
    ax.plot(path, "k.-", ms=3, lw=0.8)
    up_idx = np.flatnonzero(np.diff(path) > 0) + 1
    ax.plot(up_idx, path[up_idx], "o", color="tab:red", ms=4,
            label=f"{r.run_steps_uphill} of {r.run_steps} steps raised $f$")
    ax.set_xlabel("SGD step (one term sampled uniformly)")
    ax.set_ylabel("$f(w)$")
    ax.set_title(f"SGD from $w = 3$, $\\eta = {r.run_eta:g}$")
    ax.legend(fontsize=8)
    run.savefig(fig, "sgd", alt=(
        "Left: $f_1 = \\operatorname{softplus}(w)$, $f_2 = \\operatorname{softplus}(-w)$ and their sum $f$, with an "
        "arrow for the SGD step on $f_1$ from "
        f"$w = 0$ with $\\eta = 1$, which moves to $w$ = {w_show:g} and up the curve of $f$. Right: $f$ along a "
        f"{r.run_steps}-step SGD run from $w = 3$, with the {r.run_steps_uphill} steps that raised $f$ marked."))
