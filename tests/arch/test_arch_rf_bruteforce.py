"""Receptive fields against brute force: the support of d(output unit)/d(input).

The brute force runs the spec's network in PyTorch with positive weights,
average instead of max pooling and no activations, so no gradient entry
vanishes by accident; the support's first and last rows/columns are the
receptive field's extent.  (When nablab's engine has conv layers this can
run through nablab itself.)
"""

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from nablab.arch import ShapeError, summary
from nablab.arch.to_torch import to_torch


def positive_net(spec):
    net = to_torch(spec.replace("maxpool", "avgpool")).double().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(p.abs() + 0.1 if "weight" in name else torch.zeros_like(p))
    return net


def support(net, shape, layer_pos, unit):
    """Rows and columns of the input that unit (h, w) of channel 0 of layer ``layer_pos`` depends on."""
    x = torch.ones((1, *shape), dtype=torch.double, requires_grad=True)
    out = net(x, return_all=True)[layer_pos - 1]
    out[(0, 0, *unit)].backward()
    g = x.grad[0].abs().sum(0).numpy() > 0
    rows, cols = np.nonzero(g.any(1))[0], np.nonzero(g.any(0))[0]
    if rows.size == 0:
        return None  # the unit sees padding only
    return (rows.min(), rows.max()), (cols.min(), cols.max())


def check_units(spec, layer_pos=-1):
    s = summary(spec)
    shape = s.input_shape
    pos = layer_pos % len(s.rows)
    net = positive_net(spec)
    out_h, out_w = s.rows[pos]["output_shape"][1:]
    exact = 0
    for uh in sorted({0, out_h // 2, out_h - 1}):
        for uw in sorted({0, out_w // 2, out_w - 1}):
            got = support(net, shape, pos, (uh, uw))
            want = s.rf_interval(pos, (uh, uw))
            if got is None:  # a unit computed from padding only: its field must reach outside
                assert any(wlo < 0 or whi > n - 1 for (wlo, whi), n in zip(want, shape[1:])), spec
                continue
            for axis, (lo, hi), (wlo, whi), n in zip("hw", got, want, shape[1:]):
                if wlo >= 0 and whi <= n - 1:  # field inside the input: the extent is exact
                    assert (lo, hi) == (wlo, whi), (spec, axis, (uh, uw))
                    exact += 1
                else:  # the field reaches into padding: the visible part lies inside it
                    assert max(wlo, 0) <= lo and hi <= min(whi, n - 1), (spec, axis, (uh, uw))
    return exact


@st.composite
def chains(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            layers.append(f"conv{draw(st.integers(1, 5))}-2/s{draw(st.integers(1, 3))}"
                          f"/p{draw(st.integers(0, 2))}/d{draw(st.integers(1, 2))}")
        else:
            k = draw(st.integers(2, 3))
            layers.append(f"maxpool{k}/s{draw(st.integers(1, 3))}/p{draw(st.integers(0, k // 2))}")
    return f"input 2x{draw(st.integers(24, 48))}x{draw(st.integers(24, 48))}, " + ", ".join(layers)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_random_chains_match_brute_force(spec):
    try:
        summary(spec)
    except ShapeError:
        assume(False)
    check_units(spec)


def test_seed_recursion_net_and_dilation():
    assert summary("input 1x40x40, conv3-1/s2, conv3-1/s2, conv3-1/s2").rows[-1]["rf"] == (15, 15)
    assert check_units("input 1x40x40, conv3-1/s2/p0, conv3-1/s2/p0, conv3-1/s2/p0") > 0
    assert check_units("input 1x41x41, conv3-2/d2/p0, conv3-2/d4/p0, conv3-1/d8/p0") > 0


def test_two_paths_take_the_union():
    spec = "x: input 1x30x30, a: conv3-2, from(x), conv7-2/p3, add(a), conv3-1"
    s = summary(spec)
    assert s["a"]["rf"] == (3, 3) and s.rows[-1]["rf"] == (9, 9)
    assert check_units(spec) > 0
    assert check_units("x: input 1x30x30, a: conv5-2/p0, from(x), conv3-2/p0/s1, maxpool3/s1, concat(a), conv3-1/p0") > 0


def test_fully_connected_sees_everything():
    spec = "input 1x12x12, conv3-2/s2, fc-3"
    s = summary(spec)
    net = positive_net(spec)
    x = torch.ones((1, 1, 12, 12), dtype=torch.double, requires_grad=True)
    net(x)[0, 1].backward()
    assert (x.grad != 0).all()
    r, j, c = s.rows[-1]["rf"][0], s.rows[-1]["jump"][0], s.rows[-1]["start"][0]
    assert c - (r - 1) / 2 <= 0 and c + (r - 1) / 2 >= 11


def test_transposed_conv_size_is_the_widest_unit():
    spec = "input 1x16x16, conv3-2/s2/p0, convT4-2/s2/p1, conv3-1/p0"
    s = summary(spec)
    net = positive_net(spec)
    widths = []
    for u in range(2, s.rows[-1]["output_shape"][1] - 2):
        (lo, hi), _ = support(net, s.input_shape, len(s.rows) - 1, (u, 5))
        widths.append(hi - lo + 1)
    assert max(widths) == s.rows[-1]["rf"][0]
    assert s.rows[2]["jump"] == (1, 1)  # stride 2 then transposed stride 2: back to jump 1
