"""SGD, heavy ball, Adagrad, RMSprop, Adam, AdamW and preconditioned SGD as pure pairs.

Formulas, defaults and the placement of ``eps`` follow ``torch.optim`` (the
tests check trajectories against it to 1e-10 in float64), except
:func:`heavy_ball`, which is the problem sets' delta form.

>>> import numpy as np, nablab as nb
>>> from nablab import optim
>>> opt = optim.adam(lr=0.1)
>>> params = {"w": np.array([1.0, -2.0])}
>>> state = opt.init(params)
>>> for _ in range(200):
...     grads = nb.grad(lambda p: nb.sum(p["w"] ** 2))(params)
...     updates, state = opt.update(grads, state, params)
...     params = optim.apply_updates(params, updates)
>>> bool(np.abs(params["w"]).max() < 1e-2)
True
"""

from __future__ import annotations

import numpy as np

from nablab import parallel
from nablab.autodiff import ops
from nablab.autodiff.core import value_of
from nablab.autodiff.tree import tree_flatten, tree_unflatten
from nablab.checks import check_lr, check_number
from nablab.optim.base import Optimizer, check_grads_match, learning_rate_at, map_leaves, zeros_like_tree


def _lerp(start, end, weight):
    """``start + weight (end - start)`` evaluated as torch.lerp does, so float64 runs match it bit for bit."""
    if value_of(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


#: Entries per piece of an update run in pieces (:func:`_adam`): its five temporaries, 128 KiB each in float32,
#: stay in a core's cache.
_PIECE = 1 << 15


def _plain(arrays, numbers):
    """Whether ``arrays`` are NumPy arrays of one floating dtype and ``numbers`` Python numbers (nothing traced, and
    no NumPy scalar that would change the result's dtype): an update may then run as NumPy's in-place operations,
    the same operations in the same order (the same bits) with fewer temporary arrays."""
    if not all(isinstance(a, np.ndarray) for a in arrays) or len({a.dtype for a in arrays}) != 1:
        return False
    return arrays[0].dtype.kind == "f" and all(type(v) in (float, int) for v in numbers)


def _need_params(params, grads, weight_decay, who):
    if params is None:
        if weight_decay:
            raise ValueError(f"{who}: weight_decay needs the parameters: call update(grads, state, params)")
        return grads
    check_grads_match(grads, params, who)
    return params


def sgd(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0) -> Optimizer:
    """Stochastic gradient descent as in ``torch.optim.SGD``.

    With momentum ``mu``: ``b = g`` on the first step, then ``b = mu b + (1 - dampening) g``;
    the step is ``b`` (or ``g + mu b`` with Nesterov); ``w -= lr * step``.

    ``lr`` is the learning rate (a number, a schedule ``count -> lr``, or an array broadcast against
    the parameters); ``weight_decay`` adds ``weight_decay * w`` to the gradient.

    >>> import numpy as np
    >>> from nablab import optim
    >>> opt = optim.sgd(lr=0.1, momentum=0.9)
    >>> state = opt.init(np.zeros(1))
    >>> for _ in range(2):
    ...     updates, state = opt.update(np.array([1.0]), state, np.zeros(1))
    >>> updates
    array([-0.19])
    """
    who = "sgd"
    check_lr(lr, who)
    check_number("momentum", momentum, low=0.0, who=who)
    check_number("dampening", dampening, low=0.0, high=1.0, who=who)
    check_number("weight_decay", weight_decay, low=0.0, who=who)
    if nesterov and (value_of(momentum) <= 0 or value_of(dampening) != 0):
        raise ValueError(f"{who}: nesterov=True needs momentum > 0 and dampening = 0 "
                         f"(got momentum={value_of(momentum)}, dampening={value_of(dampening)})")
    use_momentum = value_of(momentum) != 0

    def init(params):
        return {"count": 0, "momentum": zeros_like_tree(params) if use_momentum else None}

    def update(grads, state, params=None):
        count = state["count"]
        lr_t = learning_rate_at(lr, count)
        params = _need_params(params, grads, weight_decay, who)
        bufs = state["momentum"] if use_momentum else grads

        def leaf(g, p, buf):
            if weight_decay:
                g = g + weight_decay * p
            if not use_momentum:
                return -lr_t * g, None
            buf = g if count == 0 else momentum * buf + (1 - dampening) * g
            step = g + momentum * buf if nesterov else buf
            return -lr_t * step, buf

        updates, new_bufs = map_leaves(leaf, grads, params, bufs)
        return updates, {"count": count + 1, "momentum": new_bufs if use_momentum else None}

    return Optimizer(init, update)


def heavy_ball(lr, alpha) -> Optimizer:
    """Momentum in the problem sets' delta form: ``delta = -lr g + alpha delta``; ``w += delta``.

    Starting from ``delta = 0`` it equals :func:`sgd` with momentum ``alpha``
    and no dampening (the velocity is ``-lr`` times the buffer).

    ``lr`` is the step size, ``alpha`` the momentum.

    >>> import numpy as np
    >>> from nablab import optim
    >>> opt = optim.heavy_ball(lr=0.1, alpha=0.9)
    >>> state = opt.init(np.zeros(1))
    >>> for _ in range(2):
    ...     updates, state = opt.update(np.array([1.0]), state, np.zeros(1))
    >>> updates
    array([-0.19])
    """
    who = "heavy_ball"
    check_lr(lr, who)
    check_number("alpha", alpha, low=0.0, who=who)

    def init(params):
        return {"count": 0, "delta": zeros_like_tree(params)}

    def update(grads, state, params=None):
        lr_t = learning_rate_at(lr, state["count"])
        (delta,) = map_leaves(lambda g, d: (-lr_t * g + alpha * d,), grads, state["delta"])
        return delta, {"count": state["count"] + 1, "delta": delta}

    return Optimizer(init, update)


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10) -> Optimizer:
    """Adagrad as in ``torch.optim.Adagrad``: ``s += g^2``; ``w -= lr g / (sqrt(s) + eps)``.

    ``lr_decay`` divides the rate by ``1 + (t - 1) lr_decay``; ``weight_decay`` adds ``weight_decay * w``
    to the gradient; ``initial_accumulator_value`` starts ``s``.

    >>> import numpy as np
    >>> from nablab import optim
    >>> opt = optim.adagrad(lr=0.5)
    >>> opt.update(np.array([2.0, -0.1]), opt.init(np.zeros(2)), np.zeros(2))[0]
    array([-0.5,  0.5])
    """
    who = "adagrad"
    check_lr(lr, who)
    check_number("lr_decay", lr_decay, low=0.0, who=who)
    check_number("weight_decay", weight_decay, low=0.0, who=who)
    check_number("initial_accumulator_value", initial_accumulator_value, low=0.0, who=who)
    check_number("eps", eps, low=0.0, low_open=True, who=who)

    def init(params):
        leaves, spec = tree_flatten(zeros_like_tree(params))
        return {"count": 0, "sum": tree_unflatten(spec, [z + initial_accumulator_value for z in leaves])}

    def update(grads, state, params=None):
        count = state["count"]
        clr = learning_rate_at(lr, count) / (1 + count * lr_decay)
        params = _need_params(params, grads, weight_decay, who)

        def leaf(g, p, s):
            if weight_decay:
                g = g + weight_decay * p
            s = s + g * g
            return -clr * g / (ops.sqrt(s) + eps), s

        updates, sums = map_leaves(leaf, grads, params, state["sum"])
        return updates, {"count": count + 1, "sum": sums}

    return Optimizer(init, update)


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False) -> Optimizer:
    """RMSprop as in ``torch.optim.RMSprop`` (``eps`` added after the square root).

    ``alpha`` is the decay of the mean square ``v = alpha v + (1 - alpha) g^2``; ``momentum``,
    ``centered`` (subtract the squared mean gradient) and ``weight_decay`` as in PyTorch.

    >>> import numpy as np
    >>> from nablab import optim
    >>> opt = optim.rmsprop(lr=0.01, alpha=0.99)
    >>> opt.update(np.array([2.0]), opt.init(np.zeros(1)), np.zeros(1))[0].round(4)
    array([-0.1])
    """
    who = "rmsprop"
    check_lr(lr, who)
    check_number("alpha", alpha, low=0.0, high=1.0, high_open=True, who=who)
    check_number("eps", eps, low=0.0, low_open=True, who=who)
    check_number("weight_decay", weight_decay, low=0.0, who=who)
    check_number("momentum", momentum, low=0.0, who=who)
    use_momentum = value_of(momentum) != 0

    def init(params):
        zeros = zeros_like_tree(params)
        return {"count": 0, "square_avg": zeros,
                "grad_avg": zeros_like_tree(params) if centered else None,
                "momentum": zeros_like_tree(params) if use_momentum else None}

    def update(grads, state, params=None):
        count = state["count"]
        lr_t = learning_rate_at(lr, count)
        params = _need_params(params, grads, weight_decay, who)
        grad_avg = state["grad_avg"] if centered else grads
        bufs = state["momentum"] if use_momentum else grads

        def leaf(g, p, sq, ga, buf):
            if weight_decay:
                g = g + weight_decay * p
            sq = alpha * sq + (1 - alpha) * g * g
            if centered:
                ga = _lerp(ga, g, 1 - alpha)
                avg = ops.sqrt(sq - ga * ga) + eps
            else:
                avg = ops.sqrt(sq) + eps
            if use_momentum:
                buf = momentum * buf + g / avg
                return -lr_t * buf, sq, ga, buf
            return -lr_t * g / avg, sq, ga, buf

        updates, sq, ga, bufs = map_leaves(leaf, grads, params, state["square_avg"], grad_avg, bufs)
        return updates, {"count": count + 1, "square_avg": sq, "grad_avg": ga if centered else None,
                         "momentum": bufs if use_momentum else None}

    return Optimizer(init, update)


def _adam(lr, betas, eps, weight_decay, amsgrad, decoupled, who):
    check_lr(lr, who)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = betas
    check_number("betas[0]", beta1, low=0.0, high=1.0, high_open=True, who=who)
    check_number("betas[1]", beta2, low=0.0, high=1.0, high_open=True, who=who)
    check_number("eps", eps, low=0.0, low_open=True, who=who)
    check_number("weight_decay", weight_decay, low=0.0, who=who)

    def init(params):
        return {"count": 0, "m": zeros_like_tree(params), "v": zeros_like_tree(params),
                "v_max": zeros_like_tree(params) if amsgrad else None}

    def update(grads, state, params=None):
        count = state["count"]
        t = count + 1
        lr_t = learning_rate_at(lr, count)
        params = _need_params(params, grads, weight_decay, who)
        correction1 = 1 - beta1 ** t
        correction2_sqrt = (1 - beta2 ** t) ** 0.5
        step_size = lr_t / correction1
        v_max = state["v_max"] if amsgrad else grads

        def in_place(g, p, m, v, vm):
            """``leaf`` on arrays of one dtype, the same operations in the same order, in cache-sized pieces (large
            arrays in parts on the threads): each piece's temporaries stay in cache, and only the results are new
            arrays (the caller may still hold the old state). On the seed ConvNet's 820 thousand float32
            parameters, the expressions took 4.8 ms per step, their temporaries streaming through memory."""
            shape = m.shape
            g, p, m, v = (np.ascontiguousarray(a).reshape(-1) for a in (g, p, m, v))
            vm = np.ascontiguousarray(vm).reshape(-1) if amsgrad else None
            step, m_new, v_new = (np.empty_like(m) for _ in range(3))
            vm_new = np.empty_like(m) if amsgrad else None
            w1 = 1 - beta1

            def piece(a, b):
                gp = g[a:b]
                if weight_decay and not decoupled:
                    gp = gp + weight_decay * p[a:b]
                mp = np.subtract(gp, m[a:b], out=m_new[a:b])  # _lerp(m, g, w1) in the same form
                if w1 < 0.5:
                    mp *= w1
                    mp += m[a:b]
                else:
                    mp *= 1 - w1
                    np.subtract(gp, mp, out=mp)
                vp = np.multiply(v[a:b], beta2, out=v_new[a:b])
                square = np.multiply(gp, 1 - beta2)
                square *= gp
                vp += square
                if amsgrad:
                    vp = np.maximum(vm[a:b], vp, out=vm_new[a:b])
                denom = np.sqrt(vp, out=square)
                denom /= correction2_sqrt
                denom += eps
                sp = np.multiply(mp, -step_size, out=step[a:b])
                sp /= denom
                if weight_decay and decoupled:
                    sp -= lr_t * weight_decay * p[a:b]

            def part(lo, hi):  # a thread's share, in pieces
                for a in range(lo, hi, _PIECE):
                    piece(a, min(hi, a + _PIECE))

            parallel.in_parts(m.size, part, parallel.MIN_PARALLEL_SIZE // 2)
            return tuple(None if a is None else a.reshape(shape) for a in (step, m_new, v_new, vm_new))

        def leaf(g, p, m, v, vm):
            if np.size(m) >= _PIECE and _plain((g, p, m, v, vm), (step_size, lr_t, beta1, beta2, eps, weight_decay)):
                return in_place(g, p, m, v, vm)  # (smaller arrays: the expressions, with less Python around them)
            if weight_decay and not decoupled:
                g = g + weight_decay * p
            m = _lerp(m, g, 1 - beta1)
            v = beta2 * v + (1 - beta2) * g * g
            if amsgrad:
                vm = ops.maximum(vm, v)
                denom = ops.sqrt(vm) / correction2_sqrt + eps
            else:
                denom = ops.sqrt(v) / correction2_sqrt + eps
            step = -step_size * m / denom
            if weight_decay and decoupled:
                step = step - lr_t * weight_decay * p
            return step, m, v, vm

        updates, m, v, vm = map_leaves(leaf, grads, params, state["m"], state["v"], v_max)
        return updates, {"count": t, "m": m, "v": v, "v_max": vm if amsgrad else None}

    return Optimizer(init, update)


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False) -> Optimizer:
    """Adam as in ``torch.optim.Adam`` (weight decay added to the gradient, L2 style).

    ``betas`` are the decays of the first and second moments, ``eps`` is added to the root of the
    second, ``amsgrad`` keeps its running maximum.

    >>> import numpy as np
    >>> from nablab import optim
    >>> opt = optim.adam(lr=0.1)
    >>> opt.update(np.array([3.0, -0.01]), opt.init(np.zeros(2)), np.zeros(2))[0].round(6)
    array([-0.1,  0.1])
    """
    return _adam(lr, betas, eps, weight_decay, amsgrad, decoupled=False, who="adam")


def adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False) -> Optimizer:
    """AdamW as in ``torch.optim.AdamW``: the decay ``lr * wd * w`` is applied apart from Adam's step.

    The arguments are :func:`adam`'s; ``weight_decay`` is the decoupled decay.

    >>> import numpy as np
    >>> from nablab import optim
    >>> opt = optim.adamw(lr=0.1, weight_decay=0.5)
    >>> opt.update(np.array([0.0]), opt.init(np.ones(1)), np.ones(1))[0]
    array([-0.05])
    """
    return _adam(lr, betas, eps, weight_decay, amsgrad, decoupled=True, who="adamw")


def preconditioned_sgd(lr, M) -> Optimizer:
    """``w -= lr M g`` with a fixed matrix ``M`` (d x d) or diagonal (length d).

    ``d`` counts every entry of the parameters (a tree is flattened in order).

    >>> import numpy as np
    >>> from nablab import optim
    >>> opt = optim.preconditioned_sgd(0.5, np.array([1.0, 0.1]))
    >>> opt.update(np.array([2.0, 2.0]), opt.init(np.zeros(2)), np.zeros(2))[0]
    array([-1. , -0.1])
    """
    who = "preconditioned_sgd"
    check_lr(lr, who)
    M_value = np.asarray(value_of(M))
    if M_value.ndim not in (1, 2) or (M_value.ndim == 2 and M_value.shape[0] != M_value.shape[1]):
        raise ValueError(f"{who}: M must be a square matrix or a vector (its diagonal); got shape {M_value.shape}")
    if not np.all(np.isfinite(M_value)):
        raise ValueError(f"{who}: M has non-finite entries")

    def init(params):
        leaves, _ = tree_flatten(params)
        d = int(sum(np.size(value_of(p)) for p in leaves))
        if M_value.shape[0] != d:
            raise ValueError(f"{who}: M has shape {M_value.shape} but the parameters have {d} entries")
        return {"count": 0}

    def update(grads, state, params=None):
        leaves, spec = tree_flatten(grads)
        shapes = [np.shape(value_of(g)) for g in leaves]
        flat = ops.concatenate([ops.reshape(g, (-1,)) for g in leaves]) if len(leaves) > 1 else ops.reshape(leaves[0], (-1,))
        if flat.shape[0] != M_value.shape[0]:
            raise ValueError(f"{who}: gradients have {flat.shape[0]} entries but M has shape {M_value.shape}")
        step = M * flat if M_value.ndim == 1 else ops.matmul(M, flat)
        step = -learning_rate_at(lr, state["count"]) * step
        pieces, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            pieces.append(ops.reshape(step[start:start + size], shape))
            start += size
        return tree_unflatten(spec, pieces), {"count": state["count"] + 1}

    return Optimizer(init, update)
