"""The one optimisation loop of nablab, which every other loop is a layer over.

:func:`run` takes an optimizer, a start and a gradient function ``grad_fn(params, t)``
(``t`` the step index, so minibatches, sampled indices or schedules can depend on it)
and runs ``steps`` steps. What it adds to a bare ``for`` loop is what the loops of
nablab used to write each in its own way:

- divergence, one rule: a loss, gradient or parameter that turns NaN or infinite
  stops the run at that step, raising :class:`~nablab.errors.DivergenceError`
  (``on_divergence="raise"``), or ends it with ``Run.diverged_at`` set
  (``"record"``), or is not looked for (``"ignore"``: no checks at all, which is
  what a differentiated run wants); ``limit(t, loss)`` adds a rule of the caller's
  (``nablab.train``'s ``divergence_factor``);
- ``observe(t, params)``: sees the start (``t = start``) and the parameters after
  every step (``t + 1``), as a plot or a running statistic needs them;
- ``start`` and ``state``: a run continued from a saved step is the same run.

The loop is written on the plain values it checks and on nablab operations, so
it can itself be differentiated, in reverse or forward mode: hypergradients
(:mod:`nablab.hyper`) are derivatives through it.

:func:`iterate` is the same loop around any step, for training whose step is not
a pure update (an imperative model and optimizer, a PyTorch replica), and
:func:`minimize` is :func:`run` with gradients by ``nablab.value_and_grad``.

>>> import numpy as np, nablab as nb
>>> from nablab import optim
>>> grad_fn = lambda w, t: 2 * (w - 3.0)
>>> optim.run(optim.sgd(lr=0.1), np.zeros(2), grad_fn, steps=100).params.round(6)
array([3., 3.])
>>> final = lambda lr: nb.sum(optim.run(optim.sgd(lr), np.zeros(2), grad_fn, 5, on_divergence="ignore").params)
>>> float(nb.grad(final)(0.1)) == float(nb.jvp(final, (0.1,), (1.0,))[1])   # reverse = forward mode
True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from nablab.autodiff.core import value_of
from nablab.autodiff.transforms import value_and_grad
from nablab.autodiff.tree import tree_leaves, tree_map
from nablab.checks import check_count
from nablab.errors import DivergenceError
from nablab.optim.base import Optimizer, apply_updates

__all__ = ["run", "iterate", "Run", "Step", "ON_DIVERGENCE", "minimize", "sample_indices", "DivergenceError"]

#: What a diverging run does: raise DivergenceError, stop and record the step, or not look.
ON_DIVERGENCE = ("raise", "record", "ignore")


@dataclass
class Run:
    """What :func:`run` returns: the final parameters and optimizer state, the losses
    (when the steps report them), the trajectory (when kept) and the step that diverged.

    >>> import numpy as np
    >>> from nablab import optim
    >>> r = optim.minimize(lambda w: (w - 1.0) ** 2, 0.0, optim.sgd(0.25), steps=3, keep_trajectory=True)
    >>> float(r.params), r.losses, [float(w) for w in r.trajectory], r.diverged_at
    (0.875, [1.0, 0.25, 0.0625], [0.0, 0.5, 0.75, 0.875], None)
    """

    params: object
    losses: list = field(default_factory=list)
    trajectory: list = field(default_factory=list)
    diverged_at: int | None = None
    state: object = None


class Step(NamedTuple):
    """What one step returns to :func:`iterate`: the new parameters and state, the loss
    it measured (or None) and, if it found one, what stopped being finite.

    >>> import numpy as np
    >>> from nablab import optim
    >>> def step(w, state, t):
    ...     return optim.Step(w - 0.5 * 2 * w, state, loss=float(w @ w))
    >>> r = optim.iterate(step, np.array([1.0, 1.0]), 2)
    >>> r.params, r.losses
    (array([0., 0.]), [2.0, 0.0])
    """

    params: Any
    state: Any
    loss: Any = None
    problem: str | None = None


def _all_finite(tree) -> bool:
    return all(np.all(np.isfinite(value_of(x))) for x in tree_leaves(tree))


def _snapshot(params):
    return tree_map(lambda x: np.array(value_of(x), copy=True), params)


def gradient_step(opt, grad_fn: Callable, *, has_loss: bool = False, check: bool = True) -> Callable:
    """The step of :func:`run`: ``grad_fn(params, t)``, then ``opt.update``, checked before and after.

    A non-finite loss or gradient leaves the parameters as they were (nothing
    sensible can be applied); a parameter that turns non-finite is reported
    with the new parameters.
    """
    def step(params, state, t):
        out = grad_fn(params, t)
        loss, grads = out if has_loss else (None, out)
        if check:
            if loss is not None and not np.all(np.isfinite(value_of(loss))):
                return Step(params, state, loss, "the loss")
            if not _all_finite(grads):
                return Step(params, state, loss, "the gradient")
        updates, state = opt.update(grads, state, params)
        params = apply_updates(params, updates)
        if check and not _all_finite(params):
            return Step(params, state, loss, "a parameter")
        return Step(params, state, loss)

    return step


def run(opt, params, grad_fn: Callable, steps: int, *, state=None, start: int = 0, has_loss: bool = False,
        observe: Callable | None = None, on_divergence: str = "raise", limit: Callable | None = None,
        keep_trajectory: bool = False) -> Run:
    """``steps`` steps of the optimizer ``opt`` (a :mod:`nablab.optim` pair) from ``params``.

    ``grad_fn(params, t)`` returns the gradients at step ``t`` (``start``,
    ``start + 1``, ...), or ``(loss, gradients)`` with ``has_loss=True``; the
    losses are then kept in ``Run.losses``. ``state`` continues an optimizer
    state (default: ``opt.init(params)``). ``observe``, ``on_divergence``,
    ``limit`` and ``keep_trajectory`` are those of :func:`iterate`.

    >>> import numpy as np
    >>> from nablab import optim
    >>> seen = []
    >>> r = optim.run(optim.sgd(lr=0.5), np.array([4.0]), lambda w, t: w, 3,
    ...               observe=lambda t, w: seen.append(float(w[0])))
    >>> seen
    [4.0, 2.0, 1.0, 0.5]
    >>> optim.run(optim.sgd(lr=1.0), np.array([1.0]), lambda w, t: 1e300 * w, 5)
    Traceback (most recent call last):
    nablab.errors.DivergenceError: step 1: the gradient is no longer finite; the run diverged (a smaller learning rate usually helps)
    """
    _check_policy(on_divergence, "run")
    state = opt.init(params) if state is None else state
    step = gradient_step(opt, grad_fn, has_loss=has_loss, check=on_divergence != "ignore")
    return iterate(step, params, steps, state=state, start=start, observe=observe, on_divergence=on_divergence,
                   limit=limit, keep_trajectory=keep_trajectory)


def iterate(step: Callable, params, steps: int, *, state=None, start: int = 0, observe: Callable | None = None,
            on_divergence: str = "raise", limit: Callable | None = None, keep_trajectory: bool = False) -> Run:
    """The loop: ``step(params, state, t)`` for ``t`` in ``start .. start + steps - 1``; returns a :class:`Run`.

    ``step`` returns a :class:`Step`. Unless ``on_divergence="ignore"``, a step
    diverges when its loss is NaN or infinite, when it reports a ``problem``, or
    when ``limit(t, loss)`` answers with a reason (a string completing "the loss
    is ..."): the loop then raises :class:`~nablab.errors.DivergenceError` naming
    ``t`` (``"raise"``), or stops and sets ``Run.diverged_at = t`` (``"record"``;
    the parameters are those the step left). The loss of that step is recorded
    first. ``observe(t, params)`` sees the start and the parameters of each step
    that did not diverge; ``keep_trajectory`` keeps copies of them (and of the
    parameters a diverging step left) in ``Run.trajectory``.

    >>> from nablab.optim import Step, iterate
    >>> halve = lambda w, state, t: Step(w / 2, state, loss=w)
    >>> iterate(halve, 8.0, 3).losses
    [8.0, 4.0, 2.0]
    >>> iterate(halve, 8.0, 3, limit=lambda t, loss: "below 3" if loss < 3 else None)
    Traceback (most recent call last):
    nablab.errors.DivergenceError: step 2: the loss is below 3; the run diverged (a smaller learning rate usually helps)
    """
    _check_policy(on_divergence, "iterate")
    steps = check_count("steps", steps, who="iterate")
    start = check_count("start", start, who="iterate")
    checking = on_divergence != "ignore"
    result = Run(params=params)
    # Overflow on the way to divergence is expected when checking: it is reported by step below.
    quiet = np.errstate(over="ignore", invalid="ignore") if checking else contextlib.nullcontext()
    with quiet:
        if keep_trajectory:
            result.trajectory.append(_snapshot(params))
        if observe is not None:
            observe(start, params)
        for t in range(start, start + steps):
            params, state, loss, problem = step(params, state, t)
            why, value = "", None
            if loss is not None:
                value = float(value_of(loss))
                result.losses.append(value)
            if checking and problem is None and loss is not None:
                if not np.isfinite(value):
                    problem = "the loss"
                elif limit is not None and (reason := limit(t, value)):
                    problem, why = "the loss", reason
            if checking and problem is not None:
                if on_divergence == "raise":
                    raise DivergenceError(t, problem, why, value)
                result.diverged_at = t
                if keep_trajectory:
                    result.trajectory.append(_snapshot(params))
                break
            if keep_trajectory:
                result.trajectory.append(_snapshot(params))
            if observe is not None:
                observe(t + 1, params)
    result.params, result.state = params, state
    return result


def _check_policy(on_divergence, who):
    if on_divergence not in ON_DIVERGENCE:
        raise ValueError(f"{who}: on_divergence={on_divergence!r}; use one of {', '.join(map(repr, ON_DIVERGENCE))}")


# -- layers over run -----------------------------------------------------------------


def sample_indices(n, steps, p=None, seed=0):
    """``steps`` indices in ``range(n)``, uniform or with probabilities ``p``, from a seeded generator.

    >>> from nablab import optim
    >>> optim.sample_indices(5, 6, seed=0)
    array([4, 3, 2, 1, 1, 0])
    >>> optim.sample_indices(3, 4, p=[0.0, 0.0, 1.0])
    array([2, 2, 2, 2])
    """
    if p is not None:
        p = np.asarray(p, dtype=float)
        if p.shape != (n,):
            raise ValueError(f"sample_indices: p has shape {p.shape}, expected ({n},)")
        if np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(f"sample_indices: p must be non-negative and sum to 1 (sum is {p.sum():.6g})")
    return np.random.default_rng(seed).choice(n, size=steps, p=p)


def minimize(loss_fn, params, opt: Optimizer, steps, *, batches=None, on_divergence="raise",
             keep_trajectory=False, state=None) -> Run:
    """Run ``steps`` optimizer steps on ``loss_fn(params[, batch])``; the losses are in ``Run.losses``.

    ``batches`` (optional) yields one argument per step for ``loss_fn`` (for
    example a sampled index). Divergence is handled as in :func:`nablab.optim.run`:
    a loss, gradient or parameter that turns NaN or infinite raises
    :class:`~nablab.errors.DivergenceError` naming the step, or with
    ``on_divergence="record"`` ends the run and sets ``diverged_at``. The loop
    may itself be differentiated (a learning rate given as a traced value).

    ``params`` is the start (an array or a tree), ``opt`` the optimizer; ``keep_trajectory`` keeps
    the parameters after each step and ``state`` continues an optimizer state.

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> r = optim.minimize(lambda w: nb.sum((w - 3.0) ** 2), np.zeros(2), optim.adam(0.5), steps=100)
    >>> r.params.round(3), len(r.losses)
    (array([2.986, 2.986]), 100)
    >>> blown = optim.minimize(lambda w: w ** 2, 1.0, optim.sgd(2.0), 1000, on_divergence="record")
    >>> blown.diverged_at
    324
    """
    vg = value_and_grad(loss_fn)
    if batches is None:
        def grad_fn(w, t):
            return vg(w)
    else:
        batch_iter = iter(batches)

        def grad_fn(w, t):
            return vg(w, next(batch_iter))

    return run(opt, params, grad_fn, steps, state=state, has_loss=True, on_divergence=on_divergence,
               keep_trajectory=keep_trajectory)
