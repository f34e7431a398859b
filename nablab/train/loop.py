"""The training loop: epochs of seeded batches, metrics, checkpoints, resume, divergence stop.

A run writes into its folder (when one is given):

- ``metrics.csv``: one row per epoch (epoch, step, train loss and accuracy
  averaged over the epoch's batches, test loss and accuracy after the epoch);
- ``timing.csv``: seconds per epoch (kept apart so metrics.csv is reproducible);
- ``checkpoint.npz``: weights, optimizer state, history and configuration after
  every epoch, written atomically, no pickle;
- ``loss.png`` and ``accuracy.png``; ``config.json``.

The batches of epoch ``e`` are a permutation drawn from ``(seed, e)`` alone,
and the checkpoint holds everything else that changes, so ``resume=True``
continues exactly the run an uninterrupted one would have made. A checkpoint
is checked before it is used: its metadata (format, epoch, step, config,
history) and arrays (the model's names and shapes, finite values) must be
those of a run of this model, or :class:`CheckpointError` names the file and
the problem.

Divergence stops the run with :class:`TrainingDiverged` naming the step, and
the last checkpoint (from the last finished epoch) stays as it was. A step
diverges when its loss is NaN or infinite, or more than ``divergence_factor``
(default ``1e4``) times the loss of the run's first step. That reference is
the untrained model's loss (about ln 10 = 2.3 for ten classes): it is fixed
before anything can go wrong, and unlike the best loss so far it does not
shrink toward zero as the model fits, where one noisy batch would look like an
explosion. Why ``1e4``: on MNIST-1D (mlp, resmlp and cnn1d with Adam, SGD
and momentum, three random seeds, five epochs), every run that reached 40% test
accuracy (the best reached 56%; chance is 10%) peaked below 350 times
its first loss, while the runs that passed ``1e4`` times it ended at chance,
or with a training loss still 17 to over 1000 times the untrained one, or
overflowed (``--lr 1e6`` reaches ``1e14`` and more): a margin of about 30.
``divergence_factor=None`` (``--divergence-factor off``) keeps only the
NaN/infinity rule. An epoch also diverges when its test loss, a weight or an
optimizer state is no longer finite; nothing non-finite is ever saved.

>>> import numpy as np
>>> from nablab.train.loop import TrainConfig, train
>>> from nablab.train.datasets import Dataset
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((64, 1, 8)); y = (x[:, 0, 0] > 0).astype(np.int64)
>>> data = Dataset("toy", x, y, x, y, ["neg", "pos"])
>>> result = train(TrainConfig(model="logistic", optimizer="sgd", lr=0.5, epochs=5, batch_size=16,
...                            dtype="float64"), dataset=data)
>>> result.history[-1]["test_acc"] > 0.9
True
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nablab.errors import DivergenceError, TrainingDiverged
from nablab.optim.loop import Step, iterate
from nablab.train.backends import BACKENDS, make_backend
from nablab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nablab.train.datasets import DATASETS, Dataset, check_limit, load_dataset
from nablab.train.metrics import plot_run, write_csv
from nablab.train.models import MODELS, build_model
from nablab.train.optimizers import OPTIMIZERS, check_lr, check_weight_decay

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "Reporter", "train", "CHECKPOINT", "METRICS"]

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"
TIMING = "timing.csv"
CONFIG = "config.json"
#: Default of ``TrainConfig.divergence_factor``: see the module docstring for the rule and the choice.
DIVERGENCE_FACTOR = 1e4
_FORMAT = "nablab.train/1"
_ROW = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc")
#: Configuration fields a resumed run must share with the run it continues.
_FIXED = ("dataset", "model", "optimizer", "lr", "weight_decay", "seed", "batch_size", "backend", "dtype", "limit", "hidden")


@dataclass
class TrainConfig:
    """Everything that defines a run (``epochs`` is the total, counting resumed epochs).

    ``dataset`` and ``model`` name the data and the network, ``optimizer``, ``lr`` and
    ``weight_decay`` the training, ``batch_size`` and ``seed`` the batches and the weights;
    ``backend`` is ``"nablab"`` or ``"torch"``, ``dtype`` ``"float32"`` or ``"float64"``; ``limit``
    keeps the first examples, ``hidden`` sizes the MLPs, ``divergence_factor`` stops a run whose loss
    grows past that multiple of its first (None: only NaN stops it) and ``data`` is the CIFAR-10 path.

    >>> from nablab.train import TrainConfig
    >>> TrainConfig(model="mlp", lr=0.1).validate().batch_size
    100
    >>> TrainConfig(optimizer="adamm").validate()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown optimizer 'adamm'; choose one of sgd, momentum, nesterov, adam, ...
    """

    dataset: str = "mnist1d"
    model: str = "cnn1d"
    optimizer: str = "adam"
    lr: float = 1e-2
    weight_decay: float | None = None
    epochs: int = 10
    seed: int = 0
    batch_size: int = 100
    backend: str = "nablab"
    dtype: str = "float32"
    limit: int | None = None
    hidden: int = 100
    divergence_factor: float | None = DIVERGENCE_FACTOR
    data: str | None = field(default=None, compare=False)

    def validate(self) -> "TrainConfig":
        """Refuse a bad value with a message that names it."""
        def choose(what, value, options):
            if value not in options:
                raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(options)}")

        choose("dataset", self.dataset, DATASETS)
        choose("model", self.model, MODELS)
        choose("optimizer", self.optimizer, OPTIMIZERS)
        choose("backend", self.backend, BACKENDS)
        choose("dtype", self.dtype, ("float32", "float64"))
        self.lr = check_lr(self.lr)
        if self.weight_decay is not None:
            self.weight_decay = check_weight_decay(self.weight_decay)
        for name in ("epochs", "batch_size", "hidden"):
            value = getattr(self, name)
            low = 0 if name == "epochs" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.limit is not None:
            check_limit(self.limit)
        factor = self.divergence_factor
        if factor is not None:
            if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(factor) or factor <= 1:
                raise ValueError(f"divergence_factor must be a finite number > 1 (or None to turn the check off), "
                                 f"got {factor!r}")
            self.divergence_factor = float(factor)
        return self

    def to_dict(self):
        return asdict(self)


class Reporter:
    """Progress callbacks of :func:`train`; the default does nothing.

    A subclass overrides what it wants to show: ``start`` (once), ``step`` (after each batch),
    ``epoch_end`` (with the epoch's metrics row) and ``close``.

    >>> import numpy as np
    >>> from nablab.train import TrainConfig, Dataset, Reporter, train
    >>> class Epochs(Reporter):
    ...     def epoch_end(self, row, seconds):
    ...         print("epoch", row["epoch"])
    >>> x = np.random.default_rng(0).standard_normal((32, 1, 4)).astype(np.float32)
    >>> y = (x[:, 0, 0] > 0).astype(np.int64)
    >>> data = Dataset("toy", x, y, x, y, ["-", "+"])
    >>> _ = train(TrainConfig(model="logistic", epochs=2, batch_size=16), dataset=data, reporter=Epochs())
    epoch 1
    epoch 2
    """

    def start(self, config, first_epoch, steps_per_epoch):
        pass

    def step(self, epoch, batch, loss):
        pass

    def epoch_end(self, row, seconds):
        pass

    def close(self):
        pass


@dataclass
class TrainResult:
    """What :func:`train` returns: the ``config``, one ``history`` row per epoch (losses and
    accuracies), every step's loss, the seconds per epoch, the backend and the run folder.

    >>> import numpy as np
    >>> from nablab.train import TrainConfig, Dataset, train
    >>> x = np.random.default_rng(0).standard_normal((32, 1, 4)).astype(np.float32)
    >>> y = (x[:, 0, 0] > 0).astype(np.int64)
    >>> data = Dataset("toy", x, y, x, y, ["-", "+"])
    >>> r = train(TrainConfig(model="logistic", epochs=2, batch_size=16), dataset=data)
    >>> sorted(r.history[-1]), len(r.step_losses), r.run_dir
    (['epoch', 'step', 'test_acc', 'test_loss', 'train_acc', 'train_loss'], 4, None)
    """
    config: TrainConfig
    history: list
    step_losses: list
    epoch_seconds: list
    backend: object
    run_dir: Path | None = None

    @property
    def final(self):
        return self.history[-1] if self.history else None

    def _repr_html_(self) -> str:
        """The run in a notebook: a small table of its final metrics, headed by what was trained.

        >>> import numpy as np, xml.etree.ElementTree as ET
        >>> from nablab.train import TrainConfig, Dataset, train
        >>> x = np.random.default_rng(0).standard_normal((32, 1, 4)).astype(np.float32)
        >>> data = Dataset("toy", x, (x[:, 0, 0] > 0).astype(np.int64), x, (x[:, 0, 0] > 0).astype(np.int64), ["-", "+"])
        >>> page = train(TrainConfig(model="logistic", epochs=2, batch_size=16), dataset=data)._repr_html_()
        >>> [cell.text for cell in ET.fromstring(page).iter("th")][:3]
        ['epochs', 'steps', 'train loss']
        """
        c = self.config
        caption = html.escape(f"{c.model} on {c.dataset} ({c.backend}, {c.optimizer}, lr={c.lr:g})")
        final = self.final
        if final is None:
            return f'<div class="nablab-train"><p>{caption}: no epochs run</p></div>'
        seconds = sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else None
        cells = {"epochs": str(final["epoch"]), "steps": str(final["step"]),
                 "train loss": _metric(final["train_loss"]), "train acc": f"{100 * final['train_acc']:.2f}%",
                 "test loss": _metric(final["test_loss"]), "test acc": f"{100 * final['test_acc']:.2f}%"}
        if seconds is not None:
            cells["s / epoch"] = f"{seconds:.2f}"
        head = "".join(f"<th>{html.escape(k)}</th>" for k in cells)
        body = "".join(f'<td style="text-align:right">{html.escape(v)}</td>' for v in cells.values())
        where = f"<p><small>run folder: <code>{html.escape(str(self.run_dir))}</code></small></p>" \
            if self.run_dir is not None else ""
        return (f'<div class="nablab-train"><table><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
                f"<tbody><tr>{body}</tr></tbody></table>{where}</div>")


def _metric(x) -> str:
    """A loss for a table: four decimals, or three significant digits in exponent form when large."""
    x = float(x)
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.3e}"


def _dataset_for(config, dataset):
    if dataset is None:
        return load_dataset(config.dataset, config.data, config.limit, np.dtype(config.dtype))
    x = dataset.x_train
    if x.dtype != np.dtype(config.dtype):
        raise ValueError(f"the dataset is {x.dtype} but the run asks for dtype {config.dtype}")
    return dataset.limited(config.limit)


def _check_resumable(saved, config, path):
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {getattr(config, k)!r}"
             for k in _FIXED if saved.get(k) != getattr(config, k)]
    if diffs:
        raise ValueError(f"cannot resume {path}: the run was made with other settings ({'; '.join(diffs)})")


def _is_count(value) -> bool:
    return type(value) is int and value >= 0


def _is_number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _take_conv_choices(rows, path):
    """The convolution algorithms the checkpointed run measured, used again (bit-for-bit resumption)."""
    from nablab.nn import conv_algorithms

    try:
        conv_algorithms.import_choices(rows)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path} has {exc}; it is not a checkpoint of nablab.train that can be "
                              "resumed") from None


def _check_meta(meta, arrays, path):
    """Refuse metadata that is not what :func:`train` writes, before any of it is used."""
    def refuse(problem):
        raise CheckpointError(f"checkpoint {path} {problem}; it is not a checkpoint of nablab.train that can be "
                              "resumed")

    if meta.get("format") != _FORMAT:
        refuse(f"has format {meta.get('format')!r}, not {_FORMAT!r}")
    for key in ("epoch", "step"):
        if not _is_count(meta.get(key)):
            refuse(f"has {key} {meta.get(key)!r}, not a non-negative integer")
    if not isinstance(meta.get("config"), dict):
        refuse(f"has config of type {type(meta.get('config')).__name__}, not a mapping")
    history, epoch, step = meta.get("history"), meta["epoch"], meta["step"]
    if not isinstance(history, list) or len(history) != epoch:
        kind = f"{len(history)} rows" if isinstance(history, list) else f"a {type(history).__name__}"
        refuse(f"has a history of {kind} for {epoch} epochs")
    for i, row in enumerate(history, start=1):
        if not isinstance(row, dict) or not all(_is_number(row.get(k)) for k in _ROW) or row["epoch"] != i:
            refuse(f"has history row {i} = {row!r}, not the numbers {', '.join(_ROW)} of epoch {i}")
    if history and history[-1]["step"] != step:
        refuse(f"says step {step}, but its last history row says step {history[-1]['step']}")
    seconds = meta.get("epoch_seconds", [])
    if not isinstance(seconds, list) or len(seconds) != epoch or not all(_is_number(v) for v in seconds):
        refuse(f"has epoch_seconds {seconds!r}, not {epoch} numbers")
    losses = arrays.get("history.step_loss")
    if losses is None or losses.ndim != 1 or len(losses) != step:
        found = "none" if losses is None else f"shape {losses.shape}"
        refuse(f"has history.step_loss of {found}, not one loss for each of its {step} steps")
    if not any(name.startswith("model.") for name in arrays):
        refuse("holds no weights (no model.* arrays)")


def _load_state(backend, arrays, path):
    """Load the checkpoint's weights and optimizer state, after checking names and shapes against the model."""
    fresh = backend.state_arrays()
    params = [p.shape for p in backend.parameters().values()]
    saved = {k: v for k, v in arrays.items() if k != "history.step_loss"}
    problems = [f"{k} is missing" for k in fresh if k not in saved]
    for name, value in saved.items():
        if name in fresh:
            if value.shape != fresh[name].shape:
                problems.append(f"{name} has shape {value.shape}, the model's is {fresh[name].shape}")
            continue
        # Optimizer state a backend creates on its first step: "optim.<parameter index>.<key>".
        index = name.split(".")[1] if name.startswith("optim.") and name.count(".") >= 2 else ""
        if not (index.isdigit() and int(index) < len(params) and value.shape in ((), params[int(index)])):
            problems.append(f"{name} (shape {value.shape}) is not part of this model or its optimizer")
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {'; '.join(problems[:5])}"
                              + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    try:
        backend.load_state_arrays(saved)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the model: {exc}") from None


def train(config: TrainConfig, run_dir=None, *, dataset: Dataset | None = None, resume: bool = False,
          reporter: Reporter | None = None, zero_grad: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` (or on ``dataset`` if given).

    ``run_dir`` receives metrics, plots and checkpoints; with ``resume`` the run
    continues from ``run_dir/checkpoint.npz`` up to ``config.epochs`` epochs.
    ``zero_grad=False`` never resets the gradients, so each step uses the sum
    of all gradients so far (the bug of a loop that forgets ``zero_grad()``).

    >>> import numpy as np, tempfile, pathlib
    >>> from nablab.train import TrainConfig, Dataset, train
    >>> x = np.random.default_rng(0).standard_normal((32, 1, 4)).astype(np.float32)
    >>> y = (x[:, 0, 0] > 0).astype(np.int64)
    >>> data = Dataset("toy", x, y, x, y, ["-", "+"])
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> first = train(TrainConfig(model="logistic", epochs=1, batch_size=16), run, dataset=data)
    >>> resumed = train(TrainConfig(model="logistic", epochs=2, batch_size=16), run, dataset=data, resume=True)
    >>> [row["epoch"] for row in resumed.history], sorted(p.name for p in run.iterdir())[:3]
    ([1, 2], ['accuracy.png', 'checkpoint.npz', 'config.json'])
    """
    from nablab.data import DataLoader

    config.validate()
    reporter = reporter or Reporter()
    run_dir = None if run_dir is None else Path(run_dir)
    ckpt_path = None if run_dir is None else run_dir / CHECKPOINT
    if resume and run_dir is None:
        raise ValueError("resume needs a run folder")
    if run_dir is not None:
        if not resume and ckpt_path.exists():
            raise FileExistsError(f"{run_dir} already holds a run ({CHECKPOINT}): resume it (--resume) "
                                  "or choose another folder")

    saved_arrays = meta = None
    if resume:
        if not ckpt_path.exists():
            raise CheckpointError(f"nothing to resume: no {CHECKPOINT} in {run_dir}")
        saved_arrays, meta = load_checkpoint(ckpt_path)
        _check_meta(meta, saved_arrays, ckpt_path)
        _check_resumable(meta["config"], config, ckpt_path)
        _take_conv_choices(meta.get("conv_algorithms", []), ckpt_path)

    data = _dataset_for(config, dataset)
    model = build_model(config.model, data.input_shape, data.num_classes, seed=config.seed,
                        dtype=np.dtype(config.dtype), hidden=config.hidden)
    backend = make_backend(config.backend, model, config.optimizer, config.lr, zero_grad=zero_grad,
                           weight_decay=config.weight_decay)
    loader = DataLoader(data.x_train, data.y_train, config.batch_size, shuffle=True, drop_last=False, seed=config.seed)

    history, step_losses, seconds, first_epoch, step = [], [], [], 0, 0
    if meta is not None:
        _load_state(backend, saved_arrays, ckpt_path)
        history = meta["history"]
        seconds = meta.get("epoch_seconds", [])
        step_losses = saved_arrays["history.step_loss"].tolist()
        first_epoch, step = meta["epoch"], meta["step"]
    if run_dir is not None:   # made only now: a run that cannot start (no data, say) leaves no folder
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")

    result = TrainResult(config, history, step_losses, seconds, backend, run_dir)
    reporter.start(config, first_epoch, len(loader))
    try:
        # Overflow is expected when a run diverges; it is detected and reported by step.
        with np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(first_epoch, config.epochs):
                step = _run_epoch(result, data, loader, epoch, step, ckpt_path, reporter)
    finally:
        reporter.close()
    _finish_files(result)
    return result


def _loss_limit(result):
    """``divergence_factor``'s rule for :func:`nablab.optim.iterate`: a loss above factor x the run's first."""
    factor = result.config.divergence_factor
    if factor is None:
        return None

    def limit(t, loss):
        first = result.step_losses[0]
        if loss > factor * first:
            return (f"more than {factor:g} times the first step's loss {first:.4g} "
                    "(divergence_factor; None, or --divergence-factor off, turns this off)")
        return None

    return limit


def _run_epoch(result, data, loader, epoch, step, ckpt_path, reporter):
    """Train one epoch (the steps are :func:`nablab.optim.iterate`'s), evaluate, checkpoint;
    returns the step count after it."""
    backend, run_dir = result.backend, result.run_dir
    last_good = ckpt_path if ckpt_path is not None and ckpt_path.exists() else None
    loader.epoch = epoch
    start = time.perf_counter()
    batches, last = iter(loader), {}
    totals = {"loss": 0.0, "correct": 0, "seen": 0}

    def train_step(params, state, t):
        xb, yb = next(batches)
        loss, right = backend.train_step(xb, yb)  # the backend holds the weights and the optimizer state
        result.step_losses.append(loss)
        last.update(loss=loss, right=right, size=len(yb))
        return Step(params, state, loss)

    def observe(done, params):  # after each step that did not diverge (done counts the run's steps)
        if done == step:
            return
        totals["loss"] += last["loss"] * last["size"]
        totals["correct"] += last["right"]
        totals["seen"] += last["size"]
        reporter.step(epoch + 1, done - step, last["loss"])

    try:
        iterate(train_step, None, len(loader), start=step, observe=observe, limit=_loss_limit(result))
    except DivergenceError as exc:
        _finish_files(result)
        raise TrainingDiverged(exc.step + 1, epoch + 1, exc.value, last_good,
                               why=f", {exc.why}" if exc.why else "") from None
    step += len(loader)
    loss_sum, correct, seen = totals["loss"], totals["correct"], totals["seen"]
    train_seconds = time.perf_counter() - start
    test_loss, test_acc = backend.evaluate(data.x_test, data.y_test)
    state = backend.state_arrays()
    bad = [k for k, v in state.items() if v.dtype.kind == "f" and not np.all(np.isfinite(v))]
    if bad or not math.isfinite(test_loss):
        _finish_files(result)
        if bad:
            raise TrainingDiverged(step, epoch + 1, "non-finite", last_good, what=f"{bad[0]}")
        raise TrainingDiverged(step, epoch + 1, test_loss, last_good, what="the test loss")
    row = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / seen, "train_acc": correct / seen,
           "test_loss": test_loss, "test_acc": test_acc}
    result.history.append(row)
    result.epoch_seconds.append(train_seconds)
    if run_dir is not None:
        _save(result, ckpt_path, epoch + 1, step, state)
        write_csv(run_dir / METRICS, result.history)
        write_csv(run_dir / TIMING, [{"epoch": i + 1, "train_seconds": s} for i, s in enumerate(result.epoch_seconds)],
                  columns=("epoch", "train_seconds"))
    reporter.epoch_end(row, train_seconds)
    return step


def _save(result, path, epoch, step, arrays):
    arrays = dict(arrays)
    arrays["history.step_loss"] = np.asarray(result.step_losses, dtype=np.float64)
    from nablab.nn import conv_algorithms

    # The convolution algorithms measured so far: a resumed run takes them back and repeats the same arithmetic.
    meta = {"format": _FORMAT, "epoch": epoch, "step": step, "config": result.config.to_dict(),
            "history": result.history, "epoch_seconds": result.epoch_seconds,
            "conv_algorithms": conv_algorithms.export_choices()}
    save_checkpoint(path, arrays, meta)


def _finish_files(result):
    if result.run_dir is None:
        return
    write_csv(result.run_dir / METRICS, result.history)
    c = result.config
    plot_run(result.history, result.step_losses, result.run_dir,
             title=f"({c.model} on {c.dataset}, {c.optimizer} lr={c.lr:g}, {c.backend})")
