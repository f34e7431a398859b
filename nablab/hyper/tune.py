"""Gradient-based learning-rate search for a whole training run.

Each meta-step trains from the same start for ``steps`` steps, takes the
hypergradient of the final (validation) loss with respect to the learning
rate, and moves the learning rate with Adam, in log space by default so it
stays positive and moves by ratios.

>>> import numpy as np, nablab as nb
>>> from nablab.hyper import tune_lr
>>> X = np.random.default_rng(0).standard_normal((20, 5)); t = X @ np.ones(5)
>>> seen = []
>>> result = tune_lr(lambda w: nb.mean((X @ w - t) ** 2), np.zeros(5), lr=1e-3, steps=10, meta_steps=40,
...                  meta_lr=0.2, progress=seen.append)
>>> bool(result.history[-1]["loss"] < 0.1 * result.history[0]["loss"]), len(seen), sorted(seen[0])
(True, 40, ['d_lr', 'loss', 'lr', 'seconds', 'step'])

It draws nothing itself: ``progress`` receives each meta-step, and a front end
(a command line, a notebook) shows it as it likes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nablab.checks import check_lr
from nablab.errors import DivergenceError
from nablab.hyper.unrolled import lr_hypergradient
from nablab.optim import adam


@dataclass
class TuneResult:
    """What :func:`tune_lr` returns: the tuned ``lr``, one ``history`` entry per meta-step (``step``,
    ``lr``, ``loss``, ``d_lr``, ``seconds``) and the total ``seconds``.

    >>> import numpy as np, nablab as nb
    >>> from nablab.hyper import tune_lr
    >>> r = tune_lr(lambda w: nb.sum(w ** 2), np.ones(2), lr=0.01, steps=3, meta_steps=2)
    >>> sorted(r.history[0]), len(r.history)
    (['d_lr', 'loss', 'lr', 'seconds', 'step'], 2)
    """
    lr: float
    history: list = field(default_factory=list)  # one dict per meta-step: lr, loss, d_lr, seconds
    seconds: float = 0.0


def tune_lr(loss_fn, w0, lr, steps, *, meta_steps=20, meta_lr=0.1, optimizer=None, momentum=None, val_loss=None,
            batches=None, mode="forward", log_space=True, progress=None):
    """Tune ``lr`` by hypergradient descent on the loss after ``steps`` training steps.

    ``mode`` is any mode of :func:`lr_hypergradient` ("forward" keeps memory
    flat in ``steps``). ``progress``, a function, receives each history entry
    as it is made (``None`` or ``False``: nothing is reported).

    ``loss_fn``, ``w0``, ``steps``, ``optimizer``, ``momentum``, ``val_loss`` and ``batches`` are those
    of :func:`lr_hypergradient`; ``lr`` is the first guess, improved over ``meta_steps`` steps of Adam
    at ``meta_lr`` (on ``log lr`` with ``log_space``, so the rate stays positive).

    >>> import numpy as np, nablab as nb
    >>> from nablab.hyper import tune_lr
    >>> r = tune_lr(lambda w: nb.sum((w - 1.0) ** 2), np.zeros(2), lr=0.01, steps=5, meta_steps=30)
    >>> bool(r.lr > 0.1), len(r.history)
    (True, 30)
    """
    check_lr(lr, who="tune_lr")
    if log_space and lr == 0:
        raise ValueError("tune_lr: lr=0 cannot start a search in log space (it needs lr > 0); "
                         "start from a small positive lr, or pass log_space=False")
    if progress is not None and progress is not False and not callable(progress):
        raise TypeError(f"tune_lr: progress must be a function of one history entry (or None), got {progress!r}")
    u = np.float64(np.log(lr) if log_space else lr)
    meta = adam(meta_lr)
    state = meta.init(u)
    result = TuneResult(lr=float(lr))
    start = time.perf_counter()
    for k in range(meta_steps):
        current = float(np.exp(u) if log_space else u)
        t0 = time.perf_counter()
        loss, d_lr = lr_hypergradient(loss_fn, w0, current, steps, optimizer=optimizer, momentum=momentum,
                                      mode=mode, val_loss=val_loss, batches=batches)
        loss, d_lr = float(loss), float(d_lr)
        entry = {"step": k, "lr": current, "loss": loss, "d_lr": d_lr, "seconds": time.perf_counter() - t0}
        result.history.append(entry)
        if progress:
            progress(entry)
        if not np.isfinite(loss) or not np.isfinite(d_lr):
            raise DivergenceError(k, f"the loss after training at lr={current:.4g}", value=loss,
                                  message=f"tune_lr: meta-step {k}: the run at lr={current:.4g} diverged "
                                          f"(loss {loss}); start from a smaller lr")
        g = d_lr * current if log_space else d_lr
        updates, state = meta.update(np.float64(g), state, u)
        u = u + updates
    best = min(result.history, key=lambda e: e["loss"]) if result.history else None
    result.lr = best["lr"] if best else float(lr)
    result.seconds = time.perf_counter() - start
    return result

