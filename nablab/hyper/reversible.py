"""Reversible SGD with momentum: hypergradients with memory nearly independent of the step count.

After Maclaurin, Duvenaud and Adams, "Gradient-based Hyperparameter
Optimization through Reversible Learning" (ICML 2015): run training forwards,
then run it *backwards* exactly, recovering each step's weights as the reverse
pass needs them instead of storing them.

Floating-point momentum cannot be undone (multiplying by ``gamma < 1`` drops
bits), so weights ``w`` and velocities ``delta`` live in fixed point: integers
``W = w * 2^R``.  Adding a rounded step is undone by subtracting the same
rounded step.  Multiplying by ``gamma = n / d`` (a fraction with a small
denominator) maps ``D`` to ``floor(D n / d)``; the preimages of a result form
a run of ``ceil(d / n)`` or fewer consecutive integers, so the offset of ``D``
in that run is all that must be stored: on average about ``log2(1 / gamma)``
bits per parameter and step (measured by ``bits_per_parameter_step``).

The update is the heavy-ball delta form of the problem sets
(``delta <- gamma delta - lr g(w); w <- w + delta``); its adjoint, run during
the reversal, accumulates d(loss)/d(lr), d(loss)/d(gamma) and d(loss)/d(w0)
using Hessian-vector products (forward-over-reverse).

>>> import numpy as np, nablab as nb
>>> from nablab.hyper.reversible import reversible_hypergradient
>>> r = reversible_hypergradient(lambda w: nb.sum(w ** 2), np.array([1.0, -0.5]), lr=0.1, momentum=0.9, steps=50)
>>> r.reconstructed_exactly
True
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nablab.autodiff.transforms import grad, hvp
from nablab.checks import check_lr


@dataclass
class ReversibleResult:
    """What :func:`reversible_hypergradient` returns: the final validation ``loss``, its derivatives
    ``d_lr``, ``d_momentum`` and ``d_w0``, the final weights, the start in fixed point before and after
    the reversal, the momentum used, and the bytes stored for the lost bits.

    >>> import numpy as np, nablab as nb
    >>> from nablab.hyper import reversible_hypergradient
    >>> r = reversible_hypergradient(lambda w: nb.sum(w ** 2), np.ones(3), lr=0.1, momentum=0.9, steps=20)
    >>> r.steps, r.momentum_used, r.d_w0.shape, r.reconstructed_exactly
    (20, 0.9, (3,), True)
    """
    loss: float
    d_lr: float
    d_momentum: float
    d_w0: np.ndarray
    w_final: np.ndarray
    w0_fixed: np.ndarray
    w0_reversed_fixed: np.ndarray
    momentum_used: float
    stored_bytes: int
    steps: int

    @property
    def reconstructed_exactly(self) -> bool:
        """Whether running backwards gave back the (fixed-point) initial weights bit for bit."""
        return bool(np.array_equal(self.w0_fixed, self.w0_reversed_fixed))

    @property
    def bits_per_parameter_step(self) -> float:
        n_params = self.w0_fixed.size
        return 8.0 * self.stored_bytes / max(1, n_params * self.steps)


class FixedPoint:
    """Integers standing for reals with ``bits`` fractional bits; exact add, exact multiply by n/d with a bit store."""

    def __init__(self, bits=40, numerator=1, denominator=1):
        self.scale = float(2**bits)
        self.n, self.d = int(numerator), int(denominator)
        # |X| * n must fit in int64
        self.limit = (2**62) // max(self.n, self.d)

    def encode(self, x):
        return np.rint(np.asarray(x, dtype=np.float64) * self.scale).astype(np.int64)

    def decode(self, X):
        return X.astype(np.float64) / self.scale

    def check(self, X, what, step):
        if X.size and np.abs(X).max() > self.limit:
            raise OverflowError(
                f"reversible: {what} left the fixed-point range +-{self.limit / self.scale:.4g} at step {step}; "
                "use fewer fractional bits (radix_bits) or a smaller learning rate"
            )

    def _ceil_div(self, a, b):
        return -((-a) // b)

    def _preimage(self, Y):
        # X with floor((X n + h) / d) == Y  <=>  Y d - h <= X n < (Y + 1) d - h
        h = self.d // 2
        low = self._ceil_div(Y * self.d - h, self.n)
        return low, self._ceil_div((Y + 1) * self.d - h, self.n) - low

    def multiply(self, X):
        """``X n / d`` rounded to nearest, and the packed offsets needed to undo it.

        Rounding to nearest (not down) gives 0 a single preimage, so a velocity
        that has settled at zero costs no stored bits.
        """
        Y = (X * self.n + self.d // 2) // self.d
        low, count = self._preimage(Y)
        return Y, _pack(X - low, count)

    def unmultiply(self, Y, packed):
        low, count = self._preimage(Y)
        return low + _unpack(packed, count)


def _bits_for(count):
    """Bits to write an offset in range(count): ceil(log2(count)), 0 for count 1."""
    return np.ceil(np.log2(np.maximum(count, 1))).astype(np.int64)


def _pack(offset, count):
    nbits = _bits_for(count)
    planes = []
    for b in range(int(nbits.max(initial=0))):
        carriers = nbits > b
        planes.append(np.packbits(((offset[carriers] >> b) & 1).astype(np.uint8)))
    return planes


def _unpack(planes, count):
    nbits = _bits_for(count)
    offset = np.zeros(count.shape, dtype=np.int64)
    for b, plane in enumerate(planes):
        carriers = nbits > b
        bits = np.unpackbits(plane, count=int(carriers.sum())).astype(np.int64)
        offset[carriers] |= bits << b
    return offset


def reversible_hypergradient(loss_fn, w0, lr, momentum, steps, *, val_loss=None, batches=None, radix_bits=40,
                             max_denominator=1000):
    """Train with heavy-ball momentum in fixed point, then reverse it exactly while backpropagating.

    ``momentum`` is used as the nearest fraction with denominator at most
    ``max_denominator`` (0.9 is exactly 9/10).  Returns a
    :class:`ReversibleResult`.

    ``loss_fn``, ``w0``, ``lr``, ``steps``, ``val_loss`` and ``batches`` are :func:`lr_hypergradient`'s;
    ``radix_bits`` is the fixed-point precision of the weights and velocities.

    >>> import numpy as np, nablab as nb
    >>> from nablab.hyper import reversible_hypergradient, lr_hypergradient
    >>> loss = lambda w: nb.sum((w - 1.0) ** 2)
    >>> r = reversible_hypergradient(loss, np.zeros(2), lr=0.1, momentum=0.5, steps=10)
    >>> unrolled = lr_hypergradient(loss, np.zeros(2), lr=0.1, steps=10, momentum=0.5)[1]
    >>> r.reconstructed_exactly, bool(np.isclose(r.d_lr, unrolled, rtol=1e-6))
    (True, True)
    """
    if not 0 < momentum < 1:
        raise ValueError(f"reversible: momentum={momentum} must be in (0, 1); at 0 a step cannot be undone")
    check_lr(lr, who="reversible")
    if batches is not None and val_loss is None:
        raise ValueError("reversible: with minibatches, give val_loss(w)")
    frac = Fraction(momentum).limit_denominator(max_denominator)
    fp = FixedPoint(radix_bits, frac.numerator, frac.denominator)
    gamma = frac.numerator / frac.denominator
    shape = np.shape(w0)
    g_fn = grad(loss_fn)
    val_loss = loss_fn if val_loss is None else val_loss

    def gradient(W, t):
        w = fp.decode(W).reshape(shape)
        return np.asarray(g_fn(w) if batches is None else g_fn(w, batches[t])).reshape(-1)

    W = fp.encode(np.asarray(w0, dtype=float).reshape(-1))
    W0 = W.copy()
    D = np.zeros_like(W)
    store = []
    for t in range(steps):
        D, info = fp.multiply(D)
        store.append(info)
        D -= fp.encode(lr * gradient(W, t))
        W += D
        fp.check(W, "the weights", t)
        fp.check(D, "the velocity", t)
    stored_bytes = sum(p.nbytes for info in store for p in info)
    w_final = fp.decode(W).reshape(shape)
    loss, dw = _value_and_grad(val_loss, w_final)
    dw = dw.reshape(-1)
    d_delta = np.zeros_like(dw)
    d_lr = d_gamma = 0.0
    for t in reversed(range(steps)):
        d_total = d_delta + dw  # cotangent of delta_{t+1}
        W -= D  # w_t
        g = gradient(W, t)
        D += fp.encode(lr * g)
        D = fp.unmultiply(D, store.pop())  # delta_t
        w_t = fp.decode(W).reshape(shape)
        d_lr -= float(d_total @ g)
        d_gamma += float(d_total @ fp.decode(D))
        hv = hvp(loss_fn, w_t, d_total.reshape(shape)) if batches is None else \
            hvp(lambda w: loss_fn(w, batches[t]), w_t, d_total.reshape(shape))
        dw = dw - lr * np.asarray(hv).reshape(-1)
        d_delta = gamma * d_total
    return ReversibleResult(
        loss=float(loss), d_lr=d_lr, d_momentum=d_gamma, d_w0=dw.reshape(shape), w_final=w_final,
        w0_fixed=W0.reshape(shape), w0_reversed_fixed=W.reshape(shape), momentum_used=gamma,
        stored_bytes=int(stored_bytes), steps=int(steps),
    )


def _value_and_grad(f, w):
    from nablab.autodiff.transforms import value_and_grad

    value, g = value_and_grad(f)(w)
    return value, np.asarray(g)
