"""nablab.scipy.stats: values as scipy.stats' (supports, fills, invalid parameters, broadcasting),
derivatives to second order in both modes (gradcheck), against HIPS autograd and torch to
1e-10, and refusals of what has no derivative."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given, settings, strategies as st

import nablab as nb
import nablab.numpy as nnp
import nablab.scipy.stats as nst
from nablab.autodiff.dispatch import UnsupportedFunctionError

RTOL = 1e-10
KINDS = ("pdf", "logpdf", "cdf", "logcdf", "sf", "logsf")
DENSITIES = ("pdf", "logpdf")
# distribution -> ((name, low, high) of each shape parameter, (low, high) of z = (x - loc) / scale)
CONTINUOUS = {
    "norm": ((), (-2.5, 2.5)),
    "t": ((("df", 1.5, 8.0),), (-3.0, 3.0)),
    "gamma": ((("a", 0.8, 4.0),), (0.2, 5.0)),
    "beta": ((("a", 0.8, 4.0), ("b", 0.8, 4.0)), (0.05, 0.95)),
    "chi2": ((("df", 1.5, 6.0),), (0.2, 6.0)),
}
CASES = [(d, k) for d in CONTINUOUS for k in KINDS]


def _draw(seed, dist, shape=(3,)):
    """Random (x, shapes, loc, scale) with z inside the support, broadcasting against each other."""
    rng = np.random.default_rng(seed)
    spec, (zlo, zhi) = CONTINUOUS[dist]
    shapes = [rng.uniform(lo, hi, (1,) + shape[1:]) for _, lo, hi in spec]
    loc = rng.uniform(-0.5, 0.5, shape[-1:])
    scale = rng.uniform(0.5, 2.0, (2, 1) + shape[1:]) if len(shape) == 1 else rng.uniform(0.5, 2.0, shape)
    x = loc + scale * rng.uniform(zlo, zhi, np.broadcast_shapes(loc.shape, scale.shape))
    return x, shapes, loc, scale


def _ours(dist, kind):
    return getattr(getattr(nst, dist), kind)


def _theirs(dist, kind):
    return getattr(getattr(ss, dist), kind)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("dist,kind", CASES)
def test_values_match_scipy(dist, kind):
    x, shapes, loc, scale = _draw(0, dist)
    np.testing.assert_allclose(_ours(dist, kind)(x, *shapes, loc, scale),
                               _theirs(dist, kind)(x, *shapes, loc, scale), rtol=1e-12)
    # keywords and defaults, a Python float in, a NumPy scalar out
    z = float(np.mean(CONTINUOUS[dist][1]))
    mine = _ours(dist, kind)(z, *[float(s.ravel()[0]) for s in shapes])
    assert isinstance(mine, np.float64)
    np.testing.assert_allclose(mine, _theirs(dist, kind)(z, *[s.ravel()[0] for s in shapes]), rtol=1e-12)
    np.testing.assert_allclose(_ours(dist, kind)(x, *shapes, scale=scale),
                               _theirs(dist, kind)(x, *shapes, scale=scale), rtol=1e-12)


@pytest.mark.parametrize("dist,kind", CASES)
def test_edges_match_scipy(dist, kind):
    """Outside and on the support, nan x, bad scale or shape: SciPy's fill values."""
    x = np.array([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.0, np.inf, np.nan])[:, None]
    spec = CONTINUOUS[dist][0]
    good = [0.5, 1.0, 2.5]
    shapes = [np.array(good + [-1.0, 2.0])[None, :] for _ in spec]
    scale = np.array([1.0, 1.0, 0.7, 1.3, -1.0])[None, :] if not spec else 1.0
    with np.errstate(all="ignore"):
        want = _theirs(dist, kind)(x, *shapes, 0.0, scale)
        got = _ours(dist, kind)(x, *shapes, 0.0, scale)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


# --------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("dist,kind", CASES)
def test_gradcheck_order_two_both_modes(dist, kind):
    x, shapes, loc, scale = _draw(1, dist)
    f = _ours(dist, kind)
    if kind in DENSITIES:
        nb.gradcheck(f, x, *shapes, loc, scale, modes=("fwd", "rev"), order=2)
    else:
        nb.gradcheck(lambda x, loc, scale: f(x, *shapes, loc, scale), x, loc, scale,
                     modes=("fwd", "rev"), order=2)


@pytest.mark.parametrize("dist,kind", [c for c in CASES if c[1] not in DENSITIES and c[0] != "norm"])
def test_distribution_functions_refuse_traced_shapes(dist, kind):
    x, shapes, loc, scale = _draw(2, dist)
    name = CONTINUOUS[dist][0][0][0]
    with pytest.raises(UnsupportedFunctionError, match=rf"scipy.stats.{dist}.{kind}: {name}"):
        nb.grad(lambda s: nnp.sum(_ours(dist, kind)(x, s, *shapes[1:], loc, scale)))(shapes[0])


@pytest.mark.parametrize("dist,kind", CASES)
def test_outside_support_zero_gradient_and_invalid_parameters_nan(dist, kind):
    spec, (zlo, zhi) = CONTINUOUS[dist]
    shapes = [np.float64(1.5) for _ in spec]
    f = _ours(dist, kind)
    if zlo > 0:  # a support bounded below: the value is constant there
        g = nb.grad(lambda x: nnp.sum(f(x, *shapes)))(np.array([-1.0, -2.0]))
        np.testing.assert_array_equal(g, 0.0)
    g = nb.grad(lambda s: nnp.sum(f(np.array([0.5, 0.6]), *shapes, 0.0, s)))(np.array([-1.0, 1.0]))
    assert np.isnan(g[0]) and np.isfinite(g[1])
    if spec and kind in DENSITIES:
        g = nb.grad(lambda a: nnp.sum(f(0.5, a, *shapes[1:])))(np.array([-1.0, 1.5]))
        assert np.isnan(g[0]) and np.isfinite(g[1])


def test_t_with_infinite_df_is_normal():
    x = np.array([-1.2, 0.3, 2.0])
    for kind in KINDS:
        np.testing.assert_allclose(nst.t.__dict__[kind](x, np.inf), getattr(ss.norm, kind)(x), rtol=1e-13)
        nb.gradcheck(lambda x: getattr(nst.t, kind)(x, np.array([np.inf, 3.0])[:, None]), x)
    nb.gradcheck(lambda df: nst.t.logpdf(x, df), np.array([[3.0], [40.0]]))


# --------------------------------------------------------------------------- poisson


def test_poisson_values_gradients_and_refusals():
    k = np.array([-1.0, 0.0, 1.0, 2.5, 3.0, 7.0, np.nan])[:, None]
    mu = np.array([0.0, 0.7, 2.3, -1.0])
    kinds = ("pmf", "logpmf", "cdf", "logcdf", "sf", "logsf")
    for kind in kinds:
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(getattr(nst.poisson, kind)(k, mu), getattr(ss.poisson, kind)(k, mu),
                                       rtol=1e-12, equal_nan=True)
            np.testing.assert_allclose(getattr(nst.poisson, kind)(k, mu, loc=1),
                                       getattr(ss.poisson, kind)(k, mu, loc=1), rtol=1e-12, equal_nan=True)
        nb.gradcheck(lambda m: getattr(nst.poisson, kind)(np.array([[0.0], [1.0], [4.0]]), m),
                     np.array([0.7, 2.3]), modes=("fwd", "rev"), order=2)
        g = nb.grad(lambda m: nnp.sum(getattr(nst.poisson, kind)(2.0, m)))(np.array([-1.0, 1.0]))
        assert np.isnan(g[0]) and np.isfinite(g[1])
        with pytest.raises(UnsupportedFunctionError, match="k"):
            nb.grad(lambda k: getattr(nst.poisson, kind)(k, 1.5))(2.0)
        with pytest.raises(UnsupportedFunctionError, match="loc"):
            nb.grad(lambda loc: getattr(nst.poisson, kind)(3.0, 1.5, loc))(1.0)
    # pmf at k = 0 is exp(-mu): slope -1 at mu = 0 too
    assert nb.grad(lambda m: nst.poisson.logpmf(0.0, m))(0.0) == -1.0


# --------------------------------------------------------------------------- dirichlet


ALPHA = np.array([1.5, 2.0, 0.8])
XS = np.array([[0.2, 0.1], [0.3, 0.6], [0.5, 0.3]])


def test_dirichlet_values():
    for kind in ("pdf", "logpdf"):
        for x in (XS[:, 0], XS[:2, 0], XS, XS[:2]):
            np.testing.assert_allclose(getattr(nst.dirichlet, kind)(x, ALPHA),
                                       getattr(ss.dirichlet, kind)(x, ALPHA), rtol=1e-13)
    for kind in ("mean", "var", "entropy"):
        np.testing.assert_allclose(getattr(nst.dirichlet, kind)(ALPHA), getattr(ss.dirichlet, kind)(ALPHA),
                                   rtol=1e-13)


def test_dirichlet_gradcheck():
    for kind in ("pdf", "logpdf"):
        f = getattr(nst.dirichlet, kind)
        nb.gradcheck(lambda a: f(XS, a), ALPHA, modes=("fwd", "rev"), order=2)
        # x moves along the simplex: normalized, or K - 1 free components
        nb.gradcheck(lambda x, a: f(x / nnp.sum(x), a), XS[:, 0], ALPHA, modes=("fwd", "rev"), order=2)
        nb.gradcheck(lambda x: f(x, ALPHA), XS[:2, 1], modes=("fwd", "rev"), order=2)
    for kind in ("mean", "var", "entropy"):
        nb.gradcheck(getattr(nst.dirichlet, kind), ALPHA, modes=("fwd", "rev"), order=2)


def test_dirichlet_errors_name_the_problem():
    with pytest.raises(ValueError, match="simplex"):
        nst.dirichlet.pdf(np.array([0.2, 0.3, 0.6]), ALPHA)
    with pytest.raises(ValueError, match="> 0"):
        nst.dirichlet.pdf(XS[:, 0], np.array([1.0, -1.0, 2.0]))
    with pytest.raises(ValueError, match="entries along its first axis"):
        nst.dirichlet.pdf(np.array([0.5, 0.5]), np.ones(4))
    with pytest.raises(ValueError, match="alpha is < 1"):
        nst.dirichlet.pdf(np.array([0.5, 0.5, 0.0]), ALPHA)


# --------------------------------------------------------------------------- multivariate normal

mvn = nst.multivariate_normal


def _psd(seed, d=3):
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T + np.eye(d)


@pytest.mark.parametrize("kind", DENSITIES)
def test_mvn_values(kind):
    rng = np.random.default_rng(3)
    cov, mean = _psd(3), rng.standard_normal(3)
    for x in (rng.standard_normal(3), rng.standard_normal((5, 3)), rng.standard_normal((2, 4, 3))):
        np.testing.assert_allclose(getattr(mvn, kind)(x, mean, cov),
                                   getattr(ss.multivariate_normal, kind)(x, mean, cov), rtol=1e-12)
    x = rng.standard_normal((5, 3))
    for c in (np.diag(cov), 1.7):
        np.testing.assert_allclose(getattr(mvn, kind)(x, mean, c), getattr(ss.multivariate_normal, kind)(x, mean, c),
                                   rtol=1e-12)
    for args in ((0.3,), (np.array([0.3, -0.2]), 0.1, 2.0), (x, None, cov)):
        np.testing.assert_allclose(getattr(mvn, kind)(*args), getattr(ss.multivariate_normal, kind)(*args),
                                   rtol=1e-12)


@pytest.mark.parametrize("kind", DENSITIES)
def test_mvn_gradcheck(kind):
    rng = np.random.default_rng(4)
    cov, mean, x = _psd(4), rng.standard_normal(3), rng.standard_normal((2, 3))
    f = getattr(mvn, kind)
    nb.gradcheck(f, x, mean, cov, modes=("fwd", "rev"), order=2)
    nb.gradcheck(f, x[0], mean, np.diag(cov), modes=("fwd", "rev"), order=2)
    nb.gradcheck(f, x[0], mean, 1.3, modes=("fwd", "rev"), order=2)


def test_mvn_cov_gradient_is_symmetric_and_entropy():
    cov, mean, x = _psd(5), np.zeros(3), np.array([0.3, -0.1, 0.8])
    g = nb.grad(lambda c: mvn.logpdf(x, mean, c))(cov)
    np.testing.assert_allclose(g, g.T, rtol=0, atol=1e-15)
    prec = np.linalg.inv(cov)
    np.testing.assert_allclose(g, 0.5 * (prec @ np.outer(x, x) @ prec - prec), rtol=1e-12)
    np.testing.assert_allclose(mvn.entropy(mean, cov), ss.multivariate_normal.entropy(mean, cov), rtol=1e-13)
    nb.gradcheck(lambda c: mvn.entropy(mean, c), cov, modes=("fwd", "rev"), order=2)
    np.testing.assert_allclose(nb.grad(lambda c: mvn.entropy(None, c))(cov), 0.5 * prec, rtol=1e-12)


def test_mvn_singular_covariance():
    cov = np.diag([1.0, 2.0, 0.0])
    mean = np.array([0.1, -0.2, 0.3])
    x = np.array([[0.4, 0.2, 0.3], [0.4, 0.2, 0.5]])  # the second row leaves the support
    for kind in DENSITIES:
        np.testing.assert_allclose(getattr(mvn, kind)(x, mean, cov, allow_singular=True),
                                   getattr(ss.multivariate_normal, kind)(x, mean, cov, allow_singular=True),
                                   rtol=1e-12)

        def along_support(x2, m, kind=kind):
            return getattr(mvn, kind)(nnp.concatenate([x2, m[2:]]), m, cov, allow_singular=True)

        nb.gradcheck(along_support, x[0, :2], mean, modes=("fwd", "rev"), order=2)
        with pytest.raises(np.linalg.LinAlgError, match="allow_singular=True"):
            getattr(mvn, kind)(x, mean, cov)
        with pytest.raises(UnsupportedFunctionError, match="singular"):
            nb.grad(lambda c: nnp.sum(getattr(mvn, kind)(x, mean, c, allow_singular=True)))(cov)
    with pytest.raises(UnsupportedFunctionError, match="singular"):
        nb.grad(lambda c: mvn.entropy(mean, c))(cov)
    np.testing.assert_allclose(mvn.entropy(mean, cov), ss.multivariate_normal.entropy(mean, cov), rtol=1e-13)
    with pytest.raises(ValueError, match="positive semidefinite"):
        mvn.logpdf(x, mean, -np.eye(3))
    with pytest.raises(ValueError, match="shape"):
        mvn.logpdf(x, mean, np.eye(2))


def test_other_methods_work_on_constants_and_refuse_traced_values():
    assert nst.norm.rvs(size=3, random_state=0).shape == (3,)
    np.testing.assert_allclose(nst.gamma.ppf(0.3, 2.0), ss.gamma.ppf(0.3, 2.0))
    assert nst.dirichlet.rvs(ALPHA, size=2, random_state=0).shape == (2, 3)
    with pytest.raises(UnsupportedFunctionError, match="scipy.stats.norm.ppf"):
        nb.grad(lambda q: nst.norm.ppf(q))(0.3)
    with pytest.raises(UnsupportedFunctionError, match="scipy.stats.multivariate_normal.cdf"):
        nb.grad(lambda m: mvn.cdf(np.zeros(2), m))(np.zeros(2))


# --------------------------------------------------------------------------- against HIPS autograd

autograd = pytest.importorskip("autograd")
import autograd.numpy as anp  # noqa: E402
import autograd.scipy.stats as ast  # noqa: E402
import autograd.scipy.stats.multivariate_normal as amvn  # noqa: E402

# (distribution, kind, argnums autograd differentiates)
AG_CASES = [("norm", k, (0, 1, 2)) for k in KINDS] + [
    ("t", "pdf", (0, 1, 2, 3)), ("t", "logpdf", (0, 1, 2, 3)), ("t", "cdf", (0, 2)), ("t", "logcdf", (0, 2)),
    ("gamma", "pdf", (0, 1)), ("gamma", "logpdf", (0, 1)), ("gamma", "cdf", (0,)),
    ("beta", "pdf", (0, 1, 2)), ("beta", "logpdf", (0, 1, 2)), ("beta", "cdf", (0,)),
    ("chi2", "pdf", (0,)), ("chi2", "logpdf", (0,)), ("chi2", "cdf", (0,)),
]


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol)


def _args(dist, seed):
    """Positional arguments in autograd's order (x, shapes..., [loc, scale] for norm and t)."""
    x, shapes, loc, scale = _draw(seed, dist)
    if dist in ("norm", "t"):
        return [x, *shapes, loc, scale]
    if dist == "chi2":  # autograd's chi2 gradient is zero for non-integer df
        shapes = [np.round(s) + 1.0 for s in shapes]
    return [(x - loc) / scale, *shapes]


@pytest.mark.parametrize("dist,kind,argnums", AG_CASES, ids=[f"{d}-{k}" for d, k, _ in AG_CASES])
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_against_autograd(dist, kind, argnums, seed):
    args = _args(dist, seed)
    f_nb, f_ag = _ours(dist, kind), getattr(getattr(ast, dist), kind)
    _close(f_nb(*args), f_ag(*args))
    for i in argnums:
        _close(nb.grad(lambda *a: nnp.sum(f_nb(*a)), i)(*args), autograd.grad(lambda *a: anp.sum(f_ag(*a)), i)(*args))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_discrete_and_multivariate_against_autograd(seed):
    rng = np.random.default_rng(seed)
    k, mu = np.round(rng.uniform(0, 6, (4, 3))), rng.uniform(0.2, 4.0, (4, 1))
    for kind in ("pmf", "logpmf", "cdf"):
        f_nb, f_ag = getattr(nst.poisson, kind), getattr(ast.poisson, kind)
        _close(f_nb(k, mu), f_ag(k, mu))
        _close(nb.grad(lambda m: nnp.sum(f_nb(k, m)))(mu), autograd.grad(lambda m: anp.sum(f_ag(k, m)))(mu))
    alpha = rng.uniform(1.2, 3.0, 4)
    x = rng.dirichlet(alpha)
    for kind in ("pdf", "logpdf"):
        f_nb, f_ag = getattr(nst.dirichlet, kind), getattr(ast.dirichlet, kind)
        _close(f_nb(x, alpha), f_ag(x, alpha))
        _close(nb.grad(f_nb, 1)(x, alpha), autograd.grad(f_ag, 1)(x, alpha))
        # x moves along the simplex (through x / sum x), where the density is defined
        _close(nb.grad(lambda x: f_nb(x / nnp.sum(x), alpha))(x),
               autograd.grad(lambda x: f_ag(x / anp.sum(x), alpha))(x))
    cov, mean, xs = _psd(seed % 1000), rng.standard_normal(3), rng.standard_normal((5, 3))
    for kind in DENSITIES:
        f_nb, f_ag = getattr(mvn, kind), getattr(amvn, kind)
        for xx in (xs, xs[0]):
            _close(f_nb(xx, mean, cov), f_ag(xx, mean, cov))
            for i in (0, 1, 2):
                _close(nb.grad(lambda *a: nnp.sum(f_nb(*a)), i)(xx, mean, cov),
                       autograd.grad(lambda *a: anp.sum(f_ag(*a)), i)(xx, mean, cov))
    _close(nb.grad(mvn.entropy, 1)(mean, cov), autograd.grad(amvn.entropy, 1)(mean, cov))


# --------------------------------------------------------------------------- against torch

torch = pytest.importorskip("torch")
import torch.distributions as td  # noqa: E402
import torch.func  # noqa: E402


def _torch_compare(f_nb, f_t, args, rtol=RTOL, rtol2=1e-9):
    """Value, gradient and Hessian (reverse over reverse here, forward over reverse in torch)."""
    targs = [torch.tensor(a) for a in args]
    _close(f_nb(*args), f_t(*targs).numpy(), rtol)
    nums = tuple(range(len(args)))
    g_nb = nb.grad(f_nb, nums)(*args)
    g_t = torch.func.grad(f_t, nums)(*targs)
    for a, b in zip(g_nb, g_t):
        _close(a, b.numpy(), rtol)
    for i in nums:
        h_nb = nb.jacrev(nb.grad(f_nb, i), i)(*args)
        h_t = torch.func.jacfwd(torch.func.grad(f_t, i), i)(*targs)
        _close(h_nb, h_t.numpy(), rtol2)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_univariate_log_densities_against_torch(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(3)
    loc, scale = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    _torch_compare(lambda x, m, s: nnp.sum(nst.norm.logpdf(x, m, s)),
                   lambda x, m, s: td.Normal(m, s).log_prob(x).sum(), [x, loc, scale])
    _torch_compare(lambda x, m, s: nnp.sum(nst.norm.cdf(x, m, s)),
                   lambda x, m, s: td.Normal(m, s).cdf(x).sum(), [x, loc, scale])
    df = rng.uniform(1.5, 8.0, 3)
    # torch's trigamma (second derivative in df) is good to ~1e-10 only
    _torch_compare(lambda x, d, m, s: nnp.sum(nst.t.logpdf(x, d, m, s)),
                   lambda x, d, m, s: td.StudentT(d, m, s).log_prob(x).sum(), [x, df, loc, scale], rtol2=1e-8)
    z, a, b = rng.uniform(0.1, 0.9, 3), rng.uniform(0.8, 4.0, 3), rng.uniform(0.8, 4.0, 3)
    _torch_compare(lambda z, a, s: nnp.sum(nst.gamma.logpdf(z, a, scale=s)),
                   lambda z, a, s: td.Gamma(a, 1.0 / s).log_prob(z).sum(), [z * 3, a, scale], rtol2=1e-8)
    _torch_compare(lambda z, a, b: nnp.sum(nst.beta.logpdf(z, a, b)),
                   lambda z, a, b: td.Beta(a, b).log_prob(z).sum(), [z, a, b], rtol2=1e-8)
    _torch_compare(lambda z, d: nnp.sum(nst.chi2.logpdf(z, d)),
                   lambda z, d: td.Chi2(d).log_prob(z).sum(), [z * 4, df], rtol2=1e-8)
    k = np.round(rng.uniform(0, 6, 3))
    _torch_compare(lambda m: nnp.sum(nst.poisson.logpmf(k, m)),
                   lambda m: td.Poisson(m).log_prob(torch.tensor(k)).sum(), [scale])


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_multivariate_against_torch(seed):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(0.8, 3.0, 4)
    x = rng.dirichlet(alpha + 1.0)
    _torch_compare(lambda a: nst.dirichlet.logpdf(x, a),
                   lambda a: td.Dirichlet(a).log_prob(torch.tensor(x)), [alpha], rtol2=1e-8)
    # the entropy's gradient holds trigamma, which torch computes to ~1e-10 only
    _torch_compare(nst.dirichlet.entropy, lambda a: td.Dirichlet(a).entropy(), [alpha], rtol=1e-8, rtol2=1e-8)
    cov, mean, xs = _psd(seed % 1000), rng.standard_normal(3), rng.standard_normal((4, 3))

    def sym(c):
        return 0.5 * (c + c.T)

    _torch_compare(lambda x, m, c: nnp.sum(mvn.logpdf(x, m, c)),
                   lambda x, m, c: td.MultivariateNormal(m, sym(c)).log_prob(x).sum(), [xs, mean, cov])
    _torch_compare(lambda c: mvn.entropy(mean, c),
                   lambda c: td.MultivariateNormal(torch.tensor(mean), sym(c)).entropy(), [cov])
