"""``scipy.integrate`` with derivative rules: ``odeint`` is differentiable in y0, t and args.

Reverse mode uses the adjoint method: the cotangent is carried back from each
output time to the previous one by solving the adjoint system
``a' = -a df/dy`` (with the state solved again backwards beside it) while the
parameter cotangent accumulates ``integral a df/dargs``; the cotangent of an
output time ``t_i`` is ``g_i . f(y_i, t_i)`` and that of ``t_0`` is
``-a(t_0) . f(y_0, t_0)``.  Forward mode solves the sensitivity system
``s' = df/dy s + df/dargs dargs`` beside the state.  Both are written with
``odeint`` itself and nablab's own transforms, so they differentiate again
(second order and beyond).

Derivatives are as accurate as the solver (``rtol``/``atol``, which the adjoint
and sensitivity solves share).  The other functions of ``scipy.integrate`` work
on constants and refuse traced values by name.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate as _si

from nablab.autodiff.core import primitive, value_of
from nablab.autodiff.dispatch import UnsupportedFunctionError, holds_traced, unbox_all
from nablab.autodiff.transforms import jvp as _jvp
from nablab.autodiff.transforms import vjp as _vjp
from nablab.autodiff.tree import tree_flatten, tree_unflatten
from nablab.numpy import _namespace
from nablab.numpy import concatenate, ravel, reshape, stack, sum as _sum, zeros
from nablab.numpy.shape import as_array

#: Solver settings the adjoint and sensitivity solves share with the user's solve.
_SHARED = ("rtol", "atol", "mxstep", "hmax", "hmin", "mxordn", "mxords")


class _Problem:
    """What a solve needs besides the packed array ``[y0, t, traced leaves of args]``.

    Leaves of ``args`` that are not traced stay in ``static`` as they are;
    ``args_from(leaves)`` rebuilds the full ``args`` from the traced ones.
    """

    def __init__(self, func, n_state, n_times, spec, static, dynamic, shapes, options):
        self.func = func
        self.n_state = n_state
        self.n_times = n_times
        self.spec = spec
        self.static = static
        self.dynamic = dynamic
        self.shapes = shapes
        self.options = options
        self.n_params = int(sum(int(np.prod(s)) for s in shapes))

    def args_from(self, flat_params):
        leaves = list(self.static)
        start = 0
        for i, shape in zip(self.dynamic, self.shapes):
            size = int(np.prod(shape))
            leaves[i] = reshape(flat_params[start:start + size], shape)
            start += size
        return tree_unflatten(self.spec, leaves)

    def unpack(self, packed):
        d, t = self.n_state, self.n_times
        return packed[:d], packed[d:d + t], packed[d + t:]

    def rhs(self, y, t, flat_params):
        """``func(y, t, *args)`` as a vector of the state's length."""
        out = as_array(self.func(y, t, *self.args_from(flat_params)))
        return reshape(out, (self.n_state,))


def _plain_solve(problem, packed):
    y0, t, params = problem.unpack(np.asarray(packed, dtype=np.float64))
    args = tuple(problem.args_from(params))

    def rhs(y, tt):
        return np.asarray(value_of(problem.func(y, tt, *args)), dtype=np.float64).reshape(-1)

    return _si.odeint(rhs, y0, t, **problem.options)


def _odeint_fn(packed, problem):
    return _plain_solve(problem, packed)


_odeint_p = primitive(_odeint_fn, name="scipy.integrate.odeint")


def _solve(func, y0, t, args, options):
    """Solve ``y' = func(y, t, *args)``: a recorded primitive if anything is traced."""
    leaves, spec = tree_flatten(tuple(args))
    dynamic = [i for i, leaf in enumerate(leaves) if holds_traced(leaf)]
    static = [None if i in dynamic else unbox_all(leaf) for i, leaf in enumerate(leaves)]
    y0, t = as_array(y0), as_array(t)
    problem = _Problem(func, int(np.size(value_of(y0))), int(np.size(value_of(t))), spec, static,
                       dynamic, [np.shape(value_of(leaves[i])) for i in dynamic], options)
    parts = [ravel(y0), ravel(t)] + [ravel(as_array(leaves[i])) for i in dynamic]
    return _odeint_p(concatenate(parts), problem=problem)


def _shared(options):
    return {k: v for k, v in options.items() if k in _SHARED}


def _odeint_vjp(g, ans, packed, problem):
    """Adjoint method: the cotangent of ``[y0, t, params]``."""
    d, n_t, n_p = problem.n_state, problem.n_times, problem.n_params
    y0, t, params = problem.unpack(packed)

    def adjoint_rhs(state, tt, params):
        # state = [y, a, a_params]: the state backwards, its adjoint, the parameter integral.
        y, a = state[:d], state[d:2 * d]
        _, pullback = _vjp(lambda y, p: problem.rhs(y, tt, p), y, params)
        gy, gp = pullback(-a)
        return concatenate([problem.rhs(y, tt, params), gy, gp])

    a = g[n_t - 1]
    a_params = zeros(n_p)
    time_cts = []
    for i in range(n_t - 1, 0, -1):
        time_cts.append(_sum(g[i] * problem.rhs(ans[i], t[i], params)))
        start = concatenate([ans[i], a, a_params])
        back = _solve(adjoint_rhs, start, stack([t[i], t[i - 1]]), (params,), _shared(problem.options))
        a = back[1, d:2 * d]
        a_params = back[1, 2 * d:]
        if i == 1:
            # Moving t_0 with y(t_0) = y0 fixed shifts every later output by -Phi f(y0, t0).
            time_cts.append(-_sum(a * problem.rhs(y0, t[0], params)))
        a = a + g[i - 1]
    if n_t == 1:
        time_cts.append(zeros(()))
    return concatenate([a, stack(time_cts[::-1]), a_params])


def _odeint_jvp(tangent, ans, packed, problem):
    """Forward sensitivities: the tangent of the (T, D) solution."""
    d = problem.n_state
    y0, t, params = problem.unpack(packed)
    dy0, dt, dparams = problem.unpack(tangent)

    def sensitivity_rhs(state, tt, params, dparams):
        # state = [y, s] with s' = df/dy s + df/dparams dparams.
        y, s = state[:d], state[d:]
        f, df = _jvp(lambda y, p: problem.rhs(y, tt, p), (y, params), (s, dparams))
        return concatenate([f, df])

    start = concatenate([y0, dy0 - problem.rhs(y0, t[0], params) * dt[0]])
    sens = _solve(sensitivity_rhs, start, t, (params, dparams), _shared(problem.options))[:, d:]
    # An output time t_i moves its output along the flow: + f(y_i, t_i) dt_i (for i = 0 it restores dy0).
    flows = stack([problem.rhs(ans[i], t[i], params) for i in range(problem.n_times)])
    return sens + flows * reshape(dt, (-1, 1))


_odeint_p.defvjp(_odeint_vjp)
_odeint_p.defjvp(_odeint_jvp)


def odeint(func, y0, t, args=(), Dfun=None, col_deriv=0, full_output=0, tfirst=False, **options):
    """``scipy.integrate.odeint``: the solution at the times t, shape ``(len(t), len(y0))``.

    Differentiable in y0, t and the array leaves of args (which may be nested
    tuples, lists or dicts of arrays); ``func`` is written with nablab's (or
    NumPy's) functions.  ``Dfun``, ``col_deriv`` and ``full_output`` are
    SciPy's and need constant inputs.
    """
    traced = holds_traced(y0) or holds_traced(t) or holds_traced(args)
    if not isinstance(args, tuple):
        args = (args,)
    if tfirst:
        user = func

        def func(y, tt, *a):
            return user(tt, y, *a)

    if not traced:
        return _si.odeint(lambda y, tt, *a: np.asarray(value_of(func(y, tt, *a))), unbox_all(y0),
                          unbox_all(t), args=unbox_all(args), Dfun=Dfun, col_deriv=col_deriv,
                          full_output=full_output, **options)
    for name, value in (("Dfun", Dfun), ("full_output", full_output)):
        if value:
            raise UnsupportedFunctionError(
                f"scipy.integrate.odeint: {name} is not supported with traced inputs; leave it out "
                "(the derivative rules solve their own systems)")
    for name, value in (("y0", y0), ("t", t)):
        if np.iscomplexobj(value_of(as_array(value))):
            raise TypeError(f"scipy.integrate.odeint: {name} is complex; odeint solves real systems only")
    return _solve(func, y0, t, args, options)


__all__ = ["odeint"]

_namespace.fill(globals(), _si, {"odeint": odeint}, nondifferentiable=frozenset(),
                prefix="scipy.integrate")
