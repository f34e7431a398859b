"""Summaries of nablab.nn and torch.nn models, and receptive fields through nablab's own layers."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import nablab as nb
from nablab import nn
from nablab.arch import ShapeError, parse_spec, summary

# The seed's VGG-style net, narrowed and on 32x32 inputs so that the model builds quickly.
SMALL_NET = ("input 3x32x32, conv3-8, maxpool2, conv3-16, maxpool2, conv3-32, conv3-32, "
             "maxpool2, fc-64, fc-10")


def small_net_nablab():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 32, 64), nn.ReLU(), nn.Linear(64, 10))


def test_nablab_model_matches_its_spec():
    model = small_net_nablab()
    s = summary(model, input_shape=(3, 32, 32))
    spec = summary(SMALL_NET)
    assert s.totals["params"] == model.num_parameters() == spec.totals["params"]
    weighted = [r["output_shape"] for r in s.rows if r["params"]]
    assert weighted == [r["output_shape"] for r in spec.rows if r["params"]]
    assert s["3.0"]["type"] == "conv" and s["3.0"]["rf"] == (8, 8)  # nested Sequential names
    assert s.rows[-1]["output_shape"] == (10,) == model(np.zeros((1, 3, 32, 32))).shape[1:]


def test_torch_model_and_bn_state():
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, padding="same"), torch.nn.BatchNorm2d(6),
                               torch.nn.ReLU(), torch.nn.AvgPool2d(2, ceil_mode=True),
                               torch.nn.ConvTranspose2d(6, 3, 3, stride=2, output_padding=1),
                               torch.nn.Flatten(), torch.nn.Linear(3 * 18 * 18, 10), torch.nn.Softmax(dim=1))
    s = summary(tnet, "4x1x15x15")
    with torch.no_grad():
        out = tnet(torch.zeros(4, 1, 15, 15))
    assert s.rows[-1]["output_shape"] == tuple(out.shape) == (4, 10)
    assert s.totals["params"] == sum(p.numel() for p in tnet.parameters())
    assert s.totals["non_trainable"] == 12


def test_model_errors_name_the_layer():
    with pytest.raises(ShapeError, match=r"layer 1 'Conv2d 0' \(conv\).*built for 3 input channels, the input has 1"):
        summary(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 28, 28))
    with pytest.raises(ShapeError, match=r"layer 2 'Linear 1' \(fc\).*built for 100 input features, the input has 2704"):
        summary(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(100, 10)), (1, 28, 28))

    class Block(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"layer 2 '1' \(Block\): nablab.arch follows Sequential models"):
        summary(nn.Sequential(nn.ReLU(), Block()), (1, 8, 8))
    with pytest.raises(ValueError, match="pass input_shape"):
        summary(nn.Sequential(nn.ReLU()))


# ---- brute force through nablab's own layers ----------------------------------------

def nablab_positive_net(spec):
    """The spec's conv/pool chain in nablab.nn, with positive weights and average pooling."""
    layers, c = [], parse_spec(spec)[0].shape[0]
    for l in parse_spec(spec)[1:]:
        pad = tuple(lo for lo, _ in l.padding)
        if l.kind == "conv":
            m = nn.Conv2d(c, l.channels, l.kernel, l.stride, pad, l.dilation)
            m.weight = nn.Parameter(np.abs(m.weight.numpy()) + 0.1)
            m.bias = nn.Parameter(np.zeros(l.channels))
            c = l.channels
        else:
            m = nn.AvgPool2d(l.kernel, l.stride, pad)
        layers.append(m)
    return nn.Sequential(*layers)


@st.composite
def chains(draw):
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            layers.append(f"conv{draw(st.integers(1, 4))}-2/s{draw(st.integers(1, 2))}"
                          f"/p{draw(st.integers(0, 1))}/d{draw(st.integers(1, 2))}")
        else:
            k = draw(st.integers(2, 3))
            layers.append(f"avgpool{k}/s{draw(st.integers(1, 2))}/p{draw(st.integers(0, k // 2))}")
    return f"input 1x{draw(st.integers(20, 30))}x{draw(st.integers(20, 30))}, " + ", ".join(layers)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_receptive_fields_by_nablab_gradients(spec):
    try:
        s = summary(spec)
    except ShapeError:
        assume(False)
    model = nablab_positive_net(spec)
    x0 = np.ones((1, *s.input_shape))
    _, oh, ow = s.rows[-1]["output_shape"]
    for unit in {(oh // 2, ow // 2), (0, 0), (oh - 1, ow - 1)}:
        g = nb.grad(lambda x: model(x)[0, 0, unit[0], unit[1]])(x0)[0].sum(0)
        rows, cols = np.nonzero((g != 0).any(1))[0], np.nonzero((g != 0).any(0))[0]
        want = s.rf_interval(-1, unit)
        if rows.size == 0:  # a unit computed from padding only: its field must reach outside
            assert any(lo < 0 or hi > n - 1 for (lo, hi), n in zip(want, s.input_shape[1:])), spec
            continue
        for got, (lo, hi), n in zip((rows, cols), want, s.input_shape[1:]):
            if lo >= 0 and hi <= n - 1:
                assert (got.min(), got.max()) == (lo, hi), (spec, unit)
            else:
                assert max(lo, 0) <= got.min() and got.max() <= min(hi, n - 1), (spec, unit)
