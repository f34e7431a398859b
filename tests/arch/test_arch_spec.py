"""The spec parser: layers, options, names, and errors that point at the layer and column."""

import pytest

from nablab.arch import SpecError, parse_shape, parse_spec


def test_layers_and_defaults():
    layers = parse_spec("input 3x112x112, conv3-64, maxpool2, conv4-128/s2/p1/d1,\n"
                        "maxpool3/s2/p1, avgpool2, a: convT4-8/s2/p1/op1, concat(a), fc-1024/nb, "
                        "relu, bn, dropout0.3, flatten, softmax")
    kinds = [l.kind for l in layers]
    assert kinds == ["input", "conv", "maxpool", "conv", "maxpool", "avgpool", "convT", "concat", "fc",
                     "relu", "bn", "dropout", "flatten", "softmax"]
    inp, c3, mp, c4, mp3, ap, ct, cat, fc = layers[:9]
    assert inp.shape == (3, 112, 112)
    assert (c3.kernel, c3.channels, c3.stride, c3.padding) == ((3, 3), 64, (1, 1), ((1, 1), (1, 1)))
    assert (mp.kernel, mp.stride, mp.padding) == ((2, 2), (2, 2), ((0, 0), (0, 0)))
    assert (c4.stride, c4.padding, c4.dilation) == ((2, 2), ((1, 1), (1, 1)), (1, 1))
    assert (mp3.kernel, mp3.stride, mp3.padding) == ((3, 3), (2, 2), ((1, 1), (1, 1)))
    assert (ct.name, ct.stride, ct.output_padding, ct.padding) == ("a", (2, 2), (1, 1), ((1, 1), (1, 1)))
    assert cat.ref == "a" and fc.channels == 1024 and not fc.bias
    assert layers[11].p == 0.3 and c4.line == 1 and mp3.line == 2


def test_padding_forms():
    conv = lambda s: parse_spec(s)[0]
    assert conv("conv5-8").padding == ((2, 2), (2, 2))
    assert conv("conv3-8/d2").padding == ((2, 2), (2, 2))  # default d(K-1)//2 keeps the size
    assert conv("conv4-8/psame").padding == ((1, 2), (1, 2))  # PyTorch's split: extra on the right
    assert conv("conv3-8/pvalid").padding == ((0, 0), (0, 0))
    assert conv("conv3x5-8/p1x2/s1x2").padding == ((1, 1), (2, 2))
    assert conv("conv3x5-8").kernel == (3, 5)
    assert parse_shape("10x1x32x32") == (10, 1, 32, 32) and parse_shape("(3, 32, 32)") == (3, 32, 32)


@pytest.mark.parametrize("spec, layer, column, message", [
    ("input 3x112x112, conv3-, maxpool2", 2, 24, "expected the number of output channels"),
    ("input 3x112x112, conv3-64/q2", 2, 27, "option 'q' is not known for conv"),
    ("conv3-64, maxpol2", 2, 11, "unknown layer 'maxpol'"),
    ("conv3-64,\n  fc-", 2, 6, "expected the number of outputs"),
    ("conv3-64/p1/p2", 1, 13, "option 'p' is given twice"),
    ("relu, concat(b)", 2, 14, "no earlier layer is named 'b'"),
    ("conv3-4 5", 1, 8, "unexpected ' 5'"),
    ("maxpool2/psame", 1, 10, "padding 'same' is only defined for conv"),
    ("conv3-8/s2/psame", 1, 1, "padding 'same' needs stride 1"),
    ("fc-0", 1, 4, "must be at least 1, got 0"),
    ("relu, input 3x4x4", 2, 7, "'input' must be the first layer"),
    ("a: conv3-4, a: relu", 2, 13, "already used by layer 1"),
    ("input 3x4x4x5x6", 1, 1, "1 to 4 sizes"),
])
def test_errors_point_at_layer_and_column(spec, layer, column, message):
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(spec)
    err = info.value
    assert (err.layer, err.column) == (layer, column)
    text = str(err)
    assert text.startswith(f"layer {layer} ")
    assert f"column {column}" in text
    # the caret line points under the offending column of the quoted line
    caret = text.splitlines()[2]
    assert caret == "  " + " " * (column - 1) + "^"


@pytest.mark.parametrize("spec, column, what", [
    ("input 3x{N}x32, conv3-64", 9, "a size"),
    ("input 3x32x32, conv3-{N}", 22, "the number of output channels"),
    ("input 3x32x32, fc-{N}", 19, "the number of outputs"),
    ("input 3x32x32, conv{N}-3", 20, "the kernel size"),
    ("input 3x32x32, conv3-3/s{N}", 25, "stride"),
    ("input 3x32x32, convT3-3/op{N}", 27, "output padding"),
    ("input 3x32x32, conv3-3/g{N}", 25, "groups"),
])
def test_absurd_sizes_are_refused_at_their_layer_and_column(spec, column, what):
    digits = "9" * 400                      # float() of it overflows; int() of 5000 digits refuses
    for n in (digits, "9" * 5000, str(2**31)):
        with pytest.raises(SpecError, match=f"{what} .* is too large \\(at most 2,147,483,647\\)") as info:
            parse_spec(spec.format(N=n))
        assert (info.value.layer, info.value.column) == (1 if spec.startswith("input 3x{N}") else 2, column)
    assert parse_spec(spec.format(N=2**31 - 1))          # the largest allowed size is read


def test_an_absurd_input_shape_is_refused():
    with pytest.raises(SpecError, match=r"the size 999999\.\.\. \(400 digits\) is too large"):
        parse_shape("3x" + "9" * 400 + "x3")


def test_the_largest_sizes_compute_quickly_or_say_which_layer_overflows():
    import time

    from nablab.arch import summary
    from nablab.arch.shapes import ShapeError

    big = 2**31 - 1
    start = time.perf_counter()
    s = summary(f"input 3x32x32, convT{big}-2/s{big}/d{big}, conv3-4")  # a loop over s or k took forever
    assert s.rows[1]["params"] == 3 * 2 * big * big + 2
    with pytest.raises(ShapeError, match=r"layer \d+ 'conv1-1/s2147483647' .* beyond what a float holds"):
        summary("input 1x1x1, " + ", ".join([f"conv1-1/s{big}"] * 40) + ", fc-3")
    assert time.perf_counter() - start < 5


def test_transposed_conv_receptive_field_closed_form_matches_counting_taps():
    from nablab.arch.rf import AxisRF, conv_transpose_rf

    def widest_by_counting(k, s, p, d):
        spans = []
        for o in range(s):
            taps = [(o + p - m * d) // s for m in range(k) if (o + p - m * d) % s == 0]
            spans.append(max(taps) - min(taps) if taps else 0)
        return max(spans)

    for k in range(1, 8):
        for s in range(1, 8):
            for p in range(4):
                for d in range(1, 5):
                    assert conv_transpose_rf(AxisRF(), k, s, p, d).size == 1 + widest_by_counting(k, s, p, d)
