"""A seeded, deterministic mini-batch loader over in-memory arrays.

Epoch ``e`` visits the samples in the order ``default_rng([seed, e]).permutation(n)``
(or in order with ``shuffle=False``); batch ``b`` of that epoch is transformed
with ``default_rng([seed, e, b, 1])``. Every batch is therefore a function of
``(seed, epoch, batch index)`` alone: setting ``loader.epoch`` reproduces any
epoch exactly, which is what a resumed training run needs.

>>> import numpy as np
>>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
>>> loader = DataLoader(x, y, batch_size=2, seed=3)
>>> len(loader), [yb.tolist() for _, yb in loader]
(3, [[4, 2], [1, 3], [0]])
>>> loader.epoch                       # a full pass advances the epoch
1
>>> loader.epoch = 0                   # ... and setting it replays epoch 0
>>> [yb.tolist() for _, yb in loader]
[[4, 2], [1, 3], [0]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["DataLoader"]


def _nonneg_int(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"DataLoader: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class DataLoader:
    """Mini-batches ``(xb, yb)`` of the arrays ``x`` and ``y`` (first axis = samples).

    Parameters
    ----------
    x, y : arrays with the same first dimension.
    batch_size : samples per batch.
    shuffle : a fresh permutation each epoch from ``default_rng([seed, epoch])``.
    drop_last : skip the last batch when it is smaller than ``batch_size``.
    seed : non-negative int; the only source of randomness.
    transform : ``transform(xb, rng) -> xb``, applied to each batch with
        ``rng = default_rng([seed, epoch, batch_index, 1])``.

    ``epoch`` counts completed passes and may be set. It advances only when a
    pass runs to the end; breaking out of a loop leaves it unchanged.
    Batches are copies, so a transform may change them in place.

    >>> import numpy as np
    >>> from nablab.data import DataLoader
    >>> loader = DataLoader(np.arange(10.0), np.arange(10), batch_size=4, seed=0)
    >>> [yb.tolist() for _, yb in loader]
    [[4, 6, 2, 7], [3, 5, 9, 0], [8, 1]]
    >>> loader.epoch
    1
    """

    def __init__(self, x, y, batch_size: int, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, transform: Callable | None = None):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise ValueError(f"DataLoader: x and y need the same number of samples (first axis); "
                             f"got shapes {x.shape} and {y.shape}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable(xb, rng), got {transform!r}")
        self.x, self.y = x, y
        self.batch_size = _nonneg_int(batch_size, "batch_size", 1)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed = _nonneg_int(seed, "seed")
        self.transform = transform
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch the next pass will produce (completed passes so far, unless set)."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = _nonneg_int(value, "epoch")

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """The sample indices of ``epoch`` (default: the current one) in visiting order."""
        epoch = self._epoch if epoch is None else _nonneg_int(epoch, "epoch")
        n = len(self.x)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = self._epoch
        order = self.order(epoch)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            xb, yb = self.x[idx], self.y[idx]
            if self.transform is not None:
                xb = self.transform(xb, np.random.default_rng([self.seed, epoch, b, 1]))
            yield xb, yb
        self._epoch = epoch + 1

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.x)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, epoch={self._epoch})")
