"""Claims about gradient-based learning-rate optimisation (problem sets 000 and 002, section 2).

The setting: gradient descent on ``L(w) = (1/n) ||X w - t||^2`` with learning
rate eta, ``w_{k+1} = w_k - eta (2/n) X^T (X w_k - t)``, and the loss after t
steps ``L_t`` as a function of eta.  Three independent routes meet in every
experiment:

* autodiff through the unrolled steps (:func:`unrolled_loss`, built from
  ``nablab.grad`` of the loss, so nothing about the closed form is assumed; the
  steps run in :func:`nablab.optim.iterate`, the loop every optimizer runs in);
* closed forms derived here (:func:`one_step_closed_form`,
  :func:`t_step_closed_form`) and the library's oracle ``nablab.hyper.quadratic_lr``;
* numerical minimisation (``scipy.optimize.minimize_scalar``) and finite differences.

Each claim is a ``compute`` function returning a dataclass (its answer slots and
the evidence) and a ``figure`` function; the verdicts come from grading the answer
sets' sheets against the slots.  Where an answer set gives formulas, the claim
declares a check instance (its ``X``, ``t``, ``w0``, ``eta`` parameters) and the
slots hold the true values there.
"""

from __future__ import annotations

import math
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import nablab as nb
from nablab import optim
from nablab.hyper import Unrolled, lr_hypergradient, quadratic_lr
from nablab.lab.registry import Context, ParamError, compute, figure
from nablab.optim import sgd

#: A result field that the report does not list (curves, graphs: what the figure draws).
HIDDEN = {"report": False}

# -- the setting --------------------------------------------------------------------------------------


def lsq_loss(X, t):
    """``w -> (1/n) ||X w - t||^2`` in nablab operations."""
    n = X.shape[0]
    return lambda w: nb.sum((X @ w - t) ** 2) / n


def gradient_descent(loss, w0, eta, steps, **options):
    """``steps`` GD steps ``w <- w - eta grad loss(w)`` from ``w0``, gradients by ``nablab.grad``: an
    :func:`nablab.optim.iterate` run (``options`` are its own, e.g. ``keep_trajectory``).

    The step is written out rather than run by ``optim.run`` with ``optim.sgd`` (or
    ``nablab.hyper.Unrolled``, which does): sgd's ``w + (-eta) g`` puts a negation per
    step in the graph, so second derivatives differ in the last bit, and its per-step
    bookkeeping made these claims about 20% slower. Unchecked: past the critical rate
    the loss grows, which is a value like any other here.
    """
    g = nb.grad(loss)
    return optim.iterate(lambda w, state, k: optim.Step(w - eta * g(w), state), w0, steps,
                         on_divergence="ignore", **options)


def unrolled_loss(eta, w0, X, t, steps):
    """``L_steps`` after ``steps`` GD steps at rate ``eta``; each gradient comes from ``nablab.grad``.

    Differentiable in every argument (eta, w0, X, t), to any order.
    """
    loss = lsq_loss(X, t)
    return loss(gradient_descent(loss, w0, eta, steps).params)


def random_problem(rng, n_max=8, d_max=8):
    """A random least-squares problem (X, t, w0) with n, d drawn from 1..n_max, 1..d_max."""
    n, d = int(rng.integers(1, n_max + 1)), int(rng.integers(1, d_max + 1))
    return rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal(d)


def instance(run: Context):
    """The claim's problem ``(X, t, w0)`` from its parameters, as float arrays of matching sizes."""
    X = np.array(run.params["X"], dtype=float)
    t = np.array(run.params["t"], dtype=float)
    w0 = np.array(run.params["w0"], dtype=float)
    if X.ndim != 2 or t.shape != (X.shape[0],) or w0.shape != (X.shape[1],):
        raise ParamError(f"{run.claim_id}: X must be n x d, t of length n and w0 of length d "
                         f"(got X {X.shape}, t {t.shape}, w0 {w0.shape})")
    return X, t, w0


def relerr(a, b):
    """Max relative error of ``a`` against ``b`` (scaled by max(1, |b|) entry-wise max)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(1e-300, np.max(np.abs(b)))) if b.size else 0.0


def worse(worst, key, value):
    """Keep the largest error seen under ``key``."""
    worst[key] = max(worst[key], float(value))


def over(errors: dict, limits: dict) -> dict:
    """The errors above their limits (a NaN is above any limit)."""
    return {k: errors[k] for k in limits if not errors[k] <= limits[k]}


def listed(failed: dict, limits: dict) -> str:
    return "; ".join(f"{k} = {v:.3g} > {limits[k]:g}" for k, v in failed.items())


def one_step_closed_form(X, t, w0):
    """L1, dL1/deta, d2L1/deta2 and eta* for one GD step, derived with ``a = X w0 - t``.

    ``w1 = w0 - (2 eta/n) X^T a`` so ``X w1 - t = a - (2 eta/n) b`` with ``b = X X^T a``:
    ``L1 = (1/n) (|a|^2 - (4 eta/n) a.b + (4 eta^2/n^2) |b|^2)``, a parabola in eta with
    ``L1'' = 8 |b|^2 / n^3 >= 0`` and vertex ``eta* = (n/2) a.b / |b|^2 = (n/2) |X^T a|^2 / |X X^T a|^2``.
    """
    n = X.shape[0]
    a = X @ w0 - t
    b = X @ (X.T @ a)
    ab, bb = float(a @ b), float(b @ b)
    return {
        "L1": lambda eta: float(a @ a - 4 * eta / n * ab + 4 * eta**2 / n**2 * bb) / n,
        "dL1": lambda eta: float(-4 / n * ab + 8 * eta / n**2 * bb) / n,
        "d2L1": 8 * bb / n**3,
        "eta*": (n / 2) * ab / bb if bb > 0 else float("nan"),
    }


def t_step_closed_form(X, t, w0, eta, steps):
    """``L_t = (1/n) |(I - (2 eta/n) X X^T)^t a0|^2`` by a matrix power (no eigenvectors)."""
    n = X.shape[0]
    A = np.eye(n) - (2 * eta / n) * X @ X.T
    r = np.linalg.matrix_power(A, steps) @ (X @ w0 - t)
    return float(r @ r) / n


def t_step_on_grid(X, t, w0, etas, steps):
    """``L_t`` at many rates at once: the residual recursion ``a <- a - (2 eta/n) X X^T a`` per rate.

    A closed-form recursion on the residual, not GD on w: with no gradient and no loop of nablab's,
    it checks convexity without derivatives.
    """
    n = X.shape[0]
    K = X @ X.T
    etas = np.asarray(etas, dtype=float)[:, None]
    R = np.tile(X @ w0 - t, (etas.shape[0], 1))
    for _ in range(steps):
        R = R - (2 * etas / n) * (R @ K)
    return np.sum(R * R, axis=1) / n


def _minimize(f, bracket=None, bounds=None, xatol=1e-12):
    """``scipy.optimize.minimize_scalar``: Brent from a bracket, or bounded search in ``bounds``."""
    from scipy.optimize import minimize_scalar

    if bounds is not None:
        return minimize_scalar(f, bounds=bounds, method="bounded", options={"xatol": xatol}).x
    return minimize_scalar(f, bracket=bracket, method="brent", tol=1e-12).x


def _vector(v) -> str:
    v = np.atleast_1d(np.asarray(v, dtype=float))
    return "(" + ", ".join(f"{x:g}" for x in v) + ")"


def _eigenvalues(lam) -> list:
    """Eigenvalues as text, rounding-level ones as 0."""
    lam = np.asarray(lam, dtype=float)
    return [f"{v:.3g}" if abs(v) > 1e-12 * np.abs(lam).max() else "0" for v in lam]


def _matrix(M) -> str:
    return "[" + "; ".join(" ".join(f"{x:g}" for x in row) for row in np.atleast_2d(M)) + "]"


# -- hyper.graph-two-steps ----------------------------------------------------------------------------


def two_step_loss(eta, w0, X, t):
    """L2 after two GD steps with the gradient ``(2/n) X^T (X w - t)`` written out."""
    n = X.shape[0]

    def grad_L(w):
        return (2.0 / n) * (X.T @ (X @ w - t))

    w1 = w0 - eta * grad_L(w0)
    w2 = w1 - eta * grad_L(w1)
    return nb.sum((X @ w2 - t) ** 2) / n


def two_step_loss_autodiff(eta, w0, X, t):
    """The same L2 with each gradient taken by ``nablab.grad`` inside the traced function."""
    return unrolled_loss(eta, w0, X, t, 2)


def _name_nodes(graph, named):
    """Prefix the op of the node holding each named value (exact match, one node per name)."""
    found = {}
    for name, (op, value) in named.items():
        for node in graph.nodes:
            if node["op"] == op and np.shape(node["value"]) == np.shape(value) and np.array_equal(node["value"], value):
                node["op"] = f"{name} = {op}"
                found[name] = node["id"]
                break
    return found


def _ancestors(graph, node_id):
    parents = {n["id"]: [i for i in n["inputs"] if not isinstance(i, str)] for n in graph.nodes}
    seen, stack = set(), [node_id]
    while stack:
        for p in parents[stack.pop()]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


@dataclass
class GraphTwoSteps:
    eta_uses: int                    # slot: operations that take eta as an input
    w1_feeds_grad_L1_and_w2: bool    # slot
    losses_feed_L2: bool             # slot: L0 or L1 is an ancestor of L2
    instance: dict                   # the drawn problem: X, t, w0, eta
    nodes: list                      # the traced graph: id, op, inputs, value, grad
    named_nodes: dict                # grad L0, w1, grad L1, w2, L2 -> node id
    losses: list                     # L0, L1, L2 on the drawn problem
    dL2_deta: float                  # by backpropagation through the graph
    nodes_with_grad_inside: int      # the same loss with nablab.grad inside the trace
    problems: int                    # random problems checked against central differences
    errors: dict                     # worst relative errors of the self-checks
    limits: dict
    graph_files: list                # the Graphviz sources the figure writes: gradient written out, nablab.grad inside
    graph: Any = field(default=None, repr=False, metadata=HIDDEN)
    graph_autodiff: Any = field(default=None, repr=False, metadata=HIDDEN)

    def summary(self) -> str:
        structure = (
            f"$\\eta$ feeds {self.eta_uses} operation{'s' if self.eta_uses != 1 else ''}"
            + (", one multiplication per step" if self.eta_uses == 2 else "") + "; $w_1$ "
            + ("feeds both $\\nabla L_1$ and $w_2$" if self.w1_feeds_grad_L1_and_w2
               else "does not feed both $\\nabla L_1$ and $w_2$")
            + "; $L_0$ and $L_1$ " + ("are" if self.losses_feed_L2 else "are not")
            + " ancestors of $L_2$" + ("" if self.losses_feed_L2 else
                                       " (each gradient needs the residual $X w - t$, not the loss value)"))
        return (
            f"nablab's tracer records $L_2(\\eta, w_0, X, t)$ as {len(self.nodes)} nodes: {structure}. "
            f"Backpropagation through it gives $dL_2/d\\eta$ = {self.dL2_deta:.6g} at $\\eta$ = {self.instance['eta']:g}, "
            f"equal to the closed form to {self.errors['dL2/deta: graph vs closed form']:.0e}; on {self.problems} "
            "random problems every input gradient matches central differences to "
            f"{self.errors['random problems: input gradients vs central differences']:.0e}. With nablab.grad "
            f"inside the trace the graph has {self.nodes_with_grad_inside} nodes and the same numbers."
        )


@compute("hyper.graph-two-steps")
def graph_two_steps(run: Context) -> GraphTwoSteps:
    rng = run.rng()
    eta = float(run.params["eta"])
    trials = run.params["problems"]
    X, t, w0 = instance(run)
    graph = nb.trace(two_step_loss, eta, w0, X, t, names=["eta", "w0", "X", "t"])
    graph.backward()
    n = X.shape[0]
    g0 = (2.0 / n) * (X.T @ (X @ w0 - t))
    w1 = w0 - eta * g0
    g1 = (2.0 / n) * (X.T @ (X @ w1 - t))
    w2 = w1 - eta * g1
    L0, L1, L2 = (float(np.sum((X @ w - t) ** 2) / n) for w in (w0, w1, w2))
    named = _name_nodes(graph, {"grad L0": ("multiply", g0), "w1": ("subtract", w1), "grad L1": ("multiply", g1),
                                "w2": ("subtract", w2), "L2": ("divide", np.float64(L2))})
    by_op = {node["op"]: node for node in graph.nodes if not node["inputs"]}
    eta_users = [node["id"] for node in graph.nodes if 0 in node["inputs"]]
    out_id = graph.nodes[-1]["id"]
    on_path = _ancestors(graph, out_id) | {out_id}
    loss_values_on_path = [node["id"] for node in graph.nodes if node["id"] in on_path
                           and np.shape(node["value"]) == () and node["value"] in (L0, L1) and node["id"] != out_id]
    # The same loss with nablab.grad inside the trace: a longer graph, the same numbers.
    graph_ad = nb.trace(two_step_loss_autodiff, eta, w0, X, t, names=["eta", "w0", "X", "t"])
    graph_ad.backward()
    ad_inputs = {node["op"]: node for node in graph_ad.nodes if not node["inputs"]}
    L0_on_ad_path = any(np.shape(node["value"]) == () and node["value"] in (L0, L1) for node in graph_ad.nodes[:-1])

    q = quadratic_lr(X, t, w0, eta, 2)
    errors = {
        "L2: graph vs closed form": relerr(graph.value, q.loss),
        "dL2/deta: graph vs closed form": relerr(by_op["eta"]["grad"], q.dloss),
        "nablab.grad inside vs gradient written out (values and input gradients)": max(
            relerr(graph_ad.value, graph.value),
            *(relerr(ad_inputs[k]["grad"], by_op[k]["grad"]) for k in ("eta", "w0", "X", "t"))),
    }
    # Random problems: every input gradient of the graph against finite differences, dL2/deta against the oracle.
    worst_fd, worst_closed = 0.0, 0.0
    for _ in range(trials):
        Xr, tr, wr = random_problem(rng, 5, 5)
        lam = np.linalg.eigvalsh(Xr @ Xr.T).max()
        er = float(rng.uniform(0.05, 0.5) * Xr.shape[0] / lam)
        gr = nb.trace(two_step_loss, er, wr, Xr, tr)
        gr.backward()
        grads = {node["op"]: node["grad"] for node in gr.nodes if not node["inputs"]}
        args = {"eta": np.float64(er), "w0": wr, "X": Xr, "t": tr}
        for k, value in args.items():
            def f(v, k=k, args=args):
                return np.float64(two_step_loss(**{**args, k: v}))
            fd = nb.numerical_jacobian(f, value, eps=1e-6)
            worst_fd = max(worst_fd, relerr(grads[k], fd))
        worst_closed = max(worst_closed, relerr(grads["eta"], quadratic_lr(Xr, tr, wr, er, 2).dloss))
    errors["random problems: input gradients vs central differences"] = worst_fd
    errors["random problems: dL2/deta vs closed form"] = worst_closed
    limits = {"L2: graph vs closed form": 1e-12, "dL2/deta: graph vs closed form": 1e-10,
              "nablab.grad inside vs gradient written out (values and input gradients)": 1e-12,
              "random problems: input gradients vs central differences": 1e-5,
              "random problems: dL2/deta vs closed form": 1e-9}
    failed = over(errors, limits)
    run.check(not failed, "the traced graph's value or gradients disagree with the closed form, "
                          "nablab.grad or central differences (relative): " + listed(failed, limits))
    w1_users = [node["id"] for node in graph.nodes if named.get("w1") in node["inputs"]]
    w1_feeds_both = len(named) == 5 and named["w2"] in w1_users and any(
        u in _ancestors(graph, named["grad L1"]) for u in w1_users)
    return GraphTwoSteps(
        eta_uses=len(eta_users), w1_feeds_grad_L1_and_w2=bool(w1_feeds_both),
        losses_feed_L2=bool(loss_values_on_path or L0_on_ad_path),
        instance={"X": X, "t": t, "w0": w0, "eta": eta},
        nodes=[{"id": node["id"], "op": node["op"], "inputs": node["inputs"], "value": node["value"],
                "grad": node["grad"]} for node in graph.nodes],
        named_nodes=named, losses=[L0, L1, L2], dL2_deta=float(by_op["eta"]["grad"]),
        nodes_with_grad_inside=len(graph_ad.nodes), problems=trials, errors=errors, limits=limits,
        graph_files=[f"{run.claim_id}--graph.dot", f"{run.claim_id}--graph-with-nablab-grad.dot"],
        graph=graph, graph_autodiff=graph_ad)


@figure("hyper.graph-two-steps")
def graph_two_steps_figure(result: GraphTwoSteps, run: Context) -> None:
    p = result.instance
    fig = result.graph.plot(direction="TB")  # 16 layers deep, 4 wide: top to bottom fits the page
    fig.suptitle(f"$L_2$ after two GD steps, $X$ = {_matrix(p['X'])}, $t$ = {_vector(p['t'])}, "
                 f"$w_0$ = {_vector(p['w0'])}, $\\eta$ = {p['eta']:g}:\nvalues and gradients "
                 f"($dL_2/d\\eta$ = {result.dL2_deta:.6g})")
    run.savefig(fig, "graph", alt=(
        f"The computation graph of $L_2$ as nablab's tracer records it, {len(result.nodes)} boxes from the inputs "
        "$\\eta$, $w_0$, $X$ and $t$ at the top to $L_2$ at the bottom, each with its value and gradient; the nodes "
        f"holding $\\nabla L_0$, $w_1$, $\\nabla L_1$, $w_2$ and $L_2$ are labelled, and $\\eta$ has arrows into "
        f"{result.eta_uses} of them."))
    for name, graph in zip(result.graph_files, (result.graph, result.graph_autodiff)):
        (run.out_dir / name).write_text(graph.to_dot())


# -- memory -------------------------------------------------------------------------------------------


def traced_peak(fn):
    """``(result, bytes)``: the peak memory ``fn()`` allocates above what is still allocated when it ends.

    Measured from the end, not the start: what outlives the call is the result and the
    interpreter's own caches (free lists of tuples and floats keep up to about 100 KB each
    after a run), which at small sizes would otherwise pass for growth with the step count.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        out = fn()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return out, peak - end


#: How dL_t/deta is computed: "forward pass" computes L_t alone (no derivative), for comparison.
MEMORY_MODES = ("forward pass", "forward mode", "reverse mode", "checkpointed", "reversible")


def memory_problem(rng, n, d):
    """Least squares with d parameters and the rate eta = 0.1 n / lambda_max (stable, slow to converge)."""
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    t = rng.standard_normal(n)
    lam = np.linalg.eigvalsh(X @ X.T).max()
    return X, t, np.zeros(d), 0.1 * n / lam


def measure_memory(X, t, w0, eta, steps, mode, momentum=0.9):
    """Peak traced bytes, the hypergradient (None for the forward pass) and facts of one mode at one step count."""
    loss = lsq_loss(X, t)
    if mode == "forward pass":
        unrolled = Unrolled(loss, steps, lambda h: sgd(h["lr"]))
        _, peak = traced_peak(lambda: unrolled.run({"lr": np.float64(eta)}, w0))
        return peak, None, {}
    if mode == "reversible":
        from nablab.hyper import reversible_hypergradient

        r, peak = traced_peak(lambda: reversible_hypergradient(loss, w0, eta, momentum, steps))
        return peak, r.d_lr, {"bits per parameter and step": r.bits_per_parameter_step,
                              "reconstructed exactly": r.reconstructed_exactly}
    options = {"checkpoint_every": max(1, math.ceil(math.sqrt(steps)))} if mode == "checkpointed" else {}
    mode_name = "forward" if mode == "forward mode" else "reverse"
    (_, d), peak = traced_peak(lambda: lr_hypergradient(loss, w0, eta, steps, mode=mode_name, **options))
    return peak, float(d), options


def loglog_slope(xs, ys):
    """Least-squares slope of log(y) against log(x)."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def linear_fit(xs, ys):
    """``(intercept, slope, R^2)`` of y against x."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    slope, intercept = np.polyfit(xs, ys, 1)
    resid = ys - (intercept + slope * xs)
    total = float(((ys - ys.mean()) ** 2).sum())
    r2 = 1 - float(resid @ resid) / total if total > 0 else 1.0
    return float(intercept), float(slope), r2


#: The growth laws a memory curve is fitted with: bytes = c0 + c1 f(t).
GROWTH_LAWS = {"O(log t)": np.log, "O(sqrt t)": np.sqrt, "O(t)": lambda s: s, "O(t^2)": lambda s: s**2}
#: A curve is O(1) when it grows by at most this factor more than the forward pass does.
FLAT = 1.10


def growth_law(steps, peaks, flat_growth=1.0):
    """``(law, R^2 per law)``: "O(1)" if the peak grows by at most 10% more than ``flat_growth`` over the
    step range, else the law of :data:`GROWTH_LAWS` whose linear fit ``c0 + c1 f(t)`` explains most (R^2)."""
    s, peaks = np.asarray(steps, float), np.asarray(peaks, float)
    r2 = {law: linear_fit(f(s), peaks)[2] for law, f in GROWTH_LAWS.items()}
    if peaks[-1] / peaks[0] <= FLAT * max(1.0, flat_growth):
        return "O(1)", r2
    return max(r2, key=r2.get), r2


@dataclass
class MemoryVsSteps:
    forward_pass: str                # slot: memory of computing L_t alone, as a law in t
    forward_mode: str                # slot: memory of dL_t/deta by forward mode
    reverse_mode: str                # slot: memory of dL_t/deta by backpropagation
    n: int
    d: int
    eta: float
    momentum: float                  # of the reversible (heavy-ball) mode
    steps: list
    peak_mib: dict                   # mode -> peak traced MiB per step count
    growth: dict                     # mode -> last peak / first peak
    loglog_slope: dict
    growth_laws: dict                # mode -> law (every mode, classified as the slots are)
    fit_r2: dict                     # mode -> law -> R^2 of bytes = c0 + c1 f(t)
    reverse_fit: dict                # bytes = c0 + c1 t: c0, c1, r_squared, c1_per_parameter
    reversible_bits: list            # stored bits per parameter and step, per step count
    log2_inverse_momentum: float
    agreement: dict                  # max relative difference of each mode's dL_t/deta with the reference

    def summary(self) -> str:
        g, law = self.growth, self.growth_laws
        fit = self.reverse_fit
        return (
            f"Measured with tracemalloc on least squares with {self.d} parameters, $t$ = "
            f"{', '.join(map(str, self.steps))}: computing $L_t$ alone takes {law['forward pass']} memory "
            f"(x{g['forward pass']:.3f} over the range); $dL_t/d\\eta$ by forward mode {law['forward mode']} "
            f"(x{g['forward mode']:.3f}); by reverse mode {law['reverse mode']}, {fit['c1'] / 1024:.1f} KiB per step "
            f"({fit['c1_per_parameter']:.1f} bytes per parameter per step, $R^2$ = {fit['r_squared']:.4f}), "
            f"x{g['reverse mode']:.1f} from $t$ = {self.steps[0]} to {self.steps[-1]}. Checkpointing every "
            f"$\\operatorname{{ceil}}(\\sqrt{{t}})$ steps: {law['checkpointed']} (log-log slope "
            f"{self.loglog_slope['checkpointed']:.2f}); "
            f"reversible SGD with momentum {self.momentum:g} stores {np.mean(self.reversible_bits):.3f} bits per "
            f"parameter and step ($\\log_2(1/\\text{{momentum}})$ = {self.log2_inverse_momentum:.3f}), "
            f"x{g['reversible']:.3f} over the range. All modes give the same $dL_t/d\\eta$ (max rel. difference "
            f"{max(self.agreement.values()):.0e})."
        )


@compute("hyper.memory-vs-steps")
def memory_vs_steps(run: Context) -> MemoryVsSteps:
    rng = run.rng()
    n, d = run.params["n"], run.params["d"]
    steps_list = sorted(run.params["steps"])
    if len(steps_list) < 3 or steps_list[0] < 1:
        raise ParamError(f"hyper.memory-vs-steps: steps={steps_list} needs at least three counts >= 1")
    momentum = run.params["momentum"]
    X, t, w0, eta = memory_problem(rng, n, d)
    table = {m: [] for m in MEMORY_MODES}
    hypergrads, extra = {m: [] for m in MEMORY_MODES}, {}
    for mode in MEMORY_MODES:
        for steps in steps_list:
            peak, dl, facts = measure_memory(X, t, w0, eta, steps, mode, momentum)
            table[mode].append(peak)
            hypergrads[mode].append(dl)
            if facts:
                extra.setdefault(mode, []).append(facts)
    # The modes compute the same number: forward/reverse/checkpointed against the closed form, the
    # reversible (heavy-ball, fixed-point) mode against forward mode with the same momentum at the two
    # shortest horizons. Errors are scaled by the largest |dL_t/deta| of the series (it dies out with t).
    closed = [quadratic_lr(X, t, w0, eta, s).dloss for s in steps_list]
    agreement = {m: relerr(hypergrads[m], closed) for m in ("forward mode", "reverse mode", "checkpointed")}
    loss = lsq_loss(X, t)
    forward_momentum = [lr_hypergradient(loss, w0, eta, s, mode="forward", momentum=momentum)[1]
                        for s in steps_list[:2]]
    agreement["reversible (vs forward mode with momentum)"] = relerr(hypergrads["reversible"][:2], forward_momentum)
    run.check(all(v <= (1e-6 if m.startswith("reversible") else 1e-8) for m, v in agreement.items()),
              "the modes' dL_t/deta disagree (max relative difference; limit 1e-8, reversible 1e-6): "
              + ", ".join(f"{m} {v:.3g}" for m, v in agreement.items()))
    run.check(all(f["reconstructed exactly"] for f in extra["reversible"]),
              "reversible SGD did not reconstruct the iterates exactly at t = "
              + ", ".join(str(st) for st, f in zip(steps_list, extra["reversible"]) if not f["reconstructed exactly"]))
    s = np.array(steps_list, float)
    growth = {m: table[m][-1] / table[m][0] for m in MEMORY_MODES}
    laws, r2 = {}, {}
    for m in MEMORY_MODES:
        laws[m], r2[m] = growth_law(s, table[m], 1.0 if m == "forward pass" else growth["forward pass"])
    c0, c1, rev_r2 = linear_fit(s, table["reverse mode"])
    return MemoryVsSteps(
        forward_pass=laws["forward pass"], forward_mode=laws["forward mode"], reverse_mode=laws["reverse mode"],
        n=n, d=d, eta=float(eta), momentum=momentum, steps=steps_list,
        peak_mib={m: [round(v / 2**20, 4) for v in table[m]] for m in MEMORY_MODES},
        growth=growth, loglog_slope={m: loglog_slope(s, table[m]) for m in MEMORY_MODES},
        growth_laws=laws, fit_r2=r2,
        reverse_fit={"c0": c0, "c1": c1, "r_squared": rev_r2, "c1_per_parameter": c1 / d},
        reversible_bits=[f["bits per parameter and step"] for f in extra["reversible"]],
        log2_inverse_momentum=math.log2(1 / momentum), agreement=agreement)


@figure("hyper.memory-vs-steps")
def memory_vs_steps_figure(result: MemoryVsSteps, run: Context) -> None:
    import matplotlib.pyplot as plt

    s = np.array(result.steps, float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, marker in zip(MEMORY_MODES, "osD^v"):
        ax.loglog(s, result.peak_mib[mode], marker + "-",
                  label=f"{mode}: {result.growth_laws[mode]} (slope {result.loglog_slope[mode]:.2f})")
    ax.loglog(s, result.reverse_fit["c1"] * s / 2**20, "k:", lw=1, label="proportional to $t$")
    ax.set_xlabel("unrolled steps $t$")
    ax.set_ylabel("peak traced memory (MiB)")
    ax.set_title(f"$dL_t/d\\eta$ on least squares, $d = {result.d}$, $n = {result.n}$ (tracemalloc)")
    ax.legend(fontsize=8)
    run.savefig(fig, "memory", alt=(
        "Peak memory against the number of unrolled steps, on log-log axes, for each way of computing: "
        + "; ".join(f"{m} {result.growth_laws[m]} (x{result.growth[m]:.2f} from $t$ = {result.steps[0]} to "
                    f"{result.steps[-1]})" for m in MEMORY_MODES)
        + "; a dotted line proportional to $t$ for comparison."))


# -- hyper.long-horizon -------------------------------------------------------------------------------


def loss_curve_hypergradients(loss_fn, w0, eta, steps):
    """``dL(w_k)/d eta`` for k = 1..steps in one forward-mode pass (the tangent of the stacked losses).

    Its own loop, not ``optim.iterate``: it is the route the library's reverse mode
    (``lr_hypergradient``, through ``optim.run``) and ``Unrolled``'s central differences are
    checked against, so it must not run through the loop they run through.
    """
    def losses(e):
        g = nb.grad(loss_fn)
        w, out = w0, []
        for _ in range(steps):
            w = w - e * g(w)
            out.append(loss_fn(w))
        return nb.stack(out)

    values, tangents = nb.jvp(losses, (np.float64(eta),), (np.float64(1.0),))
    return np.asarray(values), np.asarray(tangents)


def double_well(w):
    """``sum (w^2 - 1)^2 / 4``: two minima at +-1, a bump of height 1/4 at 0; f'' = 3 w^2 - 1."""
    return nb.sum((w**2 - 1) ** 2) / 4


def lyapunov_exponent(eta, w0, steps):
    """Mean of log|1 - eta f''(w_k)| along GD on the double well: the growth rate of d w_k / d eta.

    Plain floats with f' = w^3 - w and f'' = 3 w^2 - 1 written out: the oracle for the growth of the
    forward-mode hypergradient, so it uses neither nablab's derivatives nor its loop.
    """
    w, logs = float(w0), []
    for _ in range(steps):
        logs.append(math.log(max(abs(1 - eta * (3 * w * w - 1)), 1e-300)))
        w = w - eta * w * (w * w - 1)
    return float(np.mean(logs))


@dataclass
class LongHorizon:
    memory_grows: bool               # slot: reverse mode's memory grows with the horizon
    hypergradient_vanishes: bool     # slot: |dL_t/deta| dies out at small rates
    hypergradient_explodes: bool     # slot: |dL_t/deta| blows up (unstable rate, chaotic GD)
    horizon: int
    n: int                           # the least-squares problem: examples
    d: int                           # and parameters
    eta_crit: float                  # n / lambda_max of the least-squares problem
    least_squares: dict              # per rate: eta, |dL/deta| at t = 1 and T, growth factors, errors
    double_well: dict                # per rate: eta, largest loss, |dL/deta| at t = 1 and T, Lyapunov exponent
    findings: dict                   # slot -> the measured conditions it is made of
    memory_steps: list               # the two horizons reverse mode's memory is measured at
    reverse_peaks: list              # its peak bytes there
    forward_peak: int                # forward mode's peak bytes at the longer one
    reverse_bytes_per_parameter_step: float
    extrapolation: dict              # parameters, steps, GiB: the 8-byte-per-iterate floor of reverse mode
    curves: dict = field(default_factory=dict, repr=False, metadata=HIDDEN)

    def summary(self) -> str:
        ls, dw = self.least_squares, self.double_well
        hs, hu = ls["stable"]["|dL/deta| at t = 1 and T"], ls["unstable"]["|dL/deta| at t = 1 and T"]
        wc = dw["chaotic"]
        ex = self.extrapolation
        return (
            f"Memory: reverse mode's peak {'grows' if self.memory_grows else 'does not grow'} with the horizon "
            f"({self.reverse_peaks[0] / 1024:.0f} KiB at $t$ = {self.memory_steps[0]}, "
            f"{self.reverse_peaks[1] / 1024:.0f} KiB at $t$ = {self.memory_steps[1]}; "
            f"{self.reverse_bytes_per_parameter_step:.0f} bytes per parameter per step, against forward mode's "
            f"{self.forward_peak / 1024:.0f} KiB in all). Keeping one float64 iterate per step is already "
            f"{ex['GiB']:.0f} GiB for {ex['parameters']:.0e} parameters and {ex['steps']:.0e} steps. "
            f"Gradients: on least squares $|dL_t/d\\eta|$ goes from {hs[0]:.2g} to {hs[1]:.2g} in {self.horizon} steps "
            f"at {ls['stable']['eta / eta_crit']:g} x the critical rate and from {hu[0]:.2g} to {hu[1]:.2g} at "
            f"{ls['unstable']['eta / eta_crit']:g} x, by the factor $\\max_i |1 - 2\\eta\\lambda_i/n|^2$ per step the "
            "closed "
            f"form predicts ({ls['unstable']['predicted_factor_per_step']:.4g} there). On the double well GD at "
            f"$\\eta$ = {wc['eta']:g} keeps the loss at most {wc['largest_loss_after_20_steps']:.3g} after 20 steps "
            f"while $|dL_t/d\\eta|$ reaches {wc['|dL/deta| at t = 1 and T'][1]:.1e}, growing at "
            f"{wc['hypergradient_growth_rate']:.3f} per step against a Lyapunov exponent of "
            f"{wc['lyapunov_exponent']:.3f}. So hypergradients "
            + ("vanish" if self.hypergradient_vanishes else "do not vanish") + " at small rates and "
            + ("explode" if self.hypergradient_explodes else "do not explode") + " at large ones."
        )


@compute("hyper.long-horizon")
def long_horizon(run: Context) -> LongHorizon:
    rng = run.rng()
    p = run.params
    T = p["steps"]
    n, d = p["n"], p["d"]
    ks = np.arange(1, T + 1)
    curves = {"t": ks}
    # 1) least squares: forward mode at every step against the closed form
    X, t, w0 = rng.standard_normal((n, d)), rng.standard_normal(n), np.zeros(d)
    eta_crit = n / np.linalg.eigvalsh(X @ X.T).max()  # past it the top factor |1 - 2 eta lambda_max / n| exceeds 1
    loss = lsq_loss(X, t)
    quad = {}
    for name, mult in (("stable", p["stable"]), ("unstable", p["unstable"])):
        eta = mult * eta_crit
        _, h = loss_curve_hypergradients(loss, w0, eta, T)
        q = quadratic_lr(X, t, w0, eta, 1)
        closed = np.array([q.dloss_at(eta, int(k)) for k in ks])
        # |h_k| ~ k r^k with r the largest |1 - 2 eta lambda_i / n|^2 over directions a0 has a component in
        active = q.coefficients > 1e-20 * q.coefficients.max()
        predicted = float(np.max(np.abs(1 - 2 * eta * q.eigenvalues[active] / n))) ** 2
        tail = ks >= T // 2
        fitted = float(np.exp(np.polyfit(ks[tail], np.log(np.abs(closed[tail]) / ks[tail]), 1)[0]))
        measured = float(np.exp(np.polyfit(ks[tail], np.log(np.abs(h[tail]) / ks[tail]), 1)[0]))
        lib = lr_hypergradient(loss, w0, eta, T // 4, mode="reverse")[1]
        fwd_err, lib_err = relerr(h, closed), relerr(lib, h[T // 4 - 1])
        quad[name] = {"eta": eta, "eta / eta_crit": mult, "|dL/deta| at t = 1 and T": [abs(h[0]), abs(h[-1])],
                      "forward mode vs closed form (max abs error / max |dL/deta|)": fwd_err,
                      "library reverse mode at T/4 vs forward (rel)": lib_err,
                      "predicted_factor_per_step": predicted, "fitted_factor_per_step": measured,
                      "closed_form_factor_per_step": fitted}
        curves[f"least squares, {name}"] = np.abs(h)
        run.check(fwd_err <= 1e-9 and lib_err <= 1e-8,
                  f"least squares, {name} rate: forward mode differs from the closed form by {fwd_err:.3g} of the "
                  f"curve's scale (limit 1e-9), reverse mode at T/4 from forward mode by {lib_err:.3g} (limit 1e-8)")
        run.check(abs(fitted / predicted - 1) <= 0.02,
                  f"least squares, {name} rate: the per-step factor fitted to the closed form, {fitted:.6g}, is "
                  f"not within 2% of max|1 - 2 eta lambda_i/n|^2 = {predicted:.6g}")
    # 2) a nonconvex loss: GD on a double well; at a large rate the loss stays bounded (it cannot exceed
    #    f(0) = 1/4 once in the wells) but the iteration is chaotic and the hypergradient grows like e^(lambda t)
    v0 = np.array([p["w0"]])
    well = {}
    for name, eta in (("stable", p["well_stable"]), ("chaotic", p["well_chaotic"])):
        vals, h = loss_curve_hypergradients(double_well, v0, eta, T)
        k = 10
        unrolled = Unrolled(double_well, k, lambda hh: sgd(hh["lr"]))
        fd = float(unrolled.final_loss({"lr": eta + 1e-7}, v0) - unrolled.final_loss({"lr": eta - 1e-7}, v0)) / 2e-7
        lyap = lyapunov_exponent(eta, v0[0], T)
        nz = (ks >= 20) & (np.abs(h) > 0)
        rate = float(np.polyfit(ks[nz], np.log(np.abs(h[nz])), 1)[0]) if nz.sum() > 2 else float("-inf")
        fd_err = relerr(h[k - 1], fd)
        well[name] = {"eta": eta, "largest_loss_after_20_steps": float(np.max(vals[19:])),
                      "|dL/deta| at t = 1 and T": [abs(h[0]), abs(h[-1])],
                      "forward mode vs central difference at t = 10 (rel)": fd_err,
                      "lyapunov_exponent": lyap, "hypergradient_growth_rate": rate}
        curves[f"double well, {name}"] = np.abs(h)
        run.check(fd_err <= 1e-5, f"double well, eta = {eta:g}: forward mode dL_10/deta = {h[k - 1]:.10g}, central "
                                  f"difference {fd:.10g} (relative gap {fd_err:.3g} > 1e-5)")
    lyap_chaotic = well["chaotic"]["lyapunov_exponent"]
    rate_chaotic = well["chaotic"]["hypergradient_growth_rate"]
    run.check(abs(rate_chaotic / lyap_chaotic - 1) <= 0.10,
              f"double well at eta = {well['chaotic']['eta']:g}: log|dL/deta| grows at {rate_chaotic:.4g} per step, "
              f"not within 10% of the Lyapunov exponent {lyap_chaotic:.4g}")
    # 3) memory: reverse mode bytes per step, measured at two horizons; forward mode for comparison
    Xm, tm, wm, em = memory_problem(rng, p["memory_n"], p["memory_d"])
    short, long = sorted(p["memory_steps"])
    peaks = [measure_memory(Xm, tm, wm, em, s, "reverse mode")[0] for s in (short, long)]
    fwd_peak = measure_memory(Xm, tm, wm, em, long, "forward mode")[0]
    per_param_step = (peaks[1] - peaks[0]) / (long - short) / Xm.shape[1]
    P, S = p["extrapolate_parameters"], p["extrapolate_steps"]

    hs, hu = quad["stable"]["|dL/deta| at t = 1 and T"], quad["unstable"]["|dL/deta| at t = 1 and T"]
    ws_, wc = well["stable"]["|dL/deta| at t = 1 and T"], well["chaotic"]["|dL/deta| at t = 1 and T"]
    vanishes = {"least squares: below 1e-6 of its start at the stable rate": hs[1] <= 1e-6 * hs[0],
                "double well: below 1e-6 of its start at the small rate": ws_[1] <= 1e-6 * ws_[0]}
    explodes = {"least squares: above 1e6 x its start at the unstable rate": hu[1] >= 1e6 * hu[0],
                "double well: above 1e20 x its start at the large rate, the loss staying below f(0) = 1/4":
                    well["chaotic"]["largest_loss_after_20_steps"] <= 0.25 and wc[1] >= 1e20 * wc[0]}
    grows = {"reverse mode: over 3 x between the two horizons, forward mode under 0.2 x it":
             peaks[1] > 3 * peaks[0] and fwd_peak < 0.2 * peaks[1]}
    findings = {"hypergradient_vanishes": vanishes, "hypergradient_explodes": explodes, "memory_grows": grows}
    return LongHorizon(
        memory_grows=all(grows.values()), hypergradient_vanishes=all(vanishes.values()),
        hypergradient_explodes=all(explodes.values()),
        horizon=T, n=n, d=d, eta_crit=float(eta_crit), least_squares=quad, double_well=well, findings=findings,
        memory_steps=[short, long], reverse_peaks=peaks, forward_peak=fwd_peak,
        reverse_bytes_per_parameter_step=per_param_step,
        extrapolation={"parameters": P, "steps": S, "GiB": 8 * P * S / 2**30,
                       "measured bytes per parameter per step": per_param_step,
                       "forward mode bytes per parameter": fwd_peak / Xm.shape[1]},
        curves=curves)


@figure("hyper.long-horizon")
def long_horizon_figure(result: LongHorizon, run: Context) -> None:
    import matplotlib.pyplot as plt

    ks, c = result.curves["t"], result.curves
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, style in (("stable", "-"), ("unstable", "--")):
        v = result.least_squares[name]
        axes[0].semilogy(ks, c[f"least squares, {name}"], style,
                         label=f"{name}: $\\eta = {v['eta / eta_crit']:g}\\, \\eta_{{\\mathrm{{crit}}}}$")
    for name, style in (("stable", "-"), ("chaotic", "--")):
        curve = c[f"double well, {name}"]
        axes[1].semilogy(ks, np.where(curve > 0, curve, np.nan), style,
                         label=f"{name}: $\\eta = {result.double_well[name]['eta']:g}$")
    axes[0].set_title(f"Least squares ($n = {result.n}$, $d = {result.d}$): $|dL_t/d\\eta|$")
    axes[1].set_title(r"GD on the double well $(w^2 - 1)^2 / 4$: $|dL_t/d\eta|$")
    for ax in axes[:2]:
        ax.set_xlabel("steps $t$")
        ax.legend(fontsize=8)
    ex = result.extrapolation
    P = ex["parameters"]
    ts = np.unique(np.geomspace(10, ex["steps"], 4).round())
    axes[2].loglog(ts, ex["measured bytes per parameter per step"] * P * ts / 2**30, "o-",
                   label=f"reverse, measured bytes/parameter/step x {P:.0e}")
    axes[2].loglog(ts, 8 * P * ts / 2**30, "k:", label="reverse, lower bound: one float64 $w_k$ per step")
    axes[2].axhline(ex["forward mode bytes per parameter"] * P / 2**30, color="C1",
                    label=f"forward, measured peak per parameter x {P:.0e}")
    axes[2].set_xlabel("steps $t$")
    axes[2].set_ylabel(f"GiB for {P:.0e} parameters")
    axes[2].set_title(r"Memory of $dL_t/d\eta$")
    axes[2].legend(fontsize=7)
    ls, dw = result.least_squares, result.double_well
    run.savefig(fig, "long-horizon", alt=(
        f"Three panels. Left: $|dL_t/d\\eta|$ on least squares over {result.horizon} steps on a log scale, falling "
        f"to {ls['stable']['|dL/deta| at t = 1 and T'][1]:.1e} at the stable rate and rising to "
        f"{ls['unstable']['|dL/deta| at t = 1 and T'][1]:.1e} at the unstable one. Middle: the same on the double "
        f"well, falling at $\\eta$ = {dw['stable']['eta']:g} and rising to "
        f"{dw['chaotic']['|dL/deta| at t = 1 and T'][1]:.1e} at $\\eta$ = {dw['chaotic']['eta']:g}. Right: reverse "
        f"mode's memory for {P:.0e} parameters growing linearly with the steps, above the 8-byte-per-step floor, "
        "against forward mode's flat line."))


# -- hyper.one-step-loss ------------------------------------------------------------------------------


@dataclass
class OneStepLoss:
    L1: float                        # slot: L1(eta) at the check instance
    dL1_deta: float                  # slot: dL1/deta there
    L1_second_derivative: float      # slot: d2L1/deta2 (a constant: L1 is a parabola)
    eta_star: float                  # slot: the minimiser of L1 at the check instance
    convex: bool                     # slot: L1 is convex in eta on every problem tried
    instance: dict                   # the check instance: X, t, w0, eta
    problems: int                    # random problems (n, d uniform in 1..8)
    errors: dict                     # worst relative errors of the closed forms against autodiff, the library, scipy
    limits: dict
    negative_second_derivatives: int  # autodiff second derivatives below zero on the random problems
    degenerate: dict                 # w0 already a minimiser (X^T a = 0): L1 constant in eta
    curves: list = field(default_factory=list, repr=False, metadata=HIDDEN)  # (n, d, eta/eta*, L1/L0)

    def summary(self) -> str:
        e, inst = self.errors, self.instance
        return (
            f"On {self.problems} random problems $L_1(\\eta) = (1/n)\\|a - (2\\eta/n) X X^\\top a\\|^2$ matches "
            f"autodiff through one step to {e['L1 closed form vs autodiff']:.0e}; "
            f"$L_1'' = 8\\|X X^\\top a\\|^2/n^3 \\geq 0$ (autodiff's second "
            f"derivative agrees to {e['d2L1/deta2 closed form vs autodiff']:.0e}, and was negative on "
            f"{self.negative_second_derivatives} problems), so $L_1$ is {'convex' if self.convex else 'not convex'}; "
            f"$\\eta^* = (n/2)\\|X^\\top a\\|^2/\\|X X^\\top a\\|^2$ agrees with scipy's minimiser to "
            f"{e['eta* closed form vs minimize_scalar']:.0e} and with the library oracle. On the check instance "
            f"$X$ = {_matrix(inst['X'])}, $t$ = {_vector(inst['t'])}, $w_0$ = {_vector(inst['w0'])}: "
            f"$L_1({inst['eta']:g})$ = {self.L1:.10g}, $dL_1/d\\eta$ = {self.dL1_deta:.10g}, "
            f"$L_1''$ = {self.L1_second_derivative:.10g}, $\\eta^*$ = {self.eta_star:.10g}. $L_1''$ is 0 when "
            f"$X^\\top a = 0$ ($w_0$ already a minimiser): then $L_1$ is constant in $\\eta$ and $\\eta^*$ is $0/0$ "
            f"(computed: $L_1''$ = {self.degenerate['d2L1_deta2']:.1e})."
        )


@compute("hyper.one-step-loss")
def one_step_loss(run: Context) -> OneStepLoss:
    rng = run.rng()
    problems = run.params["problems"]
    errors = {"L1 closed form vs autodiff": 0.0, "dL1/deta closed form vs autodiff": 0.0,
              "d2L1/deta2 closed form vs autodiff": 0.0, "eta* closed form vs library quadratic_lr": 0.0,
              "eta* closed form vs minimize_scalar": 0.0, "eta* closed form vs autodiff vertex -L1'(0)/L1''": 0.0,
              "dL1/deta at eta* (autodiff, relative to |dL1/deta(0)|)": 0.0}
    negative_d2, found_better = 0, 0
    curves = []
    grid = np.linspace(0, 2.2, 45)
    for i in range(problems):
        X, t, w0 = random_problem(rng)
        cf = one_step_closed_form(X, t, w0)
        f = lambda e, X=X, t=t, w0=w0: unrolled_loss(e, w0, X, t, 1)
        df, d2f = nb.grad(f), nb.grad(nb.grad(f))
        eta_star = cf["eta*"]
        slope0 = abs(float(df(0.0)))
        for eta in rng.uniform(0, 2 * eta_star, 2):
            worse(errors, "L1 closed form vs autodiff", relerr(cf["L1"](eta), f(eta)))
            worse(errors, "dL1/deta closed form vs autodiff", abs(cf["dL1"](eta) - df(eta)) / slope0)
        d2 = float(d2f(float(rng.uniform(0, 2 * eta_star))))
        negative_d2 += d2 < 0
        worse(errors, "d2L1/deta2 closed form vs autodiff", relerr(cf["d2L1"], d2))
        eta_ad = -float(df(0.0)) / d2  # L1 is a parabola: its vertex from autodiff's slope and curvature
        worse(errors, "eta* closed form vs autodiff vertex -L1'(0)/L1''", relerr(eta_ad, eta_star))
        worse(errors, "eta* closed form vs library quadratic_lr",
              relerr(eta_star, quadratic_lr(X, t, w0, 0.0, 1).optimal_lr_one_step))
        scale = X.shape[0] / (2 * np.sum(X**2))  # a starting bracket from the data only
        eta_num = _minimize(lambda e, f=f: float(f(e)), bracket=(0.0, scale))
        worse(errors, "eta* closed form vs minimize_scalar", relerr(eta_num, eta_star))
        found_better += f(eta_num) < f(eta_star) - 1e-12 * f(0.0)
        worse(errors, "dL1/deta at eta* (autodiff, relative to |dL1/deta(0)|)", abs(df(eta_star)) / slope0)
        if i < 6:
            L0 = float(f(0.0))
            curves.append((X.shape[0], X.shape[1], grid, np.array([float(f(g * eta_star)) / L0 for g in grid])))
    limits = {"L1 closed form vs autodiff": 1e-10, "dL1/deta closed form vs autodiff": 1e-10,
              "d2L1/deta2 closed form vs autodiff": 1e-10, "eta* closed form vs library quadratic_lr": 1e-10,
              "eta* closed form vs minimize_scalar": 1e-6, "eta* closed form vs autodiff vertex -L1'(0)/L1''": 1e-10,
              "dL1/deta at eta* (autodiff, relative to |dL1/deta(0)|)": 1e-10}
    failed = over(errors, limits)
    run.check(not failed, "the closed forms disagree with autodiff, quadratic_lr or minimize_scalar: "
                          + listed(failed, limits))
    run.check(found_better == 0, f"minimize_scalar found a lower L1 than the closed-form eta* on "
                                 f"{int(found_better)} of {problems} problems")
    # The degenerate case: w0 already minimises L (n > d, least-squares w0), so L1 is flat in eta.
    Xd = rng.standard_normal((5, 2))
    td = rng.standard_normal(5)
    wd = np.linalg.lstsq(Xd, td, rcond=None)[0]
    fd_ = lambda e: unrolled_loss(e, wd, Xd, td, 1)
    degenerate = {"X shape": Xd.shape, "|X^T a|": float(np.linalg.norm(Xd.T @ (Xd @ wd - td))),
                  "d2L1_deta2": float(nb.grad(nb.grad(fd_))(0.3)),
                  "L1_at_0_1_10": [float(fd_(e)) for e in (0.0, 1.0, 10.0)]}
    # The check instance: the slots' values, by autodiff through one step, checked against the closed forms.
    X, t, w0 = instance(run)
    eta = float(run.params["eta"])
    f = lambda e: unrolled_loss(e, w0, X, t, 1)
    cf = one_step_closed_form(X, t, w0)
    L1, dL1, d2L1 = float(f(eta)), float(nb.grad(f)(eta)), float(nb.grad(nb.grad(f))(eta))
    eta_star = -float(nb.grad(f)(0.0)) / d2L1 if d2L1 > 0 else float("nan")
    at = {"L1": relerr(L1, cf["L1"](eta)), "dL1/deta": relerr(dL1, cf["dL1"](eta)),
          "d2L1/deta2": relerr(d2L1, cf["d2L1"]), "eta*": relerr(eta_star, cf["eta*"]),
          "eta* vs library": relerr(eta_star, quadratic_lr(X, t, w0, 0.0, 1).optimal_lr_one_step)}
    run.check(all(v <= 1e-10 for v in at.values()), "at the check instance autodiff disagrees with the closed "
              "forms (relative, limit 1e-10): " + ", ".join(f"{k} {v:.3g}" for k, v in at.items()))
    return OneStepLoss(
        L1=L1, dL1_deta=dL1, L1_second_derivative=d2L1, eta_star=eta_star,
        convex=bool(negative_d2 == 0 and d2L1 >= 0),
        instance={"X": X, "t": t, "w0": w0, "eta": eta}, problems=problems, errors=errors, limits=limits,
        negative_second_derivatives=int(negative_d2), degenerate=degenerate, curves=curves)


@figure("hyper.one-step-loss")
def one_step_loss_figure(result: OneStepLoss, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n, d, grid, ratio in result.curves:
        axes[0].plot(grid, ratio, lw=1.2, label=f"$n = {n}$, $d = {d}$")
    axes[0].axvline(1.0, color="k", ls=":", lw=1)
    axes[0].set_xlabel(r"$\eta / \eta^*$ (closed form)")
    axes[0].set_ylabel(r"$L_1(\eta) / L_0$ (autodiff through one step)")
    axes[0].set_title(r"One-step loss: a parabola with its vertex at $\eta^*$")
    axes[0].legend(fontsize=7)
    keys = list(result.errors)
    axes[1].bar(range(len(keys)), [max(result.errors[k], 1e-18) for k in keys], color="C0")
    axes[1].plot(range(len(keys)), [result.limits[k] for k in keys], "r_", ms=20, mew=2, label="tolerance")
    axes[1].set_yscale("log")
    labels = ["$L_1$", "$L_1'$", "$L_1''$", r"$\eta^*$ lib", r"$\eta^*$ scipy", r"$\eta^*$ vertex", r"$L_1'(\eta^*)$"]
    axes[1].set_xticks(range(len(keys)), labels, rotation=30, fontsize=8)
    axes[1].set_title(f"Worst relative error over {result.problems} random problems")
    axes[1].legend(fontsize=8)
    run.savefig(fig, "one-step", alt=(
        f"Left: $L_1(\\eta)/L_0$ against $\\eta/\\eta^*$ for {len(result.curves)} random problems, parabolas with "
        "their lowest point at $\\eta/\\eta^* = 1$. Right: on a log scale, the worst relative error of each closed "
        "form ($L_1$, its first and second derivatives, $\\eta^*$ against the library, scipy and the autodiff vertex) "
        "over the random "
        "problems, every bar below its tolerance mark."))


# -- hyper.one-step-2d --------------------------------------------------------------------------------


def gd_path(X, t, w0, eta, steps):
    """Iterates of GD with nablab's gradient of (1/n)|Xw - t|^2."""
    return np.array(gradient_descent(lsq_loss(X, t), np.asarray(w0, float), eta, steps,
                                     keep_trajectory=True).trajectory)


def projection(X, t, w):
    """The orthogonal projection of ``w`` onto the solutions {v : X v = t} (X of full row rank)."""
    return w - X.T @ np.linalg.solve(X @ X.T, X @ w - t)


@dataclass
class OneStepTwoD:
    eta_star: float                  # slot: the minimiser of L1
    grad_L0: np.ndarray              # slot: the gradient of the loss at w0
    w1: np.ndarray                   # slot: w0 - eta* grad L0
    w1_is_projection: bool           # slot: w1 is the orthogonal projection of w0 onto {w : X w = t}
    X: np.ndarray
    t: np.ndarray
    w0: np.ndarray
    eta_star_by: dict                # closed form, autodiff + minimize_scalar, library
    min_norm_solution: np.ndarray    # X^T (X X^T)^-1 t
    L1_at_eta_star: float
    small_rate: float
    small_rate_steps: int
    w_small_rate: np.ndarray         # GD at the small rate after that many steps
    problems: int                    # random one-row and two-row problems
    one_row_worst_distance: float    # |w1 - projection of w0|, relative, worst over the one-row problems
    two_rows_reaching_zero: int      # two-row problems where one eta* step reaches zero loss
    errors: dict
    paths: dict = field(default_factory=dict, repr=False, metadata=HIDDEN)     # rate -> GD iterates
    loss_curve: tuple = field(default=(), repr=False, metadata=HIDDEN)         # (etas, L1)

    def summary(self) -> str:
        w1 = _vector(self.w1)
        mn = np.allclose(self.w1, self.min_norm_solution, rtol=0, atol=1e-12)
        return (
            f"For $X$ = {_matrix(self.X)}, $t$ = {_vector(self.t)}, $w_0$ = {_vector(self.w0)}: "
            f"$\\eta^*$ = {self.eta_star:g} (closed form, scipy on autodiff and the library agree), "
            f"$\\nabla L_0$ = {_vector(self.grad_L0)}, and one step "
            f"gives $w_1$ = {w1}, with $L_1$ = {self.L1_at_eta_star:.3g}; $w_1$ "
            + ("is" if self.w1_is_projection else "is not") + " the orthogonal projection of $w_0$ onto the solutions"
            + (" and equals the minimum-norm solution $X^\\top (X X^\\top)^{-1} t$" if mn else "")
            + f". GD at the small rate {self.small_rate:g} reaches {_vector(self.w_small_rate)} after "
            f"{self.small_rate_steps} steps. With one example every GD step moves along $X^\\top$, perpendicular to "
            "the solution set, so the path is the projection of $w_0$: small rates creep there, $\\eta^*$ jumps in one "
            f"step, larger rates overshoot and oscillate about it. On {self.problems} random one-row problems the "
            f"$\\eta^*$ step lands on the projection of $w_0$ (to {self.one_row_worst_distance:.0e}); with two rows it reached "
            f"zero loss in {self.two_rows_reaching_zero} of {self.problems}: one step suffices only when $n = 1$ "
            "(or $a$ is an eigenvector of $X X^\\top$)."
        )


@compute("hyper.one-step-2d")
def one_step_2d(run: Context) -> OneStepTwoD:
    rng = run.rng()
    X, t, w0 = instance(run)
    cf = one_step_closed_form(X, t, w0)
    f = lambda e: unrolled_loss(e, w0, X, t, 1)
    eta_star = cf["eta*"]
    eta_num = _minimize(lambda e: float(f(e)), bracket=(0.0, 0.4 * X.shape[0] / np.sum(X**2)))  # from the data only
    eta_lib = quadratic_lr(X, t, w0, 0.0, 1).optimal_lr_one_step
    grad_L0 = np.asarray(nb.grad(lsq_loss(X, t))(w0), dtype=float)
    path = gd_path(X, t, w0, eta_star, 1)
    w1 = path[1]
    by_hand = (2 / X.shape[0]) * X.T @ (X @ w0 - t)
    run.check(np.allclose(grad_L0, by_hand, rtol=1e-14, atol=1e-14) and
              np.allclose(w1, w0 - eta_star * by_hand, rtol=1e-14, atol=1e-14),
              f"nablab.grad gives grad L0 = {grad_L0}, (2/n) X^T (X w0 - t) = {by_hand}, or the step is off")
    target = projection(X, t, w0)
    w1_is_projection = bool(np.linalg.norm(w1 - target) <= 1e-12 * max(1.0, float(np.linalg.norm(target))))
    w_mn = np.linalg.pinv(X) @ t
    small_lr, small_steps = run.params["small_lr"], run.params["steps"]
    slow = gd_path(X, t, w0, small_lr, small_steps)
    # In general (n = 1): the eta* step from any w0 lands on the projection of w0 onto {w : x.w = t}.
    trials = run.params["problems"]
    worst_proj, reach_zero_n2 = 0.0, 0
    for _ in range(trials):
        d = int(rng.integers(2, 7))
        x, tt, ww = rng.standard_normal((1, d)), rng.standard_normal(1), rng.standard_normal(d)
        e = one_step_closed_form(x, tt, ww)["eta*"]
        w_one = gd_path(x, tt, ww, e, 1)[1]
        proj = projection(x, tt, ww)
        worst_proj = max(worst_proj, float(np.linalg.norm(w_one - proj)) / max(1.0, float(np.linalg.norm(proj))))
        X2, t2, w2 = rng.standard_normal((2, d)), rng.standard_normal(2), rng.standard_normal(d)
        e2 = one_step_closed_form(X2, t2, w2)["eta*"]
        reach_zero_n2 += unrolled_loss(e2, w2, X2, t2, 1) <= 1e-12 * unrolled_loss(0.0, w2, X2, t2, 1)
    errors = {"eta*: closed form vs autodiff + minimize_scalar (rel)": relerr(eta_num, eta_star),
              "eta*: closed form vs library (rel)": relerr(eta_lib, eta_star),
              "random n = 1 problems: |w1 - projection of w0| (rel, worst)": worst_proj}
    limits = {"eta*: closed form vs autodiff + minimize_scalar (rel)": 1e-8, "eta*: closed form vs library (rel)": 1e-12,
              "random n = 1 problems: |w1 - projection of w0| (rel, worst)": 1e-12}
    failed = over(errors, limits)
    run.check(not failed, "eta* or the one-step projection disagrees with an independent computation: "
                          + listed(failed, limits))
    rates = sorted(set(run.params["shown_rates"]) | {eta_star})
    paths = {eta: gd_path(X, t, w0, eta, run.params["shown_steps"]) for eta in rates}
    etas = np.linspace(0, 2.2 * eta_star, 56)
    return OneStepTwoD(
        eta_star=float(eta_star), grad_L0=grad_L0, w1=w1, w1_is_projection=w1_is_projection, X=X, t=t, w0=w0,
        eta_star_by={"closed form": eta_star, "autodiff + minimize_scalar": float(eta_num),
                     "nablab.hyper.quadratic_lr": eta_lib},
        min_norm_solution=w_mn, L1_at_eta_star=float(f(eta_star)), small_rate=small_lr,
        small_rate_steps=small_steps, w_small_rate=slow[-1], problems=trials,
        one_row_worst_distance=worst_proj, two_rows_reaching_zero=int(reach_zero_n2), errors=errors,
        paths=paths, loss_curve=(etas, np.array([float(f(e)) for e in etas])))


@figure("hyper.one-step-2d")
def one_step_2d_figure(result: OneStepTwoD, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    two_d = result.X.shape[1] == 2
    if two_d and result.X.shape[0] == 1:
        (x1, x2), t0 = result.X[0], result.t[0]
        s = np.linspace(-1, 4, 2)
        if abs(x2) > 0:
            ax.plot(s, (t0 - x1 * s) / x2, "k-", lw=1, label=f"solutions {x1:g} w[0] + {x2:g} w[1] = {t0:g}")
    styles = ("o-", "s-", "D-", "^-", "v-", "<-", ">-")
    for (eta, p), style in zip(result.paths.items(), styles):
        label = f"$\\eta = {eta:g}$" + (r" ($\eta^*$)" if eta == result.eta_star else "")
        if two_d:
            ax.plot(p[:, 0], p[:, 1], style, ms=3, lw=0.8, label=label)
        axes[1].plot(np.arange(len(p)), p[:, 0], style, ms=3, lw=0.8, label=label)
    mn = result.min_norm_solution
    if two_d:
        ax.plot(*mn, "k*", ms=12, label="min-norm solution")
        span = max(1.0, float(np.abs(mn).max()))
        ax.set_xlim(-0.2 * span, 2.1 * span)
        ax.set_ylim(-0.2 * span, 2.1 * span)
        ax.set_aspect("equal")
    ax.set_xlabel("w[0]")
    ax.set_ylabel("w[1]")
    ax.set_title(f"GD from $w_0$ = {_vector(result.w0)} moves along $X^\\top$")
    ax.legend(fontsize=7, loc="upper right")
    axes[1].axhline(mn[0], color="k", ls=":", lw=1, label="min-norm solution")
    axes[1].set_xlabel("step $k$")
    axes[1].set_ylabel("$w_k$[0]")
    axes[1].set_title(r"Creep (small $\eta$), one jump ($\eta^*$), overshoot (large $\eta$)")
    axes[1].legend(fontsize=7)
    etas, L1 = result.loss_curve
    axes[2].plot(etas, L1)
    axes[2].axvline(result.eta_star, color="k", ls=":", label=f"$\\eta^* = {result.eta_star:g}$")
    axes[2].set_xlabel(r"$\eta$")
    axes[2].set_ylabel(r"$L_1(\eta)$ (autodiff through one step)")
    axes[2].set_title(f"$L_1(\\eta)$ for $X$ = {_matrix(result.X)}, $t$ = {_vector(result.t)}")
    axes[2].legend()
    run.savefig(fig, "trajectory", alt=(
        f"Left: GD paths from $w_0$ = {_vector(result.w0)} in the (w[0], w[1]) plane at {len(result.paths)} rates, "
        f"all along one straight line towards the minimum-norm solution {_vector(mn)}; the $\\eta^*$ = "
        f"{result.eta_star:g} path reaches it in one step, small rates creep, large ones overshoot. Middle: "
        "$w_k$[0] against the step. Right: $L_1(\\eta)$, a parabola with its minimum at "
        "$\\eta^*$."))


# -- hyper.t-step-loss --------------------------------------------------------------------------------


@dataclass
class TStepLoss:
    L_t: float                       # slot: L_t(eta) at the check instance
    convex: bool                     # slot: L_t is convex in eta on every problem and horizon tried
    gram_always_positive_definite: bool  # slot: X X^T was positive definite on every problem tried
    instance: dict                   # the check instance: X, t, w0, eta, horizon
    instance_gram_eigenvalues: np.ndarray
    problems: int
    steps: list
    errors: dict                     # worst relative errors: matrix power vs autodiff and the library
    limits: dict
    smallest_second_difference: float  # of L_t on a grid of rates, scaled by max L_t
    smallest_second_derivative: float  # autodiff L_t'' at random rates, scaled
    overdetermined_problems: int     # random problems with n > d
    zero_eigenvalues: int            # zero eigenvalues of X X^T among them (rank <= d)
    degenerate: dict                 # a0 orthogonal to the range of X: L_t flat in eta
    min_second_derivative_per_problem: list = field(default_factory=list, repr=False, metadata=HIDDEN)
    example: dict = field(default_factory=dict, repr=False, metadata=HIDDEN)  # one problem's L_t curves

    def summary(self) -> str:
        inst = self.instance
        return (
            f"$L_t(\\eta) = (1/n)\\|(I - (2\\eta/n) X X^\\top)^t a_0\\|^2$ matches autodiff through $t$ unrolled steps "
            f"to {self.errors['L_t matrix power vs autodiff']:.0e} on {self.problems} random problems ($t$ up to "
            f"{max(self.steps)}), and $L_t$ is " + ("convex" if self.convex else "NOT convex")
            + " in $\\eta$ on every one (smallest scaled second difference on a grid "
            f"{self.smallest_second_difference:.1e}, smallest scaled autodiff second derivative "
            f"{self.smallest_second_derivative:.1e}): $L_t = (1/n) \\sum_i c_i^2 (1 - 2\\eta\\lambda_i/n)^{{2t}}$ "
            "is a sum of even powers of affine functions of $\\eta$. $X X^\\top$ is "
            + ("positive definite on every problem" if self.gram_always_positive_definite else
               f"not always positive definite: in {self.overdetermined_problems} problems with $n > d$ it had "
               f"{self.zero_eigenvalues} zero eigenvalues (rank $\\leq d$)")
            + "; when $a_0$ lies in the null space $L_t$ does not depend on $\\eta$ at all (computed: $L_3''$ = "
            f"{self.degenerate['d2L3_deta2']:.1e}), so the second derivative is $\\geq 0$, not $> 0$. On "
            f"the check instance $X$ = {_matrix(inst['X'])} (eigenvalues of $X X^\\top$ "
            f"{', '.join(_eigenvalues(self.instance_gram_eigenvalues))}), $t$ = {_vector(inst['t'])}, "
            f"$w_0$ = {_vector(inst['w0'])}: $L_{{{inst['horizon']}}}({inst['eta']:g})$ = {self.L_t:.10g}."
        )


@compute("hyper.t-step-loss")
def t_step_loss(run: Context) -> TStepLoss:
    rng = run.rng()
    problems = run.params["problems"]
    steps_list = run.params["steps"]
    grid_points = run.params["grid"]
    errors = {"L_t matrix power vs autodiff": 0.0, "L_t matrix power vs library": 0.0,
              "L_t'' autodiff vs library": 0.0}
    min_second_diff, min_d2 = np.inf, np.inf
    overdetermined, zero_eigs, positive_definite = 0, 0, True
    min_d2_per_problem = []
    for _ in range(problems):
        X, t, w0 = random_problem(rng, 6, 6)
        n = X.shape[0]
        lam = np.linalg.eigvalsh(X @ X.T)
        zeros = int(np.sum(lam <= 1e-10 * lam.max()))
        positive_definite &= zeros == 0
        if n > X.shape[1]:
            overdetermined += 1
            zero_eigs += zeros
        eta_crit = n / lam.max()
        lo = np.inf
        for steps in steps_list:
            q = quadratic_lr(X, t, w0, 0.0, steps)
            f = lambda e, s=steps, X=X, t=t, w0=w0: unrolled_loss(e, w0, X, t, s)
            L0 = t_step_closed_form(X, t, w0, 0.0, 0)
            for eta in rng.uniform(0, 1.1 * eta_crit, 2):
                closed = t_step_closed_form(X, t, w0, eta, steps)
                scale = max(closed, L0)  # relative to L_t, or to L_0 once L_t has shrunk far below it
                worse(errors, "L_t matrix power vs autodiff", abs(float(f(eta)) - closed) / scale)
                worse(errors, "L_t matrix power vs library", abs(q.loss_at(eta) - closed) / scale)
            if steps in (2, 5):
                eta = float(rng.uniform(0, 1.1 * eta_crit))
                d2 = float(nb.grad(nb.grad(f))(eta))
                ref = q.d2loss_at(eta)
                worse(errors, "L_t'' autodiff vs library", relerr(d2, ref))
                scale = 8 * steps**2 * q.coefficients.sum() * (lam.max() / n) ** 2 / n
                min_d2 = min(min_d2, d2 / scale)
                lo = min(lo, d2 / scale)
            # convexity without derivatives: second differences of the matrix-power form on a grid
            L = t_step_on_grid(X, t, w0, np.linspace(0, 1.1 * eta_crit, grid_points), steps)
            sd = (L[2:] - 2 * L[1:-1] + L[:-2]) / max(L.max(), 1e-300)
            min_second_diff = min(min_second_diff, float(sd.min()))
        min_d2_per_problem.append(lo)
    # degenerate: a0 orthogonal to the range of X (w0 a least-squares solution, n > d): L_t flat in eta
    Xd, td = rng.standard_normal((5, 2)), rng.standard_normal(5)
    wd = np.linalg.lstsq(Xd, td, rcond=None)[0]
    degenerate = {"eigenvalues of X X^T": np.linalg.eigvalsh(Xd @ Xd.T),
                  "L_3 at eta = 0, 0.1, 1": [float(unrolled_loss(e, wd, Xd, td, 3)) for e in (0.0, 0.1, 1.0)],
                  "d2L3_deta2": float(nb.grad(nb.grad(lambda e: unrolled_loss(e, wd, Xd, td, 3)))(0.1))}
    limits = {"L_t matrix power vs autodiff": 1e-9, "L_t matrix power vs library": 1e-9,
              "L_t'' autodiff vs library": 1e-8}
    failed = over(errors, limits)
    run.check(not failed, "the matrix-power L_t disagrees with autodiff or the library: " + listed(failed, limits))
    # one random problem with n >= 2, drawn for the figure
    Xe, te, we = random_problem(rng, 6, 6)
    while Xe.shape[0] < 2:
        Xe, te, we = random_problem(rng, 6, 6)
    crit = Xe.shape[0] / np.linalg.eigvalsh(Xe @ Xe.T).max()
    grid = np.linspace(0, 1.05 * crit, 300)
    example = {"n": Xe.shape[0], "d": Xe.shape[1], "eta / eta_crit": grid / crit,
               "L_t": {s: t_step_on_grid(Xe, te, we, grid, s) for s in (1, 2, 5, 10, 20)}}
    # The check instance: the slot L_t by autodiff through the unrolled steps, against the closed forms.
    X, t, w0 = instance(run)
    eta, horizon = float(run.params["eta"]), run.params["horizon"]
    L_t = float(unrolled_loss(eta, w0, X, t, horizon))
    by_power = t_step_closed_form(X, t, w0, eta, horizon)
    by_library = quadratic_lr(X, t, w0, eta, horizon).loss
    run.check(relerr(L_t, by_power) <= 1e-12 and relerr(L_t, by_library) <= 1e-12,
              f"at the check instance L_t is {L_t!r} by autodiff, {by_power!r} by the matrix power and "
              f"{by_library!r} by the library (limit 1e-12 relative)")
    lam = np.linalg.eigvalsh(X @ X.T)
    positive_definite &= bool(np.all(lam > 1e-10 * lam.max()))
    return TStepLoss(
        L_t=L_t, convex=bool(min_second_diff >= -1e-12 and min_d2 >= -1e-12),
        gram_always_positive_definite=bool(positive_definite),
        instance={"X": X, "t": t, "w0": w0, "eta": eta, "horizon": horizon}, instance_gram_eigenvalues=lam,
        problems=problems, steps=list(steps_list), errors=errors, limits=limits,
        smallest_second_difference=min_second_diff, smallest_second_derivative=min_d2,
        overdetermined_problems=overdetermined, zero_eigenvalues=zero_eigs, degenerate=degenerate,
        min_second_derivative_per_problem=min_d2_per_problem, example=example)


@figure("hyper.t-step-loss")
def t_step_loss_figure(result: TStepLoss, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ex = result.example
    for steps, L in ex["L_t"].items():
        axes[0].semilogy(ex["eta / eta_crit"], L, label=f"$t = {steps}$")
    axes[0].set_xlabel(r"$\eta / \eta_{\mathrm{crit}}$  ($\eta_{\mathrm{crit}} = n / \lambda_{\max}$)")
    axes[0].set_ylabel(r"$L_t(\eta)$")
    axes[0].set_title(f"$L_t$ on one random problem ($n = {ex['n']}$, $d = {ex['d']}$)")
    axes[0].legend(fontsize=8)
    axes[1].hist(np.clip(result.min_second_derivative_per_problem, 0, None), bins=30)
    axes[1].set_xlabel(r"smallest autodiff $L_t''(\eta)$, scaled ($t$ = 2, 5; random $\eta$)")
    axes[1].set_ylabel("problems")
    axes[1].set_title("Second derivatives: " + ("never negative" if result.convex else "some negative"))
    run.savefig(fig, "t-step", alt=(
        f"Left: $L_t(\\eta)$ on a log scale for $t$ = 1, 2, 5, 10 and 20 on a random problem with $n = {ex['n']}$, "
        f"$d = {ex['d']}$: valleys that deepen and narrow as $t$ grows, rising steeply past "
        "$\\eta_{\\mathrm{crit}}$. Right: a "
        f"histogram over {result.problems} problems of the smallest scaled second derivative, "
        + ("none below zero." if result.convex else "some below zero.")))


# -- hyper.t-step-2d ----------------------------------------------------------------------------------


def numpy_gd_loss(X, t, w0, eta, steps):
    """L_steps of plain NumPy gradient descent (the float64 behaviour, without tracing).

    A plain loop on purpose: it probes the float64 arithmetic of one written-out step,
    ``w - eta (2/n) X^T (X w - t)``, cheaply enough to scan hundreds of rates.
    """
    n = X.shape[0]
    w = np.array(w0, dtype=float)
    for _ in range(steps):
        w = w - eta * (2.0 / n) * (X.T @ (X @ w - t))
    r = X @ w - t
    return float(r @ r) / n


@dataclass
class TStepTwoD:
    eta_star: np.ndarray             # slot: the optimal learning rate after each horizon in steps
    eta_star_depends_on_t: bool      # slot
    X: np.ndarray
    t: np.ndarray
    w0: np.ndarray
    steps: list
    per_t: list                      # per horizon: eta* by the library and scipy, L_t(eta*), the float64 plateau
    contrast: dict                   # another problem (two rows): X, t, eta* per horizon, the limit
    curves: dict = field(default_factory=dict, repr=False, metadata=HIDDEN)   # L_t on a grid, for t in steps[:5]

    def summary(self) -> str:
        n = self.X.shape[0]
        c = self.contrast
        if n == 1:
            x2 = float(self.X[0] @ self.X[0])
            last = self.per_t[-1]
            exact = [str(r["t"]) for r in self.per_t if abs(r["eta* minimize_scalar on autodiff"] - r["eta*"]) <= 1e-7]
            head = (
                f"With one example ($n = 1$) $X X^\\top = \\|x\\|^2$ = {x2:g} has a single eigenvalue, so "
                f"$L_t(\\eta) = (1/n) a_0^2 (1 - 2\\eta \\|x\\|^2/n)^{{2t}}$ and $\\eta^* = n/(2\\|x\\|^2)$ = "
                f"{self.eta_star[0]:g} for every $t$: "
                "the first step already reaches the solution, and the following ones stay there. The library's "
                f"oracle gives {', '.join(f'{v:g}' for v in np.unique(self.eta_star))} for $t$ = "
                f"{', '.join(map(str, self.steps))}; scipy on autodiff agrees to 1e-7 for $t$ = {', '.join(exact)}; "
                f"for larger $t$ the bottom is flat in float64: GD lands on the solution to the last bit for every "
                f"rate within {last['half-width where float64 L_t == 0']:.1e} of $\\eta^*$ at $t$ = {last['t']}, so "
                "$L_t$ "
                f"computes as exactly 0.0 there and a numerical search may stop anywhere inside (scipy: "
                f"{last['eta* minimize_scalar on autodiff']:.4f})."
            )
        else:
            head = (f"With {n} examples $\\eta^*$ is {', '.join(f'{v:.4f}' for v in self.eta_star)} for $t$ = "
                    f"{', '.join(map(str, self.steps))} (the library's oracle; scipy on autodiff agrees).")
        return head + (
            f" With two examples, $X$ = {_matrix(c['X'])}, $\\eta^*$ does depend on $t$: {c['eta*'][0]:.4f} at "
            f"$t$ = {self.steps[0]} to {c['eta*'][-1]:.4f} at $t$ = {self.steps[-1]}, approaching "
            "$n/(\\lambda_1 + \\lambda_2)$ "
            f"= {c['limit_n_over_lambda_sum']:.4f}."
        )


@compute("hyper.t-step-2d")
def t_step_2d(run: Context) -> TStepTwoD:
    steps_list = list(run.params["steps"])
    X, t, w0 = instance(run)
    n = X.shape[0]
    rows = []
    for steps in steps_list:
        f = lambda e, s=steps: float(unrolled_loss(e, w0, X, t, s))
        lam_max = float(np.linalg.eigvalsh(X @ X.T).max())
        eta_lib = quadratic_lr(X, t, w0, 0.1, steps).optimal_lr
        eta_num = float(_minimize(f, bounds=(0.0, n / lam_max)))
        row = {"t": steps, "eta*": eta_lib, "eta* minimize_scalar on autodiff": eta_num, "L_t(eta*)": f(eta_lib),
               "dL_t/deta at eta* (forward mode)": float(lr_hypergradient(lsq_loss(X, t), w0, eta_lib, steps,
                                                                          mode="forward")[1])}
        if n == 1:
            # X X^T = |x|^2 is a single eigenvalue, so L_t = a0^2 (1 - 2 eta |x|^2)^(2t) vanishes at one eta.
            # The float64 plateau: rates around eta* where GD lands on the solution to the last bit, so the
            # computed L_t is exactly 0.0 (NumPy GD with the same update, to keep the scan cheap).
            eta_closed = n / (2 * float(X[0] @ X[0]))
            offsets = np.logspace(-12, -0.7, 120)
            zero = [o for o in offsets if numpy_gd_loss(X, t, w0, eta_closed + o, steps) == 0.0
                    and numpy_gd_loss(X, t, w0, eta_closed - o, steps) == 0.0]
            row["eta* closed form"] = eta_closed
            row["half-width where float64 L_t == 0"] = max(zero) if zero else 0.0
            run.check(abs(eta_lib - eta_closed) <= 1e-12 and row["L_t(eta*)"] == 0.0
                      and abs(eta_num - eta_closed) <= max(2 * row["half-width where float64 L_t == 0"], 1e-7),
                      f"t = {steps}: eta* is {eta_closed:g} in closed form, {eta_lib!r} by the library, "
                      f"{eta_num!r} by scipy on autodiff (allowed: 1e-7 or twice the float64 plateau half-width "
                      f"{row['half-width where float64 L_t == 0']:.2g}); L_t(eta*) = {row['L_t(eta*)']!r} "
                      "(expected 0.0)")
        else:
            run.check(abs(eta_lib - eta_num) <= 1e-6 * eta_lib,
                      f"t = {steps}: eta* is {eta_lib!r} by the library and {eta_num!r} by scipy on autodiff "
                      "(limit 1e-6 relative)")
        rows.append(row)
    # contrast: two examples, where eta* moves with t towards n / (lambda_1 + lambda_2)
    Xc = np.array(run.params["contrast_X"], dtype=float)
    tc, wc = np.array(run.params["contrast_t"], dtype=float), np.zeros(Xc.shape[1])
    lam = np.linalg.eigvalsh(Xc @ Xc.T)
    contrast = {"X": Xc, "t": tc, "eta*": [], "eta* minimize_scalar on autodiff": [],
                "limit_n_over_lambda_sum": Xc.shape[0] / lam.sum()}
    for steps in steps_list:
        f = lambda e, s=steps: float(unrolled_loss(e, wc, Xc, tc, s))
        lib = quadratic_lr(Xc, tc, wc, 0.1, steps).optimal_lr
        num = float(_minimize(f, bounds=(0.0, 2 / lam.max())))
        contrast["eta*"].append(lib)
        contrast["eta* minimize_scalar on autodiff"].append(num)
        run.check(abs(lib - num) <= 1e-6 * lib,
                  f"X = {_matrix(Xc)}, t = {steps}: eta* is {lib!r} by the library and {num!r} by scipy on "
                  "autodiff (limit 1e-6 relative)")
    eta_star = np.array([r["eta*"] for r in rows])
    top = max(2 * float(np.max(eta_star)), 0.5)
    grid = np.linspace(0.0, top, 401)
    return TStepTwoD(
        eta_star=eta_star, eta_star_depends_on_t=bool(np.ptp(eta_star) > 1e-12 * np.max(np.abs(eta_star))),
        X=X, t=t, w0=w0, steps=steps_list, per_t=rows, contrast=contrast,
        curves={"eta": grid, "L_t": {s: t_step_on_grid(X, t, w0, grid, s) for s in steps_list[:5]}})


@figure("hyper.t-step-2d")
def t_step_2d_figure(result: TStepTwoD, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for steps, L in result.curves["L_t"].items():
        axes[0].plot(result.curves["eta"], L, label=f"$t = {steps}$")
    axes[0].set_yscale("symlog", linthresh=1e-3)
    axes[0].set_xlabel(r"$\eta$")
    axes[0].set_ylabel(r"$L_t(\eta)$")
    axes[0].set_title(f"$X$ = {_matrix(result.X)}, $t$ = {_vector(result.t)}, $w_0$ = {_vector(result.w0)}")
    axes[0].legend(fontsize=8)
    c = result.contrast
    axes[1].semilogx(result.steps, result.eta_star, "o-",
                     label=f"$X$ = {_matrix(result.X)} ($n = {result.X.shape[0]}$)")
    axes[1].semilogx(result.steps, c["eta*"], "s-", label=f"$X$ = {_matrix(c['X'])} ($n = {c['X'].shape[0]}$)")
    axes[1].axhline(c["limit_n_over_lambda_sum"], color="C1", ls=":",
                    label=r"$n / (\lambda_1 + \lambda_2)$")
    axes[1].set_xlabel("steps $t$")
    axes[1].set_ylabel(r"$\eta^*$")
    axes[1].set_title("Optimal learning rate against the horizon")
    axes[1].legend(fontsize=8)
    run.savefig(fig, "t-step-2d", alt=(
        f"Left: $L_t(\\eta)$ for $t$ = {', '.join(map(str, result.curves['L_t']))}, valleys that narrow as $t$ "
        f"grows around $\\eta$ = {result.eta_star[0]:g}. Right: $\\eta^*$ against the horizon $t$ on a log axis: "
        + ("flat" if not result.eta_star_depends_on_t else "changing") + f" for $X$ = {_matrix(result.X)}, rising "
        f"from {c['eta*'][0]:.3f} towards {c['limit_n_over_lambda_sum']:.3f} for $X$ = {_matrix(c['X'])}."))
