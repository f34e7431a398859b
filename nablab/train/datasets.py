"""The training command's datasets as float arrays with a channel axis.

- ``mnist1d``: MNIST-1D generated locally by :func:`nablab.data.load_mnist1d`;
  signals of shape ``(1, 40)``, raw values (as the dataset's reference runs use them).
- ``cifar10``: CIFAR-10 from disk through :func:`nablab.data.load_cifar10`;
  images ``(3, 32, 32)`` scaled to [0, 1] and normalised per channel with the
  training set's mean and standard deviation.
- ``digits``: scikit-learn's 1,797 handwritten digits through
  :func:`nablab.data.load_digits`, shaped like CIFAR-10: each 8 x 8 image scaled
  to [0, 1], upsampled (bilinear) to 32 x 32 and repeated over 3 channels, split
  80/20 by a seeded stratified split (``split_seed``), then normalised like
  CIFAR-10 with the training images' mean and standard deviation per channel.
  Needs scikit-learn.

``limit`` keeps only the first ``limit`` training and test examples (quick runs).

>>> from nablab.train.datasets import Dataset
>>> import numpy as np
>>> d = Dataset("toy", np.zeros((4, 1, 3)), np.array([0, 1, 0, 1]), np.zeros((2, 1, 3)), np.array([1, 0]), ["a", "b"])
>>> d.input_shape, d.num_classes
((1, 3), 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DATASETS", "Dataset", "load_dataset", "check_limit"]

DATASETS = ("mnist1d", "cifar10", "digits")


@dataclass
class Dataset:
    """A named train/test split: ``x_*`` are the inputs (N, C, ...) and ``y_*`` the integer labels,
    ``classes`` the class names.

    >>> import numpy as np
    >>> from nablab.train import Dataset
    >>> d = Dataset("toy", np.zeros((6, 1, 8)), np.arange(6) % 2, np.zeros((2, 1, 8)), np.array([0, 1]),
    ...             ["a", "b"])
    >>> d.input_shape, d.num_classes, len(d.limited(3).x_train)
    ((1, 8), 2, 3)
    """
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self):
        return len(self.classes)

    def limited(self, limit):
        """The first ``limit`` training and test examples (all of them when ``limit`` is None)."""
        if limit is None:
            return self
        limit = check_limit(limit)
        return Dataset(self.name, self.x_train[:limit], self.y_train[:limit], self.x_test[:limit],
                       self.y_test[:limit], self.classes)


def check_limit(limit):
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit must be a positive integer (a number of examples), got {limit!r}")
    return int(limit)


def load_dataset(name: str, path=None, limit=None, dtype=np.float32, split_seed=None) -> Dataset:
    """Load ``name`` ("mnist1d", "cifar10" or "digits"); ``path`` is the CIFAR-10 archive or folder.

    A missing CIFAR-10 raises :class:`nablab.data.DataNotFoundError` with instructions.

    ``limit`` keeps the first examples of each split; ``dtype`` is the inputs' type.
    ``split_seed`` seeds the digits' stratified split (default 0); the other data sets come
    with a fixed split and refuse it.

    >>> d = load_dataset("digits", split_seed=1, dtype=np.float64)
    >>> d.input_shape, len(d.x_train), len(d.x_test)
    ((3, 32, 32), 1438, 359)
    >>> [round(float(v), 12) + 0.0 for v in (d.x_train.mean(), d.x_train.std())]   # normalised on the training images
    [0.0, 1.0]

    >>> from nablab.train import load_dataset
    >>> load_dataset("cifar10", path="/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nablab.errors.DataNotFoundError: CIFAR-10 not found: /nonexistent does not exist. To ...
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype {dtype} is not supported; use float32 or float64")
    if limit is not None:
        check_limit(limit)
    if split_seed is not None and name != "digits":
        raise ValueError(f"split_seed={split_seed!r}: only the digits are split here; {name} comes with its own "
                         "training and test sets")
    if name == "digits":
        from nablab.data import load_digits

        d = load_digits(split_seed=0 if split_seed is None else split_seed)
        mean = d["x_train"].mean(axis=(0, 2, 3), keepdims=True)
        std = d["x_train"].std(axis=(0, 2, 3), keepdims=True)
        data = Dataset("digits", ((d["x_train"] - mean) / std).astype(dtype), d["y_train"],
                       ((d["x_test"] - mean) / std).astype(dtype), d["y_test"], d["classes"])
        return data.limited(limit)
    if name == "mnist1d":
        from nablab.data import load_mnist1d

        d = load_mnist1d()
        data = Dataset("mnist1d", d["x_train"][:, None, :].astype(dtype), np.asarray(d["y_train"], np.int64),
                       d["x_test"][:, None, :].astype(dtype), np.asarray(d["y_test"], np.int64),
                       [str(i) for i in range(10)])
        return data.limited(limit)
    if name == "cifar10":
        from nablab.data import load_cifar10

        d = load_cifar10(path)
        x_train, x_test = d["x_train"], d["x_test"]
        if limit is not None:
            x_train, x_test = x_train[:limit], x_test[:limit]
        mean = (x_train.mean(axis=(0, 2, 3)) / 255.0).reshape(1, 3, 1, 1)
        std = (x_train.std(axis=(0, 2, 3)) / 255.0).reshape(1, 3, 1, 1)

        def scale(x):
            return ((x.astype(dtype) / dtype.type(255) - mean.astype(dtype)) / std.astype(dtype)).astype(dtype)

        data = Dataset("cifar10", scale(x_train), np.asarray(d["y_train"], np.int64), scale(x_test),
                       np.asarray(d["y_test"], np.int64), list(d.get("classes", [str(i) for i in range(10)])))
        return data.limited(limit)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
