"""Shared fixtures: a small learnable data set shaped like MNIST-1D (and a tiny image one)."""

import contextlib
import signal

import numpy as np
import pytest

from nablab.train.datasets import Dataset


def make_toy(n_train=256, n_test=128, shape=(1, 40), classes=4, seed=0, dtype=np.float64):
    """Labels are the argmax of a fixed random linear map of the input, so models can learn them."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    w = rng.standard_normal((d, classes))
    x = rng.standard_normal((n_train + n_test,) + shape)
    y = np.argmax(x.reshape(len(x), -1) @ w, axis=1).astype(np.int64)
    x = x.astype(dtype)
    return Dataset("toy", x[:n_train], y[:n_train], x[n_train:], y[n_train:], [str(i) for i in range(classes)])


@pytest.fixture
def toy():
    return make_toy()


@pytest.fixture
def fake_cifar(monkeypatch):
    """Stand-in for nablab.data's CIFAR-10 readers (tested in tests/data): 200 + 100 random images."""
    import nablab.data

    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (200, 3, 32, 32), dtype=np.uint8), "y_train": rng.integers(0, 10, 200),
              "x_test": rng.integers(0, 256, (100, 3, 32, 32), dtype=np.uint8), "y_test": rng.integers(0, 10, 100),
              "classes": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    seen = []

    def load(path=None):
        seen.append(path)
        return dict(arrays)

    monkeypatch.setattr(nablab.data, "load_cifar10", load)
    monkeypatch.setattr(nablab.data, "find_cifar10", lambda path=None: "/fake/cifar-10-batches-py")
    return seen


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail the block (instead of hanging the test) when it runs longer than ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def deadline():
    """``with deadline(5): ...`` fails the block after 5 seconds."""
    return time_limit
