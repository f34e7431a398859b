"""Claims about training: the seed 003 Q8 models beside PyTorch, and the seed 004 Q2 diagnostics.

Both claims train on MNIST-1D (generated locally) and, when CIFAR-10 is on
disk, ``train.cifar10`` trains on it too.  Every PyTorch run starts from the
nablab model's weights and sees the same batches, so the two loss curves can
be compared step by step.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402

import nablab as nb  # noqa: E402
from nablab.lab.registry import Context, Result, experiment  # noqa: E402
from nablab.nn import functional as F  # noqa: E402
from nablab.nn import functional_call  # noqa: E402

SEED_MODELS = ("logistic", "mlp", "convnet")
LABELS = {"logistic": "softmax classifier", "mlp": "two-layer MLP", "convnet": "shallow ConvNet",
          "cnn1d": "MNIST-1D CNN"}


#: The cross-checks these claims run when PyTorch is installed (see Context.cross_check).
TORCH_TRAINING = "PyTorch training from the same weights and batches"
TORCH_LOOP = "PyTorch running the same loops"


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
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))


def _train_both(config_kw, dataset, models, backends=("nablab", "torch")):
    """Train every model in each backend from the same weights and batches; per-model numbers."""
    from nablab.train import TrainConfig, train

    out = {}
    for name in models:
        runs = {}
        for backend in backends:
            start = time.perf_counter()
            result = train(TrainConfig(model=name, backend=backend, **config_kw), dataset=dataset)
            runs[backend] = (result, time.perf_counter() - start)
        a = runs["nablab"][0]
        row = {"nablab test accuracy": a.final["test_acc"], "nablab final train loss": a.final["train_loss"],
               "nablab s per epoch": float(np.mean(a.epoch_seconds))}
        b = runs["torch"][0] if "torch" in runs else None
        if b is not None:
            gap = np.abs(np.array(a.step_losses) - np.array(b.step_losses))
            row.update({"torch test accuracy": b.final["test_acc"], "torch final train loss": b.final["train_loss"],
                        "max |loss difference| over all steps": float(gap.max()),
                        "torch s per epoch": float(np.mean(b.epoch_seconds))})
        out[name] = {"nablab": a, "torch": b, "row": row}
    return out


def _figure(ctx, runs, dataset_name, name):
    models = list(runs)
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(4.2 * (len(models) + 1), 3.6))
    for ax, m in zip(axes, models):
        a, b = runs[m]["nablab"], runs[m]["torch"]
        ax.plot(np.arange(1, len(a.step_losses) + 1), a.step_losses, lw=1.6, label="nablab")
        if b is not None:
            ax.plot(np.arange(1, len(b.step_losses) + 1), b.step_losses, "--", lw=1.0, label="PyTorch")
        ax.set_title(LABELS.get(m, m))
        ax.set_xlabel("step")
        _log_axis(ax)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss (batch)")
    ax = axes[-1]
    xs = np.arange(len(models))
    with_torch = all(runs[m]["torch"] is not None for m in models)
    width = 0.4 if with_torch else 0.6
    ax.bar(xs - (0.2 if with_torch else 0), [100 * runs[m]["row"]["nablab test accuracy"] for m in models],
           width, label="nablab")
    if with_torch:
        ax.bar(xs + 0.2, [100 * runs[m]["row"]["torch test accuracy"] for m in models], width, label="PyTorch")
    ax.set_xticks(xs, [LABELS.get(m, m).replace(" ", "\n", 1) for m in models], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{dataset_name}: test accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return ctx.savefig(fig, name)


def _summary_rows(runs):
    return {m: runs[m]["row"] for m in runs}


@experiment("train.cifar10", title="Softmax classifier, MLP and ConvNet in nablab beside PyTorch")
def train_cifar10(ctx: Context) -> Result:
    from nablab.data import DataNotFoundError, find_cifar10
    from nablab.train import load_dataset

    epochs = ctx.param("epochs", 2 if ctx.quick else 8)
    limit = ctx.param("limit", 1000 if ctx.quick else 4000)
    lr = ctx.param("lr", 1e-2)
    models = list(ctx.param("models", list(SEED_MODELS) + ["cnn1d"]))
    kw = dict(optimizer="adam", lr=lr, epochs=epochs, batch_size=100, seed=ctx.seed, dtype="float64")
    torch = ctx.cross_check(TORCH_TRAINING)
    backends = ("nablab", "torch") if torch is not None else ("nablab",)

    with _torch_threads(torch, ctx.param("torch_threads", 1)):
        mnist = load_dataset("mnist1d", dtype=np.float64).limited(limit)
        runs = _train_both(dict(kw, dataset="mnist1d"), mnist, models, backends)
        figures = [_figure(ctx, runs, "MNIST-1D", "mnist1d")]
        computed = {
            "MNIST-1D": {"train examples": len(mnist.x_train), "test examples": len(mnist.x_test),
                         "recipe": f"Adam lr={lr:g}, batch 100, {epochs} epochs, float64, seed {ctx.seed}",
                         "models": _summary_rows(runs)},
        }
        if torch is not None:
            worst_gap = max(r["row"]["max |loss difference| over all steps"] for r in runs.values())
            ctx.check(worst_gap < 1e-8, "from the same weights and batches the float64 loss curves of nablab "
                                        "and PyTorch differ by up to " + ", ".join(
                                            f"{m} {r['row']['max |loss difference| over all steps']:.3g}"
                                            for m, r in runs.items()) + " (limit 1e-8)")

        try:
            where = find_cifar10(ctx.param("data", "") or None)
            cifar_error = None
        except DataNotFoundError as exc:
            where, cifar_error = None, str(exc)

        if where is not None:
            c_epochs = ctx.param("cifar_epochs", 1 if ctx.quick else 2)
            c_limit = ctx.param("cifar_limit", 1000 if ctx.quick else 5000)
            cifar = load_dataset("cifar10", where, limit=c_limit, dtype=np.float32)
            c_runs = _train_both(dict(optimizer="adam", lr=ctx.param("cifar_lr", 1e-3), epochs=c_epochs,
                                      batch_size=100, seed=ctx.seed, dtype="float32", dataset="cifar10"),
                                 cifar, list(SEED_MODELS), backends)
            figures.append(_figure(ctx, c_runs, "CIFAR-10", "cifar10"))
            computed["CIFAR-10"] = {"data": str(where), "train examples": len(cifar.x_train),
                                    "test examples": len(cifar.x_test),
                                    "recipe": f"Adam lr={ctx.param('cifar_lr', 1e-3):g}, batch 100, {c_epochs} "
                                              "epochs, float32, per-channel normalisation",
                                    "models": _summary_rows(c_runs)}
        else:
            computed["CIFAR-10"] = "not found: " + cifar_error

    def accuracies(rows):
        return ", ".join(f"{LABELS[m]} {100 * r['nablab test accuracy']:.1f}%"
                         + (f" (PyTorch {100 * r['torch test accuracy']:.1f}%)" if torch is not None else "")
                         for m, r in rows.items())

    summary = (f"On MNIST-1D ({len(mnist.x_train)} training signals, {epochs} epochs of Adam) nablab's "
               f"models reach {accuracies(_summary_rows(runs))}; "
               + (f"from the same weights and batches the float64 loss curves of nablab and PyTorch differ by "
                  f"at most {worst_gap:.1e} over all steps." if torch is not None else
                  "the PyTorch cross-check was not run: PyTorch is not installed."))
    if where is not None:
        summary += " On CIFAR-10: " + accuracies(computed["CIFAR-10"]["models"]) + "."
        status = "reproduced"
    else:
        summary += " CIFAR-10 is not on this machine, so only the MNIST-1D run is shown."
        status = "needs-data"
    return Result(
        status=status,
        computed=computed,
        summary=summary,
        seed_says="Implement a softmax classifier, a two-layer MLP and a shallow ConvNet (conv and pooling "
                  "layers by hand), train them on CIFAR-10, then replicate the experiments in PyTorch "
                  "(no numbers are given).",
        details=("" if where is not None else
                 "To run on CIFAR-10: " + cifar_error.split(". ", 1)[-1] +
                 " Then `nablab reproduce --only train.cifar10` or `nablab lab run train.cifar10 "
                 "--param data=PATH`.") +
                " Larger runs: --param epochs=N --param limit=N (MNIST-1D), cifar_epochs, cifar_limit, cifar_lr.",
        figures=figures,
    )


# --------------------------------------------------------------------------- diagnostics (seed 004 Q2)


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
    worst, norms, batches = 0.0, [], None
    for t in range(steps):
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
    return worst, norms


@experiment("train.diagnostics", title="Loss-curve diagnostics: a too-high learning rate, gradients never zeroed")
def train_diagnostics(ctx: Context) -> Result:
    from nablab.data import DataLoader
    from nablab.train import load_dataset
    from nablab.train.backends import NablabBackend, TorchBackend
    from nablab.train.models import build_model

    steps = ctx.param("steps", 300 if ctx.quick else 400)
    lrs = sorted(ctx.param("lrs", [0.003, 0.1, 1.0]))
    zero_lr = ctx.param("zero_grad_lr", 0.05)
    seed = ctx.seed
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

    lr_rows = {}
    for lr, c in curves.items():
        finite = np.isfinite(c)
        lr_rows[f"lr={lr:g}"] = {
            "first loss": float(c[0]), "lowest loss": float(np.min(c[finite])),
            f"mean of the last {window} losses": tail(c),
            "diverged at step": None if finite.all() else int(np.argmin(finite)) + 1,
            "steps where the loss rose": float(np.mean(np.diff(c[finite]) > 0)),
        }
    best = min(lrs, key=lambda lr: tail(curves[lr]))
    high = max(lrs)
    too_high = high != best and (not np.all(np.isfinite(curves[high])) or tail(curves[high]) > tail(curves[best]) + 0.1)

    # (b) the loop of the seed with and without zero_grad, in nablab and (a cross-check) in PyTorch, float64
    torch = ctx.cross_check(TORCH_LOOP)
    backends = (("nablab", NablabBackend),) + ((("torch", TorchBackend),) if torch is not None else ())
    with _torch_threads(torch, ctx.param("torch_threads", 1)):
        runs = {}
        for zero in (True, False):
            for name, cls in backends:
                runs[(name, zero)] = _losses(cls(model(), "sgd", zero_lr, zero_grad=zero), loader(), steps)
    gaps = {True: None, False: None}
    if torch is not None:
        gaps = {z: float(np.max(np.abs(runs[("nablab", z)] - runs[("torch", z)]))) for z in (True, False)}
        same_effect = all(len(runs[("nablab", z)]) == len(runs[("torch", z)]) for z in (True, False)) and \
            max(gaps.values()) < 1e-8
        ctx.check(same_effect, "nablab and PyTorch give different losses for the same loop: "
                               f"{len(runs[('nablab', True)])} and {len(runs[('torch', True)])} steps with "
                               f"zero_grad, {len(runs[('nablab', False)])} and {len(runs[('torch', False)])} "
                               f"without; max difference {gaps[True]:.3g} with zero_grad, {gaps[False]:.3g} "
                               "without (limit 1e-8)")
    accumulation_error, grad_norms = _accumulation_check(data, zero_lr, min(steps, 60), seed)
    ctx.check(accumulation_error < 1e-10, "without zero_grad, .grad after backward minus .grad before differs from the "
                                          f"fresh gradient by {accumulation_error:.3g} (limit 1e-10)")
    fixed, buggy = runs[("nablab", True)], runs[("nablab", False)]
    buggy_worse = (not np.all(np.isfinite(buggy))) or tail(buggy) > tail(fixed)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for lr, c in curves.items():
        axes[0].plot(np.arange(1, len(c) + 1), c, label=f"lr = {lr:g}" + (" (too high)" if lr == high and too_high else ""))
    _log_axis(axes[0])
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss")
    axes[0].set_title("(a) SGD + momentum, MLP on MNIST-1D")
    axes[0].legend(fontsize=8)
    for (name, zero), c in runs.items():
        style = "-" if name == "nablab" else "--"
        axes[1].plot(np.arange(1, len(c) + 1), c, style, lw=1.6 if name == "nablab" else 1.0,
                     label=f"{'nablab' if name == 'nablab' else 'PyTorch'}, " +
                           ("zero_grad() before backward" if zero else "never zero_grad()"))
    _log_axis(axes[1])
    axes[1].set_xlabel("step")
    axes[1].set_title(f"(b) SGD lr = {zero_lr:g}: the seed's loop and the bug")
    axes[1].legend(fontsize=8)
    axes[2].plot(np.arange(1, len(grad_norms) + 1), grad_norms)
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("||.grad|| used by the step")
    axes[2].set_title("never zeroed: .grad = sum of all gradients so far")
    fig.tight_layout()
    figure = ctx.savefig(fig, "diagnostics")

    ok = too_high and buggy_worse
    diverged = lr_rows[f"lr={high:g}"]["diverged at step"]
    first = float(curves[high][0])
    peak = float(np.max(curves[high][np.isfinite(curves[high])]))
    if diverged:
        high_text = f"lr = {high:g} diverges (the loss is no longer finite at step {diverged})"
    elif tail(curves[high]) > 10 * first:
        high_text = f"lr = {high:g} explodes (the loss ends near {tail(curves[high]):.3g})"
    else:
        high_text = (f"lr = {high:g} jumps to {peak:.2f} (above the initial {first:.2f}) and stays near "
                     f"{tail(curves[high]):.2f}")
    summary = (
        f"(a) With SGD + momentum on the MLP, {high_text}, while lr = {best:g} reaches {tail(curves[best]):.2f} and "
        f"lr = {min(lrs):g} creeps down to {tail(curves[min(lrs)]):.2f}: a rate that is too high shows as a loss "
        "that jumps up, stalls high or explodes. "
        f"(b) Without zero_grad() every backward adds the new gradient to .grad (checked to "
        f"{accumulation_error:.1e}), so the step uses the sum of all gradients so far; the loss then "
        + ("diverges" if not np.all(np.isfinite(buggy)) else f"ends at {tail(buggy):.3f} instead of {tail(fixed):.3f}")
        + (f". nablab and PyTorch give the same losses step by step (max difference {gaps[True]:.1e} with "
           f"zero_grad, {gaps[False]:.1e} without)." if torch is not None else
           ". The PyTorch cross-check was not run: PyTorch is not installed.")
    )

    def torch_tail(zero):
        return tail(runs[("torch", zero)]) if torch is not None else None

    return Result(
        status="agrees" if ok else "disagrees",
        computed={
            "(a) learning rates (SGD, momentum 0.9, batch 100)": lr_rows,
            "(a) too high": high if too_high else None,
            "(b) final mean loss with zero_grad before backward (nablab, PyTorch)":
                [tail(runs[("nablab", True)]), torch_tail(True)],
            "(b) final mean loss never zeroing (nablab, PyTorch)":
                [tail(runs[("nablab", False)]), torch_tail(False)],
            "(b) max |nablab - PyTorch| loss per step, with / without zero_grad": [gaps[True], gaps[False]],
            "(b) max |(.grad after backward - before) - fresh gradient|": accumulation_error,
            "(b) ||.grad|| at steps 1, 10, last, never zeroed": [grad_norms[0], grad_norms[min(9, len(grad_norms) - 1)],
                                                                 grad_norms[-1]],
            "steps": steps,
        },
        summary=summary,
        seed_says="(a) Learning Rate A is too high! (b) place optim.zero_grad() before the backward pass "
                  "(zero_grad, forward, loss, backward, step).",
        details="The seed's loss-curve figure for (a) is not in the seed text, so the curves here are computed "
                "on MNIST-1D; the seed's fix for (b) is the 'zero_grad() before backward' loop. Over the first "
                "few dozen steps the never-zeroed loop can even look better (the running sum acts like momentum "
                "without decay); its steps keep growing, and after a few hundred steps the loss is worse and "
                "erratic. Parameters: steps, lrs, zero_grad_lr.",
        figures=[figure],
    )
