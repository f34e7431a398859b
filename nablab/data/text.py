"""One-hot encoding of a sentence.

Tokenisation: a token is a maximal run of letters and digits, with inner
apostrophes kept (``don't`` is one token); spaces and punctuation only
separate tokens. Case is kept unless ``lowercase=True``, so ``This`` and
``this`` are different words by default.

Vocabulary: the distinct tokens in order of first appearance.

Matrix: one row per token of the sentence (repeats included), one column per
vocabulary word; row i has a single 1 in the column of token i.

>>> vocab, m = one_hot_sentence("the cat saw the dog")
>>> vocab
['the', 'cat', 'saw', 'dog']
>>> m
array([[1, 0, 0, 0],
       [0, 1, 0, 0],
       [0, 0, 1, 0],
       [1, 0, 0, 0],
       [0, 0, 0, 1]])
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["tokenize", "one_hot_sentence"]

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(sentence: str, lowercase: bool = False) -> list[str]:
    """The sentence's tokens in order (see the module docstring for the rule).

    >>> tokenize("Don't stop, it's fine!")
    ["Don't", 'stop', "it's", 'fine']
    """
    if not isinstance(sentence, str):
        raise TypeError(f"tokenize: expected a str, got {type(sentence).__name__} {sentence!r}")
    tokens = _TOKEN.findall(sentence)
    return [t.lower() for t in tokens] if lowercase else tokens


def one_hot_sentence(sentence: str, lowercase: bool = False) -> tuple[list[str], np.ndarray]:
    """``(vocab, matrix)``: the vocabulary in first-appearance order and the
    (tokens x vocabulary) int64 one-hot matrix.

    ``sentence`` is split into words (see :func:`tokenize`); ``lowercase=True`` folds case first.

    >>> from nablab.data import one_hot_sentence
    >>> vocab, m = one_hot_sentence("The cat saw the dog", lowercase=True)
    >>> vocab, m.tolist()[3]
    (['the', 'cat', 'saw', 'dog'], [1, 0, 0, 0])
    """
    tokens = tokenize(sentence, lowercase)
    if not tokens:
        raise ValueError(f"one_hot_sentence: {sentence!r} has no tokens (letters or digits)")
    vocab = list(dict.fromkeys(tokens))
    column = {word: j for j, word in enumerate(vocab)}
    matrix = np.zeros((len(tokens), len(vocab)), dtype=np.int64)
    matrix[np.arange(len(tokens)), [column[t] for t in tokens]] = 1
    return vocab, matrix
