"""Normalisation and augmentation on NumPy batches (channel-first, samples first).

Augmentations have the loader's transform signature ``f(x, rng) -> x`` (or
take extra settings first, as :func:`random_crop` does); wrap those in a
lambda and chain them with :func:`compose`:

>>> import numpy as np
>>> x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
>>> augment = compose(lambda xb, rng: random_crop(xb, 1, rng), horizontal_flip)
>>> augment(x, np.random.default_rng(0)).shape
(2, 1, 4, 4)
>>> mean, std = channel_stats(x)
>>> normalize(x, mean, std).mean().round(12), normalize(x, mean, std).std().round(12)
(np.float64(0.0), np.float64(1.0))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["normalize", "channel_stats", "random_crop", "horizontal_flip", "compose"]


def channel_stats(x, channel_axis: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``x`` (float64), over every other axis.

    Compute them on the training set and apply them to every split. With
    ``channel_axis=None`` both are scalars over all entries.

    >>> x = np.stack([np.zeros((2, 2)), np.full((2, 2), 4.0)])[None]   # (1, 2, 2, 2)
    >>> channel_stats(x)
    (array([0., 4.]), array([0., 0.]))
    """
    x = np.asarray(x)
    if channel_axis is None:
        return np.asarray(x.mean(dtype=np.float64)), np.asarray(x.std(dtype=np.float64))
    if x.ndim < 2 or not -x.ndim <= channel_axis < x.ndim:
        raise ValueError(f"channel_stats: channel_axis {channel_axis} is not an axis of shape {x.shape}")
    axes = tuple(a for a in range(x.ndim) if a != channel_axis % x.ndim)
    return x.mean(axis=axes, dtype=np.float64), x.std(axis=axes, dtype=np.float64)


def normalize(x, mean, std, dtype=None) -> np.ndarray:
    """``(x - mean) / std`` with per-channel ``mean`` and ``std`` broadcast along axis 1.

    ``mean`` and ``std`` are scalars or 1-D of length ``x.shape[1]``. The
    result has ``dtype`` if given, else ``x``'s floating dtype, else float64
    (integer images such as CIFAR-10's uint8): nothing is silently upcast.

    >>> import numpy as np
    >>> from nablab.data import normalize
    >>> x = np.array([[[[0, 255]], [[128, 128]]]], dtype=np.uint8)
    >>> normalize(x, mean=[127.5, 128.0], std=[127.5, 1.0])
    array([[[[-1.,  1.]],
    <BLANKLINE>
            [[ 0.,  0.]]]])
    """
    x = np.asarray(x)
    if dtype is None:
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    mean, std = np.asarray(mean, dtype=dtype), np.asarray(std, dtype=dtype)
    for name, v in (("mean", mean), ("std", std)):
        if v.ndim > 1 or (v.ndim == 1 and (x.ndim < 2 or len(v) != x.shape[1])):
            raise ValueError(f"normalize: {name} has shape {v.shape}; expected a scalar or one value "
                             f"per channel for x of shape {x.shape}")
    if np.any(std == 0):
        raise ValueError(f"normalize: std has a zero entry ({std.tolist()}); that channel is constant")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if mean.ndim == 1:
        mean = mean.reshape(shape)
    if std.ndim == 1:
        std = std.reshape(shape)
    return (x.astype(dtype, copy=False) - mean) / std


def random_crop(x, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad each sample by ``padding`` on every side, then cut a random window of the original size.

    ``x`` is (N, C, H, W) images or (N, C, L) signals; each sample gets its own
    offsets, drawn from ``rng`` (one integer in 0..2*padding per spatial axis).

    >>> x = np.ones((1, 1, 3, 3))
    >>> random_crop(x, 0, np.random.default_rng(0)).tolist() == x.tolist()
    True
    """
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"random_crop: expected (N, C, H, W) or (N, C, L), got shape {x.shape}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"random_crop: padding must be an integer >= 0, got {padding!r}")
    p, n, spatial = int(padding), x.shape[0], x.shape[2:]
    if p == 0:
        return x.copy()
    padded = np.pad(x, [(0, 0), (0, 0)] + [(p, p)] * len(spatial))
    offsets = rng.integers(0, 2 * p + 1, size=(n, len(spatial)))
    out = np.empty_like(x)
    for i in range(n):
        window = tuple(slice(o, o + s) for o, s in zip(offsets[i], spatial))
        out[i] = padded[(i, slice(None)) + window]
    return out


def horizontal_flip(x, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each sample along its last axis (width) with probability ``p``.

    >>> x = np.arange(3.0).reshape(1, 1, 1, 3)
    >>> horizontal_flip(x, np.random.default_rng(0), p=1.0)[0, 0, 0]
    array([2., 1., 0.])
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"horizontal_flip: expected samples along axis 0 and width last, got shape {x.shape}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"horizontal_flip: p must be in [0, 1], got {p!r}")
    flip = rng.random(x.shape[0]) < p
    out = x.copy()
    out[flip] = x[flip][..., ::-1]
    return out


def compose(*transforms: Callable) -> Callable:
    """Chain transforms ``f(x, rng) -> x``; they share one ``rng``, drawing in turn.

    >>> double = lambda x, rng: 2 * x
    >>> compose(double, double)(np.ones(2), np.random.default_rng(0))
    array([4., 4.])
    """
    for t in transforms:
        if not callable(t):
            raise TypeError(f"compose: {t!r} is not callable; expected f(x, rng) -> x")

    def composed(x, rng):
        for t in transforms:
            x = t(x, rng)
        return x

    composed.transforms = transforms
    return composed
