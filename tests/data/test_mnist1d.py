"""MNIST-1D: generated locally (never downloaded), deterministic, cached atomically."""

import random

import mnist1d
import mnist1d.data
import numpy as np
import pytest

from nablab.data import load_mnist1d
from nablab.data import mnist_1d as nb_mnist1d
from nablab.data.cache import cache_dir


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to download fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("MNIST-1D must never be downloaded")

    import requests

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)
    monkeypatch.setattr(mnist1d, "get_dataset", refuse)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist1d-cache")
    return folder, load_mnist1d(cache_dir=folder)


def test_shapes_dtypes_and_labels(generated):
    _, data = generated
    assert data["x_train"].shape == (4000, 40) and data["x_train"].dtype == np.float64
    assert data["x_test"].shape == (1000, 40) and data["x_test"].dtype == np.float64
    assert data["y_train"].shape == (4000,) and data["y_train"].dtype == np.int64
    assert data["y_test"].shape == (1000,) and data["t"].shape == (40,)
    labels = np.concatenate([data["y_train"], data["y_test"]])
    assert np.bincount(labels).tolist() == [500] * 10  # make_dataset draws 500 per class
    train_counts = np.bincount(data["y_train"], minlength=10)
    assert train_counts.min() > 350 and train_counts.max() < 450
    assert np.isfinite(data["x_train"]).all()


def test_generating_twice_gives_identical_data(generated):
    """A second generation, into an empty cache folder, equals the first."""
    folder, data = generated
    fresh = load_mnist1d(cache_dir=folder / "second")
    for key in data:
        np.testing.assert_array_equal(fresh[key], data[key])


def test_a_cache_hit_reads_the_file_and_does_not_regenerate(generated, monkeypatch):
    folder, data = generated
    calls = []
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *a, **k: calls.append(a))
    files = list(folder.glob("mnist1d-*.npz"))
    assert len(files) == 1 and files[0] == nb_mnist1d.mnist1d_cache_path(folder, 42)
    cached = load_mnist1d(cache_dir=folder)
    assert calls == []
    for key in data:
        np.testing.assert_array_equal(cached[key], data[key])


def tiny_dataset(args):
    np.random.seed(args.seed)  # as make_dataset does: it touches the global generators
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    return {"x": rng.standard_normal((8, 40)), "y": np.arange(8) % 10, "x_test": rng.standard_normal((2, 40)),
            "y_test": np.arange(2), "t": np.linspace(0, 1, 40), "templates": None}


@pytest.fixture
def counting(monkeypatch):
    calls = []

    def fake(args):
        calls.append(args.seed)
        return tiny_dataset(args)

    monkeypatch.setattr(mnist1d.data, "make_dataset", fake)
    return calls


def test_the_key_includes_the_arguments_and_the_cache_is_npz(tmp_path, counting):
    a = load_mnist1d(cache_dir=tmp_path, seed=1)
    load_mnist1d(cache_dir=tmp_path, seed=1)
    b = load_mnist1d(cache_dir=tmp_path, seed=2)
    assert counting == [1, 2]
    assert not np.array_equal(a["x_train"], b["x_train"])
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2 and all(f.suffix == ".npz" for f in files)  # no temporary files left
    with np.load(files[0], allow_pickle=False) as f:  # readable without pickle
        assert {"x_train", "y_train", "x_test", "y_test", "t", "meta"} <= set(f.files)


def test_global_random_state_is_left_alone(tmp_path, counting):
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    load_mnist1d(cache_dir=tmp_path, seed=9)
    assert (np.random.rand(), random.random()) == expected


def test_a_corrupt_cache_file_is_regenerated(tmp_path, counting):
    path = nb_mnist1d.mnist1d_cache_path(tmp_path, 3)
    path.write_bytes(b"not an npz file")
    with pytest.warns(RuntimeWarning, match="unusable"):
        data = load_mnist1d(cache_dir=tmp_path, seed=3)
    assert counting == [3] and data["x_train"].shape == (8, 40)
    load_mnist1d(cache_dir=tmp_path, seed=3)
    assert counting == [3]


def test_cache_folder_comes_from_the_environment(tmp_path, monkeypatch, counting):
    monkeypatch.setenv("NABLAB_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    load_mnist1d(seed=4)
    assert len(list((tmp_path / "env").glob("mnist1d-*.npz"))) == 1
    monkeypatch.delenv("NABLAB_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "nablab")


def test_an_unwritable_cache_only_warns(tmp_path, counting):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(RuntimeWarning, match="could not write the MNIST-1D cache"):
        data = load_mnist1d(cache_dir=blocker / "sub", seed=5)
    assert data["x_train"].shape == (8, 40)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        load_mnist1d(seed=-1)
