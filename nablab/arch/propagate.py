"""Walk a parsed spec layer by layer: shapes, parameters, neurons, connections, MACs, receptive fields.

Conventions (stated in every summary):

* ``params`` are trainable weights and biases (what ``torch.nn.Module.parameters()``
  counts); ``non_trainable`` are state such as batch norm's running mean and variance.
* ``neurons`` are the new units a layer computes: conv, transposed conv, pooling,
  fully connected and softmax layers.  Elementwise layers (activations, batch norm,
  dropout, addition) and reshaping layers (flatten, concat) act on units already
  counted, so they count 0.
* ``connections_per_neuron`` counts the inputs of one unit, padding positions
  included, bias excluded; ``connections = neurons * connections_per_neuron``.
  A transposed conv is counted on its input (each input unit feeds ``k*k*C_out/groups``
  products), so its per-neuron figure is an average.
* ``macs`` count weight multiply-accumulates only (conv, transposed conv, fc);
  bias additions, pooling, activations and normalisation are not counted.
  FLOP = 2 MAC.  Neurons, connections and MACs are per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from .rf import AxisRF, conv_rf, conv_transpose_rf, merge_rf, whole_rf
from .shapes import ShapeError, conv_output_size, conv_transpose_output_size, pool_output_size
from .spec import Layer

__all__ = ["State", "propagate", "input_state"]

AXES = ("height", "width")


@dataclass(frozen=True)
class State:
    """What flows between layers: per-sample shape and per-axis receptive fields."""

    shape: tuple[int, ...]
    rf: tuple[AxisRF, ...] | None

    @property
    def spatial(self) -> bool:
        return len(self.shape) > 1


def _fmt(shape) -> str:
    return "x".join(str(s) for s in shape)


def input_state(shape: tuple[int, ...]) -> tuple[State, int | None]:
    """Split an input shape (F, NxF, CxHxW or NxCxHxW) into a State and the batch size."""
    shape = tuple(int(s) for s in shape)
    if len(shape) in (2, 4):
        batch, shape = shape[0], shape[1:]
    elif len(shape) in (1, 3):
        batch = None
    else:
        raise ShapeError(f"an input shape has 1 to 4 sizes (F, NxF, CxHxW, NxCxHxW), got {shape}")
    rf = tuple(AxisRF(count=n) for n in shape[1:]) if len(shape) == 3 else None
    return State(shape, rf), batch


def _fail(layer: Layer, state: State, reason: str):
    raise ShapeError(
        f"layer {layer.index} '{layer.text}' ({layer.kind}) cannot apply to input "
        f"{_fmt(state.shape)}: {reason}"
    ) from None


def _info(state, params=0, non_trainable=0, neurons=0, per_neuron=0, macs=0, connections=None):
    if connections is None:
        connections = neurons * per_neuron
    if isinstance(per_neuron, float) and per_neuron.is_integer():
        per_neuron = int(per_neuron)
    return state, dict(
        params=params, non_trainable=non_trainable, neurons=neurons,
        connections_per_neuron=per_neuron, connections=connections, macs=macs,
    )


def _conv_like(layer: Layer, state: State):
    if not state.spatial:
        _fail(layer, state, f"{layer.kind} needs a CxHxW input (is there a flatten or fc before it?)")
    c_in, sizes = state.shape[0], state.shape[1:]
    g = layer.groups
    if layer.kind in ("conv", "convT"):
        if c_in % g or layer.channels % g:
            _fail(layer, state, f"groups {g} must divide the input channels {c_in} "
                                f"and the output channels {layer.channels}")
    out, rfs = [], []
    for axis, n, k, s, (lo, hi), d, a in zip(AXES, sizes, layer.kernel, layer.stride,
                                              layer.padding, layer.dilation, state.rf):
        try:
            if layer.kind == "conv":
                m = conv_output_size(n, k, s, (lo, hi), d)
                rfs.append(conv_rf(a, k, s, lo, d, m))
            elif layer.kind == "convT":
                m = conv_transpose_output_size(n, k, s, lo, d, layer.output_padding[AXES.index(axis)])
                rfs.append(conv_transpose_rf(a, k, s, lo, d, m))
            else:
                if layer.kind == "avgpool" and d != 1:
                    raise ShapeError("average pooling has no dilation")
                m = pool_output_size(n, k, s, lo, d, layer.ceil_mode)
                rfs.append(conv_rf(a, k, s, lo, d, m))
        except ShapeError as e:
            _fail(layer, state, f"{e} ({axis})")
        out.append(m)
    kk = prod(layer.kernel)
    if layer.kind == "conv":
        shape = (layer.channels, *out)
        per = c_in // g * kk
        neurons = prod(shape)
        params = layer.channels * per + (layer.channels if layer.bias else 0)
        return _info(State(shape, tuple(rfs)), params=params, neurons=neurons, per_neuron=per,
                     macs=neurons * per)
    if layer.kind == "convT":
        shape = (layer.channels, *out)
        neurons = prod(shape)
        macs = prod(state.shape) * (layer.channels // g) * kk
        params = c_in * (layer.channels // g) * kk + (layer.channels if layer.bias else 0)
        return _info(State(shape, tuple(rfs)), params=params, neurons=neurons,
                     per_neuron=macs / neurons, macs=macs, connections=macs)
    shape = (c_in, *out)
    return _info(State(shape, tuple(rfs)), neurons=prod(shape), per_neuron=kk)


def _whole(state: State):
    return tuple(whole_rf(a) for a in state.rf) if state.rf is not None else None


def _join(layer: Layer, state: State, other: State):
    a, b = state.shape, other.shape
    if layer.kind == "add":
        if a != b:
            _fail(layer, state, f"add({layer.ref}) needs equal shapes, but {layer.ref} is {_fmt(b)}")
        shape = a
    else:
        if len(a) != len(b) or a[1:] != b[1:]:
            what = "sizes" if len(a) == 1 else "spatial sizes"
            _fail(layer, state, f"concat({layer.ref}) needs the same {what} apart from channels, "
                                f"but {layer.ref} is {_fmt(b)}")
        shape = (a[0] + b[0], *a[1:])
    rf = None
    if state.rf is not None and other.rf is not None:
        rf = tuple(merge_rf(x, y) for x, y in zip(state.rf, other.rf))
    return _info(State(shape, rf), per_neuron=2 if layer.kind == "add" else 1)


def _check_expected(layer: Layer, state: State):
    if layer.expects is None:
        return
    have = prod(state.shape) if layer.kind == "fc" else state.shape[0]
    if have != layer.expects:
        what = "input features" if layer.kind == "fc" else "input channels"
        _fail(layer, state, f"it was built for {layer.expects} {what}, the input has {have}")


def apply_layer(layer: Layer, state: State, named: dict[str, State]):
    """Return the state after ``layer`` and the row's counts."""
    kind = layer.kind
    _check_expected(layer, state)
    if kind in ("conv", "convT", "maxpool", "avgpool"):
        return _conv_like(layer, state)
    if kind == "fc":
        n_in = prod(state.shape)
        n = layer.channels
        params = n_in * n + (n if layer.bias else 0)
        return _info(State((n,), _whole(state)), params=params, neurons=n, per_neuron=n_in, macs=n_in * n)
    if kind == "flatten":
        return _info(State((prod(state.shape),), state.rf), per_neuron=1)
    if kind == "bn":
        c = state.shape[0]
        return _info(state, params=2 * c, non_trainable=2 * c, per_neuron=1)
    if kind == "softmax":
        # Softmax normalises over channels (features for a vector): each output sees all of them.
        rf = state.rf if state.spatial else _whole(state)
        return _info(State(state.shape, rf), neurons=prod(state.shape), per_neuron=state.shape[0])
    if kind in ("concat", "add"):
        return _join(layer, state, named[layer.ref])
    if kind == "from":
        return _info(named[layer.ref])
    return _info(state, per_neuron=1)  # relu, leakyrelu, sigmoid, tanh, dropout


def propagate(layers: list[Layer], input_shape: tuple[int, ...]):
    """Yield ``(layer, state, counts)`` for every layer after the input.

    >>> from nablab.arch.spec import parse_spec
    >>> [s.shape for _, s, _ in propagate(parse_spec("conv3-8/s2, maxpool2"), (3, 32, 32))]
    [(8, 16, 16), (8, 8, 8)]
    """
    state, _ = input_state(input_shape)
    named: dict[str, State] = {}
    for layer in layers:
        if layer.kind == "input":
            if layer.name:
                named[layer.name] = state
            continue
        try:
            state, counts = apply_layer(layer, state, named)
        except OverflowError:   # receptive-field arithmetic is in floats
            _fail(layer, state, "its receptive field grows beyond what a float holds (about 1e308 "
                                "input positions); the strides or kernels are too large")
        if layer.name:
            named[layer.name] = state
        yield layer, state, counts
