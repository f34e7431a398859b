"""train.cifar10 (three classifiers in nablab beside PyTorch) and train.diagnostics (loss-curve diagnostics).

Both claims train on MNIST-1D (generated locally) and, when CIFAR-10 is on
disk, ``train.cifar10`` trains on it too.  Every PyTorch run starts from the
nablab model's weights and sees the same batches, so the two loss curves can
be compared step by step.  PyTorch is a cross-check (``run.cross_check``):
without it everything runs on nablab alone.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

import nablab as nb
from nablab import optim
from nablab.lab.registry import Context, compute, figure
from nablab.nn import functional as F
from nablab.nn import functional_call

#: The problem set's three models (nablab.train.models), trained on CIFAR-10.
CIFAR_MODELS = ("logistic", "mlp", "convnet")
LABELS = {"logistic": "softmax classifier", "mlp": "two-layer MLP", "convnet": "shallow ConvNet",
          "cnn1d": "MNIST-1D CNN"}
#: CIFAR-10's images and classes, for the models' sizes.
CIFAR_SHAPE, CIFAR_CLASSES = (3, 32, 32), 10

#: The cross-checks these claims run when PyTorch is installed (see Context.cross_check).
TORCH_TRAINING = "PyTorch training from the same weights and batches"
TORCH_LOOP = "PyTorch running the same loops"
NOT_RUN = "the PyTorch cross-check was not run: PyTorch is not installed"


@contextmanager
def _torch_threads(torch, n):
    """Tiny models: run PyTorch on ``n`` threads (its pool only adds contention here), then restore."""
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _log_axis(ax):
    from matplotlib.ticker import FormatStrFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))


# --------------------------------------------------------------------------- train.cifar10


def _train_both(config_kw, dataset, models, backends=("nablab", "torch"), run=None, label=""):
    """Train every model in each backend from the same weights and batches: (rows, curves) per model.

    Each training is told to ``run.progress`` (with ``label``, the dataset's name) as it starts.
    """
    from nablab.train import TrainConfig, train

    rows, curves = {}, {}
    for i, name in enumerate(models):
        runs = {}
        for j, backend in enumerate(backends):
            if run is not None:
                run.progress(i * len(backends) + j, len(models) * len(backends),
                             f"{label}: {LABELS.get(name, name)} in {backend}")
            start = time.perf_counter()
            result = train(TrainConfig(model=name, backend=backend, **config_kw), dataset=dataset)
            runs[backend] = (result, time.perf_counter() - start)
        a = runs["nablab"][0]
        row = {"nablab_test_accuracy": a.final["test_acc"], "nablab_final_train_loss": a.final["train_loss"],
               "nablab_seconds_per_epoch": float(np.mean(a.epoch_seconds))}
        b = runs["torch"][0] if "torch" in runs else None
        if b is not None:
            gap = np.abs(np.array(a.step_losses) - np.array(b.step_losses))
            row.update({"torch_test_accuracy": b.final["test_acc"], "torch_final_train_loss": b.final["train_loss"],
                        "max_loss_difference": float(gap.max()),
                        "torch_seconds_per_epoch": float(np.mean(b.epoch_seconds))})
        rows[name] = row
        curves[name] = {"nablab": list(a.step_losses), "torch": None if b is None else list(b.step_losses)}
    return rows, curves


def _accuracies(rows, with_torch):
    return ", ".join(f"{LABELS.get(m, m)} {100 * r['nablab_test_accuracy']:.1f}%"
                     + (f" (PyTorch {100 * r['torch_test_accuracy']:.1f}%)" if with_torch else "")
                     for m, r in rows.items())


@dataclass
class Classifiers:
    softmax_parameters: int        # slot: on CIFAR-10's 3 x 32 x 32 images, 10 classes
    mlp_parameters: int            # slot
    convnet_parameters: int        # slot
    torch_ran: bool
    mnist1d: dict                  # examples, recipe, and per model: accuracies, losses, seconds
    cifar10: dict | None           # the same on CIFAR-10, when it is on disk
    needs_data: str | None         # how to supply CIFAR-10, when it is not
    curves: dict = field(default_factory=dict, repr=False, metadata={"report": False})

    def summary(self) -> str:
        rows = self.mnist1d["models"]
        text = (f"On MNIST-1D ({self.mnist1d['train_examples']} training signals, {self.mnist1d['epochs']} epochs "
                f"of Adam) nablab's models reach {_accuracies(rows, self.torch_ran)}; ")
        if self.torch_ran:
            worst = max(r["max_loss_difference"] for r in rows.values())
            text += (f"from the same weights and batches the float64 loss curves of nablab and PyTorch differ by "
                     f"at most {worst:.1e} over all steps.")
        else:
            text += NOT_RUN + "."
        text += (f" On CIFAR-10's 3 x 32 x 32 images the softmax classifier has {self.softmax_parameters:,} "
                 f"parameters, the two-layer MLP {self.mlp_parameters:,} and the shallow ConvNet "
                 f"{self.convnet_parameters:,}.")
        if self.cifar10 is not None:
            text += (f" Trained on {self.cifar10['train_examples']} CIFAR-10 images they reach "
                     f"{_accuracies(self.cifar10['models'], self.torch_ran)}.")
        else:
            text += " CIFAR-10 is not on this machine, so only the MNIST-1D run is shown."
        return text


@compute("train.cifar10")
def train_cifar10(run: Context) -> Classifiers:
    from nablab.data import DataNotFoundError, find_cifar10
    from nablab.train import load_dataset
    from nablab.train.models import build_model

    p = run.params
    sizes = {m: build_model(m, CIFAR_SHAPE, CIFAR_CLASSES).num_parameters() for m in CIFAR_MODELS}
    torch = run.cross_check(TORCH_TRAINING)
    backends = ("nablab", "torch") if torch is not None else ("nablab",)
    curves = {}

    with _torch_threads(torch, p["torch_threads"]):
        mnist = load_dataset("mnist1d", dtype=np.float64).limited(p["limit"])
        rows, curves["MNIST-1D"] = _train_both(
            {"optimizer": "adam", "lr": p["lr"], "epochs": p["epochs"], "batch_size": 100, "seed": run.seed,
             "dtype": "float64", "dataset": "mnist1d"}, mnist, list(p["models"]), backends, run, "MNIST-1D")
        mnist1d = {"train_examples": len(mnist.x_train), "test_examples": len(mnist.x_test), "epochs": p["epochs"],
                   "recipe": f"Adam lr={p['lr']:g}, batch 100, {p['epochs']} epochs, float64, seed {run.seed}",
                   "models": rows}
        if torch is not None:
            worst = max(r["max_loss_difference"] for r in rows.values())
            run.check(worst < 1e-8, "from the same weights and batches the float64 loss curves of nablab "
                                    "and PyTorch differ by up to " + ", ".join(
                                        f"{m} {r['max_loss_difference']:.3g}" for m, r in rows.items())
                      + " (limit 1e-8)")

        try:
            where, missing = find_cifar10(p["data"] or None), None
        except DataNotFoundError as exc:
            where, missing = None, str(exc)

        cifar10 = None
        if where is not None:
            cifar = load_dataset("cifar10", where, limit=p["cifar_limit"], dtype=np.float32)
            c_rows, curves["CIFAR-10"] = _train_both(
                {"optimizer": "adam", "lr": p["cifar_lr"], "epochs": p["cifar_epochs"], "batch_size": 100,
                 "seed": run.seed, "dtype": "float32", "dataset": "cifar10"}, cifar, list(CIFAR_MODELS), backends,
                run, "CIFAR-10")
            cifar10 = {"data": str(where), "train_examples": len(cifar.x_train), "test_examples": len(cifar.x_test),
                       "recipe": f"Adam lr={p['cifar_lr']:g}, batch 100, {p['cifar_epochs']} epochs, float32, "
                                 "per-channel normalisation",
                       "models": c_rows}

    needs_data = None if where is not None else (
        missing + " In the lab: `NABLAB_DATA=PATH nablab reproduce --only train.cifar10`, or "
        "`nablab lab run train.cifar10 --param data=PATH`.")
    return Classifiers(softmax_parameters=sizes["logistic"], mlp_parameters=sizes["mlp"],
                       convnet_parameters=sizes["convnet"], torch_ran=torch is not None, mnist1d=mnist1d,
                       cifar10=cifar10, needs_data=needs_data, curves=curves)


def _curves_figure(run, curves, rows, dataset_name, name):
    import matplotlib.pyplot as plt

    models = list(curves)
    with_torch = all(curves[m]["torch"] is not None for m in models)
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(4.2 * (len(models) + 1), 3.6))
    for ax, m in zip(axes, models):
        a, b = curves[m]["nablab"], curves[m]["torch"]
        ax.plot(np.arange(1, len(a) + 1), a, lw=1.6, label="nablab")
        if b is not None:
            ax.plot(np.arange(1, len(b) + 1), b, "--", lw=1.0, label="PyTorch")
        ax.set_title(LABELS.get(m, m))
        ax.set_xlabel("step")
        _log_axis(ax)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss (batch)")
    ax = axes[-1]
    xs = np.arange(len(models))
    width = 0.4 if with_torch else 0.6
    ax.bar(xs - (0.2 if with_torch else 0), [100 * rows[m]["nablab_test_accuracy"] for m in models],
           width, label="nablab")
    if with_torch:
        ax.bar(xs + 0.2, [100 * rows[m]["torch_test_accuracy"] for m in models], width, label="PyTorch")
    ax.set_xticks(xs, [LABELS.get(m, m).replace(" ", "\n", 1) for m in models], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{dataset_name}: test accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, name, alt=(
        f"{dataset_name}: the training loss per step (log scale) of the {', '.join(LABELS.get(m, m) for m in models)}"
        + (", nablab's and PyTorch's curves on top of each other" if with_torch else ", in nablab")
        + "; last panel: their test accuracies, " + _accuracies(rows, with_torch) + "."))


@figure("train.cifar10")
def train_cifar10_figure(result: Classifiers, run: Context) -> None:
    _curves_figure(run, result.curves["MNIST-1D"], result.mnist1d["models"], "MNIST-1D", "mnist1d")
    if result.cifar10 is not None:
        _curves_figure(run, result.curves["CIFAR-10"], result.cifar10["models"], "CIFAR-10", "cifar10")


# --------------------------------------------------------------------------- train.diagnostics


def _losses(backend, loader, steps):
    """Per-step losses of ``backend`` for ``steps`` steps, ending early if the loss stops being finite."""
    losses = []
    while len(losses) < steps:
        for xb, yb in loader:
            loss, _ = backend.train_step(xb, yb)
            losses.append(loss)
            if not np.isfinite(loss) or len(losses) == steps:
                return np.array(losses)
    return np.array(losses)


def _accumulation_check(data, lr, steps, seed):
    """In the loop without zero_grad, each backward adds the fresh gradient to .grad: measured."""
    from nablab.data import DataLoader
    from nablab.train.models import build_model
    from nablab.train.optimizers import make_optimizer

    model = build_model("mlp", data.input_shape, data.num_classes, seed=seed)
    opt = make_optimizer("sgd", model.parameters(), lr)
    loader = DataLoader(data.x_train, data.y_train, 100, seed=seed)
    norms, batches = [], None

    # The model and optimizer hold the weights, so the loop's state is only the worst difference so far.
    def step(_, worst, t):
        nonlocal batches
        if t % len(loader) == 0:
            batches = iter(loader)
        xb, yb = next(batches)
        params = {k: p.numpy().copy() for k, p in model.named_parameters()}
        fresh = nb.grad(lambda P: F.cross_entropy(functional_call(model, P, xb), yb))(params)
        before = {k: (p.grad.numpy().copy() if p.grad is not None else 0.0) for k, p in model.named_parameters()}
        F.cross_entropy(model(xb), yb).backward()
        for k, p in model.named_parameters():
            worst = max(worst, float(np.max(np.abs(p.grad.numpy() - before[k] - fresh[k]))))
        norms.append(float(np.sqrt(sum(np.sum(p.grad.numpy() ** 2) for p in model.parameters()))))
        opt.step()
        return optim.Step(None, worst)

    return optim.iterate(step, None, steps, state=0.0).state, norms


@dataclass
class Diagnostics:
    highest_rate_too_high: bool          # slot: the highest rate's loss stalls high or diverges
    zero_grad_fixes_the_loop: bool       # slot: zero_grad() before backward trains better than never zeroing
    never_zeroed_grad_accumulates: bool  # slot: without zero_grad, .grad is the sum of all gradients so far
    steps: int
    window: int                          # the final mean loss is over the last `window` steps
    learning_rates: list                 # per rate: first, lowest and final mean loss, divergence, rises
    best_rate: float
    highest_rate: float
    zero_grad_lr: float
    final_mean_loss_zeroed: list         # [nablab, PyTorch or None]
    final_mean_loss_never_zeroed: list   # [nablab, PyTorch or None]
    max_loss_difference_torch: list      # [with zero_grad, without]: nablab against PyTorch, or None
    accumulation_error: float            # max |(.grad after backward - before) - fresh gradient|
    grad_norms_first_last: list          # ||.grad|| at the first and last step of the never-zeroed loop
    torch_ran: bool
    grad_norms: list = field(default_factory=list, repr=False, metadata={"report": False})  # at every step
    curves: dict = field(default_factory=dict, repr=False, metadata={"report": False})
    loops: dict = field(default_factory=dict, repr=False, metadata={"report": False})

    def summary(self) -> str:
        rows = {row["lr"]: row for row in self.learning_rates}
        high, best, low = rows[self.highest_rate], rows[self.best_rate], rows[min(rows)]
        if high["diverged_at_step"]:
            high_text = f"lr = {self.highest_rate:g} diverges (the loss is no longer finite at step {high['diverged_at_step']})"
        elif high["final_mean_loss"] > 10 * high["first_loss"]:
            high_text = f"lr = {self.highest_rate:g} explodes (the loss ends near {high['final_mean_loss']:.3g})"
        else:
            high_text = (f"lr = {self.highest_rate:g} jumps to {high['highest_loss']:.2f} (above the initial "
                         f"{high['first_loss']:.2f}) and stays near {high['final_mean_loss']:.2f}")
        fixed, buggy = self.final_mean_loss_zeroed[0], self.final_mean_loss_never_zeroed[0]
        text = (
            f"(a) With SGD + momentum on the MLP, {high_text}, while lr = {self.best_rate:g} reaches "
            f"{best['final_mean_loss']:.2f} and lr = {low['lr']:g} creeps down to {low['final_mean_loss']:.2f}: "
            + ("a rate that is too high shows as a loss that jumps up, stalls high or explodes. "
               if self.highest_rate_too_high else
               "here the highest rate is not the one that trains worst. ")
            + f"(b) Without zero_grad() every backward adds the new gradient to .grad (checked to "
            f"{self.accumulation_error:.1e}), so the step uses the sum of all gradients so far; the loss then "
            + ("diverges" if not np.isfinite(buggy) else f"ends at {buggy:.3f} instead of {fixed:.3f}"))
        if self.torch_ran:
            gap_with, gap_without = self.max_loss_difference_torch
            text += (f". nablab and PyTorch give the same losses step by step (max difference {gap_with:.1e} with "
                     f"zero_grad, {gap_without:.1e} without).")
        else:
            text += ". The PyTorch cross-check was not run: PyTorch is not installed."
        return text


@compute("train.diagnostics")
def train_diagnostics(run: Context) -> Diagnostics:
    from nablab.data import DataLoader
    from nablab.train import load_dataset
    from nablab.train.backends import NablabBackend, TorchBackend
    from nablab.train.models import build_model

    p = run.params
    steps, lrs, zero_lr, seed = p["steps"], sorted(p["lrs"]), p["zero_grad_lr"], run.seed
    data = load_dataset("mnist1d", dtype=np.float64)

    def loader():
        return DataLoader(data.x_train, data.y_train, 100, seed=seed)

    def model():
        return build_model("mlp", data.input_shape, data.num_classes, seed=seed)

    # (a) the same MLP and batches with SGD + momentum 0.9 at several learning rates
    curves = {lr: _losses(NablabBackend(model(), "momentum", lr), loader(), steps) for lr in lrs}
    window = max(steps // 10, 1)

    def tail(c):
        return float(np.mean(c[-window:])) if np.all(np.isfinite(c)) else float("inf")

    rows = []
    for lr, c in curves.items():
        finite = np.isfinite(c)
        rows.append({"lr": lr, "first_loss": float(c[0]), "lowest_loss": float(np.min(c[finite])),
                     "highest_loss": float(np.max(c[finite])), "final_mean_loss": tail(c),
                     "diverged_at_step": None if finite.all() else int(np.argmin(finite)) + 1,
                     "fraction_of_steps_loss_rose": float(np.mean(np.diff(c[finite]) > 0))})
    best = min(lrs, key=lambda lr: tail(curves[lr]))
    high = max(lrs)
    too_high = high != best and (not np.all(np.isfinite(curves[high])) or tail(curves[high]) > tail(curves[best]) + 0.1)

    # (b) the loop with and without zero_grad, in nablab and (a cross-check) in PyTorch, float64
    torch = run.cross_check(TORCH_LOOP)
    backends = (("nablab", NablabBackend),) + ((("torch", TorchBackend),) if torch is not None else ())
    with _torch_threads(torch, p["torch_threads"]):
        loops = {}
        for zero in (True, False):
            for name, cls in backends:
                loops[(name, zero)] = _losses(cls(model(), "sgd", zero_lr, zero_grad=zero), loader(), steps)
    gaps = [None, None]
    if torch is not None:
        gaps = [float(np.max(np.abs(loops[("nablab", z)] - loops[("torch", z)]))) for z in (True, False)]
        same_effect = all(len(loops[("nablab", z)]) == len(loops[("torch", z)]) for z in (True, False)) and \
            max(gaps) < 1e-8
        run.check(same_effect, "nablab and PyTorch give different losses for the same loop: "
                               f"{len(loops[('nablab', True)])} and {len(loops[('torch', True)])} steps with "
                               f"zero_grad, {len(loops[('nablab', False)])} and {len(loops[('torch', False)])} "
                               f"without; max difference {gaps[0]:.3g} with zero_grad, {gaps[1]:.3g} "
                               "without (limit 1e-8)")
    accumulation_error, grad_norms = _accumulation_check(data, zero_lr, min(steps, p["accumulation_steps"]), seed)
    run.check(accumulation_error < 1e-10, "without zero_grad, .grad after backward minus .grad before differs from "
                                          f"the fresh gradient by {accumulation_error:.3g} (limit 1e-10)")
    fixed, buggy = loops[("nablab", True)], loops[("nablab", False)]
    buggy_worse = (not np.all(np.isfinite(buggy))) or tail(buggy) > tail(fixed)

    def final(name, zero):
        return tail(loops[(name, zero)]) if (name, zero) in loops else None

    return Diagnostics(
        highest_rate_too_high=bool(too_high), zero_grad_fixes_the_loop=bool(buggy_worse),
        never_zeroed_grad_accumulates=bool(accumulation_error < 1e-10), steps=steps, window=window,
        learning_rates=rows, best_rate=best, highest_rate=high, zero_grad_lr=zero_lr,
        final_mean_loss_zeroed=[final("nablab", True), final("torch", True)],
        final_mean_loss_never_zeroed=[final("nablab", False), final("torch", False)],
        max_loss_difference_torch=gaps, accumulation_error=accumulation_error,
        grad_norms_first_last=[grad_norms[0], grad_norms[-1]], grad_norms=grad_norms,
        torch_ran=torch is not None, curves=curves, loops=loops,
    )


@figure("train.diagnostics")
def train_diagnostics_figure(result: Diagnostics, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for lr, c in result.curves.items():
        too_high = lr == result.highest_rate and result.highest_rate_too_high
        axes[0].plot(np.arange(1, len(c) + 1), c, label=f"lr = {lr:g}" + (" (too high)" if too_high else ""))
    _log_axis(axes[0])
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss")
    axes[0].set_title("(a) SGD + momentum, MLP on MNIST-1D")
    axes[0].legend(fontsize=8)
    for (name, zero), c in result.loops.items():
        style = "-" if name == "nablab" else "--"
        axes[1].plot(np.arange(1, len(c) + 1), c, style, lw=1.6 if name == "nablab" else 1.0,
                     label=f"{'nablab' if name == 'nablab' else 'PyTorch'}, " +
                           ("zero_grad() before backward" if zero else "never zero_grad()"))
    _log_axis(axes[1])
    axes[1].set_xlabel("step")
    axes[1].set_title(f"(b) SGD lr = {result.zero_grad_lr:g}: zeroing the gradients, and not")
    axes[1].legend(fontsize=8)
    norms = result.grad_norms
    axes[2].plot(np.arange(1, len(norms) + 1), norms)
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("||.grad|| used by the step")
    axes[2].set_title("never zeroed: .grad = sum of all gradients so far")
    fig.tight_layout()
    rates = ", ".join(f"{row['lr']:g}" for row in result.learning_rates)
    run.savefig(fig, "diagnostics", alt=(
        f"(a) Training-loss curves (log scale) of the MLP on MNIST-1D with SGD + momentum at learning rates {rates}"
        + (f"; the highest, {result.highest_rate:g}, jumps up and stays above the others or diverges"
           if result.highest_rate_too_high else "")
        + f". (b) The loss with zero_grad() before each backward and without it, at lr = {result.zero_grad_lr:g}"
        + (", nablab and PyTorch on top of each other" if result.torch_ran else ", in nablab")
        + f". Right: the norm of .grad in the never-zeroed loop, going from {norms[0]:.2g} to {norms[-1]:.2g} "
        f"over {len(norms)} steps."))
