"""Claim about data encoding: the one-hot matrix of a sentence (seed 004, Q4)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nablab.data import one_hot_sentence, tokenize  # noqa: E402
from nablab.lab.registry import Context, Result, experiment  # noqa: E402

SENTENCE = "This exam is a midterm exam"

# The answer sheet's table as the seed transcribes it: a row label, then tab-separated cells.
SEED_TABLE = (
    "This\t1\t\t\t\n"
    "exam\t\t1\t\t\n"
    "is\t\t\t1\t\n"
    "a\t\t\t\t1\n"
    "midterm\t\t\t\t\n"
    "exam\t\t\t\t"
)


def parse_table(text: str) -> tuple[list[str], np.ndarray]:
    """Row labels and a 0/1 matrix from a tab-separated table (blank cells are 0)."""
    rows = [line.split("\t") for line in text.split("\n")]
    width = max(len(r) for r in rows) - 1
    labels = [r[0].strip() for r in rows]
    cells = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        for j, cell in enumerate(r[1:]):
            cells[i, j] = int(cell.strip() or 0)
    return labels, cells


@experiment("data.one-hot", title="One-hot encoding of a sentence")
def one_hot(ctx: Context) -> Result:
    sentence = ctx.param("sentence", SENTENCE)
    vocab, matrix = one_hot_sentence(sentence)
    tokens = tokenize(sentence)
    seed_rows, seed_matrix = parse_table(SEED_TABLE)

    same_rows = seed_rows == tokens
    row_match = [bool(np.array_equal(seed_matrix[i], matrix[i, :seed_matrix.shape[1]])
                      and not matrix[i, seed_matrix.shape[1]:].any())
                 if i < len(seed_matrix) else False for i in range(len(matrix))]
    repeats = {w: [i for i, t in enumerate(tokens) if t == w] for w in vocab if tokens.count(w) > 1}
    repeats_share_code = all(len({tuple(matrix[i]) for i in rows}) == 1 for rows in repeats.values())
    ctx.check(repeats_share_code, "repeated words got different one-hot rows: " + "; ".join(
        f"{w}: {[matrix[i].tolist() for i in rows]}" for w, rows in repeats.items()))
    agrees = same_rows and seed_matrix.shape == matrix.shape and all(row_match)
    is_seed_sentence = sentence == SENTENCE

    fig, ax = plt.subplots(figsize=(1.1 * len(vocab) + 2, 0.5 * len(tokens) + 1.2))
    ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v else "black", fontsize=9)
    ax.set_xticks(range(len(vocab)), vocab)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(tokens)), [f"{i + 1}. {t}" for i, t in enumerate(tokens)])
    ax.set_title("rows: tokens in order; columns: vocabulary in order of first appearance", fontsize=9, pad=22)
    fig.tight_layout()
    figure = ctx.savefig(fig, "one-hot")

    bad_rows = [f"row {i + 1} ({tokens[i]})" for i, ok in enumerate(row_match) if not ok]
    summary = (
        f"Tokens are maximal runs of letters and digits, case kept; the vocabulary is the distinct tokens in "
        f"order of first appearance: {vocab}, so {len(vocab)} one-hot columns for {len(tokens)} tokens. "
        f"The matrix is {matrix.shape[0]} x {matrix.shape[1]} with one 1 per row"
        + (f"; every occurrence of a repeated word ({', '.join(repeats)}) gets the same row. "
           if repeats else ". ")
        + ("" if not is_seed_sentence else "The seed's table agrees entry by entry."
           if agrees else
           f"The seed's table, as transcribed, has {seed_matrix.shape[1]} columns for {len(vocab)} distinct words; "
           f"its rows agree for {sum(row_match)} of {len(matrix)} tokens and differ at {', '.join(bad_rows)}, "
           "which it leaves blank.")
    )
    return Result(
        status=("agrees" if agrees else "disagrees") if is_seed_sentence else "reproduced",
        computed={
            "sentence": sentence, "tokens": tokens, "vocabulary": vocab, "vocabulary size": len(vocab),
            "one-hot matrix (tokens x vocabulary)": matrix,
            "repeated words share one code": repeats_share_code,
            "seed's table columns": int(seed_matrix.shape[1]), "seed rows that match": row_match,
        },
        summary=summary,
        seed_says=("Seed 004 Q4 gives a table with rows This, exam, is, a, midterm, exam and four one-hot "
                   "columns: 1s on the diagonal for This, exam, is, a; the rows for midterm and the second exam "
                   "are blank."),
        details=("The seed's table is an OCR transcription of a handwritten answer, so the blank rows and the "
                 "missing fifth column may have been lost in transcription rather than by the student. As it "
                 "stands it cannot encode five distinct words, and it gives the second \"exam\" no code although "
                 "it must repeat the first one's."),
        figures=[figure],
    )
