"""Finite differences and gradcheck: the independent check of every derivative.

>>> import numpy as np, nablab as nb
>>> nb.numerical_jacobian(lambda x: x ** 2, np.array([1.0, 2.0]), eps=1e-6).round(6)
array([[2., 0.],
       [0., 4.]])
>>> nb.gradcheck(lambda x: nb.sum(nb.exp(x) * x), np.array([0.3, -0.7]))
True
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import value_of
from nablab.autodiff.transforms import _as_input, jvp, vjp

SCHEMES = ("central", "forward", "backward")


def numerical_jacobian(f, x, eps=1e-6, scheme="central"):
    """The Jacobian of ``f`` at ``x`` by finite differences (shape ``out.shape + x.shape``).

    ``scheme="forward"`` is ``(f(x + eps e_j) - f(x)) / eps`` (error O(eps));
    ``"central"`` is ``(f(x + eps e_j) - f(x - eps e_j)) / (2 eps)`` (error O(eps^2)).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"numerical_jacobian: scheme={scheme!r}; choose one of {SCHEMES}")
    if not eps > 0:
        raise ValueError(f"numerical_jacobian: eps must be positive, got {eps}")
    x = np.array(_as_input(x, "numerical_jacobian: x"), dtype=np.float64)
    f0 = np.asarray(value_of(f(x)), dtype=np.float64)
    jac = np.empty(f0.shape + x.shape)
    flat_x = x.reshape(-1)
    jac_cols = jac.reshape(f0.shape + (flat_x.size,))
    for j in range(flat_x.size):
        def at(step):
            shifted = flat_x.copy()
            shifted[j] += step
            return np.asarray(value_of(f(shifted.reshape(x.shape))), dtype=np.float64)

        if scheme == "central":
            col = (at(eps) - at(-eps)) / (2 * eps)
        elif scheme == "forward":
            col = (at(eps) - f0) / eps
        else:
            col = (f0 - at(-eps)) / eps
        jac_cols[..., j] = col
    return jac


class GradcheckError(AssertionError):
    """A derivative disagreed with finite differences."""


def _directional(f, args, tangents, eps):
    plus = f(*[a + eps * t for a, t in zip(args, tangents)])
    minus = f(*[a - eps * t for a, t in zip(args, tangents)])
    return (np.asarray(value_of(plus)) - np.asarray(value_of(minus))) / (2 * eps)


def _close(computed, expected, rtol, atol, what):
    computed, expected = np.asarray(value_of(computed)), np.asarray(value_of(expected))
    if computed.shape != expected.shape:
        raise GradcheckError(f"{what}: shape {computed.shape} but finite differences give {expected.shape}")
    if not np.allclose(computed, expected, rtol=rtol, atol=atol):
        err = np.max(np.abs(computed - expected))
        raise GradcheckError(
            f"{what}: max abs error {err:.3g} (rtol={rtol}, atol={atol})\n"
            f"  autodiff:           {computed.ravel()[:8]}\n  finite differences: {expected.ravel()[:8]}"
        )


def gradcheck(f, *args, modes=("fwd", "rev"), order=2, eps=1e-6, rtol=1e-5, atol=1e-6, seed=0):
    """Check forward and reverse derivatives of ``f`` against central differences, to ``order``.

    Order 1 compares the JVP ``J v`` and the VJP ``u^T J`` with finite
    differences along random directions.  Order ``k`` then checks, at order
    ``k - 1``, the functions ``(x, v) -> J(x) v`` and ``(x, u) -> u^T J(x)``:
    so order 2 exercises forward-over-forward, forward-over-reverse,
    reverse-over-forward and reverse-over-reverse.  Returns ``True`` or raises
    :class:`GradcheckError` naming the mode and order.
    """
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"gradcheck: unknown mode {mode!r}; use 'fwd' and/or 'rev'")
    if order < 1:
        raise ValueError(f"gradcheck: order must be >= 1, got {order}")
    rng = np.random.default_rng(seed)
    args = [np.array(_as_input(a, f"gradcheck: argument {i}"), dtype=np.float64) for i, a in enumerate(args)]
    _check(f, args, modes, order, eps, rtol, atol, rng, path="f")
    return True


def _check(f, args, modes, order, eps, rtol, atol, rng, path):
    tangents = [rng.standard_normal(np.shape(a)) for a in args]
    numeric = _directional(f, args, tangents, eps)
    if "fwd" in modes:
        _, jv = jvp(f, tuple(args), tuple(tangents))
        _close(jv, numeric, rtol, atol, f"forward mode of {path} (order 1 of this level)")
    if "rev" in modes:
        out, vjp_fn = vjp(f, *args)
        u = rng.standard_normal(np.shape(value_of(out)))
        ut_j = vjp_fn(u)
        lhs = sum(float(np.sum(np.asarray(value_of(g)) * t)) for g, t in zip(ut_j, tangents))
        rhs = float(np.sum(u * numeric))
        _close(lhs, rhs, rtol, atol, f"reverse mode of {path} (<u, J v> against finite differences)")
    if order > 1:
        n = len(args)
        if "fwd" in modes:
            def jv_fn(*xv):
                return jvp(f, tuple(xv[:n]), tuple(xv[n:]))[1]

            _check(jv_fn, args + tangents, modes, order - 1, eps, rtol, atol, rng, f"jvp({path})")
        if "rev" in modes:
            out = f(*args)
            u = rng.standard_normal(np.shape(value_of(out)))

            def ujt_fn(*xu):
                from nablab.autodiff.ops import concatenate, ravel
                grads = vjp(f, *xu[:n])[1](xu[n])
                return concatenate([ravel(g) for g in grads])

            _check(ujt_fn, args + [u], modes, order - 1, eps, rtol, atol, rng, f"vjp({path})")
