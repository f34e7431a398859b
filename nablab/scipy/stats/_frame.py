"""What every distribution module shares: SciPy's argument checks, supports and fill values.

A distribution supplies its formulas for the standardized variable
``z = (x - loc) / scale`` written with nablab's functions; :func:`continuous`
and :func:`discrete` wrap them the way ``scipy.stats`` does: ``nan`` where a
parameter is invalid, the distribution's constants (0, 1, ``-inf``) outside
the support, the formula elsewhere.  The formula never sees the entries it
does not own (they get a safe point inside the support instead), so no ``inf``
or ``nan`` of theirs leaks into a derivative.
"""

from __future__ import annotations

import numpy as np

from nablab.autodiff.core import Tensor, value_of
from nablab.autodiff.dispatch import unsupported
from nablab.numpy import log, log1p, where
from nablab.numpy.shape import as_array
from nablab.scipy.special import constant_arg

#: (value below the support, value above it) for each function of x.
FILLS = {
    "pdf": (0.0, 0.0), "logpdf": (-np.inf, -np.inf),
    "cdf": (0.0, 1.0), "logcdf": (-np.inf, 0.0),
    "sf": (1.0, 0.0), "logsf": (0.0, -np.inf),
    "pmf": (0.0, 0.0), "logpmf": (-np.inf, -np.inf),
}


def plain(x):
    """The value of ``x`` as a float (or complex) NumPy array."""
    v = np.asarray(value_of(x))
    return v.astype(np.float64) if v.dtype.kind in "iub" else v


def array_arg(x):
    """``x`` as a tensor (lists holding tensors become one) or as a float NumPy array."""
    x = as_array(x)
    return x if isinstance(x, Tensor) else plain(x)


def finish(out):
    """SciPy returns a NumPy scalar for 0-d results; tensors stay as they are."""
    if isinstance(out, Tensor):
        return out
    out = np.asarray(out)
    return out[()] if out.ndim == 0 else out


def split(cond, z, safe, f_true, f_false):
    """``where(cond, f_true(z), f_false(z))``, each formula evaluated only on its own entries.

    The other entries get ``safe`` (finite for both formulas), so neither
    formula's derivative at an entry it does not own can be ``inf``/``nan``.
    """
    cond = np.asarray(cond)
    if cond.all():
        return f_true(z)
    if not cond.any():
        return f_false(z)
    return where(cond, f_true(where(cond, z, safe)), f_false(where(cond, safe, z)))


def poison(out, bad, inputs):
    """``out`` with ``nan`` derivatives, as well as ``nan`` values, where ``bad`` (invalid parameters).

    ``out`` already holds ``nan`` there; adding ``nan * input`` on those entries
    only makes the derivative of every input there ``nan`` too, instead of a
    zero that would hide the invalid parameter.
    """
    bad = np.asarray(bad)
    if not bad.any():
        return out
    nan_mask = np.where(bad, np.nan, 0.0)
    for v in inputs:
        if isinstance(v, Tensor):
            out = out + where(bad, v, 0.0) * nan_mask
    return out


def log_tails(cdf, sf, median):
    """SciPy's generic ``(logcdf, logsf)`` kernels from ``cdf(z, *args)`` and ``sf(z, *args)``.

    Below the median (a constant array from the constant shape parameters)
    ``log(cdf)``, above it ``log1p(-sf)``; the mirror for the log survival function.
    """
    def logcdf(z, *args):
        m = median(*[plain(a) for a in args])
        return split(plain(z) < m, z, m, lambda u: log(cdf(u, *args)), lambda u: log1p(-sf(u, *args)))

    def logsf(z, *args):
        m = median(*[plain(a) for a in args])
        return split(plain(z) > m, z, m, lambda u: log(sf(u, *args)), lambda u: log1p(-cdf(u, *args)))

    return logcdf, logsf


def continuous(dist, kind, kernel, x, shapes, loc, scale, *, argcheck, support, inner, refuse=()):
    """``scipy.stats.<dist>.<kind>(x, *shapes, loc, scale)`` from ``kernel(z, *shapes)``.

    ``shapes`` is a list of ``(name, value)``; ``argcheck(*values)`` gives the
    mask of valid shape parameters and ``support(*values)`` the interval
    ``(lo, hi)`` of z; ``inner`` is a point inside it.  For ``pdf`` the kernel
    is the standardized density (divided by scale here), for ``logpdf`` its log
    (``log(scale)`` subtracted here); for the distribution functions it is the
    function of z itself.  Shape parameters named in ``refuse`` must be constants.
    """
    fname = f"scipy.stats.{dist}.{kind}"
    values = [plain(constant_arg(v, fname, n)) if n in refuse else array_arg(v) for n, v in shapes]
    x, loc, scale = array_arg(x), array_arg(loc), array_arg(scale)
    xv, lv, sv = plain(x), plain(loc), plain(scale)
    pv = [plain(v) for v in values]
    with np.errstate(all="ignore"):
        zv = (xv - lv) / sv
        ok = np.asarray(argcheck(*pv)) & (sv > 0)
        lo, hi = support(*pv)
        if kind in ("pdf", "logpdf"):
            inside = (lo <= zv) & (zv <= hi)
        else:
            inside = (lo < zv) & (zv < hi)
        shape = np.broadcast_shapes(zv.shape, *[p.shape for p in pv])
        good = np.broadcast_to(ok & inside, shape)
        below, above = FILLS[kind]
        fill = np.broadcast_to(np.where(zv >= hi, above, below), shape)
        fill = np.where(np.broadcast_to(~ok | np.isnan(zv), shape), np.nan, fill)
    if good.all():
        s = scale
        z = (x - loc) / s
        args = values
    else:
        s = where(sv > 0, scale, 1.0)
        z = where(good, (x - loc) / s, inner)
        args = [where(good, v, 1.0) for v in values]
    out = kernel(z, *args)
    if kind == "pdf":
        out = out / s
    elif kind == "logpdf":
        out = out - log(s)
    if not good.all():
        out = poison(where(good, out, fill), np.broadcast_to(~ok, shape), [x, loc, scale] + values)
    return finish(out)


def discrete(dist, kind, kernel, k, shapes, loc, *, argcheck, safe):
    """``scipy.stats.<dist>.<kind>(k, *shapes, loc)`` from ``kernel(k, *shapes)`` (support k >= 0).

    ``k`` and ``loc`` are constants (a count has no derivative); the shape
    parameters are differentiable, replaced by ``safe`` where ``argcheck`` fails.
    For the distribution functions the kernel receives ``floor(k - loc)``.
    """
    fname = f"scipy.stats.{dist}.{kind}"
    k = plain(constant_arg(k, fname, "k (the count)"))
    loc = plain(constant_arg(loc, fname, "loc (an integer shift)"))
    values = [array_arg(v) for _, v in shapes]
    pv = [plain(v) for v in values]
    with np.errstate(all="ignore"):
        kk = k - loc
        if kind in ("pmf", "logpmf"):
            inside = (kk >= 0) & (np.floor(kk) == kk) & np.isfinite(kk)
        else:
            kk = np.floor(kk)
            inside = (kk >= 0) & np.isfinite(kk)
        ok = np.asarray(argcheck(*pv))
        shape = np.broadcast_shapes(kk.shape, *[p.shape for p in pv])
        good = np.broadcast_to(ok & inside, shape)
        below, above = FILLS[kind]
        fill = np.broadcast_to(np.where(kk >= np.inf, above, below), shape)
        fill = np.where(np.broadcast_to(~ok | np.isnan(kk), shape), np.nan, fill)
    if good.all():
        out = kernel(kk, *values)
    else:
        out = kernel(np.where(good, kk, 0.0), *[where(good, v, s) for v, s in zip(values, safe)])
        out = poison(where(good, out, fill), np.broadcast_to(~ok, shape), values)
    return finish(out)


def fill_distribution(namespace, scipy_dist, dist):
    """Add SciPy's other public methods of ``scipy_dist`` (``rvs``, ``ppf``, ...) to ``namespace``.

    They work on constants and refuse traced values by name.  The implemented
    functions already in ``namespace`` are kept.
    """
    for name in dir(scipy_dist):
        if name.startswith("_") or name in namespace:
            continue
        obj = getattr(scipy_dist, name, None)
        if callable(obj) and not isinstance(obj, type):
            namespace[name] = unsupported(obj, f"scipy.stats.{dist}.{name}")
