"""Running an optimizer: full-batch or on a finite sum with seeded (non-)uniform sampling.

>>> import numpy as np, nablab as nb
>>> from nablab import optim
>>> run = optim.minimize(lambda w: nb.sum((w - 3.0) ** 2), np.zeros(2), optim.sgd(lr=0.1), steps=100)
>>> np.round(run.params, 6)
array([3., 3.])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nablab.autodiff.core import value_of
from nablab.autodiff.transforms import value_and_grad
from nablab.autodiff.tree import tree_leaves, tree_map
from nablab.optim.base import Optimizer, apply_updates


class DivergenceError(FloatingPointError):
    """A loss or a parameter stopped being finite; ``step`` says when."""

    def __init__(self, step, what):
        self.step = step
        super().__init__(f"step {step}: {what} is no longer finite; the run diverged "
                         "(a smaller learning rate usually helps)")


@dataclass
class Run:
    """What :func:`minimize` returns: final parameters, per-step losses, optional trajectory."""

    params: object
    losses: list = field(default_factory=list)
    trajectory: list = field(default_factory=list)
    diverged_at: int | None = None
    state: object = None


def _all_finite(tree):
    return all(np.all(np.isfinite(value_of(x))) for x in tree_leaves(tree))


def _snapshot(params):
    return tree_map(lambda x: np.array(value_of(x), copy=True), params)


def sample_indices(n, steps, p=None, seed=0):
    """``steps`` indices in ``range(n)``, uniform or with probabilities ``p``, from a seeded generator."""
    if p is not None:
        p = np.asarray(p, dtype=float)
        if p.shape != (n,):
            raise ValueError(f"sample_indices: p has shape {p.shape}, expected ({n},)")
        if np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(f"sample_indices: p must be non-negative and sum to 1 (sum is {p.sum():.6g})")
    return np.random.default_rng(seed).choice(n, size=steps, p=p)


def minimize(loss_fn, params, opt: Optimizer, steps, *, batches=None, on_divergence="raise",
             keep_trajectory=False, state=None):
    """Run ``steps`` optimizer steps on ``loss_fn(params[, batch])``.

    ``batches`` (optional) yields one argument per step for ``loss_fn`` (for
    example a sampled index).  A loss or parameter that turns NaN or infinite
    raises :class:`DivergenceError` naming the step, or with
    ``on_divergence="record"`` ends the run and sets ``diverged_at``.
    The loop is written with nablab operations, so it may itself be
    differentiated (a learning rate given as a traced value).
    """
    if on_divergence not in ("raise", "record"):
        raise ValueError(f"minimize: on_divergence={on_divergence!r}; use 'raise' or 'record'")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"minimize: steps must be a non-negative integer, got {steps!r}")
    state = opt.init(params) if state is None else state
    batch_iter = iter(batches) if batches is not None else None
    vg = value_and_grad(loss_fn)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected below, by step
        return _run_steps(vg, params, opt, state, steps, batch_iter, on_divergence, keep_trajectory)


def _run_steps(vg, params, opt, state, steps, batch_iter, on_divergence, keep_trajectory):
    run = Run(params=params)
    for step in range(steps):
        if keep_trajectory:
            run.trajectory.append(_snapshot(params))
        args = (params,) if batch_iter is None else (params, next(batch_iter))
        loss, grads = vg(*args)
        problem = None
        if not np.all(np.isfinite(value_of(loss))):
            problem = "the loss"
        elif not _all_finite(grads):
            problem = "the gradient"
        if problem is None:
            updates, state = opt.update(grads, state, params)
            params = apply_updates(params, updates)
            if not _all_finite(params):
                problem = "a parameter"
        run.losses.append(float(value_of(loss)))
        if problem is not None:
            if on_divergence == "raise":
                raise DivergenceError(step, problem)
            run.diverged_at = step
            break
    if keep_trajectory:
        run.trajectory.append(_snapshot(params))
    run.params, run.state = params, state
    return run
