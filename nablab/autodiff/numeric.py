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
from nablab.autodiff.tree import tree_flatten, tree_unflatten
from nablab.errors import GradcheckError  # noqa: F401

SCHEMES = ("central", "forward", "backward")


def numerical_jacobian(f, x, eps=1e-6, scheme="central"):
    """The Jacobian of ``f`` at ``x`` by finite differences (shape ``out.shape + x.shape``).

    ``scheme="forward"`` is ``(f(x + eps e_j) - f(x)) / eps`` (error O(eps));
    ``"central"`` is ``(f(x + eps e_j) - f(x - eps e_j)) / (2 eps)`` (error O(eps^2)).

    >>> import numpy as np, nablab as nb
    >>> J = nb.numerical_jacobian(lambda x: x ** 2, np.array([1.0, 2.0]))
    >>> np.round(J, 6)
    array([[2., 0.],
           [0., 4.]])
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


def _is_differentiable_leaf(leaf) -> bool:
    """Floating-point or complex numbers and arrays are checked; the rest (ints, bools,
    strings, None, index lists) are passed to ``f`` unchanged, as the constants they are."""
    if isinstance(leaf, (bool, int, str, bytes)) or leaf is None:
        return False
    if isinstance(leaf, (float, complex)):
        return True
    dtype = getattr(value_of(leaf), "dtype", None)
    return dtype is not None and dtype.kind in "fc"


def _random_like(rng, x):
    """A standard normal array shaped like ``x`` (complex if ``x`` is)."""
    shape = np.shape(x)
    if np.iscomplexobj(x):
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return rng.standard_normal(shape)


def _leaf_values(tree):
    return [np.asarray(value_of(leaf)) for leaf in tree_flatten(tree)[0]]


def _differentiable(value):
    return value.dtype.kind in "fc"


def _directional(f, args, tangents, eps):
    """Central differences of every output leaf along ``tangents``."""
    plus = _leaf_values(f(*[a + eps * t for a, t in zip(args, tangents)]))
    minus = _leaf_values(f(*[a - eps * t for a, t in zip(args, tangents)]))
    return [(p - m) / (2 * eps) if _differentiable(p) else np.zeros(p.shape) for p, m in zip(plus, minus)]


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


def _pairing(a_leaves, b_leaves):
    """``Re sum(a * b)`` over matching leaves: the pairing of HIPS autograd's complex convention."""
    return float(sum(np.real(np.sum(np.asarray(value_of(a)) * b)) for a, b in zip(a_leaves, b_leaves)))


def gradcheck(f, *args, modes=("fwd", "rev"), order=2, eps=1e-6, rtol=1e-5, atol=1e-6, seed=0):
    """Check forward and reverse derivatives of ``f`` against central differences, to ``order``.

    Order 1 compares the JVP ``J v`` and the VJP ``u^T J`` with finite
    differences along random directions.  Order ``k`` then checks, at order
    ``k - 1``, the functions ``(x, v) -> J(x) v`` and ``(x, u) -> u^T J(x)``:
    so order 2 exercises forward-over-forward, forward-over-reverse,
    reverse-over-forward and reverse-over-reverse.  Arguments and outputs may
    be trees (dicts, lists, tuples) of real or complex arrays; for complex
    values the check pairs ``u`` and ``J v`` by ``Re sum(u * J v)``, the pairing
    of HIPS autograd's convention.  Returns ``True`` or raises
    :class:`GradcheckError` naming the mode and order.

    Only floating-point and complex arguments are checked; integers, booleans,
    strings and ``None`` (an einsum subscript, a count, a mask) are passed to
    ``f`` unchanged.

    Called with ``f`` alone it returns a checker to call on the arguments,
    as ``autograd.test_util.check_grads`` does:
    ``gradcheck(f, modes=["rev"])(x)``.

    >>> import nablab as nb
    >>> nb.gradcheck(lambda x: x ** 3 * nb.sin(x), 0.5)
    True
    """
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"gradcheck: unknown mode {mode!r}; use 'fwd' and/or 'rev'")
    if order < 1:
        raise ValueError(f"gradcheck: order must be >= 1, got {order}")
    if not args:
        return lambda *a: gradcheck(f, *a, modes=modes, order=order, eps=eps, rtol=rtol, atol=atol, seed=seed)
    rng = np.random.default_rng(seed)
    leaves, spec = tree_flatten(list(args))
    checked = [i for i, leaf in enumerate(leaves) if _is_differentiable_leaf(leaf)]
    if not checked:
        raise TypeError("gradcheck: no argument is floating-point or complex, so there is nothing to check")
    inputs = []
    for i in checked:
        v = np.asarray(_as_input(leaves[i], f"gradcheck: argument leaf {i}"))
        inputs.append(np.array(v, dtype=np.complex128 if v.dtype.kind == "c" else np.float64))

    def flat_f(*xs):
        full = list(leaves)
        for i, x in zip(checked, xs):
            full[i] = x
        return f(*tree_unflatten(spec, full))

    name = getattr(f, "__name__", type(f).__name__)
    _check(flat_f, inputs, tuple(modes), order, eps, rtol, atol, rng, path=name)
    return True


def _check(f, args, modes, order, eps, rtol, atol, rng, path):
    tangents = [_random_like(rng, a) for a in args]
    numeric = _directional(f, args, tangents, eps)
    n = len(args)
    if "fwd" in modes:
        _, jv = jvp(f, tuple(args), tuple(tangents))
        for k, (got, want) in enumerate(zip(_leaf_values(jv), numeric)):
            _close(got, want, rtol, atol, f"Derivative (JVP) check of {path} failed (output {k})")
    if "rev" in modes:
        out, vjp_fn = vjp(f, *args)
        out_leaves, out_spec = tree_flatten(out)
        us = [_random_like(rng, value_of(o)) if _differentiable(np.asarray(value_of(o)))
              else np.zeros(np.shape(value_of(o))) for o in out_leaves]
        cts = vjp_fn(tree_unflatten(out_spec, us))
        lhs = _pairing(cts, tangents)
        rhs = _pairing(us, numeric)
        _close(lhs, rhs, rtol, atol, f"Derivative (VJP) check of {path} failed (<u, J v> against finite differences)")
    if order > 1:
        if "fwd" in modes:
            def jv_fn(*xv):
                return jvp(f, tuple(xv[:n]), tuple(xv[n:]))[1]

            _check(jv_fn, args + tangents, modes, order - 1, eps, rtol, atol, rng, f"jvp_{path}")
        if "rev" in modes:
            out_leaves, out_spec = tree_flatten(f(*args))
            diff = [i for i, o in enumerate(out_leaves) if _differentiable(np.asarray(value_of(o)))]
            us = [_random_like(rng, value_of(out_leaves[i])) for i in diff]

            def ujt_fn(*xu):
                full = [np.zeros(np.shape(value_of(o))) for o in out_leaves]
                for i, u in zip(diff, xu[n:]):
                    full[i] = u
                return list(vjp(f, *xu[:n])[1](tree_unflatten(out_spec, full)))

            _check(ujt_fn, args + us, modes, order - 1, eps, rtol, atol, rng, f"vjp_{path}")
