"""The arch claims run in the lab and reach the verdicts their computations support."""

import pytest

from nablab.lab.registry import Context, run


@pytest.fixture
def ctx(tmp_path):
    return Context(out_dir=tmp_path, quick=True, seed=0)


def test_convnet_size_says_seed_000_is_right(ctx):
    r = run("arch.convnet-size", ctx)
    assert r.status == "agrees", r.details
    c = r.computed
    assert c["agrees_with_seed_000"] and not c["agrees_with_seed_002"]
    assert c["pytorch_params_total"] == c["params_total"]
    wrong = {d["layer"]: d for d in c["seed_002_diagnosis"]}
    assert set(wrong) == {"conv3-256", "fc-1024"}
    assert wrong["fc-1024"]["fan_in_implied_by_seed_002"] == 256  # channels only, no 14x14
    assert "Answer set 000 is right" in r.summary
    assert (ctx.out_dir / r.figures[0]).is_file()


def test_rf_claims(ctx):
    r = run("arch.rf-factors", ctx)
    assert r.status == "agrees", r.details
    grows = r.computed["grows_with_the_factor"]
    assert not grows["stride s of the last layer (its own units)"]
    assert grows["dilation d of the second conv3 layer"] and grows["pooling p (maxpool p between two conv3)"]
    ctx2 = Context(out_dir=ctx.out_dir, quick=True, seed=0)
    r = run("arch.rf-recursion", ctx2)
    assert r.status == "agrees", r.details
    mixed = r.computed["strides_2_1_1"]
    assert mixed["nablab"] == mixed["brute_force"] != mixed["answers_recursion"]


def test_shape_claims(ctx):
    r = run("cnn.conv-output-shape", ctx)
    assert r.status == "agrees", r.details
    assert r.computed["pytorch"] == [r.computed["k3_s1_p0"], r.computed["k4_s2_p1"]]
    r = run("arch.shape-propagation", Context(out_dir=ctx.out_dir, quick=True))
    assert r.status == "agrees", r.details
    assert r.computed["pytorch_agrees"] and r.computed["named_shapes"]["skip"][1] == 24
    bad = run("arch.shape-propagation", Context(out_dir=ctx.out_dir, quick=True,
                                                params={"spec": "input 10x1x32x32, a: conv3-8"}))
    assert bad.status == "disagrees"
