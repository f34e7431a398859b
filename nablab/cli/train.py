"""``nablab train``: train a model on MNIST-1D or CIFAR-10 with nablab or PyTorch.

:func:`nablab.train.train` reports through a :class:`nablab.train.Reporter`; here that
is a Rich bar on a terminal and one plain line per epoch otherwise (a pipe, a log file, CI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from nablab.cli._common import fail
from nablab.train.backends import BACKENDS
from nablab.train.datasets import DATASETS
from nablab.train.loop import Reporter
from nablab.train.models import MODELS
from nablab.train.optimizers import OPTIMIZERS

__all__ = ["train_command"]


class _PlainReporter(Reporter):
    """One line per epoch, for output that is not a terminal."""

    def __init__(self, console):
        self.console = console

    def start(self, config, first_epoch, steps_per_epoch):
        self.total = config.epochs
        if first_epoch:
            self.console.print(f"resuming after epoch {first_epoch}", highlight=False)

    def step(self, epoch, batch, loss):
        pass

    def epoch_end(self, row, seconds):
        self.console.print(_epoch_line(row, self.total, seconds), highlight=False, soft_wrap=True)

    def close(self):
        pass


class _RichReporter(_PlainReporter):
    """A progress bar over the steps of the whole run, with the last loss."""

    def start(self, config, first_epoch, steps_per_epoch):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        super().start(config, first_epoch, steps_per_epoch)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.progress.start()
        total = config.epochs * steps_per_epoch
        self.task = self.progress.add_task(f"epoch {first_epoch + 1}/{config.epochs}", total=total,
                                           completed=first_epoch * steps_per_epoch, loss="-")

    def step(self, epoch, batch, loss):
        self.progress.update(self.task, advance=1, loss=_num(loss), description=f"epoch {epoch}/{self.total}")

    def epoch_end(self, row, seconds):
        self.progress.console.print(_epoch_line(row, self.total, seconds), highlight=False)

    def close(self):
        self.progress.stop()


def _divergence_factor(text: str):
    """``--divergence-factor``: a number, or ``off`` for None."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        fail(f"--divergence-factor must be a number > 1 or 'off', got {text!r}")


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (or by an environment variable), not defaulted."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _num(x):
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.3e}"


def _epoch_line(row, total, seconds):
    return (f"epoch {row['epoch']}/{total}  step {row['step']}  train loss {_num(row['train_loss'])} "
            f"acc {100 * row['train_acc']:.1f}%  test loss {_num(row['test_loss'])} acc {100 * row['test_acc']:.1f}%  "
            f"{seconds:.2f} s")


def train_command(
    ctx: typer.Context,
    dataset: str = typer.Option("mnist1d", "--dataset", help=f"One of: {', '.join(DATASETS)}."),
    model: str = typer.Option("cnn1d", "--model", help=f"One of: {', '.join(MODELS)}."),
    optimizer: str = typer.Option("adam", "--optimizer", help=f"One of: {', '.join(OPTIMIZERS)}."),
    lr: float = typer.Option(1e-2, "--lr", help="Learning rate."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay",
                                                 help="L2 weight decay (default: the optimizer's, 0 except AdamW's 0.01)."),
    epochs: int = typer.Option(10, "--epochs", help="Total epochs (a resumed run counts the finished ones)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and of the batch order."),
    backend: str = typer.Option("nablab", "--backend", help=f"One of: {', '.join(BACKENDS)}."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: metrics.csv, checkpoint.npz, loss.png, ..."),
    batch_size: int = typer.Option(100, "--batch-size", help="Examples per step."),
    data: Optional[str] = typer.Option(None, "--data", help="CIFAR-10 archive or folder (default: the NABLAB_DATA variable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N training and N test examples."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
    hidden: int = typer.Option(100, "--hidden", help="Hidden units of mlp, resmlp and convnet (logistic and cnn1d have no such layer)."),
    divergence_factor: str = typer.Option(
        "1e4", "--divergence-factor",
        help="Stop when a step's loss exceeds this many times the first step's loss (NaN or infinity always "
             "stops); 'off' keeps only the NaN/infinity rule."),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="A TOML file of these settings (batch_size = 50, ...); options given here override it."),
) -> None:
    """Train a classifier; write per-epoch metrics, plots and checkpoints to --out.

    Example: nablab train --dataset mnist1d --model cnn1d --optimizer adam --lr 0.01 --epochs 20 --out runs/cnn

    Models: logistic (softmax classifier), mlp (two-layer), resmlp (the MNIST-1D paper's MLP), convnet (conv-relu-pool-affine-relu-affine), cnn1d (the MNIST-1D paper's CNN).

    With --backend torch the same model, initial weights and batches run in PyTorch.

    Stop a run with Ctrl-C and continue it with --resume: the result is the same as an uninterrupted run.

    A run that diverges (a loss above --divergence-factor times the first step's, or NaN) stops with exit status 1, naming the step; its last checkpoint is kept.

    A --config file sets the same things in TrainConfig's names (model = "mlp", batch_size = 50, divergence_factor = "off"); a relative data path in it is read from the file's folder.
    """
    from nablab.data import DataNotFoundError
    from nablab.train.checkpoint import CheckpointError
    from nablab.train.configfile import ConfigFileError, read_config_file
    from nablab.train.loop import CHECKPOINT, METRICS, TrainConfig, TrainingDiverged, train

    given = dict(dataset=dataset, model=model, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                 epochs=epochs, seed=seed, batch_size=batch_size, backend=backend, dtype=dtype, limit=limit,
                 hidden=hidden, divergence_factor=_divergence_factor(divergence_factor), data=data)
    settings = {}
    if config_file is not None:
        try:
            settings = read_config_file(config_file)
        except ConfigFileError as exc:
            fail(f"--config {exc}")
    # An option typed on the command line wins over the file, which wins over the option's default.
    settings.update({name: value for name, value in given.items() if _typed(ctx, name) or name not in settings})
    config = TrainConfig(**settings)
    try:
        config.validate()
    except ValueError as exc:
        message = str(exc)
        if message.startswith("divergence_factor"):  # say it in the option's words
            message = "--" + message.replace("_", "-", 1).replace("None", "off")
        fail(message)
    backend, model, dataset, optimizer = config.backend, config.model, config.dataset, config.optimizer
    out = Path(out)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder")
    if backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            fail("--backend torch needs PyTorch: pip install torch")
    console = Console()
    reporter = _RichReporter(console) if console.is_terminal else _PlainReporter(console)
    try:
        result = train(config, out, resume=resume, reporter=reporter)
    except DataNotFoundError as exc:
        fail(str(exc))
    except (CheckpointError, FileExistsError) as exc:
        fail(str(exc))
    except TrainingDiverged as exc:
        fail(str(exc), code=1)
    except KeyboardInterrupt:
        saved = Path(out) / CHECKPOINT
        fail("interrupted" + (f"; continue from the last finished epoch with --resume ({saved})"
                               if saved.exists() else " before the first epoch ended (no checkpoint yet)"), code=130)
    except ValueError as exc:
        fail(str(exc))

    final = result.final
    if final is None:
        console.print("no epochs to run", highlight=False)
        return
    table = Table(title=f"{model} on {dataset} ({backend}, {optimizer}, lr={config.lr:g})")
    for col in ("epochs", "steps", "train loss", "train acc", "test loss", "test acc", "s / epoch"):
        table.add_column(col, justify="right")
    per_epoch = sum(result.epoch_seconds) / max(len(result.epoch_seconds), 1)
    table.add_row(str(final["epoch"]), str(final["step"]), _num(final["train_loss"]),
                  f"{100 * final['train_acc']:.2f}%", _num(final["test_loss"]), f"{100 * final['test_acc']:.2f}%",
                  f"{per_epoch:.2f}")
    console.print(table)
    console.print(f"metrics: {Path(out) / METRICS}  checkpoint: {Path(out) / CHECKPOINT}  "
                  f"plots: {Path(out) / 'loss.png'}, {Path(out) / 'accuracy.png'}", highlight=False, soft_wrap=True)
