"""The seeded DataLoader: determinism, coverage, drop_last, epochs, transforms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nablab.data import DataLoader


def batches(loader):
    return [(xb.copy(), yb.copy()) for xb, yb in loader]


def data(n=23):
    return np.arange(n * 2, dtype=np.float64).reshape(n, 2), np.arange(n)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch=st.integers(1, 70), drop_last=st.booleans(), shuffle=st.booleans(),
       seed=st.integers(0, 2**32))
def test_one_epoch_visits_every_sample_once(n, batch, drop_last, shuffle, seed):
    x, y = data(n)
    loader = DataLoader(x, y, batch, shuffle=shuffle, drop_last=drop_last, seed=seed)
    got = batches(loader)
    assert len(got) == len(loader) == (n // batch if drop_last else -(-n // batch))
    ys = np.concatenate([yb for _, yb in got]) if got else np.array([], dtype=int)
    if drop_last:
        assert all(len(yb) == batch for _, yb in got) and len(ys) == n - n % batch
    else:
        assert sorted(ys) == list(range(n))
    for xb, yb in got:  # x and y stay paired
        np.testing.assert_array_equal(xb, x[yb])
    if not shuffle:
        assert list(ys) == list(range(len(ys)))


def test_same_seed_same_batches_and_epochs_differ():
    x, y = data()
    a, b = DataLoader(x, y, 5, seed=7), DataLoader(x, y, 5, seed=7)
    first_a, first_b = batches(a), batches(b)
    assert all(np.array_equal(p[1], q[1]) for p, q in zip(first_a, first_b))
    second = batches(a)
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(first_a, second))
    other_seed = batches(DataLoader(x, y, 5, seed=8))
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(first_a, other_seed))


def test_the_permutation_is_default_rng_of_seed_and_epoch():
    x, y = data()
    loader = DataLoader(x, y, 4, seed=11)
    for epoch in range(3):
        expected = np.random.default_rng([11, epoch]).permutation(len(y))
        assert np.array_equal(np.concatenate([yb for _, yb in loader]), expected)
        assert loader.epoch == epoch + 1


def test_setting_the_epoch_replays_it_for_a_resumed_run():
    x, y = data()
    uninterrupted = DataLoader(x, y, 4, seed=3)
    runs = [batches(uninterrupted) for _ in range(4)]
    resumed = DataLoader(x, y, 4, seed=3)
    resumed.epoch = 2
    for expected in runs[2:]:
        got = batches(resumed)
        assert all(np.array_equal(p[1], q[1]) for p, q in zip(got, expected))


def test_a_partial_pass_does_not_advance_the_epoch():
    x, y = data()
    loader = DataLoader(x, y, 4, seed=1)
    for i, _ in enumerate(loader):
        if i == 1:
            break
    assert loader.epoch == 0
    assert loader.order().tolist() == np.random.default_rng([1, 0]).permutation(len(y)).tolist()


def test_transform_gets_the_documented_per_batch_generator():
    x, y = data(10)
    seen = []

    def transform(xb, rng):
        seen.append(rng.integers(1 << 30))
        xb[:] = 0  # batches are copies: the data set is untouched
        return xb

    loader = DataLoader(x, y, 4, seed=5, transform=transform)
    for epoch in range(2):
        for _ in loader:
            pass
    expected = [np.random.default_rng([5, e, b, 1]).integers(1 << 30) for e in range(2) for b in range(3)]
    assert seen == expected
    assert x.sum() == np.arange(20).sum()


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"batch_size": 2, "seed": -1}, "seed must be an integer >= 0, got -1"),
])
def test_bad_arguments_are_named(kwargs, match):
    x, y = data()
    with pytest.raises(ValueError, match=match):
        DataLoader(x, y, **kwargs)


def test_mismatched_lengths_and_bad_epoch():
    with pytest.raises(ValueError, match=r"shapes \(3, 2\) and \(4,\)"):
        DataLoader(np.zeros((3, 2)), np.zeros(4), 2)
    loader = DataLoader(np.zeros((3, 2)), np.zeros(3), 2)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got -2"):
        loader.epoch = -2
    assert "3 samples" in repr(loader)
