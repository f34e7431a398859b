"""Claims about architecture arithmetic: network size, receptive fields, shape propagation."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nablab.arch import summary  # noqa: E402
from nablab.lab.registry import Context, Result, experiment  # noqa: E402


def _torch_params(ctx: Context, spec: str):
    """PyTorch's parameter count of the same network, or None without PyTorch."""
    if ctx.cross_check("PyTorch counting the parameters") is None:
        return None
    from nablab.arch.to_torch import to_torch

    return int(sum(p.numel() for p in to_torch(spec).parameters()))


def _torch_shapes(ctx: Context, spec: str):
    """Every layer's output shape when PyTorch runs the spec's network, or None without PyTorch."""
    torch = ctx.cross_check("PyTorch computing the shapes")
    if torch is None:
        return None
    from nablab.arch.to_torch import to_torch

    s = summary(spec)
    with torch.no_grad():
        outs = to_torch(spec).eval()(torch.zeros(s.input_shape), return_all=True)
    return [list(o.shape) for o in outs]


# ---------------------------------------------------------------------------------------
# arch.convnet-size (seeds 000 and 002, section 3.2)

CONVNET = ("input 3x112x112, conv3-64, maxpool2, conv3-128, maxpool2, conv3-256, conv3-256, "
           "maxpool2, fc-1024, fc-100, softmax")

# The two answer sets, quoted.  Seed 000 gives totals and connections per layer,
# seed 002 gives parameters per weighted layer.
SEED_000_PARAMS_TOTAL = 52444644
SEED_000_NEURONS_TOTAL = 1958088
SEED_000_CONNECTIONS = [21676032, 802816, 231211008, 401408, 231211008, 462422016, 200704,
                        51380224, 102400, 10000]
SEED_002_PARAMS = [1792, 73856, 296168, 590080, 263168, 102500]
SEED_002_PARAMS_TOTAL = 1326564


@experiment("arch.convnet-size", title="Size of the 112x112x3 VGG-style ConvNet")
def convnet_size(ctx: Context) -> Result:
    spec = ctx.param("spec", CONVNET)
    s = summary(spec)
    layers = s.rows[1:]
    weighted = [r for r in layers if r["params"]]
    torch_total = _torch_params(ctx, spec)
    ctx.check(torch_total is None or torch_total == s.totals["params"],
              f"PyTorch counts {torch_total} parameters for the same net, nablab {s.totals['params']}")
    ours = {
        "params_total": s.totals["params"],
        "neurons_total": s.totals["neurons"],
        "params_per_layer": {r["name"] + f" (#{r['index']})": r["params"] for r in weighted},
        "neurons_per_layer": [r["neurons"] for r in layers],
        "connections_per_layer": [r["connections"] for r in layers],
        "connections_per_neuron": [r["connections_per_neuron"] for r in layers],
        "pytorch_params_total": torch_total,
    }

    ok_000 = (s.totals["params"] == SEED_000_PARAMS_TOTAL
              and s.totals["neurons"] == SEED_000_NEURONS_TOTAL
              and ours["connections_per_layer"] == SEED_000_CONNECTIONS)
    ok_002 = [r["params"] for r in weighted] == SEED_002_PARAMS and s.totals["params"] == SEED_002_PARAMS_TOTAL
    # Where seed 002 differs, what fan-in does its number imply?  params = (fan_in + 1) * outputs.
    diagnosis = []
    for r, quoted in zip(weighted, SEED_002_PARAMS):
        if r["params"] != quoted:
            outputs = r["output_shape"][0]
            diagnosis.append({
                "layer": r["name"], "computed": r["params"], "seed_002": quoted,
                "computed_fan_in": r["connections_per_neuron"],
                "fan_in_implied_by_seed_002": quoted / outputs - 1,
            })
    ours["seed_002_diagnosis"] = diagnosis
    ours["agrees_with_seed_000"] = ok_000
    ours["agrees_with_seed_002"] = ok_002

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    names = [f"{r['name']}\n#{r['index']}" for r in weighted]
    xs = np.arange(len(weighted))
    same = " (= PyTorch)" if torch_total == s.totals["params"] else ""
    ax1.bar(xs - 0.2, [r["params"] for r in weighted], 0.4, label="nablab" + same)
    ax1.bar(xs + 0.2, SEED_002_PARAMS, 0.4, label="seed 002's answer")
    ax1.set_yscale("log")
    ax1.set_xticks(xs, names, fontsize=7)
    ax1.set_title("parameters per layer (with biases)")
    ax1.legend(fontsize=8)
    xs = np.arange(len(layers))
    ax2.bar(xs - 0.2, ours["connections_per_layer"], 0.4, label="nablab")
    ax2.bar(xs + 0.2, SEED_000_CONNECTIONS, 0.4, label="seed 000's answer")
    ax2.set_yscale("log")
    ax2.set_xticks(xs, [r["name"] for r in layers], rotation=60, fontsize=7)
    ax2.set_title("input connections per layer")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    figure = ctx.savefig(fig, "size")

    why = "; ".join(
        f"{d['layer']}: {d['seed_002']:,} vs {d['computed']:,} (its number implies "
        f"{d['fan_in_implied_by_seed_002']:g} inputs per unit, the layer has {d['computed_fan_in']:,})"
        for d in diagnosis)
    check = (f"PyTorch counts {torch_total:,} parameters for the same net" if torch_total is not None
             else "the PyTorch cross-check was not run: PyTorch is not installed")
    if ok_000 and not ok_002:
        verdict = (f"Answer set 000 is right: {s.totals['params']:,} parameters, "
                   f"{s.totals['neurons']:,} neurons and all ten connection counts agree; {check}. "
                   f"Answer set 002 ({SEED_002_PARAMS_TOTAL:,}) is wrong where {why}. "
                   "The FC-1024 error is the big one: it counts only the 256 channels of the last "
                   "pooling layer and forgets its 14x14 positions.")
    else:
        verdict = (f"Computed {s.totals['params']:,} parameters and {s.totals['neurons']:,} neurons; "
                   f"{check}. Seed 000 {'agrees' if ok_000 else 'disagrees'}, seed 002 "
                   f"{'agrees' if ok_002 else 'disagrees'}{': ' + why if why else ''}.")
    return Result(
        status="agrees" if ok_000 else "disagrees",
        computed=ours,
        summary=verdict + " Neurons count units of conv, pooling, fc and softmax layers (not the input); "
                          "connections include zero padding and exclude biases.",
        seed_says=(f"Seed 000: {SEED_000_PARAMS_TOTAL:,} parameters, {SEED_000_NEURONS_TOTAL:,} neurons, "
                   f"connections per layer {', '.join(f'{c:,}' for c in SEED_000_CONNECTIONS)}. "
                   f"Seed 002: parameters {', '.join(f'{p:,}' for p in SEED_002_PARAMS)}, "
                   f"total {SEED_002_PARAMS_TOTAL:,}."),
        figures=[figure],
    )


# ---------------------------------------------------------------------------------------
# arch.rf-factors (seed 000, section 3.3)

def _rf(spec: str) -> int:
    return summary(spec).rows[-1]["rf"][0]


@experiment("arch.rf-factors", title="What changes a receptive field")
def rf_factors(ctx: Context) -> Result:
    size = ctx.param("size", 128)
    head = f"input 1x{size}x{size}, "
    sweeps = {
        "depth (number of conv3 layers)": {
            L: _rf(head + ", ".join(["conv3-8"] * L)) for L in range(1, 9)},
        "kernel size k (two convk layers)": {
            k: _rf(head + f"conv{k}-8, conv{k}-8") for k in range(1, 10)},
        "stride s of the first of two conv3 layers": {
            s: _rf(head + f"conv3-8/s{s}, conv3-8") for s in range(1, 5)},
        "stride s of the last layer (its own units)": {
            s: _rf(head + f"conv3-8, conv3-8/s{s}") for s in range(1, 5)},
        "dilation d of the second conv3 layer": {
            d: _rf(head + f"conv3-8, conv3-8/d{d}") for d in range(1, 5)},
        "pooling p (maxpool p between two conv3)": {
            p: _rf(head + f"conv3-8, maxpool{p}, conv3-8") for p in range(1, 5)},
    }

    def increasing(d):
        v = list(d.values())
        return all(b > a for a, b in zip(v, v[1:]))

    grows = {name: increasing(d) for name, d in sweeps.items()}
    seed_factors = ["depth (number of conv3 layers)", "kernel size k (two convk layers)",
                    "stride s of the first of two conv3 layers"]
    ok = all(grows[f] for f in seed_factors)

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (name, d) in zip(axes.ravel(), sweeps.items()):
        ax.plot(list(d), list(d.values()), "o-")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("receptive field")
        ax.grid(alpha=0.3)
    fig.suptitle("Receptive field of the last layer's units (nablab.arch.summary)")
    fig.tight_layout()
    figure = ctx.savefig(fig, "sweeps")

    return Result(
        status="agrees" if ok else "disagrees",
        computed={"sweeps": {name: {str(k): v for k, v in d.items()} for name, d in sweeps.items()},
                  "grows_with_the_factor": grows},
        summary=(
            "The three factors the answer names all enlarge the field in the sweeps: depth adds "
            "k - 1 times the jump per layer, a larger kernel adds more, and a stride multiplies the "
            "growth of every later layer. A stride does not widen the field of the layer's own units "
            "(flat sweep), it spreads the next layers' taps. Dilation and pooling, which the answer "
            "leaves out, enlarge it too: dilation d widens the kernel to d(k - 1) + 1, pooling adds "
            "its window and multiplies the jump."
            if ok else "A factor the seed names did not enlarge the receptive field in its sweep: "
                       + ", ".join(f for f in seed_factors if not grows[f])),
        seed_says="Seed 000: (1) the number of layers, (2) the kernel size, (3) the stride.",
        figures=[figure],
    )


# ---------------------------------------------------------------------------------------
# arch.rf-recursion (seed 004, Q1(h))

SEED_RECURSION = [1, 3, 7, 15]


def seed_recursion(kernels, strides):
    """The answer's formula r_i = s_{i-1} r_{i-1} + (k_i - s_{i-1}), r_0 = 1, s_0 = 1."""
    r, prev_s, out = 1, 1, [1]
    for k, s in zip(kernels, strides):
        r = prev_s * r + (k - prev_s)
        prev_s = s
        out.append(r)
    return out


def brute_force_rf_1d(kernels, strides, n=64):
    """Fields by brute force: the support of the middle output unit's row of the chain's Jacobian.

    Each layer is a dense 0/1 matrix (unit o sees inputs o*s .. o*s + k - 1), so the
    product's nonzero pattern is exactly what each output unit can see.
    """
    J, size, out = np.eye(n), n, [1]
    for k, s in zip(kernels, strides):
        m = (size - k) // s + 1
        M = np.zeros((m, size))
        for o in range(m):
            M[o, o * s:o * s + k] = 1.0
        J, size = M @ J, m
        cols = np.nonzero(J[m // 2])[0]
        out.append(int(cols.max() - cols.min() + 1))
    return out


@experiment("arch.rf-recursion", title="Receptive fields by the layer recursion")
def rf_recursion(ctx: Context) -> Result:
    size = ctx.param("size", 64)
    spec = f"input 1x{size}x{size}, conv3-1/s2, conv3-1/s2, conv3-1/s2"
    s = summary(spec)
    ours = [r["rf"][0] for r in s.rows]
    brute = brute_force_rf_1d([3, 3, 3], [2, 2, 2])
    ctx.check(ours == brute, f"nablab's receptive fields {ours} differ from brute force {brute}")
    seeds_formula = seed_recursion([3, 3, 3], [2, 2, 2])
    # Strides that are not all equal tell the recursions apart.
    mixed = summary(f"input 1x{size}x{size}, conv3-1/s2, conv3-1, conv3-1")
    mixed_ours = [r["rf"][0] for r in mixed.rows]
    mixed_brute = brute_force_rf_1d([3, 3, 3], [2, 1, 1])
    ctx.check(mixed_ours == mixed_brute,
              f"strides 2, 1, 1: nablab's receptive fields {mixed_ours} differ from brute force {mixed_brute}")
    mixed_seed = seed_recursion([3, 3, 3], [2, 1, 1])
    ok = ours == SEED_RECURSION

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, row in enumerate(s.rows):
        mid = (row["output_shape"][1] - 1) // 2
        (lo, hi), _ = s.rf_interval(i, (mid, mid))
        ax1.barh(i, hi - lo + 1, left=lo - 0.5, height=0.6)
        ax1.text(hi + 1, i, f"r = {row['rf'][0]}", va="center", fontsize=8)
    ax1.set_yticks(range(len(s.rows)), ["input"] + [f"layer {i}" for i in range(1, len(s.rows))])
    ax1.set_xlabel("input position")
    ax1.set_title("input seen by one unit, three 3x3 stride-2 layers", fontsize=9)
    xs = np.arange(4)
    ax2.plot(xs, mixed_ours, "o-", label="nablab (jump recursion)")
    ax2.plot(xs, mixed_brute, "x--", label="brute force (Jacobian support)")
    ax2.plot(xs, mixed_seed, "s:", label="the answer's recursion")
    ax2.set_xticks(xs, ["input", "3x3 s2", "3x3 s1", "3x3 s1"])
    ax2.set_title("strides 2, 1, 1: the recursions part", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    figure = ctx.savefig(fig, "recursion")

    return Result(
        status="agrees" if ok else "disagrees",
        computed={"rf_per_layer": ours, "jump_per_layer": [r["jump"][0] for r in s.rows],
                  "brute_force": brute, "answers_recursion": seeds_formula,
                  "strides_2_1_1": {"nablab": mixed_ours, "brute_force": mixed_brute,
                                    "answers_recursion": mixed_seed}},
        summary=(f"nablab gives {ours}, the same as brute force and the answer. The recursion used is "
                 "r_l = r_(l-1) + (k_l - 1) j_(l-1) with jump j_l = j_(l-1) s_l (Araujo et al. 2019). "
                 f"The answer's recursion r_i = s_(i-1) r_(i-1) + (k_i - s_(i-1)) gives the right "
                 f"numbers here only because every stride is 2: for strides 2, 1, 1 it gives "
                 f"{mixed_seed} where nablab and brute force give {mixed_ours}."
                 if ok else f"nablab and brute force give {ours}, the answer {SEED_RECURSION}."),
        seed_says="Seed 004: r_i = s_(i-1) r_(i-1) + (k_i - s_(i-1)), r_0 = 1, r_b = 3, r_c = 7, "
                  "r_d = 15, so the receptive field is 15x15.",
        figures=[figure],
    )


# ---------------------------------------------------------------------------------------
# cnn.conv-output-shape (seed 004, Q1(a))

SEED_CONV_SHAPES = [[32, 128, 26, 26], [32, 128, 14, 14]]


@experiment("cnn.conv-output-shape", title="Output shapes of two convolutions")
def conv_output_shape(ctx: Context) -> Result:
    c_in = ctx.param("in_channels", 1)  # the answer does not depend on it
    specs = [f"input 32x{c_in}x28x28, conv3-128/s1/p0", f"input 32x{c_in}x28x28, conv4-128/s2/p1"]
    shapes = [list(summary(sp).rows[-1]["output_shape"]) for sp in specs]
    torch_shapes = [_torch_shapes(ctx, sp) for sp in specs]
    torch_shapes = None if None in torch_shapes else [t[-1] for t in torch_shapes]
    ctx.check(torch_shapes is None or torch_shapes == shapes,
              f"PyTorch's Conv2d gives {torch_shapes}, nablab {shapes}")
    ok = shapes == SEED_CONV_SHAPES
    return Result(
        status="agrees" if ok else "disagrees",
        computed={"k3_s1_p0": shapes[0], "k4_s2_p1": shapes[1], "pytorch": torch_shapes,
                  "rule": "floor((n + 2p - d(k - 1) - 1) / s) + 1"},
        summary=(f"floor((28 + 2p - k)/s) + 1 gives {shapes[0]} for k=3, s=1, p=0 and {shapes[1]} for "
                 "k=4, s=2, p=1" + (", as PyTorch's Conv2d does" if torch_shapes == shapes else "")
                 + ". The number of input channels does not enter the shape."),
        seed_says="Seed 004: floor((28 + 0 - 3)/1) + 1 = 26, shape [32, 128, 26, 26]; "
                  "floor((28 + 2 - 4)/2) + 1 = 14, shape [32, 128, 14, 14].",
    )


# ---------------------------------------------------------------------------------------
# arch.shape-propagation (seed 004, Q1(e-f))

# The exam's diagram is not in the seed, only the answer's shapes; these layer
# settings are our reading of it (a 3x3 "same" conv, conv + 2x2 pooling twice,
# a 1x1 conv, two 2x2 stride-2 transposed convs; the skip upsamples e and
# concatenates a).  The shapes below are computed from them.
ENCODER_DECODER = ("input 10x1x32x32, a: conv3-16, conv3-32, b: maxpool2, conv3-128, c: maxpool2, "
                   "d: conv1-16, e: convT2-8/s2, f: convT2-1/s2, "
                   "from(e), convT2-8/s2, skip: concat(a)")
SEED_SHAPES = {"input": [10, 1, 32, 32], "a": [10, 16, 32, 32], "b": [10, 32, 16, 16],
               "c": [10, 128, 8, 8], "d": [10, 16, 8, 8], "e": [10, 8, 16, 16],
               "f": [10, 1, 32, 32], "skip": [10, 24, 32, 32]}


@experiment("arch.shape-propagation", title="Shapes through an encoder-decoder and a skip connection")
def shape_propagation(ctx: Context) -> Result:
    spec = ctx.param("spec", ENCODER_DECODER)
    s = summary(spec)
    named = {"input": list(s.rows[0]["output_shape"])}
    named.update({r["name"]: list(r["output_shape"]) for r in s.rows[1:] if r["name"] in SEED_SHAPES})
    torch_shapes = _torch_shapes(ctx, spec)
    ours = [list(r["output_shape"]) for r in s.rows[1:]]
    ctx.check(torch_shapes is None or torch_shapes == ours,
              f"PyTorch's layer output shapes {torch_shapes} differ from nablab's {ours}")
    mismatch = {k: {"computed": named.get(k), "seed": v} for k, v in SEED_SHAPES.items() if named.get(k) != v}
    ok = not mismatch
    table = [{"layer": r["name"], "type": r["type"], "output_shape": list(r["output_shape"])} for r in s.rows]
    return Result(
        status="agrees" if ok else "disagrees",
        computed={"spec": spec, "layers": table, "named_shapes": named,
                  "pytorch_agrees": None if torch_shapes is None else torch_shapes == [t["output_shape"] for t in table[1:]],
                  "mismatch": mismatch},
        summary=("Every shape the answer gives follows from the layer rules: 3x3 convs with padding 1 keep "
                 "32x32, each 2x2 pooling halves it, the 1x1 conv changes only channels, each 2x2 stride-2 "
                 "transposed conv doubles it ((n - 1) 2 + 2), and concatenating a (16 channels) with an "
                 "8-channel 32x32 map gives 24 channels"
                 + (", matching PyTorch layer by layer." if torch_shapes is not None else ".")
                 + " The exam's diagram is not in the seed: the kernel, stride and padding settings are "
                   "a reconstruction consistent with the answer, so this checks the arithmetic, not the "
                   "reading of the diagram."
                 if ok else f"Shapes differ from the answer: {mismatch}"),
        seed_says="Seed 004: input [10,1,32,32], a [10,16,32,32], b [10,32,16,16], c [10,128,8,8], "
                  "d [10,16,8,8], e [10,8,16,16], f [10,1,32,32]; with the skip connection 10, 24, 32, 32.",
    )
