"""Claims about what small convolution filters compute and detect.

Every output is computed with :func:`nablab.nn.functional.conv2d`, which is a
cross-correlation (the deep-learning convention: no kernel flip), and
cross-checked with ``scipy.signal``. Where "convolution" may mean the flipped
operation, both are computed and the difference is stated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nablab.lab.registry import Context, compute, figure
from nablab.nn import functional as F

HIDDEN = {"report": False}  # figure-only data, left out of the report's table


def correlate(image, kernel, padding=0):
    """``image`` (H, W) cross-correlated with ``kernel`` (kh, kw) by nablab's conv2d."""
    image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
    return F.conv2d(image[None, None], kernel[None, None], padding=padding)[0, 0]


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


def _matrix_text(kernel) -> str:
    return "[" + ", ".join("[" + ",".join(f"{v:g}" for v in row) + "]" for row in np.asarray(kernel)) + "]"


# ---------------------------------------------------------------------------------------
# cnn.filter-output


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


@dataclass
class FilterOutput:
    image: np.ndarray
    kernel: np.ndarray
    output: np.ndarray             # slot: image * kernel, cross-correlation with zero padding
    detects_edges: bool            # slot
    flipped_output: np.ndarray     # with the kernel turned by 180 degrees (a true convolution)
    kernel_symmetric: bool         # the kernel equals its 180-degree rotation
    kernel_sum: float
    flat_pixels: int               # pixels equal to their four neighbours
    edge_pixels: int               # the others
    silent_exactly_on_flat: bool   # output 0 at every flat pixel and non-zero at every other one
    max_response_in_ramp: float    # |output| inside a linear ramp of the test image
    rotation_invariant: bool       # the kernel equals its 90-degree rotation
    flat: np.ndarray = field(default=None, metadata=HIDDEN)
    demo_response: np.ndarray = field(default=None, metadata=HIDDEN)

    def summary(self) -> str:
        out = self.output.astype(int).tolist() if np.all(self.output == np.round(self.output)) else self.output.tolist()
        flip = ("it equals its 180-degree rotation, so flipping it (a true convolution) changes nothing"
                if self.kernel_symmetric else
                "it is not symmetric, so a true convolution (the flipped kernel) gives another output")
        text = (f"nablab's conv2d (a cross-correlation) with zero padding gives $I * J$ = {out}; "
                f"scipy.signal.correlate2d gives the same. $J$ is {_matrix_text(self.kernel)}: {flip}. "
                f"$J$ sums to {self.kernel_sum:g}; the output is 0 at "
                + ("every" if self.silent_exactly_on_flat else "not exactly every")
                + f" pixel whose four neighbours equal it ({self.flat_pixels} pixels) and non-zero at the other "
                  f"{self.edge_pixels}, the pixels an edge passes through; inside a linear ramp it is "
                + ("0 (to rounding)" if self.max_response_in_ramp < 1e-12 else f"up to {self.max_response_in_ramp:.3g}")
                + ", and $J$ is "
                + ("" if self.rotation_invariant else "not ")
                + "unchanged by a 90-degree rotation. ")
        if self.detects_edges:
            text += ("So it detects edges, in every orientation alike: a discrete Laplacian, it responds to "
                     "changes of the gradient and is silent on flat regions and linear ramps.")
        else:
            text += "So it is not an edge detector in that sense."
        return text


@compute("cnn.filter-output")
def filter_output(run: Context) -> FilterOutput:
    I = np.array(run.params["image"], dtype=np.float64)
    J = np.array(run.params["kernel"], dtype=np.float64)
    pad = J.shape[0] // 2
    ours = correlate(I, J, padding=pad)
    flipped = correlate(I, J[::-1, ::-1], padding=pad)  # true convolution = correlation with the flipped kernel
    symmetric = bool(np.array_equal(J, J[::-1, ::-1]))
    from scipy import signal

    scipy_corr = signal.correlate2d(I, J, mode="same", boundary="fill", fillvalue=0)
    scipy_conv = signal.convolve2d(I, J, mode="same", boundary="fill", fillvalue=0)
    run.check(np.array_equal(ours, scipy_corr) and np.array_equal(flipped, scipy_conv)
              and (not symmetric or np.array_equal(ours, flipped)),
              f"nablab's conv2d gives {ours.tolist()} and with the flipped filter {flipped.tolist()}; "
              f"scipy's correlate2d gives {scipy_corr.tolist()} and convolve2d {scipy_conv.tolist()}")

    # What it detects: zero sum, so zero on flat patches; a discrete second derivative, so zero on
    # linear ramps; the same under 90-degree rotation, so every edge orientation responds alike.
    zero_sum = float(J.sum())
    flat = flat_neighbourhoods(I)
    silent_on_flat = bool(np.all(ours[flat] == 0))
    fires_on_edges = bool(np.all(ours[~flat] != 0))
    rotation_invariant = bool(np.array_equal(J, np.rot90(J)))
    demo_out = correlate(demo_image(), J, padding=pad)
    ramp_interior = demo_out[4:20, 15:20]  # inside the ramp, away from its borders
    ramp_max = float(np.abs(ramp_interior).max())
    detects = silent_on_flat and fires_on_edges and ramp_max < 1e-12 and zero_sum == 0 and rotation_invariant
    return FilterOutput(image=I, kernel=J, output=ours, detects_edges=detects, flipped_output=flipped,
                        kernel_symmetric=symmetric, kernel_sum=zero_sum, flat_pixels=int(flat.sum()),
                        edge_pixels=int((~flat).sum()), silent_exactly_on_flat=silent_on_flat and fires_on_edges,
                        max_response_in_ramp=ramp_max, rotation_invariant=rotation_invariant,
                        flat=flat, demo_response=demo_out)


@figure("cnn.filter-output")
def filter_output_figure(result: FilterOutput, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
    _show(axes[0], result.image, "input $I$", binary=bool(np.isin(result.image, (0, 1)).all()))
    _show(axes[1], result.kernel, "filter $J$")
    _show(axes[2], result.output, "$I * J$ (nablab conv2d, zero padding)")
    _show(axes[3], np.where(result.flat, 0, 1), "black: a neighbour differs (edge)\nwhite: flat",
          annotate=False, binary=True)
    demo = result.demo_response
    _show(axes[4], demo, "$J$ on a test image: square, disc, ramp", annotate=False,
          vmax=float(np.abs(demo).max()) or 1.0)
    fig.tight_layout()
    alt = (f"Five panels: the input $I$, the filter $J$, the output $I * J$ (${result.output.shape[0]} \\times "
           f"{result.output.shape[1]}$), the {result.edge_pixels} pixels where a neighbour differs, and $J$'s "
           "response to a square, a disc and a ramp"
           + (": non-zero along the edges only." if result.detects_edges else "."))
    run.savefig(fig, "output", alt=alt)


# ---------------------------------------------------------------------------------------
# cnn.filter-design

#: What a filter may do (the choices of the filter_* slots).
ROLES = ("horizontal-edge detector", "vertical-edge detector", "diagonal-edge detector", "one-pixel shift", "other")
#: Step-edge test images by the angle of their edge (degrees from horizontal, counter-clockwise).
EDGES = {0: "horizontal edge", 45: "diagonal edge /", 90: "vertical edge", 135: "diagonal edge \\"}
DETECTOR = {0: ROLES[0], 90: ROLES[1], 45: ROLES[2], 135: ROLES[2]}
#: One-pixel moves of an image's content, with zero fill.
SHIFTS = {
    "left": lambda x: np.pad(x[:, 1:], ((0, 0), (0, 1))),
    "right": lambda x: np.pad(x[:, :-1], ((0, 0), (1, 0))),
    "up": lambda x: np.pad(x[1:, :], ((0, 1), (0, 0))),
    "down": lambda x: np.pad(x[:-1, :], ((1, 0), (0, 0))),
}
ANGLES = np.arange(0, 180, 5)


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


def shift_of(outputs: dict, images: dict):
    """The direction every output is its image moved one pixel in, or None."""
    for direction, move in SHIFTS.items():
        if all(np.array_equal(outputs[n], move(images[n])) for n in images):
            return direction
    return None


def role(kernel, step_peak: dict, peak_angle: int, null_angles: list, shift) -> str:
    """What a filter does, from its measured behaviour.

    A one-pixel shift moves every test image by one pixel. An edge detector of
    orientation theta is silent on flat images (its weights sum to 0), peaks on ramps
    whose edge runs at theta, is blind exactly at theta + 90 degrees, and answers a step
    edge at theta but not one at theta + 90.
    """
    if shift is not None:
        return "one-pixel shift"
    if np.asarray(kernel).sum() == 0 and peak_angle in DETECTOR:
        across = (peak_angle + 90) % 180
        if null_angles == [across] and step_peak[EDGES[peak_angle]] > 0 and step_peak[EDGES[across]] == 0:
            return DETECTOR[peak_angle]
    return "other"


@dataclass
class FilterDesign:
    kernels: dict                  # b, c, d
    filter_b: str                  # slots: what each filter does (one of ROLES)
    filter_c: str
    filter_d: str
    step_peaks: dict               # filter -> test image -> max |valid response|
    ramp_peak_angle: dict          # filter -> the edge angle (degrees) of its largest ramp response
    ramp_null_angles: dict         # filter -> edge angles with zero ramp response
    ramp_response_every_15: dict   # filter -> angle -> |response| to a unit-slope ramp
    shift: dict                    # filter -> direction cross-correlation moves the image, or None
    shift_flipped: dict            # filter -> the same for a true convolution (scipy's convolve2d)
    impulse_is_rotated_kernel: bool  # a dot comes out as the kernel turned by 180 degrees
    images: dict = field(default=None, metadata=HIDDEN)
    valid: dict = field(default=None, metadata=HIDDEN)      # filter -> image -> valid response
    padded: dict = field(default=None, metadata=HIDDEN)     # filter -> image -> same-size output (odd square kernels)
    tuning: dict = field(default=None, metadata=HIDDEN)     # filter -> |response| at ANGLES

    def summary(self) -> str:
        k, peaks, best, null = self.kernels, self.step_peaks, self.ramp_peak_angle, self.ramp_null_angles
        parts = []
        for name in ("b", "c", "d"):
            what = getattr(self, f"filter_{name}")
            head = f"({name}) {_matrix_text(k[name])} is a {what}"
            if what == "one-pixel shift":
                parts.append(f"{head}: with nablab's cross-correlation (zero padding, same size) every test image "
                             f"moves {self.shift[name]} by one pixel; with a true convolution (the kernel flipped, "
                             f"scipy's convolve2d) it moves {self.shift_flipped[name]}, so which way depends on the "
                             "convention.")
            elif what in DETECTOR.values():
                across = EDGES[(best[name] + 90) % 180]
                parts.append(f"{head}: it sums to 0 (silent on flat regions); on step edges its largest |response| "
                             f"is {peaks[name][EDGES[best[name]]]:g} for a {EDGES[best[name]]} and "
                             f"{peaks[name][across]:g} for a {across}; on ramps it peaks at {best[name]} degrees "
                             f"and is blind at {null[name]}"
                             + (f", and it also answers edges at other angles (|response| "
                                f"{self.tuning[name][0]:.3g} at 0 and {self.tuning[name][ANGLES.tolist().index(90)]:.3g} "
                                "at 90 degrees)." if best[name] in (45, 135) else "."))
            else:
                parts.append(f"{head}: it is neither a one-pixel shift nor an edge detector of one orientation "
                             f"(ramp peak at {best[name]} degrees, blind at {null[name]}).")
        return " ".join(parts)


@compute("cnn.filter-design")
def filter_design(run: Context) -> FilterDesign:
    filters = {name: np.array(run.params[f"kernel_{name}"], dtype=np.float64) for name in ("b", "c", "d")}
    images = test_images(run.params["size"])
    # 'valid' responses (no padding) for the detectors, so the zero border adds no false edges
    valid = {k: {name: correlate(img, f) for name, img in images.items()} for k, f in filters.items()}
    peaks = {k: {name: float(np.abs(r).max()) for name, r in v.items()} for k, v in valid.items()}

    # orientation tuning on ramps, every 5 degrees
    tuning = {k: orientation_response(f, ANGLES) for k, f in filters.items()}
    best = {k: int(ANGLES[np.argmax(t)]) for k, t in tuning.items()}
    null = {k: [int(a) for a in ANGLES[t < 1e-12]] for k, t in tuning.items()}

    # same-size outputs (odd kernels, zero padding): does the filter move the image by one pixel?
    from scipy import signal

    padded, shift, shift_flipped = {}, {}, {}
    for k, f in filters.items():
        if f.shape[0] == f.shape[1] and f.shape[0] % 2:
            padded[k] = {n: correlate(img, f, padding=f.shape[0] // 2) for n, img in images.items()}
            run.check(all(np.array_equal(padded[k][n], signal.correlate2d(img, f, mode="same"))
                          for n, img in images.items()),
                      f"filter {k}: nablab's conv2d differs from scipy's correlate2d")
            shift[k] = shift_of(padded[k], images)
            shift_flipped[k] = shift_of({n: signal.convolve2d(img, f, mode="same") for n, img in images.items()},
                                        images)
        else:
            shift[k] = shift_flipped[k] = None
    impulse = all(np.array_equal(impulse_response(f), np.rot90(f, 2)) for f in filters.values())
    run.check(impulse, "a dot does not come out as the kernel turned by 180 degrees: conv2d is not a "
                       "cross-correlation")
    roles = {k: role(f, peaks[k], best[k], null[k], shift[k]) for k, f in filters.items()}
    return FilterDesign(
        kernels=filters, filter_b=roles["b"], filter_c=roles["c"], filter_d=roles["d"],
        step_peaks=peaks, ramp_peak_angle=best, ramp_null_angles=null,
        ramp_response_every_15={k: {int(a): round(float(v), 12) for a, v in zip(ANGLES, t) if a % 15 == 0}
                                for k, t in tuning.items()},
        shift=shift, shift_flipped=shift_flipped, impulse_is_rotated_kernel=impulse,
        images=images, valid=valid, padded=padded, tuning=tuning)


@figure("cnn.filter-design")
def filter_design_figure(result: FilterDesign, run: Context) -> None:
    import matplotlib.pyplot as plt

    images, names = result.images, list(result.images)
    filters = list(result.kernels)
    fig, axes = plt.subplots(1 + len(filters), len(names), figsize=(2.1 * len(names), 2.15 * (1 + len(filters))))
    for col, name in enumerate(names):
        _show(axes[0, col], images[name], name, annotate=False, binary=True)
        for row, k in enumerate(filters, start=1):
            if result.shift[k] is not None:
                _show(axes[row, col], result.padded[k][name], f"moved {result.shift[k]}", annotate=False,
                      binary=True)
            else:
                _show(axes[row, col], result.valid[k][name], f"max |out| {result.step_peaks[k][name]:g}",
                      annotate=False, vmax=max(1.0, max(result.step_peaks[k].values())))
    axes[0, 0].set_ylabel("input", fontsize=8)
    for row, k in enumerate(filters, start=1):
        how = "padding 1" if result.shift[k] is not None else "valid"
        axes[row, 0].set_ylabel(f"({k}) {_matrix_text(result.kernels[k])}\n{how}", fontsize=8)
    fig.suptitle("The filters applied with nablab's conv2d (cross-correlation)", fontsize=10)
    fig.tight_layout()
    roles = ", ".join(f"({k}) {getattr(result, f'filter_{k}')}" for k in filters)
    run.savefig(fig, "responses", alt=f"Test images (step edges of four orientations, a dot, an F) and each "
                f"filter's output on them: {roles}.")

    detectors = [k for k in filters if getattr(result, f"filter_{k}") in DETECTOR.values()]
    if not detectors:
        return
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for k, marker in zip(detectors, "os^"):
        ax.plot(ANGLES, result.tuning[k], f"{marker}-", ms=3, label=f"({k}) {_matrix_text(result.kernels[k])}")
    top = 1.15 * max(result.tuning[k].max() for k in detectors)
    ax.set_ylim(0, top)
    for a, text in ((0, "horizontal"), (45, "/"), (90, "vertical"), (135, "\\")):
        ax.axvline(a, color="gray", lw=0.6, ls=":")
        ax.text(a + 1, 0.95 * top, text, fontsize=8, va="top")
    ax.set_xlabel("edge angle (degrees from horizontal, counter-clockwise)")
    ax.set_ylabel("|response| to a unit-slope ramp")
    ax.set_title("Orientation tuning", fontsize=10)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    run.savefig(fig, "orientation", alt="The |response| of " + ", ".join(
        f"({k}), peaking at {result.ramp_peak_angle[k]} and zero at {result.ramp_null_angles[k]} degrees"
        for k in detectors) + ", against the edge angle of a unit-slope ramp.")
