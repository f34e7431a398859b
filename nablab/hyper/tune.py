"""Gradient-based learning-rate search for a whole training run.

Each meta-step trains from the same start for ``steps`` steps, takes the
hypergradient of the final (validation) loss with respect to the learning
rate, and moves the learning rate with Adam, in log space by default so it
stays positive and moves by ratios.

>>> import numpy as np, nablab as nb
>>> from nablab.hyper import tune_lr
>>> X = np.random.default_rng(0).standard_normal((20, 5)); t = X @ np.ones(5)
>>> result = tune_lr(lambda w: nb.mean((X @ w - t) ** 2), np.zeros(5), lr=1e-3, steps=10, meta_steps=40,
...                  meta_lr=0.2, progress=False)
>>> bool(result.history[-1]["loss"] < 0.1 * result.history[0]["loss"])
True
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from nablab.hyper.unrolled import lr_hypergradient
from nablab.optim import adam


@dataclass
class TuneResult:
    lr: float
    history: list = field(default_factory=list)  # one dict per meta-step: lr, loss, d_lr, seconds
    seconds: float = 0.0


def tune_lr(loss_fn, w0, lr, steps, *, meta_steps=20, meta_lr=0.1, optimizer=None, momentum=None, val_loss=None,
            batches=None, mode="forward", log_space=True, progress=True):
    """Tune ``lr`` by hypergradient descent on the loss after ``steps`` training steps.

    ``mode`` is any mode of :func:`lr_hypergradient` ("forward" keeps memory
    flat in ``steps``).  ``progress`` shows a Rich progress bar on a terminal;
    pass a callable to receive each history entry instead.
    """
    if lr <= 0 and log_space:
        raise ValueError(f"tune_lr: lr={lr} must be positive to search in log space")
    u = np.float64(np.log(lr) if log_space else lr)
    meta = adam(meta_lr)
    state = meta.init(u)
    result = TuneResult(lr=float(lr))
    start = time.perf_counter()
    bar = _progress_bar(meta_steps) if progress is True else None
    try:
        for k in range(meta_steps):
            current = float(np.exp(u) if log_space else u)
            t0 = time.perf_counter()
            loss, d_lr = lr_hypergradient(loss_fn, w0, current, steps, optimizer=optimizer, momentum=momentum,
                                          mode=mode, val_loss=val_loss, batches=batches)
            loss, d_lr = float(loss), float(d_lr)
            entry = {"step": k, "lr": current, "loss": loss, "d_lr": d_lr, "seconds": time.perf_counter() - t0}
            result.history.append(entry)
            if callable(progress):
                progress(entry)
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=f"lr {current:.3g}  loss {loss:.4g}")
            if not np.isfinite(loss) or not np.isfinite(d_lr):
                raise FloatingPointError(f"tune_lr: meta-step {k}: the run at lr={current:.4g} diverged "
                                         f"(loss {loss}); start from a smaller lr")
            g = d_lr * current if log_space else d_lr
            updates, state = meta.update(np.float64(g), state, u)
            u = u + updates
    finally:
        if bar is not None:
            bar[0].stop()
    best = min(result.history, key=lambda e: e["loss"]) if result.history else None
    result.lr = best["lr"] if best else float(lr)
    result.seconds = time.perf_counter() - start
    return result


def _progress_bar(total):
    if not sys.stdout.isatty():
        return None
    try:
        from rich.progress import Progress
    except ImportError:
        return None
    bar = Progress()
    task = bar.add_task("tuning lr", total=total)
    bar.start()
    return bar, task
