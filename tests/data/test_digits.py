"""scikit-learn's digits as CIFAR-10-shaped images: upsampling, the stratified split, the loader and load_dataset."""

import sys

import numpy as np
import pytest

from nablab.data.digits import load_digits, stratified_split, upsample, upsampling_matrix

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="the digits ship with scikit-learn")


@pytest.fixture(scope="module")
def raw():
    d = sklearn_datasets.load_digits()
    return d.images, d.target


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("shape,size", [((8, 8), 32), ((3, 7), 11), ((5, 5), 5)])
def test_upsample_matches_pytorch_interpolate(method, shape, size):
    """An independent implementation: torch.nn.functional.interpolate, bilinear with align_corners=False and
    nearest-exact (the pixel holding the centre; torch's legacy "nearest" floors i * n / size instead)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((4,) + shape)
    kw = {"mode": "bilinear", "align_corners": False} if method == "bilinear" else {"mode": "nearest-exact"}
    expected = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], size=(size, size), **kw)[:, 0].numpy()
    np.testing.assert_allclose(upsample(x, size, method), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_upsampling_keeps_constants_and_range(method):
    u = upsampling_matrix(8, 32, method)
    np.testing.assert_allclose(u.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert u.min() >= 0
    x = np.random.default_rng(1).random((8, 8))
    y = upsample(x, 32, method)
    assert x.min() <= y.min() and y.max() <= x.max()


def test_nearest_upsampling_is_blocks_of_four():
    x = np.random.default_rng(2).random((2, 8, 8))
    y = upsample(x, 32, "nearest")
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 4, axis=-2), 4, axis=-1))


def test_upsample_refuses_shrinking_and_unknown_methods():
    with pytest.raises(ValueError, match="smaller than the images"):
        upsample(np.zeros((8, 8)), 4)
    with pytest.raises(ValueError, match="unknown upsampling method 'bicubic'"):
        upsample(np.zeros((8, 8)), 32, "bicubic")
    with pytest.raises(ValueError, match="at least 2 axes"):
        upsample(np.zeros(8), 32)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.1])
def test_stratified_split_partitions_with_each_class_in_proportion(fraction, raw):
    _, y = raw
    train, test = stratified_split(y, fraction, seed=4)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
    for c, n in enumerate(np.bincount(y)):
        assert np.count_nonzero(y[test] == c) == round(fraction * n)
    # shuffled, not grouped by class: the labels change often along the test split
    assert np.count_nonzero(np.diff(y[test])) > len(test) // 2


def test_stratified_split_is_a_function_of_its_seed():
    y = np.arange(200) % 4
    a, b = stratified_split(y, 0.25, seed=7), stratified_split(y, 0.25, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(np.sort(a[1]), np.sort(stratified_split(y, 0.25, seed=8)[1]))


def test_stratified_split_refuses_what_it_cannot_split():
    with pytest.raises(ValueError, match="class 1 has 1 examples"):
        stratified_split([0, 0, 0, 0, 1], 0.5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        stratified_split([0, 1, 0, 1], 1.0)
    with pytest.raises(ValueError, match="integer array"):
        stratified_split([0.0, 1.0], 0.5)


def test_load_digits_images_are_the_sklearn_digits_upsampled(raw):
    images, target = raw
    d = load_digits(split_seed=2, method="nearest")
    assert d["x_train"].shape == (len(d["train_index"]), 3, 32, 32) and d["x_test"].shape[1:] == (3, 32, 32)
    for split in ("train", "test"):
        x, idx = d[f"x_{split}"], d[f"{split}_index"]
        np.testing.assert_array_equal(d[f"y_{split}"], target[idx])
        np.testing.assert_array_equal(x[:, 0, ::4, ::4], images[idx] / 16)   # each pixel a 4 x 4 block
        np.testing.assert_array_equal(x[:, 0], x[:, 2])                       # grey, repeated over channels
    smooth = load_digits(split_seed=2)
    np.testing.assert_array_equal(smooth["test_index"], d["test_index"])   # the split does not depend on the method
    assert 0 <= smooth["x_train"].min() and smooth["x_train"].max() <= 1


def test_load_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ModuleNotFoundError, match=r"scikit-learn, which is not installed: pip install scikit-learn") \
            as info:
        load_digits()
    assert info.value.name == "sklearn"


def test_load_dataset_normalises_with_the_training_images_statistics():
    from nablab.train import load_dataset

    d = load_dataset("digits", dtype=np.float64, split_seed=5)
    raw = load_digits(split_seed=5)
    mean, std = raw["x_train"].mean(), raw["x_train"].std()
    np.testing.assert_allclose(d.x_test, (raw["x_test"] - mean) / std, rtol=0, atol=1e-12)
    assert abs(d.x_train.mean()) < 1e-12 and abs(d.x_train.std() - 1) < 1e-12
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10 and d.x_train.dtype == np.float64
    assert load_dataset("digits", dtype=np.float32).x_train.dtype == np.float32
    with pytest.raises(ValueError, match="only the digits are split here"):
        load_dataset("mnist1d", split_seed=1)


def test_softmax_classifier_learns_the_digits():
    """A real-data check of the loader, through the training command's registry (TrainConfig(dataset="digits")):
    3 epochs of Adam put the softmax classifier far above chance (10%)."""
    from nablab.train import TrainConfig, train

    result = train(TrainConfig(dataset="digits", model="logistic", lr=1e-3, epochs=3, seed=0))
    assert len(result.step_losses) == 3 * 15            # 1,438 training images in batches of 100
    assert result.final["test_acc"] > 0.85
