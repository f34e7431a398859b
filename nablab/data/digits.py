"""scikit-learn's handwritten digits as CIFAR-10-shaped images: a real image set with no download.

``sklearn.datasets.load_digits`` ships 1,797 real 8 x 8 images of the digits 0
to 9 (grey levels 0 to 16, about 180 per class) inside the scikit-learn
package. :func:`load_digits` turns each one into a CIFAR-10-shaped image, so
that models built for CIFAR-10's ``(3, 32, 32)`` inputs, such as the
``convnet`` of :mod:`nablab.train.models`, run on them unchanged:

1. scale the grey levels to [0, 1] (divide by 16);
2. upsample 8 x 8 to ``size`` x ``size`` (32) with :func:`upsample`: bilinear
   interpolation with pixel centres aligned (what PyTorch's
   ``interpolate(mode="bilinear", align_corners=False)`` does), or nearest
   neighbour, each pixel becoming a 4 x 4 block;
3. repeat the grey image over ``channels`` (3) channels;
4. split into training and test images with :func:`stratified_split`, seeded,
   each class in the same proportion in both.

The values stay in [0, 1]. Normalisation is left to the caller:
``nablab.train.load_dataset("digits")`` subtracts the training images' mean and
divides by their standard deviation per channel, as it does for CIFAR-10 (the
three channels are copies, so their statistics are equal).

scikit-learn is needed (``pip install scikit-learn``, or the ``report`` or
``all`` extra of nablab); without it :func:`load_digits` raises
``ModuleNotFoundError`` saying so.

>>> d = load_digits(split_seed=0)
>>> d["x_train"].shape, d["x_test"].shape, d["x_train"].dtype
((1438, 3, 32, 32), (359, 3, 32, 32), dtype('float64'))
>>> float(d["x_train"].min()), float(d["x_train"].max())
(0.0, 1.0)
>>> [int(n) for n in np.bincount(d["y_test"])]
[36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_digits", "upsample", "upsampling_matrix", "stratified_split", "DIGITS_SHAPE", "METHODS"]

#: The images scikit-learn ships: 8 x 8 grey levels 0 to 16.
DIGITS_SHAPE, DIGITS_LEVELS = (8, 8), 16
#: The upsampling methods of :func:`upsample`.
METHODS = ("bilinear", "nearest")
INSTALL = "pip install scikit-learn (or pip install 'nablab[report]')"


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def upsampling_matrix(n: int, size: int, method: str = "bilinear") -> np.ndarray:
    """The ``(size, n)`` matrix ``U`` with ``U @ signal`` the length-``n`` signal resampled to ``size`` points.

    Output point ``i`` sits at input coordinate ``(i + 0.5) * n / size - 0.5`` (pixel centres
    aligned), clamped to ``[0, n - 1]``. ``"bilinear"`` weights the two nearest input points
    linearly (PyTorch's ``interpolate(mode="bilinear", align_corners=False)``); ``"nearest"`` takes the
    input pixel that contains the output pixel's centre (PyTorch's ``"nearest-exact"``). Every row
    sums to 1, so a constant stays constant.

    >>> upsampling_matrix(2, 4)
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]])
    >>> upsampling_matrix(2, 4, "nearest").astype(int).tolist()
    [[1, 0], [1, 0], [0, 1], [0, 1]]
    """
    n, size = _positive_int(n, "n"), _positive_int(size, "size")
    if method not in METHODS:
        raise ValueError(f"unknown upsampling method {method!r}; choose one of {', '.join(METHODS)}")
    centres = (np.arange(size) + 0.5) * n / size
    u = np.zeros((size, n))
    if method == "nearest":
        u[np.arange(size), np.minimum(np.floor(centres).astype(int), n - 1)] = 1.0
        return u
    s = np.clip(centres - 0.5, 0.0, n - 1)
    low = np.floor(s).astype(int)
    high = np.minimum(low + 1, n - 1)
    frac = s - low
    np.add.at(u, (np.arange(size), low), 1.0 - frac)
    np.add.at(u, (np.arange(size), high), frac)
    return u


def upsample(images, size: int, method: str = "bilinear") -> np.ndarray:
    """Resample images ``(..., h, w)`` to ``(..., size, size)`` (float64), separably: ``U_h @ image @ U_w.T``.

    ``size`` must be at least ``h`` and ``w``: this only enlarges (shrinking without smoothing
    first would alias). See :func:`upsampling_matrix` for the two methods.

    >>> img = np.array([[0.0, 1.0], [2.0, 3.0]])
    >>> upsample(img, 4, "nearest").tolist()[1]
    [0.0, 0.0, 1.0, 1.0]
    >>> upsample(img, 4)[0].tolist()             # bilinear: the top row, from 0 to 1
    [0.0, 0.25, 0.75, 1.0]
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim < 2:
        raise ValueError(f"upsample: images need at least 2 axes (..., height, width), got shape {images.shape}")
    h, w = images.shape[-2:]
    size = _positive_int(size, "size")
    if size < max(h, w):
        raise ValueError(f"upsample: size {size} is smaller than the images ({h} x {w}); it only enlarges")
    u_h, u_w = upsampling_matrix(h, size, method), upsampling_matrix(w, size, method)
    return u_h @ images @ u_w.T


def stratified_split(labels, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` that put ``round(test_fraction * n_c)`` of each class's ``n_c`` examples in test.

    Each class's examples are drawn in the order of ``default_rng(seed)``'s permutation of them
    (classes in increasing order), and each split is then shuffled with the same generator, so
    the split is a function of ``labels``, ``test_fraction`` and ``seed`` alone. Every class
    needs at least one example in each split.

    >>> train, test = stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1], 0.25, seed=0)
    >>> len(train), len(test), sorted(np.array([0] * 4 + [1] * 8)[test].tolist())
    (9, 3, [0, 1, 1])
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) == 0:
        raise ValueError(f"stratified_split: labels must be a non-empty 1-D integer array, got {y.dtype} {y.shape}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.floating)) \
            or not 0 < test_fraction < 1:
        raise ValueError(f"stratified_split: test_fraction must be a number strictly between 0 and 1, "
                         f"got {test_fraction!r}")
    rng = np.random.default_rng(_positive_int(seed, "seed", 0))
    train, test = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = int(round(test_fraction * len(members)))
        if not 0 < k < len(members):
            raise ValueError(f"stratified_split: class {c} has {len(members)} examples; a test fraction of "
                             f"{test_fraction:g} leaves {k} in test and {len(members) - k} in training "
                             "(each needs at least one)")
        test.append(members[:k])
        train.append(members[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _sklearn_digits():
    """scikit-learn's images (float64) and labels (int64), checked."""
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "sklearn":
            raise
        raise ModuleNotFoundError("the handwritten digits ship with scikit-learn, which is not installed: "
                                  + INSTALL, name="sklearn") from None
    bunch = sklearn_load_digits()
    images, target = np.asarray(bunch.images), np.asarray(bunch.target)
    problems = []
    if images.ndim != 3 or images.shape[1:] != DIGITS_SHAPE:
        problems.append(f"images of shape {images.shape}, not (N, 8, 8)")
    elif target.shape != images.shape[:1] or target.dtype.kind not in "iu":
        problems.append(f"labels of {target.dtype} {target.shape} for {len(images)} images")
    elif images.min() < 0 or images.max() > DIGITS_LEVELS or not np.array_equal(images, np.round(images)):
        problems.append(f"grey levels outside the integers 0 to {DIGITS_LEVELS}")
    elif sorted(np.unique(target).tolist()) != list(range(10)):
        problems.append(f"classes {np.unique(target).tolist()}, not 0 to 9")
    if problems:
        raise ValueError("sklearn.datasets.load_digits returned " + problems[0] + "; nablab expects the 1,797 "
                         "8 x 8 images with grey levels 0 to 16 and labels 0 to 9")
    return images.astype(np.float64), target.astype(np.int64)


def load_digits(size: int = 32, channels: int = 3, test_fraction: float = 0.2, split_seed: int = 0,
                method: str = "bilinear") -> dict:
    """scikit-learn's digits as ``(channels, size, size)`` images in [0, 1], split into training and test.

    Returns a dict with ``x_train``, ``x_test`` (float64, ``(N, channels, size, size)``), ``y_train``,
    ``y_test`` (int64), ``train_index`` and ``test_index`` (the images' positions in scikit-learn's
    order) and ``classes`` (``"0"`` to ``"9"``). ``method`` is :func:`upsample`'s, ``test_fraction``
    and ``split_seed`` are :func:`stratified_split`'s.

    >>> d = load_digits(size=16, channels=1, test_fraction=0.5, split_seed=3, method="nearest")
    >>> d["x_test"].shape, d["classes"][:3]
    ((898, 1, 16, 16), ['0', '1', '2'])
    """
    size, channels = _positive_int(size, "size"), _positive_int(channels, "channels")
    if method not in METHODS:
        raise ValueError(f"unknown upsampling method {method!r}; choose one of {', '.join(METHODS)}")
    if size < max(DIGITS_SHAPE):
        raise ValueError(f"size {size} is smaller than the 8 x 8 digits; it only enlarges")
    images, target = _sklearn_digits()
    train, test = stratified_split(target, test_fraction, split_seed)
    grey = upsample(images / DIGITS_LEVELS, size, method)
    x = np.repeat(grey[:, None], channels, axis=1)
    return {"x_train": x[train], "y_train": target[train], "x_test": x[test], "y_test": target[test],
            "train_index": train, "test_index": test, "classes": [str(i) for i in range(10)]}
