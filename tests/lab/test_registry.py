"""The experiment registry, the run context and the claims catalogue."""

import doctest
import json
import re
from pathlib import Path

import numpy as np
import pytest

import nablab.lab.claims
import nablab.lab.grading
import nablab.lab.sheets
import nablab.lab.slots
import nablab.lab.registry
import nablab.lab.report
from nablab.lab import registry
from nablab.lab.claims import CLAIMS, CLAIMS_BY_ID, UnknownClaimError
from nablab.lab.registry import Context, Result, experiment, parse_params, to_jsonable


def test_catalogue_matches_the_shared_claims_table():
    """Every id of CLAIMS.md is in the catalogue once, with its seed."""
    path = Path(__file__).resolve().parents[3] / "shared" / "CLAIMS.md"
    if not path.exists():
        pytest.skip(f"{path} is not beside the repository")
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", path.read_text(), flags=re.M)
    assert {i: s for i, s in rows} == {c.id: c.seed for c in CLAIMS}


def test_catalogue_has_34_unique_claims():
    assert len(CLAIMS) == 34 == len(CLAIMS_BY_ID)
    assert all(c.statement.endswith(".") for c in CLAIMS)


def test_experiment_rejects_unknown_ids_and_duplicates(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    with pytest.raises(UnknownClaimError, match="'no.such'"):
        experiment("no.such")

    @experiment("data.one-hot")
    def first(ctx):
        return Result("reproduced", {}, "x")

    def second(ctx):
        return Result("reproduced", {}, "y")

    with pytest.raises(ValueError, match="already has an experiment"):
        experiment("data.one-hot")(second)


def _run(fn, tmp_path, **kw):
    ctx = Context(out_dir=tmp_path, claim_id="data.one-hot", **kw)
    registry_fns = {"data.one-hot": fn}
    old = registry.registered
    registry.registered = lambda: registry_fns
    try:
        return registry.run("data.one-hot", ctx), ctx
    finally:
        registry.registered = old


@pytest.mark.parametrize("fn, message", [
    (lambda ctx: 42, "returned int, expected Result"),
    (lambda ctx: Result("maybe", {}, "s"), "status 'maybe'"),
    (lambda ctx: Result("agrees", {"f": object()}, "s"), "computed['f']: object is not JSON-able"),
    (lambda ctx: Result("agrees", {}, "s", figures=["missing.png"]), "missing.png"),
    (lambda ctx: 1 / 0, "ZeroDivisionError"),
])
def test_invalid_results_become_errors(tmp_path, fn, message):
    result, _ = _run(fn, tmp_path)
    assert result.status == "error"
    assert message in result.summary
    assert "Traceback" in result.details


def test_context_params_are_typed(tmp_path):
    ctx = Context(out_dir=tmp_path, params=parse_params(["steps=20", "lr=1", "plot=false",
                                                         "name=adam", "sizes=3,4"]))
    assert ctx.param("steps", 100) == 20
    assert ctx.param("lr", 0.1) == 1.0 and isinstance(ctx.param("lr", 0.1), float)
    assert ctx.param("plot", True) is False
    assert ctx.param("name", "sgd") == "adam"
    assert ctx.param("sizes", (1, 2)) == (3, 4)
    assert ctx.param("absent", 5) == 5
    with pytest.raises(registry.ParamError, match=r"steps=20: steps expects true or false \(its default is True\)"):
        ctx.param("steps", True)
    with pytest.raises(registry.ParamError, match=r"name=adam: name expects an integer"):
        ctx.param("name", 1)
    assert ctx.used_params >= {"steps", "lr", "plot", "name", "sizes", "absent"}


def test_parse_params_rejects_malformed_items():
    with pytest.raises(ValueError, match="'steps'"):
        parse_params(["steps"])
    with pytest.raises(ValueError, match="'1x=2'"):
        parse_params(["1x=2"])


def test_rng_is_per_claim_and_reproducible(tmp_path):
    a = Context(out_dir=tmp_path, seed=0, claim_id="data.one-hot").rng().random(3)
    b = Context(out_dir=tmp_path, seed=0, claim_id="data.one-hot").rng().random(3)
    c = Context(out_dir=tmp_path, seed=0, claim_id="autodiff.graph").rng().random(3)
    d = Context(out_dir=tmp_path, seed=1, claim_id="data.one-hot").rng().random(3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)


def test_savefig_writes_png_and_refuses_paths(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctx = Context(out_dir=tmp_path, claim_id="autodiff.graph")
    fig = plt.figure()
    name = ctx.savefig(fig, "curve.png")
    assert name == "autodiff.graph--curve.png"
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ctx.figures == [name]
    assert not plt.fignum_exists(fig.number)  # closed
    with pytest.raises(ValueError, match="'../evil'"):
        ctx.savefig(plt.figure(), "../evil")


def test_to_jsonable_output_is_valid_json():
    data = to_jsonable({"a": np.array([[1.5, np.inf]]), "b": (np.int64(2), np.bool_(True)),
                        1: None})
    assert data == {"a": [[1.5, "inf"]], "b": [2, True], "1": None}
    json.dumps(data, allow_nan=False)


def test_load_errors_do_not_hide_other_experiments(monkeypatch, tmp_path):
    import sys

    pkg = tmp_path / "fakeexp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ok.py").write_text(
        "from nablab.lab.registry import experiment, Result\n"
        "@experiment('data.one-hot')\n"
        "def one_hot(ctx):\n    return Result('reproduced', {}, 'fine')\n")
    (pkg / "bad.py").write_text("raise ImportError('missing dependency xyz')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import nablab.lab.experiments as real

    monkeypatch.setattr(real, "__path__", [str(pkg)])
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_LOAD_ERRORS", {})
    monkeypatch.setattr(registry, "_loaded", False)
    fns = registry.registered()
    assert list(fns) == ["data.one-hot"]
    errors = registry.load_errors()
    assert list(errors) == ["nablab.lab.experiments.bad"]
    assert "missing dependency xyz" in errors["nablab.lab.experiments.bad"]
    for name in ("nablab.lab.experiments.ok", "nablab.lab.experiments.bad"):
        sys.modules.pop(name, None)


def test_registered_experiments_use_known_ids():
    for claim_id in registry.registered():
        assert claim_id in CLAIMS_BY_ID


@pytest.mark.parametrize("module", [nablab.lab.claims, nablab.lab.registry, nablab.lab.report,
                                    nablab.lab.slots, nablab.lab.sheets, nablab.lab.grading],
                         ids=lambda m: m.__name__)
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_a_failed_self_check_is_an_error_not_a_verdict(tmp_path, monkeypatch):
    from nablab.lab import registry

    def broken(ctx):
        ctx.check(1 + 1 == 3, "arithmetic is off")
        return registry.Result("agrees", {}, "never reached")

    monkeypatch.setitem(registry._REGISTRY, "autodiff.graph", broken)
    result = registry.run("autodiff.graph", registry.Context(out_dir=tmp_path))
    assert result.status == "error"
    assert "SelfCheckError: arithmetic is off" in result.summary
