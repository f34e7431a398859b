"""Shape rules and parameter counts against PyTorch modules, over random configurations."""

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from torch import nn

from nablab.arch import ShapeError, summary
from nablab.arch.to_torch import to_torch

SETTINGS = dict(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def torch_shape(module, shape):
    """Output shape of ``module`` on zeros of ``shape``, or None if PyTorch refuses.

    An empty output (PyTorch allows a transposed conv to return size 0) counts
    as a refusal: nablab reports it as an error.
    """
    try:
        with torch.no_grad():
            out = tuple(module(torch.zeros(shape)).shape)
    except (RuntimeError, ValueError):
        return None
    return out if min(out) > 0 else None


def ours(spec):
    try:
        s = summary(spec)
    except ShapeError:
        return None, None
    return s.rows[-1]["output_shape"], s.rows[-1]["params"]


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@settings(**SETTINGS)
@given(h=st.integers(1, 20), w=st.integers(1, 20), k=st.integers(1, 6), k2=st.integers(1, 6),
       s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3), g=st.sampled_from([1, 2, 3]),
       cin=st.sampled_from([3, 6]), cout=st.sampled_from([6, 12]), bias=st.booleans())
def test_conv2d(h, w, k, k2, s, p, d, g, cin, cout, bias):
    assume(cin % g == 0)
    nb = "" if bias else "/nb"
    got = ours(f"input 2x{cin}x{h}x{w}, conv{k}x{k2}-{cout}/s{s}/p{p}/d{d}/g{g}{nb}")
    m = nn.Conv2d(cin, cout, (k, k2), s, p, d, g, bias)
    assert got[0] == torch_shape(m, (2, cin, h, w))
    if got[0] is not None:
        assert got[1] == n_params(m)


@settings(**SETTINGS)
@given(h=st.integers(1, 16), w=st.integers(1, 16), k=st.integers(1, 6), d=st.integers(1, 3))
def test_conv2d_same_and_default_padding(h, w, k, d):
    got = ours(f"input 1x4x{h}x{w}, conv{k}-5/d{d}/psame")
    assert got[0] == torch_shape(nn.Conv2d(4, 5, k, padding="same", dilation=d), (1, 4, h, w))
    got = ours(f"input 1x4x{h}x{w}, conv{k}-5/d{d}")  # default padding d(k-1)//2
    pad = d * (k - 1) // 2
    assert got[0] == torch_shape(nn.Conv2d(4, 5, k, padding=pad, dilation=d), (1, 4, h, w))


@settings(**SETTINGS)
@given(h=st.integers(1, 20), w=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4),
       p=st.integers(0, 3), d=st.integers(1, 3), ceil=st.booleans(), kind=st.sampled_from(["max", "avg"]))
def test_pooling(h, w, k, s, p, d, ceil, kind):
    if kind == "avg":
        d = 1
        m = nn.AvgPool2d(k, s, p, ceil_mode=ceil)
    else:
        m = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    opts = f"/s{s}/p{p}" + (f"/d{d}" if kind == "max" else "") + ("/ceil" if ceil else "")
    got = ours(f"input 2x3x{h}x{w}, {kind}pool{k}{opts}")
    assert got[0] == torch_shape(m, (2, 3, h, w))


@settings(**SETTINGS)
@given(h=st.integers(1, 12), w=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 4),
       p=st.integers(0, 3), d=st.integers(1, 3), op=st.integers(0, 3), g=st.sampled_from([1, 2]),
       bias=st.booleans())
def test_conv_transpose2d(h, w, k, s, p, d, op, g, bias):
    nb = "" if bias else "/nb"
    got = ours(f"input 2x4x{h}x{w}, convT{k}-6/s{s}/p{p}/d{d}/op{op}/g{g}{nb}")
    try:
        m = nn.ConvTranspose2d(4, 6, k, s, p, op, g, bias, d)
        want = torch_shape(m, (2, 4, h, w))
    except ValueError:
        want = None
    assert got[0] == want
    if got[0] is not None:
        assert got[1] == n_params(m)


# ---- whole random specs through to_torch ---------------------------------------------

@st.composite
def specs(draw):
    c, h = draw(st.sampled_from([1, 3])), draw(st.integers(8, 40))
    parts = [f"input 2x{c}x{h}x{draw(st.integers(8, 40))}"]
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "bn", "skip", "convT"]))
        if kind == "conv":
            g = draw(st.sampled_from([1, 1, 2]))
            parts.append(f"conv{draw(st.integers(1, 5))}-{2 * draw(st.integers(1, 4))}"
                         f"/s{draw(st.integers(1, 2))}/d{draw(st.integers(1, 2))}"
                         + (f"/g{g}" if g > 1 and c % g == 0 else "")
                         + draw(st.sampled_from(["", "/p0", "/p2", "/nb"])))
            c = int(parts[-1].split("-")[1].split("/")[0])
        elif kind == "convT":
            parts.append(f"convT{draw(st.integers(2, 4))}-4/s2/p1")
            c = 4
        elif kind == "pool":
            k = draw(st.integers(2, 3))
            parts.append(f"{draw(st.sampled_from(['max', 'avg']))}pool{k}/s{draw(st.integers(1, 2))}"
                         f"/p{draw(st.integers(0, k // 2))}")
        elif kind == "act":
            parts.append(draw(st.sampled_from(["relu", "tanh", "sigmoid", "dropout"])))
        elif kind == "bn":
            parts.append("bn")
        else:  # a named shape-keeping conv joined back by concat or add
            parts.append(f"b{i}: conv3-4, conv1-4")
            parts.append(draw(st.sampled_from([f"concat(b{i})", f"add(b{i})"])))
            c = 8 if parts[-1].startswith("concat") else 4
    if draw(st.booleans()):
        parts += [draw(st.sampled_from(["flatten, fc-10", "fc-7/nb", "fc-5, bn"])), "softmax"]
    return ", ".join(parts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_random_specs_match_torch(spec):
    try:
        s = summary(spec)
    except ShapeError:
        assume(False)  # single-layer refusals are compared with PyTorch above
    net = to_torch(spec).eval()
    with torch.no_grad():
        outs = net(torch.rand(s.input_shape), return_all=True)
    assert [tuple(o.shape) for o in outs] == [r["output_shape"] for r in s.rows[1:]]
    assert s.totals["params"] == n_params(net)
    buffers = sum(b.numel() for name, b in net.named_buffers() if "running" in name)
    assert s.totals["non_trainable"] == buffers


def test_shape_errors_name_layer_and_shapes():
    with pytest.raises(ShapeError, match=r"layer 3 'conv5-8/p0' \(conv\) cannot apply to input 4x2x2.*kernel 5"):
        summary("input 3x4x4, conv3-4/s2, conv5-8/p0")
    with pytest.raises(ShapeError, match=r"concat\(a\) needs the same spatial sizes.*a is 4x8x8"):
        summary("input 3x8x8, a: conv3-4, maxpool2, concat(a)")
    with pytest.raises(ShapeError, match=r"groups 2 must divide the input channels 3"):
        summary("input 3x8x8, conv3-4/g2")
    with pytest.raises(ShapeError, match=r"add\(a\) needs equal shapes.*a is 4x8x8"):
        summary("input 3x8x8, a: conv3-4, conv3-6, add(a)")
    with pytest.raises(ShapeError, match=r"conv needs a CxHxW input"):
        summary("input 3x8x8, fc-10, conv3-4")
