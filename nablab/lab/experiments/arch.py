"""Claims about architecture arithmetic: network size, receptive fields, shape propagation.

Every number comes from :func:`nablab.arch.summary`; PyTorch (when installed) builds the
same network and is asked for its parameter count or its layers' output shapes, and
receptive fields are checked by brute force (every input position a unit reads, enumerated).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nablab.arch import summary
from nablab.lab.registry import Context, compute, figure

HIDDEN = {"report": False}  # figure-only data, left out of the report's table


def _torch_params(run: Context, spec: str):
    """PyTorch's parameter count of the same network, or None without PyTorch."""
    if run.cross_check("PyTorch counting the parameters") is None:
        return None
    from nablab.torch_bridge import to_torch

    return int(sum(p.numel() for p in to_torch(spec).parameters()))


def _torch_shapes(run: Context, spec: str):
    """Every layer's output shape when PyTorch runs the spec's network, or None without PyTorch."""
    torch = run.cross_check("PyTorch computing the shapes")
    if torch is None:
        return None
    from nablab.torch_bridge import to_torch

    s = summary(spec)
    with torch.no_grad():
        outs = to_torch(spec).eval()(torch.zeros(s.input_shape), return_all=True)
    return [tuple(o.shape) for o in outs]


def brute_force_rf_1d(kernels, strides, dilations=None, n=64):
    """Receptive fields by brute force, input first: every input position one unit depends on, enumerated.

    Unit o of a layer reads positions o*s + d*t (t = 0 .. k - 1) of the layer before it (a
    pooling window is a layer with k = s); following those taps back to the input from the
    middle unit of each layer (away from any border) gives the set of input positions it
    sees, and its extent is the receptive field.
    """
    dilations = dilations or [1] * len(kernels)
    sizes = [n]
    for k, s, d in zip(kernels, strides, dilations):
        sizes.append((sizes[-1] - d * (k - 1) - 1) // s + 1)
        if sizes[-1] < 1:
            raise ValueError(f"brute_force_rf_1d: n={n} is too small for these layers")
    out = [1]
    for top in range(1, len(sizes)):
        seen = {sizes[top] // 2}
        for k, s, d in reversed(list(zip(kernels, strides, dilations))[:top]):
            seen = {o * s + d * t for o in seen for t in range(k)}
        out.append(max(seen) - min(seen) + 1)
    return out


# ---------------------------------------------------------------------------------------
# arch.convnet-size

#: The question's layers after the input, in order: the slot suffix and the layer type it needs.
CONVNET_LAYOUT = (("conv3_64", "conv"), ("maxpool1", "maxpool"), ("conv3_128", "conv"), ("maxpool2", "maxpool"),
                  ("conv3_256a", "conv"), ("conv3_256b", "conv"), ("maxpool3", "maxpool"),
                  ("fc_1024", "fc"), ("fc_100", "fc"), ("softmax", "softmax"))
WEIGHTED = ("conv", "fc")


@dataclass
class ConvnetSize:
    spec: str
    params_total: int                      # slot
    neurons_total: int                     # slot
    # slots: parameters (weights and biases) of each weighted layer
    params_conv3_64: int | None
    params_conv3_128: int | None
    params_conv3_256a: int | None
    params_conv3_256b: int | None
    params_fc_1024: int | None
    params_fc_100: int | None
    # slots: input connections of each layer (units x inputs per unit)
    connections_conv3_64: int | None
    connections_maxpool1: int | None
    connections_conv3_128: int | None
    connections_maxpool2: int | None
    connections_conv3_256a: int | None
    connections_conv3_256b: int | None
    connections_maxpool3: int | None
    connections_fc_1024: int | None
    connections_fc_100: int | None
    connections_softmax: int | None
    layers: list                           # one row per layer after the input
    pytorch_params_total: int | None       # None: PyTorch is not installed

    def summary(self) -> str:
        weighted = [r for r in self.layers if r["type"] in WEIGHTED]
        fcs = [r for r in weighted if r["type"] == "fc"]
        check = (f"PyTorch counts {self.pytorch_params_total:,} parameters for the same net"
                 if self.pytorch_params_total is not None
                 else "the PyTorch cross-check was not run: PyTorch is not installed")
        text = (f"nablab counts {self.params_total:,} parameters (weights and biases) and "
                f"{self.neurons_total:,} neurons; {check}. Parameters per weighted layer: "
                + ", ".join(f"{r['layer']} {r['params']:,}" for r in weighted) + ". ")
        if fcs:
            first = fcs[0]
            share = first["params"] / self.params_total if self.params_total else 0.0
            text += (f"The first fully connected layer, {first['layer']}, holds {share:.0%} of them: each of its "
                     f"{first['neurons']:,} units sees all {first['inputs_per_unit']:,} outputs of the layer "
                     "before it, every channel at every position. ")
        text += ("Input connections per layer: "
                 + ", ".join(f"{r['layer']} {r['connections']:,}" for r in self.layers) + ".")
        if self.params_conv3_64 is None:
            text += (" The per-layer slots name the question's layers (conv3-64, max pool, ..., softmax); "
                     "this spec's layers do not follow that layout, so they are left empty.")
        return text


@compute("arch.convnet-size")
def convnet_size(run: Context) -> ConvnetSize:
    spec = run.params["spec"]
    s = summary(spec)
    rows = s.rows[1:]
    layers = [{"layer": r["name"], "type": r["type"], "output_shape": tuple(r["output_shape"]),
               "params": r["params"], "neurons": r["neurons"],
               "inputs_per_unit": r["connections_per_neuron"], "connections": r["connections"]}
              for r in rows]
    run.check(all(r["connections"] == r["neurons"] * r["inputs_per_unit"] for r in layers
                  if r["type"] in ("conv", "maxpool", "avgpool", "fc", "softmax")),
              "a layer's connections are not its units times its inputs per unit")
    torch_total = _torch_params(run, spec)
    run.check(torch_total is None or torch_total == s.totals["params"],
              f"PyTorch counts {torch_total} parameters for the same net, nablab {s.totals['params']}")
    slots = {}
    same_layout = [r["type"] for r in layers] == [kind for _, kind in CONVNET_LAYOUT]
    for (name, kind), r in zip(CONVNET_LAYOUT, layers if same_layout else [None] * len(CONVNET_LAYOUT)):
        slots[f"connections_{name}"] = None if r is None else r["connections"]
        if kind in WEIGHTED:
            slots[f"params_{name}"] = None if r is None else r["params"]
    return ConvnetSize(spec=spec, params_total=s.totals["params"], neurons_total=s.totals["neurons"],
                       layers=layers, pytorch_params_total=torch_total, **slots)


@figure("arch.convnet-size")
def convnet_size_figure(result: ConvnetSize, run: Context) -> None:
    import matplotlib.pyplot as plt

    layers = result.layers
    weighted = [r for r in layers if r["type"] in WEIGHTED]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    xs = np.arange(len(weighted))
    same = " (= PyTorch's total)" if result.pytorch_params_total == result.params_total else ""
    ax1.bar(xs, [r["params"] for r in weighted], 0.6, label="nablab" + same)
    for x, r in zip(xs, weighted):
        ax1.text(x, r["params"], f"{r['params']:,}", ha="center", va="bottom", fontsize=7)
    ax1.set_yscale("log")
    ax1.set_xticks(xs, [r["layer"] for r in weighted], fontsize=7)
    ax1.set_title(f"parameters per layer (with biases), total {result.params_total:,}")
    ax1.legend(fontsize=8)
    xs = np.arange(len(layers))
    ax2.bar(xs - 0.2, [r["connections"] for r in layers], 0.4, label="input connections")
    ax2.bar(xs + 0.2, [r["neurons"] for r in layers], 0.4, label="neurons")
    ax2.set_yscale("log")
    ax2.set_xticks(xs, [r["layer"] for r in layers], rotation=60, fontsize=7)
    ax2.set_title(f"per layer; {result.neurons_total:,} neurons in all")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    biggest = max(weighted, key=lambda r: r["params"])
    run.savefig(fig, "size", alt=f"Log-scale bars: parameters of each weighted layer ({biggest['layer']} has "
                f"the most, {biggest['params']:,}), and input connections and neurons of every layer.")


# ---------------------------------------------------------------------------------------
# arch.rf-factors

#: Each sweep: its report key, its figure title, and the spec of its networks (after the input).
RF_SWEEPS = (
    ("depth", "depth (number of conv3 layers)", range(1, 9),
     lambda L: ", ".join(["conv3-8"] * L), lambda L: ([3] * L, [1] * L, [1] * L)),
    ("kernel_size", "kernel size $k$ (two convk layers)", range(1, 10),
     lambda k: f"conv{k}-8, conv{k}-8", lambda k: ([k, k], [1, 1], [1, 1])),
    ("stride_of_an_earlier_layer", "stride $s$ of the first of two conv3 layers", range(1, 5),
     lambda s: f"conv3-8/s{s}, conv3-8", lambda s: ([3, 3], [s, 1], [1, 1])),
    ("stride_of_the_layer_itself", "stride $s$ of the last layer (its own units)", range(1, 5),
     lambda s: f"conv3-8, conv3-8/s{s}", lambda s: ([3, 3], [1, s], [1, 1])),
    ("dilation", "dilation $d$ of the second conv3 layer", range(1, 5),
     lambda d: f"conv3-8, conv3-8/d{d}", lambda d: ([3, 3], [1, 1], [1, d])),
    ("pooling", "pooling $p$ (maxpool p between two conv3)", range(1, 5),
     lambda p: f"conv3-8, maxpool{p}, conv3-8", lambda p: ([3, p, 3], [1, p, 1], [1, 1, 1])),
)


@dataclass
class RfFactors:
    size: int
    sweeps: dict                 # sweep -> {setting: receptive field of the last layer's units}
    grows: dict                  # sweep -> the field grows strictly with the setting
    grows_with_depth: bool       # slot
    grows_with_kernel_size: bool  # slot
    grows_with_stride: bool      # slot: the stride of an earlier layer
    grows_with_dilation: bool    # slot
    grows_with_pooling: bool     # slot
    brute_force_agrees: bool     # every swept field equals the brute-force support

    def summary(self) -> str:
        sw = self.sweeps

        def seq(key):
            return ", ".join(str(v) for v in sw[key].values())

        named = {"depth": self.grows_with_depth, "kernel size": self.grows_with_kernel_size,
                 "the stride of an earlier layer": self.grows_with_stride,
                 "dilation": self.grows_with_dilation, "pooling": self.grows_with_pooling}
        grow = [k for k, v in named.items() if v]
        flat = [k for k, v in named.items() if not v]
        return (f"Receptive field of the last layer's units (one side, in input pixels), computed by nablab's "
                f"layer recursion and equal to brute force in every sweep: 1 to 8 conv3 layers give {seq('depth')}; "
                f"two convk layers with $k = 1, \\ldots, 9$ give {seq('kernel_size')}; a stride $s = 1, \\ldots, 4$ in "
                f"the first of two conv3 layers gives {seq('stride_of_an_earlier_layer')}; dilation "
                f"$d = 1, \\ldots, 4$ of the second gives {seq('dilation')}; a maxpool $p = 1, \\ldots, 4$ between them "
                f"gives {seq('pooling')}. "
                f"The field grows with {', '.join(grow) or 'none of them'}"
                + (f" and not with {', '.join(flat)}" if flat else "")
                + ": depth adds $(k - 1)$ times the jump per layer, a larger kernel adds more, a stride multiplies "
                  "the jump of every later layer, dilation $d$ widens a kernel to $d(k - 1) + 1$, and pooling adds its "
                  f"window and multiplies the jump. A stride does not widen the field of the layer's own units "
                  f"(its sweep stays at {seq('stride_of_the_layer_itself')}): it spreads the next layers' taps.")


def _rf(spec: str) -> int:
    return summary(spec).rows[-1]["rf"][0]


@compute("arch.rf-factors")
def rf_factors(run: Context) -> RfFactors:
    size = run.params["size"]
    head = f"input 1x{size}x{size}, "
    sweeps, brute = {}, {}
    for key, _, settings, spec, chain in RF_SWEEPS:
        sweeps[key] = {v: _rf(head + spec(v)) for v in settings}
        brute[key] = {v: brute_force_rf_1d(*chain(v), n=size)[-1] for v in settings}
    run.check(sweeps == brute, f"nablab's receptive fields {sweeps} differ from brute force {brute}")

    def increasing(d):
        v = list(d.values())
        return all(b > a for a, b in zip(v, v[1:]))

    grows = {key: increasing(d) for key, d in sweeps.items()}
    return RfFactors(size=size, sweeps=sweeps, grows=grows, grows_with_depth=grows["depth"],
                     grows_with_kernel_size=grows["kernel_size"],
                     grows_with_stride=grows["stride_of_an_earlier_layer"],
                     grows_with_dilation=grows["dilation"], grows_with_pooling=grows["pooling"],
                     brute_force_agrees=True)


@figure("arch.rf-factors")
def rf_factors_figure(result: RfFactors, run: Context) -> None:
    import matplotlib.pyplot as plt

    titles = {key: title for key, title, *_ in RF_SWEEPS}
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (key, d) in zip(axes.ravel(), result.sweeps.items()):
        ax.plot(list(d), list(d.values()), "o-")
        ax.set_title(titles[key], fontsize=9)
        ax.set_ylabel("receptive field")
        ax.grid(alpha=0.3)
    fig.suptitle("Receptive field of the last layer's units (nablab.arch.summary)")
    fig.tight_layout()
    flat = [titles[k] for k, g in result.grows.items() if not g]
    run.savefig(fig, "sweeps", alt="Six line plots of the receptive field against a setting: it rises with "
                "depth, kernel size, an earlier layer's stride, dilation and pooling"
                + (f"; it stays flat for the {'; '.join(flat)}." if flat else "."))


# ---------------------------------------------------------------------------------------
# arch.rf-recursion


def previous_stride_recursion(kernels, strides):
    """r_i = s_(i-1) r_(i-1) + (k_i - s_(i-1)), r_0 = 1, s_0 = 1: the field scaled by the previous stride only.

    It equals the jump recursion when every stride is the same, and not in general.
    """
    r, prev_s, out = 1, 1, [1]
    for k, s in zip(kernels, strides):
        r = prev_s * r + (k - prev_s)
        prev_s = s
        out.append(r)
    return out


@dataclass
class RfRecursion:
    spec: str
    receptive_fields: list               # slot: input first, one side
    final_receptive_field: tuple         # slot: (height, width) of the last layer's field
    jumps: list
    brute_force: list
    previous_stride_recursion: list      # r_i = s_(i-1) r_(i-1) + (k_i - s_(i-1)) on the same layers
    mixed_strides: list                  # a second chain, with unequal strides
    mixed_receptive_fields: list
    mixed_brute_force: list
    mixed_previous_stride_recursion: list
    intervals: list = field(default_factory=list, metadata=HIDDEN)  # per layer: input interval of the middle unit

    def summary(self) -> str:
        same = self.previous_stride_recursion == self.receptive_fields
        mixed_same = self.mixed_previous_stride_recursion == self.mixed_receptive_fields
        return (f"nablab gives receptive fields {self.receptive_fields} (input first), so "
                f"${self.final_receptive_field[0]} \\times {self.final_receptive_field[1]}$ for the last layer, the "
                "same as brute force. Its recursion is $r_l = r_{l-1} + (k_l - 1) j_{l-1}$ with jump "
                f"$j_l = j_{{l-1}} s_l$ (Araujo et al. 2019); the jumps are {self.jumps}. The recursion "
                "$r_i = s_{i-1} r_{i-1} + (k_i - s_{i-1})$, which scales by the previous stride only, gives "
                f"{self.previous_stride_recursion}"
                f"{' too' if same else ''} here; with strides {self.mixed_strides} it gives "
                f"{self.mixed_previous_stride_recursion} where nablab and brute force give "
                f"{self.mixed_receptive_fields}" + (" (the same)." if mixed_same else
                                                    ", so it holds only because the strides are equal."))


@compute("arch.rf-recursion")
def rf_recursion(run: Context) -> RfRecursion:
    size = run.params["size"]
    kernels, strides = [3, 3, 3], [2, 2, 2]
    spec = f"input 1x{size}x{size}, " + ", ".join(f"conv{k}-1/s{s}" for k, s in zip(kernels, strides))
    s = summary(spec)
    ours = [r["rf"][0] for r in s.rows]
    brute = brute_force_rf_1d(kernels, strides, n=size)
    run.check(ours == brute, f"nablab's receptive fields {ours} differ from brute force {brute}")
    # Strides that are not all equal tell the recursions apart.
    mixed_strides = [2, 1, 1]
    mixed = summary(f"input 1x{size}x{size}, "
                    + ", ".join(f"conv{k}-1/s{st}" for k, st in zip(kernels, mixed_strides)))
    mixed_ours = [r["rf"][0] for r in mixed.rows]
    mixed_brute = brute_force_rf_1d(kernels, mixed_strides, n=size)
    run.check(mixed_ours == mixed_brute, f"strides {mixed_strides}: nablab's receptive fields {mixed_ours} "
                                         f"differ from brute force {mixed_brute}")
    intervals = []
    for i, row in enumerate(s.rows):
        mid = (row["output_shape"][1] - 1) // 2
        (lo, hi), _ = s.rf_interval(i, (mid, mid))
        intervals.append((lo, hi))
    return RfRecursion(spec=spec, receptive_fields=ours, final_receptive_field=tuple(s.rows[-1]["rf"]),
                       jumps=[r["jump"][0] for r in s.rows], brute_force=brute,
                       previous_stride_recursion=previous_stride_recursion(kernels, strides),
                       mixed_strides=mixed_strides, mixed_receptive_fields=mixed_ours,
                       mixed_brute_force=mixed_brute,
                       mixed_previous_stride_recursion=previous_stride_recursion(kernels, mixed_strides),
                       intervals=intervals)


@figure("arch.rf-recursion")
def rf_recursion_figure(result: RfRecursion, run: Context) -> None:
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, ((lo, hi), r) in enumerate(zip(result.intervals, result.receptive_fields)):
        ax1.barh(i, hi - lo + 1, left=lo - 0.5, height=0.6)
        ax1.text(hi + 1, i, f"$r = {r}$", va="center", fontsize=8)
    n = len(result.intervals)
    ax1.set_yticks(range(n), ["input"] + [f"layer {i}" for i in range(1, n)])
    ax1.set_xlabel("input position")
    ax1.set_title(r"input seen by one unit, three $3 \times 3$ stride-2 layers", fontsize=9)
    xs = np.arange(len(result.mixed_receptive_fields))
    ax2.plot(xs, result.mixed_receptive_fields, "o-", label="nablab (jump recursion)")
    ax2.plot(xs, result.mixed_brute_force, "x--", label="brute force (input positions read)")
    ax2.plot(xs, result.mixed_previous_stride_recursion, "s:", label=r"$r_i = s_{i-1} r_{i-1} + (k_i - s_{i-1})$")
    ax2.set_xticks(xs, ["input"] + [rf"$3 \times 3$, $s = {s}$" for s in result.mixed_strides])
    ax2.set_title(f"strides {', '.join(map(str, result.mixed_strides))}: the recursions part", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "recursion", alt=f"Left: the input interval one unit sees after each layer, receptive fields "
                f"{result.receptive_fields}. Right: with strides {result.mixed_strides}, nablab and brute force "
                f"give {result.mixed_receptive_fields}, the previous-stride recursion "
                f"{result.mixed_previous_stride_recursion}.")


# ---------------------------------------------------------------------------------------
# cnn.conv-output-shape

#: The two convolutions of the question: slot -> (kernel, stride, padding).
CONVS = {"k3_s1_p0": (3, 1, 0), "k4_s2_p1": (4, 2, 1)}


@dataclass
class ConvOutputShape:
    input_shape: tuple
    k3_s1_p0: tuple          # slot
    k4_s2_p1: tuple          # slot
    pytorch: list | None     # PyTorch's Conv2d output shapes, or None without PyTorch
    rule: str = "floor((n + 2p - d(k - 1) - 1) / s) + 1"

    def summary(self) -> str:
        n = self.input_shape[-1]
        shapes = [self.k3_s1_p0, self.k4_s2_p1]
        torch = ", as PyTorch's Conv2d does" if self.pytorch == [list(s) for s in shapes] else ""
        return (f"$\\operatorname{{floor}}((n + 2p - k)/s) + 1$ with $n = {n}$ gives {list(self.k3_s1_p0)} for "
                f"$k = 3$, $s = 1$, $p = 0$ and {list(self.k4_s2_p1)} for $k = 4$, $s = 2$, $p = 1${torch}: batch "
                "and filters pass through, and the number of input channels does not enter the shape.")


@compute("cnn.conv-output-shape")
def conv_output_shape(run: Context) -> ConvOutputShape:
    p = run.params
    batch, c_in, n, filters = p["batch"], p["in_channels"], p["size"], p["filters"]
    head = f"input {batch}x{c_in}x{n}x{n}"
    specs = {slot: f"{head}, conv{k}-{filters}/s{s}/p{pad}" for slot, (k, s, pad) in CONVS.items()}
    shapes = {slot: tuple(summary(sp).rows[-1]["output_shape"]) for slot, sp in specs.items()}
    for slot, (k, s, pad) in CONVS.items():
        side = (n + 2 * pad - k) // s + 1
        run.check(shapes[slot] == (batch, filters, side, side),
                  f"{slot}: nablab gives {shapes[slot]}, the closed form {(batch, filters, side, side)}")
    torch_shapes = [_torch_shapes(run, sp) for sp in specs.values()]
    torch_shapes = None if None in torch_shapes else [list(t[-1]) for t in torch_shapes]
    run.check(torch_shapes is None or torch_shapes == [list(s) for s in shapes.values()],
              f"PyTorch's Conv2d gives {torch_shapes}, nablab {list(shapes.values())}")
    return ConvOutputShape(input_shape=(batch, c_in, n, n), pytorch=torch_shapes, **shapes)


# ---------------------------------------------------------------------------------------
# arch.shape-propagation

#: Slot -> the name of the layer in the spec whose output shape it is.
NAMED_LAYERS = {"layer_a": "a", "layer_b": "b", "layer_c": "c", "layer_d": "d", "layer_e": "e",
                "layer_f": "f", "skip": "skip"}


@dataclass
class ShapePropagation:
    spec: str
    input: tuple              # slot
    layer_a: tuple | None     # slots: the output shape of the layer of that name (None: not in the spec)
    layer_b: tuple | None
    layer_c: tuple | None
    layer_d: tuple | None
    layer_e: tuple | None
    layer_f: tuple | None
    skip: tuple | None
    layers: list              # every layer: name, type, output shape
    pytorch_agrees: bool | None  # PyTorch's layer outputs have the same shapes (None: not installed)
    missing: list             # slot layers the spec does not name

    def summary(self) -> str:
        shown = ", ".join(f"{name} {list(getattr(self, slot))}" for slot, name in NAMED_LAYERS.items()
                          if getattr(self, slot) is not None)
        torch = {True: " PyTorch's layers give the same shapes, layer by layer.",
                 None: " The PyTorch cross-check was not run: PyTorch is not installed.",
                 False: ""}[self.pytorch_agrees]
        text = (f"From {list(self.input)}: {shown}. A $3 \\times 3$ conv with padding 1 keeps the height and width, "
                "each $2 \\times 2$ pooling halves them, a $1 \\times 1$ conv changes only the channels, each "
                "$2 \\times 2$ stride-2 transposed conv doubles them ($(n - 1) \\cdot 2 + 2$), and a concatenation adds the channels of the two maps." + torch)
        if self.missing:
            text += f" The spec names no layer {', '.join(self.missing)}, so those slots are empty."
        return text


@compute("arch.shape-propagation")
def shape_propagation(run: Context) -> ShapePropagation:
    spec = run.params["spec"]
    s = summary(spec)
    by_name = {r["name"]: tuple(r["output_shape"]) for r in s.rows[1:]}
    named = {slot: by_name.get(name) for slot, name in NAMED_LAYERS.items()}
    ours = [tuple(r["output_shape"]) for r in s.rows[1:]]
    torch_shapes = _torch_shapes(run, spec)
    run.check(torch_shapes is None or torch_shapes == ours,
              f"PyTorch's layer output shapes {torch_shapes} differ from nablab's {ours}")
    table = [{"layer": r["name"], "type": r["type"], "output_shape": tuple(r["output_shape"])} for r in s.rows]
    return ShapePropagation(spec=spec, input=tuple(s.rows[0]["output_shape"]), layers=table,
                            pytorch_agrees=None if torch_shapes is None else True,
                            missing=[NAMED_LAYERS[k] for k, v in named.items() if v is None], **named)
