"""Tokenisation and one-hot encoding of a sentence."""

import numpy as np
import pytest

from nablab.data import one_hot_sentence, tokenize


def test_the_seed_sentence():
    vocab, m = one_hot_sentence("This exam is a midterm exam")
    assert vocab == ["This", "exam", "is", "a", "midterm"]
    expected = np.zeros((6, 5), dtype=np.int64)
    for row, col in enumerate([0, 1, 2, 3, 4, 1]):
        expected[row, col] = 1
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == np.int64


def test_case_and_punctuation():
    assert tokenize("This, this; THIS!") == ["This", "this", "THIS"]
    assert one_hot_sentence("This, this; THIS!")[0] == ["This", "this", "THIS"]
    vocab, m = one_hot_sentence("This, this; THIS!", lowercase=True)
    assert vocab == ["this"] and m.tolist() == [[1], [1], [1]]
    assert tokenize("rock'n'roll isn't snake_case") == ["rock'n'roll", "isn't", "snake", "case"]


def test_every_row_has_one_one():
    vocab, m = one_hot_sentence("a b a c b a d")
    assert (m.sum(axis=1) == 1).all() and m.sum(axis=0).tolist() == [3, 2, 1, 1]


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="'!!' has no tokens"):
        one_hot_sentence("!!")
    with pytest.raises(TypeError, match="got list"):
        tokenize(["a"])
