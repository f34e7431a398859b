"""Convolution operators that never form their matrix.

``Convolution1d(k, n)`` is the ``(n - r + 1) x n`` matrix of seed 001, Problem 5:
row ``i`` holds ``k_1 ... k_r`` starting at column ``i``, so

    (A x)_i = sum_j k_j x_{i+j}        (a "valid" cross-correlation, no flip),
    (A^T y)_j = sum_i k_{j-i} y_i      (a "full" convolution).

Deep learning calls ``A x`` a convolution; signal processing calls it a
cross-correlation (the convolution flips ``k``).  Both products take O(n r) time
and O(n) memory (NumPy's ``correlate``/``convolve``); only ``todense()`` builds
the matrix.  ``Convolution2d(k, (n1, n2))`` is the same on images flattened row
by row.
"""

from __future__ import annotations

import numpy as np

from .base import LinearOperator

__all__ = ["Convolution1d", "TransposedConvolution1d", "Convolution2d", "TransposedConvolution2d"]


def _kernel(k, ndim: int, name: str) -> np.ndarray:
    k = np.array(k)
    if k.ndim != ndim or k.size == 0:
        raise ValueError(f"{name} needs a non-empty {ndim}-d kernel, got shape {k.shape}")
    if k.dtype.kind not in "fc":
        k = k.astype(np.float64)
    k.setflags(write=False)
    return k


class _Conv1d(LinearOperator):
    def __init__(self, k, n: int, transposed: bool):
        name = type(self).__name__
        self.k = _kernel(k, 1, name)
        self.r = r = self.k.shape[0]
        if int(n) != n or n < r:
            raise ValueError(f"{name}: the signal length n={n} must be an integer at least the "
                             f"kernel length r={r}")
        self.n, self.m = int(n), int(n) - r + 1
        self._kc = np.conj(self.k) if self.k.dtype.kind == "c" else self.k
        shape = (self.n, self.m) if transposed else (self.m, self.n)
        super().__init__(self.k.dtype, shape)

    # A x, A^H y and A^T y for the untransposed A; the subclasses pick.
    def _corr(self, x, conj: bool):
        # np.correlate conjugates its second argument: pass conj(k) to get sum_j k_j x_{i+j}.
        return np.correlate(x, self.k if conj else self._kc, "valid")

    def _conv(self, y, conj: bool):
        return np.convolve(y, self._kc if conj else self.k, "full")

    def _corr_cols(self, X, conj: bool):
        k = self._kc if conj else self.k
        Y = np.zeros((self.m, X.shape[1]), dtype=np.result_type(X, k))
        for j, kj in enumerate(k):
            Y += kj * X[j:j + self.m]
        return Y

    def _conv_cols(self, Y, conj: bool):
        k = self._kc if conj else self.k
        X = np.zeros((self.n, Y.shape[1]), dtype=np.result_type(Y, k))
        for j, kj in enumerate(k):
            X[j:j + self.m] += kj * Y
        return X

    def _band(self) -> np.ndarray:
        D = np.zeros((self.m, self.n), dtype=self.dtype)
        rows = np.arange(self.m)
        for j, kj in enumerate(self.k):
            D[rows, rows + j] = kj
        return D


class Convolution1d(_Conv1d):
    """``A x`` with ``(A x)_i = sum_j k_j x_{i+j}``: shape ``(n - r + 1, n)``.

    >>> import numpy as np
    >>> A = Convolution1d([1.0, 2.0, 3.0], 5)
    >>> A @ np.array([1.0, 0.0, 0.0, 0.0, 1.0])
    array([1., 0., 3.])
    >>> A.T @ np.array([1.0, 0.0, 0.0])
    array([1., 2., 3., 0., 0.])
    >>> A.todense()[0]
    array([1., 2., 3., 0., 0.])
    """

    def __init__(self, k, n: int):
        super().__init__(k, n, transposed=False)

    def _matvec(self, x):
        return np.correlate(x, self._kc, "valid")  # = self._corr(x, conj=False), one call less

    def _matmat(self, X):
        return self._corr_cols(X, conj=False)

    def _rmatvec(self, y):
        return self._conv(y, conj=True)

    def _rmatmat(self, Y):
        return self._conv_cols(Y, conj=True)

    def _transpose(self):
        return TransposedConvolution1d(self.k, self.n)

    def _adjoint(self):
        return TransposedConvolution1d(np.conj(self.k), self.n)

    def todense(self):
        return self._band()


class TransposedConvolution1d(_Conv1d):
    """``A^T`` of ``Convolution1d(k, n)``: shape ``(n, n - r + 1)``, ``(A^T y)_j = sum_i k_{j-i} y_i``.

    >>> TransposedConvolution1d([1.0, 2.0], 3) @ np.array([1.0, 1.0])
    array([1., 3., 2.])
    """

    def __init__(self, k, n: int):
        super().__init__(k, n, transposed=True)

    def _matvec(self, y):
        return np.convolve(y, self.k, "full")  # = self._conv(y, conj=False), one call less

    def _matmat(self, Y):
        return self._conv_cols(Y, conj=False)

    def _rmatvec(self, x):
        return self._corr(x, conj=True)

    def _rmatmat(self, X):
        return self._corr_cols(X, conj=True)

    def _transpose(self):
        return Convolution1d(self.k, self.n)

    def _adjoint(self):
        return Convolution1d(np.conj(self.k), self.n)

    def todense(self):
        return self._band().T


class _Conv2d(LinearOperator):
    def __init__(self, k, shape, transposed: bool):
        name = type(self).__name__
        self.k = _kernel(k, 2, name)
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        if len(shape) != 2 or any(n < r for n, r in zip(shape, self.k.shape)):
            raise ValueError(f"{name}: the image shape {shape} must be 2-d and at least the "
                             f"kernel shape {self.k.shape}")
        self.in_shape = shape
        self.out_shape = tuple(n - r + 1 for n, r in zip(shape, self.k.shape))
        self._kc = np.conj(self.k) if self.k.dtype.kind == "c" else self.k
        n, m = int(np.prod(shape)), int(np.prod(self.out_shape))
        super().__init__(self.k.dtype, (n, m) if transposed else (m, n))

    # scipy.signal.correlate also conjugates its second argument.  (scipy.signal is
    # imported on first use: it takes about a second to import.)
    def _corr(self, X, conj: bool):
        import scipy.signal

        k = self.k if conj else self._kc
        cols = X.ndim == 2
        img = X.reshape(*self.in_shape, -1) if cols else X.reshape(self.in_shape)
        out = scipy.signal.correlate(img, k[..., None] if cols else k, mode="valid")
        return out.reshape(-1, X.shape[1]) if cols else out.ravel()

    def _conv(self, Y, conj: bool):
        import scipy.signal

        k = self._kc if conj else self.k
        cols = Y.ndim == 2
        img = Y.reshape(*self.out_shape, -1) if cols else Y.reshape(self.out_shape)
        out = scipy.signal.convolve(img, k[..., None] if cols else k, mode="full")
        return out.reshape(-1, Y.shape[1]) if cols else out.ravel()

    def _dense(self):
        return self._corr(np.eye(int(np.prod(self.in_shape)), dtype=self.dtype), conj=False)


class Convolution2d(_Conv2d):
    """2-D ``A x``: ``(A x)[i, j] = sum_{a,b} k[a, b] x[i+a, j+b]`` on row-major flattened images.

    >>> A = Convolution2d(np.ones((2, 2)), (3, 3))
    >>> A.shape, A @ np.arange(9.0)
    ((4, 9), array([ 8., 12., 20., 24.]))
    """

    def __init__(self, k, shape):
        super().__init__(k, shape, transposed=False)

    def _matvec(self, x):
        return self._corr(x, conj=False)

    _matmat = _matvec

    def _rmatvec(self, y):
        return self._conv(y, conj=True)

    _rmatmat = _rmatvec

    def _transpose(self):
        return TransposedConvolution2d(self.k, self.in_shape)

    def _adjoint(self):
        return TransposedConvolution2d(np.conj(self.k), self.in_shape)

    def todense(self):
        return self._dense()


class TransposedConvolution2d(_Conv2d):
    """``A^T`` of ``Convolution2d(k, shape)`` (``shape`` is the image shape it returns).

    >>> TransposedConvolution2d(np.ones((2, 2)), (3, 3)).shape
    (9, 4)
    """

    def __init__(self, k, shape):
        super().__init__(k, shape, transposed=True)

    def _matvec(self, y):
        return self._conv(y, conj=False)

    _matmat = _matvec

    def _rmatvec(self, x):
        return self._corr(x, conj=True)

    _rmatmat = _rmatvec

    def _transpose(self):
        return Convolution2d(self.k, self.in_shape)

    def _adjoint(self):
        return Convolution2d(np.conj(self.k), self.in_shape)

    def todense(self):
        return self._dense().T
