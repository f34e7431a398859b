"""train.cifar10 (three classifiers in nablab beside PyTorch) and train.diagnostics (loss-curve diagnostics).

Both claims train on MNIST-1D (generated locally) and, when CIFAR-10 is on
disk, ``train.cifar10`` trains on it too.  Until it is, ``train.cifar10``
also trains the seed's three CIFAR-10 models on real images that a package
ships: scikit-learn's handwritten digits, shaped like CIFAR-10 by
:func:`nablab.data.load_digits`, over several seeds.  Every PyTorch run
starts from the nablab model's weights and sees the same batches, so the two
loss curves can be compared step by step.  PyTorch is a cross-check (``run.cross_check``):
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
#: From the same start and batches, float32 training in nablab and PyTorch may drift apart only by
#: rounding: well below this loss difference (a different batch or update differs by about 0.1 at once).
FLOAT32_LOSS_TOLERANCE = 1e-2
#: ... and float64 steps agree to this.
FLOAT64_LOSS_TOLERANCE = 1e-8


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
    from nablab.train.plots import plain_log_ticks

    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)   # 0.1, 1, 10 (not 10^0); powers of ten only over many decades


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
    digits: dict | None = None     # the three models on scikit-learn's digits as 3 x 32 x 32 images, per seed
    digits_not_run: str | None = None  # why the digits were not trained (scikit-learn missing)
    curves: dict = field(default_factory=dict, repr=False, metadata={"report": False})
    digits_runs: dict = field(default_factory=dict, repr=False, metadata={"report": False})

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
            text += " CIFAR-10 is not on this machine, so they are shown on MNIST-1D and on real digit images."
        if self.digits is not None:
            d = self.digits
            text += (f" On scikit-learn's handwritten digits as 3 x 32 x 32 images ({d['train_examples']:,} training, "
                     f"{d['test_examples']} test, {len(d['seeds'])} seeds), test accuracy "
                     f"({d['spread']}): " + _digits_accuracies(d["models"], self.torch_ran) + ".")
            if self.torch_ran:
                f32 = max(r["max_loss_difference_float32"] for r in d["models"].values())
                f64 = max(r["max_loss_difference_float64"] for r in d["models"].values())
                text += (f" From the same weights and batches the float32 loss curves differ by at most {f32:.1e} "
                         f"over all steps, and {d['float64_steps']} float64 steps (batches of "
                         f"{d['float64_batch']}) by at most {f64:.1e}.")
        else:
            text += f" The digits were not trained: {self.digits_not_run}"
        return text


@compute("train.cifar10")
def train_cifar10(run: Context) -> Classifiers:
    from nablab.data import DataNotFoundError, find_cifar10
    from nablab.train import load_dataset
    from nablab.train.models import build_model

    p = run.params
    _check_digits_params(p)
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

        if where is None:   # until CIFAR-10 is on disk: real images that a package ships
            digits, digits_runs, digits_not_run = _digits(run, torch)
        else:
            digits, digits_runs, digits_not_run = None, {}, "CIFAR-10 is on disk, so the three models trained on it."

    needs_data = None if where is not None else (
        missing + " In the lab: `NABLAB_DATA=PATH nablab reproduce --only train.cifar10`, or "
        "`nablab lab run train.cifar10 --param data=PATH`.")
    return Classifiers(softmax_parameters=sizes["logistic"], mlp_parameters=sizes["mlp"],
                       convnet_parameters=sizes["convnet"], torch_ran=torch is not None, mnist1d=mnist1d,
                       cifar10=cifar10, needs_data=needs_data, digits=digits, digits_not_run=digits_not_run,
                       curves=curves, digits_runs=digits_runs)


def _mean_spread(values):
    """Mean and sample standard deviation (None for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def _percent(mean, spread):
    return f"{100 * mean:.1f}%" + ("" if spread is None else f" ± {100 * spread:.1f}")


def _digits_accuracies(rows, with_torch):
    return ", ".join(
        f"{LABELS[m]} {_percent(r['nablab_test_accuracy_mean'], r['nablab_test_accuracy_spread'])}"
        + (f" (PyTorch {_percent(r['torch_test_accuracy_mean'], r['torch_test_accuracy_spread'])})"
           if with_torch else "")
        for m, r in rows.items())


def _predict(backend, x, batch_size=500):
    """The classes a trained backend's model predicts for ``x``, without recording a graph."""
    parts = []
    if backend.name == "torch":
        import torch

        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                parts.append(backend.model(torch.as_tensor(np.ascontiguousarray(x[i:i + batch_size])))
                             .argmax(dim=1).numpy())
    else:
        from nablab.autodiff.core import no_grad

        with no_grad():
            for i in range(0, len(x), batch_size):
                parts.append(np.argmax(backend.model(x[i:i + batch_size]).data, axis=1))
    return np.concatenate(parts).astype(np.int64)


def _float64_replay(name, data, seed, lr, batch_size, steps):
    """``steps`` float64 Adam steps of model ``name`` in nablab and PyTorch from the same weights and batches."""
    from nablab.data import DataLoader
    from nablab.train.backends import NablabBackend, TorchBackend
    from nablab.train.models import build_model

    model = build_model(name, data.input_shape, data.num_classes, seed=seed, dtype=np.float64)
    theirs, ours = TorchBackend(model, "adam", lr), NablabBackend(model, "adam", lr)
    losses = [_losses(backend, DataLoader(data.x_train, data.y_train, batch_size, seed=seed), steps)
              for backend in (ours, theirs)]
    return float(np.max(np.abs(losses[0] - losses[1])))


def _check_digits_params(p):
    """Refuse digits parameters that cannot give what the claim shows, before anything is trained."""
    if p["digits_seeds"] < 1 or p["digits_limit"] < 0 or p["digits_float64_steps"] < 2:
        raise ValueError("digits_seeds must be at least 1, digits_limit at least 0 (0: every image) and "
                         "digits_float64_steps at least 2 (the second loss is the first to show an update); got "
                         f"digits_seeds={p['digits_seeds']}, digits_limit={p['digits_limit']}, "
                         f"digits_float64_steps={p['digits_float64_steps']}")


def _digits(run: Context, torch):
    """The seed's three models on scikit-learn's digits (nablab.data.load_digits), per seed and backend.

    Returns ``(evidence, runs, None)``, or ``(None, {}, why)`` when scikit-learn is missing. Each seed
    draws the stratified split, the weights and the batches; PyTorch starts from nablab's weights.
    """
    from nablab.train import TrainConfig, load_dataset, train

    p = run.params
    seeds = [run.seed + i for i in range(p["digits_seeds"])]
    backends = ("nablab", "torch") if torch is not None else ("nablab",)
    models, limit = list(CIFAR_MODELS), p["digits_limit"]

    sizes = {}

    def digits(seed, dtype):
        data = load_dataset("digits", dtype=dtype, split_seed=seed)
        sizes["images"] = len(data.x_train) + len(data.x_test)
        return data.limited(limit or None)     # the first images of each split (both are shuffled)

    try:
        first = digits(seeds[0], np.float32)
    except ModuleNotFoundError as exc:
        if exc.name != "sklearn":
            raise
        return None, {}, str(exc) + "."
    runs = {m: {b: [] for b in backends} for m in models}
    tests, done, total = [], 0, len(seeds) * len(models) * len(backends)
    for seed in seeds:
        data = first if seed == seeds[0] else digits(seed, np.float32)
        tests.append({"seed": seed, "x": data.x_test[:, 0], "y": data.y_test})
        for m in models:
            for b in backends:
                run.progress(done, total, f"digits, seed {seed}: {LABELS[m]} in {b}")
                done += 1
                result = train(TrainConfig(dataset="digits", model=m, backend=b, optimizer="adam",
                                           lr=p["digits_lr"], epochs=p["digits_epochs"],
                                           batch_size=p["digits_batch"], seed=seed, dtype="float32"), dataset=data)
                runs[m][b].append({"seed": seed, "test_acc": [h["test_acc"] for h in result.history],
                                   "step_losses": np.asarray(result.step_losses),
                                   "predictions": _predict(result.backend, data.x_test),
                                   "seconds_per_epoch": float(np.mean(result.epoch_seconds))})
    run.progress(total, total, "digits: done")

    rows, per_seed, confusion = {}, {}, {}
    for m in models:
        row, per_seed[m] = {}, {}
        for b in backends:
            accs = per_seed[m][b] = [r["test_acc"][-1] for r in runs[m][b]]
            mean, spread = _mean_spread(accs)
            row.update({f"{b}_test_accuracy_mean": mean, f"{b}_test_accuracy_spread": spread,
                        f"{b}_seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in runs[m][b]]))})
        matrix = np.zeros((10, 10), dtype=np.int64)
        for r, t in zip(runs[m]["nablab"], tests):
            np.add.at(matrix, (t["y"], r["predictions"]), 1)
        confusion[m] = matrix
        if torch is not None:
            gaps = [np.abs(a["step_losses"] - b["step_losses"]) for a, b in zip(runs[m]["nablab"], runs[m]["torch"])]
            row["max_loss_difference_float32"] = float(max(g.max() for g in gaps))
            row["prediction_disagreements"] = int(sum(np.count_nonzero(a["predictions"] != b["predictions"])
                                                      for a, b in zip(runs[m]["nablab"], runs[m]["torch"])))
        rows[m] = row
    steps = p["digits_float64_steps"]
    if torch is not None:
        data64 = digits(seeds[0], np.float64)
        for m in models:
            rows[m]["max_loss_difference_float64"] = _float64_replay(m, data64, seeds[0], p["digits_lr"],
                                                                     p["digits_float64_batch"], steps)
        f64 = {m: r["max_loss_difference_float64"] for m, r in rows.items()}
        run.check(max(f64.values()) < FLOAT64_LOSS_TOLERANCE,
                  f"digits: in float64, from the same weights and batches, the first {steps} losses of nablab and "
                  "PyTorch differ by up to " + ", ".join(f"{m} {v:.3g}" for m, v in f64.items())
                  + f" (limit {FLOAT64_LOSS_TOLERANCE:g})")
        f32 = {m: r["max_loss_difference_float32"] for m, r in rows.items()}
        run.check(max(f32.values()) < FLOAT32_LOSS_TOLERANCE,
                  "digits: in float32, from the same weights and batches, the loss curves of nablab and PyTorch "
                  "differ by up to " + ", ".join(f"{m} {v:.3g}" for m, v in f32.items())
                  + f" (limit {FLOAT32_LOSS_TOLERANCE:g}: more than rounding)")

    import sklearn

    evidence = {
        "images": f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__}): {sizes['images']:,} real 8 x 8 "
                  "images, "
                  "grey levels 0-16 scaled to [0, 1], bilinear upsampling to 32 x 32, repeated over 3 channels",
        "train_examples": len(first.x_train),
        "test_examples": len(tests[0]["y"]), "seeds": seeds,
        "spread": "mean ± sample standard deviation over the seeds" if len(seeds) > 1 else "one seed",
        "recipe": f"Adam lr={p['digits_lr']:g}, batch {p['digits_batch']}, {p['digits_epochs']} epochs, float32, "
                  "per-channel normalisation by the training images' mean and standard deviation; each seed draws "
                  "the stratified 80/20 split, the weights and the batches",
        "float64_steps": steps if torch is not None else None,
        "float64_batch": p["digits_float64_batch"] if torch is not None else None,
        "models": rows,
        "test_accuracy_per_seed": per_seed}
    return evidence, {"runs": runs, "tests": tests, "confusion": confusion}, None


def _curves_figure(run, curves, rows, dataset_name, name):
    import matplotlib.pyplot as plt

    models = list(curves)
    with_torch = all(curves[m]["torch"] is not None for m in models)
    # At most three panels a row, 9 inches wide: the page shows it at its own size.
    ncols = min(3, len(models) + 1)
    nrows = -(-(len(models) + 1) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(9, 3.0 * nrows), squeeze=False)
    axes = list(grid.flat)[:len(models) + 1]
    for ax in list(grid.flat)[len(models) + 1:]:
        ax.set_visible(False)
    for ax, m in zip(axes, models):
        a, b = curves[m]["nablab"], curves[m]["torch"]
        ax.plot(np.arange(1, len(a) + 1), a, lw=1.6, label="nablab")
        if b is not None:
            ax.plot(np.arange(1, len(b) + 1), b, "--", lw=1.0, label="PyTorch")
        ax.set_title(LABELS.get(m, m))
        ax.set_xlabel("step")
        _log_axis(ax)
        ax.legend(fontsize=8)
    for row in grid:
        row[0].set_ylabel("training loss (batch)")
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
    if result.digits is not None:
        _digits_curves_figure(run, result)
        _digits_confusion_figure(run, result)
        _digits_misclassified_figure(run, result)


def _digits_curves_figure(run, result):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    d, runs = result.digits, result.digits_runs["runs"]
    models, with_torch = list(d["models"]), result.torch_ran
    rows = 3 if with_torch else 2
    fig, axes = plt.subplots(rows, len(models), figsize=(9, 2.3 * rows + 0.3), sharex="row", squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, m in enumerate(models):
        for k, a in enumerate(runs[m]["nablab"]):
            c, seed = colours[k % len(colours)], a["seed"]
            steps = np.arange(1, len(a["step_losses"]) + 1)
            epochs = np.arange(1, len(a["test_acc"]) + 1)
            axes[0, j].plot(steps, a["step_losses"], color=c, lw=1.2)
            axes[1, j].plot(epochs, 100 * np.asarray(a["test_acc"]), "o-", color=c, ms=3, lw=1.2,
                            label=f"seed {seed}, nablab")
            if with_torch:
                b = runs[m]["torch"][k]
                axes[0, j].plot(steps, b["step_losses"], "--", color="k", lw=0.6)
                axes[1, j].plot(epochs, 100 * np.asarray(b["test_acc"]), "x", color="k", ms=4,
                                label="PyTorch" if k == 0 else None)
                gap = np.abs(a["step_losses"] - b["step_losses"])
                axes[2, j].plot(steps, np.where(gap > 0, gap, np.nan), color=c, lw=1.0, label=f"seed {seed}")
        axes[0, j].set_title(f"{LABELS[m]}")
        axes[0, j].set_yscale("log")
        axes[1, j].set_ylim(max(0, axes[1, j].get_ylim()[0]), 100.5)
        axes[0, j].set_xlabel("step")
        axes[1, j].set_xlabel("epoch")
        epochs = len(runs[m]["nablab"][0]["test_acc"])
        axes[1, j].set_xlim(0.5, epochs + 0.5)
        if epochs <= 12:
            axes[1, j].set_xticks(range(1, epochs + 1))
        else:
            axes[1, j].xaxis.set_major_locator(MaxNLocator(integer=True))
        if with_torch:
            axes[2, j].set_yscale("log")
            axes[2, j].axhline(np.finfo(np.float32).eps, color="0.6", lw=0.8, ls=":")
            axes[2, j].set_xlabel("step")
        for row in (0, 2) if with_torch else (0,):  # a few step ticks (every 25 of 225 steps ran together)
            axes[row, j].xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 5, 10], integer=True))
    axes[0, 0].set_ylabel("training loss (batch)")
    axes[1, 0].set_ylabel("test accuracy (%)")
    if with_torch:
        axes[0, 0].legend([Line2D([], [], color="0.4", lw=1.2), Line2D([], [], color="k", ls="--", lw=0.6)],
                          ["nablab (a colour per seed)", "PyTorch"], fontsize=6)
    axes[1, 0].legend(fontsize=6, loc="lower right")
    if with_torch:
        axes[2, 0].set_ylabel(r"$|\ell_{\mathrm{nablab}} - \ell_{\mathrm{PyTorch}}|$")
        axes[2, 0].legend(fontsize=6)
    fig.suptitle(f"Handwritten digits as $3 \\times 32 \\times 32$ images: {len(d['seeds'])} seeds, float32",
                 fontsize=10)
    fig.tight_layout()
    run.savefig(fig, "digits-curves", alt=(
        f"scikit-learn's handwritten digits, upsampled to 3 x 32 x 32, for the {', '.join(LABELS[m] for m in models)}"
        f" over seeds {', '.join(map(str, d['seeds']))}. Top row: the training loss per step (log scale)"
        + (", nablab in colour and PyTorch dashed in black on top of it" if with_torch else ", in nablab")
        + ". Middle row: the test accuracy after each epoch; final accuracies "
        + _digits_accuracies(d["models"], with_torch) + "."
        + (" Bottom row: the absolute difference of nablab's and PyTorch's float32 losses at each step (log "
           "scale; exact zeros left out), from float32 rounding (dotted: float32's machine epsilon) growing "
           "with training, at most "
           + ", ".join(f"{r['max_loss_difference_float32']:.1e}" for r in d["models"].values())
           + "." if with_torch else "")))


def _digits_confusion_figure(run, result):
    import matplotlib.pyplot as plt

    d, confusion = result.digits, result.digits_runs["confusion"]
    models = list(d["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(9, 3.4), squeeze=False)
    for ax, m in zip(axes[0], models):
        matrix = confusion[m]
        ax.imshow(matrix, cmap="Blues", norm="log" if matrix.max() > 1 else None)
        for (i, j), n in np.ndenumerate(matrix):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=5 if i == j else 6,
                        color="white" if i == j else "#b00")
        wrong = int(matrix.sum() - np.trace(matrix))
        ax.set_title(f"{LABELS[m]}: {wrong} of {int(matrix.sum())} wrong", fontsize=9)
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("predicted digit", fontsize=8)
    axes[0, 0].set_ylabel("true digit", fontsize=8)
    fig.tight_layout()
    worst = {}
    for m in models:
        off = confusion[m] - np.diag(np.diag(confusion[m]))
        i, j = np.unravel_index(np.argmax(off), off.shape)
        worst[m] = (int(i), int(j), int(off[i, j]))
    run.savefig(fig, "digits-confusion", alt=(
        f"Confusion matrices of nablab's {', '.join(LABELS[m] for m in models)} on the digits' test images, "
        f"summed over the {len(d['seeds'])} seeds (each seed has its own test split): true digit down, predicted "
        "across, errors in red. The most frequent confusions: "
        + "; ".join(f"{LABELS[m]}: {i} taken for {j} {n} times" if n else f"{LABELS[m]}: no errors"
                    for m, (i, j, n) in worst.items()) + "."))


def _digits_misclassified_figure(run, result, count=8):
    import matplotlib.pyplot as plt

    runs, tests = result.digits_runs["runs"], result.digits_runs["tests"]
    model = "convnet" if "convnet" in runs else list(runs)[-1]
    per_seed = [[(t["seed"], t["x"][i], int(t["y"][i]), int(r["predictions"][i]))
                 for i in np.flatnonzero(r["predictions"] != t["y"])] for r, t in zip(runs[model]["nablab"], tests)]
    wrong = [item for items in per_seed for item in items]
    if not wrong:
        return
    # the first errors of every seed in turn, so that each seed's test split shows
    shown = [items[k] for k in range(max(map(len, per_seed))) for items in per_seed if k < len(items)][:count]
    fig, axes = plt.subplots(1, count, figsize=(9, 1.75), squeeze=False)
    for ax, item in zip(axes[0], shown + [None] * (count - len(shown))):
        ax.axis("off")
        if item is None:
            continue
        seed, image, true, said = item
        ax.imshow(image, cmap="gray_r")
        ax.set_title(f"${true} \\to {said}$ (seed {seed})", fontsize=8)
    fig.suptitle(f"Test images nablab's {LABELS[model]} gets wrong: true $\\to$ predicted "
                 f"({len(shown)} of {len(wrong)})", fontsize=9)
    fig.tight_layout()
    run.savefig(fig, "digits-misclassified", alt=(
        f"{len(shown)} of the {len(wrong)} test images that nablab's {LABELS[model]} misclassifies over all seeds, "
        "as the 32 x 32 images it sees (dark is ink), each titled true digit and predicted digit: "
        + ", ".join(f"{t} taken for {s}" for _, _, t, s in shown) + "."))


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
