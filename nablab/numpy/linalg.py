"""``numpy.linalg`` with derivative rules (reverse and forward, nesting to any order).

Conventions and assumptions:

- Complex arrays follow HIPS autograd's convention (a VJP multiplies by the
  derivative without conjugating; see :mod:`nablab.numpy.ufuncs`).  Rules of
  functions that are not holomorphic (``eigh``, ``svd``, ``cholesky``, ``pinv``)
  are derived for the real pairing ``Re tr(X^H Y)`` and turned into this
  convention by conjugating the cotangent on the way in and out (``_std_vjp``).
- ``eigh``, ``eigvalsh``, ``cholesky`` and ``svd``/``pinv`` with ``hermitian=True``
  read one triangle of their input, as LAPACK does; their derivative is that of
  the function NumPy computes, so the other triangle gets a zero gradient (and
  the imaginary part of the diagonal of a complex input too).  For a symmetric input built from parameters the
  gradient with respect to the parameters is the usual one.
- Eigenvector and singular-vector derivatives assume distinct eigenvalues
  (singular values): they divide by their gaps.  A cotangent that is exactly
  zero on the vectors skips those terms, so eigenvalues alone are fine at a
  degeneracy.  Complex eigenvectors and singular vectors are defined only up
  to a phase: the derivative is that of the phase that does not turn (the
  diagonal of ``V^H dV`` is real), so compare phase-free quantities.
- ``svd(full_matrices=True)`` of a non-square matrix: the extra columns of
  ``U`` (rows of ``Vh``) are any orthonormal basis of the complement; their
  derivative is that of the basis that does not turn within the complement
  (``U2^H dU2 = 0``).  Everything that does not depend on that choice (the
  thin factors, the projector ``U2 U2^H``) has its true derivative.
- ``pinv`` and ``lstsq`` assume the rank is locally constant (Golub and
  Pereyra, 1973).
- ``norm`` of a zero vector (2-norm, p-norms, Frobenius) has derivative 0 (a
  subgradient), as in PyTorch; so has a p-norm with p < 1 at a zero entry (where
  ``|x|^p`` has an infinite slope), and so, for p < 0, a vector with a zero
  entry (its norm is 0); ``max``/``min`` based norms share ties equally.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from nablab.autodiff.core import Tensor, any_entry, plain_value, primitive, raw_value_of, shape_of, value_of
from nablab.autodiff.dispatch import nondifferentiable, unbox_all
from nablab.numpy.products import einsum, matmul, tensordot as _tensordot, cross as _cross
from nablab.numpy.reductions import max as _max, min as _min, normalize_axis, sum as _sum
from nablab.numpy.shape import as_array, concatenate, expand_dims, moveaxis, ravel, reshape, swapaxes
from nablab.numpy.ufuncs import _is_complex, abs as _abs, conj, exp, imag, real, sqrt, unbroadcast, where

LinAlgError = np.linalg.LinAlgError

# --------------------------------------------------------------------------- helpers


def _ndim(x):
    return len(shape_of(x))


def T(x):
    """Swap the last two axes (a batched transpose)."""
    return swapaxes(x, -1, -2)


def _H(x):
    """The conjugate transpose of the last two axes."""
    return conj(T(x)) if _is_complex(x) else T(x)


def _c(x):
    return conj(x) if _is_complex(x) else x


def _dot(a, b):
    """Batched matrix product ``a @ b`` (autograd.numpy.linalg's ``_dot``)."""
    return matmul(a, b)


def _real_dtype(x):
    v = np.asarray(raw_value_of(x))  # the dtype only (inside vmap value_of keeps the batch box)
    return v.real.dtype if v.dtype.kind in "fc" else np.float64


def _eye(n, like):
    return np.eye(n, dtype=_real_dtype(like))


def _diag_part(x):
    return einsum("...ii->...i", x)


def _diag_matrix(d):
    return expand_dims(d, -1) * _eye(shape_of(d)[-1], d)


def _rmul_diag(x, d):
    """``x @ diag(d)``."""
    return x * expand_dims(d, -2)


def _lmul_diag(d, x):
    """``diag(d) @ x``."""
    return expand_dims(d, -1) * x


def _trace(x):
    return einsum("...ii->...", x)


def _inverse_gaps(d):
    """``F[i, j] = 1 / (d[j] - d[i])`` off the diagonal, 0 on it."""
    eye = _eye(shape_of(d)[-1], d)
    return (1.0 - eye) / (expand_dims(d, -2) - expand_dims(d, -1) + eye)


def _is_zero(x):
    return not np.any(np.asarray(value_of(x)))


def _square_check(name, a):
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise LinAlgError(f"{name}: needs square matrices in the last two axes, got shape {s}")


def _std_vjp(rule):
    """A VJP written for the pairing Re tr(X^H Y), turned into autograd's convention.

    Under that pairing the cotangent is the conjugate of autograd's, so the
    cotangent is conjugated on the way in and the result on the way out.
    """
    def wrapped(g, *args, **kwargs):
        return _c(rule(_c(g), *args, **kwargs))

    return wrapped


# Several outputs travel as one array: the parts are flattened after the batch
# axes and joined along the last axis, so the engine sees one primitive with one
# output; unpacking is slicing and reshaping, which differentiate.

def _pack_values(parts, batch):
    dtype = np.result_type(*parts)
    return np.concatenate([np.asarray(p, dtype=dtype).reshape(batch + (-1,)) for p in parts], axis=-1)


def _pack(parts, batch):
    complex_ = builtins.any(_is_complex(p) for p in parts)
    flat = [reshape(p + 0j if complex_ and not _is_complex(p) else p, batch + (-1,)) for p in parts]
    return concatenate(flat, axis=-1)


def _unpack(packed, layout):
    """The parts of a packed array; ``layout`` lists (shape, is_real) after the batch axes."""
    batch = shape_of(packed)[:-1]
    parts, start = [], 0
    for shape, is_real in layout:
        size = math.prod(shape)
        part = reshape(packed[..., start:start + size], batch + shape)
        parts.append(real(part) if is_real else part)
        start += size
    return parts


def _multi_output(fn, name, layout, vjp, jvp):
    """A primitive for ``fn(x, **kw)`` returning several arrays (see ``_pack``).

    ``layout(shape, **kw)`` gives the parts' (shape, is_real); ``vjp(gs, outs, x, **kw)``
    gets the parts' cotangents and values; ``jvp(t, outs, x, **kw)`` returns the parts' tangents.
    """
    def forward(x, **kw):
        x = np.asarray(x)
        return _pack_values(fn(x, **kw), x.shape[:-2])

    prim = primitive(forward, name=name)

    def vjp_rule(g, ans, x, **kw):
        lay = layout(shape_of(x), **kw)
        return unbroadcast(vjp(_unpack(g, lay), _unpack(ans, lay), x, **kw), x)

    def jvp_rule(t, ans, x, **kw):
        lay = layout(shape_of(x), **kw)
        return _pack(jvp(t, _unpack(ans, lay), x, **kw), shape_of(x)[:-2])

    prim.defvjp(vjp_rule)
    prim.defjvp(jvp_rule)
    return lambda x, **kw: _unpack(prim(x, **kw), layout(shape_of(x), **kw))


def _hermitian_from_triangle(a, lower=True):
    """The Hermitian matrix LAPACK sees when it reads one triangle of ``a`` (real diagonal)."""
    n = shape_of(a)[-1]
    mask = np.tril(np.ones((n, n), dtype=_real_dtype(a)), -1)
    part = a * (mask if lower else mask.T)
    return part + _H(part) + real(a) * _eye(n, a)


# --------------------------------------------------------------------------- inv, solve, det


_inv_p = primitive(np.linalg.inv, name="inv")
_inv_p.defvjp(lambda g, ans, a: unbroadcast(-matmul(matmul(T(ans), g), T(ans)), a))
_inv_p.defjvp(lambda t, ans, a: -matmul(matmul(ans, t), ans))


def inv(a):
    """``np.linalg.inv`` (batched)."""
    a = as_array(a)
    _square_check("inv", a)
    return _inv_p(a)


def _solve_vector(b):
    return _ndim(b) == 1


def _as_columns(x, vector):
    return expand_dims(x, -1) if vector else x


def _from_columns(x, vector):
    return x[..., 0] if vector else x


def _solve_cols(a, rhs, vector):
    """``a^{-1} rhs`` where ``rhs`` is a batch of vectors (``vector``) or of matrices."""
    if vector:
        return _solve_p(a, expand_dims(rhs, -1))[..., 0]
    return _solve_p(a, rhs)


_solve_p = primitive(np.linalg.solve, name="solve")
_solve_p.defvjp(
    lambda g, ans, a, b: unbroadcast(
        -matmul(_as_columns(_solve_cols(T(a), g, _solve_vector(b)), _solve_vector(b)),
                T(_as_columns(ans, _solve_vector(b)))), a),
    lambda g, ans, a, b: unbroadcast(_solve_cols(T(a), g, _solve_vector(b)), b),
)
_solve_p.defjvp(
    lambda t, ans, a, b: _solve_cols(a, -_from_columns(matmul(t, _as_columns(ans, _solve_vector(b))),
                                                        _solve_vector(b)), _solve_vector(b)),
    lambda t, ans, a, b: _solve_cols(a, t, _solve_vector(b)),
)


def solve(a, b):
    """``np.linalg.solve``: ``b`` of shape (M,) is a vector, (..., M, K) a batch of matrices."""
    a, b = as_array(a), as_array(b)
    _square_check("solve", a)
    return _solve_p(a, b)


def _det_grad_error(fn):
    def rule(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LinAlgError as err:
            raise LinAlgError(
                f"the derivative of det/slogdet at a singular matrix needs its adjugate, which nablab "
                f"does not compute ({err})"
            ) from None

    return rule


_det_p = primitive(np.linalg.det, name="det")
_det_p.defvjp(_det_grad_error(lambda g, ans, a: unbroadcast(
    expand_dims(g * ans, (-1, -2)) * T(inv(a)), a)))
_det_p.defjvp(_det_grad_error(lambda t, ans, a: ans * _trace(solve(a, t))))


def det(a):
    """``np.linalg.det`` (batched; holomorphic for complex input)."""
    a = as_array(a)
    _square_check("det", a)
    return _det_p(a)


def _logdet(a):
    sign, logabs = np.linalg.slogdet(a)
    return logabs + 1j * np.angle(sign) if np.iscomplexobj(sign) else logabs


# log|det| for real input; the complex logarithm of det (holomorphic) for complex input.
_logdet_p = primitive(_logdet, name="slogdet")
_logdet_p.defvjp(_det_grad_error(lambda g, ans, a: unbroadcast(expand_dims(g, (-1, -2)) * T(inv(a)), a)))
_logdet_p.defjvp(_det_grad_error(lambda t, ans, a: _trace(solve(a, t))))

_SlogdetResult = type(np.linalg.slogdet(np.eye(1)))


def slogdet(a):
    """``np.linalg.slogdet``: (sign, log|det|); for complex input the sign is differentiable too."""
    a = as_array(a)
    _square_check("slogdet", a)
    logdet = _logdet_p(a)
    if not _is_complex(logdet):
        plain = value_of(a)
        if isinstance(plain, Tensor):  # batched by vmap: the sign of the determinant, per example
            return _SlogdetResult(np.sign(_det_p(plain)), logdet)
        return _SlogdetResult(np.linalg.slogdet(plain)[0], logdet)
    logabs = real(logdet)
    zero = np.isneginf(np.asarray(value_of(logabs)))
    sign = exp(1j * imag(logdet))
    return _SlogdetResult(where(zero, 0.0, sign) if zero.any() else sign, logabs)


# --------------------------------------------------------------------------- cholesky


def _phi(x):
    """The lower triangle of ``x`` with its diagonal halved (Murray 2016's Phi)."""
    n = shape_of(x)[-1]
    return x * (np.tril(np.ones((n, n), dtype=_real_dtype(x)), -1) + 0.5 * _eye(n, x))


def _cholesky_jvp(t, ans, h, upper=False):
    # dL = L Phi(L^{-1} dH L^{-H})  (Murray 2016, "Differentiation of the Cholesky decomposition")
    L = _H(ans) if upper else ans
    inner = _solve_p(L, _H(_solve_p(L, _H(t))))
    dL = matmul(L, _phi(inner))
    return _H(dL) if upper else dL


def _cholesky_vjp_std(gL, L):
    # H_bar = L^{-H} Phi(L^H L_bar) L^{-1}  (Murray 2016, reverse mode)
    y = _phi(matmul(_H(L), gL))
    return _solve_p(_H(L), _H(_solve_p(_H(L), _H(y))))


def _cholesky_vjp(g, ans, h, upper=False):
    # U = L^H: its cotangent reaches L as conj(G_U)^T.
    L, gL = (_H(ans), _H(g)) if upper else (ans, g)
    return unbroadcast(_std_vjp(_cholesky_vjp_std)(gL, L), h)


_cholesky_p = primitive(lambda h, upper=False: np.linalg.cholesky(h, upper=upper), name="cholesky")
_cholesky_p.defvjp(_cholesky_vjp)
_cholesky_p.defjvp(_cholesky_jvp)


def cholesky(a, /, *, upper=False):
    """``np.linalg.cholesky``: reads the lower triangle (the upper one with ``upper=True``)."""
    a = as_array(a)
    _square_check("cholesky", a)
    return _cholesky_p(_hermitian_from_triangle(a, lower=not upper), upper=bool(upper))


# --------------------------------------------------------------------------- eigh, eigvalsh


def _eigh_layout(shape, **kw):
    n = shape[-1]
    return [((n,), True), ((n, n), False)]


def _eigh_jvp(t, outs, h, **kw):
    w, v = outs
    dp = matmul(matmul(_H(v), t), v)
    dw = real(_diag_part(dp))
    dv = matmul(v, _inverse_gaps(w) * dp)
    return [dw, dv]


def _eigh_vjp(gs, outs, h, **kw):
    gw, gv = gs
    w, v = outs
    inner = _diag_matrix(gw)
    if not _is_zero(gv):  # skipped when only eigenvalues matter: no division by gaps
        inner = inner + _inverse_gaps(w) * matmul(T(v), gv)
    return matmul(matmul(_c(v), inner), T(v))


# NumPy is called with the caller's UPLO on a matrix holding that same triangle, so the
# eigenvectors' phases are exactly NumPy's.
_eigh_packed = _multi_output(lambda x, UPLO="L": np.linalg.eigh(x, UPLO), "eigh", _eigh_layout, _eigh_vjp, _eigh_jvp)
_EighResult = type(np.linalg.eigh(np.eye(1)))


def eigh(a, UPLO="L"):
    """``np.linalg.eigh``: eigenvalues (ascending) and eigenvectors of a Hermitian matrix,
    read from its lower (``UPLO='L'``) or upper triangle."""
    a = as_array(a)
    _square_check("eigh", a)
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    w, v = _eigh_packed(_hermitian_from_triangle(a, lower=UPLO == "L"), UPLO=UPLO)
    return _EighResult(w, v)


def _eigvalsh_vjp(g, ans, h, UPLO="L"):
    _, v = _eigh_packed(h)
    return unbroadcast(matmul(_rmul_diag(_c(v), g), T(v)), h)


def _eigvalsh_jvp(t, ans, h, UPLO="L"):
    _, v = _eigh_packed(h)
    return real(einsum("...ji,...jk,...ki->...i", _c(v), t, v))


_eigvalsh_p = primitive(np.linalg.eigvalsh, name="eigvalsh")
_eigvalsh_p.defvjp(_eigvalsh_vjp)
_eigvalsh_p.defjvp(_eigvalsh_jvp)


def eigvalsh(a, UPLO="L"):
    """``np.linalg.eigvalsh``: eigenvalues of a Hermitian matrix read from one triangle."""
    a = as_array(a)
    _square_check("eigvalsh", a)
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigvalsh: UPLO must be 'L' or 'U', got {UPLO!r}")
    return _eigvalsh_p(_hermitian_from_triangle(a, lower=UPLO == "L"), UPLO=UPLO)


# --------------------------------------------------------------------------- eig, eigvals


def _eig_layout(shape, **kw):
    n = shape[-1]
    return [((n,), False), ((n, n), False)]


def _eig_jvp(t, outs, a):
    e, u = outs
    dp = _solve_p(u, matmul(t, u))
    omega = _inverse_gaps(e) * dp
    # Unit-norm eigenvectors (as NumPy returns them) with a phase that does not turn.
    keep_norm = real(_diag_part(matmul(matmul(_H(u), u), omega)))
    return [_diag_part(dp), matmul(u, omega - _diag_matrix(keep_norm))]


def _eig_vjp(gs, outs, a):
    ge, gu = gs
    e, u = outs
    ut = T(u)
    inner = _diag_matrix(ge)
    if not _is_zero(gu):
        utgu = matmul(ut, gu)
        keep_norm = matmul(matmul(ut, _c(u)), _diag_matrix(real(_diag_part(utgu))))
        inner = inner + _inverse_gaps(e) * (utgu - keep_norm)
    return _solve_p(ut, matmul(inner, ut))


_eig_packed = _multi_output(lambda x: np.linalg.eig(x), "eig", _eig_layout, _eig_vjp, _eig_jvp)
_EigResult = type(np.linalg.eig(np.eye(1)))


def eig(a):
    """``np.linalg.eig``: eigenvalues and unit-norm eigenvectors (columns) of a square matrix."""
    a = as_array(a)
    _square_check("eig", a)
    w, v = _eig_packed(a)
    return _EigResult(w, v)


def eigvals(a):
    """``np.linalg.eigvals``, as the eigenvalues of :func:`eig` (same order and values)."""
    a = as_array(a)
    _square_check("eigvals", a)
    return _eig_packed(a)[0]


# --------------------------------------------------------------------------- svd


def _svd_layout(shape, full_matrices=False, compute_uv=True, hermitian=False):
    m, n = shape[-2:]
    k = min(m, n)
    cu, cv = (m, n) if full_matrices else (k, k)
    return [((m, cu), False), ((k,), True), ((cv, n), False)]


def _svd_thin_jvp(t, u, s, v):
    m, n = shape_of(u)[-2], shape_of(v)[-2]
    k = shape_of(s)[-1]
    dp = matmul(matmul(_H(u), t), v)
    ds = real(_diag_part(dp))
    f = _inverse_gaps(s * s)
    dps, sdp = _rmul_diag(dp, s), _lmul_diag(s, dp)
    omega_u = f * (dps + _H(dps))
    omega_v = f * (sdp + _H(sdp))
    if _is_complex(dp):  # the phase of each pair (u_i, v_i) is put on u_i
        omega_u = omega_u + _diag_matrix(1j * imag(_diag_part(dp)) / s)
    du, dv = matmul(u, omega_u), matmul(v, omega_v)
    if m > k:
        du = du + _rmul_diag(matmul(t, v) - matmul(u, dp), 1.0 / s)
    if n > k:
        dv = dv + _rmul_diag(matmul(_H(t), u) - matmul(v, _H(dp)), 1.0 / s)
    return du, ds, dv


def _svd_jvp(t, outs, a, full_matrices=False, compute_uv=True, hermitian=False):
    u, s, vh = outs
    m, n = shape_of(a)[-2:]
    k = min(m, n)
    v = _H(vh)
    if full_matrices and m > k:
        u1, u2 = u[..., :k], u[..., k:]
        du1, ds, dv = _svd_thin_jvp(t, u1, s, v)
        # The complement does not turn within itself: U2^H dU2 = 0.
        du = concatenate([du1, -matmul(u1, matmul(_H(du1), u2))], axis=-1)
    elif full_matrices and n > k:
        v1, v2 = v[..., :k], v[..., k:]
        du, ds, dv1 = _svd_thin_jvp(t, u, s, v1)
        dv = concatenate([dv1, -matmul(v1, matmul(_H(dv1), v2))], axis=-1)
    else:
        du, ds, dv = _svd_thin_jvp(t, u, s, v)
    return [du, ds, _H(dv)]


def _svd_thin_vjp_std(gu, gs, gv, u, s, v):
    m, n = shape_of(u)[-2], shape_of(v)[-2]
    k = shape_of(s)[-1]
    if gu is None and gv is None:
        return matmul(_rmul_diag(u, gs), _H(v))
    gu = 0.0 * u if gu is None else gu
    gv = 0.0 * v if gv is None else gv
    f = _inverse_gaps(s * s)
    mu, nv = matmul(_H(u), gu), matmul(_H(v), gv)
    p = _diag_matrix(gs) + _rmul_diag(f * (mu - _H(mu)), s) + _lmul_diag(s, f * (nv - _H(nv)))
    if _is_complex(mu):
        p = p + _diag_matrix(1j * imag(_diag_part(mu)) / s)
    grad = matmul(matmul(u, p), _H(v))
    if m > k:
        grad = grad + matmul(_rmul_diag(gu - matmul(u, mu), 1.0 / s), _H(v))
    if n > k:
        grad = grad + matmul(_rmul_diag(u, 1.0 / s), _H(gv - matmul(v, nv)))
    return grad


def _svd_vjp(gs_, outs, a, full_matrices=False, compute_uv=True, hermitian=False):
    g_u, g_s, g_vh = gs_
    u, s, vh = outs
    m, n = shape_of(a)[-2:]
    k = min(m, n)
    v = _H(vh)
    # Under the pairing Re tr(X^H Y): U's cotangent is conj(g_u), V's is g_vh^T.
    gu = None if _is_zero(g_u) else _c(g_u)
    gv = None if _is_zero(g_vh) else T(g_vh)
    if full_matrices and m > k:
        u1, u2 = u[..., :k], u[..., k:]
        if gu is not None:
            gu1, gu2 = gu[..., :k], gu[..., k:]
            gu = gu1 - matmul(u2, matmul(_H(gu2), u1))
        u = u1
    elif full_matrices and n > k:
        v1, v2 = v[..., :k], v[..., k:]
        if gv is not None:
            gv1, gv2 = gv[..., :k], gv[..., k:]
            gv = gv1 - matmul(v2, matmul(_H(gv2), v1))
        v = v1
    return _c(_svd_thin_vjp_std(gu, g_s, gv, u, s, v))


_svd_packed = _multi_output(
    lambda x, full_matrices=False, compute_uv=True, hermitian=False: np.linalg.svd(
        x, full_matrices=full_matrices, hermitian=hermitian),
    "svd", _svd_layout, _svd_vjp, _svd_jvp,
)


def _svd_thin(a):
    u, s, vh = _svd_packed(a, full_matrices=False)
    return u, s, _H(vh)


def _svdvals_vjp(g, ans, a, hermitian=False):
    u, _, v = _svd_thin(a)
    return unbroadcast(_c(matmul(_rmul_diag(u, g), _H(v))), a)


def _svdvals_jvp(t, ans, a, hermitian=False):
    u, _, v = _svd_thin(a)
    return real(einsum("...ji,...jk,...ki->...i", _c(u), t, v))


_svdvals_p = primitive(
    lambda x, hermitian=False: np.linalg.svd(x, compute_uv=False, hermitian=hermitian), name="svdvals")
_svdvals_p.defvjp(_svdvals_vjp)
_svdvals_p.defjvp(_svdvals_jvp)
_SVDResult = type(np.linalg.svd(np.eye(1)))


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """``np.linalg.svd``: (U, S, Vh) or S alone, batched; see the module notes on
    ``full_matrices=True`` for non-square input and on distinct singular values."""
    a = as_array(a)
    if _ndim(a) < 2:
        raise LinAlgError(f"svd: needs at least 2 dimensions, got shape {shape_of(a)}")
    if hermitian:  # NumPy then reads the lower triangle only (through eigh)
        _square_check("svd", a)
        a = _hermitian_from_triangle(a, lower=True)
    if not compute_uv:
        return _svdvals_p(a, hermitian=bool(hermitian))
    m, n = shape_of(a)[-2:]
    u, s, vh = _svd_packed(a, full_matrices=bool(full_matrices) and m != n, hermitian=bool(hermitian))
    return _SVDResult(u, s, vh)


def svdvals(x, /):
    """``np.linalg.svdvals``: the singular values."""
    return svd(x, compute_uv=False)


# --------------------------------------------------------------------------- pinv, lstsq


def _pinv(a, rcond=None, hermitian=False):
    return np.linalg.pinv(a, rcond=rcond, hermitian=hermitian) if rcond is not None else \
        np.linalg.pinv(a, hermitian=hermitian)


def _pinv_jvp(t, x, a, rcond=None, hermitian=False):
    # Golub and Pereyra (1973), for locally constant rank.
    m, n = shape_of(a)[-2:]
    left = _eye(m, a) - matmul(a, x)
    right = _eye(n, a) - matmul(x, a)
    return (-matmul(matmul(x, t), x) + matmul(matmul(matmul(x, _H(x)), _H(t)), left)
            + matmul(matmul(right, _H(t)), matmul(_H(x), x)))


def _pinv_vjp_std(g, x, a, rcond=None, hermitian=False):
    m, n = shape_of(a)[-2:]
    left = _eye(m, a) - matmul(a, x)
    right = _eye(n, a) - matmul(x, a)
    return (-matmul(matmul(_H(x), g), _H(x)) + matmul(matmul(left, _H(g)), matmul(x, _H(x)))
            + matmul(matmul(matmul(_H(x), x), _H(g)), right))


_pinv_p = primitive(_pinv, name="pinv")
_pinv_p.defvjp(lambda g, ans, a, **kw: unbroadcast(_std_vjp(_pinv_vjp_std)(g, ans, a, **kw), a))
_pinv_p.defjvp(_pinv_jvp)


def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """``np.linalg.pinv``; its derivative assumes the rank does not change nearby."""
    a = as_array(a)
    if rtol is not None:
        if rcond is not None:
            raise ValueError("pinv: give rcond or rtol, not both")
        rcond = rtol
    if rcond is not None:
        rcond = np.asarray(unbox_all(rcond))
    if hermitian:  # NumPy then reads the lower triangle only (through eigh)
        _square_check("pinv", a)
        a = _hermitian_from_triangle(a, lower=True)
    return _pinv_p(a, rcond=rcond, hermitian=bool(hermitian))


def _lstsq_x(a, b, rcond=None):
    return np.linalg.lstsq(a, b, rcond=rcond)[0]


def _lstsq_jvp_a(t, x, a, b, rcond=None):
    return matmul(_pinv_jvp(t, pinv(a, rcond), a), b)


_lstsq_p = primitive(_lstsq_x, name="lstsq")
_lstsq_p.defvjp(
    lambda g, ans, a, b, rcond=None: _std_vjp(_pinv_vjp_std)(
        matmul(_as_columns(g, _ndim(b) == 1), T(_as_columns(b, _ndim(b) == 1))), pinv(a, rcond), a),
    lambda g, ans, a, b, rcond=None: _from_columns(
        matmul(T(pinv(a, rcond)), _as_columns(g, _ndim(b) == 1)), _ndim(b) == 1),
)
_lstsq_p.defjvp(
    lambda t, ans, a, b, rcond=None: _from_columns(
        matmul(_pinv_jvp(t, pinv(a, rcond), a), _as_columns(b, _ndim(b) == 1)), _ndim(b) == 1),
    lambda t, ans, a, b, rcond=None: matmul(pinv(a, rcond), t),
)


def lstsq(a, b, rcond=None):
    """``np.linalg.lstsq``: (x, residuals, rank, s); x's derivative assumes a locally constant rank."""
    a, b = as_array(a), as_array(b)
    if _ndim(a) != 2 or _ndim(b) not in (1, 2):
        raise LinAlgError(f"lstsq: a must be 2-D and b 1-D or 2-D; got shapes {shape_of(a)} and {shape_of(b)}")
    _, res_value, rank, _ = np.linalg.lstsq(np.asarray(value_of(a)), np.asarray(value_of(b)), rcond=rcond)
    x = _lstsq_p(a, b, rcond=rcond)
    if np.size(res_value):
        r = b - matmul(a, x)
        sq = real(r * conj(r)) if _is_complex(r) else r * r
        residuals = _sum(sq, axis=0)
        residuals = reshape(residuals, (1,)) if _ndim(residuals) == 0 else residuals
    else:
        residuals = res_value
    return x, residuals, rank, svd(a, compute_uv=False)


# --------------------------------------------------------------------------- qr


def _qr_layout(shape, **kw):
    m, n = shape[-2:]
    return [((m, n), False), ((n, n), False)]


def _qr_jvp(t, outs, a):
    # A = QR with m >= n: X = Q^H dA R^{-1}; Q^H dQ is anti-Hermitian (Omega), dR R^{-1} upper triangular,
    # and LAPACK's R has a real diagonal, so the imaginary part of diag(X) belongs to Omega.
    q, r = outs
    n = shape_of(r)[-1]
    y = _H(_solve_p(_H(r), _H(t)))  # dA R^{-1}
    x = matmul(_H(q), y)
    low = x * np.tril(np.ones((n, n), dtype=_real_dtype(x)), -1)
    omega = low - _H(low)
    if _is_complex(x):
        omega = omega + _diag_matrix(1j * imag(_diag_part(x)))
    return [matmul(q, omega) + y - matmul(q, x), matmul(x - omega, r)]


def _qr_vjp(gs, outs, a):
    gq, gr = gs
    q, r = outs
    n = shape_of(r)[-1]

    def std(gq, gr):
        mz = matmul(_H(q), gq) - matmul(gr, _H(r))  # M - K
        strict = np.tril(np.ones((n, n), dtype=_real_dtype(mz)), -1)
        omega_adj = (mz - _H(mz)) * strict
        if _is_complex(mz):
            omega_adj = omega_adj + _diag_matrix(1j * imag(_diag_part(mz)))
        y = gq + matmul(q, omega_adj - mz)
        return _H(_solve_p(r, _H(y)))  # Y R^{-H}

    return _c(std(_c(gq), _c(gr)))


_qr_packed = _multi_output(lambda x: np.linalg.qr(x, mode="reduced"), "qr", _qr_layout, _qr_vjp, _qr_jvp)
_QRResult = type(np.linalg.qr(np.eye(1)))


def qr(a, mode="reduced"):
    """``np.linalg.qr`` for ``mode='reduced'``, ``'r'`` and (square or wide input) ``'complete'``;
    the derivative needs full column rank of the leading square block."""
    a = as_array(a)
    if _ndim(a) < 2:
        raise LinAlgError(f"qr: needs at least 2 dimensions, got shape {shape_of(a)}")
    if mode not in ("reduced", "complete", "r"):
        raise NotImplementedError(f"qr: mode={mode!r} has no derivative rule (use 'reduced', 'complete' or 'r')")
    m, n = shape_of(a)[-2:]
    if mode == "complete" and m > n:
        raise NotImplementedError(
            "qr(mode='complete') of a tall matrix: the extra columns of Q are not unique, so nablab "
            "has no derivative for them; use mode='reduced'"
        )
    if m >= n:
        q, r = _qr_packed(a)
    else:  # the leading square block fixes Q; the rest of R is Q^H A2
        q, r1 = _qr_packed(a[..., :m])
        r = concatenate([r1, matmul(_H(q), a[..., m:])], axis=-1)
    return r if mode == "r" else _QRResult(q, r)


# --------------------------------------------------------------------------- norms


def _abs2(x):
    return real(x * conj(x)) if _is_complex(x) else x * x


def _root_at_zero(s, root):
    """``root(s)`` with derivative 0 where ``s == 0`` (the norm of a zero vector)."""
    zero = plain_value(s) == 0  # batched inside vmap
    if not any_entry(zero):
        return root(s)
    return where(zero, 0.0, root(where(zero, 1.0, s)))


def _keep(result, shape, axes, keepdims):
    if not keepdims:
        return result
    return reshape(result, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _vector_norm(x, ord, axes, keepdims):
    shape = shape_of(x)
    if ord is None or ord == 2:
        return _keep(_root_at_zero(_sum(_abs2(x), axis=axes), sqrt), shape, axes, keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    ax = _abs(x)
    if ord == np.inf:
        out = _max(ax, axis=axes)
    elif ord == -np.inf:
        out = _min(ax, axis=axes)
    elif ord == 0:  # a count: no derivative
        out = np.sum(np.asarray(value_of(x)) != 0, axis=axes).astype(_real_dtype(x))
    elif ord == 1:
        out = _sum(ax, axis=axes)
    else:
        p = float(ord)
        zero = plain_value(ax) == 0  # batched inside vmap
        if p < 1 and any_entry(zero):
            # |x|^p has an infinite slope at 0 for p < 1: derivative 0 there, as PyTorch's (the
            # value stays 0^p, inf for p < 0, where the norm is 0 and so is its derivative).
            powers = where(zero, 0.0 if p > 0 else np.inf, where(zero, 1.0, ax) ** p)
        else:
            powers = ax ** p
        out = _root_at_zero(_sum(powers, axis=axes), lambda s: s ** (1.0 / p))
    return _keep(out, shape, axes, keepdims)


def _matrix_norm(x, ord, axes, keepdims):
    shape = shape_of(x)
    row, col = axes
    if ord in (None, "fro", "f"):
        return _vector_norm(x, None, axes, keepdims)
    if ord in ("nuc", 2, -2):
        s = svd(moveaxis(x, (row, col), (-2, -1)), compute_uv=False)
        out = _sum(s, axis=-1) if ord == "nuc" else _max(s, axis=-1) if ord == 2 else _min(s, axis=-1)
    elif ord in (1, -1, np.inf, -np.inf):
        summed, other = (row, col) if ord in (1, -1) else (col, row)
        sums = _sum(_abs(x), axis=summed, keepdims=True)
        out = (_max if ord > 0 else _min)(sums, axis=other, keepdims=True)
        out = reshape(out, tuple(d for i, d in enumerate(shape) if i not in axes))
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    return _keep(out, shape, axes, keepdims)


def norm(x, ord=None, axis=None, keepdims=False):
    """``np.linalg.norm``: vector norms (None/2, 1, inf, -inf, 0, any p) and matrix norms
    ('fro', 'nuc', 2, -2, 1, -1, inf, -inf) along ``axis``; see the module notes at 0."""
    x = as_array(x)
    if not np.asarray(raw_value_of(x)).dtype.kind in "fc":
        x = np.asarray(value_of(x), dtype=np.float64)
    nd = _ndim(x)
    if axis is None:
        if ord is None:
            return _vector_norm(x, None, tuple(range(nd)), keepdims)
        if nd == 1:
            return _vector_norm(x, ord, (0,), keepdims)
        if nd == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError(f"norm: improper number of dimensions to norm: shape {shape_of(x)} with ord={ord!r}")
    axes = normalize_axis(axis, nd)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError(f"norm: duplicate axes given: {axis!r}")
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError(f"norm: improper number of dimensions to norm: axis={axis!r}")


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """``np.linalg.vector_norm``: the norm of ``x`` flattened along ``axis`` (all axes by default)."""
    x = as_array(x)
    axes = normalize_axis(axis, _ndim(x))
    if ord == 2:
        ord = None
    return _vector_norm(x, ord, axes, keepdims) if len(axes) else _abs(x)


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """``np.linalg.matrix_norm`` over the last two axes."""
    return norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)


def cond(x, p=None):
    """``np.linalg.cond``: ratio of extreme singular values (p None, 2, -2) or ``norm(x) norm(inv(x))``."""
    x = as_array(x)
    if p in (None, 2, -2):
        s = svd(x, compute_uv=False)
        return _max(s, axis=-1) / _min(s, axis=-1) if p != -2 else _min(s, axis=-1) / _max(s, axis=-1)
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


matrix_rank = nondifferentiable(np.linalg.matrix_rank, "matrix_rank")


# --------------------------------------------------------------------------- products of matrices


def matrix_power(a, n):
    """``np.linalg.matrix_power``: ``a`` multiplied by itself ``n`` times (an inverse for n < 0)."""
    a = as_array(a)
    _square_check("matrix_power", a)
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"matrix_power: exponent must be an integer, got {n!r}")
    n = int(n)
    if n == 0:
        v = np.asarray(value_of(a))
        return np.broadcast_to(np.eye(v.shape[-1], dtype=v.dtype), v.shape).copy()
    if n < 0:
        a, n = inv(a), -n
    result, power = None, a
    while n:  # binary powering: O(log n) products
        if n & 1:
            result = power if result is None else matmul(result, power)
        n >>= 1
        if n:
            power = matmul(power, power)
    return result


def _chain_order(shapes):
    """The matrix-chain split points minimizing the scalar multiplications (dynamic programming)."""
    dims = [shapes[0][0]] + [s[1] for s in shapes]
    n = len(shapes)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = math.inf
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def multi_dot(arrays, *, out=None):
    """``np.linalg.multi_dot``: the product of a chain of matrices in the cheapest order
    (the first and last may be vectors)."""
    if out is not None:
        raise TypeError("multi_dot(..., out=...) is not supported; use the returned value")
    arrays = [as_array(a) for a in arrays]
    if len(arrays) < 2:
        raise ValueError("multi_dot: expecting at least two arrays")
    first_vec, last_vec = _ndim(arrays[0]) == 1, _ndim(arrays[-1]) == 1
    if first_vec:
        arrays[0] = reshape(arrays[0], (1, -1))
    if last_vec:
        arrays[-1] = reshape(arrays[-1], (-1, 1))
    for a in arrays:
        if _ndim(a) != 2:
            raise ValueError(f"multi_dot: arrays must be 2-D (ends may be 1-D); got shape {shape_of(a)}")
    split = _chain_order([shape_of(a) for a in arrays])

    def product(i, j):
        if i == j:
            return arrays[i]
        k = split[i][j]
        return matmul(product(i, k), product(k + 1, j))

    result = product(0, len(arrays) - 1)
    if first_vec and last_vec:
        return result[0, 0]
    if first_vec:
        return result[0]
    if last_vec:
        return result[:, 0]
    return result


def tensorinv(a, ind=2):
    """``np.linalg.tensorinv``: the inverse of ``a`` seen as a matrix of its first ``ind`` axes."""
    a = as_array(a)
    shape = shape_of(a)
    rows = math.prod(shape[:ind])
    return reshape(inv(reshape(a, (rows, -1))), shape[ind:] + shape[:ind])


def tensorsolve(a, b, axes=None):
    """``np.linalg.tensorsolve``: x with ``tensordot(a, x, x.ndim) == b``."""
    a, b = as_array(a), as_array(b)
    if axes is not None:
        nd = _ndim(a)
        moved = normalize_axis(axes, nd)
        a = moveaxis(a, moved, tuple(range(nd - len(moved), nd)))
    shape = shape_of(a)
    out_shape = shape[-(len(shape) - _ndim(b)):]
    x = solve(reshape(a, (math.prod(shape_of(b)), -1)), ravel(b))
    return reshape(x, out_shape)


def matrix_transpose(x, /):
    """``np.linalg.matrix_transpose``: swap the last two axes."""
    x = as_array(x)
    if _ndim(x) < 2:
        raise ValueError(f"matrix_transpose: needs at least 2 dimensions, got shape {shape_of(x)}")
    return T(x)


def diagonal(x, /, *, offset=0):
    """``np.linalg.diagonal``: the ``offset`` diagonal of the last two axes."""
    x = as_array(x)
    rows, cols = shape_of(x)[-2:]
    x = x[..., max(-offset, 0):, max(offset, 0):]
    k = max(min(rows - max(-offset, 0), cols - max(offset, 0)), 0)
    return _diag_part(x[..., :k, :k])


def trace(x, /, *, offset=0, dtype=None):
    """``np.linalg.trace``: the sum of the ``offset`` diagonal of the last two axes."""
    d = diagonal(x, offset=offset)
    return _sum(d, axis=-1, dtype=dtype)


def outer(x1, x2, /):
    """``np.linalg.outer`` of two vectors."""
    x1, x2 = as_array(x1), as_array(x2)
    if _ndim(x1) != 1 or _ndim(x2) != 1:
        raise ValueError(f"outer: needs 1-D inputs, got shapes {shape_of(x1)} and {shape_of(x2)}")
    return expand_dims(x1, -1) * x2


def cross(x1, x2, /, *, axis=-1):
    """``np.linalg.cross`` of 3-vectors along ``axis``."""
    x1, x2 = as_array(x1), as_array(x2)
    if shape_of(x1)[axis] != 3 or shape_of(x2)[axis] != 3:
        raise ValueError(f"cross: needs 3-vectors along axis {axis}; got shapes {shape_of(x1)} and {shape_of(x2)}")
    return _cross(x1, x2, axis=axis)


def vecdot(x1, x2, /, *, axis=-1):
    """``np.linalg.vecdot``: ``sum(conj(x1) * x2, axis)``."""
    x1, x2 = as_array(x1), as_array(x2)
    return _sum(_c(x1) * x2, axis=axis)


def tensordot(x1, x2, /, *, axes=2):
    """``np.linalg.tensordot`` (``np.tensordot``)."""
    return _tensordot(x1, x2, axes=axes)


__all__ = [
    "inv", "solve", "det", "slogdet", "cholesky", "eigh", "eigvalsh", "eig", "eigvals", "svd",
    "svdvals", "pinv", "lstsq", "qr", "norm", "vector_norm", "matrix_norm", "cond", "matrix_rank",
    "matrix_power", "multi_dot", "tensorinv", "tensorsolve", "matrix_transpose", "diagonal",
    "trace", "outer", "cross", "vecdot", "tensordot", "matmul",
]
