"""Hypergradients through unrolled training: reverse (optionally checkpointed), forward, finite differences.

The training run is written with nablab operations, so differentiating its
final (validation) loss with respect to a hyperparameter is one more
transform on top:

- ``"reverse"``: backpropagation through every step; memory grows with the
  number of steps, since every step's graph is kept;
- ``"reverse"`` with ``checkpoint_every=k``: only every k-th training state is
  kept; each segment is recomputed once on the way back, so memory is
  O(steps / k + k) at the price of one more forward pass;
- ``"forward"``: the tangent d(state)/d(hyperparameter) is carried along the
  steps; memory does not depend on the number of steps, but each scalar
  hyperparameter costs one more pass;
- ``"finite-difference"``: central differences, the independent check;
- ``"reversible"``: see :mod:`nablab.hyper.reversible`.

>>> import numpy as np, nablab as nb
>>> from nablab.hyper import lr_hypergradient
>>> loss = lambda w: nb.sum((w - 1.0) ** 2)
>>> value, d = lr_hypergradient(loss, np.zeros(3), lr=0.1, steps=5)
>>> bool(np.isclose(d, lr_hypergradient(loss, np.zeros(3), lr=0.1, steps=5, mode="forward")[1], rtol=1e-12))
True
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import value_of
from nablab.autodiff.transforms import grad, jvp, value_and_grad, vjp
from nablab.autodiff.tree import tree_flatten, tree_unflatten
from nablab.optim import apply_updates, heavy_ball, sgd

MODES = ("reverse", "forward", "reversible", "finite-difference")


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
    on the last batch's absence: ``loss_fn(w)`` when no batches are given).
    """

    def __init__(self, loss_fn, steps, make_optimizer, val_loss=None, batches=None):
        if not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        if batches is not None and len(batches) < steps:
            raise ValueError(f"{len(batches)} batches for {steps} steps")
        if batches is not None and val_loss is None:
            raise ValueError("with minibatches, give val_loss(w): the loss measured after training")
        self.loss_fn, self.steps, self.make_optimizer = loss_fn, int(steps), make_optimizer
        self.val_loss = val_loss if val_loss is not None else loss_fn
        self.batches = batches
        self._grad = grad(loss_fn)

    def step(self, opt, t, w, state):
        g = self._grad(w) if self.batches is None else self._grad(w, self.batches[t])
        updates, state = opt.update(g, state, w)
        return apply_updates(w, updates), state

    def run(self, hyper, w0, start=0, stop=None, state=None):
        opt = self.make_optimizer(hyper)
        w, state = w0, (opt.init(w0) if state is None else state)
        for t in range(start, self.steps if stop is None else stop):
            w, state = self.step(opt, t, w, state)
        return w, state

    def final_loss(self, hyper, w0):
        return self.val_loss(self.run(hyper, w0)[0])


def hypergradient(loss_fn, w0, hyper, steps, make_optimizer, *, val_loss=None, batches=None, mode="reverse",
                  checkpoint_every=None, eps=1e-6):
    """Final loss and its gradient with respect to every hyperparameter in ``hyper`` and ``w0``.

    ``hyper`` is a dict of numbers or arrays (a per-step learning-rate
    schedule is an array indexed by the step count); ``make_optimizer(hyper)``
    returns a :mod:`nablab.optim` optimizer.  Returns ``(loss, grads)`` with
    ``grads`` a dict holding one entry per hyperparameter plus ``"w0"``.
    """
    if mode not in ("reverse", "forward", "finite-difference"):
        raise ValueError(f"hypergradient: mode={mode!r}; use 'reverse', 'forward' or 'finite-difference' "
                         "(reversible mode: nablab.hyper.reversible_hypergradient)")
    run = Unrolled(loss_fn, steps, make_optimizer, val_loss, batches)
    hyper = {k: (np.float64(v) if isinstance(v, (int, float)) else np.asarray(v, dtype=float)) for k, v in hyper.items()}
    w0 = np.asarray(w0, dtype=float) if not isinstance(w0, (dict, list, tuple)) else w0
    if mode == "reverse":
        if checkpoint_every:
            return _checkpointed(run, hyper, w0, int(checkpoint_every))
        value, (g_hyper, g_w0) = value_and_grad(run.final_loss, argnums=(0, 1))(hyper, w0)
        return value, {**g_hyper, "w0": g_w0}
    if mode == "forward":
        return _forward_all(run, hyper, w0)
    return _finite_differences(run, hyper, w0, eps)


def _forward_all(run, hyper, w0):
    """One JVP per scalar entry of the hyperparameters and of w0: exact, memory independent of steps."""
    grads, value = {}, None
    h_leaves, h_spec = tree_flatten(hyper)
    w_leaves, w_spec = tree_flatten(w0)
    flat = list(h_leaves) + list(w_leaves)
    results = []
    for i, leaf in enumerate(flat):
        arr = np.asarray(leaf, dtype=float)
        out = np.zeros(arr.shape)
        for j in range(arr.size):
            tangents = [np.zeros(np.shape(x)) for x in flat]
            tangents[i] = np.zeros(arr.shape)
            tangents[i].reshape(-1)[j] = 1.0
            value, d = jvp(run.final_loss,
                           (tree_unflatten(h_spec, flat[:len(h_leaves)]), tree_unflatten(w_spec, flat[len(h_leaves):])),
                           (tree_unflatten(h_spec, tangents[:len(h_leaves)]), tree_unflatten(w_spec, tangents[len(h_leaves):])))
            out.reshape(-1)[j] = float(d)
        results.append(out if arr.ndim else np.float64(out))
    g_hyper = tree_unflatten(h_spec, results[:len(h_leaves)])
    grads.update(g_hyper)
    grads["w0"] = tree_unflatten(w_spec, results[len(h_leaves):])
    if value is None:
        value = run.final_loss(hyper, w0)
    return value, grads


def _finite_differences(run, hyper, w0, eps):
    value = run.final_loss(hyper, w0)
    grads = {}
    for name, v in hyper.items():
        arr = np.asarray(v, dtype=float)
        g = np.zeros(arr.shape)
        for j in range(arr.size):
            up, down = arr.copy(), arr.copy()
            up.reshape(-1)[j] += eps
            down.reshape(-1)[j] -= eps
            g.reshape(-1)[j] = (run.final_loss({**hyper, name: up}, w0) - run.final_loss({**hyper, name: down}, w0)) / (2 * eps)
        grads[name] = g if arr.ndim else np.float64(g)
    w_leaves, w_spec = tree_flatten(w0)
    w_grads = []
    for i, leaf in enumerate(w_leaves):
        arr = np.asarray(leaf, dtype=float)
        g = np.zeros(arr.shape)
        for j in range(arr.size):
            shifted = []
            for sign in (1, -1):
                leaves = [np.array(x, dtype=float, copy=True) for x in w_leaves]
                leaves[i].reshape(-1)[j] += sign * eps
                shifted.append(run.final_loss(hyper, tree_unflatten(w_spec, leaves)))
            g.reshape(-1)[j] = (shifted[0] - shifted[1]) / (2 * eps)
        w_grads.append(g)
    grads["w0"] = tree_unflatten(w_spec, w_grads)
    return value, grads


def _is_differentiable(x):
    return isinstance(x, (float, np.floating)) or (isinstance(x, np.ndarray) and x.dtype.kind == "f")


def _split_carry(carry):
    """Float leaves (differentiated) and the rest (step counters), with a function to join them back."""
    leaves, spec = tree_flatten(carry)
    mask = [_is_differentiable(value_of(x)) for x in leaves]
    diff = [x for x, m in zip(leaves, mask) if m]
    static = [x for x, m in zip(leaves, mask) if not m]

    def join(diff_leaves, static_leaves=static):
        it_d, it_s = iter(diff_leaves), iter(static_leaves)
        return tree_unflatten(spec, [next(it_d) if m else next(it_s) for m in mask])

    return diff, join


def _checkpointed(run, hyper, w0, every):
    """Reverse mode keeping every ``every``-th state; each segment is replayed with recording on the way back."""
    if every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {every}")
    opt = run.make_optimizer(hyper)
    carry = (w0, opt.init(w0))
    checkpoints = []
    for start in range(0, run.steps, every):
        checkpoints.append((start, carry))
        w, state = carry
        for t in range(start, min(start + every, run.steps)):
            w, state = run.step(opt, t, w, state)
        carry = (w, state)
    final_diff, join_final = _split_carry(carry)
    value, pull_final = vjp(lambda d: run.val_loss(join_final(d)[0]), final_diff)
    (cotangent,) = pull_final(np.ones_like(np.asarray(value)))
    g_hyper = None
    for start, saved in reversed(checkpoints):
        stop = min(start + every, run.steps)
        diff, join = _split_carry(saved)

        def segment(h, d, join=join, start=start, stop=stop):
            w, state = join(d)
            w, state = run.run(h, w, start, stop, state)
            return _split_carry((w, state))[0]

        _, pull = vjp(segment, hyper, diff)
        gh, cotangent = pull(cotangent)
        del pull, _  # drop this segment's graph before the next one is recorded
        g_hyper = gh if g_hyper is None else {k: g_hyper[k] + gh[k] for k in gh}
    if g_hyper is None:  # zero steps
        g_hyper = {k: np.zeros_like(np.asarray(v)) for k, v in hyper.items()}
    join_initial = _split_carry(checkpoints[0][1])[1] if checkpoints else join_final
    return value, {**g_hyper, "w0": join_initial(cotangent)[0]}


def lr_hypergradient(loss_fn, w0, lr, steps, optimizer=None, mode="reverse", *, momentum=None, val_loss=None,
                     batches=None, checkpoint_every=None, eps=1e-6, **reversible_options):
    """``(final loss, d final loss / d lr)`` after ``steps`` steps of training from ``w0``.

    Plain gradient descent by default; ``optimizer`` is a function ``lr ->``
    a :mod:`nablab.optim` optimizer (``lambda lr: nablab.optim.adam(lr)``),
    or ``momentum=`` selects heavy-ball momentum (the seeds' delta form),
    which is what ``mode="reversible"`` runs.
    """
    if mode not in MODES:
        raise ValueError(f"lr_hypergradient: mode={mode!r}; choose one of {MODES}")
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"lr_hypergradient: lr={lr} must be finite and >= 0")
    if mode == "reversible":
        if optimizer is not None or momentum is None:
            raise ValueError("mode='reversible' runs SGD with momentum: give momentum= in (0, 1) and no optimizer")
        from nablab.hyper.reversible import reversible_hypergradient

        result = reversible_hypergradient(loss_fn, w0, lr, momentum, steps, val_loss=val_loss, batches=batches,
                                          **reversible_options)
        return result.loss, result.d_lr
    value, grads = hypergradient(loss_fn, w0, {"lr": lr}, steps, _optimizer_factory(optimizer, momentum),
                                 val_loss=val_loss, batches=batches, mode=mode, checkpoint_every=checkpoint_every,
                                 eps=eps) if mode != "forward" else _lr_forward(loss_fn, w0, lr, steps, optimizer,
                                                                                momentum, val_loss, batches)
    return value, grads["lr"]


def _lr_forward(loss_fn, w0, lr, steps, optimizer, momentum, val_loss, batches):
    # Only the lr direction: one JVP, no pass per entry of w0.
    run = Unrolled(loss_fn, steps, _optimizer_factory(optimizer, momentum), val_loss, batches)
    w0 = np.asarray(w0, dtype=float) if not isinstance(w0, (dict, list, tuple)) else w0
    value, d = jvp(lambda h: run.final_loss({"lr": h}, w0), (np.float64(lr),), (np.float64(1.0),))
    return value, {"lr": d}
