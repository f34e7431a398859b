"""``scipy.linalg`` with derivative rules (functions without rules refuse traced values by name).

The values are SciPy's; the rules are written with nablab's functions and with
the primitives of this module, so they nest to any order.  Complex arrays follow
HIPS autograd's convention (see :mod:`nablab.numpy.linalg`).

- ``solve_triangular`` reads one triangle of ``a`` (without its diagonal when
  ``unit_diagonal``): the other entries get a zero gradient.
- ``sqrtm``'s derivative solves a Sylvester equation with the square root
  itself, so it needs a root with no two eigenvalues summing to zero.
- ``expm``'s derivative is its Frechet derivative, computed as the corner of
  ``expm([[A, E], [0, A]])`` (so it differentiates again).
- ``cholesky``, ``cho_factor`` and ``eigh`` read one triangle (as
  :func:`nablab.numpy.linalg.cholesky` and ``eigh``); ``cho_factor`` leaves
  zeros in the other triangle where SciPy leaves arbitrary values.
- Batched inputs work where the installed SciPy batches them.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as _scipy_linalg

from nablab.autodiff.core import primitive, shape_of, value_of
from nablab.numpy import _namespace
from nablab.numpy import linalg as _nla
from nablab.numpy.linalg import (T as _T, _H, _c, _eigh_jvp, _eigh_layout, _eigh_vjp, _hermitian_from_triangle,
                                 _multi_output)
from nablab.numpy.products import matmul
from nablab.numpy.shape import as_array, concatenate, expand_dims, getitem, untake
from nablab.numpy.ufuncs import _is_complex, unbroadcast


def _ndim(x):
    return len(shape_of(x))


def _square_check(name, a):
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"{name}: needs square matrices in the last two axes, got shape {s}")


# --------------------------------------------------------------------------- solve_triangular

_TRANS = {0: "N", "N": "N", "n": "N", 1: "T", "T": "T", "t": "T", 2: "C", "C": "C", "c": "C"}


def _triangle(x, lower, unit_diagonal):
    """``x`` masked to the entries ``solve_triangular`` reads."""
    n = shape_of(x)[-1]
    k = -1 if unit_diagonal else 0
    mask = np.tril(np.ones((n, n)), k) if lower else np.triu(np.ones((n, n)), -k)
    return x * mask.astype(np.asarray(value_of(x)).real.dtype)


def _op(x, trans):
    return x if trans == "N" else _T(x) if trans == "T" else _H(x)


def _solve_triangular(a, b, trans="N", lower=False, unit_diagonal=False):
    return _scipy_linalg.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


def _columns(x, vector):
    return expand_dims(x, -1) if vector else x


def _tri_adjoint_solve(a, g, trans, lower, unit_diagonal):
    """``(op(A)^{-1})^T g``: a solve with the transpose flipped (conj(A) for trans="C")."""
    if trans == "N":
        return _tri_p(a, g, trans="T", lower=lower, unit_diagonal=unit_diagonal)
    if trans == "T":
        return _tri_p(a, g, trans="N", lower=lower, unit_diagonal=unit_diagonal)
    return _tri_p(_c(a), g, trans="N", lower=lower, unit_diagonal=unit_diagonal)


def _tri_vjp_b(g, ans, a, b, trans="N", lower=False, unit_diagonal=False):
    return unbroadcast(_tri_adjoint_solve(a, g, trans, lower, unit_diagonal), b)


def _tri_vjp_a(g, ans, a, b, trans="N", lower=False, unit_diagonal=False):
    vector = _ndim(b) == 1
    gb = _tri_adjoint_solve(a, g, trans, lower, unit_diagonal)
    w = -matmul(_columns(gb, vector), _T(_columns(ans, vector)))  # pairs with op(dA)
    w = w if trans == "N" else _T(w) if trans == "T" else _H(w)
    return unbroadcast(_triangle(w, lower, unit_diagonal), a)


def _tri_jvp_a(t, ans, a, b, trans="N", lower=False, unit_diagonal=False):
    vector = _ndim(b) == 1
    rhs = -matmul(_op(_triangle(t, lower, unit_diagonal), trans), _columns(ans, vector))
    rhs = rhs[..., 0] if vector else rhs
    return _tri_p(a, rhs, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


_tri_p = primitive(_solve_triangular, name="solve_triangular")
_tri_p.defvjp(_tri_vjp_a, _tri_vjp_b)
_tri_p.defjvp(_tri_jvp_a, lambda t, ans, a, b, **kw: _tri_p(a, t, **kw))


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """``scipy.linalg.solve_triangular``: ``op(A) x = b`` with ``op`` given by ``trans``
    (0/'N', 1/'T', 2/'C'), reading the ``lower`` or upper triangle of ``a``."""
    a, b = as_array(a), as_array(b)
    _square_check("solve_triangular", a)
    if trans not in _TRANS:
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    trans = _TRANS[trans]
    if trans == "C" and not _is_complex(a):
        trans = "T"
    return _tri_p(a, b, trans=trans, lower=bool(lower), unit_diagonal=bool(unit_diagonal))


# --------------------------------------------------------------------------- Sylvester, sqrtm, expm


def _sylvester_vjp(which):
    def rule(g, ans, a, b, q):
        qbar = _sylvester_p(_T(a), _T(b), g)  # the adjoint of X -> AX + XB is Y -> A^T Y + Y B^T
        if which == 0:
            return unbroadcast(-matmul(qbar, _T(ans)), a)
        if which == 1:
            return unbroadcast(-matmul(_T(ans), qbar), b)
        return unbroadcast(qbar, q)

    return rule


def _solve_sylvester(a, b, q):
    # SciPy mixes real and complex Schur forms wrongly (a real b with a complex q gives a wrong
    # answer), so all three share one dtype first.
    dtype = np.result_type(a, b, q, np.float64)
    return _scipy_linalg.solve_sylvester(*(np.asarray(x, dtype=dtype) for x in (a, b, q)))


_sylvester_p = primitive(_solve_sylvester, name="solve_sylvester")
_sylvester_p.defvjp(_sylvester_vjp(0), _sylvester_vjp(1), _sylvester_vjp(2))
_sylvester_p.defjvp(
    lambda t, ans, a, b, q: _sylvester_p(a, b, -matmul(t, ans)),
    lambda t, ans, a, b, q: _sylvester_p(a, b, -matmul(ans, t)),
    lambda t, ans, a, b, q: _sylvester_p(a, b, t),
)


def solve_sylvester(a, b, q):
    """``scipy.linalg.solve_sylvester``: X with ``A X + X B = Q``."""
    a, b, q = as_array(a), as_array(b), as_array(q)
    _square_check("solve_sylvester", a)
    _square_check("solve_sylvester", b)
    return _sylvester_p(a, b, q)


def _sqrtm(a):
    return _scipy_linalg.sqrtm(a)


# S S = A, so S dS + dS S = dA: a Sylvester equation in dS.
_sqrtm_p = primitive(_sqrtm, name="sqrtm")
_sqrtm_p.defvjp(lambda g, ans, a: unbroadcast(_sylvester_p(_T(ans), _T(ans), g), a))
_sqrtm_p.defjvp(lambda t, ans, a: _sylvester_p(ans, ans, t))


def sqrtm(A, disp=None, blocksize=None):
    """``scipy.linalg.sqrtm``: the principal square root (complex when the input needs it)."""
    if disp is False:
        raise NotImplementedError("sqrtm(disp=False) has no derivative rule; use the default")
    A = as_array(A)
    _square_check("sqrtm", A)
    return _sqrtm_p(A)


def _frechet_expm(a, e):
    """The Frechet derivative of expm at ``a`` in direction ``e``: a corner of one larger expm."""
    n = shape_of(a)[-1]
    zeros = np.zeros(shape_of(a), dtype=np.result_type(np.asarray(value_of(a)), np.asarray(value_of(e))))
    block = concatenate([concatenate([a, e], axis=-1), concatenate([zeros, a], axis=-1)], axis=-2)
    return _expm_p(block)[..., :n, n:]


_expm_p = primitive(_scipy_linalg.expm, name="expm")
_expm_p.defvjp(lambda g, ans, a: unbroadcast(_frechet_expm(_T(a), g), a))
_expm_p.defjvp(lambda t, ans, a: _frechet_expm(a, t))


def expm(A):
    """``scipy.linalg.expm``: the matrix exponential (batched)."""
    A = as_array(A)
    _square_check("expm", A)
    return _expm_p(A)


# --------------------------------------------------------------------------- solve_banded


def _band_index(l_and_u, n):
    """(rows of ab, columns, rows of the dense matrix) of the entries on the band."""
    lo, up = l_and_u
    r, j = np.meshgrid(np.arange(lo + up + 1), np.arange(n), indexing="ij")
    i = r - up + j
    ok = (i >= 0) & (i < n)
    return r[ok], j[ok], i[ok]


def _dense_from_band(l_and_u, ab):
    n = shape_of(ab)[-1]
    r, j, i = _band_index(l_and_u, n)
    return untake(getitem(ab, (r, j)), (i, j), (n, n))


def _band_from_dense(l_and_u, dense):
    n = shape_of(dense)[-1]
    r, j, i = _band_index(l_and_u, n)
    return untake(getitem(dense, (i, j)), (r, j), (l_and_u[0] + l_and_u[1] + 1, n))


def _transpose_band(l_and_u, ab):
    lo, up = l_and_u
    return (up, lo), _band_from_dense((up, lo), _T(_dense_from_band(l_and_u, ab)))


def _solve_banded(l_and_u, ab, b):
    return _scipy_linalg.solve_banded(l_and_u, ab, b)


def _banded_adjoint_solve(l_and_u, ab, g):
    lu_t, ab_t = _transpose_band(l_and_u, ab)
    return _banded_p(lu_t, ab_t, g)


def _banded_vjp_b(g, ans, l_and_u, ab, b):
    return unbroadcast(_banded_adjoint_solve(l_and_u, ab, g), b)


def _banded_vjp_ab(g, ans, l_and_u, ab, b):
    vector = _ndim(b) == 1
    gb = _banded_adjoint_solve(l_and_u, ab, g)
    return unbroadcast(_band_from_dense(l_and_u, -matmul(_columns(gb, vector), _T(_columns(ans, vector)))), ab)


def _banded_jvp_ab(t, ans, l_and_u, ab, b):
    vector = _ndim(b) == 1
    rhs = -matmul(_dense_from_band(l_and_u, t), _columns(ans, vector))
    return _banded_p(l_and_u, ab, rhs[..., 0] if vector else rhs)


_banded_p = primitive(_solve_banded, name="solve_banded", lists_are_arrays=False)
_banded_p.defvjp(None, _banded_vjp_ab, _banded_vjp_b)
_banded_p.defjvp(None, _banded_jvp_ab, lambda t, ans, l_and_u, ab, b: _banded_p(l_and_u, ab, t))


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """``scipy.linalg.solve_banded``: ``A x = b`` with ``A`` given by its ``(l, u)`` bands in ``ab``."""
    lo, up = (int(v) for v in np.asarray(value_of(l_and_u)).ravel())
    ab, b = as_array(ab), as_array(b)
    if _ndim(ab) != 2 or shape_of(ab)[0] != lo + up + 1:
        raise ValueError(f"solve_banded: ab must have shape ({lo + up + 1}, n) for (l, u) = ({lo}, {up}); "
                         f"got {shape_of(ab)}")
    return _banded_p((lo, up), ab, b)


# --------------------------------------------------------------------------- Cholesky and friends


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """``scipy.linalg.cholesky``: upper ``U`` with ``A = U^H U`` (lower ``L`` with ``lower=True``)."""
    return _nla.cholesky(a, upper=not lower)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """``scipy.linalg.cho_factor``: ``(c, lower)``; the unused triangle of ``c`` is zero."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """``scipy.linalg.cho_solve``: ``A x = b`` from the factor of :func:`cho_factor`."""
    c, lower = c_and_lower
    c = as_array(c)
    if lower:  # A = L L^H
        return solve_triangular(c, solve_triangular(c, b, lower=True), trans="C", lower=True)
    return solve_triangular(c, solve_triangular(c, b, trans="C", lower=False), lower=False)


def _symmetric_from_triangle(a, lower):
    n = shape_of(a)[-1]
    mask = np.tril(np.ones((n, n)), -1)
    part = a * (mask if lower else mask.T)
    return part + _T(part) + a * np.eye(n)


def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True,
          assume_a=None, transposed=False):
    """``scipy.linalg.solve`` for ``assume_a`` general, 'sym', 'her', 'pos' (one triangle read)
    and 'lower triangular' / 'upper triangular'."""
    a, b = as_array(a), as_array(b)
    if transposed:
        a = _T(a)
    kind = assume_a or "gen"
    if kind in ("gen", "general"):
        return _nla.solve(a, b)
    if kind in ("her", "hermitian", "pos", "positive definite"):
        return _nla.solve(_hermitian_from_triangle(a, lower=lower), b)
    if kind in ("sym", "symmetric"):
        return _nla.solve(_symmetric_from_triangle(a, lower), b)
    if kind in ("lower triangular", "upper triangular"):
        return solve_triangular(a, b, lower=kind.startswith("lower"))
    raise NotImplementedError(f"scipy.linalg.solve: assume_a={assume_a!r} has no derivative rule in nablab")


def inv(a, overwrite_a=False, check_finite=True):
    """``scipy.linalg.inv``."""
    return _nla.inv(a)


def det(a, overwrite_a=False, check_finite=True):
    """``scipy.linalg.det``."""
    return _nla.det(a)


def pinv(a, *, atol=None, rtol=None, return_rank=False, check_finite=True):
    """``scipy.linalg.pinv`` (``atol`` must be 0 or None); the derivative assumes a locally constant rank."""
    if atol:
        raise NotImplementedError("scipy.linalg.pinv(atol=...) is not supported; use rtol")
    result = _nla.pinv(a, rtol=rtol)
    if return_rank:
        return result, int(np.linalg.matrix_rank(np.asarray(value_of(a)), rtol=rtol))
    return result


# SciPy's own eigensolver (its eigenvector signs can differ from NumPy's), with eigh's rules.
_eigh_packed = _multi_output(lambda x, lower=True: _scipy_linalg.eigh(x, lower=lower), "scipy.linalg.eigh",
                             _eigh_layout, _eigh_vjp, _eigh_jvp)


def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):  # noqa: A002
    """``scipy.linalg.eigh`` of one matrix, read from one triangle (no generalized problem, no subsets)."""
    if b is not None or subset_by_index is not None or subset_by_value is not None:
        raise NotImplementedError("scipy.linalg.eigh: the generalized problem and subsets have no derivative rule")
    if driver is not None or type != 1:
        raise NotImplementedError("scipy.linalg.eigh: driver= and type= are not supported")
    a = as_array(a)
    _square_check("eigh", a)
    if eigvals_only:
        return _nla.eigvalsh(a, UPLO="L" if lower else "U")
    w, v = _eigh_packed(_hermitian_from_triangle(a, lower=bool(lower)), lower=bool(lower))
    return w, v


def eigvalsh(a, b=None, *, lower=True, overwrite_a=False, overwrite_b=False, type=1,  # noqa: A002
             check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):
    """``scipy.linalg.eigvalsh`` of one matrix."""
    return eigh(a, b, lower=lower, eigvals_only=True, subset_by_index=subset_by_index,
                subset_by_value=subset_by_value)


def eig(a, b=None, left=False, right=True, overwrite_a=False, overwrite_b=False, check_finite=True,
        homogeneous_eigvals=False):
    """``scipy.linalg.eig`` (right eigenvectors of one matrix)."""
    if b is not None or left or homogeneous_eigvals:
        raise NotImplementedError("scipy.linalg.eig: only right eigenvectors of one matrix are differentiable")
    w, v = _nla.eig(a)
    return (w, v) if right else w


def eigvals(a, b=None, overwrite_a=False, check_finite=True, homogeneous_eigvals=False):
    """``scipy.linalg.eigvals`` of one matrix."""
    return eig(a, b, right=False, homogeneous_eigvals=homogeneous_eigvals)


def svd(a, full_matrices=True, compute_uv=True, overwrite_a=False, check_finite=True,
        lapack_driver="gesdd"):
    """``scipy.linalg.svd`` (NumPy's, whatever the driver)."""
    result = _nla.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)
    return tuple(result) if compute_uv else result


def svdvals(a, overwrite_a=False, check_finite=True):
    """``scipy.linalg.svdvals``."""
    return _nla.svd(a, compute_uv=False)


def qr(a, overwrite_a=False, lwork=None, mode="full", pivoting=False, check_finite=True):
    """``scipy.linalg.qr`` without pivoting; mode 'full' needs a square or wide matrix."""
    if pivoting:
        raise NotImplementedError("scipy.linalg.qr(pivoting=True) has no derivative rule")
    modes = {"full": "complete", "economic": "reduced", "r": "r"}
    if mode not in modes:
        raise NotImplementedError(f"scipy.linalg.qr: mode={mode!r} has no derivative rule")
    a = as_array(a)
    result = _nla.qr(a, mode=modes[mode])
    if mode != "r":
        return tuple(result)
    m, n = shape_of(a)[-2:]
    if m > n:  # SciPy's R has the full M rows, the last M - N zero
        zeros = np.zeros(shape_of(a)[:-2] + (m - n, n), dtype=np.asarray(value_of(result)).dtype)
        result = concatenate([result, zeros], axis=-2)
    return (result,)


def norm(a, ord=None, axis=None, keepdims=False, check_finite=True):
    """``scipy.linalg.norm`` (NumPy's norms)."""
    return _nla.norm(a, ord=ord, axis=axis, keepdims=keepdims)


__all__ = [
    "solve_triangular", "solve_sylvester", "sqrtm", "expm", "solve_banded", "cholesky",
    "cho_factor", "cho_solve", "solve", "inv", "det", "pinv", "eigh", "eigvalsh", "eig",
    "eigvals", "svd", "svdvals", "qr", "norm",
]

_namespace.fill(globals(), _scipy_linalg, {n: globals()[n] for n in __all__}, prefix="scipy.linalg")
