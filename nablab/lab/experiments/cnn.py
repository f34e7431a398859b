"""Claims about what small convolution filters compute and detect.

Every output is computed with :func:`nablab.nn.functional.conv2d`, which is a
cross-correlation (the deep-learning convention: no kernel flip), and
cross-checked with ``scipy.signal``. Where a seed's "convolution" may mean the
flipped operation, both are computed and the difference is stated.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nablab.lab.compare import compare_quotes  # noqa: E402
from nablab.lab.registry import Context, Result, experiment  # noqa: E402
from nablab.nn import functional as F  # noqa: E402


def correlate(image, kernel, padding=0):
    """``image`` (H, W) cross-correlated with ``kernel`` (kh, kw) by nablab's conv2d."""
    image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
    return F.conv2d(image[None, None], kernel[None, None], padding=padding)[0, 0]


def quoted_matrix(rows) -> np.ndarray:
    """A quoted matrix (lists of strings) as floats, for using a seed's filter as an input."""
    return np.array([[float(v) for v in row] for row in rows])


def _show(ax, values, title, annotate=True, cmap="RdBu_r", vmax=None, binary=False):
    """Draw a matrix: signed values on a symmetric diverging scale, or 0/1 images in grey."""
    values = np.asarray(values, dtype=float)
    if binary:
        cmap, vmin, vmax = "Greys", 0.0, 1.0
    else:
        vmax = vmax or max(1.0, float(np.abs(values).max()))
        vmin = -vmax
    ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            dark = (v - vmin) / (vmax - vmin) > 0.75 if binary else abs(v) > 0.6 * vmax
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


# ---------------------------------------------------------------------------------------
# cnn.filter-output (seeds 000 and 002, section 3.1)

# The problem's input and filter (seed 000, section 3.1, first rendering of the question).
INPUT_I = np.array([[0, 1, 1, 0, 0],
                    [0, 1, 1, 1, 0],
                    [1, 1, 1, 1, 0],
                    [0, 1, 1, 1, 0],
                    [0, 0, 1, 0, 0]], dtype=np.float64)
FILTER_J = np.array([[0, -1, 0],
                     [-1, 4, -1],
                     [0, -1, 0]], dtype=np.float64)

# The two answer sets' I * J, quoted.
SEED_000_OUTPUT = [["-1", "2", "2", "-2", "0"], ["-2", "1", "0", "2", "-1"], ["3", "0", "0", "1", "-1"],
                   ["-2", "2", "0", "2", "-1"], ["0", "-2", "3", "-2", "0"]]
SEED_002_OUTPUT = [["-1", "2", "2", "-2", "0"], ["-2", "1", "0", "2", "-1"], ["3", "0", "0", "1", "-1"],
                   ["-2", "2", "0", "2", "-1"], ["0", "-2", "3", "-2", "0"]]


def flat_neighbourhoods(image) -> np.ndarray:
    """True where a pixel equals its four zero-padded neighbours (no edge through it)."""
    p = np.pad(image, 1)
    centre = p[1:-1, 1:-1]
    return ((p[:-2, 1:-1] == centre) & (p[2:, 1:-1] == centre)
            & (p[1:-1, :-2] == centre) & (p[1:-1, 2:] == centre))


def demo_image(n: int = 24) -> np.ndarray:
    """A bright square, a disc and a linear ramp: edges of every orientation and a smooth gradient."""
    i, j = np.mgrid[0:n, 0:n].astype(float)
    img = np.zeros((n, n))
    img[3:10, 3:10] = 1.0
    img[(i - 16.5) ** 2 + (j - 7) ** 2 <= 16] = 1.0
    img[2:22, 13:22] = (j[2:22, 13:22] - 12) / 10.0  # a ramp rising to the right
    return img


@experiment("cnn.filter-output", title="A 3x3 Laplacian filter on a 5x5 input")
def filter_output(ctx: Context) -> Result:
    I, J = INPUT_I, FILTER_J
    ours = correlate(I, J, padding=1)
    flipped = correlate(I, J[::-1, ::-1], padding=1)  # true convolution = correlation with the flipped kernel
    symmetric = bool(np.array_equal(J, J[::-1, ::-1]))
    from scipy import signal

    scipy_corr = signal.correlate2d(I, J, mode="same", boundary="fill", fillvalue=0)
    scipy_conv = signal.convolve2d(I, J, mode="same", boundary="fill", fillvalue=0)
    cross_checks = bool(np.array_equal(ours, scipy_corr) and np.array_equal(flipped, scipy_conv)
                        and np.array_equal(ours, flipped))
    ctx.check(cross_checks, f"nablab's conv2d gives {ours.tolist()} and with the flipped filter "
                            f"{flipped.tolist()}; scipy's correlate2d gives {scipy_corr.tolist()} and "
                            f"convolve2d {scipy_conv.tolist()} (J is symmetric, so all four must be equal)")

    rows_000 = compare_quotes(ours, SEED_000_OUTPUT)
    rows_002 = compare_quotes(ours, SEED_002_OUTPUT)
    wrong = {"000": [r for r in rows_000 if not r["match"]], "002": [r for r in rows_002 if not r["match"]]}

    # What it detects: zero sum, so zero on flat patches; a discrete second derivative, so zero on
    # linear ramps; the same under 90-degree rotation, so every edge orientation responds alike.
    zero_sum = float(J.sum())
    flat = flat_neighbourhoods(I)
    silent_on_flat = bool(np.all(ours[flat] == 0))
    fires_on_edges = bool(np.all(ours[~flat] != 0))
    rotation_invariant = bool(np.array_equal(J, np.rot90(J)))
    demo = demo_image()
    demo_out = correlate(demo, J, padding=1)
    ramp_interior = demo_out[4:20, 15:20]  # inside the ramp, away from its borders
    ramp_silent = bool(np.abs(ramp_interior).max() < 1e-12)
    detects_edges = silent_on_flat and fires_on_edges and ramp_silent and zero_sum == 0 and rotation_invariant

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
    _show(axes[0], I, "input I", binary=True)
    _show(axes[1], J, "filter J")
    _show(axes[2], ours, "I * J (nablab conv2d, padding 1)")
    _show(axes[3], np.where(flat, 0, 1), "black: a neighbour differs (edge)\nwhite: flat, where I * J = 0",
          annotate=False, binary=True)
    _show(axes[4], demo_out, "J on a test image: square, disc, ramp\n(zero inside flats and the ramp)",
          annotate=False, vmax=float(np.abs(demo_out).max()))
    fig.tight_layout()
    figure = ctx.savefig(fig, "output")

    agrees = not wrong["000"] and not wrong["002"] and detects_edges
    mismatch_text = "; ".join(
        f"seed {s} entry ({r['index'][0] + 1}, {r['index'][1] + 1}) says {r['seed']}, computed {r['computed']:g}"
        for s in wrong for r in wrong[s])
    summary = (
        f"nablab's conv2d (a cross-correlation) with zero padding gives I * J = {ours.astype(int).tolist()}; "
        "scipy.signal.correlate2d gives the same. "
        f"J equals its 180-degree rotation ({symmetric}), so flipping it (true convolution) changes nothing. "
        + ("Both answer sets agree entry by entry (25 of 25 each). " if not mismatch_text
           else f"Mismatches: {mismatch_text}. ")
        + f"J sums to {zero_sum:g} and is a discrete Laplacian: the output is 0 at every pixel whose four "
          f"neighbours equal it ({int(flat.sum())} pixels) and non-zero at the other {int((~flat).sum())}, "
          "the pixels an edge passes through; it is 0 inside a linear ramp and responds to every edge "
          "orientation alike (J is unchanged by a 90-degree rotation). So it detects edges, as both answers say "
          "(more precisely: changes of the gradient, in all directions)."
    )
    return Result(
        status="agrees" if agrees else "disagrees",
        computed={
            "I": I, "J": J, "I * J (cross-correlation, zero padding)": ours,
            "with the flipped filter (true convolution)": flipped,
            "J symmetric under flipping": symmetric,
            "scipy correlate2d / convolve2d agree": cross_checks,
            "entry-by-entry against the seed": {"000": rows_000, "002": rows_002},
            "sum of J": zero_sum,
            "output is 0 exactly where the neighbourhood is flat": silent_on_flat and fires_on_edges,
            "max |response| inside a linear ramp": float(np.abs(ramp_interior).max()),
            "J invariant under 90-degree rotation": rotation_invariant,
        },
        summary=summary,
        seed_says=("Seeds 000 and 002 both give I * J = [[-1, 2, 2, -2, 0], [-2, 1, 0, 2, -1], [3, 0, 0, 1, -1], "
                   "[-2, 2, 0, 2, -1], [0, -2, 3, -2, 0]]; 000: \"Edge detection\", 002: \"The convolutional "
                   "filter detects edges of the input image\"."),
        details=("Seed 000 prints the question twice; its second rendering of I is a garbled 7x6 array "
                 "(a zero border around a different 5x4 block). Both answer sets match the first rendering, "
                 "the 5x5 I used here."),
        figures=[figure],
    )


# ---------------------------------------------------------------------------------------
# cnn.filter-design (seed 004, Q1(b-d))

# The answer sheet's three filters, quoted (it gives the filters, not the questions).
SEED_FILTERS = {
    "b": [["1", "1", "1"], ["0", "0", "0"], ["-1", "-1", "-1"]],
    "c": [["0", "1"], ["-1", "0"]],
    "d": [["0", "0", "0"], ["0", "0", "1"], ["0", "0", "0"]],
}


def test_images(n: int = 10) -> dict:
    """Step edges of four orientations, a dot and an asymmetric pattern, n x n, values 0 and 1."""
    i, j = np.mgrid[0:n, 0:n]
    dot = np.zeros((n, n))
    dot[n // 2, n // 2 - 1] = 1.0
    pattern = np.zeros((n, n))
    pattern[2:8, 3] = 1.0   # an "F": stem,
    pattern[2, 3:7] = 1.0   # top bar,
    pattern[4, 3:6] = 1.0   # middle bar
    return {
        "horizontal edge": (i >= n // 2).astype(float),
        "vertical edge": (j >= n // 2).astype(float),
        "diagonal edge \\": (j > i).astype(float),
        "diagonal edge /": (i + j >= n).astype(float),
        "dot": dot,
        "pattern": pattern,
    }


def ramp(angle_deg: float, n: int = 8) -> np.ndarray:
    """A linear ramp whose level lines (the "edge") run at ``angle_deg`` from the horizontal, counter-clockwise.

    Unit gradient, perpendicular to the level lines; row index grows downwards.
    """
    phi = np.deg2rad(angle_deg)
    i, j = np.mgrid[0:n, 0:n].astype(float)
    return -np.sin(phi) * j - np.cos(phi) * i


def impulse_response(kernel) -> np.ndarray:
    """The output around a single bright pixel, cut to the kernel's size.

    For a cross-correlation out[i, j] = sum k[a, b] x[i + a, j + b], a dot at p gives
    out[p - a] = k[a]: the kernel turned by 180 degrees.
    """
    kh, kw = kernel.shape
    n = kh + kw + 3
    x = np.zeros((n, n))
    x[n // 2, n // 2] = 1.0
    out = correlate(x, kernel)  # valid: out[i, j] covers x[i:i+kh, j:j+kw]
    window = out[n // 2 - kh + 1:n // 2 + 1, n // 2 - kw + 1:n // 2 + 1]
    rest = np.abs(out).sum() - np.abs(window).sum()
    return window if rest == 0 else np.full_like(window, np.nan)


def orientation_response(kernel, angles) -> np.ndarray:
    """|response| of ``kernel`` to unit-gradient ramps at each edge angle (constant over a ramp)."""
    out = []
    for a in angles:
        r = correlate(ramp(a), kernel)
        out.append(abs(float(r.mean())))
    return np.array(out)


@experiment("cnn.filter-design", title="What three hand-made filters do")
def filter_design(ctx: Context) -> Result:
    filters = {k: quoted_matrix(v) for k, v in SEED_FILTERS.items()}
    images = test_images(ctx.param("size", 10))
    # 'valid' responses (no padding) for the detectors, so the zero border adds no false edges
    valid = {k: {name: correlate(img, filters[k]) for name, img in images.items()} for k in ("b", "c")}
    peak = {k: {name: float(np.abs(r).max()) for name, r in valid[k].items()} for k in valid}

    # (b) responds to horizontal edges, not vertical ones
    b_horizontal = peak["b"]["horizontal edge"] > 0 and peak["b"]["vertical edge"] == 0
    b_sign = float(valid["b"]["horizontal edge"].min())  # bright below: row above minus row below < 0

    # orientation tuning on ramps, every 5 degrees
    angles = np.arange(0, 180, 5)
    tuning = {k: orientation_response(filters[k], angles) for k in ("b", "c")}
    best = {k: int(angles[np.argmax(tuning[k])]) for k in tuning}
    null = {k: [int(a) for a in angles[tuning[k] < 1e-12]] for k in tuning}
    b_tuned = best["b"] == 0 and null["b"] == [90]
    # (c): x[i, j+1] - x[i+1, j], a difference along the / diagonal: blind to / edges, strongest on \ edges
    c_diagonal = (peak["c"]["diagonal edge /"] == 0 and peak["c"]["diagonal edge \\"] > 0
                  and best["c"] == 135 and null["c"] == [45])

    # (d): with padding 1 (same size) the output is the image moved by one pixel
    shifted = {name: correlate(img, filters["d"], padding=1) for name, img in images.items()}
    left = {name: np.pad(img[:, 1:], ((0, 0), (0, 1))) for name, img in images.items()}
    right = {name: np.pad(img[:, :-1], ((0, 0), (1, 0))) for name, img in images.items()}
    d_left = all(np.array_equal(shifted[n], left[n]) for n in images)
    from scipy import signal

    conv_d = {n: signal.convolve2d(img, filters["d"], mode="same") for n, img in images.items()}
    d_conv_right = all(np.array_equal(conv_d[n], right[n]) for n in images)
    # an impulse comes out as the kernel turned by 180 degrees (what cross-correlation does)
    impulse_is_rotated_kernel = all(np.array_equal(impulse_response(k), np.rot90(k, 2)) for k in filters.values())

    # -- figures
    names = list(images)
    fig, axes = plt.subplots(4, len(names), figsize=(2.1 * len(names), 8.6))
    labels = ["input", "(b) [[1,1,1],[0,0,0],[-1,-1,-1]]\nvalid", "(c) [[0,1],[-1,0]]\nvalid",
              "(d) [[0,0,0],[0,0,1],[0,0,0]]\npadding 1"]
    for col, name in enumerate(names):
        _show(axes[0, col], images[name], name, annotate=False, binary=True)
        _show(axes[1, col], valid["b"][name], f"max |out| {peak['b'][name]:g}", annotate=False, vmax=3)
        _show(axes[2, col], valid["c"][name], f"max |out| {peak['c'][name]:g}", annotate=False, vmax=1)
        _show(axes[3, col], shifted[name], "one pixel left" if np.array_equal(shifted[name], left[name])
              else "", annotate=False, binary=True)
    for row, label in enumerate(labels):
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("Seed 004's filters applied with nablab's conv2d (cross-correlation)", fontsize=10)
    fig.tight_layout()
    fig_images = ctx.savefig(fig, "responses")

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(angles, tuning["b"], "o-", ms=3, label="(b) [[1,1,1],[0,0,0],[-1,-1,-1]]")
    ax.plot(angles, tuning["c"], "s-", ms=3, label="(c) [[0,1],[-1,0]]")
    top = 1.15 * max(tuning["b"].max(), tuning["c"].max())
    ax.set_ylim(0, top)
    for a, text in ((0, "horizontal"), (45, "/"), (90, "vertical"), (135, "\\")):
        ax.axvline(a, color="gray", lw=0.6, ls=":")
        ax.text(a + 1, 0.95 * top, text, fontsize=8, va="top")
    ax.set_xlabel("edge angle (degrees from horizontal, counter-clockwise)")
    ax.set_ylabel("|response| to a unit-slope ramp")
    ax.set_title("Orientation tuning", fontsize=10)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig_tuning = ctx.savefig(fig, "orientation")

    ok = b_horizontal and b_tuned and c_diagonal and d_left
    summary = (
        f"(b) detects horizontal edges: on step edges its largest |response| is "
        f"{peak['b']['horizontal edge']:g} for a horizontal edge and {peak['b']['vertical edge']:g} for a vertical "
        f"one; on ramps it peaks at {best['b']} degrees and is blind at {null['b']} (it is the row above minus "
        f"the row below, so a dark-over-bright edge gives {b_sign:g}). "
        f"(c) is a 2x2 diagonal difference, out[i, j] = x[i, j+1] - x[i+1, j]: it is blind to edges along "
        f"the / diagonal (ramps at {null['c']} degrees, step edge response "
        f"{peak['c']['diagonal edge /']:g}) and strongest on edges along the \\ diagonal (peak at "
        f"{best['c']} degrees, |response| {tuning['c'].max():.3g}), so it detects diagonal edges of one "
        f"orientation; it also fires on horizontal and vertical edges (|response| {tuning['c'][0]:.3g} on "
        f"those ramps, and {peak['c']['horizontal edge']:g} on a step edge, the same as on a \\ step). "
        f"(d) moves the image by exactly one pixel: with nablab's cross-correlation the content moves "
        f"{'left' if d_left else '(not left)'}; with a flipped-kernel convolution (scipy convolve2d) it moves "
        f"{'right' if d_conv_right else '(not right)'}. The answer sheet gives only the filters, not the "
        "questions; read as designs for a horizontal-edge detector, a diagonal-edge detector and a one-pixel "
        "shift, each filter does its job" + ("." if ok else " only in part: see computed.")
        + " Which way (d) shifts depends on the convolution convention."
    )
    return Result(
        status="agrees" if ok else "disagrees",
        computed={
            "filters": {k: v for k, v in filters.items()},
            "max |response| on step edges (valid)": peak,
            "ramp tuning: angle of peak (degrees)": best,
            "ramp tuning: angles with zero response": null,
            "ramp tuning |response| every 15 degrees": {
                k: {int(a): round(float(v), 12) for a, v in zip(angles, tuning[k]) if a % 15 == 0} for k in tuning},
            "(d) cross-correlation shifts left by one": d_left,
            "(d) flipped convolution shifts right by one": d_conv_right,
            "a dot comes out as the kernel rotated 180 degrees": impulse_is_rotated_kernel,
        },
        summary=summary,
        seed_says=("Seed 004, Q1: (b) [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]; (c) [[0, 1], [-1, 0]]; "
                   "(d) [[0, 0, 0], [0, 0, 1], [0, 0, 0]] (filters only; the questions are not in the seed)."),
        details=("On a unit-slope ramp whose level lines run at angle phi, (b) gives 6 cos(phi) and (c) gives "
                 "sqrt(2) cos(phi + 45 degrees): the measured curves in the second figure."),
        figures=[fig_images, fig_tuning],
    )
