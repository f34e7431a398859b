"""Matrix-free linear operators that SciPy's solvers accept.

:class:`LinearOperator` subclasses :class:`scipy.sparse.linalg.LinearOperator`,
so ``cg``, ``lsqr``, ``gmres`` and ``eigsh`` take it as it is.  On top it adds

* ``A @ x`` for a vector and ``A @ X`` for a matrix (columns are vectors), with a
  fast path that skips SciPy's wrappers for plain NumPy arrays,
* ``A.T`` (transpose) and ``A.H`` (adjoint), ``A @ B`` (composition), ``A + B``,
  ``A - B``, ``2 * A``, ``-A``, ``A / 2``, all again operators of this class,
* ``todense()`` for tests, and :func:`dottest`, the adjoint check
  ``<A x, y> = <x, A^H y>`` of PyLops,
* ``A @ x`` for a nablab tensor ``x`` inside ``nablab.grad``/``jvp``/... (see
  :mod:`nablab.linop.diff`; write ``A.T @ x`` rather than ``x @ A`` there).

A subclass calls ``super().__init__(dtype, shape)`` and implements ``_matvec``
and ``_rmatvec`` (``A^H y``); ``_matmat``/``_rmatmat`` default to column loops.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import issparse
from scipy.sparse.linalg import LinearOperator as _SciPyOperator

from nablab.autodiff.core import Tensor

__all__ = [
    "LinearOperator", "MatrixOperator", "Identity", "ProductOperator", "SumOperator",
    "ScaledOperator", "TransposedOperator", "AdjointOperator", "aslinearoperator", "dottest",
]


def _conj(x):
    return np.conj(x) if np.iscomplexobj(x) else x


def _name(op) -> str:
    return type(op).__name__


class LinearOperator(_SciPyOperator):
    """Base class of nablab's operators (see the module docstring).

    >>> import numpy as np
    >>> A = MatrixOperator(np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> B = 2 * A.T @ A - Identity(2)
    >>> B @ np.array([1.0, 0.0])
    array([19., 28.])
    >>> B.todense()
    array([[19., 28.],
           [28., 39.]])
    """

    # NumPy arrays and scalars defer to our __rmatmul__/__rmul__ instead of
    # trying to turn the operator into an array.
    __array_ufunc__ = None

    # ----- application ------------------------------------------------------
    def _mismatch(self, x):
        raise ValueError(f"cannot apply {_name(self)} of shape {self.shape} to an array of shape "
                         f"{np.shape(x)}: expected ({self.shape[1]},) or ({self.shape[1]}, K)")

    def _apply(self, x):
        if not isinstance(x, np.ndarray):
            if issparse(x):
                x = x.toarray()
            x = np.asarray(x)
        if x.ndim == 0 or x.ndim > 2 or x.shape[0] != self.shape[1]:
            self._mismatch(x)
        return self._matvec(x) if x.ndim == 1 else self._matmat(x)

    def __matmul__(self, other):
        if type(other) is np.ndarray and other.ndim == 1:  # fast path: plain vectors
            if other.shape[0] != self.shape[1]:
                self._mismatch(other)
            return self._matvec(other)
        if isinstance(other, _SciPyOperator):
            return ProductOperator(self, other)
        if isinstance(other, Tensor):  # inside differentiated nablab code
            from .diff import apply

            return apply(self, other)
        if np.isscalar(other):
            raise ValueError("'@' takes a vector, a matrix or an operator; use '*' for scalars")
        return self._apply(other)

    def __rmatmul__(self, other):
        if isinstance(other, _SciPyOperator):
            return ProductOperator(aslinearoperator(other), self)
        if np.isscalar(other):
            raise ValueError("'@' takes a vector, a matrix or an operator; use '*' for scalars")
        if isinstance(other, Tensor):  # x @ A inside differentiated code: keep the trace
            from nablab.autodiff.ops import transpose

            return self.T @ other if other.ndim == 1 else transpose(self.T @ transpose(other))
        x = np.asarray(other)
        if x.ndim == 1:
            return self.T @ x
        return (self.T @ x.T).T

    def __mul__(self, other):
        if np.isscalar(other):
            return ScaledOperator(self, other)
        return self @ other

    def __rmul__(self, other):
        if np.isscalar(other):
            return ScaledOperator(self, other)
        return other @ self if isinstance(other, _SciPyOperator) else self.__rmatmul__(other)

    dot = __mul__

    def __truediv__(self, other):
        if not np.isscalar(other):
            raise ValueError(f"an operator can be divided by a scalar only, got {type(other).__name__}")
        return ScaledOperator(self, 1 / other)

    def __neg__(self):
        return ScaledOperator(self, -1)

    def __pos__(self):
        return self

    def __add__(self, other):
        if isinstance(other, _SciPyOperator):
            return SumOperator(self, other)
        return NotImplemented

    def __radd__(self, other):
        if isinstance(other, _SciPyOperator):
            return SumOperator(aslinearoperator(other), self)
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, _SciPyOperator):
            return SumOperator(self, ScaledOperator(aslinearoperator(other), -1))
        return NotImplemented

    def __rsub__(self, other):
        if isinstance(other, _SciPyOperator):
            return SumOperator(aslinearoperator(other), ScaledOperator(self, -1))
        return NotImplemented

    # SciPy's matvec/rmatvec accept (N,) and (N, 1); ours pass 1-D arrays on.
    def matvec(self, x):
        x = np.asarray(x)
        if x.shape not in ((self.shape[1],), (self.shape[1], 1)):
            self._mismatch(x)
        y = np.asarray(self._matvec(x.reshape(-1)))
        return y.reshape(-1, 1) if x.ndim == 2 else y

    def rmatvec(self, x):
        x = np.asarray(x)
        if x.shape not in ((self.shape[0],), (self.shape[0], 1)):
            raise ValueError(f"cannot apply the adjoint of {_name(self)} of shape {self.shape} "
                             f"to an array of shape {x.shape}: expected ({self.shape[0]},)")
        y = np.asarray(self._rmatvec(x.reshape(-1)))
        return y.reshape(-1, 1) if x.ndim == 2 else y

    def _matmat(self, X):
        return np.stack([self._matvec(col) for col in X.T], axis=1)

    def _rmatmat(self, X):
        return np.stack([self._rmatvec(col) for col in X.T], axis=1)

    def _transpose(self):
        return TransposedOperator(self)

    def _adjoint(self):
        return AdjointOperator(self)

    def todense(self) -> np.ndarray:
        """The operator as a dense array (for tests and small sizes only)."""
        return np.asarray(self._matmat(np.eye(self.shape[1], dtype=self.dtype)))


def _result_dtype(*ops):
    return np.result_type(*[op.dtype for op in ops if op.dtype is not None])


class ProductOperator(LinearOperator):
    """``A @ B``: apply ``B`` then ``A``.

    What ``A @ B`` of two operators gives; ``A`` and ``B`` are operators with ``A.shape[1] == B.shape[0]``.

    >>> import numpy as np
    >>> from nablab.linop import MatrixOperator
    >>> A, B = MatrixOperator(np.array([[1.0, 1.0]])), MatrixOperator(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> P = A @ B
    >>> type(P).__name__, P.shape, P @ np.array([1.0, 1.0]), P.T @ np.array([1.0])
    ('ProductOperator', (1, 2), array([3.]), array([1., 2.]))
    """

    def __init__(self, A, B):
        if A.shape[1] != B.shape[0]:
            raise ValueError(f"cannot compose {_name(A)} of shape {A.shape} with {_name(B)} of "
                             f"shape {B.shape}: {A.shape[1]} != {B.shape[0]}")
        self.A, self.B = A, B
        super().__init__(_result_dtype(A, B), (A.shape[0], B.shape[1]))

    def _matvec(self, x):
        return self.A @ (self.B @ x)

    def _matmat(self, X):
        return self.A @ (self.B @ X)

    def _rmatvec(self, y):
        return self.B.rmatvec(self.A.rmatvec(y))

    def _rmatmat(self, Y):
        return self.B.rmatmat(self.A.rmatmat(Y))

    def _transpose(self):
        return ProductOperator(aslinearoperator(self.B.T), aslinearoperator(self.A.T))

    def _adjoint(self):
        return ProductOperator(aslinearoperator(self.B.H), aslinearoperator(self.A.H))


class SumOperator(LinearOperator):
    """``A + B``.

    What ``A + B`` (and ``A - B``) of two operators of one shape gives.

    >>> import numpy as np
    >>> from nablab.linop import Identity, MatrixOperator
    >>> S = MatrixOperator(np.array([[0.0, 1.0], [1.0, 0.0]])) + Identity(2)
    >>> type(S).__name__, S.todense()
    ('SumOperator', array([[1., 1.],
           [1., 1.]]))
    """

    def __init__(self, A, B):
        if A.shape != B.shape:
            raise ValueError(f"cannot add {_name(A)} of shape {A.shape} and {_name(B)} of shape {B.shape}")
        self.A, self.B = A, B
        super().__init__(_result_dtype(A, B), A.shape)

    def _matvec(self, x):
        return self.A @ x + self.B @ x

    def _matmat(self, X):
        return self.A @ X + self.B @ X

    def _rmatvec(self, y):
        return self.A.rmatvec(y) + self.B.rmatvec(y)

    def _rmatmat(self, Y):
        return self.A.rmatmat(Y) + self.B.rmatmat(Y)

    def _transpose(self):
        return SumOperator(aslinearoperator(self.A.T), aslinearoperator(self.B.T))

    def _adjoint(self):
        return SumOperator(aslinearoperator(self.A.H), aslinearoperator(self.B.H))


class ScaledOperator(LinearOperator):
    """``alpha * A`` for a scalar ``alpha``.

    What ``alpha * A`` (and ``-A``, ``A / alpha``) gives.

    >>> import numpy as np
    >>> from nablab.linop import Identity
    >>> S = 3 * Identity(2)
    >>> type(S).__name__, S @ np.array([1.0, 2.0])
    ('ScaledOperator', array([3., 6.]))
    """

    def __init__(self, A, alpha):
        self.A, self.alpha = A, alpha
        super().__init__(np.result_type(A.dtype, alpha), A.shape)

    def _matvec(self, x):
        return self.alpha * (self.A @ x)

    def _matmat(self, X):
        return self.alpha * (self.A @ X)

    def _rmatvec(self, y):
        return np.conj(self.alpha) * self.A.rmatvec(y)

    def _rmatmat(self, Y):
        return np.conj(self.alpha) * self.A.rmatmat(Y)

    def _transpose(self):
        return ScaledOperator(aslinearoperator(self.A.T), self.alpha)

    def _adjoint(self):
        return ScaledOperator(aslinearoperator(self.A.H), np.conj(self.alpha))


class TransposedOperator(LinearOperator):
    """``A.T`` from ``A``'s adjoint: ``A^T x = conj(A^H conj(x))``.

    What ``A.T`` gives when ``A`` has no transpose of its own.

    >>> import numpy as np
    >>> from nablab.linop import MatrixOperator
    >>> A = MatrixOperator(np.array([[1.0, 2.0, 3.0]]))
    >>> A.T.shape, A.T @ np.array([2.0])
    ((3, 1), array([2., 4., 6.]))
    """

    def __init__(self, A):
        self.A = A
        super().__init__(A.dtype, A.shape[::-1])

    def _matvec(self, x):
        return _conj(self.A.rmatvec(_conj(x)))

    def _matmat(self, X):
        return _conj(self.A.rmatmat(_conj(X)))

    def _rmatvec(self, y):
        return _conj(self.A @ _conj(y))

    def _rmatmat(self, Y):
        return _conj(self.A @ _conj(Y))

    def _transpose(self):
        return self.A


class AdjointOperator(LinearOperator):
    """``A.H`` (conjugate transpose).

    What ``A.H`` gives when ``A`` has no adjoint of its own.

    >>> import numpy as np
    >>> from nablab.linop import MatrixOperator
    >>> A = MatrixOperator(np.array([[1j, 2.0]]))
    >>> A.H @ np.array([1.0])
    array([0.-1.j, 2.+0.j])
    """

    def __init__(self, A):
        self.A = A
        super().__init__(A.dtype, A.shape[::-1])

    def _matvec(self, x):
        return self.A.rmatvec(x)

    def _matmat(self, X):
        return self.A.rmatmat(X)

    def _rmatvec(self, y):
        return self.A @ y

    def _rmatmat(self, Y):
        return self.A @ Y

    def _adjoint(self):
        return self.A


class MatrixOperator(LinearOperator):
    """A dense array or SciPy sparse matrix seen as an operator.

    >>> MatrixOperator(np.eye(3)).shape
    (3, 3)
    """

    def __init__(self, M):
        if not issparse(M):
            M = np.asarray(M)
        if M.ndim != 2:
            raise ValueError(f"MatrixOperator needs a 2-d array, got shape {M.shape}")
        self.M = M
        super().__init__(M.dtype, M.shape)

    def _matvec(self, x):
        return self.M @ x

    _matmat = _matvec

    def _rmatvec(self, y):
        return self.M.conj().T @ y

    _rmatmat = _rmatvec

    def _transpose(self):
        return MatrixOperator(self.M.T)

    def _adjoint(self):
        return MatrixOperator(self.M.conj().T)

    def todense(self):
        return self.M.toarray() if issparse(self.M) else np.array(self.M)


class Identity(LinearOperator):
    """The ``n x n`` identity.

    ``n`` is the size and ``dtype`` the type of the entries.

    >>> import numpy as np
    >>> from nablab.linop import Identity, MatrixOperator
    >>> A = MatrixOperator(np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> (A - Identity(2)) @ np.array([1.0, 1.0])
    array([2., 6.])
    """

    def __init__(self, n: int, dtype=np.float64):
        super().__init__(dtype, (n, n))

    def _matvec(self, x):
        return x.copy()

    _matmat = _rmatvec = _rmatmat = _matvec

    def _transpose(self):
        return self

    _adjoint = _transpose


class _Wrapped(LinearOperator):
    """A SciPy operator given this class's algebra."""

    def __init__(self, op):
        self.op = op
        super().__init__(op.dtype, op.shape)

    def _matvec(self, x):
        return self.op.matvec(x)

    def _matmat(self, X):
        return self.op.matmat(X)

    def _rmatvec(self, y):
        return self.op.rmatvec(y)

    def _rmatmat(self, Y):
        return self.op.rmatmat(Y)

    def _transpose(self):
        return _Wrapped(self.op.T)

    def _adjoint(self):
        return _Wrapped(self.op.H)


def aslinearoperator(A) -> LinearOperator:
    """Make ``A`` (one of ours, a SciPy operator, a dense or sparse matrix) an operator of this class.

    >>> import numpy as np, scipy.sparse
    >>> from nablab.linop import aslinearoperator
    >>> A = aslinearoperator(scipy.sparse.eye(3))
    >>> type(A).__name__, A @ np.ones(3)
    ('MatrixOperator', array([1., 1., 1.]))
    >>> B = aslinearoperator(scipy.sparse.linalg.aslinearoperator(np.eye(2)))
    >>> (2 * B).T @ np.array([1.0, 0.0])
    array([2., 0.])
    """
    if isinstance(A, LinearOperator):
        return A
    if isinstance(A, _SciPyOperator):
        return _Wrapped(A)
    return MatrixOperator(A)


def dottest(A, *, rtol: float | None = None, seed: int = 0, raise_error: bool = True) -> bool:
    """The adjoint test: ``<A x, y> = <x, A^H y>`` and ``<A x, y> = <x, A^T y>`` (bilinear).

    Random ``x`` and ``y`` (complex if ``A`` is); ``rtol`` defaults to 1e-4 for
    single precision and 1e-10 otherwise.  Returns True, or raises
    ``AssertionError`` with both sides (returns False if ``raise_error=False``).

    >>> from nablab.linop import Convolution1d
    >>> dottest(Convolution1d([1.0, -2.0, 0.5], 50))
    True
    """
    rng = np.random.default_rng(seed)
    m, n = A.shape
    cplx = A.dtype is not None and np.dtype(A.dtype).kind == "c"
    if rtol is None:
        single = A.dtype is not None and np.dtype(A.dtype) in (np.float32, np.complex64)
        rtol = 1e-4 if single else 1e-10

    def draw(k):
        v = rng.standard_normal(k)
        return v + 1j * rng.standard_normal(k) if cplx else v

    x, y = draw(n), draw(m)
    Ax = A @ x
    checks = {
        "<Ax, y> vs <x, A^H y>": (np.vdot(y, Ax), np.vdot(A.rmatvec(y), x)),
        "y^T A x vs (A^T y)^T x": (y @ Ax, (A.T @ y) @ x),
    }
    for what, (lhs, rhs) in checks.items():
        err = abs(lhs - rhs) / max(abs(lhs), abs(rhs), np.finfo(float).tiny)
        if not err <= rtol:
            if raise_error:
                raise AssertionError(f"dot test failed for {_name(A)} of shape {A.shape}: {what}: "
                                     f"{lhs} vs {rhs} (relative error {err:.3g} > {rtol:g})")
            return False
    return True
