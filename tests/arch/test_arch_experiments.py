"""The arch claims (and cnn.conv-output-shape) compute their slots, and grading the answer sets gives their verdicts."""

import numpy as np
import pytest
from claim_records import outcomes, record_of
from torch_absent import hide_torch

from nablab.lab import registry
from nablab.lab.experiments import arch
from nablab.lab.grading import grade_claim, verdict
from nablab.lab.sheets import answer_sets


def test_the_claims_are_written_as_compute_and_figure():
    fns = registry.registered()
    assert fns["arch.convnet-size"] is arch.convnet_size
    assert fns["arch.rf-factors"] is arch.rf_factors
    assert fns["arch.rf-recursion"] is arch.rf_recursion
    assert fns["arch.shape-propagation"] is arch.shape_propagation
    assert fns["cnn.conv-output-shape"] is arch.conv_output_shape


# -- arch.convnet-size -------------------------------------------------------------


def conv_params(k, c_in, c_out):
    return (k * k * c_in + 1) * c_out


def test_convnet_size_agrees_with_answer_set_000_and_finds_002_wrong_in_two_layers(tmp_path):
    record = record_of("arch.convnet-size", tmp_path)
    assert record["status"] == "agrees"
    slots = record["slots"]
    # Closed forms, by hand: 3x3 convs with padding keep the size, 2x2 pools halve it.
    fc_in = 256 * 14 * 14
    expected_params = {"conv3_64": conv_params(3, 3, 64), "conv3_128": conv_params(3, 64, 128),
                       "conv3_256a": conv_params(3, 128, 256), "conv3_256b": conv_params(3, 256, 256),
                       "fc_1024": (fc_in + 1) * 1024, "fc_100": (1024 + 1) * 100}
    for name, value in expected_params.items():
        assert slots[f"params_{name}"] == value, name
    assert slots["params_total"] == sum(expected_params.values()) == 52_444_644
    neurons = [112 * 112 * 64, 56 * 56 * 64, 56 * 56 * 128, 28 * 28 * 128, 28 * 28 * 256, 28 * 28 * 256,
               14 * 14 * 256, 1024, 100, 100]
    assert slots["neurons_total"] == sum(neurons)
    fan_in = [27, 4, 9 * 64, 4, 9 * 128, 9 * 256, 4, fc_in, 1024, 100]
    names = ["conv3_64", "maxpool1", "conv3_128", "maxpool2", "conv3_256a", "conv3_256b", "maxpool3",
             "fc_1024", "fc_100", "softmax"]
    for name, n, f in zip(names, neurons, fan_in):
        assert slots[f"connections_{name}"] == n * f, name
    computed = record["computed"]
    assert computed["pytorch_params_total"] == slots["params_total"]
    assert record["cross_checks"] == {"PyTorch counting the parameters": "ran"}

    assert set(outcomes(record, "000").values()) <= {"correct", "unanswered"}
    assert sum(o == "correct" for o in outcomes(record, "000").values()) == 12
    wrong = {s for s, o in outcomes(record, "002").items() if o == "wrong"}
    assert wrong == {"params_conv3_256a", "params_fc_1024", "params_total"}
    assert "Answer set 002: params_total: wrong" in record["details"]
    assert "params_fc_1024: wrong" in record["details"] and "params_conv3_256a: wrong" in record["details"]
    # 002's FC-1024 number counts 256 inputs per unit: the channels without their 14 x 14 positions.
    given = {g["slot"]: g["given"] for g in record["grades"]["002"]}
    fc = next(r for r in computed["layers"] if r["layer"] == "fc-1024")
    assert given["params_fc_1024"] / 1024 - 1 == 256 == fc["inputs_per_unit"] // (14 * 14)


def test_convnet_size_on_another_input_is_computed_but_not_graded(tmp_path, monkeypatch):
    hide_torch(monkeypatch)   # no need to build the nets in PyTorch here
    spec = ("input 3x64x64, conv3-64, maxpool2, conv3-128, maxpool2, conv3-256, conv3-256, maxpool2, "
            "fc-1024, fc-100, softmax")
    record = record_of("arch.convnet-size", tmp_path, spec=spec)
    assert record["status"] == "reproduced" and record["grades"] == {}
    assert record["slots"]["params_fc_1024"] == (256 * 8 * 8 + 1) * 1024
    assert record["slots"]["connections_conv3_64"] == 64 * 64 * 64 * 27
    other = record_of("arch.convnet-size", tmp_path / "other", spec="input 3x32x32, conv3-8, fc-10")
    assert other["slots"]["params_total"] == conv_params(3, 3, 8) + (8 * 32 * 32 + 1) * 10
    assert other["slots"]["params_conv3_64"] is None  # not the question's layout: per-layer slots empty


def test_convnet_size_without_torch_still_agrees(tmp_path, monkeypatch):
    hide_torch(monkeypatch)
    record = record_of("arch.convnet-size", tmp_path)
    assert record["status"] == "agrees"
    assert record["cross_checks"] == {"PyTorch counting the parameters": "not run: PyTorch is not installed"}
    assert record["computed"]["pytorch_params_total"] is None


# -- receptive fields ------------------------------------------------------------------


def test_rf_factors_agrees_and_its_sweeps_follow_the_closed_forms(tmp_path):
    record = record_of("arch.rf-factors", tmp_path)
    assert record["status"] == "agrees"
    assert outcomes(record, "000") == {"grows_with_depth": "correct", "grows_with_kernel_size": "correct",
                                       "grows_with_stride": "correct", "grows_with_dilation": "unanswered",
                                       "grows_with_pooling": "unanswered"}
    assert all(record["slots"].values())
    sweeps, grows = record["computed"]["sweeps"], record["computed"]["grows"]
    # r = 1 + sum (k_l - 1) d_l j_(l-1), worked out by hand for each sweep
    assert sweeps["depth"] == {str(L): 2 * L + 1 for L in range(1, 9)}
    assert sweeps["kernel_size"] == {str(k): 2 * k - 1 for k in range(1, 10)}
    assert sweeps["stride_of_an_earlier_layer"] == {str(s): 3 + 2 * s for s in range(1, 5)}
    assert sweeps["stride_of_the_layer_itself"] == {str(s): 5 for s in range(1, 5)}
    assert sweeps["dilation"] == {str(d): 3 + 2 * d for d in range(1, 5)}
    assert sweeps["pooling"] == {str(p): 2 + 3 * p for p in range(1, 5)}
    assert not grows["stride_of_the_layer_itself"]
    assert record["computed"]["brute_force_agrees"]


def jacobian_support_fields(kernels, strides, dilations, n=64):
    """Fields from the nonzero pattern of the chain's Jacobian: each layer a dense 0/1 matrix."""
    J, size, out = np.eye(n), n, [1]
    for k, s, d in zip(kernels, strides, dilations):
        m = (size - d * (k - 1) - 1) // s + 1
        M = np.zeros((m, size))
        for o in range(m):
            M[o, o * s + d * np.arange(k)] = 1.0
        J, size = M @ J, m
        cols = np.nonzero(J[m // 2])[0]
        out.append(int(cols.max() - cols.min() + 1))
    return out


def test_brute_force_fields_of_small_chains():
    assert arch.brute_force_rf_1d([3, 3], [1, 1]) == [1, 3, 5]
    assert arch.brute_force_rf_1d([3, 3], [1, 1], [1, 2]) == [1, 3, 7]
    assert arch.brute_force_rf_1d([3, 2, 3], [1, 2, 1]) == [1, 3, 4, 8]
    rng = np.random.default_rng(0)
    for _ in range(30):
        depth = int(rng.integers(1, 4))
        chain = [rng.integers(1, 4, depth).tolist() for _ in range(3)]  # kernels, strides, dilations
        assert arch.brute_force_rf_1d(*chain, n=300) == jacobian_support_fields(*chain, n=300), chain


def test_rf_recursion_agrees_and_tells_the_recursions_apart(tmp_path):
    record = record_of("arch.rf-recursion", tmp_path)
    assert record["status"] == "agrees"
    assert outcomes(record, "004") == {"receptive_fields": "correct", "final_receptive_field": "correct"}
    assert record["slots"]["receptive_fields"] == [1, 3, 7, 15]   # 1 + 2 (1 + 2 + 4), by hand
    assert record["slots"]["final_receptive_field"] == [15, 15]
    c = record["computed"]
    assert c["brute_force"] == [1, 3, 7, 15] and c["jumps"] == [1, 2, 4, 8]
    assert c["previous_stride_recursion"] == [1, 3, 7, 15]
    assert c["mixed_receptive_fields"] == c["mixed_brute_force"] == [1, 3, 7, 11]
    assert c["mixed_previous_stride_recursion"] == [1, 3, 7, 9]


# -- shapes ----------------------------------------------------------------------------


def test_conv_output_shape_agrees_and_pytorch_gives_the_same(tmp_path):
    record = record_of("cnn.conv-output-shape", tmp_path)
    assert record["status"] == "agrees"
    assert outcomes(record, "004") == {"k3_s1_p0": "correct", "k4_s2_p1": "correct"}
    slots = record["slots"]
    assert slots["k3_s1_p0"] == [32, 128, 26, 26] and slots["k4_s2_p1"] == [32, 128, 14, 14]
    assert record["computed"]["pytorch"] == [slots["k3_s1_p0"], slots["k4_s2_p1"]]
    more = record_of("cnn.conv-output-shape", tmp_path / "c", in_channels=3)   # does not change the problem
    assert more["status"] == "agrees" and more["slots"] == slots
    other = record_of("cnn.conv-output-shape", tmp_path / "s", size=32)
    assert other["status"] == "reproduced" and other["slots"]["k4_s2_p1"] == [32, 128, 16, 16]


def test_shape_propagation_agrees_layer_by_layer(tmp_path):
    record = record_of("arch.shape-propagation", tmp_path)
    assert record["status"] == "agrees"
    assert set(outcomes(record, "004").values()) == {"correct"}
    slots = record["slots"]
    assert slots["skip"] == [10, 16 + 8, 32, 32]
    assert slots["layer_e"] == [10, 8, (8 - 1) * 2 + 2, 16]
    assert record["computed"]["pytorch_agrees"] is True
    assert record["cross_checks"] == {"PyTorch computing the shapes": "ran"}


def test_shape_propagation_with_another_spec_is_not_graded_and_answer_set_004_would_not_fit(tmp_path):
    spec = ("input 10x1x32x32, a: conv3-8, conv3-32, b: maxpool2, conv3-128, c: maxpool2, d: conv1-16, "
            "e: convT2-8/s2, f: convT2-1/s2, from(e), convT2-8/s2, skip: concat(a)")
    record = record_of("arch.shape-propagation", tmp_path, spec=spec)
    assert record["status"] == "reproduced" and record["grades"] == {}
    assert record["slots"]["layer_a"] == [10, 8, 32, 32] and record["slots"]["skip"] == [10, 16, 32, 32]
    grade = grade_claim("arch.shape-propagation", answer_sets()["004"].answers["arch.shape-propagation"],
                        record["slots"])
    assert verdict(grade)[0] == "disagrees"
    assert {s.slot for s in grade.wrong()} == {"layer_a", "skip"}
    short = record_of("arch.shape-propagation", tmp_path / "short", spec="input 10x1x32x32, a: conv3-8")
    assert short["slots"]["layer_b"] is None and short["computed"]["missing"] == ["b", "c", "d", "e", "f", "skip"]


@pytest.mark.parametrize("claim_id", ["cnn.conv-output-shape", "arch.shape-propagation"])
def test_shape_claims_without_torch_still_agree(claim_id, tmp_path, monkeypatch):
    hide_torch(monkeypatch)
    record = record_of(claim_id, tmp_path)
    assert record["status"] == "agrees"
    assert record["cross_checks"] == {"PyTorch computing the shapes": "not run: PyTorch is not installed"}


def test_a_wrong_shape_in_a_sheet_is_graded_wrong(tmp_path):
    from nablab.lab.sheets import parse_sheet

    sheet = parse_sheet('["cnn.conv-output-shape"]\nk3_s1_p0 = [32, 128, 25, 25]\nk4_s2_p1 = [32, 128, 14, 14]\n')
    truths = record_of("cnn.conv-output-shape", tmp_path)["slots"]
    grade = grade_claim("cnn.conv-output-shape", sheet.answers["cnn.conv-output-shape"], truths)
    assert verdict(grade)[0] == "disagrees" and [s.slot for s in grade.wrong()] == ["k3_s1_p0"]
    assert np.array_equal(grade.wrong()[0].truth, (32, 128, 26, 26))
