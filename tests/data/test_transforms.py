"""Normalisation, per-channel statistics, random crops, flips and composition."""

import numpy as np
import pytest

from nablab.data import channel_stats, compose, horizontal_flip, normalize, random_crop


def images(n=6, c=3, h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def test_channel_stats_and_normalize_standardize_each_channel():
    x = images(n=50)
    mean, std = channel_stats(x)
    assert mean.shape == std.shape == (3,) and mean.dtype == np.float64
    z = normalize(x, mean, std)
    assert z.dtype == np.float64  # integer images become float64, stated
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, rtol=1e-12)
    g_mean, g_std = channel_stats(x, channel_axis=None)
    assert g_mean.shape == () and np.isclose(g_mean, x.mean())


def test_normalize_keeps_float32_and_checks_shapes():
    x = images().astype(np.float32)
    assert normalize(x, [1, 2, 3], [1, 1, 1]).dtype == np.float32
    assert normalize(x, 0.5, 2.0).dtype == np.float32
    assert normalize(x, 0.5, 2.0, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match=r"mean has shape \(2,\).*shape \(6, 3, 5, 7\)"):
        normalize(x, [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="std has a zero entry"):
        normalize(x, 0, [1, 0, 1])


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = images()
    p = 2
    out = random_crop(x, p, np.random.default_rng(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    offsets = np.random.default_rng(3).integers(0, 2 * p + 1, size=(len(x), 2))
    for i, (dy, dx) in enumerate(offsets):
        np.testing.assert_array_equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 7])
    np.testing.assert_array_equal(out, random_crop(x, p, np.random.default_rng(3)))
    signals = np.arange(12.0).reshape(2, 1, 6)
    assert random_crop(signals, 1, np.random.default_rng(0)).shape == (2, 1, 6)
    with pytest.raises(ValueError, match=r"got shape \(6, 7\)"):
        random_crop(np.zeros((6, 7)), 1, np.random.default_rng(0))


def test_horizontal_flip_mirrors_the_width_with_probability_p():
    x = images(n=2000, c=1, h=1, w=4)
    rng = np.random.default_rng(0)
    assert np.array_equal(horizontal_flip(x, rng, p=0.0), x)
    assert np.array_equal(horizontal_flip(x, rng, p=1.0), x[..., ::-1])
    out = horizontal_flip(x, np.random.default_rng(1), p=0.3)
    flipped = np.array([not np.array_equal(a, b) for a, b in zip(out, x)])
    assert abs(flipped.mean() - 0.3) < 0.05  # (palindromic rows would count as unflipped: rare)
    with pytest.raises(ValueError, match="p must be in"):
        horizontal_flip(x, rng, p=1.5)


def test_compose_applies_in_order_with_one_generator():
    add = lambda x, rng: x + rng.integers(10)  # noqa: E731
    double = lambda x, rng: 2 * x  # noqa: E731
    out = compose(add, double)(np.zeros(1), np.random.default_rng(4))
    assert out[0] == 2 * np.random.default_rng(4).integers(10)
    with pytest.raises(TypeError, match="is not callable"):
        compose(add, 3)
