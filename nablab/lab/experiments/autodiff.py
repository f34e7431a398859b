"""autodiff.graph and autodiff.jacobian-three-ways: a traced graph, and a Jacobian three ways."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import nablab as nb
from nablab.lab.registry import Context, compute, figure

# --------------------------------------------------------------------------- autodiff.graph


def graph_function(x, y):
    """f(x, y) = (x + y)(y + 1), with a = x + y and b = y + 1."""
    return (x + y) * (y + 1)


@dataclass
class GraphResult:
    x: float
    y: float
    nodes: list            # one per node: op, value, grad
    value: float           # slot: f(x, y)
    df_da: float           # slot
    df_db: float           # slot
    df_dx: float           # slot
    df_dy: float           # slot
    finite_differences: list  # central differences of f at (x, y): [df/dx, df/dy]
    graph_files: list      # the Graphviz files the figure writes
    graph: object = field(default=None, repr=False, metadata={"report": False})

    def summary(self) -> str:
        return (f"At $x = {self.x:g}$, $y = {self.y:g}$ the tracer records $a = x + y = {self.x + self.y:g}$, "
                f"$b = y + 1 = {self.y + 1:g}$ and $f = a b = {self.value:g}$. Backpropagation gives "
                f"$\\partial f/\\partial a = b = {self.df_da:g}$ and $\\partial f/\\partial b = a = {self.df_db:g}$, "
                f"then $\\partial f/\\partial x = \\partial f/\\partial a = {self.df_dx:g}$ and "
                f"$\\partial f/\\partial y = \\partial f/\\partial a + \\partial f/\\partial b = {self.df_dy:g}$ "
                "($y$ feeds both $a$ and $b$), matching the hand derivative (of $f = xy + y^2 + x + y$: "
                "$\\partial f/\\partial x = y + 1$, $\\partial f/\\partial y = x + 2y + 1$) and central differences.")


@compute("autodiff.graph")
def autodiff_graph(run: Context) -> GraphResult:
    x, y = float(run.params["x"]), float(run.params["y"])
    graph = nb.trace(graph_function, x, y)
    graph.backward()
    by_op = {n["op"]: n for n in graph.nodes if not n["inputs"]}
    ids = {by_op["x"]["id"], by_op["y"]["id"]}
    (a,) = [n for n in graph.nodes if n["op"] == "add" and set(n["inputs"]) == ids]
    (b,) = [n for n in graph.nodes if n["op"] == "add" and n is not a]
    (f,) = [n for n in graph.nodes if n["op"] == "multiply"]
    grads = {"x": by_op["x"]["grad"], "y": by_op["y"]["grad"]}
    # independent checks: the hand derivative and central differences
    by_hand = {"x": y + 1, "y": (y + 1) + (x + y)}
    numeric = nb.numerical_jacobian(lambda v: graph_function(v[0], v[1]), np.array([x, y]))
    ok = all(np.isclose(grads[k], by_hand[k], rtol=1e-12) for k in by_hand) and np.allclose(
        numeric, [grads["x"], grads["y"]], rtol=1e-8)
    run.check(ok, f"traced gradients {grads} differ from the hand derivative {by_hand} "
                  f"or from central differences {numeric}")
    run.check(np.isclose(f["value"], (x + y) * (y + 1), rtol=1e-15) and a["grad"] == b["value"]
              and b["grad"] == a["value"],
              f"the traced nodes a = {a}, b = {b}, f = {f} are not a = x + y, b = y + 1, f = a b "
              "with df/da = b and df/db = a")
    return GraphResult(
        x=x, y=y,
        nodes=[{"op": n["op"], "value": n["value"], "grad": n["grad"]} for n in graph.nodes],
        value=float(f["value"]), df_da=float(a["grad"]), df_db=float(b["grad"]),
        df_dx=float(grads["x"]), df_dy=float(grads["y"]), finite_differences=numeric.tolist(),
        graph_files=[f"{run.claim_id}--graph.dot"], graph=graph,
    )


@figure("autodiff.graph")
def autodiff_graph_figure(result: GraphResult, run: Context) -> None:
    fig = result.graph.plot()
    fig.suptitle(f"$f(x, y) = (x + y)(y + 1)$ at $x = {result.x:g}$, $y = {result.y:g}$: values and gradients")
    run.savefig(fig, "graph", alt=(
        f"The computation graph of $f = (x + y)(y + 1)$ at $x = {result.x:g}$, $y = {result.y:g}$: inputs $x$ "
        f"and $y$, $a = x + y$, $b = y + 1$ and $f = a b = {result.value:g}$, each node with its value and "
        f"gradient ($\\partial f/\\partial x = {result.df_dx:g}$, $\\partial f/\\partial y = {result.df_dy:g}$)."))
    for name in result.graph_files:
        (run.out_dir / name).write_text(result.graph.to_dot())


# --------------------------------------------------------------------------- autodiff.jacobian-three-ways


def vector_function(w):
    """f1 = exp(exp(w1) + exp(2 w2)) + sigmoid(exp(w1) + exp(2 w2)), f2 = w1 w2 + max(w1, w2)."""
    u = nb.exp(w[0]) + nb.exp(2 * w[1])
    return nb.stack([nb.exp(u) + nb.sigmoid(u), w[0] * w[1] + nb.maximum(w[0], w[1])])


#: Steps of the finite-difference error curves in the figure.
SWEEP_STEPS = np.logspace(-9, -0.5, 40)


@dataclass
class JacobianResult:
    w: list
    step: float
    value: np.ndarray                          # slot: (f1, f2) at w
    jacobian_forward_differences: np.ndarray   # slot: (f(w + step e_j) - f(w)) / step
    jacobian_forward_mode: np.ndarray          # slot
    jacobian_reverse_mode: np.ndarray          # slot
    central_differences: np.ndarray            # (f(w + step e_j) - f(w - step e_j)) / (2 step)
    modes_agree: bool                          # forward and reverse mode to rtol 1e-14
    best_forward_step: float                   # the step where forward differences err least
    # the figure's finite-difference error against the step
    sweep_steps: list = field(default_factory=list, metadata={"report": False})
    sweep_forward_errors: list = field(default_factory=list, metadata={"report": False})
    sweep_central_errors: list = field(default_factory=list, metadata={"report": False})

    def summary(self) -> str:
        J, D = self.jacobian_reverse_mode, self.jacobian_forward_differences
        return (
            f"$f({self.w[0]:g}, {self.w[1]:g}) = ({self.value[0]:.6f}, {self.value[1]:.6f})$. Forward and reverse "
            f"mode give the same Jacobian [[{J[0, 0]:.5f}, {J[0, 1]:.5f}], [{J[1, 0]:g}, {J[1, 1]:g}]] to "
            f"rounding; forward differences with step {self.step:g} give [[{D[0, 0]:.4f}, {D[0, 1]:.4f}], "
            f"[{D[1, 0]:g}, {D[1, 1]:g}]], off by the truncation error $O(\\text{{step}})$ "
            f"({100 * np.max(np.abs(D - J)[J != 0] / np.abs(J[J != 0])):.1f}% at most); central differences "
            f"with the same step are off by {np.max(np.abs(self.central_differences - J)):.2g}.")


@compute("autodiff.jacobian-three-ways")
def jacobian_three_ways(run: Context) -> JacobianResult:
    w = np.array([run.params["w1"], run.params["w2"]], dtype=float)
    step = run.params["eps"]
    value = np.asarray(vector_function(w))
    forward_diff = nb.numerical_jacobian(vector_function, w, eps=step, scheme="forward")
    central_diff = nb.numerical_jacobian(vector_function, w, eps=step, scheme="central")
    forward_mode = nb.jacfwd(vector_function)(w)
    reverse_mode = nb.jacrev(vector_function)(w)
    modes_agree = bool(np.allclose(forward_mode, reverse_mode, rtol=1e-14, atol=0))
    tight = nb.numerical_jacobian(vector_function, w, eps=1e-6)
    fd_consistent = np.allclose(tight, reverse_mode, rtol=1e-7, atol=1e-9)
    run.check(modes_agree and fd_consistent,
              f"forward mode {forward_mode.tolist()}, reverse mode {reverse_mode.tolist()} and "
              f"central differences {tight.tolist()} do not agree")
    errors = {scheme: [float(np.abs(nb.numerical_jacobian(vector_function, w, eps=h, scheme=scheme)
                                    - reverse_mode).max()) for h in SWEEP_STEPS]
              for scheme in ("forward", "central")}
    return JacobianResult(
        w=w.tolist(), step=step, value=value, jacobian_forward_differences=forward_diff,
        jacobian_forward_mode=forward_mode, jacobian_reverse_mode=reverse_mode,
        central_differences=central_diff, modes_agree=modes_agree,
        best_forward_step=float(SWEEP_STEPS[int(np.argmin(errors["forward"]))]), sweep_steps=SWEEP_STEPS.tolist(),
        sweep_forward_errors=errors["forward"], sweep_central_errors=errors["central"],
    )


@figure("autodiff.jacobian-three-ways")
def jacobian_figure(result: JacobianResult, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].loglog(result.sweep_steps, result.sweep_forward_errors, "o-", ms=3, label="forward differences")
    axes[0].loglog(result.sweep_steps, result.sweep_central_errors, "s-", ms=3, label="central differences")
    axes[0].axvline(result.step, color="gray", ls=":", label=f"the problem's step {result.step:g}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("max |error| against autodiff")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Finite-difference error: truncation vs rounding")
    labels = [rf"$\partial f_{i}/\partial w_{j}$" for i in (1, 2) for j in (1, 2)]
    xs = np.arange(4)
    axes[1].bar(xs - 0.2, result.jacobian_forward_differences.ravel(), 0.4,
                label=f"forward difference, step {result.step:g}")
    axes[1].bar(xs + 0.2, result.jacobian_reverse_mode.ravel(), 0.4, label="forward = reverse mode")
    axes[1].set_xticks(xs, labels)
    axes[1].legend(fontsize=8)
    axes[1].set_title(f"Jacobian at $w = ({result.w[0]:g}, {result.w[1]:g})$")
    run.savefig(fig, "jacobian", alt=(
        "Left: on log-log axes, the largest error of forward and central differences against autodiff as the "
        f"step goes from 1e-9 to 0.3; forward differences are most accurate near a step of {result.best_forward_step:.0e}, the "
        "error growing like the step above it (truncation) and like 1/step below it (rounding). Right: the four "
        f"Jacobian entries at $w = ({result.w[0]:g}, {result.w[1]:g})$ by forward differences with step "
        f"{result.step:g} beside forward and reverse mode."))
