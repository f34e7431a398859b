"""Data: MNIST-1D generated locally, CIFAR-10 read safely from disk, scikit-learn's digits
as CIFAR-10-shaped images, a seeded loader,
normalisation and augmentation, one-hot text.

>>> import numpy as np
>>> from nablab.data import DataLoader, one_hot_sentence
>>> vocab, m = one_hot_sentence("This exam is a midterm exam")
>>> len(vocab), m.shape
(5, (6, 5))
>>> loader = DataLoader(np.zeros((10, 3)), np.arange(10), batch_size=4, drop_last=True)
>>> [len(yb) for _, yb in loader]
[4, 4]
"""

from nablab.data.cifar10 import find_cifar10, load_cifar10
from nablab.data.digits import load_digits
from nablab.errors import DataNotFoundError
from nablab.data.loader import DataLoader
from nablab.data.mnist_1d import load_mnist1d
from nablab.data.text import one_hot_sentence, tokenize
from nablab.data.transforms import channel_stats, compose, horizontal_flip, normalize, random_crop

__all__ = [
    "load_mnist1d", "load_cifar10", "find_cifar10", "load_digits", "DataLoader", "DataNotFoundError",
    "normalize", "channel_stats", "random_crop", "horizontal_flip", "compose",
    "one_hot_sentence", "tokenize",
]
