"""``scipy.special`` with derivative rules (functions without rules refuse traced values by name).

Each function here is SciPy's own for the value, recorded as a primitive whose
VJP and JVP rules are written with nablab's functions (and with the other
functions of this module), so derivatives nest to any order.  Arguments a
function is not differentiable in (integer orders, the shape ``a`` of
``gammainc``, ...) must be constants: a traced value there raises
:class:`~nablab.autodiff.dispatch.UnsupportedFunctionError` naming the function
and the argument.

Holomorphic functions (``erf``, ``erfc``, ``erfcx``, ``gamma``, ``loggamma``,
``iv``, ``jv``, ...) accept complex values and follow HIPS autograd's
convention: the cotangent is multiplied by ``f'(z)`` without conjugation.

Conventions where a formula breaks down:

- ``xlogy(x, y)`` and ``xlog1py(x, y)``: ``d/dy`` is 0 where ``x == 0`` (the
  function is identically 0 there); ``d/dx`` is ``log(y)`` (``log1p(y)``), so
  ``-inf`` at ``y == 0`` (``y == -1``).
- ``rel_entr``, ``kl_div``: at ``x == 0`` the ``x``-derivative is ``-inf`` and
  the ``y``-derivative 0; outside the domain (where the value is ``inf``) the
  derivatives are ``nan``.
- ``gamma``, ``rgamma``, ``digamma``: at the poles of the gamma function the
  derivatives are ``nan`` (or infinite), never a finite number.
- ``ive``, ``i0e``, ``i1e`` (which use ``|x|``) take real ``x`` only; their
  derivative at ``x == 0`` uses ``sign(0) = 0``, the mean of the one-sided
  derivatives.
"""

from __future__ import annotations

import numpy as np
import scipy.special as _sc

import nablab.numpy as _n
from nablab.autodiff.core import primitive, shape_of, value_of
from nablab.autodiff.dispatch import (
    UnsupportedFunctionError,
    holds_traced,
    nondifferentiable,
    unbox_all,
)
from nablab.autodiff.ops import logsumexp as _logsumexp
from nablab.numpy import _namespace
from nablab.numpy.shape import as_array
from nablab.numpy.ufuncs import unbroadcast

_SQRT_PI = float(np.sqrt(np.pi))
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))
_LOG_SQRT_2PI = float(0.5 * np.log(2.0 * np.pi))

__all__: list[str] = []


# --------------------------------------------------------------------------- helpers


def constant_arg(value, function, argname):
    """``value`` without its boxes, or an error naming ``function`` and ``argname`` if it is traced.

    Used for the arguments a function has no derivative in (orders, counts, shapes).
    """
    if holds_traced(value):
        raise UnsupportedFunctionError(
            f"{function}: {argname} was given a traced value, but nablab has no derivative of "
            f"{function} with respect to {argname}. Pass a constant there (x.detach() if you "
            "want no gradient through it)."
        )
    return unbox_all(value)


def _is_complex(x):
    return np.iscomplexobj(value_of(x))


def _real_only(x, function):
    if holds_traced(x) and _is_complex(x):
        raise UnsupportedFunctionError(
            f"{function} uses |x| and is not holomorphic: nablab differentiates it for real x only"
        )


def _public(name, impl, doc):
    impl.__name__ = name
    impl.__qualname__ = name
    impl.__doc__ = doc
    __all__.append(name)
    return impl


def _unary(name, derivative, doc, real_only=False):
    """``scipy.special.<name>(x)`` as a primitive with ``f'(x) = derivative(ans, x)``."""
    prim = primitive(getattr(_sc, name), name=f"scipy.special.{name}")
    prim.defvjp(lambda g, ans, x: g * derivative(ans, x))
    prim.defjvp(lambda t, ans, x: t * derivative(ans, x))

    def impl(x):
        x = as_array(x)
        if real_only:
            _real_only(x, f"scipy.special.{name}")
        return prim(x)

    return _public(name, impl, doc), prim


def _in_last(name, argnames, derivative, doc, real_only=False):
    """``scipy.special.<name>(*consts, x)``: differentiable in the last argument only.

    ``derivative(ans, *consts, x)`` is the partial derivative in ``x``; the
    leading arguments (orders, shapes) must be constants.
    """
    prim = primitive(getattr(_sc, name), name=f"scipy.special.{name}")
    nconst = len(argnames) - 1
    prim.defvjp(lambda g, ans, *args: unbroadcast(g * derivative(ans, *args), args[-1]), argnums=[nconst])
    prim.defjvp(lambda t, ans, *args: t * derivative(ans, *args), argnums=[nconst])

    def impl(*args):
        if len(args) != len(argnames):
            raise TypeError(f"scipy.special.{name} takes {len(argnames)} arguments "
                            f"({', '.join(argnames)}), got {len(args)}")
        consts = [constant_arg(a, f"scipy.special.{name}", n) for a, n in zip(args[:-1], argnames)]
        x = as_array(args[-1])
        if real_only:
            _real_only(x, f"scipy.special.{name}")
        return prim(*consts, x)

    return _public(name, impl, doc), prim


def _binary(name, d_first, d_second, doc):
    """``scipy.special.<name>(a, b)`` differentiable in both; ``d_*(ans, a, b)`` are the partials."""
    prim = primitive(getattr(_sc, name), name=f"scipy.special.{name}")
    prim.defvjp(lambda g, ans, a, b: unbroadcast(g * d_first(ans, a, b), a),
                lambda g, ans, a, b: unbroadcast(g * d_second(ans, a, b), b))
    prim.defjvp(lambda t, ans, a, b: t * d_first(ans, a, b),
                lambda t, ans, a, b: t * d_second(ans, a, b))

    def impl(a, b):
        return prim(as_array(a), as_array(b))

    return _public(name, impl, doc), prim


def _mask(cond, like):
    """A plain boolean array: ``cond`` where the formula holds, broadcast to ``like``'s shape."""
    return np.broadcast_to(np.asarray(cond), np.broadcast_shapes(np.shape(cond), shape_of(like)))


def _sign(x):
    return np.sign(value_of(x))


# --------------------------------------------------------------------------- gamma family


def _psi_derivative(ans, x):
    if _is_complex(x):
        raise UnsupportedFunctionError(
            "scipy.special.digamma: its derivative at complex x needs polygamma of a complex "
            "argument, which SciPy does not compute"
        )
    return polygamma(1, x)


gamma, _gamma_p = _unary("gamma", lambda ans, x: ans * digamma(x),
                         "Gamma function; derivative ``gamma(x) digamma(x)`` (``nan`` at the poles).")
gammaln, _gammaln_p = _unary("gammaln", lambda ans, x: digamma(x),
                             "``log|gamma(x)|`` for real x; derivative ``digamma(x)``.")
loggamma, _loggamma_p = _unary("loggamma", lambda ans, x: digamma(x),
                               "Principal branch of ``log gamma(z)`` (complex allowed); derivative ``digamma(z)``.")
rgamma, _rgamma_p = _unary("rgamma", lambda ans, x: -ans * digamma(x),
                           "``1 / gamma(x)``; derivative ``-digamma(x) / gamma(x)`` (``nan`` at the poles).")
digamma, _digamma_p = _unary("digamma", _psi_derivative,
                             "Digamma function ``psi(x)``; derivative ``polygamma(1, x)``.")
psi = _public("psi", lambda x: digamma(x), "Digamma function (SciPy's other name for it).")
gammasgn = _public("gammasgn", nondifferentiable(_sc.gammasgn),
                   "Sign of the gamma function: piecewise constant, so no derivative flows through it.")


def _polygamma_p_fn(n, x):
    return _sc.polygamma(n, x)


_polygamma_p = primitive(_polygamma_p_fn, name="scipy.special.polygamma")
_polygamma_p.defvjp(None, lambda g, ans, n, x: unbroadcast(g * _polygamma_p(np.asarray(n) + 1, x), x))
_polygamma_p.defjvp(None, lambda t, ans, n, x: t * _polygamma_p(np.asarray(n) + 1, x))


def polygamma(n, x):
    """``n``-th derivative of digamma; differentiable in x (``polygamma(n + 1, x)``), n a constant integer."""
    n = constant_arg(n, "scipy.special.polygamma", "n (the order)")
    if _is_complex(x):
        raise UnsupportedFunctionError("scipy.special.polygamma: SciPy computes it for real x only")
    return _polygamma_p(n, as_array(x))


__all__.append("polygamma")


def multigammaln(a, d):
    """Log of the multivariate gamma function of dimension ``d`` (a constant integer); differentiable in ``a``."""
    d = constant_arg(d, "scipy.special.multigammaln", "d (the dimension)")
    if not np.isscalar(d) or np.floor(d) != d or d < 1:
        raise ValueError(f"scipy.special.multigammaln: d must be a positive integer, got {d!r}")
    a = as_array(a)
    av = np.asarray(value_of(a))
    if np.any(av <= 0.5 * (d - 1)):
        raise ValueError(f"scipy.special.multigammaln: every a must be > (d - 1) / 2 = {0.5 * (d - 1)}; "
                         f"got min(a) = {av.min()}")
    d = int(d)
    terms = gammaln(_n.expand_dims(a, -1) - np.arange(d) / 2.0)
    return (d * (d - 1) * 0.25) * np.log(np.pi) + _n.sum(terms, axis=-1)


__all__.append("multigammaln")


def _log_gammainc_density(a, x):
    # log of x^(a-1) e^(-x) / gamma(a): the derivative of the regularized lower gamma in x.
    return xlogy(a - 1.0, x) - x - gammaln(a)


gammainc, _gammainc_p = _in_last(
    "gammainc", ("a (the shape)", "x"), lambda ans, a, x: _n.exp(_log_gammainc_density(a, x)),
    "Regularized lower incomplete gamma ``P(a, x)``; differentiable in x only.")
gammaincc, _gammaincc_p = _in_last(
    "gammaincc", ("a (the shape)", "x"), lambda ans, a, x: -_n.exp(_log_gammainc_density(a, x)),
    "Regularized upper incomplete gamma ``Q(a, x) = 1 - P(a, x)``; differentiable in x only.")
gammaincinv, _gammaincinv_p = _in_last(
    "gammaincinv", ("a (the shape)", "y"), lambda ans, a, y: _n.exp(-_log_gammainc_density(a, ans)),
    "Inverse of ``gammainc`` in x; differentiable in y only.")
gammainccinv, _gammainccinv_p = _in_last(
    "gammainccinv", ("a (the shape)", "y"), lambda ans, a, y: -_n.exp(-_log_gammainc_density(a, ans)),
    "Inverse of ``gammaincc`` in x; differentiable in y only.")

# P(k, m) sums the Poisson pmf up to floor(k): its m-derivative is minus the pmf at floor(k).
pdtr, _pdtr_p = _in_last(
    "pdtr", ("k (the count)", "m"),
    lambda ans, k, m: -_n.exp(xlogy(np.floor(k), m) - m - gammaln(np.floor(k) + 1.0)),
    "Poisson distribution function ``sum_{j <= k} e^-m m^j / j!``; differentiable in m only.")
pdtrc, _pdtrc_p = _in_last(
    "pdtrc", ("k (the count)", "m"),
    lambda ans, k, m: _n.exp(xlogy(np.floor(k), m) - m - gammaln(np.floor(k) + 1.0)),
    "Poisson survival function ``1 - pdtr(k, m)``; differentiable in m only.")
chdtr, _chdtr_p = _in_last(
    "chdtr", ("v (degrees of freedom)", "x"),
    lambda ans, v, x: 0.5 * _n.exp(_log_gammainc_density(np.asarray(v) / 2.0, x / 2.0)),
    "Chi-square distribution function ``gammainc(v / 2, x / 2)``; differentiable in x only.")
chdtrc, _chdtrc_p = _in_last(
    "chdtrc", ("v (degrees of freedom)", "x"),
    lambda ans, v, x: -0.5 * _n.exp(_log_gammainc_density(np.asarray(v) / 2.0, x / 2.0)),
    "Chi-square survival function; differentiable in x only.")


def _t_logpdf(df, t):
    """Log density of Student's t with ``df`` (a constant) degrees of freedom; ``df = inf`` is normal."""
    df = np.asarray(df, dtype=float)
    finite = np.isfinite(df)
    if finite.all():
        return _log(poch(0.5 * df, 0.5)) - 0.5 * np.log(df * np.pi) - (df + 1) / 2 * _n.log1p(t * t / df)
    safe = np.where(finite, df, 1.0)
    student = _log(poch(0.5 * safe, 0.5)) - 0.5 * np.log(safe * np.pi) - (safe + 1) / 2 * _n.log1p(t * t / safe)
    return _n.where(finite, student, -0.5 * t * t - _LOG_SQRT_2PI)


stdtr, _stdtr_p = _in_last(
    "stdtr", ("df (degrees of freedom)", "t"), lambda ans, df, t: _n.exp(_t_logpdf(df, t)),
    "Student t distribution function; differentiable in t only.")

# --------------------------------------------------------------------------- beta family

beta, _beta_p = _binary("beta",
                        lambda ans, a, b: ans * (digamma(a) - digamma(a + b)),
                        lambda ans, a, b: ans * (digamma(b) - digamma(a + b)),
                        "Beta function ``gamma(a) gamma(b) / gamma(a + b)``; differentiable in a and b.")
betaln, _betaln_p = _binary("betaln",
                            lambda ans, a, b: digamma(a) - digamma(a + b),
                            lambda ans, a, b: digamma(b) - digamma(a + b),
                            "``log|beta(a, b)|``; differentiable in a and b.")
poch, _poch_p = _binary("poch",
                        lambda ans, z, m: ans * (digamma(z + m) - digamma(z)),
                        lambda ans, z, m: ans * digamma(z + m),
                        "Pochhammer symbol ``gamma(z + m) / gamma(z)``; differentiable in z and m.")


def _log_beta_density(a, b, x):
    return xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - betaln(a, b)


_AB = ("a (a shape)", "b (a shape)")
betainc, _betainc_p = _in_last(
    "betainc", _AB + ("x",), lambda ans, a, b, x: _n.exp(_log_beta_density(a, b, x)),
    "Regularized incomplete beta ``I_x(a, b)``; differentiable in x only.")
betaincc, _betaincc_p = _in_last(
    "betaincc", _AB + ("x",), lambda ans, a, b, x: -_n.exp(_log_beta_density(a, b, x)),
    "Complement ``1 - I_x(a, b)``; differentiable in x only.")
betaincinv, _betaincinv_p = _in_last(
    "betaincinv", _AB + ("y",), lambda ans, a, b, y: _n.exp(-_log_beta_density(a, b, ans)),
    "Inverse of ``betainc`` in x; differentiable in y only.")
betainccinv, _betainccinv_p = _in_last(
    "betainccinv", _AB + ("y",), lambda ans, a, b, y: -_n.exp(-_log_beta_density(a, b, ans)),
    "Inverse of ``betaincc`` in x; differentiable in y only.")

# --------------------------------------------------------------------------- error function and normal


def _gauss(x):
    return _n.exp(-(x * x))


erf, _erf_p = _unary("erf", lambda ans, x: (2.0 / _SQRT_PI) * _gauss(x),
                     "Error function (complex allowed); derivative ``2 exp(-x^2) / sqrt(pi)``.")
erfc, _erfc_p = _unary("erfc", lambda ans, x: (-2.0 / _SQRT_PI) * _gauss(x),
                       "``1 - erf(x)`` (complex allowed); derivative ``-2 exp(-x^2) / sqrt(pi)``.")
erfcx, _erfcx_p = _unary("erfcx", lambda ans, x: 2.0 * x * ans - 2.0 / _SQRT_PI,
                         "Scaled ``exp(x^2) erfc(x)`` (complex allowed); derivative ``2 x erfcx(x) - 2 / sqrt(pi)``.")
erfi, _erfi_p = _unary("erfi", lambda ans, x: (2.0 / _SQRT_PI) * _n.exp(x * x),
                       "Imaginary error function ``-i erf(ix)`` (complex allowed); "
                       "derivative ``2 exp(x^2) / sqrt(pi)``.")
erfinv, _erfinv_p = _unary("erfinv", lambda ans, x: (_SQRT_PI / 2.0) * _n.exp(ans * ans),
                           "Inverse of ``erf``; derivative ``sqrt(pi) / 2 exp(erfinv(x)^2)``.")
erfcinv, _erfcinv_p = _unary("erfcinv", lambda ans, x: (-_SQRT_PI / 2.0) * _n.exp(ans * ans),
                             "Inverse of ``erfc``; derivative ``-sqrt(pi) / 2 exp(erfcinv(x)^2)``.")
ndtr, _ndtr_p = _unary("ndtr", lambda ans, x: _n.exp(-0.5 * x * x) / _SQRT_2PI,
                       "Standard normal distribution function; derivative the normal density.")
log_ndtr, _log_ndtr_p = _unary("log_ndtr", lambda ans, x: _n.exp(-0.5 * x * x - _LOG_SQRT_2PI - ans),
                               "``log(ndtr(x))`` accurate in both tails; derivative ``density / ndtr``.")
ndtri, _ndtri_p = _unary("ndtri", lambda ans, p: _SQRT_2PI * _n.exp(0.5 * ans * ans),
                         "Inverse of ``ndtr``; derivative ``sqrt(2 pi) exp(ndtri(p)^2 / 2)``.")

# --------------------------------------------------------------------------- logistic and friends

expit, _expit_p = _unary("expit", lambda ans, x: ans * (1.0 - ans),
                         "Logistic sigmoid ``1 / (1 + exp(-x))``; derivative ``expit(x) (1 - expit(x))``.")
logit, _logit_p = _unary("logit", lambda ans, x: 1.0 / (x * (1.0 - x)),
                         "``log(p / (1 - p))``; derivative ``1 / (p (1 - p))``.")
log_expit, _log_expit_p = _unary("log_expit", lambda ans, x: expit(-x),
                                 "``log(expit(x))`` without overflow; derivative ``expit(-x)``.")
softplus, _softplus_p = _unary("softplus", lambda ans, x: expit(x),
                               "``log(1 + exp(x))`` without overflow; derivative ``expit(x)``.")


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """``log(sum(b * exp(a)))`` over ``axis`` without overflow; differentiable in a and b."""
    a = as_array(a)
    if b is not None:
        # ops.logsumexp reduces over a's axes only: broadcast first, as SciPy does
        b = as_array(b)
        shape = np.broadcast_shapes(shape_of(a), shape_of(b))
        a, b = _n.broadcast_to(a, shape), _n.broadcast_to(b, shape)
    if np.size(value_of(a)) == 0:
        # nothing to sum (SciPy's -inf); an empty input has an empty derivative
        return _sc.logsumexp(unbox_all(a), axis=axis, b=unbox_all(b), keepdims=keepdims,
                             return_sign=return_sign)
    out = _logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    if return_sign:
        return _scalar(out[0]), _scalar(out[1])
    return _scalar(out)


def _scalar(out):
    """A 0-d plain result as a NumPy scalar, as SciPy returns it."""
    if isinstance(out, np.ndarray) and out.ndim == 0:
        return out[()]
    return out


def _shifted(x, axis):
    """``x - max(x)`` over axis (the max a constant, 0 where not finite), as SciPy computes it."""
    x = as_array(x)
    shift = np.amax(np.asarray(value_of(x)), axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    return x - shift


def softmax(x, axis=None):
    """``exp(x) / sum(exp(x))`` over ``axis`` (all entries when None, as SciPy)."""
    e = _n.exp(_shifted(x, axis))
    return e / _n.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=None):
    """``x - logsumexp(x)`` over ``axis`` (all entries when None, as SciPy)."""
    s = _shifted(x, axis)
    return s - _n.log(_n.sum(_n.exp(s), axis=axis, keepdims=True))


__all__ += ["logsumexp", "softmax", "log_softmax"]

# --------------------------------------------------------------------------- x log y and entropies


def _where_nonzero(x, value_fn, y):
    """``value_fn(x, y)`` where ``x != 0`` and 0 where ``x == 0``, never touching y there."""
    zero = _mask(np.asarray(value_of(x)) == 0, y)
    if not zero.any():
        return value_fn(x, y)
    return _n.where(zero, 0.0, value_fn(x, _n.where(zero, 1.0, y)))


xlogy, _xlogy_p = _binary("xlogy",
                          lambda ans, x, y: _log(y),
                          lambda ans, x, y: _where_nonzero(x, lambda x, y: x / y, y),
                          "``x log(y)``, 0 where x == 0; d/dy is 0 there, d/dx is ``log(y)``.")
xlog1py, _xlog1py_p = _binary("xlog1py",
                              lambda ans, x, y: _n.log1p(y),
                              lambda ans, x, y: _where_nonzero(x, lambda x, y: x / (1.0 + y), y),
                              "``x log(1 + y)``, 0 where x == 0; d/dy is 0 there, d/dx is ``log1p(y)``.")


def _log(x):
    # nablab's log, silent where SciPy's conventions reach log(0) on purpose.
    with np.errstate(divide="ignore", invalid="ignore"):
        return _n.log(x)


def _entropy_masks(x, y):
    xv, yv = np.asarray(value_of(x)), np.asarray(value_of(y))
    shape = np.broadcast_shapes(xv.shape, yv.shape)
    inside = np.broadcast_to((xv > 0) & (yv > 0), shape)
    edge = np.broadcast_to((xv == 0) & (yv >= 0), shape)
    return inside, edge


def _entropy_derivative(x, y, formula, edge_value):
    """``formula(x, y)`` inside the domain, ``edge_value`` at x == 0, nan outside."""
    inside, edge = _entropy_masks(x, y)
    if inside.all():
        return formula(x, y)
    fill = np.where(edge, edge_value, np.nan)
    return _n.where(inside, formula(_n.where(inside, x, 1.0), _n.where(inside, y, 1.0)), fill)


rel_entr, _rel_entr_p = _binary(
    "rel_entr",
    lambda ans, x, y: _entropy_derivative(x, y, lambda x, y: _log(x / y) + 1.0, -np.inf),
    lambda ans, x, y: _entropy_derivative(x, y, lambda x, y: -x / y, 0.0),
    "Relative entropy term ``x log(x / y)``; d/dx ``log(x / y) + 1``, d/dy ``-x / y``.")
kl_div, _kl_div_p = _binary(
    "kl_div",
    lambda ans, x, y: _entropy_derivative(x, y, lambda x, y: _log(x / y), -np.inf),
    lambda ans, x, y: _entropy_derivative(x, y, lambda x, y: 1.0 - x / y, 1.0),
    "``x log(x / y) - x + y``; d/dx ``log(x / y)``, d/dy ``1 - x / y``.")
entr, _entr_p = _unary("entr", lambda ans, x: -_log(x) - 1.0,
                       "``-x log(x)`` (0 at 0, -inf below); derivative ``-log(x) - 1``.")

# --------------------------------------------------------------------------- Bessel functions

_V = "v (the order)"
_N = "n (the order)"

j0, _j0_p = _unary("j0", lambda ans, x: -j1(x), "Bessel J_0; derivative ``-j1(x)``.")
j1, _j1_p = _unary("j1", lambda ans, x: 0.5 * (j0(x) - jv(2, x)),
                   "Bessel J_1; derivative ``(j0(x) - jv(2, x)) / 2``.")
y0, _y0_p = _unary("y0", lambda ans, x: -y1(x), "Bessel Y_0; derivative ``-y1(x)``.")
y1, _y1_p = _unary("y1", lambda ans, x: 0.5 * (y0(x) - yv(2, x)),
                   "Bessel Y_1; derivative ``(y0(x) - yv(2, x)) / 2``.")
jv, _jv_p = _in_last("jv", (_V, "x"), lambda ans, v, x: 0.5 * (jv(v - 1.0, x) - jv(v + 1.0, x)),
                     "Bessel J_v of real order v (a constant); derivative ``(J_{v-1} - J_{v+1}) / 2``.")
jn = _public("jn", lambda n, x: jv(n, x), "Bessel J_n (SciPy's other name for ``jv``); differentiable in x.")
yv, _yv_p = _in_last("yv", (_V, "x"), lambda ans, v, x: 0.5 * (yv(v - 1.0, x) - yv(v + 1.0, x)),
                     "Bessel Y_v of real order v (a constant); derivative ``(Y_{v-1} - Y_{v+1}) / 2``.")
yn, _yn_p = _in_last("yn", (_N, "x"), lambda ans, n, x: 0.5 * (yn(np.asarray(n) - 1, x) - yn(np.asarray(n) + 1, x)),
                     "Bessel Y_n of integer order n (a constant); derivative ``(Y_{n-1} - Y_{n+1}) / 2``.")
i0, _i0_p = _unary("i0", lambda ans, x: i1(x), "Modified Bessel I_0; derivative ``i1(x)``.")
i1, _i1_p = _unary("i1", lambda ans, x: 0.5 * (i0(x) + iv(2, x)),
                   "Modified Bessel I_1; derivative ``(i0(x) + iv(2, x)) / 2``.")
iv, _iv_p = _in_last("iv", (_V, "x"), lambda ans, v, x: 0.5 * (iv(v - 1.0, x) + iv(v + 1.0, x)),
                     "Modified Bessel I_v of real order v (a constant); derivative ``(I_{v-1} + I_{v+1}) / 2``.")
i0e, _i0e_p = _unary("i0e", lambda ans, x: i1e(x) - _sign(x) * ans,
                     "``exp(-|x|) i0(x)``; derivative ``i1e(x) - sign(x) i0e(x)``.", real_only=True)
i1e, _i1e_p = _unary("i1e", lambda ans, x: 0.5 * (i0e(x) + ive(2, x)) - _sign(x) * ans,
                     "``exp(-|x|) i1(x)``; derivative ``(i0e + ive(2, .)) / 2 - sign(x) i1e``.", real_only=True)
ive, _ive_p = _in_last("ive", (_V, "x"),
                       lambda ans, v, x: 0.5 * (ive(v - 1.0, x) + ive(v + 1.0, x)) - _sign(x) * ans,
                       "``exp(-|x|) iv(v, x)`` for real x; derivative ``(ive_{v-1} + ive_{v+1}) / 2 - sign(x) ive``.",
                       real_only=True)
k0, _k0_p = _unary("k0", lambda ans, x: -k1(x), "Modified Bessel K_0; derivative ``-k1(x)``.")
k1, _k1_p = _unary("k1", lambda ans, x: -0.5 * (k0(x) + kv(2, x)),
                   "Modified Bessel K_1; derivative ``-(k0(x) + kv(2, x)) / 2``.")
kv, _kv_p = _in_last("kv", (_V, "x"), lambda ans, v, x: -0.5 * (kv(v - 1.0, x) + kv(v + 1.0, x)),
                     "Modified Bessel K_v of real order v (a constant); derivative ``-(K_{v-1} + K_{v+1}) / 2``.")
k0e, _k0e_p = _unary("k0e", lambda ans, x: ans - k1e(x), "``exp(x) k0(x)``; derivative ``k0e(x) - k1e(x)``.")
k1e, _k1e_p = _unary("k1e", lambda ans, x: ans - 0.5 * (k0e(x) + kve(2, x)),
                     "``exp(x) k1(x)``; derivative ``k1e(x) - (k0e(x) + kve(2, x)) / 2``.")
kve, _kve_p = _in_last("kve", (_V, "x"), lambda ans, v, x: ans - 0.5 * (kve(v - 1.0, x) + kve(v + 1.0, x)),
                       "``exp(x) kv(v, x)``; derivative ``kve - (kve_{v-1} + kve_{v+1}) / 2``.")

__all__ = sorted(set(__all__))

_namespace.fill(globals(), _sc, {n: globals()[n] for n in __all__},
                nondifferentiable=frozenset({"round"}), prefix="scipy.special")
