"""data.one-hot: the one-hot encoding of a sentence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nablab.data import one_hot_sentence, tokenize
from nablab.lab.registry import Context, compute, figure


@dataclass
class OneHot:
    sentence: str
    tokens: list
    vocabulary: list
    one_hot: np.ndarray          # slot: tokens x vocabulary
    vocabulary_size: int         # slot
    repeats_share_a_row: bool    # slot: every occurrence of a word has the same row

    def summary(self) -> str:
        repeated = sorted({t for t in self.tokens if self.tokens.count(t) > 1})
        return (
            "Tokens are maximal runs of letters and digits, case kept; the vocabulary is the distinct "
            f"tokens in order of first appearance: {self.vocabulary}, so {self.vocabulary_size} one-hot "
            f"columns for {len(self.tokens)} tokens. The matrix is ${self.one_hot.shape[0]} \\times "
            f"{self.one_hot.shape[1]}$ with one 1 per row"
            + (f"; every occurrence of a repeated word ({', '.join(repeated)}) gets the same row."
               if repeated else ".")
        )


@compute("data.one-hot")
def one_hot(run: Context) -> OneHot:
    sentence = run.params["sentence"]
    vocab, matrix = one_hot_sentence(sentence)
    tokens = tokenize(sentence)
    rows_of = {w: {tuple(matrix[i]) for i, t in enumerate(tokens) if t == w} for w in vocab}
    run.check(all(len(rows) == 1 for rows in rows_of.values()),
              "a repeated word got different one-hot rows")
    run.check(np.array_equal(matrix.sum(axis=1), np.ones(len(tokens))), "a row does not hold exactly one 1")
    return OneHot(sentence, tokens, vocab, matrix, len(vocab), True)


@figure("data.one-hot")
def one_hot_figure(result: OneHot, run: Context) -> None:
    import matplotlib.pyplot as plt

    matrix, vocab, tokens = result.one_hot, result.vocabulary, result.tokens
    fig, ax = plt.subplots(figsize=(1.1 * len(vocab) + 2, 0.5 * len(tokens) + 1.2))
    ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v else "black", fontsize=9)
    ax.set_xticks(range(len(vocab)), vocab)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(tokens)), [f"{i + 1}. {t}" for i, t in enumerate(tokens)])
    ax.set_title("rows: tokens in order; columns: vocabulary in order of first appearance", fontsize=9, pad=22)
    fig.tight_layout()
    sentence = result.sentence.replace("$", "\\$")     # a dollar in the sentence is not math
    run.savefig(fig, "one-hot", alt=f"The ${matrix.shape[0]} \\times {matrix.shape[1]}$ one-hot matrix of "
                f"\"{sentence}\": one dark cell per row, repeated words on the same column.")
