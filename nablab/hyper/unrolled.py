"""Hypergradients through unrolled training: reverse (optionally checkpointed), forward,
reversible, finite differences.

The training run is :func:`nablab.optim.run`, written with nablab operations, so
differentiating its final (validation) loss with respect to a hyperparameter is
one more transform on top. One table, :data:`MODES`, maps each mode to its
implementation:

- ``"reverse"``: backpropagation through every step; memory grows with the
  number of steps, since every step's graph is kept; with ``checkpoint_every=k``
  each k steps are one :func:`nablab.checkpoint`, so only every k-th training
  state is kept and each segment is recomputed once on the way back: memory
  O(steps / k + k) for one more forward pass;
- ``"forward"``: the tangent d(state)/d(hyperparameter) is carried along the
  steps; memory does not depend on the number of steps, but each scalar entry
  differentiated costs one more pass;
- ``"reversible"``: SGD with momentum run backwards exactly (:mod:`nablab.hyper.reversible`);
- ``"finite-difference"``: central differences, the independent check: two
  trainings per scalar entry differentiated.

``wrt`` names what to differentiate (hyperparameters and ``"w0"``): the
forward and finite-difference modes then pay only for those entries.

>>> import numpy as np, nablab as nb
>>> from nablab.hyper import lr_hypergradient
>>> loss = lambda w: nb.sum((w - 1.0) ** 2)
>>> value, d = lr_hypergradient(loss, np.zeros(3), lr=0.1, steps=5)
>>> bool(np.isclose(d, lr_hypergradient(loss, np.zeros(3), lr=0.1, steps=5, mode="forward")[1], rtol=1e-12))
True
"""

from __future__ import annotations

import functools

import numpy as np

from nablab.autodiff.custom import checkpoint
from nablab.autodiff.transforms import grad, jvp, value_and_grad
from nablab.autodiff.tree import tree_flatten, tree_unflatten
from nablab.checks import check_count, check_lr
from nablab.optim import heavy_ball, sgd
from nablab.optim import run as run_optimizer

__all__ = ["Unrolled", "hypergradient", "lr_hypergradient", "reversible_optimizer", "MODES"]


def reversible_optimizer(hyper):
    """Heavy-ball momentum from ``hyper["lr"]`` and ``hyper["momentum"]``: the optimizer
    ``mode="reversible"`` can run backwards (give it as ``make_optimizer``).

    >>> import numpy as np
    >>> from nablab.hyper import reversible_optimizer
    >>> opt = reversible_optimizer({"lr": 0.1, "momentum": 0.9})
    >>> opt.update(np.array([1.0]), opt.init(np.zeros(1)), np.zeros(1))[0]
    array([-0.1])
    """
    return heavy_ball(hyper["lr"], hyper["momentum"])


def _optimizer_factory(optimizer, momentum):
    if optimizer is not None and momentum is not None:
        raise ValueError("give either optimizer= (a function lr -> optimizer) or momentum=, not both")
    if optimizer is None:
        if momentum is None:
            return lambda h: sgd(h["lr"])
        return lambda h: heavy_ball(h["lr"], h.get("momentum", momentum))
    if not callable(optimizer):
        raise TypeError(f"optimizer must be a function lr -> nablab.optim optimizer, got {type(optimizer).__name__}")
    return lambda h: optimizer(h["lr"])


class Unrolled:
    """A training run as a function of its hyperparameters and initial weights.

    ``loss_fn(w[, batch])`` is the training loss; ``make_optimizer(hyper)``
    builds the optimizer from a dict of (possibly traced) hyperparameters;
    ``val_loss(w)`` is what is differentiated at the end (the training loss
    ``loss_fn(w)`` when no batches are given). The steps are :func:`nablab.optim.run`'s,
    unchecked (``on_divergence="ignore"``): a diverging run gives an infinite loss,
    which is a value like any other here.

    >>> import numpy as np, nablab as nb
    >>> from nablab.optim import sgd
    >>> run = Unrolled(lambda w: nb.sum(w ** 2), 3, lambda h: sgd(h["lr"]))
    >>> run.final_loss({"lr": 0.25}, np.array([2.0]))     # w halves each step: 2 -> 0.25
    np.float64(0.0625)
    """

    def __init__(self, loss_fn, steps, make_optimizer, val_loss=None, batches=None):
        steps = check_count("steps", steps)
        if batches is not None and len(batches) < steps:
            raise ValueError(f"{len(batches)} batches for {steps} steps")
        if batches is not None and val_loss is None:
            raise ValueError("with minibatches, give val_loss(w): the loss measured after training")
        self.loss_fn, self.steps, self.make_optimizer = loss_fn, steps, make_optimizer
        self.val_loss = val_loss if val_loss is not None else loss_fn
        self.batches = batches
        self._grad = grad(loss_fn)

    def gradient(self, w, t):
        """The training gradient at step ``t`` (on batch ``t`` when there are batches)."""
        return self._grad(w) if self.batches is None else self._grad(w, self.batches[t])

    def run(self, hyper, w0, start=0, stop=None, state=None):
        """``(w, state)`` after steps ``start .. stop - 1`` from ``w0`` (and ``state``, if given)."""
        stop = self.steps if stop is None else stop
        done = run_optimizer(self.make_optimizer(hyper), w0, self.gradient, max(0, stop - start), start=start,
                             state=state, on_divergence="ignore")
        return done.params, done.state

    def step(self, opt, t, w, state):
        """One step ``t`` of ``opt`` from ``(w, state)``."""
        done = run_optimizer(opt, w, self.gradient, 1, start=t, state=state, on_divergence="ignore")
        return done.params, done.state

    def final_loss(self, hyper, w0):
        return self.val_loss(self.run(hyper, w0)[0])


# -- the modes ---------------------------------------------------------------------


def _reverse(run, hyper, w0, wrt, options):
    every = options.get("checkpoint_every")
    if every is not None:
        every = int(every)
        if every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {every}")
        return _gradients(_checkpointed_loss(run, hyper, every), hyper, w0, wrt)
    return _gradients(lambda chosen, w: run.final_loss({**hyper, **chosen}, w), hyper, w0, wrt)


def _gradients(final, hyper, w0, wrt):
    """``final(chosen, w0)`` and its gradient, by reverse mode, for what ``wrt`` names."""
    names = [k for k in wrt if k != "w0"]
    chosen = {k: hyper[k] for k in names}
    if "w0" not in wrt:
        value, g_hyper = value_and_grad(final)(chosen, w0)
        return value, dict(g_hyper)
    if not names:
        value, g_w0 = value_and_grad(final, argnums=1)(chosen, w0)
        return value, {"w0": g_w0}
    value, (g_hyper, g_w0) = value_and_grad(final, argnums=(0, 1))(chosen, w0)
    return value, {**g_hyper, "w0": g_w0}


def _chosen_leaves(hyper, w0, wrt):
    """The arrays to differentiate, in order, and a function rebuilding ``(hyper, w0)`` from them."""
    names = [k for k in wrt if k != "w0"]
    w_leaves, w_spec = tree_flatten(w0) if "w0" in wrt else ([], None)
    leaves = [hyper[k] for k in names] + list(w_leaves)

    def rebuild(xs):
        h = {**hyper, **dict(zip(names, xs[:len(names)]))}
        return h, (tree_unflatten(w_spec, list(xs[len(names):])) if w_spec is not None else w0)

    def regroup(results):
        grads = dict(zip(names, results[:len(names)]))
        if w_spec is not None:
            grads["w0"] = tree_unflatten(w_spec, results[len(names):])
        return grads

    return leaves, rebuild, regroup


def _forward(run, hyper, w0, wrt, options):
    """One JVP per scalar entry of what ``wrt`` names: exact, memory independent of the steps."""
    leaves, rebuild, regroup = _chosen_leaves(hyper, w0, wrt)

    def final(*xs):
        return run.final_loss(*rebuild(xs))

    value, results = None, []
    for i, leaf in enumerate(leaves):
        arr = np.asarray(leaf, dtype=float)
        out = np.zeros(arr.shape)
        for j in range(arr.size):
            tangents = [np.zeros(np.shape(x)) for x in leaves]
            tangents[i].reshape(-1)[j] = 1.0
            value, d = jvp(final, tuple(leaves), tuple(tangents))
            out.reshape(-1)[j] = float(d)
        results.append(out if arr.ndim else np.float64(out))
    if value is None:
        value = run.final_loss(hyper, w0)
    return value, regroup(results)


def _finite_differences(run, hyper, w0, wrt, options):
    """Central differences: two trainings per scalar entry of what ``wrt`` names, plus one for the value."""
    eps = options["eps"]
    leaves, rebuild, regroup = _chosen_leaves(hyper, w0, wrt)
    value = run.final_loss(hyper, w0)
    results = []
    for i, leaf in enumerate(leaves):
        arr = np.asarray(leaf, dtype=float)
        g = np.zeros(arr.shape)
        for j in range(arr.size):
            shifted = []
            for sign in (1, -1):
                xs = [np.array(x, dtype=float, copy=True) for x in leaves]
                xs[i].reshape(-1)[j] += sign * eps
                shifted.append(run.final_loss(*rebuild(xs)))
            g.reshape(-1)[j] = (shifted[0] - shifted[1]) / (2 * eps)
        results.append(g if arr.ndim else np.float64(g))
    return value, regroup(results)


def _reversible(run, hyper, w0, wrt, options):
    from nablab.hyper.reversible import reversible_hypergradient

    if run.make_optimizer is not reversible_optimizer or set(hyper) != {"lr", "momentum"}:
        raise ValueError("mode='reversible' runs SGD with momentum: give momentum= in (0, 1) and no optimizer "
                         "(or hyper={'lr', 'momentum'} with make_optimizer=nablab.hyper.reversible_optimizer)")
    r = reversible_hypergradient(run.loss_fn, w0, float(hyper["lr"]), float(hyper["momentum"]), run.steps,
                                 val_loss=run.val_loss, batches=run.batches, radix_bits=options["radix_bits"],
                                 max_denominator=options["max_denominator"])
    grads = {"lr": r.d_lr, "momentum": r.d_momentum, "w0": r.d_w0}
    return r.loss, {k: grads[k] for k in wrt}


#: Mode -> implementation ``(run, hyper, w0, wrt, options) -> (loss, grads)``; the one place modes are listed.
_IMPLEMENTATIONS = {"reverse": _reverse, "forward": _forward, "reversible": _reversible,
                    "finite-difference": _finite_differences}
MODES = tuple(_IMPLEMENTATIONS)


def _implementation(mode, who):
    if mode not in _IMPLEMENTATIONS:
        raise ValueError(f"{who}: mode={mode!r}; choose one of {MODES}")
    return _IMPLEMENTATIONS[mode]


def _wrt_names(wrt, hyper, who):
    names = list(hyper) + ["w0"]
    if wrt is None:
        return tuple(names)
    asked = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    unknown = [k for k in asked if k not in names]
    if unknown or not asked:
        raise ValueError(f"{who}: wrt={wrt!r} names {'nothing' if not asked else repr(unknown[0])}; "
                         f"choose from {', '.join(map(repr, names))}")
    return tuple(k for k in names if k in asked)  # the order of hyper, then w0


def hypergradient(loss_fn, w0, hyper, steps, make_optimizer, *, val_loss=None, batches=None, mode="reverse",
                  wrt=None, checkpoint_every=None, eps=1e-6, radix_bits=40, max_denominator=1000):
    """Final loss and its gradient with respect to the hyperparameters in ``hyper`` and ``w0``.

    ``hyper`` is a dict of numbers or arrays (a per-step learning-rate
    schedule is an array indexed by the step count); ``make_optimizer(hyper)``
    returns a :mod:`nablab.optim` optimizer. ``wrt`` names what to
    differentiate (a name, or several, among ``hyper``'s keys and ``"w0"``;
    default: all). Returns ``(loss, grads)`` with one entry of ``grads`` per name.
    ``checkpoint_every`` is reverse mode's, ``eps`` finite differences', and
    ``radix_bits`` and ``max_denominator`` reversible mode's (see
    :func:`~nablab.hyper.reversible.reversible_hypergradient`).

    >>> import numpy as np, nablab as nb
    >>> from nablab import optim
    >>> loss = lambda w: nb.sum((w - 1.0) ** 2)
    >>> trainings = []
    >>> val = lambda w: trainings.append(1) or loss(w)
    >>> _, g = hypergradient(loss, np.zeros(50), {"lr": 0.1}, 5, lambda h: optim.sgd(h["lr"]), val_loss=val,
    ...                      mode="finite-difference", wrt="lr")
    >>> sorted(g), len(trainings)      # the value and two trainings for lr, none for the 50 entries of w0
    (['lr'], 3)
    """
    implementation = _implementation(mode, "hypergradient")
    run = Unrolled(loss_fn, steps, make_optimizer, val_loss, batches)
    hyper = {k: (np.float64(v) if isinstance(v, (int, float)) else np.asarray(v, dtype=float))
             for k, v in hyper.items()}
    w0 = np.asarray(w0, dtype=float) if not isinstance(w0, (dict, list, tuple)) else w0
    names = _wrt_names(wrt, hyper, "hypergradient")
    options = {"checkpoint_every": checkpoint_every, "eps": eps, "radix_bits": radix_bits,
               "max_denominator": max_denominator}
    return implementation(run, hyper, w0, names, options)


def _segment(run, start, stop, hyper, carry):
    """Steps ``start .. stop - 1`` from ``carry = (w, state)``: one checkpointed segment."""
    w, state = carry
    return run.run(hyper, w, start, stop, state)


def _checkpointed_loss(run, hyper, every):
    """The final loss as a function of ``(chosen, w0)``, each ``every`` steps one :func:`nablab.checkpoint`.

    The backward pass then keeps only the training state at the start of each
    segment (and the hyperparameters) and runs each segment again, recording it,
    when its turn comes: memory O(steps / every + every) for one more forward pass.
    """

    def final(chosen, w0):
        h = {**hyper, **chosen}
        carry = (w0, run.make_optimizer(h).init(w0))
        for start in range(0, run.steps, every):
            stop = min(start + every, run.steps)
            carry = checkpoint(functools.partial(_segment, run, start, stop))(h, carry)
        return run.val_loss(carry[0])

    return final


def lr_hypergradient(loss_fn, w0, lr, steps, optimizer=None, mode="reverse", *, momentum=None, val_loss=None,
                     batches=None, checkpoint_every=None, eps=1e-6, **reversible_options):
    """``(final loss, d final loss / d lr)`` after ``steps`` steps of training from ``w0``.

    Plain gradient descent by default; ``optimizer`` is a function ``lr ->``
    a :mod:`nablab.optim` optimizer (``lambda lr: nablab.optim.adam(lr)``),
    or ``momentum=`` selects heavy-ball momentum (the problem sets' delta form),
    which is what ``mode="reversible"`` runs. Only ``lr`` is differentiated.

    ``loss_fn(w)`` (or ``loss_fn(w, batch)`` with ``batches``, one per step) is trained on, and
    ``val_loss`` (default ``loss_fn``) is the final loss differentiated. ``mode`` is ``"reverse"``,
    ``"forward"``, ``"reversible"`` or ``"finite-difference"`` (step ``eps``); ``checkpoint_every``
    recomputes the reverse pass in segments; ``reversible_options`` go to :func:`reversible_hypergradient`.

    >>> import numpy as np, nablab as nb
    >>> from nablab.hyper import lr_hypergradient
    >>> loss, d_lr = lr_hypergradient(lambda w: nb.sum((w - 1.0) ** 2), np.zeros(2), lr=0.1, steps=3)
    >>> round(float(loss), 6), round(float(d_lr), 6)
    (0.524288, -7.86432)
    """
    _implementation(mode, "lr_hypergradient")
    check_lr(lr, who="lr_hypergradient")
    make_optimizer = _optimizer_factory(optimizer, momentum)
    hyper = {"lr": lr}
    if mode == "reversible":
        if optimizer is not None or momentum is None:
            raise ValueError("mode='reversible' runs SGD with momentum: give momentum= in (0, 1) and no optimizer")
        hyper["momentum"], make_optimizer = momentum, reversible_optimizer
    value, grads = hypergradient(loss_fn, w0, hyper, steps, make_optimizer, val_loss=val_loss, batches=batches,
                                 mode=mode, wrt="lr", checkpoint_every=checkpoint_every, eps=eps, **reversible_options)
    return value, grads["lr"]
