"""The summary table: counts, formats, and the CLI."""

import csv
import io
import json

import torch
import typer
from typer.testing import CliRunner

from nablab.arch import summary
from nablab.cli.tools import arch_command
from nablab.arch.to_torch import to_torch

SEED_NET = ("input 3x112x112, conv3-64, maxpool2, conv3-128, maxpool2, conv3-256, conv3-256, "
            "maxpool2, fc-1024, fc-100, softmax")


def test_seed_convnet_counts_by_hand():
    s = summary(SEED_NET)
    conv = lambda cin, cout: (3 * 3 * cin + 1) * cout
    want_params = [0, conv(3, 64), 0, conv(64, 128), 0, conv(128, 256), conv(256, 256), 0,
                   (14 * 14 * 256 + 1) * 1024, (1024 + 1) * 100, 0]
    assert [r["params"] for r in s.rows] == want_params
    sizes = [(64, 112), (64, 56), (128, 56), (128, 28), (256, 28), (256, 28), (256, 14)]
    want_neurons = [c * n * n for c, n in sizes] + [1024, 100, 100]
    assert [r["neurons"] for r in s.rows[1:]] == want_neurons
    fan_in = [27, 4, 9 * 64, 4, 9 * 128, 9 * 256, 4, 14 * 14 * 256, 1024, 100]
    assert [r["connections_per_neuron"] for r in s.rows[1:]] == fan_in
    assert [r["connections"] for r in s.rows[1:]] == [a * b for a, b in zip(want_neurons, fan_in)]
    assert s.totals["params"] == sum(want_params)
    assert s.totals["params"] == sum(p.numel() for p in to_torch(SEED_NET).parameters())
    macs = [r["macs"] for r in s.rows]
    assert macs[2] == 0 and macs[1] == want_neurons[0] * 27  # pooling has no MACs; bias not counted
    assert s.totals["flops"] == 2 * s.totals["macs"]


def test_rows_keys_and_formats():
    s = summary(SEED_NET)
    for key in ("name", "type", "output_shape", "params", "neurons", "connections", "macs",
                "rf", "jump", "start"):
        assert key in s.rows[1]
    text = str(s)
    assert "52,444,644" in text and "FLOP" in text and "bias not counted" in text
    d = json.loads(json.dumps(s.to_dict()))
    assert d["rows"][1]["output_shape"] == [64, 112, 112] and d["totals"]["params"] == s.totals["params"]
    rows = list(csv.DictReader(io.StringIO(s.to_csv())))
    assert len(rows) == len(s.rows) and rows[3]["output_shape"] == "128x56x56" and rows[3]["rf"] == "8x8"
    html = s._repr_html_()
    assert html.startswith("<table>") and "<th>MACs</th>" in html and "conv3-128" in html
    assert s["conv3-128"] is s.rows[3]


def test_batch_override_and_vectors():
    s = summary("conv3-16/s2, fc-10", input_shape="8x3x32x32")
    assert s.rows[1]["output_shape"] == (8, 16, 16, 16) and s.rows[-1]["output_shape"] == (8, 10)
    assert s.rows[1]["neurons"] == 16 * 16 * 16  # per sample
    v = summary("input 784, fc-100, relu, fc-10, softmax")
    assert v.totals["params"] == 784 * 100 + 100 + 100 * 10 + 10 and v.rows[-1]["rf"] is None


def test_transposed_conv_counted_on_its_input_and_bn_state():
    s = summary("input 2x4x4, convT2-3/s2, bn")
    ct, bn = s.rows[1], s.rows[2]
    assert ct["output_shape"] == (3, 8, 8)
    assert ct["macs"] == 2 * 4 * 4 * (2 * 2 * 3)  # every input unit feeds k*k*C_out products
    assert ct["params"] == 2 * 3 * 2 * 2 + 3
    assert ct["connections_per_neuron"] == ct["macs"] / ct["neurons"]
    assert (bn["params"], bn["non_trainable"]) == (6, 6)
    net = to_torch("input 2x4x4, convT2-3/s2, bn")
    assert s.totals["params"] == sum(p.numel() for p in net.parameters())


def test_shape_propagation_encoder_decoder_and_concat():
    s = summary("input 10x1x32x32, a: conv3-16, conv3-32/s2, maxpool2, convT2-16/s2, convT2-8/s2, concat(a)")
    shapes = [r["output_shape"] for r in s.rows]
    assert shapes[-1] == (10, 24, 32, 32)
    net = to_torch("input 10x1x32x32, a: conv3-16, conv3-32/s2, maxpool2, convT2-16/s2, convT2-8/s2, concat(a)")
    outs = net(torch.zeros(10, 1, 32, 32), return_all=True)
    assert [tuple(o.shape) for o in outs] == shapes[1:]


def test_cli_table_json_csv_and_errors():
    app = typer.Typer()
    app.command()(arch_command)
    run = CliRunner().invoke
    out = run(app, ["input 3x32x32, conv3-8, maxpool2, fc-10"])
    assert out.exit_code == 0 and "conv3-8" in out.output and "total" in out.output
    out = run(app, ["conv3-8, fc-10", "--input", "3x32x32", "--json"])
    assert out.exit_code == 0
    assert json.loads(out.output)["totals"]["params"] == (27 + 1) * 8 + (8 * 32 * 32 + 1) * 10
    out = run(app, ["input 3x32x32, conv3-8", "--csv"])
    assert out.exit_code == 0 and out.output.splitlines()[0].startswith("index,name,type")
    out = run(app, ["input 3x32x32, conv3-8, maxpol2"])
    assert out.exit_code == 2 and "layer 3 'maxpol2'" in out.output and "column 25" in out.output
    out = run(app, ["input 3x4x4, conv5-8/p0"])
    assert out.exit_code == 2 and "cannot apply to input 3x4x4" in out.output
